/* Codex CLI scenarios of the mock upstream (bench/mock_codex.h, bench/MOCK_SCENARIOS.md).
 *
 * Turn n (n = number of `"role":"tool"` messages in the request) of each scenario:
 *   codex_custom  0: exec_command {"cmd": SHELL_CMD}
 *                 1: apply_patch {"input": PATCH}: the custom tool, sent as a function whose
 *                    arguments stream in 7-byte fragments (escapes and a surrogate pair are cut)
 *                 2+: the final answer FINAL_TEXT
 *   codex_shell   0: exec_command {"cmd": SHELL_CMD}
 *                 1: exec_command running `apply_patch` with PATCH as a heredoc (models without the
 *                    freeform tool patch through the shell; Codex intercepts the command)
 *                 2+: FINAL_TEXT
 *   codex_local_shell  0: local_shell {"command":["echo","hi"],"env":{"A":"1"}} (the local_shell tool)
 *                 1+: FINAL_TEXT
 * A request whose tools lack what the turn calls gets a plain-text answer saying so, so a broken
 * translation fails the test instead of looping. */
#include "bench/mock_codex.h"

#include <stdio.h>
#include <string.h>

#include "gateway/json.h"

#define SHELL_CMD  "echo codex-ran > ran.txt"
/* As JSON string content: escapes, \u00e9 and a surrogate pair for U+1F600 cut by the fragments. */
#define PATCH_TEXT                                                                                         \
    "*** Begin Patch\\n*** Add File: hello.txt\\n+hello from agate \\u00e9\\ud83d\\ude00 \\\"ok\\\"\\n*** End Patch\\n"
#define FINAL_TEXT "All done: the command ran and hello.txt was created."

static const char chunk_head[] = "data: {\"id\":\"chatcmpl-codex\",\"object\":\"chat.completion.chunk\","
                                 "\"created\":1741290958,\"model\":\"mock-model\",\"choices\":[{\"index\":0,";

bool mock_codex_is(gw_str_t name)
{
    return gw_str_has_prefix(name, "codex_");
}

static size_t count(gw_str_t hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (size_t i = 0; i + k <= hay.len; i++)
        if (memcmp(hay.base + i, needle, k) == 0)
            n++;
    return n;
}

static void delta(gw_buf_t *out, gw_str_t delta_json, const char *finish)
{
    gw_buf_append_cstr(out, chunk_head);
    gw_buf_append_cstr(out, "\"delta\":");
    gw_buf_append_str(out, delta_json);
    gw_buf_append_cstr(out, ",\"finish_reason\":");
    gw_buf_append_cstr(out, finish ? finish : "null");
    gw_buf_append_cstr(out, "}]}\n\n");
}

static void end(gw_buf_t *out, const char *finish)
{
    delta(out, GW_STR_LIT("{}"), finish);
    gw_buf_append_cstr(out, "data: {\"id\":\"chatcmpl-codex\",\"object\":\"chat.completion.chunk\",\"created\":"
                            "1741290958,\"model\":\"mock-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,"
                            "\"completion_tokens\":20,\"total_tokens\":70}}\n\ndata: [DONE]\n\n");
}

static void text_answer(gw_buf_t *out, const char *text)
{
    gw_buf_t d;
    gw_buf_init(&d);
    gw_buf_append_cstr(&d, "{\"role\":\"assistant\",\"content\":");
    gw_json_quote(&d, gw_str(text));
    gw_buf_append_cstr(&d, "}");
    delta(out, gw_buf_str(&d), NULL);
    gw_buf_dispose(&d);
    end(out, "\"stop\"");
}

/* One tool call whose arguments JSON text arrives in fragments of `frag` bytes. */
static void call_answer(gw_buf_t *out, const char *id, const char *fn, const char *args, size_t frag)
{
    gw_buf_t d;
    gw_buf_init(&d);
    gw_buf_append_cstr(&d, "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"");
    gw_buf_append_cstr(&d, id);
    gw_buf_append_cstr(&d, "\",\"type\":\"function\",\"function\":{\"name\":\"");
    gw_buf_append_cstr(&d, fn);
    gw_buf_append_cstr(&d, "\",\"arguments\":\"\"}}]}");
    delta(out, gw_buf_str(&d), NULL);
    size_t n = strlen(args);
    for (size_t i = 0; i < n; i += frag) {
        gw_buf_reset(&d);
        gw_buf_append_cstr(&d, "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
        gw_json_quote(&d, gw_str_n(args + i, n - i < frag ? n - i : frag));
        gw_buf_append_cstr(&d, "}}]}");
            delta(out, gw_buf_str(&d), NULL);
    }
    gw_buf_dispose(&d);
    end(out, "\"tool_calls\"");
}

/* The upstream tool list must hold a function of this name (the translated Codex tool). */
static bool has_function(gw_str_t body, const char *fn)
{
    char pat[96];
    size_t n = (size_t)snprintf(pat, sizeof(pat), "\"function\":{\"name\":\"%s\"", fn);
    return n < sizeof(pat) && count(body, pat) > 0;
}

int mock_codex_answer(gw_str_t name, gw_str_t body, gw_buf_t *out)
{
    bool custom = gw_str_eq(name, "codex_custom");
    size_t turn = count(body, "\"role\":\"tool\"");
    if (gw_str_eq(name, "codex_local_shell")) {
        if (turn > 0)
            text_answer(out, FINAL_TEXT);
        else if (!has_function(body, "local_shell"))
            text_answer(out, "mock: the request has no local_shell function");
        else
            call_answer(out, "call_shell_1", "local_shell", "{\"command\":[\"echo\",\"hi\"],\"env\":{\"A\":\"1\"}}", 6);
        return 0;
    }
    if (!custom && !gw_str_eq(name, "codex_shell"))
        return -1;
    if (turn == 0) {
        if (!has_function(body, "exec_command"))
            text_answer(out, "mock: the request has no exec_command function");
        else
            call_answer(out, "call_codex_1", "exec_command", "{\"cmd\":\"" SHELL_CMD "\"}", 1000);
    } else if (turn == 1 && custom) {
        if (!has_function(body, "apply_patch") || !count(body, "\"required\":[\"input\"]"))
            text_answer(out, "mock: the request has no apply_patch function taking input");
        else
            call_answer(out, "call_codex_2", "apply_patch", "{\"input\":\"" PATCH_TEXT "\"}", 7);
    } else if (turn == 1) {
        call_answer(out, "call_codex_2", "exec_command",
                    "{\"cmd\":\"apply_patch <<'EOF'\\n" PATCH_TEXT "EOF\\n\"}", 11);
    } else {
        text_answer(out, FINAL_TEXT);
    }
    return 0;
}
