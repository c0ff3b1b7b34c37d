/* Responses request → ChatCompletions request (PROTOCOL.md §6.1, §7.1, §2.2).
 *
 * Input items become messages in order. Tool-call items of every kind (function_call,
 * custom_tool_call, local_shell_call) in a run form one assistant message with `tool_calls`, under
 * their upstream function names (adapters/tools.h); their outputs become `tool` messages. Items of
 * hosted tools are left out. Runs of system/developer messages (with `instructions` first) merge
 * into one unless the endpoint keeps them, and reasoning items are dropped or passed back as
 * `reasoning_content` per the endpoint's reasoning_passback. */
#include "adapters/cc_request.h"

#include <string.h>

#include "adapters/tools.h"

struct enc {
    gw_jgen_t *j;
    const gw_request_t *r;
    const gw_endpoint_cfg_t *ep;
    gw_arena_t *a; /** mangled names, for this call only */
    gw_buf_t tmp;
    gw_buf_t sys;               /** system/developer text waiting to be written (merge mode) */
    const char *sys_role;       /** role of the first message of that run; NULL = none waiting */
    gw_buf_t reasoning;         /** reasoning text for the next assistant message */
    const gw_json_t *last_user; /** the last user message of input (tool_turns passback) */
    bool after_last_user;
};

static void put_num_param(gw_jgen_t *j, const char *key, const gw_json_t *req_val, gw_opt_num_t def)
{
    if (req_val) {
        gw_jgen_kv_value(j, key, req_val);
    } else if (def.has) {
        gw_jgen_cstr(j, key);
        gw_jgen_double(j, def.value);
    }
}

static bool has_image(const gw_json_t *content)
{
    if (!gw_json_is(content, GW_JSON_ARRAY))
        return false;
    for (const gw_json_t *p = content->child; p; p = p->next)
        if (gw_str_eq(gw_json_get_str(p, "type"), "input_image"))
            return true;
    return false;
}

/* User content with images keeps the part list; everything else is joined into one string. */
static void put_content(gw_jgen_t *j, const gw_json_t *content, gw_buf_t *tmp)
{
    gw_jgen_lit(j, "content");
    if (has_image(content)) {
        gw_jgen_array_open(j);
        for (const gw_json_t *p = content->child; p; p = p->next) {
            gw_str_t type = gw_json_get_str(p, "type");
            gw_jgen_map_open(j);
            if (gw_str_eq(type, "input_image")) {
                gw_jgen_kv_lit(j, "type", "image_url");
                gw_jgen_lit(j, "image_url");
                gw_jgen_map_open(j);
                gw_jgen_kv_str(j, "url", gw_json_get_str(p, "image_url"));
                gw_str_t detail = gw_json_get_str(p, "detail");
                if (detail.base)
                    gw_jgen_kv_str(j, "detail", detail);
                gw_jgen_map_close(j);
            } else {
                gw_jgen_kv_lit(j, "type", "text");
                gw_jgen_kv_str(j, "text", gw_json_get_str(p, "text"));
            }
            gw_jgen_map_close(j);
        }
        gw_jgen_array_close(j);
        return;
    }
    gw_buf_reset(tmp);
    gw_request_content_text(content, tmp);
    gw_jgen_str(j, gw_buf_str(tmp));
}

static bool is_type(const gw_json_t *it, const char *t)
{
    return gw_str_eq(gw_json_get_str(it, "type"), t);
}

static bool is_call(const gw_json_t *it)
{
    return is_type(it, "function_call") || is_type(it, "custom_tool_call") || is_type(it, "local_shell_call");
}

static bool is_output(const gw_json_t *it)
{
    return is_type(it, "function_call_output") || is_type(it, "custom_tool_call_output") ||
           is_type(it, "local_shell_call_output");
}

static bool is_system(const gw_json_t *it)
{
    gw_str_t role = gw_json_get_str(it, "role");
    return (!gw_json_get(it, "type") || is_type(it, "message")) &&
           (gw_str_eq(role, "system") || gw_str_eq(role, "developer"));
}

/* ---- system/developer runs ---- */

static void flush_system(struct enc *e)
{
    if (!e->sys_role)
        return;
    gw_jgen_map_open(e->j);
    gw_jgen_kv_cstr(e->j, "role", e->sys_role);
    gw_jgen_kv_str(e->j, "content", e->sys.base ? gw_buf_str(&e->sys) : GW_STR_LIT(""));
    gw_jgen_map_close(e->j);
    gw_buf_reset(&e->sys);
    e->sys_role = NULL;
}

