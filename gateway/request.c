#include "gateway/request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Error helpers: messages and params are formatted into the arena. */
static int reject(gw_arena_t *a, gw_error_t *err, gw_err_kind_t kind, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int reject(gw_arena_t *a, gw_error_t *err, gw_err_kind_t kind, const char *param, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    err->kind = kind;
    err->message = gw_arena_strndup(a, tmp, strlen(tmp));
    err->param = param ? gw_arena_strndup(a, param, strlen(param)) : NULL;
    err->retry_after = 0;
    return -1;
}

static bool is_one_of(gw_str_t s, const char *const *list)
{
    for (; *list; list++)
        if (gw_str_eq(s, *list))
            return true;
    return false;
}

static int check_number(gw_arena_t *a, gw_error_t *err, const gw_json_t *v, const char *name, double min,
                        double max, bool integer)
{
    if (gw_json_is_nullish(v))
        return 0;
    double d;
    if (v->type != GW_JSON_NUMBER || gw_json_double(v, &d) < 0)
        return reject(a, err, GW_ERR_INVALID_JSON, name, "'%s' must be a number", name);
    if (d < min || d > max || (integer && d != (double)(long long)d))
        return reject(a, err, GW_ERR_INVALID_VALUE, name, "'%s' must be %s between %g and %g", name,
                      integer ? "an integer" : "a number", min, max);
    return 0;
}

/* Content parts of a message (PROTOCOL.md §2.1). */
static int check_content(gw_arena_t *a, gw_error_t *err, const gw_json_t *content, const char *ipath)
{
    char path[96];
    if (gw_json_is(content, GW_JSON_STRING))
        return 0;
    if (!gw_json_is(content, GW_JSON_ARRAY)) {
        snprintf(path, sizeof(path), "%s.content", ipath);
        return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s' must be a string or an array of parts", path);
    }
    size_t k = 0;
    for (const gw_json_t *p = content->child; p; p = p->next, k++) {
        snprintf(path, sizeof(path), "%s.content[%zu]", ipath, k);
        gw_str_t t = gw_json_get_str(p, "type");
        if (!t.base)
            return reject(a, err, GW_ERR_INVALID_VALUE, path, "content part '%s' needs a string 'type'", path);
        if (gw_str_eq(t, "input_text") || gw_str_eq(t, "output_text") || gw_str_eq(t, "text")) {
            if (!gw_json_get_str(p, "text").base)
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "content part '%s' needs a string 'text'", path);
        } else if (gw_str_eq(t, "refusal")) {
            if (!gw_json_get_str(p, "refusal").base)
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "refusal part '%s' needs 'refusal'", path);
        } else if (gw_str_eq(t, "input_image")) {
            if (!gw_json_get_str(p, "image_url").base)
                return reject(a, err, GW_ERR_UNSUPPORTED, path,
                              "input_image at '%s' needs 'image_url'; file_id references are not supported", path);
        } else if (gw_str_eq(t, "input_file") || gw_str_eq(t, "input_audio")) {
            return reject(a, err, GW_ERR_UNSUPPORTED, path, "content part type '%.*s' at '%s' is not supported",
                          (int)t.len, t.base, path);
        } else {
            return reject(a, err, GW_ERR_INVALID_VALUE, path, "unknown content part type '%.*s' at '%s'",
                          (int)t.len, t.base, path);
        }
    }
    return 0;
}

static bool has_suffix(gw_str_t s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.base + s.len - n, suffix, n) == 0;
}

/* Items of OpenAI's built-in tools (web_search_call, computer_call_output, mcp_call, ...) are a
 * known feature this gateway does not offer: 400 unsupported_parameter. Any other unknown type is
 * a bad value: 400 invalid_value (PROTOCOL.md §2.1). */
static bool is_builtin_tool_item(gw_str_t type)
{
    return has_suffix(type, "_call") || has_suffix(type, "_call_output") || gw_str_has_prefix(type, "mcp_");
}

