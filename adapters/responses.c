/* Responses upstream adapter (PROTOCOL.md §7.7): OpenAI-flavour event streams (`/responses`)
 * and MLflow ResponsesAgent streams (`/invocations`, data-only, sparse). Upstream events are
 * normalised into the same neutral events as the ChatCompletions adapter: sequence numbers and
 * output indexes are the renderer's; missing item/part announcements are synthesised; item ids
 * and call_ids pass through; custom_outputs and databricks_output.trace ride along. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/rs_request.h"
#include "gateway/log.h"
#include "gateway/sse.h"

/* ---------------- response ---------------- */

struct up_item {
    char *id;         /** upstream item id (malloc) */
    int oi;           /** our output_index, -1 for ignored item types */
    ad_item_kind_t kind;
    bool done;
    bool part_open;   /** a part is open on our side */
    ad_part_kind_t part;
    size_t part_chars; /** text received for the open part */
    size_t args_chars;
};

struct ad_state {
    const ad_emit_t *em;
    const gw_endpoint_cfg_t *ep;
    gw_arena_t *scratch;
    ad_body_t body; /** SSE events, or one Responses / MLflow object */
    bool begun, terminal, stopped, model_seen;
    struct up_item *items;
    size_t n_items, cap_items;
    int32_t *id_slots;  /** open-addressing map item id -> items[] index + 1 (0 = empty) */
    size_t cap_slots;   /** power of two, > 2 x n_items */
    int open_exclusive; /** index into items of an open message/reasoning item, -1 none */
};

static int stopped(ad_state_t *s, int rc)
{
    if (rc < 0)
        s->stopped = true;
    return rc;
}

static int violation(ad_state_t *s, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "upstream protocol error: %s", what);
    gw_error_t e = {.kind = GW_ERR_UPSTREAM, .message = msg};
    s->terminal = true;
    s->stopped = true;
    s->em->fail(s->em->ctx, &e);
    return -1;
}

static gw_err_kind_t kind_for_error_code(gw_str_t code)
{
    if (gw_str_eq(code, "BAD_REQUEST") || gw_str_eq(code, "INVALID_PARAMETER_VALUE") ||
        gw_str_eq(code, "invalid_prompt"))
        return GW_ERR_UPSTREAM_BAD_REQUEST;
    if (gw_str_eq(code, "REQUEST_LIMIT_EXCEEDED") || gw_str_eq(code, "rate_limit_exceeded"))
        return GW_ERR_RATE_LIMIT;
    if (gw_str_eq(code, "TEMPORARILY_UNAVAILABLE"))
        return GW_ERR_UNAVAILABLE;
    if (gw_str_eq(code, "DEADLINE_EXCEEDED"))
        return GW_ERR_TIMEOUT;
    return GW_ERR_UPSTREAM;
}

static int upstream_failed(ad_state_t *s, gw_err_kind_t kind, const char *msg)
{
    gw_error_t e = {.kind = kind, .message = msg};
    s->terminal = true;
    s->stopped = true;
    s->em->fail(s->em->ctx, &e);
    return -1;
}

static int begin(ad_state_t *s)
{
    if (s->begun)
        return 0;
    s->begun = true;
    return stopped(s, s->em->begin(s->em->ctx));
}

static size_t id_slot(gw_str_t id, size_t cap)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < id.len; i++)
        h = (h ^ (unsigned char)id.base[i]) * 16777619u;
    return h & (cap - 1);
}

/* Item lookup by id stays O(1): every event names its item, and a linear scan made a response
 * with tens of thousands of items quadratic. */
static void index_item(ad_state_t *s, size_t i)
{
    if ((s->n_items + 1) * 2 > s->cap_slots) {
        size_t cap = s->cap_slots ? s->cap_slots * 2 : 16;
        int32_t *slots = gw_xcalloc(cap, sizeof(*slots));
        for (size_t k = 0; k < s->n_items; k++) {
            if (k == i)
                continue;
            size_t j = id_slot(gw_str(s->items[k].id), cap);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = (int32_t)k + 1;
        }
        free(s->id_slots);
        s->id_slots = slots;
        s->cap_slots = cap;
    }
    size_t j = id_slot(gw_str(s->items[i].id), s->cap_slots);
    while (s->id_slots[j])
        j = (j + 1) & (s->cap_slots - 1);
    s->id_slots[j] = (int32_t)i + 1;
}

