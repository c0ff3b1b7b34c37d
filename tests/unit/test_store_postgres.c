/* The postgres backend of gw_store without a server: the `store` block's dsn (file, then
 * $DATABASE_URL, else an error naming the key), the connection parameters libpq gets for a URI or
 * a key=value DSN (our connect_timeout yields to the DSN's), an unparsable DSN refused at open,
 * and a database that is down at start-up (the store opens failing, and operations fail fast with
 * why "postgres_error"). The backend against a real server: tests/integration/store_pg.test.mjs. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "gateway/config.h"
#include "gateway/store.h"
#include "gateway/store_int.h"

#define EPS "\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://127.0.0.1:1/v1\"}]}]"

static gw_config_t *parse(const char *store, char *err, size_t errlen)
{
    char json[1024];
    snprintf(json, sizeof(json), "{" EPS ",\"store\":%s}", store);
    return gw_config_parse(json, strlen(json), err, errlen);
}

Test(store_postgres, dsn_from_the_file_then_database_url, .timeout = 10)
{
    char err[512] = "";
    unsetenv("DATABASE_URL");
    gw_config_t *c = parse("{\"backend\":\"postgres\",\"dsn\":\"host=file dbname=x\"}", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->store.backend, GW_STORE_POSTGRES);
    cr_assert_str_eq(c->store.dsn, "host=file dbname=x");
    gw_config_free(c);

    cr_assert_null(parse("{\"backend\":\"postgres\"}", err, sizeof(err)));
    cr_assert(strstr(err, "config: store.backend: ") == err, "names the key: %s", err);
    cr_assert_not_null(strstr(err, "DATABASE_URL"), "%s", err);
    cr_assert_null(parse("{\"backend\":\"postgres\",\"dsn\":\"\"}", err, sizeof(err)));
    cr_assert_not_null(strstr(err, "store.dsn"), "%s", err);

    setenv("DATABASE_URL", "postgresql://env@127.0.0.1:5/envdb", 1);
    c = parse("{\"backend\":\"postgres\"}", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->store.dsn, "postgresql://env@127.0.0.1:5/envdb");
    gw_config_free(c);
    c = parse("{\"backend\":\"postgres\",\"dsn\":\"host=file\"}", err, sizeof(err));
    cr_assert_str_eq(c->store.dsn, "host=file", "the file wins over the environment");
    gw_config_free(c);
    unsetenv("DATABASE_URL");
}

/* The value libpq settled on for keyword k, with the parameters the backend passes for dsn. The
 * connection is only started (non-blocking, to a loopback port), never used. */
static void effective(const char *dsn, const char *k, char *out, size_t n)
{
    const char *kw[GW__STORE_PG_PARAMS], *val[GW__STORE_PG_PARAMS];
    gw__store_pg_params(dsn, kw, val);
    cr_assert_null(kw[GW__STORE_PG_PARAMS - 1], "NULL-terminated");
    PGconn *c = PQconnectStartParams(kw, val, 1);
    cr_assert_not_null(c);
    PQconninfoOption *o = PQconninfo(c);
    cr_assert_not_null(o, "options of %s", dsn);
    snprintf(out, n, "(unset)");
    for (PQconninfoOption *p = o; p->keyword; p++)
        if (strcmp(p->keyword, k) == 0 && p->val)
            snprintf(out, n, "%s", p->val);
    PQconninfoFree(o);
    PQfinish(c);
}

