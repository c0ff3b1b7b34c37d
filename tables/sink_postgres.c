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
 * database that accepts connections and refuses every batch is not asked again every 100 ms. */
#include <assert.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/log.h"
#include "tables/sink.h"
#include "tables/spool.h"

#define CONNECT_TIMEOUT_MS 5000
#define STMT_TIMEOUT_MS    15000 /* a statement slower than this: the database is stuck, spill */
#define RETRY_MIN_MS       100
#define RETRY_MAX_MS       2000  /* database unreachable: reconnect at least this often */
#define REFUSED_MAX_MS     30000 /* reachable but refusing (permissions 42501, schema, DDL): cap */
#define CLOSE_DEADLINE_MS  2000 /* SIGTERM: time to send the queue before spooling the rest */
#define BATCH_MAX_BYTES    (16u << 20)
#define ENSURED_MAX        1024
#define DDL_LOCK_KEY       "727465"
#define DOWN_LOG_EVERY_MS  10000

/* Column lists of tables/schema.sql (keep in sync: the integration test compares them). */
static const char payload_columns[] =
    "databricks_request_id text NOT NULL, request_date date NOT NULL, client_request_id text, "
    "request_time timestamptz NOT NULL, status_code integer, sampling_fraction double precision, "
    "execution_duration_ms bigint, request text, response text, logging_error_codes text[] NOT NULL, "
    "served_entity_id text, requester text, schema_version text NOT NULL, endpoint_name text, "
    "front_route text, served_entity_name text, adapter text, upstream_model text, upstream_replica text, "
    "attempt_count integer NOT NULL, attempts jsonb, fallback_used boolean NOT NULL, gateway_instance text, "
    "config_version text, trace_id text, total_duration_ms bigint NOT NULL, time_to_first_byte_ms bigint, "
    "time_to_first_token_ms bigint, queue_ms bigint, stream boolean NOT NULL, finish_status text NOT NULL, "
    "error_code text, error_message text, rate_limit_scope text, input_tokens bigint, output_tokens bigint, "
    "cached_input_tokens bigint, reasoning_tokens bigint, token_count_source text, "
    "request_bytes bigint NOT NULL, response_bytes bigint, usage_context jsonb, request_tags jsonb, "
    "redacted boolean NOT NULL, dropped_tools jsonb, PRIMARY KEY (databricks_request_id, request_date)";
static const char *const payload_indexes[] = {"request_time", "client_request_id",
                                              "served_entity_id, request_time", NULL};
static const char usage_columns[] =
    "databricks_request_id text NOT NULL, client_request_id text, requester text, "
    "request_time timestamptz NOT NULL, status_code integer, served_entity_id text, input_token_count "
    "bigint, "
    "output_token_count bigint, input_character_count bigint, output_character_count bigint, "
    "request_streaming boolean, usage_context jsonb, request_date date NOT NULL, schema_version text, "
    "endpoint_name text, latency_ms bigint, time_to_first_byte_ms bigint, cached_input_tokens bigint, "
    "total_token_count bigint, token_count_source text, attempt_count integer, fallback_used boolean, "
    "finish_status text, request_tags jsonb, rate_limit_scope text, "
    "PRIMARY KEY (databricks_request_id, request_date)";
static const char *const usage_indexes[] = {"request_time", "requester, request_time",
                                            "endpoint_name, request_time", NULL};

enum conn_state { C_DOWN = 0, C_CONNECTING, C_READY, C_BUSY };
enum stmt { ST_NONE = 0, ST_DDL, ST_INSERT };
enum origin { FROM_QUEUE = 0, FROM_SPOOL };

typedef struct pg pg_t;

/* Poll handle for the connection's socket; malloc'd because a new socket needs a new handle
 * while the old one may still be closing. Freed in on_poll_closed. */
struct pgpoll {
    uv_poll_t h;
    pg_t *s;
};

