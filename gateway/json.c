#include "gateway/json.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <yajl/yajl_parse.h>

/* ---- parsing: yajl callbacks append nodes to the current container ---- */

struct pctx {
    gw_arena_t *a;
    gw_json_t *root, *cur; /** cur = innermost open container */
    gw_str_t key;          /** pending member name */
    int depth;
    const char *err;
};

/* yajl's own allocations go to the arena too: no malloc per parsed event. */
static void *ar_malloc(void *ctx, size_t n)
{
    /* Prefix each block with its size so realloc can copy. */
    size_t *p = gw_arena_alloc(ctx, n + 16);
    *p = n;
    return (char *)p + 16;
}
static void ar_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p;
}
static void *ar_realloc(void *ctx, void *p, size_t n)
{
    if (!p)
        return ar_malloc(ctx, n);
    size_t old = *(size_t *)((char *)p - 16);
    if (n <= old)
        return p;
    void *q = ar_malloc(ctx, n);
    memcpy(q, p, old);
    return q;
}

static gw_json_t *add(struct pctx *c, gw_json_type_t t)
{
    gw_json_t *v = gw_arena_calloc(c->a, sizeof(*v));
    v->type = t;
    if (!c->cur) {
        c->root = v;
        return v;
    }
    v->parent = c->cur;
    if (c->cur->type == GW_JSON_OBJECT) {
        v->key = c->key;
        c->key = GW_STR_NULL;
    }
    if (c->cur->last)
        c->cur->last->next = v;
    else
        c->cur->child = v;
    c->cur->last = v;
    c->cur->len++;
    return v;
}

static int on_null(void *ctx)
{
    add(ctx, GW_JSON_NULL);
    return 1;
}
static int on_bool(void *ctx, int b)
{
    add(ctx, GW_JSON_BOOL)->boolean = b != 0;
    return 1;
}
static int on_number(void *ctx, const char *s, size_t n)
{
    struct pctx *c = ctx;
    add(c, GW_JSON_NUMBER)->str = gw_arena_str(c->a, gw_str_n(s, n));
    return 1;
}
static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    struct pctx *c = ctx;
    add(c, GW_JSON_STRING)->str = gw_arena_str(c->a, gw_str_n((const char *)s, n));
    return 1;
}
static int open_container(struct pctx *c, gw_json_type_t t)
{
    if (++c->depth > GW_JSON_MAX_DEPTH) {
        c->err = "nesting too deep";
        return 0;
    }
    c->cur = add(c, t);
    return 1;
}
static int on_start_map(void *ctx)
{
    return open_container(ctx, GW_JSON_OBJECT);
}
static int on_start_array(void *ctx)
{
    return open_container(ctx, GW_JSON_ARRAY);
}
static int on_end(void *ctx)
{
    struct pctx *c = ctx;
    c->depth--;
    c->cur = c->cur->parent;
    return 1;
}
static int on_key(void *ctx, const unsigned char *s, size_t n)
{
    struct pctx *c = ctx;
    c->key = gw_arena_str(c->a, gw_str_n((const char *)s, n));
    return 1;
}

static const yajl_callbacks parse_cbs = {
    on_null, on_bool, NULL, NULL, on_number, on_string, on_start_map, on_key, on_end, on_start_array, on_end,
};

