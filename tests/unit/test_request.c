/* gw_request_parse validation (PROTOCOL.md §2, §2.1, §8b) and the ChatCompletions upstream
 * request built from it by ad_chat_completions.encode_request (§6.1, §7.1), parsed back and
 * checked key by key. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/json.h"
#include "gateway/request.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

/* Whether the bytes of b (not NUL-terminated) contain needle. */
static bool buf_has(const gw_buf_t *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; b->base && i + n <= b->len; i++)
        if (memcmp(b->base + i, needle, n) == 0)
            return true;
    return false;
}

static const gw_json_t *jget(const gw_json_t *o, const char *key)
{
    const gw_json_t *v = gw_json_get(o, key);
    cr_assert_not_null(v, "missing key '%s'", key);
    return v;
}

static const char *js(const gw_json_t *o, const char *key)
{
    const gw_json_t *v = jget(o, key);
    cr_assert_eq(v->type, GW_JSON_STRING, "'%s' is not a string", key);
    return v->str.base;
}

static double jd(const gw_json_t *o, const char *key)
{
    double d;
    cr_assert_eq(gw_json_double(jget(o, key), &d), 0, "'%s' is not a number", key);
    return d;
}

static const gw_json_t *at(const gw_json_t *arr, size_t i)
{
    cr_assert_not_null(arr);
    cr_assert_eq(arr->type, GW_JSON_ARRAY);
    const gw_json_t *v = gw_json_at(arr, i);
    cr_assert_not_null(v, "no element %zu (array has %zu)", i, arr->len);
    return v;
}

/* Exact number text (byte-exact passthrough, integral values without a fraction). */
static void check_number_text(const gw_json_t *o, const char *key, const char *text)
{
    const gw_json_t *v = jget(o, key);
    cr_assert_eq(v->type, GW_JSON_NUMBER, "'%s' is not a number", key);
    cr_assert_eq(v->str.len, strlen(text), "'%s' is %.*s, want %s", key, (int)v->str.len, v->str.base, text);
    cr_assert_eq(memcmp(v->str.base, text, v->str.len), 0, "'%s' is %.*s, want %s", key, (int)v->str.len,
                 v->str.base, text);
}

/* Semantic JSON equality: objects compare as key sets (order-free), arrays in order, numbers by
 * value. On mismatch, `where` names the first differing path. */
static bool json_equal(const gw_json_t *a, const gw_json_t *b, char *where, size_t n)
{
    if (!a || !b || a->type != b->type)
        return false;
    switch (a->type) {
    case GW_JSON_NULL:
        return true;
    case GW_JSON_BOOL:
        return a->boolean == b->boolean;
    case GW_JSON_NUMBER: {
        double x, y;
        return gw_json_double(a, &x) == 0 && gw_json_double(b, &y) == 0 && x == y;
    }
    case GW_JSON_STRING:
        return a->str.len == b->str.len && memcmp(a->str.base, b->str.base, a->str.len) == 0;
    case GW_JSON_ARRAY: {
        if (a->len != b->len)
            return false;
        size_t i = 0;
        for (const gw_json_t *x = a->child, *y = b->child; x; x = x->next, y = y->next, i++) {
            size_t used = strlen(where);
            snprintf(where + used, n - used, "[%zu]", i);
            if (!json_equal(x, y, where, n))
                return false;
            where[used] = '\0';
        }
        return true;
    }
    case GW_JSON_OBJECT: {
        if (a->len != b->len) {
            size_t used = strlen(where);
            snprintf(where + used, n - used, " (%zu vs %zu keys)", a->len, b->len);
            return false;
        }
        for (const gw_json_t *x = a->child; x; x = x->next) {
            size_t used = strlen(where);
            snprintf(where + used, n - used, ".%.*s", (int)x->key.len, x->key.base);
            const gw_json_t *y = NULL;
            for (const gw_json_t *c = b->child; c; c = c->next)
                if (c->key.len == x->key.len && memcmp(c->key.base, x->key.base, x->key.len) == 0)
                    y = c;
            if (!json_equal(x, y, where, n))
                return false;
            where[used] = '\0';
        }
        return true;
    }
    }
    return false;
}

static const gw_json_t *parse_json(gw_arena_t *a, const char *s)
{
    gw_json_t *v = NULL;
    const char *perr = NULL;
    cr_assert_eq(gw_json_parse(a, s, strlen(s), &v, &perr), 0, "bad test JSON: %s", perr);
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* gw_request_parse: rejections                                                               */

typedef struct {
    const char *what;
    const char *body;
    bool databricks;
    gw_err_kind_t kind;
    const char *param;   /** NULL: no param */
    const char *message; /** substring the message must contain */
} reject_t;

static void check_rejections(const reject_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const reject_t *c = &cases[i];
        gw_arena_t *a = gw_arena_new();
        gw_request_t r;
        gw_error_t err = {0};
        int rc = gw_request_parse(a, gw_str(c->body), c->databricks, &r, &err);
        cr_assert_eq(rc, -1, "%s: accepted %s", c->what, c->body);
        cr_assert_eq(err.kind, c->kind, "%s: kind %d, want %d (%s)", c->what, err.kind, c->kind,
                     gw_err_code(c->kind));
        if (c->param) {
            cr_assert_not_null(err.param, "%s: no param, want %s", c->what, c->param);
            cr_assert_str_eq(err.param, c->param, "%s: param", c->what);
        } else {
            cr_assert_null(err.param, "%s: param %s, want none", c->what, err.param);
        }
        cr_assert_not_null(err.message, "%s: no message", c->what);
        cr_assert_not_null(strstr(err.message, c->message), "%s: message \"%s\" lacks \"%s\"", c->what,
                           err.message, c->message);
        gw_arena_free(a);
    }
}

#define M "\"model\":\"assistant-v1\","

