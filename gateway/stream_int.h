/* Internals shared by gateway/stream.c (event model) and gateway/stream_render.c (objects).
 * Not a public surface: everything here is gw__-prefixed or file-private to those two files. */
#ifndef GW_STREAM_INT_H
#define GW_STREAM_INT_H

#include "adapters/tools.h"
#include "gateway/stream.h"

/** What a function-call item is for the client (PROTOCOL.md §2.2): the upstream only knows
 * functions; the request's tool table says which Responses item each call becomes. */
typedef enum { GW_CALL_FUNCTION = 0, GW_CALL_CUSTOM, GW_CALL_LOCAL_SHELL } gw_call_kind_t;

struct part {
    ad_part_kind_t kind;
    gw_buf_t text;
    char held[3]; /** CESU-8 high surrogate waiting for its low half (PROTOCOL.md §8) */
    bool holding;
};

struct item {
    ad_item_kind_t kind;
    char id[96];          /** upstream ids pass through (OpenAI ids are ~52 chars) */
    char *call_id, *name; /** malloc'd copies (function_call) */
    int status;           /** -1 in progress, else ad_item_status_t */
    struct part *parts;
    size_t n_parts;
    bool part_open; /** last part still receiving deltas */
    gw_buf_t args;  /** function_call arguments (as the upstream sent them) */
    gw_call_kind_t call_kind;
    char *ns;              /** malloc'd namespace of the called tool, NULL = none */
    ad_input_dec_t dec;    /** custom tool calls: decodes `input` out of the arguments */
    gw_buf_t input;        /** custom tool calls: decoded input so far */
    gw_buf_t delta_ids;    /** cached `,"item_id":...,"output_index":N[,"<index>":M],"delta":` */
    size_t delta_ids_part; /** part the cache was built for, + 1 (0 = none) */
};

struct gw_stream {
    gw_stream_opts_t o;
    ad_emit_t emit;
    gw_jgen_t *j;
    gw_buf_t out;       /** pending client bytes */
    gw_buf_t aggregate; /** final response object, once ended */
    struct item *items;
    size_t n_items, cap_items;
    int64_t seq;
    bool begun, committed;
    gw_finish_status_t status;
    const char *incomplete_reason;
    gw_error_t err;
    char *err_message; /** owned copy for err.message */
    ad_usage_t usage;
    gw_buf_t custom_outputs, trace, upstream_model; /** serialised JSON / text */
    gw_buf_t scratch;                               /** surrogate joining */
    uint64_t first_token_ns;
    size_t output_chars;
    bool error_sent; /** chat front: the upstream's own error event already went out */
};

/* Accumulated text as a JSON string value: an empty buffer is "", never null. */
static inline gw_str_t gw__text_of(const gw_buf_t *b)
{
    return b->base ? gw_buf_str(b) : GW_STR_LIT("");
}

static inline bool gw__dbx(const gw_stream_t *s)
{
    return s->o.front == GW_FRONT_DATABRICKS;
}

static inline bool gw__chat(const gw_stream_t *s)
{
    return s->o.front == GW_FRONT_CHAT;
}

/** Emitter slots shared by the two renderers (stream.c, stream_chat.c). */
int gw__stream_on_begin(void *ctx);
int gw__stream_on_raw(void *ctx, gw_str_t bytes, ad_raw_kind_t kind, size_t tokens);
void gw__stream_on_aggregate(void *ctx, gw_str_t json);
/** Chat front, after commit: the gateway's own failure as a ChatCompletions error event. */
void gw__chat_error_event(gw_stream_t *s);

/** One item as in `output` (`added`: the in-progress shape of output_item.added). */
void gw__render_item(gw_jgen_t *j, const struct item *it, bool added);
void gw__render_part(gw_jgen_t *j, const struct part *p);
void gw__render_databricks_output(gw_stream_t *s, bool with_error);
/** The Responses object (§3); `extras`: top-level databricks_output (non-stream body, table). */
void gw__render_response(gw_stream_t *s, bool extras);

#endif
