#include "gateway/upstream.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/log.h"

struct gw_upctx {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int in_curl;         /** depth of curl_multi_socket_action calls on the stack */
    gw_up_t *graveyard;  /** transfers cancelled inside a curl callback, freed afterwards */
    long connects;
    bool closing;
    gw_upctx_batch_cb batch_cb;
    void *batch_ud;
    struct sock_ctx **socks; /** by fd: a poll handle per upstream socket, for the socket's life */
    size_t n_socks;
};

struct gw_up {
    gw_upctx_t *u;
    CURL *easy;
    struct curl_slist *headers;
    gw_up_cb_t cb;
    void *ud;
    gw_buf_t ctype;
    int retry_after;
    bool responded, paused, cancelled;
    char peer[64];
    char errbuf[CURL_ERROR_SIZE];
    gw_up_t *next_dead;
};

/* One per upstream socket, from its opening (open_socket) to its closing (close_socket), not per
 * transfer: a kept-alive connection reused by the next transfer costs no poll handle setup
 * (uv_poll_init's FIONBIO and epoll probe) and no epoll_ctl while its event mask stays the same. */
struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    gw_upctx_t *u;
    bool idle;   /** no transfer on it (curl said REMOVE): readable now means the peer closed */
    bool polling;
    int events;
};

static void drain_info(gw_upctx_t *u);

static void up_free(gw_up_t *up)
{
    if (up->easy) {
        curl_multi_remove_handle(up->u->multi, up->easy);
        curl_easy_cleanup(up->easy);
    }
    curl_slist_free_all(up->headers);
    gw_buf_dispose(&up->ctype);
    free(up);
}

static void bury_dead(gw_upctx_t *u)
{
    while (u->graveyard) {
        gw_up_t *up = u->graveyard;
        u->graveyard = up->next_dead;
        up_free(up);
    }
}

static void socket_action(gw_upctx_t *u, curl_socket_t fd, int flags)
{
    int running;
    u->in_curl++;
    curl_multi_socket_action(u->multi, fd, flags, &running);
    u->in_curl--;
    if (u->in_curl == 0) {
        bury_dead(u);
        drain_info(u); /* unconditionally: the last DONE message must not be lost */
        if (u->batch_cb)
            u->batch_cb(u->batch_ud);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *sc = h->data;
    if (sc->idle) {
        /* An idle kept-alive connection became readable (closed, or junk): stop watching it;
         * curl finds it dead when it next considers reusing it, and closes it. */
        uv_poll_stop(&sc->poll);
        sc->polling = false;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    socket_action(sc->u, sc->fd, flags);
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static struct sock_ctx *sock_at(gw_upctx_t *u, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < u->n_socks ? u->socks[fd] : NULL;
}

/* Forget fd's handle (its socket is closing, or the number was reused by a socket that did not
 * go through close_socket): the handle stops watching before the fd number can mean another. */
static void sock_forget(gw_upctx_t *u, curl_socket_t fd)
{
    struct sock_ctx *sc = sock_at(u, fd);
    if (!sc)
        return;
    u->socks[fd] = NULL;
    uv_close((uv_handle_t *)&sc->poll, on_poll_closed); /* epoll_ctl DEL now, before close(fd) */
}

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    gw_upctx_t *u = clientp;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    if (fd != CURL_SOCKET_BAD)
        sock_forget(u, fd); /* a stale entry under this number */
    return fd;
}

static int close_socket(void *clientp, curl_socket_t fd)
{
    sock_forget(clientp, fd);
    return close(fd);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    gw_upctx_t *u = userp;
    struct sock_ctx *sc = sock_at(u, fd);
    if (what == CURL_POLL_REMOVE) {
        /* The transfer is over; the connection may stay in curl's cache. Keep watching for
         * readability (the mask a transfer ends with, so no epoll_ctl) to see it close. */
        if (sc) {
            sc->idle = true;
            if (sc->polling && sc->events != UV_READABLE) {
                uv_poll_start(&sc->poll, UV_READABLE, on_poll);
                sc->events = UV_READABLE;
            }
        }
        return 0;
    }
    if (!sc) {
        sc = gw_xcalloc(1, sizeof(*sc));
        sc->fd = fd;
        sc->u = u;
        if (uv_poll_init_socket(u->loop, &sc->poll, fd) < 0) {
            free(sc);
            return -1;
        }
        sc->poll.data = sc;
        if ((size_t)fd >= u->n_socks) {
            size_t n = u->n_socks ? u->n_socks : 64;
            while (n <= (size_t)fd)
                n *= 2;
            u->socks = gw_xrealloc(u->socks, n * sizeof(*u->socks));
            memset(u->socks + u->n_socks, 0, (n - u->n_socks) * sizeof(*u->socks));
            u->n_socks = n;
        }
        u->socks[fd] = sc;
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    sc->idle = false;
    if (!sc->polling || sc->events != events) {
        uv_poll_start(&sc->poll, events, on_poll);
        sc->polling = true;
        sc->events = events;
    }
    return 0;
}

static void on_uv_timeout(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    gw_upctx_t *u = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_uv_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static gw_up_result_t map_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return GW_UP_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return GW_UP_E_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return GW_UP_E_TIMEOUT;
    case CURLE_WRITE_ERROR:
        return GW_UP_E_ABORTED;
    case CURLE_PARTIAL_FILE:
        return GW_UP_E_EOF;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return GW_UP_E_RESET;
    default:
        return GW_UP_E_OTHER;
    }
}

static void drain_info(gw_upctx_t *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        gw_up_t *up = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&up);
        CURLcode rc = m->data.result;
        long nc = 0;
        curl_easy_getinfo(up->easy, CURLINFO_NUM_CONNECTS, &nc);
        u->connects += nc;
        curl_multi_remove_handle(u->multi, up->easy);
        if (up->cancelled) {
            up_free(up);
            continue;
        }
        if (rc == CURLE_OK && !up->responded) {
            long status = 0;
            curl_easy_getinfo(up->easy, CURLINFO_RESPONSE_CODE, &status);
            up->responded = true;
            up->cb.on_response(up->ud, status, gw_buf_str(&up->ctype), up->retry_after);
        }
        const char *detail = up->errbuf[0] ? up->errbuf : curl_easy_strerror(rc);
        up->cb.on_done(up->ud, map_result(rc), detail);
        up_free(up);
    }
}

/* Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as whole seconds from now in
 * 0..GW_UP_RETRY_AFTER_MAX; 0 when absent or unparsable. A huge delay (2147483647, or digits past
 * any integer) is capped rather than passed on; a date in the past is 0. */
static int parse_retry_after(const char *v, size_t len)
{
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (!len)
        return 0;
    if (v[0] >= '0' && v[0] <= '9') {
        long long secs = 0;
        for (size_t i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9')
                return 0;
            if (secs < GW_UP_RETRY_AFTER_MAX)
                secs = secs * 10 + (v[i] - '0');
        }
        return secs > GW_UP_RETRY_AFTER_MAX ? GW_UP_RETRY_AFTER_MAX : (int)secs;
    }
    char date[64];
    if (len >= sizeof(date))
        return 0;
    memcpy(date, v, len);
    date[len] = '\0';
    time_t at = curl_getdate(date, NULL);
    if (at == (time_t)-1)
        return 0;
    time_t now = time(NULL);
    if (at <= now)
        return 0;
    return at - now > GW_UP_RETRY_AFTER_MAX ? GW_UP_RETRY_AFTER_MAX : (int)(at - now);
}

static size_t on_curl_header(char *data, size_t size, size_t n, void *ud)
{
    gw_up_t *up = ud;
    size_t len = size * n;
    gw_str_t line = gw_str_n(data, len);
    if (gw_str_has_prefix(line, "HTTP/")) {
        gw_buf_reset(&up->ctype); /* a new response (after 1xx) */
        up->retry_after = 0;
    } else if (len >= 13 && strncasecmp(data, "content-type:", 13) == 0) {
        gw_str_t v = gw_str_n(data + 13, len - 13);
        while (v.len && (*v.base == ' ' || *v.base == '\t'))
            v.base++, v.len--;
        while (v.len && (v.base[v.len - 1] == '\r' || v.base[v.len - 1] == '\n' || v.base[v.len - 1] == ' '))
            v.len--;
        gw_buf_reset(&up->ctype);
        gw_buf_append_str(&up->ctype, v);
    } else if (len >= 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        up->retry_after = parse_retry_after(data + 12, len - 12);
    } else if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(up->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && !up->responded && !up->cancelled) {
            up->responded = true;
            char *ip = NULL;
            long port = 0;
            curl_easy_getinfo(up->easy, CURLINFO_PRIMARY_IP, &ip);
            curl_easy_getinfo(up->easy, CURLINFO_PRIMARY_PORT, &port);
            if (ip)
                snprintf(up->peer, sizeof(up->peer), "%s:%ld", ip, port);
            up->cb.on_response(up->ud, status, gw_buf_str(&up->ctype), up->retry_after);
        }
    }
    return len;
}

static size_t on_curl_write(char *data, size_t size, size_t n, void *ud)
{
    gw_up_t *up = ud;
    size_t len = size * n;
    if (up->cancelled)
        return 0;
    int rc = up->cb.on_data(up->ud, data, len);
    if (rc == GW_UP_PAUSE) {
        up->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rc < 0 || up->cancelled)
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    return len;
}

