/* gw_stored: GET|DELETE of stored responses and their input items (see stored.h). */
#include "gateway/stored.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"
#include "gateway/stored_int.h"

bool gw_stored_route(gw_route_kind_t k)
{
    return k == GW_ROUTE_STORED || k == GW_ROUTE_STORED_INPUT || k == GW_ROUTE_CONVS || k == GW_ROUTE_CONV ||
           k == GW_ROUTE_CONV_ITEMS || k == GW_ROUTE_CONV_ITEM;
}

int gw__stored_fail(gw_arena_t *a, gw_error_t *err, gw_err_kind_t kind, const char *param, const char *before, gw_str_t v,
                const char *after)
{
    char *msg = gw_arena_alloc(a, 400);
    if (v.base)
        snprintf(msg, 400, "%s'%.*s'%s", before, (int)(v.len > 200 ? 200 : v.len), v.base, after);
    else
        snprintf(msg, 400, "%s%s", before, after);
    *err = (gw_error_t){.kind = kind, .message = msg, .param = param};
    return -1;
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* application/x-www-form-urlencoded value into the arena (%XX and '+'). */
static gw_str_t decode(gw_arena_t *a, gw_str_t v)
{
    char *o = gw_arena_alloc(a, v.len + 1);
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] == '%' && i + 2 < v.len && hexval(v.base[i + 1]) >= 0 && hexval(v.base[i + 2]) >= 0) {
            o[n++] = (char)(hexval(v.base[i + 1]) * 16 + hexval(v.base[i + 2]));
            i += 2;
        } else {
            o[n++] = v.base[i] == '+' ? ' ' : v.base[i];
        }
    }
    return gw_str_n(o, n);
}

int gw__stored_query(stored_t *q, gw_str_t query, gw_error_t *err)
{
    const char *p = query.base, *end = query.base + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        gw_str_t key = gw_str_n(p, (size_t)((eq ? eq : stop) - p));
        gw_str_t val = eq ? decode(q->a, gw_str_n(eq + 1, (size_t)(stop - eq - 1))) : GW_STR_LIT("");
        p = stop + 1;
        bool list = q->kind == GW_ROUTE_STORED_INPUT || q->kind == GW_ROUTE_CONV_ITEMS;
        if (gw_str_eq(key, "include") || gw_str_eq(key, "include[]") || gw_str_eq(key, "include%5B%5D") ||
            gw_str_eq(key, "include_obfuscation"))
            continue; /* accepted; nothing agate stores depends on them (stored.h) */
        if (list && gw_str_eq(key, "after")) {
            q->after = val;
        } else if (list && gw_str_eq(key, "before")) {
            q->before = val;
        } else if (list && gw_str_eq(key, "limit")) {
            char tmp[16];
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(val.len > 15 ? 15 : val.len), val.base);
            char *e = NULL;
            q->limit = strtol(tmp, &e, 10);
            if (!val.len || *e || q->limit < 1 || q->limit > 100)
                return gw__stored_fail(q->a, err, GW_ERR_INVALID_VALUE, "limit", "limit must be an integer from 1 to 100, not ",
                            val, "");
        } else if (list && gw_str_eq(key, "order")) {
            if (!gw_str_eq(val, "asc") && !gw_str_eq(val, "desc"))
                return gw__stored_fail(q->a, err, GW_ERR_INVALID_VALUE, "order", "order must be asc or desc, not ", val, "");
            q->asc = gw_str_eq(val, "asc");
        } else if (key.len) {
            return gw__stored_fail(q->a, err, GW_ERR_UNSUPPORTED, NULL, "unknown query parameter ", key, "");
        }
    }
    return 0;
}

/* The page of a list of items: `after`/`before` are item ids in the list's order; `before` gives
 * the `limit` items just ahead of it (cursor pagination backwards). */
