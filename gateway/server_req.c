/* gw_req: one request as the handler sees it (accessors) and the response writers: the head,
 * Content-Length or chunked bodies, the write-request pool, the write timeout and watermarks. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "gateway/server_int.h"

#define POOL_WREQS       256       /* write requests kept for reuse, per process */
#define POOL_WREQ_BYTES  (16u << 10) /* larger buffers are not kept */

struct wreq {
    uv_write_t w;
    gw_conn_t *c;
    gw_buf_t pre;  /** a streamed response's head, when this write is its first */
    gw_buf_t data;
    char head[24], tail[8];
    size_t total;
    struct wreq *next;
};

/* ---------------- request object ---------------- */

gw_req_t *gw__req_new(gw_conn_t *c)
{
    gw_req_t *r = gw_xcalloc(1, sizeof(*r));
    r->conn = c;
    memcpy(r->peer, c->peer, sizeof(r->peer));
    r->arena = gw_arena_new_sized(4096); /* a typical request's headers and parsed body */
    r->refs = 1;
    r->start_ns = uv_hrtime();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    r->start_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    return r;
}

void gw__req_unref(gw_req_t *r)
{
    if (--r->refs > 0)
        return;
    gw_buf_dispose(&r->url);
    gw_buf_dispose(&r->field);
    gw_buf_dispose(&r->value);
    gw_buf_dispose(&r->body);
    gw_buf_dispose(&r->head_pending);
    free(r->hdrs);
    gw_arena_free(r->arena);
    free(r);
}

void gw__req_emit(gw_req_t *r, gw_req_event_t ev)
{
    if (r->ev_cb && !r->released)
        r->ev_cb(r, ev, r->ev_ud);
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
        gw_buf_reset(&w->pre);
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
        gw_buf_dispose(&w->pre);
        free(w);
        return;
    }
    if (w->data.cap > POOL_WREQ_BYTES)
        gw_buf_dispose(&w->data);
    if (w->pre.cap > POOL_WREQ_BYTES)
        gw_buf_dispose(&w->pre);
    w->next = wreq_pool;
    wreq_pool = w;
    wreq_pool_n++;
}

static void on_write(uv_write_t *uw, int status)
{
    struct wreq *w = (struct wreq *)uw;
    gw_conn_t *c = w->c;
    c->queued -= w->total;
    wreq_put(w);
    if (status < 0) {
        if (c->state != C_CLOSING)
            gw__conn_close(c);
        return;
    }
    gw_req_t *r = c->req;
    if (!r || c->state != C_HANDLING)
        return;
    /* Progress: restart the write timeout while output is still queued. */
    if (c->queued > 0)
        uv_timer_start(&c->timer, gw__conn_on_timer, (uint64_t)c->limits->write_timeout_ms, 0);
    else
        uv_timer_stop(&c->timer);
    if (r->above_high && c->queued < GW_WRITE_LOW_WATERMARK) {
        r->above_high = false;
        gw__req_emit(r, GW_REQ_EV_DRAINED);
    }
    if (r->ended && c->queued == 0)
        gw__conn_finish(c);
}

/* One write: [w->pre][chunk size line, w->data, CRLF when chunk][the last-chunk "0\r\n\r\n" when
 * last]: a streamed response's head, bytes and end that are ready together cost one writev. */
