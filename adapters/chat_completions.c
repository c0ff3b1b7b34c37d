/* ChatCompletions upstream adapter (PROTOCOL.md §6, §7.1–§7.4, §8).
 * Request: Responses → ChatCompletions messages. Response: SSE chunks (or one JSON completion)
 * → neutral events. Tool calls are keyed by their upstream `index`; any number may interleave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/cc_request.h"
#include "adapters/cc_scan.h"
#include "gateway/log.h"
#include "gateway/sse.h"

static const char *cc_path(const gw_endpoint_cfg_t *ep)
{
    (void)ep;
    return "/chat/completions";
}

/* ---------------- response decoding ---------------- */

struct tool_call {
    int64_t index;   /** upstream tool_calls[].index */
    gw_buf_t id;     /** call_id (upstream id) */
    gw_buf_t name;
    gw_buf_t early;  /** arguments received before the call could be announced */
    int oi;          /** output_index once announced, else -1 */
    bool had_args;   /** any non-empty argument fragment forwarded */
    bool closed;
};

struct ad_state {
    const ad_emit_t *em;
    cc_scan_memo_t memo;
    gw_arena_t *scratch; /** borrowed, shared: one upstream event's JSON tree, reset per event */
    ad_body_t body;      /** SSE, or a whole JSON completion answering a stream request (§8) */
    bool begun, finished, done_seen, stopped, model_seen;
    const char *finish_reason; /** "stop"/"length"/"content_filter" once the first finish_reason arrived */
    int msg_oi;                /** open message item, -1 none */
    ad_part_kind_t part;       /** kind of the message's open part */
    bool part_open;
    int rs_oi;                 /** open reasoning item, -1 none */
    struct tool_call *calls;
    size_t n_calls, cap_calls;
    int32_t *call_slots;    /** open-addressing map upstream index -> calls[] slot + 1 (0 = empty) */
    size_t cap_slots;       /** power of two, > 2 x n_calls */
    size_t early_bytes;     /** arguments held for calls not yet announced */
    size_t max_early_bytes; /** limits.max_output_bytes */
};

static int stop(ad_state_t *s, int rc)
{
    if (rc < 0)
        s->stopped = true;
    return rc;
}

static int fail_with(ad_state_t *s, gw_err_kind_t kind, const char *msg)
{
    gw_error_t e = {.kind = kind, .message = msg};
    s->finished = true;
    stop(s, -1);
    s->em->fail(s->em->ctx, &e);
    return -1;
}

static int begin(ad_state_t *s)
{
    if (s->begun)
        return 0;
    s->begun = true;
    return stop(s, s->em->begin(s->em->ctx));
}

static int close_reasoning(ad_state_t *s, ad_item_status_t st)
{
    if (s->rs_oi < 0)
        return 0;
    int oi = s->rs_oi;
    s->rs_oi = -1;
    return stop(s, s->em->item_done(s->em->ctx, oi, st));
}

static int close_message(ad_state_t *s, ad_item_status_t st)
{
    if (s->msg_oi < 0)
        return 0;
    int oi = s->msg_oi;
    s->msg_oi = -1;
    s->part_open = false;
    return stop(s, s->em->item_done(s->em->ctx, oi, st));
}

static int reasoning_delta(ad_state_t *s, gw_str_t text)
{
    if (close_message(s, AD_STATUS_COMPLETED) < 0)
        return -1;
    if (s->rs_oi < 0) {
        ad_item_t it = {.kind = AD_ITEM_REASONING};
        int oi = s->em->item_add(s->em->ctx, &it);
        if (oi < 0)
            return stop(s, -1);
        s->rs_oi = oi;
        if (stop(s, s->em->part_add(s->em->ctx, oi, AD_PART_SUMMARY_TEXT)) < 0)
            return -1;
    }
    return stop(s, s->em->delta(s->em->ctx, s->rs_oi, text));
}