struct pg {
    tb_sink_t base;
    uv_loop_t *loop;
    char *dsn; /** owned */
    int flush_ms, batch_rows;
    size_t max_queue;
    tb_spool_t *spool; /** owned; NULL once closed */
    char **tables;     /** owned: created at connect */
    size_t n_tables;
    char (*ensured)[TB_TABLE_MAX + 12]; /** "table" or "table/date" known to exist; owned */
    size_t n_ensured;
    char (*marks)[TB_TABLE_MAX + 12]; /** entries the DDL in flight creates; owned */
    size_t n_marks, cap_marks;
    bool startup_done; /** configured tables ensured on this process's first connection */

    PGconn *conn;        /** owned; NULL when down */
    struct pgpoll *poll; /** NULL when none */
    int poll_events;
    enum conn_state cs;
    bool connect_job; /** a PQconnectStartParams runs on the threadpool */
    uv_work_t cwork;
    PGconn *cjob_conn; /** result of that job */
    int retry_ms;
    bool db_down; /** the last attempt failed: new rows go to the spool */
    uint64_t down_logged_ms;

    tb_row_t *q_head, **q_tail; /** memory queue, oldest first; owned */
    size_t q_rows, q_bytes;
    bool flush_due;

    enum stmt st;
    tb_row_t *batch; /** rows of the statement in flight; owned (spool rows: until commit) */
    size_t batch_n, batch_bytes;
    enum origin batch_origin;
    bool split;           /** a row was refused: send the batch one row at a time */
    tb_row_t *split_cur;  /** the row in flight in split mode */
    size_t split_written; /** rows of this batch stored one by one */
    int ensure_tries;
    bool reading_spool; /** a tb_spool_read is outstanding */
    gw_buf_t sql;
    gw_buf_t *params; /** one JSON array per table of the batch */
    size_t n_params, cap_params;
    char err_state[6]; /** SQLSTATE of the first error of the statement, "" = none */
    char err_msg[256];
    int64_t inserted; /** rows the last INSERT actually added (the rest were duplicates) */
    uint64_t rows_duplicate;

    uv_timer_t flush_timer, retry_timer, stmt_timer, close_timer;
    int open_handles; /** timers and poll handles not yet closed */
    bool closing, finalizing, deadline_passed, spool_closing;
    bool failing; /** since the last failure, no statement has succeeded (log and backoff state) */
    void (*on_closed)(void *);
    void *closed_ud;
    uint64_t dropped; /** rows lost by this sink (the spool counts its own) */
    uint64_t drop_logged_ms;
    uint64_t reject_logged_ms;
    uint64_t spool_lost_seen; /** tb_spool_lost_rows at the last update_state */
};

static void pump(pg_t *s);
static void send_current(pg_t *s);
static void conn_failed(pg_t *s, const char *why, const char *detail);
static void maybe_finish(pg_t *s);
static void start_connect(pg_t *s);
static void on_stmt_timer(uv_timer_t *t);

/* ---------------- small helpers ---------------- */

static uint64_t now_ms(pg_t *s)
{
    return uv_now(s->loop);
}

/* PQerrorMessage / PQresultErrorMessage text as one log-safe line. */
static void one_line(const char *in, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 1 < n; i++) {
        char c = in[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        if (c == '"')
            c = '\'';
        out[j++] = c;
    }
    while (j > 0 && out[j - 1] == ' ')
        j--;
    out[j] = '\0';
}

static bool valid_table(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= TB_TABLE_MAX)
        return false;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '-' ||
              *t == '_' || *t == '.'))
            return false;
    return true;
}

static bool valid_date(const char *d)
{
    if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

static void update_state(pg_t *s)
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
    update_state(s);
    uint64_t t = now_ms(s);
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
static void spill_queue(pg_t *s)
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
    s->flush_due = false;
    uv_timer_stop(&s->flush_timer);
}

/* Sanitise one JSON row for PostgreSQL: text cannot hold NUL, and json_populate_recordset refuses
 * the \u0000 escape, so it becomes \ufffd (the replacement character, as for invalid UTF-8).
 * A backslash always starts an escape pair in our serialiser's output, so pairs are skipped whole. */
