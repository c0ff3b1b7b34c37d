/* Issue 10 through gw_request and the ChatCompletions encoder: the tool kinds and items Codex and
 * other Responses clients send, both directions of each mapping, hosted_tools, system message
 * merging, reasoning passback, the linear call_id check, and the recorded Codex 0.169.0 requests
 * (tests/data/codex_0169_*.json) translated as a ChatCompletions model must receive them. */
#include <criterion/criterion.h>

#include <string.h>
#include <time.h>

#include "adapters/adapter.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/request.h"
#include "support/events.h"

#define M "\"model\":\"m\","

static gw_endpoint_cfg_t ep_default(void)
{
    return (gw_endpoint_cfg_t){.name = "m",
                               .adapter = GW_ADAPTER_CHAT_COMPLETIONS,
                               .model = "up-model",
                               .max_tokens_field = "max_tokens",
                               .sampling_rate = 1.0};
}

typedef struct {
    gw_arena_t *a;
    gw_request_t r;
    gw_buf_t out;
    const gw_json_t *j;
} enc_t;

static void encode_ep(enc_t *e, const char *body, size_t len, const gw_endpoint_cfg_t *ep)
{
    gw_log_set_level(GW_LOG_ERROR);
    memset(e, 0, sizeof(*e));
    e->a = gw_arena_new();
    gw_buf_init(&e->out);
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(e->a, gw_str_n(body, len), false, &e->r, &err), 0, "rejected: %s",
                 err.message);
    cr_assert_eq(gw_request_apply_endpoint(&e->r, e->a, ep, &err), 0, "rejected for the endpoint: %s",
                 err.message);
    cr_assert_eq(ad_chat_completions.encode_request(&e->r, ep, false, &e->out, &err), 0);
    gw_json_t *j = NULL;
    cr_assert_eq(gw_json_parse(e->a, e->out.base, e->out.len, &j, NULL), 0, "upstream body is not JSON");
    e->j = j;
}

static void encode(enc_t *e, const char *body)
{
    gw_endpoint_cfg_t ep = ep_default();
    encode_ep(e, body, strlen(body), &ep);
}

static void enc_free(enc_t *e)
{
    gw_buf_dispose(&e->out);
    gw_arena_free(e->a);
}

static char *text_of(const gw_json_t *v)
{
    return test_json_text(v);
}

/* The compact JSON of member key of the upstream body equals want. */
static void check_member(const enc_t *e, const char *key, const char *want)
{
    char *got = text_of(test_jget(e->j, key));
    cr_assert_str_eq(got, want, "upstream %s", key);
    free(got);
}

/* ------------------------------------------------------------------------------------------ */
/* Responses → ChatCompletions                                                               */

Test(tools_request, custom_and_namespace_calls_map_forward, .timeout = 10)
{
    enc_t e;
    encode(&e,
           "{" M "\"tools\":[{\"type\":\"custom\",\"name\":\"apply_patch\"},"
           "{\"type\":\"namespace\",\"name\":\"a\",\"tools\":[{\"type\":\"function\",\"name\":\"run\"}]},"
           "{\"type\":\"namespace\",\"name\":\"b\",\"tools\":[{\"type\":\"function\",\"name\":\"run\"}]}],"
           "\"input\":[{\"role\":\"user\",\"content\":\"go\"},"
           "{\"type\":\"custom_tool_call\",\"id\":\"ctc_1\",\"status\":\"completed\",\"call_id\":\"c1\","
           "\"name\":\"apply_patch\",\"input\":\"*** Begin Patch\\n\\\"q\\\"\"},"
           "{\"type\":\"function_call\",\"id\":\"fc_2\",\"status\":\"completed\",\"call_id\":\"c2\","
           "\"name\":\"run\",\"namespace\":\"b\",\"arguments\":\"{}\"},"
           "{\"type\":\"custom_tool_call_output\",\"id\":\"ctco_1\",\"call_id\":\"c1\",\"output\":\"ok\"},"
           "{\"type\":\"function_call_output\",\"id\":\"fco_2\",\"call_id\":\"c2\",\"output\":[{\"type\":"
           "\"input_text\",\"text\":\"done\"}]}]}");
    check_member(
        &e, "messages",
        "[{\"role\":\"user\",\"content\":\"go\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"apply_patch\",\"arguments\":"
        "\"{\\\"input\\\":\\\"*** Begin Patch\\\\n\\\\\\\"q\\\\\\\"\\\"}\"}},"
        "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"b__run\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"done\"}]");
    const gw_json_t *tools = test_jget(e.j, "tools");
    cr_assert_eq(tools->len, 3);
    cr_assert_str_eq(test_js(test_jget(gw_json_at(tools, 1), "function"), "name"), "a__run");
    cr_assert_str_eq(test_js(test_jget(gw_json_at(tools, 2), "function"), "name"), "b__run");
    enc_free(&e);
}

