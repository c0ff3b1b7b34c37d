#include "gateway/call.h"
#include "gateway/call_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/admin.h"
#include "gateway/admit.h"
#include "gateway/dispatch.h"
#include "gateway/id.h"
#include "gateway/log.h"
#include "gateway/models.h"
#include "gateway/offload.h"
#include "gateway/recall.h"
#include "gateway/resolve.h"
#include "gateway/stored.h"
#include "gateway/stream.h"
#include "gateway/trace.h"


static void maybe_free(gw_call_t *c);

static bool is_dbx(const gw_call_t *c)
{
    return c->route.kind == GW_ROUTE_INVOCATIONS;
}

const gw_endpoint_cfg_t *gw__call_served(const gw_call_t *c)
{
    if (c->d)
        return gw_dispatch_served(c->d);
    return c->res.served ? c->res.served : c->routed;
}

/* ---------------- batched client writes ---------------- */

static void unmark_dirty(gw_call_t *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->ctx->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty_next = c->dirty_prev = NULL;
    c->dirty = false;
}

/* Upstream bytes were rendered: write them once the curl batch is over. */
static void mark_dirty(gw_call_t *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_prev = NULL;
    c->dirty_next = c->ctx->dirty;
    if (c->ctx->dirty)
        c->ctx->dirty->dirty_prev = c;
    c->ctx->dirty = c;
}

/* ---------------- answering the client ---------------- */

static void on_ka_closed(uv_handle_t *h)
{
    gw_call_t *c = h->data;
    c->ka_open = false;
    maybe_free(c);
}

/* The client side is over: stop the upstream (or let it drain), stop timers. The call is freed
 * once nothing refers to it. */
static void complete(gw_call_t *c)
{
    if (c->client_done)
        return;
    c->client_done = true;
    if (c->admit_pending) {
        gw_admit_cancel(&c->who);
        c->admit_pending = false;
    }
    if (c->d)
        gw_dispatch_client_done(c->d);
    uv_close((uv_handle_t *)&c->ka_timer, on_ka_closed);
}

static const char *common_headers(gw_call_t *c, const gw_error_t *e, bool sse)
{
    char tmp[512];
    int n = snprintf(tmp, sizeof(tmp), "x-request-id: %s\r\n", c->request_id);
    const gw_endpoint_cfg_t *ep = gw__call_served(c);
    if (ep)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "served-model-name: %s\r\n", ep->name);
    if (sse)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    /* 429 and 503 always say when to come back (PROTOCOL.md §7.6); 1 s unless told otherwise. */
    int retry = e ? e->retry_after : 0;
    if (e && retry <= 0 && (e->kind == GW_ERR_RATE_LIMIT || e->kind == GW_ERR_UNAVAILABLE))
        retry = 1;
    if (retry > 0)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Retry-After: %d\r\n", retry);
    if (e && e->kind == GW_ERR_UNAUTHENTICATED) /* RFC 9110 §11.6.1: a 401 names its scheme */
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "WWW-Authenticate: Bearer realm=\"agate\"\r\n");
    if (e && e->kind == GW_ERR_METHOD && c->route.allow)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Allow: %s\r\n", c->route.allow);
    return gw_arena_strndup(c->a, tmp, (size_t)n);
}

/* Plain JSON error with the route's status (PROTOCOL.md §5.4). */
static void respond_error(gw_call_t *c, const gw_error_t *e)
{
    gw_buf_reset(&c->error_body);
    gw_err_body(&c->error_body, e);
    c->error_code = gw_err_error_code(e->kind);
    c->error_message = e->message ? gw_arena_strndup(c->a, e->message, strlen(e->message)) : NULL;
    int status = gw_err_status(e->kind, is_dbx(c));
    gw_req_respond(c->r, status, "application/json", common_headers(c, e, false), gw_buf_str(&c->error_body));
    if (status >= 500 || e->kind == GW_ERR_RATE_LIMIT)
        gw_log(GW_LOG_WARN, c->request_id, "event=request_failed status=%d code=%s", status,
               gw_err_code(e->kind));
    complete(c);
}