static void append_row_json(gw_buf_t *b, const tb_row_t *r)
{
    size_t at = b->len;
    gw_buf_append(b, r->data, r->len);
    char *p = b->base + at;
    for (size_t i = 0; i + 1 < r->len; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && i + 5 < r->len && memcmp(p + i + 2, "0000", 4) == 0)
            memcpy(p + i + 2, "fffd", 4);
        i++;
    }
}

/* ---------------- DDL ---------------- */

static void partition_name(const char *table, const char *date, char out[64])
{
    char ymd[9] = {date[0], date[1], date[2], date[3], date[5], date[6], date[8], date[9], '\0'};
    size_t n = strlen(table);
    if (n + 9 <= 63) {
        snprintf(out, 64, "%s_%s", table, ymd);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a: keeps long names distinct after the cut */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)table[i];
        h *= 16777619u;
    }
    snprintf(out, 64, "%.40s_%08" PRIx32 "_%s", table, h, ymd);
}

static void next_day(const char *date, char out[11])
{
    struct tm tm = {0};
    tm.tm_year = atoi(date) - 1900;
    tm.tm_mon = atoi(date + 5) - 1;
    tm.tm_mday = atoi(date + 8) + 1;
    tm.tm_hour = 12;
    time_t t = timegm(&tm);
    gmtime_r(&t, &tm);
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
    memcpy(out, tmp, 11);
}

static bool is_ensured(const pg_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_ensured; i++)
        if (strcmp(s->ensured[i], key) == 0)
            return true;
    return false;
}

static bool is_marked(const pg_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_marks; i++)
        if (strcmp(s->marks[i], key) == 0)
            return true;
    return false;
}

static void mark(pg_t *s, const char *key)
{
    if (s->n_marks == s->cap_marks) {
        s->cap_marks = s->cap_marks ? s->cap_marks * 2 : 16;
        s->marks = gw_xrealloc(s->marks, s->cap_marks * sizeof(*s->marks));
    }
    snprintf(s->marks[s->n_marks++], sizeof(*s->marks), "%s", key);
}

/* Adds to s->sql the DDL for (table, date) unless it is known to exist or already planned. */
static void plan_ddl(pg_t *s, const char *table, const char *date)
{
    char key[TB_TABLE_MAX + 12];
    snprintf(key, sizeof(key), "%s/%s", table, date);
    if (is_ensured(s, key) || is_marked(s, key))
        return;
    if (!s->sql.len)
        gw_buf_append_cstr(&s->sql, "DO $agate$ BEGIN PERFORM pg_advisory_xact_lock(" DDL_LOCK_KEY ");\n");
    if (!is_ensured(s, table) && !is_marked(s, table)) {
        bool usage = strcmp(table, TB_USAGE_TABLE) == 0;
        gw_buf_appendf(&s->sql,
                       "IF to_regclass('\"%s\"') IS NULL THEN CREATE TABLE \"%s\" (%s) PARTITION BY RANGE "
                       "(request_date);\n",
                       table, table, usage ? usage_columns : payload_columns);
        for (const char *const *ix = usage ? usage_indexes : payload_indexes; *ix; ix++)
            gw_buf_appendf(&s->sql, "CREATE INDEX ON \"%s\" (%s);\n", table, *ix);
        gw_buf_append_cstr(&s->sql, "END IF;\n");
        mark(s, table);
    }
    char part[64], to[11];
    partition_name(table, date, part);
    next_day(date, to);
    gw_buf_appendf(&s->sql,
                   "IF to_regclass('\"%s\"') IS NULL THEN CREATE TABLE \"%s\" PARTITION OF \"%s\" FOR VALUES "
                   "FROM ('%s') TO ('%s'); END IF;\n",
                   part, part, table, date, to);
    mark(s, key);
}

static void forget_ensured(pg_t *s)
{
    s->n_ensured = 0;
}

static void commit_marks(pg_t *s)
{
    for (size_t i = 0; i < s->n_marks; i++) {
        if (s->n_ensured == ENSURED_MAX)
            s->n_ensured = 0; /* forgetting only costs a DDL round trip */
        memcpy(s->ensured[s->n_ensured++], s->marks[i], sizeof(*s->marks));
    }
    s->n_marks = 0;
}

/* ---------------- connection ---------------- */

