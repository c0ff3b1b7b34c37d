/* gw_recall: lookups before dispatch, the write before the terminal event (see recall.h). */
#include "gateway/recall.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gateway/id.h"
#include "gateway/log.h"

typedef gw_recall_items_t item_list_t;

struct gw_recall {
    gw_store_t *st;
    gw_arena_t *a;
    const char *owner;
    const char *response_id;
    gw_request_t *req;
    gw_recall_cb cb;
    void *ud;
    gw_str_t prev_context; /** previous response's context (JSON array), "[]" when none */
    item_list_t input;     /** this turn's input items, references resolved, ids assigned */
    gw_str_t *ref_json;    /** per input element: the stored item an item_reference named, else NULL */
    gw_error_t err;
};

static int fail(gw_arena_t *a, gw_error_t *err, gw_err_kind_t kind, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(gw_arena_t *a, gw_error_t *err, gw_err_kind_t kind, const char *param, const char *fmt, ...)
{
    char *msg = gw_arena_alloc(a, 512);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, 512, fmt, ap);
    va_end(ap);
    *err = (gw_error_t){.kind = kind, .message = msg, .param = param};
    return -1;
}

static gw_str_t arena_copy(gw_arena_t *a, gw_str_t s)
{
    return gw_str_n(gw_arena_strndup(a, s.base ? s.base : "", s.len), s.len);
}

/* Inside of a JSON array's text: "[x,y]" -> "x,y" ("" for "[]"). */
static gw_str_t inner(gw_str_t arr)
{
    return arr.len >= 2 ? gw_str_n(arr.base + 1, arr.len - 2) : GW_STR_LIT("");
}

/* ---------------- this turn's input items ---------------- */

static const char *id_prefix(gw_str_t type)
{
    if (!type.base || gw_str_eq(type, "message"))
        return "msg_";
    if (gw_str_has_prefix(type, "function_call_output") || gw_str_has_prefix(type, "custom_tool_call_output"))
        return "fco_";
    return "item_";
}

/* A message's string content as parts (the stored shape, as OpenAI lists input items). */
static void emit_content_parts(gw_jgen_t *j, gw_str_t role, gw_str_t text)
{
    bool assistant = gw_str_eq(role, "assistant");
    gw_jgen_array_open(j);
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "type", assistant ? "output_text" : "input_text");
    gw_jgen_kv_str(j, "text", text);
    if (assistant) {
        gw_jgen_lit(j, "annotations");
        gw_jgen_array_open(j);
        gw_jgen_array_close(j);
    }
    gw_jgen_map_close(j);
    gw_jgen_array_close(j);
}

/* One input item as stored: with an id and a type, a message's string content as parts. */
static void emit_input_item(gw_jgen_t *j, const gw_json_t *it)
{
    gw_str_t type = gw_json_get_str(it, "type");
    gw_str_t id = gw_json_get_str(it, "id");
    char fresh[48];
    if (!id.len) {
        gw_id_hex(fresh, id_prefix(type), 32);
        id = gw_str(fresh);
    }
    bool msg = !type.base || gw_str_eq(type, "message");
    gw_jgen_map_open(j);
    gw_jgen_kv_str(j, "id", id);
    if (!type.base)
        gw_jgen_kv_lit(j, "type", "message");
    for (const gw_json_t *m = it->child; m; m = m->next) {
        if (gw_str_eq(m->key, "id"))
            continue;
        gw_jgen_str(j, m->key);
        if (msg && gw_str_eq(m->key, "content") && m->type == GW_JSON_STRING)
            emit_content_parts(j, gw_json_get_str(it, "role"), m->str);
        else
            gw_jgen_value(j, m);
    }
    gw_jgen_map_close(j);
}

/* Serialises items into one JSON array text with each element's span. Elements are either parsed
 * items (re-emitted with ids) or stored JSON (raw, by index in raw[]). */
