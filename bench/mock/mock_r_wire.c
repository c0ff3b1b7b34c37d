/* mock_r_wire: Responses events and objects (PROTOCOL.md §3-§5) folded from r_* scripts. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "mock_json.h"
#include "mock_r_wire.h"

#define R_RESP_ID    "resp_upstream_1"
#define R_MODEL      "upstream-model"
#define R_CREATED_AT 1741290958

#define MOCK_R_ITEMS 4

/* One output item as of some point of a script. */
typedef struct {
    gw_buf_t text;      /** owned: message text, call arguments or summary text so far */
    const char *status; /** status from its output_item.done; NULL while not done */
    bool seen;          /** some step has addressed it */
} r_state_t;

/* The state of every item, plus the last lifecycle step, as of a point of a script. */
typedef struct {
    r_state_t item[MOCK_R_ITEMS];
    const mock_step_t *life; /** last OP_R_CREATED/IN_PROGRESS/COMPLETED/FAILED step; NULL if none */
} r_fold_t;

static bool r_is_item_op(mock_op_t op)
{
    return op >= OP_R_ADDED && op <= OP_R_ITEM_DONE;
}

static bool r_is_life_op(mock_op_t op)
{
    return op >= OP_R_CREATED && op <= OP_R_FAILED;
}

/* Content is full (sequence numbers, indexes, logprobs) or sparse (MLflow helper style). */
static bool r_sparse(const mock_r_sc_t *rs, mock_route_t rt)
{
    if (rt == MOCK_ROUTE_RESPONSES)
        return (rs->flags & SF_R_SPARSE) != 0;
    return !(rs->flags & SF_R_FULL);
}

/* Fold steps [0, end) into f (to be released with r_fold_dispose). Deltas reaching an item after
 * its output_item.done are ignored, so the item stays as it was announced done: that is what the
 * terminal response must list even in r_delta_after_done. */
static void r_fold(r_fold_t *f, const mock_r_sc_t *rs, const mock_step_t *steps, size_t end)
{
    memset(f, 0, sizeof(*f));
    for (size_t k = 0; k < end && steps[k].op != OP_END; k++) {
        const mock_step_t *s = &steps[k];
        if (r_is_life_op(s->op))
            f->life = s;
        if (!r_is_item_op(s->op))
            continue;
        assert(s->idx >= 0 && (size_t)s->idx < rs->nitems && s->idx < MOCK_R_ITEMS);
        r_state_t *it = &f->item[s->idx];
        it->seen = true;
        if (it->status)
            continue;
        if (s->op == OP_R_TEXT || s->op == OP_R_ARGS || s->op == OP_R_SUM) {
            for (int r = 0; r < mock_step_repeat(s); r++)
                gw_buf_append_cstr(&it->text, s->text);
        } else if (s->op == OP_R_ITEM_DONE) {
            if (s->text) {
                gw_buf_reset(&it->text);
                gw_buf_append_cstr(&it->text, s->text);
            }
            it->status = s->status ? s->status : "completed";
        }
    }
}

static void r_fold_dispose(r_fold_t *f)
{
    for (int i = 0; i < MOCK_R_ITEMS; i++)
        gw_buf_dispose(&f->item[i].text);
}

/* An output item. done = false gives the output_item.added form (empty content, in_progress). */
static void r_item_json(gw_buf_t *b, const mock_r_item_t *it, const r_state_t *st, bool done,
                        const char *status)
{
    gw_str_t text = done ? gw_buf_str(&st->text) : GW_STR_LIT("");
    if (!done)
        status = "in_progress";
    gw_buf_append_cstr(b, "{\"id\":");
    mock_json_cstr(b, it->id);
    switch (it->kind) {
    case RI_MESSAGE:
        gw_buf_append_cstr(b, ",\"type\":\"message\",\"status\":");
        mock_json_cstr(b, status);
        gw_buf_append_cstr(b, ",\"role\":\"assistant\",\"content\":[");
        if (done) {
            gw_buf_append_cstr(b, "{\"type\":\"output_text\",\"text\":");
            mock_json_str(b, text);
            gw_buf_append_cstr(b, ",\"annotations\":[],\"logprobs\":[]}");
        }
        gw_buf_append_cstr(b, "]}");
        break;
    case RI_CALL:
        gw_buf_append_cstr(b, ",\"type\":\"function_call\",\"status\":");
        mock_json_cstr(b, status);
        gw_buf_append_cstr(b, ",\"call_id\":");
        mock_json_cstr(b, it->call_id);
        gw_buf_append_cstr(b, ",\"name\":");
        mock_json_cstr(b, it->name);
        gw_buf_append_cstr(b, ",\"arguments\":");
        mock_json_str(b, text);
        gw_buf_append(b, "}", 1);
        break;
    case RI_REASONING:
        gw_buf_append_cstr(b, ",\"type\":\"reasoning\",\"status\":");
        mock_json_cstr(b, status);
        gw_buf_append_cstr(b, ",\"summary\":[");
        if (done) {
            gw_buf_append_cstr(b, "{\"type\":\"summary_text\",\"text\":");
            mock_json_str(b, text);
            gw_buf_append(b, "}", 1);
        }
        gw_buf_append_cstr(b, "]}");
        break;
    }
}

