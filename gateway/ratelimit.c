#include "gateway/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* ---------------- plan ---------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "", (s ? strlen(s) : 0) + 1); /* the NUL separates the parts */
}

/* Identity of one bucket; the limit and period are part of it, so a changed rule starts afresh. */
static uint64_t bucket_hash(const gw_endpoint_cfg_t *ep, const gw_rl_rule_t *r, const char *principal, bool tokens)
{
    uint64_t h = 1469598103934665603ULL;
    h = fnv_str(h, ep->name);
    h = fnv(h, &r->key, sizeof(r->key));
    h = fnv_str(h, principal);
    int64_t parts[3] = {tokens, tokens ? r->tokens : r->calls, r->period_ms};
    h = fnv(h, parts, sizeof(parts));
    return h ? h : 1; /* 0 marks an empty shared-memory slot */
}

static void add(gw_rl_plan_t *p, const gw_endpoint_cfg_t *ep, const gw_rl_rule_t *r, const char *principal,
                bool tokens, int set)
{
    if (p->nb == GW_RL_MAX_BUCKETS)
        return;
    gw_rl_bucket_t *b = &p->b[p->nb++];
    b->hash = bucket_hash(ep, r, principal, tokens);
    b->capacity = (double)(tokens ? r->tokens : r->calls);
    b->period_ms = r->period_ms > 0 ? r->period_ms : 1;
    b->tokens = tokens;
    b->scope = r->scope;
    b->set = set;
}

/* Each dimension of the rule is its own set of one bucket. */
static void add_rule(gw_rl_plan_t *p, const gw_endpoint_cfg_t *ep, const gw_rl_rule_t *r, const char *principal)
{
    if (r->calls)
        add(p, ep, r, principal, false, p->ns++);
    if (r->tokens)
        add(p, ep, r, principal, true, p->ns++);
}

static bool in(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

void gw_rl_plan(const gw_endpoint_cfg_t *ep, const char *requester, const char *const *groups, size_t n_groups,
                gw_rl_plan_t *out)
{
    out->nb = out->ns = 0;
    const gw_rl_rule_t *rules = ep->rate_limits;
    size_t n = ep->n_rate_limits;
    for (size_t i = 0; i < n; i++)
        if (rules[i].key == GW_RL_ENDPOINT)
            add_rule(out, ep, &rules[i], NULL);
    if (!requester)
        return;
    bool explicit_rule = false;
    for (size_t i = 0; i < n; i++)
        if ((rules[i].key == GW_RL_USER || rules[i].key == GW_RL_SERVICE_PRINCIPAL) && rules[i].principal &&
            strcmp(rules[i].principal, requester) == 0) {
            add_rule(out, ep, &rules[i], requester);
            explicit_rule = true;
        }
    if (explicit_rule)
        return;
    /* Group rules: one set per (dimension, period) over every group rule of the caller. */
    bool group_rule = false;
    for (int tokens = 0; tokens < 2; tokens++)
        for (size_t i = 0; i < n; i++) {
            const gw_rl_rule_t *r = &rules[i];
            if (r->key != GW_RL_USER_GROUP || !in(groups, n_groups, r->principal) || !(tokens ? r->tokens : r->calls))
                continue;
            group_rule = true;
            bool seen = false; /* an earlier rule of the same dimension and period opened the set */
            for (size_t k = 0; k < i && !seen; k++)
                seen = rules[k].key == GW_RL_USER_GROUP && in(groups, n_groups, rules[k].principal) &&
                       (tokens ? rules[k].tokens : rules[k].calls) && rules[k].period_ms == r->period_ms;
            if (seen)
                continue;
            int set = out->ns++;
            for (size_t k = i; k < n; k++) {
                const gw_rl_rule_t *q = &rules[k];
                if (q->key == GW_RL_USER_GROUP && in(groups, n_groups, q->principal) &&
                    (tokens ? q->tokens : q->calls) && q->period_ms == r->period_ms)
                    add(out, ep, q, NULL, tokens, set);
            }
        }
    if (group_rule)
        return;
    for (size_t i = 0; i < n; i++)
        if (rules[i].key == GW_RL_USER && !rules[i].principal)
            add_rule(out, ep, &rules[i], requester);
}

/* ---------------- bucket math ---------------- */

void gw_rl_refill(gw_rl_state_t *s, const gw_rl_bucket_t *b, int64_t now_ms)
{
    if (s->t_ms < 0) {
        s->level = b->capacity;
        s->t_ms = now_ms;
        return;
    }
    if (now_ms > s->t_ms) {
        s->level += (double)(now_ms - s->t_ms) * b->capacity / (double)b->period_ms;
        if (s->level > b->capacity)
            s->level = b->capacity;
        s->t_ms = now_ms;
    }
}

bool gw_rl_has_room(const gw_rl_state_t *s, const gw_rl_bucket_t *b)
{
    return s->level >= (b->tokens ? 0.0 : 1.0);
}

int64_t gw_rl_wait_ms(const gw_rl_state_t *s, const gw_rl_bucket_t *b)
{
    double missing = (b->tokens ? 0.0 : 1.0) - s->level;
    if (missing <= 0)
        return 0;
    return (int64_t)ceil(missing * (double)b->period_ms / b->capacity);
}

void gw_rl_decide(const gw_rl_plan_t *p, gw_rl_state_t *st, gw_rl_verdict_t *v)
{
    v->ok = true;
    v->refused = -1;
    v->retry_ms = 0;
    for (int i = 0; i < p->nb;) {
        int set = p->b[i].set, pick = -1;
        int64_t wait = INT64_MAX;
        int first = i;
        for (; i < p->nb && p->b[i].set == set; i++) {
            if (pick < 0 && gw_rl_has_room(&st[i], &p->b[i]))
                pick = i;
            int64_t w = gw_rl_wait_ms(&st[i], &p->b[i]);
            if (w < wait)
                wait = w;
        }
        v->chosen[set] = pick;
        if (pick >= 0)
            continue;
        if (v->ok)
            v->refused = first;
        v->ok = false;
        if (wait > v->retry_ms)
            v->retry_ms = wait;
    }
    if (!v->ok)
        return;
    for (int s = 0; s < p->ns; s++)
        if (!p->b[v->chosen[s]].tokens)
            st[v->chosen[s]].level -= 1.0;
}

/* ---------------- shared memory ---------------- */

/* One table for every process of this instance: a robust process-shared mutex (a worker that dies
 * holding it does not wedge the others: the next locker gets EOWNERDEAD and takes over; the
 * critical section only updates plain numbers, so the state stays usable) and open-addressing
 * slots keyed by the bucket hash. When the probe window is full the least recently used slot is
 * reused: its bucket starts full again, which only ever errs towards admitting. */
#define PROBE 32

struct slot {
    uint64_t hash; /** 0 = empty */
    gw_rl_state_t st;
};

struct gw_rl_shm {
    pthread_mutex_t mu;
    size_t nslots, map_bytes;
    struct slot slots[];
};

int64_t gw_rl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

gw_rl_shm_t *gw_rl_shm_new(size_t slots)
{
    size_t bytes = sizeof(gw_rl_shm_t) + slots * sizeof(struct slot);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    gw_rl_shm_t *m = p; /* anonymous mappings are zero-filled: every slot empty */
    m->nslots = slots;
    m->map_bytes = bytes;
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m->mu, &at);
    pthread_mutexattr_destroy(&at);
    return m;
}

