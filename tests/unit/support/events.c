/* test_events: see events.h. Everything here fails the calling test through criterion. */
#include "support/events.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"
#include "gateway/request.h"
#include "gateway/sse.h"

/* The client request whose fields the lifecycle responses echo. */
static const char REQ_BODY[] =
    "{\"model\":\"" TEST_CLIENT_MODEL "\",\"input\":\"Weather?\",\"instructions\":\"Be terse.\","
    "\"metadata\":{\"ticket\":\"T-17\"},\"temperature\":0.25,"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}]}";

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

char *test_read_data(const char *name, size_t *len)
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

char *test_json_text(const gw_json_t *v)
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

bool test_buf_has(const gw_buf_t *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; b->base && i + n <= b->len; i++)
        if (memcmp(b->base + i, needle, n) == 0)
            return true;
    return false;
}

bool test_str_has(gw_str_t s, const char *needle)
{
    gw_buf_t b = {.base = (char *)s.base, .len = s.len, .cap = s.len};
    return test_buf_has(&b, needle);
}

bool test_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

char *test_normalize(const char *s, size_t n)
{
    static const struct {
        const char *prefix;
        size_t nhex;
    } ids[] = {{"\"msg_", 32}, {"\"fc_", 32}, {"\"rs_", 32}, {"\"ctc_", 32}, {"\"lsh_", 32}, {"\"call_", 24}};
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
            while (h < ids[k].nhex && test_is_hex(o[i + pl + h]))
                h++;
            if (h == ids[k].nhex && o[i + pl + h] == '"')
                memset(o + i + pl, 'X', h);
        }
    }
    return o;
}

/* test_json_text, then test_normalize. */
static char *normalized_json(const gw_json_t *v)
{
    char *t = test_json_text(v);
    char *n = test_normalize(t, strlen(t));
    free(t);
    return n;
}

const gw_json_t *test_jget(const gw_json_t *o, const char *key)
{
    const gw_json_t *v = gw_json_get(o, key);
    cr_assert_not_null(v, "missing key '%s'", key);
    return v;
}

const char *test_js(const gw_json_t *o, const char *key)
{
    const gw_json_t *v = test_jget(o, key);
    cr_assert_eq(v->type, GW_JSON_STRING, "'%s' is not a string", key);
    return v->str.base;
}

int64_t test_ji(const gw_json_t *o, const char *key)
{
    int64_t x;
    cr_assert_eq(gw_json_int64(test_jget(o, key), &x), 0, "'%s' is not an integer", key);
    return x;
}

bool test_jnum_is(const gw_json_t *o, const char *key, const char *text)
{
    const gw_json_t *v = test_jget(o, key);
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
    size_t n = strlen(s);
    cr_assert_lt(n, cap);
    memcpy(dst, s, n + 1);
}

/* ------------------------------------------------------------------------------------------ */
/* driving the pipeline                                                                       */

static void drain(test_run_t *r)
{
    gw_buf_t *o = gw_stream_out(r->s);
    gw_buf_append(&r->out, o->base ? o->base : "", o->len);
    gw_buf_reset(o);
}

/* The endpoint's url and model are never read by start/feed/finish (only encode_request uses
 * the model), so one endpoint serves both adapters. */