void gw_recall_item_list(gw_arena_t *a, const gw_json_t *input, const gw_str_t *raw, item_list_t *out)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_jgen_t *j = gw_jgen_new(&b);
    size_t n = input->type == GW_JSON_ARRAY ? input->len : 1;
    size_t *start = gw_arena_alloc(a, sizeof(size_t) * (n + 1)), *end = gw_arena_alloc(a, sizeof(size_t) * (n + 1));
    gw_buf_append(&b, "[", 1);
    if (input->type == GW_JSON_STRING) {
        start[0] = b.len;
        gw_jgen_map_open(j);
        char fresh[48];
        gw_id_hex(fresh, "msg_", 32);
        gw_jgen_kv_cstr(j, "id", fresh);
        gw_jgen_kv_lit(j, "type", "message");
        gw_jgen_kv_lit(j, "role", "user");
        gw_jgen_lit(j, "content");
        emit_content_parts(j, GW_STR_LIT("user"), input->str);
        gw_jgen_map_close(j);
        gw_jgen_done(j);
        end[0] = b.len;
    } else {
        size_t i = 0;
        for (const gw_json_t *it = input->child; it; it = it->next, i++) {
            if (i)
                gw_buf_append(&b, ",", 1);
            start[i] = b.len;
            if (raw && raw[i].base) {
                gw_buf_append_str(&b, raw[i]);
            } else {
                emit_input_item(j, it);
                gw_jgen_done(j);
            }
            end[i] = b.len;
        }
    }
    gw_buf_append(&b, "]", 1);
    gw_jgen_free(j);
    out->text = arena_copy(a, gw_buf_str(&b));
    gw_buf_dispose(&b);
    out->n = n;
    out->v = gw_arena_alloc(a, sizeof(*out->v) * n);
    gw_json_t *tree = NULL;
    /* Each element's id, read back from its own text (stored items carry theirs). */
    for (size_t i = 0; i < n; i++) {
        gw_str_t el = gw_str_n(out->text.base + start[i], end[i] - start[i]);
        gw_str_t id = GW_STR_NULL;
        if (gw_json_parse(a, el.base, el.len, &tree, NULL) == 0)
            id = gw_json_get_str(tree, "id");
        out->v[i] = (gw_store_item_t){id, el};
    }
}

/* ---------------- resolve ---------------- */

static void finish_resolve(gw_recall_t *rc, const gw_error_t *err)
{
    rc->cb(rc->ud, err);
}

/* Everything looked up: this turn's items (references replaced), then previous context + them as
 * the input the upstream sees, checked like a request's own input. */
static void merge(gw_recall_t *rc)
{
    gw_request_t *req = rc->req;
    gw_recall_item_list(rc->a, req->input, rc->ref_json, &rc->input);
    gw_str_t prev = inner(rc->prev_context), now = inner(rc->input.text);
    size_t n = prev.len + now.len + 4;
    char *text = gw_arena_alloc(rc->a, n);
    int len = snprintf(text, n, "[%.*s%s%.*s]", (int)prev.len, prev.base, prev.len && now.len ? "," : "",
                       (int)now.len, now.base);
    gw_json_t *merged;
    const char *perr = NULL;
    if (gw_json_parse(rc->a, text, (size_t)len, &merged, &perr) < 0) {
        rc->err = (gw_error_t){.kind = GW_ERR_INTERNAL, .message = "stored conversation is not valid JSON"};
        finish_resolve(rc, &rc->err);
        return;
    }
    if (gw_request_check_input(rc->a, &rc->err, merged, true) < 0) {
        finish_resolve(rc, &rc->err);
        return;
    }
    req->input = merged;
    finish_resolve(rc, NULL);
}

static void on_items(const gw_store_result_t *res, void *ud)
{
    gw_recall_t *rc = ud;
    if (res->status == GW_STORE_FAILED) {
        rc->err = (gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "response store unavailable"};
        finish_resolve(rc, &rc->err);
        return;
    }
    size_t i = 0;
    char path[32];
    for (const gw_json_t *it = rc->req->input->child; it; it = it->next, i++) {
        if (!gw_str_eq(gw_json_get_str(it, "type"), "item_reference"))
            continue;
        gw_str_t id = gw_json_get_str(it, "id");
        for (size_t k = 0; k < res->n_items && !rc->ref_json[i].base; k++)
            if (res->items[k].id.len == id.len && memcmp(res->items[k].id.base, id.base, id.len) == 0)
                rc->ref_json[i] = arena_copy(rc->a, res->items[k].json);
        if (!rc->ref_json[i].base) {
            snprintf(path, sizeof(path), "input[%zu]", i);
            const char *p = gw_arena_strndup(rc->a, path, strlen(path));
            char *idz = gw_arena_strndup(rc->a, id.base, id.len > 200 ? 200 : id.len);
            fail(rc->a, &rc->err, GW_ERR_INVALID_VALUE, p, "Item with id '%s' not found.", idz);
            finish_resolve(rc, &rc->err);
            return;
        }
    }
    merge(rc);
}

