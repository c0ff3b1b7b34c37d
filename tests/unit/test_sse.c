#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/buf.h"
#include "gateway/sse.h"

#define MAX_EVENTS 32
#define MAX_FIELD  512
#define MiB        ((size_t)1024 * 1024)
/* Feed a string literal (sizeof, so embedded NULs count). */
#define FEED(p, lit) gw_sse_parser_feed((p), (lit), sizeof(lit) - 1)

typedef struct {
    const char *type;
    const char *data;
} expect_t;

/* Copies of what the callbacks saw: views are only valid during the callback. */
typedef struct {
    size_t n;
    char type[MAX_EVENTS][MAX_FIELD];
    char data[MAX_EVENTS][MAX_FIELD];
    size_t type_len[MAX_EVENTS], data_len[MAX_EVENTS];
    size_t ncomments;
    char comments[MAX_EVENTS][MAX_FIELD];
    size_t stop_at; /* 1-based event number whose callback returns stop_rc; 0 = never */
    int stop_rc;
} sink_t;

static int on_event(void *ud, gw_str_t event, gw_str_t data)
{
    sink_t *s = ud;
    cr_assert_lt(s->n, MAX_EVENTS);
    cr_assert_lt(event.len, MAX_FIELD);
    cr_assert_lt(data.len, MAX_FIELD);
    cr_assert_not_null(event.base);
    cr_assert_not_null(data.base);
    memcpy(s->type[s->n], event.base, event.len);
    s->type[s->n][event.len] = '\0';
    s->type_len[s->n] = event.len;
    memcpy(s->data[s->n], data.base, data.len);
    s->data[s->n][data.len] = '\0';
    s->data_len[s->n] = data.len;
    s->n++;
    return s->stop_at == s->n ? s->stop_rc : 0;
}

static void on_comment(void *ud, gw_str_t text)
{
    sink_t *s = ud;
    cr_assert_lt(s->ncomments, MAX_EVENTS);
    cr_assert_lt(text.len, MAX_FIELD);
    memcpy(s->comments[s->ncomments], text.base, text.len);
    s->comments[s->ncomments][text.len] = '\0';
    s->ncomments++;
}

static const expect_t golden[] = {
    {"", "{\"a\":1}"},
    {"", "{\"b\":2}"},
    {"response.created", "line1\n two spaces\n"},
    {"", "after id"},
    {"", "x\ny"},
    {"error", "{\"code\":400,\"message\":\"bad\"}"},
    {"", "with: colon"},
    {"msg", "h\xc3\xa9llo \xf0\x9f\x98\x80\n"},
    {"", "[DONE]"},
};
#define NGOLDEN (sizeof(golden) / sizeof(golden[0]))

static const char *golden_comments[] = {" OPENROUTER PROCESSING", " comment inside event"};

static char *read_data(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", GW_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0);
    rewind(f);
    char *buf = malloc((size_t)n);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void check_events(const sink_t *s, const expect_t *want, size_t nwant, const char *how)
{
    cr_assert_eq(s->n, nwant, "%s: got %zu events, want %zu", how, s->n, nwant);
    for (size_t i = 0; i < nwant; i++) {
        cr_assert_eq(s->type_len[i], strlen(want[i].type), "%s: event %zu type len", how, i);
        cr_assert_str_eq(s->type[i], want[i].type, "%s: event %zu type", how, i);
        cr_assert_eq(s->data_len[i], strlen(want[i].data), "%s: event %zu data len", how, i);
        cr_assert_str_eq(s->data[i], want[i].data, "%s: event %zu data", how, i);
    }
}

static void check_golden_comments(const sink_t *s, const char *how)
{
    cr_assert_eq(s->ncomments, 2, "%s: %zu comments", how, s->ncomments);
    for (size_t i = 0; i < 2; i++)
        cr_assert_str_eq(s->comments[i], golden_comments[i], "%s: comment %zu", how, i);
}

static gw_sse_parser_t *parser(sink_t *s, size_t max_event)
{
    memset(s, 0, sizeof(*s));
    gw_sse_parser_t *p = gw_sse_parser_new(max_event, on_event, on_comment, s);
    cr_assert_not_null(p);
    return p;
}

/* Feed str in the given pieces (sizes summing to strlen(str)); every feed must return 0. */
static void feed_ok(gw_sse_parser_t *p, const char *str)
{
    cr_assert_eq(gw_sse_parser_feed(p, str, strlen(str)), 0, "feed \"%s\"", str);
}

/* Feed buf in chunks of at most step bytes, each chunk a fresh heap copy so that ASan catches a
 * view kept past the feed that carried it. */
static void feed_chunks(gw_sse_parser_t *p, const char *buf, size_t len, size_t step)
{
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        char *c = malloc(n);
        cr_assert_not_null(c);
        memcpy(c, buf + off, n);
        cr_assert_eq(gw_sse_parser_feed(p, c, n), 0, "feed at %zu", off);
        memset(c, 'Z', n);
        free(c);
    }
}

