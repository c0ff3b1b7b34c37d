#include "gateway/proxy.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "adapters/adapter.h"
#include "gateway/id.h"
#include "gateway/log.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/stream.h"
#include "gateway/upstream.h"
#include "tables/record.h"
#include "tables/redact.h"

#define MAX_UPSTREAM_ERROR_BODY (64u << 10) /* §6.3: read at most 64 KiB of a non-2xx body */

#define MAX_ATTEMPTS 16
#define MAX_REPLICAS 64

struct ep_state;

/* Active health check of one replica: a GET on the replica's origin + path, on a timer. */
struct hc {
    struct ep_state *es;
    int idx;
    uv_timer_t timer;
    gw_up_t *up;
    long status;
    char url[512];
};

/* Balancer and health checks of one endpoint of one config generation. */
struct ep_state {
    gw_proxy_t *p;
    const gw_endpoint_cfg_t *ep;
    gw_lb_t *lb;
    struct hc *checks; /** one per replica when health checks are on */
    int open_timers;
    bool retired;
    struct ep_state *next_retired;
    struct call *wait_head, *wait_tail; /** requests waiting for a replica slot (FIFO) */
    int n_waiting;
    /* Counters for /metrics (reset when a reload builds new states, which Prometheus tolerates). */
    uint64_t requests, status_2xx, status_4xx, status_5xx, attempts, retries, fallbacks;
};

struct gw_proxy {
    uv_loop_t *loop;
    const gw_config_t *cfg;
    tb_sink_t *sink;
    gw_upctx_t *up;
    size_t active;
    struct ep_state **eps; /** per endpoint of cfg */
    size_t n_eps;
    struct ep_state *retired; /** states of older configs: in-flight calls may still use them */
    gw_lb_budget_t budget;
    uv_timer_t kick; /** starts waiting requests once a replica slot frees up, outside any callback */
    gw_arena_t *scratch; /** adapters' per-event scratch, shared by all transfers (see ad_vtable_t) */
    struct call *dirty;  /** calls with rendered bytes not yet handed to their client */
    char instance[96];
    gw_buf_t row; /** scratch for serialising table rows */
};

struct attempt {
    const char *entity; /** endpoint name */
    char replica[64];
    int64_t started_ms, duration_ms;
    long status;
    const char *error_code;
    const char *outcome;
};

/* One client request, from routing to its table row. */
struct call {
    gw_proxy_t *p;
    gw_req_t *r;
    gw_arena_t *a;
    const gw_config_t *cfg;
    gw_route_t route;
    const gw_endpoint_cfg_t *routed; /** endpoint the client addressed */
    const gw_endpoint_cfg_t *ep;     /** served entity of the current attempt (split, fallback) */
    struct ep_state *es;
    const ad_vtable_t *ad;
    ad_state_t *ast;
    int replica;                 /** replica index of the current attempt, -1 none */
    uint8_t tried[MAX_REPLICAS];
    int retries_left;
    size_t next_fallback;
    bool fallback_used, budget_taken;
    const gw_endpoint_cfg_t *primary;
    uint64_t attempt_ns, attempt_first_byte_ns;
    struct attempt *attempts; /** request arena, grown on demand (most requests make one attempt) */
    int n_attempts, cap_attempts;
    gw_request_t req;
    bool req_parsed;
    gw_stream_t *stream;
    gw_up_t *up;
    const char *up_url;
    gw_buf_t up_body;  /** upstream request body; alive while the transfer runs */
    gw_buf_t up_error; /** non-2xx upstream body */
    long up_status;
    int up_retry_after;
    char up_peer[64];
    char request_id[37], hex[33], response_id[40];
    uint64_t dispatch_ns, up_end_ns;
    uv_timer_t up_timer;   /** commit timeout, then idle timeout between upstream bytes */
    uv_timer_t ka_timer;   /** client keepalive comments */
    int open_timers;
    int in_cb;             /** re-entrancy depth; freeing waits for 0 (STYLE.md §3) */
    bool headers_sent, client_done, recorded, released, rejected;
    gw_buf_t error_body;   /** error JSON sent, for the table */
    const char *error_code, *error_message;
    bool sampled_out;
    bool draining;  /** answered; the upstream transfer reads its last bytes */
    bool waiting;   /** queued for a replica slot on es */
    bool dirty;     /** on p->dirty: flushed at the end of the current curl batch */
    struct call *dirty_next, *dirty_prev;
    struct call *wait_next, *wait_prev;
    size_t drained;
};

static void flush(struct call *c);
static void maybe_free(struct call *c);
static void end_attempt(struct call *c, gw_lb_outcome_t outcome, const char *outcome_name, const char *error_code);
static void on_kick(uv_timer_t *t);

/* ---------------- helpers ---------------- */

static bool is_dbx(const struct call *c)
{
    return c->route.kind == GW_ROUTE_INVOCATIONS;
}

static int64_t ms_between(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (int64_t)((to_ns - from_ns) / 1000000) : 0;
}

/* Estimate for streams without upstream usage (INFERENCE_TABLES.md §7.4): (chars + 1) / 4. */
static size_t prompt_chars(const gw_request_t *req)
{
    if (!req->input)
        return 0;
    size_t n = req->instructions ? req->instructions->str.len : 0;
    if (req->input->type == GW_JSON_STRING)
        return n + req->input->str.len;
    gw_buf_t tmp;
    gw_buf_init(&tmp);
    for (const gw_json_t *it = req->input->child; it; it = it->next) {
        gw_buf_reset(&tmp);
        gw_request_content_text(gw_json_get(it, "content"), &tmp);
        gw_request_content_text(gw_json_get(it, "output"), &tmp);
        n += tmp.len + gw_json_get_str(it, "arguments").len;
    }
    gw_buf_dispose(&tmp);
    return n;
}

