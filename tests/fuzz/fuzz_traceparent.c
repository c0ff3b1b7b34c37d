/* W3C trace context parsing (gateway/traceparent): the client's traceparent and tracestate
 * header values. Input: one control byte (bit 0: tracestate, else traceparent), then the value.
 * A traceparent that parses must format back to itself (version 00) and parse again the same. */
#include <string.h>

#include "fuzz.h"
#include "gateway/traceparent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gw_str_t v = gw_str_n((const char *)data + 1, size - 1);
    if (data[0] & 1) {
        (void)gw_tp_state_valid(v);
        return 0;
    }
    gw_tp_t t, again;
    if (gw_tp_parse(v, &t) < 0)
        return 0;
    char out[GW_TP_HEADER_LEN + 1];
    gw_tp_format(out, t.trace_id, t.span_id, t.flags);
    if (gw_tp_parse(gw_str(out), &again) < 0 || memcmp(&t, &again, sizeof(t)) != 0)
        __builtin_trap();
    if (v.len == GW_TP_HEADER_LEN && v.base[0] == '0' && v.base[1] == '0' && memcmp(out, v.base, v.len) != 0)
        __builtin_trap();
    return 0;
}
