/* Rendering of Responses objects for gateway/stream: items, usage, the response object. */
#include "gateway/stream_int.h"

#include <string.h>

static const char *item_status_name(int st)
{
    return st < 0 ? "in_progress" : st == AD_STATUS_COMPLETED ? "completed" : "incomplete";
}

void gw__render_part(gw_jgen_t *j, const struct part *p)
{
    gw_jgen_map_open(j);
    if (p->kind == AD_PART_REFUSAL) {
        gw_jgen_kv_lit(j, "type", "refusal");
        gw_jgen_kv_str(j, "refusal", gw__text_of(&p->text));
    } else if (p->kind == AD_PART_SUMMARY_TEXT) {
        gw_jgen_kv_lit(j, "type", "summary_text");
        gw_jgen_kv_str(j, "text", gw__text_of(&p->text));
    } else {
        gw_jgen_kv_lit(j, "type", "output_text");
        gw_jgen_kv_str(j, "text", gw__text_of(&p->text));
        gw_jgen_lit(j, "annotations");
        gw_jgen_array_open(j);
        gw_jgen_array_close(j);
        gw_jgen_lit(j, "logprobs");
        gw_jgen_array_open(j);
        gw_jgen_array_close(j);
    }
    gw_jgen_map_close(j);
}

/* The exec action of a local_shell_call from the model's `local_shell` arguments: the known
 * fields it sent, `command` and `env` always present (openai-node LocalShellCall.Action). */
static void render_shell_action(gw_jgen_t *j, const struct item *it, bool added)
{
    gw_arena_t *a = gw_arena_new();
    gw_json_t *args = NULL;
    if (!added && it->args.len && gw_json_parse(a, it->args.base, it->args.len, &args, NULL) < 0)
        args = NULL;
    gw_jgen_lit(j, "action");
    gw_jgen_map_open(j);
    gw_jgen_kv_lit(j, "type", "exec");
    const gw_json_t *cmd = gw_json_get(args, "command"), *env = gw_json_get(args, "env");
    gw_jgen_lit(j, "command");
    if (gw_json_is(cmd, GW_JSON_ARRAY)) {
        gw_jgen_value(j, cmd);
    } else if (gw_json_is(cmd, GW_JSON_STRING)) { /* models often send one string */
        gw_jgen_array_open(j);
        gw_jgen_str(j, cmd->str);
        gw_jgen_array_close(j);
    } else {
        gw_jgen_array_open(j);
        gw_jgen_array_close(j);
    }
    gw_jgen_lit(j, "env");
    if (gw_json_is(env, GW_JSON_OBJECT)) {
        gw_jgen_value(j, env);
    } else {
        gw_jgen_map_open(j);
        gw_jgen_map_close(j);
    }
    static const char *const keys[] = {"timeout_ms", "user", "working_directory", NULL};
    for (const char *const *k = keys; *k; k++) {
        const gw_json_t *v = gw_json_get(args, *k);
        if (!gw_json_is_nullish(v))
            gw_jgen_kv_value(j, *k, v);
    }
    gw_jgen_map_close(j);
    gw_arena_free(a);
}

/* A tool call as the client's tool kind (PROTOCOL.md §2.2): function_call, custom_tool_call
 * (input decoded from the arguments) or local_shell_call; `namespace` when the tool had one. */
static void render_call(gw_jgen_t *j, const struct item *it, bool added)
{
    static const char *const types[] = {"function_call", "custom_tool_call", "local_shell_call"};
    gw_jgen_kv_cstr(j, "type", types[it->call_kind]);
    gw_jgen_kv_cstr(j, "status", item_status_name(added ? -1 : it->status));
    gw_jgen_kv_cstr(j, "call_id", it->call_id);
    if (it->call_kind == GW_CALL_LOCAL_SHELL) {
        render_shell_action(j, it, added);
        return;
    }
    gw_jgen_kv_cstr(j, "name", it->name);
    if (it->ns)
        gw_jgen_kv_cstr(j, "namespace", it->ns);
    if (it->call_kind == GW_CALL_CUSTOM)
        gw_jgen_kv_str(j, "input", added ? GW_STR_LIT("") : gw__text_of(&it->input));
    else
        gw_jgen_kv_str(j, "arguments", added ? GW_STR_LIT("") : gw__text_of(&it->args));
}

