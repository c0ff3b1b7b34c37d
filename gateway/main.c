/* agate: flags, config, signals, the loop. Nothing else. */
#include <curl/curl.h>
#include <getopt.h>
#include <malloc.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/id.h"
#include "gateway/keys.h"
#include "gateway/ratelimit.h"
#include "gateway/sha256.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/server.h"
#include "tables/sink.h"

/* After the drain bound (limits.drain_timeout_ms) requests still running are told to end now
 * (GW_REQ_EV_SHUTDOWN): this long for their terminal events to be written before the connections
 * are closed. */
#define ABORT_GRACE_MS 1000

/* Used when no --config is given: the bundled demo upstream (`make run` starts it) and JSONL
 * tables under ./var/tables. */
static const char default_config[] =
    "{\"listen\":\"127.0.0.1:8080\","
    "\"endpoints\":[{\"name\":\"demo\",\"adapter\":\"chat_completions\","
    "\"upstreams\":[{\"url\":\"http://127.0.0.1:9100/v1\"}],\"model\":\"mock-model\"}],"
    "\"tables\":{\"sink\":\"jsonl\",\"dir\":\"./var/tables\"}}";

static const char usage[] =
    "usage: agate [--config FILE] [--workers N] [--log-level debug|info|warn|error]\n"
    "       agate --check-config FILE\n"
    "       agate --new-key NAME [--group G]...\n"
    "       agate --help | --version\n"
    "\n"
    "An event-driven gateway: the OpenAI Responses API (/v1/responses) and the Databricks\n"
    "ResponsesAgent route (/serving-endpoints/{name}/invocations) in front of upstreams that\n"
    "speak ChatCompletions (adapter chat_completions) or Responses (adapter responses: OpenAI\n"
    "or MLflow flavour), with streaming translation and inference tables written to JSONL\n"
    "files (tables.sink jsonl) or PostgreSQL (tables.sink postgres, spooled while it is down);\n"
    "OpenTelemetry traces exported over OTLP/HTTP when the config has a tracing block.\n"
    "With a `store` block (SQLite, or PostgreSQL shared by a fleet: store.backend postgres,\n"
    "store.dsn or DATABASE_URL), responses are stored for previous_response_id,\n"
    "item_reference, conversations and GET|DELETE /v1/responses/{id}.\n"
    "\n"
    "  --config FILE        JSON configuration (see README.md); without it agate serves the\n"
    "                       embedded demo config (upstream http://127.0.0.1:9100/v1, tables in\n"
    "                       ./var/tables)\n"
    "  --check-config FILE  validate FILE, print the first problem with its key, exit 0 or 1\n"
    "  --workers N          N worker processes (1..64, default 1), each one event loop, sharing\n"
    "                       the listening socket; the parent restarts a worker that dies\n"
    "  --log-level LEVEL    override the config's log_level\n"
    "  --new-key NAME       print a new random API key for requester NAME (line 1) and the line to\n"
    "                       add to the keys file (auth.keys_file; line 2: only the key's SHA-256);\n"
    "                       the key is shown once and never stored. --group G (repeatable) adds a\n"
    "                       group to the line\n"
    "  --help, --version\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain in-flight requests and flush tables, then exit;\n"
    "SIGHUP reloads the config file and the keys file (requests in flight keep the old config;\n"
    "the store stays).\n";

/* --new-key: 32 random bytes from the CSPRNG as "agk_" + 64 hex; the keys-file line holds only
 * the hash. Nothing is written anywhere but stdout. */
static int new_key(const char *name, const char **groups, int n_groups)
{
    if (!gw_keys_valid_name(name, strlen(name))) {
        fprintf(stderr, "agate: --new-key NAME must be 1..256 printable bytes without quotes\n");
        return 2;
    }
    uint8_t raw[32], sha[32];
    gw_id_random(raw, sizeof(raw));
    char key[4 + 65], hex[65];
    memcpy(key, "agk_", 4);
    gw_sha256_hex(raw, key + 4);
    gw_sha256(key, strlen(key), sha);
    gw_sha256_hex(sha, hex);
    printf("%s\n{\"key_sha256\":\"%s\",\"requester\":\"%s\"", key, hex, name);
    if (n_groups) {
        printf(",\"groups\":[");
        for (int i = 0; i < n_groups; i++)
            printf("%s\"%s\"", i ? "," : "", groups[i]);
        printf("]");
    }
    printf("}\n");
    return 0;
}

