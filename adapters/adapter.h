/* ad_: the interface every upstream protocol implements.
 *
 * An adapter never does I/O and never knows the client's route. It turns the client's parsed
 * Responses request into an upstream request body, then turns upstream response bytes into
 * protocol-neutral events through ad_emit_t, which gateway/stream renders for the client.
 *
 * Event grammar an adapter must follow (gateway/stream asserts it):
 *   begin                      once, at the first valid upstream event (commits the response)
 *   item_add → (part_add → delta*)* → item_done     message / reasoning items
 *   item_add → delta* → item_done                    function_call items (delta = arguments)
 *   usage, custom_outputs, trace: any time
 *   finish or fail             exactly once, last
 * Function-call items may be open concurrently; message/reasoning items are closed before any
 * later item is added. Any emit call may return < 0: the consumer is gone, stop feeding.
 *
 * A passthrough adapter (ad_chat_passthrough: the client speaks the upstream's protocol) emits no
 * items: begin, then raw* (client bytes as they go out), usage/upstream_model any time, aggregate
 * (the final object for the table) once, then finish or fail. */
#ifndef AD_ADAPTER_H
#define AD_ADAPTER_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/json.h"
#include "gateway/request.h"
#include "gateway/sse.h"

typedef enum { AD_ITEM_MESSAGE = 0, AD_ITEM_FUNCTION_CALL, AD_ITEM_REASONING } ad_item_kind_t;
typedef enum { AD_PART_OUTPUT_TEXT = 0, AD_PART_REFUSAL, AD_PART_SUMMARY_TEXT } ad_part_kind_t;
typedef enum { AD_STATUS_COMPLETED = 0, AD_STATUS_INCOMPLETE } ad_item_status_t;
typedef enum { AD_FINISH_COMPLETED = 0, AD_FINISH_INCOMPLETE } ad_finish_t;

typedef struct {
    bool present;
    int64_t input, output, total, cached, reasoning;
} ad_usage_t;

typedef struct {
    ad_item_kind_t kind;
    gw_str_t id;      /** empty: the renderer mints msg_/fc_/rs_ + 32 hex */
    gw_str_t call_id; /** function_call: empty = mint call_ + 24 hex */
    gw_str_t name;    /** function_call */
    /** function_call named by a ChatCompletions upstream: the renderer maps the name back through
     * the request's tool table (custom_tool_call, local_shell_call, namespaced calls; §2.2). */
    bool upstream_tool;
} ad_item_t;

/** What a passthrough chunk is (ad_emit_t.raw). */
typedef enum {
    AD_RAW_SSE = 0,    /** one SSE event's data (the renderer frames it) */
    AD_RAW_SSE_USAGE,  /** an event carrying only usage: sent only if the client asked for usage */
    AD_RAW_SSE_ERROR,  /** the upstream's own error event: the renderer adds no error of its own */
    AD_RAW_JSON,       /** the whole JSON body of a non-streaming answer */
} ad_raw_kind_t;

typedef struct ad_emit {
    void *ctx;
    int (*begin)(void *ctx);
    /** Returns the new item's output_index (>= 0), or < 0 when the consumer is gone. */
    int (*item_add)(void *ctx, const ad_item_t *item);
    int (*part_add)(void *ctx, int output_index, ad_part_kind_t kind);
    /** Text for the item's open part, or arguments for a function call. */
    int (*delta)(void *ctx, int output_index, gw_str_t text);
    int (*item_done)(void *ctx, int output_index, ad_item_status_t status);
    void (*usage)(void *ctx, const ad_usage_t *u);
    /** Upstream-reported model name (for the table's upstream_model). */
    void (*upstream_model)(void *ctx, gw_str_t model);
    /** Raw JSON values passed through (Responses/MLflow upstreams). */
    void (*custom_outputs)(void *ctx, const gw_json_t *v);
    void (*trace)(void *ctx, const gw_json_t *v);
    /** An upstream keepalive/comment: resets idle timers, forwarded as a client keepalive. */
    void (*heartbeat)(void *ctx);
    /** An upstream Responses event of a type the gateway does not know (PROTOCOL.md §7.7): passed
     * through on the Databricks route (ids and sequence number rewritten), dropped elsewhere. */
    int (*passthrough)(void *ctx, const gw_json_t *ev);
    /** Normal end; incomplete_reason is "max_output_tokens"/"content_filter" for AD_FINISH_INCOMPLETE. */
    int (*finish)(void *ctx, ad_finish_t how, const char *incomplete_reason);
    /** Failure reported by the upstream inside a 2xx response. */
    int (*fail)(void *ctx, const gw_error_t *err);
    /** Passthrough: bytes for the client as they came (one SSE event's data, or the whole JSON
     * body). `tokens`: chars of generated text or arguments they carry (first-token time). */
    int (*raw)(void *ctx, gw_str_t bytes, ad_raw_kind_t kind, size_t tokens);
    /** Passthrough: the aggregated final object for the inference table (copied). */
    void (*aggregate)(void *ctx, gw_str_t json);
} ad_emit_t;