void gw__stored_page(stored_t *q, const gw_json_t *items, gw_buf_t *b)
{
    size_t n = items->len;
    const gw_json_t **v = gw_arena_alloc(q->a, sizeof(*v) * (n ? n : 1));
    size_t i = 0;
    for (const gw_json_t *it = items->child; it; it = it->next, i++)
        v[q->asc ? i : n - 1 - i] = it;
    size_t lo = 0, hi = n; /* candidates [lo, hi) */
    for (i = 0; i < n; i++) {
        gw_str_t id = gw_json_get_str(v[i], "id");
        if (q->after.len && id.len == q->after.len && memcmp(id.base, q->after.base, id.len) == 0)
            lo = i + 1;
        if (q->before.len && id.len == q->before.len && memcmp(id.base, q->before.base, id.len) == 0)
            hi = i;
    }
    if (hi < lo)
        hi = lo;
    size_t lim = (size_t)q->limit, from = lo, to = hi;
    bool more;
    if (q->before.len && !q->after.len) {
        from = hi - lo > lim ? hi - lim : lo;
        more = from > lo;
    } else {
        to = hi - lo > lim ? lo + lim : hi;
        more = to < hi;
    }
    gw_jgen_t *j = gw_jgen_new(b);
    gw_jgen_map_open(j);
    gw_jgen_kv_lit(j, "object", "list");
    gw_jgen_lit(j, "data");
    gw_jgen_array_open(j);
    for (i = from; i < to; i++)
        gw_jgen_value(j, v[i]);
    gw_jgen_array_close(j);
    gw_jgen_lit(j, "first_id");
    if (to > from)
        gw_jgen_str(j, gw_json_get_str(v[from], "id"));
    else
        gw_jgen_null(j);
    gw_jgen_lit(j, "last_id");
    if (to > from)
        gw_jgen_str(j, gw_json_get_str(v[to - 1], "id"));
    else
        gw_jgen_null(j);
    gw_jgen_lit(j, "has_more");
    gw_jgen_bool(j, more);
    gw_jgen_map_close(j);
    gw_jgen_free(j);
}

static void on_result(const gw_store_result_t *res, void *ud)
{
    stored_t *q = ud;
    if (res->status != GW_STORE_OK) {
        if (res->status == GW_STORE_NOT_FOUND)
            gw__stored_fail(q->a, &q->err, GW_ERR_NOT_FOUND, NULL, "Response with id ", q->id, " not found.");
        else
            q->err = (gw_error_t){.kind = GW_ERR_UNAVAILABLE, .message = "response store unavailable"};
        q->cb(q->ud, GW_STR_NULL, &q->err);
        return;
    }
    gw_buf_t b;
    gw_buf_init(&b);
    if (q->del) {
        gw_buf_append_cstr(&b, "{\"id\":");
        gw_json_quote(&b, q->id);
        gw_buf_append_cstr(&b, ",\"object\":\"response\",\"deleted\":true}");
    } else if (q->kind == GW_ROUTE_STORED) {
        gw_buf_append_str(&b, res->response);
    } else {
        gw_json_t *items;
        if (gw_json_parse(q->a, res->input_items.base, res->input_items.len, &items, NULL) < 0 ||
            items->type != GW_JSON_ARRAY) {
            gw_buf_dispose(&b);
            q->err = (gw_error_t){.kind = GW_ERR_INTERNAL, .message = "stored input items are not valid JSON"};
            q->cb(q->ud, GW_STR_NULL, &q->err);
            return;
        }
        gw__stored_page(q, items, &b);
    }
    gw_str_t body = gw_str_n(gw_arena_strndup(q->a, b.base ? b.base : "", b.len), b.len);
    gw_buf_dispose(&b);
    q->cb(q->ud, body, NULL);
}

int gw_stored_respond(gw_store_t *st, gw_req_t *r, const gw_route_t *route, const char *owner, gw_stored_cb cb,
                      void *ud, gw_error_t *err)
{
    gw_arena_t *a = gw_req_arena(r);
    stored_t *q = gw_arena_calloc(a, sizeof(*q));
    *q = (stored_t){.a = a, .kind = route->kind, .id = route->endpoint, .limit = 20, .cb = cb, .ud = ud};
    q->del = gw_str_eq(gw_req_method(r), "DELETE");
    q->owner = owner;
    q->r = r;
    q->item = route->item;
    q->post = gw_str_eq(gw_req_method(r), "POST");
    if (!st && route->kind >= GW_ROUTE_CONVS)
        return gw__stored_fail(a, err, GW_ERR_NOT_FOUND, NULL, "Conversation ", route->endpoint,
                               " not found: this gateway stores no conversations (no `store` configured)");
    if (!st)
        return gw__stored_fail(a, err, GW_ERR_NOT_FOUND, NULL,
                    "Response with id ", q->id,
                    " not found: this gateway stores no responses (no `store` configured)");
    if (gw__stored_query(q, gw_req_query(r), err) < 0)
        return -1;
    if (route->kind >= GW_ROUTE_CONVS)
        return gw__stored_conv(st, q, err);
    gw_store_submit(st,
                    &(gw_store_req_t){.kind = q->del ? GW_STORE_DELETE_RESPONSE : GW_STORE_GET_RESPONSE,
                                      .owner = owner,
                                      .id = q->id},
                    on_result, q);
    return 1;
}
