#include "gateway/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/config_int.h"
#include "gateway/json.h"
#include "tables/redact.h"

static void parse_upstream(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_upstream_cfg_t *u)
{
    static const char *const keys[] = {"url", "api_key_env", "weight", "max_concurrent", NULL};
    if (o->type != GW_JSON_OBJECT) {
        gw__cfg_fail(v, path, "must be an object");
        return;
    }
    gw__cfg_check_keys(v, o, path, keys);
    u->url = gw__cfg_string(v, o, path, "url", true, NULL);
    if (u->url) {
        size_t skip = strncmp(u->url, "http://", 7) == 0 ? 7 : strncmp(u->url, "https://", 8) == 0 ? 8 : 0;
        if (!skip)
            gw__cfg_fail(v, gw__cfg_join(v, path, "url"), "must start with http:// or https://");
        else if (u->url[skip] == '\0' || u->url[skip] == '/')
            gw__cfg_fail(v, gw__cfg_join(v, path, "url"), "must name a host after http:// or https://");
        size_t n = strlen(u->url);
        while (n > 0 && u->url[n - 1] == '/')
            ((char *)u->url)[--n] = '\0';
    }
    u->api_key_env = gw__cfg_string(v, o, path, "api_key_env", false, NULL);
    u->api_key = NULL;
    if (u->api_key_env) {
        const char *val = getenv(u->api_key_env);
        if (val && *val)
            u->api_key = gw_arena_strndup(v->a, val, strlen(val));
    }
    u->weight = gw__cfg_int(v, o, path, "weight", 1, 1, 1000);
    u->max_concurrent = gw__cfg_int(v, o, path, "max_concurrent", 0, 0, 1000000);
}

/* Load balancing: strategy, retries, fallbacks, health checks, outlier ejection (issue 4). */
static void parse_balancing(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e)
{
    gw_lb_opts_default(&e->lb);
    const char *st = gw__cfg_string(v, o, path, "strategy", false, "p2c_ewma");
    static const char *const names[] = {"round_robin", "weighted", "least_outstanding", "p2c_ewma"};
    bool found = false;
    for (int i = 0; i < 4; i++)
        if (strcmp(st, names[i]) == 0) {
            e->lb.strategy = (gw_lb_strategy_t)i;
            found = true;
        }
    if (!found)
        gw__cfg_fail(v, gw__cfg_join(v, path, "strategy"), "must be round_robin, weighted, least_outstanding or p2c_ewma");
    e->replica_retries = gw__cfg_int(v, o, path, "retries", 1, 0, 10);
    e->queue_timeout_ms = gw__cfg_int(v, o, path, "queue_timeout_ms", 1000, 0, 600000);
    e->max_queue = gw__cfg_int(v, o, path, "max_queue", 256, 0, 1000000);

    const gw_json_t *fb = gw__cfg_typed(v, o, path, "fallbacks", GW_JSON_ARRAY, false);
    if (fb && !v->failed) {
        e->n_fallbacks = fb->len;
        e->fallbacks = gw_arena_calloc(v->a, sizeof(*e->fallbacks) * (fb->len ? fb->len : 1));
        size_t i = 0;
        for (const gw_json_t *x = fb->child; x; x = x->next, i++) {
            if (x->type != GW_JSON_STRING || !x->str.len) {
                gw__cfg_fail(v, gw__cfg_index(v, gw__cfg_join(v, path, "fallbacks"), i), "must be an endpoint name");
                return;
            }
            e->fallbacks[i] = gw_arena_strndup(v->a, x->str.base, x->str.len);
        }
    }

    e->health_path = NULL;
    e->health_interval_ms = 5000;
    e->health_timeout_ms = 1000;
    const gw_json_t *hc = gw__cfg_typed(v, o, path, "health_check", GW_JSON_OBJECT, false);
    if (hc) {
        static const char *const hkeys[] = {"path",           "interval_ms",         "timeout_ms",
                                            "healthy_threshold", "unhealthy_threshold", NULL};
        const char *hp = gw__cfg_join(v, path, "health_check");
        gw__cfg_check_keys(v, hc, hp, hkeys);
        e->health_path = gw__cfg_string(v, hc, hp, "path", false, "/health");
        if (e->health_path[0] != '/')
            gw__cfg_fail(v, gw__cfg_join(v, hp, "path"), "must start with /");
        e->health_interval_ms = gw__cfg_int(v, hc, hp, "interval_ms", 5000, 10, 3600000);
        e->health_timeout_ms = gw__cfg_int(v, hc, hp, "timeout_ms", 1000, 1, 600000);
        e->lb.healthy_threshold = gw__cfg_int(v, hc, hp, "healthy_threshold", e->lb.healthy_threshold, 1, 100);
        e->lb.unhealthy_threshold = gw__cfg_int(v, hc, hp, "unhealthy_threshold", e->lb.unhealthy_threshold, 1, 100);
    }
    const gw_json_t *ol = gw__cfg_typed(v, o, path, "outlier", GW_JSON_OBJECT, false);
    if (ol) {
        static const char *const okeys[] = {"consecutive_failures", "base_ejection_ms", "max_ejection_ms",
                                            "max_ejected_percent", NULL};
        const char *op = gw__cfg_join(v, path, "outlier");
        gw__cfg_check_keys(v, ol, op, okeys);
        e->lb.consecutive_failures = gw__cfg_int(v, ol, op, "consecutive_failures", e->lb.consecutive_failures, 0, 1000);
        e->lb.base_ejection_ms = gw__cfg_int(v, ol, op, "base_ejection_ms", e->lb.base_ejection_ms, 1, 3600000);
        e->lb.max_ejection_ms = gw__cfg_int(v, ol, op, "max_ejection_ms", e->lb.max_ejection_ms, 1, 86400000);
        e->lb.max_ejected_percent = gw__cfg_int(v, ol, op, "max_ejected_percent", e->lb.max_ejected_percent, 0, 100);
    }
}

