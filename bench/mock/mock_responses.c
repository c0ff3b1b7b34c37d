/* Responses family: the r_* scenarios of POST .../responses (OpenAI flavour) and
 * POST .../invocations (MLflow flavour), one script per route over one item table
 * (MOCK_SCENARIOS.md "Responses upstream scenarios"). Upstream ids are fixed so that tests can
 * check passthrough. */
#include "mock_scenarios.h"

#define R_CUSTOM "\"custom_outputs\":{\"k\":\"v\",\"n\":1.50}"
#define R_TRACE  "\"databricks_output\":{\"trace\":{\"spans\":[{\"name\":\"root\"}]}}"
#define R_DBX_ERROR                                                                                          \
    "\"databricks_output\":{\"error\":{\"error_code\":\"BAD_REQUEST\",\"message\":\"TimeoutException: Tool " \
    "XYZ failed to execute.\"}}"

/* clang-format off */
/* The full r_text message item 0 around its deltas. */
#define R_OPEN_MSG0               R_CREATED_EV, R_IN_PROGRESS, R_ADDED(0), R_PART_ADDED(0)
#define R_CLOSE_MSG0              R_TEXT_DONE(0), R_PART_DONE(0), R_ITEM_DONE(0)
#define R_HELLO                   R_TEXT(0, "Hello"), R_TEXT(0, " from"), R_TEXT(0, " responses")

static const mock_r_item_t ri_msg[] = {{.kind = RI_MESSAGE, .id = "msg_up_1"}};
static const mock_r_item_t ri_tools[] = {
    {.kind = RI_CALL, .id = "fc_up_1", .call_id = "call_up_1", .name = "tool_a"},
    {.kind = RI_CALL, .id = "fc_up_2", .call_id = "call_up_2", .name = "tool_b"},
};
static const mock_r_item_t ri_reasoning[] = {
    {.kind = RI_REASONING, .id = "rs_up_1"},
    {.kind = RI_MESSAGE, .id = "msg_up_1"},
};

static const mock_step_t rs_text[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), S_END,
};
static const mock_step_t rs_text_ml[] = {
    R_HELLO, R_ITEM_DONE(0), S_DONE, S_END,
};
static const mock_step_t rs_tools[] = {
    R_CREATED_EV, R_IN_PROGRESS, R_ADDED(0), R_ADDED(1),
    R_ARGS(0, "{\"a\":"), R_ARGS(1, "{\"b\":"), R_ARGS(0, "1}"), R_ARGS(1, "2}"),
    R_ARGS_DONE(0), R_ARGS_DONE(1), R_ITEM_DONE(0), R_ITEM_DONE(1),
    R_COMPLETED(20, 8, 0), S_END,
};
static const mock_step_t rs_tools_ml[] = {
    R_ITEM_DONE_AS(0, "{\"a\":1}", NULL, NULL), R_ITEM_DONE_AS(1, "{\"b\":2}", NULL, NULL), S_DONE, S_END,
};
static const mock_step_t rs_reasoning[] = {
    R_CREATED_EV, R_IN_PROGRESS,
    R_ADDED(0), R_SUM_ADDED(0), R_SUM(0, "Think"), R_SUM(0, "ing"), R_SUM_DONE(0), R_SUM_PDONE(0), R_ITEM_DONE(0),
    R_ADDED(1), R_PART_ADDED(1), R_TEXT(1, "Done."), R_TEXT_DONE(1), R_PART_DONE(1), R_ITEM_DONE(1),
    R_COMPLETED(10, 5, 2), S_END,
};
static const mock_step_t rs_reasoning_ml[] = {
    R_ITEM_DONE_AS(0, "Thinking", NULL, NULL), R_TEXT(1, "Done."), R_ITEM_DONE(1), S_DONE, S_END,
};
static const mock_step_t rs_custom[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED_X(10, 3, R_CUSTOM), S_END,
};
static const mock_step_t rs_custom_ml[] = {
    R_HELLO, R_ITEM_DONE_X(0, R_CUSTOM "," R_TRACE), S_DONE, S_END,
};
static const mock_step_t rs_error[] = {
    R_OPEN_MSG0, R_TEXT(0, "Hello"),
    R_FAILED("server_error", "agent crashed"), R_ERROR("server_error", "agent crashed"), S_END,
};
static const mock_step_t rs_error_ml[] = {
    R_TEXT(0, "Hello"), S_DATA("{\"error\":\"agent crashed\"}"), S_DONE, S_END,
};
static const mock_step_t rs_error_dbx[] = {
    R_TEXT(0, "Hello"), R_ITEM_DONE_AS(0, NULL, "incomplete", R_DBX_ERROR), S_END,
};
static const mock_step_t rs_error_dbx_ml[] = {
    R_TEXT(0, "Hello"), R_ITEM_DONE_AS(0, NULL, "incomplete", R_DBX_ERROR), S_DONE, S_END,
};
static const mock_step_t rs_unknown_event[] = {
    R_OPEN_MSG0, R_TEXT(0, "Hello"), R_EVENT("response.custom_thing", "\"x\":1"),
    R_TEXT(0, " from"), R_TEXT(0, " responses"), R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), S_END,
};
static const mock_step_t rs_unknown_event_ml[] = {
    R_TEXT(0, "Hello"), R_EVENT("response.custom_thing", "\"x\":1"),
    R_TEXT(0, " from"), R_TEXT(0, " responses"), R_ITEM_DONE(0), S_DONE, S_END,
};
static const mock_step_t rs_bad_json[] = {
    R_CREATED_EV, S_DATA("{not json"), S_END,
};
static const mock_step_t rs_bad_json_ml[] = {
    S_DATA("{not json"), S_DONE, S_END,
};
static const mock_step_t rs_delta_after_done[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_TEXT(0, " late"), R_COMPLETED(10, 3, 0), S_END,
};
static const mock_step_t rs_delta_after_done_ml[] = {
    R_HELLO, R_ITEM_DONE(0), R_TEXT(0, " late"), S_DONE, S_END,
};
static const mock_step_t rs_two_terminal[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), R_COMPLETED(10, 3, 0), S_END,
};
static const mock_step_t rs_two_terminal_ml[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), R_COMPLETED(10, 3, 0), S_DONE, S_END,
};
static const mock_step_t rs_no_terminal[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, S_END,
};

