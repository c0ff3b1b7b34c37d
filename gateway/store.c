/* gw_store: operation queue, timeouts, purge schedule and counters; the backend does the SQL
 * (store_sqlite.c, store_postgres.c). Operations run one at a time in submission order (see
 * store.h for why). */
#include "gateway/store.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/log.h"
#include "gateway/store_int.h"

struct gw_store {
    uv_loop_t *loop;
    gw_store_cfg_t cfg;
    const gw__store_backend_t *be;
    void *db;                   /** backend handle; closed when the last operation is over */
    gw__store_op_t *head, *tail; /** queued, head running when running */
    bool running, closing, purging, purge_closed;
    uv_timer_t purge;           /** next purge batch */
    bool last_ok;
    gw_metric_t *ops, *failures, *purged;
};

/* A failing store checks itself again this soon (one purge batch), whatever the purge interval:
 * with no traffic (a load balancer that took it out on /readyz), nothing else would. */
#define RECHECK_MS 1000

static void start_next(gw_store_t *s);
static void on_purge(uv_timer_t *t);

static uint64_t recheck_ms(const gw_store_t *s)
{
    return (uint64_t)(s->cfg.purge_interval_ms < RECHECK_MS ? s->cfg.purge_interval_ms : RECHECK_MS);
}

static void store_free_now(gw_store_t *s)
{
    s->be->close(s->db);
    free(s);
}

static void on_purge_closed(uv_handle_t *h)
{
    gw_store_t *s = h->data;
    s->purge_closed = true;
    if (!s->running && !s->head)
        store_free_now(s);
}

static void op_free(gw__store_op_t *op)
{
    gw_buf_dispose(&op->in);
    gw_buf_dispose(&op->out);
    free(op->items);
    free(op->item_off);
    free(op->item_len);
    free(op->id_off);
    free(op->id_len);
    free(op);
}

static void on_op_timer_closed(uv_handle_t *h)
{
    gw__store_op_t *op = h->data;
    op->timer_open = false;
    if (op->work_done)
        op_free(op);
}

static const char *op_name(gw_store_op_kind_t k)
{
    switch (k) {
    case GW_STORE_GET_RESPONSE:
        return "get_response";
    case GW_STORE_GET_ITEMS:
        return "get_items";
    case GW_STORE_PUT_RESPONSE:
        return "put_response";
    case GW_STORE_DELETE_RESPONSE:
        return "delete_response";
    case GW_STORE_CONV_CREATE:
    case GW_STORE_CONV_UPDATE:
    case GW_STORE_CONV_DELETE:
    case GW_STORE_CONV_APPEND:
    case GW_STORE_CONV_ITEM_DELETE:
        return "conversation_write";
    case GW_STORE_CONV_GET:
    case GW_STORE_CONV_ITEMS:
        return "conversation_read";
    default:
        return "purge";
    }
}

/* Exactly once per operation: from the work's end, or earlier from its timeout. */
static void answer(gw__store_op_t *op)
{
    if (op->answered)
        return;
    op->answered = true;
    if (op->timer_open)
        uv_timer_stop(&op->timer);
    if (!op->cb)
        return;
    gw_store_result_t res = {.status = op->status, .why = op->why};
    if (op->status == GW_STORE_OK && op->q.kind == GW_STORE_GET_RESPONSE) {
        res.response = gw_str_n(op->out.base + op->off[0], op->len[0]);
        res.input_items = gw_str_n(op->out.base + op->off[1], op->len[1]);
        res.context = gw_str_n(op->out.base + op->off[2], op->len[2]);
    }
    if (op->status == GW_STORE_OK && op->q.kind >= GW_STORE_CONV_CREATE) {
        res.context = gw_str_n(op->out.base + op->off[2], op->len[2]);
        res.metadata = gw_str_n(op->out.base + op->off[3], op->len[3]);
        res.created_at = op->created_at;
    }
    gw_store_item_t *found = NULL;
    if (op->status == GW_STORE_OK && op->q.kind == GW_STORE_GET_ITEMS && op->n_found) {
        found = gw_xcalloc(op->n_found, sizeof(*found));
        for (size_t i = 0; i < op->n_found; i++)
            found[i] = (gw_store_item_t){gw_str_n(op->out.base + op->id_off[i], op->id_len[i]),
                                         gw_str_n(op->out.base + op->item_off[i], op->item_len[i])};
        res.items = found;
        res.n_items = op->n_found;
    }
    op->cb(&res, op->ud);
    free(found);
}

