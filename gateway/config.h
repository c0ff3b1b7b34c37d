/* gw_config: the JSON configuration file, validated into an immutable struct.
 * Every key is checked: an unknown key, a wrong type or a missing required key is an error that
 * names the key by its path (e.g. `endpoints[0].upstreams[0].url`). */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/arena.h"
#include "gateway/balancer.h"
#include "gateway/json.h"

typedef enum { GW_ADAPTER_CHAT_COMPLETIONS = 0, GW_ADAPTER_RESPONSES } gw_adapter_kind_t;
typedef enum { GW_FLAVOR_OPENAI = 0, GW_FLAVOR_MLFLOW } gw_flavor_t;
/** Hosted tools a ChatCompletions model cannot run (PROTOCOL.md §2.2): left out, or a 400. */
typedef enum { GW_HOSTED_DROP = 0, GW_HOSTED_REJECT } gw_hosted_tools_t;
/** Consecutive system/developer messages: merged into one (strict chat templates), or kept. */
typedef enum { GW_SYSMSG_MERGE = 0, GW_SYSMSG_KEEP } gw_sysmsg_t;
/** Reasoning items coming back in input: dropped, sent as reasoning_content on the assistant
 * messages after the last user message, or on every assistant message. */
typedef enum { GW_PASSBACK_NONE = 0, GW_PASSBACK_TOOL_TURNS, GW_PASSBACK_ALL } gw_passback_t;

typedef struct {
    const char *url;     /** base URL as OpenAI clients take it, without trailing slash */
    const char *api_key; /** resolved from api_key_env at load time; NULL = none */
    const char *api_key_env;
    int weight;          /** >= 1 */
    int max_concurrent;  /** requests in flight on this replica, 0 = unlimited */
} gw_upstream_cfg_t;

/** Traffic split target: another endpoint and its share of requests (INFERENCE_TABLES.md §7.3). */
typedef struct {
    const char *endpoint;
    int percentage; /** 0..100; an endpoint's shares sum to 100 */
} gw_traffic_cfg_t;

/** Optional numeric default; has == false means "not configured". */
typedef struct {
    bool has;
    double value;
} gw_opt_num_t;

/** One rate-limit rule of an endpoint (INFERENCE_TABLES.md §7.2). */
typedef enum { GW_RL_ENDPOINT = 0, GW_RL_USER, GW_RL_USER_GROUP, GW_RL_SERVICE_PRINCIPAL } gw_rl_key_t;
typedef struct {
    gw_rl_key_t key;
    const char *principal; /** NULL for the endpoint rule and the per-user default */
    int64_t calls, tokens; /** per period; 0 = that dimension is not limited by this rule */
    int64_t period_ms;     /** minute 60000, hour 3600000 (scaled by test_only_rate_limit_period_ms) */
    const char *scope;     /** rate_limit_scope: endpoint, user_default, user:<p>, group:<p>, service_principal:<p> */
} gw_rl_rule_t;

typedef struct {
    const char *name;
    gw_adapter_kind_t adapter;
    gw_flavor_t flavor;           /** responses adapter only */
    const char *model;            /** sent upstream; defaults to name */
    gw_upstream_cfg_t *upstreams; /** n_upstreams >= 1 unless traffic is set */
    size_t n_upstreams;
    gw_traffic_cfg_t *traffic;    /** split over served entities (other endpoints); n_traffic 0 = none */
    size_t n_traffic;
    gw_opt_num_t temperature, top_p, max_output_tokens;
    const char *max_tokens_field; /** "max_tokens" (default) or "max_completion_tokens" */
    bool developer_role;          /** send developer messages as developer (else system) */
    int connect_timeout_ms;       /** default 5000 */
    int first_event_timeout_ms;   /** commit timeout: dispatch to first upstream event, default 10000 */
    int idle_timeout_ms;          /** between upstream bytes, default 60000 */
    int total_timeout_ms;         /** whole upstream attempt, default 297000 */
    double sampling_rate;         /** payload table, (0,1], default 1 */
    bool always_log_errors;       /** keep failed/errored rows whatever the sampling draw, default true */
    gw_lb_opts_t lb;              /** strategy, outlier ejection, health thresholds */
    int replica_retries;          /** extra attempts on other replicas before commit, default 1 */
    int queue_timeout_ms;         /** wait for a free slot when every replica is at max_concurrent, default 1000 */
    int max_queue;                /** requests waiting for a slot, default 256; beyond: 503 at once */
    const char **fallbacks;       /** other endpoint names, tried in order after all replicas failed */
    size_t n_fallbacks;
    const char *health_path;      /** active health check path (GET <url><path>); NULL = off */
    int health_interval_ms;       /** default 5000 */
    int health_timeout_ms;        /** default 1000 */
    const char **aliases;         /** client model names routed here: exact, or globs with `*` */
    size_t n_aliases;
    gw_hosted_tools_t hosted_tools;   /** default drop */
    gw_sysmsg_t system_messages;      /** default merge */
    gw_passback_t reasoning_passback; /** default none */
    bool has_allow;                   /** `allow` given: only these requesters and groups may call */
    const char **allow_requesters, **allow_groups;
    size_t n_allow_requesters, n_allow_groups;
    gw_rl_rule_t *rate_limits;        /** at most 20, at most 5 user_group */
    size_t n_rate_limits;
} gw_endpoint_cfg_t;