/* Input items (PROTOCOL.md §2.1): messages, function_call, function_call_output, reasoning. */
static int check_input(gw_arena_t *a, gw_error_t *err, const gw_json_t *input)
{
    static const char *const roles[] = {"user", "assistant", "system", "developer", NULL};
    char path[64];
    size_t i = 0;
    for (const gw_json_t *it = input->child; it; it = it->next, i++) {
        snprintf(path, sizeof(path), "input[%zu]", i);
        if (it->type != GW_JSON_OBJECT)
            return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s' must be an object", path);
        gw_str_t type = gw_json_get_str(it, "type");
        const gw_json_t *tv = gw_json_get(it, "type");
        if (tv && tv->type != GW_JSON_STRING)
            return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.type' must be a string", path);
        if (!type.base || gw_str_eq(type, "message")) {
            gw_str_t role = gw_json_get_str(it, "role");
            if (!role.base)
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "message '%s' needs a 'role'", path);
            if (!is_one_of(role, roles))
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "unknown role '%.*s' at '%s'", (int)role.len,
                              role.base, path);
            if (check_content(a, err, gw_json_get(it, "content"), path) < 0)
                return -1;
        } else if (gw_str_eq(type, "function_call")) {
            gw_str_t call_id = gw_json_get_str(it, "call_id"), name = gw_json_get_str(it, "name");
            if (!call_id.len || !name.len)
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "function_call '%s' needs 'call_id' and 'name'",
                              path);
            const gw_json_t *args = gw_json_get(it, "arguments");
            if (args && args->type != GW_JSON_STRING)
                return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.arguments' must be a string", path);
        } else if (gw_str_eq(type, "function_call_output")) {
            gw_str_t call_id = gw_json_get_str(it, "call_id");
            if (!call_id.len)
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "function_call_output '%s' needs 'call_id'",
                              path);
            /* The call must have been made earlier in this same input (stateless gateway). */
            bool found = false;
            for (const gw_json_t *p = input->child; p != it && !found; p = p->next) {
                gw_str_t pc = gw_json_get_str(p, "call_id");
                found = gw_str_eq(gw_json_get_str(p, "type"), "function_call") && pc.len == call_id.len &&
                        memcmp(pc.base, call_id.base, pc.len) == 0;
            }
            if (!found)
                return reject(a, err, GW_ERR_INVALID_VALUE, path,
                              "function_call_output '%s' refers to call_id '%.*s' that no earlier function_call "
                              "in input has",
                              path, (int)call_id.len, call_id.base);
            const gw_json_t *out = gw_json_get(it, "output");
            if (!gw_json_is(out, GW_JSON_STRING) && !gw_json_is(out, GW_JSON_ARRAY))
                return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.output' must be a string or parts", path);
        } else if (gw_str_eq(type, "reasoning")) {
            /* Accepted and dropped on translation. */
        } else if (gw_str_eq(type, "item_reference")) {
            return reject(a, err, GW_ERR_UNSUPPORTED, path,
                          "item_reference at '%s' is not supported: agate stores no responses; send the full "
                          "items instead (store: false)",
                          path);
        } else if (is_builtin_tool_item(type)) {
            return reject(a, err, GW_ERR_UNSUPPORTED, path, "input item type '%.*s' at '%s' is not supported",
                          (int)type.len, type.base, path);
        } else {
            return reject(a, err, GW_ERR_INVALID_VALUE, path, "unknown input item type '%.*s' at '%s'",
                          (int)type.len, type.base, path);
        }
    }
    return 0;
}

static int check_tools(gw_arena_t *a, gw_error_t *err, const gw_json_t *tools)
{
    char path[48];
    size_t i = 0;
    for (const gw_json_t *t = tools->child; t; t = t->next, i++) {
        snprintf(path, sizeof(path), "tools[%zu]", i);
        if (t->type != GW_JSON_OBJECT)
            return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s' must be an object", path);
        gw_str_t type = gw_json_get_str(t, "type");
        if (!gw_str_eq(type, "function"))
            return reject(a, err, GW_ERR_UNSUPPORTED, path, "only function tools are supported ('%s')", path);
        if (!gw_json_get_str(t, "name").len)
            return reject(a, err, GW_ERR_INVALID_VALUE, path, "function tool '%s' needs a 'name'", path);
    }
    return 0;
}

