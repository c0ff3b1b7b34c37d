#include "gateway/admit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"
#include "gateway/rl_redis.h"
#include "tables/row.h"


/* What admission charged, kept in the request's arena until the call ends. */
struct gw_rl_ticket {
    gw_rl_plan_t plan;
    gw_rl_verdict_t v;
    bool charged;       /** a store admitted it: its token buckets get the call's tokens at the end */
    bool remote;        /** charged in Redis */
    const char *scope;  /** refusal: rate_limit_scope */
    /* A Redis admission in flight. */
    gw_admit_t *ad;
    const gw_config_t *cfg; /** the call's */
    gw_req_t *r;
    const gw_endpoint_cfg_t *ep;
    gw_rlr_op_t *op;    /** NULL once answered or cancelled */
    gw_admit_cb cb;
    void *ud;
};

struct gw_admit {
    uv_loop_t *loop;
    gw_auth_t *auth;
    gw_rl_shm_t *shm;
    bool own_shm;
    const gw_config_t *cfg; /** last applied */
    gw_metric_t *requests, *tokens, *limited, *store_errors, *debits;
    gw_rlr_t *redis;        /** rate_limits_store.redis; NULL = local buckets */
    uint64_t last_store_log_ms, store_errors_unlogged;
    char **named;           /** requesters with their own series (malloc'd), in order of first call */
    size_t n_named;
};

static void collect_auth(gw_buf_t *b, void *ud)
{
    const gw_admit_t *ad = ud;
    if (!ad->cfg || !ad->cfg->auth.enabled)
        return;
    gw_buf_appendf(b,
                   "# HELP agate_auth_keys API keys in force (keys file).\n# TYPE agate_auth_keys gauge\n"
                   "agate_auth_keys %zu\n"
                   "# TYPE agate_auth_keys_reloads_total counter\nagate_auth_keys_reloads_total %llu\n"
                   "# HELP agate_auth_keys_reload_failures_total Keys-file reads that failed (old keys kept).\n"
                   "# TYPE agate_auth_keys_reload_failures_total counter\nagate_auth_keys_reload_failures_total %llu\n",
                   gw_auth_keys_loaded(ad->auth), (unsigned long long)gw_auth_reloads(ad->auth),
                   (unsigned long long)gw_auth_reload_failures(ad->auth));
}

gw_admit_t *gw_admit_new(uv_loop_t *loop, gw_metrics_t *m, gw_rl_shm_t *shm)
{
    gw_admit_t *ad = gw_xcalloc(1, sizeof(*ad));
    ad->loop = loop;
    ad->auth = gw_auth_new(loop);
    ad->shm = shm;
    if (!shm) {
        ad->shm = gw_rl_shm_new(GW_RL_LOCAL_SLOTS);
        ad->own_shm = true;
    }
    ad->requests = gw_metrics_counter(m, "agate_requester_requests_total",
                                      "Routed requests by requester (auth on; bounded: the first "
                                      "auth.metrics_requesters names, then \"other\").",
                                      "requester");
    ad->tokens = gw_metrics_counter(m, "agate_requester_tokens_total",
                                    "Input + output tokens by requester (as in the usage table).", "requester");
    ad->limited = gw_metrics_counter(m, "agate_rate_limited_total", "Requests refused by a rate limit, by rule key.",
                                     "key");
    ad->store_errors = gw_metrics_counter(m, "agate_ratelimit_store_errors_total",
                                          "Admissions the Redis store could not decide in time (or at all), by "
                                          "the on_error action taken.",
                                          "action");
    ad->debits = gw_metrics_counter(m, "agate_ratelimit_debits_total",
                                    "Token debits at the end of calls, by result: applied (local, or Redis "
                                    "answered), failed, dropped (Redis down).",
                                    "result");
    gw_metrics_collector(m, collect_auth, ad);
    return ad;
}

