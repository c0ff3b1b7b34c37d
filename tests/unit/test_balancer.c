#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/balancer.h"

#define NPICKS     10000
#define MAX_FLIGHT 4096
#define BASE       ((uint64_t)10000) /* default base_ejection_ms */

static gw_lb_t *mk(gw_lb_strategy_t s, const int *weights, size_t n, uint64_t seed)
{
    gw_lb_opts_t o;
    gw_lb_t *lb;

    gw_lb_opts_default(&o);
    o.strategy = s;
    lb = gw_lb_new(&o, weights, n, seed);
    cr_assert_not_null(lb);
    return lb;
}

static gw_lb_t *mk_opts(const gw_lb_opts_t *o, size_t n)
{
    gw_lb_t *lb = gw_lb_new(o, NULL, n, 1);
    cr_assert_not_null(lb);
    return lb;
}

/* Pick npicks times with no request ever in flight (pick only); counts[i] += picks of i. */
static void count_picks(gw_lb_t *lb, int npicks, uint64_t now, const uint8_t *exclude, int *counts)
{
    for (int k = 0; k < npicks; k++) {
        int i = gw_lb_pick(lb, now, exclude);
        cr_assert(i >= 0 && (size_t)i < gw_lb_size(lb), "pick %d returned %d", k, i);
        counts[i]++;
    }
}

/* n failures of one kind on replica i at time now (each a begun-and-ended attempt). */
static void fail(gw_lb_t *lb, int i, int n, gw_lb_outcome_t what, uint64_t now)
{
    for (int k = 0; k < n; k++) {
        gw_lb_begin(lb, i);
        gw_lb_end(lb, i, what, 5, now);
    }
}

static void ok(gw_lb_t *lb, int i, uint64_t latency, uint64_t now)
{
    gw_lb_begin(lb, i);
    gw_lb_end(lb, i, GW_LB_OK, latency, now);
}

typedef struct {
    int replica;
    uint64_t done_at;
} flight_t;

/* Discrete-time simulation, one tick per ms: attempts due are ended OK with their replica's
 * latency (plus an optional deterministic jitter of 0..jitter-1 ms), then per_ms new attempts are
 * picked and begun, until total attempts were issued and all have ended. */
static void simulate(gw_lb_t *lb, const uint64_t *latency, int total, int per_ms, int jitter, int *counts)
{
    static flight_t f[MAX_FLIGHT];
    size_t nf = 0;
    uint64_t now = 1;
    int issued = 0;

    while (issued < total || nf > 0) {
        for (size_t k = 0; k < nf;) {
            if (f[k].done_at <= now) {
                gw_lb_end(lb, f[k].replica, GW_LB_OK, latency[f[k].replica], now);
                f[k] = f[--nf];
            } else {
                k++;
            }
        }
        for (int j = 0; j < per_ms && issued < total; j++) {
            int i = gw_lb_pick(lb, now, NULL);
            cr_assert(i >= 0);
            gw_lb_begin(lb, i);
            counts[i]++;
            cr_assert_lt(nf, MAX_FLIGHT);
            f[nf].replica = i;
            f[nf].done_at = now + latency[i] + (jitter > 0 ? (uint64_t)(issued % jitter) : 0);
            nf++;
            issued++;
        }
        now++;
    }
    for (size_t i = 0; i < gw_lb_size(lb); i++)
        cr_assert_eq(gw_lb_outstanding(lb, (int)i), 0);
}

Test(balancer, opts_default, .timeout = 10)
{
    gw_lb_opts_t o;

    memset(&o, 0xff, sizeof(o));
    gw_lb_opts_default(&o);
    cr_assert_eq(o.strategy, GW_LB_P2C_EWMA);
    cr_assert_eq(o.consecutive_failures, 5);
    cr_assert_eq(o.base_ejection_ms, 10000);
    cr_assert_eq(o.max_ejection_ms, 300000);
    cr_assert_eq(o.max_ejected_percent, 50);
    cr_assert_eq(o.healthy_threshold, 2);
    cr_assert_eq(o.unhealthy_threshold, 3);
    cr_assert_float_eq(o.ewma_decay_ms, 10000.0, 1e-9);
}

Test(balancer, new_rejects_bad_arguments, .timeout = 10)
{
    gw_lb_opts_t o;
    int zero[] = {1, 0, 1}, neg[] = {-1};

    gw_lb_opts_default(&o);
    cr_assert_null(gw_lb_new(&o, NULL, 0, 1));
    cr_assert_null(gw_lb_new(&o, zero, 3, 1));
    cr_assert_null(gw_lb_new(&o, neg, 1, 1));
    gw_lb_t *lb = gw_lb_new(&o, NULL, 3, 1);
    cr_assert_not_null(lb);
    cr_assert_eq(gw_lb_size(lb), 3);
    cr_assert_eq(gw_lb_available_count(lb, 0), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert(gw_lb_available(lb, i, 0));
        cr_assert_eq(gw_lb_outstanding(lb, i), 0);
        cr_assert_eq(gw_lb_ejections(lb, i), 0);
        cr_assert_float_eq(gw_lb_ewma_ms(lb, i), 0.0, 1e-12);
    }
    gw_lb_free(lb);
    gw_lb_free(NULL);
}

