#include "gateway/loopstat.h"

#include <stdlib.h>

#include "gateway/buf.h"

#define PROBE_MS 20

struct gw_loopstat {
    uv_timer_t timer; /** first: the close callback gets &timer */
    gw_metric_t *lag;
    uint64_t due_ns;
};

static void on_probe(uv_timer_t *t);

static void arm(gw_loopstat_t *ls)
{
    uv_update_time(ls->timer.loop); /* else libuv counts from the iteration's start: the probe runs early */
    ls->due_ns = uv_hrtime() + (uint64_t)PROBE_MS * 1000000u;
    uv_timer_start(&ls->timer, on_probe, PROBE_MS, 0);
}

static void on_probe(uv_timer_t *t)
{
    gw_loopstat_t *ls = t->data;
    uint64_t now = uv_hrtime();
    gw_metric_observe(ls->lag, NULL, (double)(now > ls->due_ns ? now - ls->due_ns : 0) / 1e9);
    arm(ls);
}

gw_loopstat_t *gw_loopstat_new(uv_loop_t *loop, gw_metrics_t *m)
{
    static const double bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1};
    gw_loopstat_t *ls = gw_xcalloc(1, sizeof(*ls));
    ls->lag = gw_metrics_histogram(m, "agate_loop_lag_seconds",
                                   "How late a timer due every 20 ms ran: how long the event loop kept every client waiting.",
                                   NULL, bounds, sizeof(bounds) / sizeof(bounds[0]));
    uv_timer_init(loop, &ls->timer);
    ls->timer.data = ls;
    arm(ls);
    uv_unref((uv_handle_t *)&ls->timer); /* measuring never keeps the loop alive */
    return ls;
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

void gw_loopstat_close(gw_loopstat_t *ls)
{
    if (ls)
        uv_close((uv_handle_t *)&ls->timer, on_closed);
}
