/* gw_resolve: the resolve phase. Checks the media type, parses and validates the Responses body
 * once (on the ChatCompletions route: the chat body, just enough to route it), finds the endpoint
 * the client addressed (the Databricks path names it, the OpenAI routes' `model` does, through the
 * endpoints' names, aliases and default_endpoint), applies the endpoint's traffic split and its
 * tool policies (hosted_tools) and draws the payload-table sample. The response store's lookups
 * will go here too. Pure: no I/O, no timers. */
#ifndef GW_RESOLVE_H
#define GW_RESOLVE_H

#include <stdbool.h>

#include "adapters/adapter.h"
#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/server.h"

typedef struct {
    const gw_endpoint_cfg_t *routed; /** addressed endpoint; set on failure too when it is known */
    const gw_endpoint_cfg_t *served; /** entity after the traffic split */
    const ad_vtable_t *ad;           /** served entity's adapter */
    gw_request_t req;                /** valid when parsed */
    bool parsed;
    bool sampled_out;                /** payload-table draw (INFERENCE_TABLES.md §4) */
} gw_resolved_t;

/** 0 when the request can be dispatched; else -1 with err (message in r's arena). */
int gw_resolve(const gw_config_t *cfg, gw_req_t *r, const gw_route_t *route, gw_resolved_t *out, gw_error_t *err);

#endif
