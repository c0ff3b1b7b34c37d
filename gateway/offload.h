/* gw_offload: runs one request's CPU-heavy step (parsing a large body, encoding the upstream
 * request) on libuv's thread pool so the loop keeps serving everyone else (issue 15: a 4 MiB body
 * cost the loop ~50-130 ms in one piece). Small inputs run inline: the thread hop would cost more
 * than it saves.
 *
 * The work function runs on a pool thread while the loop goes on. It may touch only what the
 * request owns (its arena, its body, its parsed tree) and read-only shared state (the config
 * generation, which outlives its calls); it must not log above DEBUG, count metrics, or touch a
 * handle. The caller must keep everything work() uses alive until done() has run. */
#ifndef GW_OFFLOAD_H
#define GW_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/** Inputs at least this large go to the pool. */
#define GW_OFFLOAD_MIN_BYTES (64u * 1024u)

typedef void (*gw_offload_fn)(void *ud);

/** Runs work(ud) inline and returns false when bytes < GW_OFFLOAD_MIN_BYTES (or the pool refuses
 * the job); else queues it and returns true, and done(ud) runs later on the loop thread. */
bool gw_offload(uv_loop_t *loop, size_t bytes, gw_offload_fn work, gw_offload_fn done, void *ud);

#endif
