#include "gateway/admin.h"

#include "gateway/json.h"

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
    gw_jgen_cstr(j, "endpoints");
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

/* Endpoint and replica labels come from the config: names are [A-Za-z0-9._-], URLs are escaped. */
static void collect_replicas(gw_buf_t *b, void *ud)
{
    gw_ctx_t *ctx = ud;
    gw_buf_append_cstr(b, "# TYPE agate_replica_available gauge\n");
    for (size_t i = 0; i < gw_pool_size(ctx->pool); i++) {
        gw_pool_ep_t *pe = gw_pool_at(ctx->pool, i);
        gw_lb_t *lb = gw_pool_ep_lb(pe);
        const gw_endpoint_cfg_t *ep = gw_pool_ep_cfg(pe);
        for (size_t k = 0; lb && k < gw_lb_size(lb); k++) {
            gw_buf_appendf(b, "agate_replica_available{endpoint=\"%s\",replica=\"", ep->name);
            gw_metrics_label_value(b, ep->upstreams[k].url);
            gw_buf_appendf(b, "\"} %d\n", gw_lb_available(lb, (int)k, now_ms()) ? 1 : 0);
        }
    }
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
                   "# TYPE agate_table_spool_bytes gauge\nagate_table_spool_bytes %llu\n",
                   (unsigned long long)k->rows_written, (unsigned long long)k->rows_dropped,
                   (unsigned long long)k->rows_spooled, (unsigned long long)k->rows_replayed,
                   (unsigned long long)k->rows_rejected, (unsigned long long)k->spool_bytes);
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
}

void gw_admin_touch_endpoints(gw_ctx_t *ctx)
{
    gw_metric_t *const fams[] = {ctx->m.requests, ctx->m.status_2xx, ctx->m.status_4xx, ctx->m.status_5xx,
                                 ctx->m.attempts, ctx->m.retries,    ctx->m.fallbacks};
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++)
        for (size_t i = 0; i < ctx->cfg->n_endpoints; i++)
            gw_metric_touch(fams[f], ctx->cfg->endpoints[i].name);
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
    for (size_t i = 0; i < s->req->n_dropped_tools; i++)
        gw_metric_add(ctx->m.dropped_tools, s->req->dropped_tools[i], 1);
}
