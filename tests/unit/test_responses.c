/* Responses upstream adapter driven through the real pipeline: recorded upstream streams
 * (tests/data/rs_*, OpenAI flavour from the mock's /responses route, rs_ml_* MLflow flavour from
 * /invocations, plus hand-written edge cases) go through ad_responses.start/feed/finish into
 * gw_stream, whose rendered Responses SSE is parsed back with gw_sse + gw_json and checked against
 * PROTOCOL.md §4.2/§4.3/§5.2/§5.3/§7.7/§9, event by event (tests/unit/support/events.h). Also
 * ad_responses.encode_request. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/json.h"
#include "gateway/request.h"
#include "gateway/stream.h"
#include "support/events.h"

#define UP_MODEL  "upstream-model"
#define JSON_CT   "application/json"
#define PROTO_ERR "upstream protocol error: "

/* A Databricks-route request asking for the trace. */
static const char REQ_TRACE[] =
    "{\"input\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"custom_inputs\":{\"thread\":\"abc\"},"
    "\"databricks_options\":{\"return_trace\":true}}";

/* Upstream items keep their own ids here, so no minted_items. */
static const test_run_opts_t OPENAI_SSE = {
    .adapter = GW_ADAPTER_RESPONSES,
    .front = GW_FRONT_OPENAI,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .flavor = GW_FLAVOR_OPENAI,
};
static const test_run_opts_t ML_SSE = {
    .adapter = GW_ADAPTER_RESPONSES,
    .front = GW_FRONT_OPENAI,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .flavor = GW_FLAVOR_MLFLOW,
};
static const test_run_opts_t DBX_SSE = {
    .adapter = GW_ADAPTER_RESPONSES,
    .front = GW_FRONT_DATABRICKS,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .flavor = GW_FLAVOR_OPENAI,
};
static const test_run_opts_t DBX_ML_TRACE = {
    .adapter = GW_ADAPTER_RESPONSES,
    .front = GW_FRONT_DATABRICKS,
    .stream = true,
    .content_type = TEST_SSE_CT,
    .max_event = TEST_MIB,
    .flavor = GW_FLAVOR_MLFLOW,
    .req_body = REQ_TRACE,
};
/* A non-stream client over an upstream that answers with one JSON object. */
static const test_run_opts_t JSON_NONSTREAM = {
    .adapter = GW_ADAPTER_RESPONSES,
    .front = GW_FRONT_OPENAI,
    .stream = false,
    .content_type = JSON_CT,
    .max_event = TEST_MIB,
    .flavor = GW_FLAVOR_OPENAI,
};

/* A protocol violation: §5.3 with an "upstream protocol error: ..." message (502 row of §7.6). */
static void check_violation(const test_checked_t *c, const char *what)
{
    char want[512];
    snprintf(want, sizeof(want), PROTO_ERR "%s", what);
    test_check_failure(c, want, &test_err_upstream);
}

/* A failure with some "upstream protocol error: ..." message; the test leaves the wording open. */
static void check_some_violation(const test_checked_t *c)
{
    cr_assert_str_eq(c->m->terminal_type, "response.failed");
    const char *msg = test_js(c->m->error_ev, "message");
    cr_assert_eq(strncmp(msg, PROTO_ERR, strlen(PROTO_ERR)), 0, "message: %s", msg);
}

/* Feed one literal stream (NUL-terminated) and check what was rendered. */
static void run_literal(test_checked_t *c, const test_run_opts_t *o, const char *stream)
{
    test_checked_feed(c, o, stream, strlen(stream));
}

/* ------------------------------------------------------------------------------------------ */
/* tests: OpenAI flavour (recorded from the mock's /responses route)                          */

TestSuite(responses, .timeout = 60);

Test(responses, path_per_flavor, .timeout = 10)
{
    gw_endpoint_cfg_t ep = {.flavor = GW_FLAVOR_OPENAI};
    cr_assert_str_eq(ad_responses.path(&ep), "/responses");
    ep.flavor = GW_FLAVOR_MLFLOW;
    cr_assert_str_eq(ad_responses.path(&ep), "/invocations");
    cr_assert_str_eq(ad_responses.name, "responses");
    cr_assert_eq(ad_for(GW_ADAPTER_RESPONSES), &ad_responses);
}

Test(responses, text_whole, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_text.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_eq(c.m->it[0].n_deltas, 3);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* created, in_progress, added, part added, 3 deltas, text done, part done, item done, completed:
     * sequence numbers are ours (renumbered from 0), not the upstream's. */
    cr_assert_eq(c.m->n_events, 11);
    const gw_json_t *resp = test_checked_response(&c);
    test_check_usage(resp, 10, 3, 13, 0, 0);
    /* The upstream response id never leaks; echoed request fields are the client's. */
    cr_assert_not(test_buf_has(&c.r.out, "resp_upstream_1"));
    cr_assert_str_eq(test_js(resp, "instructions"), "Be terse.");
    cr_assert_str_eq(test_js(test_jget(resp, "metadata"), "ticket"), "T-17");
    cr_assert(test_jnum_is(resp, "temperature", "0.25"));
    cr_assert_str_eq(test_js(gw_json_at(test_jget(resp, "tools"), 0), "name"), "get_weather");
    cr_assert_eq(gw_stream_status(c.r.s), GW_FINISH_COMPLETED);
    cr_assert(gw_stream_committed(c.r.s));
    cr_assert_null(gw_stream_error(c.r.s));
    gw_str_t um = gw_stream_upstream_model(c.r.s);
    cr_assert(gw_str_eq(um, UP_MODEL), "upstream model %.*s", (int)um.len, um.base);
    const ad_usage_t *u = gw_stream_usage(c.r.s);
    cr_assert(u->present);
    cr_assert_eq(u->input, 10);
    cr_assert_eq(u->total, 13);
    test_checked_free(&c);
}

