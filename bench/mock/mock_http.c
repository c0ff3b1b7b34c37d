/* mock_http: strict request parsing for the mock upstream (STYLE.md §6). The parser owns the
 * request's buffers (url, body, the interesting headers) and lends them out as a mock_req_t. */
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "mock_http.h"

#define MOCK_URL_MAX   8192        /* 414 past it */
#define MOCK_HEAD_MAX  65536       /* whole header block incl. request line; 431 past it */
#define MOCK_NAME_MAX  64          /* longer header names are never interesting */
#define MOCK_VALUE_MAX 256         /* interesting header values are short */
#define MOCK_BODY_MAX  (16u << 20) /* 413 past it */
#define MOCK_BODY_KEEP (1u << 20)  /* request body capacity kept across keep-alive requests */

struct mock_http {
    llhttp_t parser; /** data = this */
    mock_http_continue_cb on_continue;
    void *user;
    bool head_ok; /* header block pre-scanned */
    bool headers_done;
    int err_status;         /* set by a parser callback before it fails the parse */
    const char *err_reason; /* static text going with err_status */
    size_t head_bytes;
    gw_buf_t url, body, hname, hval, scen, tp, ts; /** owned; reset per request */
    bool hname_long, hval_long, has_scen, has_tp, has_ts, expect, keep_alive;
    int host_count;
    uint8_t method, major, minor;
};

/* Strict pre-scan of a header block before llhttp sees it (STYLE.md §6): llhttp 8.1 still accepts
 * obs-fold, a bare CR as line end (CVE-2023-30589) and bare LF. Returns 1 when the whole block is
 * buffered and clean, 0 when more input is needed, otherwise the HTTP status to fail with. */
