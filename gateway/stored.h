/* gw_stored: the routes that read and delete stored responses (issue 12), answered after admit
 * for the caller as owner (another owner's response is a 404, never the object):
 *   GET    /v1/responses/{id}              the stored Responses object
 *   GET    /v1/responses/{id}/input_items  its input items, OpenAI cursor pagination: `after`,
 *                                          `before` (item ids), `limit` 1..100 (20), `order`
 *                                          asc|desc (desc), `include[]` accepted
 *   DELETE /v1/responses/{id}              {"id","object":"response","deleted":true}
 * `include` (GET /v1/responses/{id}): accepted; agate stores no logprobs, encrypted reasoning or
 * tool-call sources, so there is nothing for it to add. Without a store every route is a 404
 * saying so. */
#ifndef GW_STORED_H
#define GW_STORED_H

#include "gateway/error.h"
#include "gateway/router.h"
#include "gateway/server.h"
#include "gateway/store.h"

/** status 200 with body (JSON, in r's arena), or err (its message in the arena). */
typedef void (*gw_stored_cb)(void *ud, gw_str_t body, const gw_error_t *err);

bool gw_stored_route(gw_route_kind_t k);

/** 1: cb fires later; -1: err set now (bad query, no store). */
int gw_stored_respond(gw_store_t *st, gw_req_t *r, const gw_route_t *route, const char *owner, gw_stored_cb cb,
                      void *ud, gw_error_t *err);

#endif