Test(responses, text_split_every_offset, .timeout = 60)
{
    test_check_split_every_offset("rs_text.sse", &OPENAI_SSE);
}

Test(responses, text_byte_at_a_time, .timeout = 20)
{
    test_checked_t whole, bytewise;
    test_checked_run(&whole, "rs_text.sse", &OPENAI_SSE, 0);
    test_checked_run(&bytewise, "rs_text.sse", &OPENAI_SSE, 1);
    test_check_same_output(&whole.r, &bytewise.r);
    test_checked_free(&whole);
    test_checked_free(&bytewise);
}

Test(responses, tools_interleaved, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_tools.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    test_check_call(&c.m->it[0], "fc_up_1", "call_up_1", "tool_a", "{\"a\":1}");
    test_check_call(&c.m->it[1], "fc_up_2", "call_up_2", "tool_b", "{\"b\":2}");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    cr_assert_eq(c.m->it[1].n_deltas, 2);
    char *types = test_events_types(&c.v);
    cr_assert_str_eq(types, "response.created,response.in_progress,response.output_item.added,"
                            "response.output_item.added,response.function_call_arguments.delta,"
                            "response.function_call_arguments.delta,response.function_call_arguments.delta,"
                            "response.function_call_arguments.delta,response.function_call_arguments.done,"
                            "response.output_item.done,response.function_call_arguments.done,"
                            "response.output_item.done,response.completed");
    free(types);
    /* Deltas keep the upstream's interleaving. */
    const char *order[4];
    size_t n = test_events_strings(&c.v, "response.function_call_arguments.delta", "item_id", order, 4);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(order[0], "fc_up_1");
    cr_assert_str_eq(order[1], "fc_up_2");
    cr_assert_str_eq(order[2], "fc_up_1");
    cr_assert_str_eq(order[3], "fc_up_2");
    test_check_usage(test_checked_response(&c), 20, 8, 28, 0, 0);
    test_checked_free(&c);
}

Test(responses, reasoning_then_message, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_reasoning.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].id, "rs_up_1");
    cr_assert_eq(c.m->it[0].n_parts, 1);
    cr_assert_str_eq(c.m->it[0].text[0], "Thinking");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    test_check_message(&c.m->it[1], "msg_up_1", "output_text", "Done.");
    test_check_usage(test_checked_response(&c), 10, 5, 15, 0, 2);
    test_checked_free(&c);
}

Test(responses, custom_outputs_on_openai_front_reach_the_aggregate, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_custom.sse", &OPENAI_SSE, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* The table aggregate keeps custom_outputs byte-exact (numbers as written). */
    gw_str_t agg = gw_stream_aggregate(c.r.s);
    cr_assert(test_str_has(agg, "\"custom_outputs\":{\"k\":\"v\",\"n\":1.50}"), "aggregate: %.*s",
              (int)agg.len, agg.base);
    test_checked_free(&c);
}

Test(responses, custom_outputs_on_databricks_front, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_custom.sse", &DBX_SSE, 0);
    cr_assert(c.m->done_marker);
    cr_assert_not(test_buf_has(&c.r.out, "event:"));
    const gw_json_t *co = test_jget(c.m->terminal, "custom_outputs");
    cr_assert_str_eq(test_js(co, "k"), "v");
    cr_assert(test_jnum_is(co, "n", "1.50"), "custom_outputs numbers pass through byte-exact");
    cr_assert_str_eq(test_js(test_jget(c.m->terminal, "databricks_output"), "databricks_request_id"),
                     TEST_REQ_ID);
    /* The terminal event is the last data event before [DONE] (§5.2). */
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->terminal);
    test_checked_free(&c);
}

Test(responses, upstream_failed_then_error_event, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_error.sse", &OPENAI_SSE, 0);
    cr_assert_lt(c.r.feed_rc, 0, "feed reports the failure");
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "agent crashed", &test_err_upstream);
    /* The upstream's own error event is not forwarded a second time. */
    cr_assert_eq(test_events_count(&c.v, "error"), 1);
    cr_assert_eq(test_events_count(&c.v, "response.failed"), 1);
    test_checked_free(&c);
}

Test(responses, failed_with_empty_output_closes_open_items_incomplete, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_failed_empty_output.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], "msg_f1", "output_text", "Parti");
    cr_assert_str_eq(c.m->it[0].status, "incomplete", "§5.3: open items are closed incomplete on failure");
    /* rate_limit_exceeded maps to the 429 row of §7.6. */
    test_check_failure(&c, "quota exhausted mid-stream", &test_err_rate_limit);
    test_checked_free(&c);
}

Test(responses, error_event_alone, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_error_event.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_call(&c.m->it[0], "fc_e1", "call_e1", "lookup", "{\"q\"");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "Rate limit reached for requests", &test_err_rate_limit);
    test_checked_free(&c);
}

Test(responses, databricks_output_error_on_sparse_openai_route, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_error_dbx.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "TimeoutException: Tool XYZ failed to execute.", &test_err_bad_request);
    test_checked_free(&c);
}

Test(responses, unknown_event_type_dropped, .timeout = 20)
{
    test_checked_t c, plain;
    test_checked_run(&c, "rs_unknown_event.sse", &OPENAI_SSE, 0);
    test_checked_run(&plain, "rs_text.sse", &OPENAI_SSE, 0);
    cr_assert_not(test_buf_has(&c.r.out, "custom_thing"));
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    /* Same bytes as the stream without the unknown event. */
    test_check_same_output(&plain.r, &c.r);
    test_checked_free(&c);
    test_checked_free(&plain);
}

