/* loadgen: a small HTTP/1.1 load client for streaming benchmarks (libuv + llhttp).
 *
 * Sends the same POST on N keep-alive connections and records, per request, the time to the
 * first response body byte (TTFB: the first SSE event) and to the end of the response (TTLB:
 * the terminating chunk). Three modes:
 *   open loop   (--rate R > 0): request i is due at t0 + i/R whatever happened before; a due
 *               request waits for an idle connection and its latency counts from the due time
 *               (no coordinated omission), so queueing in the target shows up in the figures;
 *   closed loop (--rate 0): each connection sends its next request when the previous one ends,
 *               until --requests are done or --duration passes (deterministic with -c 1);
 *   hold        (--hold): open N streams, ramped, wait until every one has its first body byte,
 *               print `ready ...`, keep them all open for --hold-seconds, exit.
 * Output: one `loadgen key=value ...` line on stdout (microseconds, 1 decimal); --samples FILE
 * also writes `ttfb_us ttlb_us start_ms` per measured request, in completion order. Every run
 * is bounded by --timeout. Loopback benchmarking tool only: the request bytes are fixed, the
 * response is parsed with llhttp, and a response counts as ok when its status is 200 and (with
 * --expect) its body holds STR.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "llhttp.h"

#define NS_PER_MS             1000000ull
#define MAX_EXPECT            64
#define READ_BUF              (64 * 1024)
#define MAX_INFLIGHT_CONNECTS 256

enum conn_state { CONN_FREE, CONN_CONNECTING, CONN_IDLE, CONN_BUSY, CONN_CLOSING };

typedef struct samples {
    uint64_t *v; /** malloc'd, owned; nanoseconds */
    size_t n, cap;
} samples_t;

struct lg;

typedef struct conn {
    uv_tcp_t tcp; /** embedded; the slot is reusable only after on_close */
    uv_connect_t connect_req;
    uv_write_t write_req;
    llhttp_t parser;
    struct lg *lg;
    enum conn_state state;
    bool ever_connected; /** reconnect after a server-side close only if this worked once */
    bool reconnect;      /** start a new connection from on_close */
    bool done;           /** response complete (set by llhttp, acted on after execute) */
    bool measured;       /** request counts towards the figures (due after warm-up) */
    bool established;    /** hold mode: first body byte seen */
    bool expect_found;
    int status;
    uint64_t t_start;       /** ns, latency origin: due time (open loop, see dispatch) or send time */
    uint64_t t_first;       /** ns, first body byte, 0 = none yet */
    uint64_t t_last;        /** ns, end of the response */
    uint64_t t_idle;        /** ns, when the connection last became idle */
    char carry[MAX_EXPECT]; /** tail of the body so far, for --expect across chunk boundaries */
    size_t carry_len;
} conn_t;

struct lg {
    uv_loop_t *loop;
    /* options */
    const char *host;
    int port;
    const char *path;
    const char *body_file;
    const char *samples_file;
    const char *expect;
    size_t expect_len;
    size_t n_conns;
    double rate;       /* req/s, 0 = closed loop */
    double duration_s; /* measured part */
    double warmup_s;
    double timeout_s; /* hard bound on the whole run */
    double ramp;      /* hold mode: new connections per second */
    double hold_s;
    uint64_t max_requests; /* closed loop: stop after this many completed, 0 = no limit */
    bool hold;
    bool quiet;
    /* state */
    struct sockaddr_in addr;
    char *request; /** malloc'd, owned: header block + body */
    size_t request_len;
    conn_t *conns; /** calloc'd array of n_conns, owned */
    conn_t **idle; /** stack of idle connections, owned */
    size_t n_idle;
    size_t n_connecting;
    size_t n_started; /* hold mode: connections started so far */
    uv_timer_t tick;
    uv_timer_t deadline;
    uv_signal_t sigint, sigterm;
    llhttp_settings_t settings;
    char rbuf[READ_BUF];
    uint64_t t0, t_warm, t_end, t_ready;
    uint64_t next; /* open loop: index of the next request to issue */
    bool issuing;
    bool finished;
    bool ready_printed;
    /* counters */
    uint64_t sent, completed, measured_ok, errors, bad_status, bad_body, conn_errors, reconnects;
    uint64_t late, body_bytes, established, unsent;
    samples_t ttfb, ttlb;
    samples_t starts; /* start of each measured request, ns since t0 (for --samples) */
};

