/* tb_pgsql: the SQL text the PostgreSQL sink sends (tables/schema.sql shows its shape), built
 * without a connection: table and partition DDL (with the set of those known to exist), the
 * batched INSERT, and the checks on names and dates that make quoting them safe. Pure: no I/O. */
#ifndef TB_PG_SQL_H
#define TB_PG_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/buf.h"
#include "tables/spool.h"

#define TB_PGSQL_KEY_MAX (TB_TABLE_MAX + 12) /* "table" or "table/YYYY-MM-DD", with the NUL */

/** A table name the sink may quote: 1..TB_TABLE_MAX-1 bytes of [A-Za-z0-9._-]. */
bool tb_pgsql_valid_table(const char *t);
/** YYYY-MM-DD (digits and dashes only; the database checks the calendar). */
bool tb_pgsql_valid_date(const char *d);
/** The day after date (YYYY-MM-DD), into out. */
void tb_pgsql_next_day(const char *date, char out[11]);
/** Partition of table for date: "table_YYYYMMDD", a long name cut and hashed to fit 63 bytes. */
void tb_pgsql_partition_name(const char *table, const char *date, char out[64]);

/** Tables and partitions known to exist, and those planned by the DDL in flight. Embedded. */
typedef struct {
    char (*ensured)[TB_PGSQL_KEY_MAX]; /** owned; bounded, forgetting only costs a round trip */
    size_t n_ensured;
    char (*marks)[TB_PGSQL_KEY_MAX]; /** owned: entries the DDL in flight creates */
    size_t n_marks, cap_marks;
} tb_pgsql_ddl_t;

void tb_pgsql_ddl_init(tb_pgsql_ddl_t *d);
void tb_pgsql_ddl_dispose(tb_pgsql_ddl_t *d);
/** Append to sql the DDL for (table, date) unless it is known to exist or already planned; the
 * first call on an empty sql opens the DO block (under an advisory lock, so that gateways
 * creating the same partition do not race). */
void tb_pgsql_ddl_plan(tb_pgsql_ddl_t *d, gw_buf_t *sql, const char *table, const char *date);
/** Close the DO block opened by tb_pgsql_ddl_plan; sql then ends with a NUL (counted in len). */
void tb_pgsql_ddl_close(gw_buf_t *sql);
/** The DDL in flight succeeded: what it planned is known to exist. */
void tb_pgsql_ddl_commit(tb_pgsql_ddl_t *d);
/** The DDL in flight failed or was abandoned. */
void tb_pgsql_ddl_abandon(tb_pgsql_ddl_t *d);
/** A table or partition vanished: assume nothing exists. */
void tb_pgsql_ddl_forget(tb_pgsql_ddl_t *d);

/** The parameters of one INSERT statement: a JSON array of rows per table. Embedded, reused. */
typedef struct {
    gw_buf_t *params;    /** owned, cap_params of them; each NUL-terminated once built */
    const char **values; /** owned; values[k] = params[k].base */
    size_t n_params, cap_params;
} tb_pgsql_insert_t;

void tb_pgsql_insert_dispose(tb_pgsql_insert_t *ins);
/** Build into sql (reset first, NUL-terminated) the statement inserting the n rows from first:
 * one data-modifying CTE per table, each inserting $k::json with ON CONFLICT DO NOTHING; its
 * result is the number of rows really added. ins->values then holds ins->n_params parameters. */
void tb_pgsql_insert_build(tb_pgsql_insert_t *ins, gw_buf_t *sql, const tb_row_t *first, size_t n);

#endif
