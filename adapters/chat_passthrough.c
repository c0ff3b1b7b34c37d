/* ChatCompletions passthrough (front route /v1/chat/completions, issue 16).
 * The client speaks the upstream's protocol, so nothing is translated: the request goes up with
 * only `model` rewritten (and `stream_options.include_usage` forced on for streams, so the row
 * always has upstream usage), and each upstream SSE event goes down as it came. A stream event is
 * never built into a JSON tree: one yajl callback pass picks out what the table needs (id, model,
 * created, content/refusal/tool-call deltas per choice, finish_reason, usage, an error marker).
 * The renderer (gateway/stream, GW_FRONT_CHAT) frames the bytes, drops the usage-only chunk when
 * the client did not ask for it, and keeps the aggregate chat.completion this adapter builds.
 * Assumption, true of OpenAI, vLLM, llama.cpp, Ollama and SGLang: `index` comes first in a choice
 * and in a tool-call piece; without it, the position in the array is the index. */
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "adapters/adapter.h"

#define MAX_CHOICES 16  /* choices beyond are forwarded but not aggregated */
#define MAX_TOOLS   128 /* tool calls per choice, same */

/* ---------------- request ---------------- */

static const char *cp_path(const gw_endpoint_cfg_t *ep)
{
    (void)ep;
    return "/chat/completions";
}

/* The client's body, members in order, with `model` replaced by the endpoint's upstream model. A
 * stream always asks for usage (the row needs it); the client's other stream_options are kept. */
static int cp_encode_request(const gw_request_t *r, const gw_endpoint_cfg_t *ep, bool databricks_route,
                             gw_buf_t *out, gw_error_t *err)
{
    (void)databricks_route;
    (void)err;
    gw_jgen_t *j = gw_jgen_new(out);
    bool options_done = false;
    gw_jgen_map_open(j);
    for (const gw_json_t *m = r->root->child; m; m = m->next) {
        if (gw_str_eq(m->key, "model")) {
            gw_jgen_kv_cstr(j, "model", ep->model);
        } else if (gw_str_eq(m->key, "stream_options") && r->stream && !options_done) {
            gw_jgen_lit(j, "stream_options");
            gw_jgen_map_open(j);
            for (const gw_json_t *o = gw_json_is(m, GW_JSON_OBJECT) ? m->child : NULL; o; o = o->next)
                if (!gw_str_eq(o->key, "include_usage")) {
                    gw_jgen_str(j, o->key);
                    gw_jgen_value(j, o);
                }
            gw_jgen_lit(j, "include_usage");
            gw_jgen_bool(j, true);
            gw_jgen_map_close(j);
            options_done = true;
        } else if (!gw_str_eq(m->key, "stream_options") || !r->stream) {
            gw_jgen_str(j, m->key);
            gw_jgen_value(j, m);
        }
    }
    if (r->stream && !options_done) {
        gw_jgen_lit(j, "stream_options");
        gw_jgen_map_open(j);
        gw_jgen_lit(j, "include_usage");
        gw_jgen_bool(j, true);
        gw_jgen_map_close(j);
    }
    gw_jgen_map_close(j);
    gw_jgen_done(j);
    gw_jgen_free(j);
    return 0;
}

/* ---------------- response state ---------------- */

struct tool {
    gw_buf_t id, name, args; /** accumulated across pieces */
};

struct choice {
    bool used, has_content, has_refusal;
    gw_buf_t content, refusal;
    char finish[32];         /** finish_reason, "" = none yet */
    struct tool *tools;      /** malloc'd, indexed by the upstream's tool-call index */
    size_t n_tools;
};

struct ad_state {
    const ad_emit_t *em;
    gw_arena_t *scratch;
    ad_body_t body;
    bool begun, finished, stopped, model_seen;
    gw_buf_t id, created, model; /** first chunk's id, created (number text), model */
    struct choice choices[MAX_CHOICES];
    ad_usage_t usage;
    gw_buf_t agg;                /** the aggregate being written */
};

