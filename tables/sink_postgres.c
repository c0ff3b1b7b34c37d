/* PostgreSQL sink: libpq's asynchronous API driven by the libuv loop (INFERENCE_TABLES.md §6).
 *
 * Path of a row: tb_sink_write -> memory queue (bounded by tables.max_queue_bytes) -> batches of
 * up to tables.batch_rows rows, one INSERT statement each (tables/schema.sql shows its shape). The
 * queue is flushed every flush_ms, or at once when a batch is full.
 *
 * Spill and replay (tables/spool.h): while the database is down (connect or statement failure),
 * or the queue is full because it is slow, rows go to the local spool instead. On failure the
 * batch in flight and the queue are put in front of the spool, so the spool holds every pending
 * row oldest first. Once the spool is non-empty every new row is appended to it too, and only
 * once it is replayed to the end do rows take the memory path again: replay is in order. A batch
 * is committed in the spool only after the database acknowledged it; a batch whose fate is
 * unknown (timeout, connection lost) is sent again, and ON CONFLICT DO NOTHING on the primary key
 * makes that harmless (at-least-once delivery, exactly-once rows). Past tables.spool_max_bytes rows
 * are dropped: counted, logged, and /readyz turns not ready (tb_sink_ready).
 *
 * Rows the database refuses (a data error, not a connection one) are retried one by one; a row
 * refused alone is written to spool_dir/rejected.jsonl and counted, never retried forever.
 *
 * Never blocking the loop: PQconnectStartParams (name lookup, service files) runs on the threadpool;
 * everything after is PQconnectPoll / PQsendQuery* / PQflush / PQconsumeInput on a non-blocking
 * socket watched by a uv_poll_t. Multi-host connection strings may resolve later hosts from
 * PQconnectPoll on the loop: prefer a single host or hostaddr. SIGTERM: rows still queued are sent
 * for up to CLOSE_DEADLINE_MS, and whatever is left is spooled; none is lost.
 *
 * Closing: tb_sink_close may come while calls are still finishing. Every row written before the
 * close callback runs is kept: sent while the deadline allows, else spooled (the spool is closed
 * last, after the timers, and accepts rows until then). What the caller must guarantee: no
 * tb_sink_write after the close callback (the sink is freed), so close it only once the last
 * call that can write a row has written it (gateway/main.c waits for gw_proxy_active() == 0).
 *
 * Retries: a failure doubles the wait before the next connection attempt (RETRY_MIN_MS up to
 * RETRY_MAX_MS while the database is unreachable, up to REFUSED_MAX_MS when it answers and
 * refuses, e.g. 42501 for a role without INSERT); only a statement that succeeds resets it, so a
 * database that accepts connections and refuses every batch is not asked again every 100 ms.
 *
 * Files: this one is the sink (queue, batches, spool replay, close); sink_postgres_conn.c the
 * connection; pg_sql.c the SQL text; sink_postgres_int.h what the two sink files share. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"
#include "tables/sink_postgres_int.h"

#define CLOSE_DEADLINE_MS  2000 /* SIGTERM: time to send the queue before spooling the rest */
#define BATCH_MAX_BYTES    (16u << 20)

/* ---------------- queue state ---------------- */

void tb__pg_update_state(pg_t *s)
{
    if (!s->spool) { /* closing: the spool is gone, the counters still move */
        s->base.rows_dropped = s->dropped + s->spool_lost_seen;
        return;
    }
    s->base.spool_bytes = tb_spool_bytes(s->spool);
    uint64_t lost = tb_spool_lost_rows(s->spool);
    if (lost != s->spool_lost_seen) { /* spool writes failing (disk full?): rows are being lost */
        s->spool_lost_seen = lost;
        s->base.degraded = true;
    }
    s->base.rows_dropped = s->dropped + lost;
    if (s->base.degraded)
        s->base.state = "degraded";
    else if (s->db_down || !tb_spool_empty(s->spool))
        s->base.state = "spooling";
    else
        s->base.state = "ok";
}