static void write_record(struct call *c)
{
    gw_proxy_t *p = c->p;
    if (c->recorded || !p->sink)
        return;
    c->recorded = true;
    gw_req_t *r = c->r;
    uint64_t now = uv_hrtime();
    uint64_t start = gw_req_start_ns(r);
    tb_rec_t rec = {0};
    rec.databricks_request_id = c->request_id;
    rec.request_time_us = gw_req_start_unix_us(r);
    rec.client_request_id = c->req.client_request_id;
    if (!rec.client_request_id.base) {
        gw_str_t h = gw_req_header(r, "x-client-request-id");
        if (h.base)
            rec.client_request_id = h;
    }
    int status = gw_req_status_sent(r);
    rec.status_code = status ? status : 499;
    rec.sampling_fraction = c->ep ? c->ep->sampling_rate : 1.0;
    rec.execution_duration_ms = c->dispatch_ns ? ms_between(c->dispatch_ns, c->up_end_ns ? c->up_end_ns : now) : -1;
    rec.request = gw_req_body(r);
    if (!rec.request.base)
        rec.request = GW_STR_LIT("");
    rec.request_bytes = gw_req_body_bytes(r);
    gw_err_kind_t herr = gw_req_error(r);
    rec.request_complete = herr != GW_ERR_TOO_LARGE && herr != GW_ERR_HEADERS_TOO_LARGE &&
                           herr != GW_ERR_REQUEST_TIMEOUT && herr != GW_ERR_BAD_HTTP;
    gw_finish_status_t fs = c->stream ? gw_stream_status(c->stream) : GW_FINISH_NONE;
    gw_str_t agg = c->stream ? gw_stream_aggregate(c->stream) : GW_STR_NULL;
    if (agg.len)
        rec.response = agg;
    else if (c->error_body.len)
        rec.response = gw_buf_str(&c->error_body);
    rec.response_partial = agg.len && (fs == GW_FINISH_FAILED || fs == GW_FINISH_CANCELLED);
    char entity_id[33];
    if (c->ep) {
        const gw_endpoint_cfg_t *routed = c->routed ? c->routed : c->ep;
        tb_rec_entity_id(routed->name, c->ep->name, c->cfg->version, entity_id);
        rec.served_entity_id = entity_id;
        rec.endpoint_name = routed->name;
        rec.served_entity_name = c->ep->name;
        rec.adapter = c->ad ? c->ad->name : NULL;
        gw_str_t um = c->stream ? gw_stream_upstream_model(c->stream) : GW_STR_NULL;
        rec.upstream_model = um.len ? um : gw_str(c->ep->model);
    }
    rec.front_route = gw_route_front_name(c->route.kind);
    rec.upstream_replica = c->up_peer[0] ? c->up_peer : NULL;
    rec.attempt_count = c->n_attempts;
    rec.fallback_used = c->fallback_used;
    gw_buf_t att;
    gw_buf_init(&att);
    gw_jgen_t *j = gw_jgen_new(&att);
    gw_jgen_array_open(j);
    for (int i = 0; i < c->n_attempts; i++) {
        const struct attempt *at = &c->attempts[i];
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "served_entity_name", at->entity);
        gw_jgen_kv_cstr(j, "replica", at->replica);
        gw_jgen_kv_int(j, "started_ms", at->started_ms);
        gw_jgen_kv_int(j, "duration_ms", at->duration_ms);
        gw_jgen_cstr(j, "status_code");
        if (at->status)
            gw_jgen_int(j, at->status);
        else
            gw_jgen_null(j);
        gw_jgen_kv_cstr(j, "error_code", at->error_code);
        gw_jgen_kv_cstr(j, "outcome", at->outcome ? at->outcome : "cancelled");
        gw_jgen_map_close(j);
    }
    gw_jgen_array_close(j);
    gw_jgen_free(j);
    rec.attempts = gw_buf_str(&att);
    rec.gateway_instance = p->instance;
    rec.config_version = c->cfg->version;
    rec.total_duration_ms = ms_between(start, now);
    uint64_t fb = gw_req_first_byte_ns(r);
    rec.time_to_first_byte_ms = fb ? ms_between(start, fb) : -1;
    uint64_t ft = c->stream && c->req.stream ? gw_stream_first_token_ns(c->stream) : 0;
    rec.time_to_first_token_ms = ft ? ms_between(start, ft) : -1;
    rec.queue_ms = c->dispatch_ns ? ms_between(start, c->dispatch_ns) : -1;
    rec.stream = c->req.stream;
    if (c->rejected || !c->dispatch_ns)
        rec.finish_status = status == 0 ? "cancelled" : "rejected";
    else if (fs == GW_FINISH_NONE)
        rec.finish_status = "failed";
    else
        rec.finish_status = gw_finish_status_name(fs);
    rec.error_code = c->error_code;
    rec.error_message = c->error_message;
    const gw_error_t *se = c->stream ? gw_stream_error(c->stream) : NULL;
    if (se && !rec.error_code) {
        rec.error_code = gw_err_error_code(se->kind);
        rec.error_message = se->message;
    }
    const ad_usage_t *u = c->stream ? gw_stream_usage(c->stream) : NULL;
    if (u && u->present) {
        rec.has_tokens = true;
        rec.input_tokens = u->input;
        rec.output_tokens = u->output;
        rec.cached_input_tokens = u->cached;
        rec.reasoning_tokens = u->reasoning;
        rec.token_count_source = "upstream";
    } else if (c->dispatch_ns && c->req_parsed) {
        rec.has_tokens = true;
        rec.input_tokens = (int64_t)(prompt_chars(&c->req) + 1) / 4;
        rec.output_tokens = (int64_t)((c->stream ? gw_stream_output_chars(c->stream) : 0) + 1) / 4;
        rec.token_count_source = "estimated";
    }
    rec.usage_context = c->req.usage_context;
    /* Redaction (issue 3): configured paths never reach a table, in either payload. */
    gw_buf_t red_req, red_resp;
    gw_buf_init(&red_req);
    gw_buf_init(&red_resp);
    const gw_tables_cfg_t *tc = &c->cfg->tables;
    if (tc->n_redact) {
        if (c->req.root && tb_redact_json(c->req.root, tc->redact, tc->n_redact, &red_req)) {
            rec.request = gw_buf_str(&red_req);
            rec.redacted = true;
        }
        gw_json_t *resp;
        if (rec.response.base && gw_json_parse(c->a, rec.response.base, rec.response.len, &resp, NULL) == 0 &&
            tb_redact_json(resp, tc->redact, tc->n_redact, &red_resp)) {
            rec.response = gw_buf_str(&red_resp);
            rec.redacted = true;
        }
    }
    /* Usage table (§7.4): one row for every request, before the sampling decision. */
    tb_sink_write_usage(p->sink, &rec, c->req_parsed ? (int64_t)prompt_chars(&c->req) : -1,
                        c->stream ? (int64_t)gw_stream_output_chars(c->stream) : -1, &p->row);
    /* Sampling (§4): decided at acceptance. With always_log_errors (default), error rows are kept
     * whatever the draw and carry fraction 1: their inclusion probability really is 1. */
    bool error_row = rec.status_code >= 400 || strcmp(rec.finish_status, "completed") != 0;
    bool keep_error = error_row && (!c->ep || c->ep->always_log_errors);
    if (c->sampled_out && !keep_error) {
        gw_buf_dispose(&att);
        gw_buf_dispose(&red_req);
        gw_buf_dispose(&red_resp);
        return;
    }
    if (keep_error)
        rec.sampling_fraction = 1.0;
    tb_limits_t lim = {c->cfg->tables.max_logged_request_bytes, c->cfg->tables.max_logged_response_bytes};
    gw_buf_reset(&p->row);
    tb_rec_serialize(&rec, &lim, &p->row);
    char date[11], table[160];
    tb_rec_date(rec.request_time_us, date);
    snprintf(table, sizeof(table), "%s_payload", c->routed ? c->routed->name : c->ep ? c->ep->name : "unrouted");
    tb_sink_write(p->sink, table, date, gw_buf_str(&p->row));
    gw_buf_dispose(&att);
    gw_buf_dispose(&red_req);
    gw_buf_dispose(&red_resp);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct call *c = h->data;
    c->open_timers--;
    maybe_free(c);
}

