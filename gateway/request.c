#include "gateway/request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gateway/log.h"

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

/* call_ids seen so far in input: an open-addressing hash set in the arena, so that checking every
 * tool output against the calls before it stays linear (a 4 MB body can hold 20k calls). */
struct id_set {
    gw_str_t *slot;
    size_t mask;
};

static void id_set_init(gw_arena_t *a, struct id_set *h, size_t n_items)
{
    size_t cap = 16;
    while (cap < n_items * 2)
        cap <<= 1;
    h->slot = gw_arena_calloc(a, cap * sizeof(*h->slot));
    h->mask = cap - 1;
}

static size_t id_hash(gw_str_t s)
{
    uint64_t x = 1469598103934665603ULL;
    for (size_t i = 0; i < s.len; i++)
        x = (x ^ (unsigned char)s.base[i]) * 1099511628211ULL;
    return (size_t)(x ^ (x >> 29));
}

/* Returns the slot holding s, or the empty slot where it would go. */
static gw_str_t *id_set_slot(struct id_set *h, gw_str_t s)
{
    for (size_t i = id_hash(s) & h->mask;; i = (i + 1) & h->mask) {
        gw_str_t *e = &h->slot[i];
        if (!e->base || (e->len == s.len && memcmp(e->base, s.base, s.len) == 0))
            return e;
    }
}

static bool is_call_output(gw_str_t type)
{
    return gw_str_eq(type, "function_call_output") || gw_str_eq(type, "custom_tool_call_output") ||
           gw_str_eq(type, "local_shell_call_output");
}

/* Tool-call items a ChatCompletions model can take part in (PROTOCOL.md §2.2): name, call_id. */
static int check_call(gw_arena_t *a, gw_error_t *err, const gw_json_t *it, gw_str_t type, const char *path,
                      struct id_set *calls)
{
    gw_str_t call_id = gw_json_get_str(it, "call_id"), name = gw_json_get_str(it, "name");
    bool shell = gw_str_eq(type, "local_shell_call");
    if (!call_id.len || (!shell && !name.len))
        return reject(a, err, GW_ERR_INVALID_VALUE, path, "%.*s '%s' needs 'call_id'%s", (int)type.len,
                      type.base, path, shell ? "" : " and 'name'");
    const gw_json_t *ns = gw_json_get(it, "namespace");
    if (!gw_json_is_nullish(ns) && ns->type != GW_JSON_STRING)
        return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.namespace' must be a string", path);
    const char *field = shell ? "action" : gw_str_eq(type, "custom_tool_call") ? "input" : "arguments";
    const gw_json_t *v = gw_json_get(it, field);
    if (shell ? !gw_json_is(v, GW_JSON_OBJECT) : v && v->type != GW_JSON_STRING)
        return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.%s' must be %s", path, field,
                      shell ? "an object" : "a string");
    *id_set_slot(calls, call_id) = call_id;
    return 0;
}

static int check_call_output(gw_arena_t *a, gw_error_t *err, const gw_json_t *it, gw_str_t type,
                             const char *path, struct id_set *calls, bool link_calls)
{
    gw_str_t call_id = gw_json_get_str(it, "call_id");
    if (!call_id.len && gw_str_eq(type, "local_shell_call_output"))
        call_id = gw_json_get_str(it, "id"); /* that item names its call by `id` (openai-node types) */
    if (!call_id.len)
        return reject(a, err, GW_ERR_INVALID_VALUE, path, "%.*s '%s' needs 'call_id'", (int)type.len,
                      type.base, path);
    /* The call must have been made earlier in this same input; with stored turns to merge in
     * first (link_calls false), the merged input is checked again (gw_request_check_input). */
    if (link_calls && !id_set_slot(calls, call_id)->base)
        return reject(a, err, GW_ERR_INVALID_VALUE, path,
                      "%.*s '%s' refers to call_id '%.*s' that no earlier call item in input has",
                      (int)type.len, type.base, path, (int)call_id.len, call_id.base);
    const gw_json_t *out = gw_json_get(it, "output");
    if (!gw_json_is(out, GW_JSON_STRING) && !gw_json_is(out, GW_JSON_ARRAY))
        return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.output' must be a string or parts", path);
    return 0;
}

