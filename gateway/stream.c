#include "gateway/stream.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gateway/id.h"
#include "gateway/sse.h"

struct part {
    ad_part_kind_t kind;
    gw_buf_t text;
    char held[3]; /** CESU-8 high surrogate waiting for its low half (PROTOCOL.md §8) */
    bool holding;
};

struct item {
    ad_item_kind_t kind;
    char id[96]; /** upstream ids pass through (OpenAI ids are ~52 chars) */
    char *call_id, *name; /** malloc'd copies (function_call) */
    int status;           /** -1 in progress, else ad_item_status_t */
    struct part *parts;
    size_t n_parts;
    bool part_open;       /** last part still receiving deltas */
    gw_buf_t args;        /** function_call arguments */
    gw_buf_t delta_ids;   /** cached `,"item_id":...,"output_index":N[,"<index>":M],"delta":` */
    size_t delta_ids_part; /** part the cache was built for, + 1 (0 = none) */
};

struct gw_stream {
    gw_stream_opts_t o;
    ad_emit_t emit;
    gw_jgen_t *j;
    gw_buf_t out;       /** pending client bytes */
    gw_buf_t aggregate; /** final response object, once ended */
    struct item *items;
    size_t n_items, cap_items;
    int64_t seq;
    bool begun, committed;
    gw_finish_status_t status;
    const char *incomplete_reason;
    gw_error_t err;
    char *err_message; /** owned copy for err.message */
    ad_usage_t usage;
    gw_buf_t custom_outputs, trace, upstream_model; /** serialised JSON / text */
    gw_buf_t scratch;                              /** surrogate joining */
    uint64_t first_token_ns;
    size_t output_chars;
    bool error_sent; /** chat front: the upstream's own error event already went out */
};

/* Accumulated text as a JSON string value: an empty buffer is "", never null. */
static gw_str_t text_of(const gw_buf_t *b)
{
    return b->base ? gw_buf_str(b) : GW_STR_LIT("");
}

static bool dbx(const gw_stream_t *s)
{
    return s->o.front == GW_FRONT_DATABRICKS;
}

static bool chat(const gw_stream_t *s)
{
    return s->o.front == GW_FRONT_CHAT;
}

/* ---- rendering helpers ---- */

static void ev_begin(gw_stream_t *s, const char *type)
{
    gw_sse_begin(&s->out, !dbx(s), gw_str(type));
    gw_jgen_target(s->j, &s->out);
    gw_jgen_map_open(s->j);
    gw_jgen_kv_cstr(s->j, "type", type);
    gw_jgen_kv_int(s->j, "sequence_number", s->seq++);
}

static void ev_end(gw_stream_t *s)
{
    gw_jgen_map_close(s->j);
    gw_jgen_done(s->j);
    gw_sse_end(&s->out);
}

static const char *item_status_name(int st)
{
    return st < 0 ? "in_progress" : st == AD_STATUS_COMPLETED ? "completed" : "incomplete";
}

static void render_part(gw_jgen_t *j, const struct part *p)
{
    gw_jgen_map_open(j);
    if (p->kind == AD_PART_REFUSAL) {
        gw_jgen_kv_cstr(j, "type", "refusal");
        gw_jgen_kv_str(j, "refusal", text_of(&p->text));
    } else if (p->kind == AD_PART_SUMMARY_TEXT) {
        gw_jgen_kv_cstr(j, "type", "summary_text");
        gw_jgen_kv_str(j, "text", text_of(&p->text));
    } else {
        gw_jgen_kv_cstr(j, "type", "output_text");
        gw_jgen_kv_str(j, "text", text_of(&p->text));
        gw_jgen_cstr(j, "annotations");
        gw_jgen_array_open(j);
        gw_jgen_array_close(j);
        gw_jgen_cstr(j, "logprobs");
        gw_jgen_array_open(j);
        gw_jgen_array_close(j);
    }
    gw_jgen_map_close(j);
}