static void add_system(struct enc *e, const char *role, gw_str_t text)
{
    if (e->sys_role && e->ep->system_messages == GW_SYSMSG_KEEP)
        flush_system(e);
    if (!e->sys_role)
        e->sys_role = role;
    else
        gw_buf_append_cstr(&e->sys, "\n\n"); /* merged messages are joined by a blank line */
    gw_buf_append_str(&e->sys, text);
}

/* ---- reasoning passback ---- */

/* The text of a reasoning item: its reasoning_text content when present, else its summary. */
static void take_reasoning(struct enc *e, const gw_json_t *it)
{
    bool wanted = e->ep->reasoning_passback == GW_PASSBACK_ALL ||
                  (e->ep->reasoning_passback == GW_PASSBACK_TOOL_TURNS && e->after_last_user);
    if (!wanted)
        return;
    const gw_json_t *content = gw_json_get(it, "content");
    const gw_json_t *list =
        gw_json_is(content, GW_JSON_ARRAY) && content->len ? content : gw_json_get(it, "summary");
    if (!gw_json_is(list, GW_JSON_ARRAY))
        return;
    for (const gw_json_t *p = list->child; p; p = p->next) {
        gw_str_t t = gw_json_get_str(p, "text");
        if (!t.len)
            continue;
        if (e->reasoning.len)
            gw_buf_append_cstr(&e->reasoning, "\n");
        gw_buf_append_str(&e->reasoning, t);
    }
}

static void put_reasoning(struct enc *e)
{
    if (!e->reasoning.len)
        return;
    gw_jgen_kv_str(e->j, "reasoning_content", gw_buf_str(&e->reasoning));
    gw_buf_reset(&e->reasoning);
}

/* ---- tool calls ---- */

static gw_str_t call_namespace(const gw_json_t *c)
{
    return gw_json_get_str(c, "namespace");
}

/* One entry of `tool_calls` for a call item of any kind. */
static void put_call(struct enc *e, const gw_json_t *c)
{
    gw_jgen_t *j = e->j;
    const ad_tools_t *map = &e->r->tool_map;
    gw_jgen_map_open(j);
    gw_jgen_kv_str(j, "id", gw_json_get_str(c, "call_id"));
    gw_jgen_kv_lit(j, "type", "function");
    gw_jgen_lit(j, "function");
    gw_jgen_map_open(j);
    gw_buf_reset(&e->tmp);
    if (is_type(c, "local_shell_call")) {
        gw_jgen_kv_lit(j, "name", "local_shell");
        gw_jgen_t *g = gw_jgen_new(&e->tmp);
        gw_jgen_value(g, gw_json_get(c, "action"));
        gw_jgen_free(g);
        gw_jgen_kv_str(j, "arguments", gw_buf_str(&e->tmp));
    } else if (is_type(c, "custom_tool_call")) {
        gw_jgen_kv_str(j, "name",
                       ad_tools_upstream_name(e->a, map, call_namespace(c), gw_json_get_str(c, "name")));
        gw_jgen_t *g = gw_jgen_new(&e->tmp);
        gw_jgen_map_open(g);
        gw_jgen_kv_str(g, "input", gw_json_get_str(c, "input"));
        gw_jgen_map_close(g);
        gw_jgen_free(g);
        gw_jgen_kv_str(j, "arguments", gw_buf_str(&e->tmp));
    } else {
        gw_jgen_kv_str(j, "name",
                       ad_tools_upstream_name(e->a, map, call_namespace(c), gw_json_get_str(c, "name")));
        gw_str_t args = gw_json_get_str(c, "arguments");
        gw_jgen_kv_str(j, "arguments", args.len ? args : GW_STR_LIT("{}"));
    }
    gw_jgen_map_close(j);
    gw_jgen_map_close(j);
}

/* Items that neither break a run of calls nor become messages of their own. */
static bool skipped(const gw_json_t *it)
{
    return is_type(it, "reasoning") || ad_tools_is_hosted_item(gw_json_get_str(it, "type"));
}

/* The `tool_calls` array for the run of call items starting at *it; advances *it to its last
 * item. Reasoning inside the run goes to this same assistant message. */
static void put_tool_calls(struct enc *e, const gw_json_t **it)
{
    gw_jgen_lit(e->j, "tool_calls");
    gw_jgen_array_open(e->j);
    for (const gw_json_t *c = *it; c; c = c->next) {
        if (is_type(c, "reasoning")) {
            take_reasoning(e, c);
            continue;
        }
        if (skipped(c))
            continue;
        if (!is_call(c))
            break;
        put_call(e, c);
        *it = c;
    }
    gw_jgen_array_close(e->j);
}