/* Container kinds of the scan stack: only the paths the aggregate reads are told apart. */
enum { K_OTHER = 0, K_ROOT, K_CHOICES, K_CHOICE, K_DELTA, K_TOOLS, K_TOOL, K_FUNC, K_USAGE, K_PTD, K_CTD };

/* One stream event's scan (on the C stack, per event). */
struct scan {
    ad_state_t *s;
    int depth;
    unsigned char kind[GW_JSON_MAX_DEPTH + 1];
    int count[GW_JSON_MAX_DEPTH + 1]; /** elements seen so far, for arrays */
    char key[32];                     /** last member name (longer names are never ones we read) */
    size_t key_len;
    int choice, tool;                 /** current choice / tool-call index */
    int n_choices;                    /** elements of `choices`, -1 = no choices array */
    bool error, usage;
    size_t tokens;                    /** generated chars in this event */
};

static bool key_is(const struct scan *x, const char *k)
{
    size_t n = strlen(k);
    return x->key_len == n && memcmp(x->key, k, n) == 0;
}

static int stop(ad_state_t *s, int rc)
{
    if (rc < 0)
        s->stopped = true;
    return rc;
}

static void put_text(gw_jgen_t *j, const char *k, bool has, const gw_buf_t *b)
{
    gw_jgen_cstr(j, k);
    if (has)
        gw_jgen_str(j, b->base ? gw_buf_str(b) : GW_STR_LIT(""));
    else
        gw_jgen_null(j);
}

/* The aggregated chat.completion, what a non-streaming call would have answered (INFERENCE_TABLES
 * §5.2 applied to this route). Handed to the renderer for the table; partial on failure. */
static void emit_aggregate(ad_state_t *s)
{
    gw_buf_reset(&s->agg);
    gw_jgen_t *j = gw_jgen_new(&s->agg);
    gw_jgen_map_open(j);
    gw_jgen_kv_str(j, "id", gw_buf_str(&s->id));
    gw_jgen_kv_lit(j, "object", "chat.completion");
    gw_jgen_lit(j, "created");
    if (s->created.len)
        gw_jgen_number_raw(j, gw_buf_str(&s->created));
    else
        gw_jgen_int(j, 0);
    gw_jgen_kv_str(j, "model", gw_buf_str(&s->model));
    gw_jgen_lit(j, "choices");
    gw_jgen_array_open(j);
    for (int i = 0; i < MAX_CHOICES; i++) {
        const struct choice *c = &s->choices[i];
        if (!c->used)
            continue;
        gw_jgen_map_open(j);
        gw_jgen_kv_int(j, "index", i);
        gw_jgen_lit(j, "message");
        gw_jgen_map_open(j);
        gw_jgen_kv_lit(j, "role", "assistant");
        put_text(j, "content", c->has_content, &c->content);
        put_text(j, "refusal", c->has_refusal, &c->refusal);
        if (c->n_tools) {
            gw_jgen_lit(j, "tool_calls");
            gw_jgen_array_open(j);
            for (size_t t = 0; t < c->n_tools; t++) {
                const struct tool *tc = &c->tools[t];
                gw_jgen_map_open(j);
                gw_jgen_kv_str(j, "id", gw_buf_str(&tc->id));
                gw_jgen_kv_lit(j, "type", "function");
                gw_jgen_lit(j, "function");
                gw_jgen_map_open(j);
                gw_jgen_kv_str(j, "name", gw_buf_str(&tc->name));
                gw_jgen_kv_str(j, "arguments", tc->args.base ? gw_buf_str(&tc->args) : GW_STR_LIT(""));
                gw_jgen_map_close(j);
                gw_jgen_map_close(j);
            }
            gw_jgen_array_close(j);
        }
        gw_jgen_map_close(j);
        gw_jgen_lit(j, "finish_reason");
        if (c->finish[0])
            gw_jgen_cstr(j, c->finish);
        else
            gw_jgen_null(j);
        gw_jgen_map_close(j);
    }
    gw_jgen_array_close(j);
    if (s->usage.present) {
        gw_jgen_lit(j, "usage");
        gw_jgen_map_open(j);
        gw_jgen_kv_int(j, "prompt_tokens", s->usage.input);
        gw_jgen_kv_int(j, "completion_tokens", s->usage.output);
        gw_jgen_kv_int(j, "total_tokens", s->usage.total);
        gw_jgen_map_close(j);
    }
    gw_jgen_map_close(j);
    gw_jgen_done(j);
    gw_jgen_free(j);
    s->em->aggregate(s->em->ctx, gw_buf_str(&s->agg));
}

