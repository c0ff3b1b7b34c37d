/* gw_json: small read-only JSON tree built in an arena with yajl's streaming parser (json.c), plus
 * the generator that writes JSON straight into a gw_buf_t (jgen.c). The tree is meant for one
 * request body or one upstream event: build it in a scratch arena, read it, reset the arena. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/arena.h"
#include "gateway/buf.h"

#define GW_JSON_MAX_DEPTH 64

typedef enum {
    GW_JSON_NULL = 0,
    GW_JSON_BOOL,
    GW_JSON_NUMBER,
    GW_JSON_STRING,
    GW_JSON_ARRAY,
    GW_JSON_OBJECT,
} gw_json_type_t;

typedef struct gw_json gw_json_t;
struct gw_json {
    gw_json_type_t type;
    bool boolean;
    gw_str_t key;  /** member name when the parent is an object (arena) */
    gw_str_t str;  /** decoded string, or the number exactly as written (arena) */
    size_t len;    /** number of children */
    gw_json_t *child, *last, *next, *parent;
};

/** Parse n bytes; on failure returns -1 and sets *err to a short arena-owned message.
 * Strings are not validated for UTF-8 here: the generator repairs bad sequences to U+FFFD. */
int gw_json_parse(gw_arena_t *a, const char *s, size_t n, gw_json_t **out, const char **err);

const gw_json_t *gw_json_get(const gw_json_t *obj, const char *key);
const gw_json_t *gw_json_at(const gw_json_t *arr, size_t i);
static inline bool gw_json_is(const gw_json_t *v, gw_json_type_t t)
{
    return v && v->type == t;
}
/** The value if it is a string, else GW_STR_NULL (base == NULL). */
gw_str_t gw_json_get_str(const gw_json_t *obj, const char *key);
/** Number to double / int64; -1 if not a number (or not integral for the int variant). */
int gw_json_double(const gw_json_t *v, double *out);
int gw_json_int64(const gw_json_t *v, int64_t *out);
/** True for a JSON null or absent value. */
static inline bool gw_json_is_nullish(const gw_json_t *v)
{
    return !v || v->type == GW_JSON_NULL;
}

/* ---- generation ---- */

/** Generator bound to a retargetable output buffer: compact output, byte for byte what yajl_gen
 * writes (its string escapes: \b \f \n \r \t \" \\, other controls as \u00XX), strings UTF-8
 * repaired. Our own rather than yajl_gen: that one validated state and copied token by token
 * through a callback, a third of the instructions a streamed request cost (issue 11). */
typedef struct gw_jgen gw_jgen_t;

gw_jgen_t *gw_jgen_new(gw_buf_t *out);
void gw_jgen_free(gw_jgen_t *j);
/** Write from now on into out. */
void gw_jgen_target(gw_jgen_t *j, gw_buf_t *out);
/** Close a finished top-level value so the next one can start. */
void gw_jgen_done(gw_jgen_t *j);

void gw_jgen_cstr(gw_jgen_t *j, const char *s);
/** A string literal of this program (plain printable ASCII, no '"' or '\\': asserted), key or
 * value, copied as it is: no UTF-8 check, no escaping. */
void gw_jgen_lit(gw_jgen_t *j, const char *lit);
/** String with invalid UTF-8 (and CESU surrogates) replaced by U+FFFD. */
void gw_jgen_str(gw_jgen_t *j, gw_str_t s);
void gw_jgen_null(gw_jgen_t *j);
void gw_jgen_bool(gw_jgen_t *j, bool b);
void gw_jgen_int(gw_jgen_t *j, int64_t v);
void gw_jgen_double(gw_jgen_t *j, double v);
/** Number text as written by the source (byte-exact passthrough). */
void gw_jgen_number_raw(gw_jgen_t *j, gw_str_t text);
void gw_jgen_map_open(gw_jgen_t *j);
void gw_jgen_map_close(gw_jgen_t *j);
void gw_jgen_array_open(gw_jgen_t *j);
void gw_jgen_array_close(gw_jgen_t *j);
/** A parsed value, re-emitted (numbers byte-exact, key order kept). NULL emits null. */
void gw_jgen_value(gw_jgen_t *j, const gw_json_t *v);
/** A value already serialised by gw_jgen (trusted JSON text), inserted as is. */
void gw_jgen_raw(gw_jgen_t *j, gw_str_t json);
/** Key + value conveniences. */
void gw_jgen_kv_cstr(gw_jgen_t *j, const char *k, const char *v);
/** Key and a literal value (see gw_jgen_lit). */
void gw_jgen_kv_lit(gw_jgen_t *j, const char *k, const char *lit);
void gw_jgen_kv_str(gw_jgen_t *j, const char *k, gw_str_t v);
void gw_jgen_kv_int(gw_jgen_t *j, const char *k, int64_t v);
/** Emit a value or null when absent. */
void gw_jgen_kv_value(gw_jgen_t *j, const char *k, const gw_json_t *v);

/** Non-zero when one of the 8 bytes of w (little-endian load) is special inside a JSON string: a
 * control byte (< 0x20), '"' or '\\'; its lowest set bit is then in the first such byte, so
 * gw_json_first_special gives its offset. Lets scanners and the escaper pass plain text eight
 * bytes at a time. SWAR: v has a zero byte iff (v - 0x01..) & ~v & 0x80.. is non-zero (borrows
 * only mark bytes above a real match); ~w keeps bytes >= 0x80 out of the control test. */
static inline uint64_t gw_json_special_mask(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t ctl = (w - ones * 0x20) & ~w;
    uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
    return (ctl | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash)) & high;
}

/** Offset (0..7) of the first special byte, given gw_json_special_mask(w) != 0. */
static inline unsigned gw_json_first_special(uint64_t mask)
{
    return (unsigned)__builtin_ctzll(mask) >> 3;
}

/** Append s as a JSON string literal (with quotes) to b, repairing bad UTF-8. */
void gw_json_quote(gw_buf_t *b, gw_str_t s);
/** The JSON string escape of n bytes of valid UTF-8, without the quotes (the one escaper). */
void gw_json_escape(gw_buf_t *b, const char *s, size_t n);
/** Value of one hex digit (either case), -1 if ch is not one. */
int gw_hex_digit(char ch);
/** Length of the longest valid-UTF-8 prefix of s; s is valid iff the result equals s.len. */
size_t gw_utf8_valid_prefix(gw_str_t s);
/** Internal (json.c, jgen.c): s copied into tmp with each invalid sequence replaced by U+FFFD. */
gw_str_t gw__utf8_repair(gw_str_t s, gw_buf_t *tmp);

#endif
