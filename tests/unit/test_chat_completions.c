/* ChatCompletions adapter driven through the real pipeline: golden upstream streams
 * (tests/data/cc_*) go through ad_chat_completions.start/feed/finish into gw_stream, whose
 * rendered Responses SSE is parsed back with gw_sse + gw_json and checked against PROTOCOL.md
 * §4.2/§4.3/§5.3/§7.2–§7.4/§8/§9, event by event. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/request.h"
#include "gateway/sse.h"
#include "gateway/stream.h"

#define RESP_ID      "resp_0123456789abcdef0123456789abcdef"
#define REQ_ID       "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define CREATED      1741290958
#define CLIENT_MODEL "assistant-v1"
#define UP_MODEL     "qwen2.5-7b-instruct"
#define MiB          ((size_t)1024 * 1024)
#define SSE_CT       "text/event-stream; charset=utf-8"
#define JSON_CT      "application/json; charset=utf-8"

/* The client request whose fields the lifecycle responses echo. */
static const char REQ_BODY[] =
    "{\"model\":\"" CLIENT_MODEL "\",\"input\":\"Weather?\",\"instructions\":\"Be terse.\","
    "\"metadata\":{\"ticket\":\"T-17\"},\"temperature\":0.25,"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}]}";

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static char *read_data(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", GW_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0, "%s is empty", path);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Compact JSON text of a parsed value (key order kept), malloc'd and NUL-terminated. */
static char *json_text(const gw_json_t *v)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_jgen_t *j = gw_jgen_new(&b);
    gw_jgen_value(j, v);
    gw_jgen_free(j);
    gw_buf_append(&b, "", 1);
    size_t n;
    return gw_buf_steal(&b, &n);
}

/* Whether the bytes of b (not NUL-terminated) contain needle. */
static bool buf_has(const gw_buf_t *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; b->base && i + n <= b->len; i++)
        if (memcmp(b->base + i, needle, n) == 0)
            return true;
    return false;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Mask the random parts of minted ids (msg_/fc_/rs_ + 32 hex, call_ + 24 hex) so two runs of the
 * same upstream bytes can be compared byte for byte. */
static char *normalize(const char *s, size_t n)
{
    static const struct {
        const char *prefix;
        size_t nhex;
    } ids[] = {{"\"msg_", 32}, {"\"fc_", 32}, {"\"rs_", 32}, {"\"call_", 24}};
    char *o = malloc(n + 1);
    cr_assert_not_null(o);
    memcpy(o, s, n);
    o[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
            size_t pl = strlen(ids[k].prefix);
            if (i + pl + ids[k].nhex + 1 > n || memcmp(o + i, ids[k].prefix, pl) != 0)
                continue;
            size_t h = 0;
            while (h < ids[k].nhex && is_hex(o[i + pl + h]))
                h++;
            if (h == ids[k].nhex && o[i + pl + h] == '"')
                memset(o + i + pl, 'X', h);
        }
    }
    return o;
}

static const gw_json_t *jget(const gw_json_t *o, const char *key)
{
    const gw_json_t *v = gw_json_get(o, key);
    cr_assert_not_null(v, "missing key '%s'", key);
    return v;
}

/* String member as a NUL-terminated arena string (the parser copies strings with a NUL). */
static const char *js(const gw_json_t *o, const char *key)
{
    const gw_json_t *v = jget(o, key);
    cr_assert_eq(v->type, GW_JSON_STRING, "'%s' is not a string", key);
    return v->str.base;
}

static int64_t ji(const gw_json_t *o, const char *key)
{
    int64_t x;
    cr_assert_eq(gw_json_int64(jget(o, key), &x), 0, "'%s' is not an integer", key);
    return x;
}

static void append_text(char *dst, size_t cap, gw_str_t s)
{
    size_t have = strlen(dst);
    cr_assert_lt(have + s.len, cap, "accumulated text too long for the test buffer");
    memcpy(dst + have, s.base, s.len);
    dst[have + s.len] = '\0';
}

static void copy_text(char *dst, size_t cap, const char *s)
{
    cr_assert_lt(strlen(s), cap);
    strcpy(dst, s);
}

/* ------------------------------------------------------------------------------------------ */
/* driving the pipeline                                                                       */

typedef struct {
    gw_front_t front;
    bool stream;
    const char *content_type;
    size_t max_event;
} run_opts_t;

typedef struct {
    gw_arena_t *a; /** request arena: parsed request and adapter state */
    gw_request_t req;
    gw_upstream_cfg_t up;
    gw_endpoint_cfg_t ep;
    gw_limits_cfg_t lim;
    gw_stream_t *s;
    ad_state_t *st;
    gw_buf_t out;  /** everything the client received, drained after every call */
    bool stopped;  /** a feed returned < 0 */
    int feed_rc;   /** the failing feed's value, 0 if none */
    int finish_rc; /** finish's value; 0 when finish was not called */
    bool finished;
} run_t;

static const run_opts_t OPENAI_SSE = {GW_FRONT_OPENAI, true, SSE_CT, MiB};

static void drain(run_t *r)
{
    gw_buf_t *o = gw_stream_out(r->s);
    gw_buf_append(&r->out, o->base ? o->base : "", o->len);
    gw_buf_reset(o);
}

static void run_begin(run_t *r, const run_opts_t *o)
{
    gw_log_set_level(GW_LOG_ERROR);
    memset(r, 0, sizeof(*r));
    gw_buf_init(&r->out);
    r->a = gw_arena_new();
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(r->a, GW_STR_LIT(REQ_BODY), o->front == GW_FRONT_DATABRICKS, &r->req, &err),
                 0, "request rejected: %s", err.message);
    r->up = (gw_upstream_cfg_t){.url = "http://127.0.0.1:9", .weight = 1};
    r->ep = (gw_endpoint_cfg_t){
        .name = CLIENT_MODEL,
        .adapter = GW_ADAPTER_CHAT_COMPLETIONS,
        .model = UP_MODEL,
        .upstreams = &r->up,
        .n_upstreams = 1,
        .max_tokens_field = "max_tokens",
        .connect_timeout_ms = 5000,
        .first_event_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .total_timeout_ms = 297000,
        .sampling_rate = 1.0,
    };
    r->lim = (gw_limits_cfg_t){
        .max_body_bytes = 4 * MiB,
        .max_header_bytes = 16384,
        .max_connections = 16,
        .header_timeout_ms = 30000,
        .keepalive_timeout_ms = 60000,
        .sse_keepalive_ms = 15000,
        .max_event_bytes = o->max_event,
    };
    gw_stream_opts_t so = {
        .front = o->front,
        .stream = o->stream,
        .req = &r->req,
        .response_id = RESP_ID,
        .request_id = REQ_ID,
        .model = r->req.model.base ? r->req.model : GW_STR_LIT(CLIENT_MODEL),
        .created_at = CREATED,
    };
    r->s = gw_stream_new(&so);
    cr_assert_not_null(r->s);
    r->st =
        ad_chat_completions.start(r->a, &r->ep, &r->lim, gw_stream_emitter(r->s), gw_str(o->content_type));
    cr_assert_not_null(r->st);
}

/* Each feed gets a fresh heap copy, scribbled over and freed afterwards, so a view kept past the
 * feed that carried it shows up as wrong output (and as a use-after-free under ASan). */
static void run_feed(run_t *r, const char *data, size_t len)
{
    if (r->stopped)
        return;
    char *c = malloc(len ? len : 1);
    cr_assert_not_null(c);
    memcpy(c, data, len);
    int rc = ad_chat_completions.feed(r->st, c, len);
    memset(c, 'Z', len);
    free(c);
    drain(r);
    if (rc < 0) {
        r->stopped = true;
        r->feed_rc = rc;
    }
}

static void run_end(run_t *r)
{
    if (!r->stopped) {
        r->finish_rc = ad_chat_completions.finish(r->st);
        r->finished = true;
        drain(r);
    }
    ad_chat_completions.dispose(r->st);
    r->st = NULL;
}

