/* gw_admin: the operator routes (/healthz, /readyz, /metrics), the scrape-time metric collectors
 * they show, and the finish observer that counts requests per endpoint. Admin routes are never
 * logged to the inference tables (INFERENCE_TABLES.md §1). */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include "gateway/ctx.h"
#include "gateway/router.h"
#include "gateway/server.h"

/** Answer an admin route (kind is GW_ROUTE_HEALTHZ, _READYZ or _METRICS). */
void gw_admin_respond(gw_ctx_t *ctx, gw_req_t *r, gw_route_kind_t kind);
/** Register agate's metric families in ctx->metrics, in exposition order. */
void gw_admin_register_metrics(gw_ctx_t *ctx);
/** Show zeros for every endpoint of ctx->cfg (called for each new config). */
void gw_admin_touch_endpoints(gw_ctx_t *ctx);
/** Finish observer: per-endpoint request and status-class counters (ud = ctx). */
void gw_admin_observe(const gw_call_summary_t *s, void *ud);

#endif
