/* tb_pgsql: SQL text of the PostgreSQL sink (see pg_sql.h). */
#include "tables/pg_sql.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tables/sink.h"

#define ENSURED_MAX  1024
#define DDL_LOCK_KEY "727465"

/* Column lists of tables/schema.sql (keep in sync: the integration test compares them). */
static const char payload_columns[] =
    "databricks_request_id text NOT NULL, request_date date NOT NULL, client_request_id text, "
    "request_time timestamptz NOT NULL, status_code integer, sampling_fraction double precision, "
    "execution_duration_ms bigint, request text, response text, logging_error_codes text[] NOT NULL, "
    "served_entity_id text, requester text, schema_version text NOT NULL, endpoint_name text, "
    "front_route text, served_entity_name text, adapter text, upstream_model text, upstream_replica text, "
    "attempt_count integer NOT NULL, attempts jsonb, fallback_used boolean NOT NULL, gateway_instance text, "
    "config_version text, trace_id text, total_duration_ms bigint NOT NULL, time_to_first_byte_ms bigint, "
    "time_to_first_token_ms bigint, queue_ms bigint, stream boolean NOT NULL, finish_status text NOT NULL, "
    "error_code text, error_message text, rate_limit_scope text, input_tokens bigint, output_tokens bigint, "
    "cached_input_tokens bigint, reasoning_tokens bigint, token_count_source text, "
    "request_bytes bigint NOT NULL, response_bytes bigint, usage_context jsonb, request_tags jsonb, "
    "redacted boolean NOT NULL, dropped_tools jsonb, requester_groups jsonb, stored boolean, PRIMARY KEY (databricks_request_id, request_date)";
static const char *const payload_indexes[] = {"request_time", "client_request_id",
                                              "served_entity_id, request_time", NULL};
static const char usage_columns[] =
    "databricks_request_id text NOT NULL, client_request_id text, requester text, "
    "request_time timestamptz NOT NULL, status_code integer, served_entity_id text, input_token_count "
    "bigint, "
    "output_token_count bigint, input_character_count bigint, output_character_count bigint, "
    "request_streaming boolean, usage_context jsonb, request_date date NOT NULL, schema_version text, "
    "endpoint_name text, latency_ms bigint, time_to_first_byte_ms bigint, cached_input_tokens bigint, "
    "total_token_count bigint, token_count_source text, attempt_count integer, fallback_used boolean, "
    "finish_status text, request_tags jsonb, rate_limit_scope text, requester_groups jsonb, "
    "PRIMARY KEY (databricks_request_id, request_date)";
static const char *const usage_indexes[] = {"request_time", "requester, request_time",
                                            "endpoint_name, request_time", NULL};

bool tb_pgsql_valid_table(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= TB_TABLE_MAX)
        return false;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '-' ||
              *t == '_' || *t == '.'))
            return false;
    return true;
}

bool tb_pgsql_valid_date(const char *d)
{
    if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

void tb_pgsql_partition_name(const char *table, const char *date, char out[64])
{
    char ymd[9] = {date[0], date[1], date[2], date[3], date[5], date[6], date[8], date[9], '\0'};
    size_t n = strlen(table);
    if (n + 9 <= 63) {
        snprintf(out, 64, "%s_%s", table, ymd);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a: keeps long names distinct after the cut */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)table[i];
        h *= 16777619u;
    }
    snprintf(out, 64, "%.40s_%08" PRIx32 "_%s", table, h, ymd);
}

void tb_pgsql_next_day(const char *date, char out[11])
{
    struct tm tm = {0};
    tm.tm_year = atoi(date) - 1900;
    tm.tm_mon = atoi(date + 5) - 1;
    tm.tm_mday = atoi(date + 8) + 1;
    tm.tm_hour = 12;
    time_t t = timegm(&tm);
    gmtime_r(&t, &tm);
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
    memcpy(out, tmp, 11);
}

void tb_pgsql_ddl_init(tb_pgsql_ddl_t *s)
{
    s->ensured = gw_xcalloc(ENSURED_MAX, sizeof(*s->ensured));
}

void tb_pgsql_ddl_dispose(tb_pgsql_ddl_t *s)
{
    free(s->ensured);
    free(s->marks);
}

static bool is_ensured(const tb_pgsql_ddl_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_ensured; i++)
        if (strcmp(s->ensured[i], key) == 0)
            return true;
    return false;
}

static bool is_marked(const tb_pgsql_ddl_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_marks; i++)
        if (strcmp(s->marks[i], key) == 0)
            return true;
    return false;
}

static void mark(tb_pgsql_ddl_t *s, const char *key)
{
    if (s->n_marks == s->cap_marks) {
        s->cap_marks = s->cap_marks ? s->cap_marks * 2 : 16;
        s->marks = gw_xrealloc(s->marks, s->cap_marks * sizeof(*s->marks));
    }
    snprintf(s->marks[s->n_marks++], sizeof(*s->marks), "%s", key);
}

