/* The postgres sink's local spool (see spool.h for the format and guarantees).
 *
 * Loop side: the file index (seq, size, read start), the queued bytes, the cursor and one job at a
 * time. Job side (threadpool): writes the queued prepend/append/reject bytes, unlinks finished
 * files, then reads the requested rows; it owns only its struct job. */
#include "tables/spool.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/error.h"
#include "gateway/log.h"
#include "tables/jsonl.h"

#define FILE_BYTES  (8u << 20)          /* start a new spool file past this size */
#define QUEUE_MAX   (64u << 20)         /* bytes waiting in memory for the writer job */
#define FIRST_SEQ   (UINT64_C(1) << 40) /* room below for prepended files */
#define LINE_PREFIX "{\"table\":\""

struct sfile {
    uint64_t seq;
    uint64_t size;  /** bytes written or queued to it */
    uint64_t start; /** first unread byte (the cursor, for the head file) */
    bool sealed;    /** never appended to again (rotated away, or left by an earlier run) */
};

struct snap {
    uint64_t seq, start, size;
};

struct job {
    tb_spool_t *sp;   /** only sp->dir is read on the threadpool (immutable) */
    gw_buf_t prepend; /** lines for a new head file prepend_seq */
    uint64_t prepend_seq;
    size_t prepend_rows;
    gw_buf_t append; /** lines for the tail file append_seq */
    uint64_t append_seq;
    size_t append_rows;
    gw_buf_t reject; /** lines for rejected.jsonl */
    size_t reject_rows;
    uint64_t *unlink; /** seqs of finished files */
    size_t n_unlink;
    bool read;
    struct snap *snap; /** files to read, in order, as of dispatch */
    size_t n_snap;
    size_t max_rows, max_bytes;
    /* results */
    int write_err;    /** -errno of the first failed write */
    size_t lost_rows; /** rows in failed writes */
    bool append_failed;
    int read_err;
    tb_row_t *rows, **rows_tail;
    size_t n_rows, row_bytes;
    size_t end_idx; /** snap index where reading stopped */
    uint64_t end_off;
    bool end_eof;       /** the file at end_idx was read to its end */
    uint64_t bad_lines; /** invalid lines and torn tails skipped */
};

enum rd_state { RD_IDLE = 0, RD_WANTED, RD_RUNNING, RD_HELD };

struct tb_spool {
    uv_loop_t *loop;
    char *dir;
    int lock_fd;
    uint64_t max_bytes;
    gw_fsync_t fsync;
    struct sfile *files; /** sorted by seq; files[0] is the head */
    size_t n_files, cap_files;
    uint64_t disk_bytes; /** sum of files[].size */
    uint64_t next_seq;   /** for a new tail when there are no files */
    gw_buf_t q_prepend, q_append, q_reject;
    size_t q_prepend_rows, q_append_rows, q_reject_rows;
    uint64_t *q_unlink; /** seqs of finished files, unlinked by the next job */
    size_t n_unlink;
    enum rd_state rd;
    size_t rd_max_rows, rd_max_bytes;
    tb_spool_read_cb rd_cb;
    void *rd_ud;
    struct snap *held_snap; /** the last read's snapshot and stop point, until commit/rewind */
    size_t held_n, held_idx;
    uint64_t held_off;
    bool held_eof;
    bool busy;
    bool in_cb;       /** inside rd_cb: kick (and so a close) waits for the outer frame */
    uint64_t writing; /** bytes the running job writes */
    uv_work_t work;
    struct job *job; /** owned by the running job */
    bool closing;
    void (*on_closed)(void *);
    void *closed_ud;
    uint64_t lost_rows;     /** rows whose write failed */
    uint64_t err_logged_ms; /** uv_now of the last write-failure log line */
    uint64_t bad_lines;     /** lines skipped on replay */
};

static void kick(tb_spool_t *sp);

