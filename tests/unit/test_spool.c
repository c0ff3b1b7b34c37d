/* tb_spool: rows come back oldest first across files, prepends go first, rewind repeats, a restart
 * replays what an earlier process left (skipping a torn line), the cap refuses rows, one process
 * per spool directory. */
#include <criterion/criterion.h>

#include "support/files.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "tables/spool.h"

struct got {
    bool done;
    int rc;
    size_t n;
    long ids[4096];
    char tables[4096][TB_TABLE_MAX];
};

static void on_rows(void *ud, tb_row_t *rows, size_t n, int rc)
{
    struct got *g = ud;
    g->done = true;
    g->rc = rc;
    g->n = n;
    size_t i = 0;
    for (tb_row_t *r = rows; r; r = r->next, i++) {
        cr_assert_lt(i, 4096);
        const char *p = strstr(r->data, "\"id\":");
        cr_assert_not_null(p, "row %s", r->data);
        g->ids[i] = strtol(p + 5, NULL, 10);
        snprintf(g->tables[i], sizeof(g->tables[i]), "%s", r->table);
        cr_assert_str_eq(r->date, "2026-07-04");
        cr_assert_eq(r->data[r->len], '\0');
    }
    cr_assert_eq(i, n);
    tb_rows_free(rows);
}

static void run_until(uv_loop_t *loop, bool *flag)
{
    for (int i = 0; i < 100000 && !*flag; i++)
        uv_run(loop, UV_RUN_ONCE);
    cr_assert(*flag, "loop callback never came");
}

static void append_ids(tb_spool_t *sp, long from, long to, const char *table, size_t pad)
{
    char *padding = malloc(pad + 1);
    memset(padding, 'p', pad);
    padding[pad] = '\0';
    for (long i = from; i < to; i++) {
        char buf[70000];
        int n = snprintf(buf, sizeof(buf), "{\"id\":%ld,\"s\":\"a\\\"b\\\\n\",\"pad\":\"%s\"}", i, padding);
        tb_row_t *r = tb_row_new(table, "2026-07-04", gw_str_n(buf, (size_t)n));
        cr_assert_eq(tb_spool_append(sp, r), 0);
        free(r);
    }
    free(padding);
}

/* Read everything (batches of `batch`), committing; returns the ids in order. */
static size_t drain(uv_loop_t *loop, tb_spool_t *sp, size_t batch, long *out, size_t cap)
{
    size_t total = 0;
    for (int rounds = 0; rounds < 10000 && !tb_spool_empty(sp); rounds++) {
        struct got *g = calloc(1, sizeof(*g));
        tb_spool_read(sp, batch, 1 << 20, on_rows, g);
        run_until(loop, &g->done);
        cr_assert_eq(g->rc, 0);
        cr_assert_leq(g->n, batch);
        for (size_t i = 0; i < g->n && total < cap; i++)
            out[total++] = g->ids[i];
        tb_spool_commit(sp);
        free(g);
    }
    cr_assert(tb_spool_empty(sp));
    return total;
}

static void on_closed(void *ud)
{
    *(bool *)ud = true;
}

static void close_spool(uv_loop_t *loop, tb_spool_t *sp)
{
    bool closed = false;
    tb_spool_close(sp, on_closed, &closed);
    run_until(loop, &closed);
}

static size_t count_spool_files(const char *dir)
{
    uv_fs_t req;
    int n = uv_fs_scandir(NULL, &req, dir, 0, NULL);
    size_t files = 0;
    uv_dirent_t ent;
    if (n > 0)
        while (uv_fs_scandir_next(&req, &ent) != UV_EOF)
            files += strncmp(ent.name, "spool-", 6) == 0;
    uv_fs_req_cleanup(&req);
    return files;
}