static struct up_item *find_item(ad_state_t *s, gw_str_t id)
{
    if (!id.len || !s->cap_slots)
        return NULL;
    for (size_t j = id_slot(id, s->cap_slots); s->id_slots[j]; j = (j + 1) & (s->cap_slots - 1)) {
        struct up_item *it = &s->items[s->id_slots[j] - 1];
        if (strlen(it->id) == id.len && memcmp(it->id, id.base, id.len) == 0)
            return it;
    }
    return NULL;
}

static int close_item(ad_state_t *s, struct up_item *it, ad_item_status_t st)
{
    if (it->done)
        return 0;
    it->done = true;
    if (s->open_exclusive >= 0 && &s->items[s->open_exclusive] == it)
        s->open_exclusive = -1;
    if (it->oi < 0)
        return 0;
    return stopped(s, s->em->item_done(s->em->ctx, it->oi, st));
}

static ad_item_kind_t kind_of(gw_str_t type, bool *known)
{
    *known = true;
    if (gw_str_eq(type, "message"))
        return AD_ITEM_MESSAGE;
    if (gw_str_eq(type, "function_call"))
        return AD_ITEM_FUNCTION_CALL;
    if (gw_str_eq(type, "reasoning"))
        return AD_ITEM_REASONING;
    *known = false;
    return AD_ITEM_MESSAGE;
}

/* Register an upstream item and announce it. Unknown item types (tool outputs, built-in tool
 * calls) are tracked but not rendered: no client of ours could use them (§7.7). */
static struct up_item *add_item(ad_state_t *s, gw_str_t id, gw_str_t type, const gw_json_t *item)
{
    bool known;
    ad_item_kind_t kind = kind_of(type, &known);
    /* A message or reasoning item is closed before any later item is added (§4.3 rule 7). */
    if (s->open_exclusive >= 0 && close_item(s, &s->items[s->open_exclusive], AD_STATUS_COMPLETED) < 0)
        return NULL;
    if (s->n_items == s->cap_items) {
        s->cap_items = s->cap_items ? s->cap_items * 2 : 8;
        s->items = gw_xrealloc(s->items, s->cap_items * sizeof(*s->items));
    }
    struct up_item *it = &s->items[s->n_items++];
    memset(it, 0, sizeof(*it));
    char mint[40];
    gw_str_t up_id = id;
    if (!id.len) {
        snprintf(mint, sizeof(mint), "item_%zu", s->n_items);
        id = gw_str(mint);
    }
    it->id = gw_xstrndup(id.base, id.len);
    index_item(s, s->n_items - 1);
    it->kind = kind;
    it->oi = -1;
    if (!known)
        return it;
    if (begin(s) < 0)
        return NULL;
    /* Without an upstream id the renderer mints a fresh msg_/fc_/rs_ id (§7.5); the local
     * "item_N" key only serves the lookup table. */
    ad_item_t ai = {.kind = kind, .id = up_id};
    if (kind == AD_ITEM_FUNCTION_CALL) {
        ai.call_id = gw_json_get_str(item, "call_id");
        ai.name = gw_json_get_str(item, "name");
        if (!ai.name.len) {
            violation(s, "function_call item without a name");
            return NULL;
        }
    }
    int oi = s->em->item_add(s->em->ctx, &ai);
    if (oi < 0) {
        s->stopped = true;
        return NULL;
    }
    it->oi = oi;
    if (kind != AD_ITEM_FUNCTION_CALL)
        s->open_exclusive = (int)(it - s->items);
    return it;
}

