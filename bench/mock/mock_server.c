/* mock_server: listener, signals and server-wide state (mock_server.h). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/buf.h"
#include "mock_conn.h"
#include "mock_server.h"

#define MOCK_READ_BUF  65536
#define MOCK_MAX_CONNS 4096

struct mock_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sig_term, sig_int;
    mock_routes_t *routes; /** borrowed */
    uint64_t connections;  /** TCP connections accepted */
    uint64_t next_id;
    size_t nconns;
    mock_link_t *conns; /** live connections; each unlinks itself in its last close callback */
    bool stopping;
    uint64_t log_window; /** ms, start of the current rate-limit second */
    unsigned log_count;
    char rbuf[MOCK_READ_BUF]; /** shared read buffer: on_read consumes it before the next alloc */
};

mock_server_t *mock_server_new(uv_loop_t *loop, mock_routes_t *routes)
{
    mock_server_t *s = gw_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->routes = routes;
    return s;
}

void mock_server_free(mock_server_t *s)
{
    free(s);
}

static bool log_allowed(mock_server_t *s)
{
    uint64_t now = uv_now(s->loop);
    if (now - s->log_window >= 1000) {
        s->log_window = now;
        s->log_count = 0;
    }
    return ++s->log_count <= 20;
}

/* One key=value line on stderr; warnings are rate-limited (20 per second). */
void mock_log(mock_server_t *s, const char *level, const char *fmt, ...)
{
    va_list ap;
    if (strcmp(level, "info") != 0 && !log_allowed(s))
        return;
    fprintf(stderr, "level=%s ", level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void on_connection(uv_stream_t *listener, int status)
{
    mock_server_t *s = listener->data;
    if (status < 0) {
        mock_log(s, "warn", "event=accept_failed err=%s", uv_err_name(status));
        return;
    }
    mock_conn_accept(s, listener);
}

/* SIGTERM/SIGINT: close every handle; uv_run then returns and main exits 0. */
static void on_signal(uv_signal_t *sig, int signum)
{
    mock_server_t *s = sig->data;
    if (s->stopping)
        return;
    s->stopping = true;
    mock_log(s, "info", "event=stopping signal=%d conns=%zu", signum, s->nconns);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    for (mock_link_t *l = s->conns; l; l = l->next)
        mock_conn_close(l->conn); /* unlinking happens in the close callbacks, after this loop */
}

int mock_server_start(mock_server_t *s, const struct sockaddr *addr, int *port)
{
    int rc;
    if ((rc = uv_tcp_init(s->loop, &s->listener)) < 0)
        return rc;
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection)) < 0)
        return rc;

    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if ((rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen)) < 0)
        return rc;
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);

    if ((rc = uv_signal_init(s->loop, &s->sig_term)) < 0 || (rc = uv_signal_init(s->loop, &s->sig_int)) < 0)
        return rc;
    s->sig_term.data = s->sig_int.data = s;
    if ((rc = uv_signal_start(&s->sig_term, on_signal, SIGTERM)) < 0 ||
        (rc = uv_signal_start(&s->sig_int, on_signal, SIGINT)) < 0)
        return rc;
    return 0;
}

uv_loop_t *mock_server_loop(const mock_server_t *s)
{
    return s->loop;
}

mock_routes_t *mock_server_routes(const mock_server_t *s)
{
    return s->routes;
}

void mock_server_counts(const mock_server_t *s, uint64_t *connections, size_t *open)
{
    *connections = s->connections;
    *open = s->nconns;
}

uint64_t mock_server_join(mock_server_t *s, mock_link_t *l)
{
    l->prev = NULL;
    l->next = s->conns;
    if (s->conns)
        s->conns->prev = l;
    s->conns = l;
    s->nconns++;
    return ++s->next_id;
}

bool mock_server_admit(mock_server_t *s)
{
    s->connections++;
    if (s->stopping || s->nconns > MOCK_MAX_CONNS) {
        mock_log(s, "warn", "event=connection_refused conns=%zu", s->nconns);
        return false;
    }
    return true;
}

void mock_server_leave(mock_server_t *s, mock_link_t *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        s->conns = l->next;
    if (l->next)
        l->next->prev = l->prev;
    s->nconns--;
}

char *mock_server_rbuf(mock_server_t *s, size_t *n)
{
    *n = sizeof(s->rbuf);
    return s->rbuf;
}
