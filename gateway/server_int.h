/* Private to gateway/server*.c: the connection, request and server structs they share, and the
 * cross-file internals (gw__*). Nothing else includes this header; gateway/server.h is the API.
 *   server.c      listener, connections, llhttp callbacks, input, keep-alive, drain
 *   server_req.c  the gw_req_t object, its accessors and the response writers
 *   http_scan.c   the byte-level checks on request bytes (its own public header) */
#ifndef GW_SERVER_INT_H
#define GW_SERVER_INT_H

#include <llhttp.h>
#include <uv.h>

#include "gateway/http_scan.h"
#include "gateway/server.h"

typedef struct gw_conn gw_conn_t;

typedef enum { C_READ_HEAD, C_READ_BODY, C_HANDLING, C_LINGER, C_CLOSING } conn_state_t;

struct hdr {
    gw_str_t name, value;
};

struct gw_req {
    gw_conn_t *conn; /** NULL once the connection is gone */
    gw_arena_t *arena;
    int refs; /** connection + handler */
    gw_err_kind_t err;
    const char *method;
    gw_buf_t url;
    struct hdr *hdrs; /** malloc'd array, strings in the arena */
    size_t n_hdrs, cap_hdrs;
    gw_buf_t field, value; /** header span being assembled */
    bool in_value;
    gw_buf_t body;
    gw_buf_t head_pending; /** streamed response's head, sent with its first bytes (one write) */
    size_t body_bytes;
    uint64_t start_ns;
    int64_t start_us;
    int status_sent;
    uint64_t first_byte_ns;
    uint64_t bytes_out; /** response bytes handed to the socket (head, chunk framing, body) */
    char peer[64];      /** the connection's peer, kept after the connection detaches */
    bool http10, chunked, started, ended, released;
    bool cut_short; /** the client ended the connection before the request was complete */
    bool above_high; /** write queue passed the high watermark since the last DRAINED */
    gw_req_event_cb ev_cb;
    void *ev_ud;
};

struct gw_conn {
    gw_server_t *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    llhttp_settings_t *settings;
    conn_state_t state;
    gw_req_t *req; /** request being read or handled; the connection holds one ref */
    gw_buf_t in;   /** unparsed bytes (after a paused message, or read while handling) */
    size_t header_bytes;
    gw_hscan_head_t head;  /** header-block scan, across reads */
    gw_hscan_chunked_t ck; /** chunked-body check; off when the body is not chunked or ended */
    bool headers_seen, keepalive, reading, in_process;
    int open_handles;
    size_t queued;
    const gw_limits_cfg_t *limits;
    char peer[64];
    gw_conn_t *prev, *next;
};

struct gw_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening, closing;
    const gw_limits_cfg_t *limits;
    gw_req_handler_cb on_request;
    void *ud;
    gw_conn_t *conns;
    size_t n_conns;
    bool draining;
    void (*on_drained)(void *);
    void *drained_ud;
    llhttp_settings_t settings;
};

/* server_req.c */
gw_req_t *gw__req_new(gw_conn_t *c);
/** Drop one reference (connection or handler); the last one frees r. */
void gw__req_unref(gw_req_t *r);
/** Deliver ev to the handler's event callback unless the handler already released r. */
void gw__req_emit(gw_req_t *r, gw_req_event_t ev);

/* server.c */
/** Close c (idempotent); a request still being handled gets GW_REQ_EV_CLOSED. */
void gw__conn_close(gw_conn_t *c);
/** The response ended and its bytes are written: next request on a keep-alive connection, or close. */
void gw__conn_finish(gw_conn_t *c);
/** The connection's one timer (header, keep-alive, write and linger timeouts by state). */
void gw__conn_on_timer(uv_timer_t *t);

#endif