static void on_op_timeout(uv_timer_t *t)
{
    gw__store_op_t *op = t->data;
    op->status = GW_STORE_FAILED;
    op->why = "timeout";
    if (!op->s->closing)
        gw_metric_add(op->s->ops, "timeout", 1);
    answer(op);
}

/* Done with op: after its timer (if any) has closed. */
static void op_release(gw__store_op_t *op)
{
    if (op->timer_open)
        uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
    else
        op_free(op);
}

static void on_work(uv_work_t *w)
{
    gw__store_op_t *op = w->data;
    op->s->be->run(op->s->db, op);
}

static void on_work_done(uv_work_t *w, int status)
{
    gw__store_op_t *op = w->data;
    gw_store_t *s = op->s;
    if (status < 0) {
        op->status = GW_STORE_FAILED;
        op->why = "cancelled";
    }
    s->head = op->next;
    if (!s->head)
        s->tail = NULL;
    s->running = false;
    op->work_done = true;
    s->last_ok = op->status != GW_STORE_FAILED;
    if (s->closing) {
        /* The metrics registry may be gone (gw_store_free); every caller was answered there. */
        op_release(op);
        while (s->head) { /* queued after the close: never run */
            gw__store_op_t *next = s->head->next;
            s->head->work_done = true;
            op_release(s->head);
            s->head = next;
        }
        s->tail = NULL;
        if (s->purge_closed)
            store_free_now(s);
        return;
    }
    if (op->q.kind == GW__STORE_PURGE) {
        s->purging = false;
        if (op->purged) {
            gw_metric_add(s->purged, NULL, op->purged);
            gw_log(GW_LOG_INFO, NULL, "event=store_purged objects=%zu", op->purged);
        }
        /* A full batch: more may be due; take the next one soon, leaving the loop to requests. */
        if (op->purged >= GW__STORE_PURGE_BATCH)
            uv_timer_start(&s->purge, on_purge, 10, (uint64_t)s->cfg.purge_interval_ms);
    } else if (!op->answered) {
        gw_metric_add(s->ops, op->status == GW_STORE_FAILED ? "error" : op_name(op->q.kind), 1);
    }
    if (op->status == GW_STORE_FAILED && op->why && !op->answered)
        gw_log(GW_LOG_WARN, NULL, "event=store_failed op=%s why=%s", op_name(op->q.kind), op->why);
    if (!s->last_ok)
        uv_timer_start(&s->purge, on_purge, recheck_ms(s), (uint64_t)s->cfg.purge_interval_ms);
    answer(op);
    op_release(op);
    start_next(s);
}

static void start_next(gw_store_t *s)
{
    if (s->running || !s->head)
        return;
    s->running = true;
    s->head->work.data = s->head;
    /* Fails only for a NULL work callback (libuv's EINVAL): an invariant, not a runtime case. */
    int rc = uv_queue_work(s->loop, &s->head->work, on_work, on_work_done);
    assert(rc == 0);
    (void)rc;
}

static void enqueue(gw_store_t *s, gw__store_op_t *op)
{
    op->s = s;
    op->status = GW_STORE_OK;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    start_next(s);
}