Test(balancer, round_robin_exact_thirds, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);
    int counts[3] = {0};

    for (int k = 0; k < 9; k++)
        cr_assert_eq(gw_lb_pick(lb, 0, NULL), k % 3);
    count_picks(lb, 9999, 0, NULL, counts);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(counts[i], 3333, "replica %d got %d", i, counts[i]);
    /* 10,000 is not a multiple of 3: the rotation still differs by at most one. */
    memset(counts, 0, sizeof(counts));
    count_picks(lb, NPICKS, 0, NULL, counts);
    cr_assert_eq(counts[0] + counts[1] + counts[2], NPICKS);
    for (int i = 0; i < 3; i++)
        cr_assert(counts[i] == 3333 || counts[i] == 3334, "replica %d got %d", i, counts[i]);
    gw_lb_free(lb);
}

Test(balancer, weighted_exact_proportions, .timeout = 10)
{
    int w[] = {1, 2, 3};
    gw_lb_t *lb = mk(GW_LB_WEIGHTED, w, 3, 1);
    int counts[3] = {0}, prev = -1, run = 0;

    /* Whole cycles of sum(weights) = 6 picks: exact 1:2:3 in every single cycle, and smooth (nginx
     * property): the heaviest replica never gets its three picks back to back. */
    for (int cycle = 0; cycle < NPICKS / 6; cycle++) {
        int c[3] = {0};
        for (int k = 0; k < 6; k++) {
            int i = gw_lb_pick(lb, 0, NULL);
            cr_assert(i >= 0 && i < 3);
            c[i]++;
            counts[i]++;
            run = i == prev ? run + 1 : 1;
            prev = i;
            cr_assert_lt(run, 3, "replica %d picked %d times in a row", i, run);
        }
        cr_assert(c[0] == 1 && c[1] == 2 && c[2] == 3, "cycle %d: %d %d %d", cycle, c[0], c[1], c[2]);
    }
    cr_assert_eq(counts[0], 1666);
    cr_assert_eq(counts[1], 3332);
    cr_assert_eq(counts[2], 4998);
    gw_lb_free(lb);
}

Test(balancer, weighted_redistributes_around_exclusion, .timeout = 10)
{
    int w[] = {1, 2, 3};
    gw_lb_t *lb = mk(GW_LB_WEIGHTED, w, 3, 1);
    uint8_t ex[3] = {0, 0, 1};
    int counts[3] = {0};

    count_picks(lb, 3000, 0, ex, counts);
    cr_assert_eq(counts[2], 0);
    cr_assert_eq(counts[0], 1000);
    cr_assert_eq(counts[1], 2000);
    gw_lb_free(lb);
}

Test(balancer, least_outstanding_patterns, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_LEAST_OUTSTANDING, NULL, 3, 1);
    int counts[3] = {0}, a, b, c;

    /* Three concurrent attempts land on three different replicas. */
    a = gw_lb_pick(lb, 0, NULL);
    gw_lb_begin(lb, a);
    b = gw_lb_pick(lb, 0, NULL);
    gw_lb_begin(lb, b);
    c = gw_lb_pick(lb, 0, NULL);
    gw_lb_begin(lb, c);
    cr_assert(a != b && b != c && a != c);
    /* The one that finishes first is the only one with a free slot. */
    gw_lb_end(lb, b, GW_LB_OK, 10, 1);
    cr_assert_eq(gw_lb_pick(lb, 1, NULL), b);
    cr_assert_eq(gw_lb_pick(lb, 1, NULL), b);
    gw_lb_end(lb, a, GW_LB_OK, 10, 1);
    gw_lb_end(lb, c, GW_LB_OK, 10, 1);

    /* Replica 0 holds two long requests; short request-response pairs split evenly between the
     * other two by rotation, and none go to 0. */
    gw_lb_begin(lb, 0);
    gw_lb_begin(lb, 0);
    for (int k = 0; k < NPICKS; k++) {
        int i = gw_lb_pick(lb, 2, NULL);
        counts[i]++;
        gw_lb_begin(lb, i);
        gw_lb_end(lb, i, GW_LB_OK, 10, 2);
    }
    cr_assert_eq(counts[0], 0);
    cr_assert_eq(counts[1], NPICKS / 2);
    cr_assert_eq(counts[2], NPICKS / 2);

    /* Window of 6 in flight, oldest finishing first: always 2 per replica, exact thirds. */
    gw_lb_end(lb, 0, GW_LB_OK, 10, 3);
    gw_lb_end(lb, 0, GW_LB_OK, 10, 3);
    memset(counts, 0, sizeof(counts));
    {
        int win[6], head = 0, inflight = 0;
        for (int k = 0; k < 9999; k++) {
            int i;
            if (inflight == 6) {
                gw_lb_end(lb, win[head], GW_LB_OK, 10, 4);
                head = (head + 1) % 6;
                inflight--;
            }
            i = gw_lb_pick(lb, 4, NULL);
            gw_lb_begin(lb, i);
            counts[i]++;
            win[(head + inflight) % 6] = i;
            inflight++;
            for (int r = 0; r < 3; r++)
                cr_assert_leq(gw_lb_outstanding(lb, r), 2);
        }
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(counts[i], 3333, "replica %d got %d", i, counts[i]);
    gw_lb_free(lb);
}

