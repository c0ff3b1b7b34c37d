#include "gateway/auth.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "gateway/keys.h"
#include "gateway/log.h"
#include "gateway/sha256.h"

#define MAX_KEY_BYTES  4096 /* longer "keys" are refused without hashing */
#define MAX_KEYS_FILE  (64u << 20)

struct gw_auth {
    uv_loop_t *loop;
    gw_keys_t *keys;       /** owned; NULL = none loaded */
    char *path;            /** keys file being watched (malloc'd), NULL = none */
    int poll_ms;
    uv_fs_poll_t poll;
    bool polling, freeing;
    uint64_t reloads, failures;
};

/* Small local file, read whole; runs at start, on SIGHUP and when the poll saw a change (the
 * same trade as the config reload in gateway/main: no request waits on it). */
static gw_keys_t *load_keys(const char *path, char *err, size_t errlen)
{
    gw_buf_t b;
    gw_buf_init(&b);
    int rc = gw_buf_read_file(&b, path, MAX_KEYS_FILE);
    gw_keys_t *k = NULL;
    if (rc == -1)
        snprintf(err, errlen, "keys file: cannot open %s", path);
    else if (rc == -2)
        snprintf(err, errlen, "keys file: cannot read %s", path);
    else if (rc == -3)
        snprintf(err, errlen, "keys file: %s is larger than %u bytes", path, MAX_KEYS_FILE);
    else
        k = gw_keys_parse(b.base ? b.base : "", b.len, err, errlen);
    gw_buf_dispose(&b);
    return k;
}

static void reload(gw_auth_t *a, const char *why)
{
    char err[512];
    gw_keys_t *k = load_keys(a->path, err, sizeof(err));
    if (!k) {
        a->failures++;
        gw_log(GW_LOG_ERROR, NULL, "event=keys_reload_failed reason=%s error=\"%s\" keys_in_force=%zu", why, err,
               gw_keys_count(a->keys));
        return;
    }
    gw_keys_free(a->keys);
    a->keys = k;
    a->reloads++;
    gw_log(GW_LOG_INFO, NULL, "event=keys_loaded reason=%s keys=%zu", why, gw_keys_count(k));
}

static void on_keys_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    (void)prev;
    (void)curr;
    gw_auth_t *a = h->data;
    /* status < 0: the file vanished (mid-rename); keep the keys in force until it is back. */
    if (status == 0)
        reload(a, "file_changed");
}

gw_auth_t *gw_auth_new(uv_loop_t *loop)
{
    gw_auth_t *a = gw_xcalloc(1, sizeof(*a));
    a->loop = loop;
    uv_fs_poll_init(loop, &a->poll);
    a->poll.data = a;
    return a;
}

void gw_auth_configure(gw_auth_t *a, const gw_auth_cfg_t *cfg)
{
    if (a->polling) {
        uv_fs_poll_stop(&a->poll);
        a->polling = false;
    }
    free(a->path);
    a->path = NULL;
    if (!cfg->enabled || !cfg->keys_file) {
        gw_keys_free(a->keys);
        a->keys = NULL;
        return;
    }
    a->path = gw_xstrndup(cfg->keys_file, strlen(cfg->keys_file));
    a->poll_ms = cfg->keys_poll_ms;
    reload(a, a->reloads || a->failures ? "config_reload" : "start");
    if (uv_fs_poll_start(&a->poll, on_keys_changed, a->path, (unsigned)a->poll_ms) == 0)
        a->polling = true;
}

static void on_poll_closed(uv_handle_t *h)
{
    gw_auth_t *a = h->data;
    gw_keys_free(a->keys);
    free(a->path);
    free(a);
}

void gw_auth_free(gw_auth_t *a)
{
    if (!a)
        return;
    uv_close((uv_handle_t *)&a->poll, on_poll_closed);
}