static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.'))
            return false;
    return true;
}

/* What a ChatCompletions endpoint does with the parts of a Responses request its model cannot
 * take as they are (issue 10): client model names (aliases), hosted tools, runs of
 * system/developer messages, reasoning coming back. */
static void parse_tool_policies(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e)
{
    static const char *const hosted[] = {"drop", "reject", NULL};
    static const char *const sysm[] = {"merge", "keep", NULL};
    static const char *const pass[] = {"none", "tool_turns", "all", NULL};
    e->hosted_tools =
        (gw_hosted_tools_t)gw__cfg_enum(v, o, path, "hosted_tools", hosted, 0, "must be \"drop\" or \"reject\"");
    e->system_messages =
        (gw_sysmsg_t)gw__cfg_enum(v, o, path, "system_messages", sysm, 0, "must be \"merge\" or \"keep\"");
    e->reasoning_passback = (gw_passback_t)gw__cfg_enum(v, o, path, "reasoning_passback", pass, 0,
                                                    "must be \"none\", \"tool_turns\" or \"all\"");
    const gw_json_t *al = gw__cfg_typed(v, o, path, "aliases", GW_JSON_ARRAY, false);
    if (!al || v->failed)
        return;
    const char *ap = gw__cfg_join(v, path, "aliases");
    if (al->len > 256) {
        gw__cfg_fail(v, ap, "at most 256 aliases per endpoint");
        return;
    }
    e->n_aliases = al->len;
    e->aliases = gw_arena_calloc(v->a, sizeof(*e->aliases) * (al->len ? al->len : 1));
    size_t i = 0;
    for (const gw_json_t *x = al->child; x; x = x->next, i++) {
        if (x->type != GW_JSON_STRING || !x->str.len || x->str.len > 256 ||
            memchr(x->str.base, '\0', x->str.len)) {
            gw__cfg_fail(v, gw__cfg_index(v, ap, i), "must be a model name or a glob with * (1..256 bytes)");
            return;
        }
        e->aliases[i] = gw_arena_strndup(v->a, x->str.base, x->str.len);
    }
}