/* With nothing in flight and no samples every cost is equal: p2c degenerates to a uniform random
 * choice. Binomial sd for 10,000 picks at p = 1/3 is ~47; allow +-250 (>5 sd) for every seed. */
Test(balancer, p2c_uniform_without_feedback, .timeout = 10)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 3, seed);
        int counts[3] = {0};
        count_picks(lb, NPICKS, 0, NULL, counts);
        for (int i = 0; i < 3; i++)
            cr_assert(abs(counts[i] - NPICKS / 3) <= 250, "seed %d replica %d got %d", (int)seed, i,
                      counts[i]);
        gw_lb_free(lb);
    }
}

/* Replica 2 answers in 100 ms, the others in 10 ms; 1, 3 or 5 requests per ms (~10-50 in flight).
 * Its cost at rest (100) exceeds a fast replica's until that one has 9 in flight, so it gets only
 * its start-up probe and the moments both fast ones are busy. Measured: 3-59 of 10,000 (< 0.6%).
 * Bound: < 2%. The example bound (15%) is far looser, and p2c on outstanding alone (no
 * latency term) already gets under it (5-6% measured), so only the tight bound proves the EWMA
 * matters. Several seeds and loads, so it is not one lucky sequence. */
Test(balancer, p2c_avoids_slow_replica, .timeout = 30)
{
    const uint64_t lat[3] = {10, 10, 100};

    for (uint64_t seed = 1; seed <= 5; seed++) {
        for (int per_ms = 1; per_ms <= 5; per_ms += 2) {
            gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 3, seed);
            int counts[3] = {0};
            simulate(lb, lat, NPICKS, per_ms, 0, counts);
            cr_assert_lt(counts[2], NPICKS * 2 / 100, "seed %d load %d: slow replica got %d", (int)seed,
                         per_ms, counts[2]);
            cr_assert_gt(counts[0], NPICKS * 35 / 100, "seed %d: %d", (int)seed, counts[0]);
            cr_assert_gt(counts[1], NPICKS * 35 / 100, "seed %d: %d", (int)seed, counts[1]);
            cr_assert_float_eq(gw_lb_ewma_ms(lb, 0), 10.0, 1e-9);
            cr_assert_float_eq(gw_lb_ewma_ms(lb, 2), 100.0, 1e-9);
            gw_lb_free(lb);
        }
    }
}

/* Equal replicas (10..14 ms, jittered) under feedback: the outstanding term pulls the split far
 * closer to even than chance. Measured: every share within 27 of 3333. Tolerance: +-100 (1 point),
 * ~4x the worst seen; pure random choice (sd ~47) already misses it for some seeds (3226 with
 * seed 5 in p2c_uniform_without_feedback), so this checks the feedback and not just the dice. */
Test(balancer, p2c_even_among_equals, .timeout = 30)
{
    const uint64_t lat[3] = {10, 10, 10};

    for (uint64_t seed = 1; seed <= 5; seed++) {
        for (int per_ms = 1; per_ms <= 5; per_ms += 2) {
            gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 3, seed);
            int counts[3] = {0};
            simulate(lb, lat, NPICKS, per_ms, 5, counts);
            for (int i = 0; i < 3; i++)
                cr_assert(abs(counts[i] - NPICKS / 3) <= 100, "seed %d load %d replica %d got %d", (int)seed,
                          per_ms, i, counts[i]);
            gw_lb_free(lb);
        }
    }
}

