/* gw_auth: who is calling (issue 13). API keys checked against the keys file (gateway/keys:
 * hashes only), or an identity header set by a fronting proxy, accepted only from
 * auth.trusted_proxies. The keys file is re-read when it changes (stat polling every
 * auth.keys_poll_ms: it survives editors' and Kubernetes' rename-into-place updates, which an
 * inotify watch on the file would lose) and on SIGHUP; a file that fails to parse leaves the
 * previous keys in force and says so in the log. A key is never logged, stored or forwarded:
 * only its SHA-256 is computed, and upstream requests carry their own api_key_env credential. */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stdbool.h>
#include <uv.h>

#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/server.h"

struct gw_rl_ticket;

/** The caller, as admitted. Strings live in the request's arena. */
typedef struct {
    const char *requester;          /** NULL = anonymous (auth off); tables write null */
    const char *const *groups;      /** n_groups names */
    size_t n_groups;
    const char *const *key_endpoints; /** the key's `endpoints` list; NULL = every endpoint */
    size_t n_key_endpoints;
    const char *via;                /** "api_key", "trusted_header" or NULL */
    struct gw_rl_ticket *ticket;    /** rate-limit charges settled when the call ends; NULL = none */
} gw_identity_t;

typedef struct gw_auth gw_auth_t;

gw_auth_t *gw_auth_new(uv_loop_t *loop);
/** Apply cfg (at start and on every config reload): read the keys file now, watch it from now on. */
void gw_auth_configure(gw_auth_t *a, const gw_auth_cfg_t *cfg);
/** Stop watching; freed once its handle has closed. */
void gw_auth_free(gw_auth_t *a);
/** Parse cfg's keys file once (start-up and --check-config): 0, or -1 with a message. */
int gw_auth_check(const gw_auth_cfg_t *cfg, char *err, size_t errlen);

/** Identify r's caller into who (strings copied into arena). 0, or -1 with a 401 in err. */
int gw_auth_identify(gw_auth_t *a, const gw_auth_cfg_t *cfg, gw_req_t *r, gw_arena_t *arena, gw_identity_t *who,
                     gw_error_t *err);
/** May who call ep: its key's endpoint list and ep's `allow` (requesters, groups) both agree. */
bool gw_auth_may_call(const gw_identity_t *who, const gw_endpoint_cfg_t *ep);
/** Is peer ("ip:port", as gw_req_peer gives it) inside one of the CIDR blocks? */
bool gw_auth_peer_in(const char *peer, const gw_cidr_t *cidrs, size_t n);

/** Counters for /metrics. */
size_t gw_auth_keys_loaded(const gw_auth_t *a);
uint64_t gw_auth_reloads(const gw_auth_t *a);
uint64_t gw_auth_reload_failures(const gw_auth_t *a);

#endif
