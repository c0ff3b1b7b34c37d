/* PostgreSQL backend of gw_store (libpq), for a fleet: every agate instance, and every worker of
 * each, shares one database, so any instance continues any chain (previous_response_id,
 * item_reference, conversations) whichever instance stored it.
 *
 * Design: libpq's blocking calls on libuv's thread pool, through the same vtable and queue as the
 * SQLite backend (store.c: one operation at a time per worker, in submission order), rather than a
 * second, asynchronous state machine on the loop like the table sink's. One code path keeps the
 * ordering and read-your-writes the store promises, and the loop never blocks; the cost is one
 * pool thread per worker waiting while an operation talks to the database, bounded below.
 *
 * Connection: one per worker, PQconnectdbParams with the DSN expanded by libpq (a URI or a
 * key=value string: gw__store_pg_params; connect_timeout=5 unless the DSN sets one). Opened at
 * start-up; a DSN libpq cannot parse is a start-up error, but a database that is down is not:
 * agate starts (as with the table sink), logs event=store_db_down, and the store starts failing
 * (/readyz 503; answers go out unstored, lookups answer 503) until an operation succeeds. Every
 * operation reconnects if needed, at most once per RETRY_MS (in between, operations fail at once
 * instead of each waiting for a connect timeout), and a failing store checks itself every second
 * (store.c). A broken connection (PQstatus, or a statement failing with the connection bad) is
 * reset with PQreset once and the operation runs again once, so a restarted database costs no
 * failed operation. Every statement is bounded by STMT_TIMEOUT_MS (the connection is
 * non-blocking and its socket polled): past it the connection is dropped. Any failure is
 * GW_STORE_FAILED with why "postgres_error"; the server's message is logged (event=store_db_error,
 * once per outage and then every DOWN_LOG_EVERY_MS or when the message changes).
 *
 * Schema (store_sqlite.c's, tables prefixed agate_store_): at the first connection, unless it is
 * there (then the role needs no CREATE), CREATE ... IF NOT EXISTS in one transaction under
 * pg_advisory_xact_lock, so replicas starting together do not race on the catalog. Values are
 * text sent and read in binary format (the bytes as they are: no quoting, no NUL terminator),
 * integers int8. A multi-statement operation is one transaction; a conversation write locks the
 * conversation's row first (SELECT ... FOR UPDATE) so appends from two instances get distinct
 * positions. A write retried after its connection broke mid-COMMIT may
 * fail (the id exists) or, for a conversation append, append twice; it is never lost silently. */
#include <endian.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/log.h"
#include "gateway/store_int.h"

#define STMT_TIMEOUT_MS   10000
#define RETRY_MS          500
#define DOWN_LOG_EVERY_MS 10000
#define SCHEMA_LOCK_KEY   "727466" /* the table sink's DDL lock is 727465 */
#define OID_INT8          20
#define OID_TEXT          25
#define MAX_ARGS          6

static const char schema[] =
    "BEGIN; SET LOCAL client_min_messages = warning;"
    "DO $agate$ BEGIN IF to_regclass('agate_store_conv_items_id') IS NOT NULL THEN RETURN; END IF;"
    "PERFORM pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ");"
    "CREATE TABLE IF NOT EXISTS agate_store_responses (id text PRIMARY KEY, owner text NOT NULL,"
    " created_at bigint NOT NULL, response text NOT NULL, input_items text NOT NULL, context text NOT NULL);"
    "CREATE INDEX IF NOT EXISTS agate_store_responses_created ON agate_store_responses (created_at);"
    "CREATE TABLE IF NOT EXISTS agate_store_items (owner text NOT NULL, id text NOT NULL,"
    " response_id text NOT NULL, created_at bigint NOT NULL, item text NOT NULL, PRIMARY KEY (owner, id));"
    "CREATE INDEX IF NOT EXISTS agate_store_items_response ON agate_store_items (response_id);"
    "CREATE INDEX IF NOT EXISTS agate_store_items_created ON agate_store_items (created_at);"
    "CREATE TABLE IF NOT EXISTS agate_store_conversations (id text PRIMARY KEY, owner text NOT NULL,"
    " created_at bigint NOT NULL, metadata text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS agate_store_conv_items (conversation_id text NOT NULL, seq bigint NOT NULL,"
    " item_id text NOT NULL, created_at bigint NOT NULL, item text NOT NULL,"
    " PRIMARY KEY (conversation_id, seq));"
    "CREATE INDEX IF NOT EXISTS agate_store_conv_items_id ON agate_store_conv_items"
    " (conversation_id, item_id);"
    "END $agate$; COMMIT;";

