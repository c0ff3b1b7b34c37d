/* gw_dispatch: the dispatch phase of one call. Picks replicas through the endpoint's balancer,
 * encodes the upstream request with the endpoint's adapter, runs attempts, retries on other
 * replicas (within the retry budget) and then the endpoint's fallbacks while nothing reached the
 * client, waits in the slot queue when every replica is at its cap, and enforces the commit and
 * idle timeouts. Upstream bytes go through the adapter into the call's gw_stream. */
#ifndef GW_DISPATCH_H
#define GW_DISPATCH_H

#include <stdbool.h>

#include "adapters/adapter.h"
#include "gateway/ctx.h"
#include "gateway/server.h"
#include "gateway/stream.h"
#include "gateway/summary.h"

typedef struct gw_dispatch gw_dispatch_t;

/** What dispatch needs from its owner (the call). Every dispatch callback runs between enter and
 * leave; leave is where the owner may free itself once gw_dispatch_settled() holds. */
typedef struct {
    void (*enter)(void *owner);
    void (*leave)(void *owner);
    /** New bytes in the stream: hand them over at the end of the current curl batch. */
    void (*rendered)(void *owner);
    /** The stream ended or failed outside the adapter: hand it over now. */
    void (*flush)(void *owner);
} gw_dispatch_owner_t;

typedef struct {
    gw_ctx_t *ctx;
    gw_pool_t *pool;               /** the call's config generation */
    const gw_config_t *cfg;
    gw_req_t *r;
    const char *request_id;
    const gw_endpoint_cfg_t *ep;   /** served entity chosen by resolve */
    const gw_request_t *req;       /** must outlive the dispatch */
    bool databricks_route;
    gw_stream_t *stream;
    /** Set on the ChatCompletions route: every attempt uses this passthrough adapter, and only
     * fallbacks whose upstream speaks ChatCompletions are tried. NULL: the endpoint's adapter. */
    const ad_vtable_t *passthrough;
    /** The upstream body already encoded for ep by its adapter (call.c's prepare phase), moved
     * into the dispatch and used by the first attempt on ep; NULL = encode it here. */
    gw_buf_t *encoded;
    const gw_dispatch_owner_t *owner;
    void *owner_ud;
    const gw_tp_ctx_t *trace;      /** the call's trace context (outlives the dispatch); NULL = none */
} gw_dispatch_opts_t;

gw_dispatch_t *gw_dispatch_new(const gw_dispatch_opts_t *o);
/** Call only once settled; disposes the adapter state. */
void gw_dispatch_free(gw_dispatch_t *d);
/** First attempt, or a place in the slot queue, or the stream fails with 503. */
void gw_dispatch_start(gw_dispatch_t *d);
/** The client side is over (answered or gone): drain a finished upstream, cancel any other. */
void gw_dispatch_client_done(gw_dispatch_t *d);
/** Shutdown: the client side is over (if not yet) and any transfer still draining is cut now. */
void gw_dispatch_abort(gw_dispatch_t *d);
/** The client drained its output: resume a transfer paused for backpressure. */
void gw_dispatch_client_drained(gw_dispatch_t *d);
/** No transfer running and no timer handle open. */
bool gw_dispatch_settled(const gw_dispatch_t *d);

/* For the finish summary. */
const gw_endpoint_cfg_t *gw_dispatch_served(const gw_dispatch_t *d);
const char *gw_dispatch_adapter(const gw_dispatch_t *d);
const gw_attempt_t *gw_dispatch_attempts(const gw_dispatch_t *d, int *n);
bool gw_dispatch_fallback_used(const gw_dispatch_t *d);
const char *gw_dispatch_peer(const gw_dispatch_t *d); /** NULL before any connection */
uint64_t gw_dispatch_started_ns(const gw_dispatch_t *d); /** first attempt, 0 = none */
uint64_t gw_dispatch_ended_ns(const gw_dispatch_t *d);   /** last transfer's end, 0 = running/none */
/** Time spent in the slot queue (ns) and how many times the request entered it. */
uint64_t gw_dispatch_queue_ns(const gw_dispatch_t *d, int *waits);

/** Start waiting requests of every pool whose replicas have free slots (ctx->kick's callback). */
void gw_dispatch_on_kick(uv_timer_t *t);

#endif