static int check_tool_choice(gw_arena_t *a, gw_error_t *err, const gw_json_t *tc)
{
    static const char *const modes[] = {"auto", "none", "required", NULL};
    if (gw_json_is_nullish(tc))
        return 0;
    if (tc->type == GW_JSON_STRING) {
        if (!is_one_of(tc->str, modes))
            return reject(a, err, GW_ERR_INVALID_VALUE, "tool_choice", "tool_choice must be auto, none or required");
        return 0;
    }
    if (tc->type == GW_JSON_OBJECT && gw_str_eq(gw_json_get_str(tc, "type"), "function") &&
        gw_json_get_str(tc, "name").len)
        return 0;
    return reject(a, err, GW_ERR_UNSUPPORTED, "tool_choice",
                  "tool_choice must be a string or {\"type\":\"function\",\"name\":...}");
}

int gw_request_parse(gw_arena_t *a, gw_str_t body, bool databricks_route, gw_request_t *r, gw_error_t *err)
{
    memset(r, 0, sizeof(*r));
    gw_json_t *root;
    const char *perr = NULL;
    if (gw_json_parse(a, body.base ? body.base : "", body.len, &root, &perr) < 0)
        return reject(a, err, GW_ERR_INVALID_JSON, NULL, "request body is not valid JSON: %s",
                      perr ? perr : "parse error");
    if (root->type != GW_JSON_OBJECT)
        return reject(a, err, GW_ERR_INVALID_JSON, NULL, "request body must be a JSON object");
    if (gw_utf8_valid_prefix(body) != body.len)
        return reject(a, err, GW_ERR_INVALID_JSON, NULL, "request body is not valid UTF-8");
    r->root = root;
    /* Table fields first: a rejected request still gets a row that carries them. */
    r->client_request_id = gw_json_get_str(root, "client_request_id");
    const gw_json_t *v = gw_json_get(root, "usage_context");
    r->usage_context = gw_json_is(v, GW_JSON_OBJECT) ? v : NULL;

    v = gw_json_get(root, "model");
    if (v && v->type == GW_JSON_STRING && v->str.len)
        r->model = v->str;
    else if (v && v->type == GW_JSON_STRING)
        return reject(a, err, GW_ERR_INVALID_VALUE, "model", "'model' must not be empty");
    else if (v && !gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "model", "'model' must be a string");
    else if (!databricks_route)
        return reject(a, err, GW_ERR_INVALID_VALUE, "model", "'model' is required");

    v = gw_json_get(root, "stream");
    if (v && v->type == GW_JSON_BOOL)
        r->stream = v->boolean;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "stream", "'stream' must be a boolean");

    /* Stateless gateway: server-side conversation state is not available (PROTOCOL.md §2). */
    v = gw_json_get(root, "previous_response_id");
    if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_UNSUPPORTED, "previous_response_id",
                      "previous_response_id is not supported: agate is stateless and stores no responses; send "
                      "the full conversation in 'input'");
    if (!gw_json_is_nullish(gw_json_get(root, "conversation")))
        return reject(a, err, GW_ERR_UNSUPPORTED, "conversation",
                      "conversation is not supported: agate is stateless; send the full conversation in 'input'");
    v = gw_json_get(root, "background");
    if (gw_json_is(v, GW_JSON_BOOL) && v->boolean)
        return reject(a, err, GW_ERR_UNSUPPORTED, "background", "background mode is not supported");
    if (!gw_json_is_nullish(gw_json_get(root, "prompt")))
        return reject(a, err, GW_ERR_UNSUPPORTED, "prompt", "prompt templates are not supported");

    v = gw_json_get(root, "input");
    if (!v || v->type == GW_JSON_NULL)
        return reject(a, err, GW_ERR_INVALID_VALUE, "input", "'input' is required");
    if (v->type == GW_JSON_ARRAY) {
        if (v->len == 0)
            return reject(a, err, GW_ERR_INVALID_VALUE, "input", "'input' must not be empty");
        if (check_input(a, err, v) < 0)
            return -1;
    } else if (v->type != GW_JSON_STRING) {
        return reject(a, err, GW_ERR_INVALID_JSON, "input", "'input' must be a string or an array of items");
    }
    r->input = v;

    v = gw_json_get(root, "instructions");
    if (gw_json_is(v, GW_JSON_STRING))
        r->instructions = v;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "instructions", "'instructions' must be a string");

    v = gw_json_get(root, "tools");
    if (gw_json_is(v, GW_JSON_ARRAY)) {
        if (check_tools(a, err, v) < 0)
            return -1;
        r->tools = v;
    } else if (!gw_json_is_nullish(v)) {
        return reject(a, err, GW_ERR_INVALID_JSON, "tools", "'tools' must be an array");
    }
    r->tool_choice = gw_json_get(root, "tool_choice");
    if (check_tool_choice(a, err, r->tool_choice) < 0)
        return -1;
    if (gw_json_is_nullish(r->tool_choice))
        r->tool_choice = NULL;
    v = gw_json_get(root, "parallel_tool_calls");
    if (gw_json_is(v, GW_JSON_BOOL))
        r->parallel_tool_calls = v;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "parallel_tool_calls", "'parallel_tool_calls' must be a boolean");

    r->temperature = gw_json_get(root, "temperature");
    r->top_p = gw_json_get(root, "top_p");
    r->max_output_tokens = gw_json_get(root, "max_output_tokens");
    if (check_number(a, err, r->temperature, "temperature", 0, 2, false) < 0 ||
        check_number(a, err, r->top_p, "top_p", 0, 1, false) < 0 ||
        check_number(a, err, r->max_output_tokens, "max_output_tokens", 1, 1e9, true) < 0)
        return -1;
    if (gw_json_is_nullish(r->temperature))
        r->temperature = NULL;
    if (gw_json_is_nullish(r->top_p))
        r->top_p = NULL;
    if (gw_json_is_nullish(r->max_output_tokens))
        r->max_output_tokens = NULL;

    v = gw_json_get(root, "text");
    if (gw_json_is(v, GW_JSON_OBJECT)) {
        const gw_json_t *f = gw_json_get(v, "format");
        if (!gw_json_is_nullish(f)) {
            gw_str_t ft = gw_json_get_str(f, "type");
            if (gw_str_eq(ft, "json_schema")) {
                if (!gw_json_get_str(f, "name").len || !gw_json_is(gw_json_get(f, "schema"), GW_JSON_OBJECT))
                    return reject(a, err, GW_ERR_INVALID_VALUE, "text.format",
                                  "json_schema format needs 'name' and an object 'schema'");
            } else if (!gw_str_eq(ft, "text") && !gw_str_eq(ft, "json_object")) {
                return reject(a, err, GW_ERR_INVALID_VALUE, "text.format.type",
                              "text.format.type must be text, json_object or json_schema");
            }
        }
        r->text = v;
    } else if (!gw_json_is_nullish(v)) {
        return reject(a, err, GW_ERR_INVALID_JSON, "text", "'text' must be an object");
    }

    v = gw_json_get(root, "reasoning");
    if (gw_json_is(v, GW_JSON_OBJECT)) {
        const gw_json_t *e = gw_json_get(v, "effort");
        if (!gw_json_is_nullish(e) && e->type != GW_JSON_STRING)
            return reject(a, err, GW_ERR_INVALID_JSON, "reasoning.effort", "'reasoning.effort' must be a string");
        r->reasoning = v;
    } else if (!gw_json_is_nullish(v)) {
        return reject(a, err, GW_ERR_INVALID_JSON, "reasoning", "'reasoning' must be an object");
    }

    v = gw_json_get(root, "metadata");
    if (gw_json_is(v, GW_JSON_OBJECT)) {
        for (const gw_json_t *m = v->child; m; m = m->next)
            if (m->type != GW_JSON_STRING)
                return reject(a, err, GW_ERR_INVALID_VALUE, "metadata", "'metadata' values must be strings");
        r->metadata = v;
    } else if (!gw_json_is_nullish(v)) {
        return reject(a, err, GW_ERR_INVALID_JSON, "metadata", "'metadata' must be an object of strings");
    }

    v = gw_json_get(root, "user");
    if (gw_json_is(v, GW_JSON_STRING))
        r->user = v;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "user", "'user' must be a string");

    r->custom_inputs = gw_json_get(root, "custom_inputs");
    r->context = gw_json_get(root, "context");
    r->databricks_options = gw_json_get(root, "databricks_options");
    const gw_json_t *rt = gw_json_get(r->databricks_options, "return_trace");
    r->return_trace = gw_json_is(rt, GW_JSON_BOOL) && rt->boolean;
    return 0;
}

