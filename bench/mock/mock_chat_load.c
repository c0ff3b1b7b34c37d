/* Chat load family: timing (slow, stall), size (long, big, xl, huge_line) and the benchmark
 * streams that bench/run.sh drives (MOCK_SCENARIOS.md, bench/README.md). */
#include "mock_scenarios.h"

/* clang-format off */
/* 12 bytes: one bench delta is 185 bytes of SSE, so bench20 is 3.7 KB of content events. */
#define BENCH_TEXT "lorem ipsum "

static const mock_step_t sc_slow[] = {
    S_ROLE, S_TEXT_N("tick ", 10, 200), S_FINISH("stop"), S_USAGE(12, 10), S_DONE, S_END,
};
static const mock_step_t sc_stall[] = {
    S_ROLE, S_TEXT("Hi"), S_HOLD,
};
static const mock_step_t sc_long[] = {
    S_ROLE, S_FILL("x", 100, " ", 5000), S_FINISH("stop"), S_USAGE(12, 5000), S_DONE, S_END,
};
static const mock_step_t sc_xl[] = {
    S_ROLE, S_FILL("x", 2000, " ", 5000), S_FINISH("stop"), S_USAGE(12, 100000), S_DONE, S_END,
};
static const mock_step_t sc_big[] = {
    S_ROLE, S_FILL("x", 1000, " ", 6000), S_FINISH("stop"), S_USAGE(12, 60000), S_DONE, S_END,
};
static const mock_step_t sc_huge_line[] = {
    S_ROLE, S_FILL("a", 2u << 20, "", 1), S_FINISH("stop"), S_USAGE(12, 65536), S_DONE, S_END,
};
static const mock_step_t sc_bench1[] = {
    S_ROLE, S_TEXT(BENCH_TEXT), S_FINISH("stop"), S_USAGE(12, 1), S_DONE, S_END,
};
static const mock_step_t sc_bench20[] = {
    S_ROLE, S_TEXT_N(BENCH_TEXT, 20, 0), S_FINISH("stop"), S_USAGE(12, 20), S_DONE, S_END,
};
static const mock_step_t sc_bench200[] = {
    S_ROLE, S_TEXT_N(BENCH_TEXT, 200, 0), S_FINISH("stop"), S_USAGE(12, 200), S_DONE, S_END,
};
static const mock_step_t sc_bench_slow50[] = {
    S_ROLE, S_TEXT_N(BENCH_TEXT, 20, 50), S_FINISH("stop"), S_USAGE(12, 20), S_DONE, S_END,
};
/* Final arguments: {"query":"lorem ipsum ... ","n":<i>} for call i, in 10 fragments each. */
static const mock_step_t sc_bench_tools2[] = {
    S_CALL_ROLE(0, "call_0", "search", ""), S_CALL(1, "call_1", "fetch", ""),
    S_ARGS(0, "{\"query\":\""), S_ARGS(1, "{\"query\":\""),
    S_ARGS(0, "lorem "), S_ARGS(1, "lorem "), S_ARGS(0, "ipsum "), S_ARGS(1, "ipsum "),
    S_ARGS(0, "dolor "), S_ARGS(1, "dolor "), S_ARGS(0, "sit "), S_ARGS(1, "sit "),
    S_ARGS(0, "amet "), S_ARGS(1, "amet "), S_ARGS(0, "consectetur "), S_ARGS(1, "consectetur "),
    S_ARGS(0, "adipiscing "), S_ARGS(1, "adipiscing "), S_ARGS(0, "elit"), S_ARGS(1, "elit"),
    S_ARGS(0, "\",\"n\":"), S_ARGS(1, "\",\"n\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"),
    S_FINISH("tool_calls"), S_USAGE(85, 40), S_DONE, S_END,
};

/* Hostile upstream: 3,000 parallel tool calls at sparse indexes (0, 1000, ... 2,999,000), opened
 * and continued in a scrambled order (issue 15: per-request structures stay O(n log n)). */
static const mock_step_t sc_tool_fan[] = {
    S_ROLE, S_CALL_FAN(3000, 1000, "lookup"), S_FINISH("tool_calls"), S_USAGE(12, 3000), S_DONE, S_END,
};

static const mock_chat_sc_t scenarios[] = {
    SC("slow", sc_slow, 0),
    SC("stall", sc_stall, SF_STREAM_ONLY),
    SC("long", sc_long, 0),
    SC("xl", sc_xl, 0),
    SC("big", sc_big, 0),
    SC("huge_line", sc_huge_line, 0),
    SC("bench20", sc_bench20, 0),
    SC("bench20_whole", sc_bench20, SF_WHOLE),
    SC("bench1", sc_bench1, 0),
    SC("bench200", sc_bench200, 0),
    SC("bench_tools2", sc_bench_tools2, 0),
    SC("bench_slow50", sc_bench_slow50, 0),
    SC("tool_fan", sc_tool_fan, SF_STREAM_ONLY),
};
/* clang-format on */

const mock_family_t mock_chat_load_family = MOCK_CHAT_FAMILY("chat_load", scenarios);