Test(balancer, p2c_probes_new_replica_one_at_a_time, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 2, 7);
    int i;

    /* Replica 0 is measured at 50 ms with 3 in flight (cost 200); replica 1 is new. */
    ok(lb, 0, 50, 1);
    for (int k = 0; k < 3; k++)
        gw_lb_begin(lb, 0);
    i = gw_lb_pick(lb, 1, NULL);
    cr_assert_eq(i, 1, "an idle unmeasured replica gets traffic");
    gw_lb_begin(lb, 1);
    for (int k = 0; k < 20; k++)
        cr_assert_eq(gw_lb_pick(lb, 1, NULL), 0, "only one probe in flight before the first sample");
    gw_lb_end(lb, 1, GW_LB_OK, 20, 2);
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 1), 20.0, 1e-9);
    cr_assert_eq(gw_lb_pick(lb, 2, NULL), 1); /* 20 x 1 < 50 x 4 */
    gw_lb_free(lb);
}

Test(balancer, ewma_decays_with_time, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 2, 1);
    double want;

    ok(lb, 0, 100, 1000);
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 0), 100.0, 1e-9);
    /* One time constant later, a 200 ms sample moves the estimate by 1 - 1/e. */
    ok(lb, 0, 200, 1000 + 10000);
    want = 100.0 * exp(-1.0) + 200.0 * (1.0 - exp(-1.0));
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 0), want, 1e-9);
    /* A short gap moves it only a little. */
    ok(lb, 0, 10, 11000 + 100);
    cr_assert_gt(gw_lb_ewma_ms(lb, 0), want - 3.0);
    cr_assert_lt(gw_lb_ewma_ms(lb, 0), want);
    /* A long quiet spell: the new sample dominates. */
    ok(lb, 0, 30, 1000000);
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 0), 30.0, 1e-6);
    gw_lb_free(lb);
}

Test(balancer, failures_never_make_a_replica_look_faster, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 2, 1);

    /* Unmeasured: a 0 ms connect failure or 5xx records nothing; a timeout records its latency. */
    gw_lb_begin(lb, 0);
    gw_lb_end(lb, 0, GW_LB_FAIL_CONNECT, 0, 1);
    gw_lb_begin(lb, 0);
    gw_lb_end(lb, 0, GW_LB_FAIL_5XX, 1, 1);
    gw_lb_begin(lb, 0);
    gw_lb_end(lb, 0, GW_LB_OVERLOADED, 1, 1);
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 0), 0.0, 1e-12);
    gw_lb_begin(lb, 0);
    gw_lb_end(lb, 0, GW_LB_FAIL_TIMEOUT, 30000, 2);
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 0), 30000.0, 1e-9);

    ok(lb, 1, 100, 1000);
    for (uint64_t t = 2000; t < 100000; t += 1000) {
        gw_lb_begin(lb, 1);
        gw_lb_end(lb, 1, GW_LB_FAIL_CONNECT, 0, t);
        gw_lb_begin(lb, 1);
        gw_lb_end(lb, 1, GW_LB_OVERLOADED, 1, t + 500);
    }
    cr_assert_float_eq(gw_lb_ewma_ms(lb, 1), 100.0, 1e-9);
    gw_lb_free(lb);
}

Test(balancer, exclude_mask_every_strategy, .timeout = 10)
{
    int w[] = {1, 2, 3};
    uint8_t ex1[3] = {0, 1, 0}, all[3] = {1, 1, 1};

    for (int s = GW_LB_ROUND_ROBIN; s <= GW_LB_P2C_EWMA; s++) {
        gw_lb_t *lb = mk((gw_lb_strategy_t)s, w, 3, 3);
        int counts[3] = {0};
        count_picks(lb, 3000, 0, ex1, counts);
        cr_assert_eq(counts[1], 0, "strategy %d", s);
        cr_assert_gt(counts[0], 0, "strategy %d", s);
        cr_assert_gt(counts[2], 0, "strategy %d", s);
        cr_assert_eq(gw_lb_pick(lb, 0, all), -1, "strategy %d", s);
        gw_lb_free(lb);
    }
}

Test(balancer, ejection_after_consecutive_failures, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);
    int counts[3] = {0};

    fail(lb, 0, 4, GW_LB_FAIL_5XX, 100);
    cr_assert(gw_lb_available(lb, 0, 100));
    fail(lb, 0, 1, GW_LB_FAIL_CONNECT, 100);
    cr_assert_not(gw_lb_available(lb, 0, 100));
    cr_assert_eq(gw_lb_ejections(lb, 0), 1);
    cr_assert_eq(gw_lb_available_count(lb, 100), 2);
    count_picks(lb, 3000, 100, NULL, counts);
    cr_assert_eq(counts[0], 0);
    cr_assert_eq(counts[1], 1500);
    /* Back on its own exactly when base_ejection_ms has passed. */
    cr_assert_not(gw_lb_available(lb, 0, 100 + BASE - 1));
    cr_assert(gw_lb_available(lb, 0, 100 + BASE));
    memset(counts, 0, sizeof(counts));
    count_picks(lb, 3000, 100 + BASE, NULL, counts);
    cr_assert_eq(counts[0], 1000);
    gw_lb_free(lb);
}