static void parse_endpoint(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e)
{
    static const char *const keys[] = {"name",
                                       "adapter",
                                       "flavor",
                                       "upstreams",
                                       "model",
                                       "params",
                                       "developer_role",
                                       "max_tokens_field",
                                       "timeouts",
                                       "sampling_rate",
                                       "strategy",
                                       "retries",
                                       "fallbacks",
                                       "health_check",
                                       "outlier",
                                       "traffic",
                                       "queue_timeout_ms",
                                       "always_log_errors",
                                       "max_queue",
                                       "aliases",
                                       "hosted_tools",
                                       "system_messages",
                                       "reasoning_passback",
                                       "allow",
                                       "rate_limits",
                                       NULL};
    if (o->type != GW_JSON_OBJECT) {
        gw__cfg_fail(v, path, "must be an object");
        return;
    }
    gw__cfg_check_keys(v, o, path, keys);
    e->name = gw__cfg_string(v, o, path, "name", true, "");
    if (e->name && !v->failed && !valid_name(e->name))
        gw__cfg_fail(v, gw__cfg_join(v, path, "name"), "must be non-empty [A-Za-z0-9._-]");
    static const char *const adapters[] = {"chat_completions", "responses", NULL};
    static const char *const flavors[] = {"openai", "mlflow", NULL};
    e->adapter = (gw_adapter_kind_t)gw__cfg_enum(v, o, path, "adapter", adapters, 0,
                                             "must be \"chat_completions\" or \"responses\"");
    e->flavor = (gw_flavor_t)gw__cfg_enum(v, o, path, "flavor", flavors, 0, "must be \"openai\" or \"mlflow\"");
    e->model = gw__cfg_string(v, o, path, "model", false, e->name);
    e->max_tokens_field = gw__cfg_string(v, o, path, "max_tokens_field", false, "max_tokens");
    if (strcmp(e->max_tokens_field, "max_tokens") != 0 &&
        strcmp(e->max_tokens_field, "max_completion_tokens") != 0)
        gw__cfg_fail(v, gw__cfg_join(v, path, "max_tokens_field"), "must be \"max_tokens\" or \"max_completion_tokens\"");
    e->developer_role = gw__cfg_bool(v, o, path, "developer_role", false);
    e->sampling_rate = gw__cfg_number(v, o, path, "sampling_rate", 1.0, 0.0, 1.0, NULL);
    e->always_log_errors = gw__cfg_bool(v, o, path, "always_log_errors", true);
    if (e->sampling_rate <= 0.0)
        gw__cfg_fail(v, gw__cfg_join(v, path, "sampling_rate"), "must be in (0, 1]");
    parse_tool_policies(v, o, path, e);
    gw__cfg_parse_access(v, o, path, e); /* allow + rate_limits: config_auth.c, config_limits.c */

    const gw_json_t *tr = gw__cfg_typed(v, o, path, "traffic", GW_JSON_ARRAY, false);
    if (tr && !v->failed) {
        const char *tp = gw__cfg_join(v, path, "traffic");
        static const char *const tkeys[] = {"endpoint", "percentage", NULL};
        e->n_traffic = tr->len;
        e->traffic = gw_arena_calloc(v->a, sizeof(*e->traffic) * (tr->len ? tr->len : 1));
        int sum = 0;
        size_t i = 0;
        for (const gw_json_t *t = tr->child; t; t = t->next, i++) {
            const char *ip = gw__cfg_index(v, tp, i);
            if (t->type != GW_JSON_OBJECT) {
                gw__cfg_fail(v, ip, "must be an object");
                break;
            }
            gw__cfg_check_keys(v, t, ip, tkeys);
            e->traffic[i].endpoint = gw__cfg_string(v, t, ip, "endpoint", true, "");
            e->traffic[i].percentage = gw__cfg_int(v, t, ip, "percentage", 0, 0, 100);
            if (!gw_json_get(t, "percentage"))
                gw__cfg_fail(v, gw__cfg_join(v, ip, "percentage"), "required key missing");
            sum += e->traffic[i].percentage;
        }
        if (!v->failed && (tr->len == 0 || sum != 100))
            gw__cfg_fail(v, tp, "percentages must sum to 100");
    }
    const gw_json_t *ups = gw__cfg_typed(v, o, path, "upstreams", GW_JSON_ARRAY, e->n_traffic == 0);
    const char *upath = gw__cfg_join(v, path, "upstreams");
    if (ups && ups->len == 0)
        gw__cfg_fail(v, upath, "must list at least one upstream");
    if (ups && ups->len > 64)
        gw__cfg_fail(v, upath, "at most 64 upstreams per endpoint");
    if (ups && !v->failed) {
        e->n_upstreams = ups->len;
        e->upstreams = gw_arena_calloc(v->a, sizeof(*e->upstreams) * ups->len);
        size_t i = 0;
        for (const gw_json_t *u = ups->child; u; u = u->next, i++)
            parse_upstream(v, u, gw__cfg_index(v, upath, i), &e->upstreams[i]);
    }

    const gw_json_t *p = gw__cfg_typed(v, o, path, "params", GW_JSON_OBJECT, false);
    if (p) {
        static const char *const pkeys[] = {"temperature", "top_p", "max_output_tokens", NULL};
        const char *pp = gw__cfg_join(v, path, "params");
        gw__cfg_check_keys(v, p, pp, pkeys);
        e->temperature.value = gw__cfg_number(v, p, pp, "temperature", 0, 0, 2, &e->temperature.has);
        e->top_p.value = gw__cfg_number(v, p, pp, "top_p", 0, 0, 1, &e->top_p.has);
        e->max_output_tokens.value =
            gw__cfg_number(v, p, pp, "max_output_tokens", 0, 1, 1e9, &e->max_output_tokens.has);
        /* Sent upstream as an integer token count (max_tokens / max_completion_tokens). */
        if (e->max_output_tokens.value != (double)(int64_t)e->max_output_tokens.value)
            gw__cfg_fail(v, gw__cfg_join(v, pp, "max_output_tokens"), "must be an integer");
    }

    parse_balancing(v, o, path, e);

    e->connect_timeout_ms = 5000;
    e->first_event_timeout_ms = 10000;
    e->idle_timeout_ms = 60000;
    e->total_timeout_ms = 297000;
    const gw_json_t *t = gw__cfg_typed(v, o, path, "timeouts", GW_JSON_OBJECT, false);
    if (t) {
        static const char *const tkeys[] = {"connect_ms", "first_event_ms", "idle_ms", "total_ms", NULL};
        const char *tp = gw__cfg_join(v, path, "timeouts");
        gw__cfg_check_keys(v, t, tp, tkeys);
        e->connect_timeout_ms = gw__cfg_int(v, t, tp, "connect_ms", e->connect_timeout_ms, 1, 600000);
        e->first_event_timeout_ms = gw__cfg_int(v, t, tp, "first_event_ms", e->first_event_timeout_ms, 1, 3600000);
        e->idle_timeout_ms = gw__cfg_int(v, t, tp, "idle_ms", e->idle_timeout_ms, 1, 3600000);
        e->total_timeout_ms = gw__cfg_int(v, t, tp, "total_ms", e->total_timeout_ms, 1, 86400000);
    }
}