Test(request, rejects_bad_bodies, .timeout = 10)
{
    static const reject_t cases[] = {
        {"truncated JSON", "{\"model\":", false, GW_ERR_INVALID_JSON, NULL, "not valid JSON"},
        {"empty body", "", false, GW_ERR_INVALID_JSON, NULL, "not valid JSON"},
        {"trailing garbage", "{\"model\":\"m\",\"input\":\"hi\"} x", false, GW_ERR_INVALID_JSON, NULL,
         "JSON"},
        {"array body", "[1,2]", false, GW_ERR_INVALID_JSON, NULL, "JSON object"},
        {"string body", "\"hi\"", false, GW_ERR_INVALID_JSON, NULL, "JSON object"},
        {"invalid UTF-8", "{" M "\"input\":\"caf\xe9\"}", false, GW_ERR_INVALID_JSON, NULL, "UTF-8"},
        {"overlong UTF-8", "{" M "\"input\":\"\xc0\xaf\"}", false, GW_ERR_INVALID_JSON, NULL, "UTF-8"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(request, rejects_top_level_fields, .timeout = 10)
{
    static const reject_t cases[] = {
        {"model missing (OpenAI route)", "{\"input\":\"hi\"}", false, GW_ERR_INVALID_VALUE, "model", "model"},
        {"model null (OpenAI route)", "{\"model\":null,\"input\":\"hi\"}", false, GW_ERR_INVALID_VALUE,
         "model", "model"},
        {"model number", "{\"model\":7,\"input\":\"hi\"}", false, GW_ERR_INVALID_JSON, "model", "model"},
        {"model empty string", "{\"model\":\"\",\"input\":\"hi\"}", false, GW_ERR_INVALID_VALUE, "model",
         "empty"},
        {"model number (Databricks)", "{\"model\":7,\"input\":\"hi\"}", true, GW_ERR_INVALID_JSON, "model",
         "model"},
        {"stream string", "{" M "\"input\":\"hi\",\"stream\":\"yes\"}", false, GW_ERR_INVALID_JSON, "stream",
         "stream"},
        {"previous_response_id number", "{" M "\"input\":\"hi\",\"previous_response_id\":1}", false,
         GW_ERR_INVALID_JSON, "previous_response_id", "previous_response_id"},
        {"conversation number", "{" M "\"input\":\"hi\",\"conversation\":7}", false, GW_ERR_INVALID_JSON,
         "conversation", "conversation"},
        {"store string", "{" M "\"input\":\"hi\",\"store\":\"yes\"}", false, GW_ERR_INVALID_JSON, "store",
         "store"},
        {"background true", "{" M "\"input\":\"hi\",\"background\":true}", false, GW_ERR_UNSUPPORTED,
         "background", "background"},
        {"prompt", "{" M "\"input\":\"hi\",\"prompt\":{\"id\":\"pmpt_1\"}}", false, GW_ERR_UNSUPPORTED,
         "prompt", "prompt"},
        {"input missing", "{" M "\"stream\":true}", false, GW_ERR_INVALID_VALUE, "input", "input"},
        {"input null", "{" M "\"input\":null}", false, GW_ERR_INVALID_VALUE, "input", "input"},
        {"input empty list", "{" M "\"input\":[]}", false, GW_ERR_INVALID_VALUE, "input", "empty"},
        {"input number", "{" M "\"input\":42}", false, GW_ERR_INVALID_JSON, "input", "input"},
        {"input object", "{" M "\"input\":{\"role\":\"user\"}}", false, GW_ERR_INVALID_JSON, "input",
         "input"},
        {"instructions number", "{" M "\"input\":\"hi\",\"instructions\":5}", false, GW_ERR_INVALID_JSON,
         "instructions", "instructions"},
        {"user number", "{" M "\"input\":\"hi\",\"user\":7}", false, GW_ERR_INVALID_JSON, "user", "user"},
        {"parallel_tool_calls string", "{" M "\"input\":\"hi\",\"parallel_tool_calls\":\"yes\"}", false,
         GW_ERR_INVALID_JSON, "parallel_tool_calls", "parallel_tool_calls"},
        {"metadata number value", "{" M "\"input\":\"hi\",\"metadata\":{\"n\":1}}", false,
         GW_ERR_INVALID_VALUE, "metadata", "metadata"},
        {"metadata nested object", "{" M "\"input\":\"hi\",\"metadata\":{\"a\":\"x\",\"n\":{}}}", false,
         GW_ERR_INVALID_VALUE, "metadata", "metadata"},
        {"metadata string", "{" M "\"input\":\"hi\",\"metadata\":\"x\"}", false, GW_ERR_INVALID_JSON,
         "metadata", "metadata"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(request, rejects_out_of_range_numbers, .timeout = 10)
{
    static const reject_t cases[] = {
        {"temperature string", "{" M "\"input\":\"hi\",\"temperature\":\"hot\"}", false, GW_ERR_INVALID_JSON,
         "temperature", "temperature"},
        {"temperature > 2", "{" M "\"input\":\"hi\",\"temperature\":2.5}", false, GW_ERR_INVALID_VALUE,
         "temperature", "temperature"},
        {"temperature < 0", "{" M "\"input\":\"hi\",\"temperature\":-0.1}", false, GW_ERR_INVALID_VALUE,
         "temperature", "temperature"},
        {"top_p > 1", "{" M "\"input\":\"hi\",\"top_p\":1.5}", false, GW_ERR_INVALID_VALUE, "top_p", "top_p"},
        {"top_p < 0", "{" M "\"input\":\"hi\",\"top_p\":-1}", false, GW_ERR_INVALID_VALUE, "top_p", "top_p"},
        {"top_p bool", "{" M "\"input\":\"hi\",\"top_p\":true}", false, GW_ERR_INVALID_JSON, "top_p",
         "top_p"},
        {"max_output_tokens 0", "{" M "\"input\":\"hi\",\"max_output_tokens\":0}", false,
         GW_ERR_INVALID_VALUE, "max_output_tokens", "max_output_tokens"},
        {"max_output_tokens negative", "{" M "\"input\":\"hi\",\"max_output_tokens\":-5}", false,
         GW_ERR_INVALID_VALUE, "max_output_tokens", "max_output_tokens"},
        {"max_output_tokens fractional", "{" M "\"input\":\"hi\",\"max_output_tokens\":10.5}", false,
         GW_ERR_INVALID_VALUE, "max_output_tokens", "integer"},
        {"max_output_tokens string", "{" M "\"input\":\"hi\",\"max_output_tokens\":\"10\"}", false,
         GW_ERR_INVALID_JSON, "max_output_tokens", "max_output_tokens"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(request, rejects_tools_and_tool_choice, .timeout = 10)
{
    static const reject_t cases[] = {
        {"tools object", "{" M "\"input\":\"hi\",\"tools\":{}}", false, GW_ERR_INVALID_JSON, "tools",
         "tools"},
        {"tool not an object", "{" M "\"input\":\"hi\",\"tools\":[1]}", false, GW_ERR_INVALID_JSON,
         "tools[0]", "tools[0]"},
        {"unknown tool type", "{" M "\"input\":\"hi\",\"tools\":[{\"type\":\"teleport\"}]}", false,
         GW_ERR_UNSUPPORTED, "tools[0]", "teleport"},
        {"second tool of unknown type",
         "{" M
         "\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"},{\"type\":\"shell\"}]}",
         false, GW_ERR_UNSUPPORTED, "tools[1]", "tools[1]"},
        {"function tool without name",
         "{" M "\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"},{\"type\":\"function\"}]}",
         false, GW_ERR_INVALID_VALUE, "tools[1]", "name"},
        {"tool_choice unknown string", "{" M "\"input\":\"hi\",\"tool_choice\":\"sometimes\"}", false,
         GW_ERR_INVALID_VALUE, "tool_choice", "tool_choice"},
        {"tool_choice allowed_tools", "{" M "\"input\":\"hi\",\"tool_choice\":{\"type\":\"allowed_tools\"}}",
         false, GW_ERR_UNSUPPORTED, "tool_choice", "tool_choice"},
        {"tool_choice function without name",
         "{" M "\"input\":\"hi\",\"tool_choice\":{\"type\":\"function\"}}", false, GW_ERR_UNSUPPORTED,
         "tool_choice", "tool_choice"},
        {"tool_choice unknown object type", "{" M "\"input\":\"hi\",\"tool_choice\":{\"type\":\"teleport\"}}",
         false, GW_ERR_UNSUPPORTED, "tool_choice", "tool_choice"},
        {"tool_choice naming no tool", "{" M "\"input\":\"hi\",\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"}}",
         false, GW_ERR_INVALID_VALUE, "tool_choice", "not in tools"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(request, rejects_text_and_reasoning, .timeout = 10)
{
    static const reject_t cases[] = {
        {"text string", "{" M "\"input\":\"hi\",\"text\":\"json\"}", false, GW_ERR_INVALID_JSON, "text",
         "text"},
        {"json_schema without schema",
         "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"a\"}}}", false,
         GW_ERR_INVALID_VALUE, "text.format", "schema"},
        {"json_schema without name",
         "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"schema\":{}}}}", false,
         GW_ERR_INVALID_VALUE, "text.format", "name"},
        {"json_schema with array schema",
         "{" M
         "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"a\",\"schema\":[]}}}",
         false, GW_ERR_INVALID_VALUE, "text.format", "schema"},
        {"unknown format type", "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"yaml\"}}}", false,
         GW_ERR_INVALID_VALUE, "text.format.type", "json_schema"},
        {"reasoning string", "{" M "\"input\":\"hi\",\"reasoning\":\"high\"}", false, GW_ERR_INVALID_JSON,
         "reasoning", "reasoning"},
        {"reasoning effort number", "{" M "\"input\":\"hi\",\"reasoning\":{\"effort\":1}}", false,
         GW_ERR_INVALID_JSON, "reasoning.effort", "effort"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

#define U      "{\"role\":\"user\",\"content\":\"hi\"},"
#define FC(id) "{\"type\":\"function_call\",\"call_id\":\"" id "\",\"name\":\"f\",\"arguments\":\"{}\"}"

Test(request, rejects_input_items, .timeout = 10)
{
    static const reject_t cases[] = {
        {"item not an object", "{" M "\"input\":[\"hi\"]}", false, GW_ERR_INVALID_JSON, "input[0]",
         "input[0]"},
        {"type not a string", "{" M "\"input\":[{\"type\":5,\"role\":\"user\",\"content\":\"x\"}]}", false,
         GW_ERR_INVALID_JSON, "input[0]", "type"},
        {"message without role", "{" M "\"input\":[{\"content\":\"hi\"}]}", false, GW_ERR_INVALID_VALUE,
         "input[0]", "role"},
        {"typed message without role", "{" M "\"input\":[{\"type\":\"message\",\"content\":\"hi\"}]}", false,
         GW_ERR_INVALID_VALUE, "input[0]", "role"},
        {"unknown role", "{" M "\"input\":[" U "{\"role\":\"wizard\",\"content\":\"hi\"}]}", false,
         GW_ERR_INVALID_VALUE, "input[1]", "wizard"},
        {"tool role message", "{" M "\"input\":[{\"type\":\"message\",\"role\":\"tool\",\"content\":\"x\"}]}",
         false, GW_ERR_INVALID_VALUE, "input[0]", "tool"},
        {"message without content", "{" M "\"input\":[{\"role\":\"user\"}]}", false, GW_ERR_INVALID_JSON,
         "input[0].content", "content"},
        {"content number", "{" M "\"input\":[{\"role\":\"user\",\"content\":5}]}", false, GW_ERR_INVALID_JSON,
         "input[0].content", "content"},
        {"function_call without call_id",
         "{" M "\"input\":[" U "{\"type\":\"function_call\",\"name\":\"f\"}]}", false, GW_ERR_INVALID_VALUE,
         "input[1]", "call_id"},
        {"function_call without name", "{" M "\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\"}]}",
         false, GW_ERR_INVALID_VALUE, "input[0]", "name"},
        {"function_call empty name",
         "{" M "\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"\"}]}", false,
         GW_ERR_INVALID_VALUE, "input[0]", "name"},
        {"function_call object arguments",
         "{" M "\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":{}}]}",
         false, GW_ERR_INVALID_JSON, "input[0]", "arguments"},
        {"function_call_output without call_id",
         "{" M "\"input\":[" FC("c1") ",{\"type\":\"function_call_output\",\"output\":\"x\"}]}", false,
         GW_ERR_INVALID_VALUE, "input[1]", "call_id"},
        {"dangling call_id",
         "{" M "\"input\":[" FC("c1") ",{\"type\":\"function_call_output\",\"call_id\":\"call_nope\","
                                      "\"output\":\"x\"}]}",
         false, GW_ERR_INVALID_VALUE, "input[1]", "call_nope"},
        {"output before its call",
         "{" M "\"input\":[" U
         "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"x\"}," FC("c1") "]}",
         false, GW_ERR_INVALID_VALUE, "input[1]", "c1"},
        {"function_call_output number output",
         "{" M
         "\"input\":[" FC("c1") ",{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":5}]}",
         false, GW_ERR_INVALID_JSON, "input[1]", "output"},
        {"item_reference without id", "{" M "\"input\":[" U "{\"type\":\"item_reference\"}]}", false,
         GW_ERR_INVALID_VALUE, "input[1]", "id"},
        {"call item of a tool agate does not offer",
         "{" M "\"input\":[" U "{\"type\":\"shell_call\",\"id\":\"sh_1\",\"status\":\"completed\"}]}",
         false, GW_ERR_UNSUPPORTED, "input[1]", "shell_call"},
        {"unknown MCP item", "{" M "\"input\":[" U "{\"type\":\"mcp_teleport\",\"id\":\"l1\"}]}", false,
         GW_ERR_UNSUPPORTED, "input[1]", "mcp_teleport"},
        {"unknown item type", "{" M "\"input\":[" U "{\"type\":\"teleport\",\"content\":\"hi\"}]}", false,
         GW_ERR_INVALID_VALUE, "input[1]", "teleport"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Stateful fields are read here and resolved by gateway/recall (issue 12); a call output may
 * answer a call that only the store's items hold. */
Test(request, stateful_fields_are_read_for_the_store, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    gw_request_t r;
    gw_error_t err = {0};
    const char *body = "{" M "\"previous_response_id\":\"resp_1\",\"store\":false,\"input\":["
                       "{\"type\":\"item_reference\",\"id\":\"fc_1\"},"
                       "{\"type\":\"function_call_output\",\"call_id\":\"c9\",\"output\":\"x\"}]}";
    cr_assert_eq(gw_request_parse(a, gw_str(body), false, &r, &err), 0, "%s", err.message);
    cr_assert(gw_str_eq(r.previous_response_id, "resp_1"));
    cr_assert_eq(r.n_item_refs, 1);
    cr_assert(r.store && !r.store->boolean);
    /* Once merged, input is checked in full: a call output no call precedes is refused. */
    gw_json_t *merged;
    const char *in = "[{\"type\":\"function_call_output\",\"call_id\":\"c9\",\"output\":\"x\"}]";
    cr_assert_eq(gw_json_parse(a, in, strlen(in), &merged, NULL), 0);
    cr_assert_eq(gw_request_check_input(a, &err, merged, true), -1);
    cr_assert_not_null(strstr(err.message, "c9"), "%s", err.message);
    gw_arena_free(a);
}

Test(request, rejects_content_parts, .timeout = 10)
{
    static const reject_t cases[] = {
        {"part without type", "{" M "\"input\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}", false,
         GW_ERR_INVALID_VALUE, "input[0].content[0]", "type"},
        {"input_text without text",
         "{" M "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]}", false,
         GW_ERR_INVALID_VALUE, "input[0].content[0]", "text"},
        {"output_text with number text",
         "{" M "\"input\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":1}]}]}",
         false, GW_ERR_INVALID_VALUE, "input[0].content[0]", "text"},
        {"refusal without refusal",
         "{" M "\"input\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\"}]}]}", false,
         GW_ERR_INVALID_VALUE, "input[0].content[0]", "refusal"},
        {"input_image with only file_id",
         "{" M "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"x\"},"
         "{\"type\":\"input_image\",\"file_id\":\"file_1\"}]}]}",
         false, GW_ERR_UNSUPPORTED, "input[0].content[1]", "file_id"},
        {"input_file",
         "{" M "\"input\":[" U "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"x\"},"
         "{\"type\":\"input_file\",\"file_id\":\"f\"}]}]}",
         false, GW_ERR_UNSUPPORTED, "input[1].content[1]", "input_file"},
        {"input_audio",
         "{" M "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]}",
         false, GW_ERR_UNSUPPORTED, "input[0].content[0]", "input_audio"},
        {"unknown part type", "{" M "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"hologram\"}]}]}",
         false, GW_ERR_INVALID_VALUE, "input[0].content[0]", "hologram"},
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ------------------------------------------------------------------------------------------ */
/* gw_request_parse: accepted requests                                                         */

/* PROTOCOL.md §2, the full example. */
static const char SPEC_REQUEST[] =
    "{\"model\":\"assistant-v1\",\"stream\":true,\"instructions\":\"You are terse.\","
    "\"input\":["
    "{\"role\":\"user\",\"content\":\"Weather in Paris and time in UTC?\"},"
    "{\"type\":\"function_call\",\"call_id\":\"call_a\",\"name\":\"get_weather\",\"arguments\":\"{"
    "\\\"city\\\":"
    "\\\"Paris\\\"}\"},"
    "{\"type\":\"function_call\",\"call_id\":\"call_b\",\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":"
    "\\\"UTC\\\"}"
    "\"},"
    "{\"type\":\"function_call_output\",\"call_id\":\"call_a\",\"output\":\"18C, cloudy\"},"
    "{\"type\":\"function_call_output\",\"call_id\":\"call_b\",\"output\":\"14:05\"}],"
    "\"tools\":["
    "{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"Current "
    "weather\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]},\"strict\":true},"
    "{\"type\":\"function\",\"name\":\"get_time\",\"parameters\":{\"type\":\"object\"}}],"
    "\"tool_choice\":\"auto\",\"parallel_tool_calls\":true,\"temperature\":0.2,\"top_p\":1,\"max_output_"
    "tokens\":512,"
    "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"answer\",\"schema\":{\"type\":\"object\"},"
    "\"strict\":"
    "true}},"
    "\"reasoning\":{\"effort\":\"low\"},\"metadata\":{\"ticket\":\"T-17\"},\"user\":\"u-7\"}";

Test(request, accepts_spec_example, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    gw_request_t r;
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(a, GW_STR_LIT(SPEC_REQUEST), false, &r, &err), 0, "%s", err.message);
    cr_assert(gw_str_eq(r.model, "assistant-v1"));
    cr_assert(r.stream);
    cr_assert_eq(r.input->type, GW_JSON_ARRAY);
    cr_assert_eq(r.input->len, 5);
    cr_assert(gw_str_eq(r.instructions->str, "You are terse."));
    cr_assert_eq(r.tools->len, 2);
    cr_assert(gw_str_eq(r.tool_choice->str, "auto"));
    cr_assert(r.parallel_tool_calls->boolean);
    cr_assert(gw_str_eq(r.temperature->str, "0.2"));
    cr_assert(gw_str_eq(r.top_p->str, "1"));
    cr_assert(gw_str_eq(r.max_output_tokens->str, "512"));
    cr_assert_str_eq(js(jget(r.text, "format"), "name"), "answer");
    cr_assert_str_eq(js(r.reasoning, "effort"), "low");
    cr_assert_str_eq(js(r.metadata, "ticket"), "T-17");
    cr_assert(gw_str_eq(r.user->str, "u-7"));
    cr_assert_eq(r.root->type, GW_JSON_OBJECT);
    cr_assert_null(r.custom_inputs);
    cr_assert_not(r.return_trace);
    gw_arena_free(a);
}

Test(request, accepts_databricks_route_extras, .timeout = 10)
{
    static const char body[] =
        "{\"input\":[{\"role\":\"user\",\"content\":\"Hello!\"}],\"stream\":true,\"custom_inputs\":{"
        "\"thread\":"
        "\"abc\"},\"context\":{\"conversation_id\":\"conv-42\",\"user_id\":\"u-7\"},\"databricks_options\":{"
        "\"return_trace\":true},\"client_request_id\":\"cr-1\",\"usage_context\":{\"team\":\"x\"}}";
    gw_arena_t *a = gw_arena_new();
    gw_request_t r;
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(a, GW_STR_LIT(body), true, &r, &err), 0, "%s", err.message);
    cr_assert_null(r.model.base, "no model on the Databricks route");
    cr_assert(r.stream);
    cr_assert_str_eq(js(r.custom_inputs, "thread"), "abc");
    cr_assert_str_eq(js(r.context, "conversation_id"), "conv-42");
    cr_assert(r.return_trace);
    cr_assert(gw_str_eq(r.client_request_id, "cr-1"));
    cr_assert_str_eq(js(r.usage_context, "team"), "x");
    /* The same body on the OpenAI route needs a model. */
    cr_assert_eq(gw_request_parse(a, GW_STR_LIT(body), false, &r, &err), -1);
    cr_assert_eq(err.kind, GW_ERR_INVALID_VALUE);
    cr_assert_str_eq(err.param, "model");
    gw_arena_free(a);
}

Test(request, accepts_what_client_frameworks_send, .timeout = 10)
{
    /* §8b: include:[], strict:true/null, $schema in parameters, "text":{}, no stream key, earlier
     * turns sent back verbatim (assistant output_text, reasoning, function_call with id/status,
     * function_call_output with status), user content as string, parts, or typed message. */
    static const char body[] =
        "{\"model\":\"assistant-v1\",\"include\":[],\"text\":{},\"tool_choice\":\"auto\","
        "\"truncation\":\"disabled\",\"service_tier\":\"auto\",\"store\":false,\"some_future_field\":{\"x\":"
        "1},"
        "\"tools\":["
        "{\"type\":\"function\",\"name\":\"a\",\"parameters\":{\"$schema\":\"http://json-schema.org/draft-07/"
        "schema#\","
        "\"type\":\"object\"},\"strict\":true},"
        "{\"type\":\"function\",\"name\":\"b\",\"parameters\":{\"type\":\"object\"},\"strict\":null}],"
        "\"input\":["
        "{\"role\":\"user\",\"content\":\"plain\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"parts\"}]},"
        "{\"type\":\"message\",\"role\":\"user\",\"content\":\"typed\"},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"...\"}]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"id\":\"msg_1\",\"status\":\"completed\",\"content\":["
        "{"
        "\"type\":\"output_text\",\"text\":\"Earlier\",\"annotations\":[]}]},"
        "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_a\",\"name\":\"a\",\"arguments\":\"{}"
        "\","
        "\"status\":\"completed\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_a\",\"output\":\"ok\",\"status\":"
        "\"completed\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_a\",\"output\":[{\"type\":\"input_text\","
        "\"text\":"
        "\"again\"}]},"
        "{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"developer\",\"content\":\"dev\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"look\"},{\"type\":\"input_"
        "image\","
        "\"image_url\":\"https://example.com/cat.png\",\"detail\":\"auto\"}]}]}";
    gw_arena_t *a = gw_arena_new();
    gw_request_t r;
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(a, GW_STR_LIT(body), false, &r, &err), 0, "%s", err.message);
    cr_assert_not(r.stream, "no stream key means false");
    cr_assert_eq(r.input->len, 11);
    cr_assert_eq(r.tools->len, 2);
    cr_assert_not_null(r.text);
    cr_assert_null(gw_json_get(r.text, "format"));
    gw_arena_free(a);
}

Test(request, accepts_nulls_and_boundaries, .timeout = 10)
{
    static const char *const bodies[] = {
        "{" M "\"input\":\"hi\",\"previous_response_id\":null,\"conversation\":null,\"prompt\":null,"
        "\"background\":false,\"stream\":null,\"instructions\":null,\"tools\":null,\"tool_choice\":null,"
        "\"parallel_tool_calls\":null,\"temperature\":null,\"top_p\":null,\"max_output_tokens\":null,"
        "\"text\":null,\"reasoning\":null,\"metadata\":null,\"user\":null}",
        "{" M "\"input\":\"hi\",\"temperature\":0,\"top_p\":0,\"max_output_tokens\":1}",
        "{" M "\"input\":\"hi\",\"temperature\":2,\"top_p\":1,\"max_output_tokens\":1000000}",
        "{" M "\"input\":\"hi\",\"temperature\":1.0e0,\"max_output_tokens\":5.0}",
        "{" M "\"input\":\"hi\",\"tool_choice\":\"none\"}",
        "{" M
        "\"input\":\"hi\",\"tool_choice\":\"required\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}",
        "{" M "\"input\":\"hi\",\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"},\"tools\":[{\"type\":"
        "\"function\",\"name\":\"f\"}]}",
        "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"text\"}}}",
        "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_object\"}},\"reasoning\":{}}",
        "{" M "\"input\":\"hi\",\"metadata\":{}}",
        "{" M "\"input\":\"\"}",
        "{" M "\"input\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        gw_arena_t *a = gw_arena_new();
        gw_request_t r;
        gw_error_t err = {0};
        cr_assert_eq(gw_request_parse(a, gw_str(bodies[i]), false, &r, &err), 0, "body %zu rejected: %s", i,
                     err.message);
        cr_assert_not_null(r.input);
        cr_assert(gw_str_eq(r.model, "assistant-v1"));
        gw_arena_free(a);
    }
}

Test(request, nullish_fields_are_null, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    gw_request_t r;
    gw_error_t err = {0};
    const char *body = "{" M "\"input\":\"hi\",\"tool_choice\":null,\"temperature\":null,\"top_p\":null,"
                       "\"max_output_tokens\":null}";
    cr_assert_eq(gw_request_parse(a, gw_str(body), false, &r, &err), 0, "%s", err.message);
    cr_assert_null(r.tool_choice);
    cr_assert_null(r.temperature);
    cr_assert_null(r.top_p);
    cr_assert_null(r.max_output_tokens);
    cr_assert_null(r.tools);
    cr_assert_null(r.instructions);
    gw_arena_free(a);
}

Test(request, content_text_joins_parts, .timeout = 10)
{
    gw_arena_t *a = gw_arena_new();
    gw_buf_t b;
    gw_buf_init(&b);
    gw_request_content_text(parse_json(a, "\"just a string\""), &b);
    cr_assert(gw_str_eq(gw_buf_str(&b), "just a string"));
    gw_buf_reset(&b);
    gw_request_content_text(parse_json(a, "[{\"type\":\"input_text\",\"text\":\"one\"},"
                                          "{\"type\":\"input_image\",\"image_url\":\"http://x\"},"
                                          "{\"type\":\"output_text\",\"text\":\"two\"},"
                                          "{\"type\":\"refusal\",\"refusal\":\"three\"}]"),
                            &b);
    cr_assert(gw_str_eq(gw_buf_str(&b), "one\ntwo\nthree"), "%.*s", (int)b.len, b.base);
    gw_buf_reset(&b);
    gw_request_content_text(parse_json(a, "42"), &b);
    cr_assert_eq(b.len, 0);
    gw_buf_dispose(&b);
    gw_arena_free(a);
}

/* ------------------------------------------------------------------------------------------ */
/* encode_request: Responses -> ChatCompletions                                               */

typedef struct {
    gw_arena_t *a;
    gw_request_t r;
    gw_buf_t out;
    const gw_json_t *j; /** the upstream body, parsed back */
} enc_t;

static gw_endpoint_cfg_t default_ep(void)
{
    return (gw_endpoint_cfg_t){
        .name = "assistant-v1",
        .adapter = GW_ADAPTER_CHAT_COMPLETIONS,
        .model = "qwen2.5-7b-instruct",
        .max_tokens_field = "max_tokens",
        .connect_timeout_ms = 5000,
        .first_event_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .total_timeout_ms = 297000,
        .sampling_rate = 1.0,
    };
}

static void encode_with(enc_t *e, const char *body, const gw_endpoint_cfg_t *ep, bool dbx)
{
    memset(e, 0, sizeof(*e));
    e->a = gw_arena_new();
    gw_buf_init(&e->out);
    gw_error_t err = {0};
    cr_assert_eq(gw_request_parse(e->a, gw_str(body), dbx, &e->r, &err), 0, "request rejected: %s",
                 err.message);
    cr_assert_eq(ad_chat_completions.encode_request(&e->r, ep, dbx, &e->out, &err), 0, "encode failed: %s",
                 err.message);
    gw_json_t *j = NULL;
    const char *perr = NULL;
    cr_assert_eq(gw_json_parse(e->a, e->out.base, e->out.len, &j, &perr), 0, "upstream body is not JSON: %s",
                 perr);
    cr_assert_eq(j->type, GW_JSON_OBJECT);
    e->j = j;
}

static void encode(enc_t *e, const char *body)
{
    gw_endpoint_cfg_t ep = default_ep();
    encode_with(e, body, &ep, false);
}

static void enc_free(enc_t *e)
{
    gw_buf_dispose(&e->out);
    gw_arena_free(e->a);
}

static const gw_json_t *msgs(const enc_t *e)
{
    const gw_json_t *m = jget(e->j, "messages");
    cr_assert_eq(m->type, GW_JSON_ARRAY);
    return m;
}

static void check_msg(const gw_json_t *m, const char *role, const char *content)
{
    cr_assert_str_eq(js(m, "role"), role);
    if (content)
        cr_assert_str_eq(js(m, "content"), content);
}

static void check_tool_call(const gw_json_t *tc, const char *id, const char *name, const char *args)
{
    cr_assert_str_eq(js(tc, "id"), id);
    cr_assert_str_eq(js(tc, "type"), "function");
    const gw_json_t *f = jget(tc, "function");
    cr_assert_str_eq(js(f, "name"), name);
    cr_assert_str_eq(js(f, "arguments"), args);
    cr_assert_eq(f->len, 2, "function holds only name and arguments");
}

Test(request, encode_matches_spec_example, .timeout = 10)
{
    /* PROTOCOL.md §6.1 is the upstream body for the §2 example. */
    static const char want[] =
        "{\"model\":\"qwen2.5-7b-instruct\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are terse.\"},"
        "{\"role\":\"user\",\"content\":\"Weather in Paris and time in UTC?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{"
        "\\\"city\\\":"
        "\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{"
        "\\\"tz\\\":"
        "\\\"UTC\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"18C, cloudy\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"14:05\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Current "
        "weather\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":["
        "\"city\"]},"
        "\"strict\":true}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"tool_choice\":\"auto\",\"parallel_tool_calls\":true,\"temperature\":0.2,\"top_p\":1,\"max_"
        "tokens\":512,"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"answer\",\"schema\":{"
        "\"type\":"
        "\"object\"},\"strict\":true}},"
        "\"reasoning_effort\":\"low\",\"user\":\"u-7\"}";
    enc_t e;
    encode(&e, SPEC_REQUEST);
    char where[512] = "$";
    cr_assert(json_equal(e.j, parse_json(e.a, want), where, sizeof(where)),
              "upstream body differs at %s:\n%.*s", where, (int)e.out.len, e.out.base);
    enc_free(&e);
}

Test(request, encode_instructions_first_and_string_input, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"instructions\":\"Be brief.\",\"input\":\"What is 2+2?\"}");
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 2);
    check_msg(at(m, 0), "system", "Be brief.");
    check_msg(at(m, 1), "user", "What is 2+2?");
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"only\"}");
    cr_assert_eq(msgs(&e)->len, 1, "no instructions, no system message");
    check_msg(at(msgs(&e), 0), "user", "only");
    enc_free(&e);
}

Test(request, encode_roles_and_developer_mapping, .timeout = 10)
{
    static const char body[] =
        "{" M "\"instructions\":\"I\",\"input\":["
        "{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"system\",\"content\":\"s\"},"
        "{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}";
    /* Default system_messages "merge": instructions and the run of system/developer messages
     * become one message, joined by a blank line (strict chat templates accept one). */
    enc_t e;
    encode(&e, body);
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 3);
    check_msg(at(m, 0), "system", "I\n\nd\n\ns");
    check_msg(at(m, 1), "user", "u");
    check_msg(at(m, 2), "assistant", "a");
    enc_free(&e);

    gw_endpoint_cfg_t ep = default_ep();
    ep.system_messages = GW_SYSMSG_KEEP;
    encode_with(&e, body, &ep, false);
    m = msgs(&e);
    cr_assert_eq(m->len, 5);
    check_msg(at(m, 0), "system", "I");
    check_msg(at(m, 1), "system", "d");
    check_msg(at(m, 2), "system", "s");
    check_msg(at(m, 3), "user", "u");
    check_msg(at(m, 4), "assistant", "a");
    enc_free(&e);

    ep.developer_role = true;
    encode_with(&e, body, &ep, false);
    m = msgs(&e);
    check_msg(at(m, 0), "developer", "I");
    check_msg(at(m, 1), "developer", "d");
    check_msg(at(m, 2), "system", "s");
    enc_free(&e);
}