typedef struct ad_state ad_state_t; /* per-adapter opaque state, in the request arena */

typedef struct ad_vtable {
    const char *name; /** "chat_completions" / "responses" (table column `adapter`) */
    /** Path appended to the upstream base URL, e.g. "/chat/completions". */
    const char *(*path)(const gw_endpoint_cfg_t *ep);
    /** Build the upstream request body into out. May reject the request (returns -1 + err). */
    int (*encode_request)(const gw_request_t *req, const gw_endpoint_cfg_t *ep, bool databricks_route,
                          gw_buf_t *out, gw_error_t *err);
    /** New response state. Lives in arena a; events go to emit. scratch is shared by every
     * transfer of the loop: the adapter resets it at each upstream event and keeps nothing in it
     * across events (one event is handled to the end before the next one is read). */
    ad_state_t *(*start)(gw_arena_t *a, gw_arena_t *scratch, const gw_endpoint_cfg_t *ep,
                         const gw_limits_cfg_t *lim, const ad_emit_t *emit, gw_str_t content_type);
    /** Upstream 2xx body bytes. Returns 0, or < 0 to stop (the adapter has emitted fail, or the
     * consumer is gone). */
    int (*feed)(ad_state_t *st, const char *data, size_t len);
    /** Upstream body ended cleanly (EOF). Emits finish or fail. */
    int (*finish)(ad_state_t *st);
    /** Release non-arena resources. */
    void (*dispose)(ad_state_t *st);
} ad_vtable_t;

extern const ad_vtable_t ad_chat_completions;
extern const ad_vtable_t ad_responses;
/** ChatCompletions client → ChatCompletions upstream, bytes passed through (front route
 * /v1/chat/completions); encode_request reads the chat body from req->root. */
extern const ad_vtable_t ad_chat_passthrough;

/** The adapter for a configured kind. */
const ad_vtable_t *ad_for(gw_adapter_kind_t kind);

/* ---- upstream body framing, shared by the adapters ----
 * A 2xx answer is either an SSE stream, fed event by event, or one JSON document (the upstream
 * ignored stream:true, or the client asked for none), buffered up to max bytes. */
#define AD_BODY_TOO_LARGE (-2001)

typedef struct {
    bool json;            /** application/json (case-insensitive, RFC 9110 §8.3.1) */
    size_t max;           /** bytes of one SSE event, or of the whole JSON document */
    gw_buf_t doc;         /** JSON mode: the document so far */
    gw_sse_parser_t *sse; /** SSE mode */
} ad_body_t;

void ad_body_init(ad_body_t *b, gw_str_t content_type, size_t max, gw_sse_event_cb on_event,
                  gw_sse_comment_cb on_comment, void *ud);
/** 0, AD_BODY_TOO_LARGE, or a non-zero value returned by on_event. */
int ad_body_feed(ad_body_t *b, const char *data, size_t len);
/** JSON mode, at the end: parse the document into a (returns -1 if it is not JSON). */
int ad_body_parse(ad_body_t *b, gw_arena_t *a, gw_json_t **out);
void ad_body_dispose(ad_body_t *b);

/** Map a non-2xx upstream answer to a client error (PROTOCOL.md §6.3, §7.6): the message from
 * error.message, message, detail, a string error, or the first 512 bytes of text. */
void ad_error_from_http(gw_arena_t *a, long status, gw_str_t body, int retry_after, gw_error_t *err);
/** Error message carried by an upstream JSON event, or NULL if the event is not an error. */
const char *ad_error_message(gw_arena_t *a, const gw_json_t *ev, long *code_out);

#endif