/* Full item; `added` renders the in-progress shape of output_item.added (empty content). */
static void render_item(gw_jgen_t *j, const struct item *it, bool added)
{
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "id", it->id);
    switch (it->kind) {
    case AD_ITEM_MESSAGE:
        gw_jgen_kv_cstr(j, "type", "message");
        gw_jgen_kv_cstr(j, "status", item_status_name(added ? -1 : it->status));
        gw_jgen_kv_cstr(j, "role", "assistant");
        gw_jgen_cstr(j, "content");
        gw_jgen_array_open(j);
        for (size_t i = 0; !added && i < it->n_parts; i++)
            render_part(j, &it->parts[i]);
        gw_jgen_array_close(j);
        break;
    case AD_ITEM_FUNCTION_CALL:
        gw_jgen_kv_cstr(j, "type", "function_call");
        gw_jgen_kv_cstr(j, "status", item_status_name(added ? -1 : it->status));
        gw_jgen_kv_cstr(j, "call_id", it->call_id);
        gw_jgen_kv_cstr(j, "name", it->name);
        gw_jgen_kv_str(j, "arguments", added ? GW_STR_LIT("") : text_of(&it->args));
        break;
    case AD_ITEM_REASONING:
        gw_jgen_kv_cstr(j, "type", "reasoning");
        gw_jgen_cstr(j, "summary");
        gw_jgen_array_open(j);
        for (size_t i = 0; !added && i < it->n_parts; i++)
            render_part(j, &it->parts[i]);
        gw_jgen_array_close(j);
        gw_jgen_kv_cstr(j, "status", item_status_name(added ? -1 : it->status));
        break;
    }
    gw_jgen_map_close(j);
}

static void render_usage(gw_jgen_t *j, const ad_usage_t *u)
{
    gw_jgen_cstr(j, "usage");
    if (!u->present) {
        gw_jgen_null(j);
        return;
    }
    gw_jgen_map_open(j);
    gw_jgen_kv_int(j, "input_tokens", u->input);
    gw_jgen_cstr(j, "input_tokens_details");
    gw_jgen_map_open(j);
    gw_jgen_kv_int(j, "cached_tokens", u->cached);
    gw_jgen_kv_int(j, "cache_write_tokens", 0);
    gw_jgen_map_close(j);
    gw_jgen_kv_int(j, "output_tokens", u->output);
    gw_jgen_cstr(j, "output_tokens_details");
    gw_jgen_map_open(j);
    gw_jgen_kv_int(j, "reasoning_tokens", u->reasoning);
    gw_jgen_map_close(j);
    gw_jgen_kv_int(j, "total_tokens", u->total);
    gw_jgen_map_close(j);
}

static const char *status_name(const gw_stream_t *s)
{
    switch (s->status) {
    case GW_FINISH_NONE:
        return "in_progress";
    case GW_FINISH_COMPLETED:
        return "completed";
    case GW_FINISH_INCOMPLETE:
        return "incomplete";
    case GW_FINISH_FAILED:
        return "failed";
    case GW_FINISH_CANCELLED:
        return "cancelled";
    }
    return "failed";
}

static void render_databricks_output(gw_stream_t *s, bool with_error)
{
    gw_jgen_t *j = s->j;
    gw_jgen_cstr(j, "databricks_output");
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "databricks_request_id", s->o.request_id);
    if (s->trace.len && s->o.req->return_trace) {
        gw_jgen_cstr(j, "trace");
        gw_jgen_raw(j, gw_buf_str(&s->trace));
    }
    if (with_error) {
        gw_jgen_cstr(j, "error");
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "error_code", gw_err_error_code(s->err.kind));
        gw_jgen_kv_cstr(j, "message", s->err.message);
        gw_jgen_map_close(j);
    }
    gw_jgen_map_close(j);
}

static void echo_or(gw_jgen_t *j, const char *key, const gw_json_t *v, const char *raw_default)
{
    gw_jgen_cstr(j, key);
    if (v)
        gw_jgen_value(j, v);
    else
        gw_jgen_raw(j, gw_str(raw_default));
}

/* The Responses object (§3). `extras`: top-level databricks_output as in a
 * non-streaming body or the table aggregate. */
