/* ChatCompletions adapter driven through the real pipeline: golden upstream streams
 * (tests/data/cc_*) go through ad_chat_completions.start/feed/finish into gw_stream, whose
 * rendered Responses SSE is parsed back with gw_sse + gw_json and checked against PROTOCOL.md
 * §4.2/§4.3/§5.3/§7.2–§7.4/§8/§9, event by event (tests/unit/support/events.h). */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/json.h"
#include "gateway/stream.h"
#include "support/events.h"

#define UP_MODEL "qwen2.5-7b-instruct"
#define JSON_CT  "application/json; charset=utf-8"

/* A streaming client over an SSE upstream. The adapter mints every item itself, so the checker
 * also holds it to msg_/fc_/rs_ + 32 hex ids and non-empty messages. */
static const test_run_opts_t OPENAI_SSE = {
    .adapter = GW_ADAPTER_CHAT_COMPLETIONS,
    .front = GW_FRONT_OPENAI,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .minted_items = true,
};
static const test_run_opts_t DBX_SSE = {
    .adapter = GW_ADAPTER_CHAT_COMPLETIONS,
    .front = GW_FRONT_DATABRICKS,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .minted_items = true,
};

/* ------------------------------------------------------------------------------------------ */
/* tests: text                                                                                */

TestSuite(chat_completions, .timeout = 60);

Test(chat_completions, text_whole, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_text.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!");
    cr_assert_eq(c.m->it[0].n_deltas, 3, "one delta per non-empty content chunk");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* created, in_progress, added, part added, 3 deltas, text done, part done, item done, completed */
    cr_assert_eq(c.m->n_events, 11);
    const gw_json_t *resp = test_checked_response(&c);
    test_check_usage(resp, 12, 5, 17, 4, 2);
    /* Echoed request fields. */
    cr_assert_str_eq(test_js(resp, "instructions"), "Be terse.");
    cr_assert_str_eq(test_js(test_jget(resp, "metadata"), "ticket"), "T-17");
    cr_assert_eq(test_jget(resp, "temperature")->type, GW_JSON_NUMBER);
    cr_assert_eq(test_jget(resp, "temperature")->str.len, 4);
    cr_assert_eq(memcmp(test_jget(resp, "temperature")->str.base, "0.25", 4), 0);
    cr_assert_str_eq(test_js(gw_json_at(test_jget(resp, "tools"), 0), "name"), "get_weather");
    /* The created event carries no usage yet. */
    cr_assert_eq(test_jget(test_jget(c.v.ev[0].j, "response"), "usage")->type, GW_JSON_NULL);
    cr_assert_eq(gw_stream_status(c.r.s), GW_FINISH_COMPLETED);
    cr_assert(gw_stream_committed(c.r.s));
    cr_assert(gw_stream_ended(c.r.s));
    cr_assert_null(gw_stream_error(c.r.s));
    gw_str_t um = gw_stream_upstream_model(c.r.s);
    cr_assert(gw_str_eq(um, UP_MODEL), "upstream model %.*s", (int)um.len, um.base);
    const ad_usage_t *u = gw_stream_usage(c.r.s);
    cr_assert(u->present);
    cr_assert_eq(u->input, 12);
    cr_assert_eq(u->cached, 4);
    test_checked_free(&c);
}

Test(chat_completions, text_split_every_offset, .timeout = 60)
{
    test_check_split_every_offset("cc_text.sse", &OPENAI_SSE);
}

Test(chat_completions, text_byte_at_a_time, .timeout = 20)
{
    test_checked_t whole, bytewise;
    test_checked_run(&whole, "cc_text.sse", &OPENAI_SSE, 0);
    test_checked_run(&bytewise, "cc_text.sse", &OPENAI_SSE, 1);
    test_check_same_output(&whole.r, &bytewise.r);
    test_checked_free(&whole);
    test_checked_free(&bytewise);
}

Test(chat_completions, crlf_framing_renders_like_lf, .timeout = 20)
{
    test_checked_t lf, crlf;
    test_checked_run(&lf, "cc_text.sse", &OPENAI_SSE, 0);
    test_checked_run(&crlf, "cc_crlf.sse", &OPENAI_SSE, 0);
    test_check_message(&crlf.m->it[0], NULL, "output_text", "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!");
    test_check_same_output(&lf.r, &crlf.r);
    test_checked_free(&lf);
    test_checked_free(&crlf);
}

