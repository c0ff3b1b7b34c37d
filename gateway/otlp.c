#include "gateway/otlp.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"
#include "gateway/log.h"

#define MAX_STR 256 /* bytes of one attribute string (cut at a UTF-8 boundary) */

struct gw_otlp {
    const gw_tracing_cfg_t *cfg;
    gw_upctx_t *upctx;
    uv_timer_t timer;      /** batch timeout, or 0 ms once a batch is full */
    gw_buf_t head;         /** Resource and InstrumentationScope, encoded once */
    gw_buf_t queue;        /** ScopeSpans.spans entries waiting */
    size_t n_queued;
    gw_up_t *up;           /** the export in flight, NULL = none */
    gw_buf_t inflight;     /** its body; alive until its on_done */
    size_t n_inflight;
    long status;
    size_t resource_len;   /** bytes of head that are the Resource field */
    gw_metric_t *exported, *dropped, *failures;
};

/* ---------------- protobuf writer (wire format, proto3) ---------------- */

static size_t varint(uint8_t out[10], uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void pb_varint(gw_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    gw_buf_append(b, tmp, varint(tmp, v));
}

static void pb_tag(gw_buf_t *b, int field, int wire_type)
{
    pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire_type);
}

static void pb_bytes(gw_buf_t *b, int field, const void *p, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    gw_buf_append(b, p, n);
}

/* A string field: at most MAX_STR bytes, valid UTF-8 (receivers reject anything else). */
static gw_str_t clean(gw_str_t s);

static void pb_string(gw_buf_t *b, int field, gw_str_t s)
{
    s = clean(s);
    pb_bytes(b, field, s.base, s.len);
}

static void pb_fixed64(gw_buf_t *b, int field, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    pb_tag(b, field, 1);
    gw_buf_append(b, le, 8);
}

/* A nested message: open returns a mark, close inserts the length in front of what followed. */
static size_t pb_open(gw_buf_t *b, int field)
{
    pb_tag(b, field, 2);
    return b->len;
}

static void pb_close(gw_buf_t *b, size_t mark)
{
    uint8_t tmp[10];
    size_t n = b->len - mark, k = varint(tmp, n);
    gw_buf_reserve(b, k);
    memmove(b->base + mark + k, b->base + mark, n);
    memcpy(b->base + mark, tmp, k);
    b->len += k;
}

/* ---------------- OTLP messages ---------------- */

static void any_value(gw_buf_t *b, int field, const gw_otlp_attr_t *a)
{
    size_t m = pb_open(b, field);
    switch (a->type) {
    case GW_OTLP_STR:
        pb_string(b, 1, a->s);
        break;
    case GW_OTLP_BOOL:
        pb_tag(b, 2, 0);
        pb_varint(b, a->i ? 1 : 0);
        break;
    case GW_OTLP_INT:
        pb_tag(b, 3, 0);
        pb_varint(b, (uint64_t)a->i);
        break;
    case GW_OTLP_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &a->d, 8);
        pb_fixed64(b, 4, bits);
        break;
    }
    case GW_OTLP_STRS: {
        size_t arr = pb_open(b, 5);
        for (size_t i = 0; i < a->n_strs; i++) {
            size_t v = pb_open(b, 1);
            pb_string(b, 1, a->strs[i]);
            pb_close(b, v);
        }
        pb_close(b, arr);
        break;
    }
    }
    pb_close(b, m);
}

/* Raw writers into space reserved beforehand (the common attributes' fast path). */
static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    return p + varint(p, v);
}

static uint8_t *put_bytes(uint8_t *p, int field, gw_str_t s)
{
    *p++ = (uint8_t)(field << 3 | 2);
    p = put_varint(p, s.len);
    memcpy(p, s.base, s.len);
    return p + s.len;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v > 0x7f) {
        v >>= 7;
        n++;
    }
    return n;
}

static gw_str_t clean(gw_str_t s)
{
    if (s.len > MAX_STR)
        s.len = MAX_STR;
    s.len = gw_utf8_valid_prefix(s);
    return s;
}

/* KeyValue{key, AnyValue{string_value | int_value}} with every length known up front: one
 * reservation instead of a nested open/close per level (most attributes are these). */
