/* gw_admit: the admit phase — who is calling and whether they may (issue 13). Two steps, because
 * endpoint-level decisions need the endpoint resolve picks:
 *   identify (between route and resolve): API key or trusted header (gateway/auth) -> 401;
 *   admit_endpoint (right after resolve): the key's endpoint list and the endpoint's `allow`
 *     -> 403 PERMISSION_DENIED, then its rate_limits (gateway/ratelimit) -> 429
 *     REQUEST_LIMIT_EXCEEDED with Retry-After, or 503 when the Redis store is unreachable and
 *     on_error is "deny". With Redis the verdict arrives asynchronously (one EVALSHA); an endpoint
 *     without rules never waits.
 * At the end of the call (the finish observer gw_admit_observe) the call's tokens are debited from
 * the token buckets it was admitted by, and /metrics counts requests and tokens per requester.
 * With auth off every caller is the anonymous requester (NULL), as before. */
#ifndef GW_ADMIT_H
#define GW_ADMIT_H

#include <uv.h>

#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/metrics.h"
#include "gateway/ratelimit.h"
#include "gateway/server.h"
#include "gateway/summary.h"

typedef struct gw_admit gw_admit_t;

/** shm: the local bucket table (mapped before fork by main; NULL = made here, this process only). */
gw_admit_t *gw_admit_new(uv_loop_t *loop, gw_metrics_t *metrics, gw_rl_shm_t *shm);
/** Apply a config (start and every reload): keys file, Redis store. */
void gw_admit_configure(gw_admit_t *ad, const gw_config_t *cfg);
void gw_admit_free(gw_admit_t *ad);

/** 0 identified (who filled in), -1 refused with a 401 in err. */
int gw_admit_identify(gw_admit_t *ad, const gw_config_t *cfg, gw_req_t *r, gw_identity_t *who, gw_error_t *err);

/** Verdict callback of a pending admission: err NULL = admitted. */
typedef void (*gw_admit_cb)(void *ud, const gw_error_t *err);
/** 0 admitted, -1 refused now (err, message in r's arena), 1 pending: cb fires once, later, unless
 * gw_admit_cancel is called first. */
int gw_admit_endpoint(gw_admit_t *ad, const gw_config_t *cfg, gw_req_t *r, const gw_endpoint_cfg_t *ep,
                      gw_identity_t *who, gw_error_t *err, gw_admit_cb cb, void *ud);
/** The call is going away while its admission is pending: cb will not fire. */
void gw_admit_cancel(gw_identity_t *who);
/** rate_limit_scope of a refusal, NULL if none. */
const char *gw_admit_limit_scope(const gw_identity_t *who);

/** Finish observer (ud = the gw_admit_t): token debit, per-requester metrics. */
void gw_admit_observe(const gw_call_summary_t *s, void *ud);

#endif