/* The output array: every item addressed so far, in output_index order. An item not done yet is
 * in_progress, or incomplete once the response has failed (PROTOCOL.md §5.3). */
static void r_output_json(gw_buf_t *b, const mock_r_sc_t *rs, const r_fold_t *f, bool failed)
{
    bool first = true;
    gw_buf_append(b, "[", 1);
    for (size_t i = 0; i < rs->nitems && i < MOCK_R_ITEMS; i++) {
        const r_state_t *st = &f->item[i];
        if (!st->seen)
            continue;
        if (!first)
            gw_buf_append(b, ",", 1);
        first = false;
        const char *status = st->status ? st->status : failed ? "incomplete" : "in_progress";
        r_item_json(b, &rs->items[i], st, true, status);
    }
    gw_buf_append(b, "]", 1);
}

/* usage with both detail objects (PROTOCOL.md §3); reasoning < 0 counts as 0. */
static void r_usage_json(gw_buf_t *b, const mock_step_t *s)
{
    int reasoning = s->reasoning > 0 ? s->reasoning : 0;
    MOCK_APPENDF(b, "{\"input_tokens\":%d,", s->prompt);
    gw_buf_append_cstr(b, "\"input_tokens_details\":{\"cached_tokens\":0,\"cache_write_tokens\":0},");
    MOCK_APPENDF(b, "\"output_tokens\":%d,\"output_tokens_details\":{\"reasoning_tokens\":%d},",
                 s->completion, reasoning);
    MOCK_APPENDF(b, "\"total_tokens\":%d}", s->prompt + s->completion);
}

/* A full Responses object (PROTOCOL.md §3) as of fold f. life is the lifecycle step it belongs
 * to (its status, error, usage and extra members); NULL gives a completed response without usage. */
static void r_response_json(gw_buf_t *b, const mock_r_sc_t *rs, const r_fold_t *f, const mock_step_t *life)
{
    mock_op_t op = life ? life->op : OP_R_COMPLETED;
    const char *status = op == OP_R_COMPLETED ? "completed" : op == OP_R_FAILED ? "failed" : "in_progress";
    MOCK_APPENDF(b, "{\"id\":\"%s\",\"object\":\"response\",\"created_at\":%d,\"status\":\"%s\",\"error\":",
                 R_RESP_ID, R_CREATED_AT, status);
    if (op == OP_R_FAILED) {
        gw_buf_append_cstr(b, "{\"code\":");
        mock_json_cstr(b, life->code);
        gw_buf_append_cstr(b, ",\"message\":");
        mock_json_cstr(b, life->text);
        gw_buf_append(b, "}", 1);
    } else {
        gw_buf_append_cstr(b, "null");
    }
    gw_buf_append_cstr(b, ",\"incomplete_details\":null,\"instructions\":null,\"model\":\"" R_MODEL
                          "\",\"output\":");
    r_output_json(b, rs, f, op == OP_R_FAILED);
    gw_buf_append_cstr(b, ",\"parallel_tool_calls\":true,\"tool_choice\":\"auto\",\"tools\":[],"
                          "\"temperature\":null,\"top_p\":null,\"metadata\":{},\"usage\":");
    if (life && op == OP_R_COMPLETED)
        r_usage_json(b, life);
    else
        gw_buf_append_cstr(b, "null");
    if (life && life->rextra) {
        gw_buf_append(b, ",", 1);
        gw_buf_append_cstr(b, life->rextra);
    }
    gw_buf_append(b, "}", 1);
}