typedef struct {
    PGconn *conn;         /** owned; NULL before the first attempt and after a statement timeout */
    char *dsn;            /** owned */
    bool schema_ok;       /** the schema was ensured on some connection */
    bool failing;         /** in an outage (the last operation failed) */
    bool timed_out;       /** the current operation hit STMT_TIMEOUT_MS: not retried */
    uint64_t retry_at_ms; /** no connection attempt before this (after a failed one) */
    uint64_t logged_ms;   /** last event=store_db_error line */
    char err[256];        /** the last error, one line */
    char logged[256];     /** the last error logged */
} pgs_t;

/* Parameters of one statement, all in binary format. Embedded; its values point into the op or
 * into be[]. */
typedef struct {
    const char *v[MAX_ARGS];
    int len[MAX_ARGS], fmt[MAX_ARGS];
    Oid type[MAX_ARGS];
    uint64_t be[MAX_ARGS]; /** int8 values, network order */
    int n;
} args_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gw__store_pg_params(const char *dsn, const char **kw, const char **val)
{
    /* libpq: entries before the expanded dbname yield to the DSN, entries after it override it. */
    static const char *const k[GW__STORE_PG_PARAMS] = {
        "connect_timeout", "fallback_application_name", "gssencmode", "dbname", "client_encoding", NULL};
    const char *v[GW__STORE_PG_PARAMS] = {"5", "agate-store", "disable", dsn, "UTF8", NULL};
    for (int i = 0; i < GW__STORE_PG_PARAMS; i++) {
        kw[i] = k[i];
        val[i] = v[i];
    }
}

/* A libpq message as one log-safe line into p->err. */
static void note(pgs_t *p, const char *msg)
{
    size_t j = 0;
    for (size_t i = 0; msg && msg[i] && j + 1 < sizeof(p->err); i++) {
        char c = msg[i] == '"' ? '\'' : msg[i];
        p->err[j++] = c == '\n' || c == '\r' || c == '\t' ? ' ' : c;
    }
    while (j > 0 && p->err[j - 1] == ' ')
        j--;
    p->err[j] = '\0';
    if (!j)
        snprintf(p->err, sizeof(p->err), "unknown error");
}

static void arg(args_t *a, const char *v, size_t len, Oid type)
{
    a->v[a->n] = v;
    a->len[a->n] = (int)len;
    a->fmt[a->n] = 1;
    a->type[a->n++] = type;
}

static void arg_str(args_t *a, gw_str_t s)
{
    arg(a, s.base ? s.base : "", s.len, OID_TEXT);
}

static void arg_i64(args_t *a, int64_t x)
{
    a->be[a->n] = htobe64((uint64_t)x);
    arg(a, (const char *)&a->be[a->n], 8, OID_INT8);
}

/* The two parameters most statements start with: an id and its owner. */
static void arg_key(args_t *a, gw_str_t id, const char *owner)
{
    arg_str(a, id);
    arg_str(a, gw_str(owner));
}

/* Waits until the socket is ready for ev or the deadline; the events seen, 0 on timeout. */
static short wait_io(PGconn *c, short ev, uint64_t deadline)
{
    for (;;) {
        uint64_t t = now_ms();
        if (t >= deadline)
            return 0;
        struct pollfd pfd = {.fd = PQsocket(c), .events = ev};
        int r = poll(&pfd, 1, (int)(deadline - t));
        if (r > 0)
            return pfd.revents ? pfd.revents : ev;
        if (r == 0 || errno != EINTR)
            return 0;
    }
}

/* Sends one statement (several when a is NULL: the simple protocol) and waits for its end, at most
 * STMT_TIMEOUT_MS. Returns the first failed result, else the last one (binary columns); NULL when
 * nothing came back (the connection is then bad, or dropped on timeout). */