/* A phase refused the request before any upstream attempt. */
static void reject(gw_call_t *c, const gw_error_t *e)
{
    c->rejected = true;
    respond_error(c, e);
}

static void on_ka_timer(uv_timer_t *t);
static void flush(gw_call_t *c);

static void on_store_written(void *ud, const gw_error_t *err)
{
    gw_call_t *c = ud;
    c->in_cb++;
    c->store_waits--;
    c->store_write = GW_STORE_WRITE_DONE;
    c->stored = err == NULL;
    flush(c);
    c->in_cb--;
    maybe_free(c);
}

/* Read-your-writes (issue 12): the answer's last bytes (terminal event, or the whole JSON) wait
 * until the response is in the store, at most store.write_timeout_ms. True while they wait. */
static bool hold_for_store(gw_call_t *c)
{
    if (c->store_write == GW_STORE_WRITE_NONE && gw_stream_ended(c->stream) && !gw_stream_error(c->stream) &&
        gw_recall_write(c->recall, gw_stream_aggregate(c->stream), gw_req_start_unix_us(c->r) / 1000000,
                        on_store_written, c)) {
        c->store_write = GW_STORE_WRITE_PENDING;
        c->store_waits++;
    }
    return c->store_write == GW_STORE_WRITE_PENDING;
}

/* Render phase hand-off: move rendered bytes to the client; answer or end the response when the
 * stream is over. */
static void flush(gw_call_t *c)
{
    unmark_dirty(c);
    if (c->client_done)
        return;
    gw_stream_t *s = c->stream;
    if (hold_for_store(c))
        return;
    gw_buf_t *out = gw_stream_out(s);
    if (gw_stream_committed(s) && !c->headers_sent) {
        c->headers_sent = true;
        gw_req_stream_start(c->r, 200, "text/event-stream; charset=utf-8", common_headers(c, NULL, true));
    }
    if (c->headers_sent) {
        /* Head, bytes and end in one write when they are ready together. */
        bool wrote = out->len > 0, last = gw_stream_ended(s);
        gw_req_stream_send(c->r, out, last);
        if (last)
            complete(c);
        else if (wrote)
            uv_timer_start(&c->ka_timer, on_ka_timer, (uint64_t)c->cfg->limits.sse_keepalive_ms, 0);
        return;
    }
    if (!gw_stream_ended(s))
        return;
    const gw_error_t *e = gw_stream_error(s);
    if (e) {
        respond_error(c, e);
        return;
    }
    gw_req_respond(c->r, 200, "application/json", common_headers(c, NULL, false), gw_buf_str(out));
    complete(c);
}

static void on_ka_timer(uv_timer_t *t)
{
    gw_call_t *c = t->data;
    if (c->client_done)
        return;
    c->in_cb++;
    gw_stream_keepalive(c->stream);
    flush(c);
    c->in_cb--;
    maybe_free(c);
}

void gw_call_flush_rendered(gw_ctx_t *ctx)
{
    while (ctx->dirty) {
        gw_call_t *c = ctx->dirty;
        c->in_cb++;
        flush(c); /* unmarks c */
        c->in_cb--;
        maybe_free(c);
    }
}

/* ---------------- dispatch's view of its owner ---------------- */

static void owner_enter(void *ud)
{
    ((gw_call_t *)ud)->in_cb++;
}

static void owner_leave(void *ud)
{
    gw_call_t *c = ud;
    c->in_cb--;
    maybe_free(c);
}

static void owner_rendered(void *ud)
{
    mark_dirty(ud);
}

static void owner_flush(void *ud)
{
    flush(ud);
}

static const gw_dispatch_owner_t dispatch_owner = {owner_enter, owner_leave, owner_rendered, owner_flush};

/* ---------------- client events ---------------- */

