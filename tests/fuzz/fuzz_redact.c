/* Table-row redaction (tables/redact.c tb_redact_json) on arbitrary JSON: parsed with gw_json (as
 * tables/row does) and re-serialised with a fixed set of paths, wildcards included.
 * Input: the JSON document. */
#include "fuzz.h"
#include "gateway/arena.h"
#include "gateway/json.h"
#include "tables/redact.h"

static const char *const PATHS[] = {"metadata.ssn", "input.*.content", "custom_inputs.*", "*", "a.*.b.*"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_arena_t *a = gw_arena_new();
    gw_json_t *v = NULL;
    const char *why = NULL;
    if (gw_json_parse(a, (const char *)data, size, &v, &why) == 0 && v) {
        gw_buf_t out;
        gw_buf_init(&out);
        for (size_t n = 1; n <= sizeof(PATHS) / sizeof(PATHS[0]); n++) {
            gw_buf_reset(&out);
            (void)tb_redact_json(v, PATHS + (n - 1), 1, &out);
        }
        gw_buf_reset(&out);
        (void)tb_redact_json(v, PATHS, sizeof(PATHS) / sizeof(PATHS[0]), &out);
        gw_buf_dispose(&out);
    }
    gw_arena_free(a);
    return 0;
}
