/* gw_call_summary: the read-only account of one finished call that the finish phase hands to
 * every observer (table row, usage row, metrics; later the store, access log and spans). It is
 * valid only during the observer callback: everything it points to dies with the request. */
#ifndef GW_SUMMARY_H
#define GW_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "gateway/arena.h"
#include "gateway/config.h"
#include "gateway/request.h"
#include "gateway/router.h"
#include "gateway/traceparent.h"

/** One upstream attempt (the table's attempts column). */
typedef struct {
    const char *entity; /** served endpoint name */
    char replica[64];   /** replica base URL */
    int64_t started_ms, duration_ms;
    long status;        /** HTTP status, 0 = none */
    const char *error_code;
    const char *outcome; /** ok / retry / failed / timeout / first_token_timeout / cancelled */
    uint64_t start_ns, end_ns; /** uv_hrtime() (end 0 = still running at finish) */
    uint8_t span_id[8];        /** its trace span (gateway/trace) when the call is traced */
} gw_attempt_t;

typedef struct {
    const char *request_id;         /** UUIDv7, also databricks_request_id */
    const char *requester;          /** NULL = anonymous (auth off, or refused before identification) */
    const char *const *requester_groups; /** the caller's groups (gateway/auth) */
    size_t n_requester_groups;
    const char *rate_limit_scope;   /** a gateway 429: which limit fired (INFERENCE_TABLES.md §2.2) */
    const struct gw_rl_ticket *rl_ticket; /** rate-limit charges to settle at the end (gateway/admit) */
    bool loggable;                  /** false for admin routes: never a table row */
    gw_route_kind_t route;
    const gw_config_t *cfg;         /** the config the call ran under */
    const gw_endpoint_cfg_t *routed; /** endpoint the client addressed, NULL if none matched */
    const gw_endpoint_cfg_t *served; /** entity that served the last attempt (split, fallback) */
    const char *adapter;            /** adapter name, NULL if none chosen */
    /* The request as received. */
    gw_str_t body;
    size_t body_bytes;
    bool body_complete;             /** false: the body was never fully read */
    gw_str_t client_request_id;     /** base NULL = none */
    const gw_request_t *req;        /** what parsing picked out (partial when it failed); never NULL */
    bool req_parsed;                /** the request passed validation */
    bool sampled_out;               /** the payload-table draw said no (errors may still be kept) */
    /* What happened. */
    int status;                     /** HTTP status sent, 0 = none (client gone first) */
    const char *finish_status;      /** completed / incomplete / failed / cancelled / rejected */
    bool dispatched;                /** at least one upstream attempt started */
    gw_str_t response;              /** aggregate Responses object, else the error body; base NULL = none */
    bool response_partial;          /** aggregate of a failed or cancelled stream */
    const char *error_code, *error_message;
    const ad_usage_t *usage;        /** NULL or !present: the upstream reported none */
    gw_str_t upstream_model;
    int64_t output_chars;           /** generated text, for token estimates; -1 = nothing rendered */
    bool output_has_calls;          /** the output holds a tool call item (not on the chat route) */
    const char *incomplete_reason;  /** finish_status incomplete: why (max_output_tokens, ...) */
    const gw_attempt_t *attempts;
    int n_attempts;
    bool fallback_used;
    bool stored;                    /** the response was committed to the response store (issue 12) */
    const char *upstream_peer;      /** host:port of the last attempt, NULL if none */
    uint64_t queue_ns;              /** time spent waiting for a replica slot */
    int queue_waits;                /** times the call entered the slot queue (0 = never queued) */
    uint64_t bytes_out;             /** response bytes queued for the client (head and framing included) */
    const char *client;             /** client address "ip:port" */
    /* Times: uv_hrtime() ns (0 = never) and the start as unix microseconds. */
    int64_t start_unix_us;
    uint64_t start_ns, end_ns, first_byte_ns, first_token_ns, dispatch_ns, upstream_end_ns;
    const char *instance;           /** gateway_instance */
    const gw_tp_ctx_t *trace;       /** trace context when tracing is on, else NULL */
    gw_arena_t *arena;              /** request arena: scratch for observers, freed after them */
} gw_call_summary_t;

typedef void (*gw_call_observer_cb)(const gw_call_summary_t *s, void *ud);

static inline int64_t gw_summary_ms(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (int64_t)((to_ns - from_ns) / 1000000) : 0;
}

#endif