/* Adds to sql the DDL for (table, date) unless it is known to exist or already planned. */
void tb_pgsql_ddl_plan(tb_pgsql_ddl_t *s, gw_buf_t *sql, const char *table, const char *date)
{
    char key[TB_PGSQL_KEY_MAX];
    snprintf(key, sizeof(key), "%s/%s", table, date);
    if (is_ensured(s, key) || is_marked(s, key))
        return;
    if (!sql->len)
        gw_buf_append_cstr(sql, "DO $agate$ BEGIN PERFORM pg_advisory_xact_lock(" DDL_LOCK_KEY ");\n");
    if (!is_ensured(s, table) && !is_marked(s, table)) {
        bool usage = strcmp(table, TB_USAGE_TABLE) == 0;
        gw_buf_appendf(sql,
                       "IF to_regclass('\"%s\"') IS NULL THEN CREATE TABLE \"%s\" (%s) PARTITION BY RANGE "
                       "(request_date);\n",
                       table, table, usage ? usage_columns : payload_columns);
        for (const char *const *ix = usage ? usage_indexes : payload_indexes; *ix; ix++)
            gw_buf_appendf(sql, "CREATE INDEX ON \"%s\" (%s);\n", table, *ix);
        gw_buf_append_cstr(sql, "END IF;\n");
        mark(s, table);
    }
    char part[64], to[11];
    tb_pgsql_partition_name(table, date, part);
    tb_pgsql_next_day(date, to);
    gw_buf_appendf(sql,
                   "IF to_regclass('\"%s\"') IS NULL THEN CREATE TABLE \"%s\" PARTITION OF \"%s\" FOR VALUES "
                   "FROM ('%s') TO ('%s'); END IF;\n",
                   part, part, table, date, to);
    mark(s, key);
}

void tb_pgsql_ddl_close(gw_buf_t *sql)
{
    gw_buf_append_cstr(sql, "END $agate$;");
    gw_buf_append(sql, "", 1);
}

void tb_pgsql_ddl_abandon(tb_pgsql_ddl_t *s)
{
    s->n_marks = 0;
}

void tb_pgsql_ddl_forget(tb_pgsql_ddl_t *s)
{
    s->n_ensured = 0;
}

void tb_pgsql_ddl_commit(tb_pgsql_ddl_t *s)
{
    for (size_t i = 0; i < s->n_marks; i++) {
        if (s->n_ensured == ENSURED_MAX)
            s->n_ensured = 0; /* forgetting only costs a DDL round trip */
        memcpy(s->ensured[s->n_ensured++], s->marks[i], sizeof(*s->marks));
    }
    s->n_marks = 0;
}

/* Sanitise one JSON row for PostgreSQL: text cannot hold NUL, and json_populate_recordset refuses
 * the \u0000 escape, so it becomes \ufffd (the replacement character, as for invalid UTF-8).
 * A backslash always starts an escape pair in our serialiser's output, so pairs are skipped whole. */
static void append_row_json(gw_buf_t *b, const tb_row_t *r)
{
    size_t at = b->len;
    gw_buf_append(b, r->data, r->len);
    char *p = b->base + at;
    for (size_t i = 0; i + 1 < r->len; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && i + 5 < r->len && memcmp(p + i + 2, "0000", 4) == 0)
            memcpy(p + i + 2, "fffd", 4);
        i++;
    }
}

static gw_buf_t *param_for(tb_pgsql_insert_t *s, const char *table, size_t *idx, const char **tables)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (strcmp(tables[i], table) == 0) {
            *idx = i;
            return &s->params[i];
        }
    if (s->n_params == s->cap_params) {
        size_t cap = s->cap_params ? s->cap_params * 2 : 4;
        s->params = gw_xrealloc(s->params, cap * sizeof(*s->params));
        s->values = gw_xrealloc(s->values, cap * sizeof(*s->values));
        for (size_t i = s->cap_params; i < cap; i++)
            gw_buf_init(&s->params[i]);
        s->cap_params = cap;
    }
    *idx = s->n_params;
    tables[s->n_params] = table;
    gw_buf_t *b = &s->params[s->n_params++];
    gw_buf_reset(b);
    gw_buf_append(b, "[", 1);
    return b;
}

void tb_pgsql_insert_build(tb_pgsql_insert_t *s, gw_buf_t *sql, const tb_row_t *first, size_t n)
{
    const char **tables = gw_xmalloc((n + 1) * sizeof(*tables));
    s->n_params = 0;
    size_t i = 0;
    for (const tb_row_t *r = first; r && i < n; r = r->next, i++) {
        size_t k;
        gw_buf_t *b = param_for(s, r->table, &k, tables);
        if (b->len > 1)
            gw_buf_append(b, ",", 1);
        append_row_json(b, r);
    }
    gw_buf_reset(sql);
    gw_buf_append_cstr(sql, "WITH ");
    for (size_t k = 0; k < s->n_params; k++) {
        gw_buf_append(&s->params[k], "]", 2); /* with the NUL: text parameters are C strings */
        s->params[k].len--;
        gw_buf_appendf(
            sql,
            "%si%zu AS (INSERT INTO \"%s\" SELECT * FROM json_populate_recordset(NULL::\"%s\", $%zu::json) "
            "ON CONFLICT DO NOTHING RETURNING 1)",
            k ? ", " : "", k + 1, tables[k], tables[k], k + 1);
    }
    gw_buf_append_cstr(sql, " SELECT 0");
    for (size_t k = 0; k < s->n_params; k++)
        gw_buf_appendf(sql, " + (SELECT count(*) FROM i%zu)", k + 1);
    gw_buf_append(sql, "", 1); /* NUL */
    for (size_t k = 0; k < s->n_params; k++)
        s->values[k] = s->params[k].base;
    free(tables);
}

void tb_pgsql_insert_dispose(tb_pgsql_insert_t *s)
{
    for (size_t i = 0; i < s->cap_params; i++)
        gw_buf_dispose(&s->params[i]);
    free(s->params);
    free(s->values);
}