int gw_auth_check(const gw_auth_cfg_t *cfg, char *err, size_t errlen)
{
    if (!cfg->enabled || !cfg->keys_file)
        return 0;
    gw_keys_t *k = load_keys(cfg->keys_file, err, errlen);
    if (!k)
        return -1;
    gw_keys_free(k);
    return 0;
}

size_t gw_auth_keys_loaded(const gw_auth_t *a)
{
    return gw_keys_count(a->keys);
}

uint64_t gw_auth_reloads(const gw_auth_t *a)
{
    return a->reloads;
}

uint64_t gw_auth_reload_failures(const gw_auth_t *a)
{
    return a->failures;
}

/* ---------------- peers ---------------- */

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool gw_auth_peer_in(const char *peer, const gw_cidr_t *cidrs, size_t n)
{
    char ip[64];
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    if (!colon || (size_t)(colon - peer) >= sizeof(ip))
        return false;
    memcpy(ip, peer, (size_t)(colon - peer));
    ip[colon - peer] = '\0';
    uint8_t addr[16];
    int family;
    if (inet_pton(AF_INET, ip, addr) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, addr) == 1) {
        family = AF_INET6;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(addr, mapped, 12) == 0) { /* ::ffff:a.b.c.d on a dual-stack listener */
            memmove(addr, addr + 12, 4);
            family = AF_INET;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (cidrs[i].family == family && prefix_match(addr, cidrs[i].addr, cidrs[i].bits))
            return true;
    return false;
}

/* ---------------- identification ---------------- */

static int refuse(gw_error_t *err, const char *msg)
{
    *err = (gw_error_t){.kind = GW_ERR_UNAUTHENTICATED, .message = msg};
    return -1;
}

