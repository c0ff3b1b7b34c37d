#include "tables/record.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void tb_rec_date(int64_t unix_us, char out[11])
{
    time_t t = (time_t)(unix_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100);
    memcpy(out, tmp, 10);
    out[10] = '\0';
}

static void timestamp(int64_t unix_us, char out[64])
{
    time_t t = (time_t)(unix_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(unix_us % 1000000));
}

/* SHA-256 is not in our dependencies; two independent FNV-1a-64 lanes give the 128 stable bits
 * the column needs (an identifier, not a security boundary). */
void tb_rec_entity_id(const char *endpoint, const char *entity, const char *version, char out[33])
{
    uint64_t h[2] = {1469598103934665603ULL, 0x84222325cbf29ce4ULL};
    const char *parts[3] = {endpoint, entity, version};
    for (int lane = 0; lane < 2; lane++)
        for (int p = 0; p < 3; p++) {
            const char *s = parts[p] ? parts[p] : "";
            for (size_t i = 0; i <= strlen(s); i++) { /* includes the \0 separator */
                h[lane] ^= (unsigned char)s[i] + (uint64_t)lane * 0x9e;
                h[lane] *= 1099511628211ULL;
            }
        }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h[0], (unsigned long long)h[1]);
}

/* `,"k":` — keys are the column names, constant and plain: no escaping, no format string. */
static void key(gw_buf_t *o, const char *k)
{
    size_t n = strlen(k);
    gw_buf_reserve(o, n + 4);
    char *p = o->base + o->len;
    p[0] = ',';
    p[1] = '"';
    memcpy(p + 2, k, n);
    p[n + 2] = '"';
    p[n + 3] = ':';
    o->len += n + 4;
}

static void kv_str(gw_buf_t *o, const char *k, gw_str_t v)
{
    key(o, k);
    if (v.base)
        gw_json_quote(o, v);
    else
        gw_buf_append_cstr(o, "null");
}

static void kv_cstr(gw_buf_t *o, const char *k, const char *v)
{
    kv_str(o, k, v ? gw_str(v) : GW_STR_NULL);
}

static void kv_names(gw_buf_t *o, const char *k, const char *const *v, size_t n)
{
    key(o, k);
    gw_buf_append(o, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            gw_buf_append(o, ",", 1);
        gw_json_quote(o, gw_str(v[i]));
    }
    gw_buf_append(o, "]", 1);
}

static void kv_int(gw_buf_t *o, const char *k, int64_t v, bool present)
{
    char tmp[24];
    key(o, k);
    gw_buf_append_str(o, present ? gw_int_str(tmp, v) : GW_STR_LIT("null"));
}

static void kv_bool(gw_buf_t *o, const char *k, bool v)
{
    key(o, k);
    gw_buf_append_str(o, v ? GW_STR_LIT("true") : GW_STR_LIT("false"));
}

/* client_request_id stored verbatim up to 256 bytes, cut on a character boundary (§2.1 column 3). */
static gw_str_t client_request_id(const tb_rec_t *r)
{
    gw_str_t cri = r->client_request_id;
    if (cri.base && cri.len > 256) {
        cri.len = 256;
        while (cri.len && ((unsigned char)cri.base[cri.len] & 0xC0) == 0x80)
            cri.len--; /* never cut inside a character */
    }
    return cri;
}

/* usage_context: string values only (§2.2), null when the body had none. */
static void usage_context(gw_buf_t *o, const gw_json_t *uc)
{
    gw_buf_append_cstr(o, ",\"usage_context\":");
    if (!uc) {
        gw_buf_append_cstr(o, "null");
        return;
    }
    gw_buf_append(o, "{", 1);
    bool first = true;
    for (const gw_json_t *m = uc->child; m; m = m->next) {
        if (m->type != GW_JSON_STRING)
            continue;
        if (!first)
            gw_buf_append(o, ",", 1);
        gw_json_quote(o, m->key);
        gw_buf_append(o, ":", 1);
        gw_json_quote(o, m->str);
        first = false;
    }
    gw_buf_append(o, "}", 1);
}

