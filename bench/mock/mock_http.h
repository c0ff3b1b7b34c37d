/* mock_http: the mock's strict HTTP/1.1 request parser (STYLE.md §6): a header pre-scan, then
 * llhttp with size limits. Bytes in, one request out; no sockets. One request at a time: after a
 * complete request the parser stays paused until mock_http_next(). */
#ifndef MOCK_HTTP_H
#define MOCK_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/buf.h"

typedef struct mock_http mock_http_t;

/* The request parsed last; the views are borrowed until mock_http_next(). */
typedef struct {
    gw_str_t url; /* request target, query string included */
    gw_str_t body;
    gw_str_t scenario; /* first non-empty x-mock-scenario value */
    bool has_scenario;
    gw_str_t traceparent, tracestate; /* first value of each; base NULL when absent */
    bool keep_alive; /* as the request asks; an Upgrade request ends the connection */
    uint8_t method;  /* llhttp_method_t */
    uint8_t major, minor;
} mock_req_t;

typedef enum {
    MOCK_HTTP_MORE, /* all input consumed (or a header block still incomplete): read more */
    MOCK_HTTP_DONE, /* one request complete; the bytes after it stay in the input buffer */
    MOCK_HTTP_FAIL, /* answer *status with *reason, then close */
} mock_http_rc_t;

/* Called from inside mock_http_feed() when an HTTP/1.1 request's headers ask for 100-continue. */
typedef void (*mock_http_continue_cb)(void *user);

mock_http_t *mock_http_new(mock_http_continue_cb on_continue, void *user);
void mock_http_free(mock_http_t *h);
/* Parse buffered input, at most one request: consumes what it parsed from in. */
mock_http_rc_t mock_http_feed(mock_http_t *h, gw_buf_t *in, int *status, const char **reason);
mock_req_t mock_http_req(const mock_http_t *h);
/* The response to the last request is out: forget it and resume parsing. */
void mock_http_next(mock_http_t *h);

#endif
