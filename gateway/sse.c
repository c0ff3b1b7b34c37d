#include "gateway/sse.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Buffers grown past this by one large event are released after use, so a long-lived stream that
 * once carried a big event does not keep that memory until the request ends. */
#define SHRINK_ABOVE (64 * 1024)

struct gw_sse_parser {
    size_t max_event; /** bytes: bound for one line and for one event's type + data */
    gw_sse_event_cb on_event;
    gw_sse_comment_cb on_comment; /** may be NULL */
    void *ud;
    gw_buf_t line; /** owned: only the unterminated tail of earlier feeds, never a whole feed */
    gw_buf_t data; /** owned: the current event's data (or error) values joined with "\n" */
    gw_buf_t type; /** owned: the current event's last "event:" value */
    gw_str_t pend; /** borrowed from the feed being parsed: the event's first data value, not yet
                       copied into data (valid only while has_pend, i.e. inside one feed) */
    int err;       /** sticky: 0, GW_SSE_E_TOO_LARGE or the callback value that stopped a feed */
    bool has_pend;
    bool has_data; /** a data (or error) line was seen since the last blank line */
    bool is_error; /** an "error:" field was seen: the event is dispatched as type "error" */
    bool skip_lf;  /** the last line ended with CR: an LF right after it (even next feed) is eaten */
    bool started;  /** the first line was processed (a UTF-8 BOM is stripped only before it) */
    bool in_feed;  /** re-entrancy check: callbacks must not feed the parser again */
};

/* Both the data buffer and the borrowed pending value make up the event's data. */
static size_t data_len(const gw_sse_parser_t *p)
{
    return p->data.len + (p->has_pend ? p->pend.len : 0);
}

static void shrink(gw_buf_t *b)
{
    if (b->cap > SHRINK_ABOVE)
        gw_buf_dispose(b);
}

/* Copy the pending borrowed data value into the data buffer: done before the next data line is
 * appended and before a feed returns, since the caller's bytes die with the feed. */
static void materialize(gw_sse_parser_t *p)
{
    if (!p->has_pend)
        return;
    assert(p->data.len == 0);
    gw_buf_append_str(&p->data, p->pend);
    p->has_pend = false;
    p->pend = GW_STR_NULL;
}

static void reset_event(gw_sse_parser_t *p)
{
    p->data.len = 0;
    p->type.len = 0;
    p->has_pend = false;
    p->pend = GW_STR_NULL;
    p->has_data = false;
    p->is_error = false;
    shrink(&p->data);
    shrink(&p->type);
}

static gw_str_t nonnull(gw_str_t s)
{
    return s.len ? s : GW_STR_LIT("");
}

/* Blank line: WHATWG "dispatch the event". Nothing is dispatched when no data line was seen (a
 * lone "event:" is dropped and its type forgotten). The event is reset before the callback's value
 * is returned, so a stop leaves no half event behind. */
static int dispatch(gw_sse_parser_t *p)
{
    int rc = 0;
    if (p->has_data) {
        gw_str_t ev = p->is_error ? GW_STR_LIT("error") : gw_buf_str(&p->type);
        gw_str_t d = p->has_pend ? p->pend : gw_buf_str(&p->data);
        rc = p->on_event(p->ud, nonnull(ev), nonnull(d));
    }
    reset_event(p);
    return rc;
}

/* Append one data or error value, joined to earlier ones with "\n" (WHATWG appends value + LF and
 * strips the last LF at dispatch; same bytes). The first value of an event is only borrowed when
 * it lies in the caller's feed: the common `data: {...}\n\n` is then dispatched without a copy. */
static int add_value(gw_sse_parser_t *p, gw_str_t value, bool in_place)
{
    size_t need = data_len(p) + (p->has_data ? 1 : 0) + value.len;
    if (need > p->max_event || p->type.len > p->max_event - need)
        return GW_SSE_E_TOO_LARGE;
    if (!p->has_data && in_place) {
        p->pend = value;
        p->has_pend = true;
        p->has_data = true;
        return 0;
    }
    materialize(p);
    if (p->has_data)
        gw_buf_append(&p->data, "\n", 1);
    gw_buf_append_str(&p->data, value);
    p->has_data = true;
    return 0;
}

/* One complete line without its terminator. in_place: line points into the caller's feed (not
 * into p->line), so a data value may be borrowed until the feed returns. */
static int process_line(gw_sse_parser_t *p, gw_str_t line, bool in_place)
{
    if (!p->started) {
        p->started = true;
        /* WHATWG: one leading U+FEFF is stripped from the stream. */
        if (line.len >= 3 && memcmp(line.base, "\xEF\xBB\xBF", 3) == 0) {
            line.base += 3;
            line.len -= 3;
        }
    }
    if (line.len == 0)
        return dispatch(p);
    if (line.base[0] == ':') {
        if (p->on_comment)
            p->on_comment(p->ud, gw_str_n(line.base + 1, line.len - 1));
        return 0;
    }
    /* "name: value" / "name:value" (one space stripped); no colon = name with empty value. */
    gw_str_t name = line, value = GW_STR_NULL;
    const char *colon = memchr(line.base, ':', line.len);
    if (colon) {
        name.len = (size_t)(colon - line.base);
        value = gw_str_n(colon + 1, line.len - name.len - 1);
        if (value.len && value.base[0] == ' ') {
            value.base++;
            value.len--;
        }
    }
    if (gw_str_eq(name, "data")) {
        /* An event that carried an error field is reported as that error only. */
        if (p->is_error)
            return 0;
        return add_value(p, value, in_place);
    }
    if (gw_str_eq(name, "error")) {
        /* Non-standard llama.cpp field (PROTOCOL.md §6.3): `error: {json}` then a blank line.
         * It takes precedence over data lines of the same event, which are dropped. */
        if (!p->is_error) {
            p->is_error = true;
            p->has_data = false;
            p->has_pend = false;
            p->pend = GW_STR_NULL;
            p->data.len = 0;
        }
        return add_value(p, value, in_place);
    }
    if (gw_str_eq(name, "event")) {
        if (value.len > p->max_event || data_len(p) > p->max_event - value.len)
            return GW_SSE_E_TOO_LARGE;
        p->type.len = 0;
        gw_buf_append_str(&p->type, value);
        return 0;
    }
    /* "id" and "retry" are ignored on purpose (we never reconnect upstream), as is any unknown
     * field (WHATWG: "otherwise, ignore the field"). */
    return 0;
}