static void run_free(run_t *r)
{
    if (r->st)
        ad_chat_completions.dispose(r->st);
    gw_stream_free(r->s);
    gw_arena_free(r->a);
    gw_buf_dispose(&r->out);
}

/* Feed the whole golden in pieces of `step` bytes (0 = in one piece). */
static void run_golden(run_t *r, const char *name, const run_opts_t *o, size_t step)
{
    size_t len;
    char *buf = read_data(name, &len);
    run_begin(r, o);
    if (!step)
        step = len;
    for (size_t off = 0; off < len; off += step)
        run_feed(r, buf + off, len - off < step ? len - off : step);
    run_end(r);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* parsing the rendered stream back                                                           */

typedef struct {
    char *event; /** the event: line's value, "" when absent */
    char *data;
    const gw_json_t *j; /** NULL for [DONE] */
} rev_t;

typedef struct {
    gw_arena_t *a;
    rev_t *ev;
    size_t n, cap;
    size_t n_comments;
} revs_t;

static int on_rendered_event(void *ud, gw_str_t event, gw_str_t data)
{
    revs_t *v = ud;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 32;
        v->ev = realloc(v->ev, v->cap * sizeof(*v->ev));
        cr_assert_not_null(v->ev);
    }
    rev_t *e = &v->ev[v->n++];
    e->event = gw_arena_strndup(v->a, event.base, event.len);
    e->data = gw_arena_strndup(v->a, data.base, data.len);
    e->j = NULL;
    if (!gw_str_eq(data, "[DONE]")) {
        gw_json_t *j = NULL;
        const char *perr = NULL;
        cr_assert_eq(gw_json_parse(v->a, data.base, data.len, &j, &perr), 0,
                     "rendered event %zu is not JSON: %s", v->n - 1, perr);
        cr_assert_eq(j->type, GW_JSON_OBJECT, "rendered event %zu is not an object", v->n - 1);
        e->j = j;
    }
    return 0;
}

static void on_rendered_comment(void *ud, gw_str_t text)
{
    (void)text;
    revs_t *v = ud;
    v->n_comments++;
}

static void parse_rendered(revs_t *v, const gw_buf_t *out)
{
    memset(v, 0, sizeof(*v));
    v->a = gw_arena_new();
    gw_sse_parser_t *p = gw_sse_parser_new(16 * MiB, on_rendered_event, on_rendered_comment, v);
    cr_assert_not_null(p);
    cr_assert_eq(gw_sse_parser_feed(p, out->base ? out->base : "", out->len), 0);
    cr_assert_not(gw_sse_parser_has_partial(p), "rendered stream ends inside an event");
    gw_sse_parser_free(p);
    /* Never id:/retry: lines (§4.1). */
    for (size_t i = 0; i + 4 <= out->len; i++) {
        if (i == 0 || out->base[i - 1] == '\n') {
            cr_assert(memcmp(out->base + i, "id:", 3) != 0, "rendered an id: line");
            cr_assert(i + 6 > out->len || memcmp(out->base + i, "retry:", 6) != 0, "rendered a retry: line");
        }
    }
}

static void revs_free(revs_t *v)
{
    free(v->ev);
    gw_arena_free(v->a);
}

/* ------------------------------------------------------------------------------------------ */
/* protocol checker                                                                           */

#define MAXI 16
#define MAXP 4
#define TXT  4096

typedef struct {
    char type[24];
    char id[64];
    char call_id[64], name[64];
    size_t n_parts;
    char part_type[MAXP][16];
    char text[MAXP][TXT];
    bool part_open, text_done;
    size_t n_deltas; /** text/refusal/summary/argument delta events */
    char args[TXT];
    bool done;
    char status[16];
    const gw_json_t *done_item;
} sitem_t;

typedef struct {
    sitem_t it[MAXI];
    size_t n;
    const gw_json_t *terminal; /** the response.completed/incomplete/failed event */
    char terminal_type[40];
    const gw_json_t *error_ev;
    size_t n_events; /** JSON events, [DONE] excluded */
    bool done_marker;
    size_t n_comments;
} sum_t;

static const char *status_for(const char *terminal_type)
{
    if (strcmp(terminal_type, "response.completed") == 0)
        return "completed";
    if (strcmp(terminal_type, "response.incomplete") == 0)
        return "incomplete";
    return "failed";
}

static void check_lifecycle_response(const gw_json_t *resp, const char *status)
{
    cr_assert_eq(resp->type, GW_JSON_OBJECT);
    cr_assert_str_eq(js(resp, "id"), RESP_ID);
    cr_assert_str_eq(js(resp, "object"), "response");
    cr_assert_eq(ji(resp, "created_at"), CREATED);
    cr_assert_str_eq(js(resp, "model"), CLIENT_MODEL);
    cr_assert_str_eq(js(resp, "status"), status);
    cr_assert_eq(jget(resp, "output")->type, GW_JSON_ARRAY);
    cr_assert_eq(jget(resp, "tools")->type, GW_JSON_ARRAY);
    jget(resp, "usage");
    jget(resp, "parallel_tool_calls");
    jget(resp, "tool_choice");
    jget(resp, "metadata");
    cr_assert_null(gw_json_get(resp, "output_text"), "output_text is SDK-computed, never sent");
}

static sitem_t *item_for(sum_t *m, const gw_json_t *ev, bool with_item_id)
{
    int64_t oi = ji(ev, "output_index");
    cr_assert(oi >= 0 && (size_t)oi < m->n, "output_index %lld names no added item", (long long)oi);
    sitem_t *it = &m->it[oi];
    if (with_item_id)
        cr_assert_str_eq(js(ev, "item_id"), it->id, "item_id must equal the id of the item at output_index");
    cr_assert_not(it->done, "event for item %lld after its output_item.done", (long long)oi);
    return it;
}

static void check_part_json(const gw_json_t *part, const char *kind, const char *text)
{
    cr_assert_str_eq(js(part, "type"), kind);
    if (strcmp(kind, "refusal") == 0) {
        cr_assert_str_eq(js(part, "refusal"), text);
        return;
    }
    cr_assert_str_eq(js(part, "text"), text);
    if (strcmp(kind, "output_text") == 0) {
        cr_assert_eq(jget(part, "annotations")->type, GW_JSON_ARRAY);
        cr_assert_eq(jget(part, "annotations")->len, 0);
        cr_assert_eq(jget(part, "logprobs")->type, GW_JSON_ARRAY);
    }
}

static void check_final_item(const sitem_t *it, const gw_json_t *item)
{
    cr_assert_str_eq(js(item, "id"), it->id);
    cr_assert_str_eq(js(item, "type"), it->type);
    const char *st = js(item, "status");
    cr_assert(strcmp(st, "completed") == 0 || strcmp(st, "incomplete") == 0, "bad final item status %s", st);
    if (strcmp(it->type, "message") == 0) {
        cr_assert_str_eq(js(item, "role"), "assistant");
        const gw_json_t *content = jget(item, "content");
        cr_assert_eq(content->len, it->n_parts, "message content has %zu parts, streamed %zu", content->len,
                     it->n_parts);
        cr_assert_gt(content->len, 0, "message content must not be empty");
        for (size_t p = 0; p < it->n_parts; p++)
            check_part_json(gw_json_at(content, p), it->part_type[p], it->text[p]);
    } else if (strcmp(it->type, "function_call") == 0) {
        cr_assert_str_eq(js(item, "call_id"), it->call_id);
        cr_assert_str_eq(js(item, "name"), it->name);
        cr_assert_str_eq(js(item, "arguments"), it->args);
    } else {
        const gw_json_t *summary = jget(item, "summary");
        cr_assert_eq(summary->len, it->n_parts);
        for (size_t p = 0; p < it->n_parts; p++)
            check_part_json(gw_json_at(summary, p), "summary_text", it->text[p]);
    }
}