static PGresult *exec(pgs_t *p, const char *sql, const args_t *a)
{
    PGconn *c = p->conn;
    int sent = a ? PQsendQueryParams(c, sql, a->n, a->type, a->v, a->len, a->fmt, 1) : PQsendQuery(c, sql);
    if (!sent) {
        note(p, PQerrorMessage(c));
        return NULL;
    }
    uint64_t deadline = now_ms() + STMT_TIMEOUT_MS;
    PGresult *res = NULL;
    int f;
    while ((f = PQflush(c)) == 1) {
        short got = wait_io(c, POLLIN | POLLOUT, deadline);
        if (!got)
            goto timeout;
        if ((got & POLLIN) && !PQconsumeInput(c))
            f = -1;
        if (f < 0)
            break;
    }
    if (f < 0) {
        note(p, PQerrorMessage(c));
        return NULL;
    }
    for (;;) {
        while (!PQisBusy(c)) {
            PGresult *r = PQgetResult(c);
            if (!r) {
                if (!res)
                    note(p, PQerrorMessage(c));
                return res;
            }
            ExecStatusType st = res ? PQresultStatus(res) : PGRES_COMMAND_OK;
            if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                PQclear(res);
                res = r;
            } else {
                PQclear(r); /* keep the first error */
            }
        }
        if (!wait_io(c, POLLIN, deadline))
            goto timeout;
        if (!PQconsumeInput(c)) {
            note(p, PQerrorMessage(c));
            PQclear(res);
            return NULL;
        }
    }
timeout:
    PQclear(res);
    snprintf(p->err, sizeof(p->err), "no answer within %d ms: connection dropped", STMT_TIMEOUT_MS);
    PQfinish(p->conn); /* the statement's fate is unknown: the next operation connects afresh */
    p->conn = NULL;
    p->timed_out = true;
    return NULL;
}

