/* Chat family: well-formed ChatCompletions answers (text, parallel tool calls, reasoning, refusal,
 * finish reasons, plain JSON) and the SSE framing variants of `text` (MOCK_SCENARIOS.md). */
#include "mock_scenarios.h"

/* clang-format off */
static const mock_step_t sc_text[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_USAGE(12, 3), S_DONE, S_END,
};
static const mock_step_t sc_no_usage[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_DONE, S_END,
};
static const mock_step_t sc_unknown_fields[] = {
    S_ROLE,
    S_TEXT("Hi"),
    S_DELTA("\"audio\":{\"id\":\"audio_mock\",\"data\":\"UklGRiQAAABXQVZF\",\"expires_at\":1741294558,"
            "\"transcript\":\"Hi\"}"),
    S_TEXT(" there!"),
    S_FINISH("stop"),
    S_USAGE(12, 3),
    S_DONE,
    S_END,
};
static const mock_step_t sc_tools2[] = {
    S_CALL_ROLE(0, "call_0", "tool_0", ""), S_CALL(1, "call_1", "tool_1", ""),
    S_ARGS(0, "{\"i\":"), S_ARGS(1, "{\"i\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"),
    S_FINISH("tool_calls"), S_USAGE(85, 31), S_DONE, S_END,
};
static const mock_step_t sc_tools3[] = {
    S_CALL_ROLE(0, "call_0", "tool_0", ""), S_CALL(1, "call_1", "tool_1", ""), S_CALL(2, "call_2", "tool_2", ""),
    S_ARGS(0, "{\"i\":"), S_ARGS(1, "{\"i\":"), S_ARGS(2, "{\"i\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"), S_ARGS(2, "2}"),
    S_FINISH("tool_calls"), S_USAGE(85, 31), S_DONE, S_END,
};
static const mock_step_t sc_tools5[] = {
    S_CALL_ROLE(0, "call_0", "tool_0", ""), S_CALL(1, "call_1", "tool_1", ""), S_CALL(2, "call_2", "tool_2", ""),
    S_CALL(3, "call_3", "tool_3", ""), S_CALL(4, "call_4", "tool_4", ""),
    S_ARGS(0, "{\"i\":"), S_ARGS(1, "{\"i\":"), S_ARGS(2, "{\"i\":"), S_ARGS(3, "{\"i\":"), S_ARGS(4, "{\"i\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"), S_ARGS(2, "2}"), S_ARGS(3, "3}"), S_ARGS(4, "4}"),
    S_FINISH("tool_calls"), S_USAGE(85, 31), S_DONE, S_END,
};
static const mock_step_t sc_text_then_tools[] = {
    S_ROLE, S_TEXT("Let me check."),
    S_CALL(0, "call_a", "get_weather", ""), S_ARGS(0, "{\"city\":"), S_ARGS(0, "\"Paris\"}"),
    S_CALL(1, "call_b", "get_time", ""), S_ARGS(1, "{\"tz\":"), S_ARGS(1, "\"UTC\"}"),
    S_FINISH("tool_calls"), S_USAGE(40, 25), S_DONE, S_END,
};
static const mock_step_t sc_tool_args_once[] = {
    S_CALL_ROLE(0, "call_x", "lookup", "{\"q\":\"x\"}"), S_FINISH("tool_calls"), S_USAGE(20, 8), S_DONE, S_END,
};
static const mock_step_t sc_tool_args_empty[] = {
    S_CALL_ROLE(0, "call_e", "noop", NULL), S_FINISH("tool_calls"), S_USAGE(20, 5), S_DONE, S_END,
};
static const mock_step_t sc_tool_args_late[] = {
    S_CALL_ROLE(0, "call_l", "set_flag", NULL), S_ARGS_FINISH(0, "{\"late\":true}", "tool_calls"),
    S_USAGE(20, 7), S_DONE, S_END,
};
/* "héllo wörld 😀 日本語" in three deltas, each holding a multi-byte character to split. */
static const mock_step_t sc_utf8_split[] = {
    S_ROLE,
    S_TEXT("h\xc3\xa9llo"),
    S_TEXT(" w\xc3\xb6rld \xf0\x9f\x98\x80"),
    S_TEXT(" \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"),
    S_FINISH("stop"),
    S_USAGE(12, 8),
    S_DONE,
    S_END,
};
static const mock_step_t sc_reasoning[] = {
    S_ROLE, S_THINK("Think"), S_THINK("ing..."), S_TEXT("Answer."), S_FINISH("stop"), S_USAGE_R(12, 5, 2),
    S_DONE, S_END,
};
static const mock_step_t sc_reasoning_field[] = {
    S_ROLE, S_THINK_FIELD("Think"), S_THINK_FIELD("ing..."), S_TEXT("Answer."), S_FINISH("stop"),
    S_USAGE_R(12, 5, 2), S_DONE, S_END,
};
static const mock_step_t sc_refusal[] = {
    S_ROLE, S_REFUSE("I can't"), S_REFUSE(" help."), S_FINISH("stop"), S_USAGE(12, 4), S_DONE, S_END,
};
static const mock_step_t sc_length[] = {
    S_ROLE, S_TEXT("Truncat"), S_FINISH("length"), S_USAGE(12, 2), S_DONE, S_END,
};
static const mock_step_t sc_content_filter[] = {
    S_ROLE, S_TEXT("Blocked"), S_FINISH("content_filter"), S_USAGE(12, 1), S_DONE, S_END,
};
static const mock_step_t sc_json[] = {
    S_TEXT("Plain JSON answer."), S_FINISH("stop"), S_USAGE(5, 4), S_END,
};

static const mock_chat_sc_t scenarios[] = {
    SC("text", sc_text, 0),
    SC("tools2", sc_tools2, 0),
    SC("tools3", sc_tools3, 0),
    SC("tools5", sc_tools5, 0),
    SC("text_then_tools", sc_text_then_tools, 0),
    SC("tool_args_once", sc_tool_args_once, 0),
    SC("tool_args_empty", sc_tool_args_empty, 0),
    SC("tool_args_late", sc_tool_args_late, 0),
    SC("utf8_split", sc_utf8_split, SF_SPLIT),
    SC("reasoning", sc_reasoning, 0),
    SC("reasoning_field", sc_reasoning_field, 0),
    SC("refusal", sc_refusal, 0),
    SC("length", sc_length, 0),
    SC("content_filter", sc_content_filter, 0),
    SC("no_usage", sc_no_usage, 0),
    SC("json", sc_json, SF_JSON_ONLY),
    SC("crlf", sc_text, SF_CRLF),
    SC("nospace", sc_text, SF_NOSPACE),
    SC("comments", sc_text, SF_COMMENTS),
    SC("multiline", sc_text, SF_MULTILINE),
    SC("unknown_fields", sc_unknown_fields, SF_UNKNOWN),
};
/* clang-format on */

const mock_family_t mock_chat_family = MOCK_CHAT_FAMILY("chat", scenarios);
