/* mock_routes: routing and scenario selection (mock_routes.h). */
#include <inttypes.h>
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/arena.h"
#include "gateway/json.h"
#include "mock_json.h"
#include "mock_routes.h"

#define TRACE_LOG 32

struct mock_routes {
    const mock_chat_sc_t *def; /** --default-scenario on the chat route (text unless it names one) */
    const mock_r_sc_t *r_def;  /** on the Responses routes (r_text unless it names an r_* one) */
    uint64_t requests;         /** scenario requests received (chat and Responses routes) */
    gw_buf_t last;             /** owned: raw body of the most recent scenario request (any route) */
    bool have_last;
    gw_buf_t trace_log[TRACE_LOG];  /** owned: trace headers of the last TRACE_LOG scenario requests */
    uint64_t n_traced;              /** requests ever logged there (the ring's write position) */
};

mock_routes_t *mock_routes_new(const mock_chat_sc_t *def, const mock_r_sc_t *r_def)
{
    mock_routes_t *rt = gw_xcalloc(1, sizeof(*rt));
    rt->def = def;
    rt->r_def = r_def;
    return rt;
}

void mock_routes_free(mock_routes_t *rt)
{
    if (!rt)
        return;
    gw_buf_dispose(&rt->last);
    for (size_t i = 0; i < TRACE_LOG; i++)
        gw_buf_dispose(&rt->trace_log[i]);
    free(rt);
}

static bool wants_stream(gw_str_t body)
{
    gw_arena_t *a = gw_arena_new();
    gw_json_t *root = NULL;
    const char *err = NULL;
    bool on = false;
    if (body.len && gw_json_parse(a, body.base, body.len, &root, &err) == 0) {
        const gw_json_t *v = gw_json_get(root, "stream");
        on = gw_json_is(v, GW_JSON_BOOL) && v->boolean;
    }
    gw_arena_free(a);
    return on;
}

/* First occurrence of needle in [p, end), or NULL (memmem without _GNU_SOURCE). */
static const char *find_bytes(const char *p, const char *end, const char *needle, size_t n)
{
    while (p && (size_t)(end - p) >= n) {
        p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (!p || memcmp(p, needle, n) == 0)
            return p;
        p++;
    }
    return NULL;
}

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* x-mock-scenario header, else the first mock:NAME token of the raw body, else def. A first
 * token `mock:last` picks the body's last mock:NAME token instead: a multi-turn client (a tool
 * loop) steers each turn by what its newest message says. */
static gw_str_t scenario_name(const mock_req_t *r, const char *def)
{
    if (r->has_scenario)
        return r->scenario;
    const char *p = r->body.base, *end = r->body.base + r->body.len;
    gw_str_t first = GW_STR_NULL, last = GW_STR_NULL;
    while (p && p < end) {
        const char *m = find_bytes(p, end, "mock:", 5);
        if (!m)
            break;
        const char *n = m + 5, *q = n;
        while (q < end && is_name_char(*q))
            q++;
        if (q > n) {
            gw_str_t tok = gw_str_n(n, (size_t)(q - n));
            if (!first.base && !gw_str_eq(tok, "last"))
                return tok;
            if (!first.base)
                first = tok;
            else if (!gw_str_eq(tok, "last"))
                last = tok;
        }
        p = q > n ? q : n;
    }
    return last.base ? last : gw_str(def);
}

/* Every scenario route keeps the raw body for /last-request and counts in /stats. */
static void record_request(mock_routes_t *rt, const mock_req_t *r)
{
    rt->requests++;
    gw_buf_reset(&rt->last);
    gw_buf_append(&rt->last, r->body.base, r->body.len);
    rt->have_last = true;
    gw_buf_t *e = &rt->trace_log[rt->n_traced++ % TRACE_LOG];
    gw_buf_reset(e);
    gw_buf_append_cstr(e, "{\"traceparent\":");
    if (r->traceparent.base)
        mock_json_str(e, r->traceparent);
    else
        gw_buf_append_cstr(e, "null");
    gw_buf_append_cstr(e, ",\"tracestate\":");
    if (r->tracestate.base)
        mock_json_str(e, r->tracestate);
    else
        gw_buf_append_cstr(e, "null");
    gw_buf_append_cstr(e, "}");
}

/* GET /trace-headers: the trace headers of the last TRACE_LOG scenario requests, oldest first. */
static void serve_trace_headers(mock_routes_t *rt, mock_conn_t *c)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "[");
    uint64_t first = rt->n_traced > TRACE_LOG ? rt->n_traced - TRACE_LOG : 0;
    for (uint64_t i = first; i < rt->n_traced; i++) {
        if (i > first)
            gw_buf_append_cstr(&b, ",");
        gw_buf_append_str(&b, gw_buf_str(&rt->trace_log[i % TRACE_LOG]));
    }
    gw_buf_append_cstr(&b, "]");
    mock_conn_reply(c, 200, "application/json", "", gw_buf_str(&b));
    gw_buf_dispose(&b);
}

static void reply_unknown(mock_conn_t *c, gw_str_t name)
{
    gw_buf_t msg;
    gw_buf_init(&msg);
    gw_buf_append_cstr(&msg, "unknown mock scenario ");
    gw_buf_append_str(&msg, name);
    mock_conn_reply_error(c, 400, "invalid_request_error", gw_buf_str(&msg));
    gw_buf_dispose(&msg);
}

