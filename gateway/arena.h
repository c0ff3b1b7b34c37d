/* gw_arena: per-request bump allocator. Objects are never freed one by one; the whole arena
 * dies with its owner (gw_arena_free) or is emptied for reuse (gw_arena_reset). */
#ifndef GW_ARENA_H
#define GW_ARENA_H

#include <stddef.h>

#include "gateway/buf.h"

typedef struct gw_arena gw_arena_t;

gw_arena_t *gw_arena_new(void);
/** First block of `first` bytes (later blocks are the default size): for arenas that usually
 * stay small, like one upstream event's JSON tree. */
gw_arena_t *gw_arena_new_sized(size_t first);
void gw_arena_free(gw_arena_t *a);
/** Keep the first block, drop the rest: reuse for the next event without malloc. */
void gw_arena_reset(gw_arena_t *a);
/** 16-byte aligned, never NULL (aborts on OOM). */
void *gw_arena_alloc(gw_arena_t *a, size_t n);
void *gw_arena_calloc(gw_arena_t *a, size_t n);
/** NUL-terminated copy. */
char *gw_arena_strndup(gw_arena_t *a, const char *s, size_t n);
gw_str_t gw_arena_str(gw_arena_t *a, gw_str_t s);
/** Bytes handed out so far (for limits and tests). */
size_t gw_arena_used(const gw_arena_t *a);

#endif