/* Copies a view into op->in; returns its offset (pointers are fixed once every copy is made). */
static size_t keep(gw__store_op_t *op, gw_str_t v)
{
    size_t at = op->in.len;
    if (v.len)
        gw_buf_append(&op->in, v.base, v.len);
    return at;
}

void gw_store_submit(gw_store_t *s, const gw_store_req_t *q, gw_store_cb cb, void *ud)
{
    gw__store_op_t *op = gw_xcalloc(1, sizeof(*op));
    op->q = *q;
    op->cb = cb;
    op->ud = ud;
    const char *owner = q->owner ? q->owner : "";
    size_t o_owner = keep(op, gw_str(owner));
    gw_buf_append(&op->in, "", 1);
    size_t o_id = keep(op, q->id), o_resp = keep(op, q->response), o_in = keep(op, q->input_items),
           o_ctx = keep(op, q->context), o_conv = keep(op, q->conversation), o_meta = keep(op, q->metadata);
    size_t *io = NULL, *jo = NULL;
    if (q->n_items) {
        op->items = gw_xcalloc(q->n_items, sizeof(*op->items));
        io = gw_xcalloc(q->n_items, sizeof(*io));
        jo = gw_xcalloc(q->n_items, sizeof(*jo));
        for (size_t i = 0; i < q->n_items; i++) {
            io[i] = keep(op, q->items[i].id);
            jo[i] = keep(op, q->items[i].json);
        }
    }
    const char *b = op->in.base;
    op->q.owner = b + o_owner;
    op->q.id = gw_str_n(b + o_id, q->id.len);
    op->q.response = gw_str_n(b + o_resp, q->response.len);
    op->q.input_items = gw_str_n(b + o_in, q->input_items.len);
    op->q.context = gw_str_n(b + o_ctx, q->context.len);
    op->q.conversation = q->conversation.len ? gw_str_n(b + o_conv, q->conversation.len) : GW_STR_NULL;
    op->q.metadata = gw_str_n(b + o_meta, q->metadata.len);
    for (size_t i = 0; i < q->n_items; i++)
        op->items[i] = (gw_store_item_t){gw_str_n(b + io[i], q->items[i].id.len),
                                         gw_str_n(b + jo[i], q->items[i].json.len)};
    op->q.items = op->items;
    free(io);
    free(jo);
    if (q->kind == GW_STORE_GET_ITEMS && q->n_items) {
        op->item_off = gw_xcalloc(q->n_items, sizeof(size_t));
        op->item_len = gw_xcalloc(q->n_items, sizeof(size_t));
        op->id_off = gw_xcalloc(q->n_items, sizeof(size_t));
        op->id_len = gw_xcalloc(q->n_items, sizeof(size_t));
    }
    if (q->timeout_ms > 0) {
        uv_timer_init(s->loop, &op->timer);
        op->timer.data = op;
        op->timer_open = true;
        uv_timer_start(&op->timer, on_op_timeout, (uint64_t)q->timeout_ms, 0);
    }
    enqueue(s, op);
}

void gw__store_out_field(gw__store_op_t *op, int field, const void *p, size_t n)
{
    op->off[field] = op->out.len;
    op->len[field] = n;
    if (n)
        gw_buf_append(&op->out, p, n);
}

void gw__store_out_item(gw__store_op_t *op, const void *id, size_t id_n, const void *json, size_t n)
{
    size_t i = op->n_found++;
    op->id_off[i] = op->out.len;
    op->id_len[i] = id_n;
    gw_buf_append(&op->out, id, id_n);
    op->item_off[i] = op->out.len;
    op->item_len[i] = n;
    gw_buf_append(&op->out, json, n);
}

/* Purge tick: one batch of expired objects per tick, only when the queue is idle. */
static void on_purge(uv_timer_t *t)
{
    gw_store_t *s = t->data;
    if (s->purging || s->closing)
        return;
    s->purging = true;
    gw__store_op_t *op = gw_xcalloc(1, sizeof(*op));
    op->q.kind = GW__STORE_PURGE;
    int64_t ttl = s->cfg.ttl_seconds > 0 ? s->cfg.ttl_seconds : (int64_t)s->cfg.ttl_days * 86400;
    op->purge_before = (int64_t)time(NULL) - ttl;
    enqueue(s, op);
}