static void parse_listen(gw_cfg_v_t *v, gw_config_t *c, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) {
        gw__cfg_fail(v, "listen", "must be \"host:port\"");
        return;
    }
    /* Digits only: strtol alone would also take " 80", "+80" or "-0". */
    size_t ndig = strspn(colon + 1, "0123456789");
    long port = ndig > 0 && ndig <= 5 ? strtol(colon + 1, NULL, 10) : -1;
    if (port < 0 || colon[1 + ndig] != '\0' || port > 65535) {
        gw__cfg_fail(v, "listen", "port must be 0..65535");
        return;
    }
    c->listen_host = gw_arena_strndup(v->a, s, (size_t)(colon - s));
    c->listen_port = (int)port;
}

/* Aliases and default_endpoint: an exact alias may not shadow an endpoint name or another
 * endpoint's exact alias (the answer would depend on the order); globs may overlap (first wins). */
static void check_routing(gw_cfg_v_t *v, gw_config_t *c, const gw_json_t *root)
{
    for (size_t x = 0; x < c->n_endpoints && !v->failed; x++) {
        const gw_endpoint_cfg_t *e = &c->endpoints[x];
        for (size_t k = 0; k < e->n_aliases && !v->failed; k++) {
            const char *al = e->aliases[k];
            const char *ap = gw__cfg_index(v, gw__cfg_join(v, gw__cfg_index(v, "endpoints", x), "aliases"), k);
            if (strchr(al, '*'))
                continue;
            const gw_endpoint_cfg_t *named = gw_config_endpoint(c, al, strlen(al));
            if (named) {
                gw__cfg_fail(v, ap, "\"%s\" is already the name of an endpoint", al);
                break;
            }
            /* Compare with every earlier alias only, so the second occurrence is the one named. */
            for (size_t y = 0; y <= x && !v->failed; y++)
                for (size_t m = 0; m < c->endpoints[y].n_aliases && (y < x || m < k); m++)
                    if (strcmp(c->endpoints[y].aliases[m], al) == 0) {
                        gw__cfg_fail(v, ap, "duplicate alias \"%s\" (also on endpoints[%zu])", al, y);
                        break;
                    }
        }
    }
    c->default_endpoint = gw__cfg_string(v, root, "", "default_endpoint", false, NULL);
    if (c->default_endpoint && !gw_config_endpoint(c, c->default_endpoint, strlen(c->default_endpoint)))
        gw__cfg_fail(v, "default_endpoint", "\"%s\" is not an endpoint", c->default_endpoint);
}

