/* mock_upstream: a scripted LLM upstream for tests and benchmarks (libuv + llhttp).
 *
 * Contract: bench/MOCK_SCENARIOS.md. Layout: mock_server (listener, signals), mock_conn (one
 * client), mock_http (request parsing), mock_routes (routes, scenario selection), mock_run (the
 * script engine), mock_chat_wire / mock_r_wire (the bytes), mock_scenarios (the data model and
 * the registry of scenario families: mock_chat.c, mock_chat_errors.c, mock_chat_load.c,
 * mock_responses.c). This file: flags, then run the loop. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "mock_routes.h"
#include "mock_scenarios.h"
#include "mock_server.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mock_upstream [--host 127.0.0.1] [--port N] [--default-scenario NAME]\n");
}

/* Parse the CLI, listen, print "listening <port>" on stdout, run the loop until a signal. */
int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *def = "text", *what = NULL;
    long port = 0;
    struct sockaddr_storage addr;
    int rc, bport = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--host")) {
            host = argv[++i];
        } else if (!strcmp(a, "--port")) {
            char *end;
            errno = 0;
            port = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || port < 0 || port > 65535) {
                fprintf(stderr, "level=error event=bad_port value=\"%s\"\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--default-scenario")) {
            def = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }

    const char *dup = mock_sc_duplicate();
    if (dup) {
        fprintf(stderr, "level=error event=duplicate_scenario name=\"%s\"\n", dup);
        return 2;
    }
    /* One default per kind: an r_* name sets the Responses routes' default, any other the
     * chat route's; the other kind keeps its own (text, r_text). */
    const mock_chat_sc_t *chat_def = mock_sc_find_chat(gw_str(def));
    const mock_r_sc_t *r_def = mock_sc_find_r(gw_str(def));
    if (!chat_def && !r_def) {
        fprintf(stderr, "level=error event=unknown_scenario name=\"%s\"\n", def);
        return 2;
    }
    if (!chat_def)
        chat_def = mock_sc_find_chat(GW_STR_LIT("text"));
    if (!r_def)
        r_def = mock_sc_find_r(GW_STR_LIT("r_text"));
    assert(chat_def && r_def);
    /* A client gone mid-write must surface as EPIPE from uv_write, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    mock_routes_t *routes = mock_routes_new(chat_def, r_def);
    mock_server_t *s = mock_server_new(loop, routes);

    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        what = "bad_host";
        goto fail;
    }
    what = "listen_failed";
    if ((rc = mock_server_start(s, (const struct sockaddr *)&addr, &bport)) < 0)
        goto fail;

    printf("listening %d\n", bport);
    fflush(stdout);
    mock_log(s, "info", "event=listening host=%s port=%d default_scenario=%s default_r_scenario=%s", host,
             bport, chat_def->name, r_def->name);

    uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop);
    if (rc < 0)
        mock_log(s, "warn", "event=loop_close err=%s", uv_err_name(rc));
    mock_server_free(s);
    mock_routes_free(routes);
    return 0;

fail:
    /* Exiting: the kernel reclaims the socket; the loop is not run again. */
    fprintf(stderr, "level=error event=%s host=%s port=%ld err=%s\n", what, host, port, uv_err_name(rc));
    mock_server_free(s);
    mock_routes_free(routes);
    return 1;
}