static void on_item_added(sum_t *m, const gw_json_t *ev)
{
    cr_assert_eq(ji(ev, "output_index"), (int64_t)m->n, "output_index must count added items");
    cr_assert_lt(m->n, MAXI);
    /* Rule 7: message and reasoning items are closed before any later item is added. */
    for (size_t k = 0; k < m->n; k++)
        if (strcmp(m->it[k].type, "function_call") != 0)
            cr_assert(m->it[k].done, "item %zu (%s) still open when item %zu was added", k, m->it[k].type,
                      m->n);
    const gw_json_t *item = jget(ev, "item");
    sitem_t *it = &m->it[m->n++];
    memset(it, 0, sizeof(*it));
    copy_text(it->type, sizeof(it->type), js(item, "type"));
    copy_text(it->id, sizeof(it->id), js(item, "id"));
    cr_assert_str_eq(js(item, "status"), "in_progress");
    for (size_t k = 0; k + 1 < m->n; k++)
        cr_assert_str_neq(m->it[k].id, it->id, "item ids must be unique");
    const char *prefix = NULL;
    if (strcmp(it->type, "message") == 0) {
        prefix = "msg_";
        cr_assert_str_eq(js(item, "role"), "assistant");
        cr_assert_eq(jget(item, "content")->len, 0);
    } else if (strcmp(it->type, "function_call") == 0) {
        prefix = "fc_";
        copy_text(it->call_id, sizeof(it->call_id), js(item, "call_id"));
        copy_text(it->name, sizeof(it->name), js(item, "name"));
        cr_assert_gt(strlen(it->call_id), 0, "function_call announced without call_id");
        cr_assert_gt(strlen(it->name), 0, "function_call announced without name");
        cr_assert_str_eq(js(item, "arguments"), "");
        for (size_t k = 0; k + 1 < m->n; k++)
            if (strcmp(m->it[k].type, "function_call") == 0)
                cr_assert_str_neq(m->it[k].call_id, it->call_id, "call_ids must be unique");
    } else if (strcmp(it->type, "reasoning") == 0) {
        prefix = "rs_";
        cr_assert_eq(jget(item, "summary")->len, 0);
    } else {
        cr_assert_fail("unexpected item type %s", it->type);
    }
    cr_assert_eq(strncmp(it->id, prefix, strlen(prefix)), 0, "item id %s lacks prefix %s", it->id, prefix);
    cr_assert_eq(strlen(it->id), strlen(prefix) + 32, "item id %s is not prefix + 32 hex", it->id);
}

static void on_part_added(sum_t *m, const gw_json_t *ev, bool summary)
{
    sitem_t *it = item_for(m, ev, true);
    cr_assert_str_eq(it->type, summary ? "reasoning" : "message");
    cr_assert_not(it->part_open, "a part was added while the previous one was open");
    cr_assert_eq(ji(ev, summary ? "summary_index" : "content_index"), (int64_t)it->n_parts);
    cr_assert_lt(it->n_parts, MAXP);
    const gw_json_t *part = jget(ev, "part");
    const char *kind = js(part, "type");
    if (summary)
        cr_assert_str_eq(kind, "summary_text");
    else
        cr_assert(strcmp(kind, "output_text") == 0 || strcmp(kind, "refusal") == 0, "bad part type %s", kind);
    check_part_json(part, kind, "");
    copy_text(it->part_type[it->n_parts], sizeof(it->part_type[0]), kind);
    it->text[it->n_parts][0] = '\0';
    it->n_parts++;
    it->part_open = true;
    it->text_done = false;
}

static sitem_t *open_part_item(sum_t *m, const gw_json_t *ev, const char *kind)
{
    sitem_t *it = item_for(m, ev, true);
    cr_assert(it->part_open, "%s event without an open part", kind);
    cr_assert_str_eq(it->part_type[it->n_parts - 1], kind);
    const char *index_key = strcmp(kind, "summary_text") == 0 ? "summary_index" : "content_index";
    cr_assert_eq(ji(ev, index_key), (int64_t)it->n_parts - 1);
    return it;
}

static void on_text_delta(sum_t *m, const gw_json_t *ev, const char *kind)
{
    sitem_t *it = open_part_item(m, ev, kind);
    cr_assert_not(it->text_done, "delta after the part's text done");
    const gw_json_t *d = jget(ev, "delta");
    cr_assert_eq(d->type, GW_JSON_STRING);
    cr_assert_gt(d->str.len, 0, "empty text deltas are never sent");
    append_text(it->text[it->n_parts - 1], TXT, d->str);
    it->n_deltas++;
    if (strcmp(kind, "output_text") == 0)
        cr_assert_eq(jget(ev, "logprobs")->type, GW_JSON_ARRAY);
}

static void on_text_done(sum_t *m, const gw_json_t *ev, const char *kind)
{
    sitem_t *it = open_part_item(m, ev, kind);
    cr_assert_not(it->text_done);
    cr_assert_str_eq(js(ev, strcmp(kind, "refusal") == 0 ? "refusal" : "text"), it->text[it->n_parts - 1],
                     "deltas must concatenate to the done text");
    it->text_done = true;
}

static void on_part_done(sum_t *m, const gw_json_t *ev, const char *kind)
{
    sitem_t *it = open_part_item(m, ev, kind);
    cr_assert(it->text_done, "part done before its text done");
    check_part_json(jget(ev, "part"), kind, it->text[it->n_parts - 1]);
    it->part_open = false;
}

static void on_args_delta(sum_t *m, const gw_json_t *ev)
{
    sitem_t *it = item_for(m, ev, true);
    cr_assert_str_eq(it->type, "function_call");
    const gw_json_t *d = jget(ev, "delta");
    cr_assert_eq(d->type, GW_JSON_STRING);
    append_text(it->args, TXT, d->str);
    it->n_deltas++;
}

static void on_args_done(sum_t *m, const gw_json_t *ev)
{
    sitem_t *it = item_for(m, ev, true);
    cr_assert_str_eq(it->type, "function_call");
    cr_assert_str_eq(js(ev, "arguments"), it->args, "argument deltas must concatenate to done.arguments");
    cr_assert_str_eq(js(ev, "name"), it->name);
    it->text_done = true;
}

static void on_item_done(sum_t *m, const gw_json_t *ev)
{
    sitem_t *it = item_for(m, ev, false);
    cr_assert_not(it->part_open, "output_item.done with an open part");
    if (strcmp(it->type, "function_call") == 0)
        cr_assert(it->text_done, "function_call done without function_call_arguments.done");
    const gw_json_t *item = jget(ev, "item");
    check_final_item(it, item);
    copy_text(it->status, sizeof(it->status), js(item, "status"));
    it->done = true;
    it->done_item = item;
}

static void on_terminal(sum_t *m, const gw_json_t *ev, const char *type)
{
    cr_assert_null(m->terminal, "more than one terminal event");
    m->terminal = ev;
    copy_text(m->terminal_type, sizeof(m->terminal_type), type);
    const gw_json_t *resp = jget(ev, "response");
    check_lifecycle_response(resp, status_for(type));
    const gw_json_t *out = jget(resp, "output");
    cr_assert_eq(out->len, m->n, "terminal output has %zu items, %zu were added", out->len, m->n);
    for (size_t k = 0; k < m->n; k++) {
        cr_assert(m->it[k].done, "item %zu not done before the terminal event", k);
        char *a = json_text(gw_json_at(out, k)), *b = json_text(m->it[k].done_item);
        cr_assert_str_eq(a, b, "terminal output[%zu] differs from its output_item.done", k);
        free(a);
        free(b);
    }
    const char *st = status_for(type);
    if (strcmp(st, "completed") == 0) {
        cr_assert(gw_json_is_nullish(gw_json_get(resp, "error")));
        cr_assert(gw_json_is_nullish(gw_json_get(resp, "incomplete_details")));
    }
}