static void on_req_event(gw_req_t *r, gw_req_event_t ev, void *ud)
{
    (void)r;
    gw_call_t *c = ud;
    c->in_cb++;
    if (ev == GW_REQ_EV_DRAINED) {
        if (c->d)
            gw_dispatch_client_drained(c->d);
    } else if (ev == GW_REQ_EV_CLOSED && !c->client_done) {
        /* Client gone: stop the upstream at once and record what we had (§8). */
        gw_log(GW_LOG_INFO, c->request_id, "event=client_closed");
        if (c->stream)
            gw_stream_cancel(c->stream);
        c->error_code = "CANCELLED";
        c->error_message = "client closed the connection";
        complete(c);
    } else if (ev == GW_REQ_EV_SHUTDOWN && !c->client_done && c->offloading) {
        c->shutdown_seen = true; /* answered when the offloaded work returns */
    } else if (ev == GW_REQ_EV_SHUTDOWN && !c->client_done) {
        /* Drain bound passed: end the answer properly (terminal event, or 503 before commit). */
        gw_log(GW_LOG_INFO, c->request_id, "event=call_ended reason=shutdown");
        gw_error_t e = {.kind = GW_ERR_UNAVAILABLE, .message = "gateway is shutting down"};
        if (c->stream) {
            gw_stream_fail(c->stream, &e);
            flush(c);
        } else {
            reject(c, &e); /* still waiting: rate-limit verdict or store lookup */
        }
    }
    c->in_cb--;
    maybe_free(c);
}

/* Finish phase: once the client side is over and every attempt is settled, every observer sees
 * the call once; then everything the request owned goes. */
static void maybe_free(gw_call_t *c)
{
    if (c->in_cb || c->offloading || !c->client_done || c->ka_open || c->store_waits ||
        (c->d && !gw_dispatch_settled(c->d)))
        return;
    gw_ctx_t *ctx = c->ctx;
    unmark_dirty(c);
    gw_call_summary_t s;
    gw__call_summarize(c, &s);
    for (size_t i = 0; i < ctx->n_observers; i++)
        ctx->observers[i].cb(&s, ctx->observers[i].ud);
    gw_dispatch_free(c->d);
    gw_stream_free(c->stream);
    gw_buf_dispose(&c->error_body);
    gw_buf_dispose(&c->up_body);
    gw_req_release(c->r);
    if (c->live_prev)
        c->live_prev->live_next = c->live_next;
    else
        ctx->live = c->live_next;
    if (c->live_next)
        c->live_next->live_prev = c->live_prev;
    ctx->active--;
    ctx->budget.active = (int)ctx->active;
    free(c);
}

/* ---------------- phases ---------------- */

typedef enum { PHASE_NEXT, PHASE_ANSWERED, PHASE_WAIT } phase_rc_t;

/* route: method + path; framing errors answered in the route's shape; admin routes answered
 * here. Returns false when the call is answered. */
static phase_rc_t phase_route(gw_call_t *c)
{
    gw_req_t *r = c->r;
    gw_route_resolve(gw_req_method(r), gw_req_path(r), &c->route);
    gw_err_kind_t herr = gw_req_error(r);
    if (herr != GW_ERR_NONE) {
        static const char *const msgs[GW_ERR__COUNT] = {
            [GW_ERR_BAD_HTTP] = "malformed HTTP request",
            [GW_ERR_TOO_LARGE] = "request body exceeds the size limit",
            [GW_ERR_HEADERS_TOO_LARGE] = "request header block exceeds the size limit",
            [GW_ERR_REQUEST_TIMEOUT] = "request not received in time",
        };
        /* The path may still be known (body too large): answer in that route's shape. */
        if (is_dbx(c))
            c->routed = gw_config_endpoint(c->cfg, c->route.endpoint.base, c->route.endpoint.len);
        const char *msg = gw_req_cut_short(r) ? "client closed the connection before the request was complete"
                          : msgs[herr]        ? msgs[herr]
                                              : "bad request";
        reject(c, &(gw_error_t){.kind = herr, .message = msg});
        return PHASE_ANSWERED;
    }
    if (c->route.kind == GW_ROUTE_NONE) {
        reject(c, &(gw_error_t){.kind = GW_ERR_NOT_FOUND, .message = "no route for this path"});
        return PHASE_ANSWERED;
    }
    if (!c->route.method_ok) {
        reject(c, &(gw_error_t){.kind = GW_ERR_METHOD, .message = "method not allowed for this path"});
        return PHASE_ANSWERED;
    }
    if (c->route.kind == GW_ROUTE_HEALTHZ || c->route.kind == GW_ROUTE_READYZ || c->route.kind == GW_ROUTE_METRICS) {
        c->admin = true;
        gw_admin_respond(c->ctx, r, c->route.kind);
        complete(c);
        return PHASE_ANSWERED;
    }
    if (c->route.kind == GW_ROUTE_MODELS || c->route.kind == GW_ROUTE_MODEL) {
        c->admin = true; /* no payload, no upstream: not a table row (gateway/models.h) */
        gw_error_t err = {0};
        if (gw_models_respond(c->cfg, r, &c->route, common_headers(c, NULL, false), &err) < 0)
            reject(c, &err);
        else
            complete(c);
        return PHASE_ANSWERED;
    }
    return PHASE_NEXT;
}

