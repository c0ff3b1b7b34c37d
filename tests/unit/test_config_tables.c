/* The `tables` section of gw_config: the postgres sink's keys, fsync and rotation, their defaults
 * (the older keys keep theirs) and their errors, which name the key path. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

#define EPS "\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://127.0.0.1:1/v1\"}]}]"

static gw_config_t *parse(const char *tables, char *err, size_t errlen)
{
    char json[2048];
    snprintf(json, sizeof(json), "{" EPS ",\"tables\":%s}", tables);
    return gw_config_parse(json, strlen(json), err, errlen);
}

static gw_config_t *parse_ok(const char *tables)
{
    char err[512] = "";
    gw_config_t *c = parse(tables, err, sizeof(err));
    cr_assert_not_null(c, "rejected %s: %s", tables, err);
    return c;
}

static void expect_error(const char *tables, const char *path, const char *what)
{
    char err[512] = "";
    gw_config_t *c = parse(tables, err, sizeof(err));
    cr_assert_null(c, "accepted %s", tables);
    char want[128];
    snprintf(want, sizeof(want), "config: %s: ", path);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "message \"%s\" does not name %s", err, path);
    cr_assert_not_null(strstr(err, what), "message \"%s\" lacks \"%s\"", err, what);
}

Test(config_tables, jsonl_defaults_unchanged, .timeout = 10)
{
    gw_config_t *c = parse_ok("{\"sink\":\"jsonl\",\"dir\":\"/t\"}");
    cr_assert_eq(c->tables.sink, GW_SINK_JSONL);
    cr_assert_eq(c->tables.flush_ms, 1000);
    cr_assert_eq(c->tables.max_queue_bytes, (size_t)64 << 20);
    cr_assert_eq(c->tables.fsync, GW_FSYNC_NONE);
    cr_assert_eq(c->tables.rotate_bytes, (uint64_t)128 << 20);
    cr_assert_not(c->tables.usage_table, "jsonl keeps one table per endpoint unless asked");
    cr_assert_eq(c->tables.batch_rows, 500);
    gw_config_free(c);
}

Test(config_tables, postgres_keys, .timeout = 10)
{
    gw_config_t *c =
        parse_ok("{\"sink\":\"postgres\",\"dsn\":\"host=db dbname=x\",\"fsync\":\"always\","
                 "\"spool_dir\":\"/var/spool/agate\",\"spool_max_bytes\":1048576,\"batch_rows\":50,"
                 "\"rotate_bytes\":8192,\"usage_table\":false,\"flush_ms\":20}");
    cr_assert_eq(c->tables.sink, GW_SINK_POSTGRES);
    cr_assert_str_eq(c->tables.dsn, "host=db dbname=x");
    cr_assert_eq(c->tables.fsync, GW_FSYNC_ALWAYS);
    cr_assert_str_eq(c->tables.spool_dir, "/var/spool/agate");
    cr_assert_eq(c->tables.spool_max_bytes, 1048576);
    cr_assert_eq(c->tables.batch_rows, 50);
    cr_assert_eq(c->tables.rotate_bytes, 8192);
    cr_assert_not(c->tables.usage_table);
    cr_assert_eq(c->tables.flush_ms, 20);
    cr_assert_null(c->tables.dir, "dir is not required for postgres");
    gw_config_free(c);

    c = parse_ok("{\"sink\":\"postgres\",\"dsn\":\"postgresql://u@h/db\"}");
    cr_assert_eq(c->tables.fsync, GW_FSYNC_NONE);
    cr_assert_str_eq(c->tables.spool_dir, "./var/spool");
    cr_assert_eq(c->tables.spool_max_bytes, (uint64_t)1 << 30);
    cr_assert(c->tables.usage_table, "postgres writes endpoint_usage by default");
    gw_config_free(c);
}

Test(config_tables, dsn_from_database_url, .timeout = 10)
{
    setenv("DATABASE_URL", "postgresql://env@127.0.0.1:5/envdb", 1);
    gw_config_t *c = parse_ok("{\"sink\":\"postgres\"}");
    cr_assert_str_eq(c->tables.dsn, "postgresql://env@127.0.0.1:5/envdb");
    gw_config_free(c);
    c = parse_ok("{\"sink\":\"postgres\",\"dsn\":\"host=file\"}");
    cr_assert_str_eq(c->tables.dsn, "host=file", "the file wins over the environment");
    gw_config_free(c);
    unsetenv("DATABASE_URL");
    expect_error("{\"sink\":\"postgres\"}", "tables.sink", "DATABASE_URL");
}

Test(config_tables, errors_name_the_key, .timeout = 10)
{
    unsetenv("DATABASE_URL");
    expect_error("{\"sink\":\"mysql\"}", "tables.sink", "\"postgres\"");
    expect_error("{\"sink\":\"jsonl\",\"dir\":\"/t\",\"fsync\":\"sometimes\"}", "tables.fsync", "batch");
    expect_error("{\"sink\":\"jsonl\",\"dir\":\"/t\",\"fsync\":1}", "tables.fsync", "string");
    expect_error("{\"sink\":\"jsonl\",\"dir\":\"/t\",\"rotate_bytes\":100}", "tables.rotate_bytes",
                 "between");
    expect_error("{\"sink\":\"postgres\",\"dsn\":\"x\",\"batch_rows\":0}", "tables.batch_rows", "between");
    expect_error("{\"sink\":\"postgres\",\"dsn\":\"x\",\"batch_rows\":2.5}", "tables.batch_rows", "integer");
    expect_error("{\"sink\":\"postgres\",\"dsn\":\"x\",\"spool_max_bytes\":10}", "tables.spool_max_bytes",
                 "between");
    expect_error("{\"sink\":\"postgres\",\"dsn\":\"x\",\"spool_dir\":\"\"}", "tables.spool_dir", "empty");
    expect_error("{\"sink\":\"postgres\",\"dsn\":\"x\",\"usage_table\":1}", "tables.usage_table",
                 "true or false");
    expect_error("{\"sink\":\"postgres\",\"dsn\":\"x\",\"spool\":\"/x\"}", "tables.spool", "unknown key");
}