/* Check every §4.3/§9 invariant over the rendered events; fill m with what was streamed. */
static void check_stream(const revs_t *v, gw_front_t front, sum_t *m)
{
    memset(m, 0, sizeof(*m));
    m->n_comments = v->n_comments;
    cr_assert_geq(v->n, 2, "fewer than two events");
    for (size_t i = 0; i < v->n; i++) {
        const rev_t *e = &v->ev[i];
        if (!e->j) {
            cr_assert_eq(front, GW_FRONT_DATABRICKS, "[DONE] on the OpenAI route");
            cr_assert_eq(i, v->n - 1, "[DONE] is not the last event");
            cr_assert_str_eq(e->event, "");
            m->done_marker = true;
            continue;
        }
        const char *type = js(e->j, "type");
        if (front == GW_FRONT_OPENAI)
            cr_assert_str_eq(e->event, type, "event: line must equal the JSON type");
        else
            cr_assert_str_eq(e->event, "", "no event: lines on the Databricks route");
        cr_assert_eq(ji(e->j, "sequence_number"), (int64_t)m->n_events,
                     "sequence numbers must be gap-free from 0");
        m->n_events++;
        if (i == 0)
            cr_assert_str_eq(type, "response.created");
        if (i == 1)
            cr_assert_str_eq(type, "response.in_progress");
        if (m->terminal && strcmp(type, "error") != 0)
            cr_assert_fail("event %s after the terminal event", type);

        if (strcmp(type, "response.created") == 0 || strcmp(type, "response.in_progress") == 0) {
            cr_assert_lt(i, 2, "%s at position %zu", type, i);
            check_lifecycle_response(jget(e->j, "response"), "in_progress");
            cr_assert_eq(jget(jget(e->j, "response"), "output")->len, 0);
        } else if (strcmp(type, "response.output_item.added") == 0) {
            on_item_added(m, e->j);
        } else if (strcmp(type, "response.content_part.added") == 0) {
            on_part_added(m, e->j, false);
        } else if (strcmp(type, "response.reasoning_summary_part.added") == 0) {
            on_part_added(m, e->j, true);
        } else if (strcmp(type, "response.output_text.delta") == 0) {
            on_text_delta(m, e->j, "output_text");
        } else if (strcmp(type, "response.refusal.delta") == 0) {
            on_text_delta(m, e->j, "refusal");
        } else if (strcmp(type, "response.reasoning_summary_text.delta") == 0) {
            on_text_delta(m, e->j, "summary_text");
        } else if (strcmp(type, "response.output_text.done") == 0) {
            on_text_done(m, e->j, "output_text");
        } else if (strcmp(type, "response.refusal.done") == 0) {
            on_text_done(m, e->j, "refusal");
        } else if (strcmp(type, "response.reasoning_summary_text.done") == 0) {
            on_text_done(m, e->j, "summary_text");
        } else if (strcmp(type, "response.content_part.done") == 0) {
            const sitem_t *it = item_for(m, e->j, true);
            cr_assert_gt(it->n_parts, 0);
            on_part_done(m, e->j, it->part_type[it->n_parts - 1]);
        } else if (strcmp(type, "response.reasoning_summary_part.done") == 0) {
            on_part_done(m, e->j, "summary_text");
        } else if (strcmp(type, "response.function_call_arguments.delta") == 0) {
            on_args_delta(m, e->j);
        } else if (strcmp(type, "response.function_call_arguments.done") == 0) {
            on_args_done(m, e->j);
        } else if (strcmp(type, "response.output_item.done") == 0) {
            on_item_done(m, e->j);
        } else if (strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
                   strcmp(type, "response.failed") == 0) {
            on_terminal(m, e->j, type);
        } else if (strcmp(type, "error") == 0) {
            cr_assert_not_null(m->terminal, "error event before response.failed");
            cr_assert_str_eq(m->terminal_type, "response.failed");
            cr_assert_null(m->error_ev, "more than one error event");
            m->error_ev = e->j;
        } else {
            cr_assert_fail("event type %s is not in the §4.2 catalogue", type);
        }
    }
    cr_assert_not_null(m->terminal, "no terminal event");
    if (strcmp(m->terminal_type, "response.failed") == 0)
        cr_assert_not_null(m->error_ev, "response.failed without the error event");
    if (front == GW_FRONT_DATABRICKS)
        cr_assert(m->done_marker, "Databricks stream must end with data: [DONE]");
    /* Rule 10: a completed response has only completed items. Otherwise items still open at the
     * end are closed incomplete; an item closed earlier (a message before a later tool call) keeps
     * the status its output_item.done already announced. */
    if (strcmp(m->terminal_type, "response.completed") == 0)
        for (size_t k = 0; k < m->n; k++)
            cr_assert_str_eq(m->it[k].status, "completed", "item %zu status", k);
}

/* Run a golden through the OpenAI SSE front, parse and check it; the caller frees. */
typedef struct {
    run_t r;
    revs_t v;
    sum_t *m;
} checked_t;

static void run_checked(checked_t *c, const char *name, const run_opts_t *o, size_t step)
{
    run_golden(&c->r, name, o, step);
    parse_rendered(&c->v, &c->r.out);
    c->m = calloc(1, sizeof(*c->m));
    cr_assert_not_null(c->m);
    check_stream(&c->v, o->front, c->m);
}

static void checked_free(checked_t *c)
{
    free(c->m);
    revs_free(&c->v);
    run_free(&c->r);
}

static const gw_json_t *terminal_response(const checked_t *c)
{
    return jget(c->m->terminal, "response");
}

static void check_usage(const gw_json_t *resp, int64_t in, int64_t out, int64_t total, int64_t cached,
                        int64_t reasoning)
{
    const gw_json_t *u = jget(resp, "usage");
    cr_assert_eq(u->type, GW_JSON_OBJECT, "usage must be an object");
    cr_assert_eq(ji(u, "input_tokens"), in);
    cr_assert_eq(ji(u, "output_tokens"), out);
    cr_assert_eq(ji(u, "total_tokens"), total);
    cr_assert_eq(ji(jget(u, "input_tokens_details"), "cached_tokens"), cached);
    cr_assert_eq(ji(jget(u, "input_tokens_details"), "cache_write_tokens"), 0);
    cr_assert_eq(ji(jget(u, "output_tokens_details"), "reasoning_tokens"), reasoning);
}

static void check_message(const sitem_t *it, const char *kind, const char *text)
{
    cr_assert_str_eq(it->type, "message");
    cr_assert_eq(it->n_parts, 1);
    cr_assert_str_eq(it->part_type[0], kind);
    cr_assert_str_eq(it->text[0], text);
}

static void check_call(const sitem_t *it, const char *call_id, const char *name, const char *args)
{
    cr_assert_str_eq(it->type, "function_call");
    cr_assert_str_eq(it->call_id, call_id);
    cr_assert_str_eq(it->name, name);
    cr_assert_str_eq(it->args, args);
}

/* §5.3: response.failed carries {code,message}; the error event flat code/message/param, a nested
 * error {type,code,message,param} and databricks_output.error {error_code,message}. */
static void check_failure(const checked_t *c, const char *message, const char *failed_code, const char *type,
                          const char *code, const char *error_code)
{
    cr_assert_str_eq(c->m->terminal_type, "response.failed");
    const gw_json_t *resp = terminal_response(c);
    const gw_json_t *err = jget(resp, "error");
    cr_assert_str_eq(js(err, "code"), failed_code);
    cr_assert_str_eq(js(err, "message"), message);
    const gw_json_t *ev = c->m->error_ev;
    cr_assert_not_null(ev);
    cr_assert_eq(ji(ev, "sequence_number"), ji(c->m->terminal, "sequence_number") + 1,
                 "error must directly follow response.failed");
    cr_assert_str_eq(js(ev, "code"), failed_code);
    cr_assert_str_eq(js(ev, "message"), message);
    cr_assert(gw_json_is_nullish(gw_json_get(ev, "param")));
    cr_assert_not_null(gw_json_get(ev, "param"), "param must be present (null)");
    const gw_json_t *nested = jget(ev, "error");
    cr_assert_str_eq(js(nested, "type"), type);
    cr_assert_str_eq(js(nested, "code"), code);
    cr_assert_str_eq(js(nested, "message"), message);
    const gw_json_t *dbx = jget(jget(ev, "databricks_output"), "error");
    cr_assert_str_eq(js(dbx, "error_code"), error_code);
    cr_assert_str_eq(js(dbx, "message"), message);
    cr_assert_eq(gw_stream_status(c->r.s), GW_FINISH_FAILED);
    const gw_error_t *ge = gw_stream_error(c->r.s);
    cr_assert_not_null(ge);
    cr_assert_str_eq(ge->message, message);
}

