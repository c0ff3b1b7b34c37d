/* gw_recall: what one call of POST /v1/responses asks of the response store (issue 12).
 *
 * Resolve phase (gw_recall_resolve): decides whether this response is stored (`store` in the
 * request, else store.default; never without a store, never on the Databricks route), refuses
 * stateful requests without a store (400 telling the client to send the whole conversation), and
 * otherwise looks up what the request continues: `previous_response_id` (one row: that response's
 * stored context, i.e. every earlier turn's input and output, then its own) and `item_reference`
 * items. The request's input is then rewritten in place: the previous context first, then this
 * turn's items with every reference replaced by the stored item. Instructions never carry over
 * (OpenAI semantics): only the new request's `instructions` reach the upstream.
 *
 * Finish of render (gw_recall_write): before the terminal event (or the non-streaming answer)
 * leaves, the response is written with its context (previous context + this turn's input + its
 * output), and every input and output item is indexed by id for later item_references. The write
 * is bounded by store.write_timeout_ms; a failure is reported to the caller, who answers anyway.
 *
 * Input items without an id get one here (msg_/fco_/item_ + 32 hex), as OpenAI does, so that
 * input_items lists and item_references can name them. Everything lives in the call's arena. */
#ifndef GW_RECALL_H
#define GW_RECALL_H

#include "gateway/error.h"
#include "gateway/request.h"
#include "gateway/store.h"

typedef struct gw_recall gw_recall_t;

/** Items as stored: one JSON array text and each element's id and span in it. */
typedef struct {
    gw_str_t text;
    gw_store_item_t *v;
    size_t n;
} gw_recall_items_t;

/** input (a string, or an array of items) as stored items: ids assigned where missing, a
 * message's string content as parts; element i is raw[i] verbatim when raw and raw[i].base. */
void gw_recall_item_list(gw_arena_t *a, const gw_json_t *input, const gw_str_t *raw, gw_recall_items_t *out);

/** err NULL: done. Otherwise the error to answer (message in the arena). */
typedef void (*gw_recall_cb)(void *ud, const gw_error_t *err);

/** Resolve phase, after gw_resolve. store NULL = none configured (or not this route). Returns 0
 * when nothing is to wait for, 1 when cb(ud, err) fires later (from the loop), -1 with err. *out is
 * set in every case that returns >= 0. */
int gw_recall_resolve(gw_recall_t **out, gw_store_t *store, gw_arena_t *a, const char *owner,
                      const char *response_id, gw_request_t *req, gw_recall_cb cb, void *ud, gw_error_t *err);

/** Writes response (the final Responses object). Returns false when there is nothing to write
 * (request not stored, or the response is over store.max_response_bytes: counted and logged);
 * true when cb(ud, err) fires later: err NULL once committed, else the store failed (counted,
 * logged). */
bool gw_recall_write(gw_recall_t *rc, gw_str_t response, int64_t created_at, gw_recall_cb cb, void *ud);

#endif