Test(store_postgres, connect_params_for_uri_and_keyword_dsns, .timeout = 10)
{
    char v[128];
    const char *uri = "postgresql://u@127.0.0.1:1/db1";
    effective(uri, "connect_timeout", v, sizeof(v));
    cr_assert_str_eq(v, "5", "a DSN without one gets connect_timeout=5");
    effective(uri, "dbname", v, sizeof(v));
    cr_assert_str_eq(v, "db1", "the URI is expanded, not taken as a database name");
    effective(uri, "client_encoding", v, sizeof(v));
    cr_assert_str_eq(v, "UTF8");
    effective("postgresql://u@127.0.0.1:1/db1?connect_timeout=2&client_encoding=LATIN1", "connect_timeout", v,
              sizeof(v));
    cr_assert_str_eq(v, "2", "the URI's own connect_timeout wins");
    effective("postgresql://u@127.0.0.1:1/db1?client_encoding=LATIN1", "client_encoding", v, sizeof(v));
    cr_assert_str_eq(v, "UTF8", "what agate needs overrides the DSN");

    const char *kv = "host=127.0.0.1 port=1 user=u dbname=db2";
    effective(kv, "connect_timeout", v, sizeof(v));
    cr_assert_str_eq(v, "5");
    effective(kv, "dbname", v, sizeof(v));
    cr_assert_str_eq(v, "db2");
    effective("host=127.0.0.1 port=1 dbname=db2 connect_timeout=7", "connect_timeout", v, sizeof(v));
    cr_assert_str_eq(v, "7", "the key=value DSN's own connect_timeout wins");
    effective(kv, "fallback_application_name", v, sizeof(v));
    cr_assert_str_eq(v, "agate-store", "a fallback application name");
}

/* A loopback port nothing listens on (bound, then released). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static gw_store_cfg_t pg_cfg(const char *dsn)
{
    return (gw_store_cfg_t){.backend = GW_STORE_POSTGRES, .dsn = dsn, .store_by_default = true,
                            .write_timeout_ms = 2000, .ttl_days = 30, .purge_interval_ms = 60000,
                            .max_response_bytes = 1 << 20};
}

Test(store_postgres, unparsable_dsn_is_a_startup_error, .timeout = 10)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_metrics_t *m = gw_metrics_new();
    gw_store_cfg_t cfg = pg_cfg("postgresql://u:secret@127.0.0.1:1/db?nosuchoption=1");
    char err[256] = "";
    cr_assert_null(gw_store_new(&loop, &cfg, m, err, sizeof(err)));
    cr_assert(strncmp(err, "store: dsn: ", 12) == 0, "%s", err);
    cr_assert_null(strstr(err, "secret"), "the DSN (its password) is not repeated: %s", err);
    gw_metrics_free(m);
    uv_loop_close(&loop);
}

typedef struct {
    bool done;
    gw_store_status_t status;
    const char *why;
} got_t;

static void on_done(const gw_store_result_t *res, void *ud)
{
    got_t *g = ud;
    g->done = true;
    g->status = res->status;
    g->why = res->why;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(store_postgres, database_down_at_start_up, .timeout = 20)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gw_metrics_t *m = gw_metrics_new();
    char dsn[128];
    snprintf(dsn, sizeof(dsn), "postgresql://agate@127.0.0.1:%d/postgres", dead_port());
    gw_store_cfg_t cfg = pg_cfg(dsn);
    char err[256] = "";
    double t0 = now_s();
    gw_store_t *s = gw_store_new(&loop, &cfg, m, err, sizeof(err));
    cr_assert_not_null(s, "starts without its database: %s", err);
    cr_assert(now_s() - t0 < 6, "open is bounded by connect_timeout");
    cr_assert_not(gw_store_ready(s), "failing from the start (/readyz 503)");
    cr_assert_str_eq(gw_store_state(s), "failing");
    /* Operations fail (fast: no new connection attempt within RETRY_MS of the last), never hang. */
    for (int k = 0; k < 3; k++) {
        got_t g = {0};
        gw_store_req_t get = {.kind = GW_STORE_GET_RESPONSE, .id = GW_STR_LIT("resp_x")};
        gw_store_submit(s, &get, on_done, &g);
        for (int i = 0; i < 4000 && !g.done; i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            if (!g.done)
                usleep(1000);
        }
        cr_assert(g.done, "the operation finished");
        cr_assert_eq(g.status, GW_STORE_FAILED);
        cr_assert_str_eq(g.why, "postgres_error");
    }
    gw_store_free(s);
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    gw_metrics_free(m);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