static size_t count_type(const revs_t *v, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].j && strcmp(js(v->ev[i].j, "type"), type) == 0)
            n++;
    return n;
}

/* Whole-feed rendering vs. split feeds: identical bytes once minted ids are masked. */
static char *normalized_output(const run_t *r)
{
    return normalize(r->out.base ? r->out.base : "", r->out.len);
}

static void check_split_every_offset(const char *name)
{
    size_t len;
    char *buf = read_data(name, &len);
    run_t whole;
    run_golden(&whole, name, &OPENAI_SSE, 0);
    char *want = normalized_output(&whole);
    cr_assert_gt(strlen(want), 0);
    for (size_t k = 0; k <= len; k++) {
        run_t r;
        run_begin(&r, &OPENAI_SSE);
        run_feed(&r, buf, k);
        run_feed(&r, buf + k, len - k);
        run_end(&r);
        char *got = normalized_output(&r);
        cr_assert_str_eq(got, want, "%s split at byte %zu renders differently", name, k);
        cr_assert_eq(gw_stream_status(r.s), gw_stream_status(whole.s), "split at %zu", k);
        free(got);
        run_free(&r);
    }
    free(want);
    run_free(&whole);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: text                                                                                */

TestSuite(chat_completions, .timeout = 60);

Test(chat_completions, text_whole, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_text.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!");
    cr_assert_eq(c.m->it[0].n_deltas, 3, "one delta per non-empty content chunk");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* created, in_progress, added, part added, 3 deltas, text done, part done, item done, completed */
    cr_assert_eq(c.m->n_events, 11);
    const gw_json_t *resp = terminal_response(&c);
    check_usage(resp, 12, 5, 17, 4, 2);
    /* Echoed request fields. */
    cr_assert_str_eq(js(resp, "instructions"), "Be terse.");
    cr_assert_str_eq(js(jget(resp, "metadata"), "ticket"), "T-17");
    cr_assert_eq(jget(resp, "temperature")->type, GW_JSON_NUMBER);
    cr_assert_eq(jget(resp, "temperature")->str.len, 4);
    cr_assert_eq(memcmp(jget(resp, "temperature")->str.base, "0.25", 4), 0);
    cr_assert_str_eq(js(gw_json_at(jget(resp, "tools"), 0), "name"), "get_weather");
    /* The created event carries no usage yet. */
    cr_assert_eq(jget(jget(c.v.ev[0].j, "response"), "usage")->type, GW_JSON_NULL);
    cr_assert_eq(gw_stream_status(c.r.s), GW_FINISH_COMPLETED);
    cr_assert(gw_stream_committed(c.r.s));
    cr_assert(gw_stream_ended(c.r.s));
    cr_assert_null(gw_stream_error(c.r.s));
    gw_str_t um = gw_stream_upstream_model(c.r.s);
    cr_assert(gw_str_eq(um, UP_MODEL), "upstream model %.*s", (int)um.len, um.base);
    const ad_usage_t *u = gw_stream_usage(c.r.s);
    cr_assert(u->present);
    cr_assert_eq(u->input, 12);
    cr_assert_eq(u->cached, 4);
    checked_free(&c);
}

Test(chat_completions, text_split_every_offset, .timeout = 60)
{
    check_split_every_offset("cc_text.sse");
}

Test(chat_completions, text_byte_at_a_time, .timeout = 20)
{
    checked_t whole, bytewise;
    run_checked(&whole, "cc_text.sse", &OPENAI_SSE, 0);
    run_checked(&bytewise, "cc_text.sse", &OPENAI_SSE, 1);
    char *a = normalized_output(&whole.r), *b = normalized_output(&bytewise.r);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    checked_free(&whole);
    checked_free(&bytewise);
}

Test(chat_completions, crlf_framing_renders_like_lf, .timeout = 20)
{
    checked_t lf, crlf;
    run_checked(&lf, "cc_text.sse", &OPENAI_SSE, 0);
    run_checked(&crlf, "cc_crlf.sse", &OPENAI_SSE, 0);
    check_message(&crlf.m->it[0], "output_text", "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!");
    char *a = normalized_output(&lf.r), *b = normalized_output(&crlf.r);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    checked_free(&lf);
    checked_free(&crlf);
}

Test(chat_completions, crlf_split_every_offset, .timeout = 60)
{
    /* A CR at the end of one read and its LF at the start of the next are one line end. */
    check_split_every_offset("cc_crlf.sse");
}

Test(chat_completions, comment_lines_are_keepalives, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_comments.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Alpha beta");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* The golden has four comment lines; the first precedes the first event (nothing committed
     * yet, so nothing is written); the three later ones each become one client keepalive. */
    cr_assert_eq(c.m->n_comments, 3);
    cr_assert_not(buf_has(&c.r.out, "OPENROUTER"), "upstream comment text must not be forwarded");
    checked_free(&c);
}

Test(chat_completions, data_split_across_two_data_lines, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_multiline_data.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Two lines");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(jget(terminal_response(&c), "usage")->type, GW_JSON_NULL, "no upstream usage -> null");
    checked_free(&c);
}

Test(chat_completions, unknown_fields_and_delta_kinds_ignored, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_unknown_fields.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Known text");
    /* An unknown finish_reason string completes (§7.3). */
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 9, 2, 11, 0, 0);
    /* Other choices, deltas after finish_reason and data after [DONE] never reach the client. */
    cr_assert_not(buf_has(&c.r.out, "OTHER CHOICE"));
    cr_assert_not(buf_has(&c.r.out, "IGNORED"));
    cr_assert_not(buf_has(&c.r.out, "AFTER FINISH"));
    cr_assert_not(buf_has(&c.r.out, "AFTER DONE"));
    cr_assert_not(buf_has(&c.r.out, "weird_kind"));
    checked_free(&c);
}

Test(chat_completions, done_without_finish_reason_completes, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_done_no_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "No finish reason.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(chat_completions, eof_after_finish_reason_completes, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_eof_after_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Complete answer.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 3, 3, 6, 0, 0);
    checked_free(&c);
}

Test(chat_completions, utf8_surrogate_pair_split_across_chunks, .timeout = 20)
{
    /* §8: "\ud83d" then "\ude00" in the next chunk must arrive as one U+1F600. */
    checked_t c;
    run_checked(&c, "cc_surrogate_split.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "A\xf0\x9f\x98\x80"
                                         "B");
    checked_free(&c);
}

/* Feed one literal stream, check it, and return the single message's text via c. */
static void run_literal(checked_t *c, const char *stream, size_t len)
{
    run_begin(&c->r, &OPENAI_SSE);
    run_feed(&c->r, stream, len);
    run_end(&c->r);
    parse_rendered(&c->v, &c->r.out);
    c->m = calloc(1, sizeof(*c->m));
    cr_assert_not_null(c->m);
    check_stream(&c->v, GW_FRONT_OPENAI, c->m);
}

Test(chat_completions, utf8_lone_surrogate_becomes_replacement_char, .timeout = 20)
{
    /* §8: a leftover lone surrogate becomes U+FFFD (no abort). */
    static const char s[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\\ud83d\"}}]}\n\n"
                            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                            "data: [DONE]\n\n";
    checked_t c;
    run_literal(&c, s, sizeof(s) - 1);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "A\xef\xbf\xbd");
    checked_free(&c);
}