/* Every loss is counted and logged (rate-limited to one line a second, with totals). */
static void drop_rows(pg_t *s, const char *table, const char *reason, size_t n)
{
    if (!n)
        return;
    s->dropped += n;
    s->base.degraded = true;
    tb__pg_update_state(s);
    uint64_t t = tb__pg_now_ms(s);
    if (s->drop_logged_ms && t - s->drop_logged_ms < 1000)
        return;
    s->drop_logged_ms = t;
    gw_log(GW_LOG_ERROR, NULL,
           "event=table_row_dropped sink=postgres reason=%s table=%s dropped_total=%" PRIu64
           " spool_bytes=%" PRIu64,
           reason, table, s->base.rows_dropped, s->base.spool_bytes);
}

static void to_spool(pg_t *s, const tb_row_t *r)
{
    if (tb_spool_append(s->spool, r) < 0) {
        drop_rows(s, r->table, "spool_full", 1);
        return;
    }
    s->base.rows_spooled++;
    s->base.degraded = false;
}

/* The queue (older than anything spooled) goes in front of the spool. */
void tb__pg_spill_queue(pg_t *s)
{
    if (!s->q_head)
        return;
    size_t refused = tb_spool_prepend(s->spool, s->q_head);
    s->base.rows_spooled += s->q_rows - refused;
    if (refused)
        drop_rows(s, s->q_head->table, "spool_full", refused);
    else
        s->base.degraded = false;
    tb_rows_free(s->q_head);
    s->q_head = NULL;
    s->q_tail = &s->q_head;
    s->q_rows = s->q_bytes = 0;
    s->base.queue_bytes = 0;
    s->flush_due = false;
    uv_timer_stop(&s->flush_timer);
}

void tb__pg_return_batch(pg_t *s)
{
    if (!s->batch)
        return;
    tb_row_t *rows = s->batch;
    if (s->split) {
        /* Rows before split_cur are already stored or rejected. */
        while (rows != s->split_cur) {
            tb_row_t *n = rows->next;
            free(rows);
            rows = n;
        }
    }
    if (s->batch_origin == FROM_QUEUE) {
        size_t n = 0, bytes = 0;
        tb_row_t *last = NULL;
        for (tb_row_t *r = rows; r; r = r->next) {
            n++;
            bytes += r->len;
            last = r;
        }
        if (last) {
            last->next = s->q_head;
            if (!s->q_head)
                s->q_tail = &last->next;
            s->q_head = rows;
            s->q_rows += n;
            s->q_bytes += bytes;
            s->base.queue_bytes = s->q_bytes;
        }
    } else {
        tb_rows_free(rows);
        tb_spool_rewind(s->spool);
    }
    s->batch = NULL;
    s->batch_n = s->batch_bytes = 0;
    s->split = false;
    s->split_cur = NULL;
}

/* ---------------- statements ---------------- */

/* One statement for the batch, or for the row in flight in split mode (tb_pgsql_insert_build). */
static void send_insert(pg_t *s)
{
    tb_row_t *first = s->split ? s->split_cur : s->batch;
    size_t n = s->split ? 1 : s->batch_n;
    tb_pgsql_insert_build(&s->ins, &s->sql, first, n);
    int ok = PQsendQueryParams(s->conn, s->sql.base, (int)s->ins.n_params, NULL, s->ins.values, NULL, NULL, 0);
    if (!ok) {
        tb__pg_conn_failed(s, "send", PQerrorMessage(s->conn));
        return;
    }
    tb__pg_sent(s, ST_INSERT);
}

void tb__pg_send_current(pg_t *s)
{
    if (s->batch) {
        gw_buf_reset(&s->sql);
        for (tb_row_t *r = s->batch; r; r = r->next)
            tb_pgsql_ddl_plan(&s->ddl, &s->sql, r->table, r->date);
    }
    if (!s->sql.len) {
        send_insert(s);
        return;
    }
    tb_pgsql_ddl_close(&s->sql);
    if (!PQsendQuery(s->conn, s->sql.base)) {
        tb__pg_conn_failed(s, "send", PQerrorMessage(s->conn));
        return;
    }
    gw_buf_reset(&s->sql);
    tb__pg_sent(s, ST_DDL);
}

