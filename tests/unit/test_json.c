/* gw_json_escape (the one JSON string escaper, eight bytes at a time) against a byte-at-a-time
 * reference, for every byte value at every position of the 8-byte window, and round trips through
 * the parser. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/json.h"

/* The reference: RFC 8259 §7, short forms where they exist, \u00xx for other controls. */
static void reference_escape(gw_buf_t *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        char tmp[8];
        switch (c) {
        case '"': gw_buf_append_cstr(b, "\\\""); break;
        case '\\': gw_buf_append_cstr(b, "\\\\"); break;
        case '\n': gw_buf_append_cstr(b, "\\n"); break;
        case '\r': gw_buf_append_cstr(b, "\\r"); break;
        case '\t': gw_buf_append_cstr(b, "\\t"); break;
        case '\b': gw_buf_append_cstr(b, "\\b"); break;
        case '\f': gw_buf_append_cstr(b, "\\f"); break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof(tmp), "\\u%04x", c);
                gw_buf_append_cstr(b, tmp);
            } else {
                gw_buf_append(b, &c, 1);
            }
        }
    }
}

static void check_same(const unsigned char *s, size_t n)
{
    gw_buf_t got, want;
    gw_buf_init(&got);
    gw_buf_init(&want);
    gw_json_escape(&got, (const char *)s, n);
    reference_escape(&want, s, n);
    cr_assert_eq(got.len, want.len, "escaped length %zu, reference %zu (input of %zu bytes)", got.len, want.len, n);
    cr_assert(got.len == 0 || memcmp(got.base, want.base, got.len) == 0, "escaped bytes differ from the reference");
    gw_buf_dispose(&got);
    gw_buf_dispose(&want);
}

Test(json_escape, every_ascii_byte_at_every_window_position)
{
    /* 0x00..0x7f: the escaper works on valid UTF-8, where a byte >= 0x80 is never escaped. */
    for (int c = 0; c < 0x80; c++)
        for (size_t len = 1; len <= 24; len++)
            for (size_t pos = 0; pos < len; pos++) {
                unsigned char s[24];
                memset(s, 'a', sizeof(s));
                s[pos] = (unsigned char)c;
                check_same(s, len);
            }
}

Test(json_escape, multibyte_text_and_runs_of_escapes)
{
    const char *cases[] = {
        "",
        "plain ascii that is longer than eight bytes",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 with \"quotes\" and \\ slashes",
        "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
        "\n\n\n\n\n\n\n\n\t\t\t\t\t\t\t\t\x01\x1f\x7f",
        "\xff\xfe\x80\x81\x82\x83\x84\x85\x86\x87 high bytes pass through",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        check_same((const unsigned char *)cases[i], strlen(cases[i]));
}

Test(json_quote, round_trips_through_the_parser)
{
    const char *text = "line one\nline \"two\"\t\\ caf\xc3\xa9 \x01 end";
    gw_buf_t b;
    gw_buf_init(&b);
    gw_json_quote(&b, gw_str(text));
    gw_arena_t *a = gw_arena_new();
    gw_json_t *v = NULL;
    const char *err = NULL;
    cr_assert_eq(gw_json_parse(a, b.base, b.len, &v, &err), 0, "parse: %s", err ? err : "?");
    cr_assert_eq(v->type, GW_JSON_STRING);
    cr_assert_eq(v->str.len, strlen(text));
    cr_assert(memcmp(v->str.base, text, v->str.len) == 0);
    gw_arena_free(a);
    gw_buf_dispose(&b);
}

Test(json_quote, invalid_utf8_is_repaired)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_json_quote(&b, gw_str_n("a\xff" "b", 3));
    cr_assert_eq(b.len, 7);
    cr_assert(memcmp(b.base, "\"a\xef\xbf\xbd" "b\"", 7) == 0);
    gw_buf_dispose(&b);
}

Test(json_escape, long_input_across_block_boundaries)
{
    /* The escaper works in 16 KiB blocks: escapes on and around every boundary. */
    static unsigned char s[50000];
    for (size_t i = 0; i < sizeof(s); i++)
        s[i] = (unsigned char)("abc\"def\\ghi\n\x01" "xyz"[i % 16]);
    for (size_t k = 1; k <= 3; k++)
        for (size_t d = 0; d < 3; d++)
            s[k * 16384 - 1 + d] = '\x02';
    check_same(s, sizeof(s));
}
