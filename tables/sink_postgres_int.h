/* Private to tables/sink_postgres*.c: the PostgreSQL sink's state and the cross-file internals
 * (tb__pg_*). Nothing else includes this header; tables/sink.h is the API.
 *   sink_postgres.c       the sink: queue, batches and their results, spool replay, close
 *   sink_postgres_conn.c  the connection: connect job, socket watcher, retries, sending, results
 *   pg_sql.c              the SQL text (its own public header) */
#ifndef TB_SINK_POSTGRES_INT_H
#define TB_SINK_POSTGRES_INT_H

#include <libpq-fe.h>
#include <uv.h>

#include "tables/pg_sql.h"
#include "tables/sink.h"
#include "tables/spool.h"

#define RETRY_MIN_MS 100

enum conn_state { C_DOWN = 0, C_CONNECTING, C_READY, C_BUSY };
enum stmt { ST_NONE = 0, ST_DDL, ST_INSERT };
enum origin { FROM_QUEUE = 0, FROM_SPOOL };

typedef struct pg pg_t;

struct pg {
    tb_sink_t base;
    uv_loop_t *loop;
    char *dsn; /** owned */
    int flush_ms, batch_rows;
    size_t max_queue;
    tb_spool_t *spool; /** owned; NULL once closed */
    char **tables;     /** owned: created at connect */
    size_t n_tables;
    tb_pgsql_ddl_t ddl; /** tables and partitions known to exist, or being created */
    bool startup_done;  /** configured tables ensured on this process's first connection */

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
    tb_pgsql_insert_t ins; /** parameters of the INSERT: one JSON array per table of the batch */
    char err_state[6];     /** SQLSTATE of the first error of the statement, "" = none */
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

/** The loop's cached clock, ms. */
static inline uint64_t tb__pg_now_ms(pg_t *s)
{
    return uv_now(s->loop);
}

/* sink_postgres.c */
/** Counters and state for metrics and /readyz. */
void tb__pg_update_state(pg_t *s);
/** The queue goes in front of the spool (the database is down or the sink closes). */
void tb__pg_spill_queue(pg_t *s);
/** The statement in flight failed or was abandoned: its rows go back where they came from. */
void tb__pg_return_batch(pg_t *s);
/** Send the DDL the batch still needs, else its INSERT (batch NULL: the startup DDL in s->sql). */
void tb__pg_send_current(pg_t *s);
/** The statement's last result arrived (error fields set by the results, if any). */
void tb__pg_statement_done(pg_t *s);
/** Start the next statement if the connection is idle. */
void tb__pg_pump(pg_t *s);
/** While closing: finish once nothing is left to send. */
void tb__pg_maybe_finish(pg_t *s);

/* sink_postgres_conn.c */
void tb__pg_start_connect(pg_t *s);
/** Drop the connection and its watcher; the state is C_DOWN after. */
void tb__pg_teardown(pg_t *s);
/** Connection lost, refused, timed out or the server gave up: spill and reconnect later. */
void tb__pg_conn_failed(pg_t *s, const char *why, const char *detail);
/** A statement was handed to libpq: arm its timeout and flush it. */
void tb__pg_sent(pg_t *s, enum stmt st);

#endif