Test(tools_request, local_shell_and_hosted_items, .timeout = 10)
{
    enc_t e;
    encode(&e,
           "{" M "\"tools\":[{\"type\":\"local_shell\"},{\"type\":\"web_search\"},{\"type\":\"file_search\","
           "\"vector_store_ids\":[\"v\"]}],\"tool_choice\":{\"type\":\"local_shell\"},"
           "\"input\":[{\"role\":\"user\",\"content\":\"ls\"},"
           "{\"type\":\"web_search_call\",\"id\":\"ws_1\",\"status\":\"completed\",\"action\":{\"type\":"
           "\"search\"}},"
           "{\"type\":\"local_shell_call\",\"id\":\"lsh_1\",\"call_id\":\"c9\",\"status\":\"completed\","
           "\"action\":{\"type\":\"exec\",\"command\":[\"ls\",\"-l\"],\"env\":{}}},"
           "{\"type\":\"local_shell_call_output\",\"id\":\"c9\",\"output\":\"a.txt\"},"
           "{\"type\":\"mcp_list_tools\",\"id\":\"ml\",\"server_label\":\"s\",\"tools\":[]}]}");
    check_member(
        &e, "messages",
        "[{\"role\":\"user\",\"content\":\"ls\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c9\",\"type\":\"function\","
        "\"function\":{\"name\":\"local_shell\",\"arguments\":\"{\\\"type\\\":\\\"exec\\\",\\\"command\\\":"
        "[\\\"ls\\\",\\\"-l\\\"],\\\"env\\\":{}}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c9\",\"content\":\"a.txt\"}]");
    const gw_json_t *tools = test_jget(e.j, "tools");
    cr_assert_eq(tools->len, 1, "hosted tools are not sent");
    check_member(&e, "tool_choice", "{\"type\":\"function\",\"function\":{\"name\":\"local_shell\"}}");
    cr_assert_eq(e.r.n_dropped_tools, 2);
    cr_assert_str_eq(e.r.dropped_tools[0], "web_search");
    cr_assert_str_eq(e.r.dropped_tools[1], "file_search");
    enc_free(&e);
}