static void render_response(gw_stream_t *s, bool extras)
{
    gw_jgen_t *j = s->j;
    const gw_request_t *r = s->o.req;
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "id", s->o.response_id);
    gw_jgen_kv_cstr(j, "object", "response");
    gw_jgen_kv_int(j, "created_at", s->o.created_at);
    gw_jgen_kv_cstr(j, "status", status_name(s));
    gw_jgen_cstr(j, "error");
    if (s->status == GW_FINISH_FAILED) {
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "code", gw_err_failed_code(s->err.kind));
        gw_jgen_kv_cstr(j, "message", s->err.message);
        gw_jgen_map_close(j);
    } else {
        gw_jgen_null(j);
    }
    gw_jgen_cstr(j, "incomplete_details");
    if (s->status == GW_FINISH_INCOMPLETE) {
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "reason", s->incomplete_reason);
        gw_jgen_map_close(j);
    } else {
        gw_jgen_null(j);
    }
    echo_or(j, "instructions", r->instructions, "null");
    gw_jgen_kv_str(j, "model", s->o.model);
    gw_jgen_cstr(j, "output");
    gw_jgen_array_open(j);
    for (size_t i = 0; s->status != GW_FINISH_NONE && i < s->n_items; i++)
        render_item(j, &s->items[i], false);
    gw_jgen_array_close(j);
    echo_or(j, "parallel_tool_calls", r->parallel_tool_calls, "true");
    echo_or(j, "tool_choice", r->tool_choice, "\"auto\"");
    echo_or(j, "tools", r->tools, "[]");
    echo_or(j, "temperature", r->temperature, "null");
    echo_or(j, "top_p", r->top_p, "null");
    echo_or(j, "max_output_tokens", r->max_output_tokens, "null");
    gw_jgen_cstr(j, "previous_response_id");
    gw_jgen_null(j);
    gw_jgen_cstr(j, "reasoning");
    gw_jgen_map_open(j);
    gw_jgen_kv_value(j, "effort", gw_json_get(r->reasoning, "effort"));
    gw_jgen_cstr(j, "summary");
    gw_jgen_null(j);
    gw_jgen_map_close(j);
    gw_jgen_cstr(j, "store");
    gw_jgen_bool(j, false);
    const gw_json_t *format = gw_json_get(r->text, "format");
    gw_jgen_cstr(j, "text");
    gw_jgen_map_open(j);
    echo_or(j, "format", gw_json_is_nullish(format) ? NULL : format, "{\"type\":\"text\"}");
    gw_jgen_map_close(j);
    gw_jgen_kv_cstr(j, "truncation", "disabled");
    echo_or(j, "user", r->user, "null");
    echo_or(j, "metadata", r->metadata, "{}");
    render_usage(j, s->status == GW_FINISH_NONE ? &(ad_usage_t){0} : &s->usage);
    /* custom_outputs belongs to the final object, streamed or not, so both are equal (§9). */
    if (s->status != GW_FINISH_NONE && s->custom_outputs.len) {
        gw_jgen_cstr(j, "custom_outputs");
        gw_jgen_raw(j, gw_buf_str(&s->custom_outputs));
    }
    if (extras && (dbx(s) || s->status == GW_FINISH_FAILED))
        render_databricks_output(s, s->status == GW_FINISH_FAILED);
    gw_jgen_map_close(j);
}

static void lifecycle_event(gw_stream_t *s, const char *type)
{
    ev_begin(s, type);
    gw_jgen_cstr(s->j, "response");
    render_response(s, false);
    ev_end(s);
}

/* ---- item model ---- */

static struct item *item_at(gw_stream_t *s, int oi)
{
    assert(oi >= 0 && (size_t)oi < s->n_items);
    return &s->items[oi];
}

static void ids(gw_stream_t *s, const struct item *it, int oi)
{
    gw_jgen_kv_cstr(s->j, "item_id", it->id);
    gw_jgen_kv_int(s->j, "output_index", oi);
}

/* Close the open part of an item: text/refusal/summary done, then part done. */
static int on_delta(void *ctx, int oi, gw_str_t text);

static void close_part(gw_stream_t *s, int oi)
{
    struct item *it = item_at(s, oi);
    if (!it->part_open)
        return;
    struct part *held = &it->parts[it->n_parts - 1];
    if (held->holding) {
        /* A high surrogate nobody completed becomes U+FFFD, as a last delta (§8). */
        held->holding = false;
        on_delta(s, oi, GW_STR_LIT("\xEF\xBF\xBD"));
    }
    it->part_open = false;
    if (!s->o.stream)
        return;
    size_t pi = it->n_parts - 1;
    struct part *p = &it->parts[pi];
    bool summary = p->kind == AD_PART_SUMMARY_TEXT;
    const char *done = summary ? "response.reasoning_summary_text.done"
                       : p->kind == AD_PART_REFUSAL ? "response.refusal.done"
                                                    : "response.output_text.done";
    ev_begin(s, done);
    ids(s, it, oi);
    gw_jgen_kv_int(s->j, summary ? "summary_index" : "content_index", (int64_t)pi);
    gw_jgen_kv_str(s->j, p->kind == AD_PART_REFUSAL ? "refusal" : "text", text_of(&p->text));
    if (p->kind == AD_PART_OUTPUT_TEXT) {
        gw_jgen_cstr(s->j, "logprobs");
        gw_jgen_array_open(s->j);
        gw_jgen_array_close(s->j);
    }
    ev_end(s);
    ev_begin(s, summary ? "response.reasoning_summary_part.done" : "response.content_part.done");
    ids(s, it, oi);
    gw_jgen_kv_int(s->j, summary ? "summary_index" : "content_index", (int64_t)pi);
    gw_jgen_cstr(s->j, "part");
    render_part(s->j, p);
    ev_end(s);
}