Test(request, encode_joins_text_parts_with_newline, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":["
               "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"line one\"},"
               "{\"type\":\"input_text\",\"text\":\"line two\"}]},"
               "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":"
               "\"Earlier\","
               "\"annotations\":[]},{\"type\":\"refusal\",\"refusal\":\"but not that\"}]}]}");
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 2);
    check_msg(at(m, 0), "user", "line one\nline two");
    check_msg(at(m, 1), "assistant", "Earlier\nbut not that");
    enc_free(&e);
}

Test(request, encode_keeps_images_as_parts, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":[{\"type\":\"message\",\"role\":\"user\",\"content\":["
               "{\"type\":\"input_text\",\"text\":\"What is this?\"},"
               "{\"type\":\"input_image\",\"image_url\":\"https://example.com/cat.png\",\"detail\":\"auto\"},"
               "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,AAAA\"}]}]}");
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 1);
    cr_assert_str_eq(js(at(m, 0), "role"), "user");
    const gw_json_t *c = jget(at(m, 0), "content");
    cr_assert_eq(c->type, GW_JSON_ARRAY);
    cr_assert_eq(c->len, 3);
    cr_assert_str_eq(js(at(c, 0), "type"), "text");
    cr_assert_str_eq(js(at(c, 0), "text"), "What is this?");
    cr_assert_str_eq(js(at(c, 1), "type"), "image_url");
    const gw_json_t *iu = jget(at(c, 1), "image_url");
    cr_assert_str_eq(js(iu, "url"), "https://example.com/cat.png");
    cr_assert_str_eq(js(iu, "detail"), "auto");
    iu = jget(at(c, 2), "image_url");
    cr_assert_str_eq(js(iu, "url"), "data:image/png;base64,AAAA");
    cr_assert_null(gw_json_get(iu, "detail"), "detail only when given");
    enc_free(&e);
}