Test(spool, rows_come_back_in_order_and_files_go, .timeout = 30)
{
    char *d = test_tmpdir("spool");
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    tb_spool_t *sp = tb_spool_open(&loop, d, 1u << 30, GW_FSYNC_NONE, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    cr_assert(tb_spool_empty(sp));
    /* ~20 MB of rows: several 8 MiB spool files. */
    enum { N = 2500 };
    long *ids = calloc(N, sizeof(*ids));
    for (long k = 0; k < N; k += 100) {
        append_ids(sp, k, k + 100, k % 200 ? "a_payload" : "endpoint_usage", 8000);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert_not(tb_spool_empty(sp));
    cr_assert_gt(tb_spool_bytes(sp), (uint64_t)N * 8000);
    size_t n = drain(&loop, sp, 300, ids, N);
    cr_assert_eq(n, N);
    for (long i = 0; i < N; i++)
        cr_assert_eq(ids[i], i, "row %ld came back as %ld", i, ids[i]);
    cr_assert_eq(tb_spool_bytes(sp), 0);
    close_spool(&loop, sp);
    cr_assert_eq(count_spool_files(d), 0, "replayed files are deleted");
    cr_assert_eq(uv_loop_close(&loop), 0);
    free(ids);
    test_rm_rf(d);
}

Test(spool, prepend_goes_first_and_rewind_repeats, .timeout = 30)
{
    char *d = test_tmpdir("spool");
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    tb_spool_t *sp = tb_spool_open(&loop, d, 1u << 30, GW_FSYNC_BATCH, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    append_ids(sp, 100, 110, "t", 0);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    /* The memory queue of a sink that lost its database: older than everything spooled. */
    tb_row_t *head = NULL, **tail = &head;
    for (long i = 0; i < 5; i++) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "{\"id\":%ld}", i);
        *tail = tb_row_new("t", "2026-07-04", gw_str_n(buf, (size_t)n));
        tail = &(*tail)->next;
    }
    cr_assert_eq(tb_spool_prepend(sp, head), 0);
    tb_rows_free(head);
    append_ids(sp, 110, 112, "t", 0);

    struct got *g = calloc(1, sizeof(*g));
    tb_spool_read(sp, 7, 1 << 20, on_rows, g);
    run_until(&loop, &g->done);
    cr_assert_eq(g->n, 7);
    for (long i = 0; i < 5; i++)
        cr_assert_eq(g->ids[i], i);
    cr_assert_eq(g->ids[5], 100);
    tb_spool_rewind(sp);
    memset(g, 0, sizeof(*g));
    tb_spool_read(sp, 7, 1 << 20, on_rows, g);
    run_until(&loop, &g->done);
    cr_assert_eq(g->n, 7, "rewind: the same rows again");
    cr_assert_eq(g->ids[0], 0);
    cr_assert_eq(g->ids[6], 101);
    tb_spool_commit(sp);
    free(g);
    long ids[64];
    size_t n = drain(&loop, sp, 4, ids, 64);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ids[i], 102 + (long)i);
    close_spool(&loop, sp);
    cr_assert_eq(uv_loop_close(&loop), 0);
    test_rm_rf(d);
}

Test(spool, restart_replays_and_skips_torn_line, .timeout = 30)
{
    char *d = test_tmpdir("spool");
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    tb_spool_t *sp = tb_spool_open(&loop, d, 1u << 30, GW_FSYNC_BATCH, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    /* Second process on the same directory: refused. */
    tb_spool_t *other = tb_spool_open(&loop, d, 1u << 30, GW_FSYNC_BATCH, err, sizeof(err));
    cr_assert_null(other);
    cr_assert_not_null(strstr(err, "in use"), "%s", err);
    append_ids(sp, 0, 20, "t", 10);
    close_spool(&loop, sp); /* writes the queue: a clean stop with the database down */
    cr_assert_eq(count_spool_files(d), 1);

    /* Simulate a crash in the middle of the next write: a partial line at the end. */
    uv_fs_t req;
    uv_fs_scandir(NULL, &req, d, 0, NULL);
    uv_dirent_t ent;
    char path[1024] = "";
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF)
        if (strncmp(ent.name, "spool-", 6) == 0)
            snprintf(path, sizeof(path), "%s/%s", d, ent.name);
    uv_fs_req_cleanup(&req);
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f);
    fputs("{\"table\":\"t\",\"date\":\"2026-07-04\",\"row\":{\"id\":99,\"s\":\"cut", f);
    fclose(f);

    sp = tb_spool_open(&loop, d, 1u << 30, GW_FSYNC_BATCH, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    cr_assert_not(tb_spool_empty(sp), "files of the earlier run are found");
    append_ids(sp, 20, 25, "t", 10); /* new rows go after the old ones, in a new file */
    long ids[64];
    size_t n = drain(&loop, sp, 8, ids, 64);
    cr_assert_eq(n, 25, "the torn row is skipped, nothing else: %zu", n);
    for (long i = 0; i < 25; i++)
        cr_assert_eq(ids[i], i);
    cr_assert_eq(tb_spool_skipped_lines(sp), 1);
    close_spool(&loop, sp);
    cr_assert_eq(count_spool_files(d), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
    test_rm_rf(d);
}

Test(spool, cap_refuses_rows, .timeout = 10)
{
    char *d = test_tmpdir("spool");
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    tb_spool_t *sp = tb_spool_open(&loop, d, 65536, GW_FSYNC_NONE, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    char pad[1080], buf[1100];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    int len = snprintf(buf, sizeof(buf), "{\"id\":1,\"p\":\"%s\"}", pad);
    tb_row_t *r = tb_row_new("t", "2026-07-04", gw_str_n(buf, (size_t)len));
    int ok = 0, refused = 0;
    for (int i = 0; i < 100; i++) {
        if (tb_spool_append(sp, r) == 0)
            ok++;
        else
            refused++;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    cr_assert(ok >= 50 && ok <= 60, "about 64 KiB of 1.1 KiB rows: %d", ok);
    cr_assert_eq(ok + refused, 100);
    cr_assert_leq(tb_spool_bytes(sp), 65536);
    cr_assert_eq(tb_spool_prepend(sp, r), 1, "prepend too");
    free(r);
    long ids[128];
    cr_assert_eq(drain(&loop, sp, 1000, ids, 128), (size_t)ok);
    close_spool(&loop, sp);
    cr_assert_eq(uv_loop_close(&loop), 0);
    test_rm_rf(d);
}
