/* JSONL sink and file primitives: a torn last line is skipped by tb_jsonl_read and closed (never
 * glued to a later row) by tb_jsonl_append; every fsync mode delivers every row exactly once;
 * rotation by size; the usage table goes to its own directory. */
#include <criterion/criterion.h>

#include "support/files.h"

#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "tables/jsonl.h"
#include "tables/record.h"
#include "tables/sink.h"

/* Calls fn for every regular file under d (recursively). */
static void walk_files(const char *d, void (*fn)(const char *path, const struct stat *sb, void *ud), void *ud)
{
    DIR *dir = opendir(d);
    cr_assert_not_null(dir, "opendir %s", d);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) < 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            walk_files(p, fn, ud);
        else if (S_ISREG(sb.st_mode))
            fn(p, &sb, ud);
    }
    closedir(dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

struct lines {
    char *got[64];
    size_t n;
};

static int collect(void *ud, gw_str_t line)
{
    struct lines *l = ud;
    cr_assert_lt(l->n, 64);
    l->got[l->n++] = strndup(line.base, line.len);
    return 0;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->got[i]);
    l->n = 0;
}

Test(sink_jsonl, read_skips_torn_last_line, .timeout = 10)
{
    char *d = test_tmpdir("jsonl");
    char path[512];
    snprintf(path, sizeof(path), "%s/t.jsonl", d);
    write_file(path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4,\"b\":\"trunc");
    struct lines l = {0};
    tb_jsonl_stats_t st;
    cr_assert_eq(tb_jsonl_read(path, 0, 0, 0, collect, &l, &st), 0);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.got[2], "{\"a\":3}");
    cr_assert_eq(st.lines, 3);
    cr_assert_eq(st.invalid, 0);
    cr_assert_eq(st.torn_bytes, strlen("{\"a\":4,\"b\":\"trunc"));
    cr_assert(st.eof);
    cr_assert_eq(st.end, 24, "resume offset is after the last complete line, got %llu",
                 (unsigned long long)st.end);
    lines_free(&l);
    /* Resuming at the end finds only the torn bytes again. */
    cr_assert_eq(tb_jsonl_read(path, st.end, 0, 0, collect, &l, &st), 0);
    cr_assert_eq(l.n, 0);
    cr_assert(st.eof);
    test_rm_rf(d);
}

Test(sink_jsonl, read_counts_invalid_lines_and_resumes, .timeout = 10)
{
    char *d = test_tmpdir("jsonl");
    char path[512];
    snprintf(path, sizeof(path), "%s/t.jsonl", d);
    /* A torn line that was later closed by a newline sits between two good rows; blank lines and
     * a non-object line are not rows either. */
    write_file(path, "{\"a\":1}\n{\"a\":2,\"b\n\n[1,2]\n{\"a\":3}\n{\"a\":4} trailing\n{\"a\":5}\n");
    struct lines l = {0};
    tb_jsonl_stats_t st;
    cr_assert_eq(tb_jsonl_read(path, 0, 2, 0, collect, &l, &st), 0);
    cr_assert_eq(l.n, 2, "max_lines");
    cr_assert_str_eq(l.got[1], "{\"a\":3}");
    cr_assert_eq(st.invalid, 2);
    cr_assert_not(st.eof);
    uint64_t off = st.end;
    lines_free(&l);
    cr_assert_eq(tb_jsonl_read(path, off, 0, 0, collect, &l, &st), 0);
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.got[0], "{\"a\":5}");
    cr_assert_eq(st.invalid, 1);
    cr_assert(st.eof);
    cr_assert_eq(st.torn_bytes, 0);
    lines_free(&l);
    /* A missing file reads as empty. */
    snprintf(path, sizeof(path), "%s/missing.jsonl", d);
    cr_assert_eq(tb_jsonl_read(path, 0, 0, 0, collect, &l, &st), 0);
    cr_assert(st.eof);
    cr_assert_eq(l.n, 0);
    test_rm_rf(d);
}

Test(sink_jsonl, append_closes_torn_line_first, .timeout = 10)
{
    char *d = test_tmpdir("jsonl");
    char path[512];
    snprintf(path, sizeof(path), "%s/t.jsonl", d);
    write_file(path, "{\"a\":1}\n{\"a\":2,\"b\":\"cut here");
    bool repaired = false;
    uint64_t size = 0;
    const char rows[] = "{\"a\":3}\n{\"a\":4}\n";
    cr_assert_eq(tb_jsonl_append(path, rows, strlen(rows), GW_FSYNC_BATCH, &size, &repaired), 0);
    cr_assert(repaired);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq((uint64_t)sb.st_size, size);
    struct lines l = {0};
    tb_jsonl_stats_t st;
    cr_assert_eq(tb_jsonl_read(path, 0, 0, 0, collect, &l, &st), 0);
    cr_assert_eq(l.n, 3, "rows after the torn line are intact");
    cr_assert_str_eq(l.got[0], "{\"a\":1}");
    cr_assert_str_eq(l.got[1], "{\"a\":3}");
    cr_assert_str_eq(l.got[2], "{\"a\":4}");
    cr_assert_eq(st.invalid, 1, "the torn line is skipped");
    cr_assert_eq(st.torn_bytes, 0);
    lines_free(&l);
    /* A clean file is not touched. */
    cr_assert_eq(tb_jsonl_append(path, rows, strlen(rows), GW_FSYNC_NONE, NULL, &repaired), 0);
    cr_assert_not(repaired);
    test_rm_rf(d);
}