static int message_delta(ad_state_t *s, ad_part_kind_t kind, gw_str_t text)
{
    if (close_reasoning(s, AD_STATUS_COMPLETED) < 0)
        return -1;
    if (s->msg_oi < 0) {
        ad_item_t it = {.kind = AD_ITEM_MESSAGE};
        int oi = s->em->item_add(s->em->ctx, &it);
        if (oi < 0)
            return stop(s, -1);
        s->msg_oi = oi;
        s->part_open = false;
    }
    if (!s->part_open || s->part != kind) {
        if (stop(s, s->em->part_add(s->em->ctx, s->msg_oi, kind)) < 0)
            return -1;
        s->part_open = true;
        s->part = kind;
    }
    return stop(s, s->em->delta(s->em->ctx, s->msg_oi, text));
}

static size_t slot_of(int64_t index, size_t cap)
{
    uint64_t h = (uint64_t)index * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing spreads dense indexes */
    return (size_t)(h >> 32) & (cap - 1);
}

/* Rebuild the index map at twice the size: lookups stay O(1) however many calls there are
 * (a linear scan per piece made thousands of parallel calls quadratic). */
static void grow_slots(ad_state_t *s)
{
    size_t cap = s->cap_slots ? s->cap_slots * 2 : 16;
    int32_t *slots = gw_xcalloc(cap, sizeof(*slots));
    for (size_t i = 0; i < s->n_calls; i++) {
        size_t k = slot_of(s->calls[i].index, cap);
        while (slots[k])
            k = (k + 1) & (cap - 1);
        slots[k] = (int32_t)i + 1;
    }
    free(s->call_slots);
    s->call_slots = slots;
    s->cap_slots = cap;
}

static struct tool_call *call_for(ad_state_t *s, int64_t index)
{
    if (s->cap_slots) {
        for (size_t k = slot_of(index, s->cap_slots); s->call_slots[k]; k = (k + 1) & (s->cap_slots - 1))
            if (s->calls[s->call_slots[k] - 1].index == index)
                return &s->calls[s->call_slots[k] - 1];
    }
    if ((s->n_calls + 1) * 2 > s->cap_slots)
        grow_slots(s);
    if (s->n_calls == s->cap_calls) {
        s->cap_calls = s->cap_calls ? s->cap_calls * 2 : 4;
        s->calls = gw_xrealloc(s->calls, s->cap_calls * sizeof(*s->calls));
    }
    struct tool_call *c = &s->calls[s->n_calls];
    memset(c, 0, sizeof(*c));
    c->index = index;
    c->oi = -1;
    size_t k = slot_of(index, s->cap_slots);
    while (s->call_slots[k])
        k = (k + 1) & (s->cap_slots - 1);
    s->call_slots[k] = (int32_t)++s->n_calls;
    return c;
}

static int announce(ad_state_t *s, struct tool_call *c)
{
    if (close_reasoning(s, AD_STATUS_COMPLETED) < 0 || close_message(s, AD_STATUS_COMPLETED) < 0)
        return -1;
    ad_item_t it = {.kind = AD_ITEM_FUNCTION_CALL,
                    .call_id = gw_buf_str(&c->id),
                    .name = gw_buf_str(&c->name),
                    .upstream_tool = true};
    int oi = s->em->item_add(s->em->ctx, &it);
    if (oi < 0)
        return stop(s, -1);
    c->oi = oi;
    if (c->early.len) {
        c->had_args = true;
        if (stop(s, s->em->delta(s->em->ctx, oi, gw_buf_str(&c->early))) < 0)
            return -1;
        gw_buf_dispose(&c->early);
    }
    return 0;
}

/* An argument fragment: forwarded once the call is announced, kept until then. */
static int call_args(ad_state_t *s, struct tool_call *c, gw_str_t frag)
{
    if (!frag.len)
        return 0;
    if (c->oi < 0) {
        /* Held until the call's id and name arrive: bounded like all generated output. */
        s->early_bytes += frag.len;
        if (s->max_early_bytes && s->early_bytes > s->max_early_bytes)
            return fail_with(s, GW_ERR_UPSTREAM, "upstream tool call arguments without a function name exceed "
                                                 "limits.max_output_bytes");
        gw_buf_append_str(&c->early, frag);
        return 0;
    }
    c->had_args = true;
    return stop(s, s->em->delta(s->em->ctx, c->oi, frag));
}

