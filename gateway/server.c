/* gw_server: listener, connections and their states, llhttp callbacks and the header rules,
 * reading and parking input, keep-alive, lingering close, drain. The gw_req_t side (accessors and
 * response writers) is in server_req.c; the byte pre-scan in http_scan.c. */
#include "gateway/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/log.h"
#include "gateway/server_int.h"

#define MAX_PARKED_INPUT (64u << 10) /* bytes read while a request is being handled */
#define LINGER_MS 2000 /* read and drop a refused body this long so the client sees our answer */

static void process_input(gw_conn_t *c);
static void start_reading(gw_conn_t *c);

/* ---------------- llhttp callbacks ---------------- */

static gw_conn_t *conn_of(llhttp_t *p)
{
    return p->data;
}

static int over_header_limit(gw_conn_t *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->limits->max_header_bytes) {
        c->req->err = GW_ERR_HEADERS_TOO_LARGE;
        return -1;
    }
    return 0;
}

static void commit_header(gw_req_t *r)
{
    if (!r->field.len && !r->value.len)
        return;
    if (r->n_hdrs == r->cap_hdrs) {
        r->cap_hdrs = r->cap_hdrs ? r->cap_hdrs * 2 : 16;
        r->hdrs = gw_xrealloc(r->hdrs, r->cap_hdrs * sizeof(*r->hdrs));
    }
    r->hdrs[r->n_hdrs].name = gw_arena_str(r->arena, gw_buf_str(&r->field));
    r->hdrs[r->n_hdrs].value = gw_arena_str(r->arena, gw_buf_str(&r->value));
    r->n_hdrs++;
    gw_buf_reset(&r->field);
    gw_buf_reset(&r->value);
    r->in_value = false;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    gw_conn_t *c = conn_of(p);
    if (over_header_limit(c, n) < 0)
        return HPE_USER;
    gw_buf_append(&c->req->url, at, n);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    gw_conn_t *c = conn_of(p);
    if (over_header_limit(c, n) < 0)
        return HPE_USER;
    if (c->headers_seen)
        return 0; /* a trailer field: checked by gw_hscan_chunked, never merged into the headers */
    if (c->req->in_value)
        commit_header(c->req);
    gw_buf_append(&c->req->field, at, n);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    gw_conn_t *c = conn_of(p);
    if (over_header_limit(c, n) < 0)
        return HPE_USER;
    if (c->headers_seen)
        return 0; /* trailer (RFC 9112 §7.1.2: a recipient may discard trailer fields) */
    c->req->in_value = true;
    gw_buf_append(&c->req->value, at, n);
    return 0;
}


static int on_headers_complete(llhttp_t *p)
{
    gw_conn_t *c = conn_of(p);
    gw_req_t *r = c->req;
    commit_header(r);
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    r->http10 = p->http_major == 1 && p->http_minor == 0;
    c->headers_seen = true;
    c->state = C_READ_BODY;
    /* agate never switches protocols: ignore Upgrade (RFC 9110 §7.8) so llhttp keeps parsing the
     * connection as HTTP/1.1 and a pipelined request after this one is read as a request. */
    p->upgrade = 0;
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1. §6.1: Transfer-Encoding is not HTTP/1.0.
     * Field names are tokens (RFC 9110 §5.1): llhttp 8.1 lets a space in a name, or an empty name,
     * through. The only transfer coding agate decodes is chunked, alone: llhttp 8.1 reads
     * "gzip, chunked" as plain chunked, which would hand the gzip bytes on as the body. */
    size_t hosts = 0, tes = 0;
    bool te_ok = true, expect_continue = false;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        if (!gw_hscan_is_token(r->hdrs[i].name)) {
            r->err = GW_ERR_BAD_HTTP;
            return HPE_USER;
        }
        if (gw_str_ieq(r->hdrs[i].name, "host")) {
            hosts++;
        } else if (gw_str_ieq(r->hdrs[i].name, "transfer-encoding")) {
            tes++;
            te_ok = te_ok && gw_hscan_is_plain_chunked(r->hdrs[i].value);
        } else if (gw_str_ieq(r->hdrs[i].name, "expect") && gw_str_ieq(r->hdrs[i].value, "100-continue")) {
            expect_continue = true;
        }
    }
    if ((!r->http10 && hosts != 1) || hosts > 1 || (r->http10 && tes) || tes > 1 || !te_ok) {
        r->err = GW_ERR_BAD_HTTP;
        return HPE_USER;
    }
    /* A declared body over the limit is refused now (RFC 9110 §15.5.14), before any 100 Continue
     * invites the client to send it. */
    if (!(p->flags & F_CHUNKED) && (p->flags & F_CONTENT_LENGTH) && p->content_length > c->limits->max_body_bytes) {
        r->body_bytes = (size_t)(p->content_length > SIZE_MAX ? SIZE_MAX : p->content_length);
        r->err = GW_ERR_TOO_LARGE;
        return HPE_USER;
    }
    if (p->flags & F_CHUNKED) {
        gw_hscan_chunked_start(&c->ck);
    }
    c->keepalive = llhttp_should_keep_alive(p) != 0;
    if (expect_continue && !r->http10) {
        /* The body is read below the limit anyway; tell the client to send it (RFC 9110 §10.1.1). */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    gw_conn_t *c = conn_of(p);
    gw_req_t *r = c->req;
    r->body_bytes += n;
    if (r->body_bytes > c->limits->max_body_bytes) {
        r->err = GW_ERR_TOO_LARGE;
        return HPE_USER;
    }
    gw_buf_append(&r->body, at, n);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    (void)p;
    /* One request at a time: stop here, keep the rest of the buffer for later (STYLE.md §6). */
    return HPE_PAUSED;
}

