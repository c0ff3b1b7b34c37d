/* gw_request: the client's Responses request body, parsed once and validated (PROTOCOL.md §2).
 * Only the fields the adapters and the renderer need are picked out; everything else stays in the
 * parsed tree and passes through untouched. All memory lives in the request arena. */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include <stdbool.h>

#include "adapters/tools.h"
#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/json.h"

typedef struct {
    const gw_json_t *root;              /** whole body (object) */
    gw_str_t model;                     /** base NULL when absent (Databricks route) */
    bool stream;
    const gw_json_t *input;             /** string or non-empty array of items */
    const gw_json_t *instructions;      /** string or NULL */
    const gw_json_t *tools;             /** array of tools (any kind of PROTOCOL.md §2.2) or NULL */
    ad_tools_t tool_map;                /** tools flattened for a ChatCompletions upstream */
    const gw_json_t
        *tool_choice; /** string or {"type":"function"|"custom","name"} or a hosted type, or NULL */
    const gw_json_t *parallel_tool_calls;
    const gw_json_t *temperature, *top_p, *max_output_tokens;
    const gw_json_t *text;              /** {"format":...} or NULL */
    const gw_json_t *reasoning;         /** {"effort":...} or NULL */
    const gw_json_t *metadata;          /** string->string map or NULL */
    const gw_json_t *user;
    const gw_json_t *custom_inputs, *context, *databricks_options;
    gw_str_t client_request_id;         /** top-level string, base NULL when absent */
    const gw_json_t *usage_context;
    bool return_trace;
    /* Response store (issue 12, gateway/recall.h): read here, resolved in the resolve phase. */
    gw_str_t previous_response_id;      /** base NULL when absent */
    const gw_json_t *conversation;      /** string or {"id"}; NULL when absent */
    gw_str_t conversation_id;           /** its id, base NULL when absent */
    const gw_json_t *store;             /** the client's `store` boolean, NULL when absent */
    size_t n_item_refs;                 /** item_reference items in input */
    bool stored;                        /** set by resolve: this response is written to the store */
    /** Hosted tools left out for the endpoint (gw_request_apply_endpoint); tool types, arena. */
    const char **dropped_tools;
    size_t n_dropped_tools;
    /* ChatCompletions front route only (gw_request_parse_chat): root is the chat body. */
    const gw_json_t *messages;          /** non-empty array */
    bool include_usage;                 /** the client asked for stream_options.include_usage */
} gw_request_t;

/** Parse and validate body. On failure returns -1 and fills err (message/param in the arena). */
int gw_request_parse(gw_arena_t *a, gw_str_t body, bool databricks_route, gw_request_t *out, gw_error_t *err);

/** Endpoint-dependent checks, once the endpoint is known (resolve phase): hosted tools are
 * dropped (listed in dropped_tools, logged at debug) or rejected per `hosted_tools`, and a
 * tool_choice naming a dropped tool is a 400. Returns -1 + err on rejection. */
int gw_request_apply_endpoint(gw_request_t *r, gw_arena_t *a, const gw_endpoint_cfg_t *ep, gw_error_t *err);

/** Parse and validate a ChatCompletions body (`POST /v1/chat/completions`) just enough to route
 * and pass it through: a JSON object with a non-empty `model` string and a non-empty `messages`
 * array; `stream` boolean and `stream_options` object when present. Everything else is the
 * upstream's to judge. Same failure contract as gw_request_parse. */
int gw_request_parse_chat(gw_arena_t *a, gw_str_t body, gw_request_t *out, gw_error_t *err);

/** Items from the store's side (gateway/recall, gateway/stored): the same checks as a request's own
 * input; link_calls: a call output must follow its call (a merged input; not for items added to a
 * conversation piecewise). item_reference is not allowed here. -1 + err on failure. */
int gw_request_check_input(gw_arena_t *a, gw_error_t *err, const gw_json_t *input, bool link_calls);

/** Concatenated text parts of a content value (string, or parts with a "text" field), joined
 * with "\n". Used for translation and token estimates. */
void gw_request_content_text(const gw_json_t *content, gw_buf_t *out);

#endif
