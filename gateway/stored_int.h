/* Private to gateway/stored*.c: one stored-object request and the helpers both files use. */
#ifndef GW_STORED_INT_H
#define GW_STORED_INT_H

#include "gateway/json.h"
#include "gateway/stored.h"

typedef struct {
    gw_arena_t *a;
    gw_route_kind_t kind;
    bool del;
    gw_str_t id;
    gw_str_t after, before;
    long limit;
    bool asc;
    gw_stored_cb cb;
    void *ud;
    gw_error_t err;
    const char *owner;
    gw_req_t *r;
    gw_str_t item;  /** {item_id} of the conversation item route */
    bool post;
    gw_str_t added; /** POST .../items: the added items (JSON array) for the answer */
} stored_t;

/** err = kind with message before + 'v' (at most 200 bytes) + after; returns -1. */
int gw__stored_fail(gw_arena_t *a, gw_error_t *err, gw_err_kind_t kind, const char *param, const char *before, gw_str_t v,
                    const char *after);
/** Query parameters of a stored route (pagination on the list routes). */
int gw__stored_query(stored_t *q, gw_str_t query, gw_error_t *err);
/** One page of items (a JSON array) per q's after/before/limit/order, as an OpenAI list object. */
void gw__stored_page(stored_t *q, const gw_json_t *items, gw_buf_t *b);
/** The conversation routes (stored_conv.c): 1 pending, -1 err. */
int gw__stored_conv(gw_store_t *st, stored_t *q, gw_error_t *err);

#endif