/* admit, identity step: who calls (401 here); what they may do needs the endpoint (phase_limit). */
static phase_rc_t phase_admit(gw_call_t *c)
{
    gw_error_t err = {0};
    if (gw_admit_identify(c->ctx->admit, c->cfg, c->r, &c->who, &err) == 0)
        return PHASE_NEXT;
    if (is_dbx(c)) /* the path names the endpoint: charge the row to it */
        c->routed = gw_config_endpoint(c->cfg, c->route.endpoint.base, c->route.endpoint.len);
    reject(c, &err);
    return PHASE_ANSWERED;
}

static void on_work_done(void *ud);

/* Runs a phase's work through gw_offload. True when it went to the pool: the phase returns
 * PHASE_WAIT and runs again, with work_done set, once the work is over. Until then the call
 * listens for the client going away (no stream or dispatch exists yet to tell). */
static bool offload(gw_call_t *c, gw_offload_fn work)
{
    gw_req_set_event_cb(c->r, on_req_event, c);
    c->offloading = gw_offload(c->ctx->loop, gw_req_body_bytes(c->r), work, on_work_done, c);
    c->work_done = !c->offloading;
    if (c->offloading)
        gw_metric_add(c->ctx->m.offloaded, NULL, 1);
    return c->offloading;
}

static void resolve_work(void *ud)
{
    gw_call_t *c = ud;
    c->work_err = (gw_error_t){0};
    c->work_rc = gw_resolve(c->cfg, c->r, &c->route, &c->res, &c->work_err);
}

static phase_rc_t phase_resolve(gw_call_t *c)
{
    if (!c->work_done && offload(c, resolve_work))
        return PHASE_WAIT;
    c->work_done = false;
    c->routed = c->res.routed;
    if (c->work_rc == 0)
        return PHASE_NEXT;
    reject(c, &c->work_err);
    return PHASE_ANSWERED;
}

/* prepare: the served endpoint's upstream body, encoded before dispatch so that a large one is
 * built off the loop. A failure is left to dispatch, which encodes again and reports it there. */
static void prepare_work(void *ud)
{
    gw_call_t *c = ud;
    gw_error_t err = {0};
    c->encoded = c->res.ad->encode_request(&c->res.req, c->res.served, is_dbx(c), &c->up_body, &err) == 0;
}

static phase_rc_t phase_prepare(gw_call_t *c)
{
    if (!c->work_done && offload(c, prepare_work))
        return PHASE_WAIT;
    c->work_done = false;
    return PHASE_NEXT;
}

static void advance(gw_call_t *c);

static void on_admitted(void *ud, const gw_error_t *err)
{
    gw_call_t *c = ud;
    c->admit_pending = false;
    c->in_cb++;
    if (err)
        reject(c, err);
    else if (c->shutdown_seen)
        reject(c, &(gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "gateway is shutting down"});
    else {
        c->phase++; /* past phase_limit */
        advance(c);
    }
    c->in_cb--;
    maybe_free(c);
}

