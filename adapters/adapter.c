#include "adapters/adapter.h"

#include <stdio.h>
#include <string.h>

const ad_vtable_t *ad_for(gw_adapter_kind_t kind)
{
    return kind == GW_ADAPTER_RESPONSES ? &ad_responses : &ad_chat_completions;
}

static const char *str_dup(gw_arena_t *a, gw_str_t s, size_t max)
{
    return gw_arena_strndup(a, s.base, s.len < max ? s.len : max);
}

const char *ad_error_message(gw_arena_t *a, const gw_json_t *ev, long *code_out)
{
    const gw_json_t *e = gw_json_get(ev, "error");
    if (code_out)
        *code_out = 0;
    if (gw_json_is(e, GW_JSON_STRING))
        return str_dup(a, e->str, 4096);
    if (gw_json_is(e, GW_JSON_OBJECT)) {
        int64_t code;
        if (code_out && gw_json_int64(gw_json_get(e, "code"), &code) == 0)
            *code_out = (long)code;
        gw_str_t m = gw_json_get_str(e, "message");
        return m.base ? str_dup(a, m, 4096) : "upstream reported an error";
    }
    if (gw_str_eq(gw_json_get_str(ev, "object"), "error")) {
        int64_t code;
        if (code_out && gw_json_int64(gw_json_get(ev, "code"), &code) == 0)
            *code_out = (long)code;
        gw_str_t m = gw_json_get_str(ev, "message");
        return m.base ? str_dup(a, m, 4096) : "upstream reported an error";
    }
    const gw_json_t *dbx = gw_json_get(gw_json_get(ev, "databricks_output"), "error");
    if (gw_json_is(dbx, GW_JSON_OBJECT)) {
        gw_str_t m = gw_json_get_str(dbx, "message");
        return m.base ? str_dup(a, m, 4096) : "upstream reported an error";
    }
    return NULL;
}

void ad_error_from_http(gw_arena_t *a, long status, gw_str_t body, int retry_after, gw_error_t *err)
{
    memset(err, 0, sizeof(*err));
    if (status == 400 || status == 422)
        err->kind = GW_ERR_UPSTREAM_BAD_REQUEST;
    else if (status == 401 || status == 403 || status == 404)
        err->kind = GW_ERR_UPSTREAM_CONFIG;
    else if (status == 429)
        err->kind = GW_ERR_RATE_LIMIT;
    else /* 5xx, and 408/504 too: an upstream's own timeout is still an upstream failure */
        err->kind = GW_ERR_UPSTREAM;
    if (status == 429)
        err->retry_after = retry_after > 0 ? retry_after : 1;

    const char *msg = NULL;
    gw_json_t *root;
    if (body.len && gw_json_parse(a, body.base, body.len, &root, NULL) == 0) {
        msg = ad_error_message(a, root, NULL);
        if (!msg) {
            gw_str_t m = gw_json_get_str(root, "message");
            if (!m.base)
                m = gw_json_get_str(root, "detail");
            if (m.base)
                msg = str_dup(a, m, 4096);
        }
    }
    if (!msg && body.len)
        msg = str_dup(a, body, 512);
    if (!msg || !*msg) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "upstream answered HTTP %ld", status);
        msg = gw_arena_strndup(a, tmp, strlen(tmp));
    }
    err->message = msg;
}

void ad_body_init(ad_body_t *b, gw_str_t content_type, size_t max, gw_sse_event_cb on_event,
                  gw_sse_comment_cb on_comment, void *ud)
{
    static const char json_type[] = "application/json";
    size_t n = content_type.len < sizeof(json_type) - 1 ? content_type.len : sizeof(json_type) - 1;
    memset(b, 0, sizeof(*b));
    b->json = gw_str_ieq(gw_str_n(content_type.base, n), json_type);
    b->max = max;
    if (!b->json)
        b->sse = gw_sse_parser_new(max, on_event, on_comment, ud);
}

int ad_body_feed(ad_body_t *b, const char *data, size_t len)
{
    if (b->json) {
        if (b->doc.len + len > b->max)
            return AD_BODY_TOO_LARGE;
        gw_buf_append(&b->doc, data, len);
        return 0;
    }
    int rc = gw_sse_parser_feed(b->sse, data, len);
    return rc == GW_SSE_E_TOO_LARGE ? AD_BODY_TOO_LARGE : rc;
}

int ad_body_parse(ad_body_t *b, gw_arena_t *a, gw_json_t **out)
{
    return gw_json_parse(a, b->doc.base ? b->doc.base : "", b->doc.len, out, NULL);
}

void ad_body_dispose(ad_body_t *b)
{
    gw_buf_dispose(&b->doc);
    gw_sse_parser_free(b->sse);
    b->sse = NULL;
}
