/* The conversation routes of gw_stored (issue 12), shapes as openai-node's conversations types:
 *   POST   /v1/conversations                      {items?, metadata?} -> Conversation
 *   GET    /v1/conversations/{id}                 -> Conversation
 *   POST   /v1/conversations/{id}                 {metadata} -> Conversation
 *   DELETE /v1/conversations/{id}                 -> {"id","object":"conversation.deleted","deleted":true}
 *   GET    /v1/conversations/{id}/items           -> list (after, before, limit, order: desc)
 *   POST   /v1/conversations/{id}/items           {items} -> list of the added items
 *   GET    /v1/conversations/{id}/items/{item_id} -> the item
 *   DELETE /v1/conversations/{id}/items/{item_id} -> Conversation
 * Items are checked like a request's input (a call output may answer a call added earlier) and get
 * ids where they have none; at most 20 per call, as OpenAI. Conversations are not purged by
 * store.ttl_days (OpenAI keeps them too); their responses are. */
#include <stdio.h>
#include <string.h>

#include "gateway/id.h"
#include "gateway/recall.h"
#include "gateway/stored_int.h"

#define MAX_ITEMS_PER_CALL 20

static void conversation_json(gw_buf_t *b, gw_str_t id, int64_t created_at, gw_str_t metadata)
{
    gw_buf_append_cstr(b, "{\"id\":");
    gw_json_quote(b, id);
    gw_buf_appendf(b, ",\"object\":\"conversation\",\"created_at\":%lld,\"metadata\":", (long long)created_at);
    gw_buf_append_str(b, metadata.len ? metadata : GW_STR_LIT("{}"));
    gw_buf_append(b, "}", 1);
}

static void answer(stored_t *q, gw_buf_t *b)
{
    gw_str_t body = gw_str_n(gw_arena_strndup(q->a, b->base ? b->base : "", b->len), b->len);
    gw_buf_dispose(b);
    q->cb(q->ud, body, NULL);
}

static void on_conv(const gw_store_result_t *res, void *ud)
{
    stored_t *q = ud;
    if (res->status != GW_STORE_OK) {
        if (res->status == GW_STORE_FAILED)
            q->err = (gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "response store unavailable"};
        else if (q->kind == GW_ROUTE_CONV_ITEM && q->del)
            gw__stored_fail(q->a, &q->err, GW_ERR_NOT_FOUND, NULL, "Item with id ", q->item, " not found.");
        else
            gw__stored_fail(q->a, &q->err, GW_ERR_NOT_FOUND, NULL, "Conversation with id ", q->id, " not found.");
        q->cb(q->ud, GW_STR_NULL, &q->err);
        return;
    }
    gw_buf_t b;
    gw_buf_init(&b);
    if (q->kind == GW_ROUTE_CONV && q->del) {
        gw_buf_append_cstr(&b, "{\"id\":");
        gw_json_quote(&b, q->id);
        gw_buf_append_cstr(&b, ",\"object\":\"conversation.deleted\",\"deleted\":true}");
    } else if (q->kind == GW_ROUTE_CONV_ITEMS || (q->kind == GW_ROUTE_CONV_ITEM && !q->del)) {
        gw_str_t text = q->post ? q->added : res->context;
        gw_json_t *items;
        if (gw_json_parse(q->a, text.base, text.len, &items, NULL) < 0 || items->type != GW_JSON_ARRAY) {
            gw_buf_dispose(&b);
            q->err = (gw_error_t){.kind = GW_ERR_INTERNAL, .message = "stored conversation items are not valid JSON"};
            q->cb(q->ud, GW_STR_NULL, &q->err);
            return;
        }
        if (q->kind == GW_ROUTE_CONV_ITEMS) {
            if (q->post) {
                q->asc = true;
                q->limit = MAX_ITEMS_PER_CALL;
            }
            gw__stored_page(q, items, &b);
        } else {
            const gw_json_t *found = NULL;
            for (const gw_json_t *it = items->child; it && !found; it = it->next) {
                gw_str_t id = gw_json_get_str(it, "id");
                if (id.len == q->item.len && memcmp(id.base, q->item.base, id.len) == 0)
                    found = it;
            }
            if (!found) {
                gw_buf_dispose(&b);
                gw__stored_fail(q->a, &q->err, GW_ERR_NOT_FOUND, NULL, "Item with id ", q->item, " not found.");
                q->cb(q->ud, GW_STR_NULL, &q->err);
                return;
            }
            gw_jgen_t *j = gw_jgen_new(&b);
            gw_jgen_value(j, found);
            gw_jgen_free(j);
        }
    } else {
        conversation_json(&b, q->id, res->created_at, res->metadata);
    }
    answer(q, &b);
}

