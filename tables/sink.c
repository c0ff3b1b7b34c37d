/* Helpers shared by every sink (the vtable itself is in sink.h). */
#include "tables/sink.h"

void tb_sink_write_usage(tb_sink_t *s, const tb_rec_t *r, int64_t input_chars, int64_t output_chars,
                         gw_buf_t *scratch)
{
    if (!s || !s->usage_table)
        return;
    gw_buf_reset(scratch);
    tb_rec_serialize_usage(r, input_chars, output_chars, scratch);
    char date[11];
    tb_rec_date(r->request_time_us, date);
    tb_sink_write(s, TB_USAGE_TABLE, date, gw_buf_str(scratch));
}