static void dispatch(struct lg *lg);
static void start_conn(conn_t *c);
static void finish(struct lg *lg, const char *why);

static int samples_push(samples_t *s, uint64_t v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *nv = realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in microseconds; 0 when empty. */
static double pct_us(const samples_t *s, double q)
{
    if (s->n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1000.0;
}

static void on_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->state = CONN_FREE;
    if (c->reconnect && !c->lg->finished) {
        c->reconnect = false;
        c->lg->reconnects++;
        start_conn(c);
    }
}

static void close_conn(conn_t *c, bool reconnect)
{
    struct lg *lg = c->lg;
    if (c->state == CONN_CLOSING || c->state == CONN_FREE)
        return;
    if (c->state == CONN_IDLE) {
        for (size_t i = 0; i < lg->n_idle; i++) {
            if (lg->idle[i] == c) {
                lg->idle[i] = lg->idle[--lg->n_idle];
                break;
            }
        }
    }
    if (c->state == CONN_CONNECTING && lg->n_connecting > 0)
        lg->n_connecting--;
    c->state = CONN_CLOSING;
    c->reconnect = reconnect;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void make_idle(conn_t *c)
{
    c->state = CONN_IDLE;
    c->t_idle = uv_hrtime();
    c->lg->idle[c->lg->n_idle++] = c;
}

/* Looks for --expect in the body, also when it straddles two reads. */
static void scan_expect(conn_t *c, const char *at, size_t n)
{
    struct lg *lg = c->lg;
    size_t keep = lg->expect_len - 1;
    if (c->expect_found || lg->expect_len == 0)
        return;
    if (c->carry_len > 0) {
        char joined[2 * MAX_EXPECT];
        size_t take = n < keep ? n : keep;
        memcpy(joined, c->carry, c->carry_len);
        memcpy(joined + c->carry_len, at, take);
        if (memmem(joined, c->carry_len + take, lg->expect, lg->expect_len)) {
            c->expect_found = true;
            return;
        }
    }
    if (memmem(at, n, lg->expect, lg->expect_len)) {
        c->expect_found = true;
        return;
    }
    if (n >= keep) {
        memcpy(c->carry, at + n - keep, keep);
        c->carry_len = keep;
    } else {
        size_t total = c->carry_len + n;
        size_t drop = total > keep ? total - keep : 0;
        memmove(c->carry, c->carry + drop, c->carry_len - drop);
        memcpy(c->carry + c->carry_len - drop, at, n);
        c->carry_len = total - drop;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->status = p->status_code;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    struct lg *lg = c->lg;
    if (c->t_first == 0) {
        c->t_first = uv_hrtime();
        if (lg->hold && !c->established) {
            c->established = true;
            if (c->status == 200) {
                lg->established++;
                if (samples_push(&lg->ttfb, c->t_first - c->t_start) != 0)
                    return -1;
            } else {
                lg->bad_status++;
            }
        }
    }
    lg->body_bytes += n;
    scan_expect(c, at, n);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->t_last = uv_hrtime();
    c->done = true;
    return 0;
}

/* A whole response arrived: account for it and hand the connection back to the scheduler. */
static void complete_request(conn_t *c)
{
    struct lg *lg = c->lg;
    c->done = false;
    lg->completed++;
    if (c->t_first == 0)
        c->t_first = c->t_last;
    bool ok = true;
    if (c->status != 200) {
        lg->bad_status++;
        ok = false;
    } else if (lg->expect_len > 0 && !c->expect_found) {
        lg->bad_body++;
        ok = false;
    }
    if (!ok) {
        lg->errors++;
    } else if (c->measured) {
        lg->measured_ok++;
        if (samples_push(&lg->ttfb, c->t_first - c->t_start) != 0 ||
            samples_push(&lg->ttlb, c->t_last - c->t_start) != 0 ||
            samples_push(&lg->starts, c->t_start - lg->t0) != 0) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    make_idle(c);
    if (lg->max_requests > 0 && lg->completed >= lg->max_requests && lg->rate == 0) {
        finish(lg, "requests");
        return;
    }
    dispatch(lg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    /* One buffer for every connection: libuv calls on_read right after on_alloc and the bytes
     * are parsed before returning, so nothing outlives the callback. */
    *buf = uv_buf_init(c->lg->rbuf, sizeof(c->lg->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    struct lg *lg = c->lg;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* A close while idle is a keep-alive limit on the server side: reconnect quietly. */
        if (c->state == CONN_BUSY) {
            lg->errors++;
            lg->conn_errors++;
        }
        close_conn(c, c->ever_connected && !lg->hold);
        return;
    }
    if (c->state != CONN_BUSY) {
        lg->errors++;
        close_conn(c, !lg->hold);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (err != HPE_OK) {
        fprintf(stderr, "loadgen: bad response: %s\n", llhttp_errno_name(err));
        lg->errors++;
        close_conn(c, !lg->hold);
        return;
    }
    if (c->done)
        complete_request(c);
}

static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->data;
    if (status < 0 && status != UV_ECANCELED) {
        c->lg->errors++;
        close_conn(c, !c->lg->hold);
    }
}

/* Sends the fixed request on an idle connection; `t_start` is the time its latency counts from. */
static void send_request(conn_t *c, uint64_t t_start, bool measured)
{
    struct lg *lg = c->lg;
    c->state = CONN_BUSY;
    c->t_start = t_start;
    c->t_first = 0;
    c->t_last = 0;
    c->status = 0;
    c->done = false;
    c->measured = measured;
    c->expect_found = false;
    c->carry_len = 0;
    lg->sent++;
    uv_buf_t b = uv_buf_init(lg->request, (unsigned)lg->request_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)lg->request_len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        lg->errors++;
        close_conn(c, !lg->hold);
        return;
    }
    if (n > 0)
        b = uv_buf_init(lg->request + n, (unsigned)(lg->request_len - (size_t)n));
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        lg->errors++;
        close_conn(c, !lg->hold);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    struct lg *lg = c->lg;
    if (c->state != CONN_CONNECTING)
        return; /* closed meanwhile (finish) */
    if (lg->n_connecting > 0)
        lg->n_connecting--;
    if (status < 0) {
        lg->conn_errors++;
        lg->errors++;
        if (!lg->quiet)
            fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(status));
        close_conn(c, false);
        return;
    }
    c->ever_connected = true;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        lg->conn_errors++;
        close_conn(c, false);
        return;
    }
    llhttp_init(&c->parser, HTTP_RESPONSE, &lg->settings);
    c->parser.data = c;
    if (lg->hold) {
        send_request(c, uv_hrtime(), true);
        return;
    }
    make_idle(c);
    dispatch(lg);
}

static void start_conn(conn_t *c)
{
    struct lg *lg = c->lg;
    int rc = uv_tcp_init(lg->loop, &c->tcp);
    if (rc != 0) {
        lg->conn_errors++;
        return;
    }
    c->tcp.data = c;
    c->state = CONN_CONNECTING;
    c->established = false;
    lg->n_connecting++;
    rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc == 0) {
        c->connect_req.data = c;
        rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&lg->addr, on_connect);
    }
    if (rc != 0) {
        lg->conn_errors++;
        lg->errors++;
        if (!lg->quiet)
            fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(rc));
        close_conn(c, false);
    }
}