static int on_part_add(void *ctx, int oi, ad_part_kind_t kind);

static void close_item(gw_stream_t *s, int oi, ad_item_status_t st)
{
    struct item *it = item_at(s, oi);
    if (it->status >= 0)
        return;
    /* A message never has empty content (MLflow rejects it): give a silent one an empty part. */
    if (it->kind == AD_ITEM_MESSAGE && it->n_parts == 0) {
        gw_finish_status_t keep = s->status;
        s->status = GW_FINISH_NONE;
        on_part_add(s, oi, AD_PART_OUTPUT_TEXT);
        s->status = keep;
    }
    close_part(s, oi);
    it->status = (int)st;
    if (!s->o.stream)
        return;
    if (it->kind == AD_ITEM_FUNCTION_CALL) {
        ev_begin(s, "response.function_call_arguments.done");
        ids(s, it, oi);
        gw_jgen_kv_cstr(s->j, "name", it->name);
        gw_jgen_kv_str(s->j, "arguments", text_of(&it->args));
        ev_end(s);
    }
    ev_begin(s, "response.output_item.done");
    gw_jgen_kv_int(s->j, "output_index", oi);
    gw_jgen_cstr(s->j, "item");
    render_item(s->j, it, false);
    ev_end(s);
}

static void close_open_items(gw_stream_t *s, ad_item_status_t st)
{
    for (size_t i = 0; i < s->n_items; i++)
        close_item(s, (int)i, st);
}

/* ---- emitter callbacks ---- */

static int on_begin(void *ctx)
{
    gw_stream_t *s = ctx;
    if (s->begun || s->status != GW_FINISH_NONE)
        return s->status == GW_FINISH_NONE ? 0 : -1;
    s->begun = true;
    if (s->o.stream && chat(s)) {
        s->committed = true; /* the passthrough's first chunk follows at once */
    } else if (s->o.stream) {
        s->committed = true;
        lifecycle_event(s, "response.created");
        lifecycle_event(s, "response.in_progress");
    }
    return 0;
}

static int on_item_add(void *ctx, const ad_item_t *in)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    on_begin(s);
    if (s->n_items == s->cap_items) {
        s->cap_items = s->cap_items ? s->cap_items * 2 : 4;
        s->items = gw_xrealloc(s->items, s->cap_items * sizeof(*s->items));
    }
    int oi = (int)s->n_items++;
    struct item *it = &s->items[oi];
    memset(it, 0, sizeof(*it));
    it->kind = in->kind;
    it->status = -1;
    if (in->id.len && in->id.len < sizeof(it->id)) {
        memcpy(it->id, in->id.base, in->id.len);
        it->id[in->id.len] = '\0';
    } else {
        gw_id_hex(it->id, in->kind == AD_ITEM_MESSAGE ? "msg_" : in->kind == AD_ITEM_REASONING ? "rs_" : "fc_", 32);
    }
    if (in->kind == AD_ITEM_FUNCTION_CALL) {
        if (in->call_id.len) {
            it->call_id = gw_xstrndup(in->call_id.base, in->call_id.len);
        } else {
            it->call_id = gw_xmalloc(32);
            gw_id_hex(it->call_id, "call_", 24);
        }
        it->name = gw_xstrndup(in->name.base, in->name.len);
    }
    if (s->o.stream) {
        ev_begin(s, "response.output_item.added");
        gw_jgen_kv_int(s->j, "output_index", oi);
        gw_jgen_cstr(s->j, "item");
        render_item(s->j, it, true);
        ev_end(s);
    }
    return oi;
}

