#include "gateway/balancer.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

/* How long a 429 makes pick() prefer the other replicas. The interface carries no Retry-After, so
 * this is a fixed "moment": long enough to shed a burst, short enough that a replica that was only
 * briefly saturated is not starved. The replica stays available (it is a soft preference only). */
#define OVERLOAD_HOLD_MS 1000

/* p2c_ewma cost of a replica that has no latency sample yet but already has a request in flight:
 * larger than any real cost (latency ms x (outstanding + 1)), so an unmeasured replica gets one
 * probe at a time until its first answer tells us how fast it is (Finagle's PeakEwma penalty). */
#define UNMEASURED_PENALTY 1e15

typedef struct {
    int weight;                   /** >= 1, from gw_lb_new */
    int64_t current;              /** smooth weighted round robin running weight (may go negative) */
    int outstanding;              /** attempts in flight (begin - end) */
    bool measured;                /** ewma_ms holds at least one sample */
    double ewma_ms;               /** time-decayed latency estimate; meaningless while !measured */
    uint64_t ewma_at_ms;          /** time of the last sample folded into ewma_ms */
    int fail_streak;              /** consecutive passive failures since the last OK or ejection */
    int eject_mult;               /** current ejection multiplier (grows per ejection, decays while back) */
    int ejections;                /** times ejected so far (monotonic, for metrics) */
    uint64_t ejected_until_ms;    /** ejected while now < this; 0 = never ejected */
    uint64_t overloaded_until_ms; /** pick() prefers others while now < this (last 429) */
    uint64_t last_fail_ms;        /** last passive failure or failed health check: orders panic picks */
    bool unhealthy;               /** active health checks say down */
    int hc_ok_streak;             /** consecutive successful active checks */
    int hc_fail_streak;           /** consecutive failed active checks */
} replica_t;

struct gw_lb {
    gw_lb_opts_t o;
    size_t n;
    size_t cursor; /** rotation point for round robin and for tie breaks */
    uint64_t rng;  /** splitmix64 state */
    replica_t r[]; /** n replicas, allocated with the struct (the only allocation) */
};

/* Which replicas a pick may return: tiers are tried in order, the first non-empty one wins. */
typedef enum {
    TIER_PREFERRED, /* available, not excluded, no recent 429 */
    TIER_AVAILABLE, /* available, not excluded */
} tier_t;

void gw_lb_opts_default(gw_lb_opts_t *o)
{
    o->strategy = GW_LB_P2C_EWMA;
    o->consecutive_failures = 5;
    o->base_ejection_ms = 10000;
    o->max_ejection_ms = 300000;
    o->max_ejected_percent = 50;
    o->healthy_threshold = 2;
    o->unhealthy_threshold = 3;
    o->ewma_decay_ms = 10000;
}

