/* The stored-object routes' outside input: the path (gw_route_resolve on /v1/responses/... and
 * /v1/conversations/...) and the query string (gw__stored_query: after, before, limit, order,
 * include, percent-decoding), then one page of a fixed item list with what the query set.
 * Input: control byte (bit 0: a conversation items route, bit 1: the bytes are a path) + bytes. */
#include "fuzz.h"
#include "gateway/arena.h"
#include "gateway/stored_int.h"

static const char ITEMS[] = "[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"},{\"x\":1},{\"id\":\"e\"}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gw_arena_t *a = gw_arena_new();
    gw_str_t in = gw_str_n((const char *)data + 1, size - 1);
    if (data[0] & 2) {
        gw_route_t route;
        gw_route_resolve(GW_STR_LIT("GET"), in, &route);
        gw_route_resolve(GW_STR_LIT("DELETE"), in, &route);
    } else {
        stored_t q = {.a = a, .kind = (data[0] & 1) ? GW_ROUTE_CONV_ITEMS : GW_ROUTE_STORED_INPUT, .limit = 20};
        gw_error_t err = {0};
        gw_json_t *items;
        if (gw__stored_query(&q, in, &err) == 0 && gw_json_parse(a, ITEMS, sizeof(ITEMS) - 1, &items, NULL) == 0) {
            gw_buf_t b;
            gw_buf_init(&b);
            gw__stored_page(&q, items, &b);
            gw_buf_dispose(&b);
        }
    }
    gw_arena_free(a);
    return 0;
}
