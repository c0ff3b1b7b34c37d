#include "gateway/admin.h"

#include "gateway/json.h"
#include "gateway/store.h"

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* /readyz: 200 while every endpoint has a usable replica, else 503; per-endpoint counts. */
static void respond_ready(gw_ctx_t *ctx, gw_req_t *r)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_jgen_t *j = gw_jgen_new(&b);
    bool ready = gw_pool_size(ctx->pool) > 0;
    gw_jgen_map_open(j);
    gw_jgen_lit(j, "endpoints");
    gw_jgen_array_open(j);
    for (size_t i = 0; i < gw_pool_size(ctx->pool); i++) {
        gw_pool_ep_t *pe = gw_pool_at(ctx->pool, i);
        gw_lb_t *lb = gw_pool_ep_lb(pe);
        if (!lb)
            continue; /* traffic-split endpoints are ready when their entities are */
        size_t avail = gw_lb_available_count(lb, now_ms());
        ready = ready && avail > 0;
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "name", gw_pool_ep_cfg(pe)->name);
        gw_jgen_kv_int(j, "replicas", (int64_t)gw_lb_size(lb));
        gw_jgen_kv_int(j, "healthy", (int64_t)avail);
        gw_jgen_map_close(j);
    }
    gw_jgen_array_close(j);
    if (ctx->sink) {
        /* A full spool means rows would be lost: not ready, said loudly (INFERENCE_TABLES §6). */
        ready = ready && tb_sink_ready(ctx->sink);
        gw_jgen_kv_cstr(j, "tables", ctx->sink->state);
    }
    if (ctx->store) {
        /* A failing local store (SQLite: this instance's disk) makes the instance not ready. A
         * shared one (PostgreSQL) fails on every instance at once: readiness would take the
         * whole fleet out of its balancer although each instance still answers (unstored), so
         * it is reported here and in agate_store_up, and readiness stays with the replicas. */
        bool shared = gw_store_cfg(ctx->store)->backend == GW_STORE_POSTGRES;
        ready = ready && (shared || gw_store_ready(ctx->store));
        gw_jgen_kv_cstr(j, "store", gw_store_state(ctx->store));
    }
    gw_jgen_kv_cstr(j, "status", ready ? "ready" : "not_ready");
    gw_jgen_map_close(j);
    gw_jgen_free(j);
    gw_req_respond(r, ready ? 200 : 503, "application/json", NULL, gw_buf_str(&b));
    gw_buf_dispose(&b);
}

void gw_admin_respond(gw_ctx_t *ctx, gw_req_t *r, gw_route_kind_t kind)
{
    if (kind == GW_ROUTE_HEALTHZ) {
        gw_req_respond(r, 200, "application/json", NULL, GW_STR_LIT("{\"status\":\"ok\"}"));
    } else if (kind == GW_ROUTE_READYZ) {
        respond_ready(ctx, r);
    } else {
        gw_buf_t b;
        gw_buf_init(&b);
        gw_metrics_render(ctx->metrics, &b);
        gw_req_respond(r, 200, "text/plain; version=0.0.4", NULL, gw_buf_str(&b));
        gw_buf_dispose(&b);
    }
}

static void collect_active(gw_buf_t *b, void *ud)
{
    const gw_ctx_t *ctx = ud;
    gw_buf_appendf(b, "# HELP agate_requests_active Requests in flight.\n# TYPE agate_requests_active gauge\n"
                      "agate_requests_active %zu\n", ctx->active);
}

typedef int (*replica_value_fn)(const gw_lb_t *lb, int k);

/* One gauge or counter line per replica of the endpoints in force (balancer state, read at
 * scrape). Endpoint labels come from the config ([A-Za-z0-9._-]); URLs are escaped. */
static void replica_series(gw_ctx_t *ctx, gw_buf_t *b, const char *name, replica_value_fn value)
{
    for (size_t i = 0; i < gw_pool_size(ctx->pool); i++) {
        gw_pool_ep_t *pe = gw_pool_at(ctx->pool, i);
        gw_lb_t *lb = gw_pool_ep_lb(pe);
        const gw_endpoint_cfg_t *ep = gw_pool_ep_cfg(pe);
        for (size_t k = 0; lb && k < gw_lb_size(lb); k++) {
            gw_buf_appendf(b, "%s{endpoint=\"%s\",replica=\"", name, ep->name);
            gw_metrics_label_value(b, ep->upstreams[k].url);
            gw_buf_appendf(b, "\"} %d\n", value(lb, (int)k));
        }
    }
}

static int replica_available(const gw_lb_t *lb, int k)
{
    return gw_lb_available(lb, k, now_ms()) ? 1 : 0;
}