gw_upctx_t *gw_upctx_new(uv_loop_t *loop)
{
    gw_upctx_t *u = gw_xcalloc(1, sizeof(*u));
    u->loop = loop;
    u->multi = curl_multi_init();
    if (!u->multi) {
        free(u);
        return NULL;
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    /* Keep enough idle connections for a busy worker so keep-alive reuse holds under load. */
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return u;
}

static void on_ctx_timer_closed(uv_handle_t *h)
{
    gw_upctx_t *u = h->data;
    free(u);
}

void gw_upctx_free(gw_upctx_t *u)
{
    if (!u)
        return;
    u->closing = true;
    bury_dead(u);
    /* Remaining easy handles belong to owners that are being torn down too. Closing the cached
     * connections goes through close_socket, which closes their poll handles. */
    curl_multi_cleanup(u->multi);
    for (size_t fd = 0; fd < u->n_socks; fd++)
        sock_forget(u, (curl_socket_t)fd);
    free(u->socks);
    uv_close((uv_handle_t *)&u->timer, on_ctx_timer_closed);
}

void gw_upctx_on_batch(gw_upctx_t *u, gw_upctx_batch_cb cb, void *ud)
{
    u->batch_cb = cb;
    u->batch_ud = ud;
}

long gw_upctx_connects(const gw_upctx_t *u)
{
    return u->connects;
}

gw_up_t *gw_up_start(gw_upctx_t *u, const gw_up_req_t *req, const gw_up_cb_t *cb, void *ud)
{
    gw_up_t *up = gw_xcalloc(1, sizeof(*up));
    up->u = u;
    up->cb = *cb;
    up->ud = ud;
    up->easy = curl_easy_init();
    if (!up->easy) {
        free(up);
        return NULL;
    }
    CURL *e = up->easy;
    char line[512];
    if (req->body.base && !req->content_type) {
        up->headers = curl_slist_append(up->headers, "Content-Type: application/json");
    } else if (req->body.base) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        up->headers = curl_slist_append(up->headers, line);
    }
    snprintf(line, sizeof(line), "Accept: %s", req->accept ? req->accept : "application/json");
    up->headers = curl_slist_append(up->headers, line);
    up->headers = curl_slist_append(up->headers, "Expect:"); /* no 100-continue round trip */
    if (req->api_key) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", req->api_key);
        up->headers = curl_slist_append(up->headers, line);
    }
    if (req->request_id) {
        snprintf(line, sizeof(line), "x-request-id: %s", req->request_id);
        up->headers = curl_slist_append(up->headers, line);
    }
    for (size_t i = 0; i < req->n_headers; i++)
        up->headers = curl_slist_append(up->headers, req->headers[i]);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, up->headers);
    if (req->body.base) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body.base);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->total_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* 16 KiB receive buffer: a whole-body answer of a few KiB is one recvfrom, and curl's poll
     * between reads goes with the second read. An open stream holds it for its life, but only
     * the pages its reads touch are resident: bench/run.sh measured 31.5 KB per idle stream
     * against 31.0 KB with 4 KiB, for two syscalls fewer per whole-body request. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, up);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, up);
    curl_easy_setopt(e, CURLOPT_PRIVATE, up);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, up->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "agate/" AGATE_VERSION);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, u);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        up_free(up);
        return NULL;
    }
    return up;
}

void gw_up_resume(gw_up_t *up)
{
    if (!up->paused || up->cancelled)
        return;
    up->paused = false;
    /* May call on_curl_write before returning, and the owner may cancel from there: count it as
     * a curl call so such a cancel is deferred until curl is off the stack. */
    gw_upctx_t *u = up->u;
    u->in_curl++;
    curl_easy_pause(up->easy, CURLPAUSE_CONT);
    u->in_curl--;
    if (u->in_curl == 0) {
        bury_dead(u);
        drain_info(u);
        if (u->batch_cb)
            u->batch_cb(u->batch_ud);
    }
}

bool gw_up_paused(const gw_up_t *up)
{
    return up->paused;
}

void gw_up_cancel(gw_up_t *up)
{
    if (up->cancelled)
        return;
    up->cancelled = true;
    gw_upctx_t *u = up->u;
    if (u->in_curl) {
        /* Inside a curl callback: removing the handle now would be a recursive API call. */
        up->next_dead = u->graveyard;
        u->graveyard = up;
        return;
    }
    up_free(up);
}

const char *gw_up_peer(gw_up_t *up)
{
    if (!up->peer[0]) {
        char *ip = NULL;
        long port = 0;
        curl_easy_getinfo(up->easy, CURLINFO_PRIMARY_IP, &ip);
        curl_easy_getinfo(up->easy, CURLINFO_PRIMARY_PORT, &port);
        if (ip && *ip)
            snprintf(up->peer, sizeof(up->peer), "%s:%ld", ip, port);
    }
    return up->peer;
}
