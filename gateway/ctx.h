/* gw_ctx: everything one worker's requests share, passed explicitly (STYLE.md §4): the loop, the
 * config in force, the upstream transfer context, the endpoints' runtime state, the metrics
 * registry, the table sink and the observers that see each finished call. Built and swapped by
 * gateway/proxy; read by the phase modules (call, dispatch, admin). */
#ifndef GW_CTX_H
#define GW_CTX_H

#include <uv.h>

#include "gateway/arena.h"
#include "gateway/balancer.h"
#include "gateway/config.h"
#include "gateway/metrics.h"
#include "gateway/pool.h"
#include "gateway/summary.h"
#include "gateway/upstream.h"
#include "tables/sink.h"

#define GW_CTX_MAX_OBSERVERS 8

struct gw_call;
struct gw_admit;
struct gw_tracer;

typedef struct {
    gw_call_observer_cb cb;
    void *ud;
} gw_ctx_observer_t;

typedef struct gw_ctx {
    uv_loop_t *loop;
    const gw_config_t *cfg; /** in force for new requests; in-flight calls keep theirs */
    tb_sink_t *sink;        /** NULL = tables off */
    struct gw_store *store; /** response store (gateway/store.h), owned by gateway/proxy; NULL = none */
    gw_upctx_t *up;
    gw_pool_t *pool;        /** endpoints of cfg */
    gw_pool_t **retired;    /** pools of older configs: calls in flight may still use them */
    size_t n_retired;
    gw_lb_budget_t budget;  /** retries across every endpoint of this worker */
    uv_timer_t kick;        /** starts waiting requests once a replica slot frees up (gateway/dispatch) */
    gw_arena_t *scratch;    /** adapters' per-event scratch, shared by all transfers (see ad_vtable_t) */
    gw_metrics_t *metrics;
    struct gw_admit *admit; /** identity, access, rate limits (gateway/admit) */
    struct gw_tracer *tracer; /** NULL = tracing off (gateway/trace) */
    struct {
        gw_metric_t *requests, *status_2xx, *status_4xx, *status_5xx, *attempts, *retries, *fallbacks;
        gw_metric_t *input_tokens, *output_tokens, *queue_waits;
        gw_metric_t *duration, *ttft, *tpot, *queue_wait; /** histograms, label "endpoint" */
        gw_metric_t *attempt_duration;                     /** histogram, label "replica" */
        gw_metric_t *errors;                               /** label "error_code" */
        gw_metric_t *dropped_tools;                        /** hosted tools left out, label "tool" */
        gw_metric_t *offloaded;                            /** request steps run on the thread pool */
    } m;                    /** per-endpoint families unless said otherwise (gateway/admin) */
    gw_ctx_observer_t observers[GW_CTX_MAX_OBSERVERS];
    size_t n_observers;
    size_t active;            /** calls in flight */
    struct gw_call *dirty;    /** calls with rendered bytes not yet handed to their client (gateway/call) */
    struct gw_call *live;     /** every call not yet freed (gateway/call), for shutdown */
    char instance[96];        /** host:pid, the table's gateway_instance */
} gw_ctx_t;

#endif
