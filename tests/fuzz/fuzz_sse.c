/* SSE parser (gateway/sse): events and comments from arbitrary bytes cut at arbitrary points.
 * Input: one control byte (read size, 0 = all at once), then the stream. */
#include <string.h>

#include "fuzz.h"
#include "gateway/sse.h"

static int on_event(void *ud, gw_str_t event, gw_str_t data)
{
    size_t *n = ud;
    /* Touch every byte: views must be valid for the whole callback. */
    for (size_t i = 0; i < event.len; i++)
        *n += (unsigned char)event.base[i];
    for (size_t i = 0; i < data.len; i++)
        *n += (unsigned char)data.base[i];
    return 0;
}

static void on_comment(void *ud, gw_str_t text)
{
    size_t *n = ud;
    for (size_t i = 0; i < text.len; i++)
        *n += (unsigned char)text.base[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = test_fuzz_step(data[0], size - 1);
    size_t sum = 0;
    gw_sse_parser_t *p = gw_sse_parser_new(4096, on_event, on_comment, &sum);
    for (size_t off = 1; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (gw_sse_parser_feed(p, (const char *)data + off, n) != 0)
            break;
    }
    (void)gw_sse_parser_has_partial(p);
    gw_sse_parser_free(p);
    return 0;
}
