/* The `store` block of gw_config (issue 12): which backend keeps stored responses and
 * conversations, and their limits (sqlite: path; postgres: dsn, else $DATABASE_URL, as the
 * table sink). Kept out of config.c (one hook there); validation messages use
 * config.c's "config: <path>: <what>" form. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

static int bad(char *err, size_t errlen, const char *key, const char *what)
{
    snprintf(err, errlen, "config: store%s%s: %s", key ? "." : "", key ? key : "", what);
    return -1;
}

static int get_str(gw_arena_t *a, const gw_json_t *o, const char *key, const char **out, char *err, size_t errlen)
{
    const gw_json_t *x = gw_json_get(o, key);
    if (!x)
        return 0;
    if (x->type != GW_JSON_STRING || !x->str.len || memchr(x->str.base, '\0', x->str.len))
        return bad(err, errlen, key, "must be a non-empty string");
    *out = gw_arena_strndup(a, x->str.base, x->str.len);
    return 0;
}

static int get_num(const gw_json_t *o, const char *key, int64_t min, int64_t max, int64_t *out, char *err,
                   size_t errlen)
{
    const gw_json_t *x = gw_json_get(o, key);
    if (!x)
        return 0;
    int64_t v;
    if (gw_json_int64(x, &v) < 0 || v < min || v > max) {
        char what[96];
        snprintf(what, sizeof(what), "must be an integer between %lld and %lld", (long long)min, (long long)max);
        return bad(err, errlen, key, what);
    }
    *out = v;
    return 0;
}

int gw__config_parse_store(gw_arena_t *a, const gw_json_t *root, gw_store_cfg_t *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"backend",   "path",      "dsn",                "default",
                                       "write_timeout_ms", "ttl_days", "max_response_bytes", "test_ttl_seconds",
                                       "test_purge_interval_ms", NULL};
    memset(out, 0, sizeof(*out));
    const gw_json_t *o = gw_json_get(root, "store");
    if (!o)
        return 0;
    if (o->type != GW_JSON_OBJECT)
        return bad(err, errlen, NULL, "must be an object");
    for (const gw_json_t *m = o->child; m; m = m->next) {
        bool known = false;
        for (const char *const *k = keys; *k && !known; k++)
            known = gw_str_eq(m->key, *k);
        if (!known) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(m->key.len > 60 ? 60 : m->key.len), m->key.base);
            return bad(err, errlen, key, "unknown key");
        }
    }
    const char *backend = "sqlite";
    if (get_str(a, o, "backend", &backend, err, errlen) < 0)
        return -1;
    if (strcmp(backend, "sqlite") == 0)
        out->backend = GW_STORE_SQLITE;
    else if (strcmp(backend, "postgres") == 0)
        out->backend = GW_STORE_POSTGRES;
    else
        return bad(err, errlen, "backend", "must be \"sqlite\" or \"postgres\"");
    out->path = "./var/store.db";
    if (get_str(a, o, "path", &out->path, err, errlen) < 0 || get_str(a, o, "dsn", &out->dsn, err, errlen) < 0)
        return -1;
    if (out->backend == GW_STORE_POSTGRES && !out->dsn) {
        /* As tables.dsn: a deployment sets DATABASE_URL once for both. */
        const char *env = getenv("DATABASE_URL");
        out->dsn = env && *env ? gw_arena_strndup(a, env, strlen(env)) : NULL;
        if (!out->dsn)
            return bad(err, errlen, "backend",
                       "\"postgres\" needs store.dsn or the DATABASE_URL environment variable");
    }
    const gw_json_t *d = gw_json_get(o, "default");
    if (d && d->type != GW_JSON_BOOL)
        return bad(err, errlen, "default", "must be true or false");
    out->store_by_default = d ? d->boolean : true;
    int64_t wt = 2000, ttl = 30, maxb = 16 << 20, tts = 0, pim = 60000;
    if (get_num(o, "write_timeout_ms", 1, 600000, &wt, err, errlen) < 0 ||
        get_num(o, "ttl_days", 1, 36500, &ttl, err, errlen) < 0 ||
        get_num(o, "max_response_bytes", 1024, (int64_t)1 << 30, &maxb, err, errlen) < 0 ||
        get_num(o, "test_ttl_seconds", 1, 86400, &tts, err, errlen) < 0 ||
        get_num(o, "test_purge_interval_ms", 10, 3600000, &pim, err, errlen) < 0)
        return -1;
    out->write_timeout_ms = (int)wt;
    out->ttl_days = (int)ttl;
    out->max_response_bytes = (size_t)maxb;
    out->ttl_seconds = (int)tts;
    out->purge_interval_ms = (int)pim;
    return 0;
}