static void key_value_flat(gw_buf_t *b, int field, const gw_otlp_attr_t *a)
{
    gw_str_t key = clean(gw_str(a->key)), str = a->type == GW_OTLP_STR ? clean(a->s) : GW_STR_NULL;
    size_t inner = a->type == GW_OTLP_STR ? 1 + varint_len(str.len) + str.len : 1 + varint_len((uint64_t)a->i);
    size_t kv = 1 + varint_len(key.len) + key.len + 1 + varint_len(inner) + inner;
    uint8_t *start = (uint8_t *)gw_buf_reserve(b, 2 + 10 + kv), *p = start;
    p = put_varint(p, (uint64_t)field << 3 | 2);
    p = put_varint(p, kv);
    p = put_bytes(p, 1, key);
    *p++ = 2 << 3 | 2;
    p = put_varint(p, inner);
    if (a->type == GW_OTLP_STR) {
        p = put_bytes(p, 1, str);
    } else {
        *p++ = 3 << 3 | 0;
        p = put_varint(p, (uint64_t)a->i);
    }
    b->len += (size_t)(p - start);
}

static void key_value(gw_buf_t *b, int field, const gw_otlp_attr_t *a)
{
    if (a->type == GW_OTLP_STR || a->type == GW_OTLP_INT) {
        key_value_flat(b, field, a);
        return;
    }
    size_t m = pb_open(b, field);
    pb_string(b, 1, gw_str(a->key));
    any_value(b, 2, a);
    pb_close(b, m);
}

static void encode_span(gw_buf_t *b, const gw_otlp_span_t *sp)
{
    size_t m = pb_open(b, 2); /* ScopeSpans.spans */
    pb_bytes(b, 1, sp->trace_id, 16);
    pb_bytes(b, 2, sp->span_id, 8);
    if (sp->trace_state.len)
        pb_bytes(b, 3, sp->trace_state.base, sp->trace_state.len); /* validated ASCII */
    if (sp->parent_id)
        pb_bytes(b, 4, sp->parent_id, 8);
    pb_string(b, 5, sp->name);
    pb_tag(b, 6, 0);
    pb_varint(b, (uint64_t)sp->kind);
    pb_fixed64(b, 7, sp->start_unix_ns);
    pb_fixed64(b, 8, sp->end_unix_ns >= sp->start_unix_ns ? sp->end_unix_ns : sp->start_unix_ns);
    for (size_t i = 0; i < sp->n_attrs; i++)
        key_value(b, 9, &sp->attrs[i]);
    if (sp->status != GW_OTLP_STATUS_UNSET) {
        size_t st = pb_open(b, 15);
        if (sp->status_message)
            pb_string(b, 2, gw_str(sp->status_message));
        pb_tag(b, 3, 0);
        pb_varint(b, (uint64_t)sp->status);
        pb_close(b, st);
    }
    pb_close(b, m);
}