/* The item an item-scoped event refers to; synthesised when it was never announced (MLflow). */
static struct up_item *item_for(ad_state_t *s, const gw_json_t *ev, const char *implied_type)
{
    gw_str_t id = gw_json_get_str(ev, "item_id");
    struct up_item *it = find_item(s, id);
    if (it) {
        if (it->done) {
            char what[160];
            snprintf(what, sizeof(what), "event for item %.80s after its output_item.done", it->id);
            violation(s, what);
            return NULL;
        }
        return it;
    }
    if (!id.len && s->open_exclusive >= 0)
        return &s->items[s->open_exclusive];
    if (!implied_type) {
        violation(s, "event for an unknown item");
        return NULL;
    }
    return add_item(s, id, gw_str(implied_type), NULL);
}

/* An item-scoped event must address an item of the matching kind: text/refusal parts belong to
 * messages, summary parts to reasoning items, arguments to function calls (§4.4; the renderer
 * asserts its grammar, so a mismatch must never reach it). */
static int check_kind(ad_state_t *s, const struct up_item *it, ad_item_kind_t want)
{
    if (it->kind == want)
        return 0;
    char what[200];
    snprintf(what, sizeof(what), "event for item %.80s does not match its type", it->id);
    return violation(s, what);
}

static ad_item_kind_t kind_for_part(ad_part_kind_t k)
{
    return k == AD_PART_SUMMARY_TEXT ? AD_ITEM_REASONING : AD_ITEM_MESSAGE;
}

static int ensure_part(ad_state_t *s, struct up_item *it, ad_part_kind_t kind)
{
    if (it->oi < 0)
        return 0;
    if (it->part_open && it->part == kind)
        return 0;
    it->part_open = true;
    it->part = kind;
    it->part_chars = 0;
    return stopped(s, s->em->part_add(s->em->ctx, it->oi, kind));
}

static int text_delta(ad_state_t *s, struct up_item *it, ad_part_kind_t kind, gw_str_t text)
{
    if (it->oi < 0 || !text.len)
        return 0;
    if (ensure_part(s, it, kind) < 0)
        return -1;
    it->part_chars += text.len;
    return stopped(s, s->em->delta(s->em->ctx, it->oi, text));
}

/* A done event carrying the full text: emit what no delta delivered (sparse streams). */
static int text_done(ad_state_t *s, struct up_item *it, ad_part_kind_t kind, gw_str_t full)
{
    if (it->oi < 0)
        return 0;
    if (it->part_open && it->part == kind && it->part_chars) {
        it->part_open = false; /* the next part of this kind is a new part */
        return 0;
    }
    int rc = text_delta(s, it, kind, full);
    it->part_open = false;
    return rc;
}

/* Bring an item to its final content from a complete item object, then close it. */
static int finish_item(ad_state_t *s, struct up_item *it, const gw_json_t *item)
{
    if (it->oi >= 0) {
        if (it->kind == AD_ITEM_FUNCTION_CALL) {
            gw_str_t args = gw_json_get_str(item, "arguments");
            if (!it->args_chars) {
                it->args_chars = args.len;
                if (stopped(s, s->em->delta(s->em->ctx, it->oi, args.len ? args : GW_STR_LIT("{}"))) < 0)
                    return -1;
            }
        } else if (!it->part_chars && !it->part_open) {
            /* No streamed content: take it from the item (content parts or summary). */
            const gw_json_t *parts = gw_json_get(item, it->kind == AD_ITEM_REASONING ? "summary" : "content");
            for (const gw_json_t *p = parts ? parts->child : NULL; p; p = p->next) {
                gw_str_t pt = gw_json_get_str(p, "type");
                ad_part_kind_t k = gw_str_eq(pt, "refusal")        ? AD_PART_REFUSAL
                                   : it->kind == AD_ITEM_REASONING ? AD_PART_SUMMARY_TEXT
                                                                   : AD_PART_OUTPUT_TEXT;
                gw_str_t text = gw_json_get_str(p, k == AD_PART_REFUSAL ? "refusal" : "text");
                it->part_open = false;
                if (ensure_part(s, it, k) < 0)
                    return -1;
                if (text.len && stopped(s, s->em->delta(s->em->ctx, it->oi, text)) < 0)
                    return -1;
                it->part_chars += text.len + 1;
            }
        }
    }
    gw_str_t st = gw_json_get_str(item, "status");
    return close_item(s, it, gw_str_eq(st, "incomplete") ? AD_STATUS_INCOMPLETE : AD_STATUS_COMPLETED);
}