static void send_batch(pg_t *s, tb_row_t *rows, size_t n, enum origin o)
{
    s->batch = rows;
    s->batch_n = n;
    s->batch_bytes = 0;
    for (tb_row_t *r = rows; r; r = r->next)
        s->batch_bytes += r->len;
    s->batch_origin = o;
    s->split = false;
    s->split_cur = NULL;
    s->split_written = 0;
    s->ensure_tries = 0;
    tb__pg_send_current(s);
}

static void batch_done(pg_t *s)
{
    size_t stored = s->split ? s->split_written : s->batch_n;
    if (!s->split) {
        s->base.rows_written += stored;
        if (s->batch_origin == FROM_SPOOL)
            s->base.rows_replayed += stored;
        s->rows_duplicate += s->batch_n - (size_t)(s->inserted < 0 ? 0 : s->inserted);
    }
    tb_rows_free(s->batch);
    s->batch = NULL;
    s->batch_n = s->batch_bytes = 0;
    s->split = false;
    s->split_cur = NULL;
    if (s->batch_origin == FROM_SPOOL) {
        tb_spool_commit(s->spool);
        if (tb_spool_empty(s->spool) && !s->db_down)
            gw_log(GW_LOG_INFO, NULL, "event=table_spool_drained sink=postgres rows_replayed=%" PRIu64,
                   s->base.rows_replayed);
    }
    tb__pg_update_state(s);
}

/* The row in flight in split mode was stored (ok) or refused: move on. */
static void split_next(pg_t *s, bool ok)
{
    tb_row_t *r = s->split_cur;
    if (ok) {
        s->split_written++;
        s->base.rows_written++;
        if (s->batch_origin == FROM_SPOOL)
            s->base.rows_replayed++;
        s->rows_duplicate += s->inserted > 0 ? 0 : 1;
    } else {
        tb_spool_reject(s->spool, r);
        s->base.rows_rejected++;
        uint64_t t = tb__pg_now_ms(s);
        if (!s->reject_logged_ms || t - s->reject_logged_ms >= 1000) {
            s->reject_logged_ms = t;
            gw_log(GW_LOG_ERROR, NULL,
                   "event=table_row_rejected sink=postgres table=%s sqlstate=%s error=\"%s\" "
                   "rejected_total=%" PRIu64 " kept=rejected.jsonl",
                   r->table, s->err_state, s->err_msg, s->base.rows_rejected);
        }
    }
    s->split_cur = r->next;
    if (s->split_cur) {
        send_insert(s);
        return;
    }
    batch_done(s);
    tb__pg_pump(s);
}

/* Only data exceptions (class 22: bad text, number out of range, ...) are about a row itself.
 * Everything else (connection 08, resources 53, shutdown 57, permissions and schema 42, and
 * integrity 23, which our own rows only meet when the table was changed by hand) is about the
 * server or its setup: the rows are kept and sent again later, never discarded. */
static bool transient(const char *state)
{
    return strncmp(state, "22", 2) != 0;
}