static void look_up_items(gw_recall_t *rc)
{
    const gw_json_t *input = rc->req->input;
    rc->ref_json = gw_arena_calloc(rc->a, sizeof(*rc->ref_json) * (input->len ? input->len : 1));
    if (!rc->req->n_item_refs) {
        merge(rc);
        return;
    }
    gw_store_item_t *want = gw_arena_calloc(rc->a, sizeof(*want) * rc->req->n_item_refs);
    size_t n = 0;
    for (const gw_json_t *it = input->child; it; it = it->next)
        if (gw_str_eq(gw_json_get_str(it, "type"), "item_reference"))
            want[n++].id = gw_json_get_str(it, "id");
    gw_store_submit(rc->st, &(gw_store_req_t){.kind = GW_STORE_GET_ITEMS, .owner = rc->owner, .items = want, .n_items = n},
                    on_items, rc);
}

static void on_previous(const gw_store_result_t *res, void *ud)
{
    gw_recall_t *rc = ud;
    if (res->status != GW_STORE_OK) {
        if (res->status == GW_STORE_FAILED) {
            rc->err = (gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "response store unavailable"};
        } else if (rc->req->conversation_id.base) {
            gw_str_t id = rc->req->conversation_id;
            fail(rc->a, &rc->err, GW_ERR_NOT_FOUND, "conversation", "Conversation with id '%.*s' not found.",
                 (int)(id.len > 200 ? 200 : id.len), id.base);
        } else {
            gw_str_t id = rc->req->previous_response_id;
            fail(rc->a, &rc->err, GW_ERR_NOT_FOUND, "previous_response_id", "Previous response with id '%.*s' not found.",
                 (int)(id.len > 200 ? 200 : id.len), id.base);
        }
        finish_resolve(rc, &rc->err);
        return;
    }
    rc->prev_context = arena_copy(rc->a, res->context);
    look_up_items(rc);
}

/* Without a store: the stateless 400s of before, saying what to do instead. */
static int refuse_stateless(gw_arena_t *a, const gw_request_t *req, gw_error_t *err)
{
    if (req->previous_response_id.base)
        return fail(a, err, GW_ERR_UNSUPPORTED, "previous_response_id",
                    "previous_response_id needs a response store, and this gateway has none: send the full "
                    "conversation in 'input' (stateless), or configure a `store`");
    if (req->conversation)
        return fail(a, err, GW_ERR_UNSUPPORTED, "conversation",
                    "conversation needs a response store, and this gateway has none: send the full "
                    "conversation in 'input' (stateless), or configure a `store`");
    size_t i = 0;
    for (const gw_json_t *it = req->input ? req->input->child : NULL; it; it = it->next, i++)
        if (gw_str_eq(gw_json_get_str(it, "type"), "item_reference")) {
            char path[32];
            snprintf(path, sizeof(path), "input[%zu]", i);
            const char *p = gw_arena_strndup(a, path, strlen(path));
            return fail(a, err, GW_ERR_UNSUPPORTED, p,
                        "item_reference at '%s' needs a response store, and this gateway has none: send the full "
                        "items instead (client option store: false), or configure a `store`",
                        p);
        }
    return 0;
}

int gw_recall_resolve(gw_recall_t **out, gw_store_t *store, gw_arena_t *a, const char *owner,
                      const char *response_id, gw_request_t *req, gw_recall_cb cb, void *ud, gw_error_t *err)
{
    *out = NULL;
    if (!store) {
        req->stored = false;
        return refuse_stateless(a, req, err);
    }
    if (req->conversation && req->previous_response_id.base)
        return fail(a, err, GW_ERR_INVALID_VALUE, "previous_response_id",
                    "previous_response_id and conversation cannot be used together");
    if (req->conversation && req->store && !req->store->boolean)
        return fail(a, err, GW_ERR_INVALID_VALUE, "store",
                    "store: false cannot be used with conversation: the turn's items are stored in it");
    gw_recall_t *rc = gw_arena_calloc(a, sizeof(*rc));
    rc->st = store;
    rc->a = a;
    rc->owner = owner;
    rc->response_id = response_id;
    rc->req = req;
    rc->cb = cb;
    rc->ud = ud;
    rc->prev_context = GW_STR_LIT("[]");
    *out = rc;
    req->stored = req->store ? req->store->boolean : gw_store_cfg(store)->store_by_default;
    if (req->conversation_id.base)
        req->stored = true;
    if (req->previous_response_id.base || req->conversation_id.base) {
        bool conv = req->conversation_id.base != NULL;
        gw_store_submit(store,
                        &(gw_store_req_t){.kind = conv ? GW_STORE_CONV_ITEMS : GW_STORE_GET_RESPONSE,
                                          .owner = owner,
                                          .id = conv ? req->conversation_id : req->previous_response_id},
                        on_previous, rc);
        return 1;
    }
    if (req->n_item_refs) {
        look_up_items(rc);
        return 1;
    }
    return 0;
}