/* ---------------- connection lifecycle ---------------- */

static void on_handle_closed(uv_handle_t *h)
{
    gw_conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    gw_server_t *s = c->srv;
    gw_buf_dispose(&c->in);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
    if (s->closing) {
        /* gw_server_close ran: the server outlives its last connection and its listener. */
        if (s->n_conns == 0 && !s->listening)
            free(s);
        return;
    }
    if (s->draining && s->n_conns == 0 && s->on_drained) {
        void (*cb)(void *) = s->on_drained;
        s->on_drained = NULL;
        cb(s->drained_ud);
    }
}

void gw__conn_close(gw_conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    gw_req_t *r = c->req;
    c->req = NULL;
    if (r) {
        r->conn = NULL;
        if (!r->ended)
            gw__req_emit(r, GW_REQ_EV_CLOSED);
        gw__req_unref(r);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void dispatch(gw_conn_t *c);

void gw__conn_on_timer(uv_timer_t *t)
{
    gw_conn_t *c = t->data;
    if (c->state == C_LINGER) {
        gw__conn_close(c);
        return;
    }
    if (c->state == C_HANDLING) {
        /* Output queued and none of it written for write_timeout_ms: the client stopped reading. */
        if (c->queued > 0) {
            gw_log(GW_LOG_INFO, NULL, "event=client_write_timeout peer=%s queued=%zu", c->peer, c->queued);
            gw__conn_close(c);
        }
        return;
    }
    if (c->state == C_CLOSING)
        return;
    if (!c->req) {
        gw__conn_close(c); /* idle keep-alive connection */
        return;
    }
    /* The client started a request and did not finish it in time (RFC 9110 §15.5.9). */
    c->req->err = GW_ERR_REQUEST_TIMEOUT;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    dispatch(c);
}

static void dispatch(gw_conn_t *c)
{
    gw_req_t *r = c->req;
    c->state = C_HANDLING;
    uv_timer_stop(&c->timer);
    if (r->err != GW_ERR_NONE)
        c->keepalive = false;
    if (!r->method)
        r->method = "";
    r->refs++; /* the handler's reference, dropped by gw_req_release */
    c->srv->on_request(r, c->srv->ud);
}

static void on_linger_shutdown(uv_shutdown_t *sr, int status)
{
    (void)status;
    free(sr);
}

/* Closing right after refusing a request whose body is still arriving makes the kernel send a
 * reset that can destroy our answer in flight; half-close and drain for a while instead
 * (RFC 9112 §9.6, "lingering close"). */
static void linger(gw_conn_t *c)
{
    gw_req_t *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    gw__req_unref(r);
    c->state = C_LINGER;
    uv_shutdown_t *sr = gw_xmalloc(sizeof(*sr));
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_linger_shutdown) < 0) {
        free(sr);
        gw__conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, gw__conn_on_timer, LINGER_MS, 0);
    start_reading(c);
}