static void on_poll_closed(uv_handle_t *h)
{
    struct pgpoll *p = h->data;
    pg_t *s = p->s;
    free(p);
    s->open_handles--;
    maybe_finish(s);
}

static void drop_poll(pg_t *s)
{
    if (!s->poll)
        return;
    uv_close((uv_handle_t *)&s->poll->h, on_poll_closed); /* stops it and removes the fd from epoll */
    s->poll = NULL;
    s->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* (Re)arm the socket watcher. A fresh handle when asked: during connection setup libpq may close
 * its socket and open another one with the same number, which an old epoll registration would
 * not see. */
static int watch(pg_t *s, int events, bool fresh)
{
    if (fresh)
        drop_poll(s);
    if (!s->poll) {
        int fd = PQsocket(s->conn);
        if (fd < 0)
            return -1;
        struct pgpoll *p = gw_xcalloc(1, sizeof(*p));
        p->s = s;
        if (uv_poll_init_socket(s->loop, &p->h, fd) < 0) {
            free(p);
            return -1;
        }
        p->h.data = p;
        s->open_handles++;
        s->poll = p;
        s->poll_events = 0;
    }
    if (events == s->poll_events)
        return 0;
    s->poll_events = events;
    return uv_poll_start(&s->poll->h, events, on_poll) < 0 ? -1 : 0;
}

static void teardown(pg_t *s)
{
    drop_poll(s);
    if (s->conn) {
        PQfinish(s->conn); /* non-blocking socket: sends Terminate if it can, then closes */
        s->conn = NULL;
    }
    uv_timer_stop(&s->stmt_timer);
    s->cs = C_DOWN;
    s->st = ST_NONE;
    s->n_marks = 0;
    gw_buf_reset(&s->sql);
}

/* The statement in flight failed or was abandoned: its rows go back where they came from. */
static void return_batch(pg_t *s)
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

static void on_retry_timer(uv_timer_t *t)
{
    start_connect(t->data);
}

static void schedule_retry(pg_t *s, bool refused)
{
    if (s->closing)
        return;
    int cap = refused ? REFUSED_MAX_MS : RETRY_MAX_MS;
    if (s->retry_ms > cap)
        s->retry_ms = cap;
    gw_log(GW_LOG_DEBUG, NULL, "event=table_db_retry sink=postgres in_ms=%d refused=%d", s->retry_ms, refused);
    uv_timer_start(&s->retry_timer, on_retry_timer, (uint64_t)s->retry_ms, 0);
    s->retry_ms = s->retry_ms * 2 > cap ? cap : s->retry_ms * 2;
}

/* Connection lost, refused, timed out or the server gave up: spill and reconnect later. */
static void conn_failed(pg_t *s, const char *why, const char *detail)
{
    char msg[256];
    one_line(detail, msg, sizeof(msg));
    uint64_t t = now_ms(s);
    /* One line per outage, then one per DOWN_LOG_EVERY_MS: a connection that succeeds and a
     * statement that fails again (a refusal) is the same outage until a statement succeeds. */
    if (!s->failing || t - s->down_logged_ms >= DOWN_LOG_EVERY_MS) {
        gw_log(s->failing ? GW_LOG_WARN : GW_LOG_ERROR, NULL,
               "event=table_db_down sink=postgres reason=%s error=\"%s\" queued=%zu action=spool", why, msg,
               s->q_rows + s->batch_n);
        s->down_logged_ms = t;
    }
    return_batch(s);
    teardown(s);
    s->db_down = true;
    s->failing = true;
    spill_queue(s);
    schedule_retry(s, strcmp(why, "statement_failed") == 0 || strcmp(why, "ddl_failed") == 0);
    update_state(s);
    maybe_finish(s);
}

static void on_connected(pg_t *s)
{
    uv_timer_stop(&s->stmt_timer);
    if (PQsetnonblocking(s->conn, 1) != 0 || watch(s, UV_READABLE, true) < 0) {
        conn_failed(s, "setup", PQerrorMessage(s->conn));
        return;
    }
    s->cs = C_READY; /* retry_ms is reset by a statement that succeeds, not by connecting */
    gw_log(GW_LOG_INFO, NULL,
           "event=table_db_connected sink=postgres host=%s port=%s db=%s spooled_bytes=%" PRIu64,
           PQhost(s->conn), PQport(s->conn), PQdb(s->conn), tb_spool_bytes(s->spool));
    if (!s->startup_done) {
        /* Configured tables with today's and tomorrow's partitions (§6), before any row. */
        char today[11], tomorrow[11];
        tb_rec_date((int64_t)time(NULL) * 1000000, today);
        next_day(today, tomorrow);
        gw_buf_reset(&s->sql);
        for (size_t i = 0; i < s->n_tables; i++) {
            plan_ddl(s, s->tables[i], today);
            plan_ddl(s, s->tables[i], tomorrow);
        }
        if (s->sql.len) {
            send_current(s); /* batch NULL: DDL only */
            return;
        }
        s->startup_done = true;
    }
    s->db_down = false;
    update_state(s);
    pump(s);
}

static void connect_step(pg_t *s)
{
    PostgresPollingStatusType r = PQconnectPoll(s->conn);
    switch (r) {
    case PGRES_POLLING_READING:
        if (watch(s, UV_READABLE, true) < 0)
            conn_failed(s, "connect", "cannot watch the socket");
        break;
    case PGRES_POLLING_WRITING:
        if (watch(s, UV_WRITABLE, true) < 0)
            conn_failed(s, "connect", "cannot watch the socket");
        break;
    case PGRES_POLLING_OK:
        on_connected(s);
        break;
    default:
        conn_failed(s, "connect", PQerrorMessage(s->conn));
        break;
    }
}

/* libpq prints server notices (and the FATAL of a server shutting down while we are idle) on
 * stderr by default; route them to our log as one key=value line instead. */
static void on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    char msg[256];
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), msg, sizeof(msg));
    gw_log(GW_LOG_INFO, NULL, "event=table_db_notice sink=postgres severity=%s message=\"%s\"",
           sev ? sev : "?", msg);
}

