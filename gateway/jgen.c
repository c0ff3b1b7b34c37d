/* gw_jgen: the JSON generator (gateway/json.h). A state per nesting level decides the separator
 * before each token, as yajl_gen's does; tokens go straight into the target buffer. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"

#define JGEN_MAX_DEPTH 128 /* yajl_gen's limit */

/* Per level: what the next token is (the separator it needs). */
enum { J_START, J_DONE, J_MAP_FIRST, J_MAP_KEY, J_MAP_VAL, J_ARR_FIRST, J_ARR };

struct gw_jgen {
    gw_buf_t *out; /** borrowed: the current target */
    int depth;
    unsigned char st[JGEN_MAX_DEPTH + 1];
};

gw_jgen_t *gw_jgen_new(gw_buf_t *out)
{
    gw_jgen_t *j = gw_xcalloc(1, sizeof(*j));
    j->out = out;
    return j;
}

void gw_jgen_free(gw_jgen_t *j)
{
    free(j);
}

void gw_jgen_target(gw_jgen_t *j, gw_buf_t *out)
{
    j->out = out;
}

void gw_jgen_done(gw_jgen_t *j)
{
    j->depth = 0;
    j->st[0] = J_START;
}

static inline void put(gw_jgen_t *j, const char *p, size_t n)
{
    gw_buf_t *b = j->out;
    if (b->cap - b->len < n)
        gw_buf_reserve(b, n);
    memcpy(b->base + b->len, p, n);
    b->len += n;
}

static inline void put1(gw_jgen_t *j, char c)
{
    gw_buf_t *b = j->out;
    if (b->cap == b->len)
        gw_buf_reserve(b, 1);
    b->base[b->len++] = c;
}

/* Separator before a token, then the level's state after it. */
static inline void sep(gw_jgen_t *j)
{
    unsigned char *st = &j->st[j->depth];
    switch (*st) {
    case J_MAP_KEY:
    case J_ARR:
        put1(j, ',');
        break;
    case J_MAP_VAL:
        put1(j, ':');
        break;
    default:
        break;
    }
}

static inline void appended(gw_jgen_t *j)
{
    unsigned char *st = &j->st[j->depth];
    switch (*st) {
    case J_START:
        *st = J_DONE;
        break;
    case J_MAP_FIRST:
    case J_MAP_KEY:
        *st = J_MAP_VAL;
        break;
    case J_MAP_VAL:
        *st = J_MAP_KEY;
        break;
    case J_ARR_FIRST:
        *st = J_ARR;
        break;
    case J_ARR:
        break;
    default:
        assert(!"value after a complete top-level value (missing gw_jgen_done)");
        break;
    }
}

/* A token of raw bytes (number, literal, pre-serialised JSON). */
static void atom(gw_jgen_t *j, const char *p, size_t n)
{
    sep(j);
    put(j, p, n);
    appended(j);
}

/* yajl_string_encode's bytes (no solidus escaping) for valid UTF-8 s, quotes included. */
static void quote(gw_jgen_t *j, const char *s, size_t n)
{
    put1(j, '"');
    gw_json_escape(j->out, s, n);
    put1(j, '"');
}

void gw_jgen_str(gw_jgen_t *j, gw_str_t s)
{
    sep(j);
    if (gw_utf8_valid_prefix(s) == s.len) {
        quote(j, s.base ? s.base : "", s.len);
    } else {
        gw_buf_t tmp;
        gw_buf_init(&tmp);
        gw_str_t r = gw__utf8_repair(s, &tmp);
        quote(j, r.base, r.len);
        gw_buf_dispose(&tmp);
    }
    appended(j);
}

void gw_jgen_cstr(gw_jgen_t *j, const char *s)
{
    gw_jgen_str(j, gw_str(s));
}

void gw_jgen_null(gw_jgen_t *j)
{
    atom(j, "null", 4);
}

void gw_jgen_bool(gw_jgen_t *j, bool b)
{
    if (b)
        atom(j, "true", 4);
    else
        atom(j, "false", 5);
}

void gw_jgen_int(gw_jgen_t *j, int64_t v)
{
    char tmp[24];
    gw_str_t s = gw_int_str(tmp, v);
    atom(j, s.base, s.len);
}