static void collect_state(gw_buf_t *b, void *ud)
{
    const gw_store_t *s = ud;
    size_t queued = 0;
    for (const gw__store_op_t *op = s->head; op; op = op->next)
        queued++;
    gw_buf_appendf(b,
                   "# HELP agate_store_up 1 while the response store's last operation succeeded.\n"
                   "# TYPE agate_store_up gauge\nagate_store_up %d\n"
                   "# HELP agate_store_queue Response-store operations queued or running.\n"
                   "# TYPE agate_store_queue gauge\nagate_store_queue %zu\n",
                   s->last_ok ? 1 : 0, queued);
}

gw_store_t *gw_store_new(uv_loop_t *loop, const gw_store_cfg_t *cfg, gw_metrics_t *metrics, char *err,
                         size_t errlen)
{
    const gw__store_backend_t *be = cfg->backend == GW_STORE_SQLITE     ? &gw__store_sqlite
                                    : cfg->backend == GW_STORE_POSTGRES ? &gw__store_postgres
                                                                        : NULL;
    if (!be) {
        snprintf(err, errlen, "store: backend not available");
        return NULL;
    }
    void *db = be->open(cfg, err, errlen);
    if (!db)
        return NULL;
    gw_store_t *s = gw_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = *cfg;
    s->be = be;
    s->db = db;
    s->last_ok = !be->up || be->up(db);
    s->ops = gw_metrics_counter(metrics, "agate_store_operations_total",
                                "Response-store operations by kind (error, timeout: failed ones).", "op");
    s->failures = gw_metrics_counter(metrics, "agate_store_write_failures_total",
                                     "Responses answered but not stored, by reason.", "reason");
    s->purged = gw_metrics_counter(metrics, "agate_store_purged_total",
                                   "Stored responses deleted by the ttl purge.", NULL);
    gw_metric_touch(s->failures, "error");
    gw_metric_touch(s->failures, "timeout");
    gw_metric_touch(s->failures, "too_large");
    gw_metric_touch(s->purged, NULL);
    gw_metrics_collector(metrics, collect_state, s);
    uv_timer_init(loop, &s->purge);
    s->purge.data = s;
    uv_timer_start(&s->purge, on_purge, s->last_ok ? (uint64_t)cfg->purge_interval_ms : recheck_ms(s),
                   (uint64_t)cfg->purge_interval_ms);
    uv_unref((uv_handle_t *)&s->purge);
    return s;
}

void gw_store_free(gw_store_t *s)
{
    if (!s)
        return;
    s->closing = true;
    /* Callers are answered now, while what they point to still exists (a call aborted at exit
     * waits for its write); the operation running finishes on its thread, the rest never runs. */
    for (gw__store_op_t *op = s->head; op; op = op->next) {
        op->status = GW_STORE_FAILED;
        op->why = "closing";
        answer(op);
    }
    if (!s->running) {
        while (s->head) {
            gw__store_op_t *next = s->head->next;
            s->head->work_done = true;
            op_release(s->head);
            s->head = next;
        }
        s->tail = NULL;
    }
    uv_close((uv_handle_t *)&s->purge, on_purge_closed);
}

void gw_store_count_failure(gw_store_t *s, const char *reason)
{
    gw_metric_add(s->failures, reason, 1);
}

bool gw_store_ready(const gw_store_t *s)
{
    return s->last_ok;
}

const char *gw_store_state(const gw_store_t *s)
{
    return s->last_ok ? "ok" : "failing";
}

const gw_store_cfg_t *gw_store_cfg(const gw_store_t *s)
{
    return &s->cfg;
}