void tb__pg_statement_done(pg_t *s)
{
    enum stmt st = s->st;
    uv_timer_stop(&s->stmt_timer);
    s->st = ST_NONE;
    s->cs = C_READY;
    if (!s->err_state[0] && !s->err_msg[0]) {
        s->retry_ms = RETRY_MIN_MS;
        s->failing = false;
        if (st == ST_DDL) {
            tb_pgsql_ddl_commit(&s->ddl);
            if (!s->batch) {
                s->startup_done = true;
                s->db_down = false;
                tb__pg_update_state(s);
                tb__pg_pump(s);
                return;
            }
            send_insert(s);
            return;
        }
        if (s->split) {
            split_next(s, true);
            return;
        }
        batch_done(s);
        tb__pg_pump(s);
        return;
    }
    tb_pgsql_ddl_abandon(&s->ddl);
    bool missing = strcmp(s->err_state, "42P01") == 0 ||
                   (strcmp(s->err_state, "23514") == 0 && strstr(s->err_msg, "no partition") != NULL);
    if (st == ST_INSERT && missing && s->ensure_tries++ < 3) {
        /* A table or partition vanished (dropped by hand?): create it again and retry. */
        tb_pgsql_ddl_forget(&s->ddl);
        tb__pg_send_current(s);
        return;
    }
    if (transient(s->err_state) || st == ST_DDL || missing) {
        char detail[320];
        snprintf(detail, sizeof(detail), "sqlstate %s: %s", s->err_state, s->err_msg);
        tb__pg_conn_failed(s, st == ST_DDL ? "ddl_failed" : "statement_failed", detail);
        return;
    }
    /* A data error: some row is refused. Find it by sending the rows one by one. */
    if (!s->split && s->batch_n > 1) {
        gw_log(GW_LOG_WARN, NULL, "event=table_batch_refused sink=postgres rows=%zu sqlstate=%s action=split",
               s->batch_n, s->err_state);
        s->split = true;
        s->split_cur = s->batch;
        s->split_written = 0;
        send_insert(s);
        return;
    }
    if (!s->split) {
        s->split = true;
        s->split_cur = s->batch;
        s->split_written = 0;
    }
    split_next(s, false);
}

/* ---------------- queue and spool ---------------- */

static void on_flush_timer(uv_timer_t *t);

static void on_spool_rows(void *ud, tb_row_t *rows, size_t n, int rc)
{
    pg_t *s = ud;
    s->reading_spool = false;
    if (s->closing || s->cs != C_READY || rc < 0) {
        tb_rows_free(rows);
        tb_spool_rewind(s->spool);
        if (rc < 0) {
            gw_log(GW_LOG_ERROR, NULL, "event=table_spool_read_failed sink=postgres error=\"%s\"",
                   strerror(-rc));
            uv_timer_start(&s->flush_timer, on_flush_timer, 1000, 0);
        }
        tb__pg_maybe_finish(s);
        return;
    }
    if (n == 0) { /* only skipped lines, or the end: commit moves past them */
        tb_spool_commit(s->spool);
        if (tb_spool_empty(s->spool))
            gw_log(GW_LOG_INFO, NULL, "event=table_spool_drained sink=postgres rows_replayed=%" PRIu64,
                   s->base.rows_replayed);
        tb__pg_update_state(s);
        tb__pg_pump(s);
        return;
    }
    send_batch(s, rows, n, FROM_SPOOL);
}

/* Start the next statement if the connection is idle: the queue first (older), then the spool. */
void tb__pg_pump(pg_t *s)
{
    if (s->finalizing)
        return;
    if (s->cs != C_READY || s->st != ST_NONE || s->reading_spool || !s->startup_done) {
        tb__pg_maybe_finish(s);
        return;
    }
    if (s->q_head && (s->flush_due || s->closing || s->q_rows >= (size_t)s->batch_rows)) {
        tb_row_t *rows = s->q_head, **cut = &s->q_head;
        size_t n = 0, bytes = 0;
        while (*cut && n < (size_t)s->batch_rows && (n == 0 || bytes + (*cut)->len <= BATCH_MAX_BYTES)) {
            bytes += (*cut)->len;
            n++;
            cut = &(*cut)->next;
        }
        s->q_head = *cut;
        *cut = NULL;
        if (!s->q_head)
            s->q_tail = &s->q_head;
        s->q_rows -= n;
        s->q_bytes -= bytes;
        s->base.queue_bytes = s->q_bytes;
        if (!s->q_head) {
            s->flush_due = false;
            uv_timer_stop(&s->flush_timer);
        }
        send_batch(s, rows, n, FROM_QUEUE);
        return;
    }
    if (!s->q_head && !s->closing && !tb_spool_empty(s->spool)) {
        s->reading_spool = true;
        tb_spool_read(s->spool, (size_t)s->batch_rows, BATCH_MAX_BYTES, on_spool_rows, s);
        return;
    }
    tb__pg_maybe_finish(s);
}

