-- Inference tables in PostgreSQL (INFERENCE_TABLES.md §2, §6, §7.4).
--
-- agate creates these itself (tables/sink_postgres.c) when it connects: every payload table of the
-- configured endpoints plus unrouted_payload and endpoint_usage, each with the partitions of today
-- and tomorrow (UTC), and any other day's partition the first time a row for it arrives. The DDL
-- runs inside one DO block under pg_advisory_xact_lock(727465), so several agate processes can
-- start against one database at once. This file documents that DDL; it is also valid SQL to run by
-- hand (replace the table name). tests/integration/tables_pg.test.mjs checks that the tables agate
-- creates have exactly the columns listed here, in this order.
--
-- Types (§6): DATE -> date, TIMESTAMP -> timestamptz, INT -> integer, BIGINT -> bigint,
-- DOUBLE -> double precision, STRING -> text, ARRAY<STRING> -> text[], MAP/STRUCT/ARRAY<STRUCT> ->
-- jsonb. request/response are text, byte-exact (a NUL byte, which text cannot hold, is stored as
-- U+FFFD; the database must use the UTF8 encoding).
--
-- Idempotency (§6): the primary key is (databricks_request_id, request_date) because a unique key
-- of a partitioned table must contain the partition key. request_date is derived from
-- request_time, which is fixed when the row is built, so a replayed row always carries the same
-- pair: inserts use ON CONFLICT DO NOTHING and a replay never duplicates a row.
--
-- Rows are inserted as JSON, one statement per batch (default 500 rows):
--   WITH i1 AS (INSERT INTO "<table>" SELECT * FROM json_populate_recordset(NULL::"<table>", $1::json)
--               ON CONFLICT DO NOTHING RETURNING 1), ...
--   SELECT (SELECT count(*) FROM i1) + ...
-- so JSON keys map to columns by name and columns a row does not carry (trace_id,
-- request_tags until the gateway fills them) are NULL.
--
-- Partition names are "<table>_YYYYMMDD" (for tables longer than 54 bytes: the first 40 bytes,
-- '_', 8 hex digits of a hash of the full name, '_', YYYYMMDD, to stay within 63 bytes).

-- Payload table: one per endpoint, "<endpoint>_payload" (and unrouted_payload).
CREATE TABLE IF NOT EXISTS "chat-agent_payload" (
    -- §2.1, the twelve AI Gateway columns, in the platform's order
    databricks_request_id  text NOT NULL,
    request_date           date NOT NULL,
    client_request_id      text,
    request_time           timestamptz NOT NULL,
    status_code            integer,
    sampling_fraction      double precision,
    execution_duration_ms  bigint,
    request                text,
    response               text,
    logging_error_codes    text[] NOT NULL,
    served_entity_id       text,
    requester              text,
    -- §2.2 extension columns
    schema_version         text NOT NULL,
    endpoint_name          text,
    front_route            text,
    served_entity_name     text,
    adapter                text,
    upstream_model         text,
    upstream_replica       text,
    attempt_count          integer NOT NULL,
    attempts               jsonb,
    fallback_used          boolean NOT NULL,
    gateway_instance       text,
    config_version         text,
    trace_id               text,
    total_duration_ms      bigint NOT NULL,
    time_to_first_byte_ms  bigint,
    time_to_first_token_ms bigint,
    queue_ms               bigint,
    stream                 boolean NOT NULL,
    finish_status          text NOT NULL,
    error_code             text,
    error_message          text,
    rate_limit_scope       text,
    input_tokens           bigint,
    output_tokens          bigint,
    cached_input_tokens    bigint,
    reasoning_tokens       bigint,
    token_count_source     text,
    request_bytes          bigint NOT NULL,
    response_bytes         bigint,
    usage_context          jsonb,
    request_tags           jsonb,
    redacted               boolean NOT NULL,
    dropped_tools          jsonb,             -- hosted tools left out of the upstream request (issue 10)
    requester_groups       jsonb,             -- the caller's groups (issue 13)
    stored                 boolean,           -- response committed to the response store (issue 12)
    PRIMARY KEY (databricks_request_id, request_date)
) PARTITION BY RANGE (request_date);
CREATE INDEX ON "chat-agent_payload" (request_time);
CREATE INDEX ON "chat-agent_payload" (client_request_id);
CREATE INDEX ON "chat-agent_payload" (served_entity_id, request_time);
CREATE TABLE IF NOT EXISTS "chat-agent_payload_20260704" PARTITION OF "chat-agent_payload"
    FOR VALUES FROM ('2026-07-04') TO ('2026-07-05');

-- Usage table (§7.4): one row per request, never sampled, no payloads.
CREATE TABLE IF NOT EXISTS endpoint_usage (
    -- compatible columns of system.serving.endpoint_usage
    databricks_request_id  text NOT NULL,
    client_request_id      text,
    requester              text,
    request_time           timestamptz NOT NULL,
    status_code            integer,
    served_entity_id       text,
    input_token_count      bigint,
    output_token_count     bigint,
    input_character_count  bigint,
    output_character_count bigint,
    request_streaming      boolean,
    usage_context          jsonb,
    -- extension columns
    request_date           date NOT NULL,
    schema_version         text,
    endpoint_name          text,
    latency_ms             bigint,
    time_to_first_byte_ms  bigint,
    cached_input_tokens    bigint,
    total_token_count      bigint,
    token_count_source     text,
    attempt_count          integer,
    fallback_used          boolean,
    finish_status          text,
    request_tags           jsonb,
    rate_limit_scope       text,
    requester_groups       jsonb,
    PRIMARY KEY (databricks_request_id, request_date)
) PARTITION BY RANGE (request_date);
CREATE INDEX ON endpoint_usage (request_time);
CREATE INDEX ON endpoint_usage (requester, request_time);
CREATE INDEX ON endpoint_usage (endpoint_name, request_time);
CREATE TABLE IF NOT EXISTS endpoint_usage_20260704 PARTITION OF endpoint_usage
    FOR VALUES FROM ('2026-07-04') TO ('2026-07-05');
