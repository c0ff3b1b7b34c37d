/* Differential target for adapters/cc_scan (the ChatCompletions chunk scanner): the same upstream
 * stream goes through the chat_completions adapter twice, with the scanner and with yajl's tree
 * only (ad__cc_scan_off), and the events it emits must be identical, byte for byte. Each chunk
 * the scanner accepts must also be valid JSON to yajl.
 * Input: upstream chunks, one per line (each becomes `data: <line>`), then `data: [DONE]`. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/cc_scan.h"
#include "fuzz.h"
#include "gateway/arena.h"
#include "gateway/log.h"

typedef struct {
    gw_buf_t log;
    int next_oi;
} rec_t;

__attribute__((format(printf, 2, 3))) static void logf_(rec_t *r, const char *fmt, ...)
{
    char tmp[96];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    gw_buf_append(&r->log, tmp, (size_t)n);
}

static void log_str(rec_t *r, gw_str_t s)
{
    logf_(r, " %zu:", s.len);
    gw_buf_append(&r->log, s.base ? s.base : "", s.len);
    gw_buf_append(&r->log, "\n", 1);
}

static int r_begin(void *c)
{
    logf_(c, "begin\n");
    return 0;
}
static int r_item_add(void *c, const ad_item_t *it)
{
    rec_t *r = c;
    logf_(r, "item_add %d %d", (int)it->kind, (int)it->upstream_tool);
    log_str(r, it->call_id);
    log_str(r, it->name);
    return r->next_oi++;
}
static int r_part_add(void *c, int oi, ad_part_kind_t k)
{
    logf_(c, "part_add %d %d\n", oi, (int)k);
    return 0;
}
static int r_delta(void *c, int oi, gw_str_t t)
{
    logf_(c, "delta %d", oi);
    log_str(c, t);
    return 0;
}
static int r_item_done(void *c, int oi, ad_item_status_t st)
{
    logf_(c, "item_done %d %d\n", oi, (int)st);
    return 0;
}
static void r_usage(void *c, const ad_usage_t *u)
{
    logf_(c, "usage %lld %lld %lld %lld %lld\n", (long long)u->input, (long long)u->output, (long long)u->total,
          (long long)u->cached, (long long)u->reasoning);
}
static void r_model(void *c, gw_str_t m)
{
    logf_(c, "model");
    log_str(c, m);
}
static void r_heartbeat(void *c)
{
    logf_(c, "heartbeat\n");
}
static int r_finish(void *c, ad_finish_t how, const char *why)
{
    logf_(c, "finish %d", (int)how);
    log_str(c, gw_str(why ? why : ""));
    return 0;
}
static int r_fail(void *c, const gw_error_t *e)
{
    logf_(c, "fail %d", (int)e->kind);
    log_str(c, gw_str(e->message ? e->message : ""));
    return 0;
}

static void run(const gw_buf_t *body, bool scan_off, rec_t *r)
{
    ad__cc_scan_off = scan_off;
    ad_emit_t em = {.ctx = r,
                    .begin = r_begin,
                    .item_add = r_item_add,
                    .part_add = r_part_add,
                    .delta = r_delta,
                    .item_done = r_item_done,
                    .usage = r_usage,
                    .upstream_model = r_model,
                    .heartbeat = r_heartbeat,
                    .finish = r_finish,
                    .fail = r_fail};
    const ad_vtable_t *ad = ad_for(GW_ADAPTER_CHAT_COMPLETIONS);
    gw_arena_t *a = gw_arena_new(), *scratch = gw_arena_new();
    gw_endpoint_cfg_t ep = {.name = "m", .adapter = GW_ADAPTER_CHAT_COMPLETIONS};
    gw_limits_cfg_t lim = {.max_event_bytes = 1 << 20, .max_output_bytes = 1 << 20};
    ad_state_t *st = ad->start(a, scratch, &ep, &lim, &em, gw_str("text/event-stream"));
    if (ad->feed(st, body->base, body->len) >= 0)
        (void)ad->finish(st);
    ad->dispose(st);
    gw_arena_free(a);
    gw_arena_free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_log_set_level(GW_LOG_ERROR);
    gw_buf_t body;
    gw_buf_init(&body);
    gw_arena_t *scratch = gw_arena_new();
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        /* The scanner may accept only what yajl accepts. */
        cc_chunk_t ck;
        gw_json_t *tree;
        gw_arena_reset(scratch);
        if (cc_scan_chunk(scratch, p, (size_t)(e - p), &ck) == CC_SCAN_OK &&
            gw_json_parse(scratch, p, (size_t)(e - p), &tree, NULL) != 0)
            __builtin_trap();
        gw_buf_append_cstr(&body, "data: ");
        gw_buf_append(&body, p, (size_t)(e - p));
        gw_buf_append_cstr(&body, "\n\n");
        p = nl ? nl + 1 : end;
    }
    gw_buf_append_cstr(&body, "data: [DONE]\n\n");
    rec_t with = {0}, without = {0};
    gw_buf_init(&with.log);
    gw_buf_init(&without.log);
    run(&body, false, &with);
    run(&body, true, &without);
    if (with.log.len != without.log.len || memcmp(with.log.base, without.log.base, with.log.len) != 0) {
        fprintf(stderr, "cc_scan differs from yajl:\n--- scanner\n%.*s--- yajl\n%.*s", (int)with.log.len,
                with.log.base, (int)without.log.len, without.log.base);
        __builtin_trap();
    }
    gw_buf_dispose(&with.log);
    gw_buf_dispose(&without.log);
    gw_buf_dispose(&body);
    gw_arena_free(scratch);
    return 0;
}
