/* The Responses tool surface on a ChatCompletions model (adapters/tools.c, PROTOCOL.md §2.2,
 * issue 10), request side: the tool table and its upstream names, the incremental decoding of a
 * custom tool's `input` (split at every byte offset), validation of the new tools and items, the
 * endpoint's hosted_tools policy, and golden translations of the requests Codex CLI 0.169.0
 * really sent (tests/data/codex_0169_*.json, recorded by running it against a capture server). */
#include <criterion/criterion.h>

#include <string.h>
#include <time.h>

#include "adapters/adapter.h"
#include "adapters/tools.h"
#include "gateway/json.h"
#include "gateway/request.h"
#include "support/events.h"

/* ------------------------------------------------------------------------------------------ */
/* incremental input decoding                                                                 */

/* Decode args fed as the pieces [0,cut) and [cut,n) (cut = n: one piece), or byte by byte. Every
 * yielded piece must be whole UTF-8. Returns the concatenation (malloc'd). */
static char *decode(const char *args, size_t n, size_t cut, bool bytewise)
{
    ad_input_dec_t d;
    ad_input_dec_init(&d);
    gw_buf_t all, piece;
    gw_buf_init(&all);
    gw_buf_init(&piece);
    size_t i = 0;
    while (i < n) {
        size_t step = bytewise ? 1 : i < cut ? cut - i : n - i;
        gw_buf_reset(&piece);
        ad_input_dec_feed(&d, gw_str_n(args + i, step), &piece);
        cr_assert_eq(gw_utf8_valid_prefix(gw_buf_str(&piece)), piece.len,
                     "a piece cuts a character (cut %zu)", cut);
        gw_buf_append_str(&all, gw_buf_str(&piece));
        i += step;
    }
    gw_buf_reset(&piece);
    ad_input_dec_finish(&d, &piece);
    gw_buf_append_str(&all, gw_buf_str(&piece));
    ad_input_dec_dispose(&d);
    gw_buf_dispose(&piece);
    gw_buf_append(&all, "", 1);
    return all.base;
}

static void check_decode(const char *args, const char *want)
{
    size_t n = strlen(args);
    for (size_t cut = 0; cut <= n; cut++) {
        char *got = decode(args, n, cut, false);
        cr_assert_str_eq(got, want, "args %s split at %zu", args, cut);
        free(got);
    }
    char *got = decode(args, n, n, true);
    cr_assert_str_eq(got, want, "args %s byte by byte", args);
    free(got);
}

Test(tools, input_decoding_split_at_every_offset, .timeout = 30)
{
    check_decode("{\"input\":\"plain text\"}", "plain text");
    check_decode("{\"input\":\"\"}", "");
    check_decode("{\"input\":\"a\\nb\\tc\\\"d\\\\e\\/f\\bg\\fh\\ri\"}", "a\nb\tc\"d\\e/f\bg\fh\ri");
    check_decode("{\"input\":\"caf\\u00e9 \\u65e5\\u672c\"}", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
    check_decode("{\"input\":\"smile \\ud83d\\ude00!\"}", "smile \xf0\x9f\x98\x80!");
    check_decode("{\"input\":\"\\uD83D\\uDE00\"}", "\xf0\x9f\x98\x80");
    /* Raw multi-byte UTF-8 inside the string: 2, 3 and 4 byte characters. */
    check_decode("{\"input\":\"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"}",
                 "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
    /* Whitespace between the tokens of the prefix; what follows the string is ignored. */
    check_decode(" { \"input\" :\n \"x y\" } ", "x y");
    check_decode("{\"input\":\"first\",\"extra\":1}", "first");
    /* Lone surrogate halves become U+FFFD, the text around them stays. */
    check_decode("{\"input\":\"a\\ud83db\"}", "a\xef\xbf\xbd"
                                              "b");
    check_decode("{\"input\":\"a\\ude00b\"}", "a\xef\xbf\xbd"
                                              "b");
    check_decode("{\"input\":\"\\ud83d\\ud83d\\ude00\"}", "\xef\xbf\xbd\xf0\x9f\x98\x80");
    check_decode("{\"input\":\"a\\ud83d\\n\"}", "a\xef\xbf\xbd\n");
    /* Cut off inside the string: what was decoded stays, an unfinished piece is one U+FFFD. */
    check_decode("{\"input\":\"abc", "abc");
    check_decode("{\"input\":\"ab\\u00", "ab\xef\xbf\xbd");
    check_decode("{\"input\":\"ab\\ud83d", "ab\xef\xbf\xbd");
    check_decode("{\"input\":\"ab\xe6\x97", "ab\xef\xbf\xbd");
}

Test(tools, input_decoding_fallbacks, .timeout = 30)
{
    /* Not an object: the arguments are the input itself (models send the raw patch). */
    check_decode("*** Begin Patch\n*** End Patch\n", "*** Begin Patch\n*** End Patch\n");
    check_decode("  plain \xc3\xa9", "  plain \xc3\xa9");
    /* An object of another shape is decided at the end: its string input, else the raw text. */
    check_decode("{\"other\":1,\"input\":\"late \\u00e9\"}", "late \xc3\xa9");
    check_decode("{}", "{}");
    check_decode("{\"input\":5}", "{\"input\":5}");
    check_decode("{\"inputs\":\"x\"}", "{\"inputs\":\"x\"}");
    check_decode("{\"inp", "{\"inp");
    check_decode("{\"in put\":\"x\"}", "{\"in put\":\"x\"}");
    check_decode("", "");
}

/* ------------------------------------------------------------------------------------------ */
/* the tool table                                                                             */

static const gw_json_t *parse(gw_arena_t *a, const char *s)
{
    gw_json_t *v = NULL;
    const char *perr = NULL;
    cr_assert_eq(gw_json_parse(a, s, strlen(s), &v, &perr), 0, "bad test JSON: %s", perr);
    return v;
}

static bool str_is(gw_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.base, want, s.len) == 0;
}