Test(sink_jsonl, valid_line, .timeout = 10)
{
    cr_assert(tb_jsonl_valid(GW_STR_LIT("{}")));
    cr_assert(tb_jsonl_valid(GW_STR_LIT(" {\"a\":[1,{\"b\":null}]}")));
    cr_assert_not(tb_jsonl_valid(GW_STR_LIT("{\"a\":")));
    cr_assert_not(tb_jsonl_valid(GW_STR_LIT("{} {}")));
    cr_assert_not(tb_jsonl_valid(GW_STR_LIT("\"x\"")));
    cr_assert_not(tb_jsonl_valid(GW_STR_LIT("{\"a\":\"\xff\"}")), "invalid UTF-8");
}

/* ---- the sink on a real loop ---- */

struct walk_ctx {
    char root[256];
    size_t files, rows, invalid, torn;
    unsigned char *seen; /* per row id */
    size_t n_ids;
    size_t dups;
    size_t max_file;
    char last_dir[512];
    size_t usage_rows;
};

/* First occurrence of lit in line (lines are not NUL-terminated). */
static const char *find(gw_str_t line, const char *lit)
{
    size_t n = strlen(lit);
    for (size_t i = 0; i + n <= line.len; i++)
        if (memcmp(line.base + i, lit, n) == 0)
            return line.base + i;
    return NULL;
}

static int count_row(void *ud, gw_str_t line)
{
    struct walk_ctx *w = ud;
    const char *p = find(line, "\"id\":");
    if (!p) {
        if (find(line, "\"input_token_count\""))
            w->usage_rows++;
        return 0;
    }
    long id = strtol(p + 5, NULL, 10);
    cr_assert(id >= 0 && (size_t)id < w->n_ids);
    if (w->seen[id]++)
        w->dups++;
    w->rows++;
    return 0;
}

static void walk_cb(const char *p, const struct stat *sb, void *ud)
{
    struct walk_ctx *w = ud;
    if (!strstr(p, ".jsonl"))
        return;
    w->files++;
    if ((size_t)sb->st_size > w->max_file)
        w->max_file = (size_t)sb->st_size;
    tb_jsonl_stats_t st;
    cr_assert_eq(tb_jsonl_read(p, 0, 0, 0, count_row, w, &st), 0);
    w->invalid += st.invalid;
    w->torn += st.torn_bytes ? 1 : 0;
}

static void walk(struct walk_ctx *w, const char *dir)
{
    walk_files(dir, walk_cb, w);
}

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