Test(sse, golden_whole, .timeout = 10)
{
    size_t len;
    char *buf = read_data("sse_golden.txt", &len);
    sink_t s;
    gw_sse_parser_t *p = parser(&s, MiB);
    cr_assert_eq(gw_sse_parser_feed(p, buf, len), 0);
    check_events(&s, golden, NGOLDEN, "whole");
    check_golden_comments(&s, "whole");
    cr_assert_not(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);
    free(buf);
}

Test(sse, golden_split_every_offset, .timeout = 30)
{
    size_t len;
    char *buf = read_data("sse_golden.txt", &len);
    for (size_t k = 0; k <= len; k++) {
        char how[64];
        snprintf(how, sizeof(how), "split at %zu", k);
        sink_t s;
        gw_sse_parser_t *p = parser(&s, MiB);
        char *a = malloc(k ? k : 1), *b = malloc(len - k ? len - k : 1);
        cr_assert(a && b);
        memcpy(a, buf, k);
        memcpy(b, buf + k, len - k);
        cr_assert_eq(gw_sse_parser_feed(p, a, k), 0, "%s: first feed", how);
        memset(a, 'Z', k);
        cr_assert_eq(gw_sse_parser_feed(p, b, len - k), 0, "%s: second feed", how);
        check_events(&s, golden, NGOLDEN, how);
        check_golden_comments(&s, how);
        cr_assert_not(gw_sse_parser_has_partial(p), "%s", how);
        gw_sse_parser_free(p);
        free(a);
        free(b);
    }
    free(buf);
}

Test(sse, golden_byte_at_a_time, .timeout = 10)
{
    size_t len;
    char *buf = read_data("sse_golden.txt", &len);
    sink_t s;
    gw_sse_parser_t *p = parser(&s, MiB);
    feed_chunks(p, buf, len, 1);
    check_events(&s, golden, NGOLDEN, "bytewise");
    check_golden_comments(&s, "bytewise");
    cr_assert_not(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);
    free(buf);
}

Test(sse, golden_random_chunks, .timeout = 30)
{
    size_t len;
    char *buf = read_data("sse_golden.txt", &len);
    unsigned seed = 12345;
    for (int iter = 0; iter < 300; iter++) {
        char how[64];
        snprintf(how, sizeof(how), "random iteration %d", iter);
        sink_t s;
        gw_sse_parser_t *p = parser(&s, MiB);
        for (size_t off = 0; off < len;) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 23;
            if (n > len - off)
                n = len - off;
            char *c = malloc(n);
            cr_assert_not_null(c);
            memcpy(c, buf + off, n);
            cr_assert_eq(gw_sse_parser_feed(p, c, n), 0, "%s", how);
            free(c);
            cr_assert_eq(gw_sse_parser_feed(p, NULL, 0), 0, "%s: empty feed", how);
            off += n;
        }
        check_events(&s, golden, NGOLDEN, how);
        check_golden_comments(&s, how);
        gw_sse_parser_free(p);
    }
    free(buf);
}

/* The golden stream is also valid under the tightest bound that fits its largest line/event. */
Test(sse, golden_tight_bound, .timeout = 10)
{
    size_t len;
    char *buf = read_data("sse_golden.txt", &len);
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 35); /* longest line: the error line, 35 bytes (largest event: 34) */
    feed_chunks(p, buf, len, 1);
    check_events(&s, golden, NGOLDEN, "tight");
    gw_sse_parser_free(p);
    p = parser(&s, 34);
    cr_assert_eq(gw_sse_parser_feed(p, buf, len), GW_SSE_E_TOO_LARGE);
    gw_sse_parser_free(p);
    free(buf);
}

