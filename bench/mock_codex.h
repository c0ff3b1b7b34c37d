/* Codex CLI scenarios of the mock upstream (bench/MOCK_SCENARIOS.md "Codex scenarios", issue 10).
 * A "model" that drives Codex's tool loop: the answer depends on how many tool results the
 * ChatCompletions request already carries, so one scenario name serves every turn of a run. */
#ifndef MOCK_CODEX_H
#define MOCK_CODEX_H

#include <stdbool.h>

#include "gateway/buf.h"

/** True when name is a Codex scenario (`codex_*`). */
bool mock_codex_is(gw_str_t name);
/** The whole SSE answer for this request body. Returns -1 for an unknown codex_* name. */
int mock_codex_answer(gw_str_t name, gw_str_t body, gw_buf_t *out);

#endif
