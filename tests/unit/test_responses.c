/* Responses upstream adapter driven through the real pipeline: recorded upstream streams
 * (tests/data/rs_*, OpenAI flavour from the mock's /responses route, rs_ml_* MLflow flavour from
 * /invocations, plus hand-written edge cases) go through ad_responses.start/feed/finish into
 * gw_stream, whose rendered Responses SSE is parsed back with gw_sse + gw_json and checked against
 * PROTOCOL.md §4.2/§4.3/§5.2/§5.3/§7.7/§9, event by event. Also ad_responses.encode_request. */
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
#define UP_MODEL     "upstream-model"
#define MiB          ((size_t)1024 * 1024)
#define SSE_CT       "text/event-stream; charset=utf-8"
#define JSON_CT      "application/json"
#define PROTO_ERR    "upstream protocol error: "

/* The client request whose fields the lifecycle responses echo. */
static const char REQ_BODY[] =
    "{\"model\":\"" CLIENT_MODEL "\",\"input\":\"Weather?\",\"instructions\":\"Be terse.\","
    "\"metadata\":{\"ticket\":\"T-17\"},\"temperature\":0.25,"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}]}";

/* A Databricks-route request asking for the trace. */
static const char REQ_TRACE[] =
    "{\"input\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"custom_inputs\":{\"thread\":\"abc\"},"
    "\"databricks_options\":{\"return_trace\":true}}";

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

static bool str_has(gw_str_t s, const char *needle)
{
    gw_buf_t b = {.base = (char *)s.base, .len = s.len, .cap = s.len};
    return buf_has(&b, needle);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Mask the random parts of minted ids (msg_/fc_/rs_ + 32 hex, call_ + 24 hex) so two runs of the
 * same upstream bytes can be compared byte for byte. Upstream ids pass through unmasked. */
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

/* Raw text of a number member exactly as written. */
static bool jnum_is(const gw_json_t *o, const char *key, const char *text)
{
    const gw_json_t *v = jget(o, key);
    return v->type == GW_JSON_NUMBER && v->str.len == strlen(text) &&
           memcmp(v->str.base, text, v->str.len) == 0;
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
    gw_flavor_t flavor;
    const char *req_body; /** NULL: REQ_BODY */
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

static const run_opts_t OPENAI_SSE = {GW_FRONT_OPENAI, true, SSE_CT, MiB, GW_FLAVOR_OPENAI, NULL};
static const run_opts_t ML_SSE = {GW_FRONT_OPENAI, true, SSE_CT, MiB, GW_FLAVOR_MLFLOW, NULL};
static const run_opts_t DBX_SSE = {GW_FRONT_DATABRICKS, true, SSE_CT, MiB, GW_FLAVOR_OPENAI, NULL};
static const run_opts_t DBX_ML_TRACE = {GW_FRONT_DATABRICKS, true, SSE_CT, MiB, GW_FLAVOR_MLFLOW, REQ_TRACE};

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
    const char *body = o->req_body ? o->req_body : REQ_BODY;
    cr_assert_eq(gw_request_parse(r->a, gw_str(body), o->front == GW_FRONT_DATABRICKS, &r->req, &err), 0,
                 "request rejected: %s", err.message);
    r->up = (gw_upstream_cfg_t){.url = "http://127.0.0.1:9/v1", .weight = 1};
    r->ep = (gw_endpoint_cfg_t){
        .name = CLIENT_MODEL,
        .adapter = GW_ADAPTER_RESPONSES,
        .flavor = o->flavor,
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
    r->st = ad_responses.start(r->a, &r->ep, &r->lim, gw_stream_emitter(r->s), gw_str(o->content_type));
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
    int rc = ad_responses.feed(r->st, c, len);
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
        r->finish_rc = ad_responses.finish(r->st);
        r->finished = true;
        drain(r);
    }
    ad_responses.dispose(r->st);
    r->st = NULL;
}

static void run_free(run_t *r)
{
    if (r->st)
        ad_responses.dispose(r->st);
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
    char id[96];
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
    /* §7.7: response.id and response.model are rewritten in every event. */
    cr_assert_str_eq(js(resp, "id"), RESP_ID);
    cr_assert_str_eq(js(resp, "object"), "response");
    cr_assert_eq(ji(resp, "created_at"), CREATED);
    const char *model = js(resp, "model");
    cr_assert(strcmp(model, CLIENT_MODEL) == 0, "model %s must be the client's, never the upstream's", model);
    cr_assert_str_eq(js(resp, "status"), status);
    cr_assert_eq(jget(resp, "output")->type, GW_JSON_ARRAY);
    cr_assert_eq(jget(resp, "tools")->type, GW_JSON_ARRAY);
    jget(resp, "usage");
    jget(resp, "parallel_tool_calls");
    jget(resp, "tool_choice");
    jget(resp, "metadata");
    cr_assert_null(gw_json_get(resp, "output_text"), "output_text is SDK-computed, never sent");
}

static sitem_t *item_at(sum_t *m, const gw_json_t *ev, bool with_item_id)
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
        /* MLflow rejects empty content; only an item the upstream announced and then abandoned in
         * a failure may end up empty. */
        if (strcmp(st, "completed") == 0)
            cr_assert_gt(content->len, 0, "a completed message must not have empty content");
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
    cr_assert_gt(strlen(it->id), 0, "every item needs a non-empty id");
    cr_assert_str_eq(js(item, "status"), "in_progress");
    for (size_t k = 0; k + 1 < m->n; k++)
        cr_assert_str_neq(m->it[k].id, it->id, "item ids must be unique");
    if (strcmp(it->type, "message") == 0) {
        cr_assert_str_eq(js(item, "role"), "assistant");
        cr_assert_eq(jget(item, "content")->len, 0);
    } else if (strcmp(it->type, "function_call") == 0) {
        copy_text(it->call_id, sizeof(it->call_id), js(item, "call_id"));
        copy_text(it->name, sizeof(it->name), js(item, "name"));
        cr_assert_gt(strlen(it->call_id), 0, "function_call announced without call_id");
        cr_assert_gt(strlen(it->name), 0, "function_call announced without name");
        cr_assert_str_eq(js(item, "arguments"), "");
        for (size_t k = 0; k + 1 < m->n; k++)
            if (strcmp(m->it[k].type, "function_call") == 0)
                cr_assert_str_neq(m->it[k].call_id, it->call_id, "call_ids must be unique");
    } else if (strcmp(it->type, "reasoning") == 0) {
        cr_assert_eq(jget(item, "summary")->len, 0);
    } else {
        cr_assert_fail("unexpected item type %s", it->type);
    }
}

static void on_part_added(sum_t *m, const gw_json_t *ev, bool summary)
{
    sitem_t *it = item_at(m, ev, true);
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
    sitem_t *it = item_at(m, ev, true);
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
    sitem_t *it = item_at(m, ev, true);
    cr_assert_str_eq(it->type, "function_call");
    const gw_json_t *d = jget(ev, "delta");
    cr_assert_eq(d->type, GW_JSON_STRING);
    append_text(it->args, TXT, d->str);
    it->n_deltas++;
}