/* Full item; `added` renders the in-progress shape of output_item.added (empty content). */
void gw__render_item(gw_jgen_t *j, const struct item *it, bool added)
{
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "id", it->id);
    switch (it->kind) {
    case AD_ITEM_MESSAGE:
        gw_jgen_kv_lit(j, "type", "message");
        gw_jgen_kv_cstr(j, "status", item_status_name(added ? -1 : it->status));
        gw_jgen_kv_lit(j, "role", "assistant");
        gw_jgen_lit(j, "content");
        gw_jgen_array_open(j);
        for (size_t i = 0; !added && i < it->n_parts; i++)
            gw__render_part(j, &it->parts[i]);
        gw_jgen_array_close(j);
        break;
    case AD_ITEM_FUNCTION_CALL:
        render_call(j, it, added);
        break;
    case AD_ITEM_REASONING:
        gw_jgen_kv_lit(j, "type", "reasoning");
        gw_jgen_lit(j, "summary");
        gw_jgen_array_open(j);
        for (size_t i = 0; !added && i < it->n_parts; i++)
            gw__render_part(j, &it->parts[i]);
        gw_jgen_array_close(j);
        gw_jgen_kv_cstr(j, "status", item_status_name(added ? -1 : it->status));
        break;
    }
    gw_jgen_map_close(j);
}

static void render_usage(gw_jgen_t *j, const ad_usage_t *u)
{
    gw_jgen_lit(j, "usage");
    if (!u->present) {
        gw_jgen_null(j);
        return;
    }
    gw_jgen_map_open(j);
    gw_jgen_kv_int(j, "input_tokens", u->input);
    gw_jgen_lit(j, "input_tokens_details");
    gw_jgen_map_open(j);
    gw_jgen_kv_int(j, "cached_tokens", u->cached);
    gw_jgen_kv_int(j, "cache_write_tokens", 0);
    gw_jgen_map_close(j);
    gw_jgen_kv_int(j, "output_tokens", u->output);
    gw_jgen_lit(j, "output_tokens_details");
    gw_jgen_map_open(j);
    gw_jgen_kv_int(j, "reasoning_tokens", u->reasoning);
    gw_jgen_map_close(j);
    gw_jgen_kv_int(j, "total_tokens", u->total);
    gw_jgen_map_close(j);
}

static const char *status_name(const gw_stream_t *s)
{
    switch (s->status) {
    case GW_FINISH_NONE:
        return "in_progress";
    case GW_FINISH_COMPLETED:
        return "completed";
    case GW_FINISH_INCOMPLETE:
        return "incomplete";
    case GW_FINISH_FAILED:
        return "failed";
    case GW_FINISH_CANCELLED:
        return "cancelled";
    }
    return "failed";
}

void gw__render_databricks_output(gw_stream_t *s, bool with_error)
{
    gw_jgen_t *j = s->j;
    gw_jgen_lit(j, "databricks_output");
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "databricks_request_id", s->o.request_id);
    if (s->trace.len && s->o.req->return_trace) {
        gw_jgen_lit(j, "trace");
        gw_jgen_raw(j, gw_buf_str(&s->trace));
    }
    if (with_error) {
        gw_jgen_lit(j, "error");
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "error_code", gw_err_error_code(s->err.kind));
        gw_jgen_kv_cstr(j, "message", s->err.message);
        gw_jgen_map_close(j);
    }
    gw_jgen_map_close(j);
}

static void echo_or(gw_jgen_t *j, const char *key, const gw_json_t *v, const char *raw_default)
{
    gw_jgen_cstr(j, key);
    if (v)
        gw_jgen_value(j, v);
    else
        gw_jgen_raw(j, gw_str(raw_default));
}

