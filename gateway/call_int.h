/* Private to gateway/call*.c: one request's state through the phases (gateway/call.h). */
#ifndef GW_CALL_INT_H
#define GW_CALL_INT_H

#include "gateway/call.h"
#include "gateway/admit.h"
#include "gateway/arena.h"
#include "gateway/dispatch.h"
#include "gateway/recall.h"
#include "gateway/resolve.h"
#include "gateway/router.h"
#include "gateway/stream.h"
#include "gateway/summary.h"
#include "gateway/trace.h"

struct gw_call {
    gw_ctx_t *ctx;
    gw_req_t *r;
    gw_arena_t *a;
    const gw_config_t *cfg; /** the config in force when the request arrived */
    gw_pool_t *pool;        /** its endpoints' runtime state */
    gw_route_t route;
    gw_identity_t who;
    gw_tp_ctx_t trace; /** W3C trace context; .on false when tracing is off */
    gw_resolved_t res;
    int phase;          /** index into phases[]: the one running or to run next */
    bool offloading;    /** a phase's work is on the thread pool (gateway/offload.h) */
    bool work_done;     /** ... and has finished: the phase collects its result */
    bool shutdown_seen; /** the drain bound passed while offloading */
    int work_rc;
    gw_error_t work_err;
    gw_buf_t up_body; /** upstream body encoded by the prepare phase, moved to dispatch */
    bool encoded;
    gw_recall_t *recall; /** response-store part of the call; NULL without a store */
    int store_waits;     /** store operations whose callback is still due: freeing waits */
    enum { GW_STORE_WRITE_NONE = 0, GW_STORE_WRITE_PENDING, GW_STORE_WRITE_DONE } store_write;
    bool stored;                     /** the response was committed to the store (table column `stored`) */
    const gw_endpoint_cfg_t *routed; /** endpoint the client addressed, for rows and counters */
    gw_stream_t *stream;             /** render phase; NULL until resolved */
    gw_dispatch_t *d;                /** dispatch phase; NULL until resolved */
    char request_id[37], hex[33], response_id[40];
    uv_timer_t ka_timer; /** client keepalive comments */
    bool ka_open;
    int in_cb; /** re-entrancy depth; freeing waits for 0 (STYLE.md §3) */
    bool admin, headers_sent, client_done, rejected;
    bool admit_pending;  /** waiting for the rate-limit store's verdict (gateway/admit) */
    gw_buf_t error_body; /** error JSON sent, for the table */
    const char *error_code, *error_message;
    bool dirty; /** on ctx->dirty: flushed at the end of the current curl batch */
    struct gw_call *dirty_next, *dirty_prev;
    struct gw_call *live_next, *live_prev; /** on ctx->live */
};

/** Entity serving the request now: dispatch's after a fallback, else resolve's. */
const gw_endpoint_cfg_t *gw__call_served(const gw_call_t *c);
/** One read-only account of the call for the observers (gateway/summary.h). */
void gw__call_summarize(const gw_call_t *c, gw_call_summary_t *s);

#endif