void gw_admit_configure(gw_admit_t *ad, const gw_config_t *cfg)
{
    ad->cfg = cfg;
    gw_auth_configure(ad->auth, &cfg->auth);
    const gw_rl_store_cfg_t *st = &cfg->rl_store;
    if (!gw_rlr_matches(ad->redis, st->redis_host, st->redis_port, st->deadline_ms)) {
        gw_rlr_free(ad->redis);
        ad->redis = st->redis_host ? gw_rlr_new(ad->loop, st->redis_host, st->redis_port, st->deadline_ms) : NULL;
    }
}

void gw_admit_free(gw_admit_t *ad)
{
    if (!ad)
        return;
    gw_auth_free(ad->auth);
    gw_rlr_free(ad->redis);
    if (ad->own_shm)
        gw_rl_shm_free(ad->shm);
    for (size_t i = 0; i < ad->n_named; i++)
        free(ad->named[i]);
    free(ad->named);
    free(ad);
}

int gw_admit_identify(gw_admit_t *ad, const gw_config_t *cfg, gw_req_t *r, gw_identity_t *who, gw_error_t *err)
{
    return gw_auth_identify(ad->auth, &cfg->auth, r, gw_req_arena(r), who, err);
}

static const char *rule_key_name(const char *scope)
{
    if (strncmp(scope, "group:", 6) == 0)
        return "user_group";
    if (strncmp(scope, "user:", 5) == 0)
        return "user";
    if (strncmp(scope, "service_principal:", 18) == 0)
        return "service_principal";
    return scope; /* endpoint, user_default */
}

/* Turn a verdict into the caller's answer: 0 admitted, or -1 with the 429 in err. */
static int conclude(gw_admit_t *ad, gw_req_t *r, const gw_endpoint_cfg_t *ep, struct gw_rl_ticket *t,
                    gw_error_t *err)
{
    if (t->v.ok)
        return 0;
    const gw_rl_bucket_t *b = &t->plan.b[t->v.refused];
    t->scope = b->scope;
    gw_metric_add(ad->limited, rule_key_name(b->scope), 1);
    size_t n = strlen(b->scope) + strlen(ep->name) + 64;
    char *msg = gw_arena_alloc(gw_req_arena(r), n);
    snprintf(msg, n, "Exceeded %s rate limit for endpoint %s.", b->scope, ep->name);
    int64_t secs = (t->v.retry_ms + 999) / 1000;
    *err = (gw_error_t){.kind = GW_ERR_RATE_LIMIT, .message = msg, .retry_after = secs < 1 ? 1 : (int)secs};
    return -1;
}

/* The Redis store could not decide: on_error "allow" admits (uncharged), "deny" answers 503. A
 * log line at most once a second per worker says how many since the last one. */
static int store_error(gw_admit_t *ad, const gw_config_t *cfg, gw_error_t *err)
{
    bool deny = cfg->rl_store.deny_on_error;
    gw_metric_add(ad->store_errors, deny ? "deny" : "allow", 1);
    ad->store_errors_unlogged++;
    uint64_t now = uv_now(ad->loop);
    if (now - ad->last_store_log_ms >= 1000 || !ad->last_store_log_ms) {
        gw_log(GW_LOG_WARN, NULL, "event=ratelimit_store_unavailable action=%s requests=%llu connected=%d",
               deny ? "deny" : "allow", (unsigned long long)ad->store_errors_unlogged,
               ad->redis && gw_rlr_connected(ad->redis));
        ad->last_store_log_ms = now;
        ad->store_errors_unlogged = 0;
    }
    if (!deny)
        return 0;
    *err = (gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "rate limit store unavailable", .retry_after = 1};
    return -1;
}

static void on_store_verdict(void *ud, bool ok, const gw_rl_verdict_t *v)
{
    struct gw_rl_ticket *t = ud;
    t->op = NULL;
    gw_error_t err = {0};
    int rc;
    if (!ok) {
        rc = store_error(t->ad, t->cfg, &err);
    } else {
        t->v = *v;
        t->charged = t->v.ok;
        rc = conclude(t->ad, t->r, t->ep, t, &err);
    }
    t->cb(t->ud, rc < 0 ? &err : NULL);
}

