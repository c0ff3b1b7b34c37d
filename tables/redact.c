#include "tables/redact.h"

#include <string.h>

const char *tb_redact_check(const char *path)
{
    if (!*path)
        return "must not be empty";
    if (path[0] == '.' || path[strlen(path) - 1] == '.' || strstr(path, ".."))
        return "has an empty segment";
    return NULL;
}

/* Does segment `seg` of `path` (0-based) match this key / array element? Segments are found by
 * walking the dots; paths are short, so no precomputation is needed. */
static bool seg_matches(const char *path, size_t seg, gw_str_t key, bool in_array)
{
    const char *p = path;
    for (size_t i = 0; i < seg; i++) {
        p = strchr(p, '.');
        if (!p)
            return false;
        p++;
    }
    const char *end = strchr(p, '.');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 1 && p[0] == '*')
        return true;
    return !in_array && key.len == len && memcmp(key.base, p, len) == 0;
}

static size_t segments(const char *path)
{
    size_t n = 1;
    for (const char *p = path; *p; p++)
        n += *p == '.';
    return n;
}

/* live[i]: path i still matches the ancestors of the current value (depth = matched segments). */
static size_t walk(gw_jgen_t *j, const gw_json_t *v, const char *const *paths, size_t n, const bool *live,
                   size_t depth)
{
    bool next[64];
    size_t hits = 0;
    if (v->type != GW_JSON_OBJECT && v->type != GW_JSON_ARRAY) {
        gw_jgen_value(j, v);
        return 0;
    }
    bool obj = v->type == GW_JSON_OBJECT;
    if (obj)
        gw_jgen_map_open(j);
    else
        gw_jgen_array_open(j);
    for (const gw_json_t *c = v->child; c; c = c->next) {
        if (obj)
            gw_jgen_str(j, c->key);
        bool cut = false, any = false;
        for (size_t i = 0; i < n; i++) {
            next[i] = live[i] && seg_matches(paths[i], depth, c->key, !obj);
            if (next[i] && segments(paths[i]) == depth + 1)
                cut = true;
            any = any || next[i];
        }
        if (cut) {
            gw_jgen_cstr(j, TB_REDACTED);
            hits++;
        } else if (any) {
            hits += walk(j, c, paths, n, next, depth + 1);
        } else {
            gw_jgen_value(j, c);
        }
    }
    if (obj)
        gw_jgen_map_close(j);
    else
        gw_jgen_array_close(j);
    return hits;
}

size_t tb_redact_json(const gw_json_t *v, const char *const *paths, size_t n, gw_buf_t *out)
{
    bool live[64];
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        live[i] = true;
    gw_jgen_t *j = gw_jgen_new(out);
    size_t hits = walk(j, v, paths, n, live, 0);
    gw_jgen_free(j);
    return hits;
}