/* Reset for the next request on a keep-alive connection, or close. */
void gw__conn_finish(gw_conn_t *c)
{
    gw_req_t *r = c->req;
    if (r && (r->err == GW_ERR_TOO_LARGE || r->err == GW_ERR_HEADERS_TOO_LARGE)) {
        linger(c);
        return;
    }
    if (!c->keepalive || c->srv->draining || !r || r->err != GW_ERR_NONE) {
        gw__conn_close(c);
        return;
    }
    c->req = NULL;
    r->conn = NULL;
    gw__req_unref(r);
    c->state = C_READ_HEAD;
    c->header_bytes = 0;
    c->head.last4 = 0;
    c->ck.st = GW_HSCAN_CK_OFF;
    c->headers_seen = false;
    llhttp_resume(&c->parser);
    uv_timer_start(&c->timer, gw__conn_on_timer, (uint64_t)c->limits->keepalive_timeout_ms, 0);
    if (c->in.len)
        process_input(c);
    if (c->state == C_READ_HEAD || c->state == C_READ_BODY)
        start_reading(c);
}

static void process_input(gw_conn_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    while (c->in.len && (c->state == C_READ_HEAD || c->state == C_READ_BODY)) {
        if (!c->req) {
            c->req = gw__req_new(c);
            uv_timer_start(&c->timer, gw__conn_on_timer, (uint64_t)c->limits->header_timeout_ms, 0);
        }
        gw_req_t *r = c->req;
        /* The header block is fed to llhttp on its own, so that when it declares a chunked body
         * the body bytes are checked (gw_hscan_chunked) before llhttp reads them. */
        size_t n = c->in.len;
        gw_err_kind_t bad = GW_ERR_NONE;
        if (!c->headers_seen) {
            ssize_t h = gw_hscan_head(&c->head, c->in.base, c->in.len);
            if (h < 0)
                bad = GW_ERR_BAD_HTTP;
            else
                n = (size_t)h;
        } else if (gw_hscan_chunked_active(&c->ck)) {
            bad = gw_hscan_chunked(&c->ck, c->limits->max_body_bytes, c->in.base, c->in.len);
        }
        if (bad != GW_ERR_NONE) {
            r->err = bad;
            gw_buf_reset(&c->in);
            dispatch(c);
            break;
        }
        llhttp_errno_t e = llhttp_execute(&c->parser, c->in.base, n);
        if (e == HPE_OK) {
            gw_buf_consume(&c->in, n);
            if (c->in.len && !c->headers_seen) {
                /* llhttp took the block without completing the headers: it disagrees with the
                 * pre-scan about where they end, so the framing is not one both can vouch for. */
                r->err = GW_ERR_BAD_HTTP;
                gw_buf_reset(&c->in);
                dispatch(c);
                break;
            }
            continue;
        }
        if (e == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            gw_buf_consume(&c->in, (size_t)(pos - c->in.base));
            dispatch(c);
            continue; /* a synchronous answer may have reset the connection for the next request */
        }
        if (r->err == GW_ERR_NONE)
            r->err = GW_ERR_BAD_HTTP;
        gw_log(GW_LOG_DEBUG, NULL, "event=http_parse_error peer=%s reason=%s", c->peer,
               llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser) : "?");
        gw_buf_reset(&c->in);
        dispatch(c);
        break;
    }
    c->in_process = false;
}

/* One read buffer for the whole loop: libuv calls on_read right after on_alloc, and on_read
 * moves the bytes into the connection before returning. Idle and streaming connections thus
 * hold no read buffer of their own (memory per open stream). */
static char read_buf[64 * 1024];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    gw_conn_t *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->req && (c->state == C_READ_HEAD || c->state == C_READ_BODY)) {
            /* EOF or reset in the middle of a request: it reached agate, so the handler still
             * gets it (and writes its row); a half-closed client even reads the 400. */
            c->req->err = GW_ERR_BAD_HTTP;
            c->req->cut_short = true;
            uv_read_stop(st);
            c->reading = false;
            dispatch(c);
            return;
        }
        gw__conn_close(c);
        return;
    }
    gw_buf_append(&c->in, buf->base, (size_t)nread);
    if (c->state == C_LINGER) {
        gw_buf_reset(&c->in);
        return;
    }
    if (c->state == C_HANDLING) {
        /* Bytes of a next (pipelined) request wait; reading on lets us see the client leave. */
        if (c->in.len > MAX_PARKED_INPUT) {
            uv_read_stop(st);
            c->reading = false;
        }
        return;
    }
    process_input(c);
    if (c->in.len == 0 && c->state != C_CLOSING)
        gw_buf_dispose(&c->in);
}