Test(balancer, failure_kinds_all_count, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);

    fail(lb, 1, 2, GW_LB_FAIL_TIMEOUT, 10);
    fail(lb, 1, 2, GW_LB_FAIL_CONNECT, 10);
    fail(lb, 1, 1, GW_LB_FAIL_5XX, 10);
    cr_assert_not(gw_lb_available(lb, 1, 10));
    gw_lb_free(lb);
}

Test(balancer, ejection_grows_with_repeats_and_caps, .timeout = 10)
{
    gw_lb_opts_t o;
    gw_lb_t *lb;
    uint64_t now = 1000;

    gw_lb_opts_default(&o);
    o.max_ejection_ms = 35000;
    lb = mk_opts(&o, 3);
    /* Fail again right after each return: 1x, 2x, 3x base, then the 35 s cap. */
    const uint64_t want[] = {BASE, 2 * BASE, 3 * BASE, 35000, 35000};
    for (int k = 0; k < 5; k++) {
        fail(lb, 2, 5, GW_LB_FAIL_5XX, now);
        cr_assert_eq(gw_lb_ejections(lb, 2), k + 1);
        cr_assert_not(gw_lb_available(lb, 2, now + want[k] - 1), "ejection %d", k + 1);
        cr_assert(gw_lb_available(lb, 2, now + want[k]), "ejection %d", k + 1);
        now += want[k];
    }
    gw_lb_free(lb);
}

Test(balancer, ejection_multiplier_decays_while_back, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);

    fail(lb, 0, 5, GW_LB_FAIL_5XX, 0);    /* 1x: back at 10 s */
    fail(lb, 0, 5, GW_LB_FAIL_5XX, BASE); /* 2x: back at 30 s */
    cr_assert_not(gw_lb_available(lb, 0, 3 * BASE - 1));
    /* 25 s in service (2 whole bases) undoes both steps: the next one is 1x again. */
    fail(lb, 0, 5, GW_LB_FAIL_5XX, 3 * BASE + 25000);
    cr_assert_eq(gw_lb_ejections(lb, 0), 3);
    cr_assert(gw_lb_available(lb, 0, 3 * BASE + 25000 + BASE));
    /* Exactly one base back in service undoes that single step: 1x again, not 2x. */
    fail(lb, 0, 5, GW_LB_FAIL_5XX, 3 * BASE + 25000 + 2 * BASE);
    cr_assert_not(gw_lb_available(lb, 0, 3 * BASE + 25000 + 2 * BASE + BASE - 1));
    cr_assert(gw_lb_available(lb, 0, 3 * BASE + 25000 + 2 * BASE + BASE));
    gw_lb_free(lb);
}

Test(balancer, ok_resets_streak, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);

    for (int k = 0; k < 10; k++) {
        fail(lb, 0, 4, GW_LB_FAIL_5XX, 10);
        ok(lb, 0, 5, 10);
    }
    cr_assert(gw_lb_available(lb, 0, 10));
    cr_assert_eq(gw_lb_ejections(lb, 0), 0);
    fail(lb, 0, 5, GW_LB_FAIL_5XX, 10);
    cr_assert_not(gw_lb_available(lb, 0, 10));
    gw_lb_free(lb);
}

Test(balancer, overloaded_neither_ejects_nor_resets, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);

    fail(lb, 0, 100, GW_LB_OVERLOADED, 10);
    cr_assert(gw_lb_available(lb, 0, 10));
    cr_assert_eq(gw_lb_ejections(lb, 0), 0);
    /* 4 failures, 429s in between, one more failure: the streak survived the 429s. */
    fail(lb, 1, 4, GW_LB_FAIL_5XX, 10);
    fail(lb, 1, 10, GW_LB_OVERLOADED, 10);
    cr_assert(gw_lb_available(lb, 1, 10));
    fail(lb, 1, 1, GW_LB_FAIL_5XX, 10);
    cr_assert_not(gw_lb_available(lb, 1, 10));
    gw_lb_free(lb);
}

Test(balancer, overloaded_is_avoided_for_a_moment, .timeout = 10)
{
    for (int s = GW_LB_ROUND_ROBIN; s <= GW_LB_P2C_EWMA; s++) {
        gw_lb_t *lb = mk((gw_lb_strategy_t)s, NULL, 3, 5);
        int counts[3] = {0};

        fail(lb, 0, 1, GW_LB_OVERLOADED, 1000);
        count_picks(lb, 300, 1999, NULL, counts);
        cr_assert_eq(counts[0], 0, "strategy %d", s);
        /* Still available, and still chosen when it is the only choice left. */
        cr_assert(gw_lb_available(lb, 0, 1999));
        uint8_t ex[3] = {0, 1, 1};
        cr_assert_eq(gw_lb_pick(lb, 1999, ex), 0, "strategy %d", s);
        /* Everyone overloaded: picks go on. */
        fail(lb, 1, 1, GW_LB_OVERLOADED, 1000);
        fail(lb, 2, 1, GW_LB_OVERLOADED, 1000);
        cr_assert_geq(gw_lb_pick(lb, 1500, NULL), 0, "strategy %d", s);
        /* One second later it is a normal replica again. */
        memset(counts, 0, sizeof(counts));
        count_picks(lb, 300, 2000, NULL, counts);
        cr_assert_gt(counts[0], 0, "strategy %d", s);
        gw_lb_free(lb);
    }
}