Test(sse, crlf_across_feeds_is_one_line_end, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    feed_ok(p, "data: a\r");
    feed_ok(p, "\ndata: b\n\n");
    const expect_t want[] = {{"", "a\nb"}};
    check_events(&s, want, 1, "cr|lf");
    gw_sse_parser_free(p);

    /* An empty feed between CR and LF keeps the pairing. */
    p = parser(&s, 1024);
    feed_ok(p, "data: a\r");
    cr_assert_eq(FEED(p, ""), 0);
    feed_ok(p, "\ndata: b\r");
    feed_ok(p, "\n\r");
    feed_ok(p, "\n");
    check_events(&s, want, 1, "cr|empty|lf");
    cr_assert_not(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);

    /* A CR ending a blank line: the event is dispatched at the CR, the LF after it is eaten. */
    p = parser(&s, 1024);
    feed_ok(p, "data: a\n\r");
    cr_assert_eq(s.n, 1);
    feed_ok(p, "\ndata: b\n\n");
    const expect_t want2[] = {{"", "a"}, {"", "b"}};
    check_events(&s, want2, 2, "blank cr|lf");
    gw_sse_parser_free(p);

    /* A lone CR followed by something else in the next feed is still a line end. */
    p = parser(&s, 1024);
    feed_ok(p, "data: a\r");
    feed_ok(p, "data: b\r\r");
    check_events(&s, want, 1, "cr|data");
    gw_sse_parser_free(p);

    /* Only one LF is paired with a CR: CR LF LF is a line end plus a blank line. */
    p = parser(&s, 1024);
    feed_ok(p, "data: a\r");
    feed_ok(p, "\n");
    feed_ok(p, "\n");
    const expect_t want3[] = {{"", "a"}};
    check_events(&s, want3, 1, "cr|lf|lf");
    gw_sse_parser_free(p);
}

Test(sse, comments, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    feed_ok(p, ": keepalive\n\n:\r:no space\r\n:: double\n");
    cr_assert_eq(s.ncomments, 4);
    cr_assert_str_eq(s.comments[0], " keepalive");
    cr_assert_str_eq(s.comments[1], "");
    cr_assert_str_eq(s.comments[2], "no space");
    cr_assert_str_eq(s.comments[3], ": double");
    cr_assert_eq(s.n, 0);
    cr_assert_not(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);

    /* A NULL comment callback is allowed. */
    p = gw_sse_parser_new(1024, on_event, NULL, &s);
    cr_assert_not_null(p);
    memset(&s, 0, sizeof(s));
    feed_ok(p, ": x\ndata: 1\n\n");
    cr_assert_eq(s.n, 1);
    gw_sse_parser_free(p);
}

Test(sse, field_parsing, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    feed_ok(p, "data\n\n");                           /* no colon: empty value, still dispatched */
    feed_ok(p, "data:\ndata:\n\n");                   /* two empty lines join to "\n" */
    feed_ok(p, "data:   x  \n\n");                    /* one space stripped, trailing kept */
    feed_ok(p, "data:\tx\n\n");                       /* a tab is not stripped */
    feed_ok(p, "event: a\nevent: b\ndata: 1\n\n");    /* last event field wins */
    feed_ok(p, "event: gone\n\ndata: 2\n\n");         /* type forgotten at a blank line */
    feed_ok(p, "DATA: no\nid: 1\nretry: 5\nfoo\n\n"); /* no data line: nothing */
    const expect_t want[] = {
        {"", ""}, {"", "\n"}, {"", "  x  "}, {"", "\tx"}, {"b", "1"}, {"", "2"},
    };
    check_events(&s, want, sizeof(want) / sizeof(want[0]), "fields");
    gw_sse_parser_free(p);

    /* An embedded NUL is data like any other byte. */
    p = parser(&s, 1024);
    static const char nul[] = "data: a\0b\n\n";
    cr_assert_eq(gw_sse_parser_feed(p, nul, sizeof(nul) - 1), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.data_len[0], 3);
    cr_assert_eq(memcmp(s.data[0], "a\0b", 3), 0);
    gw_sse_parser_free(p);
}

