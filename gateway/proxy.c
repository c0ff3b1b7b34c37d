#include "gateway/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gateway/admin.h"
#include "gateway/admit.h"
#include "gateway/call.h"
#include "gateway/dispatch.h"
#include "gateway/log.h"
#include "gateway/trace.h"
#include "gateway/loopstat.h"
#include "gateway/store.h"
#include "tables/row.h"

struct gw_proxy {
    gw_ctx_t ctx;
    tb_row_writer_t *rows; /** the table observer; NULL when tables are off */
    gw_loopstat_t *loopstat;
};

static void on_curl_batch(void *ud)
{
    gw_call_flush_rendered(ud);
}

static void add_observer(gw_ctx_t *ctx, gw_call_observer_cb cb, void *ud)
{
    if (ctx->n_observers < GW_CTX_MAX_OBSERVERS)
        ctx->observers[ctx->n_observers++] = (gw_ctx_observer_t){cb, ud};
}

gw_proxy_t *gw_proxy_new(uv_loop_t *loop, const gw_config_t *cfg, tb_sink_t *sink, gw_rl_shm_t *rl_shm)
{
    gw_proxy_t *p = gw_xcalloc(1, sizeof(*p));
    gw_ctx_t *ctx = &p->ctx;
    ctx->loop = loop;
    ctx->cfg = cfg;
    ctx->sink = sink;
    ctx->budget.ratio = cfg->retry_budget_ratio;
    ctx->budget.min_concurrent = cfg->retry_budget_min;
    ctx->up = gw_upctx_new(loop);
    if (!ctx->up) {
        free(p);
        return NULL;
    }
    gw_upctx_on_batch(ctx->up, on_curl_batch, ctx);
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(ctx->instance, sizeof(ctx->instance), "%s:%ld", host, (long)getpid());
    ctx->pool = gw_pool_new(loop, ctx->up, cfg);
    uv_timer_init(loop, &ctx->kick);
    ctx->kick.data = ctx;
    ctx->scratch = gw_arena_new_sized(8192);
    ctx->metrics = gw_metrics_new();
    gw_admin_register_metrics(ctx);
    p->loopstat = gw_loopstat_new(loop, ctx->metrics);
    gw_admin_touch_endpoints(ctx);
    ctx->admit = gw_admit_new(loop, ctx->metrics, rl_shm);
    gw_admit_configure(ctx->admit, cfg);
    /* Finish observers, in the order they see each call. */
    if (sink) {
        p->rows = tb_row_writer_new(sink);
        add_observer(ctx, tb_row_observe, p->rows);
    }
    add_observer(ctx, gw_admin_observe, ctx);
    add_observer(ctx, gw_admit_observe, ctx->admit);
    if (cfg->tracing.endpoint) {
        ctx->tracer = gw_tracer_new(loop, ctx->up, &cfg->tracing, ctx->metrics, ctx->instance);
        add_observer(ctx, gw_trace_observe, ctx->tracer);
    }
    return p;
}

static void on_proxy_closed(uv_handle_t *h)
{
    free(h->data); /* ctx is p's first member */
}

void gw_proxy_free(gw_proxy_t *p)
{
    if (!p)
        return;
    gw_ctx_t *ctx = &p->ctx;
    if (ctx->active) {
        gw_log(GW_LOG_WARN, NULL, "event=calls_aborted_at_exit active=%zu", ctx->active);
        ctx->n_observers = 0; /* the sink may be closed: these rows cannot be written */
        gw_call_abort_all(ctx);
    }
    gw_pool_retire(ctx->pool);
    for (size_t i = 0; i < ctx->n_retired; i++)
        gw_pool_retire(ctx->retired[i]);
    gw_tracer_free(ctx->tracer); /* its export in flight goes before the transfers' context */
    gw_upctx_free(ctx->up);
    gw_pool_free(ctx->pool);
    for (size_t i = 0; i < ctx->n_retired; i++)
        gw_pool_free(ctx->retired[i]);
    free(ctx->retired);
    tb_row_writer_free(p->rows);
    gw_admit_free(ctx->admit);
    gw_loopstat_close(p->loopstat);
    gw_store_free(ctx->store);
    gw_metrics_free(ctx->metrics);
    gw_arena_free(ctx->scratch);
    uv_close((uv_handle_t *)&ctx->kick, on_proxy_closed); /* p is freed with its last handle */
}

void gw_proxy_handle(gw_req_t *r, void *ud)
{
    gw_call_start(r, &((gw_proxy_t *)ud)->ctx);
}

void gw_proxy_set_config(gw_proxy_t *p, const gw_config_t *cfg)
{
    gw_ctx_t *ctx = &p->ctx;
    ctx->budget.ratio = cfg->retry_budget_ratio;
    ctx->budget.min_concurrent = cfg->retry_budget_min;
    gw_pool_retire(ctx->pool);
    ctx->retired = gw_xrealloc(ctx->retired, sizeof(*ctx->retired) * (ctx->n_retired + 1));
    ctx->retired[ctx->n_retired++] = ctx->pool;
    ctx->cfg = cfg;
    ctx->pool = gw_pool_new(ctx->loop, ctx->up, cfg);
    gw_admin_touch_endpoints(ctx);
    gw_admit_configure(ctx->admit, cfg);
}

static void collect_alog(gw_buf_t *b, void *ud)
{
    const gw_alog_t *l = ud;
    gw_buf_appendf(b,
                   "# TYPE agate_access_log_lines_total counter\nagate_access_log_lines_total %llu\n"
                   "# HELP agate_access_log_dropped_total Access-log lines lost (buffer full or write error).\n"
                   "# TYPE agate_access_log_dropped_total counter\nagate_access_log_dropped_total %llu\n",
                   (unsigned long long)gw_alog_lines(l), (unsigned long long)gw_alog_dropped(l));
}

void gw_proxy_set_access_log(gw_proxy_t *p, gw_alog_t *l)
{
    if (!l)
        return;
    add_observer(&p->ctx, gw_alog_observe, l);
    gw_metrics_collector(p->ctx.metrics, collect_alog, l);
}

int gw_proxy_open_store(gw_proxy_t *p, char *err, size_t errlen)
{
    gw_ctx_t *ctx = &p->ctx;
    if (ctx->cfg->store.backend == GW_STORE_NONE)
        return 0;
    /* The store opened at start-up serves every later config generation: a changed `store` block
     * takes effect at restart (README). */
    ctx->store = gw_store_new(ctx->loop, &ctx->cfg->store, ctx->metrics, err, errlen);
    return ctx->store ? 0 : -1;
}

size_t gw_proxy_active(const gw_proxy_t *p)
{
    return p->ctx.active;
}