/* Issues every request that is due (open loop) or one per idle connection (closed loop). */
static void dispatch(struct lg *lg)
{
    if (!lg->issuing || lg->finished)
        return;
    uint64_t now = uv_hrtime();
    if (lg->rate > 0) {
        while (lg->n_idle > 0) {
            uint64_t due = lg->t0 + (uint64_t)((double)lg->next * 1e9 / lg->rate);
            if (due >= lg->t_end) {
                lg->issuing = false;
                return;
            }
            if (due > now)
                return;
            conn_t *c = lg->idle[--lg->n_idle];
            /* Latency counts from the due time, except for the lag of our own 1 ms tick: when
             * the connection was already idle at the due time, the wait was ours, not the
             * target's. A request that had to wait for a free connection keeps its due time. */
            uint64_t start = now;
            if (c->t_idle > due) {
                start = due + (now - c->t_idle);
                if (c->t_idle - due > NS_PER_MS)
                    lg->late++;
            }
            lg->next++;
            send_request(c, start, due >= lg->t_warm);
        }
        return;
    }
    while (lg->n_idle > 0) {
        if (now >= lg->t_end || (lg->max_requests > 0 && lg->sent >= lg->max_requests)) {
            lg->issuing = false;
            return;
        }
        conn_t *c = lg->idle[--lg->n_idle];
        send_request(c, now, now >= lg->t_warm);
    }
}