Test(chat_completions, utf8_invalid_byte_becomes_replacement_char, .timeout = 20)
{
    static const char s[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\xff"
                            "B\"}}]}\n\n"
                            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                            "data: [DONE]\n\n";
    checked_t c;
    run_literal(&c, s, sizeof(s) - 1);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "A\xef\xbf\xbd"
                                         "B");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: tool calls                                                                          */

Test(chat_completions, three_parallel_tool_calls, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_tools_parallel3.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    /* output_index in announcement order; arguments unmixed. */
    check_call(&c.m->it[0], "call_a", "get_weather", "{\"city\":\"Paris\"}");
    check_call(&c.m->it[1], "call_b", "get_time", "{\"tz\":\"UTC\"}");
    check_call(&c.m->it[2], "call_c", "get_news", "{\"topic\":\"rust\"}");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    cr_assert_eq(c.m->it[1].n_deltas, 1);
    cr_assert_eq(c.m->it[2].n_deltas, 2);
    /* Deltas stream interleaved as they arrived (fragments forwarded one to one), not grouped. */
    const char *order[5];
    size_t n = 0;
    for (size_t i = 0; i < c.v.n; i++)
        if (c.v.ev[i].j && strcmp(js(c.v.ev[i].j, "type"), "response.function_call_arguments.delta") == 0) {
            cr_assert_lt(n, 5);
            order[n++] = js(c.v.ev[i].j, "item_id");
        }
    cr_assert_eq(n, 5);
    cr_assert_str_eq(order[0], c.m->it[0].id);
    cr_assert_str_eq(order[1], c.m->it[1].id);
    cr_assert_str_eq(order[2], c.m->it[2].id);
    cr_assert_str_eq(order[3], c.m->it[0].id);
    cr_assert_str_eq(order[4], c.m->it[2].id);
    /* Items close in output_index order at finish_reason. */
    int64_t last = -1;
    for (size_t i = 0; i < c.v.n; i++)
        if (c.v.ev[i].j && strcmp(js(c.v.ev[i].j, "type"), "response.output_item.done") == 0) {
            cr_assert_gt(ji(c.v.ev[i].j, "output_index"), last);
            last = ji(c.v.ev[i].j, "output_index");
        }
    cr_assert_eq(last, 2);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 85, 31, 116, 0, 0);
    checked_free(&c);
}

Test(chat_completions, three_parallel_tool_calls_split_every_offset, .timeout = 60)
{
    check_split_every_offset("cc_tools_parallel3.sse");
}

Test(chat_completions, text_then_two_tool_calls, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_text_then_tools.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    check_message(&c.m->it[0], "output_text", "Let me check both.");
    check_call(&c.m->it[1], "call_w", "get_weather", "{\"city\":\"Oslo\"}");
    check_call(&c.m->it[2], "call_t", "get_time", "{\"tz\":\"CET\"}");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 40, 22, 62, 0, 0);
    checked_free(&c);
}

Test(chat_completions, tool_arguments_only_in_finish_chunk, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_tool_args_in_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_call(&c.m->it[0], "call_f", "lookup", "{\"q\":\"agate\"}");
    cr_assert_eq(c.m->it[0].n_deltas, 1, "the finish chunk's delta is applied before its finish_reason");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(jget(terminal_response(&c), "usage")->type, GW_JSON_NULL);
    checked_free(&c);
}

Test(chat_completions, tool_call_with_empty_arguments, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_tool_empty_args.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_call(&c.m->it[0], "call_e", "get_time", "{}");
    cr_assert_eq(c.m->it[0].n_deltas, 1, "empty arguments get one synthetic \"{}\" delta");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(chat_completions, ollama_whole_call_in_one_piece, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_ollama_whole_call.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1, "role/empty-content chunks open no message");
    check_call(&c.m->it[0], "call_o1", "get_weather", "{\"city\":\"Lyon\"}");
    cr_assert_eq(c.m->it[0].n_deltas, 1);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 60, 18, 78, 0, 0);
    gw_str_t um = gw_stream_upstream_model(c.r.s);
    cr_assert(gw_str_eq(um, "llama3.2"));
    checked_free(&c);
}

Test(chat_completions, arguments_before_id_named_call_without_id_nameless_call, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_tool_late_id.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2, "the nameless call is dropped");
    /* Arguments buffered before the announcement are flushed as one delta, later ones 1:1. */
    check_call(&c.m->it[0], "call_late", "late_fn", "{\"a\":1}");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    /* A named call still lacking an id is announced at finish with a minted call_ + 24 hex. */
    cr_assert_str_eq(c.m->it[1].name, "no_id_fn");
    cr_assert_str_eq(c.m->it[1].args, "{\"x\":2}");
    cr_assert_eq(strncmp(c.m->it[1].call_id, "call_", 5), 0);
    cr_assert_eq(strlen(c.m->it[1].call_id), 5 + 24);
    for (size_t i = 5; i < 29; i++)
        cr_assert(is_hex(c.m->it[1].call_id[i]));
    cr_assert_not(buf_has(&c.r.out, "call_nameless"));
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(chat_completions, legacy_function_call_delta, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_legacy_function_call.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].type, "function_call");
    cr_assert_str_eq(c.m->it[0].name, "get_time");
    cr_assert_str_eq(c.m->it[0].args, "{\"tz\":\"UTC\"}");
    cr_assert_eq(strncmp(c.m->it[0].call_id, "call_", 5), 0);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(chat_completions, item_kind_switches_open_new_items, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_mixed_order.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 6);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].text[0], "R1");
    check_message(&c.m->it[1], "output_text", "T1");
    cr_assert_str_eq(c.m->it[2].type, "reasoning");
    cr_assert_str_eq(c.m->it[2].text[0], "R2");
    /* Switching text -> refusal closes the part and adds a refusal part at content_index 1. */
    cr_assert_str_eq(c.m->it[3].type, "message");
    cr_assert_eq(c.m->it[3].n_parts, 2);
    cr_assert_str_eq(c.m->it[3].part_type[0], "output_text");
    cr_assert_str_eq(c.m->it[3].text[0], "T2");
    cr_assert_str_eq(c.m->it[3].part_type[1], "refusal");
    cr_assert_str_eq(c.m->it[3].text[1], "F");
    check_call(&c.m->it[4], "call_m", "f", "{}");
    /* Text after a tool call opens a new message at the next output_index. */
    check_message(&c.m->it[5], "output_text", "T3");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: reasoning, refusal, incomplete                                                      */

Test(chat_completions, reasoning_content_then_content, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_reasoning_content.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_eq(c.m->it[0].n_parts, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "The user greets. Answer briefly.");
    cr_assert_eq(c.m->it[0].n_deltas, 2, "the empty reasoning_content opens nothing");
    check_message(&c.m->it[1], "output_text", "Hi! How can I help?");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* total_tokens absent upstream: the sum (§7.4). */
    check_usage(terminal_response(&c), 20, 30, 50, 0, 9);
    cr_assert_eq(count_type(&c.v, "response.reasoning_summary_part.added"), 1);
    checked_free(&c);
}

Test(chat_completions, reasoning_field_variant, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_reasoning_field.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].text[0], "Thinking...");
    check_message(&c.m->it[1], "output_text", "Done.");
    check_usage(terminal_response(&c), 7, 8, 15, 0, 5);
    checked_free(&c);
}

Test(chat_completions, refusal_part, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_refusal.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "refusal", "I can't help with that.");
    cr_assert_eq(count_type(&c.v, "response.refusal.delta"), 2);
    cr_assert_eq(count_type(&c.v, "response.refusal.done"), 1);
    cr_assert_eq(count_type(&c.v, "response.output_text.delta"), 0);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(chat_completions, finish_reason_length_is_incomplete, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_length.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Once upon a time");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    cr_assert_str_eq(c.m->terminal_type, "response.incomplete");
    const gw_json_t *resp = terminal_response(&c);
    cr_assert_str_eq(js(jget(resp, "incomplete_details"), "reason"), "max_output_tokens");
    cr_assert_eq(jget(resp, "error")->type, GW_JSON_NULL);
    check_usage(resp, 5, 4, 9, 0, 0);
    cr_assert_eq(gw_stream_status(c.r.s), GW_FINISH_INCOMPLETE);
    checked_free(&c);
}

