#include "gateway/rl_redis.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/buf.h"
#include "gateway/log.h"

#define RECONNECT_MS   250
/* hiredis 0.14's libuv adapter ignores poll errors, so a refused connect can sit unnoticed: an
 * attempt not connected by then is dropped and retried. */
#define CONNECT_TIMEOUT_MS 1000
#define MAX_MISSES     3
#define MAX_ARGS       (4 + GW_RL_MAX_BUCKETS * 5)

/* KEYS: the plan's buckets. ARGV[1] 'a' admit | 'd' debit (ARGV[2] tokens, ARGV[3..4] capacity,
 * period); admit: per bucket capacity, period_ms, tokens (0/1), set. Returns {refused bucket (0-based,
 * -1 = admitted), retry ms, chosen bucket per set...}: gw_rl_decide in Lua. */
static const char SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local function load(i, cap, per)\n"
    "  local s = redis.call('HMGET', KEYS[i], 'l', 't')\n"
    "  local l, lt = tonumber(s[1]), tonumber(s[2])\n"
    "  if not l then return cap end\n"
    "  if now > lt then l = math.min(cap, l + (now - lt) * cap / per) end\n"
    "  return l\n"
    "end\n"
    "local function save(i, l, per)\n"
    "  redis.call('HSET', KEYS[i], 'l', tostring(l), 't', tostring(now))\n"
    "  redis.call('PEXPIRE', KEYS[i], math.ceil(per * 2))\n"
    "end\n"
    "if ARGV[1] == 'd' then\n"
    "  local cap, per = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "  save(1, load(1, cap, per) - tonumber(ARGV[2]), per)\n"
    "  return 0\n"
    "end\n"
    "local n = #KEYS\n"
    "local cap, per, tok, set, lvl = {}, {}, {}, {}, {}\n"
    "for i = 1, n do\n"
    "  local b = 2 + (i - 1) * 4\n"
    "  cap[i], per[i], tok[i], set[i] = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), ARGV[b + 2] == '1', tonumber(ARGV[b + 3])\n"
    "  lvl[i] = load(i, cap[i], per[i])\n"
    "end\n"
    "local out, refused, retry = {}, -1, 0\n"
    "local i = 1\n"
    "while i <= n do\n"
    "  local s, pick, wait, first = set[i], nil, nil, i\n"
    "  while i <= n and set[i] == s do\n"
    "    local need = tok[i] and 0 or 1\n"
    "    if not pick and lvl[i] >= need then pick = i end\n"
    "    local w = 0\n"
    "    if lvl[i] < need then w = math.ceil((need - lvl[i]) * per[i] / cap[i]) end\n"
    "    if not wait or w < wait then wait = w end\n"
    "    i = i + 1\n"
    "  end\n"
    "  if pick then out[#out + 1] = pick - 1 else\n"
    "    out[#out + 1] = -1\n"
    "    if refused < 0 then refused = first - 1 end\n"
    "    if wait > retry then retry = wait end\n"
    "  end\n"
    "end\n"
    "if refused < 0 then\n"
    "  for _, k in ipairs(out) do if not tok[k + 1] then lvl[k + 1] = lvl[k + 1] - 1 end end\n"
    "end\n"
    "for j = 1, n do save(j, lvl[j], per[j]) end\n"
    "return {refused, retry, unpack(out)}\n";

struct gw_rlr {
    uv_loop_t *loop;
    char *host;
    int port, deadline_ms;
    redisAsyncContext *ac; /** NULL while disconnected */
    bool connected, freeing, was_up;
    char sha[41];          /** SCRIPT LOAD's answer; "" until known */
    uv_timer_t reconnect;
    int misses;            /** deadlines missed in a row */
    int open_handles;      /** reconnect timer + ops' timers still to close */
};

/* One admission in flight. Owned here; freed once its reply came (or the context went) and its
 * timer closed. */
struct gw_rlr_op {
    gw_rlr_t *r;
    uv_timer_t timer;
    gw_rlr_cb cb; /** NULL once answered or cancelled */
    void *ud;
    gw_rl_plan_t plan;
    bool awaiting_reply, timer_open, retried_eval;
};

static void connect_now(gw_rlr_t *r);
static void on_reconnect_timer(uv_timer_t *t);

static void maybe_free_rlr(gw_rlr_t *r)
{
    if (r->freeing && r->open_handles == 0 && !r->ac) {
        free(r->host);
        free(r);
    }
}

static void on_op_timer_closed(uv_handle_t *h)
{
    gw_rlr_op_t *op = h->data;
    gw_rlr_t *r = op->r;
    op->timer_open = false;
    r->open_handles--;
    if (!op->awaiting_reply)
        free(op);
    maybe_free_rlr(r);
}

static void op_done(gw_rlr_op_t *op, bool ok, const gw_rl_verdict_t *v)
{
    if (op->cb) {
        gw_rlr_cb cb = op->cb;
        op->cb = NULL;
        cb(op->ud, ok, v);
    }
    if (op->timer_open && !uv_is_closing((uv_handle_t *)&op->timer))
        uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
}

