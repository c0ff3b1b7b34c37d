#include "tables/row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tables/record.h"
#include "tables/redact.h"

struct tb_row_writer {
    tb_sink_t *sink;
    gw_buf_t row; /** scratch for serialising one row at a time */
};

tb_row_writer_t *tb_row_writer_new(tb_sink_t *sink)
{
    tb_row_writer_t *w = gw_xcalloc(1, sizeof(*w));
    w->sink = sink;
    return w;
}

void tb_row_writer_free(tb_row_writer_t *w)
{
    if (!w)
        return;
    gw_buf_dispose(&w->row);
    free(w);
}

/* Estimate for streams without upstream usage (INFERENCE_TABLES.md §7.4): (chars + 1) / 4. */
static size_t prompt_chars(const gw_request_t *req)
{
    if (!req->input)
        return 0;
    size_t n = req->instructions ? req->instructions->str.len : 0;
    if (req->input->type == GW_JSON_STRING)
        return n + req->input->str.len;
    gw_buf_t tmp;
    gw_buf_init(&tmp);
    for (const gw_json_t *it = req->input->child; it; it = it->next) {
        gw_buf_reset(&tmp);
        gw_request_content_text(gw_json_get(it, "content"), &tmp);
        gw_request_content_text(gw_json_get(it, "output"), &tmp);
        n += tmp.len + gw_json_get_str(it, "arguments").len;
    }
    gw_buf_dispose(&tmp);
    return n;
}

void tb_row_tokens(const gw_call_summary_t *s, tb_tokens_t *t)
{
    memset(t, 0, sizeof(*t));
    if (s->usage && s->usage->present) {
        t->input = s->usage->input;
        t->output = s->usage->output;
        t->cached = s->usage->cached;
        t->reasoning = s->usage->reasoning;
        t->source = "upstream";
    } else if (s->dispatch_ns && s->req_parsed) {
        t->input = (int64_t)(prompt_chars(s->req) + 1) / 4;
        t->output = ((s->output_chars > 0 ? s->output_chars : 0) + 1) / 4;
        t->source = "estimated";
    }
}

static void attempts_json(const gw_call_summary_t *s, gw_buf_t *out)
{
    gw_jgen_t *j = gw_jgen_new(out);
    gw_jgen_array_open(j);
    for (int i = 0; i < s->n_attempts; i++) {
        const gw_attempt_t *at = &s->attempts[i];
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "served_entity_name", at->entity);
        gw_jgen_kv_cstr(j, "replica", at->replica);
        gw_jgen_kv_int(j, "started_ms", at->started_ms);
        gw_jgen_kv_int(j, "duration_ms", at->duration_ms);
        gw_jgen_lit(j, "status_code");
        if (at->status)
            gw_jgen_int(j, at->status);
        else
            gw_jgen_null(j);
        gw_jgen_kv_cstr(j, "error_code", at->error_code);
        gw_jgen_kv_cstr(j, "outcome", at->outcome ? at->outcome : "cancelled");
        gw_jgen_map_close(j);
    }
    gw_jgen_array_close(j);
    gw_jgen_free(j);
}