/* admit, endpoint step: access (403) and rate limits (429) of the endpoint resolve found; with
 * the Redis store the verdict may be pending (on_admitted resumes the call). */
static phase_rc_t phase_limit(gw_call_t *c)
{
    gw_error_t err = {0};
    int rc = gw_admit_endpoint(c->ctx->admit, c->cfg, c->r, c->res.routed, &c->who, &err, on_admitted, c);
    if (rc == 0)
        return PHASE_NEXT;
    if (rc < 0) {
        reject(c, &err);
        return PHASE_ANSWERED;
    }
    c->admit_pending = true;
    gw_req_set_event_cb(c->r, on_req_event, c); /* the client may leave while we wait */
    return PHASE_WAIT;
}


/* The owner of stored objects: the admitted requester, "" = the one anonymous owner. */
static const char *owner(const gw_call_t *c)
{
    return c->who.requester;
}

static void on_recalled(void *ud, const gw_error_t *err)
{
    gw_call_t *c = ud;
    c->in_cb++;
    c->store_waits--;
    if (!c->client_done) {
        if (err) {
            reject(c, err);
        } else {
            c->phase++; /* past phase_recall */
            advance(c);
        }
    }
    c->in_cb--;
    maybe_free(c);
}

/* recall: the response store's lookups (previous_response_id, item_reference) may have to wait
 * for the store; the call resumes from on_recalled then. */
static phase_rc_t phase_recall(gw_call_t *c)
{
    if (c->route.kind == GW_ROUTE_CHAT)
        return PHASE_NEXT; /* a ChatCompletions body: nothing the store resolves */
    gw_error_t err = {0};
    gw_store_t *st = c->route.kind == GW_ROUTE_RESPONSES ? c->ctx->store : NULL;
    int rc = gw_recall_resolve(&c->recall, st, c->a, owner(c), c->response_id, &c->res.req, on_recalled, c, &err);
    if (rc < 0) {
        reject(c, &err);
        return PHASE_ANSWERED;
    }
    if (rc == 0)
        return PHASE_NEXT;
    c->store_waits++;
    gw_req_set_event_cb(c->r, on_req_event, c); /* the client may leave while the store looks up */
    return PHASE_WAIT;
}

static void on_stored_answer(void *ud, gw_str_t body, const gw_error_t *err)
{
    gw_call_t *c = ud;
    c->in_cb++;
    c->store_waits--;
    if (!c->client_done) {
        if (err) {
            respond_error(c, err);
        } else {
            gw_req_respond(c->r, 200, "application/json", common_headers(c, NULL, false), body);
            complete(c);
        }
    }
    c->in_cb--;
    maybe_free(c);
}

/* Stored responses' routes (gateway/stored): after admit, since the owner is the requester. Like
 * the model list, not a table row (no payload, no upstream); answered from on_stored_answer. */
static phase_rc_t phase_stored(gw_call_t *c)
{
    if (!gw_stored_route(c->route.kind))
        return PHASE_NEXT;
    c->admin = true;
    gw_error_t err = {0};
    if (gw_stored_respond(c->ctx->store, c->r, &c->route, owner(c), on_stored_answer, c, &err) < 0) {
        reject(c, &err);
        return PHASE_ANSWERED;
    }
    c->store_waits++;
    gw_req_set_event_cb(c->r, on_req_event, c);
    return PHASE_ANSWERED;
}

