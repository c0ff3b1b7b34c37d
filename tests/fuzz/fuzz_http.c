/* HTTP request path: the byte pre-scan (gw_hscan) and llhttp in the server's order — header block
 * scanned then parsed on its own, a chunked body checked before llhttp reads it, the header rules
 * of on_headers_complete (tokens, one Host, plain chunked) — with bytes cut at arbitrary points.
 * Input: one control byte (read size, 0 = all at once), then the bytes a client sends. */
#include <llhttp.h>
#include <string.h>

#include "fuzz.h"
#include "gateway/http_scan.h"

#define MAX_BODY 4096u

typedef struct {
    bool headers_seen;
    bool in_value;
    char field[64];
    size_t field_len;
    size_t hosts;
} conn_t;

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->headers_seen)
        return 0;
    if (c->in_value) {
        c->field_len = 0;
        c->in_value = false;
    }
    size_t room = sizeof(c->field) - c->field_len;
    size_t k = n < room ? n : room;
    memcpy(c->field + c->field_len, at, k);
    c->field_len += k;
    if (!gw_hscan_is_token(gw_str_n(at, n)))
        return HPE_USER;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->headers_seen)
        return 0;
    if (!c->in_value && gw_str_ieq(gw_str_n(c->field, c->field_len), "host"))
        c->hosts++;
    c->in_value = true;
    (void)gw_hscan_is_plain_chunked(gw_str_n(at, n));
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->headers_seen = true;
    p->upgrade = 0;
    return c->hosts > 1 ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = test_fuzz_step(data[0], size - 1);
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_header_field = on_header_field;
    st.on_header_value = on_header_value;
    st.on_headers_complete = on_headers_complete;
    st.on_message_complete = on_message_complete;
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &st);
    conn_t c = {0};
    p.data = &c;
    gw_hscan_head_t head = {0};
    gw_hscan_chunked_t ck = {0};

    for (size_t off = 0; off < len;) {
        size_t n = len - off < step ? len - off : step;
        const char *at = in + off;
        if (!c.headers_seen) {
            ssize_t h = gw_hscan_head(&head, at, n);
            if (h < 0)
                return 0;
            n = (size_t)h;
        } else if (gw_hscan_chunked_active(&ck)) {
            if (gw_hscan_chunked(&ck, MAX_BODY, at, n) != GW_ERR_NONE)
                return 0;
        }
        bool was_seen = c.headers_seen;
        llhttp_errno_t e = llhttp_execute(&p, at, n);
        if (e == HPE_PAUSED) {
            /* One request per input is enough: the server answers and resets the same way. */
            return 0;
        }
        if (e != HPE_OK)
            return 0;
        if (!was_seen && c.headers_seen && (p.flags & F_CHUNKED))
            gw_hscan_chunked_start(&ck);
        off += n;
    }
    return 0;
}