static void collect_replicas(gw_buf_t *b, void *ud)
{
    gw_buf_append_cstr(b, "# TYPE agate_replica_available gauge\n");
    replica_series(ud, b, "agate_replica_available", replica_available);
}

/* Passive ejections so far, per replica. */
static void collect_ejections(gw_buf_t *b, void *ud)
{
    gw_buf_append_cstr(b, "# HELP agate_replica_ejections_total Passive outlier ejections of a replica.\n"
                          "# TYPE agate_replica_ejections_total counter\n");
    replica_series(ud, b, "agate_replica_ejections_total", gw_lb_ejections);
}

static void collect_tables(gw_buf_t *b, void *ud)
{
    const tb_sink_t *k = ((gw_ctx_t *)ud)->sink;
    if (!k)
        return;
    gw_buf_appendf(b,
                   "# TYPE agate_table_rows_written_total counter\nagate_table_rows_written_total %llu\n"
                   "# TYPE agate_table_rows_dropped_total counter\nagate_table_rows_dropped_total %llu\n"
                   "# TYPE agate_table_rows_spooled_total counter\nagate_table_rows_spooled_total %llu\n"
                   "# TYPE agate_table_rows_replayed_total counter\nagate_table_rows_replayed_total %llu\n"
                   "# TYPE agate_table_rows_rejected_total counter\nagate_table_rows_rejected_total %llu\n"
                   "# TYPE agate_table_spool_bytes gauge\nagate_table_spool_bytes %llu\n"
                   "# HELP agate_table_queue_bytes Row bytes in memory waiting for the sink's writer.\n"
                   "# TYPE agate_table_queue_bytes gauge\nagate_table_queue_bytes %llu\n",
                   (unsigned long long)k->rows_written, (unsigned long long)k->rows_dropped,
                   (unsigned long long)k->rows_spooled, (unsigned long long)k->rows_replayed,
                   (unsigned long long)k->rows_rejected, (unsigned long long)k->spool_bytes,
                   (unsigned long long)k->queue_bytes);
}

