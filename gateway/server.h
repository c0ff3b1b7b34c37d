/* gw_server: HTTP/1.1 listener and connections (llhttp, strict), limits and keep-alive.
 *
 * One request at a time per connection (no pipelining: the next request's bytes wait until the
 * response ended). Every request that reached the server is handed to the handler exactly once,
 * including ones the server already knows are bad (gw_req_error() != GW_ERR_NONE: framing error,
 * header block or body too large, too slow), so the handler can answer in its route's shape and
 * write its table record. The handler then writes one response and calls gw_req_release(). */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/config.h"
#include "gateway/error.h"

typedef struct gw_server gw_server_t;
typedef struct gw_req gw_req_t;

typedef void (*gw_req_handler_cb)(gw_req_t *r, void *ud);

typedef enum {
    GW_REQ_EV_DRAINED = 1, /** the client's write queue fell below the low watermark */
    GW_REQ_EV_CLOSED,      /** the client went away before the response ended */
    /** The process is stopping and the drain bound has passed (gw_server_abort): end the response
     * now, with its terminal event when it is a stream (PROTOCOL.md §5.3: response.failed + error,
     * then [DONE] on the Databricks route; a call not yet committed answers 503
     * TEMPORARILY_UNAVAILABLE with Retry-After), write its table row, gw_req_stream_end /
     * gw_req_respond, then gw_req_release as usual. The connection is closed shortly after
     * whatever the handler does; a handler that ignores this event gets GW_REQ_EV_CLOSED then. */
    GW_REQ_EV_SHUTDOWN,
} gw_req_event_t;
typedef void (*gw_req_event_cb)(gw_req_t *r, gw_req_event_t ev, void *ud);

#define GW_WRITE_HIGH_WATERMARK (256u << 10)
#define GW_WRITE_LOW_WATERMARK  (64u << 10)

gw_server_t *gw_server_new(uv_loop_t *loop, const gw_limits_cfg_t *limits, gw_req_handler_cb on_request, void *ud);
/** Bind and listen; *bound_port receives the actual port (for port 0). */
int gw_server_listen(gw_server_t *s, const char *host, int port, int *bound_port);
/** Accept on an already listening socket (inherited from the parent with --workers). */
int gw_server_listen_fd(gw_server_t *s, int fd);
/** Bind a plain SO_REUSEPORT socket (and listen when listen_now): the --workers parent binds
 * one without listening to reserve the port, each worker binds and listens on its own. Returns
 * the fd or a negative errno, and the bound port. */
int gw_server_bind_fd(const char *host, int port, bool listen_now, int *bound_port);
/** Stop accepting, close idle connections; on_drained fires once no connection is left. */
void gw_server_drain(gw_server_t *s, void (*on_drained)(void *ud), void *ud);
/** Send GW_REQ_EV_SHUTDOWN to every request still being handled (the drain bound passed). New
 * connections are already refused by gw_server_drain; on_drained still fires once none is left. */
void gw_server_abort(gw_server_t *s);
/** Close the listener and every connection (after drain, or at exit): each request still being
 * handled gets GW_REQ_EV_CLOSED synchronously, from inside this call. s is freed once the listener
 * and the last connection have run their close callbacks (a later loop turn); do not use it after
 * this call. */
void gw_server_close(gw_server_t *s);
size_t gw_server_connections(const gw_server_t *s);
/** Swap limits for connections accepted from now on (config reload). */
void gw_server_set_limits(gw_server_t *s, const gw_limits_cfg_t *limits);

/* ---- request, for the handler ---- */
gw_err_kind_t gw_req_error(const gw_req_t *r);
gw_str_t gw_req_method(const gw_req_t *r);
/** Path without the query string. */
gw_str_t gw_req_path(const gw_req_t *r);
/** Query string after the first '?', without it; empty when there is none. */
gw_str_t gw_req_query(const gw_req_t *r);
gw_str_t gw_req_header(const gw_req_t *r, const char *name);
/** How many times the header occurs (case-insensitive name). */
size_t gw_req_header_count(const gw_req_t *r, const char *name);
gw_str_t gw_req_body(const gw_req_t *r);
/** Bytes of body received (may exceed what was kept when the body was too large). */
size_t gw_req_body_bytes(const gw_req_t *r);
gw_arena_t *gw_req_arena(gw_req_t *r);
/** uv_hrtime() and wall clock (unix microseconds) when the first byte of the request arrived. */
uint64_t gw_req_start_ns(const gw_req_t *r);
int64_t gw_req_start_unix_us(const gw_req_t *r);
/** Status line actually sent, 0 if none yet. */
int gw_req_status_sent(const gw_req_t *r);
/** uv_hrtime() of the first response byte queued, 0 if none. */
uint64_t gw_req_first_byte_ns(const gw_req_t *r);
/** Response bytes queued for the client so far (status line, headers, chunk framing, body). */
uint64_t gw_req_bytes_out(const gw_req_t *r);
/** Client address as "ip:port". */
const char *gw_req_peer(const gw_req_t *r);

void gw_req_set_event_cb(gw_req_t *r, gw_req_event_cb cb, void *ud);
/** Whole response with Content-Length. extra_headers: "Name: value\r\n" lines or NULL. */
void gw_req_respond(gw_req_t *r, int status, const char *content_type, const char *extra_headers, gw_str_t body);
/** Start a streamed (chunked) response. The head goes out with the first gw_req_stream_send. */
void gw_req_stream_start(gw_req_t *r, int status, const char *content_type, const char *extra_headers);
/** Queue the pending head (if any), b's bytes as one chunk and, when last, the terminating chunk,
 * in one write; takes the bytes (b is left empty, ready for reuse). With last the response is
 * complete once queued bytes are written. */
void gw_req_stream_send(gw_req_t *r, gw_buf_t *b, bool last);
/** gw_req_stream_send(r, b, false). */
void gw_req_stream_write(gw_req_t *r, gw_buf_t *b);
/** gw_req_stream_send with no bytes and last. */
void gw_req_stream_end(gw_req_t *r);
/** Bytes queued for the client and not yet written. */
size_t gw_req_write_queue(const gw_req_t *r);
/** True once the client is gone. */
bool gw_req_client_gone(const gw_req_t *r);
/** The client closed or half-closed before the request was complete (gw_req_error() is then
 * GW_ERR_BAD_HTTP): the request is still handed over, so it gets its table row. */
bool gw_req_cut_short(const gw_req_t *r);
/** The handler is done with r (after its response ended, or after GW_REQ_EV_CLOSED). */
void gw_req_release(gw_req_t *r);

#endif