static int on_item_done(ad_state_t *s, const gw_json_t *item)
{
    gw_str_t id = gw_json_get_str(item, "id");
    struct up_item *it = find_item(s, id);
    if (it && it->done) {
        char what[160];
        snprintf(what, sizeof(what), "second output_item.done for item %.80s", it->id);
        return violation(s, what);
    }
    if (!it)
        it = add_item(s, id, gw_json_get_str(item, "type"), item);
    if (!it)
        return -1;
    return finish_item(s, it, item);
}

static void take_usage(ad_state_t *s, const gw_json_t *u)
{
    if (!gw_json_is(u, GW_JSON_OBJECT))
        return;
    ad_usage_t x = {.present = true};
    gw_json_int64(gw_json_get(u, "input_tokens"), &x.input);
    gw_json_int64(gw_json_get(u, "output_tokens"), &x.output);
    if (gw_json_int64(gw_json_get(u, "total_tokens"), &x.total) < 0)
        x.total = x.input + x.output;
    gw_json_int64(gw_json_get(gw_json_get(u, "input_tokens_details"), "cached_tokens"), &x.cached);
    gw_json_int64(gw_json_get(gw_json_get(u, "output_tokens_details"), "reasoning_tokens"), &x.reasoning);
    s->em->usage(s->em->ctx, &x);
}

/* Extras carried at the top level of any event, or in a response object. */
static void take_extras(ad_state_t *s, const gw_json_t *obj)
{
    const gw_json_t *co = gw_json_get(obj, "custom_outputs");
    if (!gw_json_is_nullish(co))
        s->em->custom_outputs(s->em->ctx, co);
    const gw_json_t *tr = gw_json_get(gw_json_get(obj, "databricks_output"), "trace");
    if (!gw_json_is_nullish(tr))
        s->em->trace(s->em->ctx, tr);
}

/* Close what is open, then finish: used for the terminal event, [DONE] and a complete object. */
static int complete(ad_state_t *s, const gw_json_t *resp)
{
    if (s->terminal)
        return 0;
    if (begin(s) < 0)
        return -1;
    /* Items the upstream only listed in its final output (no done event) are synthesised. */
    const gw_json_t *out = gw_json_get(resp, "output");
    for (const gw_json_t *item = out ? out->child : NULL; item; item = item->next) {
        struct up_item *it = find_item(s, gw_json_get_str(item, "id"));
        if (it && it->done)
            continue;
        if (on_item_done(s, item) < 0)
            return -1;
    }
    /* Items still open: completed only if the response completes (§7.2 rule 10, §5.3). An
     * absent or in_progress status (no terminal event, MLflow objects) counts as completed. */
    gw_str_t status = gw_json_get_str(resp, "status");
    ad_item_status_t open_st = gw_str_eq(status, "failed") || gw_str_eq(status, "incomplete")
                                   ? AD_STATUS_INCOMPLETE
                                   : AD_STATUS_COMPLETED;
    for (size_t i = 0; i < s->n_items; i++)
        if (close_item(s, &s->items[i], open_st) < 0)
            return -1;
    take_usage(s, gw_json_get(resp, "usage"));
    take_extras(s, resp);
    gw_str_t model = gw_json_get_str(resp, "model");
    if (model.len && !s->model_seen) {
        s->model_seen = true;
        s->em->upstream_model(s->em->ctx, model);
    }
    s->terminal = true;
    if (gw_str_eq(status, "failed")) {
        const gw_json_t *e = gw_json_get(resp, "error");
        gw_str_t m = gw_json_get_str(e, "message");
        const char *msg = m.base ? gw_arena_strndup(s->scratch, m.base, m.len) : "upstream response failed";
        return upstream_failed(s, kind_for_error_code(gw_json_get_str(e, "code")), msg);
    }
    if (gw_str_eq(status, "incomplete")) {
        gw_str_t reason = gw_json_get_str(gw_json_get(resp, "incomplete_details"), "reason");
        return stopped(s, s->em->finish(s->em->ctx, AD_FINISH_INCOMPLETE,
                                        gw_str_eq(reason, "content_filter") ? "content_filter" : "max_output_tokens"));
    }
    return stopped(s, s->em->finish(s->em->ctx, AD_FINISH_COMPLETED, NULL));
}