struct app {
    uv_loop_t *loop;
    const char *config_path;
    gw_config_t *cfg;
    /** Configs replaced by SIGHUP, owned here and freed at exit: in-flight calls, the proxy's
     * retired endpoint states and the sink (built from the first config) may still point into
     * them. Grows by one config per reload (no cap: a fixed array refused the 17th reload). */
    gw_config_t **old_cfgs;
    size_t n_old, cap_old;
    gw_server_t *server;
    gw_proxy_t *proxy;
    tb_sink_t *sink;
    gw_alog_t *alog; /** NULL when access_log is off; fixed for the process, reopened on SIGHUP */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain_timer;
    uv_check_t idle_check; /** after the server closed: waits for the proxy's last call */
    bool stopping, aborting;
    const char *log_override;
};

static void apply_log_level(struct app *a)
{
    gw_log_level_t lvl;
    const char *want = a->log_override ? a->log_override : a->cfg->log_level;
    if (gw_log_level_parse(want, &lvl) == 0)
        gw_log_set_level(lvl);
}

static void on_sink_closed(void *ud)
{
    struct app *a = ud;
    a->sink = NULL;
    uv_stop(a->loop);
}

static void close_sink(struct app *a)
{
    uv_check_stop(&a->idle_check);
    if (a->sink)
        tb_sink_close(a->sink, on_sink_closed, a);
    else
        uv_stop(a->loop);
}

/* A call writes its table row only once its last handle (timers, upstream transfer) has closed,
 * which can be after its client connection is gone: the sink is closed after the proxy's last
 * call, never before (closing it first dropped the last row with reason=closed). Checked once
 * per loop turn; the loop turns on exactly the close callbacks and transfers those calls wait for. */
static void on_idle_check(uv_check_t *h)
{
    struct app *a = h->data;
    if (gw_proxy_active(a->proxy) == 0)
        close_sink(a);
}

static void finish_shutdown(struct app *a)
{
    uv_timer_stop(&a->drain_timer);
    if (a->server) {
        gw_server_close(a->server); /* every call still running gets GW_REQ_EV_CLOSED now */
        a->server = NULL;
    }
    if (gw_proxy_active(a->proxy) == 0)
        close_sink(a);
    else
        uv_check_start(&a->idle_check, on_idle_check);
}

static void on_drained(void *ud)
{
    finish_shutdown(ud);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct app *a = t->data;
    if (a->aborting) { /* the grace after GW_REQ_EV_SHUTDOWN is over too */
        gw_log(GW_LOG_WARN, NULL, "event=abort_grace_over active=%zu connections=%zu", gw_proxy_active(a->proxy),
               gw_server_connections(a->server));
        finish_shutdown(a);
        return;
    }
    gw_log(GW_LOG_WARN, NULL, "event=drain_timeout active=%zu action=abort", gw_proxy_active(a->proxy));
    a->aborting = true;
    uv_timer_start(&a->drain_timer, on_drain_timeout, ABORT_GRACE_MS, 0);
    gw_server_abort(a->server); /* on_drained still fires if they all end within the grace */
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    if (a->stopping) {
        gw_log(GW_LOG_INFO, NULL, "event=shutdown_in_progress signal=%d", signum);
        return;
    }
    a->stopping = true;
    gw_log(GW_LOG_INFO, NULL, "event=shutdown signal=%d active=%zu", signum, gw_proxy_active(a->proxy));
    /* SIGTERM/SIGINT stay handled (a repeat is ignored above): stopping their handles would
     * restore the default action, and a second SIGTERM during the drain would kill the process
     * with its rows still queued. */
    uv_signal_stop(&a->sighup);
    uv_timer_start(&a->drain_timer, on_drain_timeout, (uint64_t)a->cfg->limits.drain_timeout_ms, 0);
    gw_server_drain(a->server, on_drained, a);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct app *a = s->data;
    gw_alog_reopen(a->alog); /* logrotate: even when the config cannot be reloaded */
    if (!a->config_path)
        return;
    char err[512];
    gw_config_t *c = gw_config_load(a->config_path, err, sizeof(err));
    if (!c) {
        gw_log(GW_LOG_ERROR, NULL, "event=reload_failed error=\"%s\"", err);
        return;
    }
    if (a->n_old == a->cap_old) {
        size_t cap = a->cap_old ? a->cap_old * 2 : 16;
        gw_config_t **n = realloc(a->old_cfgs, cap * sizeof(*n));
        if (!n) {
            gw_log(GW_LOG_ERROR, NULL, "event=reload_failed error=\"out of memory\"");
            gw_config_free(c);
            return;
        }
        a->old_cfgs = n;
        a->cap_old = cap;
    }
    /* Listen address and table sink are fixed for the process; the rest applies to new requests. */
    a->old_cfgs[a->n_old++] = a->cfg;
    a->cfg = c;
    gw_proxy_set_config(a->proxy, c);
    gw_server_set_limits(a->server, &c->limits);
    apply_log_level(a);
    gw_log(GW_LOG_INFO, NULL, "event=reloaded config_version=%s reloads=%zu", c->version, a->n_old);
}

