/* mock_server: the listener, signals and everything server-wide (live connections, counters,
 * rate-limited logging, the shared read buffer). Requests are answered by mock_routes. */
#ifndef MOCK_SERVER_H
#define MOCK_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct mock_server mock_server_t;
typedef struct mock_conn mock_conn_t;
typedef struct mock_routes mock_routes_t;

/* A live connection's place in the server's list; embedded in the connection. */
typedef struct mock_link {
    struct mock_link *prev, *next;
    mock_conn_t *conn;
} mock_link_t;

/* routes is borrowed and must outlive the server. */
mock_server_t *mock_server_new(uv_loop_t *loop, mock_routes_t *routes);
/* Bind, listen and catch SIGTERM/SIGINT (which close every handle so that uv_run returns);
 * *port is the port bound. Returns 0 or a libuv error. */
int mock_server_start(mock_server_t *s, const struct sockaddr *addr, int *port);
void mock_server_free(mock_server_t *s);

void mock_log(mock_server_t *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

uv_loop_t *mock_server_loop(const mock_server_t *s);
mock_routes_t *mock_server_routes(const mock_server_t *s);
void mock_server_counts(const mock_server_t *s, uint64_t *connections, size_t *open);

/* For mock_conn. join: a new connection enters the list and gets its id; admit: it was
 * accepted, and may stay (false: shutting down or over the connection cap, close it); leave:
 * its last handle has closed. The read buffer is shared: on_read consumes it before the next alloc. */
uint64_t mock_server_join(mock_server_t *s, mock_link_t *l);
bool mock_server_admit(mock_server_t *s);
void mock_server_leave(mock_server_t *s, mock_link_t *l);
char *mock_server_rbuf(mock_server_t *s, size_t *n);

#endif
