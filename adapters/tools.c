/* Responses tools ↔ ChatCompletions functions (adapters/tools.h, PROTOCOL.md §2.2). */
#include "adapters/tools.h"

#include <stdio.h>
#include <string.h>

static bool in_list(gw_str_t s, const char *const *list)
{
    for (; *list; list++)
        if (gw_str_eq(s, *list))
            return true;
    return false;
}

bool ad_tools_is_hosted_type(gw_str_t type)
{
    /* Dated snapshots (web_search_preview_2025_03_11, ...) are the same tools. */
    static const char *const prefixes[] = {"web_search",
                                           "file_search",
                                           "code_interpreter",
                                           "image_generation",
                                           "computer_use",
                                           "computer",
                                           "mcp",
                                           "tool_search",
                                           NULL};
    for (const char *const *p = prefixes; *p; p++)
        if (gw_str_has_prefix(type, *p))
            return true;
    return false;
}

bool ad_tools_is_hosted_item(gw_str_t type)
{
    static const char *const items[] = {"web_search_call",
                                        "file_search_call",
                                        "code_interpreter_call",
                                        "image_generation_call",
                                        "computer_call",
                                        "computer_call_output",
                                        "mcp_call",
                                        "mcp_list_tools",
                                        "mcp_approval_request",
                                        "mcp_approval_response",
                                        "tool_search_call",
                                        "tool_search_output",
                                        NULL};
    return in_list(type, items);
}

/* ---- the table ---- */

static uint32_t fnv1a32(gw_str_t a, gw_str_t b)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < a.len; i++)
        h = (h ^ (unsigned char)a.base[i]) * 16777619u;
    h = (h ^ 0u) * 16777619u;
    for (size_t i = 0; i < b.len; i++)
        h = (h ^ (unsigned char)b.base[i]) * 16777619u;
    return h;
}

static char name_byte(char c)
{
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    return ok ? c : '_';
}

gw_str_t ad_tools_mangle(gw_arena_t *a, gw_str_t ns, gw_str_t name)
{
    size_t n = ns.len + 2 + name.len;
    char *out = gw_arena_alloc(a, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < ns.len; i++)
        out[k++] = name_byte(ns.base[i]);
    out[k++] = '_';
    out[k++] = '_';
    for (size_t i = 0; i < name.len; i++)
        out[k++] = name_byte(name.base[i]);
    if (k > 64) {
        snprintf(out + 55, 10, "_%08x", (unsigned)fnv1a32(ns, name));
        k = 64;
    }
    out[k] = '\0';
    return gw_str_n(out, k);
}

static bool str_same(gw_str_t a, gw_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static void add(gw_arena_t *a, ad_tools_t *t, size_t cap, const gw_json_t *def, const gw_json_t *nsdef)
{
    if (t->n == cap)
        return;
    (void)a;
    ad_tool_t *e = &t->v[t->n++];
    memset(e, 0, sizeof(*e));
    e->def = def;
    e->nsdef = nsdef;
    e->type = gw_json_get_str(def, "type");
    e->name = gw_json_get_str(def, "name");
    e->ns = nsdef ? gw_json_get_str(nsdef, "name") : GW_STR_NULL;
    if (gw_str_eq(e->type, "custom")) {
        e->kind = AD_TOOL_CUSTOM;
    } else if (gw_str_eq(e->type, "local_shell")) {
        e->kind = AD_TOOL_LOCAL_SHELL;
        e->name = GW_STR_LIT("local_shell");
    } else if (gw_str_eq(e->type, "function")) {
        e->kind = AD_TOOL_FUNCTION;
    } else {
        e->kind = AD_TOOL_HOSTED;
        e->name = e->type;
    }
    e->upstream = e->kind == AD_TOOL_HOSTED ? GW_STR_LIT("") : e->name;
}

void ad_tools_build(gw_arena_t *a, const gw_json_t *tools, ad_tools_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!gw_json_is(tools, GW_JSON_ARRAY))
        return;
    size_t cap = 0;
    for (const gw_json_t *t = tools->child; t; t = t->next) {
        const gw_json_t *inner = gw_json_get(t, "tools");
        cap += gw_str_eq(gw_json_get_str(t, "type"), "namespace") && gw_json_is(inner, GW_JSON_ARRAY)
                   ? inner->len
                   : 1;
    }
    out->v = gw_arena_calloc(a, sizeof(*out->v) * (cap ? cap : 1));
    for (const gw_json_t *t = tools->child; t; t = t->next) {
        if (gw_str_eq(gw_json_get_str(t, "type"), "namespace")) {
            const gw_json_t *inner = gw_json_get(t, "tools");
            for (const gw_json_t *x = inner ? inner->child : NULL; x; x = x->next)
                add(a, out, cap, x, t);
        } else {
            add(a, out, cap, t, NULL);
        }
    }
    /* Namespaced tools keep their inner name only when it is unique in the request. Requests
     * carry tens of tools (validation caps them), so the pairwise check is cheap. */
    for (size_t i = 0; i < out->n; i++) {
        ad_tool_t *e = &out->v[i];
        if (e->kind != AD_TOOL_HOSTED)
            out->n_upstream++;
        if (!e->ns.base || e->kind == AD_TOOL_HOSTED)
            continue;
        bool unique = true;
        for (size_t k = 0; k < out->n && unique; k++)
            if (k != i && out->v[k].kind != AD_TOOL_HOSTED && str_same(out->v[k].name, e->name))
                unique = false;
        if (!unique)
            e->upstream = ad_tools_mangle(a, e->ns, e->name);
    }
}