Test(chat_completions, crlf_split_every_offset, .timeout = 60)
{
    /* A CR at the end of one read and its LF at the start of the next are one line end. */
    test_check_split_every_offset("cc_crlf.sse", &OPENAI_SSE);
}

Test(chat_completions, comment_lines_are_keepalives, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_comments.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Alpha beta");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* The golden has four comment lines; the first precedes the first event (nothing committed
     * yet, so nothing is written); the three later ones each become one client keepalive. */
    cr_assert_eq(c.m->n_comments, 3);
    cr_assert_not(test_buf_has(&c.r.out, "OPENROUTER"), "upstream comment text must not be forwarded");
    test_checked_free(&c);
}

Test(chat_completions, data_split_across_two_data_lines, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_multiline_data.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Two lines");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_no_usage(&c);
    test_checked_free(&c);
}

Test(chat_completions, unknown_fields_and_delta_kinds_ignored, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_unknown_fields.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Known text");
    /* An unknown finish_reason string completes (§7.3). */
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 9, 2, 11, 0, 0);
    /* Other choices, deltas after finish_reason and data after [DONE] never reach the client. */
    cr_assert_not(test_buf_has(&c.r.out, "OTHER CHOICE"));
    cr_assert_not(test_buf_has(&c.r.out, "IGNORED"));
    cr_assert_not(test_buf_has(&c.r.out, "AFTER FINISH"));
    cr_assert_not(test_buf_has(&c.r.out, "AFTER DONE"));
    cr_assert_not(test_buf_has(&c.r.out, "weird_kind"));
    test_checked_free(&c);
}

Test(chat_completions, done_without_finish_reason_completes, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_done_no_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "No finish reason.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(chat_completions, eof_after_finish_reason_completes, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_eof_after_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Complete answer.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 3, 3, 6, 0, 0);
    test_checked_free(&c);
}

Test(chat_completions, utf8_surrogate_pair_split_across_chunks, .timeout = 20)
{
    /* §8: "\ud83d" then "\ude00" in the next chunk must arrive as one U+1F600. */
    test_checked_t c;
    test_checked_run(&c, "cc_surrogate_split.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "A\xf0\x9f\x98\x80"
                                         "B");
    test_checked_free(&c);
}

Test(chat_completions, utf8_lone_surrogate_becomes_replacement_char, .timeout = 20)
{
    /* §8: a leftover lone surrogate becomes U+FFFD (no abort). */
    static const char s[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\\ud83d\"}}]}\n\n"
                            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                            "data: [DONE]\n\n";
    test_checked_t c;
    test_checked_feed(&c, &OPENAI_SSE, s, sizeof(s) - 1);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "A\xef\xbf\xbd");
    test_checked_free(&c);
}

Test(chat_completions, utf8_invalid_byte_becomes_replacement_char, .timeout = 20)
{
    static const char s[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\xff"
                            "B\"}}]}\n\n"
                            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                            "data: [DONE]\n\n";
    test_checked_t c;
    test_checked_feed(&c, &OPENAI_SSE, s, sizeof(s) - 1);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "A\xef\xbf\xbd"
                                         "B");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: tool calls                                                                          */

Test(chat_completions, three_parallel_tool_calls, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_tools_parallel3.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    /* output_index in announcement order; arguments unmixed. */
    test_check_call(&c.m->it[0], NULL, "call_a", "get_weather", "{\"city\":\"Paris\"}");
    test_check_call(&c.m->it[1], NULL, "call_b", "get_time", "{\"tz\":\"UTC\"}");
    test_check_call(&c.m->it[2], NULL, "call_c", "get_news", "{\"topic\":\"rust\"}");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    cr_assert_eq(c.m->it[1].n_deltas, 1);
    cr_assert_eq(c.m->it[2].n_deltas, 2);
    /* Deltas stream interleaved as they arrived (fragments forwarded one to one), not grouped. */
    const char *order[5];
    size_t n = test_events_strings(&c.v, "response.function_call_arguments.delta", "item_id", order, 5);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(order[0], c.m->it[0].id);
    cr_assert_str_eq(order[1], c.m->it[1].id);
    cr_assert_str_eq(order[2], c.m->it[2].id);
    cr_assert_str_eq(order[3], c.m->it[0].id);
    cr_assert_str_eq(order[4], c.m->it[2].id);
    /* Items close in output_index order at finish_reason. */
    int64_t last = -1;
    for (size_t i = 0; i < c.v.n; i++)
        if (c.v.ev[i].j && strcmp(test_js(c.v.ev[i].j, "type"), "response.output_item.done") == 0) {
            cr_assert_gt(test_ji(c.v.ev[i].j, "output_index"), last);
            last = test_ji(c.v.ev[i].j, "output_index");
        }
    cr_assert_eq(last, 2);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 85, 31, 116, 0, 0);
    test_checked_free(&c);
}

