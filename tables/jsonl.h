/* tb_jsonl: blocking JSONL file primitives shared by the JSONL sink and the postgres spool.
 * Everything here does plain file I/O: call it from a libuv threadpool job, at startup, or in tests,
 * never from a loop callback.
 *
 * Crash safety: a writer killed in the middle of write(2) leaves a partial last line (no '\n').
 * tb_jsonl_read never returns it, and tb_jsonl_append first closes such a line with '\n' before
 * appending, so the torn bytes become one invalid line that readers skip and the rows written
 * after it stay intact. */
#ifndef TB_JSONL_H
#define TB_JSONL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/buf.h"
#include "gateway/config.h"

typedef struct {
    uint64_t lines;      /** complete, valid lines handed to the callback */
    uint64_t invalid;    /** complete lines that are not one JSON object (a repaired torn line): skipped */
    uint64_t torn_bytes; /** bytes after the last '\n' at end of file (a partial last line): skipped */
    uint64_t end;        /** offset just past the last complete line consumed; resume here */
    bool eof;            /** everything up to end of file was looked at (only torn bytes, if any, remain) */
} tb_jsonl_stats_t;

/** One valid line, without its '\n'. The view is valid during the call only. Return non-zero to
 * stop reading after this line (it counts as consumed). */
typedef int (*tb_jsonl_line_cb)(void *ud, gw_str_t line);

/** Read complete lines of path from byte offset. Stops after max_lines lines or once max_bytes
 * bytes were consumed (0 = no limit; at least one line is always read). Blank lines are skipped
 * silently; other lines that are not exactly one JSON object are counted in st->invalid. A missing
 * file reads as empty. Returns 0 or -errno. */
int tb_jsonl_read(const char *path, uint64_t offset, size_t max_lines, size_t max_bytes, tb_jsonl_line_cb cb,
                  void *ud, tb_jsonl_stats_t *st);

/** True if line is exactly one JSON object (yajl, UTF-8 validated). */
bool tb_jsonl_valid(gw_str_t line);

/** mkdir -p with mode 0755; path is modified temporarily. Returns 0 or -errno. */
int tb_jsonl_mkdir_p(char *path);

/** Append len bytes of whole lines to path (created 0644 if absent). If the file is non-empty and
 * does not end in '\n', a '\n' is written first and *repaired set. With mode != GW_FSYNC_NONE the
 * file is fsync'd, and so is its directory when the file was created. *size_after receives the
 * file size after the append (may be NULL). Returns 0 or -errno. */
int tb_jsonl_append(const char *path, const char *data, size_t len, gw_fsync_t mode, uint64_t *size_after,
                    bool *repaired);

#endif
