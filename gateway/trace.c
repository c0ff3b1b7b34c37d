#include "gateway/trace.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/id.h"
#include "gateway/json.h"
#include "gateway/otlp.h"

#define MAX_ATTRS   24
#define MAX_REASONS 4

struct gw_tracer {
    const gw_tracing_cfg_t *cfg;
    gw_otlp_t *exporter;
    uint64_t ratio_bound; /** a new trace is sampled when its id's last 8 bytes are below this */
    bool ratio_all;
};

gw_tracer_t *gw_tracer_new(uv_loop_t *loop, gw_upctx_t *up, const gw_tracing_cfg_t *cfg, gw_metrics_t *m,
                           const char *instance)
{
    gw_tracer_t *t = gw_xcalloc(1, sizeof(*t));
    t->cfg = cfg;
    t->ratio_all = cfg->sample_ratio >= 1;
    t->ratio_bound = (uint64_t)(cfg->sample_ratio * 18446744073709551615.0);
    t->exporter = gw_otlp_new(loop, up, cfg, m, instance);
    return t;
}

void gw_tracer_free(gw_tracer_t *t)
{
    if (!t)
        return;
    gw_otlp_free(t->exporter);
    free(t);
}

static void new_span_id(uint8_t id[8])
{
    do
        gw_id_random(id, 8);
    while (!(id[0] | id[1] | id[2] | id[3] | id[4] | id[5] | id[6] | id[7]));
}

void gw_trace_begin(const gw_tracer_t *t, gw_str_t traceparent, gw_str_t tracestate, gw_tp_ctx_t *tc)
{
    memset(tc, 0, sizeof(*tc));
    if (!t)
        return;
    tc->on = true;
    gw_tp_t p;
    if (gw_tp_parse(traceparent, &p) == 0) {
        memcpy(tc->trace_id, p.trace_id, 16);
        memcpy(tc->parent_id, p.span_id, 8);
        tc->has_parent = true;
        tc->flags = p.flags & GW_TP_SAMPLED; /* other bits are not ours to pass on */
        if (gw_tp_state_valid(tracestate))
            tc->tracestate = tracestate;
    } else {
        do
            gw_id_random(tc->trace_id, 16);
        while (!(tc->trace_id[0] | tc->trace_id[15])); /* never all zero (cheap sufficient test) */
        uint64_t low = 0;
        for (int i = 8; i < 16; i++)
            low = low << 8 | tc->trace_id[i];
        tc->flags = t->ratio_all || low < t->ratio_bound ? GW_TP_SAMPLED : 0;
    }
    new_span_id(tc->span_id);
}

size_t gw_trace_attempt(const gw_tp_ctx_t *tc, gw_arena_t *a, uint8_t span_id[8], const char *lines[2])
{
    if (!tc || !tc->on)
        return 0;
    new_span_id(span_id);
    char *tp = gw_arena_alloc(a, sizeof("traceparent: ") + GW_TP_HEADER_LEN);
    memcpy(tp, "traceparent: ", 13);
    gw_tp_format(tp + 13, tc->trace_id, span_id, tc->flags);
    lines[0] = tp;
    if (!tc->tracestate.len)
        return 1;
    size_t n = sizeof("tracestate: ") + tc->tracestate.len;
    char *ts = gw_arena_alloc(a, n);
    memcpy(ts, "tracestate: ", 12);
    memcpy(ts + 12, tc->tracestate.base, tc->tracestate.len);
    ts[n - 1] = '\0';
    lines[1] = ts;
    return 2;
}

/* ---------------- spans from the summary ---------------- */

typedef struct {
    gw_otlp_attr_t a[MAX_ATTRS];
    size_t n;
} attrs_t;

static void add_str(attrs_t *l, const char *k, gw_str_t v)
{
    if (v.base && l->n < MAX_ATTRS)
        l->a[l->n++] = (gw_otlp_attr_t){.key = k, .type = GW_OTLP_STR, .s = v};
}

static void add_cstr(attrs_t *l, const char *k, const char *v)
{
    if (v)
        add_str(l, k, gw_str(v));
}