static const char *r_event_type(const mock_step_t *s)
{
    switch (s->op) {
    case OP_R_CREATED:
        return "response.created";
    case OP_R_IN_PROGRESS:
        return "response.in_progress";
    case OP_R_COMPLETED:
        return "response.completed";
    case OP_R_FAILED:
        return "response.failed";
    case OP_R_ERROR:
        return "error";
    case OP_R_EVENT:
        return s->name;
    case OP_R_ADDED:
        return "response.output_item.added";
    case OP_R_PART_ADDED:
        return "response.content_part.added";
    case OP_R_TEXT:
        return "response.output_text.delta";
    case OP_R_TEXT_DONE:
        return "response.output_text.done";
    case OP_R_PART_DONE:
        return "response.content_part.done";
    case OP_R_ARGS:
        return "response.function_call_arguments.delta";
    case OP_R_ARGS_DONE:
        return "response.function_call_arguments.done";
    case OP_R_SUM_ADDED:
        return "response.reasoning_summary_part.added";
    case OP_R_SUM:
        return "response.reasoning_summary_text.delta";
    case OP_R_SUM_DONE:
        return "response.reasoning_summary_text.done";
    case OP_R_SUM_PDONE:
        return "response.reasoning_summary_part.done";
    case OP_R_ITEM_DONE:
        return "response.output_item.done";
    default:
        assert(!"not a Responses event");
        return "";
    }
}

/* The addressing members of an item-scoped event; sparse events carry item_id only. */
static void r_address(gw_buf_t *b, const char *item_id, int idx, const char *sub, bool sparse)
{
    if (item_id) {
        gw_buf_append_cstr(b, ",\"item_id\":");
        mock_json_cstr(b, item_id);
    }
    if (!sparse)
        MOCK_APPENDF(b, ",\"output_index\":%d", idx);
    if (sub && !sparse)
        MOCK_APPENDF(b, ",\"%s\":0", sub);
}

/* The members of an item-scoped event s after its type and sequence number; st is item it as of
 * s included (its done status, the content that s's done event reports). */
static void r_item_members(gw_buf_t *b, const mock_step_t *s, const mock_r_item_t *it, const r_state_t *st,
                           bool sparse)
{
    gw_str_t text = gw_buf_str(&st->text);
    switch (s->op) {
    case OP_R_ADDED:
    case OP_R_ITEM_DONE:
        r_address(b, NULL, s->idx, NULL, sparse);
        gw_buf_append_cstr(b, ",\"item\":");
        r_item_json(b, it, st, s->op == OP_R_ITEM_DONE, st->status);
        break;
    case OP_R_PART_ADDED:
    case OP_R_PART_DONE:
        r_address(b, it->id, s->idx, "content_index", sparse);
        gw_buf_append_cstr(b, ",\"part\":{\"type\":\"output_text\",\"text\":");
        mock_json_str(b, s->op == OP_R_PART_DONE ? text : GW_STR_LIT(""));
        gw_buf_append_cstr(b, ",\"annotations\":[],\"logprobs\":[]}");
        break;
    case OP_R_TEXT:
    case OP_R_TEXT_DONE:
        r_address(b, it->id, s->idx, "content_index", sparse);
        gw_buf_append_cstr(b, s->op == OP_R_TEXT ? ",\"delta\":" : ",\"text\":");
        mock_json_str(b, s->op == OP_R_TEXT ? gw_str(s->text) : text);
        if (!sparse)
            gw_buf_append_cstr(b, ",\"logprobs\":[]");
        break;
    case OP_R_ARGS:
        r_address(b, it->id, s->idx, NULL, sparse);
        gw_buf_append_cstr(b, ",\"delta\":");
        mock_json_cstr(b, s->text);
        break;
    case OP_R_ARGS_DONE:
        r_address(b, it->id, s->idx, NULL, sparse);
        gw_buf_append_cstr(b, ",\"name\":");
        mock_json_cstr(b, it->name);
        gw_buf_append_cstr(b, ",\"arguments\":");
        mock_json_str(b, text);
        break;
    case OP_R_SUM_ADDED:
    case OP_R_SUM_PDONE:
        r_address(b, it->id, s->idx, "summary_index", sparse);
        gw_buf_append_cstr(b, ",\"part\":{\"type\":\"summary_text\",\"text\":");
        mock_json_str(b, s->op == OP_R_SUM_PDONE ? text : GW_STR_LIT(""));
        gw_buf_append(b, "}", 1);
        break;
    case OP_R_SUM:
    case OP_R_SUM_DONE:
        r_address(b, it->id, s->idx, "summary_index", sparse);
        gw_buf_append_cstr(b, s->op == OP_R_SUM ? ",\"delta\":" : ",\"text\":");
        mock_json_str(b, s->op == OP_R_SUM ? gw_str(s->text) : text);
        break;
    default:
        assert(!"not an item-scoped Responses event");
        break;
    }
}

