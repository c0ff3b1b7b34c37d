#include "gateway/access_log.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/json.h"
#include "gateway/log.h"

struct gw_alog {
    uv_loop_t *loop;
    char *path;         /** owned; NULL for stderr */
    uv_file fd;         /** current target */
    uv_file next_fd;    /** reopened file waiting for the write in flight to end, -1 none */
    gw_buf_t pending;   /** whole lines not yet handed to a write */
    gw_buf_t inflight;  /** lent to uv_fs_write until on_write */
    size_t off;         /** bytes of inflight already written */
    size_t cut;         /** end of the current write within inflight */
    uint64_t pending_lines, inflight_lines;
    uint64_t lines, dropped;
    uv_fs_t wreq, oreq;
    bool busy, opening, closing, failing;
    gw_jgen_t *j;
};

static const int open_flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;

gw_alog_t *gw_alog_new(uv_loop_t *loop, const char *target, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (!target || strcmp(target, "off") == 0)
        return NULL;
    uv_file fd = 2;
    if (strcmp(target, "stderr") != 0) {
        /* Before the loop runs (start-up), like the config file: a synchronous open is fine here. */
        uv_fs_t req;
        fd = uv_fs_open(NULL, &req, target, open_flags, 0640, NULL);
        uv_fs_req_cleanup(&req);
        if (fd < 0) {
            snprintf(err, errlen, "access_log: cannot open %s: %s", target, uv_strerror(fd));
            return NULL;
        }
    }
    gw_alog_t *l = gw_xcalloc(1, sizeof(*l));
    l->loop = loop;
    l->path = fd == 2 ? NULL : gw_xstrndup(target, strlen(target));
    l->fd = fd;
    l->next_fd = -1;
    gw_buf_init(&l->pending);
    gw_buf_init(&l->inflight);
    l->j = gw_jgen_new(&l->pending);
    return l;
}

static void on_closed_fd(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    free(req);
}

static void close_fd(gw_alog_t *l, uv_file fd)
{
    if (fd <= 2)
        return;
    uv_fs_t *req = gw_xmalloc(sizeof(*req));
    if (uv_fs_close(l->loop, req, fd, on_closed_fd) < 0)
        free(req);
}

static void free_alog(gw_alog_t *l)
{
    gw_jgen_free(l->j);
    gw_buf_dispose(&l->pending);
    gw_buf_dispose(&l->inflight);
    free(l->path);
    free(l);
}

/* Nothing in flight: the closing log goes, or a reopened file takes over. */
static void settle(gw_alog_t *l)
{
    if (l->next_fd >= 0) {
        close_fd(l, l->fd);
        l->fd = l->next_fd;
        l->next_fd = -1;
    }
    if (l->closing && !l->opening && !l->pending.len) {
        close_fd(l, l->fd);
        free_alog(l);
    }
}

static void on_write(uv_fs_t *req);

/* The next write: whole lines, at most PIPE_BUF bytes on stderr (a single longer line whole). */
static void write_some(gw_alog_t *l)
{
    size_t end = l->inflight.len;
    if (!l->path && end - l->off > PIPE_BUF) {
        const char *base = l->inflight.base + l->off;
        size_t k = PIPE_BUF;
        while (k > 0 && base[k - 1] != '\n')
            k--;
        if (k == 0) {
            const char *nl = memchr(base, '\n', end - l->off);
            k = nl ? (size_t)(nl - base) + 1 : end - l->off;
        }
        end = l->off + k;
    }
    l->cut = end;
    uv_buf_t b = uv_buf_init(l->inflight.base + l->off, (unsigned)(end - l->off));
    int rc = uv_fs_write(l->loop, &l->wreq, l->fd, &b, 1, -1, on_write);
    if (rc < 0) {
        uv_fs_req_cleanup(&l->wreq);
        l->dropped += l->inflight_lines;
        l->busy = false;
        gw_log(GW_LOG_ERROR, NULL, "event=access_log_write_failed error=\"%s\"", uv_strerror(rc));
    }
}

static void start_write(gw_alog_t *l)
{
    if (l->busy || !l->pending.len)
        return;
    gw_buf_t t = l->inflight;
    l->inflight = l->pending;
    l->pending = t;
    gw_buf_reset(&l->pending);
    l->inflight_lines = l->pending_lines;
    l->pending_lines = 0;
    l->off = 0;
    l->busy = true;
    write_some(l);
}

static void on_write(uv_fs_t *req)
{
    gw_alog_t *l = (gw_alog_t *)((char *)req - offsetof(gw_alog_t, wreq));
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n < 0) {
        /* Logged once per failing spell; the lines of this batch are lost and counted. */
        if (!l->failing)
            gw_log(GW_LOG_ERROR, NULL, "event=access_log_write_failed error=\"%s\"", uv_strerror((int)n));
        l->failing = true;
        l->dropped += l->inflight_lines;
        l->off = l->inflight.len;
    } else {
        l->failing = false;
        l->off += (size_t)n; /* a short write goes on from where it stopped */
    }
    if (l->off < l->inflight.len) {
        write_some(l);
        if (l->busy)
            return;
    } else {
        if (n >= 0)
            l->lines += l->inflight_lines;
        l->busy = false;
    }
    gw_buf_reset(&l->inflight);
    settle(l);
    if (l->closing && !l->pending.len)
        return; /* settle freed l, or will once the reopen ends */
    start_write(l);
}

