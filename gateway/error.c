#include "gateway/error.h"

#include <assert.h>

#include "gateway/json.h"

struct row {
    int status;         /* OpenAI route */
    const char *type;   /* error.type */
    const char *code;   /* error.code */
    const char *dbx;    /* Databricks error_code */
    int dbx_status;     /* status bound to error_code (MLflow ERROR_CODE_TO_HTTP_STATUS) */
    const char *failed; /* response.failed error.code */
};

/* One table for every mapping (PROTOCOL.md §7.6). 405 keeps its HTTP meaning on both routes
 * (RFC 9110 §15.5.6 needs it for the Allow header); Databricks has no code of its own for it. */
static const struct row rows[GW_ERR__COUNT] = {
    [GW_ERR_NONE] = {200, "", "", "", 200, ""},
    [GW_ERR_BAD_HTTP] = {400, "invalid_request_error", "bad_request", "BAD_REQUEST", 400, "server_error"},
    [GW_ERR_INVALID_JSON] = {400, "invalid_request_error", "invalid_json", "BAD_REQUEST", 400, "server_error"},
    [GW_ERR_INVALID_VALUE] = {400, "invalid_request_error", "invalid_value", "INVALID_PARAMETER_VALUE", 400,
                              "server_error"},
    [GW_ERR_UNSUPPORTED] = {400, "invalid_request_error", "unsupported_parameter", "INVALID_PARAMETER_VALUE", 400,
                            "server_error"},
    [GW_ERR_NOT_FOUND] = {404, "invalid_request_error", "not_found", "RESOURCE_DOES_NOT_EXIST", 404, "server_error"},
    [GW_ERR_METHOD] = {405, "invalid_request_error", "method_not_allowed", "BAD_REQUEST", 405, "server_error"},
    [GW_ERR_TOO_LARGE] = {413, "invalid_request_error", "request_too_large", "BAD_REQUEST", 400, "server_error"},
    [GW_ERR_HEADERS_TOO_LARGE] = {431, "invalid_request_error", "request_too_large", "BAD_REQUEST", 431,
                                  "server_error"},
    [GW_ERR_MEDIA_TYPE] = {415, "invalid_request_error", "unsupported_media_type", "BAD_REQUEST", 400, "server_error"},
    [GW_ERR_REQUEST_TIMEOUT] = {408, "invalid_request_error", "request_timeout", "DEADLINE_EXCEEDED", 408,
                                "server_error"},
    [GW_ERR_UPSTREAM_BAD_REQUEST] = {400, "invalid_request_error", "upstream_bad_request", "BAD_REQUEST", 400,
                                     "invalid_prompt"},
    [GW_ERR_UPSTREAM_CONFIG] = {502, "server_error", "upstream_config", "INTERNAL_ERROR", 500, "server_error"},
    [GW_ERR_RATE_LIMIT] = {429, "rate_limit_error", "rate_limit_exceeded", "REQUEST_LIMIT_EXCEEDED", 429,
                           "rate_limit_exceeded"},
    /* OpenAI answers a bad key with 401 invalid_request_error / invalid_api_key. */
    [GW_ERR_UNAUTHENTICATED] = {401, "invalid_request_error", "invalid_api_key", "UNAUTHENTICATED", 401,
                                "server_error"},
    [GW_ERR_PERMISSION_DENIED] = {403, "invalid_request_error", "permission_denied", "PERMISSION_DENIED", 403,
                                  "server_error"},
    [GW_ERR_UPSTREAM] = {502, "server_error", "upstream_error", "INTERNAL_ERROR", 500, "server_error"},
    [GW_ERR_UNAVAILABLE] = {503, "server_error", "upstream_unavailable", "TEMPORARILY_UNAVAILABLE", 503,
                            "server_error"},
    [GW_ERR_TIMEOUT] = {504, "server_error", "upstream_timeout", "DEADLINE_EXCEEDED", 504, "server_error"},
    [GW_ERR_INTERNAL] = {500, "server_error", "internal_error", "INTERNAL_ERROR", 500, "server_error"},
    [GW_ERR_CANCELLED] = {499, "server_error", "cancelled", "CANCELLED", 499, "server_error"},
};

int gw_err_status(gw_err_kind_t k, bool databricks_route)
{
    assert(k < GW_ERR__COUNT);
    return databricks_route ? rows[k].dbx_status : rows[k].status;
}

const char *gw_err_type(gw_err_kind_t k)
{
    return rows[k].type;
}

const char *gw_err_code(gw_err_kind_t k)
{
    return rows[k].code;
}

const char *gw_err_error_code(gw_err_kind_t k)
{
    return rows[k].dbx;
}

const char *gw_err_failed_code(gw_err_kind_t k)
{
    return rows[k].failed;
}

void gw_err_body(gw_buf_t *out, const gw_error_t *e)
{
    const char *msg = e->message ? e->message : "error";
    gw_buf_append_cstr(out, "{\"error\":{\"message\":");
    gw_json_quote(out, gw_str(msg));
    gw_buf_append_cstr(out, ",\"type\":");
    gw_json_quote(out, gw_str(gw_err_type(e->kind)));
    gw_buf_append_cstr(out, ",\"param\":");
    if (e->param)
        gw_json_quote(out, gw_str(e->param));
    else
        gw_buf_append_cstr(out, "null");
    gw_buf_append_cstr(out, ",\"code\":");
    gw_json_quote(out, gw_str(gw_err_code(e->kind)));
    gw_buf_append_cstr(out, "},\"error_code\":");
    gw_json_quote(out, gw_str(gw_err_error_code(e->kind)));
    gw_buf_append_cstr(out, ",\"message\":");
    gw_json_quote(out, gw_str(msg));
    gw_buf_append_cstr(out, "}");
}

const char *gw_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}
