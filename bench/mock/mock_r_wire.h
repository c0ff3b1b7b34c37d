/* mock_r_wire: Responses bytes for an r_* scenario's steps, in the flavour of the route:
 * /responses (OpenAI: `event:` lines, sequence numbers, full events) or /invocations (MLflow:
 * data-only, sparse events). Nothing is accumulated while streaming: every "done" event and every
 * response object is derived by folding the script's steps up to the current one. */
#ifndef MOCK_R_WIRE_H
#define MOCK_R_WIRE_H

#include "mock_scenarios.h"

/* Serialise steps[k] as one SSE event of route rt into ev; nth counts the events already sent
 * and is the sequence number. */
void mock_r_event(gw_buf_t *ev, const mock_r_sc_t *rs, mock_route_t rt, const mock_step_t *steps, size_t k,
                  unsigned nth);
/* The non-streaming answer of route rt: the whole script folded into one object. */
void mock_r_object(gw_buf_t *out, const mock_r_sc_t *rs, mock_route_t rt, const mock_step_t *steps);

#endif
