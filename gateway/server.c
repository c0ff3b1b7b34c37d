#include "gateway/server.h"

#include <assert.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gateway/log.h"

#define MAX_PARKED_INPUT (64u << 10) /* bytes read while a request is being handled */
#define POOL_WREQS       256       /* write requests kept for reuse, per process */
#define POOL_WREQ_BYTES  (16u << 10) /* larger buffers are not kept */

typedef struct gw_conn gw_conn_t;

typedef enum { C_READ_HEAD, C_READ_BODY, C_HANDLING, C_LINGER, C_CLOSING } conn_state_t;

#define LINGER_MS 2000 /* read and drop a refused body this long so the client sees our answer */

/* Chunked framing, checked on the raw bytes before llhttp sees them (see check_chunked). */
typedef enum {
    CK_OFF = 0,
    CK_SIZE,     /* chunk-size digits */
    CK_EXT,      /* after the digits: BWS, chunk extensions, up to CR */
    CK_SIZE_LF,  /* CR seen at the end of the size line */
    CK_DATA,     /* chunk data, ck_left bytes to go */
    CK_DATA_CR,  /* the CRLF after chunk data */
    CK_DATA_LF,
    CK_TR_START, /* start of a trailer line, or the final CRLF */
    CK_TR_NAME,
    CK_TR_VALUE,
    CK_TR_LF,    /* CR seen at the end of a trailer line */
    CK_END_LF,   /* CR of the final empty line seen */
} ck_state_t;

struct hdr {
    gw_str_t name, value;
};

struct wreq {
    uv_write_t w;
    gw_conn_t *c;
    gw_buf_t data;
    char head[24], tail[8];
    size_t total;
    struct wreq *next;
};

struct gw_req {
    gw_conn_t *conn; /** NULL once the connection is gone */
    gw_arena_t *arena;
    int refs;        /** connection + handler */
    gw_err_kind_t err;
    const char *method;
    gw_buf_t url;
    struct hdr *hdrs; /** malloc'd array, strings in the arena */
    size_t n_hdrs, cap_hdrs;
    gw_buf_t field, value; /** header span being assembled */
    bool in_value;
    gw_buf_t body;
    size_t body_bytes;
    uint64_t start_ns;
    int64_t start_us;
    int status_sent;
    uint64_t first_byte_ns;
    bool http10, chunked, started, ended, released;
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
    gw_req_t *req;  /** request being read or handled; the connection holds one ref */
    gw_buf_t in;    /** unparsed bytes (after a paused message, or read while handling) */
    size_t header_bytes;
    uint32_t last4; /** last bytes of the header block for CRLFCRLF detection */
    ck_state_t ck;  /** chunked-body check state; CK_OFF when the body is not chunked or ended */
    bool ck_digit;  /** a size digit seen on this size line */
    uint64_t ck_size, ck_left, ck_total; /** size being read, data left in the chunk, sum of sizes */
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

static void close_conn(gw_conn_t *c);
static void on_timer(uv_timer_t *t);
static void process_input(gw_conn_t *c);
static void start_reading(gw_conn_t *c);

/* ---------------- request object ---------------- */

static gw_req_t *req_new(gw_conn_t *c)
{
    gw_req_t *r = gw_xcalloc(1, sizeof(*r));
    r->conn = c;
    r->arena = gw_arena_new_sized(4096); /* a typical request's headers and parsed body */
    r->refs = 1;
    r->start_ns = uv_hrtime();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    r->start_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    return r;
}

static void req_unref(gw_req_t *r)
{
    if (--r->refs > 0)
        return;
    gw_buf_dispose(&r->url);
    gw_buf_dispose(&r->field);
    gw_buf_dispose(&r->value);
    gw_buf_dispose(&r->body);
    free(r->hdrs);
    gw_arena_free(r->arena);
    free(r);
}

static void req_emit(gw_req_t *r, gw_req_event_t ev)
{
    if (r->ev_cb && !r->released)
        r->ev_cb(r, ev, r->ev_ud);
}

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
        return 0; /* a trailer field: checked by check_chunked, never merged into the headers */
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

/* RFC 9110 §5.6.2 token characters (field names). */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(gw_str_t s)
{
    if (!s.len)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.base[i]))
            return false;
    return true;
}