/* The row's columns from the summary (INFERENCE_TABLES.md §2). */
static void fill(const gw_call_summary_t *s, char entity_id[33], tb_rec_t *rec)
{
    rec->databricks_request_id = s->request_id;
    rec->request_time_us = s->start_unix_us;
    rec->client_request_id = s->client_request_id;
    rec->requester = s->requester;
    rec->requester_groups = s->requester_groups;
    rec->n_requester_groups = s->n_requester_groups;
    rec->rate_limit_scope = s->rate_limit_scope;
    rec->status_code = s->status ? s->status : 499;
    rec->sampling_fraction = s->served ? s->served->sampling_rate : 1.0;
    rec->execution_duration_ms =
        s->dispatch_ns ? gw_summary_ms(s->dispatch_ns, s->upstream_end_ns ? s->upstream_end_ns : s->end_ns) : -1;
    rec->request = s->body.base ? s->body : GW_STR_LIT("");
    rec->request_bytes = s->body_bytes;
    rec->request_complete = s->body_complete;
    rec->response = s->response;
    rec->response_partial = s->response_partial;
    if (s->served) {
        const gw_endpoint_cfg_t *routed = s->routed ? s->routed : s->served;
        tb_rec_entity_id(routed->name, s->served->name, s->cfg->version, entity_id);
        rec->served_entity_id = entity_id;
        rec->endpoint_name = routed->name;
        rec->served_entity_name = s->served->name;
        rec->adapter = s->adapter;
        rec->upstream_model = s->upstream_model.len ? s->upstream_model : gw_str(s->served->model);
    }
    rec->front_route = gw_route_front_name(s->route);
    rec->upstream_replica = s->upstream_peer;
    rec->attempt_count = s->n_attempts;
    rec->fallback_used = s->fallback_used;
    rec->stored = s->stored;
    rec->dropped_tools = s->req->dropped_tools;
    rec->n_dropped_tools = s->req->n_dropped_tools;
    rec->gateway_instance = s->instance;
    rec->config_version = s->cfg->version;
    rec->total_duration_ms = gw_summary_ms(s->start_ns, s->end_ns);
    rec->time_to_first_byte_ms = s->first_byte_ns ? gw_summary_ms(s->start_ns, s->first_byte_ns) : -1;
    bool streamed = s->req->stream;
    rec->time_to_first_token_ms = streamed && s->first_token_ns ? gw_summary_ms(s->start_ns, s->first_token_ns) : -1;
    rec->queue_ms = s->dispatch_ns ? gw_summary_ms(s->start_ns, s->dispatch_ns) : -1;
    rec->stream = streamed;
    rec->finish_status = s->finish_status;
    rec->error_code = s->error_code;
    rec->error_message = s->error_message;
    tb_tokens_t t;
    tb_row_tokens(s, &t);
    rec->has_tokens = t.source != NULL;
    rec->input_tokens = t.input;
    rec->output_tokens = t.output;
    rec->cached_input_tokens = t.cached;
    rec->reasoning_tokens = t.reasoning;
    rec->token_count_source = t.source;
    rec->usage_context = s->req->usage_context;
}

void tb_row_observe(const gw_call_summary_t *s, void *ud)
{
    tb_row_writer_t *w = ud;
    if (!s->loggable)
        return;
    tb_rec_t rec = {0};
    char entity_id[33];
    fill(s, entity_id, &rec);
    gw_buf_t att, red_req, red_resp;
    gw_buf_init(&att);
    gw_buf_init(&red_req);
    gw_buf_init(&red_resp);
    attempts_json(s, &att);
    rec.attempts = gw_buf_str(&att);
    /* Redaction (issue 3): configured paths never reach a table, in either payload. */
    const gw_tables_cfg_t *tc = &s->cfg->tables;
    if (tc->n_redact) {
        if (s->req->root && tb_redact_json(s->req->root, tc->redact, tc->n_redact, &red_req)) {
            rec.request = gw_buf_str(&red_req);
            rec.redacted = true;
        }
        gw_json_t *resp;
        if (rec.response.base &&
            gw_json_parse(s->arena, rec.response.base, rec.response.len, &resp, NULL) == 0 &&
            tb_redact_json(resp, tc->redact, tc->n_redact, &red_resp)) {
            rec.response = gw_buf_str(&red_resp);
            rec.redacted = true;
        }
    }
    /* Usage table (§7.4): one row for every request, before the sampling decision. */
    tb_sink_write_usage(w->sink, &rec, s->req_parsed ? (int64_t)prompt_chars(s->req) : -1,
                        s->output_chars, &w->row);
    /* Sampling (§4): decided at acceptance. With always_log_errors (default), error rows are kept
     * whatever the draw and carry fraction 1: their inclusion probability really is 1. */
    bool error_row = rec.status_code >= 400 || strcmp(rec.finish_status, "completed") != 0;
    bool keep_error = error_row && (!s->served || s->served->always_log_errors);
    if (!s->sampled_out || keep_error) {
        if (keep_error)
            rec.sampling_fraction = 1.0;
        tb_limits_t lim = {tc->max_logged_request_bytes, tc->max_logged_response_bytes};
        gw_buf_reset(&w->row);
        tb_rec_serialize(&rec, &lim, &w->row);
        char date[11], table[160];
        tb_rec_date(rec.request_time_us, date);
        snprintf(table, sizeof(table), "%s_payload", s->routed ? s->routed->name : s->served ? s->served->name : "unrouted");
        tb_sink_write(w->sink, table, date, gw_buf_str(&w->row));
    }
    gw_buf_dispose(&att);
    gw_buf_dispose(&red_req);
    gw_buf_dispose(&red_resp);
}