static int on_part_add(void *ctx, int oi, ad_part_kind_t kind)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    struct item *it = item_at(s, oi);
    assert(it->kind != AD_ITEM_FUNCTION_CALL && it->status < 0);
    close_part(s, oi);
    it->parts = gw_xrealloc(it->parts, (it->n_parts + 1) * sizeof(*it->parts));
    struct part *p = &it->parts[it->n_parts++];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    it->part_open = true;
    if (s->o.stream) {
        bool summary = kind == AD_PART_SUMMARY_TEXT;
        ev_begin(s, summary ? "response.reasoning_summary_part.added" : "response.content_part.added");
        ids(s, it, oi);
        gw_jgen_kv_int(s->j, summary ? "summary_index" : "content_index", (int64_t)(it->n_parts - 1));
        gw_jgen_cstr(s->j, "part");
        render_part(s->j, p);
        ev_end(s);
    }
    return 0;
}

static bool cesu_high(const unsigned char *p)
{
    return p[0] == 0xED && p[1] >= 0xA0 && p[1] <= 0xAF;
}

static bool cesu_low(const unsigned char *p)
{
    return p[0] == 0xED && p[1] >= 0xB0 && p[1] <= 0xBF;
}

/* Join a surrogate pair split across two deltas into one 4-byte UTF-8 character, and hold a
 * trailing high surrogate for the next delta. Returns the text to emit (may live in tmp). */
static gw_str_t join_surrogates(struct part *p, gw_str_t text, gw_buf_t *tmp)
{
    const unsigned char *t = (const unsigned char *)text.base;
    if (p->holding) {
        p->holding = false;
        gw_buf_reset(tmp);
        if (text.len >= 3 && cesu_low(t)) {
            const unsigned char *h = (const unsigned char *)p->held;
            uint32_t hi = 0xD000u | ((h[1] & 0x3Fu) << 6) | (h[2] & 0x3Fu);
            uint32_t lo = 0xD000u | ((t[1] & 0x3Fu) << 6) | (t[2] & 0x3Fu);
            uint32_t cp = 0x10000u + ((hi - 0xD800u) << 10) + (lo - 0xDC00u);
            char u8[4] = {(char)(0xF0 | (cp >> 18)), (char)(0x80 | ((cp >> 12) & 0x3F)),
                          (char)(0x80 | ((cp >> 6) & 0x3F)), (char)(0x80 | (cp & 0x3F))};
            gw_buf_append(tmp, u8, 4);
            gw_buf_append(tmp, text.base + 3, text.len - 3);
        } else {
            gw_buf_append(tmp, "\xEF\xBF\xBD", 3); /* the held half stays alone: U+FFFD */
            gw_buf_append_str(tmp, text);
        }
        text = gw_buf_str(tmp);
        t = (const unsigned char *)text.base;
    }
    if (text.len >= 3 && cesu_high(t + text.len - 3)) {
        memcpy(p->held, text.base + text.len - 3, 3);
        p->holding = true;
        text.len -= 3;
    }
    return text;
}

static void append_int(gw_buf_t *b, int64_t v)
{
    char tmp[24];
    gw_buf_append_str(b, gw_int_str(tmp, v));
}

/* Delta events are most of a stream, so they skip the generator: everything but the sequence
 * number and the delta text is fixed per part and cached; the text goes through gw_json_quote,
 * which escapes and repairs UTF-8 exactly like the generator's strings. Same bytes as yajl. */
static void render_delta(gw_stream_t *s, struct item *it, int oi, const char *type, const char *index_key,
                         gw_str_t text)
{
    size_t part = it->n_parts; /* 1-based, 0 for function calls (no parts) */
    if (!it->delta_ids.len || it->delta_ids_part != part + 1) {
        gw_buf_t *d = &it->delta_ids;
        gw_buf_reset(d);
        gw_buf_append_cstr(d, ",\"item_id\":");
        gw_json_quote(d, gw_str(it->id));
        gw_buf_append_cstr(d, ",\"output_index\":");
        append_int(d, oi);
        if (index_key) {
            gw_buf_appendf(d, ",\"%s\":", index_key);
            append_int(d, (int64_t)(part - 1));
        }
        gw_buf_append_cstr(d, ",\"delta\":");
        it->delta_ids_part = part + 1;
    }
    gw_sse_begin(&s->out, !dbx(s), gw_str(type));
    gw_buf_append_cstr(&s->out, "{\"type\":\"");
    gw_buf_append_cstr(&s->out, type);
    gw_buf_append_cstr(&s->out, "\",\"sequence_number\":");
    append_int(&s->out, s->seq++);
    gw_buf_append_str(&s->out, gw_buf_str(&it->delta_ids));
    gw_json_quote(&s->out, text);
    bool text_part = it->kind == AD_ITEM_MESSAGE && it->parts[it->n_parts - 1].kind == AD_PART_OUTPUT_TEXT;
    gw_buf_append_cstr(&s->out, text_part ? ",\"logprobs\":[]}" : "}");
    gw_sse_end(&s->out);
}

