/* gw_rl: which buckets a call must find room in (the plan, INFERENCE_TABLES.md §7.2 rules 2-5),
 * the bucket math (refill, cap, wait) and the all-or-nothing decision, and the shared-memory
 * store holding one limit across forked processes. */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gateway/config.h"
#include "gateway/ratelimit.h"

static gw_endpoint_cfg_t ep_with(gw_rl_rule_t *rules, size_t n)
{
    gw_endpoint_cfg_t ep = {0};
    ep.name = "chat";
    ep.rate_limits = rules;
    ep.n_rate_limits = n;
    return ep;
}

#define RULE(k, p, c, t, sc) {.key = (k), .principal = (p), .calls = (c), .tokens = (t), .period_ms = 60000, .scope = (sc)}

static gw_rl_rule_t rules[] = {
    RULE(GW_RL_ENDPOINT, NULL, 100, 0, "endpoint"),
    RULE(GW_RL_USER, NULL, 5, 1000, "user_default"),
    RULE(GW_RL_USER, "alice", 10, 0, "user:alice"),
    RULE(GW_RL_USER_GROUP, "eng", 7, 0, "group:eng"),
    RULE(GW_RL_USER_GROUP, "ml", 3, 500, "group:ml"),
    RULE(GW_RL_SERVICE_PRINCIPAL, "bot-1", 50, 0, "service_principal:bot-1"),
};

Test(ratelimit, plan_anonymous_meets_only_the_endpoint_rule, .timeout = 5)
{
    gw_endpoint_cfg_t ep = ep_with(rules, 6);
    gw_rl_plan_t p;
    gw_rl_plan(&ep, NULL, NULL, 0, &p);
    cr_assert_eq(p.nb, 1);
    cr_assert_str_eq(p.b[0].scope, "endpoint");
}

Test(ratelimit, plan_explicit_user_beats_groups_and_default, .timeout = 5)
{
    gw_endpoint_cfg_t ep = ep_with(rules, 6);
    const char *g[] = {"eng"};
    gw_rl_plan_t p;
    gw_rl_plan(&ep, "alice", g, 1, &p);
    cr_assert_eq(p.nb, 2);
    cr_assert_str_eq(p.b[1].scope, "user:alice");
    gw_rl_plan(&ep, "bot-1", NULL, 0, &p);
    cr_assert_str_eq(p.b[1].scope, "service_principal:bot-1");
}

Test(ratelimit, plan_groups_form_one_set_per_dimension, .timeout = 5)
{
    gw_endpoint_cfg_t ep = ep_with(rules, 6);
    const char *g[] = {"ml", "eng"};
    gw_rl_plan_t p;
    gw_rl_plan(&ep, "dave", g, 2, &p);
    /* endpoint calls | eng calls, ml calls (one set) | ml tokens */
    cr_assert_eq(p.ns, 3);
    cr_assert_eq(p.nb, 4);
    cr_assert_eq(p.b[1].set, p.b[2].set);
    cr_assert_str_eq(p.b[1].scope, "group:eng"); /* config order */
    cr_assert_str_eq(p.b[2].scope, "group:ml");
    cr_assert(p.b[3].tokens);
}

Test(ratelimit, plan_default_is_per_user, .timeout = 5)
{
    gw_endpoint_cfg_t ep = ep_with(rules, 6);
    gw_rl_plan_t a, b;
    gw_rl_plan(&ep, "bob", NULL, 0, &a);
    gw_rl_plan(&ep, "carl", NULL, 0, &b);
    cr_assert_eq(a.nb, 3); /* endpoint + default calls + default tokens */
    cr_assert_str_eq(a.b[1].scope, "user_default");
    cr_assert_neq(a.b[1].hash, b.b[1].hash, "each user has their own default bucket");
    cr_assert_eq(a.b[0].hash, b.b[0].hash, "one endpoint bucket for everyone");
    const char *g[] = {"eng"};
    gw_rl_plan(&ep, "bob", g, 1, &a);
    gw_rl_plan(&ep, "carl", g, 1, &b);
    cr_assert_eq(a.b[1].hash, b.b[1].hash, "a group bucket is shared by its members");
}