/* The next item that is not skipped. */
static const gw_json_t *next_kept(const gw_json_t *it)
{
    while (it && skipped(it))
        it = it->next;
    return it;
}

static void put_tool_output(struct enc *e, const gw_json_t *it)
{
    gw_str_t call_id = gw_json_get_str(it, "call_id");
    if (!call_id.len)
        call_id = gw_json_get_str(it, "id"); /* local_shell_call_output */
    gw_jgen_map_open(e->j);
    gw_jgen_kv_lit(e->j, "role", "tool");
    gw_jgen_kv_str(e->j, "tool_call_id", call_id);
    gw_buf_reset(&e->tmp);
    gw_request_content_text(gw_json_get(it, "output"), &e->tmp);
    gw_jgen_kv_str(e->j, "content", gw_buf_str(&e->tmp));
    gw_jgen_map_close(e->j);
}

static const char *role_name(gw_str_t role, const gw_endpoint_cfg_t *ep)
{
    if (gw_str_eq(role, "developer"))
        return ep->developer_role ? "developer" : "system";
    if (gw_str_eq(role, "assistant"))
        return "assistant";
    if (gw_str_eq(role, "system"))
        return "system";
    return "user";
}

static void put_item(struct enc *e, const gw_json_t **itp)
{
    gw_jgen_t *j = e->j;
    const gw_json_t *it = *itp;
    if (it == e->last_user)
        e->after_last_user = true;
    if (is_type(it, "reasoning")) {
        take_reasoning(e, it);
        return;
    }
    if (skipped(it))
        return;
    if (is_system(it)) {
        gw_buf_reset(&e->tmp);
        gw_request_content_text(gw_json_get(it, "content"), &e->tmp);
        add_system(e, role_name(gw_json_get_str(it, "role"), e->ep), gw_buf_str(&e->tmp));
        return;
    }
    flush_system(e);
    if (is_call(it)) {
        gw_jgen_map_open(j);
        gw_jgen_kv_lit(j, "role", "assistant");
        gw_jgen_lit(j, "content");
        gw_jgen_null(j);
        put_tool_calls(e, itp);
        put_reasoning(e);
        gw_jgen_map_close(j);
    } else if (is_output(it)) {
        put_tool_output(e, it);
    } else {
        gw_str_t role = gw_json_get_str(it, "role");
        bool assistant = gw_str_eq(role, "assistant");
        if (!assistant)
            gw_buf_reset(&e->reasoning); /* reasoning not followed by an assistant turn is dropped */
        gw_jgen_map_open(j);
        gw_jgen_kv_cstr(j, "role", role_name(role, e->ep));
        put_content(j, gw_json_get(it, "content"), &e->tmp);
        /* An assistant text directly followed by calls becomes one message (§7.1). */
        const gw_json_t *next = next_kept(it->next);
        if (assistant && next && is_call(next)) {
            for (const gw_json_t *x = it->next; x != next; x = x->next)
                if (is_type(x, "reasoning"))
                    take_reasoning(e, x);
            *itp = next;
            put_tool_calls(e, itp);
        }
        if (assistant)
            put_reasoning(e);
        gw_jgen_map_close(j);
    }
}

static void put_messages(struct enc *e)
{
    const gw_request_t *r = e->r;
    gw_jgen_lit(e->j, "messages");
    gw_jgen_array_open(e->j);
    if (r->instructions)
        add_system(e, e->ep->developer_role ? "developer" : "system", r->instructions->str);
    if (r->input->type == GW_JSON_STRING) {
        flush_system(e);
        gw_jgen_map_open(e->j);
        gw_jgen_kv_lit(e->j, "role", "user");
        gw_jgen_kv_str(e->j, "content", r->input->str);
        gw_jgen_map_close(e->j);
    } else {
        for (const gw_json_t *it = r->input->child; it; it = it->next)
            if (gw_str_eq(gw_json_get_str(it, "role"), "user"))
                e->last_user = it;
        for (const gw_json_t *it = r->input->child; it; it = it->next)
            put_item(e, &it);
    }
    flush_system(e);
    gw_jgen_array_close(e->j);
}