/* ---------------- write ---------------- */

static void on_written(const gw_store_result_t *res, void *ud)
{
    gw_recall_t *rc = ud;
    if (res->status == GW_STORE_OK) {
        rc->cb(rc->ud, NULL);
        return;
    }
    const char *why = res->why ? res->why : "error";
    gw_store_count_failure(rc->st, strcmp(why, "timeout") == 0 ? "timeout" : "error");
    gw_log(GW_LOG_WARN, rc->response_id, "event=store_write_failed why=%s", why);
    rc->err = (gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "response store write failed"};
    rc->cb(rc->ud, &rc->err);
}

bool gw_recall_write(gw_recall_t *rc, gw_str_t response, int64_t created_at, gw_recall_cb cb, void *ud)
{
    if (!rc || !rc->req->stored || !response.len)
        return false;
    if (!rc->input.text.base) /* nothing was merged: this turn's items are the request's own */
        gw_recall_item_list(rc->a, rc->req->input, NULL, &rc->input);
    gw_json_t *obj;
    const gw_json_t *output = NULL;
    if (gw_json_parse(rc->a, response.base, response.len, &obj, NULL) == 0)
        output = gw_json_get(obj, "output");
    item_list_t out = {0};
    if (gw_json_is(output, GW_JSON_ARRAY) && output->len)
        gw_recall_item_list(rc->a, output, NULL, &out);
    else
        out.text = GW_STR_LIT("[]");
    const gw_store_cfg_t *cfg = gw_store_cfg(rc->st);
    gw_str_t p = inner(rc->prev_context), i = inner(rc->input.text), o = inner(out.text);
    size_t n = p.len + i.len + o.len + 5;
    if (n + response.len + rc->input.text.len > cfg->max_response_bytes) {
        gw_store_count_failure(rc->st, "too_large");
        gw_log(GW_LOG_WARN, rc->response_id, "event=store_skipped why=too_large bytes=%zu max=%zu",
               n + response.len + rc->input.text.len, cfg->max_response_bytes);
        rc->req->stored = false;
        return false;
    }
    char *ctx = gw_arena_alloc(rc->a, n);
    int len = snprintf(ctx, n, "[%.*s%s%.*s%s%.*s]", (int)p.len, p.base, p.len && (i.len || o.len) ? "," : "",
                       (int)i.len, i.base, i.len && o.len ? "," : "", (int)o.len, o.base);
    size_t n_items = rc->input.n + out.n;
    gw_store_item_t *items = gw_arena_alloc(rc->a, sizeof(*items) * (n_items ? n_items : 1));
    size_t k = 0;
    for (size_t x = 0; x < rc->input.n; x++)
        if (rc->input.v[x].id.len)
            items[k++] = rc->input.v[x];
    for (size_t x = 0; x < out.n; x++)
        if (out.v[x].id.len)
            items[k++] = out.v[x];
    rc->cb = cb;
    rc->ud = ud;
    gw_store_submit(rc->st,
                    &(gw_store_req_t){.kind = GW_STORE_PUT_RESPONSE,
                                      .owner = rc->owner,
                                      .id = gw_str(rc->response_id),
                                      .created_at = created_at,
                                      .response = response,
                                      .input_items = rc->input.text,
                                      .context = gw_str_n(ctx, (size_t)len),
                                      .conversation = rc->req->conversation_id,
                                      .items = items,
                                      .n_items = k,
                                      .timeout_ms = cfg->write_timeout_ms},
                    on_written, rc);
    return true;
}