static int fail_with(ad_state_t *s, gw_err_kind_t kind, const char *msg)
{
    gw_error_t e = {.kind = kind, .message = msg};
    if (s->begun)
        emit_aggregate(s);
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

/* finish_reason of choice 0 (or the first choice that has one) decides the row's finish_status. */
static int end_stream(ad_state_t *s)
{
    if (s->finished)
        return 0;
    const char *fr = "";
    for (int i = 0; i < MAX_CHOICES && !fr[0]; i++)
        fr = s->choices[i].finish;
    s->finished = true;
    emit_aggregate(s);
    bool complete = !fr[0] || !strcmp(fr, "stop") || !strcmp(fr, "tool_calls") || !strcmp(fr, "function_call");
    const char *why = !strcmp(fr, "length") ? "max_output_tokens" : !strcmp(fr, "content_filter") ? "content_filter" : NULL;
    return stop(s, s->em->finish(s->em->ctx, complete ? AD_FINISH_COMPLETED : AD_FINISH_INCOMPLETE, why));
}

/* ---------------- the scan ---------------- */

static struct choice *cur_choice(struct scan *x)
{
    if (x->choice < 0 || x->choice >= MAX_CHOICES)
        return NULL;
    struct choice *c = &x->s->choices[x->choice];
    c->used = true;
    return c;
}

static struct tool *cur_tool(struct scan *x)
{
    struct choice *c = cur_choice(x);
    if (!c || x->tool < 0 || x->tool >= MAX_TOOLS)
        return NULL;
    if ((size_t)x->tool >= c->n_tools) {
        c->tools = gw_xrealloc(c->tools, ((size_t)x->tool + 1) * sizeof(*c->tools));
        memset(c->tools + c->n_tools, 0, ((size_t)x->tool + 1 - c->n_tools) * sizeof(*c->tools));
        c->n_tools = (size_t)x->tool + 1;
    }
    return &c->tools[x->tool];
}

static unsigned char parent(const struct scan *x)
{
    return x->depth ? x->kind[x->depth - 1] : K_OTHER;
}

/* A value or container starts in the current container: count array elements. Returns the
 * element's index in its array, or -1 in an object. */
static int element(struct scan *x)
{
    unsigned char p = parent(x);
    if (x->depth && (p == K_CHOICES || p == K_TOOLS))
        return x->count[x->depth - 1]++;
    return -1;
}

static void on_scalar(struct scan *x, int type, const char *v, size_t n)
{
    element(x);
    unsigned char p = parent(x);
    ad_state_t *s = x->s;
    int64_t num = 0;
    if (type == GW_JSON_NUMBER) {
        char tmp[24];
        size_t k = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;
        memcpy(tmp, v, k);
        tmp[k] = '\0';
        num = strtoll(tmp, NULL, 10);
    }
    bool str = type == GW_JSON_STRING;
    switch (p) {
    case K_ROOT:
        if (key_is(x, "error") && type != GW_JSON_NULL)
            x->error = true;
        else if (key_is(x, "object") && str && n == 5 && !memcmp(v, "error", 5))
            x->error = true;
        else if (key_is(x, "id") && str && !s->id.len)
            gw_buf_append(&s->id, v, n);
        else if (key_is(x, "created") && type == GW_JSON_NUMBER && !s->created.len)
            gw_buf_append(&s->created, v, n);
        else if (key_is(x, "model") && str && n && !s->model_seen) {
            s->model_seen = true;
            gw_buf_append(&s->model, v, n);
            s->em->upstream_model(s->em->ctx, gw_str_n(v, n));
        }
        break;
    case K_CHOICE:
        if (key_is(x, "index") && type == GW_JSON_NUMBER) {
            x->choice = (int)(num >= 0 && num < MAX_CHOICES ? num : -1);
            cur_choice(x);
        } else if (key_is(x, "finish_reason") && str && n) {
            struct choice *c = cur_choice(x);
            if (c) {
                size_t k = n < sizeof(c->finish) - 1 ? n : sizeof(c->finish) - 1;
                memcpy(c->finish, v, k);
                c->finish[k] = '\0';
            }
        }
        break;
    case K_DELTA: {
        struct choice *c = str ? cur_choice(x) : NULL;
        if (c && key_is(x, "content")) {
            c->has_content = true;
            gw_buf_append(&c->content, v, n);
            x->tokens += n;
        } else if (c && key_is(x, "refusal")) {
            c->has_refusal = true;
            gw_buf_append(&c->refusal, v, n);
            x->tokens += n;
        }
        break;
    }
    case K_TOOL:
        if (key_is(x, "index") && type == GW_JSON_NUMBER) {
            x->tool = (int)(num >= 0 && num < MAX_TOOLS ? num : -1);
            cur_tool(x);
        } else if (key_is(x, "id") && str && n) {
            struct tool *t = cur_tool(x);
            if (t) {
                gw_buf_reset(&t->id);
                gw_buf_append(&t->id, v, n);
            }
        }
        break;
    case K_FUNC: {
        struct tool *t = str ? cur_tool(x) : NULL;
        if (t && key_is(x, "name"))
            gw_buf_append(&t->name, v, n);
        else if (t && key_is(x, "arguments")) {
            gw_buf_append(&t->args, v, n);
            x->tokens += n;
        }
        break;
    }
    case K_USAGE:
        if (type != GW_JSON_NUMBER)
            break;
        if (key_is(x, "prompt_tokens"))
            s->usage.input = num;
        else if (key_is(x, "completion_tokens"))
            s->usage.output = num;
        else if (key_is(x, "total_tokens"))
            s->usage.total = num;
        break;
    case K_PTD:
        if (type == GW_JSON_NUMBER && key_is(x, "cached_tokens"))
            s->usage.cached = num;
        break;
    case K_CTD:
        if (type == GW_JSON_NUMBER && key_is(x, "reasoning_tokens"))
            s->usage.reasoning = num;
        break;
    default:
        break;
    }
}

static int y_null(void *ud)
{
    on_scalar(ud, GW_JSON_NULL, NULL, 0);
    return 1;
}

static int y_bool(void *ud, int b)
{
    (void)b;
    on_scalar(ud, GW_JSON_BOOL, NULL, 0);
    return 1;
}

static int y_number(void *ud, const char *v, size_t n)
{
    on_scalar(ud, GW_JSON_NUMBER, v, n);
    return 1;
}

static int y_string(void *ud, const unsigned char *v, size_t n)
{
    on_scalar(ud, GW_JSON_STRING, (const char *)v, n);
    return 1;
}

static int y_key(void *ud, const unsigned char *k, size_t n)
{
    struct scan *x = ud;
    x->key_len = n < sizeof(x->key) ? n : 0; /* a long name matches none of ours */
    memcpy(x->key, k, x->key_len);
    return 1;
}

static int push(struct scan *x, unsigned char kind)
{
    if (x->depth >= GW_JSON_MAX_DEPTH)
        return 0; /* STYLE.md §9: nesting cap */
    x->kind[x->depth] = kind;
    x->count[x->depth] = 0;
    x->depth++;
    x->key_len = 0;
    return 1;
}

static int y_start_map(void *ud)
{
    struct scan *x = ud;
    int el = element(x);
    unsigned char p = parent(x), k = K_OTHER;
    if (x->depth == 0)
        k = K_ROOT;
    else if (p == K_CHOICES) {
        k = K_CHOICE;
        x->choice = el < MAX_CHOICES ? el : -1;
    } else if (p == K_CHOICE && (key_is(x, "delta") || key_is(x, "message")))
        k = K_DELTA;
    else if (p == K_TOOLS) {
        k = K_TOOL;
        x->tool = el < MAX_TOOLS ? el : -1;
    } else if (p == K_TOOL && key_is(x, "function"))
        k = K_FUNC;
    else if (p == K_ROOT && key_is(x, "usage")) {
        k = K_USAGE;
        x->usage = true;
        x->s->usage.present = true;
    } else if (p == K_ROOT && key_is(x, "error"))
        x->error = true;
    else if (p == K_USAGE && key_is(x, "prompt_tokens_details"))
        k = K_PTD;
    else if (p == K_USAGE && key_is(x, "completion_tokens_details"))
        k = K_CTD;
    return push(x, k);
}

static int y_start_array(void *ud)
{
    struct scan *x = ud;
    element(x);
    unsigned char p = parent(x), k = K_OTHER;
    if (p == K_ROOT && key_is(x, "choices")) {
        k = K_CHOICES;
        x->n_choices = 0;
    } else if (p == K_DELTA && key_is(x, "tool_calls"))
        k = K_TOOLS;
    return push(x, k);
}

static int y_end(void *ud)
{
    struct scan *x = ud;
    x->depth--;
    if (x->kind[x->depth] == K_CHOICES)
        x->n_choices = x->count[x->depth];
    x->key_len = 0;
    return 1;
}

static const yajl_callbacks scan_cbs = {
    y_null, y_bool, NULL, NULL, y_number, y_string, y_start_map, y_key, y_end, y_start_array, y_end,
};

/* Run the scan over one JSON text. Returns -1 if it is not JSON (or too deep). */
static int scan(struct scan *x, gw_str_t data)
{
    yajl_handle h = yajl_alloc(&scan_cbs, NULL, x);
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)data.base, data.len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    return st == yajl_status_ok && x->depth == 0 ? 0 : -1;
}