static int on_delta(void *ctx, int oi, gw_str_t text)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    struct item *it = item_at(s, oi);
    assert(it->status < 0);
    if (!s->first_token_ns)
        s->first_token_ns = uv_hrtime();
    s->output_chars += text.len;
    const char *type;
    const char *index_key = "content_index";
    if (it->kind == AD_ITEM_FUNCTION_CALL) {
        gw_buf_append_str(&it->args, text);
        type = "response.function_call_arguments.delta";
        index_key = NULL;
    } else {
        assert(it->part_open);
        struct part *p = &it->parts[it->n_parts - 1];
        if (p->holding || (text.len >= 3 && cesu_high((const unsigned char *)text.base + text.len - 3)))
            text = join_surrogates(p, text, &s->scratch);
        if (!text.len)
            return 0;
        gw_buf_append_str(&p->text, text);
        if (p->kind == AD_PART_SUMMARY_TEXT) {
            type = "response.reasoning_summary_text.delta";
            index_key = "summary_index";
        } else {
            type = p->kind == AD_PART_REFUSAL ? "response.refusal.delta" : "response.output_text.delta";
        }
    }
    if (!s->o.stream)
        return 0;
    render_delta(s, it, oi, type, index_key, text);
    return 0;
}

static int on_item_done(void *ctx, int oi, ad_item_status_t st)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    close_item(s, oi, st);
    return 0;
}

static void on_usage(void *ctx, const ad_usage_t *u)
{
    gw_stream_t *s = ctx;
    s->usage = *u; /* last non-null usage wins (§6.2) */
}

static void on_upstream_model(void *ctx, gw_str_t model)
{
    gw_stream_t *s = ctx;
    gw_buf_reset(&s->upstream_model);
    gw_buf_append_str(&s->upstream_model, model);
}

static void keep_json(gw_stream_t *s, gw_buf_t *dst, const gw_json_t *v)
{
    gw_buf_reset(dst);
    gw_jgen_target(s->j, dst);
    gw_jgen_value(s->j, v);
    gw_jgen_done(s->j);
}

static void on_custom_outputs(void *ctx, const gw_json_t *v)
{
    gw_stream_t *s = ctx;
    keep_json(s, &s->custom_outputs, v);
}

static void on_trace(void *ctx, const gw_json_t *v)
{
    gw_stream_t *s = ctx;
    keep_json(s, &s->trace, v);
}

static void on_heartbeat(void *ctx)
{
    gw_stream_keepalive(ctx);
}

/* Render the aggregate for the table, once the status is final. */
static void build_aggregate(gw_stream_t *s)
{
    if (chat(s))
        return; /* the passthrough adapter hands its own (on_aggregate) */
    gw_buf_reset(&s->aggregate);
    if (!s->begun)
        return;
    gw_jgen_target(s->j, &s->aggregate);
    render_response(s, true);
    gw_jgen_done(s->j);
}

static int on_finish(void *ctx, ad_finish_t how, const char *reason)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    on_begin(s);
    close_open_items(s, how == AD_FINISH_COMPLETED ? AD_STATUS_COMPLETED : AD_STATUS_INCOMPLETE);
    s->status = how == AD_FINISH_COMPLETED ? GW_FINISH_COMPLETED : GW_FINISH_INCOMPLETE;
    s->incomplete_reason = reason ? reason : "max_output_tokens";
    if (chat(s))
        return 0; /* every byte already went out through on_raw */
    build_aggregate(s);
    if (s->o.stream) {
        ev_begin(s, how == AD_FINISH_COMPLETED ? "response.completed" : "response.incomplete");
        gw_jgen_cstr(s->j, "response");
        render_response(s, false);
        if (dbx(s)) {
            if (s->custom_outputs.len) {
                gw_jgen_cstr(s->j, "custom_outputs");
                gw_jgen_raw(s->j, gw_buf_str(&s->custom_outputs));
            }
            render_databricks_output(s, false);
        }
        ev_end(s);
        if (dbx(s))
            gw_sse_done(&s->out);
    } else {
        gw_buf_append_str(&s->out, gw_buf_str(&s->aggregate));
    }
    return 0;
}

