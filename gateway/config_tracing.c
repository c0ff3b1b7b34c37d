/* The `tracing` block of gw_config (OpenTelemetry export, gateway/trace.h). Kept apart from
 * config.c; the hook there hands over the block and the arena the config lives in. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gateway/config.h"
#include "gateway/json.h"

static int fail(char *err, size_t errlen, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, const char *key, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "config: tracing%s%s: ", key ? "." : "", key ? key : "");
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An integer in [min, max]: 0, or -1 with the message written. */
static int get_int(const gw_json_t *o, const char *key, int def, int min, int max, int *out, char *err, size_t errlen)
{
    const gw_json_t *x = gw_json_get(o, key);
    double d = def;
    if (x && gw_json_double(x, &d) < 0)
        return fail(err, errlen, key, "must be a number");
    if (d < min || d > max || d != (double)(int)d)
        return fail(err, errlen, key, "must be an integer between %d and %d", min, max);
    *out = (int)d;
    return 0;
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/* `headers`: an object of header name -> value, sent with every export. */
static int parse_headers(gw_arena_t *a, const gw_json_t *h, gw_tracing_cfg_t *t, char *err, size_t errlen)
{
    if (!h)
        return 0;
    if (h->type != GW_JSON_OBJECT)
        return fail(err, errlen, "headers", "must be an object of header name to string value");
    const char **lines = gw_arena_calloc(a, sizeof(*lines) * (h->len + 1));
    for (const gw_json_t *m = h->child; m; m = m->next) {
        char *name = gw_arena_strndup(a, m->key.base, m->key.len);
        bool ok = m->key.len > 0;
        for (size_t i = 0; i < m->key.len; i++)
            ok = ok && token_char(m->key.base[i]);
        if (!ok)
            return fail(err, errlen, "headers", "\"%s\" is not a valid header name", name);
        if (gw_str_ieq(m->key, "content-type") || gw_str_ieq(m->key, "content-length") || gw_str_ieq(m->key, "host"))
            return fail(err, errlen, "headers", "\"%s\" is set by agate", name);
        if (m->type != GW_JSON_STRING)
            return fail(err, errlen, "headers", "\"%s\" must be a string", name);
        for (size_t i = 0; i < m->str.len; i++)
            if (m->str.base[i] == '\r' || m->str.base[i] == '\n' || m->str.base[i] == '\0')
                return fail(err, errlen, "headers", "\"%s\" must not contain CR, LF or NUL", name);
        size_t n = m->key.len + 2 + m->str.len + 1;
        char *line = gw_arena_alloc(a, n);
        snprintf(line, n, "%s: %.*s", name, (int)m->str.len, m->str.base);
        lines[t->n_headers++] = line;
    }
    t->headers = lines;
    return 0;
}

int gw_config_tracing_parse(gw_arena_t *a, const gw_json_t *x, gw_tracing_cfg_t *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->service_name = "agate";
    t->sample_ratio = 1;
    t->batch_size = 512;
    t->max_queue = 2048;
    t->batch_timeout_ms = 1000;
    t->export_timeout_ms = 5000;
    if (!x)
        return 0;
    if (x->type != GW_JSON_OBJECT)
        return fail(err, errlen, NULL, "must be an object");
    static const char *const keys[] = {"endpoint",  "headers",          "service_name",      "sample_ratio",
                                       "batch_size", "max_queue", "batch_timeout_ms", "export_timeout_ms", NULL};
    for (const gw_json_t *m = x->child; m; m = m->next) {
        bool known = false;
        for (const char *const *k = keys; *k; k++)
            known = known || gw_str_eq(m->key, *k);
        if (!known)
            return fail(err, errlen, gw_arena_strndup(a, m->key.base, m->key.len), "unknown key");
    }
    gw_str_t ep = gw_json_get_str(x, "endpoint");
    if (!ep.base)
        return fail(err, errlen, "endpoint", "required string (an OTLP/HTTP traces URL such as http://127.0.0.1:4318/v1/traces)");
    if (!gw_str_has_prefix(ep, "http://") && !gw_str_has_prefix(ep, "https://"))
        return fail(err, errlen, "endpoint", "must start with http:// or https://");
    if (memchr(ep.base, '\0', ep.len) || memchr(ep.base, ' ', ep.len))
        return fail(err, errlen, "endpoint", "must be a URL without spaces or NUL");
    t->endpoint = gw_arena_strndup(a, ep.base, ep.len);
    const gw_json_t *sn = gw_json_get(x, "service_name");
    if (sn) {
        if (sn->type != GW_JSON_STRING || sn->str.len == 0 || sn->str.len > 255 || memchr(sn->str.base, '\0', sn->str.len))
            return fail(err, errlen, "service_name", "must be a non-empty string of at most 255 bytes");
        t->service_name = gw_arena_strndup(a, sn->str.base, sn->str.len);
    }
    const gw_json_t *sr = gw_json_get(x, "sample_ratio");
    if (sr && (gw_json_double(sr, &t->sample_ratio) < 0 || t->sample_ratio < 0 || t->sample_ratio > 1))
        return fail(err, errlen, "sample_ratio", "must be a number between 0 and 1");
    if (get_int(x, "max_queue", 2048, 1, 1000000, &t->max_queue, err, errlen) < 0 ||
        get_int(x, "batch_size", t->max_queue < 512 ? t->max_queue : 512, 1, t->max_queue, &t->batch_size, err, errlen) < 0 ||
        get_int(x, "batch_timeout_ms", 1000, 1, 600000, &t->batch_timeout_ms, err, errlen) < 0 ||
        get_int(x, "export_timeout_ms", 5000, 1, 600000, &t->export_timeout_ms, err, errlen) < 0)
        return -1;
    return parse_headers(a, gw_json_get(x, "headers"), t, err, errlen);
}