static void on_args_done(sum_t *m, const gw_json_t *ev)
{
    sitem_t *it = item_at(m, ev, true);
    cr_assert_str_eq(it->type, "function_call");
    cr_assert_str_eq(js(ev, "arguments"), it->args, "argument deltas must concatenate to done.arguments");
    cr_assert_str_eq(js(ev, "name"), it->name);
    it->text_done = true;
}

static void on_item_done(sum_t *m, const gw_json_t *ev)
{
    sitem_t *it = item_at(m, ev, false);
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
            const sitem_t *it = item_at(m, e->j, true);
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
            cr_assert_fail("event type %s is not in the §4.2 catalogue (unknown upstream types never reach "
                           "clients)",
                           type);
        }
    }
    cr_assert_not_null(m->terminal, "no terminal event");
    if (strcmp(m->terminal_type, "response.failed") == 0)
        cr_assert_not_null(m->error_ev, "response.failed without the error event");
    if (front == GW_FRONT_DATABRICKS)
        cr_assert(m->done_marker, "Databricks stream must end with data: [DONE]");
    /* Rule 10: a completed response has only completed items. */
    if (strcmp(m->terminal_type, "response.completed") == 0)
        for (size_t k = 0; k < m->n; k++)
            cr_assert_str_eq(m->it[k].status, "completed", "item %zu status", k);
}

typedef struct {
    run_t r;
    revs_t v;
    sum_t *m;
} checked_t;

static void check_run(checked_t *c, gw_front_t front)
{
    parse_rendered(&c->v, &c->r.out);
    c->m = calloc(1, sizeof(*c->m));
    cr_assert_not_null(c->m);
    check_stream(&c->v, front, c->m);
}

static void run_checked(checked_t *c, const char *name, const run_opts_t *o, size_t step)
{
    run_golden(&c->r, name, o, step);
    check_run(c, o->front);
}

/* Feed one literal stream and check what was rendered. */
static void run_literal(checked_t *c, const run_opts_t *o, const char *stream)
{
    run_begin(&c->r, o);
    run_feed(&c->r, stream, strlen(stream));
    run_end(&c->r);
    check_run(c, o->front);
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

static void check_no_usage(const checked_t *c)
{
    cr_assert_eq(jget(terminal_response(c), "usage")->type, GW_JSON_NULL, "no upstream usage -> null");
}

static void check_message(const sitem_t *it, const char *id, const char *kind, const char *text)
{
    cr_assert_str_eq(it->type, "message");
    if (id)
        cr_assert_str_eq(it->id, id, "upstream item ids pass through");
    cr_assert_eq(it->n_parts, 1);
    cr_assert_str_eq(it->part_type[0], kind);
    cr_assert_str_eq(it->text[0], text);
}

static void check_call(const sitem_t *it, const char *id, const char *call_id, const char *name,
                       const char *args)
{
    cr_assert_str_eq(it->type, "function_call");
    if (id)
        cr_assert_str_eq(it->id, id, "upstream item ids pass through");
    cr_assert_str_eq(it->call_id, call_id, "upstream call_ids pass through");
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
    /* §5.3: open items are closed incomplete in the failed response. */
    for (size_t k = 0; k < c->m->n; k++)
        cr_assert_str_neq(c->m->it[k].status, "in_progress");
}

/* A protocol violation: §5.3 with an "upstream protocol error: ..." message (502 row of §7.6). */
static void check_violation(const checked_t *c, const char *what)
{
    char want[512];
    snprintf(want, sizeof(want), PROTO_ERR "%s", what);
    check_failure(c, want, "server_error", "server_error", "upstream_error", "INTERNAL_ERROR");
}

static size_t count_type(const revs_t *v, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].j && strcmp(js(v->ev[i].j, "type"), type) == 0)
            n++;
    return n;
}

/* The rendered event types joined with ',' (malloc'd), [DONE] as "[DONE]". */
static char *type_list(const revs_t *v)
{
    gw_buf_t b;
    gw_buf_init(&b);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            gw_buf_append(&b, ",", 1);
        gw_buf_append_cstr(&b, v->ev[i].j ? js(v->ev[i].j, "type") : "[DONE]");
    }
    gw_buf_append(&b, "", 1);
    size_t n;
    return gw_buf_steal(&b, &n);
}

static char *normalized_output(const run_t *r)
{
    return normalize(r->out.base ? r->out.base : "", r->out.len);
}

