/* tb_row: the finish observer that turns a call's summary into its inference-table rows: the
 * usage row (every request, never sampled) and the payload row (sampled, size-limited, redacted;
 * INFERENCE_TABLES.md §2-§4, §7.4). */
#ifndef TB_ROW_H
#define TB_ROW_H

#include "gateway/summary.h"
#include "tables/sink.h"

typedef struct tb_row_writer tb_row_writer_t;

tb_row_writer_t *tb_row_writer_new(tb_sink_t *sink);
void tb_row_writer_free(tb_row_writer_t *w);
/** gw_call_observer_cb; ud is the tb_row_writer_t. */
void tb_row_observe(const gw_call_summary_t *s, void *ud);

/** Token counts of a call, as the tables write them (INFERENCE_TABLES.md §7.4): the upstream's
 * usage, else the (chars + 1) / 4 estimate for a dispatched call; source NULL = none. Rate
 * limits debit the same numbers (§7.2). */
typedef struct {
    int64_t input, output, cached, reasoning;
    const char *source; /** "upstream", "estimated" or NULL */
} tb_tokens_t;
void tb_row_tokens(const gw_call_summary_t *s, tb_tokens_t *t);

#endif