void gw_jgen_double(gw_jgen_t *j, double v)
{
    /* %.17g round-trips; print integral values without a fraction like JavaScript does. */
    char tmp[32];
    int n;
    if (v == floor(v) && fabs(v) < 1e15)
        n = snprintf(tmp, sizeof(tmp), "%.0f", v);
    else
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    atom(j, tmp, (size_t)n);
}

void gw_jgen_number_raw(gw_jgen_t *j, gw_str_t text)
{
    atom(j, text.base, text.len);
}

void gw_jgen_raw(gw_jgen_t *j, gw_str_t json)
{
    atom(j, json.base, json.len);
}

static void open_level(gw_jgen_t *j, char c, unsigned char st)
{
    sep(j);
    assert(j->depth < JGEN_MAX_DEPTH);
    j->st[++j->depth] = st;
    put1(j, c);
}

static void close_level(gw_jgen_t *j, char c)
{
    assert(j->depth > 0);
    j->depth--;
    appended(j);
    put1(j, c);
}

void gw_jgen_map_open(gw_jgen_t *j)
{
    open_level(j, '{', J_MAP_FIRST);
}

void gw_jgen_map_close(gw_jgen_t *j)
{
    close_level(j, '}');
}

void gw_jgen_array_open(gw_jgen_t *j)
{
    open_level(j, '[', J_ARR_FIRST);
}

void gw_jgen_array_close(gw_jgen_t *j)
{
    close_level(j, ']');
}

void gw_jgen_value(gw_jgen_t *j, const gw_json_t *v)
{
    if (!v) {
        gw_jgen_null(j);
        return;
    }
    switch (v->type) {
    case GW_JSON_NULL:
        gw_jgen_null(j);
        break;
    case GW_JSON_BOOL:
        gw_jgen_bool(j, v->boolean);
        break;
    case GW_JSON_NUMBER:
        gw_jgen_number_raw(j, v->str);
        break;
    case GW_JSON_STRING:
        gw_jgen_str(j, v->str);
        break;
    case GW_JSON_ARRAY:
        gw_jgen_array_open(j);
        for (const gw_json_t *c = v->child; c; c = c->next)
            gw_jgen_value(j, c);
        gw_jgen_array_close(j);
        break;
    case GW_JSON_OBJECT:
        gw_jgen_map_open(j);
        for (const gw_json_t *c = v->child; c; c = c->next) {
            gw_jgen_str(j, c->key);
            gw_jgen_value(j, c);
        }
        gw_jgen_map_close(j);
        break;
    }
}

/* Object keys are string literals of this program (plain ASCII, nothing to escape): copied as
 * they are, with no UTF-8 check (checked in unoptimised builds: asserts stay on in release
 * builds, and this one would cost a scan of every key on the hot path). */
#ifndef __OPTIMIZE__
static bool plain_literal(const char *k)
{
    for (; *k; k++)
        if ((unsigned char)*k < 0x20 || (unsigned char)*k > 0x7e || *k == '"' || *k == '\\')
            return false;
    return true;
}
#endif

static void key(gw_jgen_t *j, const char *k)
{
#ifndef __OPTIMIZE__
    assert(plain_literal(k)); /* unoptimised (sanitizer) builds: the tests check every literal */
#endif
    size_t n = strlen(k);
    sep(j);
    gw_buf_t *b = j->out;
    char *w = gw_buf_reserve(b, n + 2);
    w[0] = '"';
    memcpy(w + 1, k, n);
    w[n + 1] = '"';
    b->len += n + 2;
    appended(j);
}

void gw_jgen_lit(gw_jgen_t *j, const char *lit)
{
    key(j, lit);
}

void gw_jgen_kv_lit(gw_jgen_t *j, const char *k, const char *lit)
{
    key(j, k);
    key(j, lit);
}

void gw_jgen_kv_cstr(gw_jgen_t *j, const char *k, const char *v)
{
    key(j, k);
    if (v)
        gw_jgen_cstr(j, v);
    else
        gw_jgen_null(j);
}

void gw_jgen_kv_str(gw_jgen_t *j, const char *k, gw_str_t v)
{
    key(j, k);
    if (v.base)
        gw_jgen_str(j, v);
    else
        gw_jgen_null(j);
}

void gw_jgen_kv_int(gw_jgen_t *j, const char *k, int64_t v)
{
    key(j, k);
    gw_jgen_int(j, v);
}

void gw_jgen_kv_value(gw_jgen_t *j, const char *k, const gw_json_t *v)
{
    key(j, k);
    gw_jgen_value(j, v);
}