void gw_rl_shm_free(gw_rl_shm_t *m)
{
    if (m)
        munmap(m, m->map_bytes);
}

static void lock(gw_rl_shm_t *m)
{
    if (pthread_mutex_lock(&m->mu) == EOWNERDEAD)
        pthread_mutex_consistent(&m->mu);
}

static gw_rl_state_t *find(gw_rl_shm_t *m, uint64_t hash)
{
    size_t at = (size_t)(hash % m->nslots), victim = at;
    for (size_t k = 0; k < PROBE; k++) {
        struct slot *s = &m->slots[(at + k) % m->nslots];
        if (s->hash == hash)
            return &s->st;
        if (s->hash == 0) {
            victim = (at + k) % m->nslots;
            break;
        }
        if (s->st.t_ms < m->slots[victim].st.t_ms)
            victim = (at + k) % m->nslots;
    }
    struct slot *s = &m->slots[victim];
    s->hash = hash;
    s->st = (gw_rl_state_t){.level = 0, .t_ms = -1};
    return &s->st;
}

void gw_rl_shm_admit(gw_rl_shm_t *m, const gw_rl_plan_t *p, gw_rl_verdict_t *v)
{
    gw_rl_state_t st[GW_RL_MAX_BUCKETS];
    gw_rl_state_t *where[GW_RL_MAX_BUCKETS];
    lock(m);
    int64_t now = gw_rl_now_ms();
    for (int i = 0; i < p->nb; i++) {
        where[i] = find(m, p->b[i].hash);
        gw_rl_refill(where[i], &p->b[i], now);
        st[i] = *where[i];
    }
    gw_rl_decide(p, st, v);
    for (int i = 0; i < p->nb; i++)
        *where[i] = st[i];
    pthread_mutex_unlock(&m->mu);
}

void gw_rl_shm_debit(gw_rl_shm_t *m, const gw_rl_bucket_t *b, int64_t n)
{
    lock(m);
    gw_rl_state_t *s = find(m, b->hash);
    gw_rl_refill(s, b, gw_rl_now_ms());
    s->level -= (double)n;
    pthread_mutex_unlock(&m->mu);
}