void tb_rec_serialize(const tb_rec_t *r, const tb_limits_t *lim, gw_buf_t *o)
{
    char date[11], ts[64];
    tb_rec_date(r->request_time_us, date);
    timestamp(r->request_time_us, ts);

    /* logging_error_codes in the order of INFERENCE_TABLES.md §3.2. */
    bool req_null = !r->request.base || !r->request_complete || r->request.len > lim->max_request_bytes;
    bool resp_null = !r->response.base || r->response.len > lim->max_response_bytes;
    const char *codes[8];
    int nc = 0;
    if (r->request_complete && r->request.base && r->request.len > lim->max_request_bytes)
        codes[nc++] = "MAX_REQUEST_SIZE_EXCEEDED";
    if (r->response.base && r->response.len > lim->max_response_bytes)
        codes[nc++] = "MAX_RESPONSE_SIZE_EXCEEDED";
    if (!r->request_complete)
        codes[nc++] = "REQUEST_NOT_CAPTURED";
    if (!r->response.base)
        codes[nc++] = "RESPONSE_NOT_CAPTURED";
    if (r->response_partial && r->response.base)
        codes[nc++] = "RESPONSE_PARTIAL";
    gw_str_t cri = client_request_id(r);
    if (cri.base && cri.len < r->client_request_id.len)
        codes[nc++] = "CLIENT_REQUEST_ID_TRUNCATED";

    gw_buf_append_cstr(o, "{\"databricks_request_id\":");
    gw_json_quote(o, gw_str(r->databricks_request_id));
    kv_cstr(o, "request_date", date);
    kv_str(o, "client_request_id", cri);
    kv_cstr(o, "request_time", ts);
    kv_int(o, "status_code", r->status_code, true);
    gw_buf_appendf(o, ",\"sampling_fraction\":%.17g", r->sampling_fraction);
    kv_int(o, "execution_duration_ms", r->execution_duration_ms, r->execution_duration_ms >= 0);
    kv_str(o, "request", req_null ? GW_STR_NULL : r->request);
    kv_str(o, "response", resp_null ? GW_STR_NULL : r->response);
    gw_buf_append_cstr(o, ",\"logging_error_codes\":[");
    for (int i = 0; i < nc; i++) {
        if (i)
            gw_buf_append(o, ",", 1);
        gw_json_quote(o, gw_str(codes[i]));
    }
    gw_buf_append(o, "]", 1);
    kv_cstr(o, "served_entity_id", r->served_entity_id);
    kv_cstr(o, "requester", r->requester);
    /* Extension columns (§2.2). */
    kv_cstr(o, "schema_version", TB_SCHEMA_VERSION);
    kv_cstr(o, "endpoint_name", r->endpoint_name);
    kv_cstr(o, "front_route", r->front_route);
    kv_cstr(o, "served_entity_name", r->served_entity_name);
    kv_cstr(o, "adapter", r->adapter);
    kv_str(o, "upstream_model", r->upstream_model);
    kv_cstr(o, "upstream_replica", r->upstream_replica);
    kv_int(o, "attempt_count", r->attempt_count, true);
    gw_buf_append_cstr(o, ",\"attempts\":");
    gw_buf_append_str(o, r->attempts.base ? r->attempts : GW_STR_LIT("[]"));
    kv_bool(o, "fallback_used", r->fallback_used);
    kv_names(o, "dropped_tools", r->dropped_tools, r->n_dropped_tools);
    kv_cstr(o, "gateway_instance", r->gateway_instance);
    kv_cstr(o, "config_version", r->config_version);
    kv_int(o, "total_duration_ms", r->total_duration_ms, true);
    kv_int(o, "time_to_first_byte_ms", r->time_to_first_byte_ms, r->time_to_first_byte_ms >= 0);
    kv_int(o, "time_to_first_token_ms", r->time_to_first_token_ms, r->time_to_first_token_ms >= 0);
    kv_int(o, "queue_ms", r->queue_ms, r->queue_ms >= 0);
    kv_bool(o, "stream", r->stream);
    kv_cstr(o, "finish_status", r->finish_status);
    kv_cstr(o, "error_code", r->error_code);
    gw_str_t em = r->error_message ? gw_str(r->error_message) : GW_STR_NULL;
    if (em.len > 4096)
        em.len = 4096;
    kv_str(o, "error_message", em);
    kv_cstr(o, "rate_limit_scope", r->rate_limit_scope);
    kv_int(o, "input_tokens", r->input_tokens, r->has_tokens);
    kv_int(o, "output_tokens", r->output_tokens, r->has_tokens);
    kv_int(o, "cached_input_tokens", r->cached_input_tokens, r->has_tokens);
    kv_int(o, "reasoning_tokens", r->reasoning_tokens, r->has_tokens);
    kv_cstr(o, "token_count_source", r->token_count_source ? r->token_count_source : "none");
    kv_int(o, "request_bytes", (int64_t)r->request_bytes, true);
    kv_int(o, "response_bytes", (int64_t)r->response.len, r->response.base != NULL);
    usage_context(o, r->usage_context);
    kv_bool(o, "redacted", r->redacted);
    kv_names(o, "requester_groups", r->requester_groups, r->n_requester_groups);
    kv_bool(o, "stored", r->stored);
    gw_buf_append_cstr(o, "}\n");
}

