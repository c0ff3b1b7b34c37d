/* tb_sink: where table rows go. Sinks never block the loop: rows are queued and written by a
 * background job; tb_sink_write only appends to memory. */
#ifndef TB_SINK_H
#define TB_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"
#include "gateway/config.h"

typedef struct tb_sink tb_sink_t;

typedef struct tb_sink_vtable {
    /** Queue one serialised row (ends with '\n') for table `table` on partition `date`. */
    void (*write)(tb_sink_t *s, const char *table, const char *date, gw_str_t row);
    /** Write what is queued now (timer-driven otherwise). */
    void (*flush)(tb_sink_t *s);
    /** Flush everything, then call done (from the loop) and free the sink. */
    void (*close)(tb_sink_t *s, void (*done)(void *ud), void *ud);
} tb_sink_vtable_t;

struct tb_sink {
    const tb_sink_vtable_t *vt;
    uint64_t rows_written, rows_dropped; /** counters for metrics and tests */
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

/** JSONL files under dir/<table>/request_date=YYYY-MM-DD/part-<pid>-<start>.jsonl. */
tb_sink_t *tb_sink_jsonl_new(uv_loop_t *loop, const gw_tables_cfg_t *cfg);

#endif