Test(request, encode_merges_consecutive_function_calls, .timeout = 10)
{
    enc_t e;
    encode(&e,
           "{" M "\"input\":[{\"role\":\"user\",\"content\":\"go\"},"
           "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f1\",\"arguments\":\"{\\\"a\\\":1}\"},"
           "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
           "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"f2\",\"arguments\":\"\"},"
           "{\"type\":\"function_call\",\"id\":\"fc_3\",\"call_id\":\"c3\",\"name\":\"f3\",\"status\":"
           "\"completed\"},"
           "{\"type\":\"reasoning\",\"id\":\"rs_2\",\"summary\":[]},"
           "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"two\"},"
           "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"one\"},"
           "{\"type\":\"function_call_output\",\"call_id\":\"c3\",\"output\":[{\"type\":\"input_text\","
           "\"text\":\"th\"},{\"type\":\"input_text\",\"text\":\"ree\"}]}]}");
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 5, "user, one assistant, three tool messages (got %zu)", m->len);
    check_msg(at(m, 0), "user", "go");
    const gw_json_t *as = at(m, 1);
    cr_assert_str_eq(js(as, "role"), "assistant");
    cr_assert_eq(jget(as, "content")->type, GW_JSON_NULL);
    const gw_json_t *tcs = jget(as, "tool_calls");
    cr_assert_eq(tcs->len, 3, "reasoning items neither appear nor break the run");
    check_tool_call(at(tcs, 0), "c1", "f1", "{\"a\":1}");
    check_tool_call(at(tcs, 1), "c2", "f2", "{}");
    check_tool_call(at(tcs, 2), "c3", "f3", "{}");
    /* Tool messages in input order. */
    check_msg(at(m, 2), "tool", "two");
    cr_assert_str_eq(js(at(m, 2), "tool_call_id"), "c2");
    check_msg(at(m, 3), "tool", "one");
    cr_assert_str_eq(js(at(m, 3), "tool_call_id"), "c1");
    check_msg(at(m, 4), "tool", "th\nree");
    cr_assert_str_eq(js(at(m, 4), "tool_call_id"), "c3");
    /* No reasoning text anywhere upstream. */
    cr_assert_not(buf_has(&e.out, "rs_1"));
    enc_free(&e);
}