/* Whole-feed rendering vs. a feed split in two at every byte offset: identical bytes. */
static void check_split_every_offset(const char *name, const run_opts_t *o)
{
    size_t len;
    char *buf = read_data(name, &len);
    run_t whole;
    run_golden(&whole, name, o, 0);
    char *want = normalized_output(&whole);
    cr_assert_gt(strlen(want), 0);
    for (size_t k = 0; k <= len; k++) {
        run_t r;
        run_begin(&r, o);
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
/* tests: OpenAI flavour (recorded from the mock's /responses route)                          */

TestSuite(responses, .timeout = 60);

Test(responses, path_per_flavor, .timeout = 10)
{
    gw_endpoint_cfg_t ep = {.flavor = GW_FLAVOR_OPENAI};
    cr_assert_str_eq(ad_responses.path(&ep), "/responses");
    ep.flavor = GW_FLAVOR_MLFLOW;
    cr_assert_str_eq(ad_responses.path(&ep), "/invocations");
    cr_assert_str_eq(ad_responses.name, "responses");
    cr_assert_eq(ad_for(GW_ADAPTER_RESPONSES), &ad_responses);
}

Test(responses, text_whole, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_text.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_eq(c.m->it[0].n_deltas, 3);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* created, in_progress, added, part added, 3 deltas, text done, part done, item done, completed:
     * sequence numbers are ours (renumbered from 0), not the upstream's. */
    cr_assert_eq(c.m->n_events, 11);
    const gw_json_t *resp = terminal_response(&c);
    check_usage(resp, 10, 3, 13, 0, 0);
    /* The upstream response id never leaks; echoed request fields are the client's. */
    cr_assert_not(buf_has(&c.r.out, "resp_upstream_1"));
    cr_assert_str_eq(js(resp, "instructions"), "Be terse.");
    cr_assert_str_eq(js(jget(resp, "metadata"), "ticket"), "T-17");
    cr_assert(jnum_is(resp, "temperature", "0.25"));
    cr_assert_str_eq(js(gw_json_at(jget(resp, "tools"), 0), "name"), "get_weather");
    cr_assert_eq(gw_stream_status(c.r.s), GW_FINISH_COMPLETED);
    cr_assert(gw_stream_committed(c.r.s));
    cr_assert_null(gw_stream_error(c.r.s));
    gw_str_t um = gw_stream_upstream_model(c.r.s);
    cr_assert(gw_str_eq(um, UP_MODEL), "upstream model %.*s", (int)um.len, um.base);
    const ad_usage_t *u = gw_stream_usage(c.r.s);
    cr_assert(u->present);
    cr_assert_eq(u->input, 10);
    cr_assert_eq(u->total, 13);
    checked_free(&c);
}

Test(responses, text_split_every_offset, .timeout = 60)
{
    check_split_every_offset("rs_text.sse", &OPENAI_SSE);
}

Test(responses, text_byte_at_a_time, .timeout = 20)
{
    checked_t whole, bytewise;
    run_checked(&whole, "rs_text.sse", &OPENAI_SSE, 0);
    run_checked(&bytewise, "rs_text.sse", &OPENAI_SSE, 1);
    char *a = normalized_output(&whole.r), *b = normalized_output(&bytewise.r);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    checked_free(&whole);
    checked_free(&bytewise);
}

Test(responses, tools_interleaved, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_tools.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    check_call(&c.m->it[0], "fc_up_1", "call_up_1", "tool_a", "{\"a\":1}");
    check_call(&c.m->it[1], "fc_up_2", "call_up_2", "tool_b", "{\"b\":2}");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    cr_assert_eq(c.m->it[1].n_deltas, 2);
    char *types = type_list(&c.v);
    cr_assert_str_eq(types, "response.created,response.in_progress,response.output_item.added,"
                            "response.output_item.added,response.function_call_arguments.delta,"
                            "response.function_call_arguments.delta,response.function_call_arguments.delta,"
                            "response.function_call_arguments.delta,response.function_call_arguments.done,"
                            "response.output_item.done,response.function_call_arguments.done,"
                            "response.output_item.done,response.completed");
    free(types);
    /* Deltas keep the upstream's interleaving. */
    const char *order[4];
    size_t n = 0;
    for (size_t i = 0; i < c.v.n; i++)
        if (c.v.ev[i].j && strcmp(js(c.v.ev[i].j, "type"), "response.function_call_arguments.delta") == 0)
            order[n++] = js(c.v.ev[i].j, "item_id");
    cr_assert_eq(n, 4);
    cr_assert_str_eq(order[0], "fc_up_1");
    cr_assert_str_eq(order[1], "fc_up_2");
    cr_assert_str_eq(order[2], "fc_up_1");
    cr_assert_str_eq(order[3], "fc_up_2");
    check_usage(terminal_response(&c), 20, 8, 28, 0, 0);
    checked_free(&c);
}

Test(responses, reasoning_then_message, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_reasoning.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].id, "rs_up_1");
    cr_assert_eq(c.m->it[0].n_parts, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "Thinking");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    check_message(&c.m->it[1], "msg_up_1", "output_text", "Done.");
    check_usage(terminal_response(&c), 10, 5, 15, 0, 2);
    checked_free(&c);
}

Test(responses, custom_outputs_on_openai_front_reach_the_aggregate, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_custom.sse", &OPENAI_SSE, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* The table aggregate keeps custom_outputs byte-exact (numbers as written). */
    gw_str_t agg = gw_stream_aggregate(c.r.s);
    cr_assert(str_has(agg, "\"custom_outputs\":{\"k\":\"v\",\"n\":1.50}"), "aggregate: %.*s", (int)agg.len,
              agg.base);
    checked_free(&c);
}

Test(responses, custom_outputs_on_databricks_front, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_custom.sse", &DBX_SSE, 0);
    cr_assert(c.m->done_marker);
    cr_assert_not(buf_has(&c.r.out, "event:"));
    const gw_json_t *co = jget(c.m->terminal, "custom_outputs");
    cr_assert_str_eq(js(co, "k"), "v");
    cr_assert(jnum_is(co, "n", "1.50"), "custom_outputs numbers pass through byte-exact");
    cr_assert_str_eq(js(jget(c.m->terminal, "databricks_output"), "databricks_request_id"), REQ_ID);
    /* The terminal event is the last data event before [DONE] (§5.2). */
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->terminal);
    checked_free(&c);
}

Test(responses, upstream_failed_then_error_event, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_error.sse", &OPENAI_SSE, 0);
    cr_assert_lt(c.r.feed_rc, 0, "feed reports the failure");
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "agent crashed", "server_error", "server_error", "upstream_error", "INTERNAL_ERROR");
    /* The upstream's own error event is not forwarded a second time. */
    cr_assert_eq(count_type(&c.v, "error"), 1);
    cr_assert_eq(count_type(&c.v, "response.failed"), 1);
    checked_free(&c);
}

Test(responses, failed_with_empty_output_closes_open_items_incomplete, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_failed_empty_output.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "msg_f1", "output_text", "Parti");
    cr_assert_str_eq(c.m->it[0].status, "incomplete", "§5.3: open items are closed incomplete on failure");
    /* rate_limit_exceeded maps to the 429 row of §7.6. */
    check_failure(&c, "quota exhausted mid-stream", "rate_limit_exceeded", "rate_limit_error",
                  "rate_limit_exceeded", "REQUEST_LIMIT_EXCEEDED");
    checked_free(&c);
}

Test(responses, error_event_alone, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_error_event.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_call(&c.m->it[0], "fc_e1", "call_e1", "lookup", "{\"q\"");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "Rate limit reached for requests", "rate_limit_exceeded", "rate_limit_error",
                  "rate_limit_exceeded", "REQUEST_LIMIT_EXCEEDED");
    checked_free(&c);
}

Test(responses, databricks_output_error_on_sparse_openai_route, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_error_dbx.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "TimeoutException: Tool XYZ failed to execute.", "invalid_prompt",
                  "invalid_request_error", "upstream_bad_request", "BAD_REQUEST");
    checked_free(&c);
}

Test(responses, unknown_event_type_dropped, .timeout = 20)
{
    checked_t c, plain;
    run_checked(&c, "rs_unknown_event.sse", &OPENAI_SSE, 0);
    run_checked(&plain, "rs_text.sse", &OPENAI_SSE, 0);
    cr_assert_not(buf_has(&c.r.out, "custom_thing"));
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* Same bytes as the stream without the unknown event. */
    char *a = normalized_output(&c.r), *b = normalized_output(&plain.r);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    checked_free(&c);
    checked_free(&plain);
}

