/* gw_loopstat: how long the event loop keeps its clients waiting, as the histogram
 * agate_loop_lag_seconds: a probe timer due every 20 ms records how late it ran. Every client of a
 * worker waits while one iteration runs, so a late probe is the latency one heavy step added to all
 * the others (issue 15: the loop must never block more than a few ms on one request).
 * Not libuv's idle-time metric: that one makes every blocking epoll_wait a pair (a 0 ms poll
 * first), a syscall per loop iteration under load; the probe costs 50 timer wakeups a second. */
#ifndef GW_LOOPSTAT_H
#define GW_LOOPSTAT_H

#include <uv.h>

#include "gateway/metrics.h"

typedef struct gw_loopstat gw_loopstat_t;

/** Starts probing loop into a histogram registered in m. */
gw_loopstat_t *gw_loopstat_new(uv_loop_t *loop, gw_metrics_t *m);
/** Stops; the object frees itself once its handle has closed. NULL is a no-op. */
void gw_loopstat_close(gw_loopstat_t *ls);

#endif
