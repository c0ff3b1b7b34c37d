/* tb_spool: an ordered, append-only local spill for table rows whose destination (the database)
 * is down or slow, replayed oldest first once it is back.
 *
 * Layout: <dir>/spool-<seq>.jsonl (seq: 20 decimal digits, so names sort like seqs), one row per
 * line in the JSONL format of tables/jsonl.h:
 *     {"table":"<table>","date":"YYYY-MM-DD","row":<the row's JSON object>}
 * Rows are read from the lowest seq at a cursor (seq, offset) and committed by the consumer once
 * stored; files behind the cursor are deleted. A new process never appends to an older file
 * (it starts a new tail), and tb_jsonl_read skips a line torn by a crash. The cursor is not
 * persisted: after a crash the head file is replayed again, which the database's idempotency key
 * (ON CONFLICT DO NOTHING) absorbs.
 * Rows refused by the destination go to <dir>/rejected.jsonl (same line format), never replayed.
 * <dir>/.lock (flock) keeps two processes off one spool.
 *
 * All file work runs in one libuv threadpool job at a time; the loop only touches memory. */
#ifndef TB_SPOOL_H
#define TB_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/buf.h"
#include "gateway/config.h"

#define TB_TABLE_MAX 128 /* table name bytes, with the NUL */

/** One queued row. malloc'd; the list it is on owns it. */
typedef struct tb_row {
    struct tb_row *next;
    char table[TB_TABLE_MAX];
    char date[11];
    size_t len;  /** bytes of data: the row's JSON object, without a trailing '\n' */
    char data[]; /** NUL-terminated (data[len] == '\0') */
} tb_row_t;

tb_row_t *tb_row_new(const char *table, const char *date, gw_str_t json);
void tb_rows_free(tb_row_t *r);

typedef struct tb_spool tb_spool_t;

/** Rows read from the head of the spool, oldest first (NULL when none are left); the callee owns
 * them. rc < 0 on an I/O error (the same rows come back on the next read). */
typedef void (*tb_spool_read_cb)(void *ud, tb_row_t *rows, size_t n, int rc);

/** Open (creating dir) and lock the spool, and index files left by an earlier run. Startup only:
 * blocking file I/O. NULL with a message in err on failure. */
tb_spool_t *tb_spool_open(uv_loop_t *loop, const char *dir, uint64_t max_bytes, gw_fsync_t fsync, char *err,
                          size_t errlen);
/** Queue a copy of row at the tail. GW_E_FAIL (row not taken) when the cap would be exceeded. */
int tb_spool_append(tb_spool_t *sp, const tb_row_t *row);
/** Queue copies of rows (oldest first) ahead of everything in the spool; allowed only while no
 * read is outstanding or uncommitted. Returns how many did not fit under the cap (not taken,
 * from the end of the list). */
size_t tb_spool_prepend(tb_spool_t *sp, const tb_row_t *rows);
/** Queue a copy of row for rejected.jsonl. */
void tb_spool_reject(tb_spool_t *sp, const tb_row_t *row);
/** Nothing on disk past the cursor, nothing queued, no read outstanding. */
bool tb_spool_empty(const tb_spool_t *sp);
/** Bytes on disk plus queued (what counts against the cap). */
uint64_t tb_spool_bytes(const tb_spool_t *sp);
/** Read up to max_rows rows / about max_bytes bytes from the head; cb runs on the loop. One read at a
 * time, and it must be committed or rewound before the next. */
void tb_spool_read(tb_spool_t *sp, size_t max_rows, size_t max_bytes, tb_spool_read_cb cb, void *ud);
/** The rows of the last read are stored: move the cursor past them, delete finished files. */
void tb_spool_commit(tb_spool_t *sp);
/** The rows of the last read were not stored: the next read returns them again. */
void tb_spool_rewind(tb_spool_t *sp);
/** Rows lost because a spool write failed; lines skipped on replay (torn or not ours). */
uint64_t tb_spool_lost_rows(const tb_spool_t *sp);
uint64_t tb_spool_skipped_lines(const tb_spool_t *sp);
/** Write what is queued, then free the spool and call done (possibly before this returns). */
void tb_spool_close(tb_spool_t *sp, void (*done)(void *ud), void *ud);

#endif