tb_row_t *tb_row_new(const char *table, const char *date, gw_str_t json)
{
    tb_row_t *r = gw_xmalloc(sizeof(*r) + json.len + 1);
    r->next = NULL;
    snprintf(r->table, sizeof(r->table), "%s", table);
    snprintf(r->date, sizeof(r->date), "%s", date);
    r->len = json.len;
    memcpy(r->data, json.base, json.len);
    r->data[json.len] = '\0';
    return r;
}

void tb_rows_free(tb_row_t *r)
{
    while (r) {
        tb_row_t *n = r->next;
        free(r);
        r = n;
    }
}

static void line_of(gw_buf_t *b, const tb_row_t *r)
{
    gw_buf_appendf(b, LINE_PREFIX "%s\",\"date\":\"%s\",\"row\":", r->table, r->date);
    gw_buf_append(b, r->data, r->len);
    gw_buf_append(b, "}\n", 2);
}

static size_t line_len(const tb_row_t *r)
{
    return sizeof(LINE_PREFIX) - 1 + strlen(r->table) + sizeof("\",\"date\":\"YYYY-MM-DD\",\"row\":") - 1 +
           r->len + 2;
}

static void spool_path(const tb_spool_t *sp, uint64_t seq, char *out, size_t n)
{
    snprintf(out, n, "%s/spool-%020" PRIu64 ".jsonl", sp->dir, seq);
}

static struct sfile *file_insert(tb_spool_t *sp, size_t at, uint64_t seq)
{
    if (sp->n_files == sp->cap_files || !sp->files) {
        sp->cap_files = sp->cap_files ? sp->cap_files * 2 : 16;
        sp->files = gw_xrealloc(sp->files, sp->cap_files * sizeof(*sp->files));
    }
    memmove(&sp->files[at + 1], &sp->files[at], (sp->n_files - at) * sizeof(*sp->files));
    sp->n_files++;
    sp->files[at] = (struct sfile){.seq = seq};
    return &sp->files[at];
}