void test_run_begin(test_run_t *r, const test_run_opts_t *o)
{
    gw_log_set_level(GW_LOG_ERROR);
    memset(r, 0, sizeof(*r));
    gw_buf_init(&r->out);
    r->ad = ad_for(o->adapter);
    cr_assert_not_null(r->ad);
    r->a = gw_arena_new();
    r->scratch = gw_arena_new();
    gw_error_t err = {0};
    const char *body = o->req_body ? o->req_body : REQ_BODY;
    cr_assert_eq(gw_request_parse(r->a, gw_str(body), o->front == GW_FRONT_DATABRICKS, &r->req, &err), 0,
                 "request rejected: %s", err.message);
    r->up = (gw_upstream_cfg_t){.url = "http://127.0.0.1:9/v1", .weight = 1};
    r->ep = (gw_endpoint_cfg_t){
        .name = TEST_CLIENT_MODEL,
        .adapter = o->adapter,
        .flavor = o->flavor,
        .model = "upstream-model",
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
        .max_body_bytes = 4 * TEST_MIB,
        .max_header_bytes = 16384,
        .max_connections = 16,
        .header_timeout_ms = 30000,
        .keepalive_timeout_ms = 60000,
        .sse_keepalive_ms = 15000,
        .max_event_bytes = o->max_event,
        .max_output_bytes = o->max_output,
    };
    gw_stream_opts_t so = {
        .front = o->front,
        .stream = o->stream,
        .req = &r->req,
        .response_id = TEST_RESP_ID,
        .request_id = TEST_REQ_ID,
        .model = r->req.model.base ? r->req.model : GW_STR_LIT(TEST_CLIENT_MODEL),
        .created_at = TEST_CREATED,
        .max_output_bytes = o->max_output,
    };
    r->s = gw_stream_new(&so);
    cr_assert_not_null(r->s);
    r->st = r->ad->start(r->a, r->scratch, &r->ep, &r->lim, gw_stream_emitter(r->s), gw_str(o->content_type));
    cr_assert_not_null(r->st);
}

void test_run_feed(test_run_t *r, const char *data, size_t len)
{
    if (r->stopped)
        return;
    char *c = malloc(len ? len : 1);
    cr_assert_not_null(c);
    memcpy(c, data, len);
    int rc = r->ad->feed(r->st, c, len);
    memset(c, 'Z', len);
    free(c);
    drain(r);
    if (rc < 0) {
        r->stopped = true;
        r->feed_rc = rc;
    }
}

void test_run_end(test_run_t *r)
{
    if (!r->stopped) {
        r->finish_rc = r->ad->finish(r->st);
        drain(r);
    }
    r->ad->dispose(r->st);
    r->st = NULL;
}

void test_run_free(test_run_t *r)
{
    if (r->st)
        r->ad->dispose(r->st);
    gw_stream_free(r->s);
    gw_arena_free(r->a);
    gw_arena_free(r->scratch);
    gw_buf_dispose(&r->out);
}

void test_run_golden(test_run_t *r, const char *name, const test_run_opts_t *o, size_t step)
{
    size_t len;
    char *buf = test_read_data(name, &len);
    test_run_begin(r, o);
    if (!step)
        step = len;
    for (size_t off = 0; off < len; off += step)
        test_run_feed(r, buf + off, len - off < step ? len - off : step);
    test_run_end(r);
    free(buf);
}

char *test_run_normalized(const test_run_t *r)
{
    return test_normalize(r->out.base ? r->out.base : "", r->out.len);
}

gw_json_t *test_run_json(gw_arena_t *a, const test_run_t *r)
{
    gw_json_t *obj;
    cr_assert_gt(r->out.len, 0);
    cr_assert_eq(r->out.base[0], '{', "non-stream output is one JSON object, no SSE framing");
    cr_assert_eq(gw_json_parse(a, r->out.base, r->out.len, &obj, NULL), 0, "non-stream output is not JSON");
    cr_assert_eq(obj->type, GW_JSON_OBJECT);
    return obj;
}

/* ------------------------------------------------------------------------------------------ */
/* parsing the rendered stream back                                                           */

static int on_rendered_event(void *ud, gw_str_t event, gw_str_t data)
{
    test_events_t *v = ud;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 32;
        v->ev = realloc(v->ev, v->cap * sizeof(*v->ev));
        cr_assert_not_null(v->ev);
    }
    test_event_t *e = &v->ev[v->n++];
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
    test_events_t *v = ud;
    v->n_comments++;
}

void test_events_parse(test_events_t *v, const gw_buf_t *out)
{
    memset(v, 0, sizeof(*v));
    v->a = gw_arena_new();
    gw_sse_parser_t *p = gw_sse_parser_new(16 * TEST_MIB, on_rendered_event, on_rendered_comment, v);
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

void test_events_free(test_events_t *v)
{
    free(v->ev);
    gw_arena_free(v->a);
}

size_t test_events_count(const test_events_t *v, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].j && strcmp(test_js(v->ev[i].j, "type"), type) == 0)
            n++;
    return n;
}