Test(responses, unknown_event_type_passed_through_on_databricks_front, .timeout = 20)
{
    /* PROTOCOL.md §7.7: Databricks-route clients get it, renumbered in the gateway's sequence. */
    test_checked_t c;
    test_checked_run(&c, "rs_unknown_event.sse", &DBX_SSE, 0);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    size_t found = 0;
    for (size_t i = 0; i < c.v.n; i++) {
        const gw_json_t *j = c.v.ev[i].j;
        if (!j || !gw_str_eq(gw_json_get_str(j, "type"), "response.custom_thing"))
            continue;
        found++;
        cr_assert_str_eq(c.v.ev[i].event, "", "data-only framing");
        cr_assert_eq(test_ji(j, "sequence_number"), (int64_t)i, "the gateway's sequence number");
        cr_assert(test_jnum_is(j, "x", "1"));
    }
    cr_assert_eq(found, 1);
    test_checked_free(&c);
}

Test(responses, unknown_event_type_dropped_for_non_streaming_databricks, .timeout = 20)
{
    test_run_opts_t o = DBX_SSE;
    o.stream = false;
    test_run_t r;
    test_run_golden(&r, "rs_unknown_event.sse", &o, 0);
    cr_assert_not(test_buf_has(&r.out, "custom_thing"));
    test_run_free(&r);
}

Test(responses, bad_json_after_created_is_a_protocol_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_bad_json.sse", &OPENAI_SSE, 0);
    cr_assert_lt(c.r.feed_rc, 0);
    cr_assert_eq(c.m->n, 0);
    cr_assert_eq(c.m->n_events, 4, "created, in_progress, failed, error");
    check_violation(&c, "invalid JSON in a stream event");
    test_checked_free(&c);
}

Test(responses, delta_after_done_is_a_protocol_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_delta_after_done.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    /* Already closed before the violation: keeps the status its output_item.done announced. */
    cr_assert_str_eq(c.m->it[0].status, "completed");
    check_violation(&c, "event for item msg_up_1 after its output_item.done");
    cr_assert_not(test_buf_has(&c.r.out, " late"));
    cr_assert_eq(test_events_count(&c.v, "response.completed"), 0);
    test_checked_free(&c);
}

Test(responses, second_terminal_event_ignored, .timeout = 20)
{
    test_checked_t c, plain;
    test_checked_run(&c, "rs_two_terminal.sse", &OPENAI_SSE, 0);
    test_checked_run(&plain, "rs_text.sse", &OPENAI_SSE, 0);
    cr_assert_eq(test_events_count(&c.v, "response.completed"), 1);
    cr_assert_eq(c.m->n_events, 11);
    test_check_same_output(&plain.r, &c.r);
    test_checked_free(&c);
    test_checked_free(&plain);
}

Test(responses, no_terminal_event_synthesises_completed, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_no_terminal.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(test_jget(test_checked_response(&c), "output")->len, 1, "completed carries the full output");
    test_check_no_usage(&c);
    test_checked_free(&c);
}

Test(responses, refusal_part_and_incomplete, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_refusal_incomplete.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    const test_item_t *it = &c.m->it[0];
    cr_assert_str_eq(it->id, "msg_r1");
    cr_assert_eq(it->n_parts, 2);
    cr_assert_str_eq(it->part_type[0], "output_text");
    cr_assert_str_eq(it->text[0], "Sure, ");
    cr_assert_str_eq(it->part_type[1], "refusal");
    cr_assert_str_eq(it->text[1], "I can't help.");
    cr_assert_str_eq(it->status, "incomplete");
    cr_assert_str_eq(c.m->terminal_type, "response.incomplete");
    const gw_json_t *resp = test_checked_response(&c);
    cr_assert_str_eq(test_js(test_jget(resp, "incomplete_details"), "reason"), "content_filter");
    test_check_usage(resp, 7, 4, 11, 3, 1);
    cr_assert_eq(test_events_count(&c.v, "response.refusal.delta"), 2);
    cr_assert_eq(test_events_count(&c.v, "response.refusal.done"), 1);
    test_checked_free(&c);
}

Test(responses, missing_announcements_synthesised, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_missing_added.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 3);
    test_check_message(&c.m->it[0], "msg_s1", "output_text", "One two");
    cr_assert_eq(c.m->it[0].n_deltas, 2);
    /* Arguments carried on output_item.added become the first delta. */
    test_check_call(&c.m->it[1], "fc_s2", "call_s2", "lookup", "{\"q\":1}");
    cr_assert_eq(c.m->it[1].n_deltas, 2);
    /* An item only listed in the terminal output is streamed before the terminal event. */
    test_check_message(&c.m->it[2], "msg_s3", "output_text", "Only in the final output.");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_no_usage(&c);
    /* The upstream comment after commit is forwarded as one keepalive comment. */
    cr_assert_eq(c.m->n_comments, 1);
    test_checked_free(&c);
}

Test(responses, text_delta_for_a_function_call_is_a_protocol_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_wrong_item_kind.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].type, "function_call");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    cr_assert_not(test_buf_has(&c.r.out, "text into a call"));
    check_some_violation(&c);
    test_checked_free(&c);
}

Test(responses, arguments_done_for_a_message_is_a_protocol_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_args_done_on_message.sse", &OPENAI_SSE, 0);
    cr_assert_eq(c.m->n, 1);
    cr_assert_str_eq(c.m->it[0].type, "message");
    check_some_violation(&c);
    test_checked_free(&c);
}

Test(responses, done_marker_with_open_items_on_openai_flavour_is_a_violation, .timeout = 20)
{
    test_checked_t c;
    run_literal(
        &c, &OPENAI_SSE,
        "event: response.output_item.added\n"
        "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"msg_o\",\"type\":\"message\","
        "\"role\":\"assistant\",\"content\":[]}}\n\n"
        "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_o\",\"delta\":\"x\"}\n\n"
        "data: [DONE]\n\n");
    test_check_message(&c.m->it[0], "msg_o", "output_text", "x");
    check_violation(&c, "stream ended with items still in progress");
    test_checked_free(&c);
}