/* An upstream error inside the 2xx stream: its message, read from a tree (errors are rare). */
static int upstream_error(ad_state_t *s, gw_str_t data, bool forward)
{
    gw_arena_reset(s->scratch);
    gw_json_t *ev;
    const char *msg = NULL;
    if (gw_json_parse(s->scratch, data.base, data.len, &ev, NULL) == 0)
        msg = ad_error_message(s->scratch, ev, NULL);
    if (!msg)
        msg = "upstream reported an error";
    /* After commit the client gets the upstream's own error chunk, and no second one. */
    if (forward && s->begun)
        s->em->raw(s->em->ctx, data, AD_RAW_SSE_ERROR, 0);
    return fail_with(s, GW_ERR_UPSTREAM, msg);
}

static int on_sse_event(void *ud, gw_str_t event, gw_str_t data)
{
    ad_state_t *s = ud;
    if (s->finished)
        return 0; /* data after [DONE] is ignored */
    if (gw_str_eq(event, "error"))
        return upstream_error(s, data, false); /* llama.cpp `error:` field: not chat-shaped */
    if (gw_str_eq(data, "[DONE]")) {
        if (!s->begun && begin(s) < 0)
            return -1;
        if (stop(s, s->em->raw(s->em->ctx, data, AD_RAW_SSE, 0)) < 0)
            return -1;
        return end_stream(s);
    }
    struct scan x = {.s = s, .choice = 0, .tool = 0, .n_choices = -1};
    if (scan(&x, data) < 0)
        return fail_with(s, GW_ERR_UPSTREAM, "upstream sent invalid JSON in its stream");
    if (x.error)
        return upstream_error(s, data, true);
    if (begin(s) < 0)
        return -1;
    ad_raw_kind_t kind = x.n_choices == 0 && x.usage ? AD_RAW_SSE_USAGE : AD_RAW_SSE;
    if (x.usage)
        s->em->usage(s->em->ctx, &s->usage);
    return stop(s, s->em->raw(s->em->ctx, data, kind, x.tokens));
}

