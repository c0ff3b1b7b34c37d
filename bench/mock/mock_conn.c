/* mock_conn: one client connection (mock_conn.h): state, reading, writes, keep-alive, close. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/error.h"
#include "mock_conn.h"
#include "mock_json.h"
#include "mock_routes.h"

#define MOCK_IN_MAX    (1u << 20) /* unparsed (pipelined) input held while a response runs */
#define MOCK_LINGER_MS 2000       /* lingering close: wait this long for the client's FIN */

struct mock_conn {
    uv_tcp_t tcp;     /** data = this conn */
    uv_timer_t timer; /** delays, split halves, lingering close; one use at a time */
    uv_shutdown_t shut;
    mock_server_t *srv;
    mock_link_t link; /** in the server's list of live connections */
    uint64_t id;
    mock_conn_state_t state;
    int handles_open; /** tcp + timer; freed when both close callbacks have run */
    bool reading, peer_eof;
    mock_http_t *http; /** owned: the request parser */
    gw_buf_t in;       /** owned: received, not yet parsed input (pipelined requests) */
    bool keep_alive;   /** of the current request; cleared on errors, HTTP/1.0 streams, half-close */
    bool chunked;      /** the current SSE response is chunked */
    bool abrupt;       /** close without ending the body once the queued bytes are out */
    mock_run_t run;    /** the current response's script */
    size_t writes_pending;
};

typedef struct {
    uv_write_t req;
    char *base;   /** owned payload, freed in on_uv_write */
    char hdr[20]; /** chunk-size line */
    char crlf[2];
} wreq_t;

static void process_input(mock_conn_t *c);

/* ---- connection lifecycle ---- */

static void on_close(uv_handle_t *h)
{
    mock_conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    mock_server_leave(c->srv, &c->link);
    gw_buf_dispose(&c->in);
    mock_http_free(c->http);
    mock_run_dispose(&c->run);
    free(c);
}

/* Start closing both handles. The memory stays valid until the last close callback, so callers
 * up the stack only need to notice state == MOCK_CS_CLOSING; pending writes get UV_ECANCELED first. */
void mock_conn_close(mock_conn_t *c)
{
    if (c->state == MOCK_CS_CLOSING)
        return;
    c->state = MOCK_CS_CLOSING;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mock_conn_t *c = h->data;
    size_t n;
    (void)suggested;
    char *base = mock_server_rbuf(c->srv, &n);
    *buf = uv_buf_init(base, (unsigned)n);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Read whenever the client has not sent its FIN and the unparsed input is under its cap. Reading
 * continues while a response runs: that is how a client leaving a `stall` is noticed. */
static void update_read(mock_conn_t *c)
{
    bool want = c->state != MOCK_CS_CLOSING && !c->peer_eof && c->in.len < MOCK_IN_MAX;
    if (want && !c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc < 0) {
            mock_log(c->srv, "warn", "event=read_start_failed conn=%" PRIu64 " err=%s", c->id,
                     uv_err_name(rc));
            mock_conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* The one state transition: leaving a state disarms the timer, and read interest is re-derived.
 * Callers arm the timer for the new state afterwards. */
static void set_state(mock_conn_t *c, mock_conn_state_t s)
{
    if (c->state == MOCK_CS_CLOSING)
        return;
    if (c->state != s) {
        c->state = s;
        uv_timer_stop(&c->timer);
    }
    update_read(c);
}

static void on_timer(uv_timer_t *t);

void mock_conn_timer(mock_conn_t *c, uint64_t ms)
{
    if (c->state != MOCK_CS_CLOSING)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- output ---- */

static void flushed(mock_conn_t *c);

static void on_uv_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    mock_conn_t *c = req->handle->data;
    free(w->base);
    free(w);
    assert(c->writes_pending > 0);
    c->writes_pending--;
    if (status < 0) {
        if (status != UV_ECANCELED)
            mock_log(c->srv, "warn", "event=write_failed conn=%" PRIu64 " err=%s", c->id,
                     uv_err_name(status));
        mock_conn_close(c);
        return;
    }
    if (c->state == MOCK_CS_STREAM)
        mock_run_on_written(c);
    else if (c->state == MOCK_CS_FLUSH && c->writes_pending == 0)
        flushed(c);
}

/* Queue b's bytes as one uv_write (one writev: one TCP write), taking ownership of them; with
 * chunk set they are framed as one HTTP chunk (RFC 9112 §7.1). On failure the conn closes. */
static void write_buf(mock_conn_t *c, gw_buf_t *b, bool chunk)
{
    uv_buf_t bufs[3];
    unsigned nb = 0;
    size_t n;
    wreq_t *w;

    if (c->state == MOCK_CS_CLOSING || (chunk && b->len == 0)) {
        gw_buf_dispose(b); /* a zero-size chunk would be the last-chunk */
        return;
    }
    w = gw_xmalloc(sizeof(*w));
    w->base = gw_buf_steal(b, &n);
    if (chunk) {
        int h = snprintf(w->hdr, sizeof(w->hdr), "%zx\r\n", n);
        bufs[nb++] = uv_buf_init(w->hdr, (unsigned)h);
    }
    bufs[nb++] = uv_buf_init(w->base, (unsigned)n);
    if (chunk) {
        memcpy(w->crlf, "\r\n", 2);
        bufs[nb++] = uv_buf_init(w->crlf, 2);
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nb, on_uv_write);
    if (rc < 0) {
        mock_log(c->srv, "warn", "event=write_failed conn=%" PRIu64 " err=%s", c->id, uv_err_name(rc));
        free(w->base);
        free(w);
        mock_conn_close(c);
        return;
    }
    c->writes_pending++;
}

static void write_copy(mock_conn_t *c, const char *p, size_t n, bool chunk)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append(&b, p, n);
    write_buf(c, &b, chunk);
}

/* The whole response is queued: wait for its writes, then go on in flushed(). */
static void finish_response(mock_conn_t *c)
{
    if (c->state == MOCK_CS_CLOSING)
        return;
    set_state(c, MOCK_CS_FLUSH);
    if (c->writes_pending == 0)
        mock_conn_timer(c, 0); /* never continue with the next request from inside this one */
}

void mock_conn_reply(mock_conn_t *c, int status, const char *ctype, const char *extra, gw_str_t body)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_reserve(&b, body.len + 256);
    MOCK_APPENDF(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                 status, gw_http_reason(status), ctype, body.len, extra,
                 c->keep_alive ? "keep-alive" : "close");
    gw_buf_append(&b, body.base, body.len);
    write_buf(c, &b, false);
    finish_response(c);
}

void mock_conn_reply_error(mock_conn_t *c, int status, const char *type, gw_str_t message)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "{\"error\":{\"message\":");
    mock_json_str(&b, message);
    gw_buf_append_cstr(&b, ",\"type\":");
    mock_json_cstr(&b, type);
    gw_buf_append_cstr(&b, "}}");
    mock_conn_reply(c, status, "application/json", "", gw_buf_str(&b));
    gw_buf_dispose(&b);
}

