#include <criterion/criterion.h>
#include <string.h>

#include "tables/redact.h"

static char *redact(const char *json, const char *const *paths, size_t n, size_t *hits)
{
    gw_arena_t *a = gw_arena_new();
    gw_json_t *v;
    cr_assert_eq(gw_json_parse(a, json, strlen(json), &v, NULL), 0);
    gw_buf_t out;
    gw_buf_init(&out);
    *hits = tb_redact_json(v, paths, n, &out);
    char *s = gw_xstrndup(out.base, out.len);
    gw_buf_dispose(&out);
    gw_arena_free(a);
    return s;
}

Test(redact, keys_wildcards_and_arrays, .timeout = 10)
{
    static const char *const paths[] = {"metadata.ssn", "input.*.content", "deep.*.x.*"};
    size_t hits;
    char *s = redact("{\"metadata\":{\"ssn\":\"1\",\"t\":\"k\"},\"input\":[{\"role\":\"user\",\"content\":\"a\"},"
                     "{\"content\":[{\"text\":\"b\"}]}],\"deep\":{\"q\":{\"x\":[1,{\"y\":2}]}},\"n\":1.50}",
                     paths, 3, &hits);
    cr_assert_str_eq(s, "{\"metadata\":{\"ssn\":\"[REDACTED]\",\"t\":\"k\"},\"input\":[{\"role\":\"user\",\"content\":"
                        "\"[REDACTED]\"},{\"content\":\"[REDACTED]\"}],\"deep\":{\"q\":{\"x\":[\"[REDACTED]\","
                        "\"[REDACTED]\"]}},\"n\":1.50}");
    cr_assert_eq(hits, 5);
    free(s);
}

Test(redact, no_match_counts_zero_and_keeps_values, .timeout = 10)
{
    static const char *const paths[] = {"metadata.ssn", "a.b.c"};
    size_t hits;
    char *s = redact("{\"metadata\":{\"team\":\"blue\"},\"a\":{\"b\":\"not an object\"},\"x\":[true,null]}", paths, 2,
                     &hits);
    cr_assert_eq(hits, 0);
    cr_assert_str_eq(s, "{\"metadata\":{\"team\":\"blue\"},\"a\":{\"b\":\"not an object\"},\"x\":[true,null]}");
    free(s);
}

Test(redact, whole_subtree_and_top_level_star, .timeout = 10)
{
    static const char *const paths[] = {"custom_inputs", "*"};
    size_t hits;
    char *s = redact("{\"custom_inputs\":{\"k\":[1,2]},\"b\":2}", paths, 1, &hits);
    cr_assert_str_eq(s, "{\"custom_inputs\":\"[REDACTED]\",\"b\":2}");
    cr_assert_eq(hits, 1);
    free(s);
    s = redact("{\"a\":1,\"b\":{\"c\":2}}", paths + 1, 1, &hits);
    cr_assert_str_eq(s, "{\"a\":\"[REDACTED]\",\"b\":\"[REDACTED]\"}");
    cr_assert_eq(hits, 2);
    free(s);
}

Test(redact, path_check, .timeout = 10)
{
    cr_assert_null(tb_redact_check("a.b"));
    cr_assert_null(tb_redact_check("*"));
    cr_assert_not_null(tb_redact_check(""));
    cr_assert_not_null(tb_redact_check(".a"));
    cr_assert_not_null(tb_redact_check("a..b"));
    cr_assert_not_null(tb_redact_check("a."));
}
