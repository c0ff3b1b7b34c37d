/* Request side of the Responses adapter (PROTOCOL.md §7.7): the client's body passes through with
 * the endpoint's model, the stream flag and its defaults; keys agate owns are dropped. */
#include "adapters/rs_request.h"

#include "gateway/json.h"

const char *ad__rs_path(const gw_endpoint_cfg_t *ep)
{
    return ep->flavor == GW_FLAVOR_MLFLOW ? "/invocations" : "/responses";
}

/* Keys agate owns or consumes; everything else passes through untouched (§7.7, INFERENCE_TABLES
 * §7.5). MLflow-only keys go only to MLflow upstreams. */
static bool skip_key(gw_str_t k, bool mlflow)
{
    static const char *const owned[] = {"model", "stream", "client_request_id", "usage_context", NULL};
    static const char *const mlflow_only[] = {"custom_inputs", "context", "databricks_options", NULL};
    for (const char *const *o = owned; *o; o++)
        if (gw_str_eq(k, *o))
            return true;
    if (!mlflow)
        for (const char *const *o = mlflow_only; *o; o++)
            if (gw_str_eq(k, *o))
                return true;
    return false;
}

static bool has_default(const gw_endpoint_cfg_t *ep, gw_str_t k)
{
    return (gw_str_eq(k, "temperature") && ep->temperature.has) || (gw_str_eq(k, "top_p") && ep->top_p.has) ||
           (gw_str_eq(k, "max_output_tokens") && ep->max_output_tokens.has);
}

static void default_param(gw_jgen_t *j, const gw_request_t *r, const char *key, const gw_json_t *have,
                          gw_opt_num_t def)
{
    (void)r;
    if (have || !def.has)
        return;
    gw_jgen_cstr(j, key);
    gw_jgen_double(j, def.value);
}

int ad__rs_encode_request(const gw_request_t *r, const gw_endpoint_cfg_t *ep, bool databricks_route,
                          gw_buf_t *out, gw_error_t *err)
{
    (void)databricks_route;
    (void)err;
    bool mlflow = ep->flavor == GW_FLAVOR_MLFLOW;
    gw_jgen_t *j = gw_jgen_new(out);
    gw_jgen_map_open(j);
    gw_jgen_kv_cstr(j, "model", ep->model);
    gw_jgen_lit(j, "stream");
    gw_jgen_bool(j, r->stream);
    for (const gw_json_t *m = r->root->child; m; m = m->next) {
        if (skip_key(m->key, mlflow))
            continue;
        /* An explicit null is "unset" (gw_request): the default below takes its place, and the
         * key must not appear twice (RFC 8259 §4). */
        if (m->type == GW_JSON_NULL && has_default(ep, m->key))
            continue;
        gw_jgen_str(j, m->key);
        gw_jgen_value(j, m);
    }
    default_param(j, r, "temperature", r->temperature, ep->temperature);
    default_param(j, r, "top_p", r->top_p, ep->top_p);
    default_param(j, r, "max_output_tokens", r->max_output_tokens, ep->max_output_tokens);
    gw_jgen_map_close(j);
    gw_jgen_free(j);
    return 0;
}
