/* mock_chat_wire: ChatCompletions bytes for a chat scenario's steps. A step becomes one SSE event
 * (the scenario's framing flags apply here); the whole script folds into one chat.completion. */
#ifndef MOCK_CHAT_WIRE_H
#define MOCK_CHAT_WIRE_H

#include "mock_scenarios.h"

/* Serialise step s as the bytes of one SSE event into ev; fl are the scenario's SF_* flags and
 * nth counts the events already sent in this response. */
void mock_chat_event(gw_buf_t *ev, unsigned fl, const mock_step_t *s, unsigned nth);
/* Repetition rep of an OP_TOOL_FAN step as the plain OP_TOOL piece it stands for, in *out (its
 * strings in id and args). N = repeat/2 calls; call k has index k*stride, id "call_<k>" and
 * final arguments {"k":<k>}. The first N pieces open the calls, the next N carry their
 * arguments, both in a scrambled order (k = 7*j mod N), so an index is never the next one. */
void mock_chat_fan_piece(const mock_step_t *s, int rep, mock_step_t *out, char id[24], char args[24]);
/* The non-streaming answer: the script's steps folded into one chat.completion object. */
void mock_chat_completion(gw_buf_t *out, const mock_chat_sc_t *sc);

#endif