char *test_events_types(const test_events_t *v)
{
    gw_buf_t b;
    gw_buf_init(&b);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            gw_buf_append(&b, ",", 1);
        gw_buf_append_cstr(&b, v->ev[i].j ? test_js(v->ev[i].j, "type") : "[DONE]");
    }
    gw_buf_append(&b, "", 1);
    size_t n;
    return gw_buf_steal(&b, &n);
}

size_t test_events_strings(const test_events_t *v, const char *type, const char *key, const char **out,
                           size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->ev[i].j && strcmp(test_js(v->ev[i].j, "type"), type) == 0) {
            cr_assert_lt(n, max, "more than %zu %s events", max, type);
            out[n++] = test_js(v->ev[i].j, key);
        }
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* protocol checker                                                                           */

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
    cr_assert_str_eq(test_js(resp, "id"), TEST_RESP_ID);
    cr_assert_str_eq(test_js(resp, "object"), "response");
    cr_assert_eq(test_ji(resp, "created_at"), TEST_CREATED);
    const char *model = test_js(resp, "model");
    cr_assert(strcmp(model, TEST_CLIENT_MODEL) == 0, "model %s must be the client's, never the upstream's",
              model);
    cr_assert_str_eq(test_js(resp, "status"), status);
    cr_assert_eq(test_jget(resp, "output")->type, GW_JSON_ARRAY);
    cr_assert_eq(test_jget(resp, "tools")->type, GW_JSON_ARRAY);
    test_jget(resp, "usage");
    test_jget(resp, "parallel_tool_calls");
    test_jget(resp, "tool_choice");
    test_jget(resp, "metadata");
    cr_assert_null(gw_json_get(resp, "output_text"), "output_text is SDK-computed, never sent");
}

static test_item_t *item_at(test_summary_t *m, const gw_json_t *ev, bool with_item_id)
{
    int64_t oi = test_ji(ev, "output_index");
    cr_assert(oi >= 0 && (size_t)oi < m->n, "output_index %lld names no added item", (long long)oi);
    test_item_t *it = &m->it[oi];
    if (with_item_id)
        cr_assert_str_eq(test_js(ev, "item_id"), it->id,
                         "item_id must equal the id of the item at output_index");
    cr_assert_not(it->done, "event for item %lld after its output_item.done", (long long)oi);
    return it;
}

static void check_part_json(const gw_json_t *part, const char *kind, const char *text)
{
    cr_assert_str_eq(test_js(part, "type"), kind);
    if (strcmp(kind, "refusal") == 0) {
        cr_assert_str_eq(test_js(part, "refusal"), text);
        return;
    }
    cr_assert_str_eq(test_js(part, "text"), text);
    if (strcmp(kind, "output_text") == 0) {
        cr_assert_eq(test_jget(part, "annotations")->type, GW_JSON_ARRAY);
        cr_assert_eq(test_jget(part, "annotations")->len, 0);
        cr_assert_eq(test_jget(part, "logprobs")->type, GW_JSON_ARRAY);
    }
}

static void check_final_item(const test_item_t *it, const gw_json_t *item, bool minted)
{
    cr_assert_str_eq(test_js(item, "id"), it->id);
    cr_assert_str_eq(test_js(item, "type"), it->type);
    const char *st = test_js(item, "status");
    cr_assert(strcmp(st, "completed") == 0 || strcmp(st, "incomplete") == 0, "bad final item status %s", st);
    if (strcmp(it->type, "message") == 0) {
        cr_assert_str_eq(test_js(item, "role"), "assistant");
        const gw_json_t *content = test_jget(item, "content");
        cr_assert_eq(content->len, it->n_parts, "message content has %zu parts, streamed %zu", content->len,
                     it->n_parts);
        /* MLflow rejects empty content. A minted message opens with its first text; an upstream
         * item announced and then abandoned in a failure may end up empty. */
        if (minted || strcmp(st, "completed") == 0)
            cr_assert_gt(content->len, 0, "message content must not be empty");
        for (size_t p = 0; p < it->n_parts; p++)
            check_part_json(gw_json_at(content, p), it->part_type[p], it->text[p]);
    } else if (strcmp(it->type, "function_call") == 0) {
        cr_assert_str_eq(test_js(item, "call_id"), it->call_id);
        cr_assert_str_eq(test_js(item, "name"), it->name);
        cr_assert_str_eq(test_js(item, "arguments"), it->args);
    } else {
        const gw_json_t *summary = test_jget(item, "summary");
        cr_assert_eq(summary->len, it->n_parts);
        for (size_t p = 0; p < it->n_parts; p++)
            check_part_json(gw_json_at(summary, p), "summary_text", it->text[p]);
    }
}