const ad_tool_t *ad_tools_by_upstream(const ad_tools_t *t, gw_str_t upstream)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (t->v[i].kind != AD_TOOL_HOSTED && str_same(t->v[i].upstream, upstream))
            return &t->v[i];
    return NULL;
}

const ad_tool_t *ad_tools_find(const ad_tools_t *t, gw_str_t ns, gw_str_t name)
{
    for (size_t i = 0; t && i < t->n; i++) {
        const ad_tool_t *e = &t->v[i];
        if (e->kind != AD_TOOL_HOSTED && str_same(e->name, name) &&
            (ns.base ? e->ns.base && str_same(e->ns, ns) : !e->ns.base))
            return e;
    }
    return NULL;
}

gw_str_t ad_tools_upstream_name(gw_arena_t *a, const ad_tools_t *t, gw_str_t ns, gw_str_t name)
{
    const ad_tool_t *e = ad_tools_find(t, ns, name);
    if (e)
        return e->upstream;
    return ns.len ? ad_tools_mangle(a, ns, name) : name;
}

/* The exec action of local_shell as function parameters (openai-node LocalShellCall.Action). */
static const char local_shell_params[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"command\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":\"The command and its "
    "arguments.\"},"
    "\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":"
    "\"Environment variables to set.\"},"
    "\"timeout_ms\":{\"type\":\"integer\",\"description\":\"Timeout in milliseconds.\"},"
    "\"user\":{\"type\":\"string\",\"description\":\"User to run the command as.\"},"
    "\"working_directory\":{\"type\":\"string\",\"description\":\"Working directory.\"}},"
    "\"required\":[\"command\"]}";

static const char custom_params[] = "{\"type\":\"object\",\"properties\":{\"input\":{\"type\":\"string\"}},"
                                    "\"required\":[\"input\"],\"additionalProperties\":false}";

/* A custom tool's description tells the model what the `input` string must look like. */
static void custom_description(const ad_tool_t *e, gw_buf_t *tmp)
{
    gw_buf_reset(tmp);
    gw_buf_append_str(tmp, gw_json_get_str(e->def, "description"));
    const gw_json_t *f = gw_json_get(e->def, "format");
    gw_str_t def = gw_json_get_str(f, "definition");
    if (tmp->len)
        gw_buf_append_cstr(tmp, "\n\n");
    gw_buf_append_cstr(tmp,
                       "Call this function with one argument, `input`: a string holding the tool's raw input "
                       "(not JSON).");
    if (gw_str_eq(gw_json_get_str(f, "type"), "grammar") && def.len) {
        gw_str_t syntax = gw_json_get_str(f, "syntax");
        gw_buf_appendf(tmp, " The input must match this %.*s grammar:\n", (int)syntax.len,
                       syntax.base ? syntax.base : "");
        gw_buf_append_str(tmp, def);
    }
}

void ad_tools_put_upstream(gw_jgen_t *j, const ad_tools_t *t, gw_buf_t *tmp)
{
    gw_jgen_array_open(j);
    for (size_t i = 0; i < t->n; i++) {
        const ad_tool_t *e = &t->v[i];
        if (e->kind == AD_TOOL_HOSTED)
            continue;
        gw_jgen_map_open(j);
        gw_jgen_kv_lit(j, "type", "function");
        gw_jgen_lit(j, "function");
        gw_jgen_map_open(j);
        gw_jgen_kv_str(j, "name", e->upstream);
        if (e->kind == AD_TOOL_FUNCTION) {
            static const char *const keys[] = {"description", "parameters", "strict", NULL};
            for (const char *const *k = keys; *k; k++) {
                const gw_json_t *v = gw_json_get(e->def, *k);
                if (!gw_json_is_nullish(v))
                    gw_jgen_kv_value(j, *k, v);
            }
        } else if (e->kind == AD_TOOL_CUSTOM) {
            custom_description(e, tmp);
            gw_jgen_kv_str(j, "description", gw_buf_str(tmp));
            gw_jgen_lit(j, "parameters");
            gw_jgen_raw(j, GW_STR_LIT(custom_params));
        } else {
            gw_jgen_kv_cstr(j, "description", "Run a command on the user's machine and get its output.");
            gw_jgen_lit(j, "parameters");
            gw_jgen_raw(j, GW_STR_LIT(local_shell_params));
        }
        gw_jgen_map_close(j);
        gw_jgen_map_close(j);
    }
    gw_jgen_array_close(j);
}

/* ---- incremental input decoding ---- */

enum { DEC_PREFIX = 0, DEC_STRING, DEC_AFTER, DEC_RAW, DEC_HOLD };

static const char prefix_tokens[] = "{\"input\":\""; /* whitespace allowed between tokens */

void ad_input_dec_init(ad_input_dec_t *d)
{
    memset(d, 0, sizeof(*d));
    gw_buf_init(&d->raw);
}

void ad_input_dec_dispose(ad_input_dec_t *d)
{
    gw_buf_dispose(&d->raw);
}

static const char replacement[] = "\xEF\xBF\xBD";

static size_t u8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
}

