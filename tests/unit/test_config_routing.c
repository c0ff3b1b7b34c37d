/* Model-name routing and the per-endpoint tool policies of issue 10: endpoint `aliases` (exact
 * names and `*` globs), top-level `default_endpoint`, `hosted_tools`, `system_messages`,
 * `reasoning_passback`; gw_config_endpoint_for_model's order; every validation error by path. */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/config.h"

#define ERRLEN 512
#define UP     "\"upstreams\":[{\"url\":\"http://127.0.0.1:9\"}]"

static gw_config_t *parse(const char *json, char *err)
{
    return gw_config_parse(json, strlen(json), err, ERRLEN);
}

static const char *routed(const gw_config_t *c, const char *model)
{
    const gw_endpoint_cfg_t *e = gw_config_endpoint_for_model(c, model, strlen(model));
    return e ? e->name : NULL;
}

Test(config_routing, glob_match, .timeout = 10)
{
    cr_assert(gw_config_glob_match("gpt-5*", "gpt-5.5", 7));
    cr_assert(gw_config_glob_match("gpt-5*", "gpt-5", 5));
    cr_assert_not(gw_config_glob_match("gpt-5*", "gpt-4o", 6));
    cr_assert(gw_config_glob_match("*", "", 0));
    cr_assert(gw_config_glob_match("*nano", "gpt-5.4-nano", 12));
    cr_assert(gw_config_glob_match("gpt-*-nano", "gpt-5.4-nano", 12));
    cr_assert_not(gw_config_glob_match("gpt-*-nano", "gpt-5.4-mini", 12));
    cr_assert(gw_config_glob_match("a*b*c", "aXbYbZc", 7));
    cr_assert_not(gw_config_glob_match("a*b*c", "aXbYbZ", 6));
    cr_assert(gw_config_glob_match("**x", "yyx", 3));
    cr_assert_not(gw_config_glob_match("exact", "exactly", 7));
    cr_assert(gw_config_glob_match("exact", "exactly", 5), "the length bounds the subject");
}

Test(config_routing, exact_then_alias_then_glob_then_default, .timeout = 10)
{
    char err[ERRLEN] = "";
    gw_config_t *c = parse("{\"default_endpoint\":\"fallback\",\"endpoints\":["
                           "{\"name\":\"coder\"," UP ",\"aliases\":[\"gpt-5*\",\"o4-mini\"]},"
                           "{\"name\":\"small\"," UP ",\"aliases\":[\"gpt-5.4-nano\",\"*-mini\"]},"
                           "{\"name\":\"fallback\"," UP "}]}",
                           err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(routed(c, "coder"), "coder", "an endpoint's own name first");
    cr_assert_str_eq(routed(c, "gpt-5.5"), "coder", "glob");
    cr_assert_str_eq(routed(c, "gpt-5.4-nano"), "small", "an exact alias beats an earlier glob");
    cr_assert_str_eq(routed(c, "o4-mini"), "coder", "exact alias");
    cr_assert_str_eq(routed(c, "gpt-4.1-mini"), "small", "later glob");
    cr_assert_str_eq(routed(c, "llama-3"), "fallback", "default_endpoint");
    cr_assert_str_eq(routed(c, "fallback"), "fallback");
    gw_config_free(c);

    c = parse("{\"endpoints\":[{\"name\":\"coder\"," UP ",\"aliases\":[\"gpt-5*\"]}]}", err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_null(c->default_endpoint, "default_endpoint is off by default");
    cr_assert_null(routed(c, "llama-3"), "no default: unknown names stay unknown (404)");
    cr_assert_null(gw_config_endpoint(c, "gpt-5.5", 7), "gw_config_endpoint stays exact");
    gw_config_free(c);
}

Test(config_routing, tool_policies_defaults_and_values, .timeout = 10)
{
    char err[ERRLEN] = "";
    gw_config_t *c = parse("{\"endpoints\":[{\"name\":\"a\"," UP "},"
                           "{\"name\":\"b\"," UP ",\"hosted_tools\":\"reject\",\"system_messages\":\"keep\","
                           "\"reasoning_passback\":\"tool_turns\"},"
                           "{\"name\":\"c\"," UP ",\"reasoning_passback\":\"all\",\"hosted_tools\":\"drop\","
                           "\"system_messages\":\"merge\"}]}",
                           err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->endpoints[0].hosted_tools, GW_HOSTED_DROP);
    cr_assert_eq(c->endpoints[0].system_messages, GW_SYSMSG_MERGE);
    cr_assert_eq(c->endpoints[0].reasoning_passback, GW_PASSBACK_NONE);
    cr_assert_eq(c->endpoints[0].n_aliases, 0);
    cr_assert_eq(c->endpoints[1].hosted_tools, GW_HOSTED_REJECT);
    cr_assert_eq(c->endpoints[1].system_messages, GW_SYSMSG_KEEP);
    cr_assert_eq(c->endpoints[1].reasoning_passback, GW_PASSBACK_TOOL_TURNS);
    cr_assert_eq(c->endpoints[2].reasoning_passback, GW_PASSBACK_ALL);
    gw_config_free(c);
}

Test(config_routing, errors_name_the_key, .timeout = 10)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"hosted_tools\":\"keep\"}]}",
         "endpoints[0].hosted_tools: must be"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"system_messages\":1}]}",
         "endpoints[0].system_messages: must be a string"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"reasoning_passback\":\"some\"}]}",
         "endpoints[0].reasoning_passback: must be \"none\", \"tool_turns\" or \"all\""},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"aliases\":\"gpt\"}]}",
         "endpoints[0].aliases: must be an array"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"aliases\":[\"ok\",\"\"]}]}",
         "endpoints[0].aliases[1]: must be"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"aliases\":[3]}]}", "endpoints[0].aliases[0]: must be"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP "},{\"name\":\"b\"," UP ",\"aliases\":[\"a\"]}]}",
         "endpoints[1].aliases[0]: \"a\" is already the name of an endpoint"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"aliases\":[\"m\"]},{\"name\":\"b\"," UP
         ",\"aliases\":[\"x\",\"m\"]}]}",
         "endpoints[1].aliases[1]: duplicate alias \"m\" (also on endpoints[0])"},
        {"{\"endpoints\":[{\"name\":\"a\"," UP ",\"aliases\":[\"m\",\"m\"]}]}",
         "endpoints[0].aliases[1]: duplicate alias \"m\" (also on endpoints[0])"},
        {"{\"default_endpoint\":\"zz\",\"endpoints\":[{\"name\":\"a\"," UP "}]}",
         "default_endpoint: \"zz\" is not an endpoint"},
        {"{\"default_endpoint\":5,\"endpoints\":[{\"name\":\"a\"," UP "}]}",
         "default_endpoint: must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[ERRLEN] = "";
        gw_config_t *c = parse(cases[i].json, err);
        cr_assert_null(c, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
    }
    /* Overlapping globs are fine: the first in config order wins. */
    char err[ERRLEN] = "";
    gw_config_t *c = parse("{\"endpoints\":[{\"name\":\"a\"," UP ",\"aliases\":[\"g*\"]},{\"name\":\"b\"," UP
                           ",\"aliases\":[\"g*\"]}]}",
                           err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(routed(c, "gpt"), "a");
    gw_config_free(c);
}
