/* SQLite backend of gw_store (Debian's libsqlite3): one connection per worker in WAL mode, so
 * the workers of one machine share the file and readers never wait for the writer. Its calls
 * block, so they run on libuv's thread pool (store.c), never on the loop. Opened at start-up,
 * before the loop runs. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "gateway/store_int.h"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " response TEXT NOT NULL, input_items TEXT NOT NULL, context TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);"
    "CREATE TABLE IF NOT EXISTS items (owner TEXT NOT NULL, id TEXT NOT NULL, response_id TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (owner, id));"
    "CREATE INDEX IF NOT EXISTS items_response ON items (response_id);"
    "CREATE INDEX IF NOT EXISTS items_created ON items (created_at);"
    "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, metadata TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS conversation_items (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " item_id TEXT NOT NULL, created_at INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (conversation_id, seq));"
    "CREATE INDEX IF NOT EXISTS conversation_items_id ON conversation_items (conversation_id, item_id);";

/* mkdir -p of the database's directory (start-up only). */
static void make_parent(const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            (void)mkdir(dir, 0750);
            *p = '/';
        }
    (void)mkdir(dir, 0750);
}

static void *sq_open(const gw_store_cfg_t *cfg, char *err, size_t errlen)
{
    make_parent(cfg->path);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(cfg->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    /* Bounded wait for another worker's write lock; well under a typical write_timeout_ms. */
    sqlite3_busy_timeout(db, 1000);
    char *msg = NULL;
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, schema, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store: sqlite %s: %s", cfg->path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
fail:
    snprintf(err, errlen, "store: cannot open sqlite database %s: %s", cfg->path,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return NULL;
}

static void sq_close(void *db)
{
    sqlite3_close(db);
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    return st;
}

static void bind_str(sqlite3_stmt *st, int i, gw_str_t v)
{
    sqlite3_bind_text(st, i, v.base ? v.base : "", (int)v.len, SQLITE_STATIC);
}

/* One statement with up to three text parameters (as many as it has) run to its end. */
static int exec_text(sqlite3 *db, const char *sql, gw_str_t a, gw_str_t b, gw_str_t c)
{
    sqlite3_stmt *st = prep(db, sql);
    if (!st)
        return -1;
    int n = sqlite3_bind_parameter_count(st);
    bind_str(st, 1, a);
    if (n >= 2)
        bind_str(st, 2, b);
    if (n >= 3)
        bind_str(st, 3, c);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A purge statement: its one parameter is the cut-off time. */
static int exec_before(sqlite3 *db, const char *sql, int64_t before)
{
    sqlite3_stmt *st = prep(db, sql);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, before);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int append_items(sqlite3 *db, gw_str_t conv, const gw_store_item_t *items, size_t n, int64_t at);
static int conv_row(sqlite3 *db, gw__store_op_t *op);

static int put_response(sqlite3 *db, gw__store_op_t *op)
{
    const gw_store_req_t *q = &op->q;
    sqlite3_stmt *st = prep(db, "INSERT INTO responses (id, owner, created_at, response, input_items, context)"
                                " VALUES (?, ?, ?, ?, ?, ?)");
    if (!st)
        return -1;
    bind_str(st, 1, q->id);
    bind_str(st, 2, gw_str(q->owner));
    sqlite3_bind_int64(st, 3, q->created_at);
    bind_str(st, 4, q->response);
    bind_str(st, 5, q->input_items);
    bind_str(st, 6, q->context);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    st = prep(db, "INSERT OR REPLACE INTO items (owner, id, response_id, created_at, item) VALUES (?, ?, ?, ?, ?)");
    if (!st)
        return -1;
    for (size_t i = 0; i < q->n_items && rc == SQLITE_DONE; i++) {
        sqlite3_reset(st);
        bind_str(st, 1, gw_str(q->owner));
        bind_str(st, 2, q->items[i].id);
        bind_str(st, 3, q->id);
        sqlite3_bind_int64(st, 4, q->created_at);
        bind_str(st, 5, q->items[i].json);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    if (!q->conversation.len)
        return 0;
    /* The response's conversation gets its input and output items, if the owner still has it. */
    gw__store_op_t probe = {.q = {.kind = GW_STORE_CONV_GET, .owner = q->owner, .id = q->conversation}};
    int found = conv_row(db, &probe);
    gw_buf_dispose(&probe.out);
    return found == 0 ? append_items(db, q->conversation, q->items, q->n_items, q->created_at) : -1;
}

/* Appends items to conversation conv, after its last one. */
static int append_items(sqlite3 *db, gw_str_t conv, const gw_store_item_t *items, size_t n, int64_t at)
{
    sqlite3_stmt *st = prep(db, "INSERT INTO conversation_items (conversation_id, seq, item_id, created_at, item)"
                                " VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM conversation_items"
                                " WHERE conversation_id = ?1), ?2, ?3, ?4)");
    if (!st)
        return -1;
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
        sqlite3_reset(st);
        bind_str(st, 1, conv);
        bind_str(st, 2, items[i].id);
        sqlite3_bind_int64(st, 3, at);
        bind_str(st, 4, items[i].json);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The conversation's row for its owner: metadata + created_at into the result; 0 found, 1 not,
 * -1 error. */
static int conv_row(sqlite3 *db, gw__store_op_t *op)
{
    sqlite3_stmt *st = prep(db, "SELECT metadata, created_at FROM conversations WHERE id = ? AND owner = ?");
    if (!st)
        return -1;
    bind_str(st, 1, op->q.id);
    bind_str(st, 2, gw_str(op->q.owner));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        gw__store_out_field(op, 3, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        op->created_at = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

/* Every item of the conversation, in order, as one JSON array (result field context). */
static int conv_items(sqlite3 *db, gw__store_op_t *op)
{
    sqlite3_stmt *st = prep(db, "SELECT item FROM conversation_items WHERE conversation_id = ? ORDER BY seq");
    if (!st)
        return -1;
    bind_str(st, 1, op->q.id);
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append(&b, "[", 1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (b.len > 1)
            gw_buf_append(&b, ",", 1);
        gw_buf_append(&b, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    }
    gw_buf_append(&b, "]", 1);
    sqlite3_finalize(st);
    gw__store_out_field(op, 2, b.base, b.len);
    gw_buf_dispose(&b);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Conversation operations; a missing (or another owner's) conversation is NOT_FOUND. */
static int run_conversation(sqlite3 *db, gw__store_op_t *op)
{
    const gw_store_req_t *q = &op->q;
    if (q->kind == GW_STORE_CONV_CREATE) {
        sqlite3_stmt *st = prep(db, "INSERT INTO conversations (id, owner, created_at, metadata) VALUES (?, ?, ?, ?)");
        if (!st)
            return -1;
        bind_str(st, 1, q->id);
        bind_str(st, 2, gw_str(q->owner));
        sqlite3_bind_int64(st, 3, q->created_at);
        bind_str(st, 4, q->metadata);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE || append_items(db, q->id, q->items, q->n_items, q->created_at) < 0)
            return -1;
        gw__store_out_field(op, 3, q->metadata.base, q->metadata.len);
        op->created_at = q->created_at;
        return 0;
    }
    if (q->kind == GW_STORE_CONV_UPDATE &&
        exec_text(db, "UPDATE conversations SET metadata = ?3 WHERE id = ?1 AND owner = ?2", q->id, gw_str(q->owner),
                  q->metadata) < 0)
        return -1;
    int found = conv_row(db, op);
    if (found != 0) {
        op->status = found > 0 ? GW_STORE_NOT_FOUND : GW_STORE_FAILED;
        return found > 0 ? 0 : -1;
    }
    switch (q->kind) {
    case GW_STORE_CONV_DELETE:
        if (exec_text(db, "DELETE FROM conversation_items WHERE conversation_id = ?", q->id, GW_STR_NULL, GW_STR_NULL) < 0)
            return -1;
        return exec_text(db, "DELETE FROM conversations WHERE id = ? AND owner = ?", q->id, gw_str(q->owner), GW_STR_NULL);
    case GW_STORE_CONV_ITEMS:
        return conv_items(db, op);
    case GW_STORE_CONV_APPEND:
        return append_items(db, q->id, q->items, q->n_items, q->created_at);
    case GW_STORE_CONV_ITEM_DELETE:
        if (!q->n_items || exec_text(db, "DELETE FROM conversation_items WHERE conversation_id = ? AND item_id = ?",
                                     q->id, q->items[0].id, GW_STR_NULL) < 0)
            return -1;
        if (sqlite3_changes(db) == 0)
            op->status = GW_STORE_NOT_FOUND;
        return 0;
    default:
        return 0;
    }
}

static void get_response(sqlite3 *db, gw__store_op_t *op)
{
    sqlite3_stmt *st = prep(db, "SELECT response, input_items, context FROM responses WHERE id = ? AND owner = ?");
    if (!st) {
        op->status = GW_STORE_FAILED;
        return;
    }
    bind_str(st, 1, op->q.id);
    bind_str(st, 2, gw_str(op->q.owner));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        for (int f = 0; f < 3; f++)
            gw__store_out_field(op, f, sqlite3_column_text(st, f), (size_t)sqlite3_column_bytes(st, f));
    } else {
        op->status = rc == SQLITE_DONE ? GW_STORE_NOT_FOUND : GW_STORE_FAILED;
    }
    sqlite3_finalize(st);
}

static void get_items(sqlite3 *db, gw__store_op_t *op)
{
    sqlite3_stmt *st = prep(db, "SELECT item FROM items WHERE owner = ? AND id = ?");
    if (!st) {
        op->status = GW_STORE_FAILED;
        return;
    }
    for (size_t i = 0; i < op->q.n_items; i++) {
        sqlite3_reset(st);
        bind_str(st, 1, gw_str(op->q.owner));
        bind_str(st, 2, op->q.items[i].id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            gw__store_out_item(op, op->q.items[i].id.base, op->q.items[i].id.len, sqlite3_column_text(st, 0),
                               (size_t)sqlite3_column_bytes(st, 0));
        else if (rc != SQLITE_DONE)
            op->status = GW_STORE_FAILED;
    }
    sqlite3_finalize(st);
}

static int delete_response(sqlite3 *db, gw__store_op_t *op)
{
    gw_str_t owner = gw_str(op->q.owner);
    if (exec_text(db, "DELETE FROM items WHERE response_id = ? AND owner = ?", op->q.id, owner, GW_STR_NULL) < 0 ||
        exec_text(db, "DELETE FROM responses WHERE id = ? AND owner = ?", op->q.id, owner, GW_STR_NULL) < 0)
        return -1;
    if (sqlite3_changes(db) == 0)
        op->status = GW_STORE_NOT_FOUND;
    return 0;
}

/* One batch: at most GW__STORE_PURGE_BATCH responses and as many items, oldest first. */
#define BATCH_SQL(table, key)                                                                                \
    "DELETE FROM " table " WHERE " key " IN (SELECT " key " FROM " table " WHERE created_at < ? LIMIT 200)"
static int purge(sqlite3 *db, gw__store_op_t *op)
{
    _Static_assert(GW__STORE_PURGE_BATCH == 200, "BATCH_SQL's LIMIT");
    if (exec_before(db, BATCH_SQL("responses", "id"), op->purge_before) < 0)
        return -1;
    op->purged = (size_t)sqlite3_changes(db);
    return exec_before(db, BATCH_SQL("items", "rowid"), op->purge_before);
}

static void sq_run(void *vdb, gw__store_op_t *op)
{
    sqlite3 *db = vdb;
    gw_store_op_kind_t k = op->q.kind;
    bool read_conv = k == GW_STORE_CONV_GET || k == GW_STORE_CONV_ITEMS;
    bool write = k != GW_STORE_GET_RESPONSE && k != GW_STORE_GET_ITEMS && !read_conv;
    if (k >= GW_STORE_CONV_CREATE && k != GW__STORE_PURGE) {
        /* Reads in a deferred transaction (one snapshot for the row and its items); writes take the
         * write lock up front. */
        if (sqlite3_exec(db, read_conv ? "BEGIN" : "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
            run_conversation(db, op) < 0 || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            op->status = GW_STORE_FAILED;
        }
    } else if (op->q.kind == GW_STORE_GET_RESPONSE) {
        get_response(db, op);
    } else if (op->q.kind == GW_STORE_GET_ITEMS) {
        get_items(db, op);
    } else if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        op->status = GW_STORE_FAILED;
    } else {
        int rc = op->q.kind == GW_STORE_PUT_RESPONSE      ? put_response(db, op)
                 : op->q.kind == GW_STORE_DELETE_RESPONSE ? delete_response(db, op)
                                                          : purge(db, op);
        if (rc < 0 || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            op->status = GW_STORE_FAILED;
        }
    }
    if (op->status == GW_STORE_FAILED)
        op->why = write ? "sqlite_write_failed" : "sqlite_read_failed";
}

const gw__store_backend_t gw__store_sqlite = {sq_open, sq_run, sq_close, NULL};