Test(tools, table_names_and_kinds, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    const gw_json_t *tools =
        parse(a, "[{\"type\":\"function\",\"name\":\"run\"},"
                 "{\"type\":\"custom\",\"name\":\"apply_patch\"},"
                 "{\"type\":\"namespace\",\"name\":\"agents\",\"tools\":["
                 "{\"type\":\"function\",\"name\":\"spawn\"},{\"type\":\"function\",\"name\":\"run\"}]},"
                 "{\"type\":\"namespace\",\"name\":\"my.tools\",\"tools\":["
                 "{\"type\":\"custom\",\"name\":\"run\"}]},"
                 "{\"type\":\"local_shell\"},{\"type\":\"web_search\"},"
                 "{\"type\":\"tool_search\",\"execution\":\"client\"}]");
    ad_tools_t t;
    ad_tools_build(a, tools, &t);
    cr_assert_eq(t.n, 8);
    cr_assert_eq(t.n_upstream, 6);
    static const struct {
        ad_tool_kind_t kind;
        const char *name, *ns, *upstream;
    } want[] = {
        {AD_TOOL_FUNCTION, "run", NULL, "run"},
        {AD_TOOL_CUSTOM, "apply_patch", NULL, "apply_patch"},
        {AD_TOOL_FUNCTION, "spawn", "agents", "spawn"},       /* unique: keeps its name */
        {AD_TOOL_FUNCTION, "run", "agents", "agents__run"},   /* clashes: mangled */
        {AD_TOOL_CUSTOM, "run", "my.tools", "my_tools__run"}, /* bytes outside [A-Za-z0-9_-] → _ */
        {AD_TOOL_LOCAL_SHELL, "local_shell", NULL, "local_shell"},
        {AD_TOOL_HOSTED, "web_search", NULL, ""},
        {AD_TOOL_HOSTED, "tool_search", NULL, ""},
    };
    for (size_t i = 0; i < t.n; i++) {
        cr_assert_eq(t.v[i].kind, want[i].kind, "tool %zu kind", i);
        cr_assert(str_is(t.v[i].name, want[i].name), "tool %zu name %.*s", i, (int)t.v[i].name.len,
                  t.v[i].name.base);
        cr_assert(want[i].ns ? str_is(t.v[i].ns, want[i].ns) : !t.v[i].ns.base, "tool %zu namespace", i);
        cr_assert(str_is(t.v[i].upstream, want[i].upstream), "tool %zu upstream %.*s", i,
                  (int)t.v[i].upstream.len, t.v[i].upstream.base);
    }
    /* Calls map back by upstream name; history items map forward by (namespace, name). */
    cr_assert_eq(ad_tools_by_upstream(&t, GW_STR_LIT("agents__run")), &t.v[3]);
    cr_assert_eq(ad_tools_by_upstream(&t, GW_STR_LIT("run")), &t.v[0]);
    cr_assert_null(ad_tools_by_upstream(&t, GW_STR_LIT("web_search")),
                   "hosted tools are never called upstream");
    cr_assert_eq(ad_tools_find(&t, GW_STR_LIT("my.tools"), GW_STR_LIT("run")), &t.v[4]);
    cr_assert(str_is(ad_tools_upstream_name(a, &t, GW_STR_LIT("agents"), GW_STR_LIT("spawn")), "spawn"));
    cr_assert(str_is(ad_tools_upstream_name(a, &t, GW_STR_NULL, GW_STR_LIT("gone")), "gone"));
    cr_assert(str_is(ad_tools_upstream_name(a, &t, GW_STR_LIT("old"), GW_STR_LIT("gone")), "old__gone"),
              "a namespaced call of a tool no longer sent keeps the documented mangling");
    gw_arena_free(a);
}