static void add_int(attrs_t *l, const char *k, int64_t v)
{
    if (l->n < MAX_ATTRS)
        l->a[l->n++] = (gw_otlp_attr_t){.key = k, .type = GW_OTLP_INT, .i = v};
}

static uint64_t unix_ns(const gw_call_summary_t *s, uint64_t ns)
{
    uint64_t base = (uint64_t)s->start_unix_us * 1000;
    return ns > s->start_ns ? base + (ns - s->start_ns) : base;
}

/* gen_ai.response.finish_reasons: on the ChatCompletions route the choices' own finish_reason
 * (the aggregate is the upstream's chat.completion, parsed only for sampled calls); elsewhere the
 * Responses finish in the same words (stop, tool_calls, length, or the incomplete reason). */
static size_t finish_reasons(const gw_call_summary_t *s, gw_str_t out[MAX_REASONS])
{
    if (s->route != GW_ROUTE_CHAT) {
        if (strcmp(s->finish_status, "completed") == 0)
            out[0] = gw_str(s->output_has_calls ? "tool_calls" : "stop");
        else if (s->incomplete_reason)
            out[0] = gw_str(strcmp(s->incomplete_reason, "max_output_tokens") == 0 ? "length" : s->incomplete_reason);
        else
            return 0;
        return 1;
    }
    gw_json_t *root;
    const char *perr;
    if (!s->response.base || s->response_partial ||
        gw_json_parse(s->arena, s->response.base, s->response.len, &root, &perr) < 0)
        return 0;
    const gw_json_t *choices = gw_json_get(root, "choices");
    size_t n = 0;
    for (const gw_json_t *c = gw_json_is(choices, GW_JSON_ARRAY) ? choices->child : NULL; c && n < MAX_REASONS; c = c->next) {
        gw_str_t r = gw_json_get_str(c, "finish_reason");
        if (r.base)
            out[n++] = r;
    }
    return n;
}

/* server.address and server.port of a replica base URL (scheme://host[:port][/path]). */
static void add_server(attrs_t *l, const char *url)
{
    const char *h = strstr(url, "://");
    if (!h)
        return;
    bool tls = h - url == 5;
    h += 3;
    const char *end = h, *colon = NULL;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end)
            return;
        end++;
        if (*end == ':')
            colon = end;
    } else {
        while (*end && *end != '/' && *end != ':')
            end++;
        if (*end == ':')
            colon = end;
    }
    add_str(l, "server.address", gw_str_n(*h == '[' ? h + 1 : h, (size_t)(end - h) - (*h == '[' ? 2 : 0)));
    long port = colon ? strtol(colon + 1, NULL, 10) : tls ? 443 : 80;
    add_int(l, "server.port", port);
}

static const char *route_template(gw_route_kind_t k)
{
    switch (k) {
    case GW_ROUTE_RESPONSES:
        return "/v1/responses";
    case GW_ROUTE_INVOCATIONS:
        return "/serving-endpoints/{name}/invocations";
    case GW_ROUTE_CHAT:
        return "/v1/chat/completions";
    default:
        return NULL;
    }
}

/* What the call and its last attempt share: model, usage, finish reasons. */
static void add_outcome(attrs_t *l, const gw_call_summary_t *s, const gw_str_t *reasons, size_t n_reasons)
{
    add_str(l, "gen_ai.response.model", s->upstream_model.len ? s->upstream_model : GW_STR_NULL);
    if (s->usage && s->usage->present) {
        add_int(l, "gen_ai.usage.input_tokens", s->usage->input);
        add_int(l, "gen_ai.usage.output_tokens", s->usage->output);
    }
    if (n_reasons && l->n < MAX_ATTRS)
        l->a[l->n++] = (gw_otlp_attr_t){.key = "gen_ai.response.finish_reasons", .type = GW_OTLP_STRS,
                                         .strs = reasons, .n_strs = n_reasons};
}

static gw_str_t span_name(gw_arena_t *a, const char *op, gw_str_t model)
{
    size_t n = strlen(op) + 1 + model.len;
    char *p = gw_arena_alloc(a, n + 1);
    memcpy(p, op, strlen(op));
    p[strlen(op)] = ' ';
    memcpy(p + strlen(op) + 1, model.base, model.len);
    return gw_str_n(p, model.len ? n : strlen(op));
}