static size_t count_busy(const struct lg *lg)
{
    size_t n = 0;
    for (size_t i = 0; i < lg->n_conns; i++)
        n += lg->conns[i].state == CONN_BUSY || lg->conns[i].state == CONN_CONNECTING;
    return n;
}

/* Connections that can still carry a request: open, or closing only to reconnect. */
static size_t count_live(const struct lg *lg)
{
    size_t n = 0;
    for (size_t i = 0; i < lg->n_conns; i++) {
        const conn_t *c = &lg->conns[i];
        n += c->state == CONN_CONNECTING || c->state == CONN_IDLE || c->state == CONN_BUSY ||
             (c->state == CONN_CLOSING && c->reconnect);
    }
    return n;
}

static void on_tick(uv_timer_t *t)
{
    struct lg *lg = t->data;
    uint64_t now = uv_hrtime();
    if (lg->hold) {
        double elapsed = (double)(now - lg->t0) / 1e9;
        size_t want = (size_t)(lg->ramp * elapsed) + 1;
        if (want > lg->n_conns)
            want = lg->n_conns;
        while (lg->n_started < want && lg->n_connecting < MAX_INFLIGHT_CONNECTS)
            start_conn(&lg->conns[lg->n_started++]);
        uint64_t settled = lg->established + lg->conn_errors + lg->bad_status;
        if (!lg->ready_printed && lg->n_started == lg->n_conns && settled >= lg->n_conns) {
            lg->ready_printed = true;
            lg->t_ready = now;
            printf("ready established=%" PRIu64 " conn_errors=%" PRIu64 " bad_status=%" PRIu64
                   " errors=%" PRIu64 " elapsed_s=%.2f\n",
                   lg->established, lg->conn_errors, lg->bad_status, lg->errors,
                   (double)(now - lg->t0) / 1e9);
            fflush(stdout);
        }
        if (lg->ready_printed && now - lg->t_ready >= (uint64_t)(lg->hold_s * 1e9))
            finish(lg, "held");
        return;
    }
    dispatch(lg);
    if (now >= lg->t_end && lg->issuing) {
        lg->issuing = false;
    }
    if (!lg->issuing && count_busy(lg) == 0) {
        finish(lg, "done");
        return;
    }
    /* Every connection failed for good (e.g. nothing listens yet): stop now, not at --duration. */
    if (count_live(lg) == 0)
        finish(lg, "no_connections");
}

