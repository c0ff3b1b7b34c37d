#include "gateway/router.h"

#include <string.h>

/* /v1/conversations[/{id}[/items[/{item_id}]]] (issue 12). */
static bool conversation_route(gw_str_t method, gw_str_t path, gw_route_t *out)
{
    static const char base[] = "/v1/conversations";
    size_t bl = sizeof(base) - 1;
    if (path.len < bl || memcmp(path.base, base, bl) != 0 || (path.len > bl && path.base[bl] != '/'))
        return false;
    gw_str_t seg[3] = {0};
    size_t n = 0;
    const char *p = path.base + bl, *end = path.base + path.len;
    while (p < end && n < 4) {
        p++; /* the '/' */
        const char *q = memchr(p, '/', (size_t)(end - p));
        const char *stop = q ? q : end;
        if (stop == p || n == 3)
            return false;
        seg[n++] = gw_str_n(p, (size_t)(stop - p));
        p = stop;
    }
    if (n >= 2 && !gw_str_eq(seg[1], "items"))
        return false;
    bool get = gw_str_eq(method, "GET") || gw_str_eq(method, "HEAD"), post = gw_str_eq(method, "POST"),
         del = gw_str_eq(method, "DELETE");
    static const gw_route_kind_t kinds[] = {GW_ROUTE_CONVS, GW_ROUTE_CONV, GW_ROUTE_CONV_ITEMS, GW_ROUTE_CONV_ITEM};
    static const char *const allow[] = {"POST", "GET, HEAD, POST, DELETE", "GET, HEAD, POST", "GET, HEAD, DELETE"};
    out->kind = kinds[n];
    out->endpoint = seg[0];
    out->item = seg[2];
    out->allow = allow[n];
    out->method_ok = n == 0 ? post : n == 1 ? get || post || del : n == 2 ? get || post : get || del;
    return true;
}

void gw_route_resolve(gw_str_t method, gw_str_t path, gw_route_t *out)
{
    memset(out, 0, sizeof(*out));
    bool post = gw_str_eq(method, "POST");
    bool get = gw_str_eq(method, "GET") || gw_str_eq(method, "HEAD");
    if (gw_str_eq(path, "/v1/responses")) {
        out->kind = GW_ROUTE_RESPONSES;
        out->method_ok = post;
        out->allow = "POST";
        return;
    }
    /* Stored responses (issue 12): /v1/responses/{id}[/input_items]. */
    static const char stored[] = "/v1/responses/", items[] = "/input_items";
    size_t spl = sizeof(stored) - 1, il = sizeof(items) - 1;
    if (path.len > spl && memcmp(path.base, stored, spl) == 0) {
        gw_str_t id = gw_str_n(path.base + spl, path.len - spl);
        bool list = id.len > il && memcmp(id.base + id.len - il, items, il) == 0;
        if (list)
            id.len -= il;
        if (id.len && !memchr(id.base, '/', id.len)) {
            out->kind = list ? GW_ROUTE_STORED_INPUT : GW_ROUTE_STORED;
            out->endpoint = id;
            out->method_ok = get || (!list && gw_str_eq(method, "DELETE"));
            out->allow = list ? "GET, HEAD" : "GET, HEAD, DELETE";
            return;
        }
    }
    if (conversation_route(method, path, out))
        return;
    if (gw_str_eq(path, "/v1/chat/completions")) {
        out->kind = GW_ROUTE_CHAT;
        out->method_ok = post;
        out->allow = "POST";
        return;
    }
    /* The model list (OpenAI `GET /v1/models`, `GET /v1/models/{id}`): what clients probe first. */
    static const char models[] = "/v1/models";
    size_t ml = sizeof(models) - 1;
    if (path.len >= ml && memcmp(path.base, models, ml) == 0 && (path.len == ml || path.base[ml] == '/')) {
        out->kind = path.len <= ml + 1 ? GW_ROUTE_MODELS : GW_ROUTE_MODEL;
        if (out->kind == GW_ROUTE_MODEL)
            out->endpoint = gw_str_n(path.base + ml + 1, path.len - ml - 1);
        out->method_ok = get;
        out->allow = "GET, HEAD";
        return;
    }
    if (gw_str_eq(path, "/healthz") || gw_str_eq(path, "/readyz") || gw_str_eq(path, "/metrics")) {
        out->kind = gw_str_eq(path, "/healthz")  ? GW_ROUTE_HEALTHZ
                    : gw_str_eq(path, "/readyz") ? GW_ROUTE_READYZ
                                                 : GW_ROUTE_METRICS;
        out->method_ok = get;
        out->allow = "GET, HEAD";
        return;
    }
    static const char prefix[] = "/serving-endpoints/";
    static const char suffix[] = "/invocations";
    size_t pl = sizeof(prefix) - 1, sl = sizeof(suffix) - 1;
    if (path.len > pl + sl && memcmp(path.base, prefix, pl) == 0 &&
        memcmp(path.base + path.len - sl, suffix, sl) == 0) {
        gw_str_t name = gw_str_n(path.base + pl, path.len - pl - sl);
        if (name.len && !memchr(name.base, '/', name.len)) {
            out->kind = GW_ROUTE_INVOCATIONS;
            out->endpoint = name;
            out->method_ok = post;
            out->allow = "POST";
            return;
        }
    }
    out->kind = GW_ROUTE_NONE;
}

const char *gw_route_front_name(gw_route_kind_t k)
{
    return k == GW_ROUTE_RESPONSES     ? "responses"
           : k == GW_ROUTE_INVOCATIONS ? "invocations"
           : k == GW_ROUTE_CHAT        ? "chat_completions"
                                       : NULL;
}