/* Threadpool: PQconnectStartParams may resolve the host name and read service/password files. */
static void job_connect(uv_work_t *w)
{
    pg_t *s = w->data;
    const char *kw[] = {"fallback_application_name", "gssencmode", "dbname", "client_encoding", NULL};
    const char *val[] = {"agate", "disable", s->dsn, "UTF8", NULL};
    s->cjob_conn = PQconnectStartParams(kw, val, 1);
}

static void job_connect_done(uv_work_t *w, int status)
{
    pg_t *s = w->data;
    (void)status;
    s->connect_job = false;
    PGconn *c = s->cjob_conn;
    s->cjob_conn = NULL;
    if (s->closing) {
        if (c)
            PQfinish(c);
        s->cs = C_DOWN;
        maybe_finish(s);
        return;
    }
    s->conn = c;
    if (!c || PQstatus(c) == CONNECTION_BAD) {
        conn_failed(s, "connect", c ? PQerrorMessage(c) : "out of memory");
        return;
    }
    PQsetNoticeReceiver(c, on_notice, s);
    uv_timer_start(&s->stmt_timer, on_stmt_timer, CONNECT_TIMEOUT_MS, 0); /* for the polling phase */
    /* Before the first PQconnectPoll, wait for writability (libpq docs, PQconnectStartParams). */
    if (watch(s, UV_WRITABLE, true) < 0) {
        conn_failed(s, "connect", "cannot watch the socket");
        return;
    }
}

static void on_stmt_timer(uv_timer_t *t)
{
    pg_t *s = t->data;
    if (s->cs == C_CONNECTING && s->connect_job)
        return; /* name lookup still running on the threadpool: its callback re-arms this timer */
    if (s->cs == C_CONNECTING)
        conn_failed(s, "connect_timeout", "no connection within the connect timeout");
    else if (s->cs == C_BUSY)
        conn_failed(s, "statement_timeout", "the database did not answer in time");
}

