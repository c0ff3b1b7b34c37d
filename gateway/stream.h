/* gw_stream: renders an adapter's neutral events for the client's route and keeps the aggregate.
 *
 * Stream mode writes Responses SSE events (PROTOCOL.md §4, §5): `event:` + `data:` lines on the
 * OpenAI route, data-only plus a final `data: [DONE]` on the Databricks route, gap-free sequence
 * numbers, and on failure after commit the §5.3 sequence (response.failed, then error with
 * databricks_output.error). Non-stream mode writes one Responses object when the response ends.
 * Bytes for the client accumulate in gw_stream_out(); the owner drains them after every call.
 * A failure before commit writes nothing: the owner answers with gw_stream_error() as HTTP. */
#ifndef GW_STREAM_H
#define GW_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "gateway/request.h"

/** GW_FRONT_CHAT: /v1/chat/completions; a passthrough adapter's raw bytes go out framed as
 * data-only SSE (or as the JSON body), the aggregate is the adapter's, and a gateway-side failure
 * after commit is one `data: {"error":{...}}` event (what OpenAI's chat streams send). */
typedef enum { GW_FRONT_OPENAI = 0, GW_FRONT_DATABRICKS, GW_FRONT_CHAT } gw_front_t;

typedef enum {
    GW_FINISH_NONE = 0, /* still running */
    GW_FINISH_COMPLETED,
    GW_FINISH_INCOMPLETE,
    GW_FINISH_FAILED,
    GW_FINISH_CANCELLED,
} gw_finish_status_t;

typedef struct {
    gw_front_t front;
    bool stream;             /** client asked for SSE */
    const gw_request_t *req; /** echoed fields; must outlive the stream */
    const char *response_id; /** resp_... */
    const char *request_id;  /** databricks_request_id (UUID) */
    gw_str_t model;          /** echoed model */
    int64_t created_at;      /** unix seconds */
    size_t max_output_bytes; /** generated text + arguments past this fail the stream; 0 = no cap */
} gw_stream_opts_t;

typedef struct gw_stream gw_stream_t;

gw_stream_t *gw_stream_new(const gw_stream_opts_t *o);
void gw_stream_free(gw_stream_t *s);
const ad_emit_t *gw_stream_emitter(gw_stream_t *s);

/** Pending client bytes (body only; the owner frames HTTP). */
gw_buf_t *gw_stream_out(gw_stream_t *s);
/** The adapter reported the upstream's first event: from now on no retry or fallback. */
bool gw_stream_begun(const gw_stream_t *s);
/** Stream mode: the first event went out, so the HTTP status is 200 for good. */
bool gw_stream_committed(const gw_stream_t *s);
/** Terminal state reached (finished, failed or cancelled). */
bool gw_stream_ended(const gw_stream_t *s);
gw_finish_status_t gw_stream_status(const gw_stream_t *s);
const char *gw_finish_status_name(gw_finish_status_t st);
/** Set once failed (before or after commit); NULL otherwise. Message lives in the stream. */
const gw_error_t *gw_stream_error(const gw_stream_t *s);

/** Gateway-side failures (timeouts, resets, protocol errors): same as the adapter's fail. */
void gw_stream_fail(gw_stream_t *s, const gw_error_t *e);
/** Client went away: close open items, aggregate with status "cancelled", write nothing. */
void gw_stream_cancel(gw_stream_t *s);
/** Idle keepalive comment (stream mode, after commit only). */
void gw_stream_keepalive(gw_stream_t *s);

/** The aggregated final Responses object (for the inference table); empty until ended and when
 * the upstream never produced a first event. */
gw_str_t gw_stream_aggregate(const gw_stream_t *s);
const ad_usage_t *gw_stream_usage(const gw_stream_t *s);
gw_str_t gw_stream_upstream_model(const gw_stream_t *s);
/** uv_hrtime() of the first text/argument delta rendered, 0 if none. */
uint64_t gw_stream_first_token_ns(const gw_stream_t *s);
/** Number of characters of generated text (for token estimates). */
size_t gw_stream_output_chars(const gw_stream_t *s);
/** The output holds a function (or custom tool) call item (not on the ChatCompletions front). */
bool gw_stream_output_has_calls(const gw_stream_t *s);
/** Why the response ended incomplete (max_output_tokens, content_filter, ...); NULL otherwise. */
const char *gw_stream_incomplete_reason(const gw_stream_t *s);

#endif
