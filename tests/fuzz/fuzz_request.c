/* Responses request parser and validator (gateway/request.c gw_request_parse).
 * Input: one control byte (bit 0: Databricks route), then the request body. */
#include "fuzz.h"
#include "gateway/arena.h"
#include "gateway/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gw_arena_t *a = gw_arena_new();
    gw_request_t req;
    gw_error_t err = {0};
    (void)gw_request_parse(a, gw_str_n((const char *)data + 1, size - 1), data[0] & 1, &req, &err);
    gw_arena_free(a);
    return 0;
}