int gw_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Code unit of a \uXXXX escape at p (p[0] == '\\'), or -1. */
static long escape_at(const char *p, const char *end)
{
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = gw_hex_digit(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* yajl turns a high surrogate escape that no low surrogate follows into '?', losing a character
 * an upstream split across two deltas (PROTOCOL.md §8). Rewrite such escapes as the raw CESU-8
 * bytes of the surrogate, which yajl passes through; gw_stream joins them with the low half of
 * the next delta, and the generator turns any leftover into U+FFFD. Returns s, or a copy. */
static bool lone_high_at(const char *p, const char *end)
{
    long u = escape_at(p, end);
    long next = escape_at(p + 6, end);
    return u >= 0xD800 && u <= 0xDBFF && !(next >= 0xDC00 && next <= 0xDFFF);
}

static const char *keep_lone_surrogates(gw_arena_t *a, const char *s, size_t *n)
{
    const char *end = s + *n;
    const char *p = s;
    /* Find the first lone high surrogate; most events have none and are left alone. */
    for (; p < end; p++) {
        if (*p != '\\')
            continue;
        if (lone_high_at(p, end))
            break;
        p++; /* skip the escaped character */
    }
    if (p >= end)
        return s;
    char *out = gw_arena_alloc(a, *n); /* 6-byte escapes become 3 bytes: never longer */
    size_t o = (size_t)(p - s);
    memcpy(out, s, o);
    while (p < end) {
        if (*p != '\\') {
            out[o++] = *p++;
            continue;
        }
        if (lone_high_at(p, end)) {
            long u = escape_at(p, end);
            out[o++] = (char)0xED;
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
            p += 6;
            continue;
        }
        out[o++] = *p++;
        if (p < end)
            out[o++] = *p++;
    }
    *n = o;
    return out;
}

/* Any "\\u" in the text? memchr for the backslash is much cheaper than memmem per event. */
static bool has_u_escape(const char *s, size_t n)
{
    const char *end = s + n;
    for (const char *p = s; p < end && (p = memchr(p, '\\', (size_t)(end - p))); p += 2)
        if (p + 1 < end && p[1] == 'u')
            return true;
    return false;
}

int gw_json_parse(gw_arena_t *a, const char *s, size_t n, gw_json_t **out, const char **err)
{
    struct pctx c = {.a = a};
    if (has_u_escape(s, n))
        s = keep_lone_surrogates(a, s, &n);
    yajl_alloc_funcs af = {ar_malloc, ar_realloc, ar_free, a};
    yajl_handle h = yajl_alloc(&parse_cbs, &af, &c);
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)s, n);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok || !c.root) {
        if (!c.err) {
            unsigned char *m = yajl_get_error(h, 0, (const unsigned char *)s, n);
            c.err = m ? gw_arena_strndup(a, (const char *)m, strlen((const char *)m)) : "invalid JSON";
            /* Trim yajl's trailing newline for one-line messages. */
            size_t ml = strlen(c.err);
            if (ml && c.err[ml - 1] == '\n')
                ((char *)c.err)[ml - 1] = '\0';
            if (m)
                yajl_free_error(h, m);
        }
        yajl_free(h);
        if (err)
            *err = c.err;
        return -1;
    }
    yajl_free(h);
    *out = c.root;
    return 0;
}

const gw_json_t *gw_json_get(const gw_json_t *obj, const char *key)
{
    if (!obj || obj->type != GW_JSON_OBJECT)
        return NULL;
    /* Last duplicate wins, like most JSON readers. */
    const gw_json_t *found = NULL;
    for (const gw_json_t *v = obj->child; v; v = v->next)
        if (gw_str_eq(v->key, key))
            found = v;
    return found;
}

const gw_json_t *gw_json_at(const gw_json_t *arr, size_t i)
{
    if (!arr || arr->type != GW_JSON_ARRAY)
        return NULL;
    const gw_json_t *v = arr->child;
    while (v && i--)
        v = v->next;
    return v;
}

gw_str_t gw_json_get_str(const gw_json_t *obj, const char *key)
{
    const gw_json_t *v = gw_json_get(obj, key);
    return gw_json_is(v, GW_JSON_STRING) ? v->str : GW_STR_NULL;
}

