#include "gateway/resolve.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway/id.h"

static bool json_content_type(gw_str_t ct)
{
    /* application/json with optional parameters; charset, if given, must be UTF-8 (§1). Media
     * types are case-insensitive (RFC 9110 §8.3.1): `Application/JSON` is JSON too. */
    if (ct.len < 16 || strncasecmp(ct.base, "application/json", 16) != 0)
        return false;
    gw_str_t rest = gw_str_n(ct.base + 16, ct.len - 16);
    if (rest.len && rest.base[0] != ';' && rest.base[0] != ' ')
        return false;
    for (size_t i = 0; i + 8 <= rest.len; i++)
        if (strncasecmp(rest.base + i, "charset=", 8) == 0) {
            gw_str_t cs = gw_str_n(rest.base + i + 8, rest.len - i - 8);
            if (cs.len && cs.base[0] == '"')
                cs.base++, cs.len--;
            return cs.len >= 5 && (strncasecmp(cs.base, "utf-8", 5) == 0 || strncasecmp(cs.base, "utf8", 4) == 0);
        }
    return true;
}

static int fail(gw_error_t *err, gw_err_kind_t kind, const char *message, const char *param)
{
    *err = (gw_error_t){.kind = kind, .message = message, .param = param};
    return -1;
}

/* Traffic split: each request independently picks its served entity by percentage. */
static const gw_endpoint_cfg_t *split(const gw_config_t *cfg, const gw_endpoint_cfg_t *ep)
{
    if (!ep->n_traffic)
        return ep;
    uint32_t x;
    gw_id_random(&x, sizeof(x));
    int roll = (int)(x % 100), acc = 0;
    for (size_t i = 0; i < ep->n_traffic; i++) {
        acc += ep->traffic[i].percentage;
        if (roll < acc) {
            const char *tn = ep->traffic[i].endpoint;
            return gw_config_endpoint(cfg, tn, strlen(tn));
        }
    }
    return ep;
}

int gw_resolve(const gw_config_t *cfg, gw_req_t *r, const gw_route_t *route, gw_resolved_t *out, gw_error_t *err)
{
    gw_arena_t *a = gw_req_arena(r);
    bool dbx = route->kind == GW_ROUTE_INVOCATIONS;
    memset(out, 0, sizeof(*out));
    if (dbx) {
        out->routed = gw_config_endpoint(cfg, route->endpoint.base, route->endpoint.len);
        if (!out->routed)
            return fail(err, GW_ERR_NOT_FOUND, "no serving endpoint with this name", NULL);
    }
    if (!json_content_type(gw_req_header(r, "content-type")))
        return fail(err, GW_ERR_MEDIA_TYPE, "request body must be application/json (UTF-8)", NULL);
    bool chat = route->kind == GW_ROUTE_CHAT;
    int prc = chat ? gw_request_parse_chat(a, gw_req_body(r), &out->req, err)
                   : gw_request_parse(a, gw_req_body(r), dbx, &out->req, err);
    if (prc < 0) {
        /* Charge the rejection to the endpoint it named, when it named one (table, metrics). */
        if (!out->routed && out->req.model.base)
            out->routed = gw_config_endpoint_for_model(cfg, out->req.model.base, out->req.model.len);
        return -1;
    }
    out->parsed = true;
    if (!dbx) {
        /* The endpoint's name, else its aliases, else default_endpoint (issue 10); the client's
         * model is still what the response echoes. */
        out->routed = gw_config_endpoint_for_model(cfg, out->req.model.base, out->req.model.len);
        if (!out->routed) {
            gw_str_t m = out->req.model;
            char *msg = gw_arena_alloc(a, 264);
            snprintf(msg, 264, "model '%.*s' is not served by this gateway", (int)(m.len > 200 ? 200 : m.len), m.base);
            return fail(err, GW_ERR_NOT_FOUND, msg, "model");
        }
    }
    out->served = split(cfg, out->routed);
    if (chat) {
        /* The ChatCompletions route passes bytes through, so it needs a ChatCompletions upstream;
         * translating for a Responses upstream is out of scope for now (README, issue 16). */
        if (out->served->adapter != GW_ADAPTER_CHAT_COMPLETIONS) {
            char *msg = gw_arena_alloc(a, 320);
            snprintf(msg, 320,
                     "endpoint '%s' has a Responses upstream; /v1/chat/completions serves only endpoints "
                     "whose upstream speaks ChatCompletions (use /v1/responses)",
                     out->served->name);
            return fail(err, GW_ERR_UNSUPPORTED, msg, "model");
        }
        out->ad = &ad_chat_passthrough;
    } else {
        out->ad = ad_for(out->served->adapter);
    }
    if (!out->ad)
        return fail(err, GW_ERR_INTERNAL, "endpoint adapter is not available in this build", NULL);
    /* Hosted tools the served model cannot run: dropped (listed for the row and metrics) or a
     * 400, per the endpoint's hosted_tools (PROTOCOL.md §2.2). */
    if (gw_request_apply_endpoint(&out->req, a, out->served, err) < 0)
        return -1;
    if (out->served->sampling_rate < 1.0) {
        uint32_t x;
        gw_id_random(&x, sizeof(x));
        out->sampled_out = (double)x / 4294967296.0 >= out->served->sampling_rate;
    }
    return 0;
}
