/* Request side of the ChatCompletions adapter: a Responses request → a ChatCompletions body
 * (PROTOCOL.md §6.1, §7.1, §2.2). Internal to adapters/chat_completions.c. */
#ifndef AD_CC_REQUEST_H
#define AD_CC_REQUEST_H

#include "adapters/adapter.h"

int ad__cc_encode_request(const gw_request_t *r, const gw_endpoint_cfg_t *ep, bool databricks_route,
                          gw_buf_t *out, gw_error_t *err);

#endif