static void set_error(gw_stream_t *s, const gw_error_t *e)
{
    s->err = *e;
    free(s->err_message);
    s->err_message = gw_xstrndup(e->message ? e->message : "error", strlen(e->message ? e->message : "error"));
    s->err.message = s->err_message;
    s->err.param = NULL; /* params are request-side only; never carried past the arena */
}

/* ---- chat front (passthrough) ---- */

/* One SSE event from the upstream's data. A data value spanning several lines (JSON split at
 * whitespace) keeps one `data:` line per line, as SSE requires. */
static void chat_frame(gw_buf_t *out, gw_str_t data)
{
    const char *p = data.base, *end = data.base + data.len;
    gw_buf_append_cstr(out, "data: ");
    for (const char *nl; (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
        gw_buf_append(out, p, (size_t)(nl - p));
        gw_buf_append_cstr(out, "\ndata: ");
    }
    gw_buf_append(out, p, (size_t)(end - p));
    gw_buf_append_cstr(out, "\n\n");
}

/* A gateway-side failure after commit: the error object a ChatCompletions stream carries. */
static void chat_error_event(gw_stream_t *s)
{
    gw_buf_append_cstr(&s->out, "data: {\"error\":{\"message\":");
    gw_json_quote(&s->out, gw_str(s->err.message));
    gw_buf_append_cstr(&s->out, ",\"type\":");
    gw_json_quote(&s->out, gw_str(gw_err_type(s->err.kind)));
    gw_buf_append_cstr(&s->out, ",\"param\":null,\"code\":");
    gw_json_quote(&s->out, gw_str(gw_err_code(s->err.kind)));
    gw_buf_append_cstr(&s->out, "}}\n\n");
}

static int on_raw(void *ctx, gw_str_t bytes, ad_raw_kind_t kind, size_t tokens)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    if ((kind != AD_RAW_JSON) != s->o.stream) {
        gw_stream_fail(s, &(gw_error_t){.kind = GW_ERR_UPSTREAM,
                                        .message = s->o.stream ? "upstream answered one JSON object to a streaming request"
                                                               : "upstream answered a stream to a request without stream"});
        return -1;
    }
    on_begin(s);
    if (tokens) {
        if (!s->first_token_ns)
            s->first_token_ns = uv_hrtime();
        s->output_chars += tokens;
    }
    if (kind == AD_RAW_JSON)
        gw_buf_append_str(&s->out, bytes);
    else if (kind != AD_RAW_SSE_USAGE || s->o.req->include_usage)
        chat_frame(&s->out, bytes);
    if (kind == AD_RAW_SSE_ERROR)
        s->error_sent = true;
    return 0;
}

static void on_aggregate(void *ctx, gw_str_t json)
{
    gw_stream_t *s = ctx;
    gw_buf_reset(&s->aggregate);
    gw_buf_append_str(&s->aggregate, json);
}

static int on_fail(void *ctx, const gw_error_t *e)
{
    gw_stream_fail(ctx, e);
    return -1;
}

void gw_stream_fail(gw_stream_t *s, const gw_error_t *e)
{
    if (s->status != GW_FINISH_NONE)
        return;
    set_error(s, e);
    close_open_items(s, AD_STATUS_INCOMPLETE);
    s->status = GW_FINISH_FAILED;
    build_aggregate(s);
    if (!s->committed)
        return; /* the owner answers with an HTTP error */
    if (chat(s)) {
        if (!s->error_sent)
            chat_error_event(s);
        return;
    }
    /* §5.3: response.failed, then one error event with flat, nested and databricks fields. */
    lifecycle_event(s, "response.failed");
    ev_begin(s, "error");
    gw_jgen_t *j = s->j;
    gw_jgen_kv_cstr(j, "code", gw_err_failed_code(s->err.kind));
    gw_jgen_kv_cstr(j, "message", s->err.message);
    gw_jgen_cstr(j, "param");
    gw_jgen_null(j);
    gw_jgen_cstr(j, "error");
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "type", gw_err_type(s->err.kind));
    gw_jgen_kv_cstr(j, "code", gw_err_code(s->err.kind));
    gw_jgen_kv_cstr(j, "message", s->err.message);
    gw_jgen_cstr(j, "param");
    gw_jgen_null(j);
    gw_jgen_map_close(j);
    render_databricks_output(s, true);
    ev_end(s);
    if (dbx(s))
        gw_sse_done(&s->out);
}

