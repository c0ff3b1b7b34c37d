/* gw_admit: the admit phase, between route and resolve: who is calling and whether they may.
 * Identity (API keys, trusted headers), endpoint access and rate limits belong here (issue 13);
 * with auth off, as today, every caller is the anonymous requester and is admitted. */
#ifndef GW_ADMIT_H
#define GW_ADMIT_H

#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/router.h"
#include "gateway/server.h"

typedef struct {
    const char *requester; /** NULL = anonymous (tables write null) */
} gw_identity_t;

/** 0 admitted (who filled in), -1 refused with err in the route's error vocabulary. */
int gw_admit(const gw_config_t *cfg, gw_req_t *r, const gw_route_t *route, gw_identity_t *who, gw_error_t *err);

#endif