Test(sse, error_field, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    /* llama.cpp before Sept 2025: `error: {...}` then `data: [DONE]` (PROTOCOL.md §6.3). */
    feed_ok(p, "error: {\"code\":500}\n\ndata: [DONE]\n\n");
    /* The error field wins over data lines and over an event field of the same event. */
    feed_ok(p, "event: x\ndata: d1\nerror: e1\ndata: d2\nerror:e2\n\n");
    /* `event: error` with data is an ordinary event whose type happens to be "error". */
    feed_ok(p, "event: error\ndata: {}\n\n");
    /* An empty error value still makes an event. */
    feed_ok(p, "error\n\n");
    const expect_t want[] = {
        {"error", "{\"code\":500}"}, {"", "[DONE]"}, {"error", "e1\ne2"}, {"error", "{}"}, {"error", ""},
    };
    check_events(&s, want, sizeof(want) / sizeof(want[0]), "error");
    gw_sse_parser_free(p);
}

Test(sse, bom_stripped_once, .timeout = 10)
{
    static const char in[] = "\xEF\xBB\xBF"
                             "data: 1\n\n\xEF\xBB\xBF"
                             "data: 2\n\ndata: 3\n\n";
    size_t len = sizeof(in) - 1;
    for (size_t k = 0; k <= len; k++) {
        sink_t s;
        gw_sse_parser_t *p = parser(&s, 1024);
        cr_assert_eq(gw_sse_parser_feed(p, in, k), 0);
        cr_assert_eq(gw_sse_parser_feed(p, in + k, len - k), 0);
        /* A BOM later in the stream is part of a field name, so that line is ignored. */
        const expect_t want[] = {{"", "1"}, {"", "3"}};
        check_events(&s, want, 2, "bom");
        gw_sse_parser_free(p);
    }
}

Test(sse, oversize_line, .timeout = 10)
{
    sink_t s;
    /* Exactly max_event bytes of line is fine, one more is not. */
    gw_sse_parser_t *p = parser(&s, 16);
    feed_ok(p, "data: 1234567890\n\n");
    cr_assert_eq(s.n, 1);
    cr_assert_eq(FEED(p, "data: 12345678901"), GW_SSE_E_TOO_LARGE);
    cr_assert(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);

    /* Terminated in the same feed. */
    p = parser(&s, 16);
    cr_assert_eq(FEED(p, "data: 12345678901\n\n"), GW_SSE_E_TOO_LARGE);
    cr_assert_eq(s.n, 0);
    gw_sse_parser_free(p);

    /* Split across feeds: fails on the feed that crosses the bound. */
    p = parser(&s, 16);
    feed_ok(p, "data: 1234");
    feed_ok(p, "567890");
    cr_assert(gw_sse_parser_has_partial(p));
    cr_assert_eq(FEED(p, "1"), GW_SSE_E_TOO_LARGE);
    gw_sse_parser_free(p);

    /* A comment line is bounded too. */
    p = parser(&s, 16);
    cr_assert_eq(FEED(p, ":2345678901234567\n"), GW_SSE_E_TOO_LARGE);
    cr_assert_eq(s.ncomments, 0);
    gw_sse_parser_free(p);
}

/* An endless line fails on the first feed past the bound; nothing near its size is buffered. */
Test(sse, endless_line_fails_early, .timeout = 10)
{
    size_t max = MiB, step = 4096;
    char *chunk = malloc(step);
    cr_assert_not_null(chunk);
    memset(chunk, 'x', step);
    sink_t s;
    gw_sse_parser_t *p = parser(&s, max);
    cr_assert_eq(FEED(p, "data: "), 0);
    size_t fed = 6, feeds = 0;
    int rc = 0;
    while (rc == 0 && feeds < 10000) {
        rc = gw_sse_parser_feed(p, chunk, step);
        fed += step;
        feeds++;
    }
    cr_assert_eq(rc, GW_SSE_E_TOO_LARGE);
    cr_assert_gt(fed, max);
    cr_assert_leq(fed - step, max, "failed late: %zu bytes fed", fed);
    /* Also when the whole oversized line arrives in one feed, before its end is scanned. */
    gw_sse_parser_free(p);
    size_t big = 8 * MiB;
    char *huge = malloc(big);
    cr_assert_not_null(huge);
    memset(huge, 'y', big);
    p = parser(&s, max);
    cr_assert_eq(gw_sse_parser_feed(p, huge, big), GW_SSE_E_TOO_LARGE);
    gw_sse_parser_free(p);
    free(huge);
    free(chunk);
}

