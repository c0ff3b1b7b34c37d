/* Read-only accessors of a stream, for dispatch, the call and its observers. */
#include "gateway/stream_int.h"

const ad_emit_t *gw_stream_emitter(gw_stream_t *s)
{
    return &s->emit;
}

gw_buf_t *gw_stream_out(gw_stream_t *s)
{
    return &s->out;
}

bool gw_stream_begun(const gw_stream_t *s)
{
    return s->begun;
}

bool gw_stream_committed(const gw_stream_t *s)
{
    return s->committed;
}

bool gw_stream_ended(const gw_stream_t *s)
{
    return s->status != GW_FINISH_NONE;
}

gw_finish_status_t gw_stream_status(const gw_stream_t *s)
{
    return s->status;
}

const char *gw_finish_status_name(gw_finish_status_t st)
{
    static const char *const names[] = {"in_progress", "completed", "incomplete", "failed", "cancelled"};
    return names[st];
}

const gw_error_t *gw_stream_error(const gw_stream_t *s)
{
    return s->err_message ? &s->err : NULL;
}

gw_str_t gw_stream_aggregate(const gw_stream_t *s)
{
    return gw_buf_str(&s->aggregate);
}

const ad_usage_t *gw_stream_usage(const gw_stream_t *s)
{
    return &s->usage;
}

gw_str_t gw_stream_upstream_model(const gw_stream_t *s)
{
    return gw_buf_str(&s->upstream_model);
}

uint64_t gw_stream_first_token_ns(const gw_stream_t *s)
{
    return s->first_token_ns;
}

size_t gw_stream_output_chars(const gw_stream_t *s)
{
    return s->output_chars;
}

bool gw_stream_output_has_calls(const gw_stream_t *s)
{
    for (size_t i = 0; i < s->n_items; i++)
        if (s->items[i].kind == AD_ITEM_FUNCTION_CALL)
            return true;
    return false;
}

const char *gw_stream_incomplete_reason(const gw_stream_t *s)
{
    return s->status == GW_FINISH_INCOMPLETE ? s->incomplete_reason : NULL;
}
