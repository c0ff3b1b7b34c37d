#include "gateway/pool.h"

#include <stdlib.h>

#include "gateway/health.h"
#include "gateway/id.h"

struct gw_pool_ep {
    const gw_endpoint_cfg_t *ep;
    gw_lb_t *lb;          /** owned; freed after the health checks' handles close */
    gw_health_t *health;  /** owned; NULL when health checks are off */
    gw_pool_waiter_t *wait_head, *wait_tail;
    int n_waiting;
};

struct gw_pool {
    const gw_config_t *cfg;
    gw_pool_ep_t *eps; /** one per cfg endpoint, same order */
    size_t n;
};

gw_pool_t *gw_pool_new(uv_loop_t *loop, gw_upctx_t *up, const gw_config_t *cfg)
{
    gw_pool_t *p = gw_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    p->n = cfg->n_endpoints;
    p->eps = gw_xcalloc(p->n ? p->n : 1, sizeof(*p->eps));
    for (size_t i = 0; i < p->n; i++) {
        gw_pool_ep_t *e = &p->eps[i];
        const gw_endpoint_cfg_t *ep = &cfg->endpoints[i];
        e->ep = ep;
        int weights[GW_POOL_MAX_REPLICAS];
        size_t n = ep->n_upstreams < GW_POOL_MAX_REPLICAS ? ep->n_upstreams : GW_POOL_MAX_REPLICAS;
        for (size_t k = 0; k < n; k++)
            weights[k] = ep->upstreams[k].weight;
        uint64_t seed;
        gw_id_random(&seed, sizeof(seed));
        e->lb = n ? gw_lb_new(&ep->lb, weights, n, seed) : NULL; /* a traffic-split endpoint has none */
        if (e->lb && ep->health_path)
            e->health = gw_health_start(loop, up, ep, e->lb);
    }
    return p;
}

void gw_pool_retire(gw_pool_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        gw_health_stop(p->eps[i].health);
}

static void on_health_freed(void *ud)
{
    gw_lb_free(ud);
}

void gw_pool_free(gw_pool_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        if (p->eps[i].health)
            gw_health_free(p->eps[i].health, on_health_freed, p->eps[i].lb);
        else
            gw_lb_free(p->eps[i].lb);
    }
    free(p->eps);
    free(p);
}

const gw_config_t *gw_pool_config(const gw_pool_t *p)
{
    return p->cfg;
}

size_t gw_pool_size(const gw_pool_t *p)
{
    return p->n;
}

gw_pool_ep_t *gw_pool_at(gw_pool_t *p, size_t i)
{
    return i < p->n ? &p->eps[i] : NULL;
}

gw_pool_ep_t *gw_pool_ep(gw_pool_t *p, const gw_endpoint_cfg_t *ep)
{
    size_t i = (size_t)(ep - p->cfg->endpoints);
    return i < p->n ? &p->eps[i] : NULL;
}

const gw_endpoint_cfg_t *gw_pool_ep_cfg(const gw_pool_ep_t *e)
{
    return e->ep;
}

gw_lb_t *gw_pool_ep_lb(gw_pool_ep_t *e)
{
    return e->lb;
}

bool gw_pool_ep_replica_full(gw_pool_ep_t *e, size_t i)
{
    int cap = e->ep->upstreams[i].max_concurrent;
    return cap && gw_lb_outstanding(e->lb, (int)i) >= cap;
}

bool gw_pool_ep_at_capacity(gw_pool_ep_t *e)
{
    for (size_t i = 0; e->lb && i < e->ep->n_upstreams && i < GW_POOL_MAX_REPLICAS; i++)
        if (gw_pool_ep_replica_full(e, i))
            return true;
    return false;
}

void gw_pool_wait_push(gw_pool_ep_t *e, gw_pool_waiter_t *w)
{
    w->next = NULL;
    w->prev = e->wait_tail;
    if (e->wait_tail)
        e->wait_tail->next = w;
    else
        e->wait_head = w;
    e->wait_tail = w;
    e->n_waiting++;
}

void gw_pool_wait_remove(gw_pool_ep_t *e, gw_pool_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        e->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        e->wait_tail = w->prev;
    w->next = w->prev = NULL;
    e->n_waiting--;
}

gw_pool_waiter_t *gw_pool_wait_head(gw_pool_ep_t *e)
{
    return e->wait_head;
}

int gw_pool_n_waiting(const gw_pool_ep_t *e)
{
    return e->n_waiting;
}
