/* gw_proxy: the request handler. Routes a request, validates it, sends it upstream through the
 * endpoint's adapter, renders the answer for the client's route, and writes one table row per
 * request — whatever happened to it. */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <uv.h>

#include "gateway/access_log.h"
#include "gateway/config.h"
#include "gateway/ratelimit.h"
#include "gateway/server.h"
#include "tables/sink.h"

typedef struct gw_proxy gw_proxy_t;

/** sink may be NULL (tables off). cfg must outlive the requests that start under it. rl_shm: the
 * rate-limit buckets shared by this process's workers (mapped before fork), NULL = private. */
gw_proxy_t *gw_proxy_new(uv_loop_t *loop, const gw_config_t *cfg, tb_sink_t *sink, gw_rl_shm_t *rl_shm);
void gw_proxy_free(gw_proxy_t *p);
/** gw_req_handler_cb for gw_server. */
void gw_proxy_handle(gw_req_t *r, void *proxy);
/** New requests use cfg from now on; in-flight ones keep theirs. */
void gw_proxy_set_config(gw_proxy_t *p, const gw_config_t *cfg);
/** Register the access log as the last finish observer (and its line counters in /metrics); the
 * caller keeps ownership and closes it after gw_proxy_free. */
void gw_proxy_set_access_log(gw_proxy_t *p, gw_alog_t *l);
/** Requests in flight. */
size_t gw_proxy_active(const gw_proxy_t *p);
/** Opens the configured response store (cfg->store), if any: 0, or -1 with err. */
int gw_proxy_open_store(gw_proxy_t *p, char *err, size_t errlen);

#endif
