/* gw_store (SQLite backend, a real database file) and gw_recall without a store. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/recall.h"
#include "gateway/store.h"

typedef struct {
    bool done;
    gw_store_status_t status;
    char body[512];
    size_t n_items;
} got_t;

static void on_done(const gw_store_result_t *res, void *ud)
{
    got_t *g = ud;
    g->done = true;
    g->status = res->status;
    g->n_items = res->n_items;
    snprintf(g->body, sizeof(g->body), "%.*s", (int)res->response.len, res->response.base ? res->response.base : "");
}

/* Runs the loop until the operation's callback fired (bounded: 2000 turns of at most 5 ms). */
static got_t run(uv_loop_t *loop, gw_store_t *s, const gw_store_req_t *q)
{
    got_t g = {0};
    gw_store_submit(s, q, on_done, &g);
    for (int i = 0; i < 2000 && !g.done; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!g.done)
            usleep(1000);
    }
    cr_assert(g.done, "store operation did not finish");
    return g;
}

static gw_store_t *open_store(uv_loop_t *loop, gw_metrics_t *m, char *dir)
{
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/sub/store.db", dir);
    gw_store_cfg_t cfg = {.backend = GW_STORE_SQLITE, .path = strdup(path), .store_by_default = true,
                          .write_timeout_ms = 2000, .ttl_days = 30, .purge_interval_ms = 60000,
                          .max_response_bytes = 1 << 20};
    char err[256] = "";
    gw_store_t *s = gw_store_new(loop, &cfg, m, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    return s;
}

static void close_store(uv_loop_t *loop, gw_store_t *s)
{
    gw_store_free(s);
    for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

Test(store, owner_filters_every_query, .timeout = 20)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_metrics_t *m = gw_metrics_new();
    char dir[] = "/tmp/agate-store-XXXXXX";
    gw_store_t *s = open_store(&loop, m, dir);
    gw_store_item_t item = {GW_STR_LIT("msg_1"), GW_STR_LIT("{\"id\":\"msg_1\",\"type\":\"message\"}")};
    gw_store_req_t put = {.kind = GW_STORE_PUT_RESPONSE, .owner = "alice", .id = GW_STR_LIT("resp_a"),
                          .created_at = 1, .response = GW_STR_LIT("{\"id\":\"resp_a\"}"),
                          .input_items = GW_STR_LIT("[]"), .context = GW_STR_LIT("[]"), .items = &item, .n_items = 1};
    cr_assert_eq(run(&loop, s, &put).status, GW_STORE_OK);

    gw_store_req_t get = {.kind = GW_STORE_GET_RESPONSE, .owner = "alice", .id = GW_STR_LIT("resp_a")};
    got_t g = run(&loop, s, &get);
    cr_assert_eq(g.status, GW_STORE_OK);
    cr_assert_str_eq(g.body, "{\"id\":\"resp_a\"}");
    /* Another requester, and the anonymous owner, never see alice's objects. */
    get.owner = "bob";
    cr_assert_eq(run(&loop, s, &get).status, GW_STORE_NOT_FOUND);
    get.owner = NULL;
    cr_assert_eq(run(&loop, s, &get).status, GW_STORE_NOT_FOUND);
    gw_store_req_t items = {.kind = GW_STORE_GET_ITEMS, .owner = "bob", .items = &item, .n_items = 1};
    cr_assert_eq(run(&loop, s, &items).n_items, 0);
    items.owner = "alice";
    cr_assert_eq(run(&loop, s, &items).n_items, 1);
    gw_store_req_t del = {.kind = GW_STORE_DELETE_RESPONSE, .owner = "bob", .id = GW_STR_LIT("resp_a")};
    cr_assert_eq(run(&loop, s, &del).status, GW_STORE_NOT_FOUND);
    get.owner = "alice";
    cr_assert_eq(run(&loop, s, &get).status, GW_STORE_OK, "bob's delete left alice's response alone");
    del.owner = "alice";
    cr_assert_eq(run(&loop, s, &del).status, GW_STORE_OK);
    cr_assert_eq(run(&loop, s, &get).status, GW_STORE_NOT_FOUND);
    cr_assert_eq(run(&loop, s, &items).n_items, 0, "deleting a response drops the items it indexed");
    close_store(&loop, s);
    gw_metrics_free(m);
    uv_loop_close(&loop);
}

Test(store, duplicate_id_write_fails_cleanly, .timeout = 20)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_metrics_t *m = gw_metrics_new();
    char dir[] = "/tmp/agate-store-XXXXXX";
    gw_store_t *s = open_store(&loop, m, dir);
    gw_store_req_t put = {.kind = GW_STORE_PUT_RESPONSE, .id = GW_STR_LIT("resp_d"), .response = GW_STR_LIT("{}"),
                          .input_items = GW_STR_LIT("[]"), .context = GW_STR_LIT("[]")};
    cr_assert_eq(run(&loop, s, &put).status, GW_STORE_OK);
    cr_assert_eq(run(&loop, s, &put).status, GW_STORE_FAILED);
    cr_assert(!gw_store_ready(s));
    gw_store_req_t get = {.kind = GW_STORE_GET_RESPONSE, .id = GW_STR_LIT("resp_d")};
    cr_assert_eq(run(&loop, s, &get).status, GW_STORE_OK, "the anonymous owner reads its own response");
    cr_assert(gw_store_ready(s));
    close_store(&loop, s);
    gw_metrics_free(m);
    uv_loop_close(&loop);
}

static void never(void *ud, const gw_error_t *err)
{
    (void)ud;
    (void)err;
    cr_assert_fail("no callback without a store");
}

/* Without a store, every stateful field is the stateless 400 naming what to do instead. */
Test(recall, without_a_store_stateful_requests_are_refused, .timeout = 10)
{
    static const struct {
        const char *body, *param, *says;
    } cases[] = {
        {"{\"model\":\"m\",\"input\":\"hi\",\"previous_response_id\":\"resp_1\"}", "previous_response_id",
         "full conversation"},
        {"{\"model\":\"m\",\"input\":\"hi\",\"conversation\":\"conv_1\"}", "conversation", "configure a `store`"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"x\"},{\"type\":\"item_reference\",\"id\":\"m\"}]}",
         "input[1]", "full items"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_arena_t *a = gw_arena_new();
        gw_request_t r;
        gw_error_t err = {0};
        cr_assert_eq(gw_request_parse(a, gw_str(cases[i].body), false, &r, &err), 0, "%s", err.message);
        gw_recall_t *rc;
        cr_assert_eq(gw_recall_resolve(&rc, NULL, a, NULL, "resp_x", &r, never, NULL, &err), -1, "%s", cases[i].body);
        cr_assert_eq(err.kind, GW_ERR_UNSUPPORTED);
        cr_assert_str_eq(err.param, cases[i].param);
        cr_assert_not_null(strstr(err.message, cases[i].says), "%s", err.message);
        cr_assert(!r.stored);
        gw_arena_free(a);
    }
}
