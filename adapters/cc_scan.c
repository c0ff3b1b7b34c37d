/* cc_scan: the ChatCompletions chunk scanner (cc_scan.h). Recursive descent over strict JSON
 * (RFC 8259) with the adapter's few fields picked out; every doubt is CC_SCAN_OTHER. */
#include <string.h>

#include "adapters/cc_scan.h"
#include "gateway/json.h"

bool ad__cc_scan_off;

#define SCAN_MAX_DEPTH 16 /* deeper values go to yajl (its limit is GW_JSON_MAX_DEPTH) */

typedef struct {
    const char *p, *end;
    gw_arena_t *a;
    int depth;
    const char *content_at, *content_end; /** choice 0's delta.content string, quotes included */
} sc_t;

#define TRY(x)                                                                                               \
    do {                                                                                                     \
        if ((x) != 0)                                                                                        \
            return -1;                                                                                       \
    } while (0)

static void ws(sc_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int expect(sc_t *s, char ch)
{
    ws(s);
    if (s->p >= s->end || *s->p != ch)
        return -1;
    s->p++;
    return 0;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Escapes decoded into the arena: the simple ones, and \u of a non-zero BMP code point outside
 * the surrogates (yajl's own surrogate handling is gw_json_parse's business). */
static int decode(sc_t *s, const char *b, const char *e, gw_str_t *out)
{
    char *o = gw_arena_alloc(s->a, (size_t)(e - b));
    size_t n = 0;
    while (b < e) {
        if (*b != '\\') {
            o[n++] = *b++;
            continue;
        }
        char c = b[1];
        b += 2;
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            int u = hex4(b);
            b += 4;
            if (u <= 0 || (u >= 0xD800 && u <= 0xDFFF))
                return -1;
            if (u < 0x80) {
                o[n++] = (char)u;
            } else if (u < 0x800) {
                o[n++] = (char)(0xC0 | (u >> 6));
                o[n++] = (char)(0x80 | (u & 0x3F));
            } else {
                o[n++] = (char)(0xE0 | (u >> 12));
                o[n++] = (char)(0x80 | ((u >> 6) & 0x3F));
                o[n++] = (char)(0x80 | (u & 0x3F));
            }
            break;
        }
        default: return -1;
        }
    }
    *out = gw_str_n(o, n);
    return 0;
}

/* A string at s->p (after whitespace): only checked (out NULL), or read into *out, decoded
 * unless raw is set, when a string with escapes is not recognised (keys compare as bytes). */
static int string_as(sc_t *s, gw_str_t *out, bool raw)
{
    bool want_value = out != NULL;
    if (expect(s, '"') < 0)
        return -1;
    const char *b = s->p;
    bool esc = false;
    while (s->p < s->end) {
        while (s->end - s->p >= 8) { /* plain text eight bytes at a time, to the first special */
            uint64_t w;
            memcpy(&w, s->p, 8);
            uint64_t m = gw_json_special_mask(w);
            if (m) {
                s->p += gw_json_first_special(m);
                break;
            }
            s->p += 8;
        }
        if (s->p >= s->end)
            break;
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            const char *e = s->p++;
            if (!want_value)
                return 0;
            if (!esc) {
                *out = gw_str_n(b, (size_t)(e - b));
                return 0;
            }
            return raw ? -1 : decode(s, b, e, out);
        }
        if (c < 0x20)
            return -1; /* yajl rejects raw control characters */
        if (c == '\\') {
            if (s->end - s->p < 2)
                return -1;
            char x = s->p[1];
            if (x == 'u') {
                if (s->end - s->p < 6 || hex4(s->p + 2) < 0)
                    return -1;
                s->p += 6;
            } else if (strchr("\"\\/bfnrt", x) && x) {
                s->p += 2;
            } else {
                return -1;
            }
            esc = true;
            continue;
        }
        s->p++;
    }
    return -1;
}

static int string(sc_t *s, gw_str_t *out)
{
    return string_as(s, out, false);
}