/* --workers: the parent only forks, forwards signals and restarts workers that die; it never
 * runs a loop (a loop must not cross fork). Returns the worker number (1..n) in a child, -1 in
 * the parent after a clean stop, -2 if a worker could not be started. */
static volatile sig_atomic_t got_signal;

static void on_parent_signal(int sig)
{
    got_signal = sig;
}

static int supervise(int n)
{
    pid_t pids[64] = {0};
    struct sigaction sa = {0};
    sa.sa_handler = on_parent_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    bool stopping = false;
    for (;;) {
        for (int i = 0; i < n && !stopping; i++) {
            if (pids[i] > 0)
                continue;
            pid_t pid = fork();
            if (pid < 0)
                return -2;
            if (pid == 0) {
                signal(SIGTERM, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                return i + 1;
            }
            pids[i] = pid;
        }
        int status;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0 && errno == EINTR) {
            int sig = got_signal;
            got_signal = 0;
            if (sig == SIGTERM || sig == SIGINT)
                stopping = true;
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], sig);
            continue;
        }
        if (done < 0) /* ECHILD: every worker is gone */
            return -1;
        int live = 0;
        for (int i = 0; i < n; i++) {
            if (pids[i] == done) {
                pids[i] = 0;
                if (!stopping)
                    gw_log(GW_LOG_ERROR, NULL, "event=worker_died worker=%d status=%d", i + 1, status);
            }
            live += pids[i] > 0;
        }
        if (stopping && live == 0)
            return -1;
    }
}