static void put_tool_choice(struct enc *e)
{
    const gw_json_t *tc = e->r->tool_choice;
    const ad_tools_t *map = &e->r->tool_map;
    if (!tc || (e->r->tools && !map->n_upstream))
        return; /* no tool left upstream: a choice among them means nothing there */
    gw_jgen_t *j = e->j;
    if (tc->type == GW_JSON_STRING) {
        gw_jgen_lit(j, "tool_choice");
        gw_jgen_str(j, tc->str);
        return;
    }
    gw_str_t type = gw_json_get_str(tc, "type"), name = gw_json_get_str(tc, "name");
    const ad_tool_t *t = NULL;
    if (gw_str_eq(type, "local_shell")) {
        t = ad_tools_by_upstream(map, GW_STR_LIT("local_shell"));
    } else {
        t = ad_tools_find(map, gw_json_get_str(tc, "namespace"), name);
        for (size_t i = 0; !t && i < map->n; i++)
            if (map->v[i].kind != AD_TOOL_HOSTED && map->v[i].name.len == name.len &&
                memcmp(map->v[i].name.base, name.base, name.len) == 0)
                t = &map->v[i];
    }
    if (!t)
        return; /* a hosted choice: refused before dispatch (gw_request_apply_endpoint) */
    gw_jgen_lit(j, "tool_choice");
    gw_jgen_map_open(j);
    gw_jgen_kv_lit(j, "type", "function");
    gw_jgen_lit(j, "function");
    gw_jgen_map_open(j);
    gw_jgen_kv_str(j, "name", t->upstream);
    gw_jgen_map_close(j);
    gw_jgen_map_close(j);
}

static void put_response_format(gw_jgen_t *j, const gw_json_t *format)
{
    gw_str_t type = gw_json_get_str(format, "type");
    if (gw_str_eq(type, "json_object")) {
        gw_jgen_lit(j, "response_format");
        gw_jgen_map_open(j);
        gw_jgen_kv_lit(j, "type", "json_object");
        gw_jgen_map_close(j);
    } else if (gw_str_eq(type, "json_schema")) {
        gw_jgen_lit(j, "response_format");
        gw_jgen_map_open(j);
        gw_jgen_kv_lit(j, "type", "json_schema");
        gw_jgen_lit(j, "json_schema");
        gw_jgen_map_open(j);
        static const char *const keys[] = {"name", "schema", "strict", "description", NULL};
        for (const char *const *k = keys; *k; k++) {
            const gw_json_t *v = gw_json_get(format, *k);
            if (!gw_json_is_nullish(v))
                gw_jgen_kv_value(j, *k, v);
        }
        gw_jgen_map_close(j);
        gw_jgen_map_close(j);
    }
}

int ad__cc_encode_request(const gw_request_t *r, const gw_endpoint_cfg_t *ep, bool databricks_route,
                          gw_buf_t *out, gw_error_t *err)
{
    (void)databricks_route;
    (void)err;
    struct enc e = {.r = r, .ep = ep, .a = gw_arena_new()};
    gw_buf_init(&e.tmp);
    gw_buf_init(&e.sys);
    gw_buf_init(&e.reasoning);
    gw_jgen_t *j = e.j = gw_jgen_new(out);
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "model", ep->model);
    /* Always stream upstream, with usage; non-streaming clients get the aggregate (§6.1). */
    gw_jgen_lit(j, "stream");
    gw_jgen_bool(j, true);
    gw_jgen_lit(j, "stream_options");
    gw_jgen_map_open(j);
    gw_jgen_lit(j, "include_usage");
    gw_jgen_bool(j, true);
    gw_jgen_map_close(j);
    put_messages(&e);
    if (r->tool_map.n_upstream) {
        gw_jgen_lit(j, "tools");
        ad_tools_put_upstream(j, &r->tool_map, &e.tmp);
        if (r->parallel_tool_calls)
            gw_jgen_kv_value(j, "parallel_tool_calls", r->parallel_tool_calls);
    }
    put_tool_choice(&e);
    put_num_param(j, "temperature", r->temperature, ep->temperature);
    put_num_param(j, "top_p", r->top_p, ep->top_p);
    put_num_param(j, ep->max_tokens_field, r->max_output_tokens, ep->max_output_tokens);
    if (r->text)
        put_response_format(j, gw_json_get(r->text, "format"));
    gw_str_t effort = gw_json_get_str(r->reasoning, "effort");
    if (effort.base)
        gw_jgen_kv_str(j, "reasoning_effort", effort);
    if (r->user)
        gw_jgen_kv_value(j, "user", r->user);
    gw_jgen_map_close(j);
    gw_jgen_free(j);
    gw_buf_dispose(&e.tmp);
    gw_buf_dispose(&e.sys);
    gw_buf_dispose(&e.reasoning);
    gw_arena_free(e.a);
    return 0;
}