/* dispatch, with render set up first: the stream is what attempts write into. */
static phase_rc_t phase_dispatch(gw_call_t *c)
{
    const gw_endpoint_cfg_t *ep = c->res.served;
    gw_stream_opts_t so = {
        .front = is_dbx(c) ? GW_FRONT_DATABRICKS : c->route.kind == GW_ROUTE_CHAT ? GW_FRONT_CHAT : GW_FRONT_OPENAI,
        .stream = c->res.req.stream,
        .req = &c->res.req,
        .response_id = c->response_id,
        .request_id = c->request_id,
        .model = c->res.req.model.base ? c->res.req.model : gw_str(ep->name),
        .created_at = gw_req_start_unix_us(c->r) / 1000000,
        .max_output_bytes = c->cfg->limits.max_output_bytes,
    };
    c->stream = gw_stream_new(&so);
    gw_dispatch_opts_t dopts = {
        .ctx = c->ctx,
        .pool = c->pool,
        .cfg = c->cfg,
        .r = c->r,
        .request_id = c->request_id,
        .ep = ep,
        .req = &c->res.req,
        .databricks_route = is_dbx(c),
        .stream = c->stream,
        .passthrough = c->route.kind == GW_ROUTE_CHAT ? c->res.ad : NULL,
        .encoded = c->encoded ? &c->up_body : NULL,
        .owner = &dispatch_owner,
        .owner_ud = c,
        .trace = c->trace.on ? &c->trace : NULL,
    };
    c->d = gw_dispatch_new(&dopts);
    gw_req_set_event_cb(c->r, on_req_event, c);
    gw_dispatch_start(c->d);
    return PHASE_NEXT;
}

/* The phase order, in one place. Each phase passes the call on, answers it, or waits (for its
 * work on the thread pool, or for the rate-limit store); render and finish follow from upstream
 * and client events. */
static phase_rc_t (*const phases[])(gw_call_t *) = {phase_route, phase_admit,   phase_stored,  phase_resolve,
                                                     phase_recall, phase_limit,   phase_prepare, phase_dispatch};
#define N_PHASES (sizeof(phases) / sizeof(phases[0]))

static void advance(gw_call_t *c)
{
    while ((size_t)c->phase < N_PHASES) {
        phase_rc_t rc = phases[c->phase](c);
        if (rc == PHASE_WAIT)
            return;
        c->phase = rc == PHASE_NEXT ? c->phase + 1 : (int)N_PHASES;
    }
}

static void on_work_done(void *ud)
{
    gw_call_t *c = ud;
    c->offloading = false;
    c->work_done = true;
    c->in_cb++;
    if (c->client_done)
        ; /* the client went away meanwhile: the call ends as cancelled */
    else if (c->shutdown_seen)
        reject(c, &(gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "gateway is shutting down"});
    else
        advance(c);
    c->in_cb--;
    maybe_free(c);
}

void gw_call_start(gw_req_t *r, void *ud)
{
    gw_ctx_t *ctx = ud;
    gw_call_t *c = gw_xcalloc(1, sizeof(*c));
    c->ctx = ctx;
    c->r = r;
    c->a = gw_req_arena(r);
    c->cfg = ctx->cfg;
    c->pool = ctx->pool;
    c->live_next = ctx->live;
    if (ctx->live)
        ctx->live->live_prev = c;
    ctx->live = c;
    ctx->active++;
    ctx->budget.active = (int)ctx->active;
    gw_id_uuid7(c->request_id, c->hex, (uint64_t)(gw_req_start_unix_us(r) / 1000));
    /* The response id carries the same 128 bits as the request id (PROTOCOL.md §7.5). */
    snprintf(c->response_id, sizeof(c->response_id), "resp_%s", c->hex);
    if (ctx->tracer)
        gw_trace_begin(ctx->tracer, gw_req_header(r, "traceparent"), gw_req_header(r, "tracestate"), &c->trace);
    uv_timer_init(ctx->loop, &c->ka_timer);
    c->ka_timer.data = c;
    c->ka_open = true;
    c->in_cb++;
    advance(c);
    c->in_cb--;
    maybe_free(c);
}

void gw_call_abort_all(gw_ctx_t *ctx)
{
    for (gw_call_t *c = ctx->live; c; c = c->live_next) {
        c->in_cb++;
        if (!c->client_done && c->stream)
            gw_stream_cancel(c->stream);
        complete(c);
        if (c->d)
            gw_dispatch_abort(c->d);
        c->in_cb--;
    }
    /* Freed from their handles' close callbacks, which run in main's last loop turn. */
}