/* Find the first CR or LF in s[0..n). */
static const char *find_eol(const char *s, size_t n)
{
    const char *lf = memchr(s, '\n', n);
    const char *cr = memchr(s, '\r', lf ? (size_t)(lf - s) : n);
    return cr ? cr : lf;
}

gw_sse_parser_t *gw_sse_parser_new(size_t max_event, gw_sse_event_cb on_event, gw_sse_comment_cb on_comment,
                                   void *ud)
{
    if (max_event == 0 || !on_event)
        return NULL;
    gw_sse_parser_t *p = gw_xcalloc(1, sizeof(*p));
    p->max_event = max_event;
    p->on_event = on_event;
    p->on_comment = on_comment;
    p->ud = ud;
    gw_buf_init(&p->line);
    gw_buf_init(&p->data);
    gw_buf_init(&p->type);
    return p;
}

void gw_sse_parser_free(gw_sse_parser_t *p)
{
    if (!p)
        return;
    assert(!p->in_feed);
    gw_buf_dispose(&p->line);
    gw_buf_dispose(&p->data);
    gw_buf_dispose(&p->type);
    free(p);
}

/* Lines are parsed where they lie in the caller's buffer; only a line cut by the end of a feed is
 * copied into p->line, and only until it passes max_event: the scan for its end is bounded by the
 * room left, so an endless line fails as soon as it is too long and is never buffered whole.
 * Callbacks fire synchronously from here. Once a feed failed or was stopped, the parser is dead
 * (the rest of that feed is lost, so the stream position is unknown) and every later feed returns
 * the same value. */
int gw_sse_parser_feed(gw_sse_parser_t *p, const char *data, size_t len)
{
    assert(!p->in_feed);
    if (p->err)
        return p->err;
    p->in_feed = true;
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        if (p->skip_lf) {
            /* CRLF is one line end even when a feed boundary falls between CR and LF. */
            p->skip_lf = false;
            if (data[i] == '\n') {
                i++;
                continue;
            }
        }
        const char *s = data + i;
        size_t avail = len - i, room = p->max_event - p->line.len;
        const char *eol = find_eol(s, avail > room ? room + 1 : avail);
        if (!eol) {
            if (avail > room) {
                rc = GW_SSE_E_TOO_LARGE;
                break;
            }
            gw_buf_append(&p->line, s, avail);
            break;
        }
        size_t n = (size_t)(eol - s);
        p->skip_lf = *eol == '\r';
        i += n + 1;
        if (p->line.len) {
            gw_buf_append(&p->line, s, n);
            rc = process_line(p, gw_buf_str(&p->line), false);
            p->line.len = 0;
            shrink(&p->line);
        } else {
            rc = process_line(p, gw_str_n(s, n), true);
        }
        if (rc)
            break;
    }
    if (rc) {
        p->err = rc;
        p->has_pend = false;
        p->pend = GW_STR_NULL;
        if (rc == GW_SSE_E_TOO_LARGE) {
            /* Release the oversized event now rather than when the request ends. */
            gw_buf_dispose(&p->line);
            gw_buf_dispose(&p->data);
            gw_buf_dispose(&p->type);
        }
    } else {
        materialize(p);
    }
    p->in_feed = false;
    return rc;
}

/* Partial = an unterminated line, or an event begun (data, error or event field seen) without its
 * closing blank line; also after GW_SSE_E_TOO_LARGE, whose event never completed. Comments and
 * ignored fields do not begin an event. */
bool gw_sse_parser_has_partial(const gw_sse_parser_t *p)
{
    if (p->err == GW_SSE_E_TOO_LARGE)
        return true;
    return p->line.len > 0 || p->has_data || p->type.len > 0;
}

void gw_sse_begin(gw_buf_t *out, bool with_event_line, gw_str_t type)
{
    if (with_event_line) {
        /* The type is one of our own event names, never input: a newline would forge a field. */
        assert(type.len == 0 || (!memchr(type.base, '\n', type.len) && !memchr(type.base, '\r', type.len)));
        gw_buf_append(out, "event: ", 7);
        gw_buf_append_str(out, type);
        gw_buf_append(out, "\n", 1);
    }
    gw_buf_append(out, "data: ", 6);
}

void gw_sse_end(gw_buf_t *out)
{
    gw_buf_append(out, "\n\n", 2);
}

void gw_sse_done(gw_buf_t *out)
{
    gw_buf_append(out, "data: [DONE]\n\n", 14);
}

void gw_sse_keepalive(gw_buf_t *out)
{
    gw_buf_append(out, ": keepalive\n\n", 13);
}
