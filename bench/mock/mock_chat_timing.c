/* Chat timing family: where the time goes inside one stream, for the latency histograms
 * (time to first token, time per output token; MOCK_SCENARIOS.md, tests/integration/
 * metrics_latency.test.mjs). */
#include "mock_scenarios.h"

/* clang-format off */
#define S_WAIT(t) {.op = OP_DELAY, .ms = (t)}

/* The role chunk at once, then 800 ms before the first token, then 5 tokens with no gap. */
static const mock_step_t sc_slow_first_token[] = {
    S_ROLE, S_WAIT(800), S_TEXT_N("tok ", 5, 0), S_FINISH("stop"), S_USAGE(12, 5), S_DONE, S_END,
};
/* The first token at once, then 5 more 120 ms apart: about 120 ms per output token after the first. */
static const mock_step_t sc_slow_delta[] = {
    S_ROLE, S_TEXT_N("tok ", 6, 120), S_FINISH("stop"), S_USAGE(12, 6), S_DONE, S_END,
};

static const mock_chat_sc_t scenarios[] = {
    SC("slow_first_token", sc_slow_first_token, 0),
    SC("slow_delta", sc_slow_delta, 0),
};
/* clang-format on */

const mock_family_t mock_chat_timing_family = MOCK_CHAT_FAMILY("chat_timing", scenarios);