/* Parse or protocol error: answer, then close (STYLE.md §6). */
static void fail_request(mock_conn_t *c, int status, const char *reason)
{
    mock_log(c->srv, "warn", "event=bad_request conn=%" PRIu64 " status=%d reason=\"%s\"", c->id, status,
             reason);
    c->keep_alive = false;
    mock_conn_reply_error(c, status, "invalid_request_error", gw_str(reason));
}

void mock_conn_wait(mock_conn_t *c, uint64_t ms)
{
    set_state(c, MOCK_CS_WAIT_JSON);
    mock_conn_timer(c, ms);
}

/* ---- SSE responses ---- */

void mock_conn_stream_begin(mock_conn_t *c)
{
    gw_buf_t b;
    mock_req_t r = mock_http_req(c->http);
    /* RFC 9112 §7.1: chunked only to HTTP/1.1 clients; for HTTP/1.0 the close delimits the body. */
    c->chunked = r.major > 1 || (r.major == 1 && r.minor >= 1);
    if (!c->chunked)
        c->keep_alive = false;
    gw_buf_init(&b);
    MOCK_APPENDF(&b,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 "%sConnection: %s\r\n\r\n",
                 c->chunked ? "Transfer-Encoding: chunked\r\n" : "", c->keep_alive ? "keep-alive" : "close");
    write_buf(c, &b, false);
    set_state(c, MOCK_CS_STREAM);
}

void mock_conn_stream_write(mock_conn_t *c, gw_buf_t *b)
{
    write_buf(c, b, c->chunked);
}

void mock_conn_stream_end(mock_conn_t *c)
{
    if (c->chunked)
        write_copy(c, "0\r\n\r\n", 5, false); /* last-chunk, no trailers (RFC 9112 §7.1) */
    finish_response(c);
}

void mock_conn_stream_abort(mock_conn_t *c)
{
    c->abrupt = true;
    c->keep_alive = false;
    finish_response(c);
}

void mock_conn_stream_hold(mock_conn_t *c)
{
    if (c->peer_eof)
        mock_conn_close(c);
    else
        set_state(c, MOCK_CS_HOLD);
}

/* ---- end of a response ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    mock_conn_t *c = req->handle->data;
    if (status < 0)
        mock_conn_close(c);
}

/* Lingering close (RFC 9112 §9.6): send our FIN first and read until the client's, so input we
 * never read cannot turn close() into an RST that destroys the response still in flight. */
static void linger_close(mock_conn_t *c)
{
    if (c->peer_eof) {
        mock_conn_close(c);
        return;
    }
    gw_buf_dispose(&c->in);
    set_state(c, MOCK_CS_LINGER);
    int rc = uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc < 0) {
        mock_conn_close(c);
        return;
    }
    mock_conn_timer(c, MOCK_LINGER_MS);
}

