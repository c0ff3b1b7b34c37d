/* The `auth` block and the endpoints' `allow` lists (issue 13); validation helpers in
 * config_util.c. Runtime behaviour: gateway/auth.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/config_int.h"
#include "gateway/keys.h"

const char **gw__cfg_names(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, size_t max,
                           size_t *n)
{
    *n = 0;
    const gw_json_t *x = gw__cfg_typed(v, obj, path, key, GW_JSON_ARRAY, false);
    if (!x || v->failed)
        return NULL;
    const char *p = gw__cfg_join(v, path, key);
    if (x->len > max) {
        gw__cfg_fail(v, p, "at most %zu names", max);
        return NULL;
    }
    const char **out = gw_arena_calloc(v->a, sizeof(*out) * (x->len ? x->len : 1));
    size_t i = 0;
    for (const gw_json_t *m = x->child; m; m = m->next, i++) {
        if (m->type != GW_JSON_STRING || !gw_keys_valid_name(m->str.base, m->str.len)) {
            gw__cfg_fail(v, gw__cfg_index(v, p, i), "must be a name (1..256 printable bytes, no quotes)");
            return NULL;
        }
        out[i] = gw_arena_strndup(v->a, m->str.base, m->str.len);
    }
    *n = x->len;
    return out;
}

void gw__cfg_parse_access(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e)
{
    const gw_json_t *al = gw__cfg_typed(v, o, path, "allow", GW_JSON_OBJECT, false);
    if (al) {
        static const char *const keys[] = {"requesters", "groups", NULL};
        const char *ap = gw__cfg_join(v, path, "allow");
        gw__cfg_check_keys(v, al, ap, keys);
        e->has_allow = true;
        e->allow_requesters = gw__cfg_names(v, al, ap, "requesters", 4096, &e->n_allow_requesters);
        e->allow_groups = gw__cfg_names(v, al, ap, "groups", 256, &e->n_allow_groups);
    }
    gw__cfg_parse_rate_limits(v, o, path, e);
}

/* "10.0.0.0/8", "127.0.0.1" (a /32), "::1", "fd00::/8". */
static bool parse_cidr(const char *s, gw_cidr_t *out)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, ip, out->addr) == 1)
        out->family = AF_INET6;
    else
        return false;
    int max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        size_t nd = strspn(slash + 1, "0123456789");
        if (nd == 0 || nd > 3 || slash[1 + nd] != '\0')
            return false;
        out->bits = atoi(slash + 1);
        if (out->bits > max)
            return false;
    }
    return true;
}

/* An HTTP field name (RFC 9110 §5.1: a token). */
static bool valid_header_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) && !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                                                  (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

void gw__cfg_parse_auth(gw_cfg_v_t *v, const gw_json_t *root, gw_config_t *c)
{
    gw_auth_cfg_t *ac = &c->auth;
    ac->keys_poll_ms = 1000;
    ac->metrics_requesters = 20;
    const gw_json_t *o = gw__cfg_typed(v, root, "", "auth", GW_JSON_OBJECT, false);
    if (o && !v->failed) {
        static const char *const keys[] = {"keys_file",       "keys_poll_ms",       "trusted_header",
                                           "trusted_groups_header", "trusted_proxies", "metrics_requesters",
                                           NULL};
        gw__cfg_check_keys(v, o, "auth", keys);
        ac->enabled = true;
        ac->keys_file = gw__cfg_string(v, o, "auth", "keys_file", false, NULL);
        ac->keys_poll_ms = gw__cfg_int(v, o, "auth", "keys_poll_ms", 1000, 10, 3600000);
        ac->trusted_header = gw__cfg_string(v, o, "auth", "trusted_header", false, NULL);
        ac->trusted_groups_header = gw__cfg_string(v, o, "auth", "trusted_groups_header", false, NULL);
        ac->metrics_requesters = gw__cfg_int(v, o, "auth", "metrics_requesters", 20, 0, 1000);
        if (ac->keys_file && !*ac->keys_file)
            gw__cfg_fail(v, "auth.keys_file", "must not be empty");
        if (ac->trusted_header && !valid_header_name(ac->trusted_header))
            gw__cfg_fail(v, "auth.trusted_header", "must be an HTTP header name");
        if (ac->trusted_groups_header && !valid_header_name(ac->trusted_groups_header))
            gw__cfg_fail(v, "auth.trusted_groups_header", "must be an HTTP header name");
        if (ac->trusted_groups_header && !ac->trusted_header)
            gw__cfg_fail(v, "auth.trusted_groups_header", "needs auth.trusted_header");
        const gw_json_t *tp = gw__cfg_typed(v, o, "auth", "trusted_proxies", GW_JSON_ARRAY, false);
        if (tp && !v->failed) {
            ac->n_trusted_proxies = tp->len;
            ac->trusted_proxies = gw_arena_calloc(v->a, sizeof(*ac->trusted_proxies) * (tp->len ? tp->len : 1));
            size_t i = 0;
            for (const gw_json_t *x = tp->child; x; x = x->next, i++) {
                char tmp[80];
                if (x->type != GW_JSON_STRING || x->str.len >= sizeof(tmp)) {
                    gw__cfg_fail(v, gw__cfg_index(v, "auth.trusted_proxies", i), "must be a CIDR string");
                    break;
                }
                memcpy(tmp, x->str.base, x->str.len);
                tmp[x->str.len] = '\0';
                if (!parse_cidr(tmp, &ac->trusted_proxies[i])) {
                    gw__cfg_fail(v, gw__cfg_index(v, "auth.trusted_proxies", i),
                                 "\"%s\" is not an address or address/prefix", tmp);
                    break;
                }
            }
        }
        if (!v->failed && ac->trusted_header && !ac->n_trusted_proxies)
            gw__cfg_fail(v, "auth.trusted_proxies", "required with auth.trusted_header (the proxies it is accepted from)");
        if (!v->failed && !ac->keys_file && !ac->trusted_header)
            gw__cfg_fail(v, "auth", "needs keys_file, trusted_header or both");
    }
    /* allow lists name requesters and groups, so they only make sense with auth on. */
    for (size_t i = 0; i < c->n_endpoints && !v->failed; i++)
        if (c->endpoints[i].has_allow && !ac->enabled)
            gw__cfg_fail(v, gw__cfg_join(v, gw__cfg_index(v, "endpoints", i), "allow"),
                         "needs the auth block (identities to allow)");
    gw__cfg_parse_rl_store(v, root, c);
}
