/* gw_lb: replica choice for one endpoint, health state, passive outlier ejection, and the retry
 * budget. Pure decision logic: no I/O, no clocks (callers pass now_ms), no allocation after
 * gw_lb_new. The proxy reports what happened; the balancer decides where the next request goes. */
#ifndef GW_BALANCER_H
#define GW_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    GW_LB_ROUND_ROBIN = 0,  /** strict rotation over available replicas */
    GW_LB_WEIGHTED,         /** smooth weighted round robin (nginx style) by weight */
    GW_LB_LEAST_OUTSTANDING,/** fewest requests in flight; ties broken by rotation */
    GW_LB_P2C_EWMA,         /** power of two random choices, cost = EWMA latency x (outstanding + 1) */
} gw_lb_strategy_t;

typedef struct {
    gw_lb_strategy_t strategy;
    int consecutive_failures; /** passive ejection after this many failures in a row (default 5; 0 = off) */
    int base_ejection_ms;     /** first ejection lasts this long; each repeat adds one more base (default 10000) */
    int max_ejection_ms;      /** cap (default 300000) */
    int max_ejected_percent;  /** never eject more than this share of replicas (default 50) */
    int healthy_threshold;    /** active checks: consecutive successes to come back (default 2) */
    int unhealthy_threshold;  /** active checks: consecutive failures to go down (default 3) */
    double ewma_decay_ms;     /** p2c_ewma latency time constant (default 10000) */
} gw_lb_opts_t;

typedef enum {
    GW_LB_OK = 0,         /** answered (any 2xx, or a 4xx that is the client's fault) */
    GW_LB_FAIL_CONNECT,   /** connect refused / reset before any byte */
    GW_LB_FAIL_5XX,       /** 5xx answer */
    GW_LB_FAIL_TIMEOUT,   /** no answer in time */
    GW_LB_OVERLOADED,     /** 429: not a health failure, but worth avoiding for a moment */
} gw_lb_outcome_t;

typedef struct gw_lb gw_lb_t;

/** weights[i] >= 1 per replica (NULL = all 1). seed makes the random choices reproducible. */
gw_lb_t *gw_lb_new(const gw_lb_opts_t *o, const int *weights, size_t n, uint64_t seed);
void gw_lb_free(gw_lb_t *lb);
void gw_lb_opts_default(gw_lb_opts_t *o);
size_t gw_lb_size(const gw_lb_t *lb);

/** Choose a replica for a new attempt, skipping those with exclude[i] != 0 (exclude may be NULL)
 * and those ejected or unhealthy. Returns -1 when none is available. If every replica is
 * ejected/unhealthy but not excluded, the least recently failed one is returned anyway (panic
 * mode, like Envoy's panic threshold): a dead endpoint must not stay dead after a blip. */
int gw_lb_pick(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude);
/** An attempt on replica i starts (outstanding++). */
void gw_lb_begin(gw_lb_t *lb, int i);
/** An attempt on replica i ended (outstanding--), with its outcome and latency to first byte
 * (or to failure). Updates the EWMA and the passive-ejection state. */
void gw_lb_end(gw_lb_t *lb, int i, gw_lb_outcome_t outcome, uint64_t latency_ms, uint64_t now_ms);
/** After a 429 (reported with GW_LB_OVERLOADED), prefer other replicas for the upstream's
 * Retry-After instead of the default 1 s; 0 keeps the default. Call after gw_lb_end. */
void gw_lb_backoff(gw_lb_t *lb, int i, uint64_t retry_after_ms, uint64_t now_ms);
/** Result of one active health check of replica i. */
void gw_lb_health(gw_lb_t *lb, int i, bool ok, uint64_t now_ms);

/* Introspection for /readyz, metrics and tests. */
bool gw_lb_available(const gw_lb_t *lb, int i, uint64_t now_ms);
size_t gw_lb_available_count(const gw_lb_t *lb, uint64_t now_ms);
int gw_lb_outstanding(const gw_lb_t *lb, int i);
double gw_lb_ewma_ms(const gw_lb_t *lb, int i);
int gw_lb_ejections(const gw_lb_t *lb, int i); /** times ejected so far */

/* Retry budget (per process, across endpoints): retries in flight may not exceed
 * max(min_concurrent, ratio x requests in flight), so retries cannot amplify an outage. */
typedef struct {
    double ratio;       /** default 0.2 */
    int min_concurrent; /** default 3 */
    int active;         /** requests in flight (maintained by the proxy) */
    int retries;        /** retry attempts in flight */
} gw_lb_budget_t;

bool gw_lb_budget_take(gw_lb_budget_t *b);
void gw_lb_budget_put(gw_lb_budget_t *b);

#endif
