/* JSONL sink: rows are appended to per-partition batches in memory; a timer (or size) hands the
 * batches to one libuv threadpool job at a time, which creates directories, appends and closes.
 * The loop only ever touches memory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway/log.h"
#include "tables/sink.h"

#define FLUSH_BYTES (1u << 20) /* write early once this much is queued */

struct batch {
    char table[128];
    char date[11];
    gw_buf_t rows;
    size_t n_rows;
    struct batch *next;
};

typedef struct {
    tb_sink_t base;
    uv_loop_t *loop;
    char *dir;
    char part[64]; /** file name, fixed per process start */
    int flush_ms;
    size_t max_queue;
    uv_timer_t timer;
    uv_work_t work;
    struct batch *pending;  /** loop-owned */
    struct batch *inflight; /** owned by the job while busy */
    size_t pending_bytes;
    bool busy, closing;
    int write_errors;       /** set by the job, read after it */
    void (*on_closed)(void *);
    void *closed_ud;
} jsonl_t;

static void schedule(jsonl_t *s);
static void on_timer_closed(uv_handle_t *h);

static void batches_free(struct batch *b)
{
    while (b) {
        struct batch *n = b->next;
        gw_buf_dispose(&b->rows);
        free(b);
        b = n;
    }
}

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Threadpool side: plain blocking I/O is fine here, nothing else touches these batches. */
static void job_run(uv_work_t *w)
{
    jsonl_t *s = w->data;
    s->write_errors = 0;
    for (struct batch *b = s->inflight; b; b = b->next) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/request_date=%s", s->dir, b->table, b->date);
        if (mkdir_p(path) < 0) {
            s->write_errors++;
            continue;
        }
        size_t n = strlen(path);
        snprintf(path + n, sizeof(path) - n, "/%s", s->part);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            s->write_errors++;
            continue;
        }
        /* One write per batch keeps rows whole; O_APPEND keeps concurrent workers apart. */
        size_t off = 0;
        while (off < b->rows.len) {
            ssize_t k = write(fd, b->rows.base + off, b->rows.len - off);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                s->write_errors++;
                break;
            }
            off += (size_t)k;
        }
        close(fd);
    }
}

static void job_done(uv_work_t *w, int status)
{
    jsonl_t *s = w->data;
    (void)status;
    uint64_t rows = 0;
    for (struct batch *b = s->inflight; b; b = b->next)
        rows += b->n_rows;
    if (s->write_errors) {
        gw_log(GW_LOG_ERROR, NULL, "event=table_write_failed sink=jsonl dir=%s batches_failed=%d", s->dir,
               s->write_errors);
        s->base.rows_dropped += rows;
    } else {
        s->base.rows_written += rows;
    }
    batches_free(s->inflight);
    s->inflight = NULL;
    s->busy = false;
    if (s->pending)
        schedule(s);
    else if (s->closing)
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void schedule(jsonl_t *s)
{
    if (s->busy || !s->pending)
        return;
    s->inflight = s->pending;
    s->pending = NULL;
    s->pending_bytes = 0;
    s->busy = true;
    s->work.data = s;
    if (uv_queue_work(s->loop, &s->work, job_run, job_done) < 0) {
        gw_log(GW_LOG_ERROR, NULL, "event=table_queue_failed sink=jsonl");
        batches_free(s->inflight);
        s->inflight = NULL;
        s->busy = false;
    }
}

static void on_flush_timer(uv_timer_t *t)
{
    schedule(t->data);
}

static void jsonl_write(tb_sink_t *base, const char *table, const char *date, gw_str_t row)
{
    jsonl_t *s = (jsonl_t *)base;
    if (s->pending_bytes + row.len > s->max_queue) {
        /* Memory cap reached: the loss is counted and logged, never silent. */
        s->base.rows_dropped++;
        gw_log(GW_LOG_ERROR, NULL, "event=table_row_dropped sink=jsonl reason=queue_full table=%s", table);
        return;
    }
    struct batch *b = s->pending;
    while (b && (strcmp(b->table, table) != 0 || strcmp(b->date, date) != 0))
        b = b->next;
    if (!b) {
        b = gw_xcalloc(1, sizeof(*b));
        snprintf(b->table, sizeof(b->table), "%s", table);
        snprintf(b->date, sizeof(b->date), "%s", date);
        b->next = s->pending;
        s->pending = b;
    }
    gw_buf_append_str(&b->rows, row);
    b->n_rows++;
    s->pending_bytes += row.len;
    if (s->pending_bytes >= FLUSH_BYTES)
        schedule(s);
    else if (!uv_is_active((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, on_flush_timer, (uint64_t)s->flush_ms, 0);
}

static void jsonl_flush(tb_sink_t *base)
{
    schedule((jsonl_t *)base);
}

static void on_timer_closed(uv_handle_t *h)
{
    jsonl_t *s = h->data;
    void (*cb)(void *) = s->on_closed;
    void *ud = s->closed_ud;
    batches_free(s->pending);
    free(s->dir);
    free(s);
    if (cb)
        cb(ud);
}

static void jsonl_close(tb_sink_t *base, void (*done)(void *ud), void *ud)
{
    jsonl_t *s = (jsonl_t *)base;
    s->on_closed = done;
    s->closed_ud = ud;
    uv_timer_stop(&s->timer);
    schedule(s);
    if (s->busy) {
        s->closing = true; /* job_done finishes the close */
        return;
    }
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static const tb_sink_vtable_t jsonl_vt = {jsonl_write, jsonl_flush, jsonl_close};

tb_sink_t *tb_sink_jsonl_new(uv_loop_t *loop, const gw_tables_cfg_t *cfg)
{
    jsonl_t *s = gw_xcalloc(1, sizeof(*s));
    s->base.vt = &jsonl_vt;
    s->loop = loop;
    s->dir = gw_xstrndup(cfg->dir, strlen(cfg->dir));
    s->flush_ms = cfg->flush_ms;
    s->max_queue = cfg->max_queue_bytes;
    snprintf(s->part, sizeof(s->part), "part-%ld-%lld.jsonl", (long)getpid(), (long long)time(NULL));
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    return &s->base;
}
