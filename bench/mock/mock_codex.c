/* Codex family (issue 10, MOCK_SCENARIOS.md "Codex scenarios"): a "model" that drives Codex CLI's
 * tool loop. codex_custom / codex_shell / codex_local_shell dispatch per turn (the number of tool
 * results the request carries) to the per-turn scripts below: a shell command through Codex's
 * exec_command function, then a patch (through the custom apply_patch tool, or through the shell
 * for models without it), then the final answer. */
#include "mock_scenarios.h"

#define FINAL_TEXT "All done: the command ran and hello.txt was created."

/* clang-format off */
static const mock_step_t sc_exec[] = {
    S_CALL_ROLE(0, "call_codex_1", "exec_command", ""), S_ARGS(0, "{\"cmd\":\"echo codex-ran"),
    S_ARGS(0, " > ran.txt\"}"), S_FINISH("tool_calls"), S_USAGE(50, 20), S_DONE, S_END,
};
/* The custom tool's {"input": PATCH}, cut inside escapes, inside \u00e9 and between the halves
 * of the surrogate pair: the gateway must decode the input incrementally across them. */
static const mock_step_t sc_patch_custom[] = {
    S_CALL_ROLE(0, "call_codex_2", "apply_patch", ""),
    S_ARGS(0, "{\"inp"), S_ARGS(0, "ut\":\"*** Be"), S_ARGS(0, "gin Patch\\"),
    S_ARGS(0, "n*** Add File: hello.txt\\n+hel"), S_ARGS(0, "lo from agate \\u0"), S_ARGS(0, "0e9\\ud83d"),
    S_ARGS(0, "\\ude00 \\"), S_ARGS(0, "\"ok\\\""), S_ARGS(0, "\\n*** End Patch"), S_ARGS(0, "\\n\"}"),
    S_FINISH("tool_calls"), S_USAGE(60, 40), S_DONE, S_END,
};
static const mock_step_t sc_patch_shell[] = {
    S_CALL_ROLE(0, "call_codex_2", "exec_command", ""),
    S_ARGS(0, "{\"cmd\":\"apply_patch <<'EOF'\\n*** Begin Patch\\n*** Add File: hello.txt\\n"),
    S_ARGS(0, "+hello from agate \\u00e9\\ud83d\\ude00 \\\"ok\\\"\\n*** End Patch\\nEOF\\n\"}"),
    S_FINISH("tool_calls"), S_USAGE(60, 40), S_DONE, S_END,
};
static const mock_step_t sc_local_shell_call[] = {
    S_CALL_ROLE(0, "call_shell_1", "local_shell", ""), S_ARGS(0, "{\"command\":[\"echo\","),
    S_ARGS(0, "\"hi\"],\"env\":{\"A\":\"1\"}}"), S_FINISH("tool_calls"), S_USAGE(30, 10), S_DONE, S_END,
};
static const mock_step_t sc_final[] = {
    S_ROLE, S_TEXT("All done: the command ran "), S_TEXT("and hello.txt was created."), S_FINISH("stop"),
    S_USAGE(80, 12), S_DONE, S_END,
};

static const char *const needs_exec[] = {"\"function\":{\"name\":\"exec_command\"", NULL};
static const char *const needs_patch[] = {"\"function\":{\"name\":\"apply_patch\"", "\"required\":[\"input\"]", NULL};
static const char *const needs_shell[] = {"\"function\":{\"name\":\"local_shell\"", NULL};

static const char *const turns_custom[] = {"codex_exec", "codex_patch_custom", "codex_final", NULL};
static const char *const turns_shell[] = {"codex_exec", "codex_patch_shell", "codex_final", NULL};
static const char *const turns_local_shell[] = {"codex_local_shell_call", "codex_final", NULL};

static const mock_chat_sc_t scenarios[] = {
    SC_TURNS("codex_custom", turns_custom),
    SC_TURNS("codex_shell", turns_shell),
    SC_TURNS("codex_local_shell", turns_local_shell),
    SC_NEEDS("codex_exec", sc_exec, 0, needs_exec),
    SC_NEEDS("codex_patch_custom", sc_patch_custom, 0, needs_patch),
    SC_NEEDS("codex_patch_shell", sc_patch_shell, 0, needs_exec),
    SC_NEEDS("codex_local_shell_call", sc_local_shell_call, 0, needs_shell),
    SC("codex_final", sc_final, 0),
};
/* clang-format on */

const mock_family_t mock_codex_family = MOCK_CHAT_FAMILY("codex", scenarios);