/* Write n rows over two tables and two dates, running the loop as a server would, then close. */
static void run_sink(const char *dir, gw_fsync_t mode, uint64_t rotate, size_t n, size_t pad,
                     size_t flush_every)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    gw_tables_cfg_t cfg = {0};
    cfg.sink = GW_SINK_JSONL;
    cfg.dir = dir;
    cfg.flush_ms = 2;
    cfg.max_queue_bytes = 64u << 20;
    cfg.fsync = mode;
    cfg.rotate_bytes = rotate;
    tb_sink_t *s = tb_sink_jsonl_new(&loop, &cfg);
    cr_assert_not_null(s);
    char *padding = malloc(pad + 1);
    memset(padding, 'x', pad);
    padding[pad] = '\0';
    gw_buf_t row;
    gw_buf_init(&row);
    for (size_t i = 0; i < n; i++) {
        gw_buf_reset(&row);
        gw_buf_appendf(&row, "{\"id\":%zu,\"pad\":\"%s\"}\n", i, padding);
        tb_sink_write(s, i % 2 ? "a_payload" : "b_payload", i % 3 ? "2026-07-04" : "2026-07-05",
                      gw_buf_str(&row));
        if (flush_every && (i + 1) % flush_every == 0) {
            /* Hand this batch to the writer and wait for it, as a slow trickle of requests would. */
            tb_sink_flush(s);
            for (int k = 0; k < 100000 && s->rows_written < i + 1; k++)
                uv_run(&loop, UV_RUN_ONCE);
            cr_assert_eq(s->rows_written, i + 1);
        } else if (i % 50 == 0) {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    uint64_t written_before_close = s->rows_written;
    cr_assert_leq(written_before_close, n);
    bool closed = false;
    uint64_t dropped = s->rows_dropped;
    cr_assert_eq(dropped, 0);
    tb_sink_close(s, on_closed, &closed);
    for (int i = 0; i < 100000 && !closed; i++)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert(closed, "close completes");
    cr_assert_eq(uv_loop_close(&loop), 0, "no handle left open");
    gw_buf_dispose(&row);
    free(padding);
}

static void check_all_rows(gw_fsync_t mode)
{
    char *d = test_tmpdir("jsonl");
    enum { N = 3000 };
    run_sink(d, mode, 128u << 20, N, 40, 0);
    struct walk_ctx w = {0};
    w.n_ids = N;
    w.seen = calloc(N, 1);
    walk(&w, d);
    cr_assert_eq(w.rows, N, "every row written (mode %d): %zu", mode, w.rows);
    cr_assert_eq(w.dups, 0, "no row twice");
    cr_assert_eq(w.invalid + w.torn, 0);
    cr_assert_eq(w.files, 4, "two tables x two dates, one part file each: %zu", w.files);
    free(w.seen);
    test_rm_rf(d);
}

Test(sink_jsonl, fsync_none_keeps_every_row, .timeout = 30)
{
    check_all_rows(GW_FSYNC_NONE);
}

Test(sink_jsonl, fsync_batch_keeps_every_row, .timeout = 30)
{
    check_all_rows(GW_FSYNC_BATCH);
}

Test(sink_jsonl, fsync_always_keeps_every_row, .timeout = 60)
{
    check_all_rows(GW_FSYNC_ALWAYS);
}

Test(sink_jsonl, rotates_by_size, .timeout = 30)
{
    char *d = test_tmpdir("jsonl");
    enum { N = 2000 };
    /* Rows of ~230 bytes flushed 20 at a time, files of at most 16 KiB (a batch is never split
     * across files), so each of the four partitions rolls over many times. */
    run_sink(d, GW_FSYNC_NONE, 16384, N, 200, 20);
    struct walk_ctx w = {0};
    w.n_ids = N;
    w.seen = calloc(N, 1);
    walk(&w, d);
    cr_assert_eq(w.rows, N);
    cr_assert_eq(w.dups, 0);
    cr_assert_gt(w.files, 8, "rotated: %zu files", w.files);
    cr_assert_leq(w.max_file, 16384, "no file passes rotate_bytes: %zu", w.max_file);
    free(w.seen);
    /* Names: part-<pid>-<start>-<seq>.jsonl with a 4-digit seq. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/a_payload/request_date=2026-07-04", d);
    uv_fs_t req;
    int n = uv_fs_scandir(NULL, &req, path, 0, NULL);
    cr_assert_gt(n, 1);
    uv_dirent_t ent;
    bool saw_first = false;
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        size_t len = strlen(ent.name);
        cr_assert(strncmp(ent.name, "part-", 5) == 0 && len > 16 && strcmp(ent.name + len - 6, ".jsonl") == 0,
                  "name %s", ent.name);
        if (strcmp(ent.name + len - 11, "-0000.jsonl") == 0)
            saw_first = true;
    }
    uv_fs_req_cleanup(&req);
    cr_assert(saw_first);
    test_rm_rf(d);
}

Test(sink_jsonl, usage_rows_have_their_own_table, .timeout = 10)
{
    char *d = test_tmpdir("jsonl");
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_tables_cfg_t cfg = {0};
    cfg.dir = d;
    cfg.flush_ms = 1;
    cfg.max_queue_bytes = 1 << 20;
    cfg.rotate_bytes = 1 << 20;
    cfg.usage_table = true;
    tb_sink_t *s = tb_sink_jsonl_new(&loop, &cfg);
    tb_rec_t r = {0};
    r.databricks_request_id = "0190a0b0-0000-7000-8000-000000000001";
    r.request_time_us = 1783194026829000; /* 2026-07-04 */
    r.client_request_id = GW_STR_LIT("c-1");
    r.status_code = 200;
    r.endpoint_name = "chat-agent";
    r.has_tokens = true;
    r.input_tokens = 12;
    r.output_tokens = 3;
    r.token_count_source = "upstream";
    r.finish_status = "completed";
    r.total_duration_ms = 42;
    r.time_to_first_byte_ms = -1;
    gw_buf_t scratch;
    gw_buf_init(&scratch);
    tb_sink_write_usage(s, &r, 30, -1, &scratch);
    cr_assert(tb_jsonl_valid(gw_str_n(scratch.base, scratch.len - 1)), "one JSON line: %.*s",
              (int)scratch.len, scratch.base);
    cr_assert_not_null(strstr(scratch.base, "\"total_token_count\":15"));
    cr_assert_not_null(strstr(scratch.base, "\"input_character_count\":30"));
    cr_assert_not_null(strstr(scratch.base, "\"output_character_count\":null"));
    cr_assert_not_null(strstr(scratch.base, "\"latency_ms\":42"));
    cr_assert_not_null(strstr(scratch.base, "\"time_to_first_byte_ms\":null"));
    bool closed = false;
    tb_sink_close(s, on_closed, &closed);
    for (int i = 0; i < 10000 && !closed; i++)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert(closed);
    uv_loop_close(&loop);
    struct walk_ctx w = {0};
    walk(&w, d);
    cr_assert_eq(w.usage_rows, 1);
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/endpoint_usage/request_date=2026-07-04", d);
    cr_assert_eq(stat(path, &sb), 0, "usage rows under endpoint_usage/request_date=...");
    gw_buf_dispose(&scratch);
    test_rm_rf(d);
}