/* Append bytes, keeping a UTF-8 sequence cut at the end in d->u8 for the next fragment.
 * Malformed bytes pass through: the renderer's JSON quoting repairs them to U+FFFD. */
static void put_bytes(ad_input_dec_t *d, const char *p, size_t n, gw_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (d->n_u8) {
            if ((c & 0xC0) == 0x80) {
                d->u8[d->n_u8++] = (char)c;
                if (d->n_u8 == u8_len((unsigned char)d->u8[0])) {
                    gw_buf_append(out, d->u8, d->n_u8);
                    d->n_u8 = 0;
                }
                continue;
            }
            gw_buf_append(out, replacement, 3); /* the sequence was cut short */
            d->n_u8 = 0;
        }
        if (u8_len(c) > 1) {
            d->u8[d->n_u8++] = (char)c;
            continue;
        }
        gw_buf_append(out, p + i, 1);
    }
}

static void put_cp(ad_input_dec_t *d, uint32_t cp, gw_buf_t *out)
{
    char b[4];
    size_t n;
    if (d->high) {
        d->high = 0;
        gw_buf_append(out, replacement, 3); /* a high surrogate without its low half */
    }
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    gw_buf_append(out, b, n);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A complete escape sequence in d->esc (`\x` or `\uXXXX`). */
static void put_escape(ad_input_dec_t *d, gw_buf_t *out)
{
    char e = d->esc[1];
    d->n_esc = 0;
    if (e == 'u') {
        uint32_t cu = 0;
        for (int i = 2; i < 6; i++) {
            int h = hexval(d->esc[i]);
            if (h < 0) {
                put_cp(d, 0xFFFD, out);
                return;
            }
            cu = cu << 4 | (uint32_t)h;
        }
        if (cu >= 0xD800 && cu <= 0xDBFF) {
            if (d->high)
                gw_buf_append(out, replacement, 3); /* the earlier high half stays alone */
            d->high = cu;
        } else if (cu >= 0xDC00 && cu <= 0xDFFF) {
            if (d->high) {
                uint32_t cp = 0x10000u + ((d->high - 0xD800u) << 10) + (cu - 0xDC00u);
                d->high = 0;
                put_cp(d, cp, out);
            } else {
                put_cp(d, 0xFFFD, out);
            }
        } else {
            put_cp(d, cu, out);
        }
        return;
    }
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = memchr(from, e, sizeof(from) - 1);
    put_cp(d, k ? (uint32_t)(unsigned char)to[k - from] : (uint32_t)(unsigned char)e, out);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Inside the `input` string: decode until its closing quote. Returns bytes consumed. */
static size_t feed_string(ad_input_dec_t *d, const char *p, size_t n, gw_buf_t *out)
{
    size_t i = 0;
    while (i < n) {
        if (d->n_esc) {
            d->esc[d->n_esc++] = p[i++];
            if (d->n_esc == 2 && d->esc[1] != 'u')
                put_escape(d, out);
            else if (d->n_esc == 6)
                put_escape(d, out);
            continue;
        }
        size_t run = i;
        while (run < n && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            if (d->high) {
                d->high = 0;
                gw_buf_append(out, replacement, 3);
            }
            put_bytes(d, p + i, run - i, out);
            i = run;
            continue;
        }
        if (p[i] == '\\') {
            d->esc[d->n_esc++] = '\\';
            i++;
            continue;
        }
        /* closing quote */
        i++;
        if (d->high) {
            d->high = 0;
            gw_buf_append(out, replacement, 3);
        }
        if (d->n_u8) {
            d->n_u8 = 0;
            gw_buf_append(out, replacement, 3);
        }
        d->mode = DEC_AFTER;
        break;
    }
    return i;
}

void ad_input_dec_feed(ad_input_dec_t *d, gw_str_t frag, gw_buf_t *out)
{
    if (!frag.len)
        return;
    gw_buf_append_str(&d->raw, frag);
    const char *p = frag.base;
    size_t n = frag.len, i = 0;
    while (i < n) {
        switch (d->mode) {
        case DEC_PREFIX: {
            char c = p[i];
            if (is_ws(c) && (d->matched < 2 || d->matched > 7)) {
                i++; /* whitespace between tokens, never inside "input" */
                continue;
            }
            if (c == prefix_tokens[d->matched]) {
                i++;
                if (++d->matched == sizeof(prefix_tokens) - 1)
                    d->mode = DEC_STRING;
                continue;
            }
            if (d->matched == 0) {
                /* Not an object at all: the arguments are the input itself. */
                d->mode = DEC_RAW;
                put_bytes(d, d->raw.base, d->raw.len, out);
                return;
            }
            d->mode = DEC_HOLD; /* an object of another shape: decided at the end */
            return;
        }
        case DEC_STRING:
            i += feed_string(d, p + i, n - i, out);
            continue;
        case DEC_RAW:
            put_bytes(d, p + i, n - i, out);
            return;
        default: /* DEC_AFTER, DEC_HOLD: only raw is kept */
            return;
        }
    }
}

void ad_input_dec_finish(ad_input_dec_t *d, gw_buf_t *out)
{
    if (d->mode == DEC_PREFIX || d->mode == DEC_HOLD) {
        gw_arena_t *a = gw_arena_new();
        gw_json_t *v = NULL;
        gw_str_t in = GW_STR_NULL;
        if (d->raw.len && gw_json_parse(a, d->raw.base, d->raw.len, &v, NULL) == 0)
            in = gw_json_get_str(v, "input");
        if (in.base)
            gw_buf_append_str(out, in);
        else if (d->raw.len)
            gw_buf_append_str(out, gw_buf_str(&d->raw));
        gw_arena_free(a);
        d->mode = DEC_AFTER;
        return;
    }
    /* Cut off inside the string: each unfinished piece becomes one U+FFFD. */
    if (d->high)
        gw_buf_append(out, replacement, 3);
    if (d->n_esc || d->n_u8)
        gw_buf_append(out, replacement, 3);
    d->n_esc = d->n_u8 = 0;
    d->high = 0;
    d->mode = DEC_AFTER;
}