/* One statement: 0 (*out, when given, takes the result), or -1 with the error in p->err. */
static int run_sql(pgs_t *p, const char *sql, const args_t *a, PGresult **out)
{
    PGresult *res = exec(p, sql, a);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (res)
            note(p, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

/* Rows a statement changed, or -1. */
static long run_changes(pgs_t *p, const char *sql, const args_t *a)
{
    PGresult *res;
    if (run_sql(p, sql, a, &res) < 0)
        return -1;
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

static int64_t get_i64(const PGresult *res, int row, int col)
{
    uint64_t be = 0;
    if (PQgetlength(res, row, col) == 8)
        memcpy(&be, PQgetvalue(res, row, col), 8);
    return (int64_t)be64toh(be);
}

/* CREATE TABLE IF NOT EXISTS says "already exists, skipping" as a NOTICE; libpq would print it. */
static void on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

/* (Re)connects and ensures the schema: 0, or -1 with the error in p->err. Blocking, bounded by
 * connect_timeout (and STMT_TIMEOUT_MS for the schema). */
static int connect_db(pgs_t *p)
{
    if (now_ms() < p->retry_at_ms)
        return -1; /* p->err still says why the last attempt failed */
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
        if (p->conn) {
            PQreset(p->conn);
        } else {
            const char *kw[GW__STORE_PG_PARAMS], *val[GW__STORE_PG_PARAMS];
            gw__store_pg_params(p->dsn, kw, val);
            p->conn = PQconnectdbParams(kw, val, 1);
            if (p->conn)
                PQsetNoticeReceiver(p->conn, on_notice, NULL);
        }
        if (!p->conn || PQstatus(p->conn) != CONNECTION_OK || PQsetnonblocking(p->conn, 1) != 0) {
            note(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
            p->retry_at_ms = now_ms() + RETRY_MS;
            return -1;
        }
        gw_log(GW_LOG_INFO, NULL, "event=store_db_connected backend=postgres host=%s port=%s db=%s",
               PQhost(p->conn), PQport(p->conn), PQdb(p->conn));
    }
    /* Once per process; again only after it failed (e.g. a role without CREATE). */
    if (p->schema_ok)
        return 0;
    if (run_sql(p, schema, NULL, NULL) < 0) {
        if (p->conn && PQstatus(p->conn) == CONNECTION_OK)
            (void)run_sql(p, "ROLLBACK", NULL, NULL);
        p->retry_at_ms = now_ms() + RETRY_MS;
        return -1;
    }
    p->schema_ok = true;
    return 0;
}

/* The conversation's row for its owner; with op, its metadata and created_at go into the result.
 * lock: FOR UPDATE (a write to the conversation follows). 0 found, 1 not, -1 error. */
static int conv_row(pgs_t *p, gw_str_t id, const char *owner, bool lock, gw__store_op_t *op)
{
    args_t a = {.n = 0};
    arg_key(&a, id, owner);
    PGresult *res;
#define CONV_ROW "SELECT metadata, created_at FROM agate_store_conversations WHERE id = $1 AND owner = $2"
    if (run_sql(p, lock ? CONV_ROW " FOR UPDATE" : CONV_ROW, &a, &res) < 0)
        return -1;
    int found = PQntuples(res) == 1;
    if (found && op) {
        gw__store_out_field(op, 3, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
        op->created_at = get_i64(res, 0, 1);
    }
    PQclear(res);
    return found ? 0 : 1;
}

/* Appends items to conversation conv, after its last one (its row is locked by the caller). */
static int append_items(pgs_t *p, gw_str_t conv, const gw_store_item_t *items, size_t n, int64_t at)
{
    for (size_t i = 0; i < n; i++) {
        args_t a = {.n = 0};
        arg_str(&a, conv);
        arg_str(&a, items[i].id);
        arg_i64(&a, at);
        arg_str(&a, items[i].json);
        if (run_sql(p,
                    "INSERT INTO agate_store_conv_items (conversation_id, seq, item_id, created_at, item)"
                    " VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM agate_store_conv_items"
                    " WHERE conversation_id = $1), $2, $3, $4)",
                    &a, NULL) < 0)
            return -1;
    }
    return 0;
}

static int put_response(pgs_t *p, gw__store_op_t *op)
{
    const gw_store_req_t *q = &op->q;
    args_t a = {.n = 0};
    arg_key(&a, q->id, q->owner);
    arg_i64(&a, q->created_at);
    arg_str(&a, q->response);
    arg_str(&a, q->input_items);
    arg_str(&a, q->context);
    if (run_sql(p,
                "INSERT INTO agate_store_responses (id, owner, created_at, response, input_items, context)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                &a, NULL) < 0)
        return -1;
    for (size_t i = 0; i < q->n_items; i++) {
        a.n = 0;
        arg_str(&a, gw_str(q->owner));
        arg_str(&a, q->items[i].id);
        arg_str(&a, q->id);
        arg_i64(&a, q->created_at);
        arg_str(&a, q->items[i].json);
        if (run_sql(
                p,
                "INSERT INTO agate_store_items (owner, id, response_id, created_at, item)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, id) DO UPDATE SET"
                " response_id = EXCLUDED.response_id, created_at = EXCLUDED.created_at, item = EXCLUDED.item",
                &a, NULL) < 0)
            return -1;
    }
    if (!q->conversation.len)
        return 0;
    /* The response's conversation gets its input and output items, if the owner still has it. */
    if (conv_row(p, q->conversation, q->owner, true, NULL) != 0) {
        snprintf(p->err, sizeof(p->err), "the response's conversation is gone");
        return -1;
    }
    return append_items(p, q->conversation, q->items, q->n_items, q->created_at);
}

/* Every item of the conversation, in order, as one JSON array (result field context). */
static int conv_items(pgs_t *p, gw__store_op_t *op)
{
    args_t a = {.n = 0};
    arg_str(&a, op->q.id);
    PGresult *res;
    const char *sql = "SELECT item FROM agate_store_conv_items WHERE conversation_id = $1 ORDER BY seq";
    if (run_sql(p, sql, &a, &res) < 0)
        return -1;
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append(&b, "[", 1);
    for (int r = 0; r < PQntuples(res); r++) {
        if (r)
            gw_buf_append(&b, ",", 1);
        gw_buf_append(&b, PQgetvalue(res, r, 0), (size_t)PQgetlength(res, r, 0));
    }
    gw_buf_append(&b, "]", 1);
    PQclear(res);
    gw__store_out_field(op, 2, b.base, b.len);
    gw_buf_dispose(&b);
    return 0;
}

/* Conversation operations; a missing (or another owner's) conversation is NOT_FOUND. */
static int run_conversation(pgs_t *p, gw__store_op_t *op)
{
    const gw_store_req_t *q = &op->q;
    args_t a = {.n = 0};
    arg_key(&a, q->id, q->owner);
    if (q->kind == GW_STORE_CONV_CREATE) {
        arg_i64(&a, q->created_at);
        arg_str(&a, q->metadata);
        if (run_sql(p,
                    "INSERT INTO agate_store_conversations (id, owner, created_at, metadata)"
                    " VALUES ($1, $2, $3, $4)",
                    &a, NULL) < 0 ||
            append_items(p, q->id, q->items, q->n_items, q->created_at) < 0)
            return -1;
        gw__store_out_field(op, 3, q->metadata.base, q->metadata.len);
        op->created_at = q->created_at;
        return 0;
    }
    if (q->kind == GW_STORE_CONV_UPDATE) {
        arg_str(&a, q->metadata);
        const char *sql = "UPDATE agate_store_conversations SET metadata = $3 WHERE id = $1 AND owner = $2";
        if (run_sql(p, sql, &a, NULL) < 0)
            return -1;
    }
    bool write = q->kind != GW_STORE_CONV_GET && q->kind != GW_STORE_CONV_ITEMS;
    int found = conv_row(p, q->id, q->owner, write, op);
    if (found != 0) {
        op->status = found > 0 ? GW_STORE_NOT_FOUND : GW_STORE_FAILED;
        return found > 0 ? 0 : -1;
    }
    a.n = 1; /* the conversation's id */
    switch (q->kind) {
    case GW_STORE_CONV_DELETE:
        if (run_sql(p, "DELETE FROM agate_store_conv_items WHERE conversation_id = $1", &a, NULL) < 0)
            return -1;
        arg_str(&a, gw_str(q->owner));
        return run_sql(p, "DELETE FROM agate_store_conversations WHERE id = $1 AND owner = $2", &a, NULL);
    case GW_STORE_CONV_ITEMS:
        return conv_items(p, op);
    case GW_STORE_CONV_APPEND:
        return append_items(p, q->id, q->items, q->n_items, q->created_at);
    case GW_STORE_CONV_ITEM_DELETE: {
        if (!q->n_items)
            return -1;
        arg_str(&a, q->items[0].id);
        const char *sql = "DELETE FROM agate_store_conv_items WHERE conversation_id = $1 AND item_id = $2";
        long n = run_changes(p, sql, &a);
        if (n == 0)
            op->status = GW_STORE_NOT_FOUND;
        return n < 0 ? -1 : 0;
    }
    default:
        return 0;
    }
}

static int get_response(pgs_t *p, gw__store_op_t *op)
{
    args_t a = {.n = 0};
    arg_key(&a, op->q.id, op->q.owner);
    PGresult *res;
    const char *sql =
        "SELECT response, input_items, context FROM agate_store_responses WHERE id = $1 AND owner = $2";
    if (run_sql(p, sql, &a, &res) < 0)
        return -1;
    if (PQntuples(res) == 1)
        for (int f = 0; f < 3; f++)
            gw__store_out_field(op, f, PQgetvalue(res, 0, f), (size_t)PQgetlength(res, 0, f));
    else
        op->status = GW_STORE_NOT_FOUND;
    PQclear(res);
    return 0;
}

static int get_items(pgs_t *p, gw__store_op_t *op)
{
    for (size_t i = 0; i < op->q.n_items; i++) {
        args_t a = {.n = 0};
        arg_str(&a, gw_str(op->q.owner));
        arg_str(&a, op->q.items[i].id);
        PGresult *res;
        if (run_sql(p, "SELECT item FROM agate_store_items WHERE owner = $1 AND id = $2", &a, &res) < 0)
            return -1;
        if (PQntuples(res) == 1)
            gw__store_out_item(op, op->q.items[i].id.base, op->q.items[i].id.len, PQgetvalue(res, 0, 0),
                               (size_t)PQgetlength(res, 0, 0));
        PQclear(res);
    }
    return 0;
}

static int delete_response(pgs_t *p, gw__store_op_t *op)
{
    args_t a = {.n = 0};
    arg_key(&a, op->q.id, op->q.owner);
    if (run_sql(p, "DELETE FROM agate_store_items WHERE response_id = $1 AND owner = $2", &a, NULL) < 0)
        return -1;
    long n = run_changes(p, "DELETE FROM agate_store_responses WHERE id = $1 AND owner = $2", &a);
    if (n == 0)
        op->status = GW_STORE_NOT_FOUND;
    return n < 0 ? -1 : 0;
}

/* One batch: at most GW__STORE_PURGE_BATCH responses and as many items, oldest first. */
static int purge(pgs_t *p, gw__store_op_t *op)
{
    _Static_assert(GW__STORE_PURGE_BATCH == 200, "the LIMITs below");
    args_t a = {.n = 0};
    arg_i64(&a, op->purge_before);
    long n = run_changes(p,
                         "DELETE FROM agate_store_responses WHERE id IN (SELECT id FROM agate_store_responses"
                         " WHERE created_at < $1 LIMIT 200)",
                         &a);
    if (n < 0)
        return -1;
    op->purged = (size_t)n;
    n = run_changes(
        p,
        "DELETE FROM agate_store_items WHERE (owner, id) IN (SELECT owner, id FROM agate_store_items"
        " WHERE created_at < $1 LIMIT 200)",
        &a);
    return n < 0 ? -1 : 0;
}

/* One attempt at op: single reads as they are, everything else in one transaction. */
static int run_once(pgs_t *p, gw__store_op_t *op)
{
    gw_store_op_kind_t k = op->q.kind;
    if (k == GW_STORE_GET_RESPONSE)
        return get_response(p, op);
    if (k == GW_STORE_GET_ITEMS)
        return get_items(p, op);
    if (PQtransactionStatus(p->conn) != PQTRANS_IDLE) /* a ROLLBACK that did not get through */
        (void)run_sql(p, "ROLLBACK", NULL, NULL);
    bool read_conv = k == GW_STORE_CONV_GET || k == GW_STORE_CONV_ITEMS;
    /* A conversation read sees the row and its items in one snapshot. */
    if (run_sql(p, read_conv ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", NULL, NULL) < 0)
        return -1;
    int rc = k == GW_STORE_PUT_RESPONSE      ? put_response(p, op)
             : k == GW_STORE_DELETE_RESPONSE ? delete_response(p, op)
             : k == GW__STORE_PURGE          ? purge(p, op)
                                             : run_conversation(p, op);
    if (rc == 0 && run_sql(p, "COMMIT", NULL, NULL) == 0)
        return 0;
    if (p->conn && PQstatus(p->conn) == CONNECTION_OK) {
        char why[sizeof(p->err)];
        memcpy(why, p->err, sizeof(why)); /* the statement's error, not ROLLBACK's */
        (void)run_sql(p, "ROLLBACK", NULL, NULL);
        memcpy(p->err, why, sizeof(why));
    }
    return -1;
}

/* The operation failed: one log line per outage, then one every DOWN_LOG_EVERY_MS or when the
 * error changes (the store counts and logs each failed operation itself). */
static void log_failure(pgs_t *p)
{
    uint64_t t = now_ms();
    if (p->failing && strcmp(p->err, p->logged) == 0 && t - p->logged_ms < DOWN_LOG_EVERY_MS)
        return;
    gw_log(p->failing ? GW_LOG_WARN : GW_LOG_ERROR, NULL,
           "event=store_db_error backend=postgres error=\"%s\"", p->err);
    memcpy(p->logged, p->err, sizeof(p->logged));
    p->logged_ms = t;
}

static void pg_run(void *db, gw__store_op_t *op)
{
    pgs_t *p = db;
    bool reset = false;
    int rc = -1;
    p->timed_out = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!p->conn || PQstatus(p->conn) != CONNECTION_OK || !p->schema_ok) {
            if (reset || connect_db(p) < 0)
                break;
            reset = true;
        }
        /* A fresh result for each attempt. */
        op->status = GW_STORE_OK;
        gw_buf_reset(&op->out);
        op->n_found = 0;
        op->purged = 0;
        rc = run_once(p, op);
        if (rc == 0 || p->timed_out || PQstatus(p->conn) == CONNECTION_OK)
            break; /* done, or an error of the statement's own: running it again would not help */
    }
    if (rc == 0) {
        if (p->failing)
            gw_log(GW_LOG_INFO, NULL, "event=store_db_up backend=postgres");
        p->failing = false;
        return;
    }
    op->status = GW_STORE_FAILED;
    op->why = "postgres_error";
    log_failure(p);
    p->failing = true;
}

static void *pg_open(const gw_store_cfg_t *cfg, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->dsn, &perr);
    if (!opts) {
        /* libpq's message names the problem, never the DSN (it may hold a password). */
        const char *why = perr && *perr ? perr : "cannot be parsed";
        snprintf(err, errlen, "store: dsn: %.*s", (int)strcspn(why, "\n"), why);
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(opts);
    pgs_t *p = gw_xcalloc(1, sizeof(*p));
    p->dsn = gw_xstrndup(cfg->dsn, strlen(cfg->dsn));
    if (connect_db(p) < 0) {
        gw_log(GW_LOG_ERROR, NULL, "event=store_db_down backend=postgres error=\"%s\" action=start_failing",
               p->err);
        memcpy(p->logged, p->err, sizeof(p->logged));
        p->logged_ms = now_ms();
        p->failing = true;
    }
    return p;
}

static bool pg_up(void *db)
{
    const pgs_t *p = db;
    return !p->failing;
}

static void pg_close(void *db)
{
    pgs_t *p = db;
    PQfinish(p->conn);
    free(p->dsn);
    free(p);
}

const gw__store_backend_t gw__store_postgres = {pg_open, pg_run, pg_close, pg_up};
