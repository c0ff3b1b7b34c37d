/* gw_alog: the access log, a finish observer writing one JSON line per request (config
 * `access_log`: "off", "stderr" or a file path). Fields: time, request ids, requester, client,
 * route, endpoint, served entity, replica, attempts, status, finish status, error code, tokens,
 * TTFT, queue and total durations, bytes in and out. Never bodies, headers or keys.
 *
 * Writes never block the loop (STYLE.md §5): lines are appended to a memory buffer and written
 * with uv_fs_write (libuv's thread pool), one write in flight at a time; lines that arrive meanwhile
 * are batched into the next write. The buffer is bounded (GW_ALOG_MAX_PENDING): past it lines are
 * dropped and counted, never queued without bound, so a stuck stderr pipe or a full disk holds at
 * most one pool thread and that much memory. On stderr each write is at most PIPE_BUF bytes of
 * whole lines, so the gateway's own log lines never land inside an access-log line. A file is
 * opened O_APPEND (workers share it line-safely) and reopened on SIGHUP (logrotate: rename, then
 * HUP); the old descriptor is closed once its write in flight is done. */
#ifndef GW_ACCESS_LOG_H
#define GW_ACCESS_LOG_H

#include <stdint.h>
#include <uv.h>

#include "gateway/summary.h"

#define GW_ALOG_MAX_PENDING (4u << 20) /* bytes of lines waiting for the writer */

typedef struct gw_alog gw_alog_t;

/** target: "stderr" or a path (opened now, before the loop runs). "off" or NULL returns NULL
 * with err empty; a file that cannot be opened returns NULL with err set. */
gw_alog_t *gw_alog_new(uv_loop_t *loop, const char *target, char *err, size_t errlen);
/** SIGHUP: open the path again (asynchronously); lines go to the new file once it is open. */
void gw_alog_reopen(gw_alog_t *l);
/** Write what is buffered, close the file, free l (from a later loop turn). */
void gw_alog_close(gw_alog_t *l);
/** The finish observer (gw_call_observer_cb); admin routes are not logged. */
void gw_alog_observe(const gw_call_summary_t *s, void *ud);
uint64_t gw_alog_lines(const gw_alog_t *l);
uint64_t gw_alog_dropped(const gw_alog_t *l);

#endif