/* One tool_calls[] piece: merge by index, announce once id and name are known (§7.2 rule 5). */
static int tool_piece(ad_state_t *s, const gw_json_t *piece, int64_t pos)
{
    int64_t index = pos;
    gw_json_int64(gw_json_get(piece, "index"), &index);
    struct tool_call *c = call_for(s, index);
    if (c->closed)
        return 0;
    gw_str_t id = gw_json_get_str(piece, "id");
    const gw_json_t *fn = gw_json_get(piece, "function");
    gw_str_t name = gw_json_get_str(fn, "name");
    if (id.len && !c->id.len)
        gw_buf_append_str(&c->id, id);
    if (name.len && !c->name.len)
        gw_buf_append_str(&c->name, name);
    const gw_json_t *args = gw_json_get(fn, "arguments");
    gw_str_t frag = GW_STR_NULL;
    gw_buf_t tmp;
    gw_buf_init(&tmp);
    if (gw_json_is(args, GW_JSON_STRING)) {
        frag = args->str;
    } else if (gw_json_is(args, GW_JSON_OBJECT)) {
        /* Some servers send arguments as an object: serialise it. */
        gw_jgen_t *j = gw_jgen_new(&tmp);
        gw_jgen_value(j, args);
        gw_jgen_free(j);
        frag = gw_buf_str(&tmp);
    }
    int rc = 0;
    if (c->oi < 0 && c->id.len && c->name.len)
        rc = announce(s, c);
    if (rc == 0)
        rc = call_args(s, c, frag);
    gw_buf_dispose(&tmp);
    return rc;
}

static int by_output_index(const void *a, const void *b)
{
    int x = (*(struct tool_call *const *)a)->oi, y = (*(struct tool_call *const *)b)->oi;
    return (x > y) - (x < y);
}

static int close_calls(ad_state_t *s, ad_item_status_t st)
{
    /* Calls still lacking an id but named are announced now with a minted call_id. */
    for (size_t i = 0; i < s->n_calls; i++) {
        struct tool_call *c = &s->calls[i];
        if (c->closed || c->oi >= 0)
            continue;
        if (!c->name.len) {
            /* A call nobody can run: with arguments or an id it was meant to be one, and dropping it
             * would end a turn "completed" without the call the model made. */
            if (c->early.len || c->id.len)
                return fail_with(s, GW_ERR_UPSTREAM, "upstream tool call has no function name");
            gw_log(GW_LOG_WARN, NULL, "event=tool_call_dropped reason=empty index=%lld", (long long)c->index);
            c->closed = true;
            continue;
        }
        if (announce(s, c) < 0)
            return -1;
    }
    /* Close in output_index order (announced calls were given increasing output indexes, but
     * the late ones announced above may sit anywhere in calls[]): sort once, O(n log n). */
    struct tool_call **order = gw_xmalloc((s->n_calls ? s->n_calls : 1) * sizeof(*order));
    size_t n = 0;
    for (size_t i = 0; i < s->n_calls; i++)
        if (!s->calls[i].closed && s->calls[i].oi >= 0)
            order[n++] = &s->calls[i];
    qsort(order, n, sizeof(*order), by_output_index);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct tool_call *next = order[i];
        next->closed = true;
        if (!next->had_args && stop(s, s->em->delta(s->em->ctx, next->oi, GW_STR_LIT("{}"))) < 0)
            rc = -1;
        else if (stop(s, s->em->item_done(s->em->ctx, next->oi, st)) < 0)
            rc = -1;
    }
    free(order);
    return rc;
}

static int close_all(ad_state_t *s, ad_item_status_t st)
{
    if (close_reasoning(s, st) < 0 || close_message(s, st) < 0)
        return -1;
    return close_calls(s, st);
}

/* finish_reason → status (§7.3). */
static int on_finish_reason(ad_state_t *s, gw_str_t fr, const gw_json_t *choice)
{
    if (gw_str_eq(fr, "error") || gw_str_eq(fr, "abort")) {
        gw_str_t m = gw_json_get_str(choice, "message");
        const char *msg = m.base ? gw_arena_strndup(s->scratch, m.base, m.len) : "upstream aborted the response";
        return fail_with(s, GW_ERR_UPSTREAM, msg);
    }
    if (gw_str_eq(fr, "length"))
        s->finish_reason = "length";
    else if (gw_str_eq(fr, "content_filter"))
        s->finish_reason = "content_filter";
    else
        s->finish_reason = "stop";
    bool incomplete = s->finish_reason[0] != 's';
    return close_all(s, incomplete ? AD_STATUS_INCOMPLETE : AD_STATUS_COMPLETED);
}