static void on_item_added(test_summary_t *m, const gw_json_t *ev, bool minted)
{
    cr_assert_eq(test_ji(ev, "output_index"), (int64_t)m->n, "output_index must count added items");
    cr_assert_lt(m->n, TEST_MAX_ITEMS);
    /* Rule 7: message and reasoning items are closed before any later item is added. */
    for (size_t k = 0; k < m->n; k++)
        if (strcmp(m->it[k].type, "function_call") != 0)
            cr_assert(m->it[k].done, "item %zu (%s) still open when item %zu was added", k, m->it[k].type,
                      m->n);
    const gw_json_t *item = test_jget(ev, "item");
    test_item_t *it = &m->it[m->n++];
    memset(it, 0, sizeof(*it));
    copy_text(it->type, sizeof(it->type), test_js(item, "type"));
    copy_text(it->id, sizeof(it->id), test_js(item, "id"));
    cr_assert_gt(strlen(it->id), 0, "every item needs a non-empty id");
    cr_assert_str_eq(test_js(item, "status"), "in_progress");
    for (size_t k = 0; k + 1 < m->n; k++)
        cr_assert_str_neq(m->it[k].id, it->id, "item ids must be unique");
    const char *prefix = NULL;
    if (strcmp(it->type, "message") == 0) {
        prefix = "msg_";
        cr_assert_str_eq(test_js(item, "role"), "assistant");
        cr_assert_eq(test_jget(item, "content")->len, 0);
    } else if (strcmp(it->type, "function_call") == 0) {
        prefix = "fc_";
        copy_text(it->call_id, sizeof(it->call_id), test_js(item, "call_id"));
        copy_text(it->name, sizeof(it->name), test_js(item, "name"));
        cr_assert_gt(strlen(it->call_id), 0, "function_call announced without call_id");
        cr_assert_gt(strlen(it->name), 0, "function_call announced without name");
        cr_assert_str_eq(test_js(item, "arguments"), "");
        for (size_t k = 0; k + 1 < m->n; k++)
            if (strcmp(m->it[k].type, "function_call") == 0)
                cr_assert_str_neq(m->it[k].call_id, it->call_id, "call_ids must be unique");
    } else if (strcmp(it->type, "reasoning") == 0) {
        prefix = "rs_";
        cr_assert_eq(test_jget(item, "summary")->len, 0);
    } else {
        cr_assert_fail("unexpected item type %s", it->type);
    }
    if (minted) {
        cr_assert_eq(strncmp(it->id, prefix, strlen(prefix)), 0, "item id %s lacks prefix %s", it->id,
                     prefix);
        cr_assert_eq(strlen(it->id), strlen(prefix) + 32, "item id %s is not prefix + 32 hex", it->id);
    }
}

