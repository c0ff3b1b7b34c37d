/* gw_route: maps method + path to a front route (PROTOCOL.md §1), the model list and health endpoints. */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stdbool.h>

#include "gateway/buf.h"

typedef enum {
    GW_ROUTE_NONE = 0,      /** unknown path: 404 */
    GW_ROUTE_RESPONSES,     /** POST /v1/responses */
    GW_ROUTE_INVOCATIONS,   /** POST /serving-endpoints/{name}/invocations */
    GW_ROUTE_HEALTHZ,       /** GET /healthz */
    GW_ROUTE_READYZ,        /** GET /readyz */
    GW_ROUTE_METRICS,       /** GET /metrics (Prometheus text) */
    GW_ROUTE_CHAT,          /** POST /v1/chat/completions (ChatCompletions passthrough) */
    GW_ROUTE_MODELS,        /** GET /v1/models */
    GW_ROUTE_MODEL,         /** GET /v1/models/{id} */
    GW_ROUTE_STORED,        /** GET|DELETE /v1/responses/{id} (response store) */
    GW_ROUTE_STORED_INPUT,  /** GET /v1/responses/{id}/input_items */
    GW_ROUTE_CONVS,         /** POST /v1/conversations */
    GW_ROUTE_CONV,          /** GET|POST|DELETE /v1/conversations/{id} */
    GW_ROUTE_CONV_ITEMS,    /** GET|POST /v1/conversations/{id}/items */
    GW_ROUTE_CONV_ITEM,     /** GET|DELETE /v1/conversations/{id}/items/{item_id} */
} gw_route_kind_t;

typedef struct {
    gw_route_kind_t kind;
    gw_str_t endpoint;  /** {name} of the invocations route, {id} of /v1/models/{id} and of the stored
                         *  routes (borrowed from the path) */
    gw_str_t item;      /** {item_id} of /v1/conversations/{id}/items/{item_id} */
    bool method_ok;     /** false: known path, wrong method (405) */
    const char *allow;  /** Allow header value for 405 */
} gw_route_t;

void gw_route_resolve(gw_str_t method, gw_str_t path, gw_route_t *out);
/** Route name for the table's front_route column, NULL for non-routed kinds. */
const char *gw_route_front_name(gw_route_kind_t k);

#endif