Test(balancer, max_ejected_percent, .timeout = 10)
{
    gw_lb_opts_t o;
    gw_lb_t *lb;

    /* 4 replicas at 50%: two may be out at once. */
    gw_lb_opts_default(&o);
    lb = mk_opts(&o, 4);
    fail(lb, 0, 5, GW_LB_FAIL_5XX, 0);
    fail(lb, 1, 5, GW_LB_FAIL_5XX, 1000);
    fail(lb, 2, 20, GW_LB_FAIL_5XX, 2000);
    cr_assert_not(gw_lb_available(lb, 0, 2000));
    cr_assert_not(gw_lb_available(lb, 1, 2000));
    cr_assert(gw_lb_available(lb, 2, 2000));
    cr_assert_eq(gw_lb_ejections(lb, 2), 0);
    cr_assert_eq(gw_lb_available_count(lb, 2000), 2);
    /* Once replica 0's ejection expires, replica 2's next failure ejects it (its streak was kept). */
    fail(lb, 2, 1, GW_LB_FAIL_5XX, BASE);
    cr_assert(gw_lb_available(lb, 0, BASE));
    cr_assert_not(gw_lb_available(lb, 2, BASE));
    cr_assert_eq(gw_lb_available_count(lb, BASE), 2);
    gw_lb_free(lb);

    /* 3 replicas at 10%: floor(0.3) = 0, but one may always be ejected when n >= 2. */
    o.max_ejected_percent = 10;
    lb = mk_opts(&o, 3);
    fail(lb, 0, 5, GW_LB_FAIL_5XX, 0);
    fail(lb, 1, 5, GW_LB_FAIL_5XX, 0);
    cr_assert_not(gw_lb_available(lb, 0, 0));
    cr_assert(gw_lb_available(lb, 1, 0));
    gw_lb_free(lb);

    /* 0% disables ejection. */
    o.max_ejected_percent = 0;
    lb = mk_opts(&o, 3);
    fail(lb, 0, 50, GW_LB_FAIL_5XX, 0);
    cr_assert(gw_lb_available(lb, 0, 0));
    gw_lb_free(lb);

    /* A single replica is never ejected: that would only mean panic mode. */
    o.max_ejected_percent = 100;
    lb = mk_opts(&o, 1);
    fail(lb, 0, 50, GW_LB_FAIL_5XX, 0);
    cr_assert(gw_lb_available(lb, 0, 0));
    gw_lb_free(lb);

    /* 100% lets all go (and then panic mode answers). */
    lb = mk_opts(&o, 3);
    for (int i = 0; i < 3; i++)
        fail(lb, i, 5, GW_LB_FAIL_5XX, 0);
    cr_assert_eq(gw_lb_available_count(lb, 0), 0);
    gw_lb_free(lb);
}

Test(balancer, consecutive_failures_zero_disables, .timeout = 10)
{
    gw_lb_opts_t o;
    gw_lb_t *lb;

    gw_lb_opts_default(&o);
    o.consecutive_failures = 0;
    lb = mk_opts(&o, 3);
    fail(lb, 0, 1000, GW_LB_FAIL_CONNECT, 0);
    cr_assert(gw_lb_available(lb, 0, 0));
    cr_assert_eq(gw_lb_ejections(lb, 0), 0);
    gw_lb_free(lb);
}

Test(balancer, panic_mode_when_all_down, .timeout = 10)
{
    gw_lb_opts_t o;
    gw_lb_t *lb;
    uint8_t ex[3] = {0, 0, 0};

    gw_lb_opts_default(&o);
    o.max_ejected_percent = 100;
    for (int s = GW_LB_ROUND_ROBIN; s <= GW_LB_P2C_EWMA; s++) {
        o.strategy = (gw_lb_strategy_t)s;
        lb = mk_opts(&o, 3);
        fail(lb, 1, 5, GW_LB_FAIL_5XX, 100); /* failed first: least recently */
        fail(lb, 0, 5, GW_LB_FAIL_5XX, 200);
        fail(lb, 2, 5, GW_LB_FAIL_5XX, 300);
        cr_assert_eq(gw_lb_available_count(lb, 300), 0);
        cr_assert_eq(gw_lb_pick(lb, 300, NULL), 1, "strategy %d", s);
        ex[1] = 1;
        cr_assert_eq(gw_lb_pick(lb, 300, ex), 0, "strategy %d", s);
        ex[0] = 1;
        cr_assert_eq(gw_lb_pick(lb, 300, ex), 2, "strategy %d", s);
        ex[2] = 1;
        cr_assert_eq(gw_lb_pick(lb, 300, ex), -1, "strategy %d", s);
        memset(ex, 0, sizeof(ex));
        /* The panic pick fails again: the next panic pick moves on. */
        gw_lb_begin(lb, 1);
        gw_lb_end(lb, 1, GW_LB_FAIL_CONNECT, 1, 400);
        cr_assert_eq(gw_lb_pick(lb, 400, NULL), 0, "strategy %d", s);
        /* Panic traffic failing does not extend the ejection. */
        cr_assert_eq(gw_lb_ejections(lb, 1), 1);
        cr_assert(gw_lb_available(lb, 1, 100 + BASE));
        gw_lb_free(lb);
    }
}

