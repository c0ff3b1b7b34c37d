/* JSONL sink: rows are appended to per-partition batches in memory; a timer (or size) hands the
 * batches to one libuv threadpool job at a time, which creates directories, appends and closes.
 * The loop only ever touches memory.
 *
 * Durability (`tables.fsync`):
 *   none   - rows reach the page cache; a process crash loses nothing written, a power loss may.
 *   batch  - every job fdatasyncs each file it appended to (one sync per file per flush), and the
 *            directory of every file it created.
 *   always - as batch, and rows are handed to the writer at once instead of waiting for flush_ms:
 *            group commit, so a row is on disk one job after its request ended.
 * A crash in the middle of a write leaves at most one partial line; tb_jsonl_append closes it
 * before appending again and tb_jsonl_read skips it (tables/jsonl.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway/log.h"
#include "tables/jsonl.h"
#include "tables/sink.h"

#define FLUSH_BYTES (1u << 20) /* write early once this much is queued */
#define PART_KEEP   64         /* partitions whose current part file the writer remembers */

struct batch {
    char table[128];
    char date[11];
    gw_buf_t rows;
    size_t n_rows;
    struct batch *next;
};

/* Current part file of one partition. Owned by the writer job (one at a time), never the loop. */
struct part {
    char table[128];
    char date[11];
    unsigned seq;  /** part-<pid>-<start>-<seq>.jsonl */
    uint64_t size; /** bytes in that file */
    uint64_t used; /** job number of the last use, for eviction */
    struct part *next;
};

typedef struct {
    tb_sink_t base;
    uv_loop_t *loop;
    char *dir;
    char prefix[64]; /** "part-<pid>-<start>", fixed per process start */
    int flush_ms;
    size_t max_queue;
    gw_fsync_t fsync;
    uint64_t rotate_bytes;
    uv_timer_t timer;
    uv_work_t work;
    struct batch *pending;  /** loop-owned */
    struct batch *inflight; /** owned by the job while busy */
    size_t pending_bytes;
    bool busy, closing;
    bool finalizing;    /** the timer is being closed: the sink is freed next, nothing may start */
    struct part *parts; /** job-owned */
    uint64_t jobs;      /** job-owned counter */
    int write_errors;   /** set by the job, read after it */
    int write_errno;
    int repaired;            /** torn lines closed by this job */
    uint64_t drop_logged_ms; /** uv_now of the last drop log line (rate limit: one per second) */
    void (*on_closed)(void *);
    void *closed_ud;
} jsonl_t;

static void schedule(jsonl_t *s);
static void on_timer_closed(uv_handle_t *h);

static void finalize(jsonl_t *s)
{
    s->finalizing = true;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void batches_free(struct batch *b)
{
    while (b) {
        struct batch *n = b->next;
        gw_buf_dispose(&b->rows);
        free(b);
        b = n;
    }
}

static void part_path(const jsonl_t *s, const struct part *p, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/request_date=%s/%s-%04u.jsonl", s->dir, p->table, p->date, s->prefix, p->seq);
}

/* Threadpool side. Finds (or starts) the part file of a partition; after an eviction or at the
 * first use it skips over files of this process that are already full. */
static struct part *part_get(jsonl_t *s, const struct batch *b)
{
    struct part *p = s->parts;
    size_t n = 0;
    for (; p; p = p->next, n++)
        if (strcmp(p->table, b->table) == 0 && strcmp(p->date, b->date) == 0) {
            p->used = s->jobs;
            return p;
        }
    if (n >= PART_KEEP) { /* evict the least recently used */
        struct part **victim = &s->parts;
        for (struct part **pp = &s->parts; *pp; pp = &(*pp)->next)
            if ((*pp)->used < (*victim)->used)
                victim = pp;
        struct part *v = *victim;
        *victim = v->next;
        free(v);
    }
    p = gw_xcalloc(1, sizeof(*p));
    snprintf(p->table, sizeof(p->table), "%s", b->table);
    snprintf(p->date, sizeof(p->date), "%s", b->date);
    p->used = s->jobs;
    for (;;) {
        char path[PATH_MAX];
        struct stat sb;
        part_path(s, p, path, sizeof(path));
        if (stat(path, &sb) < 0) {
            p->size = 0;
            break;
        }
        p->size = (uint64_t)sb.st_size;
        if (p->size < s->rotate_bytes)
            break;
        p->seq++;
    }
    p->next = s->parts;
    s->parts = p;
    return p;
}

static void note_error(jsonl_t *s, int rc)
{
    s->write_errors++;
    s->write_errno = -rc;
}

/* Threadpool side: plain blocking I/O is fine here, nothing else touches these batches. */
static void job_run(uv_work_t *w)
{
    jsonl_t *s = w->data;
    s->write_errors = 0;
    s->repaired = 0;
    s->jobs++;
    for (struct batch *b = s->inflight; b; b = b->next) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/request_date=%s", s->dir, b->table, b->date);
        int rc = tb_jsonl_mkdir_p(path);
        if (rc < 0) {
            note_error(s, rc);
            continue;
        }
        struct part *p = part_get(s, b);
        if (p->size > 0 && p->size + b->rows.len > s->rotate_bytes) {
            p->seq++; /* rotate by size; one batch is never split across files */
            p->size = 0;
        }
        part_path(s, p, path, sizeof(path));
        bool repaired = false;
        uint64_t size = 0;
        /* One write per batch keeps rows whole; O_APPEND keeps concurrent workers apart. */
        rc = tb_jsonl_append(path, b->rows.base, b->rows.len, s->fsync, &size, &repaired);
        if (rc < 0) {
            note_error(s, rc);
            continue;
        }
        p->size = size;
        s->repaired += repaired;
    }
}

