/* adapters/cc_scan's memo: a chunk that differs from the previous one only in its content string
 * is read by scanning that string alone. Every result must equal a full scan's. */
#include <criterion/criterion.h>

#include <string.h>

#include "adapters/cc_scan.h"
#include "gateway/arena.h"

static bool same_str(gw_str_t a, gw_str_t b)
{
    if (!a.base || !b.base)
        return !a.base && !b.base;
    return a.len == b.len && memcmp(a.base, b.base, a.len) == 0;
}

static void assert_same(const cc_chunk_t *a, const cc_chunk_t *b, const char *chunk)
{
    cr_assert(same_str(a->model, b->model), "model differs for %s", chunk);
    cr_assert(same_str(a->content, b->content), "content differs for %s", chunk);
    cr_assert(same_str(a->finish_reason, b->finish_reason), "finish_reason differs for %s", chunk);
    cr_assert(same_str(a->reasoning_content, b->reasoning_content), "reasoning_content differs for %s", chunk);
    cr_assert(same_str(a->refusal, b->refusal), "refusal differs for %s", chunk);
    cr_assert_eq(a->choice, b->choice, "choice differs for %s", chunk);
    cr_assert_eq(a->usage, b->usage, "usage differs for %s", chunk);
}

#define CHUNK(model, delta, finish)                                                                          \
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"" model                   \
    "\",\"choices\":[{\"index\":0,\"delta\":{" delta "},\"finish_reason\":" finish "}]}"

/* Each chunk read through one memo (in order) and alone; `hit` says whether the memo was used. */
static const struct {
    const char *json;
    int rc;
    bool hit;
} seq[] = {
    {CHUNK("m", "\"role\":\"assistant\",\"content\":\"\"", "null"), CC_SCAN_OK, false},
    {CHUNK("m", "\"content\":\"Hel\"", "null"), CC_SCAN_OK, false}, /* role gone: other bytes */
    {CHUNK("m", "\"content\":\"lo, w\"", "null"), CC_SCAN_OK, true},
    {CHUNK("m", "\"content\":\"\\u00e9\\n\\\"q\\\"\"", "null"), CC_SCAN_OK, true}, /* escapes in the text */
    {CHUNK("m", "\"content\":\"\"", "null"), CC_SCAN_OK, true},
    {CHUNK("m2", "\"content\":\"x\"", "null"), CC_SCAN_OK, false},       /* another model */
    {CHUNK("m2", "\"content\":\"bad\\x\"", "null"), CC_SCAN_OTHER, false}, /* a bad escape: not ours */
    {CHUNK("m2", "\"content\":\"y\"", "null"), CC_SCAN_OK, false},
    {CHUNK("m2", "\"content\":\"z\"", "\"stop\""), CC_SCAN_OK, false},   /* the suffix differs */
    {CHUNK("m2", "\"content\":\"z\"", "\"stop\"") "x", CC_SCAN_OTHER, false}, /* trailing junk */
    {CHUNK("m2", "\"content\":\"w\"", "\"stop\""), CC_SCAN_OK, false},   /* after a failure: no memo */
    {CHUNK("m2", "\"content\":\"v\"", "\"stop\""), CC_SCAN_OK, true},
};

Test(cc_scan, memo_reads_like_a_full_scan, .timeout = 20)
{
    gw_arena_t *a = gw_arena_new();
    cc_scan_memo_t memo;
    memset(&memo, 0, sizeof(memo));
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        const char *j = seq[i].json;
        size_t n = strlen(j);
        unsigned long hits = memo.hits;
        cc_chunk_t full, fast;
        int rc_full = cc_scan_chunk(a, j, n, &full);
        int rc_fast = cc_scan_chunk_memo(&memo, a, j, n, &fast);
        cr_assert_eq(rc_full, seq[i].rc, "chunk %zu: full scan rc %d", i, rc_full);
        cr_assert_eq(rc_fast, rc_full, "chunk %zu: memo rc %d, full rc %d", i, rc_fast, rc_full);
        if (rc_full == CC_SCAN_OK)
            assert_same(&full, &fast, j);
        cr_assert_eq(memo.hits - hits, seq[i].hit ? 1u : 0u, "chunk %zu: read through the memo %s", i,
                     seq[i].hit ? "expected, not taken" : "not expected, taken");
    }
    gw_arena_free(a);
}