static int prescan_head(const gw_buf_t *in)
{
    const unsigned char *s = (const unsigned char *)in->base;
    size_t n = in->len, i = 0;
    bool line_start = true;

    /* RFC 9112 §2.2: empty lines before the request-line are ignored (llhttp skips them too). */
    while (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n')
        i += 2;
    for (; i < n; i++) {
        unsigned char ch = s[i];
        if (i >= MOCK_HEAD_MAX)
            return 431;
        if (ch == '\r') {
            if (i + 1 == n)
                return 0;
            if (s[i + 1] != '\n')
                return 400;
            i++;
            if (line_start)
                return 1; /* the empty line ending the header section */
            line_start = true;
            continue;
        }
        if (ch == '\n')
            return 400;
        if (line_start && (ch == ' ' || ch == '\t'))
            return 400; /* obs-fold, rejected per RFC 9112 §5.2 */
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 400;
        line_start = false;
    }
    return 0;
}

static int fail_cb(mock_http_t *h, int status, const char *reason)
{
    /* Kept here: llhttp replaces the reason of a failed callback with its own generic text. */
    h->err_status = status;
    h->err_reason = reason;
    return -1;
}

/* Append a span of the url or the body, failing the parse with status past max. */
static int capped_span(mock_http_t *h, gw_buf_t *b, size_t max, int status, const char *reason,
                       const char *at, size_t n)
{
    if (b->len + n > max)
        return fail_cb(h, status, reason);
    gw_buf_append(b, at, n);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    mock_http_t *h = p->data;
    return capped_span(h, &h->url, MOCK_URL_MAX, 414, "request target too long", at, n);
}

/* A header name or value span: counted against the header limit, kept only while short (the
 * interesting ones are), else only marked too long. */
static int header_span(mock_http_t *h, gw_buf_t *b, bool *too_long, size_t max, const char *at, size_t n)
{
    h->head_bytes += n;
    if (h->head_bytes > MOCK_HEAD_MAX)
        return fail_cb(h, 431, "header fields too large");
    if (b->len + n > max)
        *too_long = true;
    else
        gw_buf_append(b, at, n);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    mock_http_t *h = p->data;
    return header_span(h, &h->hname, &h->hname_long, MOCK_NAME_MAX, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    mock_http_t *h = p->data;
    return header_span(h, &h->hval, &h->hval_long, MOCK_VALUE_MAX, at, n);
}

/* One header field is complete (fires for empty values too). Trailer fields are ignored. */
static int on_header_value_complete(llhttp_t *p)
{
    mock_http_t *h = p->data;
    gw_str_t name = gw_buf_str(&h->hname), v = gw_buf_str(&h->hval);
    while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    while (v.len && (v.base[0] == ' ' || v.base[0] == '\t')) {
        v.base++;
        v.len--;
    }
    if (!h->headers_done && !h->hname_long) {
        if (gw_str_ieq(name, "host")) {
            h->host_count++;
        } else if (gw_str_ieq(name, "x-mock-scenario") && !h->has_scen && v.len) {
            gw_buf_append_str(&h->scen, v); /* first one wins */
            h->has_scen = true;
        } else if (gw_str_ieq(name, "traceparent") && !h->has_tp) {
            gw_buf_append_str(&h->tp, v); /* recorded for tests of trace propagation */
            h->has_tp = true;
        } else if (gw_str_ieq(name, "tracestate") && !h->has_ts) {
            gw_buf_append_str(&h->ts, v);
            h->has_ts = true;
        } else if (gw_str_ieq(name, "expect") && !h->hval_long && gw_str_ieq(v, "100-continue")) {
            h->expect = true;
        }
    }
    gw_buf_reset(&h->hname);
    gw_buf_reset(&h->hval);
    h->hname_long = h->hval_long = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    mock_http_t *h = p->data;
    h->headers_done = true;
    h->method = p->method;
    h->major = p->http_major;
    h->minor = p->http_minor;
    bool http11 = h->major > 1 || (h->major == 1 && h->minor >= 1);
    /* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any with several. */
    if (h->host_count > 1 || (http11 && h->host_count == 0))
        return fail_cb(h, 400, "missing or repeated Host header");
    /* RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request cannot be trusted. */
    if (!http11 && (p->flags & F_TRANSFER_ENCODING))
        return fail_cb(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
    /* RFC 9110 §10.1.1: answer 100 so curl sends the body now instead of after its 1 s wait. */
    if (h->expect && http11)
        h->on_continue(h->user);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    mock_http_t *h = p->data;
    return capped_span(h, &h->body, MOCK_BODY_MAX, 413, "request body too large", at, n);
}

/* One request at a time: pause here; the caller dispatches and mock_http_next() resumes only
 * once the response is flushed. Keep-alive is read now, while llhttp's flags still hold. */
static int on_message_complete(llhttp_t *p)
{
    mock_http_t *h = p->data;
    /* An Upgrade request is served as plain HTTP/1.1 (RFC 9110 §7.8 lets us ignore Upgrade), but
     * llhttp would treat the following bytes as the new protocol, so the connection ends with it. */
    h->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

mock_http_t *mock_http_new(mock_http_continue_cb on_continue, void *user)
{
    mock_http_t *h = gw_xcalloc(1, sizeof(*h));
    h->on_continue = on_continue;
    h->user = user;
    llhttp_init(&h->parser, HTTP_REQUEST, &settings);
    h->parser.data = h;
    return h;
}

void mock_http_free(mock_http_t *h)
{
    if (!h)
        return;
    gw_buf_dispose(&h->url);
    gw_buf_dispose(&h->body);
    gw_buf_dispose(&h->hname);
    gw_buf_dispose(&h->hval);
    gw_buf_dispose(&h->scen);
    gw_buf_dispose(&h->tp);
    gw_buf_dispose(&h->ts);
    free(h);
}

/* Pre-scan the header block once it is whole, then let llhttp run until the request completes
 * (on_message_complete pauses it), the input runs out, or a limit or syntax error stops it. */
mock_http_rc_t mock_http_feed(mock_http_t *h, gw_buf_t *in, int *status, const char **reason)
{
    if (!h->head_ok) {
        int rc = prescan_head(in);
        if (rc == 0)
            return MOCK_HTTP_MORE;
        if (rc != 1) {
            *status = rc;
            *reason = rc == 431 ? "request header block too large" : "malformed header block";
            return MOCK_HTTP_FAIL;
        }
        h->head_ok = true;
    }
    llhttp_errno_t e = llhttp_execute(&h->parser, in->base, in->len);
    if (e == HPE_OK) {
        gw_buf_reset(in); /* all consumed: the body continues in the next read */
        return MOCK_HTTP_MORE;
    }
    if (e == HPE_PAUSED) {
        gw_buf_consume(in, (size_t)(llhttp_get_error_pos(&h->parser) - in->base));
        return MOCK_HTTP_DONE;
    }
    if (h->err_status) {
        *status = h->err_status;
        *reason = h->err_reason;
        return MOCK_HTTP_FAIL;
    }
    const char *r = llhttp_get_error_reason(&h->parser);
    *status = 400;
    *reason = r ? r : llhttp_errno_name(e);
    return MOCK_HTTP_FAIL;
}

mock_req_t mock_http_req(const mock_http_t *h)
{
    return (mock_req_t){
        .url = gw_buf_str(&h->url),
        .body = gw_buf_str(&h->body),
        .scenario = gw_buf_str(&h->scen),
        .has_scenario = h->has_scen,
        .traceparent = h->has_tp ? gw_str_n(h->tp.base ? h->tp.base : "", h->tp.len) : GW_STR_NULL,
        .tracestate = h->has_ts ? gw_str_n(h->ts.base ? h->ts.base : "", h->ts.len) : GW_STR_NULL,
        .keep_alive = h->keep_alive,
        .method = h->method,
        .major = h->major,
        .minor = h->minor,
    };
}

void mock_http_next(mock_http_t *h)
{
    gw_buf_reset(&h->url);
    gw_buf_reset(&h->hname);
    gw_buf_reset(&h->hval);
    gw_buf_reset(&h->scen);
    gw_buf_reset(&h->tp);
    gw_buf_reset(&h->ts);
    if (h->body.cap > MOCK_BODY_KEEP)
        gw_buf_dispose(&h->body);
    else
        gw_buf_reset(&h->body);
    h->head_ok = h->headers_done = false;
    h->hname_long = h->hval_long = h->has_scen = h->has_tp = h->has_ts = h->expect = false;
    h->err_status = 0;
    h->err_reason = NULL;
    h->head_bytes = 0;
    h->host_count = 0;
    llhttp_resume(&h->parser);
}