int gw_admit_endpoint(gw_admit_t *ad, const gw_config_t *cfg, gw_req_t *r, const gw_endpoint_cfg_t *ep,
                      gw_identity_t *who, gw_error_t *err, gw_admit_cb cb, void *ud)
{
    /* §7.2 rule 7: limits count only callers allowed to query the endpoint, so access first. */
    if (cfg->auth.enabled && !gw_auth_may_call(who, ep)) {
        char *msg = gw_arena_alloc(gw_req_arena(r), 400);
        snprintf(msg, 400, "requester '%s' may not query endpoint '%s'", who->requester ? who->requester : "?",
                 ep->name);
        *err = (gw_error_t){.kind = GW_ERR_PERMISSION_DENIED, .message = msg};
        return -1;
    }
    if (!ep->n_rate_limits)
        return 0;
    struct gw_rl_ticket *t = gw_arena_calloc(gw_req_arena(r), sizeof(*t));
    gw_rl_plan(ep, who->requester, who->groups, who->n_groups, &t->plan);
    if (!t->plan.nb)
        return 0;
    who->ticket = t;
    if (ad->redis) {
        t->remote = true;
        t->ad = ad;
        t->cfg = cfg;
        t->r = r;
        t->ep = ep;
        t->cb = cb;
        t->ud = ud;
        t->op = gw_rlr_admit(ad->redis, &t->plan, on_store_verdict, t);
        if (t->op)
            return 1;
        return store_error(ad, cfg, err); /* not connected: no wait */
    }
    gw_rl_shm_admit(ad->shm, &t->plan, &t->v);
    t->charged = t->v.ok;
    return conclude(ad, r, ep, t, err);
}

void gw_admit_cancel(gw_identity_t *who)
{
    if (who->ticket && who->ticket->op) {
        gw_rlr_cancel(who->ticket->op);
        who->ticket->op = NULL;
    }
}

const char *gw_admit_limit_scope(const gw_identity_t *who)
{
    return who->ticket ? who->ticket->scope : NULL;
}

/* Series label for a requester: its own for the first auth.metrics_requesters names seen (a name
 * keeps its series for the process's life, so counters stay monotonic), then "other". */
static const char *requester_label(gw_admit_t *ad, const char *requester, int max)
{
    if (!requester)
        return "anonymous";
    for (size_t i = 0; i < ad->n_named; i++)
        if (strcmp(ad->named[i], requester) == 0)
            return ad->named[i];
    if (ad->n_named >= (size_t)max)
        return "other";
    ad->named = gw_xrealloc(ad->named, sizeof(*ad->named) * (ad->n_named + 1));
    ad->named[ad->n_named] = gw_xstrndup(requester, strlen(requester));
    return ad->named[ad->n_named++];
}

void gw_admit_observe(const gw_call_summary_t *s, void *ud)
{
    gw_admit_t *ad = ud;
    if (!s->loggable)
        return;
    tb_tokens_t tk;
    tb_row_tokens(s, &tk);
    int64_t used = tk.source ? (tk.input > 0 ? tk.input : 0) + (tk.output > 0 ? tk.output : 0) : 0;
    const struct gw_rl_ticket *t = s->rl_ticket;
    if (t && t->charged && used > 0)
        for (int set = 0; set < t->plan.ns; set++) {
            const gw_rl_bucket_t *b = &t->plan.b[t->v.chosen[set]];
            if (!b->tokens)
                continue;
            if (!t->remote) {
                gw_rl_shm_debit(ad->shm, b, used);
                gw_metric_add(ad->debits, "applied", 1);
            } else if (ad->redis)
                gw_rlr_debit(ad->redis, b, used, ad->debits);
            else
                gw_metric_add(ad->debits, "dropped", 1); /* the store was switched off by a reload */
        }
    if (s->cfg->auth.enabled) {
        const char *label = requester_label(ad, s->requester, s->cfg->auth.metrics_requesters);
        gw_metric_add(ad->requests, label, 1);
        if (used > 0)
            gw_metric_add(ad->tokens, label, (uint64_t)used);
    }
}
