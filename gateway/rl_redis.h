/* gw_rlr: rate-limit buckets in Redis, for a fleet of agate instances (issue 13).
 *
 * hiredis's async API on the worker's libuv loop (adapters/libuv.h). One Lua script does a whole
 * admission atomically on the server — refill every bucket of the plan with Redis's own clock
 * (TIME, so instances' clocks never matter), decide exactly like gw_rl_decide, take the calls —
 * sent as EVALSHA (SCRIPT LOAD when the connection comes up), with EVAL as the fallback when the
 * server answers NOSCRIPT (restarted, flushed). The same script debits tokens at the end of a
 * call (fire-and-forget). Buckets are hashes "agate:rl:<16 hex of the bucket hash>" with fields l
 * (level) and t (ms), expiring after two periods of disuse. Every admission has a deadline
 * (rate_limits_store.deadline_ms); a missed deadline, a refused connection or a broken one is a
 * store error, and the caller applies on_error. While disconnected, admissions fail at once (no
 * wait) and a reconnect is tried every RECONNECT_MS; three missed deadlines in a row drop the
 * connection so a half-dead socket is not trusted. Not supported: Redis Cluster (the plan's keys
 * would have to share a hash slot), AUTH, TLS. */
#ifndef GW_RL_REDIS_H
#define GW_RL_REDIS_H

#include <stdbool.h>
#include <uv.h>

#include "gateway/metrics.h"
#include "gateway/ratelimit.h"

typedef struct gw_rlr gw_rlr_t;
typedef struct gw_rlr_op gw_rlr_op_t;

/** Verdict of one admission: ok false = store error (v untouched), else v is the decision. */
typedef void (*gw_rlr_cb)(void *ud, bool ok, const gw_rl_verdict_t *v);

gw_rlr_t *gw_rlr_new(uv_loop_t *loop, const char *host, int port, int deadline_ms);
/** Disconnect; pending admissions get their store error first. Freed once its handles closed. */
void gw_rlr_free(gw_rlr_t *r);
bool gw_rlr_matches(const gw_rlr_t *r, const char *host, int port, int deadline_ms);
/** Start an admission. Returns NULL when the store is unusable right now (cb not called), else
 * an op whose cb fires exactly once unless gw_rlr_cancel comes first. plan is copied. */
gw_rlr_op_t *gw_rlr_admit(gw_rlr_t *r, const gw_rl_plan_t *plan, gw_rlr_cb cb, void *ud);
void gw_rlr_cancel(gw_rlr_op_t *op);
/** Debit n tokens from bucket b, counted in debits by result once known: "applied" (Redis
 * answered), "failed" (an error reply or a broken connection), "dropped" (the store is down). */
void gw_rlr_debit(gw_rlr_t *r, const gw_rl_bucket_t *b, int64_t n, gw_metric_t *debits);
bool gw_rlr_connected(const gw_rlr_t *r);

#endif