static void on_deadline(uv_timer_t *t)
{
    struct lg *lg = t->data;
    if (lg->hold && !lg->ready_printed) {
        printf("ready established=%" PRIu64 " conn_errors=%" PRIu64 " bad_status=%" PRIu64 " errors=%" PRIu64
               " partial=1\n",
               lg->established, lg->conn_errors, lg->bad_status, lg->errors);
        fflush(stdout);
    }
    finish(lg, "timeout");
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    finish(s->data, "signal");
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP) {
        conn_t *c = h->data;
        c->reconnect = false;
        c->state = CONN_CLOSING;
        uv_close(h, on_close);
        return;
    }
    uv_close(h, NULL);
}

static void write_samples(const struct lg *lg)
{
    FILE *f = fopen(lg->samples_file, "w");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", lg->samples_file, strerror(errno));
        return;
    }
    for (size_t i = 0; i < lg->ttlb.n && i < lg->ttfb.n && i < lg->starts.n; i++)
        fprintf(f, "%.1f %.1f %.3f\n", (double)lg->ttfb.v[i] / 1000.0, (double)lg->ttlb.v[i] / 1000.0,
                (double)lg->starts.v[i] / 1e6);
    if (fclose(f) != 0)
        fprintf(stderr, "loadgen: %s: write failed\n", lg->samples_file);
}

/* Ends the run: prints the summary line and closes every handle so uv_run returns. */
static void finish(struct lg *lg, const char *why)
{
    if (lg->finished)
        return;
    lg->finished = true;
    lg->issuing = false;
    uint64_t now = uv_hrtime();
    if (lg->rate > 0 && !lg->hold) {
        uint64_t end = now < lg->t_end ? now : lg->t_end;
        uint64_t due = (uint64_t)((double)(end - lg->t0) * lg->rate / 1e9);
        lg->unsent = due > lg->next ? due - lg->next : 0;
    }
    if (lg->samples_file)
        write_samples(lg);
    double measured_s = lg->duration_s;
    if (lg->rate == 0 && !lg->hold) {
        uint64_t start = lg->t_warm < now ? lg->t_warm : now;
        measured_s = (double)(now - start) / 1e9;
    }
    qsort(lg->ttfb.v, lg->ttfb.n, sizeof(uint64_t), cmp_u64);
    qsort(lg->ttlb.v, lg->ttlb.n, sizeof(uint64_t), cmp_u64);
    const char *mode = lg->hold ? "hold" : lg->rate > 0 ? "open" : "closed";
    printf("loadgen mode=%s end=%s conns=%zu rate=%.0f duration_s=%.3f sent=%" PRIu64 " completed=%" PRIu64
           " ok=%" PRIu64 " errors=%" PRIu64 " bad_status=%" PRIu64 " bad_body=%" PRIu64
           " conn_errors=%" PRIu64 " reconnects=%" PRIu64 " late=%" PRIu64 " unsent=%" PRIu64
           " established=%" PRIu64 " body_bytes=%" PRIu64 " achieved_rps=%.1f",
           mode, why, lg->n_conns, lg->rate, measured_s, lg->sent, lg->completed, lg->measured_ok, lg->errors,
           lg->bad_status, lg->bad_body, lg->conn_errors, lg->reconnects, lg->late, lg->unsent,
           lg->established, lg->body_bytes, measured_s > 0 ? (double)lg->measured_ok / measured_s : 0.0);
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p999", 0.999}, {"max", 1.0}};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        printf(" ttfb_%s_us=%.1f", qs[i].name, pct_us(&lg->ttfb, qs[i].q));
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        printf(" ttlb_%s_us=%.1f", qs[i].name, pct_us(&lg->ttlb, qs[i].q));
    printf("\n");
    fflush(stdout);
    uv_walk(lg->loop, close_any, NULL);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nd = realloc(data, cap);
            if (!nd)
                goto fail;
            data = nd;
        }
        size_t r = fread(data + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f))
        goto fail;
    fclose(f);
    *len = n;
    return data;
fail:
    free(data);
    fclose(f);
    return NULL;
}