Test(chat_completions, three_parallel_tool_calls_split_every_offset, .timeout = 60)
{
    test_check_split_every_offset("cc_tools_parallel3.sse", &OPENAI_SSE);
}

Test(chat_completions, text_then_two_tool_calls, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_text_then_tools.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    test_check_message(&c.m->it[0], NULL, "output_text", "Let me check both.");
    test_check_call(&c.m->it[1], NULL, "call_w", "get_weather", "{\"city\":\"Oslo\"}");
    test_check_call(&c.m->it[2], NULL, "call_t", "get_time", "{\"tz\":\"CET\"}");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 40, 22, 62, 0, 0);
    test_checked_free(&c);
}

Test(chat_completions, tool_arguments_only_in_finish_chunk, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_tool_args_in_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_call(&c.m->it[0], NULL, "call_f", "lookup", "{\"q\":\"agate\"}");
    cr_assert_eq(c.m->it[0].n_deltas, 1, "the finish chunk's delta is applied before its finish_reason");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_no_usage(&c);
    test_checked_free(&c);
}

Test(chat_completions, tool_call_with_empty_arguments, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_tool_empty_args.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_call(&c.m->it[0], NULL, "call_e", "get_time", "{}");
    cr_assert_eq(c.m->it[0].n_deltas, 1, "empty arguments get one synthetic \"{}\" delta");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(chat_completions, ollama_whole_call_in_one_piece, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_ollama_whole_call.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1, "role/empty-content chunks open no message");
    test_check_call(&c.m->it[0], NULL, "call_o1", "get_weather", "{\"city\":\"Lyon\"}");
    cr_assert_eq(c.m->it[0].n_deltas, 1);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 60, 18, 78, 0, 0);
    gw_str_t um = gw_stream_upstream_model(c.r.s);
    cr_assert(gw_str_eq(um, "llama3.2"));
    test_checked_free(&c);
}

/* Index 2 has an id and arguments but never a name: nobody can run it, and ending the turn
 * "completed" without it would lose the model's call silently (issue 15), so the stream fails. */
Test(chat_completions, arguments_before_id_named_call_without_id_then_nameless_call_fails, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_tool_late_id.sse", &OPENAI_SSE, 0);
    /* Arguments buffered before the announcement are flushed as one delta, later ones 1:1. */
    test_check_call(&c.m->it[0], NULL, "call_late", "late_fn", "{\"a\":1}");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    /* A named call still lacking an id is announced at finish with a minted call_ + 24 hex. */
    cr_assert_str_eq(c.m->it[1].name, "no_id_fn");
    cr_assert_str_eq(c.m->it[1].args, "{\"x\":2}");
    cr_assert_eq(strncmp(c.m->it[1].call_id, "call_", 5), 0);
    cr_assert_eq(strlen(c.m->it[1].call_id), 5 + 24);
    for (size_t i = 5; i < 29; i++)
        cr_assert(test_is_hex(c.m->it[1].call_id[i]));
    cr_assert_eq(c.m->n, 2, "the nameless call is never announced");
    cr_assert_not(test_buf_has(&c.r.out, "call_nameless"));
    cr_assert_str_eq(c.m->terminal_type, "response.failed");
    cr_assert(test_buf_has(&c.r.out, "upstream tool call has no function name"));
    test_checked_free(&c);
}

