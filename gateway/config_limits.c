/* Endpoint `rate_limits` rules, `rate_limits_store` and the test-only period knob (issue 13,
 * INFERENCE_TABLES.md §7.2). Validation helpers in config_util.c; runtime in gateway/ratelimit.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config_int.h"
#include "gateway/keys.h"

#define MAX_RULES       20 /* §7.2 rule 6, the platform's limits */
#define MAX_GROUP_RULES 5

static const char *scope_of(gw_cfg_v_t *v, const gw_rl_rule_t *r)
{
    static const char *const prefix[] = {"endpoint", "user", "group", "service_principal"};
    if (r->key == GW_RL_ENDPOINT)
        return "endpoint";
    if (!r->principal)
        return "user_default";
    size_t n = strlen(prefix[r->key]) + strlen(r->principal) + 2;
    char *s = gw_arena_alloc(v->a, n);
    snprintf(s, n, "%s:%s", prefix[r->key], r->principal);
    return s;
}

static void parse_rule(gw_cfg_v_t *v, const gw_json_t *o, const char *rp, gw_rl_rule_t *r)
{
    static const char *const keys[] = {"key", "principal", "calls", "tokens", "renewal_period", NULL};
    static const char *const kinds[] = {"endpoint", "user", "user_group", "service_principal", NULL};
    static const char *const periods[] = {"minute", "hour", NULL};
    if (o->type != GW_JSON_OBJECT) {
        gw__cfg_fail(v, rp, "must be an object");
        return;
    }
    gw__cfg_check_keys(v, o, rp, keys);
    r->key = (gw_rl_key_t)gw__cfg_enum(v, o, rp, "key", kinds, 0,
                                       "must be \"endpoint\", \"user\", \"user_group\" or \"service_principal\"");
    r->principal = gw__cfg_string(v, o, rp, "principal", false, NULL);
    if (r->principal && !gw_keys_valid_name(r->principal, strlen(r->principal)))
        gw__cfg_fail(v, gw__cfg_join(v, rp, "principal"), "must be a name (1..256 printable bytes, no quotes)");
    if (r->key == GW_RL_ENDPOINT && r->principal)
        gw__cfg_fail(v, gw__cfg_join(v, rp, "principal"), "not allowed with key \"endpoint\"");
    if ((r->key == GW_RL_USER_GROUP || r->key == GW_RL_SERVICE_PRINCIPAL) && !r->principal)
        gw__cfg_fail(v, gw__cfg_join(v, rp, "principal"), "required with key \"%s\"",
                     r->key == GW_RL_USER_GROUP ? "user_group" : "service_principal");
    bool has_calls, has_tokens;
    double calls = gw__cfg_number(v, o, rp, "calls", 0, 1, 1e12, &has_calls);
    double tokens = gw__cfg_number(v, o, rp, "tokens", 0, 1, 1e15, &has_tokens);
    r->calls = (int64_t)calls;
    r->tokens = (int64_t)tokens;
    if ((double)r->calls != calls || (double)r->tokens != tokens)
        gw__cfg_fail(v, rp, "calls and tokens must be integers");
    if (!has_calls && !has_tokens)
        gw__cfg_fail(v, rp, "needs calls (per period), tokens (per period) or both");
    int p = gw__cfg_enum(v, o, rp, "renewal_period", periods, 0, "must be \"minute\" or \"hour\"");
    r->period_ms = p == 0 ? 60000 : 3600000;
    r->scope = scope_of(v, r);
}

void gw__cfg_parse_rate_limits(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e)
{
    const gw_json_t *rl = gw__cfg_typed(v, o, path, "rate_limits", GW_JSON_ARRAY, false);
    if (!rl || v->failed)
        return;
    const char *p = gw__cfg_join(v, path, "rate_limits");
    if (rl->len > MAX_RULES) {
        gw__cfg_fail(v, p, "at most %d rules per endpoint (has %zu)", MAX_RULES, rl->len);
        return;
    }
    e->rate_limits = gw_arena_calloc(v->a, sizeof(*e->rate_limits) * (rl->len ? rl->len : 1));
    size_t i = 0, groups = 0;
    for (const gw_json_t *x = rl->child; x && !v->failed; x = x->next, i++) {
        const char *rp = gw__cfg_index(v, p, i);
        gw_rl_rule_t *r = &e->rate_limits[i];
        parse_rule(v, x, rp, r);
        if (!v->failed && r->key == GW_RL_USER_GROUP && ++groups > MAX_GROUP_RULES)
            gw__cfg_fail(v, rp, "at most %d user_group rules per endpoint", MAX_GROUP_RULES);
        for (size_t k = 0; k < i && !v->failed; k++) {
            const gw_rl_rule_t *q = &e->rate_limits[k];
            if (q->key == r->key && q->period_ms == r->period_ms &&
                (q->principal ? r->principal && strcmp(q->principal, r->principal) == 0 : !r->principal))
                gw__cfg_fail(v, rp, "same key, principal and renewal_period as rate_limits[%zu]", k);
        }
    }
    e->n_rate_limits = i;
}

