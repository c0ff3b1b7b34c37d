/* gw_buf: growable owned byte buffer; gw_str: borrowed view. The only byte-buffer helpers. */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/** Borrowed view: never NUL-terminated, never freed by the holder. */
typedef struct {
    const char *base;
    size_t len;
} gw_str_t;

/** Owned growable buffer. base may be NULL while cap == 0. */
typedef struct {
    char *base;
    size_t len, cap;
} gw_buf_t;

#define GW_STR_LIT(s) ((gw_str_t){(s), sizeof(s) - 1})
#define GW_STR_NULL   ((gw_str_t){NULL, 0})

static inline gw_str_t gw_str(const char *s)
{
    return (gw_str_t){s, s ? strlen(s) : 0};
}
static inline gw_str_t gw_str_n(const char *s, size_t n)
{
    return (gw_str_t){s, n};
}
static inline bool gw_str_eq(gw_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && (n == 0 || memcmp(a.base, lit, n) == 0);
}
bool gw_str_ieq(gw_str_t a, const char *lit);
bool gw_str_has_prefix(gw_str_t a, const char *lit);

/** Decimal text of v, written at the end of tmp; the view points into tmp. */
gw_str_t gw_int_str(char tmp[24], int64_t v);

/* Allocation helpers: abort on out-of-memory (redis-style), so callers never unwind OOM. */
void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t n, size_t size);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrndup(const char *s, size_t n);

void gw_buf_init(gw_buf_t *b);
void gw_buf_dispose(gw_buf_t *b);
/** Make room for extra more bytes; returns the write position. */
char *gw_buf_reserve(gw_buf_t *b, size_t extra);
void gw_buf_append(gw_buf_t *b, const void *p, size_t n);
void gw_buf_append_str(gw_buf_t *b, gw_str_t s);
void gw_buf_append_cstr(gw_buf_t *b, const char *s);
void gw_buf_appendf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Drop the first n bytes (memmove of the rest). */
void gw_buf_consume(gw_buf_t *b, size_t n);
static inline void gw_buf_reset(gw_buf_t *b)
{
    b->len = 0;
}
static inline gw_str_t gw_buf_str(const gw_buf_t *b)
{
    return (gw_str_t){b->base, b->len};
}
/** Take ownership of the bytes out of b (b becomes empty). */
char *gw_buf_steal(gw_buf_t *b, size_t *len);
/** Append a whole local file (plain stdio: start-up and reloads only, never a request's path).
 * 0, or -1 cannot open / -2 read error / -3 larger than max bytes (0 = no cap). */
int gw_buf_read_file(gw_buf_t *b, const char *path, size_t max);

#endif