Test(request, encode_merges_assistant_text_with_following_calls, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":[{\"role\":\"user\",\"content\":\"q\"},"
               "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":"
               "\"Checking.\"}]},"
               "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
               "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
               "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"g\",\"arguments\":\"{}\"},"
               "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r1\"},"
               "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"r2\"},"
               "{\"role\":\"assistant\",\"content\":\"Final.\"}]}");
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 5);
    check_msg(at(m, 0), "user", "q");
    check_msg(at(m, 1), "assistant", "Checking.");
    const gw_json_t *tcs = jget(at(m, 1), "tool_calls");
    cr_assert_eq(tcs->len, 2);
    check_tool_call(at(tcs, 0), "c1", "f", "{}");
    check_tool_call(at(tcs, 1), "c2", "g", "{}");
    check_msg(at(m, 2), "tool", "r1");
    check_msg(at(m, 3), "tool", "r2");
    check_msg(at(m, 4), "assistant", "Final.");
    cr_assert_null(gw_json_get(at(m, 4), "tool_calls"), "a plain assistant message has no tool_calls");
    enc_free(&e);
}

Test(request, encode_does_not_merge_across_user_turns, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":[{\"role\":\"user\",\"content\":\"first\"},"
               "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
               "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r1\"},"
               "{\"role\":\"user\",\"content\":\"second\"},"
               "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"f\",\"arguments\":\"{}\"},"
               "{\"role\":\"user\",\"content\":\"third\"},"
               "{\"type\":\"function_call\",\"call_id\":\"c3\",\"name\":\"f\",\"arguments\":\"{}\"},"
               "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"r2\"},"
               "{\"type\":\"function_call_output\",\"call_id\":\"c3\",\"output\":\"r3\"}]}");
    const gw_json_t *m = msgs(&e);
    cr_assert_eq(m->len, 9, "got %zu messages", m->len);
    check_msg(at(m, 0), "user", "first");
    cr_assert_eq(jget(at(m, 1), "tool_calls")->len, 1);
    check_tool_call(at(jget(at(m, 1), "tool_calls"), 0), "c1", "f", "{}");
    check_msg(at(m, 2), "tool", "r1");
    check_msg(at(m, 3), "user", "second");
    cr_assert_eq(jget(at(m, 4), "tool_calls")->len, 1);
    check_tool_call(at(jget(at(m, 4), "tool_calls"), 0), "c2", "f", "{}");
    check_msg(at(m, 5), "user", "third");
    cr_assert_eq(jget(at(m, 6), "tool_calls")->len, 1);
    check_tool_call(at(jget(at(m, 6), "tool_calls"), 0), "c3", "f", "{}");
    check_msg(at(m, 7), "tool", "r2");
    check_msg(at(m, 8), "tool", "r3");
    cr_assert_str_eq(js(at(m, 8), "tool_call_id"), "c3");
    enc_free(&e);
}

