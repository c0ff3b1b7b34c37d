#include "gateway/dispatch.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"
#include "gateway/trace.h"

#define MAX_UPSTREAM_ERROR_BODY (64u << 10) /* §6.3: read at most 64 KiB of a non-2xx body */
#define MAX_ATTEMPTS            16
/* After the answer, the transfer may read its last bytes (the chunked terminator) so the
 * connection is reused; an upstream that never ends its body is cut after this long, so the call
 * (and its table row) never waits on it. */
#define DRAIN_MS 1000

struct gw_dispatch {
    gw_ctx_t *ctx;
    gw_pool_t *pool;
    const gw_config_t *cfg;
    gw_req_t *r;
    gw_arena_t *a;
    const char *request_id;
    const gw_request_t *req;
    const gw_tp_ctx_t *trace;         /** NULL = tracing off */
    bool dbx;
    gw_stream_t *stream;
    const gw_dispatch_owner_t *owner;
    void *ud;
    const gw_endpoint_cfg_t *ep;      /** served entity of the current attempt (split, fallback) */
    const gw_endpoint_cfg_t *primary; /** entity resolve chose; its fallbacks are tried */
    gw_pool_ep_t *pe;
    const ad_vtable_t *ad;
    const ad_vtable_t *pass;          /** passthrough adapter for every attempt, NULL = per endpoint */
    ad_state_t *ast;                  /** adapter state of the current attempt, request arena */
    int replica;                      /** replica index of the current attempt, -1 none */
    uint8_t tried[GW_POOL_MAX_REPLICAS];
    int retries_left;
    size_t next_fallback;
    bool fallback_used, budget_taken;
    uint64_t attempt_ns, attempt_first_byte_ns;
    gw_attempt_t *attempts;           /** request arena, grown on demand (most requests make one) */
    int n_attempts, cap_attempts;
    gw_up_t *up;
    gw_buf_t up_body;                 /** upstream request body; alive while the transfer runs */
    const gw_endpoint_cfg_t *encoded_for; /** up_body arrived encoded for this endpoint (opts.encoded) */
    gw_buf_t up_error;                /** non-2xx upstream body */
    long up_status;
    int up_retry_after;
    char up_peer[64];
    uint64_t dispatch_ns, up_end_ns;
    uv_timer_t timer;                 /** queue, commit, idle, then drain timeout */
    bool timer_open, timer_closing;
    bool client_done;
    bool draining;                    /** answered; the transfer reads its last bytes */
    size_t drained;
    gw_pool_waiter_t wait;            /** on pe's slot queue while waiting */
    bool waiting;
    uint64_t wait_start_ns, queue_ns; /** current wait's start; total time spent waiting (metrics) */
    int queue_waits;                  /** times this request entered the slot queue */
};

static int begin_attempt(gw_dispatch_t *d);
static void end_attempt(gw_dispatch_t *d, gw_lb_outcome_t outcome, const char *outcome_name, const char *error_code);

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void enter(gw_dispatch_t *d)
{
    d->owner->enter(d->ud);
}

/* Last thing a callback does: the owner may free d in here. */
static void leave(gw_dispatch_t *d)
{
    d->owner->leave(d->ud);
}

static void fail_stream(gw_dispatch_t *d, gw_err_kind_t kind, const char *msg)
{
    gw_error_t e = {.kind = kind, .message = msg};
    gw_stream_fail(d->stream, &e);
}

static void unwait(gw_dispatch_t *d)
{
    if (!d->waiting)
        return;
    gw_pool_wait_remove(d->pe, &d->wait);
    d->waiting = false;
    d->queue_ns += uv_hrtime() - d->wait_start_ns;
}

static void on_timer_closed(uv_handle_t *h)
{
    gw_dispatch_t *d = h->data;
    enter(d);
    d->timer_open = false;
    leave(d);
}

