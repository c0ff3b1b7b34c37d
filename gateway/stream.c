#include "gateway/stream_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gateway/id.h"
#include "gateway/log.h"
#include "gateway/sse.h"


/* ---- rendering helpers ---- */

static void ev_begin(gw_stream_t *s, const char *type)
{
    gw_sse_begin(&s->out, !gw__dbx(s), gw_str(type));
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


static void lifecycle_event(gw_stream_t *s, const char *type)
{
    ev_begin(s, type);
    gw_jgen_lit(s->j, "response");
    gw__render_response(s, false);
    ev_end(s);
}

/* An event carrying a response object already rendered (its bytes, not a second rendering). */
static void lifecycle_event_with(gw_stream_t *s, const char *type, gw_str_t response)
{
    ev_begin(s, type);
    gw_jgen_lit(s->j, "response");
    gw_jgen_raw(s->j, response);
    ev_end(s);
}

/* response.created and response.in_progress carry the same object: render it once. */
static void opening_events(gw_stream_t *s)
{
    gw_buf_t obj;
    gw_buf_init(&obj);
    gw_jgen_target(s->j, &obj);
    gw__render_response(s, false);
    gw_jgen_done(s->j);
    lifecycle_event_with(s, "response.created", gw_buf_str(&obj));
    lifecycle_event_with(s, "response.in_progress", gw_buf_str(&obj));
    gw_buf_dispose(&obj);
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
    gw_jgen_kv_str(s->j, p->kind == AD_PART_REFUSAL ? "refusal" : "text", gw__text_of(&p->text));
    if (p->kind == AD_PART_OUTPUT_TEXT) {
        gw_jgen_lit(s->j, "logprobs");
        gw_jgen_array_open(s->j);
        gw_jgen_array_close(s->j);
    }
    ev_end(s);
    ev_begin(s, summary ? "response.reasoning_summary_part.done" : "response.content_part.done");
    ids(s, it, oi);
    gw_jgen_kv_int(s->j, summary ? "summary_index" : "content_index", (int64_t)pi);
    gw_jgen_lit(s->j, "part");
    gw__render_part(s->j, p);
    ev_end(s);
}

static int on_part_add(void *ctx, int oi, ad_part_kind_t kind);
static void custom_input(gw_stream_t *s, struct item *it, int oi, gw_str_t piece);

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
    if (it->kind == AD_ITEM_FUNCTION_CALL && it->call_kind == GW_CALL_CUSTOM) {
        gw_buf_reset(&s->scratch);
        ad_input_dec_finish(&it->dec, &s->scratch);
        custom_input(s, it, oi, gw_buf_str(&s->scratch));
    }
    it->status = (int)st;
    if (!s->o.stream)
        return;
    if (it->kind == AD_ITEM_FUNCTION_CALL && it->call_kind == GW_CALL_FUNCTION) {
        ev_begin(s, "response.function_call_arguments.done");
        ids(s, it, oi);
        gw_jgen_kv_cstr(s->j, "name", it->name);
        gw_jgen_kv_str(s->j, "arguments", gw__text_of(&it->args));
        ev_end(s);
    } else if (it->kind == AD_ITEM_FUNCTION_CALL && it->call_kind == GW_CALL_CUSTOM) {
        ev_begin(s, "response.custom_tool_call_input.done");
        ids(s, it, oi);
        gw_jgen_kv_str(s->j, "input", gw__text_of(&it->input));
        ev_end(s);
    }
    ev_begin(s, "response.output_item.done");
    gw_jgen_kv_int(s->j, "output_index", oi);
    gw_jgen_lit(s->j, "item");
    gw__render_item(s->j, it, false);
    ev_end(s);
}

static void close_open_items(gw_stream_t *s, ad_item_status_t st)
{
    for (size_t i = 0; i < s->n_items; i++)
        close_item(s, (int)i, st);
}

/* ---- emitter callbacks ---- */

int gw__stream_on_begin(void *ctx)
{
    gw_stream_t *s = ctx;
    if (s->begun || s->status != GW_FINISH_NONE)
        return s->status == GW_FINISH_NONE ? 0 : -1;
    s->begun = true;
    if (s->o.stream && gw__chat(s)) {
        s->committed = true; /* the passthrough's first chunk follows at once */
    } else if (s->o.stream) {
        s->committed = true;
        opening_events(s);
    }
    return 0;
}