void gw_request_content_text(const gw_json_t *content, gw_buf_t *out)
{
    if (gw_json_is(content, GW_JSON_STRING)) {
        gw_buf_append_str(out, content->str);
        return;
    }
    if (!gw_json_is(content, GW_JSON_ARRAY))
        return;
    bool first = true;
    for (const gw_json_t *p = content->child; p; p = p->next) {
        gw_str_t t = gw_json_get_str(p, "text");
        if (!t.base)
            t = gw_json_get_str(p, "refusal");
        if (!t.base)
            continue;
        if (!first)
            gw_buf_append(out, "\n", 1);
        gw_buf_append_str(out, t);
        first = false;
    }
}

int gw_request_parse_chat(gw_arena_t *a, gw_str_t body, gw_request_t *r, gw_error_t *err)
{
    memset(r, 0, sizeof(*r));
    gw_json_t *root;
    const char *perr = NULL;
    if (gw_json_parse(a, body.base ? body.base : "", body.len, &root, &perr) < 0)
        return reject(a, err, GW_ERR_INVALID_JSON, NULL, "request body is not valid JSON: %s",
                      perr ? perr : "parse error");
    if (root->type != GW_JSON_OBJECT)
        return reject(a, err, GW_ERR_INVALID_JSON, NULL, "request body must be a JSON object");
    if (gw_utf8_valid_prefix(body) != body.len)
        return reject(a, err, GW_ERR_INVALID_JSON, NULL, "request body is not valid UTF-8");
    r->root = root;
    r->client_request_id = gw_json_get_str(root, "client_request_id");
    const gw_json_t *v = gw_json_get(root, "model");
    if (v && v->type == GW_JSON_STRING && v->str.len)
        r->model = v->str;
    else if (v && v->type == GW_JSON_STRING)
        return reject(a, err, GW_ERR_INVALID_VALUE, "model", "'model' must not be empty");
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "model", "'model' must be a string");
    else
        return reject(a, err, GW_ERR_INVALID_VALUE, "model", "'model' is required");
    v = gw_json_get(root, "messages");
    if (gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_VALUE, "messages", "'messages' is required");
    if (v->type != GW_JSON_ARRAY)
        return reject(a, err, GW_ERR_INVALID_JSON, "messages", "'messages' must be an array");
    if (!v->len)
        return reject(a, err, GW_ERR_INVALID_VALUE, "messages", "'messages' must not be empty");
    r->messages = v;
    v = gw_json_get(root, "stream");
    if (v && v->type == GW_JSON_BOOL)
        r->stream = v->boolean;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "stream", "'stream' must be a boolean");
    v = gw_json_get(root, "stream_options");
    if (!gw_json_is_nullish(v) && v->type != GW_JSON_OBJECT)
        return reject(a, err, GW_ERR_INVALID_JSON, "stream_options", "'stream_options' must be an object");
    const gw_json_t *iu = gw_json_get(v, "include_usage");
    r->include_usage = r->stream && gw_json_is(iu, GW_JSON_BOOL) && iu->boolean;
    return 0;
}