/* A key: compared as raw bytes, so one with escapes is not recognised. */
static int key(sc_t *s, gw_str_t *k)
{
    if (string_as(s, k, true) < 0 || expect(s, ':') < 0)
        return -1;
    ws(s);
    return 0;
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number; *is_int and *v when it is a plain integer of at most 15 digits (exact as a double,
 * so equal to what gw_json_int64 reads). */
static int number(sc_t *s, bool *is_int, int64_t *v)
{
    const char *p = s->p;
    bool neg = false;
    if (p < s->end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= s->end || !digit(*p))
        return -1;
    const char *d0 = p;
    if (*p == '0')
        p++;
    else
        while (p < s->end && digit(*p))
            p++;
    size_t nd = (size_t)(p - d0);
    bool frac = false;
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || !digit(*p))
            return -1;
        while (p < s->end && digit(*p))
            p++;
        frac = true;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || !digit(*p))
            return -1;
        while (p < s->end && digit(*p))
            p++;
        frac = true;
    }
    /* yajl lexes "01" or "1x" as two tokens, an error: so must we. */
    if (p < s->end && (digit(*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' || *p == '+'))
        return -1;
    *is_int = !frac && nd <= 15;
    if (*is_int) {
        int64_t x = 0;
        for (const char *q = d0; q < d0 + nd; q++)
            x = x * 10 + (*q - '0');
        *v = neg ? -x : x;
    }
    s->p = p;
    return 0;
}

static int literal(sc_t *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return -1;
    s->p += n;
    /* "nullx" is an error to yajl too, but so is "null" followed by anything but a delimiter */
    if (s->p < s->end && ((*s->p >= 'a' && *s->p <= 'z') || (*s->p >= 'A' && *s->p <= 'Z') || digit(*s->p)))
        return -1;
    return 0;
}

static int value(sc_t *s);

/* Members of an object already opened, or elements of an array already opened, skipped. */
static int members(sc_t *s, bool object)
{
    char close = object ? '}' : ']';
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        if (object) {
            gw_str_t k;
            TRY(key(s, &k));
        }
        TRY(value(s));
        ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != close)
            return -1;
        s->p++;
        return 0;
    }
}

/* Any value, checked and skipped. */
static int value(sc_t *s)
{
    ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '"': return string(s, NULL);
    case '{':
    case '[': {
        if (++s->depth > SCAN_MAX_DEPTH)
            return -1;
        bool obj = *s->p == '{';
        s->p++;
        TRY(members(s, obj));
        s->depth--;
        return 0;
    }
    case 't': return literal(s, "true", 4);
    case 'f': return literal(s, "false", 5);
    case 'n': return literal(s, "null", 4);
    default: {
        bool is_int;
        int64_t v;
        return number(s, &is_int, &v);
    }
    }
}

/* A value that is read when it is a string (absent otherwise), like gw_json_get_str. */
static int str_value(sc_t *s, gw_str_t *out)
{
    if (s->p < s->end && *s->p == '"')
        return string(s, out);
    *out = GW_STR_NULL;
    return value(s);
}

/* A value read as gw_json_int64 would: *has set for an integer; a fraction or exponent (which
 * gw_json_int64 may still accept) is not ours. */
static int int_value(sc_t *s, bool *has, int64_t *v)
{
    char c = s->p < s->end ? *s->p : 0;
    if (c == '-' || digit(c)) {
        bool is_int;
        TRY(number(s, &is_int, v));
        if (!is_int)
            return -1;
        *has = true;
        return 0;
    }
    return value(s);
}

/* Iterate an object's members: each call of `each` gets the key and must consume the value. */
typedef int (*member_fn)(sc_t *s, gw_str_t k, void *ctx, unsigned *seen);

static int object(sc_t *s, member_fn each, void *ctx)
{
    unsigned seen = 0;
    TRY(expect(s, '{'));
    if (++s->depth > SCAN_MAX_DEPTH)
        return -1;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        gw_str_t k;
        TRY(key(s, &k));
        TRY(each(s, k, ctx, &seen));
        ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != '}')
            return -1;
        s->p++;
        s->depth--;
        return 0;
    }
}

/* A key read at most once per object: a duplicate (last wins in gw_json_get) is not ours. */
static int once(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return -1;
    *seen |= bit;
    return 0;
}

static bool is(gw_str_t k, const char *lit, size_t n)
{
    return k.len == n && memcmp(k.base, lit, n) == 0;
}
#define IS(k, lit) is((k), lit, sizeof(lit) - 1)