/* splitmix64 (Steele, Lea, Flood 2014): tiny, full period, every seed (including 0) is fine. */
static uint64_t next_rand(gw_lb_t *lb)
{
    uint64_t z = (lb->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, k). The modulo bias is below k / 2^64, irrelevant for replica counts. */
static size_t rand_below(gw_lb_t *lb, size_t k)
{
    assert(k > 0);
    return (size_t)(next_rand(lb) % k);
}

/* Options are validated by the config loader; here out-of-range values are only clamped to
 * something that cannot misbehave (a threshold of 0 would flip state on no evidence at all). */
gw_lb_t *gw_lb_new(const gw_lb_opts_t *o, const int *weights, size_t n, uint64_t seed)
{
    gw_lb_t *lb;

    if (n == 0 || n > INT_MAX)
        return NULL;
    for (size_t i = 0; weights && i < n; i++)
        if (weights[i] < 1)
            return NULL;
    lb = calloc(1, sizeof(*lb) + n * sizeof(lb->r[0]));
    if (!lb)
        return NULL;
    if (o)
        lb->o = *o;
    else
        gw_lb_opts_default(&lb->o);
    if (lb->o.consecutive_failures < 0)
        lb->o.consecutive_failures = 0;
    if (lb->o.base_ejection_ms < 0)
        lb->o.base_ejection_ms = 0;
    if (lb->o.max_ejection_ms < 0)
        lb->o.max_ejection_ms = 0;
    if (lb->o.healthy_threshold < 1)
        lb->o.healthy_threshold = 1;
    if (lb->o.unhealthy_threshold < 1)
        lb->o.unhealthy_threshold = 1;
    if (!(lb->o.ewma_decay_ms > 0))
        lb->o.ewma_decay_ms = 10000;
    lb->n = n;
    lb->rng = seed;
    for (size_t i = 0; i < n; i++)
        lb->r[i].weight = weights ? weights[i] : 1;
    return lb;
}

void gw_lb_free(gw_lb_t *lb)
{
    free(lb);
}

size_t gw_lb_size(const gw_lb_t *lb)
{
    return lb->n;
}

static bool is_ejected(const replica_t *r, uint64_t now_ms)
{
    return now_ms < r->ejected_until_ms;
}

static bool is_available(const replica_t *r, uint64_t now_ms)
{
    return !r->unhealthy && !is_ejected(r, now_ms);
}

static bool eligible(const gw_lb_t *lb, size_t i, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    const replica_t *r = &lb->r[i];

    if (exclude && exclude[i])
        return false;
    if (!is_available(r, now_ms))
        return false;
    return tier != TIER_PREFERRED || now_ms >= r->overloaded_until_ms;
}

/* Strict rotation: the first eligible replica at or after the cursor. */
static int pick_round_robin(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    for (size_t k = 0; k < lb->n; k++) {
        size_t i = (lb->cursor + k) % lb->n;
        if (eligible(lb, i, now_ms, exclude, tier)) {
            lb->cursor = (i + 1) % lb->n;
            return (int)i;
        }
    }
    return -1;
}

/* nginx's smooth weighted round robin (ngx_http_upstream_get_peer): every eligible replica gains
 * its weight, the richest wins and pays the total. Over any window of sum(weights) picks with a
 * stable eligible set each replica gets exactly its weight, interleaved rather than in bursts.
 * Ties go to the lowest index, which keeps the sequence deterministic. */
static int pick_weighted(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    int64_t total = 0;
    int best = -1;

    for (size_t i = 0; i < lb->n; i++) {
        replica_t *r = &lb->r[i];
        if (!eligible(lb, i, now_ms, exclude, tier))
            continue;
        r->current += r->weight;
        total += r->weight;
        if (best < 0 || r->current > lb->r[best].current)
            best = (int)i;
    }
    if (best >= 0)
        lb->r[best].current -= total;
    return best;
}

/* Fewest attempts in flight; among equals the first at or after the cursor, so ties rotate. */
static int pick_least_outstanding(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    int best = -1;

    for (size_t k = 0; k < lb->n; k++) {
        size_t i = (lb->cursor + k) % lb->n;
        if (!eligible(lb, i, now_ms, exclude, tier))
            continue;
        if (best < 0 || lb->r[i].outstanding < lb->r[best].outstanding)
            best = (int)i;
    }
    if (best >= 0)
        lb->cursor = ((size_t)best + 1) % lb->n;
    return best;
}

/* p2c_ewma cost. A measured replica costs latency x (outstanding + 1). An unmeasured one costs 0
 * while idle (so a new or restarted replica gets traffic at once) and a prohibitive penalty while
 * its first probe is in flight (so it is not flooded before we know its latency). */
static double cost(const replica_t *r)
{
    if (!r->measured)
        return r->outstanding == 0 ? 0.0 : UNMEASURED_PENALTY + r->outstanding;
    return r->ewma_ms * (r->outstanding + 1);
}

/* The k-th (0-based) eligible replica in index order. */
static int nth_eligible(const gw_lb_t *lb, size_t k, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    for (size_t i = 0; i < lb->n; i++)
        if (eligible(lb, i, now_ms, exclude, tier) && k-- == 0)
            return (int)i;
    return -1;
}

/* Power of two choices (Mitzenmacher): two distinct eligible replicas uniformly at random, the
 * cheaper one wins; on equal cost the first draw wins, which is itself uniform. Comparing only
 * two keeps a stale cost from sending every request to the same replica, as a global minimum
 * would between two updates. */
static int pick_p2c(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    size_t k = 0, ra, rb;
    int a, b;

    for (size_t i = 0; i < lb->n; i++)
        if (eligible(lb, i, now_ms, exclude, tier))
            k++;
    if (k == 0)
        return -1;
    if (k == 1)
        return nth_eligible(lb, 0, now_ms, exclude, tier);
    ra = rand_below(lb, k);
    rb = rand_below(lb, k - 1);
    if (rb >= ra)
        rb++;
    a = nth_eligible(lb, ra, now_ms, exclude, tier);
    b = nth_eligible(lb, rb, now_ms, exclude, tier);
    assert(a >= 0 && b >= 0 && a != b);
    return cost(&lb->r[b]) < cost(&lb->r[a]) ? b : a;
}

static int pick_tier(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude, tier_t tier)
{
    switch (lb->o.strategy) {
    case GW_LB_ROUND_ROBIN:
        return pick_round_robin(lb, now_ms, exclude, tier);
    case GW_LB_WEIGHTED:
        return pick_weighted(lb, now_ms, exclude, tier);
    case GW_LB_LEAST_OUTSTANDING:
        return pick_least_outstanding(lb, now_ms, exclude, tier);
    case GW_LB_P2C_EWMA:
    default:
        return pick_p2c(lb, now_ms, exclude, tier);
    }
}

/* Panic mode: the non-excluded replica whose last failure is oldest; ties rotate from the cursor.
 * Its next failure makes it the most recent, so successive panic picks walk the whole set. */
static int pick_panic(gw_lb_t *lb, const uint8_t *exclude)
{
    int best = -1;

    for (size_t k = 0; k < lb->n; k++) {
        size_t i = (lb->cursor + k) % lb->n;
        if (exclude && exclude[i])
            continue;
        if (best < 0 || lb->r[i].last_fail_ms < lb->r[best].last_fail_ms)
            best = (int)i;
    }
    if (best >= 0)
        lb->cursor = ((size_t)best + 1) % lb->n;
    return best;
}

/* Replicas answering 429 are skipped while others can take the attempt. Panic mode starts only
 * when no replica at all is available: if healthy ones exist but the caller excluded them (they
 * were already tried), -1 tells it to stop instead of retrying into an ejected replica. */
int gw_lb_pick(gw_lb_t *lb, uint64_t now_ms, const uint8_t *exclude)
{
    int i = pick_tier(lb, now_ms, exclude, TIER_PREFERRED);

    if (i < 0)
        i = pick_tier(lb, now_ms, exclude, TIER_AVAILABLE);
    if (i < 0 && gw_lb_available_count(lb, now_ms) == 0)
        i = pick_panic(lb, exclude);
    return i;
}

static replica_t *at(gw_lb_t *lb, int i)
{
    assert(i >= 0 && (size_t)i < lb->n);
    return &lb->r[i];
}

static const replica_t *cat(const gw_lb_t *lb, int i)
{
    assert(i >= 0 && (size_t)i < lb->n);
    return &lb->r[i];
}

void gw_lb_begin(gw_lb_t *lb, int i)
{
    at(lb, i)->outstanding++;
}

/* Time-decayed EWMA: a sample taken dt after the previous one gets weight 1 - exp(-dt / tau), so
 * the estimate forgets at the same speed in time whatever the request rate, and after a long
 * quiet spell the first new sample dominates. Samples in the same millisecond as the previous
 * one carry no weight; at the rates one replica sees this only thins the sampling. */
static void ewma_add(gw_lb_t *lb, replica_t *r, double sample_ms, uint64_t now_ms)
{
    double w;

    if (!r->measured) {
        r->measured = true;
        r->ewma_ms = sample_ms;
        r->ewma_at_ms = now_ms;
        return;
    }
    if (now_ms <= r->ewma_at_ms)
        return;
    w = exp(-(double)(now_ms - r->ewma_at_ms) / lb->o.ewma_decay_ms);
    r->ewma_ms = r->ewma_ms * w + sample_ms * (1.0 - w);
    r->ewma_at_ms = now_ms;
}

/* floor(n x pct / 100), but at least one when pct > 0 and n >= 2 (as Envoy always allows one
 * ejection: with a small pool a percentage would otherwise round down to never). Never the only
 * replica: ejecting it would just put the endpoint into panic mode. pct <= 0 disables ejection. */
static size_t max_ejectable(const gw_lb_t *lb)
{
    size_t m;

    if (lb->n < 2 || lb->o.max_ejected_percent <= 0)
        return 0;
    if (lb->o.max_ejected_percent >= 100)
        return lb->n;
    m = lb->n * (size_t)lb->o.max_ejected_percent / 100;
    return m < 1 ? 1 : m;
}

/* Eject r unless that would exceed max_ejected_percent (then its streak is kept, so its next
 * failure tries again, e.g. once another ejection has expired). The multiplier grows by one per
 * ejection and, like Envoy's, shrinks by one per base_ejection_ms spent back in service, so a
 * replica that fails once a day is not held out for max_ejection_ms. */
static void try_eject(gw_lb_t *lb, replica_t *r, uint64_t now_ms)
{
    size_t ejected = 0;
    uint64_t base = (uint64_t)lb->o.base_ejection_ms, dur;

    for (size_t i = 0; i < lb->n; i++)
        if (is_ejected(&lb->r[i], now_ms))
            ejected++;
    if (ejected >= max_ejectable(lb))
        return;
    if (r->eject_mult > 0 && base > 0) {
        uint64_t back = now_ms - r->ejected_until_ms; /* not ejected, so until <= now */
        uint64_t decay = back / base;
        r->eject_mult = decay >= (uint64_t)r->eject_mult ? 0 : r->eject_mult - (int)decay;
    }
    if (r->eject_mult < INT_MAX)
        r->eject_mult++;
    dur = base * (uint64_t)r->eject_mult;
    if (dur > (uint64_t)lb->o.max_ejection_ms)
        dur = (uint64_t)lb->o.max_ejection_ms;
    r->ejected_until_ms = now_ms + dur;
    r->ejections++;
    r->fail_streak = 0;
}

/* Failures never make a replica look faster than it was (a refused connect answers in 0 ms and
 * must not attract traffic), but a slow failure such as a timeout raises the estimate. On a replica
 * with no sample yet only OK and timeouts are recorded, as any other failure's latency says nothing
 * about speed. A 429 is treated like a failure for latency and additionally sets a short preference
 * for the other replicas. Failures while already ejected (panic traffic) only refresh last_fail_ms. */
void gw_lb_end(gw_lb_t *lb, int i, gw_lb_outcome_t outcome, uint64_t latency_ms, uint64_t now_ms)
{
    replica_t *r = at(lb, i);
    double sample = (double)latency_ms;

    assert(r->outstanding > 0);
    if (r->outstanding > 0)
        r->outstanding--;
    if (outcome != GW_LB_OK && r->measured && sample < r->ewma_ms)
        sample = r->ewma_ms;
    if (outcome == GW_LB_OK || r->measured || outcome == GW_LB_FAIL_TIMEOUT)
        ewma_add(lb, r, sample, now_ms);

    switch (outcome) {
    case GW_LB_OK:
        r->fail_streak = 0;
        break;
    case GW_LB_OVERLOADED:
        r->overloaded_until_ms = now_ms + OVERLOAD_HOLD_MS;
        break;
    case GW_LB_FAIL_CONNECT:
    case GW_LB_FAIL_5XX:
    case GW_LB_FAIL_TIMEOUT:
        r->last_fail_ms = now_ms;
        if (lb->o.consecutive_failures == 0 || is_ejected(r, now_ms))
            break;
        if (r->fail_streak < INT_MAX)
            r->fail_streak++;
        if (r->fail_streak >= lb->o.consecutive_failures)
            try_eject(lb, r, now_ms);
        break;
    }
}

/* Replicas start healthy; each direction needs its own streak of consecutive results, so one
 * flaky check neither takes a replica down nor brings it back. Independent of passive ejection:
 * a passing /health probe does not lift an ejection earned by failing real requests. */
void gw_lb_health(gw_lb_t *lb, int i, bool ok, uint64_t now_ms)
{
    replica_t *r = at(lb, i);

    if (ok) {
        r->hc_fail_streak = 0;
        if (r->hc_ok_streak < INT_MAX)
            r->hc_ok_streak++;
        if (r->unhealthy && r->hc_ok_streak >= lb->o.healthy_threshold)
            r->unhealthy = false;
    } else {
        r->hc_ok_streak = 0;
        r->last_fail_ms = now_ms;
        if (r->hc_fail_streak < INT_MAX)
            r->hc_fail_streak++;
        if (!r->unhealthy && r->hc_fail_streak >= lb->o.unhealthy_threshold)
            r->unhealthy = true;
    }
}

bool gw_lb_available(const gw_lb_t *lb, int i, uint64_t now_ms)
{
    return is_available(cat(lb, i), now_ms);
}

size_t gw_lb_available_count(const gw_lb_t *lb, uint64_t now_ms)
{
    size_t k = 0;

    for (size_t i = 0; i < lb->n; i++)
        if (is_available(&lb->r[i], now_ms))
            k++;
    return k;
}

int gw_lb_outstanding(const gw_lb_t *lb, int i)
{
    return cat(lb, i)->outstanding;
}

/* 0 until the first sample. */
double gw_lb_ewma_ms(const gw_lb_t *lb, int i)
{
    const replica_t *r = cat(lb, i);
    return r->measured ? r->ewma_ms : 0.0;
}

int gw_lb_ejections(const gw_lb_t *lb, int i)
{
    return cat(lb, i)->ejections;
}

/* A retry may start while retries in flight stay within max(min_concurrent, ratio x active):
 * min_concurrent lets a quiet process still retry, the ratio caps amplification under load
 * (Envoy's retry budget). */
bool gw_lb_budget_take(gw_lb_budget_t *b)
{
    double cap = b->ratio * (b->active > 0 ? b->active : 0);

    if (cap < b->min_concurrent)
        cap = b->min_concurrent;
    if ((double)b->retries + 1 > cap)
        return false;
    b->retries++;
    return true;
}

void gw_lb_budget_put(gw_lb_budget_t *b)
{
    assert(b->retries > 0);
    if (b->retries > 0)
        b->retries--;
}

void gw_lb_backoff(gw_lb_t *lb, int i, uint64_t retry_after_ms, uint64_t now_ms)
{
    if (i < 0 || (size_t)i >= lb->n || retry_after_ms == 0)
        return;
    /* Bounded: a hostile or broken header must not park a replica for long. */
    if (retry_after_ms > 60000)
        retry_after_ms = 60000;
    lb->r[i].overloaded_until_ms = now_ms + retry_after_ms;
}
