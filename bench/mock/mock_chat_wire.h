/* mock_chat_wire: ChatCompletions bytes for a chat scenario's steps. A step becomes one SSE event
 * (the scenario's framing flags apply here); the whole script folds into one chat.completion. */
#ifndef MOCK_CHAT_WIRE_H
#define MOCK_CHAT_WIRE_H

#include "mock_scenarios.h"

/* Serialise step s as the bytes of one SSE event into ev; fl are the scenario's SF_* flags and
 * nth counts the events already sent in this response. */
void mock_chat_event(gw_buf_t *ev, unsigned fl, const mock_step_t *s, unsigned nth);
/* The non-streaming answer: the script's steps folded into one chat.completion object. */
void mock_chat_completion(gw_buf_t *out, const mock_chat_sc_t *sc);

#endif