static void start_connect(pg_t *s)
{
    if (s->closing || s->connect_job || s->cs != C_DOWN)
        return;
    s->cs = C_CONNECTING;
    s->connect_job = true;
    s->cwork.data = s;
    uv_timer_start(&s->stmt_timer, on_stmt_timer, CONNECT_TIMEOUT_MS, 0);
    int rc = uv_queue_work(s->loop, &s->cwork, job_connect, job_connect_done);
    assert(rc == 0);
    (void)rc;
}

/* ---------------- statements ---------------- */

static void flush_out(pg_t *s)
{
    int r = PQflush(s->conn);
    if (r < 0) {
        conn_failed(s, "send", PQerrorMessage(s->conn));
        return;
    }
    /* r == 1: more to send once writable; results may arrive meanwhile. */
    if (watch(s, r ? UV_READABLE | UV_WRITABLE : UV_READABLE, false) < 0)
        conn_failed(s, "send", "cannot watch the socket");
}

static void sent(pg_t *s, enum stmt st)
{
    s->st = st;
    s->cs = C_BUSY;
    s->err_state[0] = '\0';
    s->err_msg[0] = '\0';
    s->inserted = 0;
    uv_timer_start(&s->stmt_timer, on_stmt_timer, STMT_TIMEOUT_MS, 0);
    flush_out(s);
}

static gw_buf_t *param_for(pg_t *s, const char *table, size_t *idx, const char **tables)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (strcmp(tables[i], table) == 0) {
            *idx = i;
            return &s->params[i];
        }
    if (s->n_params == s->cap_params) {
        size_t cap = s->cap_params ? s->cap_params * 2 : 4;
        s->params = gw_xrealloc(s->params, cap * sizeof(*s->params));
        for (size_t i = s->cap_params; i < cap; i++)
            gw_buf_init(&s->params[i]);
        s->cap_params = cap;
    }
    *idx = s->n_params;
    tables[s->n_params] = table;
    gw_buf_t *b = &s->params[s->n_params++];
    gw_buf_reset(b);
    gw_buf_append(b, "[", 1);
    return b;
}

/* One statement for rows [first, first+n): a data-modifying CTE per table, each inserting a
 * JSON array with ON CONFLICT DO NOTHING; the result is the number of rows really added. */
static void send_insert(pg_t *s)
{
    tb_row_t *first = s->split ? s->split_cur : s->batch;
    size_t n = s->split ? 1 : s->batch_n;
    const char **tables = gw_xmalloc((n + 1) * sizeof(*tables));
    s->n_params = 0;
    size_t i = 0;
    for (tb_row_t *r = first; r && i < n; r = r->next, i++) {
        size_t k;
        gw_buf_t *b = param_for(s, r->table, &k, tables);
        if (b->len > 1)
            gw_buf_append(b, ",", 1);
        append_row_json(b, r);
    }
    gw_buf_reset(&s->sql);
    gw_buf_append_cstr(&s->sql, "WITH ");
    for (size_t k = 0; k < s->n_params; k++) {
        gw_buf_append(&s->params[k], "]", 2); /* with the NUL: text parameters are C strings */
        s->params[k].len--;
        gw_buf_appendf(
            &s->sql,
            "%si%zu AS (INSERT INTO \"%s\" SELECT * FROM json_populate_recordset(NULL::\"%s\", $%zu::json) "
            "ON CONFLICT DO NOTHING RETURNING 1)",
            k ? ", " : "", k + 1, tables[k], tables[k], k + 1);
    }
    gw_buf_append_cstr(&s->sql, " SELECT 0");
    for (size_t k = 0; k < s->n_params; k++)
        gw_buf_appendf(&s->sql, " + (SELECT count(*) FROM i%zu)", k + 1);
    gw_buf_append(&s->sql, "", 1); /* NUL */
    const char **values = gw_xmalloc(s->n_params * sizeof(*values));
    for (size_t k = 0; k < s->n_params; k++)
        values[k] = s->params[k].base;
    int ok = PQsendQueryParams(s->conn, s->sql.base, (int)s->n_params, NULL, values, NULL, NULL, 0);
    free(values);
    free(tables);
    if (!ok) {
        conn_failed(s, "send", PQerrorMessage(s->conn));
        return;
    }
    sent(s, ST_INSERT);
}