static void on_flush_timer(uv_timer_t *t)
{
    pg_t *s = t->data;
    s->flush_due = true;
    tb__pg_pump(s);
}

static void pg_write(tb_sink_t *base, const char *table, const char *date, gw_str_t row)
{
    pg_t *s = (pg_t *)base;
    if (s->finalizing) {
        /* Closing and past the queue: the spool, open until the very end, takes the row. */
        if (!s->spool || !tb_pgsql_valid_table(table) || !tb_pgsql_valid_date(date)) {
            drop_rows(s, table, s->spool ? "bad_table_name" : "closed", 1);
            return;
        }
        tb_row_t *late = tb_row_new(table, date, row);
        to_spool(s, late);
        free(late);
        tb__pg_update_state(s);
        return;
    }
    if (!tb_pgsql_valid_table(table) || !tb_pgsql_valid_date(date)) {
        drop_rows(s, "(invalid)", "bad_table_name", 1);
        return;
    }
    while (row.len && (row.base[row.len - 1] == '\n' || row.base[row.len - 1] == '\r'))
        row.len--;
    tb_row_t *r = tb_row_new(table, date, row);
    bool connected = s->cs == C_READY || s->cs == C_BUSY;
    if (s->db_down || !tb_spool_empty(s->spool) || s->q_bytes + r->len > s->max_queue ||
        (s->closing && !connected)) {
        to_spool(s, r);
        free(r);
        tb__pg_update_state(s);
        return;
    }
    *s->q_tail = r;
    s->q_tail = &r->next;
    s->q_rows++;
    s->q_bytes += r->len;
    s->base.queue_bytes = s->q_bytes;
    if (s->q_rows >= (size_t)s->batch_rows || s->closing)
        tb__pg_pump(s);
    else if (!uv_is_active((uv_handle_t *)&s->flush_timer))
        uv_timer_start(&s->flush_timer, on_flush_timer, (uint64_t)s->flush_ms, 0);
}

static void pg_flush(tb_sink_t *base)
{
    pg_t *s = (pg_t *)base;
    s->flush_due = true;
    tb__pg_pump(s);
}

/* ---------------- shutdown ---------------- */

static void free_sink(pg_t *s)
{
    void (*cb)(void *) = s->on_closed;
    void *ud = s->closed_ud;
    gw_log(GW_LOG_INFO, NULL,
           "event=table_sink_closed sink=postgres rows_written=%" PRIu64 " rows_replayed=%" PRIu64
           " rows_spooled=%" PRIu64 " rows_dropped=%" PRIu64 " rows_rejected=%" PRIu64
           " rows_duplicate=%" PRIu64 " spool_bytes=%" PRIu64,
           s->base.rows_written, s->base.rows_replayed, s->base.rows_spooled, s->base.rows_dropped,
           s->base.rows_rejected, s->rows_duplicate, s->base.spool_bytes);
    tb_rows_free(s->q_head);
    tb_pgsql_insert_dispose(&s->ins);
    gw_buf_dispose(&s->sql);
    for (size_t i = 0; i < s->n_tables; i++)
        free(s->tables[i]);
    free(s->tables);
    tb_pgsql_ddl_dispose(&s->ddl);
    free(s->dsn);
    free(s);
    if (cb)
        cb(ud);
}

static void on_spool_closed(void *ud)
{
    pg_t *s = ud;
    s->spool = NULL;
    free_sink(s);
}

