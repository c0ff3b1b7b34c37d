/* Validation helpers shared by the config parsers (config.c, config_auth.c, config_limits.c). */
#include "gateway/config_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void gw__cfg_fail(gw_cfg_v_t *v, const char *path, const char *fmt, ...)
{
    if (v->failed)
        return;
    v->failed = true;
    int n = snprintf(v->err, v->errlen, "config: %s: ", path);
    if (n < 0 || (size_t)n >= v->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

const char *gw__cfg_join(gw_cfg_v_t *v, const char *path, const char *key)
{
    size_t n = strlen(path) + strlen(key) + 2;
    char *p = gw_arena_alloc(v->a, n);
    snprintf(p, n, "%s%s%s", path, *path ? "." : "", key);
    return p;
}

const char *gw__cfg_index(gw_cfg_v_t *v, const char *path, size_t i)
{
    size_t n = strlen(path) + 24;
    char *p = gw_arena_alloc(v->a, n);
    snprintf(p, n, "%s[%zu]", path, i);
    return p;
}

/* Reject keys that are not in the allowed list, naming the first unknown one. */
void gw__cfg_check_keys(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *const *allowed)
{
    for (const gw_json_t *m = obj->child; m; m = m->next) {
        bool ok = false;
        for (const char *const *k = allowed; *k; k++)
            if (gw_str_eq(m->key, *k))
                ok = true;
        if (!ok) {
            char *key = gw_arena_strndup(v->a, m->key.base, m->key.len);
            gw__cfg_fail(v, gw__cfg_join(v, path, key), "unknown key");
            return;
        }
    }
}

const char *gw__cfg_string(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key,
                              bool required, const char *def)
{
    const gw_json_t *x = gw_json_get(obj, key);
    if (!x) {
        if (required)
            gw__cfg_fail(v, gw__cfg_join(v, path, key), "required key missing");
        return def;
    }
    if (x->type != GW_JSON_STRING) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must be a string");
        return def;
    }
    if (memchr(x->str.base, '\0', x->str.len)) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must not contain NUL");
        return def;
    }
    return gw_arena_strndup(v->a, x->str.base, x->str.len);
}

double gw__cfg_number(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, double def,
                         double min, double max, bool *present)
{
    const gw_json_t *x = gw_json_get(obj, key);
    if (present)
        *present = x != NULL;
    if (!x)
        return def;
    double d;
    if (gw_json_double(x, &d) < 0) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must be a number");
        return def;
    }
    if (d < min || d > max) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must be between %g and %g", min, max);
        return def;
    }
    return d;
}

int gw__cfg_int(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, int def, int min,
                   int max)
{
    double d = gw__cfg_number(v, obj, path, key, def, min, max, NULL);
    if (d != (double)(int)d)
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must be an integer");
    return (int)d;
}

/* Byte counts and similar: a number in range that is also integral. */
size_t gw__cfg_size(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, double def,
                       double min, double max)
{
    double d = gw__cfg_number(v, obj, path, key, def, min, max, NULL);
    if (d != (double)(uint64_t)d) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must be an integer");
        return (size_t)def;
    }
    return (size_t)d;
}

bool gw__cfg_bool(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, bool def)
{
    const gw_json_t *x = gw_json_get(obj, key);
    if (!x)
        return def;
    if (x->type != GW_JSON_BOOL) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), "must be true or false");
        return def;
    }
    return x->boolean;
}

const gw_json_t *gw__cfg_typed(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key,
                                  gw_json_type_t t, bool required)
{
    const gw_json_t *x = gw_json_get(obj, key);
    if (!x) {
        if (required)
            gw__cfg_fail(v, gw__cfg_join(v, path, key), "required key missing");
        return NULL;
    }
    if (x->type != t) {
        gw__cfg_fail(v, gw__cfg_join(v, path, key), t == GW_JSON_OBJECT ? "must be an object" : "must be an array");
        return NULL;
    }
    return x;
}

/* One of a fixed list of words; returns its index (def when absent). */
int gw__cfg_enum(gw_cfg_v_t *v, const gw_json_t *o, const char *path, const char *key,
                    const char *const *words, int def, const char *msg)
{
    const char *s = gw__cfg_string(v, o, path, key, false, words[def]);
    for (int i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    gw__cfg_fail(v, gw__cfg_join(v, path, key), "%s", msg);
    return def;
}