/* Send the DDL the batch still needs, else its INSERT. */
static void send_current(pg_t *s)
{
    if (s->batch) {
        gw_buf_reset(&s->sql);
        for (tb_row_t *r = s->batch; r; r = r->next)
            plan_ddl(s, r->table, r->date);
    }
    if (!s->sql.len) {
        send_insert(s);
        return;
    }
    gw_buf_append_cstr(&s->sql, "END $agate$;");
    gw_buf_append(&s->sql, "", 1);
    if (!PQsendQuery(s->conn, s->sql.base)) {
        conn_failed(s, "send", PQerrorMessage(s->conn));
        return;
    }
    gw_buf_reset(&s->sql);
    sent(s, ST_DDL);
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
    send_current(s);
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
    update_state(s);
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
        uint64_t t = now_ms(s);
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
    pump(s);
}

/* Only data exceptions (class 22: bad text, number out of range, ...) are about a row itself.
 * Everything else (connection 08, resources 53, shutdown 57, permissions and schema 42, and
 * integrity 23, which our own rows only meet when the table was changed by hand) is about the
 * server or its setup: the rows are kept and sent again later, never discarded. */
static bool transient(const char *state)
{
    return strncmp(state, "22", 2) != 0;
}

static void statement_done(pg_t *s)
{
    enum stmt st = s->st;
    uv_timer_stop(&s->stmt_timer);
    s->st = ST_NONE;
    s->cs = C_READY;
    if (!s->err_state[0] && !s->err_msg[0]) {
        s->retry_ms = RETRY_MIN_MS;
        s->failing = false;
        if (st == ST_DDL) {
            commit_marks(s);
            if (!s->batch) {
                s->startup_done = true;
                s->db_down = false;
                update_state(s);
                pump(s);
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
        pump(s);
        return;
    }
    s->n_marks = 0;
    bool missing = strcmp(s->err_state, "42P01") == 0 ||
                   (strcmp(s->err_state, "23514") == 0 && strstr(s->err_msg, "no partition") != NULL);
    if (st == ST_INSERT && missing && s->ensure_tries++ < 3) {
        /* A table or partition vanished (dropped by hand?): create it again and retry. */
        forget_ensured(s);
        send_current(s);
        return;
    }
    if (transient(s->err_state) || st == ST_DDL || missing) {
        char detail[320];
        snprintf(detail, sizeof(detail), "sqlstate %s: %s", s->err_state, s->err_msg);
        conn_failed(s, st == ST_DDL ? "ddl_failed" : "statement_failed", detail);
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

static void take_result(pg_t *s, PGresult *res)
{
    ExecStatusType rs = PQresultStatus(res);
    if (rs == PGRES_TUPLES_OK && s->st == ST_INSERT && PQntuples(res) == 1) {
        s->inserted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        return;
    }
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK || rs == PGRES_EMPTY_QUERY)
        return;
    if (s->err_state[0] || s->err_msg[0])
        return; /* keep the first error */
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(s->err_state, sizeof(s->err_state), "%s", st ? st : "");
    one_line(PQresultErrorMessage(res), s->err_msg, sizeof(s->err_msg));
    if (!s->err_msg[0])
        snprintf(s->err_msg, sizeof(s->err_msg), "%s", PQresStatus(rs));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pg_t *s = ((struct pgpoll *)h->data)->s;
    if (s->cs == C_CONNECTING) {
        connect_step(s);
        return;
    }
    if (status < 0) {
        conn_failed(s, "socket", uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        flush_out(s);
        if (!s->conn)
            return;
    }
    if (!(events & UV_READABLE))
        return;
    if (!PQconsumeInput(s->conn)) {
        conn_failed(s, "receive", PQerrorMessage(s->conn));
        return;
    }
    PGnotify *nt;
    while ((nt = PQnotifies(s->conn)) != NULL)
        PQfreemem(nt);
    while (s->conn && !PQisBusy(s->conn)) {
        PGresult *res = PQgetResult(s->conn);
        if (!res) {
            if (s->st != ST_NONE)
                statement_done(s); /* may send the next statement: stop here */
            return;
        }
        if (s->st == ST_NONE) {
            /* Nothing asked: the server is telling us it goes away (57P01 on shutdown). */
            char msg[256];
            one_line(PQresultErrorMessage(res), msg, sizeof(msg));
            PQclear(res);
            conn_failed(s, "server_closed", msg);
            return;
        }
        take_result(s, res);
        PQclear(res);
    }
    if (s->conn && PQstatus(s->conn) == CONNECTION_BAD)
        conn_failed(s, "receive", PQerrorMessage(s->conn));
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
        maybe_finish(s);
        return;
    }
    if (n == 0) { /* only skipped lines, or the end: commit moves past them */
        tb_spool_commit(s->spool);
        if (tb_spool_empty(s->spool))
            gw_log(GW_LOG_INFO, NULL, "event=table_spool_drained sink=postgres rows_replayed=%" PRIu64,
                   s->base.rows_replayed);
        update_state(s);
        pump(s);
        return;
    }
    send_batch(s, rows, n, FROM_SPOOL);
}

/* Start the next statement if the connection is idle: the queue first (older), then the spool. */
static void pump(pg_t *s)
{
    if (s->finalizing)
        return;
    if (s->cs != C_READY || s->st != ST_NONE || s->reading_spool || !s->startup_done) {
        maybe_finish(s);
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
    maybe_finish(s);
}

static void on_flush_timer(uv_timer_t *t)
{
    pg_t *s = t->data;
    s->flush_due = true;
    pump(s);
}

static void pg_write(tb_sink_t *base, const char *table, const char *date, gw_str_t row)
{
    pg_t *s = (pg_t *)base;
    if (s->finalizing) {
        /* Closing and past the queue: the spool, open until the very end, takes the row. */
        if (!s->spool || !valid_table(table) || !valid_date(date)) {
            drop_rows(s, table, s->spool ? "bad_table_name" : "closed", 1);
            return;
        }
        tb_row_t *late = tb_row_new(table, date, row);
        to_spool(s, late);
        free(late);
        update_state(s);
        return;
    }
    if (!valid_table(table) || !valid_date(date)) {
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
        update_state(s);
        return;
    }
    *s->q_tail = r;
    s->q_tail = &r->next;
    s->q_rows++;
    s->q_bytes += r->len;
    if (s->q_rows >= (size_t)s->batch_rows || s->closing)
        pump(s);
    else if (!uv_is_active((uv_handle_t *)&s->flush_timer))
        uv_timer_start(&s->flush_timer, on_flush_timer, (uint64_t)s->flush_ms, 0);
}

static void pg_flush(tb_sink_t *base)
{
    pg_t *s = (pg_t *)base;
    s->flush_due = true;
    pump(s);
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
    for (size_t i = 0; i < s->cap_params; i++)
        gw_buf_dispose(&s->params[i]);
    free(s->params);
    gw_buf_dispose(&s->sql);
    for (size_t i = 0; i < s->n_tables; i++)
        free(s->tables[i]);
    free(s->tables);
    free(s->ensured);
    free(s->marks);
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
static void maybe_finish(pg_t *s)
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
        return_batch(s); /* deadline: unknown fate; the replay is idempotent */
    teardown(s);
    spill_queue(s);
    update_state(s);
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
    maybe_finish(s);
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
        teardown(s); /* polling a connection we will not use */
    if (s->cs != C_READY && s->cs != C_BUSY)
        spill_queue(s);
    pump(s); /* sends the queue, or finishes */
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
    s->ensured = gw_xcalloc(ENSURED_MAX, sizeof(*s->ensured));
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
        if (valid_table(name))
            s->tables[s->n_tables++] = gw_xstrndup(name, strlen(name));
    }
    gw_buf_init(&s->sql);
    uv_timer_t *timers[] = {&s->flush_timer, &s->retry_timer, &s->stmt_timer, &s->close_timer};
    for (size_t i = 0; i < 4; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = s;
    }
    s->open_handles = 4;
    update_state(s);
    start_connect(s);
    return &s->base;
}