/* "redis://host:port" (port default 6379). */
static void parse_redis_url(gw_cfg_v_t *v, const char *url, gw_rl_store_cfg_t *s)
{
    const char *p = "rate_limits_store.redis";
    if (strncmp(url, "redis://", 8) != 0) {
        gw__cfg_fail(v, p, "must be redis://host:port");
        return;
    }
    const char *h = url + 8;
    if (strpbrk(h, "@/?")) {
        gw__cfg_fail(v, p, "must be redis://host:port (no user, password or database number)");
        return;
    }
    const char *colon = strrchr(h, ':');
    size_t hn = colon ? (size_t)(colon - h) : strlen(h);
    if (hn == 0) {
        gw__cfg_fail(v, p, "must name a host");
        return;
    }
    s->redis_host = gw_arena_strndup(v->a, h, hn);
    s->redis_port = 6379;
    if (colon) {
        size_t nd = strspn(colon + 1, "0123456789");
        long port = nd > 0 && nd <= 5 && colon[1 + nd] == '\0' ? strtol(colon + 1, NULL, 10) : -1;
        if (port < 1 || port > 65535)
            gw__cfg_fail(v, p, "port must be 1..65535");
        s->redis_port = (int)port;
    }
}

void gw__cfg_parse_rl_store(gw_cfg_v_t *v, const gw_json_t *root, gw_config_t *c)
{
    gw_rl_store_cfg_t *s = &c->rl_store;
    s->deadline_ms = 50;
    const gw_json_t *o = gw__cfg_typed(v, root, "", "rate_limits_store", GW_JSON_OBJECT, false);
    if (o && !v->failed) {
        static const char *const keys[] = {"redis", "on_error", "deadline_ms", NULL};
        static const char *const modes[] = {"allow", "deny", NULL};
        gw__cfg_check_keys(v, o, "rate_limits_store", keys);
        const char *url = gw__cfg_string(v, o, "rate_limits_store", "redis", true, NULL);
        if (url)
            parse_redis_url(v, url, s);
        s->deny_on_error = gw__cfg_enum(v, o, "rate_limits_store", "on_error", modes, 0,
                                        "must be \"allow\" or \"deny\"") == 1;
        s->deadline_ms = gw__cfg_int(v, o, "rate_limits_store", "deadline_ms", 50, 1, 60000);
    }
    /* Test-only (README): a "minute" lasts this many ms, an "hour" 60 times that. */
    c->test_rate_limit_period_ms =
        gw__cfg_int(v, root, "", "test_only_rate_limit_period_ms", 0, 0, 3600000);
    for (size_t i = 0; i < c->n_endpoints && !v->failed; i++) {
        gw_endpoint_cfg_t *e = &c->endpoints[i];
        for (size_t k = 0; k < e->n_rate_limits; k++) {
            gw_rl_rule_t *r = &e->rate_limits[k];
            if (r->key != GW_RL_ENDPOINT && !c->auth.enabled)
                gw__cfg_fail(v, gw__cfg_index(v, gw__cfg_join(v, gw__cfg_index(v, "endpoints", i), "rate_limits"), k),
                             "key \"%s\" needs the auth block (callers must be identified)",
                             r->key == GW_RL_USER ? "user" : r->key == GW_RL_USER_GROUP ? "user_group"
                                                                                        : "service_principal");
            if (c->test_rate_limit_period_ms)
                r->period_ms = r->period_ms / 60000 * c->test_rate_limit_period_ms;
        }
    }
}