static void unwait(struct call *c)
{
    if (!c->waiting)
        return;
    struct ep_state *es = c->es;
    if (c->wait_prev)
        c->wait_prev->wait_next = c->wait_next;
    else
        es->wait_head = c->wait_next;
    if (c->wait_next)
        c->wait_next->wait_prev = c->wait_prev;
    else
        es->wait_tail = c->wait_prev;
    c->wait_next = c->wait_prev = NULL;
    c->waiting = false;
    es->n_waiting--;
}

static void unmark_dirty(struct call *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->p->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty_next = c->dirty_prev = NULL;
    c->dirty = false;
}

/* Upstream bytes were rendered: write them once the curl batch is over (on_curl_batch). */
static void mark_dirty(struct call *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_prev = NULL;
    c->dirty_next = c->p->dirty;
    if (c->p->dirty)
        c->p->dirty->dirty_prev = c;
    c->p->dirty = c;
}

/* The client side is over: record, stop timers. The call is freed once nothing refers to it. */
static void complete(struct call *c)
{
    if (c->client_done)
        return;
    c->client_done = true;
    unwait(c);
    if (c->up) {
        gw_finish_status_t st = c->stream ? gw_stream_status(c->stream) : GW_FINISH_NONE;
        if (st == GW_FINISH_COMPLETED || st == GW_FINISH_INCOMPLETE) {
            /* Answered at [DONE]: let the transfer read its last bytes (the chunked terminator)
             * so the upstream connection goes back to the pool instead of being torn down. */
            c->draining = true;
        } else {
            gw_up_cancel(c->up);
            c->up = NULL;
            if (!c->up_end_ns)
                c->up_end_ns = uv_hrtime();
            end_attempt(c, GW_LB_OK, "cancelled", "CANCELLED");
        }
    }
    uv_close((uv_handle_t *)&c->up_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->ka_timer, on_timer_closed);
}

/* Per-endpoint counters, charged to the endpoint the client addressed. */
static void count_request(struct call *c)
{
    if (!c->routed || c->cfg != c->p->cfg)
        return;
    struct ep_state *es = c->p->eps[c->routed - c->cfg->endpoints];
    int st = gw_req_status_sent(c->r);
    es->requests++;
    if (st >= 200 && st < 300)
        es->status_2xx++;
    else if (st >= 400 && st < 500)
        es->status_4xx++;
    else if (st >= 500)
        es->status_5xx++;
}

static void maybe_free(struct call *c)
{
    if (c->in_cb || !c->client_done || c->open_timers || c->up)
        return;
    gw_proxy_t *p = c->p;
    unmark_dirty(c);
    write_record(c); /* now every attempt is settled */
    count_request(c);
    if (c->ast && c->ad)
        c->ad->dispose(c->ast);
    gw_stream_free(c->stream);
    gw_buf_dispose(&c->up_body);
    gw_buf_dispose(&c->up_error);
    gw_buf_dispose(&c->error_body);
    if (!c->released)
        gw_req_release(c->r);
    p->active--;
    p->budget.active = (int)p->active;
    free(c);
}

static const char *common_headers(struct call *c, const gw_error_t *e, bool sse)
{
    char tmp[512];
    int n = snprintf(tmp, sizeof(tmp), "x-request-id: %s\r\n", c->request_id);
    if (c->ep)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "served-model-name: %s\r\n", c->ep->name);
    if (sse)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    /* 429 and 503 always say when to come back (PROTOCOL.md §7.6); 1 s unless told otherwise. */
    int retry = e ? e->retry_after : 0;
    if (e && retry <= 0 && (e->kind == GW_ERR_RATE_LIMIT || e->kind == GW_ERR_UNAVAILABLE))
        retry = 1;
    if (retry > 0)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Retry-After: %d\r\n", retry);
    if (e && e->kind == GW_ERR_METHOD && c->route.allow)
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "Allow: %s\r\n", c->route.allow);
    return gw_arena_strndup(c->a, tmp, (size_t)n);
}

/* Plain JSON error with the route's status (PROTOCOL.md §5.4). */
static void respond_error(struct call *c, const gw_error_t *e)
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

static void reject(struct call *c, gw_err_kind_t kind, const char *message, const char *param)
{
    gw_error_t e = {.kind = kind, .message = message, .param = param};
    c->rejected = true;
    respond_error(c, &e);
}

/* ---------------- upstream callbacks ---------------- */

static void arm_up_timer(struct call *c, int ms);

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void on_up_response(void *ud, long status, gw_str_t content_type, int retry_after)
{
    struct call *c = ud;
    c->up_status = status;
    c->up_retry_after = retry_after;
    c->attempt_first_byte_ns = uv_hrtime();
    if (c->up)
        snprintf(c->up_peer, sizeof(c->up_peer), "%s", gw_up_peer(c->up));
    if (status >= 200 && status < 300)
        c->ast = c->ad->start(c->a, c->p->scratch, c->ep, &c->cfg->limits, gw_stream_emitter(c->stream),
                              content_type);
}

static int on_up_data(void *ud, const char *data, size_t len)
{
    struct call *c = ud;
    if (c->client_done) {
        /* Draining after the answer: tolerate a little trailing data, no more. */
        c->drained += len;
        return c->draining && c->drained <= MAX_UPSTREAM_ERROR_BODY ? 0 : -1;
    }
    if (c->up_status < 200 || c->up_status >= 300) {
        size_t room = MAX_UPSTREAM_ERROR_BODY - c->up_error.len;
        gw_buf_append(&c->up_error, data, len < room ? len : room);
        return 0;
    }
    if (!c->ast || gw_stream_ended(c->stream))
        return 0; /* bytes after the end ([DONE] then EOF) are drained, keeping the connection */
    /* Client slower than upstream: leave the bytes with curl until the client drains (§8). */
    if (gw_req_write_queue(c->r) > GW_WRITE_HIGH_WATERMARK) {
        gw_log(GW_LOG_DEBUG, c->request_id, "event=upstream_paused queued=%zu", gw_req_write_queue(c->r));
        return GW_UP_PAUSE;
    }
    c->in_cb++;
    c->ad->feed(c->ast, data, len);
    arm_up_timer(c, c->ep->idle_timeout_ms);
    mark_dirty(c);
    c->in_cb--;
    return c->client_done && !c->draining ? -1 : 0;
}

static void fail_stream(struct call *c, gw_err_kind_t kind, const char *msg)
{
    gw_error_t e = {.kind = kind, .message = msg};
    gw_stream_fail(c->stream, &e);
}

static int begin_attempt(struct call *c);
static int pick_replica(const struct call *c);

