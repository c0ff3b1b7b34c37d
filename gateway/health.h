/* gw_health: active health checks of one endpoint's replicas: a GET on each replica's origin +
 * the configured path, on a timer, reported to the endpoint's balancer (gw_lb_health). */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H

#include <uv.h>

#include "gateway/balancer.h"
#include "gateway/config.h"
#include "gateway/upstream.h"

typedef struct gw_health gw_health_t;
typedef void (*gw_health_freed_cb)(void *ud);

/** Starts checking every replica of ep (ep->health_path must be set); lb must outlive it. */
gw_health_t *gw_health_start(uv_loop_t *loop, gw_upctx_t *up, const gw_endpoint_cfg_t *ep, gw_lb_t *lb);
/** No more checks; a check in flight is cancelled. Idempotent. */
void gw_health_stop(gw_health_t *h);
/** Stop, then free once every timer handle is closed; freed(ud) runs then (release lb there). */
void gw_health_free(gw_health_t *h, gw_health_freed_cb freed, void *ud);

#endif
