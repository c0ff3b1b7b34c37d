/* gw_pool: the runtime state of every endpoint of one config generation: its balancer, its
 * active health checks and its FIFO of requests waiting for a replica slot. A reload builds a new
 * pool; the old one is retired (no more health checks) but stays valid for calls still using it. */
#ifndef GW_POOL_H
#define GW_POOL_H

#include <stddef.h>
#include <uv.h>

#include "gateway/balancer.h"
#include "gateway/config.h"
#include "gateway/upstream.h"

#define GW_POOL_MAX_REPLICAS 64

typedef struct gw_pool gw_pool_t;
typedef struct gw_pool_ep gw_pool_ep_t;

/** Intrusive FIFO link; embed it in whatever waits for a slot. */
typedef struct gw_pool_waiter {
    struct gw_pool_waiter *next, *prev;
} gw_pool_waiter_t;

gw_pool_t *gw_pool_new(uv_loop_t *loop, gw_upctx_t *up, const gw_config_t *cfg);
/** Stop health checks; the pool keeps answering for calls of its generation. */
void gw_pool_retire(gw_pool_t *p);
/** Free (health-check handles close asynchronously). No call may use it afterwards. */
void gw_pool_free(gw_pool_t *p);

const gw_config_t *gw_pool_config(const gw_pool_t *p);
size_t gw_pool_size(const gw_pool_t *p);
gw_pool_ep_t *gw_pool_at(gw_pool_t *p, size_t i);
/** State of ep, an endpoint of this pool's config. */
gw_pool_ep_t *gw_pool_ep(gw_pool_t *p, const gw_endpoint_cfg_t *ep);

const gw_endpoint_cfg_t *gw_pool_ep_cfg(const gw_pool_ep_t *e);
/** NULL for a traffic-split endpoint (no replicas of its own). */
gw_lb_t *gw_pool_ep_lb(gw_pool_ep_t *e);
/** Replica i has reached its max_concurrent. */
bool gw_pool_ep_replica_full(gw_pool_ep_t *e, size_t i);
/** Some replica with a concurrency cap has reached it. */
bool gw_pool_ep_at_capacity(gw_pool_ep_t *e);

void gw_pool_wait_push(gw_pool_ep_t *e, gw_pool_waiter_t *w);
void gw_pool_wait_remove(gw_pool_ep_t *e, gw_pool_waiter_t *w);
gw_pool_waiter_t *gw_pool_wait_head(gw_pool_ep_t *e);
int gw_pool_n_waiting(const gw_pool_ep_t *e);

#endif