/* What an ended attempt means for the balancer and whether another replica may help
 * (INFERENCE_TABLES.md §7.3 rule 1: connect errors, timeouts before the first byte, 429, 500,
 * 502, 503, 504 are retryable; other 4xx are the request's fault). */
static gw_lb_outcome_t classify(const struct call *c, gw_up_result_t result, bool *retryable)
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
    long st = c->up_status;
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
static void end_attempt(struct call *c, gw_lb_outcome_t outcome, const char *outcome_name, const char *error_code)
{
    if (c->replica < 0)
        return;
    uint64_t now = uv_hrtime();
    uint64_t until = c->attempt_first_byte_ns ? c->attempt_first_byte_ns : now;
    gw_lb_end(c->es->lb, c->replica, outcome, (until - c->attempt_ns) / 1000000, now / 1000000);
    if (outcome == GW_LB_OVERLOADED) /* honour the upstream's Retry-After when choosing replicas */
        gw_lb_backoff(c->es->lb, c->replica, (uint64_t)(c->up_retry_after > 0 ? c->up_retry_after : 0) * 1000,
                      now / 1000000);
    if (c->es->n_waiting)
        uv_timer_start(&c->p->kick, on_kick, 0, 0); /* a slot is free: start a waiting request */
    if (c->budget_taken) {
        gw_lb_budget_put(&c->p->budget);
        c->budget_taken = false;
    }
    if (c->n_attempts > 0) {
        struct attempt *at = &c->attempts[c->n_attempts - 1];
        at->duration_ms = ms_between(c->attempt_ns, now);
        at->status = c->up_status;
        at->outcome = outcome_name;
        at->error_code = error_code;
    }
    c->replica = -1;
}

/* Try elsewhere if nothing reached the client yet: another replica of this endpoint (bounded by
 * retries and the retry budget), then the endpoint's fallbacks in order. Returns true if a new
 * attempt started. */
static bool try_elsewhere(struct call *c)
{
    if (c->client_done || gw_stream_begun(c->stream) || c->n_attempts >= MAX_ATTEMPTS)
        return false;
    if (c->ast) {
        c->ad->dispose(c->ast);
        c->ast = NULL;
    }
    gw_buf_reset(&c->up_error);
    c->up_status = 0;
    if (c->retries_left > 0 && gw_lb_budget_take(&c->p->budget)) {
        c->retries_left--;
        c->budget_taken = true;
        if (begin_attempt(c) == 0)
            return true;
        gw_lb_budget_put(&c->p->budget);
        c->budget_taken = false;
    }
    while (c->next_fallback < c->primary->n_fallbacks) {
        const char *name = c->primary->fallbacks[c->next_fallback++];
        const gw_endpoint_cfg_t *fb = gw_config_endpoint(c->cfg, name, strlen(name));
        if (!fb)
            continue;
        c->ep = fb;
        c->es = c->p->cfg == c->cfg ? c->p->eps[fb - c->cfg->endpoints] : NULL;
        if (!c->es)
            return false;
        c->retries_left = fb->replica_retries;
        memset(c->tried, 0, sizeof(c->tried));
        c->fallback_used = true;
        c->es->fallbacks++;
        gw_log(GW_LOG_INFO, c->request_id, "event=fallback endpoint=%s", fb->name);
        if (begin_attempt(c) == 0)
            return true;
    }
    return false;
}

