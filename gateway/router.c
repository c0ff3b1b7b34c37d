#include "gateway/router.h"

#include <string.h>

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
