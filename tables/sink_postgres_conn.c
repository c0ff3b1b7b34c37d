/* The PostgreSQL sink's connection (see sink_postgres.c for the whole design): the connect job
 * on the threadpool, PQconnectPoll and the socket watcher, retries with backoff, sending a
 * statement and collecting its results. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/log.h"
#include "tables/sink_postgres_int.h"

#define CONNECT_TIMEOUT_MS 5000
#define STMT_TIMEOUT_MS    15000 /* a statement slower than this: the database is stuck, spill */
#define RETRY_MAX_MS       2000  /* database unreachable: reconnect at least this often */
#define REFUSED_MAX_MS     30000 /* reachable but refusing (permissions 42501, schema, DDL): cap */
#define DOWN_LOG_EVERY_MS  10000

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

/* Poll handle for the connection's socket; malloc'd because a new socket needs a new handle
 * while the old one may still be closing. Freed in on_poll_closed. */
struct pgpoll {
    uv_poll_t h;
    pg_t *s;
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_stmt_timer(uv_timer_t *t);

static void on_poll_closed(uv_handle_t *h)
{
    struct pgpoll *p = h->data;
    pg_t *s = p->s;
    free(p);
    s->open_handles--;
    tb__pg_maybe_finish(s);
}

static void drop_poll(pg_t *s)
{
    if (!s->poll)
        return;
    uv_close((uv_handle_t *)&s->poll->h, on_poll_closed); /* stops it and removes the fd from epoll */
    s->poll = NULL;
    s->poll_events = 0;
}

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

void tb__pg_teardown(pg_t *s)
{
    drop_poll(s);
    if (s->conn) {
        PQfinish(s->conn); /* non-blocking socket: sends Terminate if it can, then closes */
        s->conn = NULL;
    }
    uv_timer_stop(&s->stmt_timer);
    s->cs = C_DOWN;
    s->st = ST_NONE;
    tb_pgsql_ddl_abandon(&s->ddl);
    gw_buf_reset(&s->sql);
}

static void on_retry_timer(uv_timer_t *t)
{
    tb__pg_start_connect(t->data);
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

void tb__pg_conn_failed(pg_t *s, const char *why, const char *detail)
{
    char msg[256];
    one_line(detail, msg, sizeof(msg));
    uint64_t t = tb__pg_now_ms(s);
    /* One line per outage, then one per DOWN_LOG_EVERY_MS: a connection that succeeds and a
     * statement that fails again (a refusal) is the same outage until a statement succeeds. */
    if (!s->failing || t - s->down_logged_ms >= DOWN_LOG_EVERY_MS) {
        gw_log(s->failing ? GW_LOG_WARN : GW_LOG_ERROR, NULL,
               "event=table_db_down sink=postgres reason=%s error=\"%s\" queued=%zu action=spool", why, msg,
               s->q_rows + s->batch_n);
        s->down_logged_ms = t;
    }
    tb__pg_return_batch(s);
    tb__pg_teardown(s);
    s->db_down = true;
    s->failing = true;
    tb__pg_spill_queue(s);
    schedule_retry(s, strcmp(why, "statement_failed") == 0 || strcmp(why, "ddl_failed") == 0);
    tb__pg_update_state(s);
    tb__pg_maybe_finish(s);
}

static void on_connected(pg_t *s)
{
    uv_timer_stop(&s->stmt_timer);
    if (PQsetnonblocking(s->conn, 1) != 0 || watch(s, UV_READABLE, true) < 0) {
        tb__pg_conn_failed(s, "setup", PQerrorMessage(s->conn));
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
        tb_pgsql_next_day(today, tomorrow);
        gw_buf_reset(&s->sql);
        for (size_t i = 0; i < s->n_tables; i++) {
            tb_pgsql_ddl_plan(&s->ddl, &s->sql, s->tables[i], today);
            tb_pgsql_ddl_plan(&s->ddl, &s->sql, s->tables[i], tomorrow);
        }
        if (s->sql.len) {
            tb__pg_send_current(s); /* batch NULL: DDL only */
            return;
        }
        s->startup_done = true;
    }
    s->db_down = false;
    tb__pg_update_state(s);
    tb__pg_pump(s);
}

static void connect_step(pg_t *s)
{
    PostgresPollingStatusType r = PQconnectPoll(s->conn);
    switch (r) {
    case PGRES_POLLING_READING:
        if (watch(s, UV_READABLE, true) < 0)
            tb__pg_conn_failed(s, "connect", "cannot watch the socket");
        break;
    case PGRES_POLLING_WRITING:
        if (watch(s, UV_WRITABLE, true) < 0)
            tb__pg_conn_failed(s, "connect", "cannot watch the socket");
        break;
    case PGRES_POLLING_OK:
        on_connected(s);
        break;
    default:
        tb__pg_conn_failed(s, "connect", PQerrorMessage(s->conn));
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
        tb__pg_maybe_finish(s);
        return;
    }
    s->conn = c;
    if (!c || PQstatus(c) == CONNECTION_BAD) {
        tb__pg_conn_failed(s, "connect", c ? PQerrorMessage(c) : "out of memory");
        return;
    }
    PQsetNoticeReceiver(c, on_notice, s);
    uv_timer_start(&s->stmt_timer, on_stmt_timer, CONNECT_TIMEOUT_MS, 0); /* for the polling phase */
    /* Before the first PQconnectPoll, wait for writability (libpq docs, PQconnectStartParams). */
    if (watch(s, UV_WRITABLE, true) < 0) {
        tb__pg_conn_failed(s, "connect", "cannot watch the socket");
        return;
    }
}

static void on_stmt_timer(uv_timer_t *t)
{
    pg_t *s = t->data;
    if (s->cs == C_CONNECTING && s->connect_job)
        return; /* name lookup still running on the threadpool: its callback re-arms this timer */
    if (s->cs == C_CONNECTING)
        tb__pg_conn_failed(s, "connect_timeout", "no connection within the connect timeout");
    else if (s->cs == C_BUSY)
        tb__pg_conn_failed(s, "statement_timeout", "the database did not answer in time");
}

void tb__pg_start_connect(pg_t *s)
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

static void flush_out(pg_t *s)
{
    int r = PQflush(s->conn);
    if (r < 0) {
        tb__pg_conn_failed(s, "send", PQerrorMessage(s->conn));
        return;
    }
    /* r == 1: more to send once writable; results may arrive meanwhile. */
    if (watch(s, r ? UV_READABLE | UV_WRITABLE : UV_READABLE, false) < 0)
        tb__pg_conn_failed(s, "send", "cannot watch the socket");
}

void tb__pg_sent(pg_t *s, enum stmt st)
{
    s->st = st;
    s->cs = C_BUSY;
    s->err_state[0] = '\0';
    s->err_msg[0] = '\0';
    s->inserted = 0;
    uv_timer_start(&s->stmt_timer, on_stmt_timer, STMT_TIMEOUT_MS, 0);
    flush_out(s);
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
        tb__pg_conn_failed(s, "socket", uv_strerror(status));
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
        tb__pg_conn_failed(s, "receive", PQerrorMessage(s->conn));
        return;
    }
    PGnotify *nt;
    while ((nt = PQnotifies(s->conn)) != NULL)
        PQfreemem(nt);
    while (s->conn && !PQisBusy(s->conn)) {
        PGresult *res = PQgetResult(s->conn);
        if (!res) {
            if (s->st != ST_NONE)
                tb__pg_statement_done(s); /* may send the next statement: stop here */
            return;
        }
        if (s->st == ST_NONE) {
            /* Nothing asked: the server is telling us it goes away (57P01 on shutdown). */
            char msg[256];
            one_line(PQresultErrorMessage(res), msg, sizeof(msg));
            PQclear(res);
            tb__pg_conn_failed(s, "server_closed", msg);
            return;
        }
        take_result(s, res);
        PQclear(res);
    }
    if (s->conn && PQstatus(s->conn) == CONNECTION_BAD)
        tb__pg_conn_failed(s, "receive", PQerrorMessage(s->conn));
}