static void on_up_done(void *ud, gw_up_result_t result, const char *detail)
{
    struct call *c = ud;
    c->up = NULL;
    c->up_end_ns = uv_hrtime();
    c->in_cb++;
    bool retryable;
    gw_lb_outcome_t outcome = classify(c, result, &retryable);
    bool http_error = c->up_status && (c->up_status < 200 || c->up_status >= 300) && result == GW_UP_OK;
    gw_error_t e = {0};
    if (http_error) {
        ad_error_from_http(c->a, c->up_status, gw_buf_str(&c->up_error), c->up_retry_after, &e);
        gw_log(GW_LOG_INFO, c->request_id, "event=upstream_http_error status=%ld replica=%s", c->up_status,
               c->up_peer);
    } else if (result != GW_UP_OK && (result != GW_UP_E_ABORTED || !gw_stream_ended(c->stream))) {
        gw_log(GW_LOG_WARN, c->request_id, "event=upstream_error result=%d detail=\"%s\"", (int)result,
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
    end_attempt(c, outcome, failed ? (retryable ? "retry" : "failed") : "ok", failed ? gw_err_error_code(e.kind) : NULL);
    if (!c->client_done) {
        if (failed && retryable && try_elsewhere(c)) {
            c->in_cb--;
            return;
        }
        if (c->n_attempts > 0 && failed)
            c->attempts[c->n_attempts - 1].outcome = "failed";
        if (http_error) {
            gw_stream_fail(c->stream, &e);
        } else if (result == GW_UP_OK) {
            if (c->ast)
                c->ad->finish(c->ast);
            else
                fail_stream(c, GW_ERR_UPSTREAM, "upstream sent no response");
        } else if (result == GW_UP_E_EOF) {
            /* A body cut short is the upstream's failure, like EOF before finish_reason (§8). */
            if (c->ast)
                c->ad->finish(c->ast);
            if (!gw_stream_ended(c->stream))
                gw_stream_fail(c->stream, &e);
        } else if (failed) {
            gw_stream_fail(c->stream, &e);
        }
        flush(c);
    }
    c->in_cb--;
    maybe_free(c);
}

static void on_up_timer(uv_timer_t *t)
{
    struct call *c = t->data;
    if (c->client_done || !c->up)
        return;
    c->in_cb++;
    gw_up_cancel(c->up);
    c->up = NULL;
    c->up_end_ns = uv_hrtime();
    bool before_first_event = !gw_stream_begun(c->stream);
    end_attempt(c, GW_LB_FAIL_TIMEOUT, before_first_event ? "first_token_timeout" : "timeout", "DEADLINE_EXCEEDED");
    /* No first event in time counts as a retryable failure of the attempt (§7.3 rule 4). */
    if (!(before_first_event && try_elsewhere(c))) {
        fail_stream(c, GW_ERR_TIMEOUT,
                    before_first_event ? "upstream did not answer in time"
                                       : "upstream stream stalled past the idle timeout");
        flush(c);
    }
    c->in_cb--;
    maybe_free(c);
}

static void arm_up_timer(struct call *c, int ms)
{
    if (!c->client_done)
        uv_timer_start(&c->up_timer, on_up_timer, (uint64_t)ms, 0);
}

/* Queue timeout: no replica slot freed up in time. */
static void on_wait_timer(uv_timer_t *t)
{
    struct call *c = t->data;
    if (!c->waiting || c->client_done)
        return;
    c->in_cb++;
    unwait(c);
    fail_stream(c, GW_ERR_UNAVAILABLE, "every replica is at its concurrency limit; queue timeout");
    flush(c);
    c->in_cb--;
    maybe_free(c);
}

/* Replica i of c's endpoint has reached its max_concurrent. */
static bool replica_full(const struct call *c, size_t i)
{
    int cap = c->ep->upstreams[i].max_concurrent;
    return cap && gw_lb_outstanding(c->es->lb, (int)i) >= cap;
}

/* True if the endpoint has a concurrency cap that some replica has reached. */
static bool at_capacity(const struct call *c)
{
    for (size_t i = 0; i < c->ep->n_upstreams && i < MAX_REPLICAS; i++)
        if (replica_full(c, i))
            return true;
    return false;
}

static bool wait_for_slot(struct call *c)
{
    struct ep_state *es = c->es;
    if (!es || !es->lb || !at_capacity(c) || c->ep->queue_timeout_ms == 0 || es->n_waiting >= c->ep->max_queue)
        return false;
    c->waiting = true;
    c->wait_prev = es->wait_tail;
    if (es->wait_tail)
        es->wait_tail->wait_next = c;
    else
        es->wait_head = c;
    es->wait_tail = c;
    es->n_waiting++;
    uv_timer_start(&c->up_timer, on_wait_timer, (uint64_t)c->ep->queue_timeout_ms, 0);
    return true;
}

/* Start waiting requests, oldest first, while their endpoint has a free slot. */
static void on_kick(uv_timer_t *t)
{
    gw_proxy_t *p = t->data;
    for (size_t i = 0; i < p->n_eps; i++) {
        struct ep_state *es = p->eps[i];
        while (es->wait_head) {
            struct call *c = es->wait_head;
            if (pick_replica(c) < 0)
                break; /* still no free slot: the next ended attempt kicks again */
            unwait(c);
            uv_timer_stop(&c->up_timer);
            c->in_cb++;
            if (begin_attempt(c) < 0) {
                if (!try_elsewhere(c)) {
                    fail_stream(c, GW_ERR_UNAVAILABLE, "no upstream replica is available");
                    flush(c);
                }
            }
            c->in_cb--;
            bool full = !c->up && !c->client_done;
            maybe_free(c);
            if (full)
                break;
        }
    }
}

static void on_ka_timer(uv_timer_t *t)
{
    struct call *c = t->data;
    if (c->client_done)
        return;
    c->in_cb++;
    gw_stream_keepalive(c->stream);
    flush(c);
    c->in_cb--;
    maybe_free(c);
}

/* Move rendered bytes to the client; answer or end the response when the stream is over. */
static void flush(struct call *c)
{
    unmark_dirty(c);
    if (c->client_done)
        return;
    gw_stream_t *s = c->stream;
    gw_buf_t *out = gw_stream_out(s);
    if (gw_stream_committed(s) && !c->headers_sent) {
        c->headers_sent = true;
        gw_req_stream_start(c->r, 200, "text/event-stream; charset=utf-8", common_headers(c, NULL, true));
    }
    if (c->headers_sent) {
        if (out->len) {
            gw_req_stream_write(c->r, out);
            uv_timer_start(&c->ka_timer, on_ka_timer, (uint64_t)c->cfg->limits.sse_keepalive_ms, 0);
        }
        if (gw_stream_ended(s)) {
            gw_req_stream_end(c->r);
            complete(c);
        }
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

/* End of a curl batch: one write per call for everything its upstream produced in the batch. */
static void on_curl_batch(void *ud)
{
    gw_proxy_t *p = ud;
    while (p->dirty) {
        struct call *c = p->dirty;
        c->in_cb++;
        flush(c); /* unmarks c */
        c->in_cb--;
        maybe_free(c);
    }
}

/* ---------------- client events ---------------- */

static void on_req_event(gw_req_t *r, gw_req_event_t ev, void *ud)
{
    (void)r;
    struct call *c = ud;
    c->in_cb++;
    if (ev == GW_REQ_EV_DRAINED) {
        if (c->up && gw_up_paused(c->up)) {
            gw_log(GW_LOG_DEBUG, c->request_id, "event=upstream_resumed queued=%zu", gw_req_write_queue(c->r));
            gw_up_resume(c->up);
        }
    } else if (ev == GW_REQ_EV_CLOSED && !c->client_done) {
        /* Client gone: stop the upstream at once and record what we had (§8). */
        gw_log(GW_LOG_INFO, c->request_id, "event=client_closed");
        if (c->stream)
            gw_stream_cancel(c->stream);
        c->error_code = "CANCELLED";
        c->error_message = "client closed the connection";
        complete(c);
    }
    c->in_cb--;
    maybe_free(c);
}

/* ---------------- dispatch ---------------- */

static bool json_content_type(gw_str_t ct)
{
    /* application/json with optional parameters; charset, if given, must be UTF-8 (§1). */
    if (!gw_str_has_prefix(ct, "application/json"))
        return false;
    gw_str_t rest = gw_str_n(ct.base + 16, ct.len - 16);
    if (rest.len && rest.base[0] != ';' && rest.base[0] != ' ')
        return false;
    for (size_t i = 0; i + 8 <= rest.len; i++)
        if (strncasecmp(rest.base + i, "charset=", 8) == 0) {
            gw_str_t cs = gw_str_n(rest.base + i + 8, rest.len - i - 8);
            if (cs.len && cs.base[0] == '"')
                cs.base++, cs.len--;
            return cs.len >= 5 && (strncasecmp(cs.base, "utf-8", 5) == 0 || strncasecmp(cs.base, "utf8", 4) == 0);
        }
    return true;
}

/* /readyz: 200 while every endpoint has a usable replica, else 503; per-endpoint counts. */
static void respond_ready(struct call *c)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_jgen_t *j = gw_jgen_new(&b);
    bool ready = c->p->n_eps > 0;
    gw_jgen_map_open(j);
    gw_jgen_cstr(j, "endpoints");
    gw_jgen_array_open(j);
    for (size_t i = 0; i < c->p->n_eps; i++) {
        struct ep_state *es = c->p->eps[i];
        if (!es->lb)
            continue; /* traffic-split endpoints are ready when their entities are */
        size_t avail = gw_lb_available_count(es->lb, now_ms());
        ready = ready && avail > 0;
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "name", es->ep->name);
        gw_jgen_kv_int(j, "replicas", (int64_t)gw_lb_size(es->lb));
        gw_jgen_kv_int(j, "healthy", (int64_t)avail);
        gw_jgen_map_close(j);
    }
    gw_jgen_array_close(j);
    if (c->p->sink) {
        /* A full spool means rows would be lost: not ready, said loudly (INFERENCE_TABLES §6). */
        ready = ready && tb_sink_ready(c->p->sink);
        gw_jgen_kv_cstr(j, "tables", c->p->sink->state);
    }
    gw_jgen_kv_cstr(j, "status", ready ? "ready" : "not_ready");
    gw_jgen_map_close(j);
    gw_jgen_free(j);
    gw_req_respond(c->r, ready ? 200 : 503, "application/json", NULL, gw_buf_str(&b));
    gw_buf_dispose(&b);
}

/* Prometheus text exposition (version 0.0.4). Endpoint and replica labels come from the config,
 * whose names are restricted to [A-Za-z0-9._-]; URLs are quoted with escapes. */
static void label_url(gw_buf_t *b, const char *url)
{
    for (const char *p = url; *p; p++) {
        if (*p == '"' || *p == '\\')
            gw_buf_append(b, "\\", 1);
        gw_buf_append(b, p, 1);
    }
}

static void respond_metrics(struct call *c)
{
    gw_proxy_t *p = c->p;
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_appendf(&b, "# HELP agate_requests_active Requests in flight.\n# TYPE agate_requests_active gauge\n"
                       "agate_requests_active %zu\n", p->active);
    static const char *const names[] = {"agate_requests_total", "agate_responses_2xx_total", "agate_responses_4xx_total",
                                        "agate_responses_5xx_total", "agate_upstream_attempts_total",
                                        "agate_upstream_retries_total", "agate_fallbacks_total"};
    for (int k = 0; k < 7; k++) {
        gw_buf_appendf(&b, "# TYPE %s counter\n", names[k]);
        for (size_t i = 0; i < p->n_eps; i++) {
            const struct ep_state *es = p->eps[i];
            const uint64_t v[7] = {es->requests, es->status_2xx, es->status_4xx, es->status_5xx,
                                   es->attempts, es->retries, es->fallbacks};
            gw_buf_appendf(&b, "%s{endpoint=\"%s\"} %llu\n", names[k], es->ep->name, (unsigned long long)v[k]);
        }
    }
    gw_buf_append_cstr(&b, "# TYPE agate_replica_available gauge\n");
    for (size_t i = 0; i < p->n_eps; i++)
        for (size_t r = 0; p->eps[i]->lb && r < gw_lb_size(p->eps[i]->lb); r++) {
            gw_buf_appendf(&b, "agate_replica_available{endpoint=\"%s\",replica=\"", p->eps[i]->ep->name);
            label_url(&b, p->eps[i]->ep->upstreams[r].url);
            gw_buf_appendf(&b, "\"} %d\n", gw_lb_available(p->eps[i]->lb, (int)r, now_ms()) ? 1 : 0);
        }
    if (p->sink) {
        const tb_sink_t *k = p->sink;
        gw_buf_appendf(&b,
                       "# TYPE agate_table_rows_written_total counter\nagate_table_rows_written_total %llu\n"
                       "# TYPE agate_table_rows_dropped_total counter\nagate_table_rows_dropped_total %llu\n"
                       "# TYPE agate_table_rows_spooled_total counter\nagate_table_rows_spooled_total %llu\n"
                       "# TYPE agate_table_rows_replayed_total counter\nagate_table_rows_replayed_total %llu\n"
                       "# TYPE agate_table_rows_rejected_total counter\nagate_table_rows_rejected_total %llu\n"
                       "# TYPE agate_table_spool_bytes gauge\nagate_table_spool_bytes %llu\n",
                       (unsigned long long)k->rows_written, (unsigned long long)k->rows_dropped,
                       (unsigned long long)k->rows_spooled, (unsigned long long)k->rows_replayed,
                       (unsigned long long)k->rows_rejected, (unsigned long long)k->spool_bytes);
    }
    gw_req_respond(c->r, 200, "text/plain; version=0.0.4", NULL, gw_buf_str(&b));
    gw_buf_dispose(&b);
}

static void start(struct call *c)
{
    gw_req_t *r = c->r;
    gw_err_kind_t herr = gw_req_error(r);
    if (herr != GW_ERR_NONE) {
        static const char *const msgs[GW_ERR__COUNT] = {
            [GW_ERR_BAD_HTTP] = "malformed HTTP request",
            [GW_ERR_TOO_LARGE] = "request body exceeds the size limit",
            [GW_ERR_HEADERS_TOO_LARGE] = "request header block exceeds the size limit",
            [GW_ERR_REQUEST_TIMEOUT] = "request not received in time",
        };
        /* The path may still be known (body too large): answer in that route's shape. */
        gw_route_resolve(gw_req_method(r), gw_req_path(r), &c->route);
        if (c->route.kind == GW_ROUTE_INVOCATIONS)
            c->ep = c->routed = gw_config_endpoint(c->cfg, c->route.endpoint.base, c->route.endpoint.len);
        reject(c, herr, msgs[herr] ? msgs[herr] : "bad request", NULL);
        return;
    }
    gw_route_resolve(gw_req_method(r), gw_req_path(r), &c->route);
    if (c->route.kind == GW_ROUTE_NONE) {
        reject(c, GW_ERR_NOT_FOUND, "no route for this path", NULL);
        return;
    }
    if (!c->route.method_ok) {
        reject(c, GW_ERR_METHOD, "method not allowed for this path", NULL);
        return;
    }
    if (c->route.kind == GW_ROUTE_HEALTHZ || c->route.kind == GW_ROUTE_READYZ || c->route.kind == GW_ROUTE_METRICS) {
        c->recorded = true; /* health and metrics routes are never logged (INFERENCE_TABLES.md §1) */
        if (c->route.kind == GW_ROUTE_HEALTHZ)
            gw_req_respond(r, 200, "application/json", NULL, GW_STR_LIT("{\"status\":\"ok\"}"));
        else if (c->route.kind == GW_ROUTE_READYZ)
            respond_ready(c);
        else
            respond_metrics(c);
        complete(c);
        return;
    }
    bool dbx = is_dbx(c);
    if (dbx) {
        c->ep = gw_config_endpoint(c->cfg, c->route.endpoint.base, c->route.endpoint.len);
        if (!c->ep) {
            reject(c, GW_ERR_NOT_FOUND, "no serving endpoint with this name", NULL);
            return;
        }
        c->routed = c->ep;
    }
    if (!json_content_type(gw_req_header(r, "content-type"))) {
        reject(c, GW_ERR_MEDIA_TYPE, "request body must be application/json (UTF-8)", NULL);
        return;
    }
    gw_error_t err = {0};
    if (gw_request_parse(c->a, gw_req_body(r), dbx, &c->req, &err) < 0) {
        /* Charge the rejection to the endpoint it named, when it named one (table, metrics). */
        if (!c->ep && c->req.model.base)
            c->ep = gw_config_endpoint(c->cfg, c->req.model.base, c->req.model.len);
        c->routed = c->ep;
        c->rejected = true;
        respond_error(c, &err);
        return;
    }
    c->req_parsed = true;
    if (!dbx) {
        c->ep = gw_config_endpoint(c->cfg, c->req.model.base, c->req.model.len);
        if (!c->ep) {
            char *m = gw_arena_strndup(c->a, c->req.model.base, c->req.model.len > 200 ? 200 : c->req.model.len);
            size_t n = strlen(m) + 64;
            char *msg = gw_arena_alloc(c->a, n);
            snprintf(msg, n, "model '%s' is not served by this gateway", m);
            reject(c, GW_ERR_NOT_FOUND, msg, "model");
            return;
        }
    }
    c->routed = c->ep;
    if (c->ep->n_traffic) {
        /* Traffic split: each request independently picks its served entity by percentage. */
        uint32_t x;
        gw_id_random(&x, sizeof(x));
        int roll = (int)(x % 100), acc = 0;
        for (size_t i = 0; i < c->ep->n_traffic; i++) {
            acc += c->ep->traffic[i].percentage;
            if (roll < acc) {
                const char *tn = c->ep->traffic[i].endpoint;
                c->ep = gw_config_endpoint(c->cfg, tn, strlen(tn));
                break;
            }
        }
    }
    c->ad = ad_for(c->ep->adapter);
    if (!c->ad) {
        reject(c, GW_ERR_INTERNAL, "endpoint adapter is not available in this build", NULL);
        return;
    }
    if (c->ep->sampling_rate < 1.0) {
        uint32_t x;
        gw_id_random(&x, sizeof(x));
        c->sampled_out = (double)x / 4294967296.0 >= c->ep->sampling_rate;
    }
    gw_stream_opts_t so = {
        .front = dbx ? GW_FRONT_DATABRICKS : GW_FRONT_OPENAI,
        .stream = c->req.stream,
        .req = &c->req,
        .response_id = c->response_id,
        .request_id = c->request_id,
        .model = c->req.model.base ? c->req.model : gw_str(c->ep->name),
        .created_at = gw_req_start_unix_us(r) / 1000000,
    };
    c->stream = gw_stream_new(&so);
    c->primary = c->ep;
    c->es = c->p->cfg == c->cfg ? c->p->eps[c->ep - c->cfg->endpoints] : NULL;
    c->retries_left = c->ep->replica_retries;
    gw_req_set_event_cb(r, on_req_event, c);
    if (!c->es || begin_attempt(c) < 0) {
        if (wait_for_slot(c))
            return;
        if (!try_elsewhere(c)) {
            fail_stream(c, GW_ERR_UNAVAILABLE, "no upstream replica is available");
            flush(c);
        }
    }
}

/* Start one upstream attempt on a replica of c->ep chosen by the balancer. */
/* The replica for c's next attempt: not tried yet, not at its concurrency cap, then the
 * balancer's choice. -1 if there is none. */
static int pick_replica(const struct call *c)
{
    if (!c->es || !c->es->lb)
        return -1;
    uint8_t skip[MAX_REPLICAS];
    memcpy(skip, c->tried, sizeof(skip));
    for (size_t i = 0; i < c->ep->n_upstreams && i < MAX_REPLICAS; i++)
        if (replica_full(c, i))
            skip[i] = 1;
    return gw_lb_pick(c->es->lb, now_ms(), skip);
}

static int begin_attempt(struct call *c)
{
    int idx = pick_replica(c);
    if (idx < 0 || idx >= MAX_REPLICAS)
        return -1;
    const gw_adapter_kind_t kind = c->ep->adapter;
    if (!c->ad || c->ad != ad_for(kind) || c->n_attempts == 0 || c->fallback_used) {
        /* The body depends on the endpoint (model, adapter): encode it for this one. */
        gw_error_t err = {0};
        c->ad = ad_for(kind);
        gw_buf_reset(&c->up_body);
        if (c->ad->encode_request(&c->req, c->ep, is_dbx(c), &c->up_body, &err) < 0)
            return -1;
    }
    const gw_upstream_cfg_t *ucfg = &c->ep->upstreams[idx];
    const char *path = c->ad->path(c->ep);
    size_t ul = strlen(ucfg->url) + strlen(path) + 1;
    char *url = gw_arena_alloc(c->a, ul);
    snprintf(url, ul, "%s%s", ucfg->url, path);
    c->up_url = url;
    gw_up_req_t ureq = {
        .url = url,
        .api_key = ucfg->api_key,
        .request_id = c->request_id,
        .accept = "text/event-stream, application/json",
        .body = gw_buf_str(&c->up_body),
        .connect_timeout_ms = c->ep->connect_timeout_ms,
        .total_timeout_ms = c->ep->total_timeout_ms,
    };
    static const gw_up_cb_t cbs = {on_up_response, on_up_data, on_up_done};
    c->attempt_ns = uv_hrtime();
    if (!c->dispatch_ns)
        c->dispatch_ns = c->attempt_ns;
    c->attempt_first_byte_ns = 0;
    c->up_status = 0;
    c->up_peer[0] = '\0';
    c->up = gw_up_start(c->p->up, &ureq, &cbs, c);
    if (!c->up)
        return -1;
    c->tried[idx] = 1;
    c->replica = idx;
    gw_lb_begin(c->es->lb, idx);
    c->es->attempts++;
    if (c->n_attempts > 0 && !c->fallback_used)
        c->es->retries++;
    if (c->n_attempts == c->cap_attempts) {
        int cap = c->cap_attempts ? c->cap_attempts * 2 : 1;
        struct attempt *grown = gw_arena_alloc(c->a, sizeof(*grown) * (size_t)cap);
        if (c->n_attempts)
            memcpy(grown, c->attempts, sizeof(*grown) * (size_t)c->n_attempts);
        c->attempts = grown;
        c->cap_attempts = cap;
    }
    struct attempt *at = &c->attempts[c->n_attempts++];
    memset(at, 0, sizeof(*at));
    at->entity = c->ep->name;
    snprintf(at->replica, sizeof(at->replica), "%s", ucfg->url);
    at->started_ms = ms_between(gw_req_start_ns(c->r), c->attempt_ns);
    at->outcome = "ok";
    arm_up_timer(c, c->ep->first_event_timeout_ms);
    return 0;
}

void gw_proxy_handle(gw_req_t *r, void *ud)
{
    gw_proxy_t *p = ud;
    struct call *c = gw_xcalloc(1, sizeof(*c));
    c->p = p;
    c->r = r;
    c->a = gw_req_arena(r);
    c->cfg = p->cfg;
    c->replica = -1;
    p->active++;
    p->budget.active = (int)p->active;
    gw_id_uuid7(c->request_id, c->hex, (uint64_t)(gw_req_start_unix_us(r) / 1000));
    /* The response id carries the same 128 bits as the request id (PROTOCOL.md §7.5). */
    snprintf(c->response_id, sizeof(c->response_id), "resp_%s", c->hex);
    uv_timer_init(p->loop, &c->up_timer);
    uv_timer_init(p->loop, &c->ka_timer);
    c->up_timer.data = c->ka_timer.data = c;
    c->open_timers = 2;
    c->in_cb++;
    start(c);
    c->in_cb--;
    maybe_free(c);
}

/* ---------------- proxy ---------------- */

/* ---------------- active health checks ---------------- */

static void hc_schedule(struct hc *h, int ms);

static void hc_on_response(void *ud, long status, gw_str_t ct, int retry_after)
{
    (void)ct;
    (void)retry_after;
    ((struct hc *)ud)->status = status;
}

static int hc_on_data(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    return 0;
}

static void hc_on_done(void *ud, gw_up_result_t result, const char *detail)
{
    (void)detail;
    struct hc *h = ud;
    h->up = NULL;
    bool ok = result == GW_UP_OK && h->status >= 200 && h->status < 300;
    bool was = gw_lb_available(h->es->lb, h->idx, now_ms());
    gw_lb_health(h->es->lb, h->idx, ok, now_ms());
    bool is = gw_lb_available(h->es->lb, h->idx, now_ms());
    if (was != is)
        gw_log(GW_LOG_WARN, NULL, "event=replica_health endpoint=%s replica=%s available=%d", h->es->ep->name,
               h->es->ep->upstreams[h->idx].url, is);
    if (!h->es->retired)
        hc_schedule(h, h->es->ep->health_interval_ms);
}

static void hc_on_timer(uv_timer_t *t)
{
    struct hc *h = t->data;
    if (h->up || h->es->retired)
        return;
    static const gw_up_cb_t cbs = {hc_on_response, hc_on_data, hc_on_done};
    gw_up_req_t req = {
        .url = h->url,
        .accept = "*/*",
        .body = GW_STR_NULL,
        .connect_timeout_ms = h->es->ep->health_timeout_ms,
        .total_timeout_ms = h->es->ep->health_timeout_ms,
    };
    h->status = 0;
    h->up = gw_up_start(h->es->p->up, &req, &cbs, h);
    if (!h->up)
        hc_schedule(h, h->es->ep->health_interval_ms);
}

static void hc_schedule(struct hc *h, int ms)
{
    uv_timer_start(&h->timer, hc_on_timer, (uint64_t)ms, 0);
}

/* Origin of a base URL ("http://host:port/v1" -> "http://host:port"): health paths are absolute. */
static size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? (size_t)(p - url) : strlen(url);
}

static void es_timer_closed(uv_handle_t *h)
{
    struct ep_state *es = ((struct hc *)h->data)->es;
    if (--es->open_timers == 0) {
        free(es->checks);
        gw_lb_free(es->lb);
        free(es);
    }
}

static struct ep_state *es_new(gw_proxy_t *p, const gw_endpoint_cfg_t *ep)
{
    struct ep_state *es = gw_xcalloc(1, sizeof(*es));
    es->p = p;
    es->ep = ep;
    int weights[MAX_REPLICAS];
    size_t n = ep->n_upstreams < MAX_REPLICAS ? ep->n_upstreams : MAX_REPLICAS;
    for (size_t i = 0; i < n; i++)
        weights[i] = ep->upstreams[i].weight;
    uint64_t seed;
    gw_id_random(&seed, sizeof(seed));
    es->lb = n ? gw_lb_new(&ep->lb, weights, n, seed) : NULL; /* a traffic-split endpoint has none */
    if (es->lb && ep->health_path) {
        es->checks = gw_xcalloc(n, sizeof(*es->checks));
        for (size_t i = 0; i < n; i++) {
            struct hc *h = &es->checks[i];
            h->es = es;
            h->idx = (int)i;
            snprintf(h->url, sizeof(h->url), "%.*s%s", (int)origin_len(ep->upstreams[i].url), ep->upstreams[i].url,
                     ep->health_path);
            uv_timer_init(p->loop, &h->timer);
            h->timer.data = h;
            es->open_timers++;
            hc_schedule(h, 0);
        }
    }
    return es;
}

/* Stop health checks; the state itself lives until the proxy goes (calls may still use it). */
static void es_retire(struct ep_state *es)
{
    es->retired = true;
    for (size_t i = 0; es->checks && es->lb && i < gw_lb_size(es->lb); i++) {
        uv_timer_stop(&es->checks[i].timer);
        if (es->checks[i].up) {
            gw_up_cancel(es->checks[i].up);
            es->checks[i].up = NULL;
        }
    }
}

static void es_free(struct ep_state *es)
{
    es_retire(es);
    if (!es->open_timers) {
        gw_lb_free(es->lb);
        free(es);
        return;
    }
    size_t n = es->open_timers;
    for (size_t i = 0; i < n; i++)
        uv_close((uv_handle_t *)&es->checks[i].timer, es_timer_closed);
}

static void build_eps(gw_proxy_t *p)
{
    p->n_eps = p->cfg->n_endpoints;
    p->eps = gw_xcalloc(p->n_eps ? p->n_eps : 1, sizeof(*p->eps));
    for (size_t i = 0; i < p->n_eps; i++)
        p->eps[i] = es_new(p, &p->cfg->endpoints[i]);
}

gw_proxy_t *gw_proxy_new(uv_loop_t *loop, const gw_config_t *cfg, tb_sink_t *sink)
{
    gw_proxy_t *p = gw_xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->cfg = cfg;
    p->sink = sink;
    p->budget.ratio = cfg->retry_budget_ratio;
    p->budget.min_concurrent = cfg->retry_budget_min;
    p->up = gw_upctx_new(loop);
    if (!p->up) {
        free(p);
        return NULL;
    }
    gw_upctx_on_batch(p->up, on_curl_batch, p);
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(p->instance, sizeof(p->instance), "%s:%ld", host, (long)getpid());
    build_eps(p);
    uv_timer_init(loop, &p->kick);
    p->kick.data = p;
    p->scratch = gw_arena_new_sized(8192);
    return p;
}

static void on_proxy_closed(uv_handle_t *h)
{
    free(h->data);
}

void gw_proxy_free(gw_proxy_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_eps; i++)
        es_retire(p->eps[i]);
    for (struct ep_state *es = p->retired; es; es = es->next_retired)
        es_retire(es);
    gw_upctx_free(p->up);
    for (size_t i = 0; i < p->n_eps; i++)
        es_free(p->eps[i]);
    while (p->retired) {
        struct ep_state *es = p->retired;
        p->retired = es->next_retired;
        es_free(es);
    }
    free(p->eps);
    gw_buf_dispose(&p->row);
    gw_arena_free(p->scratch);
    uv_close((uv_handle_t *)&p->kick, on_proxy_closed); /* p is freed with its last handle */
}

void gw_proxy_set_config(gw_proxy_t *p, const gw_config_t *cfg)
{
    p->budget.ratio = cfg->retry_budget_ratio;
    p->budget.min_concurrent = cfg->retry_budget_min;
    for (size_t i = 0; i < p->n_eps; i++) {
        es_retire(p->eps[i]);
        p->eps[i]->next_retired = p->retired;
        p->retired = p->eps[i];
    }
    free(p->eps);
    p->cfg = cfg;
    build_eps(p);
}

size_t gw_proxy_active(const gw_proxy_t *p)
{
    return p->active;
}