static void on_reopened(uv_fs_t *req)
{
    gw_alog_t *l = (gw_alog_t *)((char *)req - offsetof(gw_alog_t, oreq));
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    l->opening = false;
    if (fd < 0) {
        gw_log(GW_LOG_ERROR, NULL, "event=access_log_reopen_failed path=%s error=\"%s\"", l->path,
               uv_strerror((int)fd));
    } else {
        l->next_fd = (uv_file)fd;
        gw_log(GW_LOG_INFO, NULL, "event=access_log_reopened path=%s", l->path);
    }
    if (!l->busy)
        settle(l);
}

void gw_alog_reopen(gw_alog_t *l)
{
    if (!l || !l->path || l->opening || l->closing)
        return;
    l->opening = true;
    if (uv_fs_open(l->loop, &l->oreq, l->path, open_flags, 0640, on_reopened) < 0) {
        uv_fs_req_cleanup(&l->oreq);
        l->opening = false;
    }
}

void gw_alog_close(gw_alog_t *l)
{
    if (!l)
        return;
    l->closing = true;
    if (l->busy || l->opening)
        return; /* the last callback settles */
    if (l->pending.len) {
        start_write(l);
        if (l->busy)
            return;
    }
    settle(l);
}

uint64_t gw_alog_lines(const gw_alog_t *l)
{
    return l->lines;
}

uint64_t gw_alog_dropped(const gw_alog_t *l)
{
    return l->dropped;
}

static const char *route_name(gw_route_kind_t k)
{
    switch (k) {
    case GW_ROUTE_RESPONSES:
        return "responses";
    case GW_ROUTE_INVOCATIONS:
        return "invocations";
    default:
        return "none";
    }
}

static void kv_ms_or_null(gw_jgen_t *j, const char *k, uint64_t from_ns, uint64_t to_ns)
{
    if (to_ns && from_ns) {
        gw_jgen_kv_int(j, k, gw_summary_ms(from_ns, to_ns));
    } else {
        gw_jgen_cstr(j, k);
        gw_jgen_null(j);
    }
}

static void kv_tokens(gw_jgen_t *j, const char *k, const ad_usage_t *u, bool output)
{
    gw_jgen_cstr(j, k);
    if (u && u->present)
        gw_jgen_int(j, output ? u->output : u->input);
    else
        gw_jgen_null(j);
}

/* One line; every value comes from the summary's accounting, never from a body or a header
 * other than the client's own request id. */
static void format_line(gw_jgen_t *j, const gw_call_summary_t *s)
{
    char when[40];
    time_t sec = (time_t)(s->start_unix_us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)((s->start_unix_us / 1000) % 1000));
    const gw_attempt_t *last = s->n_attempts ? &s->attempts[s->n_attempts - 1] : NULL;
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "time", when);
    gw_jgen_kv_cstr(j, "request_id", s->request_id);
    gw_jgen_lit(j, "client_request_id");
    if (s->client_request_id.base)
        gw_jgen_str(j, s->client_request_id);
    else
        gw_jgen_null(j);
    gw_jgen_kv_cstr(j, "requester", s->requester);
    gw_jgen_kv_cstr(j, "client", s->client);
    gw_jgen_kv_cstr(j, "route", route_name(s->route));
    gw_jgen_kv_cstr(j, "endpoint", s->routed ? s->routed->name : NULL);
    gw_jgen_kv_cstr(j, "served", s->served ? s->served->name : NULL);
    gw_jgen_kv_cstr(j, "replica", last ? last->replica : NULL);
    gw_jgen_kv_int(j, "attempts", s->n_attempts);
    gw_jgen_kv_int(j, "status", s->status);
    gw_jgen_kv_cstr(j, "finish_status", s->finish_status);
    gw_jgen_kv_cstr(j, "error_code", s->error_code);
    gw_jgen_lit(j, "stream");
    gw_jgen_bool(j, s->req_parsed && s->req->stream);
    kv_tokens(j, "input_tokens", s->usage, false);
    kv_tokens(j, "output_tokens", s->usage, true);
    kv_ms_or_null(j, "ttft_ms", s->start_ns, s->first_token_ns);
    gw_jgen_kv_int(j, "queue_ms", (int64_t)(s->queue_ns / 1000000));
    gw_jgen_kv_int(j, "duration_ms", gw_summary_ms(s->start_ns, s->end_ns));
    gw_jgen_kv_int(j, "bytes_in", (int64_t)s->body_bytes);
    gw_jgen_kv_int(j, "bytes_out", (int64_t)s->bytes_out);
    gw_jgen_map_close(j);
    gw_jgen_done(j);
}

void gw_alog_observe(const gw_call_summary_t *s, void *ud)
{
    gw_alog_t *l = ud;
    if (!s->loggable || l->closing)
        return;
    size_t before = l->pending.len;
    gw_jgen_target(l->j, &l->pending);
    format_line(l->j, s);
    gw_buf_append(&l->pending, "\n", 1);
    if (l->pending.len > GW_ALOG_MAX_PENDING) {
        l->pending.len = before; /* bounded: this line is dropped, counted (and scraped) */
        l->dropped++;
        return;
    }
    l->pending_lines++;
    start_write(l);
}