Test(responses, function_call_without_name_is_a_violation, .timeout = 20)
{
    test_checked_t c;
    run_literal(
        &c, &OPENAI_SSE,
        "data: {\"type\":\"response.created\",\"response\":{}}\n\n"
        "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"fc_n\",\"type\":\"function_call\","
        "\"call_id\":\"call_n\",\"arguments\":\"\"}}\n\n");
    cr_assert_eq(c.m->n, 0);
    check_violation(&c, "function_call item without a name");
    test_checked_free(&c);
}

Test(responses, repeated_item_id_is_a_violation, .timeout = 20)
{
    static const char added[] =
        "data: {\"type\":\"response.output_item.added\",\"item\":{\"id\":\"fc_r\",\"type\":"
        "\"function_call\",\"call_id\":\"call_r\",\"name\":\"f\",\"arguments\":\"\"}}\n\n";
    char s[1024];
    snprintf(s, sizeof(s), "%s%s", added, added);
    test_checked_t c;
    run_literal(&c, &OPENAI_SSE, s);
    cr_assert_eq(c.m->n, 1);
    check_violation(&c, "output_item.added repeats an item id");
    test_checked_free(&c);
}

Test(responses, arguments_delta_for_unknown_item_is_a_violation, .timeout = 20)
{
    test_checked_t c;
    run_literal(
        &c, &OPENAI_SSE,
        "data: {\"type\":\"response.created\",\"response\":{}}\n\n"
        "data: "
        "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_x\",\"delta\":\"{}\"}\n\n");
    check_violation(&c, "event for an unknown item");
    test_checked_free(&c);
}

Test(responses, non_object_event_is_a_violation, .timeout = 20)
{
    test_checked_t c;
    run_literal(&c, &OPENAI_SSE, "data: {\"type\":\"response.created\",\"response\":{}}\n\ndata: [1,2]\n\n");
    check_violation(&c, "stream event is not a JSON object");
    test_checked_free(&c);
}

Test(responses, oversized_event_is_a_violation, .timeout = 20)
{
    test_run_opts_t o = OPENAI_SSE;
    o.max_event = 1024;
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(
        &b, "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_b\",\"delta\":\"ok\"}\n\n");
    gw_buf_append_cstr(&b,
                       "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_b\",\"delta\":\"");
    for (int i = 0; i < 2000; i++)
        gw_buf_append(&b, "x", 1);
    gw_buf_append_cstr(&b, "\"}\n\n");
    test_checked_t c;
    test_checked_feed(&c, &o, b.base, b.len);
    test_check_message(&c.m->it[0], "msg_b", "output_text", "ok");
    check_violation(&c, "stream event exceeds the size limit");
    cr_assert_not(test_buf_has(&c.r.out, "xxxx"));
    test_checked_free(&c);
    gw_buf_dispose(&b);
}

Test(responses, error_as_first_event_writes_nothing, .timeout = 20)
{
    test_run_t r;
    test_run_begin(&r, &ML_SSE);
    static const char s[] = "data: {\"error\":{\"message\":\"slow down\",\"code\":429}}\n\ndata: [DONE]\n\n";
    test_run_feed(&r, s, sizeof(s) - 1);
    test_run_end(&r);
    cr_assert_lt(r.feed_rc, 0);
    cr_assert_not(gw_stream_committed(r.s));
    /* Upstream code 429 maps to rate limit. */
    test_check_http_error(&r, GW_ERR_RATE_LIMIT, "slow down");
    test_run_free(&r);
}