/* finish_reason "error"/"abort" reads the choice's message (choice may be NULL otherwise). */
static int choice_end(ad_state_t *s, gw_str_t fr, const gw_json_t *choice)
{
    return fr.len ? on_finish_reason(s, fr, choice) : 0;
}

/* The text fields of choice 0's delta, in the order they are applied (§6.2). */
static int choice_texts(ad_state_t *s, gw_str_t reasoning_content, gw_str_t reasoning, gw_str_t content,
                        gw_str_t refusal)
{
    gw_str_t r = reasoning_content.len ? reasoning_content : reasoning;
    if (r.len && reasoning_delta(s, r) < 0)
        return -1;
    if (content.len && message_delta(s, AD_PART_OUTPUT_TEXT, content) < 0)
        return -1;
    if (refusal.len && message_delta(s, AD_PART_REFUSAL, refusal) < 0)
        return -1;
    return 0;
}

static void take_usage(ad_state_t *s, const gw_json_t *u)
{
    if (!gw_json_is(u, GW_JSON_OBJECT))
        return;
    ad_usage_t x = {.present = true};
    gw_json_int64(gw_json_get(u, "prompt_tokens"), &x.input);
    gw_json_int64(gw_json_get(u, "completion_tokens"), &x.output);
    if (gw_json_int64(gw_json_get(u, "total_tokens"), &x.total) < 0)
        x.total = x.input + x.output;
    gw_json_int64(gw_json_get(gw_json_get(u, "prompt_tokens_details"), "cached_tokens"), &x.cached);
    gw_json_int64(gw_json_get(gw_json_get(u, "completion_tokens_details"), "reasoning_tokens"), &x.reasoning);
    s->em->usage(s->em->ctx, &x);
}

static gw_err_kind_t kind_for_code(long code)
{
    if (code == 429)
        return GW_ERR_RATE_LIMIT;
    if (code == 400 || code == 422)
        return GW_ERR_UPSTREAM_BAD_REQUEST;
    return GW_ERR_UPSTREAM;
}

/* databricks_output.error carries a Databricks error_code instead of an HTTP status (§6.3):
 * map it back through the §7.6 rows so the client sees the same class of failure. */
static gw_err_kind_t kind_for_error_code(gw_str_t ec, gw_err_kind_t fallback)
{
    if (gw_str_eq(ec, "REQUEST_LIMIT_EXCEEDED") || gw_str_eq(ec, "RESOURCE_EXHAUSTED"))
        return GW_ERR_RATE_LIMIT;
    if (gw_str_eq(ec, "BAD_REQUEST") || gw_str_eq(ec, "INVALID_PARAMETER_VALUE"))
        return GW_ERR_UPSTREAM_BAD_REQUEST;
    if (gw_str_eq(ec, "TEMPORARILY_UNAVAILABLE"))
        return GW_ERR_UNAVAILABLE;
    if (gw_str_eq(ec, "DEADLINE_EXCEEDED"))
        return GW_ERR_TIMEOUT;
    return fallback;
}

/* Apply one choice's delta, then its finish_reason (§6.2). */
static int on_choice(ad_state_t *s, const gw_json_t *choice)
{
    const gw_json_t *delta = gw_json_get(choice, "delta");
    if (!delta)
        delta = gw_json_get(choice, "message"); /* non-streaming completion */
    if (s->finish_reason)
        return 0; /* first finish_reason counts; later deltas are ignored */
    if (choice_texts(s, gw_json_get_str(delta, "reasoning_content"), gw_json_get_str(delta, "reasoning"),
                     gw_json_get_str(delta, "content"), gw_json_get_str(delta, "refusal")) < 0)
        return -1;
    const gw_json_t *tcs = gw_json_get(delta, "tool_calls");
    if (gw_json_is(tcs, GW_JSON_ARRAY)) {
        int64_t pos = 0;
        for (const gw_json_t *p = tcs->child; p; p = p->next, pos++)
            if (gw_json_is(p, GW_JSON_OBJECT) && tool_piece(s, p, pos) < 0)
                return -1;
    }
    const gw_json_t *fc = gw_json_get(delta, "function_call"); /* legacy = tool call index 0 */
    if (gw_json_is(fc, GW_JSON_OBJECT)) {
        struct tool_call *call = call_for(s, 0);
        gw_str_t name = gw_json_get_str(fc, "name");
        if (name.len && !call->name.len)
            gw_buf_append_str(&call->name, name);
        if (call_args(s, call, gw_json_get_str(fc, "arguments")) < 0)
            return -1;
    }
    return choice_end(s, gw_json_get_str(choice, "finish_reason"), choice);
}