static void start_reading(gw_conn_t *c)
{
    if (c->reading || c->state == C_CLOSING)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void on_connection(uv_stream_t *ls, int status)
{
    gw_server_t *s = ls->data;
    if (status < 0) {
        gw_log(GW_LOG_WARN, NULL, "event=accept_error error=%s", uv_strerror(status));
        return;
    }
    gw_conn_t *c = gw_xcalloc(1, sizeof(*c));
    c->srv = s;
    c->limits = s->limits;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        gw__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    }
    if ((int)s->n_conns > c->limits->max_connections || s->draining) {
        /* Over capacity: a short answer beats a silent reset (clients retry 503). */
        static const char body[] =
            "{\"error\":{\"message\":\"too many connections\",\"type\":\"server_error\",\"param\":null,"
            "\"code\":\"upstream_unavailable\"},\"error_code\":\"TEMPORARILY_UNAVAILABLE\","
            "\"message\":\"too many connections\"}";
        char head[192];
        int hl = snprintf(head, sizeof(head),
                          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                          "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                          sizeof(body) - 1);
        uv_buf_t b[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init((char *)body, sizeof(body) - 1)};
        uv_try_write((uv_stream_t *)&c->tcp, b, 2);
        gw__conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->state = C_READ_HEAD;
    /* A new connection owes us a request: the header timeout runs from the accept, so one that
     * never sends a byte gives its slot back after header_timeout_ms, not keepalive_timeout_ms
     * (which is for idle time between requests). */
    uv_timer_start(&c->timer, gw__conn_on_timer, (uint64_t)c->limits->header_timeout_ms, 0);
    start_reading(c);
}

/* ---------------- server ---------------- */

gw_server_t *gw_server_new(uv_loop_t *loop, const gw_limits_cfg_t *limits, gw_req_handler_cb on_request, void *ud)
{
    gw_server_t *s = gw_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->limits = limits;
    s->on_request = on_request;
    s->ud = ud;
    llhttp_settings_init(&s->settings);
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return s;
}

int gw_server_listen(gw_server_t *s, const char *host, int port, int *bound_port)
{
    struct sockaddr_storage addr;
    int rc;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        return rc;
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = true;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc < 0)
        return rc;
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    *bound_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
    return 0;
}

int gw_server_listen_fd(gw_server_t *s, int fd)
{
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = true;
    int rc = uv_tcp_open(&s->listener, (uv_os_sock_t)fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    return rc;
}

int gw_server_bind_fd(const char *host, int port, bool listen_now, int *bound_port)
{
    struct sockaddr_storage addr;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                               : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        return rc;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Every worker listens on its own socket of one SO_REUSEPORT group, so the kernel spreads
     * connections over workers instead of waking them all for each one. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    socklen_t len = addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&addr, len) < 0 || (listen_now && listen(fd, 1024) < 0)) {
        rc = -errno;
        close(fd);
        return rc;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &gl);
    *bound_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
    return fd;
}

static void on_listener_closed(uv_handle_t *h)
{
    gw_server_t *s = h->data;
    s->listening = false;
    if (s->closing && s->n_conns == 0)
        free(s);
}

void gw_server_drain(gw_server_t *s, void (*on_drained)(void *ud), void *ud)
{
    s->draining = true;
    s->on_drained = on_drained;
    s->drained_ud = ud;
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (gw_conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->state == C_READ_HEAD && !c->req)
            gw__conn_close(c);
        else
            c->keepalive = false;
    }
    if (s->n_conns == 0 && s->on_drained) {
        s->on_drained = NULL;
        on_drained(ud);
    }
}

/* Connections still open run on_handle_closed later, which unlinks them from s: s is freed by
 * whichever comes last, the listener's close callback or the last connection's (freeing it here
 * while a connection was closing was a use-after-free at shutdown). */
void gw_server_close(gw_server_t *s)
{
    s->closing = true;
    s->draining = true;
    s->on_drained = NULL;
    for (gw_conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        gw__conn_close(c);
    }
    if (s->listening) {
        if (!uv_is_closing((uv_handle_t *)&s->listener))
            uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    } else if (s->n_conns == 0) {
        free(s);
    }
}

void gw_server_abort(gw_server_t *s)
{
    for (gw_conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        gw_req_t *r = c->req;
        if (c->state == C_HANDLING && r && !r->ended) {
            r->refs++; /* the handler may end the response, and the connection with it */
            gw__req_emit(r, GW_REQ_EV_SHUTDOWN);
            gw__req_unref(r);
        }
    }
}

size_t gw_server_connections(const gw_server_t *s)
{
    return s->n_conns;
}

void gw_server_set_limits(gw_server_t *s, const gw_limits_cfg_t *limits)
{
    s->limits = limits;
}
