/* tb_pgsql: the PostgreSQL sink's SQL text, without a database (the statements themselves run in
 * tests/integration/tables_pg.test.mjs). */
#include <criterion/criterion.h>

#include <string.h>

#include "tables/pg_sql.h"

TestSuite(pg_sql, .timeout = 10);

Test(pg_sql, names_and_dates, .timeout = 5)
{
    cr_assert(tb_pgsql_valid_table("chat-a.b_payload"));
    cr_assert_not(tb_pgsql_valid_table(""));
    cr_assert_not(tb_pgsql_valid_table("a\"b"));
    cr_assert(tb_pgsql_valid_date("2026-02-28"));
    cr_assert_not(tb_pgsql_valid_date("2026-2-28"));
    char next[11], part[64];
    tb_pgsql_next_day("2024-02-28", next);
    cr_assert_str_eq(next, "2024-02-29");
    tb_pgsql_next_day("2026-12-31", next);
    cr_assert_str_eq(next, "2027-01-01");
    tb_pgsql_partition_name("t", "2026-01-02", part);
    cr_assert_str_eq(part, "t_20260102");
    char long_name[100];
    memset(long_name, 'x', 99);
    long_name[99] = '\0';
    tb_pgsql_partition_name(long_name, "2026-01-02", part);
    cr_assert_lt(strlen(part), 64);
}

Test(pg_sql, ddl_planned_once, .timeout = 5)
{
    tb_pgsql_ddl_t d = {0};
    tb_pgsql_ddl_init(&d);
    gw_buf_t sql;
    gw_buf_init(&sql);
    tb_pgsql_ddl_plan(&d, &sql, "t", "2026-01-02");
    size_t once = sql.len;
    tb_pgsql_ddl_plan(&d, &sql, "t", "2026-01-02");
    cr_assert_eq(sql.len, once, "already planned");
    tb_pgsql_ddl_close(&sql);
    cr_assert(strstr(sql.base, "CREATE TABLE \"t_20260102\" PARTITION OF \"t\"") != NULL);
    cr_assert(strstr(sql.base, "END $agate$;") != NULL);
    tb_pgsql_ddl_commit(&d);
    gw_buf_reset(&sql);
    tb_pgsql_ddl_plan(&d, &sql, "t", "2026-01-02");
    cr_assert_eq(sql.len, 0, "known to exist");
    tb_pgsql_ddl_forget(&d);
    tb_pgsql_ddl_plan(&d, &sql, "t", "2026-01-02");
    cr_assert_gt(sql.len, 0, "forgotten");
    gw_buf_dispose(&sql);
    tb_pgsql_ddl_dispose(&d);
}

Test(pg_sql, insert_one_param_per_table, .timeout = 5)
{
    tb_row_t *a = tb_row_new("t1", "2026-01-02", gw_str("{\"x\":\"\\u0000\"}"));
    tb_row_t *b = tb_row_new("t2", "2026-01-02", gw_str("{\"y\":1}"));
    tb_row_t *c = tb_row_new("t1", "2026-01-02", gw_str("{\"z\":2}"));
    a->next = b;
    b->next = c;
    tb_pgsql_insert_t ins = {0};
    gw_buf_t sql;
    gw_buf_init(&sql);
    tb_pgsql_insert_build(&ins, &sql, a, 3);
    cr_assert_eq(ins.n_params, 2);
    cr_assert_str_eq(ins.values[0], "[{\"x\":\"\\ufffd\"},{\"z\":2}]", "NUL escape replaced");
    cr_assert_str_eq(ins.values[1], "[{\"y\":1}]");
    cr_assert(strstr(sql.base, "i2 AS (INSERT INTO \"t2\"") != NULL);
    cr_assert(strstr(sql.base, " + (SELECT count(*) FROM i2)") != NULL);
    gw_buf_dispose(&sql);
    tb_pgsql_insert_dispose(&ins);
    tb_rows_free(a);
}
