#include "gateway/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static void oom(size_t n)
{
    fprintf(stderr, "level=fatal event=out_of_memory bytes=%zu\n", n);
    abort();
}

void *gw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *gw_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *gw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *gw_xstrndup(const char *s, size_t n)
{
    char *p = gw_xmalloc(n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

gw_str_t gw_int_str(char tmp[24], int64_t v)
{
    /* Hand-rolled: sprintf is measurable on the per-event path (sequence numbers, indexes). */
    char *e = tmp + 24, *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return gw_str_n(p, (size_t)(e - p));
}

bool gw_str_ieq(gw_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && (n == 0 || strncasecmp(a.base, lit, n) == 0);
}

bool gw_str_has_prefix(gw_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len >= n && (n == 0 || memcmp(a.base, lit, n) == 0);
}

void gw_buf_init(gw_buf_t *b)
{
    b->base = NULL;
    b->len = b->cap = 0;
}

void gw_buf_dispose(gw_buf_t *b)
{
    free(b->base);
    gw_buf_init(b);
}

char *gw_buf_reserve(gw_buf_t *b, size_t extra)
{
    if (b->cap - b->len < extra) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < extra)
            cap *= 2;
        b->base = gw_xrealloc(b->base, cap);
        b->cap = cap;
    }
    return b->base + b->len;
}

void gw_buf_append(gw_buf_t *b, const void *p, size_t n)
{
    if (!n)
        return;
    memcpy(gw_buf_reserve(b, n), p, n);
    b->len += n;
}

void gw_buf_append_str(gw_buf_t *b, gw_str_t s)
{
    gw_buf_append(b, s.base, s.len);
}

void gw_buf_append_cstr(gw_buf_t *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

void gw_buf_appendf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char *at = gw_buf_reserve(b, 64); /* before reading cap: reserve may grow it */
    va_start(ap, fmt);
    int n = vsnprintf(at, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        gw_buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->base + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void gw_buf_consume(gw_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

char *gw_buf_steal(gw_buf_t *b, size_t *len)
{
    char *p = b->base;
    if (len)
        *len = b->len;
    gw_buf_init(b);
    return p;
}

int gw_buf_read_file(gw_buf_t *b, const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char tmp[8192];
    size_t n, start = b->len;
    int rc = 0;
    while (rc == 0 && (n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        gw_buf_append(b, tmp, n);
        if (max && b->len - start > max)
            rc = -3;
    }
    if (rc == 0 && ferror(f))
        rc = -2;
    fclose(f);
    return rc;
}