static void version_hash(const char *s, size_t n, char out[17])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The `tables` section. Every key keeps its default when absent; the sink decides which keys are
 * required (`dir` for jsonl; a DSN, from the file or $DATABASE_URL, for postgres). */
static void parse_tables(gw_cfg_v_t *v, const gw_json_t *root, gw_tables_cfg_t *tc)
{
    tc->sink = GW_SINK_NONE;
    tc->flush_ms = 1000;
    tc->max_logged_request_bytes = 1048576;
    tc->max_logged_response_bytes = 1048576;
    tc->max_queue_bytes = 64u << 20;
    tc->fsync = GW_FSYNC_NONE; /* what agate always did; batch/always are opt-in */
    tc->rotate_bytes = 128u << 20;
    tc->spool_dir = "./var/spool";
    tc->spool_max_bytes = 1u << 30;
    tc->batch_rows = 500;
    const gw_json_t *t = gw__cfg_typed(v, root, "", "tables", GW_JSON_OBJECT, false);
    if (!t)
        return;
    static const char *const tkeys[] = {"sink",
                                        "dir",
                                        "flush_ms",
                                        "max_logged_request_bytes",
                                        "max_logged_response_bytes",
                                        "max_queue_bytes",
                                        "dsn",
                                        "fsync",
                                        "rotate_bytes",
                                        "spool_dir",
                                        "spool_max_bytes",
                                        "batch_rows",
                                        "usage_table",
                                        "redact",
                                        NULL};
    gw__cfg_check_keys(v, t, "tables", tkeys);
    const char *sink = gw__cfg_string(v, t, "tables", "sink", true, "none");
    tc->dsn = gw__cfg_string(v, t, "tables", "dsn", false, NULL);
    if (strcmp(sink, "jsonl") == 0) {
        tc->sink = GW_SINK_JSONL;
    } else if (strcmp(sink, "postgres") == 0) {
        tc->sink = GW_SINK_POSTGRES;
        if (!tc->dsn || !*tc->dsn) {
            const char *env = getenv("DATABASE_URL");
            tc->dsn = env && *env ? gw_arena_strndup(v->a, env, strlen(env)) : NULL;
        }
        if (!tc->dsn)
            gw__cfg_fail(v, "tables.sink",
                 "\"postgres\" needs tables.dsn or the DATABASE_URL environment variable (other sinks: "
                 "\"jsonl\", \"none\")");
    } else if (strcmp(sink, "none") != 0) {
        gw__cfg_fail(v, "tables.sink", "must be \"jsonl\", \"postgres\" or \"none\"");
    }
    tc->dir = gw__cfg_string(v, t, "tables", "dir", tc->sink == GW_SINK_JSONL, NULL);
    tc->flush_ms = gw__cfg_int(v, t, "tables", "flush_ms", 1000, 1, 600000);
    tc->max_logged_request_bytes = gw__cfg_size(v, t, "tables", "max_logged_request_bytes", 1048576, 0, 10485760);
    tc->max_logged_response_bytes = gw__cfg_size(v, t, "tables", "max_logged_response_bytes", 1048576, 0, 10485760);
    tc->max_queue_bytes = gw__cfg_size(v, t, "tables", "max_queue_bytes", 64 << 20, 1 << 16, 4e9);
    static const char *const fsyncs[] = {"none", "batch", "always", NULL};
    tc->fsync = (gw_fsync_t)gw__cfg_enum(v, t, "tables", "fsync", fsyncs, 0, "must be \"none\", \"batch\" or \"always\"");
    tc->rotate_bytes = gw__cfg_size(v, t, "tables", "rotate_bytes", 128 << 20, 4096, 1099511627776.0);
    tc->spool_dir = gw__cfg_string(v, t, "tables", "spool_dir", false, "./var/spool");
    if (!*tc->spool_dir)
        gw__cfg_fail(v, "tables.spool_dir", "must not be empty");
    tc->spool_max_bytes = gw__cfg_size(v, t, "tables", "spool_max_bytes", 1 << 30, 65536, 1099511627776.0);
    tc->batch_rows = gw__cfg_int(v, t, "tables", "batch_rows", 500, 1, 10000);
    tc->usage_table = gw__cfg_bool(v, t, "tables", "usage_table", tc->sink == GW_SINK_POSTGRES);
    const gw_json_t *rd = gw__cfg_typed(v, t, "tables", "redact", GW_JSON_ARRAY, false);
    if (rd && !v->failed) {
        if (rd->len > 64) {
            gw__cfg_fail(v, "tables.redact", "at most 64 paths");
            return;
        }
        tc->n_redact = rd->len;
        tc->redact = gw_arena_calloc(v->a, sizeof(*tc->redact) * (rd->len ? rd->len : 1));
        size_t i = 0;
        for (const gw_json_t *x = rd->child; x; x = x->next, i++) {
            const char *ip = gw__cfg_index(v, "tables.redact", i);
            if (x->type != GW_JSON_STRING) {
                gw__cfg_fail(v, ip, "must be a string");
                return;
            }
            tc->redact[i] = gw_arena_strndup(v->a, x->str.base, x->str.len);
            const char *why = tb_redact_check(tc->redact[i]);
            if (why)
                gw__cfg_fail(v, ip, "%s", why);
        }
    }
}