Test(responses, empty_body_fails_uncommitted, .timeout = 20)
{
    test_run_t r;
    test_run_begin(&r, &OPENAI_SSE);
    test_run_feed(&r, ": ping\n\n", 8);
    test_run_end(&r);
    cr_assert_lt(r.finish_rc, 0);
    test_check_http_error(&r, GW_ERR_UPSTREAM, PROTO_ERR "stream ended before any event");
    test_run_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: MLflow flavour (recorded from the mock's /invocations route)                        */

Test(responses, mlflow_text_sparse_stream_normalised, .timeout = 20)
{
    test_checked_t c, full;
    test_checked_run(&c, "rs_ml_text.sse", &ML_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_eq(c.r.finish_rc, 0);
    cr_assert_eq(c.m->n, 1);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_eq(c.m->it[0].n_deltas, 3);
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_check_no_usage(&c);
    /* Same event sequence as the full OpenAI-flavour stream of the same answer. */
    test_checked_run(&full, "rs_text.sse", &OPENAI_SSE, 0);
    char *a = test_events_types(&c.v), *b = test_events_types(&full.v);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    test_checked_free(&full);
    test_checked_free(&c);
}

Test(responses, mlflow_text_split_every_offset, .timeout = 60)
{
    test_check_split_every_offset("rs_ml_text.sse", &ML_SSE);
}

Test(responses, mlflow_reasoning_split_every_offset, .timeout = 60)
{
    test_check_split_every_offset("rs_ml_reasoning.sse", &ML_SSE);
}

Test(responses, mlflow_tools_from_done_items_only, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_tools.sse", &ML_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    test_check_call(&c.m->it[0], "fc_up_1", "call_up_1", "tool_a", "{\"a\":1}");
    test_check_call(&c.m->it[1], "fc_up_2", "call_up_2", "tool_b", "{\"b\":2}");
    cr_assert_eq(c.m->it[0].n_deltas, 1, "whole arguments as one synthesised delta");
    char *types = test_events_types(&c.v);
    cr_assert_str_eq(types, "response.created,response.in_progress,response.output_item.added,"
                            "response.function_call_arguments.delta,response.function_call_arguments.done,"
                            "response.output_item.done,response.output_item.added,"
                            "response.function_call_arguments.delta,response.function_call_arguments.done,"
                            "response.output_item.done,response.completed");
    free(types);
    test_checked_free(&c);
}

Test(responses, mlflow_reasoning_from_done_item, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_reasoning.sse", &ML_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    cr_assert_str_eq(c.m->it[0].type, "reasoning");
    cr_assert_str_eq(c.m->it[0].id, "rs_up_1");
    cr_assert_str_eq(c.m->it[0].text[0], "Thinking");
    test_check_message(&c.m->it[1], "msg_up_1", "output_text", "Done.");
    test_checked_free(&c);
}

Test(responses, mlflow_custom_outputs_and_trace_on_databricks_front, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_custom.sse", &DBX_ML_TRACE, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->terminal, "terminal event is the last data event");
    const gw_json_t *co = test_jget(c.m->terminal, "custom_outputs");
    cr_assert_str_eq(test_js(co, "k"), "v");
    cr_assert(test_jnum_is(co, "n", "1.50"));
    const gw_json_t *dbx = test_jget(c.m->terminal, "databricks_output");
    cr_assert_str_eq(test_js(dbx, "databricks_request_id"), TEST_REQ_ID);
    const gw_json_t *trace = test_jget(dbx, "trace");
    char *t = test_json_text(trace);
    cr_assert_str_eq(t, "{\"spans\":[{\"name\":\"root\"}]}");
    free(t);
    test_checked_free(&c);
}

Test(responses, mlflow_trace_only_when_requested, .timeout = 20)
{
    test_run_opts_t o = DBX_ML_TRACE;
    o.req_body = "{\"input\":\"Hi\",\"databricks_options\":{\"return_trace\":false}}";
    test_checked_t c;
    test_checked_run(&c, "rs_ml_custom.sse", &o, 0);
    const gw_json_t *dbx = test_jget(c.m->terminal, "databricks_output");
    cr_assert_null(gw_json_get(dbx, "trace"), "trace only when databricks_options.return_trace is true");
    cr_assert_not_null(gw_json_get(c.m->terminal, "custom_outputs"));
    test_checked_free(&c);
}

Test(responses, mlflow_string_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_error.sse", &ML_SSE, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "agent crashed", &test_err_upstream);
    test_checked_free(&c);
}

Test(responses, mlflow_databricks_output_error, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_error_dbx.sse", &ML_SSE, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "TimeoutException: Tool XYZ failed to execute.", &test_err_bad_request);
    test_checked_free(&c);
}

Test(responses, mlflow_databricks_output_error_on_databricks_front, .timeout = 20)
{
    test_run_opts_t o = DBX_ML_TRACE;
    test_checked_t c;
    test_checked_run(&c, "rs_ml_error_dbx.sse", &o, 0);
    test_check_failure(&c, "TimeoutException: Tool XYZ failed to execute.", &test_err_bad_request);
    cr_assert(c.m->done_marker);
    cr_assert_eq(c.v.ev[c.v.n - 2].j, c.m->error_ev, "the error event is the last data event before [DONE]");
    test_checked_free(&c);
}

Test(responses, mlflow_unknown_event_dropped, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_unknown_event.sse", &ML_SSE, 0);
    cr_assert_not(test_buf_has(&c.r.out, "custom_thing"));
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(responses, mlflow_bad_json_first_event_writes_nothing, .timeout = 20)
{
    test_run_t r;
    test_run_golden(&r, "rs_ml_bad_json.sse", &ML_SSE, 0);
    cr_assert_lt(r.feed_rc, 0);
    cr_assert_not(gw_stream_committed(r.s));
    /* Bad upstream data is the 502 row. */
    test_check_http_error(&r, GW_ERR_UPSTREAM, PROTO_ERR "invalid JSON in a stream event");
    test_run_free(&r);
}

Test(responses, mlflow_delta_after_done, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_delta_after_done.sse", &ML_SSE, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    check_violation(&c, "event for item msg_up_1 after its output_item.done");
    test_checked_free(&c);
}

Test(responses, mlflow_function_call_without_id_gets_a_minted_id, .timeout = 20)
{
    /* MLflow validates function_call items without requiring an id; the client must still see a
     * fresh fc_ + 32 hex id (§4.4, §7.5). Tool-output items are not rendered. */
    test_checked_t c;
    test_checked_run(&c, "rs_ml_tool_no_id.sse", &ML_SSE, 0);
    cr_assert_eq(c.m->n, 2);
    test_check_call(&c.m->it[0], NULL, "call_n1", "lookup", "{\"q\":\"x\"}");
    const char *id = c.m->it[0].id;
    cr_assert(strncmp(id, "fc_", 3) == 0 && strlen(id) == 35, "minted id %s is not fc_ + 32 hex", id);
    test_check_message(&c.m->it[1], "msg_n2", "output_text", "After the call.");
    cr_assert_not(test_buf_has(&c.r.out, "function_call_output"));
    test_checked_free(&c);
}

Test(responses, mlflow_eof_with_open_item_fails, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_ml_eof_open_item.sse", &ML_SSE, 0);
    cr_assert_eq(c.r.feed_rc, 0);
    cr_assert_lt(c.r.finish_rc, 0);
    test_check_message(&c.m->it[0], "3f1c9a2e-0000-4000-8000-000000000001", "output_text", "Cut short");
    cr_assert_str_eq(c.m->it[0].status, "incomplete");
    test_check_failure(&c, "upstream stream ended prematurely", &test_err_upstream);
    test_checked_free(&c);
}

Test(responses, mlflow_two_terminal_full_events_on_invocations, .timeout = 20)
{
    test_checked_t c;
    test_checked_run(&c, "rs_two_terminal.sse", &ML_SSE, 0);
    cr_assert_eq(test_events_count(&c.v, "response.completed"), 1);
    test_checked_free(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: non-streaming (JSON) upstream answers, non-stream client mode                       */

/* Non-stream output of `name` (upstream Content-Type ct) must equal the terminal event's response
 * of `stream_name`. */
static void check_nonstream_equals_stream(const char *name, const char *ct, const char *stream_name,
                                          const test_run_opts_t *base)
{
    test_run_opts_t no = *base;
    no.stream = false;
    no.content_type = ct;
    test_check_nonstream_equals_stream(name, &no, stream_name, base);
}

Test(responses, nonstream_client_over_sse_upstream, .timeout = 20)
{
    check_nonstream_equals_stream("rs_text.sse", TEST_SSE_CT, "rs_text.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_tools.sse", TEST_SSE_CT, "rs_tools.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_reasoning.sse", TEST_SSE_CT, "rs_reasoning.sse", &OPENAI_SSE);
}

Test(responses, json_object_equals_stream_result, .timeout = 20)
{
    /* The upstream's non-streaming object and its stream yield the same final response. */
    check_nonstream_equals_stream("rs_text.json", JSON_CT, "rs_text.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_tools.json", JSON_CT, "rs_tools.sse", &OPENAI_SSE);
    check_nonstream_equals_stream("rs_ml_reasoning.json", JSON_CT, "rs_ml_reasoning.sse", &ML_SSE);
}

Test(responses, json_object_to_stream_client_synthesises_events, .timeout = 20)
{
    test_run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    test_checked_t c;
    test_checked_run(&c, "rs_tools.json", &o, 0);
    cr_assert_eq(c.m->n, 2);
    test_check_call(&c.m->it[0], "fc_up_1", "call_up_1", "tool_a", "{\"a\":1}");
    test_check_call(&c.m->it[1], "fc_up_2", "call_up_2", "tool_b", "{\"b\":2}");
    test_check_usage(test_checked_response(&c), 20, 8, 28, 0, 0);
    test_checked_free(&c);
}

Test(responses, json_object_split_feeds, .timeout = 20)
{
    test_run_opts_t o = OPENAI_SSE;
    o.content_type = JSON_CT;
    test_check_step_feeds("rs_text.json", &o, 9);
}

Test(responses, json_media_type_is_case_insensitive, .timeout = 20)
{
    /* RFC 9110 §8.3.1: type and subtype are case-insensitive. */
    test_run_opts_t o = OPENAI_SSE;
    o.content_type = "Application/JSON; charset=utf-8";
    test_checked_t c;
    test_checked_run(&c, "rs_text.json", &o, 0);
    test_check_message(&c.m->it[0], "msg_up_1", "output_text", "Hello from responses");
    cr_assert_str_eq(c.m->terminal_type, "response.completed");
    test_checked_free(&c);
}

Test(responses, json_object_failed_status_is_an_upstream_error, .timeout = 20)
{
    test_run_t r;
    test_run_golden(&r, "rs_error.json", &JSON_NONSTREAM, 0);
    cr_assert_lt(r.finish_rc, 0);
    cr_assert_eq(gw_stream_status(r.s), GW_FINISH_FAILED);
    /* Non-stream failures become HTTP errors. */
    test_check_http_error(&r, GW_ERR_UPSTREAM, "agent crashed");
    /* The partial output reaches the table aggregate. */
    gw_str_t agg = gw_stream_aggregate(r.s);
    cr_assert(test_str_has(agg, "\"status\":\"failed\""), "aggregate: %.*s", (int)agg.len, agg.base);
    cr_assert(test_str_has(agg, "\"text\":\"Hello\""));
    test_run_free(&r);
}

Test(responses, json_object_in_progress_status_completes, .timeout = 20)
{
    test_run_t r;
    test_run_golden(&r, "rs_no_terminal.json", &JSON_NONSTREAM, 0);
    cr_assert_eq(r.finish_rc, 0);
    gw_arena_t *a = gw_arena_new();
    const gw_json_t *obj = test_run_json(a, &r);
    cr_assert_str_eq(test_js(obj, "status"), "completed");
    cr_assert_str_eq(test_js(obj, "id"), TEST_RESP_ID);
    cr_assert_str_eq(test_js(obj, "model"), TEST_CLIENT_MODEL);
    const gw_json_t *item = gw_json_at(test_jget(obj, "output"), 0);
    cr_assert_str_eq(test_js(item, "id"), "msg_up_1");
    cr_assert_str_eq(test_js(item, "status"), "completed");
    cr_assert_str_eq(test_js(gw_json_at(test_jget(item, "content"), 0), "text"), "Hello from responses");
    gw_arena_free(a);
    test_run_free(&r);
}

Test(responses, json_object_not_json_is_a_protocol_error, .timeout = 20)
{
    test_run_t r;
    test_run_golden(&r, "rs_bad_json.json", &JSON_NONSTREAM, 0);
    cr_assert_lt(r.finish_rc, 0);
    test_check_http_error(&r, GW_ERR_UPSTREAM, PROTO_ERR "invalid JSON answer");
    test_run_free(&r);
}

Test(responses, mlflow_json_object_on_databricks_front, .timeout = 20)
{
    test_run_opts_t o = DBX_ML_TRACE;
    o.stream = false;
    o.content_type = JSON_CT;
    test_run_t r;
    test_run_golden(&r, "rs_ml_custom.json", &o, 0);
    gw_arena_t *a = gw_arena_new();
    const gw_json_t *obj = test_run_json(a, &r);
    cr_assert_str_eq(test_js(obj, "status"), "completed");
    cr_assert(test_jnum_is(test_jget(obj, "custom_outputs"), "n", "1.50"));
    const gw_json_t *dbx = test_jget(obj, "databricks_output");
    cr_assert_str_eq(test_js(dbx, "databricks_request_id"), TEST_REQ_ID);
    char *t = test_json_text(test_jget(dbx, "trace"));
    cr_assert_str_eq(t, "{\"spans\":[{\"name\":\"root\"}]}");
    free(t);
    cr_assert(test_jget(obj, "usage")->type == GW_JSON_NULL);
    gw_arena_free(a);
    test_run_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* tests: every golden, random chunking                                                       */

Test(responses, all_goldens_random_chunks, .timeout = 60)
{
    static const struct {
        const char *name;
        gw_flavor_t flavor;
    } g[] = {
        {"rs_text.sse", GW_FLAVOR_OPENAI},
        {"rs_tools.sse", GW_FLAVOR_OPENAI},
        {"rs_reasoning.sse", GW_FLAVOR_OPENAI},
        {"rs_custom.sse", GW_FLAVOR_OPENAI},
        {"rs_error.sse", GW_FLAVOR_OPENAI},
        {"rs_error_dbx.sse", GW_FLAVOR_OPENAI},
        {"rs_unknown_event.sse", GW_FLAVOR_OPENAI},
        {"rs_bad_json.sse", GW_FLAVOR_OPENAI},
        {"rs_delta_after_done.sse", GW_FLAVOR_OPENAI},
        {"rs_two_terminal.sse", GW_FLAVOR_OPENAI},
        {"rs_no_terminal.sse", GW_FLAVOR_OPENAI},
        {"rs_refusal_incomplete.sse", GW_FLAVOR_OPENAI},
        {"rs_missing_added.sse", GW_FLAVOR_OPENAI},
        {"rs_failed_empty_output.sse", GW_FLAVOR_OPENAI},
        {"rs_error_event.sse", GW_FLAVOR_OPENAI},
        {"rs_ml_text.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_tools.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_reasoning.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_custom.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_error.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_error_dbx.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_unknown_event.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_delta_after_done.sse", GW_FLAVOR_MLFLOW},
        {"rs_ml_eof_open_item.sse", GW_FLAVOR_MLFLOW},
    };
    unsigned seed = 4242;
    for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
        test_run_opts_t o = OPENAI_SSE;
        o.flavor = g[k].flavor;
        test_check_random_chunks(g[k].name, &o, 30, &seed);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* tests: encode_request                                                                      */

typedef struct {
    gw_arena_t *a;
    gw_request_t req;
    gw_endpoint_cfg_t ep;
    gw_buf_t out;
    gw_json_t *body; /** parsed upstream body */
} enc_t;

static void encode(enc_t *e, const char *client_body, gw_flavor_t flavor, bool dbx_route,
                   gw_opt_num_t temperature, gw_opt_num_t top_p, gw_opt_num_t max_out)
{
    memset(e, 0, sizeof(*e));
    e->a = gw_arena_new();
    gw_buf_init(&e->out);
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(e->a, gw_str(client_body), dbx_route, &e->req, &err), 0,
                 "request rejected: %s", err.message);
    e->ep = (gw_endpoint_cfg_t){
        .name = "resp-agent",
        .adapter = GW_ADAPTER_RESPONSES,
        .flavor = flavor,
        .model = UP_MODEL,
        .temperature = temperature,
        .top_p = top_p,
        .max_output_tokens = max_out,
        .max_tokens_field = "max_tokens",
    };
    cr_assert_eq(ad_responses.encode_request(&e->req, &e->ep, dbx_route, &e->out, &err), 0);
    cr_assert_eq(gw_json_parse(e->a, e->out.base, e->out.len, &e->body, NULL), 0,
                 "upstream body is not JSON: %.*s", (int)e->out.len, e->out.base);
    cr_assert_eq(e->body->type, GW_JSON_OBJECT);
    /* No key twice (a JSON object with duplicate names is not interoperable, RFC 8259 §4). */
    for (const gw_json_t *m = e->body->child; m; m = m->next)
        for (const gw_json_t *n = m->next; n; n = n->next)
            cr_assert(!(m->key.len == n->key.len && memcmp(m->key.base, n->key.base, m->key.len) == 0),
                      "key %.*s appears twice in %.*s", (int)m->key.len, m->key.base, (int)e->out.len,
                      e->out.base);
}

static void enc_free(enc_t *e)
{
    gw_buf_dispose(&e->out);
    gw_arena_free(e->a);
}

static const gw_opt_num_t NONE = {false, 0};

static char *member_text(const enc_t *e, const char *key)
{
    return test_json_text(test_jget(e->body, key));
}

static const char FULL_REQ[] =
    "{\"model\":\"resp-agent\",\"stream\":true,\"instructions\":\"Be terse.\","
    "\"input\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"function_call\",\"call_id\":\"call_a\","
    "\"name\":\"f\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"call_a\","
    "\"output\":\"1\"}],"
    "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}],"
    "\"tool_choice\":\"auto\",\"temperature\":0.70,\"metadata\":{\"ticket\":\"T-17\"},\"user\":\"u-7\","
    "\"truncation\":\"auto\",\"include\":[],\"x_vendor\":{\"n\":1.50,\"deep\":[1,2e3]},"
    "\"client_request_id\":\"crid-1\",\"usage_context\":{\"team\":\"a\"},"
    "\"custom_inputs\":{\"thread\":\"abc\",\"n\":1.50},\"context\":{\"conversation_id\":\"c-42\",\"user_id\":"
    "\"u-7\"},"
    "\"databricks_options\":{\"return_trace\":true}}";

Test(responses, encode_openai_flavour, .timeout = 10)
{
    enc_t e;
    encode(&e, FULL_REQ, GW_FLAVOR_OPENAI, false, NONE, NONE, NONE);
    cr_assert_str_eq(test_js(e.body, "model"), UP_MODEL, "model is the backend's name");
    cr_assert_eq(test_jget(e.body, "stream")->type, GW_JSON_BOOL);
    cr_assert(test_jget(e.body, "stream")->boolean);
    /* Owned keys removed; MLflow-only keys not sent to an OpenAI-flavour upstream. */
    cr_assert_null(gw_json_get(e.body, "client_request_id"));
    cr_assert_null(gw_json_get(e.body, "usage_context"));
    cr_assert_null(gw_json_get(e.body, "custom_inputs"));
    cr_assert_null(gw_json_get(e.body, "context"));
    cr_assert_null(gw_json_get(e.body, "databricks_options"));
    /* Everything else passes through untouched (numbers byte-exact, key order kept). */
    cr_assert_str_eq(test_js(e.body, "instructions"), "Be terse.");
    cr_assert(test_jnum_is(e.body, "temperature", "0.70"));
    char *t = member_text(&e, "x_vendor");
    cr_assert_str_eq(t, "{\"n\":1.50,\"deep\":[1,2e3]}");
    free(t);
    t = member_text(&e, "input");
    cr_assert(strstr(t, "\"function_call_output\"") != NULL);
    cr_assert(strstr(t, "\"call_id\":\"call_a\"") != NULL);
    free(t);
    t = member_text(&e, "tools");
    cr_assert_str_eq(t, "[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}]");
    free(t);
    cr_assert_str_eq(test_js(e.body, "tool_choice"), "auto");
    cr_assert_str_eq(test_js(test_jget(e.body, "metadata"), "ticket"), "T-17");
    cr_assert_str_eq(test_js(e.body, "user"), "u-7");
    cr_assert_str_eq(test_js(e.body, "truncation"), "auto");
    cr_assert_eq(test_jget(e.body, "include")->len, 0);
    /* Exactly the passthrough keys, nothing invented. */
    size_t n = 0;
    for (const gw_json_t *m = e.body->child; m; m = m->next)
        n++;
    cr_assert_eq(n, 12, "model, stream + 10 passthrough keys, got %zu", n);
    enc_free(&e);
}

Test(responses, encode_mlflow_flavour_forwards_databricks_fields, .timeout = 10)
{
    enc_t e;
    encode(&e, FULL_REQ, GW_FLAVOR_MLFLOW, true, NONE, NONE, NONE);
    cr_assert_str_eq(test_js(e.body, "model"), UP_MODEL);
    char *t = member_text(&e, "custom_inputs");
    cr_assert_str_eq(t, "{\"thread\":\"abc\",\"n\":1.50}");
    free(t);
    t = member_text(&e, "context");
    cr_assert_str_eq(t, "{\"conversation_id\":\"c-42\",\"user_id\":\"u-7\"}");
    free(t);
    t = member_text(&e, "databricks_options");
    cr_assert_str_eq(t, "{\"return_trace\":true}");
    free(t);
    cr_assert_null(gw_json_get(e.body, "client_request_id"));
    cr_assert_null(gw_json_get(e.body, "usage_context"));
    enc_free(&e);
}

Test(responses, encode_stream_follows_the_client, .timeout = 10)
{
    enc_t e;
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\"}", GW_FLAVOR_OPENAI, false, NONE, NONE, NONE);
    cr_assert_eq(test_jget(e.body, "stream")->type, GW_JSON_BOOL);
    cr_assert_not(test_jget(e.body, "stream")->boolean,
                  "no stream key: the upstream is asked for one object");
    enc_free(&e);
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\",\"stream\":false}", GW_FLAVOR_MLFLOW, false, NONE, NONE,
           NONE);
    cr_assert_not(test_jget(e.body, "stream")->boolean);
    enc_free(&e);
    /* The Databricks route may omit model: the backend's name is still sent. */
    encode(&e, "{\"input\":\"Hi\",\"stream\":true}", GW_FLAVOR_MLFLOW, true, NONE, NONE, NONE);
    cr_assert(test_jget(e.body, "stream")->boolean);
    cr_assert_str_eq(test_js(e.body, "model"), UP_MODEL);
    enc_free(&e);
}

Test(responses, encode_param_defaults, .timeout = 10)
{
    gw_opt_num_t temp = {true, 0.2}, top = {true, 0.9}, max = {true, 512};
    enc_t e;
    /* Absent: the endpoint defaults apply (max_output_tokens as an integer). */
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\"}", GW_FLAVOR_OPENAI, false, temp, top, max);
    double d;
    cr_assert_eq(gw_json_double(test_jget(e.body, "temperature"), &d), 0);
    cr_assert_float_eq(d, 0.2, 1e-12);
    cr_assert_eq(gw_json_double(test_jget(e.body, "top_p"), &d), 0);
    cr_assert_float_eq(d, 0.9, 1e-12);
    cr_assert(test_jnum_is(e.body, "max_output_tokens", "512"));
    cr_assert_null(gw_json_get(e.body, "max_tokens"), "the Responses name is kept");
    enc_free(&e);
    /* Client values win, byte-exact. */
    encode(&e,
           "{\"model\":\"m\",\"input\":\"Hi\",\"temperature\":1.25,\"top_p\":0.5,\"max_output_tokens\":64}",
           GW_FLAVOR_OPENAI, false, temp, top, max);
    cr_assert(test_jnum_is(e.body, "temperature", "1.25"));
    cr_assert(test_jnum_is(e.body, "top_p", "0.5"));
    cr_assert(test_jnum_is(e.body, "max_output_tokens", "64"));
    enc_free(&e);
    /* No defaults configured and none sent: nothing invented. */
    encode(&e, "{\"model\":\"m\",\"input\":\"Hi\"}", GW_FLAVOR_MLFLOW, false, NONE, NONE, NONE);
    cr_assert_null(gw_json_get(e.body, "temperature"));
    cr_assert_null(gw_json_get(e.body, "top_p"));
    cr_assert_null(gw_json_get(e.body, "max_output_tokens"));
    enc_free(&e);
}

Test(responses, encode_null_param_takes_the_default_once, .timeout = 10)
{
    /* An explicit null means "unset": the default applies, and the key is sent exactly once
     * (encode() rejects duplicate keys). */
    gw_opt_num_t temp = {true, 0.5}, max = {true, 100};
    enc_t e;
    encode(
        &e,
        "{\"model\":\"m\",\"input\":\"Hi\",\"temperature\":null,\"top_p\":null,\"max_output_tokens\":null}",
        GW_FLAVOR_OPENAI, false, temp, NONE, max);
    cr_assert(test_jnum_is(e.body, "temperature", "0.5"));
    cr_assert(test_jnum_is(e.body, "max_output_tokens", "100"));
    /* No default for top_p: the client's null passes through. */
    cr_assert_eq(test_jget(e.body, "top_p")->type, GW_JSON_NULL);
    enc_free(&e);
}