Test(chat_completions, legacy_function_call_delta, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_legacy_function_call.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].type, "function_call");
    cr_assert_str_eq(c.m->it[0].name, "get_time");
    cr_assert_str_eq(c.m->it[0].args, "{\"tz\":\"UTC\"}");
    cr_assert_eq(strncmp(c.m->it[0].call_id, "call_", 5), 0);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(chat_completions, item_kind_switches_open_new_items, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_mixed_order.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 6);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].text[0], "R1");
    test_check_message(&c.m->it[1], NULL, "output_text", "T1");
    cr_assert_str_eq(c.m->it[2].type, "reasoning");
    cr_assert_str_eq(c.m->it[2].text[0], "R2");
    /* Switching text -> refusal closes the part and adds a refusal part at content_index 1. */
    cr_assert_str_eq(c.m->it[3].type, "message");
    cr_assert_eq(c.m->it[3].n_parts, 2);
    cr_assert_str_eq(c.m->it[3].part_type[0], "output_text");
    cr_assert_str_eq(c.m->it[3].text[0], "T2");
    cr_assert_str_eq(c.m->it[3].part_type[1], "refusal");
    cr_assert_str_eq(c.m->it[3].text[1], "F");
    test_check_call(&c.m->it[4], NULL, "call_m", "f", "{}");
    /* Text after a tool call opens a new message at the next output_index. */
    test_check_message(&c.m->it[5], NULL, "output_text", "T3");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: reasoning, refusal, incomplete                                                      */

Test(chat_completions, reasoning_content_then_content, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_reasoning_content.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_eq(c.m->it[0].n_parts, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "The user greets. Answer briefly.");
    cr_assert_eq(c.m->it[0].n_deltas, 2, "the empty reasoning_content opens nothing");
    test_check_message(&c.m->it[1], NULL, "output_text", "Hi! How can I help?");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* total_tokens absent upstream: the sum (§7.4). */
    test_check_usage(test_checked_response(&c), 20, 30, 50, 0, 9);
    cr_assert_eq(test_events_count(&c.v, "response.reasoning_summary_part.added"), 1);
    test_checked_free(&c);
}

Test(chat_completions, reasoning_field_variant, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_reasoning_field.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].text[0], "Thinking...");
    test_check_message(&c.m->it[1], NULL, "output_text", "Done.");
    test_check_usage(test_checked_response(&c), 7, 8, 15, 0, 5);
    test_checked_free(&c);
}

Test(chat_completions, refusal_part, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_refusal.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "refusal", "I can't help with that.");
    cr_assert_eq(test_events_count(&c.v, "response.refusal.delta"), 2);
    cr_assert_eq(test_events_count(&c.v, "response.refusal.done"), 1);
    cr_assert_eq(test_events_count(&c.v, "response.output_text.delta"), 0);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(chat_completions, finish_reason_length_is_incomplete, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_length.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Once upon a time");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    cr_assert_str_eq(c.m->terminal_type, "response.incomplete");
    const gw_json_t *resp = test_checked_response(&c);
    cr_assert_str_eq(test_js(test_jget(resp, "incomplete_details"), "reason"), "max_output_tokens");
    cr_assert_eq(test_jget(resp, "error")->type, GW_JSON_NULL);
    test_check_usage(resp, 5, 4, 9, 0, 0);
    cr_assert_eq(gw_stream_status(c.r.s), GW_FINISH_INCOMPLETE);
    test_checked_free(&c);
}