Test(sse, oversize_event, .timeout = 10)
{
    sink_t s;
    /* data "12345\n123456" is 12 bytes: fits max_event 12 (each line is within 12 bytes too). */
    gw_sse_parser_t *p = parser(&s, 12);
    feed_ok(p, "data: 12345\ndata: 123456\n\n");
    const expect_t want[] = {{"", "12345\n123456"}};
    check_events(&s, want, 1, "fits");
    /* "123456\n123456" is 13 bytes. */
    cr_assert_eq(FEED(p, "data: 123456\ndata: 123456\n\n"), GW_SSE_E_TOO_LARGE);
    cr_assert_eq(s.n, 1);
    cr_assert(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);

    /* The event type counts toward the event size, whichever field comes first. */
    p = parser(&s, 12);
    feed_ok(p, "event: abc\ndata: 12345\ndata: 123\n\n");
    cr_assert_eq(s.n, 1);
    cr_assert_eq(FEED(p, "event: abc\ndata: 12345\ndata: 1234\n\n"), GW_SSE_E_TOO_LARGE);
    gw_sse_parser_free(p);
    p = parser(&s, 12);
    cr_assert_eq(FEED(p, "data: 12345\ndata: 1234\nevent: abc\n\n"), GW_SSE_E_TOO_LARGE);
    gw_sse_parser_free(p);

    /* Many short lines, each within the line bound, fed one byte at a time. */
    p = parser(&s, 64);
    int rc = 0;
    size_t lines = 0;
    while (rc == 0 && lines < 100) {
        static const char l[] = "data: 123456789\n";
        for (size_t i = 0; i < sizeof(l) - 1 && rc == 0; i++)
            rc = gw_sse_parser_feed(p, l + i, 1);
        lines++;
    }
    cr_assert_eq(rc, GW_SSE_E_TOO_LARGE);
    cr_assert_eq(lines, 7, "failed after %zu lines", lines); /* 6 lines: 6*9+5 = 59, 7: 69 */
    cr_assert_eq(s.n, 0);
    gw_sse_parser_free(p);
}

Test(sse, error_is_sticky, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 8);
    cr_assert_eq(FEED(p, "data: 123456\n"), GW_SSE_E_TOO_LARGE);
    cr_assert_eq(FEED(p, "\ndata: 1\n\n"), GW_SSE_E_TOO_LARGE);
    cr_assert_eq(s.n, 0);
    gw_sse_parser_free(p);
}

Test(sse, callback_stop_propagates, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    s.stop_at = 2;
    s.stop_rc = 42;
    feed_ok(p, "data: a\n\n");
    cr_assert_eq(FEED(p, "data: b\n\ndata: c\n\n: late comment\n"), 42);
    const expect_t want[] = {{"", "a"}, {"", "b"}};
    check_events(&s, want, 2, "stop");
    cr_assert_eq(s.ncomments, 0);
    /* The dispatched event is gone: nothing is left half-received. */
    cr_assert_not(gw_sse_parser_has_partial(p));
    /* Stopped for good: later feeds report the same value and fire nothing. */
    cr_assert_eq(FEED(p, "data: d\n\n"), 42);
    cr_assert_eq(s.n, 2);
    gw_sse_parser_free(p);

    /* Negative values propagate too, also when the event came from a carried line. */
    p = parser(&s, 1024);
    s.stop_at = 1;
    s.stop_rc = -7;
    feed_ok(p, "data: [DO");
    cr_assert_eq(FEED(p, "NE]\n\n"), -7);
    const expect_t want2[] = {{"", "[DONE]"}};
    check_events(&s, want2, 1, "stop2");
    gw_sse_parser_free(p);
}