static int build_request(struct lg *lg)
{
    size_t body_len = 0;
    char *body = read_file(lg->body_file, &body_len);
    if (!body) {
        fprintf(stderr, "loadgen: cannot read %s\n", lg->body_file);
        return -1;
    }
    char head[1024];
    int hn = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Accept: text/event-stream\r\nContent-Length: %zu\r\n\r\n",
                      lg->path, lg->host, lg->port, body_len);
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        free(body);
        return -1;
    }
    lg->request_len = (size_t)hn + body_len;
    lg->request = malloc(lg->request_len);
    if (!lg->request) {
        free(body);
        return -1;
    }
    memcpy(lg->request, head, (size_t)hn);
    memcpy(lg->request + hn, body, body_len);
    free(body);
    return 0;
}

static const char usage[] =
    "usage: loadgen --port P --body-file FILE [options]\n"
    "  --host ADDR          IPv4 address (127.0.0.1)\n"
    "  --path PATH          request target (/v1/responses)\n"
    "  -c, --connections N  keep-alive connections (16); in --hold mode, streams to open\n"
    "  --rate R             offered load in req/s, open loop; 0 = closed loop (0)\n"
    "  --duration S         measured seconds (5)\n"
    "  --warmup S           seconds issued before measuring (0)\n"
    "  --requests N         closed loop: stop after N responses (0 = no limit)\n"
    "  --expect STR         a response is ok only if its body contains STR (<= 63 bytes)\n"
    "  --samples FILE       write `ttfb_us ttlb_us start_ms` per measured request\n"
    "  --hold               open --connections streams, report when all have a first byte\n"
    "  --ramp R             hold mode: new connections per second (2000)\n"
    "  --hold-seconds S     hold mode: keep the streams open this long once ready (3)\n"
    "  --timeout S          hard bound on the whole run (duration + warmup + 30)\n"
    "  --quiet              no per-error messages on stderr\n";

/* A whole-string number, or -1 (every numeric option is >= 0). */
static double num(const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    return v;
}

static int parse_args(struct lg *lg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},
        {"body-file", required_argument, NULL, 'b'},
        {"connections", required_argument, NULL, 'c'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"requests", required_argument, NULL, 'n'},
        {"expect", required_argument, NULL, 'e'},
        {"samples", required_argument, NULL, 's'},
        {"hold", no_argument, NULL, 'h'},
        {"ramp", required_argument, NULL, 'R'},
        {"hold-seconds", required_argument, NULL, 'S'},
        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, '?'},
        {NULL, 0, NULL, 0},
    };
    int o;
    double port = 0, conns = (double)lg->n_conns, requests = 0;
    while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (o) {
        case 'H':
            lg->host = optarg;
            break;
        case 'p':
            port = num(optarg);
            break;
        case 'P':
            lg->path = optarg;
            break;
        case 'b':
            lg->body_file = optarg;
            break;
        case 'c':
            conns = num(optarg);
            break;
        case 'r':
            lg->rate = num(optarg);
            break;
        case 'd':
            lg->duration_s = num(optarg);
            break;
        case 'w':
            lg->warmup_s = num(optarg);
            break;
        case 'n':
            requests = num(optarg);
            break;
        case 'e':
            lg->expect = optarg;
            break;
        case 's':
            lg->samples_file = optarg;
            break;
        case 'h':
            lg->hold = true;
            break;
        case 'R':
            lg->ramp = num(optarg);
            break;
        case 'S':
            lg->hold_s = num(optarg);
            break;
        case 't':
            lg->timeout_s = num(optarg);
            break;
        case 'q':
            lg->quiet = true;
            break;
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (port < 1 || port > 65535 || conns < 1 || conns > 1000000 || requests < 0 || optind != argc ||
        !lg->body_file || lg->rate < 0 || lg->duration_s <= 0 || lg->warmup_s < 0 || lg->ramp <= 0 ||
        lg->hold_s < 0 || lg->timeout_s < 0) {
        fputs(usage, stderr);
        return -1;
    }
    lg->port = (int)port;
    lg->n_conns = (size_t)conns;
    lg->max_requests = (uint64_t)requests;
    lg->expect_len = lg->expect ? strlen(lg->expect) : 0;
    if (lg->expect_len >= MAX_EXPECT) {
        fprintf(stderr, "loadgen: --expect longer than %d bytes\n", MAX_EXPECT - 1);
        return -1;
    }
    if (lg->timeout_s <= 0)
        lg->timeout_s = lg->duration_s + lg->warmup_s + 30;
    return 0;
}