Test(request, encode_tools_nested_with_present_keys_only, .timeout = 10)
{
    enc_t e;
    encode(&e,
           "{" M "\"input\":\"hi\",\"tools\":["
           "{\"type\":\"function\",\"name\":\"full\",\"description\":\"d\",\"parameters\":{\"$schema\":\"s\","
           "\"type\":\"object\"},\"strict\":false},"
           "{\"type\":\"function\",\"name\":\"bare\"},"
           "{\"type\":\"function\",\"name\":\"nullstrict\",\"strict\":null,\"description\":null}]}");
    const gw_json_t *tools = jget(e.j, "tools");
    cr_assert_eq(tools->len, 3);
    const gw_json_t *t0 = at(tools, 0);
    cr_assert_eq(t0->len, 2, "a tool is {type, function}");
    cr_assert_str_eq(js(t0, "type"), "function");
    const gw_json_t *f0 = jget(t0, "function");
    cr_assert_eq(f0->len, 4);
    cr_assert_str_eq(js(f0, "name"), "full");
    cr_assert_str_eq(js(f0, "description"), "d");
    cr_assert_str_eq(js(jget(f0, "parameters"), "$schema"), "s");
    cr_assert_eq(jget(f0, "strict")->type, GW_JSON_BOOL);
    cr_assert_not(jget(f0, "strict")->boolean);
    const gw_json_t *f1 = jget(at(tools, 1), "function");
    cr_assert_eq(f1->len, 1, "only the keys present");
    cr_assert_str_eq(js(f1, "name"), "bare");
    const gw_json_t *f2 = jget(at(tools, 2), "function");
    cr_assert_eq(f2->len, 1, "null keys are left out");
    cr_assert_null(gw_json_get(f2, "strict"));
    cr_assert_null(gw_json_get(at(tools, 0), "name"), "name lives under function, not beside it");
    enc_free(&e);
}