Test(responses, unknown_event_type_dropped_on_databricks_front, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_unknown_event.sse", &DBX_SSE, 0);
    cr_assert_not(buf_has(&c.r.out, "custom_thing"));
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(responses, bad_json_after_created_is_a_protocol_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_bad_json.sse", &OPENAI_SSE, 0);
    cr_assert_lt(c.r.feed_rc, 0);
    cr_assert_eq(c.m->n, 0);
    cr_assert_eq(c.m->n_events, 4, "created, in_progress, failed, error");
    check_violation(&c, "invalid JSON in a stream event");
    checked_free(&c);
}

Test(responses, delta_after_done_is_a_protocol_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_delta_after_done.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    /* Already closed before the violation: keeps the status its output_item.done announced. */
    cr_assert_str_eq(c.m->it[0].status, "completed");
    check_violation(&c, "event for item msg_up_1 after its output_item.done");
    cr_assert_not(buf_has(&c.r.out, " late"));
    cr_assert_eq(count_type(&c.v, "response.completed"), 0);
    checked_free(&c);
}

Test(responses, second_terminal_event_ignored, .timeout = 20)
{
    checked_t c, plain;
    run_checked(&c, "rs_two_terminal.sse", &OPENAI_SSE, 0);
    run_checked(&plain, "rs_text.sse", &OPENAI_SSE, 0);
    cr_assert_eq(count_type(&c.v, "response.completed"), 1);
    cr_assert_eq(c.m->n_events, 11);
    char *a = normalized_output(&c.r), *b = normalized_output(&plain.r);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    checked_free(&c);
    checked_free(&plain);
}

Test(responses, no_terminal_event_synthesises_completed, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_no_terminal.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(jget(terminal_response(&c), "output")->len, 1, "completed carries the full output");
    check_no_usage(&c);
    checked_free(&c);
}

Test(responses, refusal_part_and_incomplete, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_refusal_incomplete.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    const sitem_t *it = &c.m->it[0];
    cr_assert_str_eq(it->id, "msg_r1");
    cr_assert_eq(it->n_parts, 2);
    cr_assert_str_eq(it->part_type[0], "output_text");
    cr_assert_str_eq(it->text[0], "Sure, ");
    cr_assert_str_eq(it->part_type[1], "refusal");
    cr_assert_str_eq(it->text[1], "I can't help.");
    cr_assert_str_eq(it->status, "incomplete");
    cr_assert_str_eq(c.m->terminal_type, "response.incomplete");
    const gw_json_t *resp = terminal_response(&c);
    cr_assert_str_eq(js(jget(resp, "incomplete_details"), "reason"), "content_filter");
    check_usage(resp, 7, 4, 11, 3, 1);
    cr_assert_eq(count_type(&c.v, "response.refusal.delta"), 2);
    cr_assert_eq(count_type(&c.v, "response.refusal.done"), 1);
    checked_free(&c);
}

Test(responses, missing_announcements_synthesised, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_missing_added.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    check_message(&c.m->it[0], "msg_s1", "output_text", "One two");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    /* Arguments carried on output_item.added become the first delta. */
    check_call(&c.m->it[1], "fc_s2", "call_s2", "lookup", "{\"q\":1}");
    cr_assert_eq(c.m->it[1].n_deltas, 2);
    /* An item only listed in the terminal output is streamed before the terminal event. */
    check_message(&c.m->it[2], "msg_s3", "output_text", "Only in the final output.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_no_usage(&c);
    /* The upstream comment after commit is forwarded as one keepalive comment. */
    cr_assert_eq(c.m->n_comments, 1);
    checked_free(&c);
}

Test(responses, text_delta_for_a_function_call_is_a_protocol_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_wrong_item_kind.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].type, "function_call");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    cr_assert_not(buf_has(&c.r.out, "text into a call"));
    cr_assert_str_eq(c.m->terminal_type, "response.failed");
    const char *msg = js(c.m->error_ev, "message");
    cr_assert_eq(strncmp(msg, PROTO_ERR, strlen(PROTO_ERR)), 0, "message: %s", msg);
    checked_free(&c);
}

Test(responses, arguments_done_for_a_message_is_a_protocol_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_args_done_on_message.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].type, "message");
    cr_assert_str_eq(c.m->terminal_type, "response.failed");
    const char *msg = js(c.m->error_ev, "message");
    cr_assert_eq(strncmp(msg, PROTO_ERR, strlen(PROTO_ERR)), 0, "message: %s", msg);
    checked_free(&c);
}

Test(responses, done_marker_with_open_items_on_openai_flavour_is_a_violation, .timeout = 20)
{
    checked_t c;
    run_literal(
        &c, &OPENAI_SSE,
        "event: response.output_item.added\n"
        "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"msg_o\",\"type\":\"message\","
        "\"role\":\"assistant\",\"content\":[]}}\n\n"
        "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_o\",\"delta\":\"x\"}\n\n"
        "data: [DONE]\n\n");
    check_message(&c.m->it[0], "msg_o", "output_text", "x");
    check_violation(&c, "stream ended with items still in progress");
    checked_free(&c);
}

Test(responses, function_call_without_name_is_a_violation, .timeout = 20)
{
    checked_t c;
    run_literal(
        &c, &OPENAI_SSE,
        "data: {\"type\":\"response.created\",\"response\":{}}\n\n"
        "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"fc_n\",\"type\":\"function_call\","
        "\"call_id\":\"call_n\",\"arguments\":\"\"}}\n\n");
    cr_assert_eq(c.m->n, 0);
    check_violation(&c, "function_call item without a name");
    checked_free(&c);
}

Test(responses, repeated_item_id_is_a_violation, .timeout = 20)
{
    static const char added[] =
        "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"fc_r\",\"type\":"
        "\"function_call\",\"call_id\":\"call_r\",\"name\":\"f\",\"arguments\":\"\"}}\n\n";
    char s[1024];
    snprintf(s, sizeof(s), "%s%s", added, added);
    checked_t c;
    run_literal(&c, &OPENAI_SSE, s);
    cr_assert_eq(c.m->n, 1);
    check_violation(&c, "output_item.added repeats an item id");
    checked_free(&c);
}

Test(responses, arguments_delta_for_unknown_item_is_a_violation, .timeout = 20)
{
    checked_t c;
    run_literal(
        &c, &OPENAI_SSE,
        "data: {\"type\":\"response.created\",\"response\":{}}\n\n"
        "data: "
        "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_x\",\"delta\":\"{}\"}\n\n");
    check_violation(&c, "event for an unknown item");
    checked_free(&c);
}

Test(responses, non_object_event_is_a_violation, .timeout = 20)
{
    checked_t c;
    run_literal(&c, &OPENAI_SSE, "data: {\"type\":\"response.created\",\"response\":{}}\n\ndata: [1,2]\n\n");
    check_violation(&c, "stream event is not a JSON object");
    checked_free(&c);
}

Test(responses, oversized_event_is_a_violation, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.max_event = 1024;
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(
        &b, "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_b\",\"delta\":\"ok\"}\n\n");
    gw_buf_append_cstr(&b,
                       "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_b\",\"delta\":\"");
    for (int i = 0; i < 2000; i++)
        gw_buf_append(&b, "x", 1);
    gw_buf_append_cstr(&b, "\"}\n\n");
    gw_buf_append(&b, "", 1);
    checked_t c;
    run_literal(&c, &o, b.base);
    check_message(&c.m->it[0], "msg_b", "output_text", "ok");
    check_violation(&c, "stream event exceeds the size limit");
    cr_assert_not(buf_has(&c.r.out, "xxxx"));
    checked_free(&c);
    gw_buf_dispose(&b);
}

