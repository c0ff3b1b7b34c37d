/* Issue 10, response side: calls of a ChatCompletions model rendered as the client's tool kinds
 * (PROTOCOL.md §2.2). tests/data/cc_codex_tools.sse streams three parallel calls — the custom
 * apply_patch (arguments in 5-byte fragments that cut escapes and a surrogate pair), a namespaced
 * function under its mangled upstream name, and local_shell — through ad_chat_completions into
 * gw_stream, and the rendered events are checked one by one, streaming and not. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "gateway/json.h"
#include "gateway/stream.h"
#include "support/events.h"

static const char REQ[] =
    "{\"model\":\"assistant-v1\",\"input\":\"patch it\",\"tools\":["
    "{\"type\":\"custom\",\"name\":\"apply_patch\",\"format\":{\"type\":\"grammar\",\"syntax\":\"lark\","
    "\"definition\":\"start: x\"}},"
    "{\"type\":\"namespace\",\"name\":\"a\",\"tools\":[{\"type\":\"function\",\"name\":\"run\"}]},"
    "{\"type\":\"namespace\",\"name\":\"b\",\"tools\":[{\"type\":\"function\",\"name\":\"run\"}]},"
    "{\"type\":\"local_shell\"},{\"type\":\"web_search\"}]}";

#define PATCH "*** Begin Patch\n+caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"\n*** End Patch\n"

static const test_run_opts_t STREAM = {
    .adapter = GW_ADAPTER_CHAT_COMPLETIONS,
    .front = GW_FRONT_OPENAI,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .req_body = REQ,
};

static void run(test_run_t *r, const test_run_opts_t *o, size_t step)
{
    test_run_golden(r, "cc_codex_tools.sse", o, step);
    cr_assert_eq(r->feed_rc, 0);
    cr_assert_eq(r->finish_rc, 0);
    cr_assert_eq(gw_stream_status(r->s), GW_FINISH_COMPLETED);
}

/* The three items as the client must see them in output (and output_item.done). */
static void check_items(const gw_json_t *out)
{
    cr_assert_eq(out->len, 3);
    const gw_json_t *p = gw_json_at(out, 0), *f = gw_json_at(out, 1), *sh = gw_json_at(out, 2);
    cr_assert_str_eq(test_js(p, "type"), "custom_tool_call");
    cr_assert_eq(strncmp(test_js(p, "id"), "ctc_", 4), 0);
    cr_assert_str_eq(test_js(p, "call_id"), "call_p");
    cr_assert_str_eq(test_js(p, "name"), "apply_patch");
    cr_assert_str_eq(test_js(p, "input"), PATCH);
    cr_assert_str_eq(test_js(p, "status"), "completed");
    cr_assert_null(gw_json_get(p, "arguments"));
    cr_assert_null(gw_json_get(p, "namespace"));

    cr_assert_str_eq(test_js(f, "type"), "function_call");
    cr_assert_str_eq(test_js(f, "name"), "run", "the inner name, not the upstream b__run");
    cr_assert_str_eq(test_js(f, "namespace"), "b");
    cr_assert_str_eq(test_js(f, "arguments"), "{\"x\":1}");
    cr_assert_str_eq(test_js(f, "call_id"), "call_r");

    cr_assert_str_eq(test_js(sh, "type"), "local_shell_call");
    cr_assert_eq(strncmp(test_js(sh, "id"), "lsh_", 4), 0);
    cr_assert_str_eq(test_js(sh, "call_id"), "call_s");
    cr_assert_str_eq(test_js(sh, "status"), "completed");
    char *action = test_json_text(test_jget(sh, "action"));
    cr_assert_str_eq(
        action, "{\"type\":\"exec\",\"command\":[\"ls\",\"-l\"],\"env\":{},\"working_directory\":\"/w\"}");
    free(action);
}