static int begin_with_model(ad_state_t *s, gw_str_t model)
{
    if (begin(s) < 0)
        return -1;
    if (model.len && !s->model_seen) {
        s->model_seen = true;
        s->em->upstream_model(s->em->ctx, model);
    }
    return 0;
}

/* A chunk read by cc_scan: the same steps as on_json, from the scanned fields. */
static int on_chunk(ad_state_t *s, const cc_chunk_t *c)
{
    if (begin_with_model(s, c->model) < 0)
        return -1;
    if (c->choice && !s->finish_reason) {
        if (choice_texts(s, c->reasoning_content, c->reasoning, c->content, c->refusal) < 0 ||
            choice_end(s, c->finish_reason, NULL) < 0)
            return -1;
    }
    if (c->usage) {
        ad_usage_t x = {.present = true,
                        .input = c->has_input ? c->input : 0,
                        .output = c->has_output ? c->output : 0,
                        .cached = c->has_cached ? c->cached : 0,
                        .reasoning = c->has_reasoning ? c->reasoning_tokens : 0};
        x.total = c->has_total ? c->total : x.input + x.output;
        s->em->usage(s->em->ctx, &x);
    }
    return 0;
}

/* One upstream JSON event (a chunk, or the whole non-streaming completion). */
static int on_json(ad_state_t *s, const gw_json_t *ev)
{
    long code;
    const char *emsg = ad_error_message(s->scratch, ev, &code);
    if (emsg) {
        gw_str_t ec = gw_json_get_str(gw_json_get(gw_json_get(ev, "databricks_output"), "error"), "error_code");
        return fail_with(s, kind_for_error_code(ec, kind_for_code(code)), emsg);
    }
    if (ev->type != GW_JSON_OBJECT)
        return fail_with(s, GW_ERR_UPSTREAM, "upstream sent a stream event that is not a JSON object");
    if (begin_with_model(s, gw_json_get_str(ev, "model")) < 0)
        return -1;
    const gw_json_t *choices = gw_json_get(ev, "choices");
    if (gw_json_is(choices, GW_JSON_ARRAY)) {
        for (const gw_json_t *ch = choices->child; ch; ch = ch->next) {
            int64_t idx = 0;
            if (gw_json_int64(gw_json_get(ch, "index"), &idx) == 0 && idx != 0)
                continue; /* only choice 0 is used */
            if (on_choice(s, ch) < 0)
                return -1;
            break;
        }
    }
    take_usage(s, gw_json_get(ev, "usage"));
    return 0;
}

static int end_stream(ad_state_t *s)
{
    if (s->finished)
        return 0;
    if (!s->finish_reason) {
        /* [DONE] without finish_reason: completed, with a warning (§7.3). */
        gw_log(GW_LOG_WARN, NULL, "event=upstream_no_finish_reason");
        if (close_all(s, AD_STATUS_COMPLETED) < 0)
            return -1;
        s->finish_reason = "stop";
    }
    s->finished = true;
    bool incomplete = s->finish_reason[0] != 's';
    return stop(s, s->em->finish(s->em->ctx, incomplete ? AD_FINISH_INCOMPLETE : AD_FINISH_COMPLETED,
                                 !incomplete                         ? NULL
                                 : s->finish_reason[0] == 'l'        ? "max_output_tokens"
                                                                     : "content_filter"));
}