gw_config_t *gw_config_parse(const char *json, size_t len, char *err, size_t errlen)
{
    gw_arena_t *a = gw_arena_new();
    gw_cfg_v_t v = {.a = a, .err = err, .errlen = errlen};
    gw_config_t *c = gw_arena_calloc(a, sizeof(*c));
    c->arena = a;
    gw_json_t *root;
    const char *perr = NULL;
    if (gw_json_parse(a, json, len, &root, &perr) < 0) {
        snprintf(err, errlen, "config: invalid JSON: %s", perr ? perr : "parse error");
        goto fail;
    }
    if (root->type != GW_JSON_OBJECT) {
        gw__cfg_fail(&v, "(top level)", "must be an object");
        goto fail;
    }
    static const char *const keys[] = {"listen", "log_level",    "endpoints",        "tables",
                                       "limits", "retry_budget", "default_endpoint", "access_log",
                                       "auth",   "rate_limits_store", "test_only_rate_limit_period_ms", "tracing", "store", NULL};
    gw__cfg_check_keys(&v, root, "", keys);
    parse_listen(&v, c, gw__cfg_string(&v, root, "", "listen", false, "127.0.0.1:8080"));
    c->log_level = gw__cfg_string(&v, root, "", "log_level", false, "info");
    if (strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") && strcmp(c->log_level, "warn") &&
        strcmp(c->log_level, "error"))
        gw__cfg_fail(&v, "log_level", "must be debug, info, warn or error");
    c->access_log = gw__cfg_string(&v, root, "", "access_log", false, "off");
    if (!*c->access_log)
        gw__cfg_fail(&v, "access_log", "must be \"off\", \"stderr\" or a file path");

    const gw_json_t *eps = gw__cfg_typed(&v, root, "", "endpoints", GW_JSON_ARRAY, true);
    if (eps && eps->len == 0)
        gw__cfg_fail(&v, "endpoints", "must list at least one endpoint");
    if (eps && !v.failed) {
        c->n_endpoints = eps->len;
        c->endpoints = gw_arena_calloc(a, sizeof(*c->endpoints) * eps->len);
        size_t i = 0;
        for (const gw_json_t *e = eps->child; e; e = e->next, i++)
            parse_endpoint(&v, e, gw__cfg_index(&v, "endpoints", i), &c->endpoints[i]);
        for (size_t x = 0; x < c->n_endpoints && !v.failed; x++)
            for (size_t t = 0; t < c->endpoints[x].n_traffic; t++) {
                const char *tn = c->endpoints[x].traffic[t].endpoint;
                const gw_endpoint_cfg_t *target = gw_config_endpoint(c, tn, strlen(tn));
                if (!target || target == &c->endpoints[x] || target->n_traffic)
                    gw__cfg_fail(&v, gw__cfg_join(&v, gw__cfg_index(&v, gw__cfg_join(&v, gw__cfg_index(&v, "endpoints", x), "traffic"), t), "endpoint"),
                         "\"%s\" is not another endpoint with upstreams", tn);
            }
        for (size_t x = 0; x < c->n_endpoints && !v.failed; x++)
            for (size_t f = 0; f < c->endpoints[x].n_fallbacks; f++) {
                const char *fn = c->endpoints[x].fallbacks[f];
                if (!gw_config_endpoint(c, fn, strlen(fn)) || strcmp(fn, c->endpoints[x].name) == 0)
                    gw__cfg_fail(&v, gw__cfg_index(&v, gw__cfg_join(&v, gw__cfg_index(&v, "endpoints", x), "fallbacks"), f),
                         "\"%s\" is not another endpoint", fn);
            }
        for (size_t x = 0; x < c->n_endpoints && !v.failed; x++)
            for (size_t y = x + 1; y < c->n_endpoints; y++)
                if (strcmp(c->endpoints[x].name, c->endpoints[y].name) == 0)
                    gw__cfg_fail(&v, gw__cfg_index(&v, "endpoints", y), "duplicate endpoint name \"%s\"",
                         c->endpoints[y].name);
    }

    if (!v.failed)
        check_routing(&v, c, root);
    parse_tables(&v, root, &c->tables);
    gw__cfg_parse_auth(&v, root, c); /* auth, rate_limits_store: config_auth.c, config_limits.c */
    v.failed = v.failed || gw_config_tracing_parse(a, gw_json_get(root, "tracing"), &c->tracing, err, errlen) < 0;
    v.failed = v.failed || gw__config_parse_store(a, root, &c->store, err, errlen) < 0;

    c->retry_budget_ratio = 0.2;
    c->retry_budget_min = 3;
    const gw_json_t *rb = gw__cfg_typed(&v, root, "", "retry_budget", GW_JSON_OBJECT, false);
    if (rb) {
        static const char *const rkeys[] = {"ratio", "min_concurrent", NULL};
        gw__cfg_check_keys(&v, rb, "retry_budget", rkeys);
        c->retry_budget_ratio = gw__cfg_number(&v, rb, "retry_budget", "ratio", 0.2, 0, 1, NULL);
        c->retry_budget_min = gw__cfg_int(&v, rb, "retry_budget", "min_concurrent", 3, 0, 100000);
    }

    c->limits.max_body_bytes = 4u << 20;
    c->limits.max_header_bytes = 16384;
    c->limits.max_connections = 4096;
    c->limits.header_timeout_ms = 30000;
    c->limits.keepalive_timeout_ms = 60000;
    c->limits.sse_keepalive_ms = 15000;
    c->limits.write_timeout_ms = 60000;
    c->limits.max_event_bytes = 1u << 20;
    c->limits.max_output_bytes = 64u << 20;
    c->limits.drain_timeout_ms = 30000;
    const gw_json_t *l = gw__cfg_typed(&v, root, "", "limits", GW_JSON_OBJECT, false);
    if (l) {
        static const char *const lkeys[] = {"max_body_bytes",   "max_header_bytes",     "max_connections",
                                            "header_timeout_ms", "keepalive_timeout_ms", "sse_keepalive_ms", "write_timeout_ms",
                                            "max_event_bytes",  "max_output_bytes", "drain_timeout_ms", NULL};
        gw__cfg_check_keys(&v, l, "limits", lkeys);
        c->limits.max_body_bytes = gw__cfg_size(&v, l, "limits", "max_body_bytes", 4 << 20, 1, 1 << 30);
        c->limits.max_header_bytes = gw__cfg_size(&v, l, "limits", "max_header_bytes", 16384, 256, 1 << 20);
        c->limits.max_connections = gw__cfg_int(&v, l, "limits", "max_connections", 4096, 1, 1000000);
        c->limits.header_timeout_ms = gw__cfg_int(&v, l, "limits", "header_timeout_ms", 30000, 1, 3600000);
        c->limits.keepalive_timeout_ms = gw__cfg_int(&v, l, "limits", "keepalive_timeout_ms", 60000, 1, 3600000);
        c->limits.sse_keepalive_ms = gw__cfg_int(&v, l, "limits", "sse_keepalive_ms", 15000, 1, 3600000);
        c->limits.write_timeout_ms = gw__cfg_int(&v, l, "limits", "write_timeout_ms", 60000, 1, 3600000);
        c->limits.max_event_bytes = gw__cfg_size(&v, l, "limits", "max_event_bytes", 1 << 20, 1024, 1 << 30);
        c->limits.max_output_bytes = gw__cfg_size(&v, l, "limits", "max_output_bytes", 64 << 20, 1024, 1 << 30);
        c->limits.drain_timeout_ms = gw__cfg_int(&v, l, "limits", "drain_timeout_ms", 30000, 1, 3600000);
    }
    if (v.failed)
        goto fail;
    version_hash(json, len, c->version);
    c->loaded_unix = (int64_t)time(NULL);
    return c;
fail:
    gw_arena_free(a);
    return NULL;
}

gw_config_t *gw_config_load(const char *path, char *err, size_t errlen)
{
    /* Runs before the loop starts (and on reload from a signal-driven callback), so plain stdio. */
    gw_buf_t b;
    gw_buf_init(&b);
    int rrc = gw_buf_read_file(&b, path, 0);
    if (rrc == -1) {
        snprintf(err, errlen, "config: cannot open %s", path);
        gw_buf_dispose(&b);
        return NULL;
    }
    bool bad = rrc < 0;
    gw_config_t *c = NULL;
    if (bad)
        snprintf(err, errlen, "config: cannot read %s", path);
    else
        c = gw_config_parse(b.base ? b.base : "", b.len, err, errlen);
    gw_buf_dispose(&b);
    return c;
}

void gw_config_free(gw_config_t *c)
{
    if (c)
        gw_arena_free(c->arena);
}

const gw_endpoint_cfg_t *gw_config_endpoint(const gw_config_t *c, const char *name, size_t name_len)
{
    for (size_t i = 0; i < c->n_endpoints; i++)
        if (strlen(c->endpoints[i].name) == name_len && memcmp(c->endpoints[i].name, name, name_len) == 0)
            return &c->endpoints[i];
    return NULL;
}