/** A CIDR block: family AF_INET (4 address bytes) or AF_INET6 (16), network order. */
typedef struct {
    int family;
    uint8_t addr[16];
    int bits;
} gw_cidr_t;

/** The `auth` block (gateway/auth); absent = off, every caller anonymous. */
typedef struct {
    bool enabled;
    const char *keys_file;             /** JSON lines of key hashes (gateway/keys.h); NULL = no API keys */
    int keys_poll_ms;                  /** check the keys file for changes this often, default 1000 */
    const char *trusted_header;        /** identity set by a fronting proxy, e.g. X-Forwarded-User; NULL = off */
    const char *trusted_groups_header; /** comma-separated groups from that proxy; NULL = none */
    gw_cidr_t *trusted_proxies;        /** the only peers whose trusted headers count */
    size_t n_trusted_proxies;
    int metrics_requesters;            /** requesters with their own /metrics series, then "other"; default 20 */
} gw_auth_cfg_t;

/** `rate_limits_store`: where buckets live. No redis = shared memory of this process's workers. */
typedef struct {
    const char *redis_host; /** NULL = local */
    int redis_port;
    bool deny_on_error;     /** on_error "deny": 503 while Redis is unreachable; default "allow" */
    int deadline_ms;        /** Redis answer deadline per admission, default 50 */
} gw_rl_store_cfg_t;

typedef enum { GW_SINK_NONE = 0, GW_SINK_JSONL, GW_SINK_POSTGRES } gw_sink_kind_t;
/** When written rows are forced to stable storage (JSONL files and the postgres spool). */
typedef enum { GW_FSYNC_NONE = 0, GW_FSYNC_BATCH, GW_FSYNC_ALWAYS } gw_fsync_t;

typedef struct {
    gw_sink_kind_t sink;
    const char *dir;                 /** JSONL root; NULL for other sinks unless set */
    int flush_ms;                    /** default 1000 */
    size_t max_logged_request_bytes; /** default 1 MiB */
    size_t max_logged_response_bytes;
    size_t max_queue_bytes;          /** records waiting for the writer, default 64 MiB */
    const char *dsn;                 /** postgres: libpq connection string (config, else $DATABASE_URL) */
    gw_fsync_t fsync;                /** default none; batch: one fdatasync per file per flushed batch */
    uint64_t rotate_bytes;           /** JSONL: start a new part file past this size, default 128 MiB */
    const char *spool_dir;           /** postgres: local spill files, default ./var/spool */
    uint64_t spool_max_bytes;        /** postgres: spool cap, then rows are dropped loudly, default 1 GiB */
    int batch_rows;                  /** postgres: rows per INSERT statement, default 500 */
    bool usage_table;                /** write endpoint_usage rows; default true for postgres, false for jsonl */
    const char **redact;             /** JSON paths replaced by "[REDACTED]" in logged request/response */
    size_t n_redact;                 /** at most 64 */
} gw_tables_cfg_t;

typedef struct {
    size_t max_body_bytes;    /** default 4 MiB */
    size_t max_header_bytes;  /** default 16 KiB */
    int max_connections;      /** default 4096 */
    int header_timeout_ms;    /** request fully received within, default 30000 */
    int keepalive_timeout_ms; /** idle keep-alive connection, default 60000 */
    int sse_keepalive_ms;     /** comment to the client after this idle time, default 15000 */
    int write_timeout_ms;     /** queued output with no write progress this long: close, default 60000 */
    size_t max_event_bytes;   /** one upstream SSE event, default 1 MiB */
    size_t max_output_bytes;  /** generated output one response may hold (text, arguments), default 64 MiB */
    int drain_timeout_ms;     /** SIGTERM: wait this long for requests in flight, default 30000 */
} gw_limits_cfg_t;