static int on_item_add(void *ctx, const ad_item_t *in)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    gw__stream_on_begin(s);
    if (s->n_items == s->cap_items) {
        s->cap_items = s->cap_items ? s->cap_items * 2 : 4;
        s->items = gw_xrealloc(s->items, s->cap_items * sizeof(*s->items));
    }
    int oi = (int)s->n_items++;
    struct item *it = &s->items[oi];
    memset(it, 0, sizeof(*it));
    it->kind = in->kind;
    it->status = -1;
    gw_str_t name = in->name;
    if (in->kind == AD_ITEM_FUNCTION_CALL) {
        ad_input_dec_init(&it->dec);
        const ad_tool_t *t =
            in->upstream_tool && s->o.req ? ad_tools_by_upstream(&s->o.req->tool_map, in->name) : NULL;
        if (t) {
            name = t->name;
            it->call_kind = t->kind == AD_TOOL_CUSTOM        ? GW_CALL_CUSTOM
                            : t->kind == AD_TOOL_LOCAL_SHELL ? GW_CALL_LOCAL_SHELL
                                                             : GW_CALL_FUNCTION;
            if (t->ns.len)
                it->ns = gw_xstrndup(t->ns.base, t->ns.len);
        }
    }
    static const char *const call_prefix[] = {"fc_", "ctc_", "lsh_"};
    if (in->id.len && in->id.len < sizeof(it->id)) {
        memcpy(it->id, in->id.base, in->id.len);
        it->id[in->id.len] = '\0';
    } else {
        gw_id_hex(it->id,
                  in->kind == AD_ITEM_MESSAGE     ? "msg_"
                  : in->kind == AD_ITEM_REASONING ? "rs_"
                                                  : call_prefix[it->call_kind],
                  32);
    }
    if (in->kind == AD_ITEM_FUNCTION_CALL) {
        if (in->call_id.len) {
            it->call_id = gw_xstrndup(in->call_id.base, in->call_id.len);
        } else {
            it->call_id = gw_xmalloc(32);
            gw_id_hex(it->call_id, "call_", 24);
        }
        it->name = gw_xstrndup(name.base, name.len);
    }
    if (s->o.stream) {
        ev_begin(s, "response.output_item.added");
        gw_jgen_kv_int(s->j, "output_index", oi);
        gw_jgen_lit(s->j, "item");
        gw__render_item(s->j, it, true);
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
        gw_jgen_lit(s->j, "part");
        gw__render_part(s->j, p);
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
    gw_sse_begin(&s->out, !gw__dbx(s), gw_str(type));
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

/* Decoded input of a custom tool call: kept for the item, streamed as
 * custom_tool_call_input.delta (PROTOCOL.md §2.2). */
static void custom_input(gw_stream_t *s, struct item *it, int oi, gw_str_t piece)
{
    if (!piece.len)
        return;
    gw_buf_append_str(&it->input, piece);
    if (s->o.stream)
        render_delta(s, it, oi, "response.custom_tool_call_input.delta", NULL, piece);
}

/* Everything a response generated is held until it ends (done events, the terminal response,
 * the table aggregate): past limits.max_output_bytes the stream fails instead of growing. */
bool gw__stream_over_cap(gw_stream_t *s, size_t n)
{
    s->output_bytes += n;
    if (!s->o.max_output_bytes || s->output_bytes <= s->o.max_output_bytes)
        return false;
    char msg[128];
    snprintf(msg, sizeof(msg), "upstream output exceeds limits.max_output_bytes (%zu bytes)", s->o.max_output_bytes);
    gw_stream_fail(s, &(gw_error_t){.kind = GW_ERR_UPSTREAM, .message = msg});
    return true;
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
    if (gw__stream_over_cap(s, text.len))
        return -1;
    const char *type;
    const char *index_key = "content_index";
    if (it->kind == AD_ITEM_FUNCTION_CALL) {
        gw_buf_append_str(&it->args, text);
        if (it->call_kind == GW_CALL_CUSTOM) {
            gw_buf_reset(&s->scratch);
            ad_input_dec_feed(&it->dec, text, &s->scratch);
            custom_input(s, it, oi, gw_buf_str(&s->scratch));
            return 0;
        }
        if (it->call_kind == GW_CALL_LOCAL_SHELL)
            return 0; /* local_shell_call has no delta events: the action comes whole in done */
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

/* §7.7: unknown upstream events reach Databricks-route stream clients as they came, with the
 * gateway's sequence number and, in an embedded response, the gateway's id and the client's
 * model. OpenAI-route and non-streaming clients never see them. */
static int on_passthrough(void *ctx, const gw_json_t *ev)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    gw_str_t type = gw_json_get_str(ev, "type");
    if (!gw__dbx(s) || !s->o.stream || !type.len) {
        gw_log(GW_LOG_DEBUG, NULL, "event=upstream_event_dropped type=%.*s",
               (int)(type.len > 64 ? 64 : type.len), type.base ? type.base : "");
        return 0;
    }
    gw__stream_on_begin(s);
    gw_sse_begin(&s->out, false, type);
    gw_jgen_t *j = s->j;
    gw_jgen_target(j, &s->out);
    gw_jgen_map_open(j);
    for (const gw_json_t *m = ev->child; m; m = m->next) {
        gw_jgen_str(j, m->key);
        if (gw_str_eq(m->key, "sequence_number")) {
            gw_jgen_int(j, s->seq++);
        } else if (gw_str_eq(m->key, "response") && m->type == GW_JSON_OBJECT) {
            gw_jgen_map_open(j);
            for (const gw_json_t *x = m->child; x; x = x->next) {
                gw_jgen_str(j, x->key);
                if (gw_str_eq(x->key, "id"))
                    gw_jgen_cstr(j, s->o.response_id);
                else if (gw_str_eq(x->key, "model"))
                    gw_jgen_str(j, s->o.model);
                else
                    gw_jgen_value(j, x);
            }
            gw_jgen_map_close(j);
        } else {
            gw_jgen_value(j, m);
        }
    }
    if (!gw_json_get(ev, "sequence_number"))
        gw_jgen_kv_int(j, "sequence_number", s->seq++);
    gw_jgen_map_close(j);
    gw_jgen_done(j);
    gw_sse_end(&s->out);
    return 0;
}

static void on_heartbeat(void *ctx)
{
    gw_stream_keepalive(ctx);
}

/* Render the aggregate for the table, once the status is final. */
static void build_aggregate(gw_stream_t *s)
{
    if (gw__chat(s))
        return; /* the passthrough adapter hands its own (on_aggregate) */
    gw_buf_reset(&s->aggregate);
    if (!s->begun)
        return;
    gw_jgen_target(s->j, &s->aggregate);
    gw__render_response(s, true);
    gw_jgen_done(s->j);
}

static int on_finish(void *ctx, ad_finish_t how, const char *reason)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    gw__stream_on_begin(s);
    close_open_items(s, how == AD_FINISH_COMPLETED ? AD_STATUS_COMPLETED : AD_STATUS_INCOMPLETE);
    s->status = how == AD_FINISH_COMPLETED ? GW_FINISH_COMPLETED : GW_FINISH_INCOMPLETE;
    s->incomplete_reason = reason ? reason : "max_output_tokens";
    if (gw__chat(s))
        return 0; /* every byte already went out through on_raw */
    build_aggregate(s);
    const char *type = how == AD_FINISH_COMPLETED ? "response.completed" : "response.incomplete";
    if (s->o.stream && !gw__dbx(s)) {
        /* Without databricks_output the aggregate is exactly the terminal event's object. */
        lifecycle_event_with(s, type, gw_buf_str(&s->aggregate));
    } else if (s->o.stream) {
        ev_begin(s, type);
        gw_jgen_lit(s->j, "response");
        gw__render_response(s, false);
        if (s->custom_outputs.len) {
            gw_jgen_lit(s->j, "custom_outputs");
            gw_jgen_raw(s->j, gw_buf_str(&s->custom_outputs));
        }
        gw__render_databricks_output(s, false);
        ev_end(s);
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
    if (gw__chat(s)) {
        if (!s->error_sent)
            gw__chat_error_event(s);
        return;
    }
    /* §5.3: response.failed, then one error event with flat, nested and databricks fields. */
    lifecycle_event(s, "response.failed");
    ev_begin(s, "error");
    gw_jgen_t *j = s->j;
    gw_jgen_kv_cstr(j, "code", gw_err_failed_code(s->err.kind));
    gw_jgen_kv_cstr(j, "message", s->err.message);
    gw_jgen_lit(j, "param");
    gw_jgen_null(j);
    gw_jgen_lit(j, "error");
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "type", gw_err_type(s->err.kind));
    gw_jgen_kv_cstr(j, "code", gw_err_code(s->err.kind));
    gw_jgen_kv_cstr(j, "message", s->err.message);
    gw_jgen_lit(j, "param");
    gw_jgen_null(j);
    gw_jgen_map_close(j);
    gw__render_databricks_output(s, true);
    ev_end(s);
    if (gw__dbx(s))
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
        .begin = gw__stream_on_begin,
        .item_add = on_item_add,
        .part_add = on_part_add,
        .delta = on_delta,
        .item_done = on_item_done,
        .usage = on_usage,
        .upstream_model = on_upstream_model,
        .custom_outputs = on_custom_outputs,
        .trace = on_trace,
        .heartbeat = on_heartbeat,
        .passthrough = on_passthrough,
        .finish = on_finish,
        .fail = on_fail,
        .raw = gw__stream_on_raw,
        .aggregate = gw__stream_on_aggregate,
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
        free(it->ns);
        gw_buf_dispose(&it->args);
        gw_buf_dispose(&it->input);
        ad_input_dec_dispose(&it->dec);
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