Test(balancer, no_panic_when_healthy_ones_are_only_excluded, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 3, 1);
    uint8_t ex[3] = {1, 0, 0};

    fail(lb, 1, 5, GW_LB_FAIL_5XX, 0); /* 1 of 3 at 50%: only one may go */
    gw_lb_health(lb, 2, false, 0);
    gw_lb_health(lb, 2, false, 0);
    gw_lb_health(lb, 2, false, 0);
    cr_assert_eq(gw_lb_available_count(lb, 0), 1);
    cr_assert_eq(gw_lb_pick(lb, 0, NULL), 0);
    /* Replica 0 was already tried: a retry must not go to a down replica. */
    cr_assert_eq(gw_lb_pick(lb, 0, ex), -1);
    gw_lb_free(lb);
}

Test(balancer, active_health_thresholds, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);
    int counts[3] = {0};

    /* Down after 3 consecutive failed checks; a success in between starts over. */
    gw_lb_health(lb, 0, false, 1);
    gw_lb_health(lb, 0, false, 2);
    gw_lb_health(lb, 0, true, 3);
    gw_lb_health(lb, 0, false, 4);
    gw_lb_health(lb, 0, false, 5);
    cr_assert(gw_lb_available(lb, 0, 5));
    gw_lb_health(lb, 0, false, 6);
    cr_assert_not(gw_lb_available(lb, 0, 6));
    /* Stays down with time alone (unlike an ejection). */
    cr_assert_not(gw_lb_available(lb, 0, 1000000));
    count_picks(lb, 300, 7, NULL, counts);
    cr_assert_eq(counts[0], 0);
    /* Up after 2 consecutive successes; a failure in between starts over. */
    gw_lb_health(lb, 0, true, 7);
    gw_lb_health(lb, 0, false, 8);
    gw_lb_health(lb, 0, true, 9);
    cr_assert_not(gw_lb_available(lb, 0, 9));
    gw_lb_health(lb, 0, true, 10);
    cr_assert(gw_lb_available(lb, 0, 10));
    /* Successes while healthy change nothing; unhealthy does not count as ejected. */
    gw_lb_health(lb, 0, true, 11);
    cr_assert(gw_lb_available(lb, 0, 11));
    cr_assert_eq(gw_lb_ejections(lb, 0), 0);
    gw_lb_free(lb);
}

Test(balancer, health_and_ejection_are_independent, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_ROUND_ROBIN, NULL, 3, 1);

    fail(lb, 0, 5, GW_LB_FAIL_5XX, 0);
    gw_lb_health(lb, 0, true, 1);
    gw_lb_health(lb, 0, true, 2);
    cr_assert_not(gw_lb_available(lb, 0, 2), "a passing probe does not lift an ejection");
    cr_assert(gw_lb_available(lb, 0, BASE));
    gw_lb_free(lb);
}

Test(balancer, panic_with_all_unhealthy, .timeout = 10)
{
    gw_lb_t *lb = mk(GW_LB_LEAST_OUTSTANDING, NULL, 2, 1);

    for (int k = 0; k < 3; k++) {
        gw_lb_health(lb, 1, false, 10 + (uint64_t)k);
        gw_lb_health(lb, 0, false, 20 + (uint64_t)k);
    }
    cr_assert_eq(gw_lb_available_count(lb, 30), 0);
    cr_assert_eq(gw_lb_pick(lb, 30, NULL), 1);
    gw_lb_free(lb);
}