Test(chat_completions, finish_reason_content_filter_is_incomplete, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_content_filter.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Here is how to");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    cr_assert_str_eq(c.m->terminal_type, "response.incomplete");
    cr_assert_str_eq(test_js(test_jget(test_checked_response(&c), "incomplete_details"), "reason"),
                     "content_filter");
    test_checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: failures                                                                            */

Test(chat_completions, in_stream_error_object_after_first_chunk, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_error_object.sse", &OPENAI_SSE, 0);
    cr_assert_lt(c.r.feed_rc, 0, "feed reports the failure");
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Partial");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    /* Upstream code 400 -> invalid_prompt / upstream_bad_request / BAD_REQUEST (§7.6). */
    test_check_failure(&c, "This model's maximum context length is 4096 tokens", &test_err_bad_request);
    test_check_no_usage(&c);
    test_checked_free(&c);
}

Test(chat_completions, in_stream_error_object_split_every_offset, .timeout = 60)
{
    test_check_split_every_offset("cc_error_object.sse", &OPENAI_SSE);
}

Test(chat_completions, error_as_first_event_writes_nothing, .timeout = 20)
{
    test_run_t r;
    test_run_golden(&r, "cc_error_first.sse", &OPENAI_SSE, 0);
    cr_assert_lt(r.feed_rc, 0);
    cr_assert_not(gw_stream_committed(r.s));
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    /* Upstream code 429 maps to rate limit. */
    test_check_http_error(&r, GW_ERR_RATE_LIMIT, "rate limited by provider");
    test_run_free(&r);
}

Test(chat_completions, llama_cpp_error_field_line, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_error_field.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Par");
    test_check_failure(&c, "llama_decode failed: KV cache full", &test_err_upstream);
    test_checked_free(&c);
}

Test(chat_completions, openrouter_finish_reason_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_openrouter_error.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Work");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "Provider returned error", &test_err_upstream);
    cr_assert_eq(c.m->n_comments, 0, "a comment before commit writes no keepalive");
    test_checked_free(&c);
}

Test(chat_completions, eof_before_finish_reason_fails, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_eof_before_finish.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_lt(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 2);
    test_check_message(&c.m->it[0], NULL, "output_text", "Cut off");
    cr_assert_str_eq(c.m->it[0].status, "completed", "closed when the tool call was announced");
    test_check_call(&c.m->it[1], NULL, "call_z", "get_time", "{\"tz\":");
    cr_assert_str_eq(c.m->it[1].status, "incomplete");
    test_check_failure(&c, "upstream stream ended prematurely", &test_err_upstream);
    test_checked_free(&c);
}

Test(chat_completions, databricks_output_error_in_stream, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_databricks_error.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "Hal");
    /* §6.3: databricks_output.error is an error "with its error_code": REQUEST_LIMIT_EXCEEDED is
     * the rate-limit row of §7.6. */
    test_check_failure(&c, "Exceeded the rate limit", &test_err_rate_limit);
    test_checked_free(&c);
}

Test(chat_completions, done_only_stream_completes_empty, .timeout = 20)
{
    /* §7.3: no finish_reason but [DONE] seen -> completed (warn). */
    static const char s[] = ": ping\n\ndata: [DONE]\n\n";
    test_checked_t c;
    test_checked_feed(&c, &OPENAI_SSE, s, sizeof(s) - 1);
    cr_assert_eq(c.m->n, 0);
    cr_assert_eq(c.m->n_events, 3, "created, in_progress, completed");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(test_jget(test_checked_response(&c), "output")->len, 0);
    test_checked_free(&c);
}

Test(chat_completions, empty_body_fails_uncommitted, .timeout = 20)
{
    test_run_t r;
    test_run_begin(&r, &OPENAI_SSE);
    test_run_feed(&r, ": ping\n\n", 8);
    test_run_end(&r);
    cr_assert_lt(r.finish_rc, 0);
    cr_assert_not(gw_stream_committed(r.s));
    test_check_http_error(&r, GW_ERR_UPSTREAM, "upstream stream ended prematurely");
    test_run_free(&r);
}

