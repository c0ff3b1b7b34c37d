/* gw_otlp: the span exporter. Spans are encoded at once as OTLP protobuf
 * (opentelemetry.proto.trace.v1.Span) into a bounded in-memory queue and POSTed in batches to the
 * `tracing.endpoint` as an ExportTraceServiceRequest (OTLP/HTTP, application/x-protobuf) through
 * the worker's libcurl multi (gateway/upstream), on the loop and never on a request's path.
 *
 * Batching: an export starts when batch_size spans wait, or batch_timeout_ms after the first of
 * them; one export is in flight at a time and carries every span waiting then (at most max_queue).
 * Bounds: past max_queue spans (or GW_OTLP_MAX_QUEUE_BYTES) new spans are dropped and counted; an
 * export that fails (transport error, timeout, non-2xx) drops its spans, counted, and is not
 * retried, so a collector that is down or slow costs at most the queue's memory. Spans still
 * waiting when the process exits are lost (at most one batch interval). */
#ifndef GW_OTLP_H
#define GW_OTLP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"
#include "gateway/config.h"
#include "gateway/metrics.h"
#include "gateway/upstream.h"

#define GW_OTLP_MAX_QUEUE_BYTES (16u << 20)

typedef enum { GW_OTLP_STR, GW_OTLP_INT, GW_OTLP_DOUBLE, GW_OTLP_BOOL, GW_OTLP_STRS } gw_otlp_type_t;

/** One span attribute; strings are views (copied when the span is encoded). */
typedef struct {
    const char *key;
    gw_otlp_type_t type;
    gw_str_t s;
    int64_t i;
    double d;
    const gw_str_t *strs; /** GW_OTLP_STRS: n_strs strings */
    size_t n_strs;
} gw_otlp_attr_t;

typedef enum { GW_OTLP_KIND_SERVER = 2, GW_OTLP_KIND_CLIENT = 3 } gw_otlp_kind_t;
typedef enum { GW_OTLP_STATUS_UNSET = 0, GW_OTLP_STATUS_OK = 1, GW_OTLP_STATUS_ERROR = 2 } gw_otlp_status_t;

typedef struct {
    const uint8_t *trace_id;  /** 16 bytes */
    const uint8_t *span_id;   /** 8 bytes */
    const uint8_t *parent_id; /** 8 bytes, NULL = root span */
    gw_str_t trace_state;
    gw_str_t name;
    gw_otlp_kind_t kind;
    uint64_t start_unix_ns, end_unix_ns;
    const gw_otlp_attr_t *attrs;
    size_t n_attrs;
    gw_otlp_status_t status;
    const char *status_message; /** NULL = none */
} gw_otlp_span_t;

typedef struct gw_otlp gw_otlp_t;

/** Exports to cfg->endpoint (cfg must stay valid); service_instance: resource service.instance.id. */
gw_otlp_t *gw_otlp_new(uv_loop_t *loop, gw_upctx_t *up, const gw_tracing_cfg_t *cfg, gw_metrics_t *m,
                       const char *service_instance);
/** Cancels the export in flight (before the upctx goes); the timer closes on the loop. */
void gw_otlp_free(gw_otlp_t *x);
/** Queue one span (or drop and count it when the queue is full). */
void gw_otlp_add(gw_otlp_t *x, const gw_otlp_span_t *sp);

#endif