Test(ratelimit, bucket_math_refill_cap_wait, .timeout = 5)
{
    gw_rl_bucket_t calls = {.capacity = 60, .period_ms = 60000};
    gw_rl_state_t s = {.t_ms = -1};
    gw_rl_refill(&s, &calls, 1000);
    cr_assert_float_eq(s.level, 60, 1e-9, "a new bucket starts full");
    s.level = 0;
    cr_assert_not(gw_rl_has_room(&s, &calls));
    cr_assert_eq(gw_rl_wait_ms(&s, &calls), 1000, "one call per second");
    gw_rl_refill(&s, &calls, 1500);
    cr_assert_float_eq(s.level, 0.5, 1e-9);
    gw_rl_refill(&s, &calls, 1000000);
    cr_assert_float_eq(s.level, 60, 1e-9, "capped at the limit");
    gw_rl_bucket_t tok = {.capacity = 600, .period_ms = 60000, .tokens = true};
    gw_rl_state_t t = {.level = 0, .t_ms = 0};
    cr_assert(gw_rl_has_room(&t, &tok), "tokens need only a non-negative bucket");
    t.level = -30;
    cr_assert_not(gw_rl_has_room(&t, &tok));
    cr_assert_eq(gw_rl_wait_ms(&t, &tok), 3000, "30 tokens at 10 per second");
}

Test(ratelimit, decide_is_all_or_nothing_and_any_group_suffices, .timeout = 5)
{
    gw_endpoint_cfg_t ep = ep_with(rules, 6);
    const char *g[] = {"ml", "eng"};
    gw_rl_plan_t p;
    gw_rl_plan(&ep, "dave", g, 2, &p);
    gw_rl_state_t st[4] = {{50, 0}, {0.5, 0}, {2, 0}, {10, 0}};
    gw_rl_verdict_t v;
    gw_rl_decide(&p, st, &v);
    cr_assert(v.ok, "eng is empty but ml has room");
    cr_assert_eq(v.chosen[1], 2, "the group with room is charged");
    cr_assert_float_eq(st[2].level, 1, 1e-9);
    cr_assert_float_eq(st[1].level, 0.5, 1e-9);
    cr_assert_float_eq(st[0].level, 49, 1e-9);
    cr_assert_float_eq(st[3].level, 10, 1e-9, "tokens are debited at the end, not here");
    gw_rl_state_t full[4] = {{50, 0}, {0.5, 0}, {0.2, 0}, {10, 0}};
    gw_rl_decide(&p, full, &v);
    cr_assert_not(v.ok, "over every group: refused");
    cr_assert_str_eq(p.b[v.refused].scope, "group:eng");
    cr_assert_float_eq(full[0].level, 50, 1e-9, "a refusal takes nothing");
    /* Retry: the group that refills first (eng: 0.5 missing x 60000/7 ms; ml: 0.8 x 60000/3). */
    cr_assert_eq(v.retry_ms, 4286);
}

Test(ratelimit, shared_memory_holds_across_processes, .timeout = 20)
{
    gw_rl_shm_t *m = gw_rl_shm_new(1024);
    cr_assert_not_null(m);
    gw_rl_rule_t r[] = {{.key = GW_RL_ENDPOINT, .calls = 100, .period_ms = 3600000, .scope = "endpoint"}};
    gw_endpoint_cfg_t ep = ep_with(r, 1);
    gw_rl_plan_t p;
    gw_rl_plan(&ep, NULL, NULL, 0, &p);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            int ok = 0;
            for (int i = 0; i < 50; i++) {
                gw_rl_verdict_t v;
                gw_rl_shm_admit(m, &p, &v);
                ok += v.ok;
            }
            _exit(ok);
        }
    }
    int total = 0;
    for (int k = 0; k < 4; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        total += WEXITSTATUS(st);
    }
    cr_assert_eq(total, 100, "4 processes x 50 tries share one bucket of 100: admitted %d", total);
    gw_rl_shm_debit(m, &p.b[0], 5);
    gw_rl_verdict_t v;
    gw_rl_shm_admit(m, &p, &v);
    cr_assert_not(v.ok);
    gw_rl_shm_free(m);
}