/* Error forms of §7.7: error event, {"error":...}, databricks_output.error. */
static int check_error(ad_state_t *s, const gw_json_t *ev, gw_str_t type)
{
    const gw_json_t *dbx = gw_json_get(gw_json_get(ev, "databricks_output"), "error");
    if (gw_json_is(dbx, GW_JSON_OBJECT)) {
        gw_str_t m = gw_json_get_str(dbx, "message");
        const char *msg = m.base ? gw_arena_strndup(s->scratch, m.base, m.len) : "upstream reported an error";
        return upstream_failed(s, kind_for_error_code(gw_json_get_str(dbx, "error_code")), msg);
    }
    long code = 0;
    const char *msg = ad_error_message(s->scratch, ev, &code);
    if (!msg && gw_str_eq(type, "error")) {
        gw_str_t m = gw_json_get_str(ev, "message");
        msg = m.base ? gw_arena_strndup(s->scratch, m.base, m.len) : "upstream sent an error event";
    }
    if (!msg)
        return 0;
    gw_str_t c = gw_json_get_str(ev, "code");
    if (!c.base)
        c = gw_json_get_str(gw_json_get(ev, "error"), "code");
    gw_err_kind_t kind = code == 429 ? GW_ERR_RATE_LIMIT : code == 400 ? GW_ERR_UPSTREAM_BAD_REQUEST
                                                                        : kind_for_error_code(c);
    return upstream_failed(s, kind, msg);
}