int gw_json_double(const gw_json_t *v, double *out)
{
    if (!gw_json_is(v, GW_JSON_NUMBER))
        return -1;
    char tmp[64];
    if (v->str.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v->str.base, v->str.len);
    tmp[v->str.len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(tmp, &end);
    if (*end || errno || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

int gw_json_int64(const gw_json_t *v, int64_t *out)
{
    double d;
    if (gw_json_double(v, &d) < 0 || d != floor(d) || d > 9.0e18 || d < -9.0e18)
        return -1;
    *out = (int64_t)d;
    return 0;
}

size_t gw_utf8_valid_prefix(gw_str_t s)
{
    const unsigned char *p = (const unsigned char *)s.base;
    size_t i = 0, n = s.len;
    while (i < n) {
        /* ASCII runs eight bytes at a time: most of what we validate is ASCII. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i <= need)
            return i;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        /* Reject overlongs, surrogates (CESU-8) and values past U+10FFFF. */
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += need + 1;
    }
    return i;
}

/* Copy s into tmp replacing each invalid byte sequence by U+FFFD (EF BF BD). */
gw_str_t gw__utf8_repair(gw_str_t s, gw_buf_t *tmp)
{
    gw_buf_reset(tmp);
    while (s.len) {
        size_t ok = gw_utf8_valid_prefix(s);
        gw_buf_append(tmp, s.base, ok);
        if (ok == s.len)
            break;
        gw_buf_append(tmp, "\xEF\xBF\xBD", 3);
        s.base += ok + 1;
        s.len -= ok + 1;
        /* Skip the continuation bytes of the broken sequence too. */
        while (s.len && ((unsigned char)s.base[0] & 0xC0) == 0x80) {
            s.base++;
            s.len--;
        }
    }
    return gw_buf_str(tmp);
}

/* The escape of each byte: 0 plain, 'u' for \u00xx, else the letter after the backslash. */
static const char escape_of[128] = {
    ['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['\b'] = 'b', ['\f'] = 'f',
    [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u', [0x06] = 'u',
    [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u',
    [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u', [0x19] = 'u',
    [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
};

/* One block: room for every byte escaped in two is made first; a \u00xx (control bytes, rare)
 * makes more. Rows quote whole JSON bodies, where every '"' is an escape: no call per escape. */
static void escape_block(gw_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    gw_buf_reserve(b, 2 * n + 8);
    char *o = b->base + b->len;
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* plain text eight bytes at a time, up to the first special one */
            uint64_t w;
            memcpy(&w, s + i, 8);
            memcpy(o, &w, 8); /* room: 2n + 8 was reserved and o - start <= 2i */
            uint64_t m = gw_json_special_mask(w);
            if (m) {
                unsigned k = gw_json_first_special(m);
                o += k;
                i += k;
                break;
            }
            o += 8;
            i += 8;
        }
        for (; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            char e = c < 0x80 ? escape_of[c] : 0;
            if (!e) {
                *o++ = (char)c;
                continue;
            }
            if (e == 'u') {
                b->len = (size_t)(o - b->base);
                gw_buf_reserve(b, 2 * (n - i) + 8);
                o = b->base + b->len;
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 15];
                o += 6;
            } else {
                o[0] = '\\';
                o[1] = e;
                o += 2;
            }
            i++;
            break; /* back to the word loop */
        }
    }
    b->len = (size_t)(o - b->base);
}

void gw_json_escape(gw_buf_t *b, const char *s, size_t n)
{
    /* In blocks, so a large body never reserves twice its size at once (issue 15's memory bound). */
    enum { BLOCK = 16384 };
    for (size_t off = 0; off < n; off += BLOCK)
        escape_block(b, s + off, n - off < BLOCK ? n - off : BLOCK);
}

void gw_json_quote(gw_buf_t *b, gw_str_t s)
{
    gw_buf_t tmp;
    gw_buf_init(&tmp);
    if (gw_utf8_valid_prefix(s) != s.len)
        s = gw__utf8_repair(s, &tmp);
    gw_buf_append(b, "\"", 1);
    gw_json_escape(b, s.base ? s.base : "", s.len);
    gw_buf_append(b, "\"", 1);
    gw_buf_dispose(&tmp);
}
