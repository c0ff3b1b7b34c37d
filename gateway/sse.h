/* gw_sse: incremental Server-Sent Events parser (upstream side) and writer (client side).
 *
 * Parser (WHATWG HTML "server-sent events" interpretation, as upstreams use it):
 * - lines end with LF, CRLF or a lone CR; a CR at the end of one feed may pair with an LF at the
 *   start of the next;
 * - "field: value" or "field:value" (one optional space after the colon is stripped); a line
 *   without a colon is a field with an empty value; lines starting with ':' are comments;
 * - "data" lines accumulate, joined with "\n"; "event" sets the event type; a blank line
 *   dispatches the event if any data line (or an error field) was seen; "id"/"retry" ignored;
 * - the non-standard field "error" (llama.cpp before Sept 2025 sends `error: {...}`) is reported
 *   as an event of type "error" carrying that value as data;
 * - an event whose accumulated size (or a single line) exceeds max_event bytes fails the feed with
 *   GW_SSE_E_TOO_LARGE; memory never grows past about max_event.
 * Event and data views passed to the callback are valid only during the callback.
 */
#ifndef GW_SSE_H
#define GW_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/buf.h"

#define GW_SSE_E_TOO_LARGE (-1001)

typedef struct gw_sse_parser gw_sse_parser_t;

/** Called per dispatched event. event is empty when no "event:" field was given.
 * Return 0 to continue; any other value stops the feed and is returned by gw_sse_parser_feed. */
typedef int (*gw_sse_event_cb)(void *ud, gw_str_t event, gw_str_t data);
/** Called for each comment line (without the leading ':'); may be NULL. Used to reset idle timers. */
typedef void (*gw_sse_comment_cb)(void *ud, gw_str_t text);

gw_sse_parser_t *gw_sse_parser_new(size_t max_event, gw_sse_event_cb on_event, gw_sse_comment_cb on_comment,
                                   void *ud);
void gw_sse_parser_free(gw_sse_parser_t *p);
/** Feed bytes; returns 0, GW_SSE_E_TOO_LARGE, or the callback's non-zero return value. */
int gw_sse_parser_feed(gw_sse_parser_t *p, const char *data, size_t len);
/** End of input: dispatches a pending event only if it was terminated by a blank line (never
 * dispatches a half-received event). Returns true if unterminated bytes were left over. */
bool gw_sse_parser_has_partial(const gw_sse_parser_t *p);

/* ---- writer: frame one event into out ----
 * with_event_line: OpenAI route (`event: <type>\n` before `data:`); otherwise data-only
 * (Databricks/MLflow route). The JSON payload is appended by the caller between begin and end, so
 * it is generated straight into the output buffer without a copy. The payload must be one line
 * (compact JSON never contains a raw newline). */
void gw_sse_begin(gw_buf_t *out, bool with_event_line, gw_str_t type);
void gw_sse_end(gw_buf_t *out);
/** `data: [DONE]\n\n` */
void gw_sse_done(gw_buf_t *out);
/** `: keepalive\n\n` */
void gw_sse_keepalive(gw_buf_t *out);

#endif
