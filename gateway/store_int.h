/* Private to gateway/store*.c: one queued operation and the backend's vtable. */
#ifndef GW_STORE_INT_H
#define GW_STORE_INT_H

#include "gateway/store.h"

/* Internal kind past the public ones: delete a batch of expired objects. */
#define GW__STORE_PURGE ((gw_store_op_kind_t)100)
#define GW__STORE_PURGE_BATCH 200

typedef struct gw__store_op gw__store_op_t;
struct gw__store_op {
    gw_store_t *s;
    gw_store_req_t q;       /** copy: its strings point into in / items */
    gw_buf_t in;            /** owns the request's bytes */
    gw_store_item_t *items; /** owns; q.items points here */
    int64_t purge_before;   /** PURGE: unix seconds */
    gw_store_cb cb;
    void *ud;
    /* Result, filled on the backend's thread; strings are offsets into out until done. */
    gw_store_status_t status;
    const char *why;
    gw_buf_t out;
    size_t off[4], len[4];      /** response, input_items, context, metadata */
    int64_t created_at;         /** CONV_*: the conversation's */
    size_t *item_off, *item_len, *id_off, *id_len, n_found;
    size_t purged;              /** PURGE: objects deleted */
    uv_work_t work;
    uv_timer_t timer;           /** write timeout; open when q.timeout_ms > 0 */
    bool timer_open, answered, work_done;
    gw__store_op_t *next;
};

typedef struct {
    /** Opens (and creates the schema); returns the backend handle or NULL + err. Loop thread. */
    void *(*open)(const gw_store_cfg_t *cfg, char *err, size_t errlen);
    /** Runs one operation to the end; blocking; on the thread pool. */
    void (*run)(void *db, gw__store_op_t *op);
    void (*close)(void *db);
    /** Optional: false when open kept a handle without its database (postgres down at start-up),
     * so the store starts failing (/readyz 503) until an operation succeeds. Loop thread, once. */
    bool (*up)(void *db);
} gw__store_backend_t;

extern const gw__store_backend_t gw__store_sqlite;
extern const gw__store_backend_t gw__store_postgres;

/** Postgres: the keywords/values given to PQconnectdbParams for dsn (a URI or key=value string,
 * expanded by libpq): our defaults first, so the DSN's own settings win (connect_timeout=5,
 * application name), then what agate needs whatever the DSN says (UTF8). NULL-terminated; kw and
 * val have room for GW__STORE_PG_PARAMS entries. Pure: unit-tested. */
#define GW__STORE_PG_PARAMS 6
void gw__store_pg_params(const char *dsn, const char **kw, const char **val);

/** Result helpers for backends: append bytes to op->out and note where they are. */
void gw__store_out_field(gw__store_op_t *op, int field, const void *p, size_t n);
void gw__store_out_item(gw__store_op_t *op, const void *id, size_t id_n, const void *json, size_t n);

#endif