Test(tools_stream, custom_namespace_local_shell_events, .timeout = 20)
{
    test_run_t r;
    run(&r, &STREAM, 0);
    test_events_t v;
    test_events_parse(&v, &r.out);
    /* Event types, a run of the same type written once as "<type>*". No arguments events for the
     * custom call and the local shell call: their input/action arrive as their own events/items. */
    char *types = test_events_types(&v);
    gw_buf_t runs;
    gw_buf_init(&runs);
    const char *prev = NULL;
    size_t prev_len = 0;
    for (char *t = types; *t;) {
        char *comma = strchr(t, ',');
        size_t len = comma ? (size_t)(comma - t) : strlen(t);
        bool again = prev && len == prev_len && memcmp(t, prev, len) == 0;
        if (again && runs.base[runs.len - 1] != '*')
            gw_buf_append(&runs, "*", 1);
        if (!again) {
            if (runs.len)
                gw_buf_append(&runs, ",", 1);
            gw_buf_append(&runs, t, len);
        }
        prev = t;
        prev_len = len;
        t += len + (comma ? 1 : 0);
    }
    gw_buf_append(&runs, "", 1);
    cr_assert_str_eq(runs.base, "response.created,response.in_progress,"
                                "response.output_item.added,response.custom_tool_call_input.delta*,"
                                "response.output_item.added,response.function_call_arguments.delta,"
                                "response.output_item.added,"
                                "response.custom_tool_call_input.done,response.output_item.done,"
                                "response.function_call_arguments.done,response.output_item.done*,"
                                "response.completed");
    gw_buf_dispose(&runs);
    free(types);
    /* The deltas are decoded input as it arrived, each whole UTF-8, concatenating to .done. */
    const char *deltas[32];
    size_t n = test_events_strings(&v, "response.custom_tool_call_input.delta", "delta", deltas, 32);
    gw_buf_t cat;
    gw_buf_init(&cat);
    for (size_t i = 0; i < n; i++) {
        cr_assert_gt(strlen(deltas[i]), 0);
        gw_buf_append_cstr(&cat, deltas[i]);
    }
    gw_buf_append(&cat, "", 1);
    cr_assert_str_eq(cat.base, PATCH);
    gw_buf_dispose(&cat);
    const char *done[2];
    cr_assert_eq(test_events_strings(&v, "response.custom_tool_call_input.done", "input", done, 2), 1);
    cr_assert_str_eq(done[0], PATCH);
    /* added: the in-progress shapes, with empty input / placeholder action. */
    for (size_t i = 0; i < v.n; i++) {
        const gw_json_t *j = v.ev[i].j;
        if (!j || !gw_str_eq(gw_json_get_str(j, "type"), "response.output_item.added"))
            continue;
        const gw_json_t *it = test_jget(j, "item");
        cr_assert_str_eq(test_js(it, "status"), "in_progress");
        if (gw_str_eq(gw_json_get_str(it, "type"), "custom_tool_call"))
            cr_assert_str_eq(test_js(it, "input"), "");
        if (gw_str_eq(gw_json_get_str(it, "type"), "local_shell_call"))
            cr_assert_eq(test_jget(test_jget(it, "action"), "command")->len, 0);
        if (gw_str_eq(gw_json_get_str(it, "type"), "function_call"))
            cr_assert_str_eq(test_js(it, "namespace"), "b");
    }
    const gw_json_t *term = v.ev[v.n - 1].j;
    check_items(test_jget(test_jget(term, "response"), "output"));
    /* tools are echoed as the client sent them. */
    cr_assert_eq(test_jget(test_jget(term, "response"), "tools")->len, 5);
    test_events_free(&v);
    test_run_free(&r);
}

Test(tools_stream, non_streaming_response_has_the_same_items, .timeout = 20)
{
    test_run_opts_t o = STREAM;
    o.stream = false;
    test_run_t r;
    run(&r, &o, 0);
    gw_arena_t *a = gw_arena_new();
    gw_json_t *resp = test_run_json(a, &r);
    check_items(test_jget(resp, "output"));
    gw_arena_free(a);
    test_run_free(&r);
}

Test(tools_stream, split_at_every_offset, .timeout = 120)
{
    /* Upstream reads cut anywhere (inside escapes of the input, inside a surrogate pair): the
     * rendered bytes are the same as for one read. */
    test_check_split_every_offset("cc_codex_tools.sse", &STREAM);
}

Test(tools_stream, byte_at_a_time_non_stream, .timeout = 30)
{
    test_run_opts_t o = STREAM;
    o.stream = false;
    test_run_t whole, bytes;
    run(&whole, &o, 0);
    run(&bytes, &o, 1);
    test_check_same_output(&whole, &bytes);
    test_run_free(&whole);
    test_run_free(&bytes);
}

Test(tools_stream, malformed_custom_arguments_fall_back_to_raw_text, .timeout = 20)
{
    /* A model that ignores the {"input"} schema and sends the patch itself as arguments. */
    static const char sse[] =
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":"
        "\"function\","
        "\"function\":{\"name\":\"apply_patch\",\"arguments\":\"*** Begin "
        "Patch\\n\"}}]},\"finish_reason\":null}]}\n\n"
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
        "\"*** End Patch\\n\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    test_run_t r;
    test_run_begin(&r, &STREAM);
    test_run_feed(&r, sse, strlen(sse));
    test_run_end(&r);
    test_events_t v;
    test_events_parse(&v, &r.out);
    const char *deltas[4];
    size_t n = test_events_strings(&v, "response.custom_tool_call_input.delta", "delta", deltas, 4);
    cr_assert_eq(n, 2, "raw text streams as it comes");
    cr_assert_str_eq(deltas[0], "*** Begin Patch\n");
    const gw_json_t *out = test_jget(test_jget(v.ev[v.n - 1].j, "response"), "output");
    cr_assert_str_eq(test_js(gw_json_at(out, 0), "input"), "*** Begin Patch\n*** End Patch\n");
    test_events_free(&v);
    test_run_free(&r);
}