Test(sse, has_partial, .timeout = 10)
{
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    cr_assert_not(gw_sse_parser_has_partial(p));
    feed_ok(p, "data: x");
    cr_assert(gw_sse_parser_has_partial(p));
    feed_ok(p, "\n");
    cr_assert(gw_sse_parser_has_partial(p), "event without its blank line");
    cr_assert_eq(s.n, 0, "a half-received event is never dispatched");
    feed_ok(p, "\n");
    cr_assert_eq(s.n, 1);
    cr_assert_not(gw_sse_parser_has_partial(p));
    feed_ok(p, ": keepalive\nid: 3\nretry: 10\n");
    cr_assert_not(gw_sse_parser_has_partial(p), "comments and ignored fields begin nothing");
    feed_ok(p, "event: e\n");
    cr_assert(gw_sse_parser_has_partial(p));
    feed_ok(p, "\r");
    cr_assert_not(gw_sse_parser_has_partial(p), "a trailing CR is a complete line end");
    feed_ok(p, "error: e");
    cr_assert(gw_sse_parser_has_partial(p));
    feed_ok(p, "\r\r");
    cr_assert_not(gw_sse_parser_has_partial(p));
    cr_assert_eq(s.n, 2);
    feed_ok(p, ":");
    cr_assert(gw_sse_parser_has_partial(p), "even an unterminated comment");
    gw_sse_parser_free(p);
}

Test(sse, new_rejects_bad_args, .timeout = 10)
{
    cr_assert_null(gw_sse_parser_new(0, on_event, NULL, NULL));
    cr_assert_null(gw_sse_parser_new(1024, NULL, NULL, NULL));
    gw_sse_parser_free(NULL);
}

Test(sse, writer_event_line, .timeout = 10)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_sse_begin(&b, true, GW_STR_LIT("response.output_text.delta"));
    gw_buf_append_cstr(&b, "{\"delta\":\"hi\"}");
    gw_sse_end(&b);
    static const char want[] = "event: response.output_text.delta\ndata: {\"delta\":\"hi\"}\n\n";
    cr_assert_eq(b.len, sizeof(want) - 1);
    cr_assert_eq(memcmp(b.base, want, b.len), 0);
    gw_buf_dispose(&b);
}

Test(sse, writer_data_only, .timeout = 10)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "prefix|");
    gw_sse_begin(&b, false, GW_STR_LIT("ignored"));
    gw_buf_append_cstr(&b, "{}");
    gw_sse_end(&b);
    gw_sse_done(&b);
    gw_sse_keepalive(&b);
    static const char want[] = "prefix|data: {}\n\ndata: [DONE]\n\n: keepalive\n\n";
    cr_assert_eq(b.len, sizeof(want) - 1);
    cr_assert_eq(memcmp(b.base, want, b.len), 0);
    gw_buf_dispose(&b);

    gw_buf_init(&b);
    gw_sse_done(&b);
    cr_assert_eq(b.len, 14);
    cr_assert_eq(memcmp(b.base, "data: [DONE]\n\n", 14), 0);
    gw_buf_reset(&b);
    gw_sse_keepalive(&b);
    cr_assert_eq(b.len, 13);
    cr_assert_eq(memcmp(b.base, ": keepalive\n\n", 13), 0);
    gw_buf_dispose(&b);
}

/* What the writer frames, the parser reads back unchanged. */
Test(sse, writer_round_trip, .timeout = 10)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_sse_begin(&b, true, GW_STR_LIT("response.created"));
    gw_buf_append_cstr(&b, "{\"type\":\"response.created\"}");
    gw_sse_end(&b);
    gw_sse_keepalive(&b);
    gw_sse_begin(&b, false, GW_STR_NULL);
    gw_buf_append_cstr(&b, "{\"x\":1}");
    gw_sse_end(&b);
    gw_sse_done(&b);
    sink_t s;
    gw_sse_parser_t *p = parser(&s, 1024);
    cr_assert_eq(gw_sse_parser_feed(p, b.base, b.len), 0);
    const expect_t want[] = {
        {"response.created", "{\"type\":\"response.created\"}"}, {"", "{\"x\":1}"}, {"", "[DONE]"}};
    check_events(&s, want, 3, "round trip");
    cr_assert_eq(s.ncomments, 1);
    cr_assert_str_eq(s.comments[0], " keepalive");
    cr_assert_not(gw_sse_parser_has_partial(p));
    gw_sse_parser_free(p);
    gw_buf_dispose(&b);
}