void tb_rec_serialize_usage(const tb_rec_t *r, int64_t input_chars, int64_t output_chars, gw_buf_t *o)
{
    char date[11], ts[64];
    tb_rec_date(r->request_time_us, date);
    timestamp(r->request_time_us, ts);
    /* Compatible columns of system.serving.endpoint_usage, in its order (§7.4). */
    gw_buf_append_cstr(o, "{\"databricks_request_id\":");
    gw_json_quote(o, gw_str(r->databricks_request_id));
    kv_str(o, "client_request_id", client_request_id(r));
    kv_cstr(o, "requester", r->requester);
    kv_cstr(o, "request_time", ts);
    kv_int(o, "status_code", r->status_code, true);
    kv_cstr(o, "served_entity_id", r->served_entity_id);
    kv_int(o, "input_token_count", r->input_tokens, r->has_tokens);
    kv_int(o, "output_token_count", r->output_tokens, r->has_tokens);
    kv_int(o, "input_character_count", input_chars, input_chars >= 0);
    kv_int(o, "output_character_count", output_chars, output_chars >= 0);
    kv_bool(o, "request_streaming", r->stream);
    usage_context(o, r->usage_context);
    /* Extension columns (§7.4 [ext]); request_date is the partition key, as in the payload table. */
    kv_cstr(o, "request_date", date);
    kv_cstr(o, "schema_version", TB_SCHEMA_VERSION);
    kv_cstr(o, "endpoint_name", r->endpoint_name);
    kv_int(o, "latency_ms", r->total_duration_ms, true);
    kv_int(o, "time_to_first_byte_ms", r->time_to_first_byte_ms, r->time_to_first_byte_ms >= 0);
    kv_int(o, "cached_input_tokens", r->cached_input_tokens, r->has_tokens);
    kv_int(o, "total_token_count", r->input_tokens + r->output_tokens, r->has_tokens);
    kv_cstr(o, "token_count_source", r->token_count_source ? r->token_count_source : "none");
    kv_int(o, "attempt_count", r->attempt_count, true);
    kv_bool(o, "fallback_used", r->fallback_used);
    kv_cstr(o, "finish_status", r->finish_status);
    kv_cstr(o, "rate_limit_scope", r->rate_limit_scope);
    kv_names(o, "requester_groups", r->requester_groups, r->n_requester_groups);
    gw_buf_append_cstr(o, "}\n");
}