static void job_done(uv_work_t *w, int status)
{
    jsonl_t *s = w->data;
    (void)status;
    uint64_t rows = 0;
    for (struct batch *b = s->inflight; b; b = b->next)
        rows += b->n_rows;
    if (s->repaired)
        gw_log(GW_LOG_WARN, NULL, "event=table_torn_line_closed sink=jsonl dir=%s files=%d", s->dir,
               s->repaired);
    if (s->write_errors) {
        gw_log(GW_LOG_ERROR, NULL,
               "event=table_write_failed sink=jsonl dir=%s batches_failed=%d error=\"%s\"", s->dir,
               s->write_errors, strerror(s->write_errno));
        s->base.rows_dropped += rows;
        s->base.degraded = true;
        s->base.state = "degraded";
    } else {
        s->base.rows_written += rows;
        s->base.degraded = false;
        s->base.state = "ok";
    }
    batches_free(s->inflight);
    s->inflight = NULL;
    s->busy = false;
    /* Rows that arrived meanwhile go now if their flush timer already fired (it cannot start a
     * job while one runs), if they are many, or in always/closing mode; else the timer takes them. */
    if (s->pending && (s->closing || s->fsync == GW_FSYNC_ALWAYS || s->pending_bytes >= FLUSH_BYTES ||
                       !uv_is_active((uv_handle_t *)&s->timer)))
        schedule(s);
    else if (s->closing)
        finalize(s);
}

static void schedule(jsonl_t *s)
{
    if (s->busy || !s->pending || s->finalizing)
        return;
    uv_timer_stop(&s->timer);
    s->inflight = s->pending;
    s->pending = NULL;
    s->pending_bytes = 0;
    s->base.queue_bytes = 0;
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

static void drop_row(jsonl_t *s, const char *table)
{
    /* Memory cap reached: the loss is counted and logged, never silent. */
    s->base.rows_dropped++;
    s->base.degraded = true;
    s->base.state = "degraded";
    uint64_t now = uv_now(s->loop);
    if (s->drop_logged_ms && now - s->drop_logged_ms < 1000)
        return;
    s->drop_logged_ms = now;
    gw_log(GW_LOG_ERROR, NULL, "event=table_row_dropped sink=jsonl reason=%s table=%s dropped_total=%llu",
           s->finalizing ? "closed" : "queue_full", table, (unsigned long long)s->base.rows_dropped);
}

static void jsonl_write(tb_sink_t *base, const char *table, const char *date, gw_str_t row)
{
    jsonl_t *s = (jsonl_t *)base;
    if (s->finalizing || s->pending_bytes + row.len > s->max_queue) {
        drop_row(s, table);
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
    s->base.queue_bytes = s->pending_bytes;
    if (s->pending_bytes >= FLUSH_BYTES || s->fsync == GW_FSYNC_ALWAYS || s->closing)
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
    gw_log(GW_LOG_INFO, NULL, "event=table_sink_closed sink=jsonl rows_written=%llu rows_dropped=%llu",
           (unsigned long long)s->base.rows_written, (unsigned long long)s->base.rows_dropped);
    batches_free(s->pending);
    while (s->parts) {
        struct part *n = s->parts->next;
        free(s->parts);
        s->parts = n;
    }
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
    s->closing = true;
    uv_timer_stop(&s->timer);
    schedule(s);
    if (s->busy)
        return; /* job_done finishes the close */
    finalize(s);
}

static const tb_sink_vtable_t jsonl_vt = {jsonl_write, jsonl_flush, jsonl_close};

tb_sink_t *tb_sink_jsonl_new(uv_loop_t *loop, const gw_tables_cfg_t *cfg)
{
    jsonl_t *s = gw_xcalloc(1, sizeof(*s));
    s->base.vt = &jsonl_vt;
    s->base.state = "ok";
    s->base.usage_table = cfg->usage_table;
    s->loop = loop;
    s->dir = gw_xstrndup(cfg->dir, strlen(cfg->dir));
    s->flush_ms = cfg->flush_ms;
    s->max_queue = cfg->max_queue_bytes;
    s->fsync = cfg->fsync;
    s->rotate_bytes = cfg->rotate_bytes ? cfg->rotate_bytes : UINT64_MAX;
    snprintf(s->prefix, sizeof(s->prefix), "part-%ld-%lld", (long)getpid(), (long long)time(NULL));
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    return &s->base;
}