Test(responses, error_as_first_event_writes_nothing, .timeout = 20)
{
    run_t r;
    run_begin(&r, &ML_SSE);
    static const char s[] = "data: {\"error\":{\"message\":\"slow down\",\"code\":429}}\n\ndata: [DONE]\n\n";
    run_feed(&r, s, sizeof(s) - 1);
    run_end(&r);
    cr_assert_lt(r.feed_rc, 0);
    cr_assert_eq(r.out.len, 0, "an uncommitted failure becomes a plain HTTP error");
    cr_assert_not(gw_stream_committed(r.s));
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_RATE_LIMIT, "upstream code 429 maps to rate limit");
    cr_assert_str_eq(e->message, "slow down");
    run_free(&r);
}

Test(responses, empty_body_fails_uncommitted, .timeout = 20)
{
    run_t r;
    run_begin(&r, &OPENAI_SSE);
    run_feed(&r, ": ping\n\n", 8);
    run_end(&r);
    cr_assert_lt(r.finish_rc, 0);
    cr_assert_eq(r.out.len, 0, "nothing was committed: the owner answers with an HTTP error");
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_UPSTREAM);
    cr_assert_str_eq(e->message, PROTO_ERR "stream ended before any event");
    run_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: MLflow flavour (recorded from the mock's /invocations route)                        */

Test(responses, mlflow_text_sparse_stream_normalised, .timeout = 20)
{
    checked_t c, full;
    run_checked(&c, "rs_ml_text.sse", &ML_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_eq(c.m->it[0].n_deltas, 3);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    check_no_usage(&c);
    /* Same event sequence as the full OpenAI-flavour stream of the same answer. */
    run_checked(&full, "rs_text.sse", &OPENAI_SSE, 0);
    char *a = type_list(&c.v), *b = type_list(&full.v);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    checked_free(&full);
    checked_free(&c);
}

Test(responses, mlflow_text_split_every_offset, .timeout = 60)
{
    check_split_every_offset("rs_ml_text.sse", &ML_SSE);
}

Test(responses, mlflow_reasoning_split_every_offset, .timeout = 60)
{
    check_split_every_offset("rs_ml_reasoning.sse", &ML_SSE);
}

Test(responses, mlflow_tools_from_done_items_only, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_tools.sse", &ML_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    check_call(&c.m->it[0], "fc_up_1", "call_up_1", "tool_a", "{\"a\":1}");
    check_call(&c.m->it[1], "fc_up_2", "call_up_2", "tool_b", "{\"b\":2}");
    cr_assert_eq(c.m->it[0].n_deltas, 1, "whole arguments as one synthesised delta");
    char *types = type_list(&c.v);
    cr_assert_str_eq(types, "response.created,response.in_progress,response.output_item.added,"
                            "response.function_call_arguments.delta,response.function_call_arguments.done,"
                            "response.output_item.done,response.output_item.added,"
                            "response.function_call_arguments.delta,response.function_call_arguments.done,"
                            "response.output_item.done,response.completed");
    free(types);
    checked_free(&c);
}

Test(responses, mlflow_reasoning_from_done_item, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_reasoning.sse", &ML_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].id, "rs_up_1");
    cr_assert_str_eq(c.m->it[0].text[0], "Thinking");
    check_message(&c.m->it[1], "msg_up_1", "output_text", "Done.");
    checked_free(&c);
}

Test(responses, mlflow_custom_outputs_and_trace_on_databricks_front, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_custom.sse", &DBX_ML_TRACE, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->terminal, "terminal event is the last data event");
    const gw_json_t *co = jget(c.m->terminal, "custom_outputs");
    cr_assert_str_eq(js(co, "k"), "v");
    cr_assert(jnum_is(co, "n", "1.50"));
    const gw_json_t *dbx = jget(c.m->terminal, "databricks_output");
    cr_assert_str_eq(js(dbx, "databricks_request_id"), REQ_ID);
    const gw_json_t *trace = jget(dbx, "trace");
    char *t = json_text(trace);
    cr_assert_str_eq(t, "{\"spans\":[{\"name\":\"root\"}]}");
    free(t);
    checked_free(&c);
}

Test(responses, mlflow_trace_only_when_requested, .timeout = 20)
{
    run_opts_t o = DBX_ML_TRACE;
    o.req_body = "{\"input\":\"Hi\",\"databricks_options\":{\"return_trace\":false}}";
    checked_t c;
    run_checked(&c, "rs_ml_custom.sse", &o, 0);
    const gw_json_t *dbx = jget(c.m->terminal, "databricks_output");
    cr_assert_null(gw_json_get(dbx, "trace"), "trace only when databricks_options.return_trace is true");
    cr_assert_not_null(gw_json_get(c.m->terminal, "custom_outputs"));
    checked_free(&c);
}

Test(responses, mlflow_string_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_error.sse", &ML_SSE, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "agent crashed", "server_error", "server_error", "upstream_error", "INTERNAL_ERROR");
    checked_free(&c);
}

Test(responses, mlflow_databricks_output_error, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_error_dbx.sse", &ML_SSE, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "TimeoutException: Tool XYZ failed to execute.", "invalid_prompt",
                  "invalid_request_error", "upstream_bad_request", "BAD_REQUEST");
    checked_free(&c);
}

Test(responses, mlflow_databricks_output_error_on_databricks_front, .timeout = 20)
{
    run_opts_t o = DBX_ML_TRACE;
    checked_t c;
    run_checked(&c, "rs_ml_error_dbx.sse", &o, 0);
    check_failure(&c, "TimeoutException: Tool XYZ failed to execute.", "invalid_prompt",
                  "invalid_request_error", "upstream_bad_request", "BAD_REQUEST");
    cr_assert(c.m->done_marker);
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->error_ev, "the error event is the last data event before [DONE]");
    checked_free(&c);
}

Test(responses, mlflow_unknown_event_dropped, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_unknown_event.sse", &ML_SSE, 0);
    cr_assert_not(buf_has(&c.r.out, "custom_thing"));
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(responses, mlflow_bad_json_first_event_writes_nothing, .timeout = 20)
{
    run_t r;
    run_golden(&r, "rs_ml_bad_json.sse", &ML_SSE, 0);
    cr_assert_lt(r.feed_rc, 0);
    cr_assert_eq(r.out.len, 0);
    cr_assert_not(gw_stream_committed(r.s));
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_UPSTREAM, "bad upstream data is the 502 row");
    cr_assert_str_eq(e->message, PROTO_ERR "invalid JSON in a stream event");
    run_free(&r);
}

Test(responses, mlflow_delta_after_done, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_delta_after_done.sse", &ML_SSE, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    check_violation(&c, "event for item msg_up_1 after its output_item.done");
    checked_free(&c);
}