void gw_trace_observe(const gw_call_summary_t *s, void *ud)
{
    gw_tracer_t *t = ud;
    const gw_tp_ctx_t *tc = s->trace;
    if (!tc || !(tc->flags & GW_TP_SAMPLED) || !s->loggable)
        return;
    gw_str_t model = s->req->model.base ? s->req->model : s->routed ? gw_str(s->routed->name) : GW_STR_NULL;
    gw_str_t reasons[MAX_REASONS];
    size_t n_reasons = finish_reasons(s, reasons);
    bool failed = strcmp(s->finish_status, "failed") == 0 || s->status >= 500;

    /* The server span: the request as agate served it. */
    attrs_t l = {.n = 0};
    add_cstr(&l, "gen_ai.operation.name", "chat");
    add_str(&l, "gen_ai.request.model", model);
    add_outcome(&l, s, reasons, n_reasons);
    add_cstr(&l, "http.request.method", "POST");
    add_cstr(&l, "http.route", route_template(s->route));
    if (s->status)
        add_int(&l, "http.response.status_code", s->status);
    if (s->error_code)
        add_cstr(&l, "error.type", s->error_code);
    add_cstr(&l, "agate.request.id", s->request_id);
    add_cstr(&l, "agate.endpoint", s->served ? s->served->name : NULL);
    add_cstr(&l, "agate.finish_status", s->finish_status);
    add_int(&l, "agate.attempts", s->n_attempts);
    const char *route = route_template(s->route);
    char name[64];
    snprintf(name, sizeof(name), "POST %s", route ? route : "");
    gw_otlp_span_t server = {
        .trace_id = tc->trace_id,
        .span_id = tc->span_id,
        .parent_id = tc->has_parent ? tc->parent_id : NULL,
        .trace_state = tc->tracestate,
        .name = gw_str(route ? name : "POST"),
        .kind = GW_OTLP_KIND_SERVER,
        .start_unix_ns = unix_ns(s, s->start_ns),
        .end_unix_ns = unix_ns(s, s->end_ns),
        .attrs = l.a,
        .n_attrs = l.n,
        .status = failed ? GW_OTLP_STATUS_ERROR : GW_OTLP_STATUS_UNSET,
        .status_message = failed ? s->error_message : NULL,
    };
    gw_otlp_add(t->exporter, &server);

    /* One client span per attempt, each the parent of what its upstream records. */
    for (int i = 0; i < s->n_attempts; i++) {
        const gw_attempt_t *at = &s->attempts[i];
        bool ok = at->outcome && strcmp(at->outcome, "ok") == 0;
        attrs_t al = {.n = 0};
        add_cstr(&al, "gen_ai.operation.name", "chat");
        add_str(&al, "gen_ai.request.model", model);
        add_server(&al, at->replica);
        if (i == s->n_attempts - 1 && ok)
            add_outcome(&al, s, reasons, n_reasons);
        if (at->status)
            add_int(&al, "http.response.status_code", at->status);
        if (!ok)
            add_cstr(&al, "error.type", at->error_code ? at->error_code : at->outcome);
        add_cstr(&al, "agate.request.id", s->request_id);
        add_int(&al, "agate.attempt", i + 1);
        add_cstr(&al, "agate.endpoint", at->entity);
        add_cstr(&al, "agate.replica", at->replica);
        add_cstr(&al, "agate.attempt.outcome", at->outcome);
        gw_otlp_span_t client = {
            .trace_id = tc->trace_id,
            .span_id = at->span_id,
            .parent_id = tc->span_id,
            .trace_state = tc->tracestate,
            .name = span_name(s->arena, "chat", model),
            .kind = GW_OTLP_KIND_CLIENT,
            .start_unix_ns = unix_ns(s, at->start_ns),
            .end_unix_ns = unix_ns(s, at->end_ns ? at->end_ns : s->end_ns),
            .attrs = al.a,
            .n_attrs = al.n,
            .status = ok ? GW_OTLP_STATUS_UNSET : GW_OTLP_STATUS_ERROR,
            .status_message = ok ? NULL : at->outcome,
        };
        gw_otlp_add(t->exporter, &client);
    }
}