Test(request, encode_tool_choice, .timeout = 10)
{
    static const char *const modes[] = {"auto", "none", "required"};
    for (size_t i = 0; i < 3; i++) {
        char body[256];
        snprintf(body, sizeof(body), "{" M "\"input\":\"hi\",\"tool_choice\":\"%s\"}", modes[i]);
        enc_t e;
        encode(&e, body);
        cr_assert_str_eq(js(e.j, "tool_choice"), modes[i]);
        enc_free(&e);
    }
    enc_t e;
    encode(&e, "{" M "\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\"}],"
               "\"tool_choice\":{\"type\":\"function\",\"name\":\"get_weather\"}}");
    const gw_json_t *tc = jget(e.j, "tool_choice");
    cr_assert_eq(tc->len, 2);
    cr_assert_str_eq(js(tc, "type"), "function");
    cr_assert_str_eq(js(jget(tc, "function"), "name"), "get_weather");
    cr_assert_null(gw_json_get(tc, "name"), "name is nested under function");
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\"}");
    cr_assert_null(gw_json_get(e.j, "tool_choice"));
    enc_free(&e);
}

Test(request, encode_parallel_tool_calls_only_with_tools, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":\"hi\",\"parallel_tool_calls\":false,"
               "\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}");
    cr_assert_eq(jget(e.j, "parallel_tool_calls")->type, GW_JSON_BOOL);
    cr_assert_not(jget(e.j, "parallel_tool_calls")->boolean);
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"parallel_tool_calls\":true}");
    cr_assert_null(gw_json_get(e.j, "parallel_tool_calls"), "no tools: OpenAI rejects parallel_tool_calls");
    cr_assert_null(gw_json_get(e.j, "tools"));
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"parallel_tool_calls\":true,\"tools\":[]}");
    cr_assert_null(gw_json_get(e.j, "parallel_tool_calls"), "empty tools: no parallel_tool_calls");
    cr_assert_null(gw_json_get(e.j, "tools"), "empty tools are not sent");
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}");
    cr_assert_null(gw_json_get(e.j, "parallel_tool_calls"), "only sent when the client set it");
    enc_free(&e);
}