/** `tracing` (gateway/config_tracing.c, gateway/trace.h): OpenTelemetry spans over OTLP/HTTP. */
typedef struct {
    const char *endpoint;          /** OTLP/HTTP traces URL (…/v1/traces); NULL = tracing off */
    const char *const *headers;    /** extra request lines "Name: value", n_headers of them */
    size_t n_headers;
    const char *service_name;      /** resource service.name, default "agate" */
    double sample_ratio;           /** share of new traces recorded (0..1, default 1); parent-based */
    int batch_size;                /** export once this many spans wait, default 512 */
    int max_queue;                 /** spans waiting beyond this are dropped, default 2048 */
    int batch_timeout_ms;          /** export what waits after this long, default 1000 */
    int export_timeout_ms;         /** one export's bound (connect included), default 5000 */
} gw_tracing_cfg_t;
typedef enum { GW_STORE_NONE = 0, GW_STORE_SQLITE, GW_STORE_POSTGRES } gw_store_backend_t;

/** Response store (issue 12, gateway/store.h); parsed by config_store.c. */
typedef struct {
    gw_store_backend_t backend;  /** NONE = no `store` block: stateful features answer 400 */
    const char *path;            /** sqlite: database file, default ./var/store.db */
    const char *dsn;             /** postgres: libpq connection string (config, else $DATABASE_URL) */
    bool store_by_default;       /** `store` omitted in a request: stored? default true (OpenAI's) */
    int write_timeout_ms;        /** a response's write may hold its terminal event this long, 2000 */
    int ttl_days;                /** stored objects older than this are purged, default 30 */
    int purge_interval_ms;       /** TEST ONLY knob (README): purge tick, default 60000 */
    int ttl_seconds;             /** TEST ONLY knob (README): overrides ttl_days when > 0 */
    size_t max_response_bytes;   /** a response (object + context) larger than this is not stored, 16 MiB */
} gw_store_cfg_t;

typedef struct gw_config {
    gw_arena_t *arena; /** owns everything below */
    const char *listen_host;
    int listen_port;
    const char *log_level;
    const char *access_log;        /** "off" (default), "stderr" or a file path (gateway/access_log) */
    gw_endpoint_cfg_t *endpoints;
    size_t n_endpoints;
    gw_tables_cfg_t tables;
    gw_store_cfg_t store;
    gw_limits_cfg_t limits;
    double retry_budget_ratio;     /** retries in flight <= max(min, ratio x requests in flight); 0.2 */
    int retry_budget_min;          /** 3 */
    const char *default_endpoint;  /** serves any model name nothing else matches; NULL = off */
    gw_auth_cfg_t auth;
    gw_rl_store_cfg_t rl_store;
    int64_t test_rate_limit_period_ms; /** test-only: a minute lasts this long (an hour 60x); 0 = real time */
    gw_tracing_cfg_t tracing;
    char version[17]; /** hash of the file bytes, hex */
    int64_t loaded_unix; /** when this config was parsed (unix s): `created` of /v1/models */
} gw_config_t;

/** Parse and validate. On error returns NULL and writes a one-line message into err. */
gw_config_t *gw_config_parse(const char *json, size_t len, char *err, size_t errlen);
gw_config_t *gw_config_load(const char *path, char *err, size_t errlen);
void gw_config_free(gw_config_t *c);
const gw_endpoint_cfg_t *gw_config_endpoint(const gw_config_t *c, const char *name, size_t name_len);
/** The endpoint for a client's `model` (OpenAI route): the endpoint of that name, else the first
 * exact alias, else the first matching glob alias (config order), else default_endpoint, else NULL. */
const gw_endpoint_cfg_t *gw_config_endpoint_for_model(const gw_config_t *c, const char *name,
                                                      size_t name_len);
struct gw_json;
/** The `tracing` block (x NULL = absent): 0, or -1 with a one-line message in err. */
int gw_config_tracing_parse(gw_arena_t *a, const struct gw_json *x, gw_tracing_cfg_t *out, char *err, size_t errlen);
/** The `store` block (config_store.c): 0, or -1 with a one-line message in err. */
int gw__config_parse_store(gw_arena_t *a, const gw_json_t *root, gw_store_cfg_t *out, char *err, size_t errlen);
/** `*` matches any run of bytes (also empty); every other byte matches itself. */
bool gw_config_glob_match(const char *pattern, const char *s, size_t n);

#endif
