/* mock_conn: one client connection of the mock upstream. It reads and parses requests one at a
 * time (mock_http), hands each complete one to mock_routes, and moves the response's bytes:
 * plain answers, or an SSE stream whose events mock_run produces. Keep-alive, pipelined input,
 * 100-continue, half-close and lingering close are handled here.
 *
 * One request at a time per connection (STYLE.md §6): the parser pauses after a request, the
 * response runs, and only once its last write has completed is the parser resumed on the
 * leftover input. Reading stays on while a response runs so that a client going away is noticed
 * even when nothing is being written (the `stall` scenario); unparsed input is capped.
 * Memory: a connection owns its buffers; every write owns its bytes until its callback; the
 * connection is freed in the close callback of the last of its two handles (tcp + timer). */
#ifndef MOCK_CONN_H
#define MOCK_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "gateway/buf.h"
#include "mock_http.h"
#include "mock_run.h"
#include "mock_server.h"

typedef enum {
    MOCK_CS_READ,      /* parsing a request (head or body) */
    MOCK_CS_STREAM,    /* running a scenario script */
    MOCK_CS_HOLD,      /* the script reached OP_HOLD: idle until the client leaves */
    MOCK_CS_WAIT_JSON, /* non-streaming answer delayed by the script's total delay */
    MOCK_CS_FLUSH,     /* response fully queued; waiting for the writes to complete */
    MOCK_CS_LINGER,    /* FIN sent, draining input until the client's FIN or a timeout */
    MOCK_CS_CLOSING,
} mock_conn_state_t;

/* Accept one client from listener (the server's listen callback). */
void mock_conn_accept(mock_server_t *s, uv_stream_t *listener);
/* Start closing; the memory stays valid until the last close callback. */
void mock_conn_close(mock_conn_t *c);

mock_conn_state_t mock_conn_state(const mock_conn_t *c);
mock_req_t mock_conn_req(const mock_conn_t *c);
mock_server_t *mock_conn_server(const mock_conn_t *c);
mock_run_t *mock_conn_run(mock_conn_t *c);
/* Bytes queued for the client and not yet written. */
size_t mock_conn_queued(const mock_conn_t *c);
/* Arm the connection's timer: mock_run_on_timer fires in MOCK_CS_STREAM and MOCK_CS_WAIT_JSON. */
void mock_conn_timer(mock_conn_t *c, uint64_t ms);

/* A whole response with Content-Length; then the next request. */
void mock_conn_reply(mock_conn_t *c, int status, const char *ctype, const char *extra, gw_str_t body);
void mock_conn_reply_error(mock_conn_t *c, int status, const char *type, gw_str_t message);
/* Enter MOCK_CS_WAIT_JSON for ms (a delayed non-streaming answer). */
void mock_conn_wait(mock_conn_t *c, uint64_t ms);

/* An SSE response: the 200 head (chunked for HTTP/1.1 clients) and MOCK_CS_STREAM; then events,
 * each one write taking ownership of b; then a clean end, an abrupt close once the queued bytes
 * are out, or holding the connection open until the client leaves. */
void mock_conn_stream_begin(mock_conn_t *c);
void mock_conn_stream_write(mock_conn_t *c, gw_buf_t *b);
void mock_conn_stream_end(mock_conn_t *c);
void mock_conn_stream_abort(mock_conn_t *c);
void mock_conn_stream_hold(mock_conn_t *c);

#endif
