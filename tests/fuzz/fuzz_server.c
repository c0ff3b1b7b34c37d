/* The whole HTTP/1.1 server (gateway/server + http_scan + llhttp with the server's own callbacks)
 * over a real loopback connection: each input is what one client sends before half-closing; a
 * handler answers every request it is handed (400/413/431/408 included) and the input ends when
 * both sides have closed. Slower than fuzz_http (a connection per input), but nothing is mocked.
 * Input: the client's bytes. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "gateway/log.h"
#include "gateway/server.h"

static uv_loop_t *loop;
static gw_server_t *srv;
static int port;
static gw_limits_cfg_t lim = {
    .max_body_bytes = 4096,
    .max_header_bytes = 2048,
    .max_connections = 16,
    .header_timeout_ms = 2000,
    .keepalive_timeout_ms = 2000,
    .write_timeout_ms = 2000,
    .max_event_bytes = 65536,
};

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t w;
    uv_shutdown_t sh;
    char rbuf[4096];
    bool closed;
} client_t;

static void on_request(gw_req_t *r, void *ud)
{
    (void)ud;
    int status = gw_req_error(r) == GW_ERR_NONE ? 200 : gw_err_status(gw_req_error(r), false);
    (void)gw_req_path(r);
    (void)gw_req_header(r, "content-type");
    gw_req_respond(r, status, "text/plain", NULL, gw_req_body(r));
    gw_req_release(r);
}

static void on_closed(uv_handle_t *h)
{
    ((client_t *)h->data)->closed = true;
}

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    client_t *c = h->data;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0 && !uv_is_closing((uv_handle_t *)st))
        uv_close((uv_handle_t *)st, on_closed);
}

static void on_shutdown(uv_shutdown_t *sh, int status)
{
    (void)sh;
    (void)status;
}

static void on_written(uv_write_t *w, int status)
{
    client_t *c = w->data;
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    c->sh.data = c;
    if (uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, on_shutdown) < 0 && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static uv_buf_t pending;

static void on_connect(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    if (status < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->w.data = c;
    if (uv_write(&c->w, (uv_stream_t *)&c->tcp, &pending, 1, on_written) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop) {
        gw_log_set_level(GW_LOG_ERROR);
        loop = uv_default_loop();
        srv = gw_server_new(loop, &lim, on_request, NULL);
        if (gw_server_listen(srv, "127.0.0.1", 0, &port) < 0)
            abort();
    }
    if (size == 0)
        return 0;
    char *copy = malloc(size);
    memcpy(copy, data, size);
    pending = uv_buf_init(copy, (unsigned)size);
    client_t c = {0};
    c.tcp.data = c.conn.data = &c;
    uv_tcp_init(loop, &c.tcp);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_connect(&c.conn, &c.tcp, (const struct sockaddr *)&addr, on_connect);
    /* Until the client saw the server close and the server let go of the connection. */
    while (!c.closed || gw_server_connections(srv) > 0)
        uv_run(loop, UV_RUN_ONCE);
    free(copy);
    return 0;
}