static int delta_member(sc_t *s, gw_str_t k, void *ctx, unsigned *seen)
{
    cc_chunk_t *c = ctx;
    if (IS(k, "content")) {
        const char *at = s->p;
        if (once(seen, 1) || str_value(s, &c->content))
            return -1;
        if (c->content.base) {
            s->content_at = at;
            s->content_end = s->p;
        }
        return 0;
    }
    if (IS(k, "reasoning_content"))
        return once(seen, 2) || str_value(s, &c->reasoning_content);
    if (IS(k, "reasoning"))
        return once(seen, 4) || str_value(s, &c->reasoning);
    if (IS(k, "refusal"))
        return once(seen, 8) || str_value(s, &c->refusal);
    if (IS(k, "tool_calls") || IS(k, "function_call"))
        return -1;
    return value(s);
}

/* One choices[] element, read into a local until it turns out to be choice 0. */
typedef struct {
    cc_chunk_t f;
    bool has_index;
    int64_t index;
} choice_t;

static int choice_member(sc_t *s, gw_str_t k, void *ctx, unsigned *seen)
{
    choice_t *ch = ctx;
    if (IS(k, "index")) {
        TRY(once(seen, 1));
        char c = s->p < s->end ? *s->p : 0;
        if (c == '-' || digit(c)) {
            bool is_int;
            TRY(number(s, &is_int, &ch->index));
            if (!is_int)
                return -1;
            ch->has_index = true;
            return 0;
        }
        return value(s); /* not a number: the adapter treats the choice as index 0 */
    }
    if (IS(k, "delta")) {
        TRY(once(seen, 2));
        if (s->p < s->end && *s->p == '{')
            return object(s, delta_member, &ch->f);
        return value(s);
    }
    if (IS(k, "finish_reason")) {
        TRY(once(seen, 4));
        TRY(str_value(s, &ch->f.finish_reason));
        /* error/abort read the choice's message: not ours */
        return is(ch->f.finish_reason, "error", 5) || is(ch->f.finish_reason, "abort", 5) ? -1 : 0;
    }
    if (IS(k, "message"))
        return -1; /* a non-streaming shape */
    return value(s);
}

static int choices(sc_t *s, cc_chunk_t *c)
{
    if (s->p >= s->end || *s->p != '[')
        return value(s); /* not an array: ignored by the adapter */
    s->p++;
    if (++s->depth > SCAN_MAX_DEPTH)
        return -1;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        ws(s);
        if (c->choice) {
            TRY(value(s)); /* after choice 0: only checked */
        } else {
            choice_t ch;
            memset(&ch, 0, sizeof(ch));
            if (s->p >= s->end || *s->p != '{')
                return -1;
            TRY(object(s, choice_member, &ch));
            if (!ch.has_index || ch.index == 0) {
                c->choice = true;
                c->reasoning_content = ch.f.reasoning_content;
                c->reasoning = ch.f.reasoning;
                c->content = ch.f.content;
                c->refusal = ch.f.refusal;
                c->finish_reason = ch.f.finish_reason;
            }
        }
        ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != ']')
            return -1;
        s->p++;
        s->depth--;
        return 0;
    }
}

static int details_member(sc_t *s, gw_str_t k, void *ctx, unsigned *seen)
{
    cc_chunk_t *c = ctx;
    if (IS(k, "cached_tokens"))
        return once(seen, 1) || int_value(s, &c->has_cached, &c->cached);
    if (IS(k, "reasoning_tokens"))
        return once(seen, 2) || int_value(s, &c->has_reasoning, &c->reasoning_tokens);
    return value(s);
}

/* prompt_tokens_details holds cached_tokens, completion_tokens_details reasoning_tokens: the
 * other one of each pair is skipped here by reading into a throwaway chunk. */
static int details(sc_t *s, cc_chunk_t *c, bool prompt)
{
    if (s->p >= s->end || *s->p != '{')
        return value(s);
    cc_chunk_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    TRY(object(s, details_member, &tmp));
    if (prompt) {
        c->has_cached = tmp.has_cached;
        c->cached = tmp.cached;
    } else {
        c->has_reasoning = tmp.has_reasoning;
        c->reasoning_tokens = tmp.reasoning_tokens;
    }
    return 0;
}