static void submit_parts(gw_conn_t *c, struct wreq *w, bool chunk, bool last)
{
    uv_buf_t bufs[4];
    int n = 0;
    size_t hl = 0, tl = 0;
    if (w->pre.len)
        bufs[n++] = uv_buf_init(w->pre.base, (unsigned)w->pre.len);
    if (chunk && w->data.len) {
        hl = (size_t)snprintf(w->head, sizeof(w->head), "%zx\r\n", w->data.len);
        memcpy(w->tail, "\r\n", 2);
        tl = 2;
        bufs[n++] = uv_buf_init(w->head, (unsigned)hl);
    }
    if (w->data.len)
        bufs[n++] = uv_buf_init(w->data.base, (unsigned)w->data.len);
    if (last) {
        memcpy(w->tail + tl, "0\r\n\r\n", 5);
        tl += 5;
    }
    if (tl)
        bufs[n++] = uv_buf_init(w->tail, (unsigned)tl);
    w->total = w->pre.len + hl + w->data.len + tl;
    if (n == 0) {
        wreq_put(w);
        return;
    }
    if (c->req)
        c->req->bytes_out += w->total;
    uv_buf_t *rest = bufs;
    if (c->queued == 0) {
        /* Nothing in flight: write now. A socket that takes it all costs one writev and no
         * write request, callback or epoll_ctl (uv_write would re-arm the watcher each time). */
        int done = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
        if (done == (int)w->total) {
            wreq_put(w);
            if (c->req && c->state == C_HANDLING)
                uv_timer_stop(&c->timer); /* as on_write does once nothing is queued */
            return;
        }
        if (done < 0 && done != UV_EAGAIN) {
            wreq_put(w);
            gw__conn_close(c);
            return;
        }
        for (size_t left = done > 0 ? (size_t)done : 0; left;) { /* skip what was written */
            size_t k = left < rest->len ? left : rest->len;
            rest->base += k;
            rest->len -= k;
            left -= k;
            if (!rest->len) {
                rest++;
                n--;
            }
        }
        if (c->state == C_HANDLING)
            uv_timer_start(&c->timer, gw__conn_on_timer, (uint64_t)c->limits->write_timeout_ms, 0);
    }
    c->queued += w->total;
    int rc = uv_write(&w->w, (uv_stream_t *)&c->tcp, rest, (unsigned)n, on_write);
    if (rc < 0) {
        c->queued -= w->total;
        wreq_put(w);
        gw__conn_close(c);
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
    submit_parts(c, w, false, false);
    if (c->state == C_HANDLING && c->queued == 0)
        gw__conn_finish(c);
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
    /* The head waits for the first bytes (gw_req_stream_send), to go out in the same write. */
    gw_buf_reset(&r->head_pending);
    put_head(r, &r->head_pending, status, content_type, extra_headers, -1);
}

void gw_req_stream_send(gw_req_t *r, gw_buf_t *b, bool last)
{
    gw_conn_t *c = r->conn;
    if (!c || c->state == C_CLOSING || r->ended) {
        gw_buf_reset(b);
        r->ended = r->ended || last;
        return;
    }
    if (b->len || r->head_pending.len || (last && r->chunked)) {
        struct wreq *w = wreq_get(c);
        gw_buf_t tmp = w->data; /* swap: the caller keeps an empty buffer with capacity */
        w->data = *b;
        *b = tmp;
        gw_buf_reset(b);
        tmp = w->pre;
        w->pre = r->head_pending;
        r->head_pending = tmp;
        gw_buf_reset(&r->head_pending);
        submit_parts(c, w, r->chunked, last && r->chunked);
    }
    if (!last) {
        if (c->queued > GW_WRITE_HIGH_WATERMARK)
            r->above_high = true;
        return;
    }
    r->ended = true;
    if (c->state == C_HANDLING && c->queued == 0)
        gw__conn_finish(c);
}

void gw_req_stream_write(gw_req_t *r, gw_buf_t *b)
{
    gw_req_stream_send(r, b, false);
}

void gw_req_stream_end(gw_req_t *r)
{
    gw_buf_t none;
    gw_buf_init(&none);
    gw_req_stream_send(r, &none, true);
    gw_buf_dispose(&none);
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

gw_str_t gw_req_query(const gw_req_t *r)
{
    gw_str_t u = gw_buf_str(&r->url);
    const char *q = u.len ? memchr(u.base, '?', u.len) : NULL;
    return q ? gw_str_n(q + 1, u.len - (size_t)(q + 1 - u.base)) : GW_STR_LIT("");
}

gw_str_t gw_req_header(const gw_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (gw_str_ieq(r->hdrs[i].name, name))
            return r->hdrs[i].value;
    return GW_STR_NULL;
}

size_t gw_req_header_count(const gw_req_t *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_hdrs; i++)
        n += gw_str_ieq(r->hdrs[i].name, name);
    return n;
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

uint64_t gw_req_bytes_out(const gw_req_t *r)
{
    return r->bytes_out;
}

uint64_t gw_req_first_byte_ns(const gw_req_t *r)
{
    return r->first_byte_ns;
}

const char *gw_req_peer(const gw_req_t *r)
{
    return r->peer;
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

bool gw_req_cut_short(const gw_req_t *r)
{
    return r->cut_short;
}

bool gw_req_client_gone(const gw_req_t *r)
{
    return !r->conn || r->conn->state == C_CLOSING;
}

void gw_req_release(gw_req_t *r)
{
    assert(!r->released);
    r->released = true;
    gw__req_unref(r);
}
