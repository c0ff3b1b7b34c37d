/* tb_sink: where table rows go. Sinks never block the loop: tb_sink_write only appends to memory;
 * files are written by libuv threadpool jobs and the database is driven by its non-blocking API
 * polled from the loop. */
#ifndef TB_SINK_H
#define TB_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"
#include "gateway/config.h"
#include "tables/record.h"

/** Name of the usage-tracking table (INFERENCE_TABLES.md §7.4). */
#define TB_USAGE_TABLE "endpoint_usage"

typedef struct tb_sink tb_sink_t;

typedef struct tb_sink_vtable {
    /** Queue one serialised row (ends with '\n') for table `table` on partition `date`. */
    void (*write)(tb_sink_t *s, const char *table, const char *date, gw_str_t row);
    /** Write what is queued now (timer-driven otherwise). */
    void (*flush)(tb_sink_t *s);
    /** Flush everything, then call done (from the loop) and free the sink. Rows written while
     * closing are still delivered (or spooled); none may be written after done ran. */
    void (*close)(tb_sink_t *s, void (*done)(void *ud), void *ud);
} tb_sink_vtable_t;

struct tb_sink {
    const tb_sink_vtable_t *vt;
    uint64_t rows_written, rows_dropped; /** counters for metrics and tests */
    uint64_t rows_spooled;               /** postgres: rows that went to the local spool */
    uint64_t rows_replayed;              /** postgres: spooled rows since stored in the database */
    uint64_t rows_rejected; /** postgres: rows the database refused (kept in spool_dir/rejected.jsonl) */
    uint64_t spool_bytes;   /** postgres: bytes in the spool now */
    uint64_t queue_bytes;   /** row bytes in memory waiting for the writer (metrics: table backlog) */
    const char *state;      /** "ok", "spooling" (destination down or slow), "degraded" */
    bool degraded;          /** rows are being lost right now (queue/spool full, write errors) */
    bool usage_table;       /** tb_sink_write_usage writes endpoint_usage rows */
};

static inline void tb_sink_write(tb_sink_t *s, const char *table, const char *date, gw_str_t row)
{
    s->vt->write(s, table, date, row);
}
static inline void tb_sink_flush(tb_sink_t *s)
{
    s->vt->flush(s);
}
static inline void tb_sink_close(tb_sink_t *s, void (*done)(void *ud), void *ud)
{
    s->vt->close(s, done, ud);
}
/** For /readyz: false while the sink is losing rows (spool full, writes failing). */
static inline bool tb_sink_ready(const tb_sink_t *s)
{
    return !s || !s->degraded;
}

/** Usage-tracking row (INFERENCE_TABLES.md §7.4) for a finished request: one per request, never
 * sampled, so call it before the payload sampling decision. input_chars / output_chars are the
 * prompt and generated text lengths (-1 = unknown). scratch is reset and reused for the line. No-op
 * when s is NULL or the usage table is off. */
void tb_sink_write_usage(tb_sink_t *s, const tb_rec_t *r, int64_t input_chars, int64_t output_chars,
                         gw_buf_t *scratch);

/** JSONL files under dir/<table>/request_date=YYYY-MM-DD/part-<pid>-<start>-<seq>.jsonl; seq grows
 * when a file passes cfg->rotate_bytes. */
tb_sink_t *tb_sink_jsonl_new(uv_loop_t *loop, const gw_tables_cfg_t *cfg);

/** PostgreSQL through libpq's asynchronous API on this loop (cfg->tables.dsn), spilling to
 * cfg->tables.spool_dir while the database is down or slow. The payload table of every endpoint,
 * unrouted_payload and endpoint_usage are created (with today's and tomorrow's partitions) once
 * connected; other tables and days on first use. Returns NULL with a message in err if the spool
 * cannot be opened (startup only: this does blocking file I/O). */
tb_sink_t *tb_sink_postgres_new(uv_loop_t *loop, const gw_config_t *cfg, char *err, size_t errlen);

#endif
