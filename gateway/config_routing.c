/* Model-name routing of gw_config (issue 10): an endpoint's name, its aliases (exact, then `*`
 * globs in config order), then default_endpoint. Validation of the keys is in config.c. */
#include <string.h>

#include "gateway/config.h"

static bool has_glob(const char *s)
{
    return strchr(s, '*') != NULL;
}

bool gw_config_glob_match(const char *p, const char *s, size_t n)
{
    /* Iterative wildcard match with one backtrack point (the last `*`): never recursive. */
    const char *star = NULL;
    size_t si = 0, star_s = 0;
    while (si < n) {
        if (*p == '*') {
            while (*p == '*')
                p++;
            star = p;
            star_s = si;
        } else if (*p && *p == s[si]) {
            p++;
            si++;
        } else if (star) {
            p = star;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

const gw_endpoint_cfg_t *gw_config_endpoint_for_model(const gw_config_t *c, const char *name, size_t name_len)
{
    const gw_endpoint_cfg_t *e = gw_config_endpoint(c, name, name_len);
    if (e)
        return e;
    for (size_t i = 0; i < c->n_endpoints; i++)
        for (size_t k = 0; k < c->endpoints[i].n_aliases; k++) {
            const char *al = c->endpoints[i].aliases[k];
            if (!has_glob(al) && strlen(al) == name_len && memcmp(al, name, name_len) == 0)
                return &c->endpoints[i];
        }
    for (size_t i = 0; i < c->n_endpoints; i++)
        for (size_t k = 0; k < c->endpoints[i].n_aliases; k++) {
            const char *al = c->endpoints[i].aliases[k];
            if (has_glob(al) && gw_config_glob_match(al, name, name_len))
                return &c->endpoints[i];
        }
    return c->default_endpoint ? gw_config_endpoint(c, c->default_endpoint, strlen(c->default_endpoint))
                               : NULL;
}
