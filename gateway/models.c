#include "gateway/models.h"

#include <stdio.h>
#include <string.h>

#include "gateway/json.h"

/* One model object: {id, object:"model", created, owned_by}. `created` is when the config that
 * serves the name was loaded: agate has no earlier date for an endpoint. */
static void put_model(gw_buf_t *b, const gw_config_t *cfg, const char *name)
{
    char tmp[32];
    gw_buf_append_cstr(b, "{\"id\":");
    gw_json_quote(b, gw_str(name));
    gw_buf_append_cstr(b, ",\"object\":\"model\",\"created\":");
    gw_buf_append_str(b, gw_int_str(tmp, cfg->loaded_unix));
    gw_buf_append_cstr(b, ",\"owned_by\":\"agate\"}");
}

int gw_models_respond(const gw_config_t *cfg, gw_req_t *r, const gw_route_t *route, const char *headers,
                      gw_error_t *err)
{
    gw_buf_t b;
    gw_buf_init(&b);
    if (route->kind == GW_ROUTE_MODEL) {
        const gw_endpoint_cfg_t *ep = gw_config_endpoint(cfg, route->endpoint.base, route->endpoint.len);
        if (!ep) {
            gw_buf_dispose(&b);
            gw_str_t id = route->endpoint;
            char *msg = gw_arena_alloc(gw_req_arena(r), 264);
            snprintf(msg, 264, "The model '%.*s' does not exist", (int)(id.len > 200 ? 200 : id.len), id.base);
            *err = (gw_error_t){.kind = GW_ERR_NOT_FOUND, .message = msg, .param = "model"};
            return -1;
        }
        put_model(&b, cfg, ep->name);
    } else {
        /* Endpoint names only; aliases join here once the config has them (issue 16). */
        gw_buf_append_cstr(&b, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < cfg->n_endpoints; i++) {
            if (i)
                gw_buf_append_cstr(&b, ",");
            put_model(&b, cfg, cfg->endpoints[i].name);
        }
        gw_buf_append_cstr(&b, "]}");
    }
    gw_req_respond(r, 200, "application/json", headers, gw_buf_str(&b));
    gw_buf_dispose(&b);
    return 0;
}