static int cmp_file(const void *a, const void *b)
{
    const struct sfile *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

tb_spool_t *tb_spool_open(uv_loop_t *loop, const char *dir, uint64_t max_bytes, gw_fsync_t fsync, char *err,
                          size_t errlen)
{
    tb_spool_t *sp = gw_xcalloc(1, sizeof(*sp));
    sp->loop = loop;
    sp->dir = gw_xstrndup(dir, strlen(dir));
    sp->max_bytes = max_bytes;
    sp->fsync = fsync;
    sp->lock_fd = -1;
    sp->next_seq = FIRST_SEQ;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", dir);
    int rc = tb_jsonl_mkdir_p(path);
    if (rc < 0) {
        snprintf(err, errlen, "tables.spool_dir: cannot create %s: %s", dir, strerror(-rc));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/.lock", dir);
    sp->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (sp->lock_fd < 0) {
        snprintf(err, errlen, "tables.spool_dir: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "tables.spool_dir: %s is in use by another agate process", dir);
        goto fail;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "tables.spool_dir: cannot list %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        char tail[8];
        if (strlen(e->d_name) != 32 || sscanf(e->d_name, "spool-%20" SCNu64 ".%5s", &seq, tail) != 2 ||
            strcmp(tail, "jsonl") != 0)
            continue;
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        struct sfile *f = file_insert(sp, sp->n_files, seq);
        f->size = (uint64_t)sb.st_size;
        f->sealed = true; /* a crash may have torn its last line: never append after it */
        sp->disk_bytes += f->size;
    }
    closedir(d);
    if (sp->n_files > 1)
        qsort(sp->files, sp->n_files, sizeof(*sp->files), cmp_file);
    if (sp->n_files) {
        sp->next_seq = sp->files[sp->n_files - 1].seq + 1;
        gw_log(GW_LOG_WARN, NULL, "event=table_spool_found dir=%s files=%zu bytes=%" PRIu64 " action=replay",
               dir, sp->n_files, sp->disk_bytes);
    }
    return sp;
fail:
    if (sp->lock_fd >= 0)
        close(sp->lock_fd);
    free(sp->files);
    free(sp->dir);
    free(sp);
    return NULL;
}

uint64_t tb_spool_bytes(const tb_spool_t *sp)
{
    return sp->disk_bytes + sp->q_prepend.len + sp->q_append.len;
}

bool tb_spool_empty(const tb_spool_t *sp)
{
    return sp->n_files == 0 && sp->q_prepend.len == 0 && sp->q_append.len == 0 && sp->writing == 0 &&
           sp->rd == RD_IDLE;
}

static bool fits(const tb_spool_t *sp, size_t n)
{
    return tb_spool_bytes(sp) + n <= sp->max_bytes && sp->q_prepend.len + sp->q_append.len + n <= QUEUE_MAX;
}

int tb_spool_append(tb_spool_t *sp, const tb_row_t *row)
{
    if (!fits(sp, line_len(row)))
        return GW_E_FAIL;
    line_of(&sp->q_append, row);
    sp->q_append_rows++;
    kick(sp);
    return 0;
}

size_t tb_spool_prepend(tb_spool_t *sp, const tb_row_t *rows)
{
    gw_buf_t b;
    gw_buf_init(&b);
    size_t taken = 0, refused = 0;
    for (const tb_row_t *r = rows; r; r = r->next) {
        if (refused || !fits(sp, b.len + line_len(r))) {
            refused++;
            continue;
        }
        line_of(&b, r);
        taken++;
    }
    /* In front of everything, earlier prepends included. */
    gw_buf_append_str(&b, gw_buf_str(&sp->q_prepend));
    gw_buf_dispose(&sp->q_prepend);
    sp->q_prepend = b;
    sp->q_prepend_rows += taken;
    kick(sp);
    return refused;
}

void tb_spool_reject(tb_spool_t *sp, const tb_row_t *row)
{
    if (sp->q_reject.len + line_len(row) > QUEUE_MAX) {
        sp->lost_rows++;
        return;
    }
    line_of(&sp->q_reject, row);
    sp->q_reject_rows++;
    kick(sp);
}

void tb_spool_read(tb_spool_t *sp, size_t max_rows, size_t max_bytes, tb_spool_read_cb cb, void *ud)
{
    assert(sp->rd == RD_IDLE);
    sp->rd = RD_WANTED;
    sp->rd_max_rows = max_rows;
    sp->rd_max_bytes = max_bytes;
    sp->rd_cb = cb;
    sp->rd_ud = ud;
    kick(sp);
}

static struct sfile *find_file(tb_spool_t *sp, uint64_t seq, size_t *idx)
{
    for (size_t i = 0; i < sp->n_files; i++)
        if (sp->files[i].seq == seq) {
            if (idx)
                *idx = i;
            return &sp->files[i];
        }
    return NULL;
}

/* Drop a finished file from the index; the next job unlinks it. */
static void unlink_later(tb_spool_t *sp, uint64_t seq)
{
    size_t i;
    struct sfile *f = find_file(sp, seq, &i);
    if (!f)
        return;
    sp->disk_bytes -= f->size;
    memmove(&sp->files[i], &sp->files[i + 1], (sp->n_files - i - 1) * sizeof(*sp->files));
    sp->n_files--;
    sp->q_unlink = gw_xrealloc(sp->q_unlink, (sp->n_unlink + 1) * sizeof(*sp->q_unlink));
    sp->q_unlink[sp->n_unlink++] = seq;
}

void tb_spool_commit(tb_spool_t *sp)
{
    assert(sp->rd == RD_HELD);
    sp->rd = RD_IDLE;
    const struct snap *sn = sp->held_snap;
    for (size_t i = 0; i < sp->held_idx && i < sp->held_n; i++)
        unlink_later(sp, sn[i].seq);
    if (sp->held_idx < sp->held_n) {
        const struct snap *last = &sn[sp->held_idx];
        struct sfile *f = find_file(sp, last->seq, NULL);
        /* Finished: read to its end, and nothing was added to it since the read started (a
         * sealed file's torn tail counts as read). */
        if (f && sp->held_eof && (f->sealed || f->size == last->size))
            unlink_later(sp, last->seq);
        else if (f)
            f->start = sp->held_off;
    }
    free(sp->held_snap);
    sp->held_snap = NULL;
    sp->held_n = 0;
    kick(sp);
}

void tb_spool_rewind(tb_spool_t *sp)
{
    assert(sp->rd == RD_HELD);
    sp->rd = RD_IDLE;
    free(sp->held_snap);
    sp->held_snap = NULL;
    sp->held_n = 0;
    kick(sp);
}

/* ---- threadpool side ---- */

/* Parse one spool line back into a row; false if it is not in our format. */
static bool parse_line(gw_str_t line, tb_row_t **out)
{
    static const char mid[] = "\",\"date\":\"";
    static const char tail[] = "\",\"row\":";
    const size_t pre = sizeof(LINE_PREFIX) - 1;
    if (line.len < pre || memcmp(line.base, LINE_PREFIX, pre) != 0)
        return false;
    const char *t = line.base + pre, *end = line.base + line.len;
    const char *q = memchr(t, '"', (size_t)(end - t));
    if (!q || q == t || (size_t)(q - t) >= TB_TABLE_MAX)
        return false;
    const char *d = q + sizeof(mid) - 1;
    if (end - q < (ptrdiff_t)(sizeof(mid) - 1 + 10 + sizeof(tail) - 1 + 2) ||
        memcmp(q, mid, sizeof(mid) - 1) != 0 || memcmp(d + 10, tail, sizeof(tail) - 1) != 0 || end[-1] != '}')
        return false;
    const char *row = d + 10 + sizeof(tail) - 1;
    char table[TB_TABLE_MAX], date[11];
    memcpy(table, t, (size_t)(q - t));
    table[q - t] = '\0';
    memcpy(date, d, 10);
    date[10] = '\0';
    *out = tb_row_new(table, date, gw_str_n(row, (size_t)(end - 1 - row)));
    return true;
}

static int on_line(void *ud, gw_str_t line)
{
    struct job *j = ud;
    tb_row_t *r;
    if (!parse_line(line, &r)) {
        j->bad_lines++;
        return 0;
    }
    *j->rows_tail = r;
    j->rows_tail = &r->next;
    j->n_rows++;
    j->row_bytes += r->len;
    return 0;
}

static void write_file(struct job *j, const char *path, const gw_buf_t *b, size_t rows, bool *failed)
{
    if (!b->len)
        return;
    int rc = tb_jsonl_append(path, b->base, b->len, j->sp->fsync, NULL, NULL);
    if (rc < 0) {
        if (!j->write_err)
            j->write_err = rc;
        j->lost_rows += rows;
        if (failed)
            *failed = true;
    }
}

static void job_run(uv_work_t *w)
{
    const tb_spool_t *sp = w->data;
    struct job *j = sp->job; /* set before uv_queue_work, reset only in job_done */
    char path[PATH_MAX];
    /* Unlinks first: a prepended file may reuse the seq of a head file finished just before. */
    for (size_t i = 0; i < j->n_unlink; i++) {
        spool_path(sp, j->unlink[i], path, sizeof(path));
        if (unlink(path) < 0 && errno != ENOENT && !j->write_err)
            j->write_err = -errno;
    }
    spool_path(sp, j->prepend_seq, path, sizeof(path));
    write_file(j, path, &j->prepend, j->prepend_rows, NULL);
    spool_path(sp, j->append_seq, path, sizeof(path));
    write_file(j, path, &j->append, j->append_rows, &j->append_failed);
    snprintf(path, sizeof(path), "%s/rejected.jsonl", sp->dir);
    write_file(j, path, &j->reject, j->reject_rows, NULL);
    if (!j->read)
        return;
    j->rows_tail = &j->rows;
    for (size_t i = 0; i < j->n_snap; i++) {
        size_t rows_left = j->max_rows - j->n_rows;
        size_t bytes_left = j->max_bytes > j->row_bytes ? j->max_bytes - j->row_bytes : 1;
        tb_jsonl_stats_t st;
        spool_path(sp, j->snap[i].seq, path, sizeof(path));
        int rc = tb_jsonl_read(path, j->snap[i].start, rows_left, bytes_left, on_line, j, &st);
        if (rc < 0) {
            j->read_err = rc;
            tb_rows_free(j->rows);
            j->rows = NULL;
            j->n_rows = 0;
            return;
        }
        j->bad_lines += st.invalid + (st.torn_bytes ? 1 : 0);
        j->end_idx = i;
        j->end_off = st.end;
        j->end_eof = st.eof;
        if (!st.eof || j->n_rows >= j->max_rows || j->row_bytes >= j->max_bytes)
            return;
    }
}

static void job_free(struct job *j)
{
    gw_buf_dispose(&j->prepend);
    gw_buf_dispose(&j->append);
    gw_buf_dispose(&j->reject);
    free(j->unlink);
    free(j->snap);
    tb_rows_free(j->rows);
    free(j);
}

static void finalize(tb_spool_t *sp)
{
    void (*cb)(void *) = sp->on_closed;
    void *ud = sp->closed_ud;
    if (sp->lock_fd >= 0)
        close(sp->lock_fd);
    gw_buf_dispose(&sp->q_prepend);
    gw_buf_dispose(&sp->q_append);
    gw_buf_dispose(&sp->q_reject);
    free(sp->q_unlink);
    free(sp->held_snap);
    free(sp->files);
    free(sp->dir);
    free(sp);
    if (cb)
        cb(ud);
}

static void job_done(uv_work_t *w, int status)
{
    tb_spool_t *sp = w->data;
    struct job *j = sp->job;
    (void)status;
    sp->job = NULL;
    sp->busy = false;
    sp->writing = 0;
    if (j->write_err) {
        sp->lost_rows += j->lost_rows;
        uint64_t t = uv_now(sp->loop);
        if (!sp->err_logged_ms || t - sp->err_logged_ms >= 1000) { /* one line a second, with totals */
            sp->err_logged_ms = t;
            gw_log(GW_LOG_ERROR, NULL,
                   "event=table_spool_write_failed dir=%s rows_lost=%zu rows_lost_total=%" PRIu64
                   " error=\"%s\"",
                   sp->dir, j->lost_rows, sp->lost_rows, strerror(-j->write_err));
        }
    }
    if (j->append_failed) {
        struct sfile *f = find_file(sp, j->append_seq, NULL);
        if (f)
            f->sealed = true; /* may end in a partial line now: append elsewhere */
    }
    if (j->bad_lines) {
        gw_log(GW_LOG_ERROR, NULL,
               "event=table_spool_lines_skipped dir=%s lines=%" PRIu64 " reason=torn_or_invalid", sp->dir,
               j->bad_lines);
        sp->bad_lines += j->bad_lines;
    }
    if (j->read) {
        tb_row_t *rows = j->rows;
        size_t n = j->n_rows;
        int rc = j->read_err;
        j->rows = NULL;
        sp->rd = RD_HELD;
        sp->held_snap = j->snap;
        sp->held_n = rc < 0 ? 0 : j->n_snap;
        sp->held_idx = j->end_idx;
        sp->held_off = j->end_off;
        sp->held_eof = j->end_eof;
        j->snap = NULL;
        job_free(j);
        sp->in_cb = true;
        sp->rd_cb(sp->rd_ud, rows, n, rc); /* may commit/rewind/read/append/close re-entrantly */
        sp->in_cb = false;
        kick(sp);
        return;
    }
    job_free(j);
    kick(sp);
}

/* Start the next job if there is work and none runs; finish a close when all is written. */
static void kick(tb_spool_t *sp)
{
    if (sp->busy || sp->in_cb)
        return;
    bool want_read = sp->rd == RD_WANTED && !sp->closing;
    if (!sp->q_prepend.len && !sp->q_append.len && !sp->q_reject.len && !sp->n_unlink && !want_read) {
        if (sp->closing && sp->rd != RD_RUNNING)
            finalize(sp);
        return;
    }
    struct job *j = gw_xcalloc(1, sizeof(*j));
    j->sp = sp;
    if (sp->q_prepend.len && sp->n_files == 0) {
        /* Nothing on disk: the prepended rows simply start a new tail, ahead of the appends. */
        gw_buf_append_str(&sp->q_prepend, gw_buf_str(&sp->q_append));
        gw_buf_dispose(&sp->q_append);
        sp->q_append = sp->q_prepend;
        sp->q_append_rows += sp->q_prepend_rows;
        gw_buf_init(&sp->q_prepend);
        sp->q_prepend_rows = 0;
    }
    if (sp->q_prepend.len) {
        struct sfile *f = file_insert(sp, 0, sp->files[0].seq - 1);
        f->sealed = true;
        f->size = sp->q_prepend.len;
        sp->disk_bytes += f->size;
        j->prepend_seq = f->seq;
        j->prepend = sp->q_prepend;
        j->prepend_rows = sp->q_prepend_rows;
        gw_buf_init(&sp->q_prepend);
        sp->q_prepend_rows = 0;
    }
    if (sp->q_append.len) {
        struct sfile *t = sp->n_files ? &sp->files[sp->n_files - 1] : NULL;
        if (!t || t->sealed || (t->size > 0 && t->size + sp->q_append.len > FILE_BYTES)) {
            if (t)
                t->sealed = true;
            uint64_t seq = t && t->seq + 1 > sp->next_seq ? t->seq + 1 : sp->next_seq;
            t = file_insert(sp, sp->n_files, seq);
            sp->next_seq = seq + 1;
        }
        t->size += sp->q_append.len;
        sp->disk_bytes += sp->q_append.len;
        j->append_seq = t->seq;
        j->append = sp->q_append;
        j->append_rows = sp->q_append_rows;
        gw_buf_init(&sp->q_append);
        sp->q_append_rows = 0;
    }
    j->reject = sp->q_reject;
    j->reject_rows = sp->q_reject_rows;
    gw_buf_init(&sp->q_reject);
    sp->q_reject_rows = 0;
    j->unlink = sp->q_unlink;
    j->n_unlink = sp->n_unlink;
    sp->q_unlink = NULL;
    sp->n_unlink = 0;
    if (want_read) {
        j->read = true;
        j->max_rows = sp->rd_max_rows;
        j->max_bytes = sp->rd_max_bytes;
        j->n_snap = sp->n_files;
        j->snap = gw_xmalloc((sp->n_files ? sp->n_files : 1) * sizeof(*j->snap));
        for (size_t i = 0; i < sp->n_files; i++)
            j->snap[i] = (struct snap){sp->files[i].seq, sp->files[i].start, sp->files[i].size};
        sp->rd = RD_RUNNING;
    }
    sp->writing = j->prepend.len + j->append.len;
    sp->busy = true;
    sp->job = j;
    sp->work.data = sp;
    int rc = uv_queue_work(sp->loop, &sp->work, job_run, job_done);
    assert(rc == 0); /* only fails for a NULL callback */
    (void)rc;
}

void tb_spool_close(tb_spool_t *sp, void (*done)(void *ud), void *ud)
{
    sp->closing = true;
    sp->on_closed = done;
    sp->closed_ud = ud;
    if (sp->rd == RD_WANTED)
        sp->rd = RD_IDLE;
    if (sp->rd == RD_HELD)
        tb_spool_rewind(sp); /* kicks */
    else
        kick(sp);
}

uint64_t tb_spool_lost_rows(const tb_spool_t *sp)
{
    return sp->lost_rows;
}

uint64_t tb_spool_skipped_lines(const tb_spool_t *sp)
{
    return sp->bad_lines;
}