void gw_stream_cancel(gw_stream_t *s)
{
    if (s->status != GW_FINISH_NONE)
        return;
    gw_error_t e = {.kind = GW_ERR_CANCELLED, .message = "client closed the connection"};
    set_error(s, &e);
    bool was_stream = s->o.stream;
    s->o.stream = false; /* nothing more is written */
    close_open_items(s, AD_STATUS_INCOMPLETE);
    s->o.stream = was_stream;
    s->status = GW_FINISH_CANCELLED;
    build_aggregate(s);
    gw_buf_reset(&s->out);
}

void gw_stream_keepalive(gw_stream_t *s)
{
    if (s->o.stream && s->committed && s->status == GW_FINISH_NONE)
        gw_sse_keepalive(&s->out);
}

/* ---- lifecycle and accessors ---- */

gw_stream_t *gw_stream_new(const gw_stream_opts_t *o)
{
    gw_stream_t *s = gw_xcalloc(1, sizeof(*s));
    s->o = *o;
    s->j = gw_jgen_new(&s->out);
    s->emit = (ad_emit_t){
        .ctx = s,
        .begin = on_begin,
        .item_add = on_item_add,
        .part_add = on_part_add,
        .delta = on_delta,
        .item_done = on_item_done,
        .usage = on_usage,
        .upstream_model = on_upstream_model,
        .custom_outputs = on_custom_outputs,
        .trace = on_trace,
        .heartbeat = on_heartbeat,
        .finish = on_finish,
        .fail = on_fail,
        .raw = on_raw,
        .aggregate = on_aggregate,
    };
    return s;
}

void gw_stream_free(gw_stream_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_items; i++) {
        struct item *it = &s->items[i];
        for (size_t k = 0; k < it->n_parts; k++)
            gw_buf_dispose(&it->parts[k].text);
        free(it->parts);
        free(it->call_id);
        free(it->name);
        gw_buf_dispose(&it->args);
        gw_buf_dispose(&it->delta_ids);
    }
    free(s->items);
    free(s->err_message);
    gw_buf_dispose(&s->out);
    gw_buf_dispose(&s->aggregate);
    gw_buf_dispose(&s->custom_outputs);
    gw_buf_dispose(&s->trace);
    gw_buf_dispose(&s->upstream_model);
    gw_buf_dispose(&s->scratch);
    gw_jgen_free(s->j);
    free(s);
}

const ad_emit_t *gw_stream_emitter(gw_stream_t *s)
{
    return &s->emit;
}

gw_buf_t *gw_stream_out(gw_stream_t *s)
{
    return &s->out;
}

bool gw_stream_begun(const gw_stream_t *s)
{
    return s->begun;
}

bool gw_stream_committed(const gw_stream_t *s)
{
    return s->committed;
}

bool gw_stream_ended(const gw_stream_t *s)
{
    return s->status != GW_FINISH_NONE;
}

gw_finish_status_t gw_stream_status(const gw_stream_t *s)
{
    return s->status;
}

const char *gw_finish_status_name(gw_finish_status_t st)
{
    static const char *const names[] = {"in_progress", "completed", "incomplete", "failed", "cancelled"};
    return names[st];
}

const gw_error_t *gw_stream_error(const gw_stream_t *s)
{
    return s->err_message ? &s->err : NULL;
}

gw_str_t gw_stream_aggregate(const gw_stream_t *s)
{
    return gw_buf_str(&s->aggregate);
}

const ad_usage_t *gw_stream_usage(const gw_stream_t *s)
{
    return &s->usage;
}

gw_str_t gw_stream_upstream_model(const gw_stream_t *s)
{
    return gw_buf_str(&s->upstream_model);
}

uint64_t gw_stream_first_token_ns(const gw_stream_t *s)
{
    return s->first_token_ns;
}

size_t gw_stream_output_chars(const gw_stream_t *s)
{
    return s->output_chars;
}