static void on_sse_comment(void *ud, gw_str_t text)
{
    (void)text;
    ad_state_t *s = ud;
    s->em->heartbeat(s->em->ctx);
}

/* ---------------- vtable ---------------- */

static ad_state_t *cp_start(gw_arena_t *a, gw_arena_t *scratch, const gw_endpoint_cfg_t *ep, const gw_limits_cfg_t *lim,
                            const ad_emit_t *emit, gw_str_t content_type)
{
    (void)ep;
    ad_state_t *s = gw_arena_calloc(a, sizeof(*s));
    s->em = emit;
    s->scratch = scratch;
    ad_body_init(&s->body, content_type, lim->max_event_bytes, on_sse_event, on_sse_comment, s);
    return s;
}

static int cp_feed(ad_state_t *s, const char *data, size_t len)
{
    if (s->stopped || s->finished)
        return s->stopped ? -1 : 0;
    int rc = ad_body_feed(&s->body, data, len);
    if (rc == AD_BODY_TOO_LARGE)
        return fail_with(s, GW_ERR_UPSTREAM, s->body.json ? "upstream JSON answer exceeds the event size limit"
                                                          : "upstream stream event exceeds the size limit");
    return rc < 0 ? -1 : 0;
}

/* A whole JSON answer (stream:false): scanned like a chunk, sent as it came, and it is its own
 * aggregate (INFERENCE_TABLES.md §5.1: the exact body sent). */