static gw_str_t trim(gw_str_t s)
{
    while (s.len && (s.base[0] == ' ' || s.base[0] == '\t'))
        s.base++, s.len--;
    while (s.len && (s.base[s.len - 1] == ' ' || s.base[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* "eng, ml" -> names in the arena; empty items skipped, at most GW_KEYS_MAX_GROUPS. */
static int split_groups(gw_arena_t *arena, gw_str_t v, gw_identity_t *who)
{
    const char **g = gw_arena_calloc(arena, sizeof(*g) * GW_KEYS_MAX_GROUPS);
    size_t n = 0;
    while (v.len) {
        const char *comma = memchr(v.base, ',', v.len);
        size_t len = comma ? (size_t)(comma - v.base) : v.len;
        gw_str_t item = trim(gw_str_n(v.base, len));
        v = comma ? gw_str_n(comma + 1, v.len - len - 1) : gw_str_n(v.base + len, 0);
        if (!item.len)
            continue;
        if (n == GW_KEYS_MAX_GROUPS || !gw_keys_valid_name(item.base, item.len))
            return -1;
        g[n++] = gw_arena_strndup(arena, item.base, item.len);
    }
    who->groups = g;
    who->n_groups = n;
    return 0;
}

static int from_trusted_header(const gw_auth_cfg_t *cfg, gw_req_t *r, gw_arena_t *arena, gw_identity_t *who,
                               gw_error_t *err)
{
    if (gw_req_header_count(r, cfg->trusted_header) > 1 ||
        (cfg->trusted_groups_header && gw_req_header_count(r, cfg->trusted_groups_header) > 1))
        return refuse(err, "identity header repeated: the fronting proxy must set it exactly once");
    gw_str_t user = trim(gw_req_header(r, cfg->trusted_header));
    if (!gw_keys_valid_name(user.base, user.len))
        return refuse(err, "identity header from the trusted proxy is not a valid name");
    who->requester = gw_arena_strndup(arena, user.base, user.len);
    who->via = "trusted_header";
    if (cfg->trusted_groups_header &&
        split_groups(arena, gw_req_header(r, cfg->trusted_groups_header), who) < 0)
        return refuse(err, "groups header from the trusted proxy is not a comma-separated list of names");
    return 0;
}

/* The presented key: Authorization: Bearer <key>, else api-key, else x-api-key (what the OpenAI,
 * Azure-style and Anthropic-style clients send). A borrowed view into the request headers. */
static int presented_key(gw_req_t *r, gw_str_t *key, gw_error_t *err)
{
    static const char *const names[] = {"authorization", "api-key", "x-api-key"};
    for (int i = 0; i < 3; i++) {
        size_t count = gw_req_header_count(r, names[i]);
        if (!count)
            continue;
        if (count > 1)
            return refuse(err, "more than one credential header of the same name");
        gw_str_t v = trim(gw_req_header(r, names[i]));
        if (i == 0) {
            if (v.len < 7 || strncasecmp(v.base, "Bearer ", 7) != 0)
                return refuse(err, "Authorization must use the Bearer scheme");
            v = trim(gw_str_n(v.base + 7, v.len - 7));
        }
        if (!v.len)
            return refuse(err, "empty API key");
        *key = v;
        return 0;
    }
    return refuse(err, "missing API key: send Authorization: Bearer <key> (or an api-key / x-api-key header)");
}

static const char **copy_names(gw_arena_t *arena, const char *const *src, size_t n)
{
    if (!src)
        return NULL;
    const char **d = gw_arena_calloc(arena, sizeof(*d) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        d[i] = gw_arena_strndup(arena, src[i], strlen(src[i]));
    return d;
}

int gw_auth_identify(gw_auth_t *a, const gw_auth_cfg_t *cfg, gw_req_t *r, gw_arena_t *arena, gw_identity_t *who,
                     gw_error_t *err)
{
    memset(who, 0, sizeof(*who));
    if (!cfg->enabled)
        return 0;
    /* A trusted header counts only from a trusted proxy; from anyone else it is ignored (never
     * forwarded either: upstream requests carry no client headers). */
    if (cfg->trusted_header && gw_req_header_count(r, cfg->trusted_header)) {
        if (gw_auth_peer_in(gw_req_peer(r), cfg->trusted_proxies, cfg->n_trusted_proxies))
            return from_trusted_header(cfg, r, arena, who, err);
        gw_log(GW_LOG_DEBUG, NULL, "event=trusted_header_ignored peer=%s", gw_req_peer(r));
    }
    if (!cfg->keys_file)
        return refuse(err, "authentication required: this gateway accepts identities only from its trusted proxies");
    gw_str_t key;
    if (presented_key(r, &key, err) < 0)
        return -1;
    if (key.len > MAX_KEY_BYTES)
        return refuse(err, "invalid API key");
    uint8_t sha[32];
    gw_sha256(key.base, key.len, sha);
    const gw_key_entry_t *e = gw_keys_find(a->keys, sha);
    if (!e)
        return refuse(err, "invalid API key");
    if (e->expires_at && (int64_t)time(NULL) >= e->expires_at)
        return refuse(err, "API key expired");
    who->requester = gw_arena_strndup(arena, e->requester, strlen(e->requester));
    who->groups = copy_names(arena, e->groups, e->n_groups);
    who->n_groups = e->groups ? e->n_groups : 0;
    who->key_endpoints = copy_names(arena, e->endpoints, e->n_endpoints);
    who->n_key_endpoints = e->endpoints ? e->n_endpoints : 0;
    who->via = "api_key";
    return 0;
}

static bool listed(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

bool gw_auth_may_call(const gw_identity_t *who, const gw_endpoint_cfg_t *ep)
{
    if (who->key_endpoints && !listed(who->key_endpoints, who->n_key_endpoints, ep->name))
        return false;
    if (!ep->has_allow)
        return true;
    if (who->requester && listed(ep->allow_requesters, ep->n_allow_requesters, who->requester))
        return true;
    for (size_t i = 0; i < who->n_groups; i++)
        if (listed(ep->allow_groups, ep->n_allow_groups, who->groups[i]))
            return true;
    return false;
}
