#include "gateway/loopstat.h"

#include <stdlib.h>

#include "gateway/buf.h"

struct gw_loopstat {
    uv_prepare_t prepare; /** first: the close callback gets &prepare */
    gw_metric_t *busy;
    uint64_t last_ns, last_idle_ns;
};

/* Runs just before the loop waits for I/O: the time since the previous wait began, less the time
 * spent waiting, is what the loop did in between (timers, I/O callbacks, closes). */
static void on_prepare(uv_prepare_t *h)
{
    gw_loopstat_t *ls = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(h->loop);
    if (ls->last_ns) {
        uint64_t span = now - ls->last_ns, waited = idle - ls->last_idle_ns;
        gw_metric_observe(ls->busy, NULL, (double)(span > waited ? span - waited : 0) / 1e9);
    }
    ls->last_ns = now;
    ls->last_idle_ns = idle;
}

gw_loopstat_t *gw_loopstat_new(uv_loop_t *loop, gw_metrics_t *m)
{
    static const double bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1};
    gw_loopstat_t *ls = gw_xcalloc(1, sizeof(*ls));
    ls->busy = gw_metrics_histogram(m, "agate_loop_busy_seconds",
                                    "Time the event loop ran between two waits for I/O (every client waits meanwhile).",
                                    NULL, bounds, sizeof(bounds) / sizeof(bounds[0]));
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    uv_prepare_init(loop, &ls->prepare);
    ls->prepare.data = ls;
    uv_prepare_start(&ls->prepare, on_prepare);
    uv_unref((uv_handle_t *)&ls->prepare); /* measuring never keeps the loop alive */
    return ls;
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

void gw_loopstat_close(gw_loopstat_t *ls)
{
    if (ls)
        uv_close((uv_handle_t *)&ls->prepare, on_closed);
}