/* Non-streaming forms of the failure scenarios (no events to fold): MLflow's AgentServer answers
 * an exception with 500 {"detail"}, Databricks serving with {"error_code","message"} and the
 * status of that code (PROTOCOL.md §6.3, §5.4); a broken upstream sends broken JSON either way. */
#define R_BAD_JSON_BODY           "{not json"
#define R_DETAIL_CRASHED          "{\"detail\":\"agent crashed\"}"
#define R_DBX_ERROR_BODY                                                                                     \
    "{\"error_code\":\"BAD_REQUEST\",\"message\":\"TimeoutException: Tool XYZ failed to execute.\"}"

static const mock_r_sc_t scenarios[] = {
    RSC("r_text", ri_msg, 0, RR(rs_text), RR(rs_text_ml)),
    RSC("r_tools", ri_tools, 0, RR(rs_tools), RR(rs_tools_ml)),
    RSC("r_reasoning", ri_reasoning, 0, RR(rs_reasoning), RR(rs_reasoning_ml)),
    RSC("r_custom", ri_msg, 0, RR(rs_custom), RR(rs_custom_ml)),
    RSC("r_error", ri_msg, 0, RR(rs_error), RR_JSON(rs_error_ml, 500, R_DETAIL_CRASHED)),
    RSC("r_error_dbx", ri_msg, SF_R_SPARSE, RR_JSON(rs_error_dbx, 400, R_DBX_ERROR_BODY),
        RR_JSON(rs_error_dbx_ml, 400, R_DBX_ERROR_BODY)),
    RSC("r_unknown_event", ri_msg, 0, RR(rs_unknown_event), RR(rs_unknown_event_ml)),
    RSC("r_bad_json", ri_msg, 0, RR_JSON(rs_bad_json, 200, R_BAD_JSON_BODY),
        RR_JSON(rs_bad_json_ml, 200, R_BAD_JSON_BODY)),
    RSC("r_delta_after_done", ri_msg, 0, RR(rs_delta_after_done), RR(rs_delta_after_done_ml)),
    RSC("r_two_terminal", ri_msg, SF_R_FULL, RR(rs_two_terminal), RR(rs_two_terminal_ml)),
    RSC("r_no_terminal", ri_msg, 0, RR(rs_no_terminal), RR(rs_text_ml)),
    RSC("r_http500", ri_msg, 0,
        RR_HTTP(500, "{\"error\":{\"message\":\"responses upstream exploded\",\"type\":\"server_error\"}}"),
        RR_HTTP(500, "{\"detail\":\"responses upstream exploded\"}")),
};
/* clang-format on */

const mock_family_t mock_responses_family = MOCK_R_FAMILY("responses", scenarios);
