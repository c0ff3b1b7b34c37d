/* Request side of the Responses adapter. Internal to adapters/responses.c. */
#ifndef AD_RS_REQUEST_H
#define AD_RS_REQUEST_H

#include "adapters/adapter.h"

const char *ad__rs_path(const gw_endpoint_cfg_t *ep);
int ad__rs_encode_request(const gw_request_t *r, const gw_endpoint_cfg_t *ep, bool databricks_route,
                          gw_buf_t *out, gw_error_t *err);

#endif