static int usage_member(sc_t *s, gw_str_t k, void *ctx, unsigned *seen)
{
    cc_chunk_t *c = ctx;
    if (IS(k, "prompt_tokens"))
        return once(seen, 1) || int_value(s, &c->has_input, &c->input);
    if (IS(k, "completion_tokens"))
        return once(seen, 2) || int_value(s, &c->has_output, &c->output);
    if (IS(k, "total_tokens"))
        return once(seen, 4) || int_value(s, &c->has_total, &c->total);
    if (IS(k, "prompt_tokens_details"))
        return once(seen, 8) || details(s, c, true);
    if (IS(k, "completion_tokens_details"))
        return once(seen, 16) || details(s, c, false);
    return value(s);
}

static int top_member(sc_t *s, gw_str_t k, void *ctx, unsigned *seen)
{
    cc_chunk_t *c = ctx;
    if (IS(k, "model"))
        return once(seen, 1) || str_value(s, &c->model);
    if (IS(k, "choices"))
        return once(seen, 2) || choices(s, c);
    if (IS(k, "usage")) {
        TRY(once(seen, 4));
        if (s->p < s->end && *s->p == '{') {
            c->usage = true;
            return object(s, usage_member, c);
        }
        return value(s);
    }
    if (IS(k, "object")) {
        gw_str_t o;
        TRY(once(seen, 8));
        TRY(str_value(s, &o));
        return is(o, "error", 5) ? -1 : 0; /* an error object: ad_error_message's */
    }
    if (IS(k, "error") || IS(k, "databricks_output"))
        return -1;
    return value(s);
}

/* The whole chunk: one object and nothing after it. */
static int scan(sc_t *s, cc_chunk_t *out)
{
    memset(out, 0, sizeof(*out));
    ws(s);
    if (s->p >= s->end || *s->p != '{' || object(s, top_member, out) < 0)
        return CC_SCAN_OTHER;
    ws(s);
    return s->p == s->end ? CC_SCAN_OK : CC_SCAN_OTHER;
}

int cc_scan_chunk(gw_arena_t *scratch, const char *p, size_t n, cc_chunk_t *out)
{
    sc_t s = {.p = p, .end = p + n, .a = scratch};
    return scan(&s, out);
}

/* A chunk whose bytes equal the previous one's outside the content string reads the same outside
 * it: only the content string is scanned, the other fields are the memo's, moved to the new bytes. */
static bool rebase(gw_str_t *v, const char *old, size_t n, const char *new_base)
{
    if (!v->base)
        return true;
    if (v->base < old || v->base + v->len > old + n)
        return false; /* decoded into the scratch arena: gone */
    v->base = new_base + (v->base - old);
    return true;
}

static bool memo_hit(cc_scan_memo_t *m, gw_arena_t *scratch, const char *p, size_t n, cc_chunk_t *out)
{
    if (!m->ok || n < m->cs || memcmp(p, m->prev, m->cs) != 0)
        return false;
    sc_t s = {.p = p + m->cs, .end = p + n, .a = scratch};
    gw_str_t content;
    if (string(&s, &content) < 0 || !content.base)
        return false;
    size_t e = (size_t)(s.p - p);
    if (n - e != m->len - m->ce || memcmp(p + e, m->prev + m->ce, n - e) != 0)
        return false;
    *out = m->res;
    rebase(&out->model, m->prev, m->len, p);
    rebase(&out->finish_reason, m->prev, m->len, p);
    out->content = content;
    return true;
}

int cc_scan_chunk_memo(cc_scan_memo_t *m, gw_arena_t *scratch, const char *p, size_t n, cc_chunk_t *out)
{
    if (memo_hit(m, scratch, p, n, out)) {
        m->hits++;
        return CC_SCAN_OK;
    }
    m->ok = false;
    sc_t s = {.p = p, .end = p + n, .a = scratch};
    if (scan(&s, out) != CC_SCAN_OK)
        return CC_SCAN_OTHER;
    /* Remember a plain text chunk: only content may differ next time. */
    if (s.content_at && n <= sizeof(m->prev) && !out->reasoning_content.base && !out->reasoning.base &&
        !out->refusal.base && !out->usage) {
        m->res = *out;
        memcpy(m->prev, p, n);
        m->len = n;
        m->cs = (size_t)(s.content_at - p);
        m->ce = (size_t)(s.content_end - p);
        m->ok = rebase(&m->res.model, p, n, m->prev) && rebase(&m->res.finish_reason, p, n, m->prev);
        m->res.content = GW_STR_NULL;
    }
    return CC_SCAN_OK;
}
