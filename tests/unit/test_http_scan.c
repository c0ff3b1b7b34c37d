/* gw_hscan: the byte checks that run before llhttp (STYLE.md §6), fed whole and one byte at a
 * time (the server sees reads of any size). */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/http_scan.h"

#define LIMIT 1024u

/* Feed lit one byte at a time; the result the whole feed gives must be the same. */
static ssize_t head_bytewise(const char *lit)
{
    gw_hscan_head_t h = {0}, w = {0};
    size_t n = strlen(lit);
    ssize_t whole = gw_hscan_head(&w, lit, n);
    for (size_t i = 0; i < n; i++) {
        ssize_t r = gw_hscan_head(&h, lit + i, 1);
        if (r < 0) {
            cr_assert_eq(whole, -1);
            return -1;
        }
        if (r == 1 && h.last4 == 0x0D0A0D0A) {
            cr_assert_eq(whole, (ssize_t)(i + 1));
            return (ssize_t)(i + 1);
        }
    }
    cr_assert_eq(whole, (ssize_t)n);
    return (ssize_t)n;
}

static gw_err_kind_t chunked(const char *body, size_t *used)
{
    gw_hscan_chunked_t ck = {0};
    gw_hscan_chunked_start(&ck);
    size_t n = strlen(body), i = 0;
    gw_err_kind_t e = GW_ERR_NONE;
    for (; i < n && gw_hscan_chunked_active(&ck); i++) {
        e = gw_hscan_chunked(&ck, LIMIT, body + i, 1);
        if (e != GW_ERR_NONE)
            break;
    }
    if (used)
        *used = i;
    return e;
}

TestSuite(http_scan, .timeout = 10);

Test(http_scan, tokens, .timeout = 5)
{
    cr_assert(gw_hscan_is_token(gw_str("Content-Type")));
    cr_assert_not(gw_hscan_is_token(gw_str("")));
    cr_assert_not(gw_hscan_is_token(gw_str("Bad Name")));
    cr_assert_not(gw_hscan_is_tchar(0));
    cr_assert(gw_hscan_is_plain_chunked(gw_str(" \tchunked ")));
    cr_assert(gw_hscan_is_plain_chunked(gw_str("CHUNKED")));
    cr_assert_not(gw_hscan_is_plain_chunked(gw_str("gzip, chunked")));
}

Test(http_scan, header_block_end, .timeout = 5)
{
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
    cr_assert_eq(head_bytewise(req), (ssize_t)(strstr(req, "\r\n\r\n") + 4 - req));
    cr_assert_eq(head_bytewise("GET / HTTP/1.1\r\nHost: a\r\n"), 25);
}

Test(http_scan, header_block_refusals, .timeout = 5)
{
    cr_assert_eq(head_bytewise("GET / HTTP/1.1\rHost: a\r\n\r\n"), -1, "bare CR");
    cr_assert_eq(head_bytewise("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), -1, "obs-fold");
    cr_assert_eq(head_bytewise("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), -1, "CTL");
    cr_assert_eq(head_bytewise("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), -1, "DEL");
}

Test(http_scan, chunked_ok, .timeout = 5)
{
    const char *b = "5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: v\r\n\r\nNEXT";
    size_t used = 0;
    cr_assert_eq(chunked(b, &used), GW_ERR_NONE);
    cr_assert_eq(used, strlen(b) - 4, "stops after the message's last byte");
}

Test(http_scan, chunked_refusals, .timeout = 5)
{
    cr_assert_eq(chunked("5\r\nhelloXX0\r\n\r\n", NULL), GW_ERR_BAD_HTTP, "no CRLF after data");
    cr_assert_eq(chunked("\r\n", NULL), GW_ERR_BAD_HTTP, "no size digit");
    cr_assert_eq(chunked("5\n", NULL), GW_ERR_BAD_HTTP, "bare LF");
    cr_assert_eq(chunked("0\r\n X: v\r\n\r\n", NULL), GW_ERR_BAD_HTTP, "obs-fold trailer");
    cr_assert_eq(chunked("0\r\n: v\r\n\r\n", NULL), GW_ERR_BAD_HTTP, "empty trailer name");
    cr_assert_eq(chunked("0\r\nX: a\x01\r\n\r\n", NULL), GW_ERR_BAD_HTTP, "CTL in trailer");
    cr_assert_eq(chunked("401\r\n", NULL), GW_ERR_TOO_LARGE, "one chunk over the limit");
    cr_assert_eq(chunked("8000000000000000\r\n", NULL), GW_ERR_TOO_LARGE, "2^63");
}