/* Input items (PROTOCOL.md §2.1, §2.2): messages, tool calls and their outputs, reasoning, and
 * items of hosted tools (dropped on translation). Other `*_call` items belong to tools this
 * gateway does not offer: 400 unsupported_parameter; any other type is a bad value. */
static int check_input(gw_arena_t *a, gw_error_t *err, const gw_json_t *input, bool link_calls,
                       size_t *n_refs)
{
    static const char *const roles[] = {"user", "assistant", "system", "developer", NULL};
    struct id_set calls;
    id_set_init(a, &calls, input->len);
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
        } else if (gw_str_eq(type, "function_call") || gw_str_eq(type, "custom_tool_call") ||
                   gw_str_eq(type, "local_shell_call")) {
            if (check_call(a, err, it, type, path, &calls) < 0)
                return -1;
        } else if (is_call_output(type)) {
            if (check_call_output(a, err, it, type, path, &calls, link_calls) < 0)
                return -1;
        } else if (gw_str_eq(type, "reasoning") || ad_tools_is_hosted_item(type)) {
            /* Accepted; reasoning per the endpoint's reasoning_passback, hosted items dropped. */
        } else if (gw_str_eq(type, "item_reference") && n_refs) {
            /* Resolved from the store in the resolve phase (gateway/recall). */
            if (!gw_json_get_str(it, "id").len)
                return reject(a, err, GW_ERR_INVALID_VALUE, path, "item_reference '%s' needs an 'id'", path);
            (*n_refs)++;
        } else if (has_suffix(type, "_call") || has_suffix(type, "_call_output") ||
                   gw_str_has_prefix(type, "mcp_")) {
            return reject(a, err, GW_ERR_UNSUPPORTED, path, "input item type '%.*s' at '%s' is not supported",
                          (int)type.len, type.base, path);
        } else {
            return reject(a, err, GW_ERR_INVALID_VALUE, path, "unknown input item type '%.*s' at '%s'",
                          (int)type.len, type.base, path);
        }
    }
    return 0;
}

int gw_request_check_input(gw_arena_t *a, gw_error_t *err, const gw_json_t *input, bool link_calls)
{
    return check_input(a, err, input, link_calls, NULL);
}

/* Whether input refers to stored items: then call outputs may answer calls merged in later. */
static bool has_item_refs(const gw_json_t *input)
{
    for (const gw_json_t *it = input->child; it; it = it->next)
        if (gw_str_eq(gw_json_get_str(it, "type"), "item_reference"))
            return true;
    return false;
}

#define MAX_TOOLS 1024

/* A function or custom tool, at top level or inside a namespace. */
static int check_named_tool(gw_arena_t *a, gw_error_t *err, const gw_json_t *t, gw_str_t type,
                            const char *path)
{
    gw_str_t name = gw_json_get_str(t, "name");
    if (!name.len)
        return reject(a, err, GW_ERR_INVALID_VALUE, path, "%.*s tool '%s' needs a 'name'", (int)type.len,
                      type.base, path);
    if (gw_str_eq(type, "custom")) {
        const gw_json_t *f = gw_json_get(t, "format");
        if (!gw_json_is_nullish(f) && !gw_json_is(f, GW_JSON_OBJECT))
            return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s.format' must be an object", path);
        gw_str_t ft = gw_json_get_str(f, "type");
        if (f && !gw_str_eq(ft, "text") && !gw_str_eq(ft, "grammar"))
            return reject(a, err, GW_ERR_INVALID_VALUE, path, "'%s.format.type' must be text or grammar",
                          path);
    }
    return 0;
}

/* Tools (PROTOCOL.md §2.2): function, custom, namespace (of function/custom), local_shell, and the
 * hosted tools whose fate the endpoint decides (gw_request_apply_endpoint). */