/* Bucket upper bounds in seconds (README "Running in production" lists them). */
static const double b_duration[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
static const double b_ttft[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30};
static const double b_tpot[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5};
static const double b_queue[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

#define N_BOUNDS(a) (sizeof(a) / sizeof((a)[0]))

static void register_latency_metrics(gw_ctx_t *ctx)
{
    gw_metrics_t *m = ctx->metrics;
    ctx->m.input_tokens = gw_metrics_counter(m, "agate_input_tokens_total",
                                             "Input tokens reported by the upstream.", "endpoint");
    ctx->m.output_tokens = gw_metrics_counter(m, "agate_output_tokens_total",
                                              "Output tokens reported by the upstream.", "endpoint");
    ctx->m.errors = gw_metrics_counter(m, "agate_errors_total", "Finished requests by error_code.", "error_code");
    ctx->m.offloaded = gw_metrics_counter(m, "agate_offloaded_steps_total",
                                          "Parsing or encoding steps of large requests run off the event loop.", NULL);
    gw_metric_touch(ctx->m.offloaded, NULL);
    ctx->m.queue_waits = gw_metrics_counter(m, "agate_queue_waits_total",
                                            "Requests that waited for a replica slot.", "endpoint");
    ctx->m.duration = gw_metrics_histogram(m, "agate_request_duration_seconds",
                                           "Request arrival to response end.", "endpoint", b_duration,
                                           N_BOUNDS(b_duration));
    ctx->m.ttft = gw_metrics_histogram(m, "agate_time_to_first_token_seconds",
                                       "Request arrival to the first generated token.", "endpoint", b_ttft,
                                       N_BOUNDS(b_ttft));
    ctx->m.tpot = gw_metrics_histogram(m, "agate_time_per_output_token_seconds",
                                       "After the first token: generation time / (output tokens - 1).", "endpoint",
                                       b_tpot, N_BOUNDS(b_tpot));
    ctx->m.queue_wait = gw_metrics_histogram(m, "agate_queue_wait_seconds",
                                             "Time queued for a replica slot (requests that waited).", "endpoint",
                                             b_queue, N_BOUNDS(b_queue));
    ctx->m.attempt_duration = gw_metrics_histogram(m, "agate_upstream_attempt_duration_seconds",
                                                   "One upstream attempt, start to end, by replica URL.", "replica",
                                                   b_duration, N_BOUNDS(b_duration));
}

void gw_admin_register_metrics(gw_ctx_t *ctx)
{
    gw_metrics_t *m = ctx->metrics;
    gw_metrics_collector(m, collect_active, ctx);
    ctx->m.requests = gw_metrics_counter(m, "agate_requests_total", NULL, "endpoint");
    ctx->m.status_2xx = gw_metrics_counter(m, "agate_responses_2xx_total", NULL, "endpoint");
    ctx->m.status_4xx = gw_metrics_counter(m, "agate_responses_4xx_total", NULL, "endpoint");
    ctx->m.status_5xx = gw_metrics_counter(m, "agate_responses_5xx_total", NULL, "endpoint");
    ctx->m.attempts = gw_metrics_counter(m, "agate_upstream_attempts_total", NULL, "endpoint");
    ctx->m.retries = gw_metrics_counter(m, "agate_upstream_retries_total", NULL, "endpoint");
    ctx->m.fallbacks = gw_metrics_counter(m, "agate_fallbacks_total", NULL, "endpoint");
    ctx->m.dropped_tools =
        gw_metrics_counter(m, "agate_dropped_tools_total",
                           "Hosted tools left out of requests to ChatCompletions models", "tool");
    gw_metrics_collector(m, collect_replicas, ctx);
    gw_metrics_collector(m, collect_tables, ctx);
    register_latency_metrics(ctx);
    gw_metrics_collector(m, collect_ejections, ctx);
}

void gw_admin_touch_endpoints(gw_ctx_t *ctx)
{
    gw_metric_t *const fams[] = {ctx->m.requests,      ctx->m.status_2xx, ctx->m.status_4xx,
                                 ctx->m.status_5xx,    ctx->m.attempts,   ctx->m.retries,
                                 ctx->m.fallbacks,     ctx->m.input_tokens, ctx->m.output_tokens,
                                 ctx->m.queue_waits};
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++)
        for (size_t i = 0; i < ctx->cfg->n_endpoints; i++)
            gw_metric_touch(fams[f], ctx->cfg->endpoints[i].name);
}

static double secs(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (double)(to_ns - from_ns) / 1e9 : 0.0;
}

/* Latency, tokens and queueing of one call. Time per output token needs a first token, an upstream
 * end and at least two output tokens: (end - first token) / (output - 1), the first token's own
 * latency being TTFT (the vLLM / OpenTelemetry GenAI definition). */
static void observe_latency(gw_ctx_t *ctx, const gw_call_summary_t *s, const char *ep)
{
    gw_metric_observe(ctx->m.duration, ep, secs(s->start_ns, s->end_ns));
    if (s->first_token_ns)
        gw_metric_observe(ctx->m.ttft, ep, secs(s->start_ns, s->first_token_ns));
    if (s->usage && s->usage->present) {
        gw_metric_add(ctx->m.input_tokens, ep, (uint64_t)(s->usage->input > 0 ? s->usage->input : 0));
        gw_metric_add(ctx->m.output_tokens, ep, (uint64_t)(s->usage->output > 0 ? s->usage->output : 0));
        uint64_t end = s->upstream_end_ns ? s->upstream_end_ns : s->end_ns;
        if (s->first_token_ns && s->usage->output >= 2 && end > s->first_token_ns)
            gw_metric_observe(ctx->m.tpot, ep, secs(s->first_token_ns, end) / (double)(s->usage->output - 1));
    }
    if (s->queue_waits) {
        gw_metric_add(ctx->m.queue_waits, ep, 1);
        gw_metric_observe(ctx->m.queue_wait, ep, (double)s->queue_ns / 1e9);
    }
    for (int i = 0; i < s->n_attempts; i++)
        gw_metric_observe(ctx->m.attempt_duration, s->attempts[i].replica, (double)s->attempts[i].duration_ms / 1e3);
}

/* Charged to the endpoint the client addressed. */
void gw_admin_observe(const gw_call_summary_t *s, void *ud)
{
    gw_ctx_t *ctx = ud;
    if (!s->routed)
        return;
    const char *ep = s->routed->name;
    gw_metric_add(ctx->m.requests, ep, 1);
    if (s->status >= 200 && s->status < 300)
        gw_metric_add(ctx->m.status_2xx, ep, 1);
    else if (s->status >= 400 && s->status < 500)
        gw_metric_add(ctx->m.status_4xx, ep, 1);
    else if (s->status >= 500)
        gw_metric_add(ctx->m.status_5xx, ep, 1);
    if (s->error_code)
        gw_metric_add(ctx->m.errors, s->error_code, 1);
    observe_latency(ctx, s, ep);
    for (size_t i = 0; i < s->req->n_dropped_tools; i++)
        gw_metric_add(ctx->m.dropped_tools, s->req->dropped_tools[i], 1);
}
