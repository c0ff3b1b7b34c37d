#include "gateway/arena.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE 8192

struct block {
    struct block *next;
    size_t cap, used;
    _Alignas(16) char data[];
};

struct gw_arena {
    struct block *head;  /** newest block first */
    struct block *first; /** the block made with the arena, kept by gw_arena_reset */
    size_t total;
};

static struct block *block_new(size_t min)
{
    size_t cap = min;
    struct block *b = gw_xmalloc(sizeof(*b) + cap);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

gw_arena_t *gw_arena_new_sized(size_t first)
{
    gw_arena_t *a = gw_xmalloc(sizeof(*a));
    a->head = a->first = block_new(first);
    a->total = 0;
    return a;
}

gw_arena_t *gw_arena_new(void)
{
    return gw_arena_new_sized(BLOCK_SIZE);
}

void gw_arena_free(gw_arena_t *a)
{
    if (!a)
        return;
    for (struct block *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a);
}

void gw_arena_reset(gw_arena_t *a)
{
    for (struct block *b = a->head, *n; b; b = n) {
        n = b->next;
        if (b != a->first)
            free(b);
    }
    a->head = a->first;
    a->first->next = NULL;
    a->first->used = 0;
    a->total = 0;
}

void *gw_arena_alloc(gw_arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct block *b = a->head;
    if (b->cap - b->used < n) {
        /* Large objects get their own block behind the head so the head keeps its free space. */
        struct block *nb = block_new(n > BLOCK_SIZE ? n : BLOCK_SIZE);
        if (n > BLOCK_SIZE / 2 && b->cap - b->used > 0) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

void *gw_arena_calloc(gw_arena_t *a, size_t n)
{
    void *p = gw_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *gw_arena_strndup(gw_arena_t *a, const char *s, size_t n)
{
    char *p = gw_arena_alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

gw_str_t gw_arena_str(gw_arena_t *a, gw_str_t s)
{
    return (gw_str_t){gw_arena_strndup(a, s.base, s.len), s.len};
}

size_t gw_arena_used(const gw_arena_t *a)
{
    return a->total;
}