Test(tools, mangled_names_fit_64_bytes, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    char ns[80], name[80];
    memset(ns, 'n', 50);
    ns[50] = '\0';
    memset(name, 'x', 40);
    name[40] = '\0';
    gw_str_t m = ad_tools_mangle(a, gw_str(ns), gw_str(name));
    cr_assert_eq(m.len, 64);
    cr_assert_eq(memcmp(m.base, ns, 50), 0);
    cr_assert_eq(memcmp(m.base + 50, "__xxx", 5), 0);
    cr_assert_eq(m.base[55], '_');
    for (size_t i = 56; i < 64; i++)
        cr_assert(test_is_hex(m.base[i]), "hash digit at %zu", i);
    gw_str_t again = ad_tools_mangle(a, gw_str(ns), gw_str(name));
    cr_assert_eq(memcmp(m.base, again.base, 64), 0, "deterministic");
    name[39] = 'y';
    gw_str_t other = ad_tools_mangle(a, gw_str(ns), gw_str(name));
    cr_assert_neq(memcmp(m.base, other.base, 64), 0, "the hash tells long names apart");
    gw_arena_free(a);
}

Test(tools, upstream_tools_golden, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    const gw_json_t *tools = parse(
        a,
        "[{\"type\":\"custom\",\"name\":\"apply_patch\",\"description\":\"Edit files.\",\"format\":{\"type\":"
        "\"grammar\",\"syntax\":\"lark\",\"definition\":\"start: x\"}},"
        "{\"type\":\"custom\",\"name\":\"note\",\"format\":{\"type\":\"text\"}},"
        "{\"type\":\"function\",\"name\":\"f\",\"description\":\"F\",\"parameters\":{\"type\":\"object\"},"
        "\"strict\":false,\"defer_loading\":true},"
        "{\"type\":\"local_shell\"},{\"type\":\"web_search_preview\"}]");
    ad_tools_t t;
    ad_tools_build(a, tools, &t);
    gw_buf_t out, tmp;
    gw_buf_init(&out);
    gw_buf_init(&tmp);
    gw_jgen_t *j = gw_jgen_new(&out);
    ad_tools_put_upstream(j, &t, &tmp);
    gw_jgen_free(j);
    gw_buf_append(&out, "", 1);
    static const char want[] =
        "[{\"type\":\"function\",\"function\":{\"name\":\"apply_patch\",\"description\":\"Edit "
        "files.\\n\\nCall this "
        "function with one argument, `input`: a string holding the tool's raw input (not JSON). The input "
        "must "
        "match this lark grammar:\\nstart: "
        "x\",\"parameters\":{\"type\":\"object\",\"properties\":{\"input\":{\"type\":"
        "\"string\"}},\"required\":[\"input\"],\"additionalProperties\":false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"note\",\"description\":\"Call this function with "
        "one "
        "argument, `input`: a string holding the tool's raw input (not "
        "JSON).\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"input\":{\"type\":\"string\"}},\"required\":[\"input\"],\"additionalProperties\":"
        "false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"F\",\"parameters\":{\"type\":"
        "\"object\"},\"strict\":false}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"local_shell\",\"description\":\"Run a command on "
        "the user's "
        "machine and get its "
        "output.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":"
        "\"array\",\"items\":{\"type\":\"string\"},\"description\":\"The command and its "
        "arguments.\"},\"env\":{"
        "\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"Environment "
        "variables "
        "to set.\"},\"timeout_ms\":{\"type\":\"integer\",\"description\":\"Timeout in "
        "milliseconds.\"},\"user\":{"
        "\"type\":\"string\",\"description\":\"User to run the command "
        "as.\"},\"working_directory\":{\"type\":"
        "\"string\",\"description\":\"Working directory.\"}},\"required\":[\"command\"]}}}]";
    cr_assert_str_eq(out.base, want);
    gw_buf_dispose(&out);
    gw_buf_dispose(&tmp);
    gw_arena_free(a);
}
