/* gw_up: upstream HTTP transfers through one libcurl multi handle driven by the libuv loop
 * (STYLE.md §7). Bytes are handed to the owner as they arrive; the owner may pause the transfer
 * when its client reads slowly (STYLE.md §8) and resume it later. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stdbool.h>
#include <uv.h>

#include "gateway/buf.h"

typedef struct gw_upctx gw_upctx_t;
typedef struct gw_up gw_up_t;

#define GW_UP_PAUSE 1 /* on_data: keep these bytes, pause until gw_up_resume */

typedef enum {
    GW_UP_OK = 0,
    GW_UP_E_CONNECT,  /** could not connect (refused, unreachable, DNS) */
    GW_UP_E_TIMEOUT,  /** connect or total timeout */
    GW_UP_E_RESET,    /** connection reset or closed before any response */
    GW_UP_E_EOF,      /** response body cut short (connection closed mid-body) */
    GW_UP_E_ABORTED,  /** the owner's on_data asked to stop */
    GW_UP_E_OTHER,
} gw_up_result_t;

/** Retry-After values are handed on as seconds in 0..this (an hour); an HTTP-date is converted. */
#define GW_UP_RETRY_AFTER_MAX 3600

typedef struct {
    /** Status line and headers complete (final response, not 1xx). retry_after: seconds from the
     * upstream's Retry-After (delay or HTTP-date), capped at GW_UP_RETRY_AFTER_MAX; 0 if none. */
    void (*on_response)(void *ud, long status, gw_str_t content_type, int retry_after);
    /** Body bytes: 0 continue, GW_UP_PAUSE pause (bytes redelivered on resume), < 0 abort. */
    int (*on_data)(void *ud, const char *data, size_t len);
    /** Exactly once, never from inside a curl callback; the transfer is freed right after. */
    void (*on_done)(void *ud, gw_up_result_t result, const char *detail);
} gw_up_cb_t;

typedef struct {
    const char *url;
    const char *api_key;    /** sent as "Authorization: Bearer"; NULL = none */
    const char *request_id; /** forwarded as x-request-id */
    const char *accept;     /** Accept header */
    const char *content_type; /** of the body; NULL = application/json */
    const char *const *headers; /** n_headers more "Name: value" lines (trace context, exporter's) */
    size_t n_headers;
    gw_str_t body;          /** POST body; must stay valid until on_done or cancel. base NULL = GET */
    int connect_timeout_ms;
    int total_timeout_ms;
} gw_up_req_t;

gw_upctx_t *gw_upctx_new(uv_loop_t *loop);
/** Cancel what is left and free (handles close asynchronously). */
void gw_upctx_free(gw_upctx_t *u);
/** Called once after each batch of transfer callbacks (a socket event, a timer, a resume), when
 * curl is off the stack: the owner writes to its clients here, once per batch instead of once per
 * upstream chunk (one syscall for all the events the batch produced). */
typedef void (*gw_upctx_batch_cb)(void *ud);
void gw_upctx_on_batch(gw_upctx_t *u, gw_upctx_batch_cb cb, void *ud);
/** Number of new TCP connections made so far (connection reuse check). */
long gw_upctx_connects(const gw_upctx_t *u);

gw_up_t *gw_up_start(gw_upctx_t *u, const gw_up_req_t *req, const gw_up_cb_t *cb, void *ud);
void gw_up_resume(gw_up_t *up);
bool gw_up_paused(const gw_up_t *up);
/** Abort now; no on_done follows. Safe from any callback of the owner. */
void gw_up_cancel(gw_up_t *up);
/** host:port actually connected to (empty before the connection). */
const char *gw_up_peer(gw_up_t *up);

#endif
