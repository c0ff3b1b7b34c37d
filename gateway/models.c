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
        /* Any name the Responses and chat routes would serve: names, aliases (globs included),
         * default_endpoint. The id asked for is echoed, as those routes echo the client's model. */
        gw_str_t id = route->endpoint;
        if (!gw_config_endpoint_for_model(cfg, id.base, id.len)) {
            gw_buf_dispose(&b);
            char *msg = gw_arena_alloc(gw_req_arena(r), 264);
            snprintf(msg, 264, "The model '%.*s' does not exist", (int)(id.len > 200 ? 200 : id.len), id.base);
            *err = (gw_error_t){.kind = GW_ERR_NOT_FOUND, .message = msg, .param = "model"};
            return -1;
        }
        put_model(&b, cfg, gw_arena_strndup(gw_req_arena(r), id.base, id.len));
    } else {
        /* Endpoint names, then each endpoint's exact aliases (a glob names no model to list). */
        gw_buf_append_cstr(&b, "{\"object\":\"list\",\"data\":[");
        bool first = true;
        for (size_t i = 0; i < cfg->n_endpoints; i++) {
            const gw_endpoint_cfg_t *ep = &cfg->endpoints[i];
            for (size_t k = 0; k <= ep->n_aliases; k++) {
                const char *name = k ? ep->aliases[k - 1] : ep->name;
                if (k && strchr(name, '*'))
                    continue;
                if (!first)
                    gw_buf_append_cstr(&b, ",");
                first = false;
                put_model(&b, cfg, name);
            }
        }
        gw_buf_append_cstr(&b, "]}");
    }
    gw_req_respond(r, 200, "application/json", headers, gw_buf_str(&b));
    gw_buf_dispose(&b);
    return 0;
}
