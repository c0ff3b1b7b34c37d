/* tb_rec: one inference-table row (INFERENCE_TABLES.md §2), serialised as one JSON line.
 * Payload size limits are applied here: an oversized request/response becomes null and its
 * code is listed in logging_error_codes (§3); the row itself is always kept. */
#ifndef TB_RECORD_H
#define TB_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/buf.h"
#include "gateway/json.h"

#define TB_SCHEMA_VERSION "agate-it/1"

typedef struct {
    const char *databricks_request_id; /** UUID */
    int64_t request_time_us;           /** unix microseconds */
    gw_str_t client_request_id;        /** base NULL = null */
    int status_code;
    double sampling_fraction;
    int64_t execution_duration_ms; /** -1 = null (no upstream attempt) */
    gw_str_t request;              /** raw body; base NULL = not captured */
    size_t request_bytes;
    bool request_complete;         /** false: body never fully read */
    gw_str_t response;             /** JSON text; base NULL = no response object */
    bool response_partial;
    const char *served_entity_id;  /** NULL = null */
    const char *requester;
    const char *const *requester_groups; /** [ext] the caller's groups (gateway/auth) */
    size_t n_requester_groups;
    const char *rate_limit_scope;        /** gateway 429: the limit that fired; NULL = null */
    const char *endpoint_name;
    const char *front_route;       /** "responses" / "invocations" / NULL */
    const char *served_entity_name;
    const char *adapter;
    gw_str_t upstream_model;
    const char *upstream_replica;
    int attempt_count;
    gw_str_t attempts;             /** JSON array text of the attempts column; base NULL = [] */
    bool fallback_used;
    const char *const *dropped_tools; /** hosted tools left out of the upstream request (issue 10) */
    size_t n_dropped_tools;
    const char *gateway_instance;
    const char *config_version;
    int64_t total_duration_ms;
    int64_t time_to_first_byte_ms; /** -1 = null */
    int64_t time_to_first_token_ms;
    int64_t queue_ms;
    bool stream;
    const char *finish_status;
    const char *error_code;    /** NULL = null */
    const char *error_message; /** cut to 4 KiB */
    bool has_tokens;
    int64_t input_tokens, output_tokens, cached_input_tokens, reasoning_tokens;
    const char *token_count_source; /** upstream / estimated / none */
    const gw_json_t *usage_context;
    bool redacted; /** a redaction rule rewrote request or response */
    bool stored;   /** the response is in the response store (issue 12); false: not asked, or failed */
} tb_rec_t;

typedef struct {
    size_t max_request_bytes;
    size_t max_response_bytes;
} tb_limits_t;

/** Append the row as one JSON line (with trailing '\n') to out. */
void tb_rec_serialize(const tb_rec_t *r, const tb_limits_t *lim, gw_buf_t *out);
/** Append the usage-tracking row (INFERENCE_TABLES.md §7.4, table endpoint_usage) as one JSON line:
 * no payloads, never sampled. input_chars / output_chars: prompt and generated text lengths in
 * bytes, -1 = null. */
void tb_rec_serialize_usage(const tb_rec_t *r, int64_t input_chars, int64_t output_chars, gw_buf_t *out);
/** "YYYY-MM-DD" (UTC) of a unix-microsecond time into out[11]. */
void tb_rec_date(int64_t unix_us, char out[11]);
/** Deterministic served_entity_id: first 128 bits of a hash over endpoint, entity, version. */
void tb_rec_entity_id(const char *endpoint, const char *entity, const char *version, char out[33]);

#endif