/* The spool is closed last, once every handle is: until then a late row still reaches it. */
static void close_spool_if_done(pg_t *s)
{
    if (s->open_handles == 0 && s->spool && !s->spool_closing) {
        s->spool_closing = true;
        tb_spool_close(s->spool, on_spool_closed, s);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    pg_t *s = h->data;
    s->open_handles--;
    close_spool_if_done(s);
}

/* Closing ends once the queue is in the database or the spool and nothing is in flight. */
void tb__pg_maybe_finish(pg_t *s)
{
    if (!s->closing)
        return;
    if (s->finalizing) {
        close_spool_if_done(s);
        return;
    }
    bool connected = s->cs == C_READY || s->cs == C_BUSY;
    if (!s->deadline_passed && (s->st != ST_NONE || (s->q_head && connected)))
        return; /* still sending */
    if (s->connect_job || s->reading_spool)
        return; /* their callbacks come back here */
    if (s->st != ST_NONE)
        tb__pg_return_batch(s); /* deadline: unknown fate; the replay is idempotent */
    tb__pg_teardown(s);
    tb__pg_spill_queue(s);
    tb__pg_update_state(s);
    s->finalizing = true;
    uv_close((uv_handle_t *)&s->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->stmt_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->close_timer, on_handle_closed);
}

static void on_close_deadline(uv_timer_t *t)
{
    pg_t *s = t->data;
    gw_log(GW_LOG_WARN, NULL,
           "event=table_close_deadline sink=postgres queued=%zu in_flight=%zu action=spool", s->q_rows,
           s->batch_n);
    s->deadline_passed = true;
    tb__pg_maybe_finish(s);
}

static void pg_close(tb_sink_t *base, void (*done)(void *ud), void *ud)
{
    pg_t *s = (pg_t *)base;
    s->closing = true;
    s->on_closed = done;
    s->closed_ud = ud;
    uv_timer_stop(&s->flush_timer);
    uv_timer_stop(&s->retry_timer);
    uv_timer_start(&s->close_timer, on_close_deadline, CLOSE_DEADLINE_MS, 0);
    if (s->cs == C_CONNECTING && !s->connect_job)
        tb__pg_teardown(s); /* polling a connection we will not use */
    if (s->cs != C_READY && s->cs != C_BUSY)
        tb__pg_spill_queue(s);
    tb__pg_pump(s); /* sends the queue, or finishes */
}

static const tb_sink_vtable_t pg_vt = {pg_write, pg_flush, pg_close};

tb_sink_t *tb_sink_postgres_new(uv_loop_t *loop, const gw_config_t *cfg, char *err, size_t errlen)
{
    const gw_tables_cfg_t *tc = &cfg->tables;
    tb_spool_t *sp = tb_spool_open(loop, tc->spool_dir, tc->spool_max_bytes, tc->fsync, err, errlen);
    if (!sp)
        return NULL;
    pg_t *s = gw_xcalloc(1, sizeof(*s));
    s->base.vt = &pg_vt;
    s->base.state = "ok";
    s->base.usage_table = tc->usage_table;
    s->loop = loop;
    s->dsn = gw_xstrndup(tc->dsn, strlen(tc->dsn));
    s->flush_ms = tc->flush_ms;
    s->batch_rows = tc->batch_rows;
    s->max_queue = tc->max_queue_bytes;
    s->spool = sp;
    s->q_tail = &s->q_head;
    s->retry_ms = RETRY_MIN_MS;
    tb_pgsql_ddl_init(&s->ddl);
    /* Every table this config can produce; endpoints added by a reload are created on first use. */
    s->tables = gw_xcalloc(cfg->n_endpoints + 2, sizeof(*s->tables));
    for (size_t i = 0; i < cfg->n_endpoints + 2; i++) {
        char name[TB_TABLE_MAX];
        if (i < cfg->n_endpoints)
            snprintf(name, sizeof(name), "%s_payload", cfg->endpoints[i].name);
        else if (i == cfg->n_endpoints)
            snprintf(name, sizeof(name), "unrouted_payload");
        else if (tc->usage_table)
            snprintf(name, sizeof(name), "%s", TB_USAGE_TABLE);
        else
            continue;
        if (tb_pgsql_valid_table(name))
            s->tables[s->n_tables++] = gw_xstrndup(name, strlen(name));
    }
    gw_buf_init(&s->sql);
    uv_timer_t *timers[] = {&s->flush_timer, &s->retry_timer, &s->stmt_timer, &s->close_timer};
    for (size_t i = 0; i < 4; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = s;
    }
    s->open_handles = 4;
    tb__pg_update_state(s);
    tb__pg_start_connect(s);
    return &s->base;
}