Test(request, encode_response_format, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"answer\","
               "\"description\":\"An "
               "answer\",\"schema\":{\"type\":\"object\",\"properties\":{}},\"strict\":true}}}");
    const gw_json_t *rf = jget(e.j, "response_format");
    cr_assert_eq(rf->len, 2);
    cr_assert_str_eq(js(rf, "type"), "json_schema");
    const gw_json_t *s = jget(rf, "json_schema");
    cr_assert_eq(s->len, 4);
    cr_assert_str_eq(js(s, "name"), "answer");
    cr_assert_str_eq(js(s, "description"), "An answer");
    cr_assert_str_eq(js(jget(s, "schema"), "type"), "object");
    cr_assert(jget(s, "strict")->boolean);
    cr_assert_null(gw_json_get(rf, "schema"), "flat keys are nested under json_schema");
    cr_assert_null(gw_json_get(e.j, "text"), "text is not a ChatCompletions field");
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"a\","
               "\"schema\":{}}}}");
    s = jget(jget(e.j, "response_format"), "json_schema");
    cr_assert_eq(s->len, 2, "absent strict/description are not invented");
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_object\"}}}");
    rf = jget(e.j, "response_format");
    cr_assert_eq(rf->len, 1);
    cr_assert_str_eq(js(rf, "type"), "json_object");
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"text\"}}}");
    cr_assert_null(gw_json_get(e.j, "response_format"));
    enc_free(&e);

    encode(&e, "{" M "\"input\":\"hi\",\"text\":{}}");
    cr_assert_null(gw_json_get(e.j, "response_format"));
    enc_free(&e);
}

Test(request, encode_max_tokens_field_from_config, .timeout = 10)
{
    static const char body[] = "{" M "\"input\":\"hi\",\"max_output_tokens\":300}";
    enc_t e;
    encode(&e, body);
    check_number_text(e.j, "max_tokens", "300");
    cr_assert_null(gw_json_get(e.j, "max_completion_tokens"));
    cr_assert_null(gw_json_get(e.j, "max_output_tokens"));
    enc_free(&e);

    gw_endpoint_cfg_t ep = default_ep();
    ep.max_tokens_field = "max_completion_tokens";
    encode_with(&e, body, &ep, false);
    check_number_text(e.j, "max_completion_tokens", "300");
    cr_assert_null(gw_json_get(e.j, "max_tokens"));
    enc_free(&e);
}

Test(request, encode_params_defaults_and_overrides, .timeout = 10)
{
    gw_endpoint_cfg_t ep = default_ep();
    ep.temperature = (gw_opt_num_t){true, 0.3};
    ep.top_p = (gw_opt_num_t){true, 0.9};
    ep.max_output_tokens = (gw_opt_num_t){true, 256};
    enc_t e;
    encode_with(&e, "{" M "\"input\":\"hi\"}", &ep, false);
    cr_assert_float_eq(jd(e.j, "temperature"), 0.3, 1e-12);
    cr_assert_float_eq(jd(e.j, "top_p"), 0.9, 1e-12);
    /* An integer parameter stays an integer on the wire (OpenAI rejects 256.0). */
    check_number_text(e.j, "max_tokens", "256");
    enc_free(&e);

    encode_with(&e, "{" M "\"input\":\"hi\",\"temperature\":1.5,\"top_p\":0.25,\"max_output_tokens\":64}",
                &ep, false);
    check_number_text(e.j, "temperature", "1.5");
    check_number_text(e.j, "top_p", "0.25");
    check_number_text(e.j, "max_tokens", "64");
    enc_free(&e);

    /* A request null falls back to the default. */
    encode_with(&e, "{" M "\"input\":\"hi\",\"temperature\":null}", &ep, false);
    cr_assert_float_eq(jd(e.j, "temperature"), 0.3, 1e-12);
    enc_free(&e);

    /* No default, no request value: the key is absent. */
    encode(&e, "{" M "\"input\":\"hi\"}");
    cr_assert_null(gw_json_get(e.j, "temperature"));
    cr_assert_null(gw_json_get(e.j, "top_p"));
    cr_assert_null(gw_json_get(e.j, "max_tokens"));
    enc_free(&e);

    /* Number text passes through byte-exact. */
    encode(&e, "{" M "\"input\":\"hi\",\"temperature\":0.70}");
    check_number_text(e.j, "temperature", "0.70");
    enc_free(&e);
}

Test(request, encode_stream_usage_model_and_dropped_fields, .timeout = 10)
{
    static const char body[] =
        "{\"model\":\"client-facing-name\",\"stream\":false,\"input\":\"hi\",\"metadata\":{\"ticket\":\"T-"
        "1\"},"
        "\"store\":true,\"include\":[\"reasoning.encrypted_content\"],\"truncation\":\"auto\",\"user\":\"u-"
        "9\","
        "\"reasoning\":{\"effort\":\"high\",\"summary\":\"auto\"},\"custom_inputs\":{\"k\":\"v\"},"
        "\"context\":{\"user_id\":\"u\"},\"databricks_options\":{\"return_trace\":true}}";
    for (int dbx = 0; dbx < 2; dbx++) {
        gw_endpoint_cfg_t ep = default_ep();
        enc_t e;
        encode_with(&e, body, &ep, dbx != 0);
        /* Always stream upstream with usage, whatever the client asked (§6.1). */
        cr_assert_eq(jget(e.j, "stream")->type, GW_JSON_BOOL);
        cr_assert(jget(e.j, "stream")->boolean);
        const gw_json_t *so = jget(e.j, "stream_options");
        cr_assert(jget(so, "include_usage")->boolean);
        cr_assert_str_eq(js(e.j, "model"), "qwen2.5-7b-instruct", "the configured model, not the client's");
        cr_assert_str_eq(js(e.j, "user"), "u-9");
        cr_assert_str_eq(js(e.j, "reasoning_effort"), "high");
        static const char *const never[] = {"metadata",
                                            "store",
                                            "include",
                                            "truncation",
                                            "reasoning",
                                            "n",
                                            "logprobs",
                                            "custom_inputs",
                                            "context",
                                            "databricks_options",
                                            "previous_response_id",
                                            "input",
                                            "instructions",
                                            "text",
                                            "max_output_tokens"};
        for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
            cr_assert_null(gw_json_get(e.j, never[i]), "'%s' must not be sent upstream", never[i]);
        cr_assert_not(buf_has(&e.out, "T-1"), "metadata values never leave the gateway");
        enc_free(&e);
    }
}

Test(request, encode_reasoning_effort_only_when_given, .timeout = 10)
{
    enc_t e;
    encode(&e, "{" M "\"input\":\"hi\",\"reasoning\":{\"summary\":\"auto\"}}");
    cr_assert_null(gw_json_get(e.j, "reasoning_effort"));
    enc_free(&e);
    encode(&e, "{" M "\"input\":\"hi\",\"reasoning\":{\"effort\":\"minimal\"}}");
    cr_assert_str_eq(js(e.j, "reasoning_effort"), "minimal");
    enc_free(&e);
}

Test(request, encode_path, .timeout = 10)
{
    gw_endpoint_cfg_t ep = default_ep();
    cr_assert_str_eq(ad_chat_completions.path(&ep), "/chat/completions");
    cr_assert_str_eq(ad_chat_completions.name, "chat_completions");
    cr_assert_eq(ad_for(GW_ADAPTER_CHAT_COMPLETIONS), &ad_chat_completions);
}