static void close_timer(gw_dispatch_t *d)
{
    if (d->timer_closing)
        return;
    d->timer_closing = true;
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

/* ---------------- upstream callbacks ---------------- */

static void on_up_timer(uv_timer_t *t);

static void arm_timer(gw_dispatch_t *d, int ms)
{
    if (!d->client_done)
        uv_timer_start(&d->timer, on_up_timer, (uint64_t)ms, 0);
}

static void on_up_response(void *ud, long status, gw_str_t content_type, int retry_after)
{
    gw_dispatch_t *d = ud;
    d->up_status = status;
    d->up_retry_after = retry_after;
    d->attempt_first_byte_ns = uv_hrtime();
    if (d->up)
        snprintf(d->up_peer, sizeof(d->up_peer), "%s", gw_up_peer(d->up));
    if (status >= 200 && status < 300)
        d->ast = d->ad->start(d->a, d->ctx->scratch, d->ep, &d->cfg->limits, gw_stream_emitter(d->stream),
                              content_type);
}

static int on_up_data(void *ud, const char *data, size_t len)
{
    gw_dispatch_t *d = ud;
    if (d->client_done) {
        /* Draining after the answer: tolerate a little trailing data, no more. */
        d->drained += len;
        return d->draining && d->drained <= MAX_UPSTREAM_ERROR_BODY ? 0 : -1;
    }
    if (d->up_status < 200 || d->up_status >= 300) {
        size_t room = MAX_UPSTREAM_ERROR_BODY - d->up_error.len;
        gw_buf_append(&d->up_error, data, len < room ? len : room);
        return 0;
    }
    if (!d->ast || gw_stream_ended(d->stream))
        return 0; /* bytes after the end ([DONE] then EOF) are drained, keeping the connection */
    /* Client slower than upstream: leave the bytes with curl until the client drains (§8). */
    if (gw_req_write_queue(d->r) > GW_WRITE_HIGH_WATERMARK) {
        gw_log(GW_LOG_DEBUG, d->request_id, "event=upstream_paused queued=%zu", gw_req_write_queue(d->r));
        /* The wait is the client's, not the upstream's: no idle timeout (and no outlier strike
         * against the replica) until the client drains and the transfer resumes (§8). */
        uv_timer_stop(&d->timer);
        return GW_UP_PAUSE;
    }
    enter(d);
    d->ad->feed(d->ast, data, len);
    arm_timer(d, d->ep->idle_timeout_ms);
    d->owner->rendered(d->ud);
    int rc = d->client_done && !d->draining ? -1 : 0;
    leave(d); /* the transfer is still running: d stays */
    return rc;
}

/* What an ended attempt means for the balancer and whether another replica may help
 * (INFERENCE_TABLES.md §7.3 rule 1: connect errors, timeouts before the first byte, 429, 500,
 * 502, 503, 504 are retryable; other 4xx are the request's fault). */
static gw_lb_outcome_t classify(const gw_dispatch_t *d, gw_up_result_t result, bool *retryable)
{
    *retryable = false;
    if (result == GW_UP_E_CONNECT || result == GW_UP_E_RESET) {
        *retryable = true;
        return GW_LB_FAIL_CONNECT;
    }
    if (result == GW_UP_E_TIMEOUT) {
        *retryable = true;
        return GW_LB_FAIL_TIMEOUT;
    }
    if (result == GW_UP_E_ABORTED)
        return GW_LB_OK; /* we stopped it (client gone, bad data handled above): not the replica's fault */
    if (result != GW_UP_OK)
        return GW_LB_FAIL_5XX;
    long st = d->up_status;
    if (st == 429) {
        *retryable = true;
        return GW_LB_OVERLOADED;
    }
    if (st == 500 || st == 502 || st == 503 || st == 504) {
        *retryable = true;
        return GW_LB_FAIL_5XX;
    }
    return st >= 500 ? GW_LB_FAIL_5XX : GW_LB_OK;
}

/* Close the books on the current attempt: balancer feedback, retry budget, attempts column. */
static void end_attempt(gw_dispatch_t *d, gw_lb_outcome_t outcome, const char *outcome_name, const char *error_code)
{
    if (d->replica < 0)
        return;
    uint64_t now = uv_hrtime();
    uint64_t until = d->attempt_first_byte_ns ? d->attempt_first_byte_ns : now;
    gw_lb_t *lb = gw_pool_ep_lb(d->pe);
    gw_lb_end(lb, d->replica, outcome, (until - d->attempt_ns) / 1000000, now / 1000000);
    if (outcome == GW_LB_OVERLOADED) /* honour the upstream's Retry-After when choosing replicas */
        gw_lb_backoff(lb, d->replica, (uint64_t)(d->up_retry_after > 0 ? d->up_retry_after : 0) * 1000,
                      now / 1000000);
    if (gw_pool_n_waiting(d->pe))
        uv_timer_start(&d->ctx->kick, gw_dispatch_on_kick, 0, 0); /* a slot is free: start a waiter */
    if (d->budget_taken) {
        gw_lb_budget_put(&d->ctx->budget);
        d->budget_taken = false;
    }
    if (d->n_attempts > 0) {
        gw_attempt_t *at = &d->attempts[d->n_attempts - 1];
        at->duration_ms = gw_summary_ms(d->attempt_ns, now);
        at->end_ns = now;
        at->status = d->up_status;
        at->outcome = outcome_name;
        at->error_code = error_code;
    }
    d->replica = -1;
}

/* Try elsewhere if nothing reached the client yet: another replica of this endpoint (bounded by
 * retries and the retry budget), then the endpoint's fallbacks in order. Returns true if a new
 * attempt started. */
static bool try_elsewhere(gw_dispatch_t *d)
{
    if (d->client_done || gw_stream_begun(d->stream) || d->n_attempts >= MAX_ATTEMPTS)
        return false;
    if (d->ast) {
        d->ad->dispose(d->ast);
        d->ast = NULL;
    }
    gw_buf_reset(&d->up_error);
    d->up_status = 0;
    if (d->retries_left > 0 && gw_lb_budget_take(&d->ctx->budget)) {
        d->retries_left--;
        d->budget_taken = true;
        if (begin_attempt(d) == 0)
            return true;
        gw_lb_budget_put(&d->ctx->budget);
        d->budget_taken = false;
    }
    while (d->next_fallback < d->primary->n_fallbacks) {
        const char *name = d->primary->fallbacks[d->next_fallback++];
        const gw_endpoint_cfg_t *fb = gw_config_endpoint(d->cfg, name, strlen(name));
        /* A passthrough needs the client's protocol upstream: other fallbacks are skipped. */
        if (!fb || (d->pass && fb->adapter != GW_ADAPTER_CHAT_COMPLETIONS))
            continue;
        d->ep = fb;
        d->pe = gw_pool_ep(d->pool, fb);
        d->retries_left = fb->replica_retries;
        memset(d->tried, 0, sizeof(d->tried));
        d->fallback_used = true;
        gw_metric_add(d->ctx->m.fallbacks, fb->name, 1);
        gw_log(GW_LOG_INFO, d->request_id, "event=fallback endpoint=%s", fb->name);
        if (begin_attempt(d) == 0)
            return true;
    }
    return false;
}

/* The transfer ended: settle the attempt, retry elsewhere if allowed, else end the stream. */
static void on_up_done(void *ud, gw_up_result_t result, const char *detail)
{
    gw_dispatch_t *d = ud;
    d->up = NULL;
    d->up_end_ns = uv_hrtime();
    enter(d);
    bool retryable;
    gw_lb_outcome_t outcome = classify(d, result, &retryable);
    bool http_error = d->up_status && (d->up_status < 200 || d->up_status >= 300) && result == GW_UP_OK;
    gw_error_t e = {0};
    if (http_error) {
        ad_error_from_http(d->a, d->up_status, gw_buf_str(&d->up_error), d->up_retry_after, &e);
        gw_log(GW_LOG_INFO, d->request_id, "event=upstream_http_error status=%ld replica=%s", d->up_status,
               d->up_peer);
    } else if (result != GW_UP_OK && (result != GW_UP_E_ABORTED || !gw_stream_ended(d->stream))) {
        gw_log(GW_LOG_WARN, d->request_id, "event=upstream_error result=%d detail=\"%s\"", (int)result,
               detail ? detail : "");
        e.kind = result == GW_UP_E_CONNECT   ? GW_ERR_UNAVAILABLE
                 : result == GW_UP_E_TIMEOUT ? GW_ERR_TIMEOUT
                 : result == GW_UP_E_RESET   ? GW_ERR_UNAVAILABLE
                                             : GW_ERR_UPSTREAM;
        e.message = result == GW_UP_E_CONNECT   ? "could not connect to the upstream"
                    : result == GW_UP_E_TIMEOUT ? "upstream timed out"
                    : result == GW_UP_E_RESET   ? "upstream connection reset"
                                                : "upstream stream ended prematurely";
    }
    bool failed = e.message != NULL;
    end_attempt(d, outcome, failed ? (retryable ? "retry" : "failed") : "ok", failed ? gw_err_error_code(e.kind) : NULL);
    if (!d->client_done) {
        if (failed && retryable && try_elsewhere(d)) {
            leave(d);
            return;
        }
        if (d->n_attempts > 0 && failed)
            d->attempts[d->n_attempts - 1].outcome = "failed";
        if (http_error) {
            gw_stream_fail(d->stream, &e);
        } else if (result == GW_UP_OK) {
            if (d->ast)
                d->ad->finish(d->ast);
            else
                fail_stream(d, GW_ERR_UPSTREAM, "upstream sent no response");
        } else if (result == GW_UP_E_EOF) {
            /* A body cut short is the upstream's failure, like EOF before finish_reason (§8). */
            if (d->ast)
                d->ad->finish(d->ast);
            if (!gw_stream_ended(d->stream))
                gw_stream_fail(d->stream, &e);
        } else if (failed) {
            gw_stream_fail(d->stream, &e);
        }
        d->owner->flush(d->ud);
    } else {
        close_timer(d); /* a drained transfer: nothing left to time */
    }
    leave(d);
}

/* Commit timeout (no first event) or idle timeout (no bytes) of the running attempt. */
static void on_up_timer(uv_timer_t *t)
{
    gw_dispatch_t *d = t->data;
    if (d->client_done || !d->up)
        return;
    enter(d);
    gw_up_cancel(d->up);
    d->up = NULL;
    d->up_end_ns = uv_hrtime();
    bool before_first_event = !gw_stream_begun(d->stream);
    end_attempt(d, GW_LB_FAIL_TIMEOUT, before_first_event ? "first_token_timeout" : "timeout", "DEADLINE_EXCEEDED");
    /* No first event in time counts as a retryable failure of the attempt (§7.3 rule 4). */
    if (!(before_first_event && try_elsewhere(d))) {
        fail_stream(d, GW_ERR_TIMEOUT,
                    before_first_event ? "upstream did not answer in time"
                                       : "upstream stream stalled past the idle timeout");
        d->owner->flush(d->ud);
    }
    leave(d);
}

/* ---------------- replica choice and the slot queue ---------------- */

/* The replica for d's next attempt: not tried yet, not at its concurrency cap, then the
 * balancer's choice. -1 if there is none. */
static int pick_replica(const gw_dispatch_t *d)
{
    gw_lb_t *lb = d->pe ? gw_pool_ep_lb(d->pe) : NULL;
    if (!lb)
        return -1;
    uint8_t skip[GW_POOL_MAX_REPLICAS];
    memcpy(skip, d->tried, sizeof(skip));
    for (size_t i = 0; i < d->ep->n_upstreams && i < GW_POOL_MAX_REPLICAS; i++)
        if (gw_pool_ep_replica_full(d->pe, i))
            skip[i] = 1;
    return gw_lb_pick(lb, now_ms(), skip);
}

/* Queue timeout: no replica slot freed up in time. */
static void on_wait_timer(uv_timer_t *t)
{
    gw_dispatch_t *d = t->data;
    if (!d->waiting || d->client_done)
        return;
    enter(d);
    unwait(d);
    fail_stream(d, GW_ERR_UNAVAILABLE, "every replica is at its concurrency limit; queue timeout");
    d->owner->flush(d->ud);
    leave(d);
}

static bool wait_for_slot(gw_dispatch_t *d)
{
    if (!d->pe || !gw_pool_ep_lb(d->pe) || !gw_pool_ep_at_capacity(d->pe) || d->ep->queue_timeout_ms == 0 ||
        gw_pool_n_waiting(d->pe) >= d->ep->max_queue)
        return false;
    d->waiting = true;
    d->wait_start_ns = uv_hrtime();
    d->queue_waits++;
    gw_pool_wait_push(d->pe, &d->wait);
    uv_timer_start(&d->timer, on_wait_timer, (uint64_t)d->ep->queue_timeout_ms, 0);
    return true;
}

static gw_dispatch_t *from_waiter(gw_pool_waiter_t *w)
{
    return (gw_dispatch_t *)((char *)w - offsetof(gw_dispatch_t, wait));
}

/* Start the waiters of one pool, oldest first per endpoint, while a slot is free. */
static void kick_pool(gw_pool_t *pool)
{
    for (size_t i = 0; i < gw_pool_size(pool); i++) {
        gw_pool_ep_t *pe = gw_pool_at(pool, i);
        while (gw_pool_wait_head(pe)) {
            gw_dispatch_t *d = from_waiter(gw_pool_wait_head(pe));
            if (pick_replica(d) < 0)
                break; /* still no free slot: the next ended attempt kicks again */
            unwait(d);
            uv_timer_stop(&d->timer);
            enter(d);
            if (begin_attempt(d) < 0 && !try_elsewhere(d)) {
                fail_stream(d, GW_ERR_UNAVAILABLE, "no upstream replica is available");
                d->owner->flush(d->ud);
            }
            bool full = !d->up && !d->client_done;
            leave(d);
            if (full)
                break;
        }
    }
}

void gw_dispatch_on_kick(uv_timer_t *t)
{
    gw_ctx_t *ctx = t->data;
    kick_pool(ctx->pool);
    for (size_t i = 0; i < ctx->n_retired; i++)
        kick_pool(ctx->retired[i]);
}

/* ---------------- attempts ---------------- */

static gw_attempt_t *new_attempt_row(gw_dispatch_t *d)
{
    if (d->n_attempts == d->cap_attempts) {
        int cap = d->cap_attempts ? d->cap_attempts * 2 : 1;
        gw_attempt_t *grown = gw_arena_alloc(d->a, sizeof(*grown) * (size_t)cap);
        if (d->n_attempts)
            memcpy(grown, d->attempts, sizeof(*grown) * (size_t)d->n_attempts);
        d->attempts = grown;
        d->cap_attempts = cap;
    }
    gw_attempt_t *at = &d->attempts[d->n_attempts++];
    memset(at, 0, sizeof(*at));
    return at;
}

/* Start one upstream attempt on a replica of d->ep chosen by the balancer. */
static int begin_attempt(gw_dispatch_t *d)
{
    int idx = pick_replica(d);
    if (idx < 0 || idx >= GW_POOL_MAX_REPLICAS)
        return -1;
    const ad_vtable_t *ad = d->pass ? d->pass : ad_for(d->ep->adapter);
    if (d->ad != ad || d->n_attempts == 0 || d->fallback_used) {
        /* The body depends on the endpoint (model, adapter): encode it for this one. */
        gw_error_t err = {0};
        bool ready = d->encoded_for == d->ep; /* by the same adapter: resolve chose it for ep */
        d->encoded_for = NULL;
        d->ad = ad;
        if (!ready) {
            gw_buf_reset(&d->up_body);
            if (d->ad->encode_request(d->req, d->ep, d->dbx, &d->up_body, &err) < 0)
                return -1;
        }
    }
    const gw_upstream_cfg_t *ucfg = &d->ep->upstreams[idx];
    const char *path = d->ad->path(d->ep);
    size_t ul = strlen(ucfg->url) + strlen(path) + 1;
    char *url = gw_arena_alloc(d->a, ul);
    snprintf(url, ul, "%s%s", ucfg->url, path);
    gw_up_req_t ureq = {
        .url = url,
        .api_key = ucfg->api_key,
        .request_id = d->request_id,
        .accept = "text/event-stream, application/json",
        .body = gw_buf_str(&d->up_body),
        .connect_timeout_ms = d->ep->connect_timeout_ms,
        .total_timeout_ms = d->ep->total_timeout_ms,
    };
    const char *trace_lines[2];
    uint8_t span_id[8];
    ureq.n_headers = gw_trace_attempt(d->trace, d->a, span_id, trace_lines);
    ureq.headers = trace_lines;
    static const gw_up_cb_t cbs = {on_up_response, on_up_data, on_up_done};
    d->attempt_ns = uv_hrtime();
    if (!d->dispatch_ns)
        d->dispatch_ns = d->attempt_ns;
    d->attempt_first_byte_ns = 0;
    d->up_status = 0;
    d->up_peer[0] = '\0';
    d->up = gw_up_start(d->ctx->up, &ureq, &cbs, d);
    if (!d->up)
        return -1;
    d->tried[idx] = 1;
    d->replica = idx;
    gw_lb_begin(gw_pool_ep_lb(d->pe), idx);
    gw_metric_add(d->ctx->m.attempts, d->ep->name, 1);
    if (d->n_attempts > 0 && !d->fallback_used)
        gw_metric_add(d->ctx->m.retries, d->ep->name, 1);
    gw_attempt_t *at = new_attempt_row(d);
    at->entity = d->ep->name;
    snprintf(at->replica, sizeof(at->replica), "%s", ucfg->url);
    at->started_ms = gw_summary_ms(gw_req_start_ns(d->r), d->attempt_ns);
    at->start_ns = d->attempt_ns;
    if (ureq.n_headers)
        memcpy(at->span_id, span_id, sizeof(span_id));
    at->outcome = "ok";
    arm_timer(d, d->ep->first_event_timeout_ms);
    return 0;
}

/* ---------------- lifecycle ---------------- */

gw_dispatch_t *gw_dispatch_new(const gw_dispatch_opts_t *o)
{
    gw_dispatch_t *d = gw_xcalloc(1, sizeof(*d));
    d->ctx = o->ctx;
    d->pool = o->pool;
    d->cfg = o->cfg;
    d->r = o->r;
    d->a = gw_req_arena(o->r);
    d->request_id = o->request_id;
    d->req = o->req;
    d->trace = o->trace;
    d->dbx = o->databricks_route;
    d->stream = o->stream;
    d->owner = o->owner;
    d->ud = o->owner_ud;
    d->ep = d->primary = o->ep;
    d->pe = gw_pool_ep(d->pool, d->ep);
    d->pass = o->passthrough;
    d->ad = d->pass ? d->pass : ad_for(d->ep->adapter);
    if (o->encoded) {
        d->up_body = *o->encoded;
        *o->encoded = (gw_buf_t){0};
        d->encoded_for = d->ep;
    }
    d->replica = -1;
    d->retries_left = d->ep->replica_retries;
    uv_timer_init(d->ctx->loop, &d->timer);
    d->timer.data = d;
    d->timer_open = true;
    return d;
}

void gw_dispatch_free(gw_dispatch_t *d)
{
    if (!d)
        return;
    assert(gw_dispatch_settled(d));
    if (d->ast && d->ad)
        d->ad->dispose(d->ast);
    gw_buf_dispose(&d->up_body);
    gw_buf_dispose(&d->up_error);
    free(d);
}

void gw_dispatch_start(gw_dispatch_t *d)
{
    if (begin_attempt(d) == 0 || wait_for_slot(d))
        return;
    if (!try_elsewhere(d)) {
        fail_stream(d, GW_ERR_UNAVAILABLE, "no upstream replica is available");
        d->owner->flush(d->ud);
    }
}

/* Stop the running transfer without a completion callback and settle its attempt. */
static void cancel_transfer(gw_dispatch_t *d, const char *outcome, const char *error_code)
{
    gw_up_cancel(d->up);
    d->up = NULL;
    if (!d->up_end_ns)
        d->up_end_ns = uv_hrtime();
    end_attempt(d, GW_LB_OK, outcome, error_code);
}

/* The upstream answered completely but never ended its body: stop waiting for it. */
static void on_drain_timer(uv_timer_t *t)
{
    gw_dispatch_t *d = t->data;
    if (!d->up)
        return;
    enter(d);
    gw_log(GW_LOG_DEBUG, d->request_id, "event=upstream_drain_timeout replica=%s", d->up_peer);
    cancel_transfer(d, "ok", NULL);
    close_timer(d);
    leave(d);
}

void gw_dispatch_client_done(gw_dispatch_t *d)
{
    if (d->client_done)
        return;
    d->client_done = true;
    unwait(d);
    if (d->up) {
        gw_finish_status_t st = gw_stream_status(d->stream);
        if (st == GW_FINISH_COMPLETED || st == GW_FINISH_INCOMPLETE) {
            /* Answered at [DONE]: let the transfer read its last bytes (the chunked terminator)
             * so the upstream connection goes back to the pool instead of being torn down. */
            d->draining = true;
            uv_timer_start(&d->timer, on_drain_timer, DRAIN_MS, 0);
            return;
        }
        cancel_transfer(d, "cancelled", "CANCELLED");
    }
    close_timer(d);
}

void gw_dispatch_abort(gw_dispatch_t *d)
{
    if (!d->client_done)
        gw_dispatch_client_done(d);
    if (d->up)
        cancel_transfer(d, "ok", NULL); /* only a draining transfer is left: the answer was complete */
    close_timer(d);
}

void gw_dispatch_client_drained(gw_dispatch_t *d)
{
    if (d->up && gw_up_paused(d->up)) {
        gw_log(GW_LOG_DEBUG, d->request_id, "event=upstream_resumed queued=%zu", gw_req_write_queue(d->r));
        arm_timer(d, d->ep->idle_timeout_ms);
        gw_up_resume(d->up);
    }
}

bool gw_dispatch_settled(const gw_dispatch_t *d)
{
    return !d->up && !d->timer_open;
}

const gw_endpoint_cfg_t *gw_dispatch_served(const gw_dispatch_t *d)
{
    return d->ep;
}

const char *gw_dispatch_adapter(const gw_dispatch_t *d)
{
    return d->ad ? d->ad->name : NULL;
}

const gw_attempt_t *gw_dispatch_attempts(const gw_dispatch_t *d, int *n)
{
    *n = d->n_attempts;
    return d->attempts;
}

bool gw_dispatch_fallback_used(const gw_dispatch_t *d)
{
    return d->fallback_used;
}

const char *gw_dispatch_peer(const gw_dispatch_t *d)
{
    return d->up_peer[0] ? d->up_peer : NULL;
}

uint64_t gw_dispatch_started_ns(const gw_dispatch_t *d)
{
    return d->dispatch_ns;
}

uint64_t gw_dispatch_queue_ns(const gw_dispatch_t *d, int *waits)
{
    *waits = d->queue_waits;
    return d->queue_ns;
}

uint64_t gw_dispatch_ended_ns(const gw_dispatch_t *d)
{
    return d->up_end_ns;
}