static void on_part_added(test_summary_t *m, const gw_json_t *ev, bool summary)
{
    test_item_t *it = item_at(m, ev, true);
    cr_assert_str_eq(it->type, summary ? "reasoning" : "message");
    cr_assert_not(it->part_open, "a part was added while the previous one was open");
    cr_assert_eq(test_ji(ev, summary ? "summary_index" : "content_index"), (int64_t)it->n_parts);
    cr_assert_lt(it->n_parts, TEST_MAX_PARTS);
    const gw_json_t *part = test_jget(ev, "part");
    const char *kind = test_js(part, "type");
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

static test_item_t *open_part_item(test_summary_t *m, const gw_json_t *ev, const char *kind)
{
    test_item_t *it = item_at(m, ev, true);
    cr_assert(it->part_open, "%s event without an open part", kind);
    cr_assert_str_eq(it->part_type[it->n_parts - 1], kind);
    const char *index_key = strcmp(kind, "summary_text") == 0 ? "summary_index" : "content_index";
    cr_assert_eq(test_ji(ev, index_key), (int64_t)it->n_parts - 1);
    return it;
}

static void on_text_delta(test_summary_t *m, const gw_json_t *ev, const char *kind)
{
    test_item_t *it = open_part_item(m, ev, kind);
    cr_assert_not(it->text_done, "delta after the part's text done");
    const gw_json_t *d = test_jget(ev, "delta");
    cr_assert_eq(d->type, GW_JSON_STRING);
    cr_assert_gt(d->str.len, 0, "empty text deltas are never sent");
    append_text(it->text[it->n_parts - 1], TEST_TEXT_MAX, d->str);
    it->n_deltas++;
    if (strcmp(kind, "output_text") == 0)
        cr_assert_eq(test_jget(ev, "logprobs")->type, GW_JSON_ARRAY);
}

static void on_text_done(test_summary_t *m, const gw_json_t *ev, const char *kind)
{
    test_item_t *it = open_part_item(m, ev, kind);
    cr_assert_not(it->text_done);
    cr_assert_str_eq(test_js(ev, strcmp(kind, "refusal") == 0 ? "refusal" : "text"),
                     it->text[it->n_parts - 1], "deltas must concatenate to the done text");
    it->text_done = true;
}

static void on_part_done(test_summary_t *m, const gw_json_t *ev, const char *kind)
{
    test_item_t *it = open_part_item(m, ev, kind);
    cr_assert(it->text_done, "part done before its text done");
    check_part_json(test_jget(ev, "part"), kind, it->text[it->n_parts - 1]);
    it->part_open = false;
}

static void on_args_delta(test_summary_t *m, const gw_json_t *ev)
{
    test_item_t *it = item_at(m, ev, true);
    cr_assert_str_eq(it->type, "function_call");
    const gw_json_t *d = test_jget(ev, "delta");
    cr_assert_eq(d->type, GW_JSON_STRING);
    append_text(it->args, TEST_TEXT_MAX, d->str);
    it->n_deltas++;
}

static void on_args_done(test_summary_t *m, const gw_json_t *ev)
{
    test_item_t *it = item_at(m, ev, true);
    cr_assert_str_eq(it->type, "function_call");
    cr_assert_str_eq(test_js(ev, "arguments"), it->args,
                     "argument deltas must concatenate to done.arguments");
    cr_assert_str_eq(test_js(ev, "name"), it->name);
    it->text_done = true;
}

static void on_item_done(test_summary_t *m, const gw_json_t *ev, bool minted)
{
    test_item_t *it = item_at(m, ev, false);
    cr_assert_not(it->part_open, "output_item.done with an open part");
    if (strcmp(it->type, "function_call") == 0)
        cr_assert(it->text_done, "function_call done without function_call_arguments.done");
    const gw_json_t *item = test_jget(ev, "item");
    check_final_item(it, item, minted);
    copy_text(it->status, sizeof(it->status), test_js(item, "status"));
    it->done = true;
    it->done_item = item;
}

static void on_terminal(test_summary_t *m, const gw_json_t *ev, const char *type)
{
    cr_assert_null(m->terminal, "more than one terminal event");
    m->terminal = ev;
    copy_text(m->terminal_type, sizeof(m->terminal_type), type);
    const gw_json_t *resp = test_jget(ev, "response");
    check_lifecycle_response(resp, status_for(type));
    const gw_json_t *out = test_jget(resp, "output");
    cr_assert_eq(out->len, m->n, "terminal output has %zu items, %zu were added", out->len, m->n);
    for (size_t k = 0; k < m->n; k++) {
        cr_assert(m->it[k].done, "item %zu not done before the terminal event", k);
        char *a = test_json_text(gw_json_at(out, k)), *b = test_json_text(m->it[k].done_item);
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

void test_events_check(const test_events_t *v, const test_run_opts_t *o, test_summary_t *m)
{
    gw_front_t front = o->front;
    memset(m, 0, sizeof(*m));
    m->n_comments = v->n_comments;
    cr_assert_geq(v->n, 2, "fewer than two events");
    for (size_t i = 0; i < v->n; i++) {
        const test_event_t *e = &v->ev[i];
        if (!e->j) {
            cr_assert_eq(front, GW_FRONT_DATABRICKS, "[DONE] on the OpenAI route");
            cr_assert_eq(i, v->n - 1, "[DONE] is not the last event");
            cr_assert_str_eq(e->event, "");
            m->done_marker = true;
            continue;
        }
        const char *type = test_js(e->j, "type");
        if (front == GW_FRONT_OPENAI)
            cr_assert_str_eq(e->event, type, "event: line must equal the JSON type");
        else
            cr_assert_str_eq(e->event, "", "no event: lines on the Databricks route");
        cr_assert_eq(test_ji(e->j, "sequence_number"), (int64_t)m->n_events,
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
            check_lifecycle_response(test_jget(e->j, "response"), "in_progress");
            cr_assert_eq(test_jget(test_jget(e->j, "response"), "output")->len, 0);
        } else if (strcmp(type, "response.output_item.added") == 0) {
            on_item_added(m, e->j, o->minted_items);
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
            const test_item_t *it = item_at(m, e->j, true);
            cr_assert_gt(it->n_parts, 0);
            on_part_done(m, e->j, it->part_type[it->n_parts - 1]);
        } else if (strcmp(type, "response.reasoning_summary_part.done") == 0) {
            on_part_done(m, e->j, "summary_text");
        } else if (strcmp(type, "response.function_call_arguments.delta") == 0) {
            on_args_delta(m, e->j);
        } else if (strcmp(type, "response.function_call_arguments.done") == 0) {
            on_args_done(m, e->j);
        } else if (strcmp(type, "response.output_item.done") == 0) {
            on_item_done(m, e->j, o->minted_items);
        } else if (strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
                   strcmp(type, "response.failed") == 0) {
            on_terminal(m, e->j, type);
        } else if (strcmp(type, "error") == 0) {
            cr_assert_not_null(m->terminal, "error event before response.failed");
            cr_assert_str_eq(m->terminal_type, "response.failed");
            cr_assert_null(m->error_ev, "more than one error event");
            m->error_ev = e->j;
        } else if (front == GW_FRONT_DATABRICKS && o->adapter == GW_ADAPTER_RESPONSES) {
            /* §7.7: unknown upstream Responses events pass through on the Databricks route. */
        } else {
            cr_assert_fail("event type %s is not in the §4.2 catalogue (unknown upstream types reach only "
                           "Databricks-route clients)",
                           type);
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

/* ------------------------------------------------------------------------------------------ */
/* checked runs                                                                               */

/* Parse and check what run c->r rendered. */
static void check_run(test_checked_t *c, const test_run_opts_t *o)
{
    test_events_parse(&c->v, &c->r.out);
    c->m = calloc(1, sizeof(*c->m));
    cr_assert_not_null(c->m);
    test_events_check(&c->v, o, c->m);
}

void test_checked_run(test_checked_t *c, const char *name, const test_run_opts_t *o, size_t step)
{
    test_run_golden(&c->r, name, o, step);
    check_run(c, o);
}

void test_checked_feed(test_checked_t *c, const test_run_opts_t *o, const char *data, size_t len)
{
    test_run_begin(&c->r, o);
    test_run_feed(&c->r, data, len);
    test_run_end(&c->r);
    check_run(c, o);
}

void test_checked_free(test_checked_t *c)
{
    free(c->m);
    test_events_free(&c->v);
    test_run_free(&c->r);
}

const gw_json_t *test_checked_response(const test_checked_t *c)
{
    return test_jget(c->m->terminal, "response");
}

/* ------------------------------------------------------------------------------------------ */
/* assertions the tests share                                                                 */

void test_check_usage(const gw_json_t *resp, int64_t in, int64_t out, int64_t total, int64_t cached,
                      int64_t reasoning)
{
    const gw_json_t *u = test_jget(resp, "usage");
    cr_assert_eq(u->type, GW_JSON_OBJECT, "usage must be an object");
    cr_assert_eq(test_ji(u, "input_tokens"), in);
    cr_assert_eq(test_ji(u, "output_tokens"), out);
    cr_assert_eq(test_ji(u, "total_tokens"), total);
    cr_assert_eq(test_ji(test_jget(u, "input_tokens_details"), "cached_tokens"), cached);
    cr_assert_eq(test_ji(test_jget(u, "input_tokens_details"), "cache_write_tokens"), 0);
    cr_assert_eq(test_ji(test_jget(u, "output_tokens_details"), "reasoning_tokens"), reasoning);
}

void test_check_no_usage(const test_checked_t *c)
{
    cr_assert_eq(test_jget(test_checked_response(c), "usage")->type, GW_JSON_NULL,
                 "no upstream usage -> null");
}

void test_check_message(const test_item_t *it, const char *id, const char *kind, const char *text)
{
    cr_assert_str_eq(it->type, "message");
    if (id)
        cr_assert_str_eq(it->id, id, "upstream item ids pass through");
    cr_assert_eq(it->n_parts, 1);
    cr_assert_str_eq(it->part_type[0], kind);
    cr_assert_str_eq(it->text[0], text);
}

void test_check_call(const test_item_t *it, const char *id, const char *call_id, const char *name,
                     const char *args)
{
    cr_assert_str_eq(it->type, "function_call");
    if (id)
        cr_assert_str_eq(it->id, id, "upstream item ids pass through");
    cr_assert_str_eq(it->call_id, call_id);
    cr_assert_str_eq(it->name, name);
    cr_assert_str_eq(it->args, args);
}

const test_err_row_t test_err_upstream = {"server_error", "server_error", "upstream_error", "INTERNAL_ERROR"};
const test_err_row_t test_err_bad_request = {"invalid_prompt", "invalid_request_error",
                                             "upstream_bad_request", "BAD_REQUEST"};
const test_err_row_t test_err_rate_limit = {"rate_limit_exceeded", "rate_limit_error", "rate_limit_exceeded",
                                            "REQUEST_LIMIT_EXCEEDED"};

void test_check_failure(const test_checked_t *c, const char *message, const test_err_row_t *row)
{
    const char *failed_code = row->failed_code, *type = row->type, *code = row->code;
    const char *error_code = row->error_code;
    cr_assert_str_eq(c->m->terminal_type, "response.failed");
    const gw_json_t *resp = test_checked_response(c);
    const gw_json_t *err = test_jget(resp, "error");
    cr_assert_str_eq(test_js(err, "code"), failed_code);
    cr_assert_str_eq(test_js(err, "message"), message);
    const gw_json_t *ev = c->m->error_ev;
    cr_assert_not_null(ev);
    cr_assert_eq(test_ji(ev, "sequence_number"), test_ji(c->m->terminal, "sequence_number") + 1,
                 "error must directly follow response.failed");
    cr_assert_str_eq(test_js(ev, "code"), failed_code);
    cr_assert_str_eq(test_js(ev, "message"), message);
    cr_assert(gw_json_is_nullish(gw_json_get(ev, "param")));
    cr_assert_not_null(gw_json_get(ev, "param"), "param must be present (null)");
    const gw_json_t *nested = test_jget(ev, "error");
    cr_assert_str_eq(test_js(nested, "type"), type);
    cr_assert_str_eq(test_js(nested, "code"), code);
    cr_assert_str_eq(test_js(nested, "message"), message);
    const gw_json_t *dbx = test_jget(test_jget(ev, "databricks_output"), "error");
    cr_assert_str_eq(test_js(dbx, "error_code"), error_code);
    cr_assert_str_eq(test_js(dbx, "message"), message);
    cr_assert_eq(gw_stream_status(c->r.s), GW_FINISH_FAILED);
    const gw_error_t *ge = gw_stream_error(c->r.s);
    cr_assert_not_null(ge);
    cr_assert_str_eq(ge->message, message);
    /* §5.3: open items are closed incomplete in the failed response. */
    for (size_t k = 0; k < c->m->n; k++)
        cr_assert_str_neq(c->m->it[k].status, "in_progress");
}

void test_check_http_error(const test_run_t *r, gw_err_kind_t kind, const char *message)
{
    cr_assert_eq(r->out.len, 0, "nothing was written: the owner answers with a plain HTTP error");
    const gw_error_t *e = gw_stream_error(r->s);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, kind, "error kind %d, want %d", (int)e->kind, (int)kind);
    cr_assert_str_eq(e->message, message);
}

void test_check_json_alike(const gw_json_t *want, const gw_json_t *got, const char *what)
{
    char *a = normalized_json(want), *b = normalized_json(got);
    cr_assert_str_eq(b, a, "%s", what);
    free(a);
    free(b);
}

void test_check_same_output(const test_run_t *a, const test_run_t *b)
{
    char *x = test_run_normalized(a), *y = test_run_normalized(b);
    cr_assert_str_eq(y, x);
    free(x);
    free(y);
}

void test_check_split_every_offset(const char *name, const test_run_opts_t *o)
{
    size_t len;
    char *buf = test_read_data(name, &len);
    test_run_t whole;
    test_run_golden(&whole, name, o, 0);
    char *want = test_run_normalized(&whole);
    cr_assert_gt(strlen(want), 0);
    for (size_t k = 0; k <= len; k++) {
        test_run_t r;
        test_run_begin(&r, o);
        test_run_feed(&r, buf, k);
        test_run_feed(&r, buf + k, len - k);
        test_run_end(&r);
        char *got = test_run_normalized(&r);
        cr_assert_str_eq(got, want, "%s split at byte %zu renders differently", name, k);
        cr_assert_eq(gw_stream_status(r.s), gw_stream_status(whole.s), "split at %zu", k);
        free(got);
        test_run_free(&r);
    }
    free(want);
    test_run_free(&whole);
    free(buf);
}

void test_check_step_feeds(const char *name, const test_run_opts_t *o, size_t stride)
{
    test_checked_t whole;
    test_checked_run(&whole, name, o, 0);
    char *want = test_run_normalized(&whole.r);
    for (size_t step = 1; step < 64; step += stride) {
        test_checked_t c;
        test_checked_run(&c, name, o, step);
        char *got = test_run_normalized(&c.r);
        cr_assert_str_eq(got, want, "%s fed in %zu-byte pieces", name, step);
        free(got);
        test_checked_free(&c);
    }
    free(want);
    test_checked_free(&whole);
}

void test_check_random_chunks(const char *name, const test_run_opts_t *o, int iterations, unsigned *seed)
{
    size_t len;
    char *buf = test_read_data(name, &len);
    test_checked_t whole;
    test_checked_run(&whole, name, o, 0);
    char *want = test_run_normalized(&whole.r);
    for (int iter = 0; iter < iterations; iter++) {
        test_run_t r;
        test_run_begin(&r, o);
        size_t off = 0;
        while (off < len) {
            *seed = *seed * 1103515245u + 12345u;
            size_t n = 1 + (*seed >> 16) % 97;
            if (n > len - off)
                n = len - off;
            test_run_feed(&r, buf + off, n);
            off += n;
        }
        test_run_end(&r);
        char *got = test_run_normalized(&r);
        cr_assert_str_eq(got, want, "%s: random chunking (iteration %d) renders differently", name, iter);
        free(got);
        test_run_free(&r);
    }
    free(want);
    test_checked_free(&whole);
    free(buf);
}

void test_check_nonstream_equals_stream(const char *name, const test_run_opts_t *no, const char *stream_name,
                                        const test_run_opts_t *so)
{
    test_checked_t c;
    test_checked_run(&c, stream_name, so, 0);
    test_run_t r;
    test_run_golden(&r, name, no, 0);
    gw_json_t *obj = test_run_json(c.v.a, &r);
    char what[512];
    snprintf(what, sizeof(what), "%s: non-stream body differs from the terminal event's response of %s", name,
             stream_name);
    test_check_json_alike(test_checked_response(&c), obj, what);
    /* Same generator, same bytes: the raw output is that object with nothing around it. */
    char *raw = test_run_normalized(&r), *want = normalized_json(test_checked_response(&c));
    cr_assert_str_eq(raw, want);
    cr_assert_eq(gw_stream_status(r.s), gw_stream_status(c.r.s));
    free(raw);
    free(want);
    test_run_free(&r);
    test_checked_free(&c);
}