Test(chat_completions, finish_reason_content_filter_is_incomplete, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_content_filter.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Here is how to");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    cr_assert_str_eq(c.m->terminal_type, "response.incomplete");
    cr_assert_str_eq(js(jget(terminal_response(&c), "incomplete_details"), "reason"), "content_filter");
    checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: failures                                                                            */

Test(chat_completions, in_stream_error_object_after_first_chunk, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_error_object.sse", &OPENAI_SSE, 0);
    cr_assert_lt(c.r.feed_rc, 0, "feed reports the failure");
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Partial");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    /* Upstream code 400 -> invalid_prompt / upstream_bad_request / BAD_REQUEST (§7.6). */
    check_failure(&c, "This model's maximum context length is 4096 tokens", "invalid_prompt",
                  "invalid_request_error", "upstream_bad_request", "BAD_REQUEST");
    cr_assert_eq(jget(terminal_response(&c), "usage")->type, GW_JSON_NULL);
    checked_free(&c);
}

Test(chat_completions, in_stream_error_object_split_every_offset, .timeout = 60)
{
    check_split_every_offset("cc_error_object.sse");
}

Test(chat_completions, error_as_first_event_writes_nothing, .timeout = 20)
{
    run_t r;
    run_golden(&r, "cc_error_first.sse", &OPENAI_SSE, 0);
    cr_assert_lt(r.feed_rc, 0);
    cr_assert_eq(r.out.len, 0, "an uncommitted failure becomes a plain HTTP error");
    cr_assert_not(gw_stream_committed(r.s));
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_RATE_LIMIT, "upstream code 429 maps to rate limit");
    cr_assert_str_eq(e->message, "rate limited by provider");
    run_free(&r);
}

Test(chat_completions, llama_cpp_error_field_line, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_error_field.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Par");
    check_failure(&c, "llama_decode failed: KV cache full", "server_error", "server_error", "upstream_error",
                  "INTERNAL_ERROR");
    checked_free(&c);
}

Test(chat_completions, openrouter_finish_reason_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_openrouter_error.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Work");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "Provider returned error", "server_error", "server_error", "upstream_error",
                  "INTERNAL_ERROR");
    cr_assert_eq(c.m->n_comments, 0, "a comment before commit writes no keepalive");
    checked_free(&c);
}

Test(chat_completions, eof_before_finish_reason_fails, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_eof_before_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_lt(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 2);
    check_message(&c.m->it[0], "output_text", "Cut off");
    cr_assert_str_eq(c.m->it[0].status, "completed", "closed when the tool call was announced");
    check_call(&c.m->it[1], "call_z", "get_time", "{\"tz\":");
    cr_assert_str_eq(c.m->it[1].status, "incomplete");
    check_failure(&c, "upstream stream ended prematurely", "server_error", "server_error", "upstream_error",
                  "INTERNAL_ERROR");
    checked_free(&c);
}

Test(chat_completions, databricks_output_error_in_stream, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_databricks_error.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "output_text", "Hal");
    /* §6.3: databricks_output.error is an error "with its error_code": REQUEST_LIMIT_EXCEEDED is
     * the rate-limit row of §7.6. */
    check_failure(&c, "Exceeded the rate limit", "rate_limit_exceeded", "rate_limit_error",
                  "rate_limit_exceeded", "REQUEST_LIMIT_EXCEEDED");
    checked_free(&c);
}

Test(chat_completions, done_only_stream_completes_empty, .timeout = 20)
{
    /* §7.3: no finish_reason but [DONE] seen -> completed (warn). */
    static const char s[] = ": ping\n\ndata: [DONE]\n\n";
    checked_t c;
    run_literal(&c, s, sizeof(s) - 1);
    cr_assert_eq(c.m->n, 0);
    cr_assert_eq(c.m->n_events, 3, "created, in_progress, completed");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(jget(terminal_response(&c), "output")->len, 0);
    checked_free(&c);
}

Test(chat_completions, empty_body_fails_uncommitted, .timeout = 20)
{
    run_t r;
    run_begin(&r, &OPENAI_SSE);
    run_feed(&r, ": ping\n\n", 8);
    run_end(&r);
    cr_assert_lt(r.finish_rc, 0);
    cr_assert_eq(r.out.len, 0, "nothing was committed: the owner answers with an HTTP error");
    cr_assert_not(gw_stream_committed(r.s));
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_UPSTREAM);
    cr_assert_str_eq(e->message, "upstream stream ended prematurely");
    run_free(&r);
}