Test(responses, mlflow_function_call_without_id_gets_a_minted_id, .timeout = 20)
{
    /* MLflow validates function_call items without requiring an id; the client must still see a
     * fresh fc_ + 32 hex id (§4.4, §7.5). Tool-output items are not rendered. */
    checked_t c;
    run_checked(&c, "rs_ml_tool_no_id.sse", &ML_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    check_call(&c.m->it[0], NULL, "call_n1", "lookup", "{\"q\":\"x\"}");
    const char *id = c.m->it[0].id;
    cr_assert(strncmp(id, "fc_", 3) == 0 && strlen(id) == 35, "minted id %s is not fc_ + 32 hex", id);
    check_message(&c.m->it[1], "msg_n2", "output_text", "After the call.");
    cr_assert_not(buf_has(&c.r.out, "function_call_output"));
    checked_free(&c);
}

Test(responses, mlflow_eof_with_open_item_fails, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_ml_eof_open_item.sse", &ML_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_lt(c.r.finish_rc, 0);
    check_message(&c.m->it[0], "3f1c9a2e-0000-4000-8000-000000000001", "output_text", "Cut short");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    check_failure(&c, "upstream stream ended prematurely", "server_error", "server_error", "upstream_error",
                  "INTERNAL_ERROR");
    checked_free(&c);
}

Test(responses, mlflow_two_terminal_full_events_on_invocations, .timeout = 20)
{
    checked_t c;
    run_checked(&c, "rs_two_terminal.sse", &ML_SSE, 0);
    cr_assert_eq(count_type(&c.v, "response.completed"), 1);
    checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: non-streaming (JSON) upstream answers, non-stream client mode                       */

static void parse_out(gw_arena_t *a, const run_t *r, gw_json_t **obj)
{
    cr_assert_gt(r->out.len, 0);
    cr_assert_eq(r->out.base[0], '{', "non-stream output is one JSON object, no SSE framing");
    cr_assert_eq(gw_json_parse(a, r->out.base, r->out.len, obj, NULL), 0, "non-stream output is not JSON");
    cr_assert_eq((*obj)->type, GW_JSON_OBJECT);
}

/* Non-stream output of `name` must equal the terminal event's response of `stream_name`. */
static void check_nonstream_equals_stream(const char *name, const char *ct, const char *stream_name,
                                          const run_opts_t *base)
{
    run_opts_t so = *base, no = *base;
    no.stream = false;
    no.content_type = ct;
    checked_t c;
    run_checked(&c, stream_name, &so, 0);
    run_t r;
    run_golden(&r, name, &no, 0);
    gw_json_t *obj;
    parse_out(c.v.a, &r, &obj);
    char *a = json_text(terminal_response(&c)), *b = json_text(obj);
    char *na = normalize(a, strlen(a)), *nb = normalize(b, strlen(b));
    cr_assert_str_eq(nb, na, "%s: non-stream body differs from the terminal event's response of %s", name,
                     stream_name);
    cr_assert_eq(gw_stream_status(r.s), gw_stream_status(c.r.s));
    free(a);
    free(b);
    free(na);
    free(nb);
    run_free(&r);
    checked_free(&c);
}

Test(responses, nonstream_client_over_sse_upstream, .timeout = 20)
{
    check_nonstream_equals_stream("rs_text.sse", SSE_CT, "rs_text.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_tools.sse", SSE_CT, "rs_tools.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_reasoning.sse", SSE_CT, "rs_reasoning.sse", &OPENAI_SSE);
}

Test(responses, json_object_equals_stream_result, .timeout = 20)
{
    /* The upstream's non-streaming object and its stream yield the same final response. */
    check_nonstream_equals_stream("rs_text.json", JSON_CT, "rs_text.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_tools.json", JSON_CT, "rs_tools.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_ml_reasoning.json", JSON_CT, "rs_ml_reasoning.sse", &ML_SSE);
}

Test(responses, json_object_to_stream_client_synthesises_events, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    checked_t c;
    run_checked(&c, "rs_tools.json", &o, 0);
    cr_assert_eq(c.m->n, 2);
    check_call(&c.m->it[0], "fc_up_1", "call_up_1", "tool_a", "{\"a\":1}");
    check_call(&c.m->it[1], "fc_up_2", "call_up_2", "tool_b", "{\"b\":2}");
    check_usage(terminal_response(&c), 20, 8, 28, 0, 0);
    checked_free(&c);
}

Test(responses, json_object_split_feeds, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    checked_t whole;
    run_checked(&whole, "rs_text.json", &o, 0);
    char *want = normalized_output(&whole.r);
    for (size_t step = 1; step < 64; step += 9) {
        checked_t c;
        run_checked(&c, "rs_text.json", &o, step);
        char *got = normalized_output(&c.r);
        cr_assert_str_eq(got, want, "JSON body fed in %zu-byte pieces", step);
        free(got);
        checked_free(&c);
    }
    free(want);
    checked_free(&whole);
}

Test(responses, json_media_type_is_case_insensitive, .timeout = 20)
{
    /* RFC 9110 §8.3.1: type and subtype are case-insensitive. */
    run_opts_t o = OPENAI_SSE;
    o.content_type = "Application/JSON; charset=utf-8";
    checked_t c;
    run_checked(&c, "rs_text.json", &o, 0);
    check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    checked_free(&c);
}

Test(responses, json_object_failed_status_is_an_upstream_error, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.stream = false;
    o.content_type = JSON_CT;
    run_t r;
    run_golden(&r, "rs_error.json", &o, 0);
    cr_assert_lt(r.finish_rc, 0);
    cr_assert_eq(r.out.len, 0, "non-stream failures become HTTP errors");
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_UPSTREAM);
    cr_assert_str_eq(e->message, "agent crashed");
    /* The partial output reaches the table aggregate. */
    gw_str_t agg = gw_stream_aggregate(r.s);
    cr_assert(str_has(agg, "\"status\":\"failed\""), "aggregate: %.*s", (int)agg.len, agg.base);
    cr_assert(str_has(agg, "\"text\":\"Hello\""));
    run_free(&r);
}

Test(responses, json_object_in_progress_status_completes, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.stream = false;
    o.content_type = JSON_CT;
    run_t r;
    run_golden(&r, "rs_no_terminal.json", &o, 0);
    cr_assert_eq(r.finish_rc, 0);
    gw_arena_t *a = gw_arena_new();
    gw_json_t *obj;
    parse_out(a, &r, &obj);
    cr_assert_str_eq(js(obj, "status"), "completed");
    cr_assert_str_eq(js(obj, "id"), RESP_ID);
    cr_assert_str_eq(js(obj, "model"), CLIENT_MODEL);
    const gw_json_t *item = gw_json_at(jget(obj, "output"), 0);
    cr_assert_str_eq(js(item, "id"), "msg_up_1");
    cr_assert_str_eq(js(item, "status"), "completed");
    cr_assert_str_eq(js(gw_json_at(jget(item, "content"), 0), "text"), "Hello from responses");
    gw_arena_free(a);
    run_free(&r);
}

Test(responses, json_object_not_json_is_a_protocol_error, .timeout = 20)
{
    run_opts_t o = OPENAI_SSE;
    o.stream = false;
    o.content_type = JSON_CT;
    run_t r;
    run_golden(&r, "rs_bad_json.json", &o, 0);
    cr_assert_lt(r.finish_rc, 0);
    cr_assert_eq(r.out.len, 0);
    const gw_error_t *e = gw_stream_error(r.s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, GW_ERR_UPSTREAM);
    cr_assert_str_eq(e->message, PROTO_ERR "invalid JSON answer");
    run_free(&r);
}

Test(responses, mlflow_json_object_on_databricks_front, .timeout = 20)
{
    run_opts_t o = DBX_ML_TRACE;
    o.stream = false;
    o.content_type = JSON_CT;
    run_t r;
    run_golden(&r, "rs_ml_custom.json", &o, 0);
    gw_arena_t *a = gw_arena_new();
    gw_json_t *obj;
    parse_out(a, &r, &obj);
    cr_assert_str_eq(js(obj, "status"), "completed");
    cr_assert(jnum_is(jget(obj, "custom_outputs"), "n", "1.50"));
    const gw_json_t *dbx = jget(obj, "databricks_output");
    cr_assert_str_eq(js(dbx, "databricks_request_id"), REQ_ID);
    char *t = json_text(jget(dbx, "trace"));
    cr_assert_str_eq(t, "{\"spans\":[{\"name\":\"root\"}]}");
    free(t);
    cr_assert(jget(obj, "usage")->type == GW_JSON_NULL);
    gw_arena_free(a);
    run_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: every golden, random chunking                                                       */

Test(responses, all_goldens_random_chunks, .timeout = 60)
{
    static const struct {
        const char *name;
        gw_flavor_t flavor;
    } g[] = {
        {"rs_text.sse", GW_FLAVOR_OPENAI},
        {"rs_tools.sse", GW_FLAVOR_OPENAI},
        {"rs_reasoning.sse", GW_FLAVOR_OPENAI},
        {"rs_custom.sse", GW_FLAVOR_OPENAI},
        {"rs_error.sse", GW_FLAVOR_OPENAI},
        {"rs_error_dbx.sse", GW_FLAVOR_OPENAI},
        {"rs_unknown_event.sse", GW_FLAVOR_OPENAI},
        {"rs_bad_json.sse", GW_FLAVOR_OPENAI},
        {"rs_delta_after_done.sse", GW_FLAVOR_OPENAI},
        {"rs_two_terminal.sse", GW_FLAVOR_OPENAI},
        {"rs_no_terminal.sse", GW_FLAVOR_OPENAI},
        {"rs_refusal_incomplete.sse", GW_FLAVOR_OPENAI},
        {"rs_missing_added.sse", GW_FLAVOR_OPENAI},
        {"rs_failed_empty_output.sse", GW_FLAVOR_OPENAI},
        {"rs_error_event.sse", GW_FLAVOR_OPENAI},
        {"rs_ml_text.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_tools.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_reasoning.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_custom.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_error.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_error_dbx.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_unknown_event.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_delta_after_done.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_eof_open_item.sse", GW_FLAVOR_MLFLOW},
    };
    unsigned seed = 4242;
    for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
        run_opts_t o = OPENAI_SSE;
        o.flavor = g[k].flavor;
        size_t len;
        char *buf = read_data(g[k].name, &len);
        checked_t whole;
        run_checked(&whole, g[k].name, &o, 0);
        char *want = normalized_output(&whole.r);
        for (int iter = 0; iter < 30; iter++) {
            run_t r;
            run_begin(&r, &o);
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
            cr_assert_str_eq(got, want, "%s: random chunking (iteration %d) renders differently", g[k].name,
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
/* tests: encode_request                                                                      */

typedef struct {
    gw_arena_t *a;
    gw_request_t req;
    gw_endpoint_cfg_t ep;
    gw_buf_t out;
    gw_json_t *body; /** parsed upstream body */
} enc_t;

static void encode(enc_t *e, const char *client_body, gw_flavor_t flavor, bool dbx_route,
                   gw_opt_num_t temperature, gw_opt_num_t top_p, gw_opt_num_t max_out)
{
    memset(e, 0, sizeof(*e));
    e->a = gw_arena_new();
    gw_buf_init(&e->out);
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(e->a, gw_str(client_body), dbx_route, &e->req, &err), 0,
                 "request rejected: %s", err.message);
    e->ep = (gw_endpoint_cfg_t){
        .name = "resp-agent",
        .adapter = GW_ADAPTER_RESPONSES,
        .flavor = flavor,
        .model = UP_MODEL,
        .temperature = temperature,
        .top_p = top_p,
        .max_output_tokens = max_out,
        .max_tokens_field = "max_tokens",
    };
    cr_assert_eq(ad_responses.encode_request(&e->req, &e->ep, dbx_route, &e->out, &err), 0);
    cr_assert_eq(gw_json_parse(e->a, e->out.base, e->out.len, &e->body, NULL), 0,
                 "upstream body is not JSON: %.*s", (int)e->out.len, e->out.base);
    cr_assert_eq(e->body->type, GW_JSON_OBJECT);
    /* No key twice (a JSON object with duplicate names is not interoperable, RFC 8259 §4). */
    for (const gw_json_t *m = e->body->child; m; m = m->next)
        for (const gw_json_t *n = m->next; n; n = n->next)
            cr_assert(!(m->key.len == n->key.len && memcmp(m->key.base, n->key.base, m->key.len) == 0),
                      "key %.*s appears twice in %.*s", (int)m->key.len, m->key.base, (int)e->out.len,
                      e->out.base);
}

static void enc_free(enc_t *e)
{
    gw_buf_dispose(&e->out);
    gw_arena_free(e->a);
}

static const gw_opt_num_t NONE = {false, 0};

static char *member_text(const enc_t *e, const char *key)
{
    return json_text(jget(e->body, key));
}

static const char FULL_REQ[] =
    "{\"model\":\"resp-agent\",\"stream\":true,\"instructions\":\"Be terse.\","
    "\"input\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"function_call\",\"call_id\":\"call_a\","
    "\"name\":\"f\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"call_a\","
    "\"output\":\"1\"}],"
    "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}],"
    "\"tool_choice\":\"auto\",\"temperature\":0.70,\"metadata\":{\"ticket\":\"T-17\"},\"user\":\"u-7\","
    "\"truncation\":\"auto\",\"include\":[],\"x_vendor\":{\"n\":1.50,\"deep\":[1,2e3]},"
    "\"client_request_id\":\"crid-1\",\"usage_context\":{\"team\":\"a\"},"
    "\"custom_inputs\":{\"thread\":\"abc\",\"n\":1.50},\"context\":{\"conversation_id\":\"c-42\",\"user_id\":"
    "\"u-7\"},"
    "\"databricks_options\":{\"return_trace\":true}}";

Test(responses, encode_openai_flavour, .timeout = 10)
{
    enc_t e;
    encode(&e, FULL_REQ, GW_FLAVOR_OPENAI, false, NONE, NONE, NONE);
    cr_assert_str_eq(js(e.body, "model"), UP_MODEL, "model is the backend's name");
    cr_assert_eq(jget(e.body, "stream")->type, GW_JSON_BOOL);
    cr_assert(jget(e.body, "stream")->boolean);
    /* Owned keys removed; MLflow-only keys not sent to an OpenAI-flavour upstream. */
    cr_assert_null(gw_json_get(e.body, "client_request_id"));
    cr_assert_null(gw_json_get(e.body, "usage_context"));
    cr_assert_null(gw_json_get(e.body, "custom_inputs"));
    cr_assert_null(gw_json_get(e.body, "context"));
    cr_assert_null(gw_json_get(e.body, "databricks_options"));
    /* Everything else passes through untouched (numbers byte-exact, key order kept). */
    cr_assert_str_eq(js(e.body, "instructions"), "Be terse.");
    cr_assert(jnum_is(e.body, "temperature", "0.70"));
    char *t = member_text(&e, "x_vendor");
    cr_assert_str_eq(t, "{\"n\":1.50,\"deep\":[1,2e3]}");
    free(t);
    t = member_text(&e, "input");
    cr_assert(strstr(t, "\"function_call_output\"") != NULL);
    cr_assert(strstr(t, "\"call_id\":\"call_a\"") != NULL);
    free(t);
    t = member_text(&e, "tools");
    cr_assert_str_eq(t, "[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}]");
    free(t);
    cr_assert_str_eq(js(e.body, "tool_choice"), "auto");
    cr_assert_str_eq(js(jget(e.body, "metadata"), "ticket"), "T-17");
    cr_assert_str_eq(js(e.body, "user"), "u-7");
    cr_assert_str_eq(js(e.body, "truncation"), "auto");
    cr_assert_eq(jget(e.body, "include")->len, 0);
    /* Exactly the passthrough keys, nothing invented. */
    size_t n = 0;
    for (const gw_json_t *m = e.body->child; m; m = m->next)
        n++;
    cr_assert_eq(n, 12, "model, stream + 10 passthrough keys, got %zu", n);
    enc_free(&e);
}

Test(responses, encode_mlflow_flavour_forwards_databricks_fields, .timeout = 10)
{
    enc_t e;
    encode(&e, FULL_REQ, GW_FLAVOR_MLFLOW, true, NONE, NONE, NONE);
    cr_assert_str_eq(js(e.body, "model"), UP_MODEL);
    char *t = member_text(&e, "custom_inputs");
    cr_assert_str_eq(t, "{\"thread\":\"abc\",\"n\":1.50}");
    free(t);
    t = member_text(&e, "context");
    cr_assert_str_eq(t, "{\"conversation_id\":\"c-42\",\"user_id\":\"u-7\"}");
    free(t);
    t = member_text(&e, "databricks_options");
    cr_assert_str_eq(t, "{\"return_trace\":true}");
    free(t);
    cr_assert_null(gw_json_get(e.body, "client_request_id"));
    cr_assert_null(gw_json_get(e.body, "usage_context"));
    enc_free(&e);
}

Test(responses, encode_stream_follows_the_client, .timeout = 10)
{
    enc_t e;
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\"}", GW_FLAVOR_OPENAI, false, NONE, NONE, NONE);
    cr_assert_eq(jget(e.body, "stream")->type, GW_JSON_BOOL);
    cr_assert_not(jget(e.body, "stream")->boolean, "no stream key: the upstream is asked for one object");
    enc_free(&e);
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\",\"stream\":false}", GW_FLAVOR_MLFLOW, false, NONE, NONE,
           NONE);
    cr_assert_not(jget(e.body, "stream")->boolean);
    enc_free(&e);
    /* The Databricks route may omit model: the backend's name is still sent. */
    encode(&e, "{\"input\":\"Hi\",\"stream\":true}", GW_FLAVOR_MLFLOW, true, NONE, NONE, NONE);
    cr_assert(jget(e.body, "stream")->boolean);
    cr_assert_str_eq(js(e.body, "model"), UP_MODEL);
    enc_free(&e);
}

Test(responses, encode_param_defaults, .timeout = 10)
{
    gw_opt_num_t temp = {true, 0.2}, top = {true, 0.9}, max = {true, 512};
    enc_t e;
    /* Absent: the endpoint defaults apply (max_output_tokens as an integer). */
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\"}", GW_FLAVOR_OPENAI, false, temp, top, max);
    double d;
    cr_assert_eq(gw_json_double(jget(e.body, "temperature"), &d), 0);
    cr_assert_float_eq(d, 0.2, 1e-12);
    cr_assert_eq(gw_json_double(jget(e.body, "top_p"), &d), 0);
    cr_assert_float_eq(d, 0.9, 1e-12);
    cr_assert(jnum_is(e.body, "max_output_tokens", "512"));
    cr_assert_null(gw_json_get(e.body, "max_tokens"), "the Responses name is kept");
    enc_free(&e);
    /* Client values win, byte-exact. */
    encode(&e,
           "{\"model\":\"m\",\"input\":\"Hi\",\"temperature\":1.25,\"top_p\":0.5,\"max_output_tokens\":64}",
           GW_FLAVOR_OPENAI, false, temp, top, max);
    cr_assert(jnum_is(e.body, "temperature", "1.25"));
    cr_assert(jnum_is(e.body, "top_p", "0.5"));
    cr_assert(jnum_is(e.body, "max_output_tokens", "64"));
    enc_free(&e);
    /* No defaults configured and none sent: nothing invented. */
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\"}", GW_FLAVOR_MLFLOW, false, NONE, NONE, NONE);
    cr_assert_null(gw_json_get(e.body, "temperature"));
    cr_assert_null(gw_json_get(e.body, "top_p"));
    cr_assert_null(gw_json_get(e.body, "max_output_tokens"));
    enc_free(&e);
}

Test(responses, encode_null_param_takes_the_default_once, .timeout = 10)
{
    /* An explicit null means "unset": the default applies, and the key is sent exactly once
     * (encode() rejects duplicate keys). */
    gw_opt_num_t temp = {true, 0.5}, max = {true, 100};
    enc_t e;
    encode(
        &e,
        "{\"model\":\"m\",\"input\":\"Hi\",\"temperature\":null,\"top_p\":null,\"max_output_tokens\":null}",
        GW_FLAVOR_OPENAI, false, temp, NONE, max);
    cr_assert(jnum_is(e.body, "temperature", "0.5"));
    cr_assert(jnum_is(e.body, "max_output_tokens", "100"));
    /* No default for top_p: the client's null passes through. */
    cr_assert_eq(jget(e.body, "top_p")->type, GW_JSON_NULL);
    enc_free(&e);
}