static int on_sse_event(void *ud, gw_str_t event, gw_str_t data)
{
    ad_state_t *s = ud;
    if (s->done_seen || s->finished)
        return 0; /* data after [DONE] is ignored */
    gw_arena_reset(s->scratch);
    gw_json_t *ev = NULL;
    const char *perr = NULL;
    if (gw_str_eq(event, "error")) {
        /* llama.cpp `error:` field or `event: error`. */
        long code = 0;
        const char *msg = NULL;
        if (gw_json_parse(s->scratch, data.base, data.len, &ev, NULL) == 0) {
            msg = ad_error_message(s->scratch, ev, &code);
            if (!msg) {
                gw_str_t m = gw_json_get_str(ev, "message");
                if (m.base)
                    msg = gw_arena_strndup(s->scratch, m.base, m.len);
                int64_t c;
                if (gw_json_int64(gw_json_get(ev, "code"), &c) == 0)
                    code = (long)c;
            }
        }
        if (!msg)
            msg = data.len ? gw_arena_strndup(s->scratch, data.base, data.len < 512 ? data.len : 512)
                           : "upstream sent an error event";
        return fail_with(s, kind_for_code(code), msg);
    }
    if (gw_str_eq(data, "[DONE]")) {
        s->done_seen = true;
        return end_stream(s);
    }
    cc_chunk_t chunk;
    if (!ad__cc_scan_off && cc_scan_chunk_memo(&s->memo, s->scratch, data.base, data.len, &chunk) == CC_SCAN_OK)
        return on_chunk(s, &chunk);
    if (gw_json_parse(s->scratch, data.base, data.len, &ev, &perr) < 0)
        return fail_with(s, GW_ERR_UPSTREAM, "upstream sent invalid JSON in its stream");
    return on_json(s, ev);
}

static void on_sse_comment(void *ud, gw_str_t text)
{
    (void)text;
    ad_state_t *s = ud;
    s->em->heartbeat(s->em->ctx);
}

static ad_state_t *cc_start(gw_arena_t *a, gw_arena_t *scratch, const gw_endpoint_cfg_t *ep, const gw_limits_cfg_t *lim,
                            const ad_emit_t *emit, gw_str_t content_type)
{
    (void)ep;
    ad_state_t *s = gw_arena_calloc(a, sizeof(*s));
    s->em = emit;
    s->scratch = scratch;
    s->msg_oi = s->rs_oi = -1;
    s->max_early_bytes = lim->max_output_bytes;
    ad_body_init(&s->body, content_type, lim->max_event_bytes, on_sse_event, on_sse_comment, s);
    return s;
}

static int cc_feed(ad_state_t *s, const char *data, size_t len)
{
    if (s->stopped || s->finished)
        return s->stopped ? -1 : 0;
    int rc = ad_body_feed(&s->body, data, len);
    if (rc == AD_BODY_TOO_LARGE)
        return fail_with(s, GW_ERR_UPSTREAM, s->body.json ? "upstream JSON answer exceeds the event size limit"
                                                          : "upstream stream event exceeds the size limit");
    return rc < 0 ? -1 : 0;
}

static int cc_finish(ad_state_t *s)
{
    if (s->stopped)
        return -1;
    if (s->finished)
        return 0;
    if (s->body.json) {
        gw_arena_reset(s->scratch);
        gw_json_t *ev;
        if (ad_body_parse(&s->body, s->scratch, &ev) < 0)
            return fail_with(s, GW_ERR_UPSTREAM, "upstream sent an invalid JSON answer");
        if (on_json(s, ev) < 0)
            return -1;
        return end_stream(s);
    }
    if (s->finish_reason)
        return end_stream(s); /* EOF after finish_reason without [DONE]: normal end (§7.3) */
    return fail_with(s, GW_ERR_UPSTREAM, "upstream stream ended prematurely");
}

static void cc_dispose(ad_state_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_calls; i++) {
        gw_buf_dispose(&s->calls[i].id);
        gw_buf_dispose(&s->calls[i].name);
        gw_buf_dispose(&s->calls[i].early);
    }
    free(s->calls);
    free(s->call_slots);
    ad_body_dispose(&s->body);
}

const ad_vtable_t ad_chat_completions = {
    .name = "chat_completions",
    .path = cc_path,
    .encode_request = ad__cc_encode_request,
    .start = cc_start,
    .feed = cc_feed,
    .finish = cc_finish,
    .dispose = cc_dispose,
};