/* Response done and flushed: keep-alive goes on with the next (maybe already buffered) request. */
static void flushed(mock_conn_t *c)
{
    if (c->abrupt) {
        mock_conn_close(c);
        return;
    }
    if (!c->keep_alive || c->peer_eof) {
        linger_close(c);
        return;
    }
    mock_run_reset(&c->run);
    mock_http_next(c->http);
    set_state(c, MOCK_CS_READ);
    process_input(c);
}

static void on_timer(uv_timer_t *t)
{
    mock_conn_t *c = t->data;
    switch (c->state) {
    case MOCK_CS_STREAM:
    case MOCK_CS_WAIT_JSON:
        mock_run_on_timer(c);
        break;
    case MOCK_CS_FLUSH:
        if (c->writes_pending == 0)
            flushed(c);
        break;
    case MOCK_CS_LINGER:
        mock_conn_close(c);
        break;
    default:
        break;
    }
}

/* ---- input ---- */

/* The parser saw Expect: 100-continue: answer it at once, before the body arrives. */
static void on_continue(void *user)
{
    write_copy(user, "HTTP/1.1 100 Continue\r\n\r\n", 25, false);
}

/* Parse buffered input: at most one request, which is dispatched; the rest stays in c->in. */
static void parse_input(mock_conn_t *c)
{
    int status = 0;
    const char *reason = NULL;
    if (c->state != MOCK_CS_READ || c->in.len == 0)
        return;
    mock_http_rc_t rc = mock_http_feed(c->http, &c->in, &status, &reason);
    if (c->state != MOCK_CS_READ)
        return; /* a failed 100-continue write closed the connection */
    if (rc == MOCK_HTTP_DONE) {
        c->keep_alive = mock_http_req(c->http).keep_alive;
        mock_routes_serve(mock_server_routes(c->srv), c);
    } else if (rc == MOCK_HTTP_FAIL) {
        fail_request(c, status, reason);
    }
}

static void process_input(mock_conn_t *c)
{
    parse_input(c);
    /* Reading may have stopped at MOCK_IN_MAX during the previous response: resume it. */
    if (c->state == MOCK_CS_READ)
        update_read(c);
}

/* Input arrives in every state but MOCK_CS_CLOSING: parsed in MOCK_CS_READ, buffered (capped)
 * while a response runs, discarded while lingering. EOF and errors end the connection (below). */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    mock_conn_t *c = st->data;
    if (nread == 0 || c->state == MOCK_CS_CLOSING)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->state == MOCK_CS_READ || c->state == MOCK_CS_HOLD ||
            c->state == MOCK_CS_LINGER) {
            mock_conn_close(c);
            return;
        }
        /* Half-close mid-response: finish this response, then close (RFC 9112 §9.6). A client
         * that really went away makes the next write fail, which closes at once. */
        c->peer_eof = true;
        c->keep_alive = false;
        update_read(c);
        return;
    }
    if (c->state == MOCK_CS_LINGER)
        return; /* draining */
    gw_buf_append(&c->in, buf->base, (size_t)nread);
    if (c->state == MOCK_CS_READ)
        process_input(c);
    else
        update_read(c);
}

/* Accept one client: the conn owns a tcp and a timer handle and lives until both are closed. */
void mock_conn_accept(mock_server_t *s, uv_stream_t *listener)
{
    uv_loop_t *loop = mock_server_loop(s);
    mock_conn_t *c = gw_xcalloc(1, sizeof(*c));
    c->srv = s;
    if (uv_tcp_init(loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->handles_open = 1;
    if (uv_timer_init(loop, &c->timer) == 0) {
        c->timer.data = c;
        c->handles_open = 2;
    }
    c->link.conn = c;
    c->id = mock_server_join(s, &c->link);
    c->state = MOCK_CS_READ;
    c->http = mock_http_new(on_continue, c);
    if (c->handles_open != 2) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        c->state = MOCK_CS_CLOSING;
        return;
    }
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        mock_log(s, "warn", "event=accept_failed err=%s", uv_err_name(rc));
        mock_conn_close(c);
        return;
    }
    if (!mock_server_admit(s)) {
        mock_conn_close(c);
        return;
    }
    /* Each SSE event is its own write and must leave at once, not wait behind Nagle. */
    uv_tcp_nodelay(&c->tcp, 1);
    update_read(c);
}

mock_conn_state_t mock_conn_state(const mock_conn_t *c)
{
    return c->state;
}

mock_req_t mock_conn_req(const mock_conn_t *c)
{
    return mock_http_req(c->http);
}

mock_server_t *mock_conn_server(const mock_conn_t *c)
{
    return c->srv;
}

mock_run_t *mock_conn_run(mock_conn_t *c)
{
    return &c->run;
}

size_t mock_conn_queued(const mock_conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}