Test(chat_completions, invalid_json_event_fails, .timeout = 20)
{
    static const char s[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n"
                            "data: {\"choices\":[{\"index\":0,\n\n";
    test_checked_t c;
    test_checked_feed(&c, &OPENAI_SSE, s, sizeof(s) - 1);
    test_check_message(&c.m->it[0], NULL, "output_text", "ok");
    test_check_failure(&c, "upstream sent invalid JSON in its stream", &test_err_upstream);
    test_checked_free(&c);
}

Test(chat_completions, oversized_event_fails, .timeout = 20)
{
    test_run_opts_t o = OPENAI_SSE;
    o.max_event = 1024;
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n");
    gw_buf_append_cstr(&b, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
    for (int i = 0; i < 2000; i++)
        gw_buf_append(&b, "x", 1);
    gw_buf_append_cstr(&b, "\"}}]}\n\n");
    test_checked_t c;
    test_checked_feed(&c, &o, b.base, b.len);
    cr_assert_lt(c.r.feed_rc, 0);
    test_check_message(&c.m->it[0], NULL, "output_text", "ok");
    test_check_failure(&c, "upstream stream event exceeds the size limit", &test_err_upstream);
    cr_assert_not(test_buf_has(&c.r.out, "xxxx"));
    test_checked_free(&c);
    gw_buf_dispose(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: non-SSE JSON answer                                                                 */

Test(chat_completions, json_completion_body, .timeout = 20)
{
    test_run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    test_checked_t c;
    test_checked_run(&c, "cc_json_completion.json", &o, 0);
    cr_assert_eq(c.m->n, 4);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].text[0], "Need a tool.");
    test_check_message(&c.m->it[1], NULL, "output_text", "Checking the weather.");
    test_check_call(&c.m->it[2], NULL, "call_j1", "get_weather", "{\"city\":\"Rome\"}");
    test_check_call(&c.m->it[3], NULL, "call_j2", "get_time", "{}");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 50, 20, 70, 32, 6);
    test_checked_free(&c);
}

Test(chat_completions, json_completion_media_type_is_case_insensitive, .timeout = 20)
{
    /* RFC 9110 §8.3.1: type and subtype are case-insensitive. */
    test_run_opts_t o = OPENAI_SSE;
    o.content_type = "Application/JSON";
    test_checked_t c;
    test_checked_run(&c, "cc_json_completion.json", &o, 0);
    cr_assert_eq(c.m->n, 4);
    test_check_message(&c.m->it[1], NULL, "output_text", "Checking the weather.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(chat_completions, json_completion_body_split, .timeout = 30)
{
    test_run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    test_check_step_feeds("cc_json_completion.json", &o, 7);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: every golden, random chunking                                                       */

Test(chat_completions, all_goldens_random_chunks, .timeout = 60)
{
    static const char *const names[] = {
        "cc_text.sse",
        "cc_crlf.sse",
        "cc_tools_parallel3.sse",
        "cc_text_then_tools.sse",
        "cc_tool_args_in_finish.sse",
        "cc_tool_empty_args.sse",
        "cc_ollama_whole_call.sse",
        "cc_reasoning_content.sse",
        "cc_reasoning_field.sse",
        "cc_refusal.sse",
        "cc_length.sse",
        "cc_content_filter.sse",
        "cc_error_object.sse",
        "cc_error_field.sse",
        "cc_openrouter_error.sse",
        "cc_eof_after_finish.sse",
        "cc_eof_before_finish.sse",
        "cc_done_no_finish.sse",
        "cc_comments.sse",
        "cc_multiline_data.sse",
        "cc_unknown_fields.sse",
        "cc_mixed_order.sse",
        "cc_tool_late_id.sse",
        "cc_legacy_function_call.sse",
        "cc_databricks_error.sse",
    };
    unsigned seed = 4242;
    for (size_t g = 0; g < sizeof(names) / sizeof(names[0]); g++)
        test_check_random_chunks(names[g], &OPENAI_SSE, 40, &seed);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: Databricks front and non-stream mode                                                */

Test(chat_completions, databricks_front_text, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_text.sse", &DBX_SSE, 0);
    cr_assert(c.m->done_marker);
    cr_assert_eq(c.v.n, c.m->n_events + 1);
    const char *tail = "data: [DONE]\n\n";
    cr_assert_geq(c.r.out.len, strlen(tail));
    cr_assert_eq(memcmp(c.r.out.base + c.r.out.len - strlen(tail), tail, strlen(tail)), 0);
    cr_assert_not(test_buf_has(&c.r.out, "event:"), "no event: lines on the Databricks route");
    test_check_message(&c.m->it[0], NULL, "output_text", "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80!");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_usage(test_checked_response(&c), 12, 5, 17, 4, 2);
    /* §5.2: the last data event carries databricks_output. */
    const gw_json_t *dbx = test_jget(c.m->terminal, "databricks_output");
    cr_assert_str_eq(test_js(dbx, "databricks_request_id"), TEST_REQ_ID);
    cr_assert_null(gw_json_get(dbx, "error"));
    test_checked_free(&c);
}

Test(chat_completions, databricks_front_tools, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_tools_parallel3.sse", &DBX_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    test_check_call(&c.m->it[1], NULL, "call_b", "get_time", "{\"tz\":\"UTC\"}");
    cr_assert(c.m->done_marker);
    test_checked_free(&c);
}

Test(chat_completions, databricks_front_failure, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "cc_error_object.sse", &DBX_SSE, 0);
    test_check_failure(&c, "This model's maximum context length is 4096 tokens", &test_err_bad_request);
    cr_assert(c.m->done_marker, "failure on the Databricks route ends with [DONE]");
    /* The error event is the last data event before [DONE]. */
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->error_ev);
    test_checked_free(&c);
}

/* Non-stream output must equal the terminal event's response of the same upstream bytes. */
static void check_nonstream_equals_stream(const char *name, const char *ct)
{
    test_run_opts_t so = OPENAI_SSE, no = OPENAI_SSE;
    so.content_type = no.content_type = ct;
    no.stream = false;
    test_check_nonstream_equals_stream(name, &no, name, &so);
}

Test(chat_completions, nonstream_text, .timeout = 20)
{
    check_nonstream_equals_stream("cc_text.sse", TEST_SSE_CT);
}

Test(chat_completions, nonstream_tools, .timeout = 20)
{
    check_nonstream_equals_stream("cc_tools_parallel3.sse", TEST_SSE_CT);
}

Test(chat_completions, nonstream_reasoning_and_incomplete, .timeout = 20)
{
    check_nonstream_equals_stream("cc_reasoning_content.sse", TEST_SSE_CT);
    check_nonstream_equals_stream("cc_length.sse", TEST_SSE_CT);
}

Test(chat_completions, nonstream_json_body, .timeout = 20)
{
    check_nonstream_equals_stream("cc_json_completion.json", JSON_CT);
}

Test(chat_completions, nonstream_failure_writes_nothing, .timeout = 20)
{
    test_run_opts_t o = OPENAI_SSE;
    o.stream = false;
    test_run_t r;
    test_run_golden(&r, "cc_error_object.sse", &o, 0);
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    /* Non-stream failures become HTTP errors. */
    test_check_http_error(&r, GW_ERR_UPSTREAM_BAD_REQUEST,
                          "This model's maximum context length is 4096 tokens");
    /* The partial output still reaches the table aggregate. */
    gw_str_t agg = gw_stream_aggregate(r.s);
    cr_assert_gt(agg.len, 0);
    gw_arena_t *a = gw_arena_new();
    gw_json_t *obj;
    cr_assert_eq(gw_json_parse(a, agg.base, agg.len, &obj, NULL), 0);
    cr_assert_str_eq(test_js(obj, "status"), "failed");
    const gw_json_t *item = gw_json_at(test_jget(obj, "output"), 0);
    cr_assert_str_eq(test_js(item, "status"), "incomplete");
    cr_assert_str_eq(test_js(gw_json_at(test_jget(item, "content"), 0), "text"), "Partial");
    gw_arena_free(a);
    test_run_free(&r);
}

Test(chat_completions, nonstream_databricks_adds_databricks_output, .timeout = 20)
{
    test_run_opts_t so = DBX_SSE, no = DBX_SSE;
    no.stream = false;
    test_checked_t c;
    test_checked_run(&c, "cc_text.sse", &so, 0);
    test_run_t r;
    test_run_golden(&r, "cc_text.sse", &no, 0);
    const gw_json_t *obj = test_run_json(c.v.a, &r);
    cr_assert_str_eq(test_js(test_jget(obj, "databricks_output"), "databricks_request_id"), TEST_REQ_ID);
    cr_assert_str_eq(test_js(obj, "status"), "completed");
    /* Every key of the terminal response is there with the same value. */
    const gw_json_t *resp = test_checked_response(&c);
    for (const gw_json_t *k = resp->child; k; k = k->next) {
        char key[64];
        cr_assert_lt(k->key.len, sizeof(key));
        memcpy(key, k->key.base, k->key.len);
        key[k->key.len] = '\0';
        test_check_json_alike(k, test_jget(obj, key), key);
    }
    test_run_free(&r);
    test_checked_free(&c);
}

/* Bounds (issue 15): a hostile upstream cannot make a response cost more than linear time or
 * more than limits.max_output_bytes of memory. */

static void append_chunk(gw_buf_t *b, const char *delta)
{
    gw_buf_appendf(b, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                      "\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":null}]}\n\n", delta);
}

Test(chat_completions, five_thousand_parallel_calls_interleaved_close_in_order, .timeout = 60)
{
    enum { N = 5000 };
    gw_buf_t b;
    gw_buf_init(&b);
    append_chunk(&b, "{\"role\":\"assistant\",\"content\":null}");
    char d[256];
    for (int i = N - 1; i >= 0; i--) { /* announced in descending index order: any order must hold */
        snprintf(d, sizeof(d), "{\"tool_calls\":[{\"index\":%d,\"id\":\"call_%d\",\"type\":\"function\","
                               "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"i\\\":\"}}]}", i * 7 - 3000, i);
        append_chunk(&b, d);
    }
    for (int i = 0; i < N; i++) {
        snprintf(d, sizeof(d), "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":\"%d}\"}}]}", i * 7 - 3000, i);
        append_chunk(&b, d);
    }
    gw_buf_append_cstr(&b, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                           "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");
    test_run_t r;
    test_run_begin(&r, &OPENAI_SSE);
    test_run_feed(&r, b.base, b.len);
    test_run_end(&r);
    /* Every call closed once, in output_index order, with its own arguments. */
    size_t done = 0;
    int last = -1;
    char want[64];
    for (const char *p = r.out.base, *end = r.out.base + r.out.len;
         (p = memmem(p, (size_t)(end - p), "\"type\":\"response.output_item.done\"", 34)); p += 34) {
        const char *oi = memmem(p, (size_t)(end - p), "\"output_index\":", 15);
        cr_assert_not_null(oi);
        int v = atoi(oi + 15);
        cr_assert_gt(v, last, "done events in output_index order");
        last = v;
        done++;
    }
    cr_assert_eq(done, N, "one done event per call");
    snprintf(want, sizeof(want), "\"arguments\":\"{\\\"i\\\":%d}\"", N - 1);
    cr_assert(test_buf_has(&r.out, want), "the last call's arguments are whole");
    cr_assert(test_buf_has(&r.out, "response.completed"));
    test_run_free(&r);
    gw_buf_dispose(&b);
}

Test(chat_completions, nameless_call_arguments_are_bounded_by_max_output_bytes, .timeout = 30)
{
    test_run_opts_t o = OPENAI_SSE;
    o.max_output = 64 * 1024;
    gw_buf_t b;
    gw_buf_init(&b);
    append_chunk(&b, "{\"role\":\"assistant\",\"content\":null}");
    char frag[1100];
    memset(frag, 'a', 1000);
    frag[1000] = '\0';
    char d[1200];
    for (int i = 0; i < 200; i++) { /* 200 KB of arguments for a call whose name never comes */
        snprintf(d, sizeof(d), "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"%s\"}}]}", frag);
        append_chunk(&b, d);
    }
    test_run_t r;
    test_run_begin(&r, &o);
    test_run_feed(&r, b.base, b.len);
    test_run_end(&r);
    cr_assert(r.stopped, "the adapter stopped reading");
    cr_assert(test_buf_has(&r.out, "without a function name exceed limits.max_output_bytes"));
    cr_assert(test_buf_has(&r.out, "response.failed"));
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    test_run_free(&r);
    gw_buf_dispose(&b);
}

Test(chat_completions, text_past_max_output_bytes_fails_the_stream, .timeout = 30)
{
    test_run_opts_t o = OPENAI_SSE;
    o.max_output = 16 * 1024;
    gw_buf_t b;
    gw_buf_init(&b);
    append_chunk(&b, "{\"role\":\"assistant\",\"content\":\"\"}");
    for (int i = 0; i < 100; i++)
        append_chunk(&b, "{\"content\":\"0123456789012345678901234567890123456789012345678901234567890123456789"
                         "01234567890123456789012345678901234567890123456789012345678901234567890123456789"
                         "0123456789012345678901234567890123456789012345678901234567890123456789\"}");
    test_run_t r;
    test_run_begin(&r, &o);
    test_run_feed(&r, b.base, b.len);
    test_run_end(&r);
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    cr_assert(test_buf_has(&r.out, "upstream output exceeds limits.max_output_bytes (16384 bytes)"));
    test_run_free(&r);
    gw_buf_dispose(&b);
}