static int check_tools(gw_arena_t *a, gw_error_t *err, const gw_json_t *tools)
{
    char path[80];
    size_t i = 0, total = 0;
    for (const gw_json_t *t = tools->child; t; t = t->next, i++) {
        snprintf(path, sizeof(path), "tools[%zu]", i);
        if (t->type != GW_JSON_OBJECT)
            return reject(a, err, GW_ERR_INVALID_JSON, path, "'%s' must be an object", path);
        gw_str_t type = gw_json_get_str(t, "type");
        if (gw_str_eq(type, "function") || gw_str_eq(type, "custom")) {
            if (check_named_tool(a, err, t, type, path) < 0)
                return -1;
            total++;
        } else if (gw_str_eq(type, "namespace")) {
            const gw_json_t *inner = gw_json_get(t, "tools");
            if (!gw_json_get_str(t, "name").len || !gw_json_is(inner, GW_JSON_ARRAY))
                return reject(a, err, GW_ERR_INVALID_VALUE, path,
                              "namespace tool '%s' needs 'name' and 'tools'", path);
            size_t k = 0;
            for (const gw_json_t *x = inner->child; x; x = x->next, k++, total++) {
                char ip[128];
                snprintf(ip, sizeof(ip), "%s.tools[%zu]", path, k);
                gw_str_t it = gw_json_get_str(x, "type");
                if (!gw_json_is(x, GW_JSON_OBJECT) ||
                    (!gw_str_eq(it, "function") && !gw_str_eq(it, "custom")))
                    return reject(a, err, GW_ERR_UNSUPPORTED, ip,
                                  "a namespace holds function and custom tools only ('%s')", ip);
                if (check_named_tool(a, err, x, it, ip) < 0)
                    return -1;
            }
        } else if (gw_str_eq(type, "local_shell") || ad_tools_is_hosted_type(type)) {
            total++;
        } else {
            return reject(a, err, GW_ERR_UNSUPPORTED, path, "tool type '%.*s' ('%s') is not supported",
                          (int)type.len, type.base ? type.base : "", path);
        }
        if (total > MAX_TOOLS)
            return reject(a, err, GW_ERR_INVALID_VALUE, "tools", "at most %d tools per request", MAX_TOOLS);
    }
    return 0;
}

/* tool_choice: a mode, or an object naming one tool of the request (PROTOCOL.md §2). */
static int check_tool_choice(gw_arena_t *a, gw_error_t *err, const gw_json_t *tc, const ad_tools_t *tools)
{
    static const char *const modes[] = {"auto", "none", "required", NULL};
    if (gw_json_is_nullish(tc))
        return 0;
    if (tc->type == GW_JSON_STRING) {
        if (!is_one_of(tc->str, modes))
            return reject(a, err, GW_ERR_INVALID_VALUE, "tool_choice", "tool_choice must be auto, none or required");
        return 0;
    }
    gw_str_t type = gw_json_get_str(tc, "type"), name = gw_json_get_str(tc, "name");
    if (tc->type == GW_JSON_OBJECT && (gw_str_eq(type, "function") || gw_str_eq(type, "custom")) &&
        name.len) {
        const gw_json_t *ns = gw_json_get(tc, "namespace");
        const ad_tool_t *e =
            ad_tools_find(tools, gw_json_is(ns, GW_JSON_STRING) ? ns->str : GW_STR_NULL, name);
        if (!e && !gw_json_is(ns, GW_JSON_STRING)) /* a namespaced tool may be named by its inner name */
            for (size_t i = 0; i < tools->n && !e; i++)
                if (tools->v[i].kind != AD_TOOL_HOSTED && tools->v[i].name.len == name.len &&
                    memcmp(tools->v[i].name.base, name.base, name.len) == 0)
                    e = &tools->v[i];
        if (!e)
            return reject(a, err, GW_ERR_INVALID_VALUE, "tool_choice",
                          "tool_choice names '%.*s', which is not in tools", (int)name.len, name.base);
        return 0;
    }
    if (tc->type == GW_JSON_OBJECT && (ad_tools_is_hosted_type(type) || gw_str_eq(type, "local_shell")))
        return 0; /* hosted: decided with the endpoint's hosted_tools */
    return reject(a, err, GW_ERR_UNSUPPORTED, "tool_choice",
                  "tool_choice must be a string or {\"type\":\"function\"|\"custom\",\"name\":...}");
}