Test(chat_completions, invalid_json_event_fails, .timeout = 20)
{
    static const char s[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n"
                            "data: {\"choices\":[{\"index\":0,\n\n";
    run_t r;
    run_begin(&r, &OPENAI_SSE);
    run_feed(&r, s, sizeof(s) - 1);
    run_end(&r);
    revs_t v;
    parse_rendered(&v, &r.out);
    checked_t c = {.r = r, .v = v, .m = calloc(1, sizeof(sum_t))};
    check_stream(&c.v, GW_FRONT_OPENAI, c.m);
    check_message(&c.m->it[0], "output_text", "ok");
    check_failure(&c, "upstream sent invalid JSON in its stream", "server_error", "server_error",
                  "upstream_error", "INTERNAL_ERROR");
    checked_free(&c);
}

Test(chat_completions, oversized_event_fails, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.max_event = 1024;
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n");
    gw_buf_append_cstr(&b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
    for (int i = 0; i < 2000; i++)
        gw_buf_append(&b, "x", 1);
    gw_buf_append_cstr(&b, "\"}}]}\n\n");
    run_t r;
    run_begin(&r, &o);
    run_feed(&r, b.base, b.len);
    run_end(&r);
    cr_assert_lt(r.feed_rc, 0);
    revs_t v;
    parse_rendered(&v, &r.out);
    checked_t c = {.r = r, .v = v, .m = calloc(1, sizeof(sum_t))};
    check_stream(&c.v, GW_FRONT_OPENAI, c.m);
    check_message(&c.m->it[0], "output_text", "ok");
    check_failure(&c, "upstream stream event exceeds the size limit", "server_error", "server_error",
                  "upstream_error", "INTERNAL_ERROR");
    cr_assert_not(buf_has(&c.r.out, "xxxx"));
    checked_free(&c);
    gw_buf_dispose(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: non-SSE JSON answer                                                                 */

Test(chat_completions, json_completion_body, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    checked_t c;
    run_checked(&c, "cc_json_completion.json", &o, 0);
    cr_assert_eq(c.m->n, 4);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].text[0], "Need a tool.");
    check_message(&c.m->it[1], "output_text", "Checking the weather.");
    check_call(&c.m->it[2], "call_j1", "get_weather", "{\"city\":\"Rome\"}");
    check_call(&c.m->it[3], "call_j2", "get_time", "{}");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 50, 20, 70, 32, 6);
    checked_free(&c);
}

Test(chat_completions, json_completion_media_type_is_case_insensitive, .timeout = 20)
{
    /* RFC 9110 §8.3.1: type and subtype are case-insensitive. */
    run_opts_t o = OPENAI_SSE;
    o.content_type = "Application/JSON";
    checked_t c;
    run_checked(&c, "cc_json_completion.json", &o, 0);
    cr_assert_eq(c.m->n, 4);
    check_message(&c.m->it[1], "output_text", "Checking the weather.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(chat_completions, json_completion_body_split, .timeout = 30)
{
    run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    checked_t whole;
    run_checked(&whole, "cc_json_completion.json", &o, 0);
    char *want = normalized_output(&whole.r);
    for (size_t step = 1; step < 64; step += 7) {
        checked_t c;
        run_checked(&c, "cc_json_completion.json", &o, step);
        char *got = normalized_output(&c.r);
        cr_assert_str_eq(got, want, "JSON body fed in %zu-byte pieces", step);
        free(got);
        checked_free(&c);
    }
    free(want);
    checked_free(&whole);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: every golden, random chunking                                                       */

Test(chat_completions, all_goldens_random_chunks, .timeout = 60)
{
    static const char *const names[] = {
        "cc_text.sse",
        "cc_crlf.sse",
        "cc_tools_parallel3.sse",
        "cc_text_then_tools.sse",
        "cc_tool_args_in_finish.sse",
        "cc_tool_empty_args.sse",
        "cc_ollama_whole_call.sse",
        "cc_reasoning_content.sse",
        "cc_reasoning_field.sse",
        "cc_refusal.sse",
        "cc_length.sse",
        "cc_content_filter.sse",
        "cc_error_object.sse",
        "cc_error_field.sse",
        "cc_openrouter_error.sse",
        "cc_eof_after_finish.sse",
        "cc_eof_before_finish.sse",
        "cc_done_no_finish.sse",
        "cc_comments.sse",
        "cc_multiline_data.sse",
        "cc_unknown_fields.sse",
        "cc_mixed_order.sse",
        "cc_tool_late_id.sse",
        "cc_legacy_function_call.sse",
        "cc_databricks_error.sse",
    };
    unsigned seed = 4242;
    for (size_t g = 0; g < sizeof(names) / sizeof(names[0]); g++) {
        size_t len;
        char *buf = read_data(names[g], &len);
        checked_t whole;
        run_checked(&whole, names[g], &OPENAI_SSE, 0);
        char *want = normalized_output(&whole.r);
        for (int iter = 0; iter < 40; iter++) {
            run_t r;
            run_begin(&r, &OPENAI_SSE);
            size_t off = 0;
            while (off < len) {
                seed = seed * 1103515245u + 12345u;
                size_t n = 1 + (seed >> 16) % 97;
                if (n > len - off)
                    n = len - off;
                run_feed(&r, buf + off, n);
                off += n;
            }
            run_end(&r);
            char *got = normalized_output(&r);
            cr_assert_str_eq(got, want, "%s: random chunking (iteration %d) renders differently", names[g],
                             iter);
            free(got);
            run_free(&r);
        }
        free(want);
        checked_free(&whole);
        free(buf);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* tests: Databricks front and non-stream mode                                                */

static const run_opts_t DBX_SSE = {GW_FRONT_DATABRICKS, true, SSE_CT, MiB};

Test(chat_completions, databricks_front_text, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_text.sse", &DBX_SSE, 0);
    cr_assert(c.m->done_marker);
    cr_assert_eq(c.v.n, c.m->n_events + 1);
    const char *tail = "data: [DONE]\n\n";
    cr_assert_geq(c.r.out.len, strlen(tail));
    cr_assert_eq(memcmp(c.r.out.base + c.r.out.len - strlen(tail), tail, strlen(tail)), 0);
    cr_assert_not(buf_has(&c.r.out, "event:"), "no event: lines on the Databricks route");
    check_message(&c.m->it[0], "output_text", "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_usage(terminal_response(&c), 12, 5, 17, 4, 2);
    /* §5.2: the last data event carries databricks_output. */
    const gw_json_t *dbx = jget(c.m->terminal, "databricks_output");
    cr_assert_str_eq(js(dbx, "databricks_request_id"), REQ_ID);
    cr_assert_null(gw_json_get(dbx, "error"));
    checked_free(&c);
}

Test(chat_completions, databricks_front_tools, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_tools_parallel3.sse", &DBX_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    check_call(&c.m->it[1], "call_b", "get_time", "{\"tz\":\"UTC\"}");
    cr_assert(c.m->done_marker);
    checked_free(&c);
}

Test(chat_completions, databricks_front_failure, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "cc_error_object.sse", &DBX_SSE, 0);
    check_failure(&c, "This model's maximum context length is 4096 tokens", "invalid_prompt",
                  "invalid_request_error", "upstream_bad_request", "BAD_REQUEST");
    cr_assert(c.m->done_marker, "failure on the Databricks route ends with [DONE]");
    /* The error event is the last data event before [DONE]. */
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->error_ev);
    checked_free(&c);
}

/* Non-stream output must equal the terminal event's response of the same upstream bytes. */
static void check_nonstream_equals_stream(const char *name, const char *ct)
{
    run_opts_t so = OPENAI_SSE, no = OPENAI_SSE;
    so.content_type = no.content_type = ct;
    no.stream = false;
    checked_t c;
    run_checked(&c, name, &so, 0);
    run_t r;
    run_golden(&r, name, &no, 0);
    cr_assert_gt(r.out.len, 0);
    cr_assert_eq(r.out.base[0], '{', "non-stream output is one JSON object, no SSE framing");
    gw_json_t *obj;
    cr_assert_eq(gw_json_parse(c.v.a, r.out.base, r.out.len, &obj, NULL), 0, "non-stream output is not JSON");
    cr_assert_eq(obj->type, GW_JSON_OBJECT);
    char *a = json_text(terminal_response(&c)), *b = json_text(obj);
    char *na = normalize(a, strlen(a)), *nb = normalize(b, strlen(b));
    cr_assert_str_eq(nb, na, "%s: non-stream body differs from the terminal event's response", name);
    /* Same generator, same bytes: the raw output is that object with nothing around it. */
    char *raw = normalized_output(&r);
    cr_assert_str_eq(raw, na);
    cr_assert_eq(gw_stream_status(r.s), gw_stream_status(c.r.s));
    free(raw);
    free(a);
    free(b);
    free(na);
    free(nb);
    run_free(&r);
    checked_free(&c);
}

Test(chat_completions, nonstream_text, .timeout = 20)
{
    check_nonstream_equals_stream("cc_text.sse", SSE_CT);
}

Test(chat_completions, nonstream_tools, .timeout = 20)
{
    check_nonstream_equals_stream("cc_tools_parallel3.sse", SSE_CT);
}

Test(chat_completions, nonstream_reasoning_and_incomplete, .timeout = 20)
{
    check_nonstream_equals_stream("cc_reasoning_content.sse", SSE_CT);
    check_nonstream_equals_stream("cc_length.sse", SSE_CT);
}

Test(chat_completions, nonstream_json_body, .timeout = 20)
{
    check_nonstream_equals_stream("cc_json_completion.json", JSON_CT);
}

Test(chat_completions, nonstream_failure_writes_nothing, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.stream = false;
    run_t r;
    run_golden(&r, "cc_error_object.sse", &o, 0);
    cr_assert_eq(r.out.len, 0, "non-stream failures become HTTP errors");
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_UPSTREAM_BAD_REQUEST);
    cr_assert_str_eq(e->message, "This model's maximum context length is 4096 tokens");
    /* The partial output still reaches the table aggregate. */
    gw_str_t agg = gw_stream_aggregate(r.s);
    cr_assert_gt(agg.len, 0);
    gw_arena_t *a = gw_arena_new();
    gw_json_t *obj;
    cr_assert_eq(gw_json_parse(a, agg.base, agg.len, &obj, NULL), 0);
    cr_assert_str_eq(js(obj, "status"), "failed");
    const gw_json_t *item = gw_json_at(jget(obj, "output"), 0);
    cr_assert_str_eq(js(item, "status"), "incomplete");
    cr_assert_str_eq(js(gw_json_at(jget(item, "content"), 0), "text"), "Partial");
    gw_arena_free(a);
    run_free(&r);
}

Test(chat_completions, nonstream_databricks_adds_databricks_output, .timeout = 20)
{
    run_opts_t so = DBX_SSE, no = DBX_SSE;
    no.stream = false;
    checked_t c;
    run_checked(&c, "cc_text.sse", &so, 0);
    run_t r;
    run_golden(&r, "cc_text.sse", &no, 0);
    gw_json_t *obj;
    cr_assert_eq(gw_json_parse(c.v.a, r.out.base, r.out.len, &obj, NULL), 0);
    cr_assert_str_eq(js(jget(obj, "databricks_output"), "databricks_request_id"), REQ_ID);
    cr_assert_str_eq(js(obj, "status"), "completed");
    /* Every key of the terminal response is there with the same value. */
    const gw_json_t *resp = terminal_response(&c);
    for (const gw_json_t *k = resp->child; k; k = k->next) {
        char key[64];
        cr_assert_lt(k->key.len, sizeof(key));
        memcpy(key, k->key.base, k->key.len);
        key[k->key.len] = '\0';
        char *a = json_text(k), *b = json_text(jget(obj, key));
        char *na = normalize(a, strlen(a)), *nb = normalize(b, strlen(b));
        cr_assert_str_eq(nb, na, "key %s", key);
        free(a);
        free(b);
        free(na);
        free(nb);
    }
    run_free(&r);
    checked_free(&c);
}