static void drop_connection(gw_rlr_t *r, const char *why)
{
    if (!r->ac)
        return;
    gw_log(GW_LOG_WARN, NULL, "event=ratelimit_store_dropped reason=%s", why);
    redisAsyncContext *ac = r->ac;
    redisAsyncFree(ac); /* pending replies come back NULL; on_disconnect resets r->ac */
}

static void on_deadline(uv_timer_t *t)
{
    gw_rlr_op_t *op = t->data;
    gw_rlr_t *r = op->r;
    if (++r->misses >= MAX_MISSES)
        drop_connection(r, "deadlines_missed");
    op_done(op, false, NULL);
}

static int build_args(gw_rlr_t *r, const gw_rl_plan_t *p, bool eval, const char **argv, size_t *len, char *nums,
                      size_t numcap)
{
    int n = 0;
    size_t at = 0;
#define PUSH(s, l) (argv[n] = (s), len[n] = (l), n++)
#define PUSHF(...)                                                                                                    \
    do {                                                                                                              \
        int w = snprintf(nums + at, numcap - at, __VA_ARGS__);                                                       \
        PUSH(nums + at, (size_t)w);                                                                                   \
        at += (size_t)w + 1;                                                                                          \
    } while (0)
    if (eval) {
        PUSH("EVAL", 4);
        PUSH(SCRIPT, sizeof(SCRIPT) - 1);
    } else {
        PUSH("EVALSHA", 7);
        PUSH(r->sha, 40);
    }
    PUSHF("%d", p->nb);
    for (int i = 0; i < p->nb; i++)
        PUSHF("agate:rl:%016llx", (unsigned long long)p->b[i].hash);
    PUSH("a", 1);
    for (int i = 0; i < p->nb; i++) {
        PUSHF("%.17g", p->b[i].capacity);
        PUSHF("%lld", (long long)p->b[i].period_ms);
        PUSH(p->b[i].tokens ? "1" : "0", 1);
        PUSHF("%d", p->b[i].set);
    }
#undef PUSHF
#undef PUSH
    return n;
}

static void send_admit(gw_rlr_op_t *op, bool eval);

/* hiredis reply: NULL when the connection went away before an answer. */
static void on_admit_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_rlr_op_t *op = privdata;
    gw_rlr_t *r = op->r;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && !op->retried_eval &&
        r->ac) {
        op->retried_eval = true; /* the script cache was flushed: send it whole (and it is cached again) */
        send_admit(op, true);
        return;
    }
    op->awaiting_reply = false;
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == (size_t)(2 + op->plan.ns);
    for (size_t i = 0; ok && i < rep->elements; i++)
        ok = rep->element[i]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        r->misses = 0;
        gw_rl_verdict_t v = {0};
        v.refused = (int)rep->element[0]->integer;
        v.ok = v.refused < 0;
        v.retry_ms = rep->element[1]->integer;
        for (int s = 0; s < op->plan.ns; s++)
            v.chosen[s] = (int)rep->element[2 + s]->integer;
        op_done(op, true, &v);
    } else {
        if (rep && rep->type == REDIS_REPLY_ERROR)
            gw_log(GW_LOG_WARN, NULL, "event=ratelimit_store_error error=\"%.200s\"", rep->str);
        op_done(op, false, NULL);
    }
    if (!op->timer_open)
        free(op);
}

static void send_admit(gw_rlr_op_t *op, bool eval)
{
    gw_rlr_t *r = op->r;
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
    char nums[GW_RL_MAX_BUCKETS * 5 * 32];
    int n = build_args(r, &op->plan, eval || !r->sha[0], argv, len, nums, sizeof(nums));
    if (redisAsyncCommandArgv(r->ac, on_admit_reply, op, n, argv, len) != REDIS_OK) {
        op->awaiting_reply = false;
        op_done(op, false, NULL);
    }
}

gw_rlr_op_t *gw_rlr_admit(gw_rlr_t *r, const gw_rl_plan_t *plan, gw_rlr_cb cb, void *ud)
{
    if (!r->ac || !r->connected)
        return NULL;
    gw_rlr_op_t *op = gw_xcalloc(1, sizeof(*op));
    op->r = r;
    op->cb = cb;
    op->ud = ud;
    op->plan = *plan;
    uv_timer_init(r->loop, &op->timer);
    op->timer.data = op;
    op->timer_open = true;
    r->open_handles++;
    uv_timer_start(&op->timer, on_deadline, (uint64_t)r->deadline_ms, 0);
    op->awaiting_reply = true;
    send_admit(op, false);
    return op;
}

void gw_rlr_cancel(gw_rlr_op_t *op)
{
    if (op)
        op->cb = NULL; /* the reply (or the context's end) still frees it */
}

static void on_debit_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redisReply *rep = reply;
    bool failed = !rep || rep->type == REDIS_REPLY_ERROR;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        gw_log(GW_LOG_WARN, NULL, "event=ratelimit_store_error op=debit error=\"%.200s\"", rep->str);
    gw_metric_add(privdata, failed ? "failed" : "applied", 1);
}

