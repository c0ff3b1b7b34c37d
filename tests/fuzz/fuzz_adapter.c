/* One adapter's response path (FUZZ_ADAPTER: GW_ADAPTER_CHAT_COMPLETIONS or GW_ADAPTER_RESPONSES):
 * start/feed/finish through ad_vtable_t into gw_stream's emitter, as gateway/call drives it.
 * Input: one control byte (bit 0: SSE, else one JSON body; bit 1: Databricks front; bit 2: stream
 * to the client; bit 3: MLflow flavour; bits 4-7: read size, 0 = all at once), then the upstream
 * body. */
#include <string.h>

#include "adapters/adapter.h"
#include "fuzz.h"
#include "gateway/arena.h"
#include "gateway/log.h"
#include "gateway/request.h"
#include "gateway/stream.h"

static const char REQ_BODY[] =
    "{\"model\":\"m\",\"input\":\"Weather?\",\"instructions\":\"Be terse.\",\"metadata\":{\"k\":\"v\"},"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gw_log_set_level(GW_LOG_ERROR);
    uint8_t ctl = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    size_t step = (ctl >> 4) ? (size_t)(ctl >> 4) * 7 : (len ? len : 1);
    bool dbx = ctl & 2;

    const ad_vtable_t *ad = ad_for(FUZZ_ADAPTER);
    gw_arena_t *a = gw_arena_new(), *scratch = gw_arena_new();
    gw_request_t req;
    gw_error_t err = {0};
    if (gw_request_parse(a, gw_str(REQ_BODY), dbx, &req, &err) != 0)
        __builtin_trap(); /* the fixed request must parse */
    gw_upstream_cfg_t up = {.url = "http://127.0.0.1:9/v1", .weight = 1};
    gw_endpoint_cfg_t ep = {
        .name = "m",
        .adapter = FUZZ_ADAPTER,
        .flavor = (ctl & 8) ? GW_FLAVOR_MLFLOW : GW_FLAVOR_OPENAI,
        .model = "upstream-model",
        .upstreams = &up,
        .n_upstreams = 1,
        .max_tokens_field = "max_tokens",
        .sampling_rate = 1.0,
    };
    gw_limits_cfg_t lim = {.max_body_bytes = 1 << 20, .max_header_bytes = 16384, .max_event_bytes = 1 << 16};
    gw_stream_opts_t so = {
        .front = dbx ? GW_FRONT_DATABRICKS : GW_FRONT_OPENAI,
        .stream = ctl & 4,
        .req = &req,
        .response_id = "resp_0123456789abcdef0123456789abcdef",
        .request_id = "00000000-0000-4000-8000-000000000000",
        .model = req.model,
        .created_at = 1700000000,
    };
    gw_stream_t *s = gw_stream_new(&so);
    const char *ct = (ctl & 1) ? "text/event-stream" : "application/json";
    ad_state_t *st = ad->start(a, scratch, &ep, &lim, gw_stream_emitter(s), gw_str(ct));
    int rc = 0;
    for (size_t off = 0; off < len && rc >= 0; off += step) {
        size_t n = len - off < step ? len - off : step;
        rc = ad->feed(st, in + off, n);
        gw_buf_reset(gw_stream_out(s));
    }
    if (rc >= 0)
        (void)ad->finish(st);
    (void)gw_stream_aggregate(s);
    ad->dispose(st);
    gw_stream_free(s);
    gw_arena_free(a);
    gw_arena_free(scratch);
    return 0;
}