/* Transfer-Encoding value, with optional whitespace around it, is exactly "chunked". */
static bool is_plain_chunked(gw_str_t v)
{
    while (v.len && (v.base[0] == ' ' || v.base[0] == '\t'))
        v.base++, v.len--;
    while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    return gw_str_ieq(v, "chunked");
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
        if (!is_token(r->hdrs[i].name)) {
            r->err = GW_ERR_BAD_HTTP;
            return HPE_USER;
        }
        if (gw_str_ieq(r->hdrs[i].name, "host")) {
            hosts++;
        } else if (gw_str_ieq(r->hdrs[i].name, "transfer-encoding")) {
            tes++;
            te_ok = te_ok && is_plain_chunked(r->hdrs[i].value);
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
        c->ck = CK_SIZE;
        c->ck_digit = false;
        c->ck_size = c->ck_total = 0;
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

/* ---------------- writing ---------------- */

/* Write requests and their buffers are pooled per process (one loop per process), not per
 * connection: thousands of idle streams then hold no spare buffers of their own. */
static struct wreq *wreq_pool;
static size_t wreq_pool_n;

static struct wreq *wreq_get(gw_conn_t *c)
{
    struct wreq *w = wreq_pool;
    if (w) {
        wreq_pool = w->next;
        wreq_pool_n--;
        gw_buf_reset(&w->data);
    } else {
        w = gw_xcalloc(1, sizeof(*w));
    }
    w->c = c;
    w->next = NULL;
    return w;
}

static void wreq_put(struct wreq *w)
{
    if (wreq_pool_n >= POOL_WREQS) {
        gw_buf_dispose(&w->data);
        free(w);
        return;
    }
    if (w->data.cap > POOL_WREQ_BYTES)
        gw_buf_dispose(&w->data);
    w->next = wreq_pool;
    wreq_pool = w;
    wreq_pool_n++;
}

static void finish_request(gw_conn_t *c);

static void on_write(uv_write_t *uw, int status)
{
    struct wreq *w = (struct wreq *)uw;
    gw_conn_t *c = w->c;
    c->queued -= w->total;
    wreq_put(w);
    if (status < 0) {
        if (c->state != C_CLOSING)
            close_conn(c);
        return;
    }
    gw_req_t *r = c->req;
    if (!r || c->state != C_HANDLING)
        return;
    /* Progress: restart the write timeout while output is still queued. */
    if (c->queued > 0)
        uv_timer_start(&c->timer, on_timer, (uint64_t)c->limits->write_timeout_ms, 0);
    else
        uv_timer_stop(&c->timer);
    if (r->above_high && c->queued < GW_WRITE_LOW_WATERMARK) {
        r->above_high = false;
        req_emit(r, GW_REQ_EV_DRAINED);
    }
    if (r->ended && c->queued == 0)
        finish_request(c);
}

static void submit(gw_conn_t *c, struct wreq *w, bool chunk)
{
    uv_buf_t bufs[3];
    int n = 0;
    size_t hl = 0, tl = 0;
    if (chunk && w->data.len) {
        hl = (size_t)snprintf(w->head, sizeof(w->head), "%zx\r\n", w->data.len);
        memcpy(w->tail, "\r\n", 2);
        tl = 2;
        bufs[n++] = uv_buf_init(w->head, (unsigned)hl);
    }
    if (w->data.len)
        bufs[n++] = uv_buf_init(w->data.base, (unsigned)w->data.len);
    if (tl)
        bufs[n++] = uv_buf_init(w->tail, (unsigned)tl);
    w->total = hl + w->data.len + tl;
    if (n == 0) {
        wreq_put(w);
        return;
    }
    if (c->queued == 0 && c->state == C_HANDLING)
        uv_timer_start(&c->timer, on_timer, (uint64_t)c->limits->write_timeout_ms, 0);
    c->queued += w->total;
    int rc = uv_write(&w->w, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_write);
    if (rc < 0) {
        c->queued -= w->total;
        wreq_put(w);
        close_conn(c);
    }
}

static void put_head(gw_req_t *r, gw_buf_t *b, int status, const char *ctype, const char *extra, long clen)
{
    gw_conn_t *c = r->conn;
    if (c->srv->draining)
        c->keepalive = false;
    gw_buf_appendf(b, "HTTP/1.1 %d %s\r\nServer: agate\r\n", status, gw_http_reason(status));
    if (ctype)
        gw_buf_appendf(b, "Content-Type: %s\r\n", ctype);
    if (clen >= 0)
        gw_buf_appendf(b, "Content-Length: %ld\r\n", clen);
    else if (r->chunked)
        gw_buf_append_cstr(b, "Transfer-Encoding: chunked\r\n");
    if (extra)
        gw_buf_append_cstr(b, extra);
    gw_buf_append_cstr(b, c->keepalive ? (r->http10 ? "Connection: keep-alive\r\n\r\n" : "\r\n")
                                       : "Connection: close\r\n\r\n");
    r->status_sent = status;
    r->first_byte_ns = uv_hrtime();
    r->started = true;
}

void gw_req_respond(gw_req_t *r, int status, const char *content_type, const char *extra_headers, gw_str_t body)
{
    gw_conn_t *c = r->conn;
    assert(!r->started);
    if (!c || c->state == C_CLOSING) {
        r->ended = true;
        return;
    }
    struct wreq *w = wreq_get(c);
    put_head(r, &w->data, status, content_type, extra_headers, (long)body.len);
    if (strcmp(r->method ? r->method : "", "HEAD") != 0)
        gw_buf_append_str(&w->data, body);
    r->ended = true;
    submit(c, w, false);
    if (c->state == C_HANDLING && c->queued == 0)
        finish_request(c);
}

void gw_req_stream_start(gw_req_t *r, int status, const char *content_type, const char *extra_headers)
{
    gw_conn_t *c = r->conn;
    assert(!r->started);
    if (!c || c->state == C_CLOSING)
        return;
    /* HTTP/1.0 has no chunked coding: the body ends with the connection (RFC 9112 §6.3). */
    r->chunked = !r->http10;
    if (!r->chunked)
        c->keepalive = false;
    struct wreq *w = wreq_get(c);
    put_head(r, &w->data, status, content_type, extra_headers, -1);
    submit(c, w, false);
}

void gw_req_stream_write(gw_req_t *r, gw_buf_t *b)
{
    gw_conn_t *c = r->conn;
    if (!b->len)
        return;
    if (!c || c->state == C_CLOSING || r->ended) {
        gw_buf_reset(b);
        return;
    }
    struct wreq *w = wreq_get(c);
    gw_buf_t tmp = w->data; /* swap: the caller keeps an empty buffer with capacity */
    w->data = *b;
    *b = tmp;
    gw_buf_reset(b);
    submit(c, w, r->chunked);
    if (c->queued > GW_WRITE_HIGH_WATERMARK)
        r->above_high = true;
}

void gw_req_stream_end(gw_req_t *r)
{
    gw_conn_t *c = r->conn;
    if (r->ended)
        return;
    r->ended = true;
    if (!c || c->state == C_CLOSING)
        return;
    if (r->chunked) {
        struct wreq *w = wreq_get(c);
        gw_buf_append_cstr(&w->data, "0\r\n\r\n");
        submit(c, w, false);
    }
    if (c->state == C_HANDLING && c->queued == 0)
        finish_request(c);
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

static void close_conn(gw_conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    gw_req_t *r = c->req;
    c->req = NULL;
    if (r) {
        r->conn = NULL;
        if (!r->ended)
            req_emit(r, GW_REQ_EV_CLOSED);
        req_unref(r);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void dispatch(gw_conn_t *c);

static void on_timer(uv_timer_t *t)
{
    gw_conn_t *c = t->data;
    if (c->state == C_LINGER) {
        close_conn(c);
        return;
    }
    if (c->state == C_HANDLING) {
        /* Output queued and none of it written for write_timeout_ms: the client stopped reading. */
        if (c->queued > 0) {
            gw_log(GW_LOG_INFO, NULL, "event=client_write_timeout peer=%s queued=%zu", c->peer, c->queued);
            close_conn(c);
        }
        return;
    }
    if (c->state == C_CLOSING)
        return;
    if (!c->req) {
        close_conn(c); /* idle keep-alive connection */
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
    req_unref(r);
    c->state = C_LINGER;
    uv_shutdown_t *sr = gw_xmalloc(sizeof(*sr));
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_linger_shutdown) < 0) {
        free(sr);
        close_conn(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    start_reading(c);
}

/* Reset for the next request on a keep-alive connection, or close. */
static void finish_request(gw_conn_t *c)
{
    gw_req_t *r = c->req;
    if (r && (r->err == GW_ERR_TOO_LARGE || r->err == GW_ERR_HEADERS_TOO_LARGE)) {
        linger(c);
        return;
    }
    if (!c->keepalive || c->srv->draining || !r || r->err != GW_ERR_NONE) {
        close_conn(c);
        return;
    }
    c->req = NULL;
    r->conn = NULL;
    req_unref(r);
    c->state = C_READ_HEAD;
    c->header_bytes = 0;
    c->last4 = 0;
    c->ck = CK_OFF;
    c->headers_seen = false;
    llhttp_resume(&c->parser);
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->limits->keepalive_timeout_ms, 0);
    if (c->in.len)
        process_input(c);
    if (c->state == C_READ_HEAD || c->state == C_READ_BODY)
        start_reading(c);
}

/* Reject bytes llhttp 8.1 would accept leniently (STYLE.md §6): bare CR, obs-fold, CTLs.
 * Scans the header block only; returns -1 on a bad byte, else how many bytes of data belong to
 * the header block (len when its end is not in data yet). Tracks the block end across reads. */
static ssize_t prescan(gw_conn_t *c, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)data[i];
        unsigned char prev = (unsigned char)(c->last4 & 0xFF);
        if (prev == '\r' && ch != '\n')
            return -1;
        if (prev == '\n' && (ch == ' ' || ch == '\t') && c->last4 != 0)
            return -1;
        if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7F)
            return -1;
        c->last4 = (c->last4 << 8) | ch;
        if (c->last4 == 0x0D0A0D0A)
            return (ssize_t)(i + 1);
    }
    return (ssize_t)len;
}

/* Chunked framing (RFC 9112 §7.1), checked on the raw bytes before llhttp parses them, because
 * llhttp 8.1 accepts any two bytes in place of the CRLF after chunk data (a request smuggled in
 * the "data" would run) and does not hold trailer lines to the header rules (obs-fold, bare CR,
 * CTLs, names). Also refuses a chunk that takes the body past the limit as soon as its size is
 * read (413 at once, a 2^63 size included), instead of waiting for the data. Returns 0, or
 * GW_ERR_BAD_HTTP / GW_ERR_TOO_LARGE; c->ck is CK_OFF once the message's last byte was seen
 * (bytes after it are the next request's). */
static gw_err_kind_t check_chunked(gw_conn_t *c, const char *data, size_t len)
{
    uint64_t max = c->limits->max_body_bytes;
    for (size_t i = 0; i < len && c->ck != CK_OFF; i++) {
        unsigned char ch = (unsigned char)data[i];
        switch (c->ck) {
        case CK_SIZE: {
            int d = ch >= '0' && ch <= '9' ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                               : -1;
            if (d >= 0) {
                c->ck_digit = true;
                c->ck_size = c->ck_size * 16 + (uint64_t)d;
                if (c->ck_size > max - c->ck_total)
                    return GW_ERR_TOO_LARGE;
                break;
            }
            if (!c->ck_digit)
                return GW_ERR_BAD_HTTP;
            if (ch == '\r')
                c->ck = CK_SIZE_LF;
            else if (ch == ';' || ch == ' ' || ch == '\t')
                c->ck = CK_EXT;
            else
                return GW_ERR_BAD_HTTP;
            break;
        }
        case CK_EXT:
            if (ch == '\r')
                c->ck = CK_SIZE_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7F)
                return GW_ERR_BAD_HTTP;
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            c->ck_total += c->ck_size;
            c->ck_left = c->ck_size;
            c->ck = c->ck_size ? CK_DATA : CK_TR_START;
            break;
        case CK_DATA: {
            size_t take = len - i;
            if ((uint64_t)take > c->ck_left)
                take = (size_t)c->ck_left;
            c->ck_left -= take;
            i += take - 1;
            if (!c->ck_left)
                c->ck = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (ch != '\r')
                return GW_ERR_BAD_HTTP;
            c->ck = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            c->ck = CK_SIZE;
            c->ck_digit = false;
            c->ck_size = 0;
            break;
        case CK_TR_START:
            if (ch == '\r')
                c->ck = CK_END_LF;
            else if (is_tchar(ch))
                c->ck = CK_TR_NAME; /* SP/HTAB here is obs-fold, ':' an empty name: both refused */
            else
                return GW_ERR_BAD_HTTP;
            break;
        case CK_TR_NAME:
            if (ch == ':')
                c->ck = CK_TR_VALUE;
            else if (!is_tchar(ch))
                return GW_ERR_BAD_HTTP;
            break;
        case CK_TR_VALUE:
            if (ch == '\r')
                c->ck = CK_TR_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7F)
                return GW_ERR_BAD_HTTP;
            break;
        case CK_TR_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            c->ck = CK_TR_START;
            break;
        case CK_END_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            c->ck = CK_OFF;
            break;
        case CK_OFF:
            break;
        }
    }
    return GW_ERR_NONE;
}

static void process_input(gw_conn_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    while (c->in.len && (c->state == C_READ_HEAD || c->state == C_READ_BODY)) {
        if (!c->req) {
            c->req = req_new(c);
            uv_timer_start(&c->timer, on_timer, (uint64_t)c->limits->header_timeout_ms, 0);
        }
        gw_req_t *r = c->req;
        /* The header block is fed to llhttp on its own, so that when it declares a chunked body
         * the body bytes are checked (check_chunked) before llhttp reads them. */
        size_t n = c->in.len;
        gw_err_kind_t bad = GW_ERR_NONE;
        if (!c->headers_seen) {
            ssize_t h = prescan(c, c->in.base, c->in.len);
            if (h < 0)
                bad = GW_ERR_BAD_HTTP;
            else
                n = (size_t)h;
        } else if (c->ck != CK_OFF) {
            bad = check_chunked(c, c->in.base, c->in.len);
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
        close_conn(c);
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
        close_conn(c);
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
        close_conn(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->state = C_READ_HEAD;
    /* A new connection owes us a request: the header timeout runs from the accept, so one that
     * never sends a byte gives its slot back after header_timeout_ms, not keepalive_timeout_ms
     * (which is for idle time between requests). */
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->limits->header_timeout_ms, 0);
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
            close_conn(c);
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
        close_conn(c);
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
            req_emit(r, GW_REQ_EV_SHUTDOWN);
            req_unref(r);
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

/* ---------------- request accessors ---------------- */

gw_err_kind_t gw_req_error(const gw_req_t *r)
{
    return r->err;
}

gw_str_t gw_req_method(const gw_req_t *r)
{
    return gw_str(r->method ? r->method : "");
}

gw_str_t gw_req_path(const gw_req_t *r)
{
    gw_str_t u = gw_buf_str(&r->url);
    /* absolute-form "http://host[:port]/path" (RFC 9112 §3.2.2: a server MUST accept it): the path
     * starts at the first '/' after the authority; none means "/". */
    size_t skip = u.len >= 7 && strncasecmp(u.base, "http://", 7) == 0    ? 7
                  : u.len >= 8 && strncasecmp(u.base, "https://", 8) == 0 ? 8
                                                                           : 0;
    if (skip) {
        const char *slash = memchr(u.base + skip, '/', u.len - skip);
        const char *q = memchr(u.base + skip, '?', u.len - skip);
        if (!slash || (q && q < slash))
            return gw_str("/");
        u.len -= (size_t)(slash - u.base);
        u.base = slash;
    }
    const char *q = u.len ? memchr(u.base, '?', u.len) : NULL;
    if (q)
        u.len = (size_t)(q - u.base);
    return u;
}

gw_str_t gw_req_header(const gw_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (gw_str_ieq(r->hdrs[i].name, name))
            return r->hdrs[i].value;
    return GW_STR_NULL;
}

gw_str_t gw_req_body(const gw_req_t *r)
{
    return gw_buf_str(&r->body);
}

size_t gw_req_body_bytes(const gw_req_t *r)
{
    return r->body_bytes;
}

gw_arena_t *gw_req_arena(gw_req_t *r)
{
    return r->arena;
}

uint64_t gw_req_start_ns(const gw_req_t *r)
{
    return r->start_ns;
}

int64_t gw_req_start_unix_us(const gw_req_t *r)
{
    return r->start_us;
}

int gw_req_status_sent(const gw_req_t *r)
{
    return r->status_sent;
}

uint64_t gw_req_first_byte_ns(const gw_req_t *r)
{
    return r->first_byte_ns;
}

const char *gw_req_peer(const gw_req_t *r)
{
    return r->conn ? r->conn->peer : "";
}

void gw_req_set_event_cb(gw_req_t *r, gw_req_event_cb cb, void *ud)
{
    r->ev_cb = cb;
    r->ev_ud = ud;
}

size_t gw_req_write_queue(const gw_req_t *r)
{
    return r->conn ? r->conn->queued : 0;
}

bool gw_req_client_gone(const gw_req_t *r)
{
    return !r->conn || r->conn->state == C_CLOSING;
}

void gw_req_release(gw_req_t *r)
{
    assert(!r->released);
    r->released = true;
    req_unref(r);
}