/* One Responses event object for steps[k] (PROTOCOL.md §4.2). seq is its sequence_number; sparse
 * events (MLflow helper style, §5.1) have none, and no indexes or logprobs either. */
static void r_event_json(gw_buf_t *b, const mock_r_sc_t *rs, const mock_step_t *steps, size_t k, unsigned seq,
                         bool sparse)
{
    const mock_step_t *s = &steps[k];
    r_fold_t f;
    r_fold(&f, rs, steps, k + 1); /* includes s: its own done status and replaced content */

    gw_buf_append_cstr(b, "{\"type\":");
    mock_json_cstr(b, r_event_type(s));
    if (!sparse)
        MOCK_APPENDF(b, ",\"sequence_number\":%u", seq);
    if (r_is_life_op(s->op)) {
        gw_buf_append_cstr(b, ",\"response\":");
        r_response_json(b, rs, &f, s);
    } else if (s->op == OP_R_ERROR) {
        gw_buf_append_cstr(b, ",\"code\":");
        mock_json_cstr(b, s->code);
        gw_buf_append_cstr(b, ",\"message\":");
        mock_json_cstr(b, s->text);
        gw_buf_append_cstr(b, ",\"param\":null");
    } else if (r_is_item_op(s->op)) {
        r_item_members(b, s, &rs->items[s->idx], &f.item[s->idx], sparse);
    }
    if (s->extra) {
        gw_buf_append(b, ",", 1);
        gw_buf_append_cstr(b, s->extra);
    }
    gw_buf_append(b, "}", 1);
    r_fold_dispose(&f);
}

/* Serialise steps[k] as one SSE event of route rt into ev: /responses names every JSON event
 * with an `event:` line (PROTOCOL.md §1), /invocations sends data lines only (§5.1). OP_DATA and
 * OP_DONE are data lines on both; nth counts the events already sent and is the sequence number. */
void mock_r_event(gw_buf_t *ev, const mock_r_sc_t *rs, mock_route_t rt, const mock_step_t *steps, size_t k,
                  unsigned nth)
{
    const mock_step_t *s = &steps[k];
    switch (s->op) {
    case OP_RAW:
        gw_buf_append_cstr(ev, s->text);
        return;
    case OP_DATA:
        MOCK_APPENDF(ev, "data: %s\n\n", s->text);
        return;
    case OP_DONE:
        gw_buf_append_cstr(ev, "data: [DONE]\n\n");
        return;
    default:
        break;
    }
    if (rt == MOCK_ROUTE_RESPONSES)
        MOCK_APPENDF(ev, "event: %s\n", r_event_type(s));
    gw_buf_append_cstr(ev, "data: ");
    r_event_json(ev, rs, steps, k, nth, r_sparse(rs, rt));
    gw_buf_append_cstr(ev, "\n\n");
}

/* The non-streaming answer: the whole script folded into one object. /responses: the response
 * as of the last lifecycle event (completed, failed, or in_progress when the script never ends
 * it). /invocations: an MLflow ResponsesAgentResponse, {"output":[...]} plus the extra top-level
 * members (custom_outputs, databricks_output) that the stream's events carried. */
void mock_r_object(gw_buf_t *out, const mock_r_sc_t *rs, mock_route_t rt, const mock_step_t *steps)
{
    r_fold_t f;
    r_fold(&f, rs, steps, SIZE_MAX);
    if (rt == MOCK_ROUTE_RESPONSES) {
        r_response_json(out, rs, &f, f.life);
    } else {
        gw_buf_append_cstr(out, "{\"output\":");
        r_output_json(out, rs, &f, false);
        for (const mock_step_t *s = steps; s->op != OP_END; s++) {
            if (s->extra && s->op != OP_R_EVENT) {
                gw_buf_append(out, ",", 1);
                gw_buf_append_cstr(out, s->extra);
            }
        }
        gw_buf_append(out, "}", 1);
    }
    r_fold_dispose(&f);
}