static int on_event(ad_state_t *s, const gw_json_t *ev)
{
    if (ev->type != GW_JSON_OBJECT)
        return violation(s, "stream event is not a JSON object");
    gw_str_t type = gw_json_get_str(ev, "type");
    const gw_json_t *item = gw_json_get(ev, "item");
    /* A final item that travels with an error is still part of the partial output. */
    if (gw_str_eq(type, "response.output_item.done") && gw_json_is(item, GW_JSON_OBJECT) &&
        !gw_json_is_nullish(gw_json_get(ev, "databricks_output"))) {
        if (on_item_done(s, item) < 0)
            return -1;
        item = NULL;
    }
    if (check_error(s, ev, type) != 0)
        return -1;
    take_extras(s, ev);
    if (gw_str_eq(type, "response.failed"))
        return complete(s, gw_json_get(ev, "response"));
    if (gw_str_eq(type, "response.created") || gw_str_eq(type, "response.in_progress") ||
        gw_str_eq(type, "response.queued")) {
        gw_str_t model = gw_json_get_str(gw_json_get(ev, "response"), "model");
        if (model.len && !s->model_seen) {
            s->model_seen = true;
            s->em->upstream_model(s->em->ctx, model);
        }
        return begin(s);
    }
    if (gw_str_eq(type, "response.completed") || gw_str_eq(type, "response.incomplete"))
        return complete(s, gw_json_get(ev, "response"));
    if (gw_str_eq(type, "response.output_item.added")) {
        if (!gw_json_is(item, GW_JSON_OBJECT))
            return violation(s, "output_item.added without an item");
        gw_str_t id = gw_json_get_str(item, "id");
        if (find_item(s, id))
            return violation(s, "output_item.added repeats an item id");
        struct up_item *it = add_item(s, id, gw_json_get_str(item, "type"), item);
        if (!it)
            return -1;
        gw_str_t args = gw_json_get_str(item, "arguments");
        if (it->kind == AD_ITEM_FUNCTION_CALL && it->oi >= 0 && args.len) {
            it->args_chars += args.len;
            return stopped(s, s->em->delta(s->em->ctx, it->oi, args));
        }
        return 0;
    }
    if (gw_str_eq(type, "response.output_item.done"))
        return item ? (gw_json_is(item, GW_JSON_OBJECT) ? on_item_done(s, item)
                                                        : violation(s, "output_item.done without an item"))
                    : 0;
    if (gw_str_eq(type, "response.content_part.added") || gw_str_eq(type, "response.reasoning_summary_part.added")) {
        bool summary = gw_str_has_prefix(type, "response.reasoning");
        struct up_item *it = item_for(s, ev, summary ? "reasoning" : "message");
        if (!it)
            return -1;
        gw_str_t pt = gw_json_get_str(gw_json_get(ev, "part"), "type");
        ad_part_kind_t k = summary ? AD_PART_SUMMARY_TEXT : gw_str_eq(pt, "refusal") ? AD_PART_REFUSAL
                                                                                      : AD_PART_OUTPUT_TEXT;
        if (check_kind(s, it, kind_for_part(k)) < 0)
            return -1;
        it->part_open = false; /* a new part, even of the same kind */
        return ensure_part(s, it, k);
    }
    if (gw_str_eq(type, "response.output_text.delta") || gw_str_eq(type, "response.refusal.delta") ||
        gw_str_eq(type, "response.reasoning_summary_text.delta") || gw_str_eq(type, "response.reasoning_text.delta")) {
        bool reasoning = gw_str_has_prefix(type, "response.reasoning");
        struct up_item *it = item_for(s, ev, reasoning ? "reasoning" : "message");
        if (!it)
            return -1;
        ad_part_kind_t k = reasoning ? AD_PART_SUMMARY_TEXT
                           : gw_str_eq(type, "response.refusal.delta") ? AD_PART_REFUSAL
                                                                        : AD_PART_OUTPUT_TEXT;
        if (check_kind(s, it, kind_for_part(k)) < 0)
            return -1;
        return text_delta(s, it, k, gw_json_get_str(ev, "delta"));
    }
    if (gw_str_eq(type, "response.output_text.done") || gw_str_eq(type, "response.refusal.done") ||
        gw_str_eq(type, "response.reasoning_summary_text.done") || gw_str_eq(type, "response.reasoning_text.done")) {
        bool reasoning = gw_str_has_prefix(type, "response.reasoning");
        bool refusal = gw_str_eq(type, "response.refusal.done");
        struct up_item *it = item_for(s, ev, reasoning ? "reasoning" : "message");
        if (!it || check_kind(s, it, reasoning ? AD_ITEM_REASONING : AD_ITEM_MESSAGE) < 0)
            return -1;
        return text_done(s, it, reasoning ? AD_PART_SUMMARY_TEXT : refusal ? AD_PART_REFUSAL : AD_PART_OUTPUT_TEXT,
                         gw_json_get_str(ev, refusal ? "refusal" : "text"));
    }
    if (gw_str_eq(type, "response.function_call_arguments.delta")) {
        struct up_item *it = item_for(s, ev, NULL);
        if (!it)
            return -1;
        if (it->kind != AD_ITEM_FUNCTION_CALL)
            return violation(s, "function_call_arguments.delta for an item that is not a function_call");
        gw_str_t d = gw_json_get_str(ev, "delta");
        if (it->oi < 0 || !d.len)
            return 0;
        it->args_chars += d.len;
        return stopped(s, s->em->delta(s->em->ctx, it->oi, d));
    }
    if (gw_str_eq(type, "response.function_call_arguments.done")) {
        struct up_item *it = item_for(s, ev, NULL);
        if (!it || check_kind(s, it, AD_ITEM_FUNCTION_CALL) < 0)
            return -1;
        gw_str_t args = gw_json_get_str(ev, "arguments");
        if (it->oi >= 0 && !it->args_chars && args.len) {
            it->args_chars = args.len;
            return stopped(s, s->em->delta(s->em->ctx, it->oi, args));
        }
        return 0;
    }
    /* content_part.done, summary_part.done: closing happens at item done. Anything else is an
     * event type the renderer passes through on the Databricks route and drops on the OpenAI
     * route, whose clients cannot take it (openai-node throws on unknown types, §7.7). */
    if (gw_str_has_prefix(type, "response.content_part.") ||
        gw_str_has_prefix(type, "response.reasoning_summary_part."))
        return 0;
    return stopped(s, s->em->passthrough(s->em->ctx, ev));
}