/* POST .../chat/completions: record it, pick the scenario, then stream it, answer it as one JSON
 * object (after the script's total delay), or send its plain HTTP answer. */
static void serve_chat(mock_routes_t *rt, mock_conn_t *c, const mock_req_t *r)
{
    record_request(rt, r);
    gw_str_t name = scenario_name(r, rt->def->name);
    const mock_chat_sc_t *sc = mock_sc_find_chat(name);
    for (int hop = 0; sc && sc->turns && hop < 4; hop++) {
        name = gw_str(mock_sc_turn(sc, r->body));
        sc = mock_sc_find_chat(name);
    }
    if (!sc || sc->turns) {
        reply_unknown(c, name);
        return;
    }
    const char *missing = mock_sc_missing(sc, r->body);
    if (missing) {
        gw_buf_t msg;
        gw_buf_init(&msg);
        gw_buf_append_cstr(&msg, "mock scenario ");
        gw_buf_append_str(&msg, name);
        gw_buf_append_cstr(&msg, ": the request lacks ");
        gw_buf_append_cstr(&msg, missing);
        mock_conn_reply_error(c, 400, "invalid_request_error", gw_buf_str(&msg));
        gw_buf_dispose(&msg);
        return;
    }
    if (!sc->steps) {
        mock_conn_reply(c, sc->status, sc->ctype, sc->headers, gw_str(sc->body));
        return;
    }
    bool stream = (sc->flags & SF_STREAM_ONLY) || (!(sc->flags & SF_JSON_ONLY) && wants_stream(r->body));
    mock_run_chat(c, sc, stream);
}

/* POST .../responses or .../invocations: the same selection, among the r_* scenarios only (a
 * chat scenario name is unknown here, and an r_* name is unknown on the chat route). Each route
 * has its own script and its own plain answers (MOCK_SCENARIOS.md, issue 5). */
static void serve_responses(mock_routes_t *rt, mock_conn_t *c, const mock_req_t *r, mock_route_t route)
{
    record_request(rt, r);
    gw_str_t name = scenario_name(r, rt->r_def->name);
    const mock_r_sc_t *rs = mock_sc_find_r(name);
    if (!rs) {
        reply_unknown(c, name);
        return;
    }
    const mock_r_route_t *rr = route == MOCK_ROUTE_RESPONSES ? &rs->openai : &rs->mlflow;
    bool stream = wants_stream(r->body);
    if (!rr->steps || (!stream && rr->body)) {
        mock_conn_reply(c, rr->status, "application/json", "", gw_str(rr->body));
        return;
    }
    mock_run_responses(c, rs, route, rr->steps, stream);
}

static bool has_suffix(gw_str_t path, const char *suffix)
{
    size_t n = strlen(suffix);
    return path.len >= n && memcmp(path.base + path.len - n, suffix, n) == 0;
}

static void serve_stats(mock_routes_t *rt, mock_conn_t *c)
{
    uint64_t connections;
    size_t open;
    gw_buf_t b;
    mock_server_counts(mock_conn_server(c), &connections, &open);
    gw_buf_init(&b);
    /* open_connections counts this /stats connection too. */
    MOCK_APPENDF(&b, "{\"requests\":%" PRIu64 ",\"connections\":%" PRIu64 ",\"open_connections\":%zu}",
                 rt->requests, connections, open);
    mock_conn_reply(c, 200, "application/json", "", gw_buf_str(&b));
    gw_buf_dispose(&b);
}

/* Route one complete request (MOCK_SCENARIOS.md "Routes"); the query string is ignored. */
void mock_routes_serve(mock_routes_t *rt, mock_conn_t *c)
{
    mock_req_t r = mock_conn_req(c);
    gw_str_t path = r.url;
    const char *q = path.len ? memchr(path.base, '?', path.len) : NULL;
    if (q)
        path.len = (size_t)(q - path.base);

    if (r.method == HTTP_POST && has_suffix(path, "/chat/completions")) {
        serve_chat(rt, c, &r);
    } else if (r.method == HTTP_POST && has_suffix(path, "/responses")) {
        serve_responses(rt, c, &r, MOCK_ROUTE_RESPONSES);
    } else if (r.method == HTTP_POST && has_suffix(path, "/invocations")) {
        serve_responses(rt, c, &r, MOCK_ROUTE_INVOCATIONS);
    } else if (r.method == HTTP_GET && gw_str_eq(path, "/health")) {
        mock_conn_reply(c, 200, "application/json", "", GW_STR_LIT("{\"status\":\"ok\"}"));
    } else if (r.method == HTTP_GET && gw_str_eq(path, "/stats")) {
        serve_stats(rt, c);
    } else if (r.method == HTTP_GET && gw_str_eq(path, "/trace-headers")) {
        serve_trace_headers(rt, c);
    } else if (r.method == HTTP_GET && gw_str_eq(path, "/last-request")) {
        if (rt->have_last)
            mock_conn_reply(c, 200, "application/json", "", gw_buf_str(&rt->last));
        else
            mock_conn_reply_error(c, 404, "not_found_error", GW_STR_LIT("no chat request received yet"));
    } else {
        mock_conn_reply_error(c, 404, "not_found_error", GW_STR_LIT("not found"));
    }
}