/* The request body's `items` (optional unless required) and `metadata` (an object), checked. */
static int read_body(stored_t *q, bool items_required, bool metadata_required, gw_recall_items_t *items,
                     gw_str_t *metadata, gw_error_t *err)
{
    gw_json_t *root;
    gw_str_t body = gw_req_body(q->r);
    const char *perr = NULL;
    if (gw_json_parse(q->a, body.base ? body.base : "", body.len, &root, &perr) < 0 || root->type != GW_JSON_OBJECT)
        return gw__stored_fail(q->a, err, GW_ERR_INVALID_JSON, NULL, "request body must be a JSON object", GW_STR_NULL,
                               "");
    const gw_json_t *its = gw_json_get(root, "items"), *md = gw_json_get(root, "metadata");
    if (!gw_json_is_nullish(its) && (its->type != GW_JSON_ARRAY || its->len > MAX_ITEMS_PER_CALL))
        return gw__stored_fail(q->a, err, GW_ERR_INVALID_VALUE, "items", "'items' must be an array of at most 20 items",
                               GW_STR_NULL, "");
    if (items_required && (gw_json_is_nullish(its) || !its->len))
        return gw__stored_fail(q->a, err, GW_ERR_INVALID_VALUE, "items", "'items' is required", GW_STR_NULL, "");
    if (!gw_json_is_nullish(md) && md->type != GW_JSON_OBJECT)
        return gw__stored_fail(q->a, err, GW_ERR_INVALID_JSON, "metadata", "'metadata' must be an object", GW_STR_NULL, "");
    if (metadata_required && !md)
        return gw__stored_fail(q->a, err, GW_ERR_INVALID_VALUE, "metadata", "'metadata' is required", GW_STR_NULL, "");
    if (gw_json_is(its, GW_JSON_ARRAY) && its->len) {
        if (gw_request_check_input(q->a, err, its, false) < 0)
            return -1;
        gw_recall_item_list(q->a, its, NULL, items);
    }
    *metadata = GW_STR_LIT("{}");
    if (gw_json_is(md, GW_JSON_OBJECT)) {
        gw_buf_t b;
        gw_buf_init(&b);
        gw_jgen_t *j = gw_jgen_new(&b);
        gw_jgen_value(j, md);
        gw_jgen_free(j);
        *metadata = gw_str_n(gw_arena_strndup(q->a, b.base, b.len), b.len);
        gw_buf_dispose(&b);
    }
    return 0;
}

int gw__stored_conv(gw_store_t *st, stored_t *q, gw_error_t *err)
{
    gw_store_req_t sq = {.owner = q->owner, .id = q->id, .created_at = gw_req_start_unix_us(q->r) / 1000000};
    gw_recall_items_t items = {0};
    gw_str_t metadata = GW_STR_NULL;
    char fresh[64];
    switch (q->kind) {
    case GW_ROUTE_CONVS:
        if (read_body(q, false, false, &items, &metadata, err) < 0)
            return -1;
        gw_id_hex(fresh, "conv_", 48);
        q->id = sq.id = gw_str_n(gw_arena_strndup(q->a, fresh, strlen(fresh)), strlen(fresh));
        sq.kind = GW_STORE_CONV_CREATE;
        break;
    case GW_ROUTE_CONV:
        sq.kind = q->del ? GW_STORE_CONV_DELETE : q->post ? GW_STORE_CONV_UPDATE : GW_STORE_CONV_GET;
        if (q->post && read_body(q, false, true, &items, &metadata, err) < 0)
            return -1;
        break;
    case GW_ROUTE_CONV_ITEMS:
        sq.kind = q->post ? GW_STORE_CONV_APPEND : GW_STORE_CONV_ITEMS;
        if (q->post && read_body(q, true, false, &items, &metadata, err) < 0)
            return -1;
        q->added = items.text;
        break;
    default: /* GW_ROUTE_CONV_ITEM */
        sq.kind = q->del ? GW_STORE_CONV_ITEM_DELETE : GW_STORE_CONV_ITEMS;
        if (q->del) {
            items.v = gw_arena_calloc(q->a, sizeof(*items.v));
            items.v[0].id = q->item;
            items.n = 1;
        }
        break;
    }
    sq.metadata = metadata;
    sq.items = items.v;
    sq.n_items = items.n;
    gw_store_submit(st, &sq, on_conv, q);
    return 1;
}
