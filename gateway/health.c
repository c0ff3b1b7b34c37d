#include "gateway/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"

/* One replica's check: its own timer and at most one transfer in flight. */
struct check {
    gw_health_t *h;
    int idx;
    uv_timer_t timer;
    gw_up_t *up;
    long status;
    char url[512];
};

struct gw_health {
    gw_upctx_t *up;
    const gw_endpoint_cfg_t *ep;
    gw_lb_t *lb;
    struct check *checks; /** one per replica */
    size_t n;
    size_t open_timers;
    bool stopped;
    gw_health_freed_cb freed;
    void *freed_ud;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void on_check_timer(uv_timer_t *t);

static void arm(struct check *k, int ms)
{
    uv_timer_start(&k->timer, on_check_timer, (uint64_t)ms, 0);
}

static void on_check_response(void *ud, long status, gw_str_t ct, int retry_after)
{
    (void)ct;
    (void)retry_after;
    ((struct check *)ud)->status = status;
}

static int on_check_data(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    return 0;
}

static void on_check_done(void *ud, gw_up_result_t result, const char *detail)
{
    (void)detail;
    struct check *k = ud;
    gw_health_t *h = k->h;
    k->up = NULL;
    bool ok = result == GW_UP_OK && k->status >= 200 && k->status < 300;
    bool was = gw_lb_available(h->lb, k->idx, now_ms());
    gw_lb_health(h->lb, k->idx, ok, now_ms());
    bool is = gw_lb_available(h->lb, k->idx, now_ms());
    if (was != is)
        gw_log(GW_LOG_WARN, NULL, "event=replica_health endpoint=%s replica=%s available=%d", h->ep->name,
               h->ep->upstreams[k->idx].url, is);
    if (!h->stopped)
        arm(k, h->ep->health_interval_ms);
}

static void on_check_timer(uv_timer_t *t)
{
    struct check *k = t->data;
    gw_health_t *h = k->h;
    if (k->up || h->stopped)
        return;
    static const gw_up_cb_t cbs = {on_check_response, on_check_data, on_check_done};
    gw_up_req_t req = {
        .url = k->url,
        .accept = "*/*",
        .body = GW_STR_NULL,
        .connect_timeout_ms = h->ep->health_timeout_ms,
        .total_timeout_ms = h->ep->health_timeout_ms,
    };
    k->status = 0;
    k->up = gw_up_start(h->up, &req, &cbs, k);
    if (!k->up)
        arm(k, h->ep->health_interval_ms);
}

/* Origin of a base URL ("http://host:port/v1" -> "http://host:port"): health paths are absolute. */
static size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? (size_t)(p - url) : strlen(url);
}

gw_health_t *gw_health_start(uv_loop_t *loop, gw_upctx_t *up, const gw_endpoint_cfg_t *ep, gw_lb_t *lb)
{
    gw_health_t *h = gw_xcalloc(1, sizeof(*h));
    h->up = up;
    h->ep = ep;
    h->lb = lb;
    h->n = gw_lb_size(lb);
    h->checks = gw_xcalloc(h->n ? h->n : 1, sizeof(*h->checks));
    for (size_t i = 0; i < h->n; i++) {
        struct check *k = &h->checks[i];
        k->h = h;
        k->idx = (int)i;
        snprintf(k->url, sizeof(k->url), "%.*s%s", (int)origin_len(ep->upstreams[i].url), ep->upstreams[i].url,
                 ep->health_path);
        uv_timer_init(loop, &k->timer);
        k->timer.data = k;
        h->open_timers++;
        arm(k, 0);
    }
    return h;
}

void gw_health_stop(gw_health_t *h)
{
    if (!h)
        return;
    h->stopped = true;
    for (size_t i = 0; i < h->n; i++) {
        uv_timer_stop(&h->checks[i].timer);
        if (h->checks[i].up) {
            gw_up_cancel(h->checks[i].up);
            h->checks[i].up = NULL;
        }
    }
}

static void release(gw_health_t *h)
{
    if (h->freed)
        h->freed(h->freed_ud);
    free(h->checks);
    free(h);
}

static void on_timer_closed(uv_handle_t *handle)
{
    gw_health_t *h = ((struct check *)handle->data)->h;
    if (--h->open_timers == 0)
        release(h);
}

void gw_health_free(gw_health_t *h, gw_health_freed_cb freed, void *ud)
{
    gw_health_stop(h);
    h->freed = freed;
    h->freed_ud = ud;
    if (h->open_timers == 0) {
        release(h);
        return;
    }
    for (size_t i = 0; i < h->n; i++)
        uv_close((uv_handle_t *)&h->checks[i].timer, on_timer_closed);
}