void gw_rlr_debit(gw_rlr_t *r, const gw_rl_bucket_t *b, int64_t n, gw_metric_t *debits)
{
    if (!r->ac || !r->connected) {
        gw_metric_add(debits, "dropped", 1);
        return;
    }
    char key[32], tokens[24], cap[32], per[24];
    snprintf(key, sizeof(key), "agate:rl:%016llx", (unsigned long long)b->hash);
    snprintf(tokens, sizeof(tokens), "%lld", (long long)n);
    snprintf(cap, sizeof(cap), "%.17g", b->capacity);
    snprintf(per, sizeof(per), "%lld", (long long)b->period_ms);
    /* EVAL, not EVALSHA: nothing waits on this, so no NOSCRIPT round trip to handle. */
    const char *argv[] = {"EVAL", SCRIPT, "1", key, "d", tokens, cap, per};
    size_t len[] = {4, sizeof(SCRIPT) - 1, 1, strlen(key), 1, strlen(tokens), strlen(cap), strlen(per)};
    redisAsyncCommandArgv(r->ac, on_debit_reply, debits, 8, argv, len);
}

bool gw_rlr_connected(const gw_rlr_t *r)
{
    return r->ac && r->connected;
}

/* ---------------- connection ---------------- */

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    gw_rlr_t *r = ac->data;
    (void)privdata;
    redisReply *rep = reply;
    if (r && rep && rep->type == REDIS_REPLY_STRING && rep->len == 40)
        memcpy(r->sha, rep->str, 41);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    gw_rlr_t *r = ac->data;
    if (!r)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (r->was_up)
            gw_log(GW_LOG_WARN, NULL, "event=ratelimit_store_down addr=%s:%d error=\"%s\"", r->host, r->port, ac->errstr);
        r->was_up = false;
        r->ac = NULL;
        r->connected = false;
        if (!r->freeing)
            uv_timer_start(&r->reconnect, on_reconnect_timer, RECONNECT_MS, 0);
        maybe_free_rlr(r);
        return;
    }
    uv_timer_stop(&r->reconnect);
    r->connected = true;
    r->misses = 0;
    r->was_up = true;
    gw_log(GW_LOG_INFO, NULL, "event=ratelimit_store_up addr=%s:%d", r->host, r->port);
    const char *argv[] = {"SCRIPT", "LOAD", SCRIPT};
    size_t len[] = {6, 4, sizeof(SCRIPT) - 1};
    redisAsyncCommandArgv(r->ac, on_script_loaded, NULL, 3, argv, len);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    gw_rlr_t *r = ac->data;
    (void)status;
    if (!r)
        return;
    if (!r->freeing)
        gw_log(GW_LOG_WARN, NULL, "event=ratelimit_store_down addr=%s:%d error=\"%s\"", r->host, r->port,
               ac->errstr[0] ? ac->errstr : "connection closed");
    r->was_up = false;
    r->ac = NULL;
    r->connected = false;
    r->sha[0] = '\0';
    if (!r->freeing)
        uv_timer_start(&r->reconnect, on_reconnect_timer, RECONNECT_MS, 0);
    maybe_free_rlr(r);
}

static void connect_now(gw_rlr_t *r)
{
    if (r->ac || r->freeing)
        return;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        uv_timer_start(&r->reconnect, on_reconnect_timer, RECONNECT_MS, 0);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisLibuvAttach(ac, r->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->reconnect, on_reconnect_timer, CONNECT_TIMEOUT_MS, 0);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    gw_rlr_t *r = t->data;
    if (r->ac && !r->connected) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    connect_now(r);
}

gw_rlr_t *gw_rlr_new(uv_loop_t *loop, const char *host, int port, int deadline_ms)
{
    gw_rlr_t *r = gw_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->host = gw_xstrndup(host, strlen(host));
    r->port = port;
    r->deadline_ms = deadline_ms;
    uv_timer_init(loop, &r->reconnect);
    r->reconnect.data = r;
    r->open_handles = 1;
    connect_now(r);
    return r;
}

bool gw_rlr_matches(const gw_rlr_t *r, const char *host, int port, int deadline_ms)
{
    return r && host && strcmp(r->host, host) == 0 && r->port == port && r->deadline_ms == deadline_ms;
}

static void on_reconnect_closed(uv_handle_t *h)
{
    gw_rlr_t *r = h->data;
    r->open_handles--;
    maybe_free_rlr(r);
}

void gw_rlr_free(gw_rlr_t *r)
{
    if (!r)
        return;
    r->freeing = true;
    uv_close((uv_handle_t *)&r->reconnect, on_reconnect_closed);
    if (r->ac) {
        /* Detached first: pending admissions get NULL replies (store errors) from inside
         * redisAsyncFree, and no callback may see r half-freed. */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->connected = false;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    maybe_free_rlr(r);
}
