/* gw_models: the OpenAI model list, `GET /v1/models` and `GET /v1/models/{id}` (issue 16). Clients
 * and UIs probe it before anything else. Each served endpoint is one model, in OpenAI's list
 * shape; like the admin routes these answers are never logged to the inference tables (they
 * carry no request payload and no upstream call: INFERENCE_TABLES.md §1). */
#ifndef GW_MODELS_H
#define GW_MODELS_H

#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/router.h"
#include "gateway/server.h"

/** Answer route (GW_ROUTE_MODELS or GW_ROUTE_MODEL) with 200 and `headers` (extra header lines,
 * CRLF-terminated). Returns -1 with err (404, OpenAI error shape) for an unknown id. */
int gw_models_respond(const gw_config_t *cfg, gw_req_t *r, const gw_route_t *route, const char *headers,
                      gw_error_t *err);

#endif
