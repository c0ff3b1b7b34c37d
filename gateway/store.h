/* gw_store: the response store (issue 12): stored Responses objects, the items they consumed and
 * produced, and what a later turn needs to continue them.
 *
 * One store per worker, on the worker's loop. Every operation is asynchronous: the request is
 * copied in, the callback fires later on the loop (never from inside gw_store_submit) with the
 * result, which is valid only during the callback. Both backends (SQLite embedded, PostgreSQL for
 * a fleet) run their blocking calls on libuv's thread pool (uv_queue_work), one at a time per
 * store, in submission order, so a worker reads its own writes. Writes may carry a timeout: past
 * it the callback reports GW_STORE_FAILED at once and the late result is dropped.
 *
 * Every object has an owner (the requester of the call that created it; NULL = the one anonymous
 * owner, stored as ""). Every query filters by owner: another owner's object is NOT_FOUND.
 *
 * Each stored response keeps its whole context (the resolved input of every earlier turn, in
 * order, then this turn's input and output) so `previous_response_id` costs one row read per turn
 * whatever the chain's depth. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"
#include "gateway/config.h"
#include "gateway/metrics.h"

typedef struct gw_store gw_store_t;

typedef enum { GW_STORE_OK = 0, GW_STORE_NOT_FOUND, GW_STORE_FAILED } gw_store_status_t;

typedef enum {
    GW_STORE_GET_RESPONSE,    /** id -> response, input_items, context */
    GW_STORE_GET_ITEMS,       /** items[].id -> the found items' JSON (missing ones left out) */
    GW_STORE_PUT_RESPONSE,    /** id, created_at, response, input_items, context, items to index */
    GW_STORE_DELETE_RESPONSE, /** id: the response and the items it indexed */
    /* Conversations (id = conv_...): */
    GW_STORE_CONV_CREATE,     /** id, created_at, metadata, items (its first items, in order) */
    GW_STORE_CONV_GET,        /** id -> metadata, created_at */
    GW_STORE_CONV_UPDATE,     /** id, metadata -> the updated metadata, created_at */
    GW_STORE_CONV_DELETE,     /** id: the conversation and its items */
    GW_STORE_CONV_ITEMS,      /** id -> metadata, created_at, context = every item in order */
    GW_STORE_CONV_APPEND,     /** id, created_at, items appended in order */
    GW_STORE_CONV_ITEM_DELETE, /** id, items[0].id -> metadata, created_at */
} gw_store_op_kind_t;

/** One stored item: its id and its JSON text. */
typedef struct {
    gw_str_t id;
    gw_str_t json;
} gw_store_item_t;

/** What to do; everything is copied by gw_store_submit. */
typedef struct {
    gw_store_op_kind_t kind;
    const char *owner;       /** NULL = anonymous */
    gw_str_t id;             /** response id */
    int64_t created_at;      /** unix seconds (PUT) */
    gw_str_t response;       /** PUT: the Responses object */
    gw_str_t input_items;    /** PUT: JSON array of this turn's input items, ids assigned */
    gw_str_t context;        /** PUT: JSON array, every item a next turn continues from */
    gw_str_t conversation;   /** PUT: also append this turn's items (input, output) to it */
    gw_str_t metadata;       /** CONV_CREATE, CONV_UPDATE: JSON object */
    const gw_store_item_t *items; /** PUT: items to index by id; GET_ITEMS: ids wanted (json unused) */
    size_t n_items;
    int timeout_ms;          /** 0 = wait as long as the backend takes */
} gw_store_req_t;

typedef struct {
    gw_store_status_t status;
    const char *why;         /** FAILED: short static reason (timeout, sqlite_write_failed, postgres_error, ...) */
    gw_str_t response, input_items, context; /** GET_RESPONSE; CONV_ITEMS: context */
    gw_str_t metadata;                       /** CONV_* */
    int64_t created_at;                      /** CONV_* */
    const gw_store_item_t *items;            /** GET_ITEMS: found items, in the order asked */
    size_t n_items;
} gw_store_result_t;

typedef void (*gw_store_cb)(const gw_store_result_t *res, void *ud);

/** Opens the configured backend (creates the schema). NULL + err on failure. */
gw_store_t *gw_store_new(uv_loop_t *loop, const gw_store_cfg_t *cfg, gw_metrics_t *metrics, char *err,
                         size_t errlen);
/** Stops the purge timer; operations still queued finish (their callbacks run) before the backend
 * closes, from a later loop turn. */
void gw_store_free(gw_store_t *s);
/** Queues q; cb(ud) fires exactly once, later, on the loop. */
void gw_store_submit(gw_store_t *s, const gw_store_req_t *q, gw_store_cb cb, void *ud);
/** A write failed or was not attempted for this reason: counted (agate_store_write_failures_total). */
void gw_store_count_failure(gw_store_t *s, const char *reason);
/** Ready: the last operation succeeded (or none ran yet). For /readyz. */
bool gw_store_ready(const gw_store_t *s);
/** "ok" or "failing", for /readyz. */
const char *gw_store_state(const gw_store_t *s);
/** The configuration the store was opened with. */
const gw_store_cfg_t *gw_store_cfg(const gw_store_t *s);

#endif