Test(balancer, retry_budget_min_concurrent, .timeout = 10)
{
    gw_lb_budget_t b = {.ratio = 0.2, .min_concurrent = 3, .active = 5, .retries = 0};

    /* 0.2 x 5 = 1 < 3: the floor applies. */
    cr_assert(gw_lb_budget_take(&b));
    cr_assert(gw_lb_budget_take(&b));
    cr_assert(gw_lb_budget_take(&b));
    cr_assert_not(gw_lb_budget_take(&b));
    cr_assert_eq(b.retries, 3);
    gw_lb_budget_put(&b);
    cr_assert_eq(b.retries, 2);
    cr_assert(gw_lb_budget_take(&b));
    cr_assert_not(gw_lb_budget_take(&b));
    for (int k = 0; k < 3; k++)
        gw_lb_budget_put(&b);
    cr_assert_eq(b.retries, 0);

    /* Nothing in flight at all still allows min_concurrent. */
    b.active = 0;
    for (int k = 0; k < 3; k++)
        cr_assert(gw_lb_budget_take(&b));
    cr_assert_not(gw_lb_budget_take(&b));
}

Test(balancer, retry_budget_ratio, .timeout = 10)
{
    gw_lb_budget_t b = {.ratio = 0.2, .min_concurrent = 3, .active = 100, .retries = 0};
    int taken = 0;

    while (gw_lb_budget_take(&b))
        taken++;
    cr_assert_eq(taken, 20);
    cr_assert_eq(b.retries, 20);
    /* Load drops: no new retries until in-flight ones come back under the new cap. */
    b.active = 50;
    for (int k = 0; k < 10; k++) {
        cr_assert_not(gw_lb_budget_take(&b));
        gw_lb_budget_put(&b);
    }
    cr_assert_eq(b.retries, 10);
    gw_lb_budget_put(&b);
    cr_assert_eq(b.retries, 9);
    cr_assert(gw_lb_budget_take(&b));
    cr_assert_not(gw_lb_budget_take(&b));
    /* Balanced take/put over a long run leaves nothing behind. */
    while (b.retries > 0)
        gw_lb_budget_put(&b);
    for (int k = 0; k < 1000; k++) {
        bool got = gw_lb_budget_take(&b);
        cr_assert(got);
        gw_lb_budget_put(&b);
    }
    cr_assert_eq(b.retries, 0);
}

static void record_run(uint64_t seed, int *out, int n)
{
    gw_lb_t *lb = mk(GW_LB_P2C_EWMA, NULL, 5, seed);

    for (int k = 0; k < n; k++) {
        int i = gw_lb_pick(lb, (uint64_t)k, NULL);
        out[k] = i;
        gw_lb_begin(lb, i);
        if (k % 3 == 0)
            gw_lb_end(lb, i, k % 7 ? GW_LB_OK : GW_LB_FAIL_5XX, 10 + (uint64_t)i * 7 + (uint64_t)(k % 5),
                      (uint64_t)k);
    }
    gw_lb_free(lb);
}

Test(balancer, deterministic_with_seed, .timeout = 10)
{
    static int a[2000], b[2000], c[2000];

    record_run(42, a, 2000);
    record_run(42, b, 2000);
    record_run(43, c, 2000);
    cr_assert_arr_eq(a, b, sizeof(a));
    cr_assert(memcmp(a, c, sizeof(a)) != 0, "a different seed gives a different sequence");
}

Test(balancer, retry_after_sets_the_avoidance_window, .timeout = 10)
{
    gw_lb_opts_t o;
    gw_lb_opts_default(&o);
    o.strategy = GW_LB_ROUND_ROBIN;
    gw_lb_t *lb = gw_lb_new(&o, NULL, 2, 7);
    cr_assert_not_null(lb);
    /* Replica 0 answers 429 with Retry-After: 7 at t=1000. */
    gw_lb_begin(lb, 0);
    gw_lb_end(lb, 0, GW_LB_OVERLOADED, 5, 1000);
    gw_lb_backoff(lb, 0, 7000, 1000);
    /* At t=5000 (past the default 1 s hold, inside the 7 s one) every pick avoids replica 0. */
    for (int k = 0; k < 20; k++)
        cr_assert_eq(gw_lb_pick(lb, 5000, NULL), 1, "pick %d at t=5000 avoids the 429 replica", k);
    /* After the window both are used again. */
    bool saw0 = false;
    for (int k = 0; k < 4; k++)
        saw0 = saw0 || gw_lb_pick(lb, 8100, NULL) == 0;
    cr_assert(saw0, "replica 0 is picked again after Retry-After");
    /* An hour-long Retry-After is capped at 60 s: avoided at +59 s, used again at +61 s. */
    gw_lb_backoff(lb, 1, 3600000, 9000);
    for (int k = 0; k < 4; k++)
        cr_assert_eq(gw_lb_pick(lb, 9000 + 59000, NULL), 0, "replica 1 avoided inside the capped window");
    bool saw1 = false;
    for (int k = 0; k < 4; k++)
        saw1 = saw1 || gw_lb_pick(lb, 9000 + 61000, NULL) == 1;
    cr_assert(saw1, "replica 1 is used again once the 60 s cap has passed");
    gw_lb_free(lb);
}
