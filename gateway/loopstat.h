/* gw_loopstat: how long the event loop runs between two waits for I/O, as the histogram
 * agate_loop_busy_seconds. Every client of a worker waits while one iteration runs, so this is
 * the latency any one request can add to all the others (issue 15: the loop must never block more
 * than a few ms on one request). Wall time from libuv's own idle-time metric: no syscall added. */
#ifndef GW_LOOPSTAT_H
#define GW_LOOPSTAT_H

#include <uv.h>

#include "gateway/metrics.h"

typedef struct gw_loopstat gw_loopstat_t;

/** Starts measuring loop's iterations into a histogram registered in m. */
gw_loopstat_t *gw_loopstat_new(uv_loop_t *loop, gw_metrics_t *m);
/** Stops; the object frees itself once its handle has closed. NULL is a no-op. */
void gw_loopstat_close(gw_loopstat_t *ls);

#endif