/* Both front routes start alike: one JSON object in valid UTF-8, parsed once into the arena. */
static int parse_object(gw_arena_t *a, gw_str_t body, gw_request_t *r, gw_error_t *err)
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
    return 0;
}

int gw_request_parse(gw_arena_t *a, gw_str_t body, bool databricks_route, gw_request_t *r, gw_error_t *err)
{
    if (parse_object(a, body, r, err) < 0)
        return -1;
    const gw_json_t *root = r->root;
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

    /* Server-side state: read here, resolved (or refused without a store) by gateway/recall. */
    v = gw_json_get(root, "previous_response_id");
    if (gw_json_is(v, GW_JSON_STRING) && v->str.len)
        r->previous_response_id = v->str;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "previous_response_id",
                      "'previous_response_id' must be a non-empty string");
    v = gw_json_get(root, "conversation");
    if (gw_json_is(v, GW_JSON_STRING) || gw_json_is(v, GW_JSON_OBJECT)) {
        r->conversation = v;
        r->conversation_id = v->type == GW_JSON_STRING ? v->str : gw_json_get_str(v, "id");
        if (!r->conversation_id.len)
            return reject(a, err, GW_ERR_INVALID_VALUE, "conversation", "'conversation' must name a conversation id");
    } else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "conversation", "'conversation' must be a string or an object");
    v = gw_json_get(root, "store");
    if (gw_json_is(v, GW_JSON_BOOL))
        r->store = v;
    else if (!gw_json_is_nullish(v))
        return reject(a, err, GW_ERR_INVALID_JSON, "store", "'store' must be a boolean");
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
        bool merged_later = r->previous_response_id.base || r->conversation || has_item_refs(v);
        if (check_input(a, err, v, !merged_later, &r->n_item_refs) < 0)
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
    ad_tools_build(a, r->tools, &r->tool_map);
    r->tool_choice = gw_json_get(root, "tool_choice");
    if (check_tool_choice(a, err, r->tool_choice, &r->tool_map) < 0)
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

int gw_request_apply_endpoint(gw_request_t *r, gw_arena_t *a, const gw_endpoint_cfg_t *ep, gw_error_t *err)
{
    r->dropped_tools = NULL;
    r->n_dropped_tools = 0;
    /* A Responses upstream runs (or refuses) hosted tools itself: nothing is dropped for it. */
    if (ep->adapter != GW_ADAPTER_CHAT_COMPLETIONS)
        return 0;
    size_t hosted = r->tool_map.n - r->tool_map.n_upstream;
    r->dropped_tools = gw_arena_calloc(a, sizeof(*r->dropped_tools) * (hosted ? hosted : 1));
    size_t i = 0;
    for (const gw_json_t *t = r->tools ? r->tools->child : NULL; t; t = t->next, i++) {
        gw_str_t type = gw_json_get_str(t, "type");
        if (!ad_tools_is_hosted_type(type))
            continue;
        if (ep->hosted_tools == GW_HOSTED_REJECT) {
            char path[48];
            snprintf(path, sizeof(path), "tools[%zu]", i);
            return reject(
                a, err, GW_ERR_UNSUPPORTED, path,
                "tool '%.*s' ('%s') is a hosted tool this endpoint's model cannot run (hosted_tools: reject)",
                (int)type.len, type.base, path);
        }
        r->dropped_tools[r->n_dropped_tools++] = gw_arena_strndup(a, type.base, type.len);
        gw_log(GW_LOG_DEBUG, NULL, "event=hosted_tool_dropped endpoint=%s tool=%.*s", ep->name, (int)type.len,
               type.base);
    }
    gw_str_t ct = gw_json_get_str(r->tool_choice, "type");
    if (ct.base && ad_tools_is_hosted_type(ct))
        return reject(
            a, err, GW_ERR_INVALID_VALUE, "tool_choice",
            "tool_choice names '%.*s', a hosted tool this endpoint's model cannot run (it was dropped)",
            (int)ct.len, ct.base);
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
    if (parse_object(a, body, r, err) < 0)
        return -1;
    const gw_json_t *root = r->root;
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
