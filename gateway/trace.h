/* gw_trace: OpenTelemetry traces of agate's calls. One SERVER span per request and one CLIENT
 * span per upstream attempt (retries and fallbacks are separate spans, children of the server
 * span), with the GenAI semantic-convention attributes (gen_ai.operation.name, request and
 * response model, token usage, finish reasons, error.type, server.address/port of the replica)
 * plus agate.request.id. Exported by gateway/otlp.
 *
 * Context: a valid W3C traceparent from the client is continued (its sampled flag decides,
 * parent-based; a valid tracestate is kept and passed on); otherwise agate starts a trace and
 * records it with probability tracing.sample_ratio, decided from the trace id (the ratio sampler's
 * rule, so every hop with the same ratio agrees). Each attempt's upstream request carries a
 * traceparent whose parent is that attempt's span, sampled or not.
 *
 * Cost: with tracing off nothing is read or written (ctx->tracer is NULL). With it on, a call pays
 * a header lookup and 24 random bytes at start, one formatted header per attempt, and spans are
 * built from the finish summary by this observer only when the call is sampled. Admin routes
 * (/healthz, /metrics, /v1/models) are not traced. Settings are read at start: a reload does not
 * change them. */
#ifndef GW_TRACE_H
#define GW_TRACE_H

#include <uv.h>

#include "gateway/config.h"
#include "gateway/metrics.h"
#include "gateway/summary.h"
#include "gateway/traceparent.h"
#include "gateway/upstream.h"

typedef struct gw_tracer gw_tracer_t;

/** cfg->endpoint must be set; cfg must outlive the tracer. instance: service.instance.id. */
gw_tracer_t *gw_tracer_new(uv_loop_t *loop, gw_upctx_t *up, const gw_tracing_cfg_t *cfg, gw_metrics_t *m,
                           const char *instance);
/** Before the upctx is freed: the export in flight is cancelled. */
void gw_tracer_free(gw_tracer_t *t);

/** A call's context from the client's traceparent / tracestate values (base NULL = absent). */
void gw_trace_begin(const gw_tracer_t *t, gw_str_t traceparent, gw_str_t tracestate, gw_tp_ctx_t *tc);
/** A new attempt span id into span_id, and the traceparent (+ tracestate) lines for its upstream
 * request into lines (arena strings). Returns the number of lines (0 when tc is off). */
size_t gw_trace_attempt(const gw_tp_ctx_t *tc, gw_arena_t *a, uint8_t span_id[8], const char *lines[2]);

/** The finish observer (ud = the tracer). */
void gw_trace_observe(const gw_call_summary_t *s, void *ud);

#endif
