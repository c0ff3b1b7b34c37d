/* The ChatCompletions front of gw_stream (GW_FRONT_CHAT): the passthrough adapter hands over the
 * upstream's chunks as raw bytes; they are framed as data-only SSE (or passed as one JSON body),
 * the usage-only chunk is dropped unless the client asked for it, and a gateway-side failure after
 * commit is the error event a ChatCompletions stream carries. */
#include "gateway/stream_int.h"

#include <string.h>
#include <uv.h>

#include "gateway/json.h"


/* One SSE event from the upstream's data. A data value spanning several lines (JSON split at
 * whitespace) keeps one `data:` line per line, as SSE requires. */
static void chat_frame(gw_buf_t *out, gw_str_t data)
{
    const char *p = data.base, *end = data.base + data.len;
    gw_buf_append_cstr(out, "data: ");
    for (const char *nl; (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
        gw_buf_append(out, p, (size_t)(nl - p));
        gw_buf_append_cstr(out, "\ndata: ");
    }
    gw_buf_append(out, p, (size_t)(end - p));
    gw_buf_append_cstr(out, "\n\n");
}

/* A gateway-side failure after commit: the error object a ChatCompletions stream carries. */
void gw__chat_error_event(gw_stream_t *s)
{
    gw_buf_append_cstr(&s->out, "data: {\"error\":{\"message\":");
    gw_json_quote(&s->out, gw_str(s->err.message));
    gw_buf_append_cstr(&s->out, ",\"type\":");
    gw_json_quote(&s->out, gw_str(gw_err_type(s->err.kind)));
    gw_buf_append_cstr(&s->out, ",\"param\":null,\"code\":");
    gw_json_quote(&s->out, gw_str(gw_err_code(s->err.kind)));
    gw_buf_append_cstr(&s->out, "}}\n\n");
}

int gw__stream_on_raw(void *ctx, gw_str_t bytes, ad_raw_kind_t kind, size_t tokens)
{
    gw_stream_t *s = ctx;
    if (s->status != GW_FINISH_NONE)
        return -1;
    if ((kind != AD_RAW_JSON) != s->o.stream) {
        gw_stream_fail(s, &(gw_error_t){.kind = GW_ERR_UPSTREAM,
                                        .message = s->o.stream ? "upstream answered one JSON object to a streaming request"
                                                               : "upstream answered a stream to a request without stream"});
        return -1;
    }
    gw__stream_on_begin(s);
    if (tokens) {
        if (!s->first_token_ns)
            s->first_token_ns = uv_hrtime();
        s->output_chars += tokens;
        if (gw__stream_over_cap(s, tokens))
            return -1; /* the passthrough aggregates what it forwards: same bound */
    }
    if (kind == AD_RAW_JSON)
        gw_buf_append_str(&s->out, bytes);
    else if (kind != AD_RAW_SSE_USAGE || s->o.req->include_usage)
        chat_frame(&s->out, bytes);
    if (kind == AD_RAW_SSE_ERROR)
        s->error_sent = true;
    return 0;
}

void gw__stream_on_aggregate(void *ctx, gw_str_t json)
{
    gw_stream_t *s = ctx;
    gw_buf_reset(&s->aggregate);
    gw_buf_append_str(&s->aggregate, json);
}