/* ResourceSpans.resource then ScopeSpans.scope, the same for every export. */
static void encode_head(gw_otlp_t *x, const char *instance)
{
    size_t r = pb_open(&x->head, 1);
    gw_otlp_attr_t attrs[] = {
        {.key = "service.name", .s = gw_str(x->cfg->service_name)},
        {.key = "service.instance.id", .s = gw_str(instance)},
        {.key = "service.version", .s = gw_str(AGATE_VERSION)},
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        key_value(&x->head, 1, &attrs[i]);
    pb_close(&x->head, r);
    x->resource_len = x->head.len;
    size_t s = pb_open(&x->head, 1);
    pb_string(&x->head, 1, gw_str("agate"));
    pb_string(&x->head, 2, gw_str(AGATE_VERSION));
    pb_close(&x->head, s);
}

/* ---------------- export ---------------- */

static void on_timer(uv_timer_t *t);

static void arm(gw_otlp_t *x)
{
    if (x->n_queued >= (size_t)x->cfg->batch_size)
        uv_timer_start(&x->timer, on_timer, 0, 0);
    else if (x->n_queued && !uv_is_active((uv_handle_t *)&x->timer))
        uv_timer_start(&x->timer, on_timer, (uint64_t)x->cfg->batch_timeout_ms, 0);
}

static void on_export_response(void *ud, long status, gw_str_t content_type, int retry_after)
{
    (void)content_type;
    (void)retry_after;
    ((gw_otlp_t *)ud)->status = status;
}

static int on_export_data(void *ud, const char *data, size_t len)
{
    (void)ud; /* ExportTraceServiceResponse: partial success is not acted on */
    (void)data;
    (void)len;
    return 0;
}

static void on_export_done(void *ud, gw_up_result_t result, const char *detail)
{
    gw_otlp_t *x = ud;
    x->up = NULL;
    if (result == GW_UP_OK && x->status >= 200 && x->status < 300) {
        gw_metric_add(x->exported, NULL, x->n_inflight);
    } else {
        gw_metric_add(x->failures, NULL, 1);
        gw_metric_add(x->dropped, "export_failed", x->n_inflight);
        gw_log(GW_LOG_WARN, NULL, "event=trace_export_failed status=%ld spans=%zu detail=\"%s\"", x->status,
               x->n_inflight, detail ? detail : "");
    }
    x->n_inflight = 0;
    gw_buf_reset(&x->inflight);
    arm(x);
}

static void export_now(gw_otlp_t *x)
{
    gw_buf_t *b = &x->inflight;
    gw_buf_reset(b);
    size_t scope_len = x->head.len - x->resource_len;
    size_t ss_len = scope_len + x->queue.len;
    uint8_t tmp[10];
    size_t rs_len = x->resource_len + 1 + varint(tmp, ss_len) + ss_len;
    pb_tag(b, 1, 2); /* ExportTraceServiceRequest.resource_spans */
    pb_varint(b, rs_len);
    gw_buf_append(b, x->head.base, x->resource_len);
    pb_tag(b, 2, 2); /* ResourceSpans.scope_spans */
    pb_varint(b, ss_len);
    gw_buf_append(b, x->head.base + x->resource_len, scope_len);
    gw_buf_append(b, x->queue.base, x->queue.len);
    x->n_inflight = x->n_queued;
    x->n_queued = 0;
    gw_buf_reset(&x->queue);
    gw_up_req_t req = {
        .url = x->cfg->endpoint,
        .accept = "application/x-protobuf",
        .content_type = "application/x-protobuf",
        .headers = x->cfg->headers,
        .n_headers = x->cfg->n_headers,
        .body = gw_buf_str(b),
        .connect_timeout_ms = x->cfg->export_timeout_ms,
        .total_timeout_ms = x->cfg->export_timeout_ms,
    };
    static const gw_up_cb_t cbs = {on_export_response, on_export_data, on_export_done};
    x->status = 0;
    x->up = gw_up_start(x->upctx, &req, &cbs, x);
    if (!x->up)
        on_export_done(x, GW_UP_E_OTHER, "transfer not started");
}

static void on_timer(uv_timer_t *t)
{
    gw_otlp_t *x = t->data;
    if (!x->up && x->n_queued)
        export_now(x); /* else the export in flight re-arms when it ends */
}

static void collect(gw_buf_t *b, void *ud)
{
    const gw_otlp_t *x = ud;
    gw_buf_appendf(b,
                   "# HELP agate_trace_queue_spans Spans waiting for export (bounded by tracing.max_queue).\n"
                   "# TYPE agate_trace_queue_spans gauge\nagate_trace_queue_spans %zu\n",
                   x->n_queued + x->n_inflight);
}

gw_otlp_t *gw_otlp_new(uv_loop_t *loop, gw_upctx_t *up, const gw_tracing_cfg_t *cfg, gw_metrics_t *m,
                       const char *service_instance)
{
    gw_otlp_t *x = gw_xcalloc(1, sizeof(*x));
    x->cfg = cfg;
    x->upctx = up;
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    uv_unref((uv_handle_t *)&x->timer); /* never what keeps the loop (and a drain) alive */
    x->exported = gw_metrics_counter(m, "agate_trace_spans_exported_total", "Spans the collector accepted.", NULL);
    x->dropped = gw_metrics_counter(m, "agate_trace_spans_dropped_total",
                                    "Spans lost: queue full, or their export failed.", "reason");
    x->failures = gw_metrics_counter(m, "agate_trace_export_failures_total",
                                     "Exports that failed (transport error, timeout, non-2xx).", NULL);
    gw_metric_touch(x->exported, NULL);
    gw_metric_touch(x->dropped, "queue_full");
    gw_metric_touch(x->dropped, "export_failed");
    gw_metric_touch(x->failures, NULL);
    gw_metrics_collector(m, collect, x);
    encode_head(x, service_instance);
    return x;
}

static void on_timer_closed(uv_handle_t *h)
{
    gw_otlp_t *x = h->data;
    gw_buf_dispose(&x->head);
    gw_buf_dispose(&x->queue);
    gw_buf_dispose(&x->inflight);
    free(x);
}

void gw_otlp_free(gw_otlp_t *x)
{
    if (!x)
        return;
    if (x->up)
        gw_up_cancel(x->up);
    x->up = NULL;
    uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

void gw_otlp_add(gw_otlp_t *x, const gw_otlp_span_t *sp)
{
    if (x->n_queued >= (size_t)x->cfg->max_queue || x->queue.len >= GW_OTLP_MAX_QUEUE_BYTES) {
        gw_metric_add(x->dropped, "queue_full", 1);
        return;
    }
    encode_span(&x->queue, sp);
    x->n_queued++;
    arm(x);
}