int main(int argc, char **argv)
{
    static struct lg ctx = {
        .host = "127.0.0.1",
        .path = "/v1/responses",
        .n_conns = 16,
        .duration_s = 5,
        .ramp = 2000,
        .hold_s = 3,
    };
    struct lg *lg = &ctx;
    if (parse_args(lg, argc, argv) != 0)
        return 2;
    if (uv_ip4_addr(lg->host, lg->port, &lg->addr) != 0) {
        fprintf(stderr, "loadgen: bad address %s\n", lg->host);
        return 2;
    }
    if (build_request(lg) != 0)
        return 2;
    lg->conns = calloc(lg->n_conns, sizeof(conn_t));
    lg->idle = calloc(lg->n_conns, sizeof(conn_t *));
    if (!lg->conns || !lg->idle) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    llhttp_settings_init(&lg->settings);
    lg->settings.on_headers_complete = on_headers_complete;
    lg->settings.on_body = on_body;
    lg->settings.on_message_complete = on_message_complete;
    lg->loop = uv_default_loop();
    if (uv_timer_init(lg->loop, &lg->tick) != 0 || uv_timer_init(lg->loop, &lg->deadline) != 0 ||
        uv_signal_init(lg->loop, &lg->sigint) != 0 || uv_signal_init(lg->loop, &lg->sigterm) != 0) {
        fprintf(stderr, "loadgen: libuv init failed\n");
        return 1;
    }
    lg->tick.data = lg;
    lg->deadline.data = lg;
    lg->sigint.data = lg;
    lg->sigterm.data = lg;
    if (uv_signal_start(&lg->sigint, on_signal, SIGINT) != 0 ||
        uv_signal_start(&lg->sigterm, on_signal, SIGTERM) != 0) {
        fprintf(stderr, "loadgen: signal setup failed\n");
        return 1;
    }
    lg->t0 = uv_hrtime();
    lg->t_warm = lg->t0 + (uint64_t)(lg->warmup_s * 1e9);
    lg->t_end = lg->t_warm + (uint64_t)(lg->duration_s * 1e9);
    lg->issuing = true;
    for (size_t i = 0; i < lg->n_conns; i++)
        lg->conns[i].lg = lg;
    if (!lg->hold) {
        for (size_t i = 0; i < lg->n_conns; i++)
            start_conn(&lg->conns[i]);
        lg->n_started = lg->n_conns;
    }
    if (uv_timer_start(&lg->tick, on_tick, 1, 1) != 0 ||
        uv_timer_start(&lg->deadline, on_deadline, (uint64_t)(lg->timeout_s * 1000), 0) != 0) {
        fprintf(stderr, "loadgen: timer setup failed\n");
        return 1;
    }
    int rc = uv_run(lg->loop, UV_RUN_DEFAULT);
    if (rc != 0)
        fprintf(stderr, "loadgen: loop ended with active handles\n");
    if (uv_loop_close(lg->loop) != 0)
        fprintf(stderr, "loadgen: loop close failed\n");
    free(lg->ttfb.v);
    free(lg->ttlb.v);
    free(lg->starts.v);
    free(lg->request);
    free(lg->conns);
    free(lg->idle);
    return lg->measured_ok > 0 || lg->established > 0 ? 0 : 1;
}