Test(tools_request, hosted_tools_reject_and_tool_choice_on_a_dropped_tool, .timeout = 10)
{
    gw_log_set_level(GW_LOG_ERROR);
    static const struct {
        const char *body;
        gw_hosted_tools_t policy;
        gw_err_kind_t kind;
        const char *param, *msg;
    } cases[] = {
        {"{" M "\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"},{\"type\":\"code_"
               "interpreter\"}]}",
         GW_HOSTED_REJECT, GW_ERR_UNSUPPORTED, "tools[1]",
         "'code_interpreter' ('tools[1]') is a hosted tool"},
        {"{" M "\"input\":\"x\",\"tools\":[{\"type\":\"web_search_preview\"}],\"tool_choice\":{\"type\":"
         "\"web_search_preview\"}}",
         GW_HOSTED_DROP, GW_ERR_INVALID_VALUE, "tool_choice", "it was dropped"},
        {"{" M "\"input\":\"x\",\"tool_choice\":{\"type\":\"image_generation\"}}", GW_HOSTED_DROP,
         GW_ERR_INVALID_VALUE, "tool_choice", "'image_generation'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_arena_t *a = gw_arena_new();
        gw_request_t r;
        gw_error_t err = {0};
        cr_assert_eq(gw_request_parse(a, gw_str(cases[i].body), false, &r, &err), 0, "case %zu: %s", i,
                     err.message);
        gw_endpoint_cfg_t ep = ep_default();
        ep.hosted_tools = cases[i].policy;
        cr_assert_eq(gw_request_apply_endpoint(&r, a, &ep, &err), -1, "case %zu accepted", i);
        cr_assert_eq(err.kind, cases[i].kind, "case %zu kind", i);
        cr_assert_str_eq(err.param, cases[i].param, "case %zu", i);
        cr_assert(strstr(err.message, cases[i].msg), "case %zu: %s", i, err.message);
        /* A Responses upstream runs hosted tools itself: nothing dropped or refused for it. */
        ep.adapter = GW_ADAPTER_RESPONSES;
        cr_assert_eq(gw_request_apply_endpoint(&r, a, &ep, &err), 0, "case %zu, responses upstream", i);
        cr_assert_eq(r.n_dropped_tools, 0);
        gw_arena_free(a);
    }
}

Test(tools_request, new_items_are_validated, .timeout = 10)
{
    static const struct {
        const char *body, *param, *msg;
        gw_err_kind_t kind;
    } cases[] = {
        {"{" M "\"input\":[{\"type\":\"custom_tool_call_output\",\"call_id\":\"zz\",\"output\":\"o\"}]}",
         "input[0]", "refers to call_id 'zz'", GW_ERR_INVALID_VALUE},
        {"{" M "\"input\":[{\"type\":\"local_shell_call_output\",\"id\":\"zz\",\"output\":\"o\"}]}",
         "input[0]", "refers to call_id 'zz'", GW_ERR_INVALID_VALUE},
        {"{" M "\"input\":[{\"type\":\"custom_tool_call\",\"call_id\":\"c\",\"input\":\"x\"}]}", "input[0]",
         "needs 'call_id' and 'name'", GW_ERR_INVALID_VALUE},
        {"{" M "\"input\":[{\"type\":\"custom_tool_call\",\"call_id\":\"c\",\"name\":\"n\",\"input\":{}}]}",
         "input[0]", "'input[0].input' must be a string", GW_ERR_INVALID_JSON},
        {"{" M "\"input\":[{\"type\":\"local_shell_call\",\"call_id\":\"c\",\"action\":\"ls\"}]}", "input[0]",
         "must be an object", GW_ERR_INVALID_JSON},
        {"{" M "\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"n\",\"namespace\":3}]}",
         "input[0]", "namespace", GW_ERR_INVALID_JSON},
        {"{" M "\"input\":\"x\",\"tools\":[{\"type\":\"namespace\",\"name\":\"n\"}]}", "tools[0]",
         "needs 'name' and 'tools'", GW_ERR_INVALID_VALUE},
        {"{" M "\"input\":\"x\",\"tools\":[{\"type\":\"namespace\",\"name\":\"n\",\"tools\":[{\"type\":"
         "\"web_search\"}]}]}",
         "tools[0].tools[0]", "function and custom tools only", GW_ERR_UNSUPPORTED},
        {"{" M
         "\"input\":\"x\",\"tools\":[{\"type\":\"custom\",\"name\":\"c\",\"format\":{\"type\":\"regexp\"}}]}",
         "tools[0]", "format.type", GW_ERR_INVALID_VALUE},
        {"{" M "\"input\":\"x\",\"tools\":[{\"type\":\"custom\"}]}", "tools[0]", "needs a 'name'",
         GW_ERR_INVALID_VALUE},
        {"{" M "\"input\":\"x\",\"tools\":[{\"type\":\"custom\",\"name\":\"c\"}],\"tool_choice\":{\"type\":"
         "\"custom\",\"name\":\"d\"}}",
         "tool_choice", "'d', which is not in tools", GW_ERR_INVALID_VALUE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_arena_t *a = gw_arena_new();
        gw_request_t r;
        gw_error_t err = {0};
        cr_assert_eq(gw_request_parse(a, gw_str(cases[i].body), false, &r, &err), -1, "case %zu accepted", i);
        cr_assert_eq(err.kind, cases[i].kind, "case %zu kind %d", i, err.kind);
        cr_assert_str_eq(err.param, cases[i].param, "case %zu", i);
        cr_assert(strstr(err.message, cases[i].msg), "case %zu: %s", i, err.message);
        gw_arena_free(a);
    }
}

Test(tools_request, reasoning_passback, .timeout = 10)
{
    static const char body[] =
        "{" M "\"input\":[{\"role\":\"user\",\"content\":\"q1\"},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"old\"}]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"a1\"}"
        "]},"
        "{\"role\":\"user\",\"content\":\"q2\"},"
        "{\"type\":\"reasoning\",\"id\":\"rs_2\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"s\"}],"
        "\"content\":[{\"type\":\"reasoning_text\",\"text\":\"think\"},{\"type\":\"reasoning_text\",\"text\":"
        "\"more\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":\"o\"},"
        "{\"type\":\"reasoning\",\"id\":\"rs_3\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"last\"}]}"
        "]}";
    gw_endpoint_cfg_t ep = ep_default();
    enc_t e;
    encode_ep(&e, body, strlen(body), &ep);
    char *none = text_of(test_jget(e.j, "messages"));
    cr_assert_null(strstr(none, "reasoning_content"), "none: %s", none);
    free(none);
    enc_free(&e);

    ep.reasoning_passback = GW_PASSBACK_TOOL_TURNS;
    encode_ep(&e, body, strlen(body), &ep);
    check_member(
        &e, "messages",
        "[{\"role\":\"user\",\"content\":\"q1\"},{\"role\":\"assistant\",\"content\":\"a1\"},"
        "{\"role\":\"user\",\"content\":\"q2\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}],"
        "\"reasoning_content\":\"think\\nmore\"},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"o\"}"
        "]");
    enc_free(&e);

    ep.reasoning_passback = GW_PASSBACK_ALL;
    encode_ep(&e, body, strlen(body), &ep);
    const gw_json_t *m = test_jget(e.j, "messages");
    cr_assert_str_eq(test_js(gw_json_at(m, 1), "reasoning_content"), "old");
    cr_assert_str_eq(test_js(gw_json_at(m, 3), "reasoning_content"), "think\nmore");
    enc_free(&e);
}

Test(tools_request, call_id_check_is_linear, .timeout = 30)
{
    /* 20k calls and their outputs (~3.9 MB): validated through a hash set, not a rescan per output. */
    enum { N = 20000 };
#define PAD "_padpadpadpadpadpadpadpadpadpadpadpadpadpadpadpad"
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "{" M "\"input\":[{\"role\":\"user\",\"content\":\"go\"}");
    for (int i = 0; i < N; i++)
        gw_buf_appendf(&b,
                       ",{\"type\":\"function_call\",\"call_id\":\"call_%08d" PAD
                       "\",\"name\":\"lookup_something\",\"arguments\":\"{\\\"q\\\":\\\"%d some "
                       "argument text to make it realistic\\\"}\"}",
                       i, i);
    for (int i = 0; i < N; i++)
        gw_buf_appendf(&b,
                       ",{\"type\":\"function_call_output\",\"call_id\":\"call_%08d" PAD
                       "\",\"output\":\"result %d with some output text\"}",
                       i, i);
    gw_buf_append_cstr(&b, "]}");
    cr_assert_gt(b.len, 3500000);
    gw_arena_t *a = gw_arena_new();
    gw_request_t r;
    gw_error_t err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(gw_request_parse(a, gw_buf_str(&b), false, &r, &err), 0, "%s", err.message);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    /* The quadratic scan took seconds here; parsing the JSON itself dominates now. The bound
     * leaves room for sanitizer builds on a loaded machine. */
    cr_assert_lt(ms, 2000.0, "parse took %.1f ms", ms);
    gw_arena_free(a);
    gw_buf_dispose(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* what Codex CLI 0.169.0 sent                                                                */

static void encode_codex(enc_t *e, const char *file)
{
    size_t n;
    char *body = test_read_data(file, &n);
    gw_endpoint_cfg_t ep = ep_default();
    encode_ep(e, body, n, &ep); /* the parsed tree copies what it keeps into the arena */
    free(body);
}

static bool has_tool(const gw_json_t *tools, const char *name)
{
    for (const gw_json_t *t = tools->child; t; t = t->next)
        if (gw_str_eq(gw_json_get_str(gw_json_get(t, "function"), "name"), name))
            return true;
    return false;
}

Test(tools_request, codex_catalog_model_request, .timeout = 10)
{
    enc_t e;
    encode_codex(&e, "codex_0169_gpt55_turn3.json");
    /* Dropped: the client tool_search (its deferred tools stay in Codex) and web_search. */
    cr_assert_eq(e.r.n_dropped_tools, 2);
    cr_assert_str_eq(e.r.dropped_tools[0], "tool_search");
    cr_assert_str_eq(e.r.dropped_tools[1], "web_search");
    const gw_json_t *tools = test_jget(e.j, "tools");
    cr_assert_eq(tools->len, 8);
    static const char *const want[] = {"exec_command", "write_stdin", "request_user_input", "apply_patch",
                                       "view_image",   "get_goal",    "create_goal",        "update_goal"};
    for (size_t i = 0; i < 8; i++)
        cr_assert_str_eq(test_js(test_jget(gw_json_at(tools, i), "function"), "name"), want[i]);
    const gw_json_t *ap = test_jget(gw_json_at(tools, 3), "function");
    cr_assert(strstr(test_js(ap, "description"), "lark grammar:\nstart: begin_patch hunk+ end_patch"));
    /* Two developer messages became one system message; the user messages stay. */
    const gw_json_t *m = test_jget(e.j, "messages");
    cr_assert_str_eq(test_js(gw_json_at(m, 0), "role"), "system");
    cr_assert_str_eq(test_js(gw_json_at(m, 1), "role"), "user");
    cr_assert(strstr(test_js(gw_json_at(m, 0), "content"),
                     "</permissions instructions>\n\n<skills_instructions>") ||
                  strstr(test_js(gw_json_at(m, 0), "content"), "\n\n<skills_instructions>"),
              "joined by a blank line");
    /* The turn's calls: exec_command then the custom apply_patch call, each answered. */
    const gw_json_t *calls = test_jget(gw_json_at(m, 3), "tool_calls");
    cr_assert_eq(calls->len, 1);
    cr_assert_str_eq(test_js(test_jget(gw_json_at(calls, 0), "function"), "name"), "exec_command");
    cr_assert_str_eq(test_js(gw_json_at(m, 4), "role"), "tool");
    const gw_json_t *patch = test_jget(gw_json_at(test_jget(gw_json_at(m, 5), "tool_calls"), 0), "function");
    cr_assert_str_eq(test_js(patch, "name"), "apply_patch");
    cr_assert_str_eq(
        test_js(patch, "arguments"),
        "{\"input\":\"*** Begin Patch\\n*** Add File: hello.txt\\n+hello world\\n*** End Patch\\n\"}");
    cr_assert_str_eq(test_js(gw_json_at(m, 6), "tool_call_id"), "call_2");
    cr_assert_eq(m->len, 7);
    /* Nothing of Codex's Responses-only fields reaches the model. */
    static const char *const absent[] = {
        "include", "prompt_cache_key", "client_metadata", "store", "reasoning", "text", "input", NULL};
    for (const char *const *k = absent; *k; k++)
        cr_assert_null(gw_json_get(e.j, *k), "%s sent upstream", *k);
    check_member(&e, "reasoning_effort", "\"medium\"");
    enc_free(&e);
}

Test(tools_request, codex_local_model_request, .timeout = 10)
{
    enc_t e;
    encode_codex(&e, "codex_0169_local_turn3.json");
    cr_assert_eq(e.r.n_dropped_tools, 1);
    cr_assert_str_eq(e.r.dropped_tools[0], "web_search");
    const gw_json_t *tools = test_jget(e.j, "tools");
    /* The multi_agent_v1 namespace is flattened under the inner names (all unique here). */
    cr_assert(has_tool(tools, "exec_command"));
    cr_assert(has_tool(tools, "spawn_agent"));
    cr_assert(has_tool(tools, "close_agent"));
    cr_assert(!has_tool(tools, "multi_agent_v1"));
    for (const gw_json_t *t = tools->child; t; t = t->next)
        cr_assert_str_eq(test_js(t, "type"), "function");
    const ad_tool_t *spawn = ad_tools_by_upstream(&e.r.tool_map, GW_STR_LIT("spawn_agent"));
    cr_assert_not_null(spawn);
    cr_assert(gw_str_eq(spawn->ns, "multi_agent_v1"));
    const gw_json_t *m = test_jget(e.j, "messages");
    cr_assert_str_eq(test_js(gw_json_at(m, 0), "role"), "system");
    cr_assert_str_eq(test_js(gw_json_at(m, 1), "role"), "user");
    cr_assert_eq(m->len, 7);
    enc_free(&e);
}