/* The Responses object (§3). `extras`: top-level databricks_output as in a
 * non-streaming body or the table aggregate. */
void gw__render_response(gw_stream_t *s, bool extras)
{
    gw_jgen_t *j = s->j;
    const gw_request_t *r = s->o.req;
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "id", s->o.response_id);
    gw_jgen_kv_lit(j, "object", "response");
    gw_jgen_kv_int(j, "created_at", s->o.created_at);
    gw_jgen_kv_cstr(j, "status", status_name(s));
    gw_jgen_lit(j, "error");
    if (s->status == GW_FINISH_FAILED) {
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "code", gw_err_failed_code(s->err.kind));
        gw_jgen_kv_cstr(j, "message", s->err.message);
        gw_jgen_map_close(j);
    } else {
        gw_jgen_null(j);
    }
    gw_jgen_lit(j, "incomplete_details");
    if (s->status == GW_FINISH_INCOMPLETE) {
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "reason", s->incomplete_reason);
        gw_jgen_map_close(j);
    } else {
        gw_jgen_null(j);
    }
    echo_or(j, "instructions", r->instructions, "null");
    gw_jgen_kv_str(j, "model", s->o.model);
    gw_jgen_lit(j, "output");
    gw_jgen_array_open(j);
    for (size_t i = 0; s->status != GW_FINISH_NONE && i < s->n_items; i++)
        gw__render_item(j, &s->items[i], false);
    gw_jgen_array_close(j);
    echo_or(j, "parallel_tool_calls", r->parallel_tool_calls, "true");
    echo_or(j, "tool_choice", r->tool_choice, "\"auto\"");
    echo_or(j, "tools", r->tools, "[]");
    echo_or(j, "temperature", r->temperature, "null");
    echo_or(j, "top_p", r->top_p, "null");
    echo_or(j, "max_output_tokens", r->max_output_tokens, "null");
    gw_jgen_lit(j, "previous_response_id");
    if (r->previous_response_id.base)
        gw_jgen_str(j, r->previous_response_id);
    else
        gw_jgen_null(j);
    if (r->conversation_id.base) {
        gw_jgen_lit(j, "conversation");
        gw_jgen_map_open(j);
        gw_jgen_kv_str(j, "id", r->conversation_id);
        gw_jgen_map_close(j);
    }
    gw_jgen_lit(j, "reasoning");
    gw_jgen_map_open(j);
    gw_jgen_kv_value(j, "effort", gw_json_get(r->reasoning, "effort"));
    gw_jgen_lit(j, "summary");
    gw_jgen_null(j);
    gw_jgen_map_close(j);
    gw_jgen_lit(j, "store");
    gw_jgen_bool(j, r->stored);
    const gw_json_t *format = gw_json_get(r->text, "format");
    gw_jgen_lit(j, "text");
    gw_jgen_map_open(j);
    echo_or(j, "format", gw_json_is_nullish(format) ? NULL : format, "{\"type\":\"text\"}");
    gw_jgen_map_close(j);
    gw_jgen_kv_lit(j, "truncation", "disabled");
    echo_or(j, "user", r->user, "null");
    echo_or(j, "metadata", r->metadata, "{}");
    render_usage(j, s->status == GW_FINISH_NONE ? &(ad_usage_t){0} : &s->usage);
    /* custom_outputs belongs to the final object, streamed or not, so both are equal (§9). */
    if (s->status != GW_FINISH_NONE && s->custom_outputs.len) {
        gw_jgen_lit(j, "custom_outputs");
        gw_jgen_raw(j, gw_buf_str(&s->custom_outputs));
    }
    if (extras && (gw__dbx(s) || s->status == GW_FINISH_FAILED))
        gw__render_databricks_output(s, s->status == GW_FINISH_FAILED);
    gw_jgen_map_close(j);
}

/* For the finish summary (spans' finish reasons): no tree of the aggregate needs parsing. */