int main(int argc, char **argv)
{
    struct app a = {0};
    /* One malloc arena: a large body is parsed on a pool thread (gateway/offload.h) and freed on
     * the loop, and a per-thread arena would keep each such request's peak cached per thread. */
    mallopt(M_ARENA_MAX, 1);
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"check-config", required_argument, NULL, 'k'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'v'},
                                         {"new-key", required_argument, NULL, 'n'},
                                         {"group", required_argument, NULL, 'g'},
                                         {NULL, 0, NULL, 0}};
    const char *check = NULL, *key_name = NULL;
    const char *groups[64];
    int n_groups = 0;
    int o;
    int workers = 1;
    while ((o = getopt_long(argc, argv, "c:k:l:w:n:g:hv", opts, NULL)) != -1) {
        switch (o) {
        case 'w':
            workers = atoi(optarg);
            if (workers < 1 || workers > 64) {
                fprintf(stderr, "agate: --workers must be 1..64\n");
                return 2;
            }
            break;
        case 'c':
            a.config_path = optarg;
            break;
        case 'n':
            key_name = optarg;
            break;
        case 'g':
            if (n_groups == 64 || !gw_keys_valid_name(optarg, strlen(optarg))) {
                fprintf(stderr, "agate: --group: at most 64 names of 1..256 printable bytes without quotes\n");
                return 2;
            }
            groups[n_groups++] = optarg;
            break;
        case 'k':
            check = optarg;
            break;
        case 'l':
            a.log_override = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'v':
            printf("agate %s\n", AGATE_VERSION);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "agate: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    if (a.log_override) {
        gw_log_level_t lvl;
        if (gw_log_level_parse(a.log_override, &lvl) < 0) {
            fprintf(stderr, "agate: --log-level must be debug, info, warn or error\n");
            return 2;
        }
    }
    if (key_name)
        return new_key(key_name, groups, n_groups);
    if (n_groups) {
        fprintf(stderr, "agate: --group goes with --new-key\n");
        return 2;
    }
    char err[512];
    if (check) {
        gw_config_t *c = gw_config_load(check, err, sizeof(err));
        if (c && gw_auth_check(&c->auth, err, sizeof(err)) < 0) {
            gw_config_free(c);
            c = NULL;
        }
        if (!c) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("config ok: %zu endpoint(s), version %s\n", c->n_endpoints, c->version);
        gw_config_free(c);
        return 0;
    }
    a.cfg = a.config_path ? gw_config_load(a.config_path, err, sizeof(err))
                          : gw_config_parse(default_config, sizeof(default_config) - 1, err, sizeof(err));
    if (!a.cfg || gw_auth_check(&a.cfg->auth, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    apply_log_level(&a);
    /* Rate-limit buckets every worker of this process shares: mapped before any fork. */
    gw_rl_shm_t *rl_shm = gw_rl_shm_new(GW_RL_LOCAL_SLOTS);
    if (!rl_shm) {
        fprintf(stderr, "agate: cannot map the rate-limit table\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int listen_fd = -1, port = 0, worker = 0;
    if (workers > 1) {
        listen_fd = gw_server_bind_fd(a.cfg->listen_host, a.cfg->listen_port, false, &port);
        if (listen_fd < 0) {
            fprintf(stderr, "agate: cannot listen on %s:%d: %s\n", a.cfg->listen_host, a.cfg->listen_port,
                    uv_strerror(listen_fd));
            return 1;
        }
        gw_log(GW_LOG_INFO, NULL, "event=listening addr=%s:%d version=%s config_version=%s endpoints=%zu workers=%d",
               a.cfg->listen_host, port, AGATE_VERSION, a.cfg->version, a.cfg->n_endpoints, workers);
        worker = supervise(workers);
        if (worker < 0) {
            gw_config_free(a.cfg);
            return worker == -1 ? 0 : 1;
        }
        /* A worker: its own listening socket in the port's SO_REUSEPORT group. */
        close(listen_fd);
        int wport;
        listen_fd = gw_server_bind_fd(a.cfg->listen_host, port, true, &wport);
        if (listen_fd < 0) {
            fprintf(stderr, "agate: worker %d cannot listen on port %d: %s\n", worker, port, uv_strerror(listen_fd));
            return 1;
        }
        /* A worker: its own spool directory, so workers never share spool files. */
        if (a.cfg->tables.spool_dir) {
            char *d = gw_arena_alloc(a.cfg->arena, strlen(a.cfg->tables.spool_dir) + 16);
            sprintf(d, "%s/worker-%d", a.cfg->tables.spool_dir, worker);
            ((gw_config_t *)a.cfg)->tables.spool_dir = d;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "agate: curl_global_init failed\n");
        return 1;
    }
    a.loop = uv_default_loop();
    if (a.cfg->tables.sink == GW_SINK_JSONL) {
        a.sink = tb_sink_jsonl_new(a.loop, &a.cfg->tables);
    } else if (a.cfg->tables.sink == GW_SINK_POSTGRES) {
        a.sink = tb_sink_postgres_new(a.loop, a.cfg, err, sizeof(err));
        if (!a.sink) {
            fprintf(stderr, "agate: %s\n", err);
            return 1;
        }
    }
    a.proxy = gw_proxy_new(a.loop, a.cfg, a.sink, rl_shm);
    if (gw_proxy_open_store(a.proxy, err, sizeof(err)) < 0) {
        fprintf(stderr, "agate: %s\n", err);
        return 1;
    }
    a.alog = gw_alog_new(a.loop, a.cfg->access_log, err, sizeof(err));
    if (!a.alog && err[0]) {
        fprintf(stderr, "agate: %s\n", err);
        return 1;
    }
    gw_proxy_set_access_log(a.proxy, a.alog);
    a.server = gw_server_new(a.loop, &a.cfg->limits, gw_proxy_handle, a.proxy);
    int rc = listen_fd >= 0 ? gw_server_listen_fd(a.server, listen_fd)
                            : gw_server_listen(a.server, a.cfg->listen_host, a.cfg->listen_port, &port);
    if (rc < 0) {
        fprintf(stderr, "agate: cannot listen on %s:%d: %s\n", a.cfg->listen_host, a.cfg->listen_port,
                uv_strerror(rc));
        return 1;
    }
    uv_signal_init(a.loop, &a.sigterm);
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sighup);
    uv_timer_init(a.loop, &a.drain_timer);
    uv_check_init(a.loop, &a.idle_check);
    a.sigterm.data = a.sigint.data = a.sighup.data = a.drain_timer.data = a.idle_check.data = &a;
    uv_signal_start(&a.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&a.sighup, on_hup, SIGHUP);
    if (listen_fd < 0)
        gw_log(GW_LOG_INFO, NULL, "event=listening addr=%s:%d version=%s config_version=%s endpoints=%zu",
               a.cfg->listen_host, port, AGATE_VERSION, a.cfg->version, a.cfg->n_endpoints);
    else
        gw_log(GW_LOG_INFO, NULL, "event=worker_started worker=%d", worker);
    uv_run(a.loop, UV_RUN_DEFAULT);

    /* Close what is left and let the close callbacks run, so sanitizers see no leak. We are
     * exiting: closing the signal handles restores the default action (libuv), so a repeated
     * SIGTERM from here on is ignored rather than killing the process halfway through its exit. */
    uv_close((uv_handle_t *)&a.sigterm, NULL);
    uv_close((uv_handle_t *)&a.sigint, NULL);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    uv_close((uv_handle_t *)&a.sighup, NULL);
    uv_close((uv_handle_t *)&a.drain_timer, NULL);
    uv_close((uv_handle_t *)&a.idle_check, NULL);
    gw_proxy_free(a.proxy);
    gw_alog_close(a.alog); /* after the last call's line; its last write runs in this loop turn */
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    curl_global_cleanup();
    for (size_t i = 0; i < a.n_old; i++)
        gw_config_free(a.old_cfgs[i]);
    free(a.old_cfgs);
    gw_config_free(a.cfg);
    gw_rl_shm_free(rl_shm);
    gw_log(GW_LOG_INFO, NULL, "event=exit");
    return 0;
}
