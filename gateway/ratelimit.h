/* gw_rl: per-endpoint QPM/TPM limits (INFERENCE_TABLES.md §7.2, issue 13).
 *
 * Algorithm (§7.2 "Accounting"): one token bucket per (rule, dimension, principal): capacity =
 * the limit, refilled continuously at limit / period. A call takes 1 from each calls bucket that
 * applies; a tokens bucket only needs to be non-negative at admission, and the call's actual
 * input + output tokens are debited when it ends (so it may go negative and hold later calls back
 * until it refills). Burst: a bucket starts full, so over any window of length W at most
 * limit x (1 + W / period) calls are admitted — the full limit at once, then the refill rate.
 *
 * Which buckets apply (the plan, rules 2-5): every endpoint rule (a global ceiling, one bucket per
 * rule for all callers); then for an identified caller the most specific class only: its explicit
 * user or service_principal rules, else the rules of its groups (one bucket per group rule,
 * shared by all members, as on the platform), else the per-user default rules (a bucket per
 * user). Each dimension of each rule is a "set"; a set passes when one of its alternatives has
 * room. Sets have one alternative, except group rules: the caller's groups' rules of the same
 * dimension and period form one set, so it is refused only when over all of them (rule 4), and
 * the first group (config order) with room is the one charged. Anonymous callers (auth off) meet
 * the endpoint rules only.
 *
 * Stores: gw_rl_shm_* keeps buckets in shared memory mapped before --workers forks, so one
 * process's workers share them; gateway/rl_redis keeps them in Redis for a fleet. Both evaluate a
 * whole plan atomically: either every set has room and the calls are taken, or nothing is taken. */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

#define GW_RL_MAX_BUCKETS 40 /* 20 rules x 2 dimensions */
#define GW_RL_LOCAL_SLOTS 65536 /* buckets in the shared-memory table (2 MiB) */

typedef struct {
    uint64_t hash;      /** of the bucket's identity: endpoint, rule, principal, dimension, limit, period */
    double capacity;    /** the limit */
    int64_t period_ms;
    bool tokens;        /** tokens dimension (needs >= 0), else calls (needs >= 1, takes 1) */
    const char *scope;  /** rate_limit_scope of the rule */
    int set;            /** index of the set it is an alternative in */
} gw_rl_bucket_t;

typedef struct {
    gw_rl_bucket_t b[GW_RL_MAX_BUCKETS]; /** grouped by set, sets in order */
    int nb, ns;
} gw_rl_plan_t;

typedef struct {
    bool ok;
    int refused;                   /** first refused set's first bucket index, -1 when ok */
    int64_t retry_ms;              /** refused: until every refused set has room */
    int chosen[GW_RL_MAX_BUCKETS]; /** per set: the bucket charged (calls) or to debit at the end (tokens) */
} gw_rl_verdict_t;

typedef struct {
    double level;
    int64_t t_ms; /** time of the last refill */
} gw_rl_state_t;

/** The buckets a call by requester (NULL = anonymous) in groups must find room in on ep. */
void gw_rl_plan(const gw_endpoint_cfg_t *ep, const char *requester, const char *const *groups, size_t n_groups,
                gw_rl_plan_t *out);
/** Bucket math: refill to now (a fresh state has t_ms < 0 and starts full). */
void gw_rl_refill(gw_rl_state_t *s, const gw_rl_bucket_t *b, int64_t now_ms);
bool gw_rl_has_room(const gw_rl_state_t *s, const gw_rl_bucket_t *b);
/** Milliseconds until the bucket has room (0 if it has). */
int64_t gw_rl_wait_ms(const gw_rl_state_t *s, const gw_rl_bucket_t *b);
/** Decide a plan over refilled states (one per bucket); when ok, takes the calls. */
void gw_rl_decide(const gw_rl_plan_t *p, gw_rl_state_t *states, gw_rl_verdict_t *v);

/* ---- local store: shared memory ---- */
typedef struct gw_rl_shm gw_rl_shm_t;

/** Map a table of `slots` buckets shared with processes forked later (NULL on failure). */
gw_rl_shm_t *gw_rl_shm_new(size_t slots);
void gw_rl_shm_free(gw_rl_shm_t *m);
/** Admit atomically across every process sharing m. */
void gw_rl_shm_admit(gw_rl_shm_t *m, const gw_rl_plan_t *p, gw_rl_verdict_t *v);
/** Debit n tokens from bucket b (the end of a call). */
void gw_rl_shm_debit(gw_rl_shm_t *m, const gw_rl_bucket_t *b, int64_t n);
/** Monotonic ms shared by every process on the host. */
int64_t gw_rl_now_ms(void);

#endif