static int finish_json(ad_state_t *s)
{
    gw_str_t doc = s->body.doc.base ? gw_buf_str(&s->body.doc) : GW_STR_LIT("");
    struct scan x = {.s = s, .choice = 0, .tool = 0, .n_choices = -1};
    if (scan(&x, doc) < 0)
        return fail_with(s, GW_ERR_UPSTREAM, "upstream sent an invalid JSON answer");
    if (x.error)
        return upstream_error(s, doc, false);
    if (begin(s) < 0)
        return -1;
    if (x.usage)
        s->em->usage(s->em->ctx, &s->usage);
    if (stop(s, s->em->raw(s->em->ctx, doc, AD_RAW_JSON, x.tokens)) < 0)
        return -1;
    s->em->aggregate(s->em->ctx, doc);
    s->finished = true;
    const char *fr = s->choices[0].finish;
    bool complete = !fr[0] || strcmp(fr, "length") != 0;
    return stop(s, s->em->finish(s->em->ctx, complete ? AD_FINISH_COMPLETED : AD_FINISH_INCOMPLETE,
                                 complete ? NULL : "max_output_tokens"));
}

static int cp_finish(ad_state_t *s)
{
    if (s->stopped)
        return -1;
    if (s->finished)
        return 0;
    if (s->body.json)
        return finish_json(s);
    for (int i = 0; i < MAX_CHOICES; i++)
        if (s->choices[i].finish[0])
            return end_stream(s); /* EOF after finish_reason without [DONE]: normal end (§7.3) */
    return fail_with(s, GW_ERR_UPSTREAM, "upstream stream ended prematurely");
}

static void cp_dispose(ad_state_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < MAX_CHOICES; i++) {
        struct choice *c = &s->choices[i];
        for (size_t t = 0; t < c->n_tools; t++) {
            gw_buf_dispose(&c->tools[t].id);
            gw_buf_dispose(&c->tools[t].name);
            gw_buf_dispose(&c->tools[t].args);
        }
        free(c->tools);
        gw_buf_dispose(&c->content);
        gw_buf_dispose(&c->refusal);
    }
    gw_buf_dispose(&s->id);
    gw_buf_dispose(&s->created);
    gw_buf_dispose(&s->model);
    gw_buf_dispose(&s->agg);
    ad_body_dispose(&s->body);
}

/* Named after the upstream protocol: that is what the table's `adapter` column reports. */
const ad_vtable_t ad_chat_passthrough = {
    .name = "chat_completions",
    .path = cp_path,
    .encode_request = cp_encode_request,
    .start = cp_start,
    .feed = cp_feed,
    .finish = cp_finish,
    .dispose = cp_dispose,
};
