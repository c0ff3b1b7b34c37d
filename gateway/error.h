/* gw_err: every error the gateway can answer, mapped in one table to HTTP status, the OpenAI
 * error type/code and the Databricks error_code (PROTOCOL.md §5.4, §7.6; INFERENCE_TABLES.md §7.1). */
#ifndef GW_ERROR_H
#define GW_ERROR_H

#include <stdbool.h>

#include "gateway/buf.h"

/* Internal return codes (libuv style: 0 ok, negative failure). */
#define GW_OK        0
#define GW_E_FAIL    (-1)
#define GW_E_TIMEOUT (-2)
#define GW_E_CLOSED  (-3)

typedef enum {
    GW_ERR_NONE = 0,
    GW_ERR_BAD_HTTP,          /* malformed HTTP framing */
    GW_ERR_INVALID_JSON,      /* malformed JSON or wrong type */
    GW_ERR_INVALID_VALUE,     /* bad value, dangling call_id */
    GW_ERR_UNSUPPORTED,       /* unsupported feature */
    GW_ERR_NOT_FOUND,         /* unknown route or endpoint */
    GW_ERR_METHOD,            /* wrong method on a known path */
    GW_ERR_TOO_LARGE,         /* body over the limit */
    GW_ERR_HEADERS_TOO_LARGE, /* header block over the limit */
    GW_ERR_MEDIA_TYPE,        /* not application/json */
    GW_ERR_REQUEST_TIMEOUT,   /* client too slow to send the request */
    GW_ERR_UPSTREAM_BAD_REQUEST,
    GW_ERR_UPSTREAM_CONFIG,
    GW_ERR_RATE_LIMIT,
    GW_ERR_UNAUTHENTICATED,   /* missing, unknown or expired API key (gateway/auth) */
    GW_ERR_PERMISSION_DENIED, /* known caller without access to the endpoint */
    GW_ERR_UPSTREAM,          /* upstream 5xx or bad upstream data */
    GW_ERR_UNAVAILABLE,       /* no replica, connect refused/reset, overload */
    GW_ERR_TIMEOUT,           /* upstream connect/idle/total timeout */
    GW_ERR_INTERNAL,
    GW_ERR_CANCELLED,         /* client went away (table only) */
    GW_ERR__COUNT
} gw_err_kind_t;

typedef struct {
    gw_err_kind_t kind;
    const char *message; /** borrowed; lives at least as long as the request (arena or static) */
    const char *param;   /** borrowed, may be NULL */
    int retry_after;     /** seconds for 429/503, 0 = no header */
} gw_error_t;

/** HTTP status for the route; Databricks route uses the status bound to the error_code. */
int gw_err_status(gw_err_kind_t k, bool databricks_route);
const char *gw_err_type(gw_err_kind_t k);       /* OpenAI error.type */
const char *gw_err_code(gw_err_kind_t k);       /* OpenAI error.code */
const char *gw_err_error_code(gw_err_kind_t k); /* Databricks error_code */
/** error.code of response.failed / flat code of the error event: server_error,
 * rate_limit_exceeded or invalid_prompt. */
const char *gw_err_failed_code(gw_err_kind_t k);
/** Write the error body {"error":{message,type,param,code},"error_code","message"}. */
void gw_err_body(gw_buf_t *out, const gw_error_t *e);
/** Reason phrase for a status code. */
const char *gw_http_reason(int status);

#endif
