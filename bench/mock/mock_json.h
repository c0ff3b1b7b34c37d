/* mock_json: the append helpers every mock serialiser shares. */
#ifndef MOCK_JSON_H
#define MOCK_JSON_H

#include "gateway/buf.h"

/* gw_buf_appendf() computes the room left (cap - len) and calls gw_buf_reserve() as arguments of
 * one call; gcc evaluates the size first, so output past the old room is silently lost. Reserving
 * beforehand makes the evaluation order irrelevant. */
#define MOCK_APPENDF(b, ...) (gw_buf_reserve((b), 64), gw_buf_appendf((b), __VA_ARGS__))

/* Append s as a quoted JSON string; the common case (nothing to escape) is one append. */
void mock_json_str(gw_buf_t *b, gw_str_t s);
void mock_json_cstr(gw_buf_t *b, const char *s);

#endif
