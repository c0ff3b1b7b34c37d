/* The call's account for its observers: what the table row, metrics, access log and trace see. */
#include "gateway/call_int.h"

#include <string.h>

static const char *finish_status(const gw_call_t *c, int status, uint64_t dispatch_ns)
{
    if (c->rejected || !dispatch_ns)
        return status == 0 ? "cancelled" : "rejected";
    gw_finish_status_t fs = c->stream ? gw_stream_status(c->stream) : GW_FINISH_NONE;
    return fs == GW_FINISH_NONE ? "failed" : gw_finish_status_name(fs);
}

void gw__call_summarize(const gw_call_t *c, gw_call_summary_t *s)
{
    gw_req_t *r = c->r;
    memset(s, 0, sizeof(*s));
    s->request_id = c->request_id;
    s->requester = c->who.requester;
    s->requester_groups = c->who.groups;
    s->n_requester_groups = c->who.n_groups;
    s->rate_limit_scope = gw_admit_limit_scope(&c->who);
    s->rl_ticket = c->who.ticket;
    s->loggable = !c->admin;
    s->route = c->route.kind;
    s->cfg = c->cfg;
    s->routed = c->routed;
    s->served = gw__call_served(c);
    s->adapter = c->d ? gw_dispatch_adapter(c->d) : c->res.ad ? c->res.ad->name : NULL;
    s->body = gw_req_body(r);
    s->body_bytes = gw_req_body_bytes(r);
    gw_err_kind_t herr = gw_req_error(r);
    s->body_complete = herr != GW_ERR_TOO_LARGE && herr != GW_ERR_HEADERS_TOO_LARGE &&
                       herr != GW_ERR_REQUEST_TIMEOUT && herr != GW_ERR_BAD_HTTP;
    s->client_request_id = c->res.req.client_request_id;
    if (!s->client_request_id.base)
        s->client_request_id = gw_req_header(r, "x-client-request-id");
    s->req = &c->res.req;
    s->req_parsed = c->res.parsed;
    s->sampled_out = c->res.sampled_out;
    s->status = gw_req_status_sent(r);
    s->dispatch_ns = c->d ? gw_dispatch_started_ns(c->d) : 0;
    s->dispatched = s->dispatch_ns != 0;
    s->finish_status = finish_status(c, s->status, s->dispatch_ns);
    gw_str_t agg = c->stream ? gw_stream_aggregate(c->stream) : GW_STR_NULL;
    gw_finish_status_t fs = c->stream ? gw_stream_status(c->stream) : GW_FINISH_NONE;
    if (agg.len)
        s->response = agg;
    else if (c->error_body.len)
        s->response = gw_buf_str(&c->error_body);
    s->response_partial = agg.len && (fs == GW_FINISH_FAILED || fs == GW_FINISH_CANCELLED);
    s->error_code = c->error_code;
    s->error_message = c->error_message;
    const gw_error_t *se = c->stream ? gw_stream_error(c->stream) : NULL;
    if (se && !s->error_code) {
        s->error_code = gw_err_error_code(se->kind);
        s->error_message = se->message;
    }
    if (c->stream) {
        s->usage = gw_stream_usage(c->stream);
        s->upstream_model = gw_stream_upstream_model(c->stream);
        s->output_chars = (int64_t)gw_stream_output_chars(c->stream);
        s->first_token_ns = gw_stream_first_token_ns(c->stream);
        s->output_has_calls = gw_stream_output_has_calls(c->stream);
        s->incomplete_reason = gw_stream_incomplete_reason(c->stream);
    } else {
        s->output_chars = -1;
    }
    if (c->d) {
        s->attempts = gw_dispatch_attempts(c->d, &s->n_attempts);
        s->fallback_used = gw_dispatch_fallback_used(c->d);
        s->upstream_peer = gw_dispatch_peer(c->d);
        s->upstream_end_ns = gw_dispatch_ended_ns(c->d);
        s->queue_ns = gw_dispatch_queue_ns(c->d, &s->queue_waits);
    }
    s->bytes_out = gw_req_bytes_out(r);
    s->client = gw_req_peer(r);
    s->start_unix_us = gw_req_start_unix_us(r);
    s->start_ns = gw_req_start_ns(r);
    s->end_ns = uv_hrtime();
    s->first_byte_ns = gw_req_first_byte_ns(r);
    s->instance = c->ctx->instance;
    s->trace = c->trace.on ? &c->trace : NULL;
    s->arena = c->a;
    s->stored = c->stored;
}