static int on_sse(void *ud, gw_str_t event, gw_str_t data)
{
    ad_state_t *s = ud;
    if (s->terminal || s->stopped)
        return 0;
    gw_arena_reset(s->scratch);
    if (gw_str_eq(data, "[DONE]")) {
        /* MLflow streams end here without a terminal event: synthesise completion (§7.7). */
        for (size_t i = 0; i < s->n_items; i++)
            if (!s->items[i].done && s->items[i].oi >= 0 && s->ep->flavor == GW_FLAVOR_OPENAI)
                return violation(s, "stream ended with items still in progress");
        return complete(s, NULL);
    }
    gw_json_t *ev;
    if (gw_json_parse(s->scratch, data.base, data.len, &ev, NULL) < 0)
        return violation(s, "invalid JSON in a stream event");
    (void)event; /* the JSON `type` is authoritative (§4.1) */
    return on_event(s, ev);
}

static void on_comment(void *ud, gw_str_t text)
{
    (void)text;
    ad_state_t *s = ud;
    s->em->heartbeat(s->em->ctx);
}

static ad_state_t *rs_start(gw_arena_t *a, gw_arena_t *scratch, const gw_endpoint_cfg_t *ep, const gw_limits_cfg_t *lim,
                            const ad_emit_t *emit, gw_str_t content_type)
{
    ad_state_t *s = gw_arena_calloc(a, sizeof(*s));
    s->em = emit;
    s->ep = ep;
    s->scratch = scratch;
    s->open_exclusive = -1;
    ad_body_init(&s->body, content_type, lim->max_event_bytes, on_sse, on_comment, s);
    return s;
}

static int rs_feed(ad_state_t *s, const char *data, size_t len)
{
    if (s->stopped)
        return -1;
    if (s->terminal)
        return 0;
    int rc = ad_body_feed(&s->body, data, len);
    if (rc == AD_BODY_TOO_LARGE)
        return violation(s, s->body.json ? "JSON answer exceeds the event size limit"
                                          : "stream event exceeds the size limit");
    return rc < 0 ? -1 : 0;
}

static int rs_finish(ad_state_t *s)
{
    if (s->stopped)
        return -1;
    if (s->terminal)
        return 0;
    if (s->body.json) {
        gw_arena_reset(s->scratch);
        gw_json_t *obj;
        if (ad_body_parse(&s->body, s->scratch, &obj) < 0)
            return violation(s, "invalid JSON answer");
        if (obj->type != GW_JSON_OBJECT)
            return violation(s, "JSON answer is not an object");
        /* A Responses object carries its failure as status + error: complete() keeps its partial
         * output for the table. Other objects ({"error":...}, databricks_output.error) are errors. */
        bool response_obj = gw_str_eq(gw_json_get_str(obj, "object"), "response");
        if (!response_obj && check_error(s, obj, GW_STR_NULL) != 0)
            return -1;
        return complete(s, obj);
    }
    if (!s->begun && !s->n_items)
        return violation(s, "stream ended before any event");
    for (size_t i = 0; i < s->n_items; i++)
        if (!s->items[i].done && s->items[i].oi >= 0) {
            gw_error_t e = {.kind = GW_ERR_UPSTREAM, .message = "upstream stream ended prematurely"};
            s->terminal = s->stopped = true;
            s->em->fail(s->em->ctx, &e);
            return -1;
        }
    /* Ended without a terminal event: completed from the done items (§7.7). */
    gw_arena_reset(s->scratch);
    return complete(s, NULL);
}

static void rs_dispose(ad_state_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_items; i++)
        free(s->items[i].id);
    free(s->items);
    free(s->id_slots);
    ad_body_dispose(&s->body);
}

const ad_vtable_t ad_responses = {
    .name = "responses",
    .path = ad__rs_path,
    .encode_request = ad__rs_encode_request,
    .start = rs_start,
    .feed = rs_feed,
    .finish = rs_finish,
    .dispose = rs_dispose,
};
