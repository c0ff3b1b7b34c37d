/* gw_config_parse / gw_config_load: a full valid file, defaults, and every validation error,
 * whose message must name the offending key by its path (`endpoints[0].upstreams[0].url`). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"

#define ERRLEN 512

/* A config that sets every key. */
static const char FULL[] =
    "{\n"
    "  \"listen\": \"0.0.0.0:9090\",\n"
    "  \"log_level\": \"debug\",\n"
    "  \"endpoints\": [\n"
    "    {\n"
    "      \"name\": \"chat-agent\",\n"
    "      \"adapter\": \"chat_completions\",\n"
    "      \"flavor\": \"openai\",\n"
    "      \"upstreams\": [\n"
    "        {\"url\": \"http://10.0.0.1:8000/v1/\", \"api_key_env\": \"AGATE_TEST_KEY\", \"weight\": 3},\n"
    "        {\"url\": \"https://llm.example.com/v1\"}\n"
    "      ],\n"
    "      \"model\": \"qwen2.5-7b-instruct\",\n"
    "      \"params\": {\"temperature\": 0.2, \"top_p\": 0.95, \"max_output_tokens\": 1024},\n"
    "      \"developer_role\": true,\n"
    "      \"max_tokens_field\": \"max_completion_tokens\",\n"
    "      \"timeouts\": {\"connect_ms\": 1500, \"first_event_ms\": 8000, \"idle_ms\": 30000, \"total_ms\": "
    "120000},\n"
    "      \"sampling_rate\": 0.5\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"mlflow_agent.v2\",\n"
    "      \"adapter\": \"responses\",\n"
    "      \"flavor\": \"mlflow\",\n"
    "      \"upstreams\": [{\"url\": \"http://127.0.0.1:5000\"}]\n"
    "    }\n"
    "  ],\n"
    "  \"tables\": {\"sink\": \"jsonl\", \"dir\": \"/var/lib/agate/tables\", \"flush_ms\": 250,\n"
    "             \"max_logged_request_bytes\": 2048, \"max_logged_response_bytes\": 4096,\n"
    "             \"max_queue_bytes\": 1048576},\n"
    "  \"limits\": {\"max_body_bytes\": 1048576, \"max_header_bytes\": 8192, \"max_connections\": 100,\n"
    "             \"header_timeout_ms\": 5000, \"keepalive_timeout_ms\": 7000, \"sse_keepalive_ms\": 9000,\n"
    "             \"max_event_bytes\": 65536}\n"
    "}\n";

/* The smallest valid config. */
#define MINIMAL "{\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\"}]}]}"

static gw_config_t *parse_ok(const char *json)
{
    char err[ERRLEN] = "";
    gw_config_t *c = gw_config_parse(json, strlen(json), err, sizeof(err));
    cr_assert_not_null(c, "rejected: %s\n%s", err, json);
    return c;
}

/* The config must be rejected with a message that names `path` as the failing key (the message
 * reads "config: <path>: <what>") and mentions `what`. */
static void expect_error(const char *json, const char *path, const char *what)
{
    char err[ERRLEN];
    memset(err, 'Q', sizeof(err));
    err[sizeof(err) - 1] = '\0';
    gw_config_t *c = gw_config_parse(json, strlen(json), err, sizeof(err));
    cr_assert_null(c, "accepted, expected an error at %s:\n%s", path, json);
    cr_assert_lt(strlen(err), sizeof(err) - 1, "message not terminated");
    char want[256];
    snprintf(want, sizeof(want), "config: %s: ", path);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "message \"%s\" does not name \"%s\"", err, path);
    cr_assert_not_null(strstr(err, what), "message \"%s\" lacks \"%s\"", err, what);
    cr_assert_null(strchr(err, '\n'), "one-line message: %s", err);
}

/* MINIMAL with one endpoint's body replaced. */
static void expect_endpoint_error(const char *endpoint, const char *path, const char *what)
{
    char json[2048];
    snprintf(json, sizeof(json), "{\"endpoints\":[%s]}", endpoint);
    expect_error(json, path, what);
}

#define UP "\"upstreams\":[{\"url\":\"http://h:1\"}]"

Test(config, full_valid_config, .timeout = 10)
{
    cr_assert_eq(setenv("AGATE_TEST_KEY", "sk-test-123", 1), 0);
    gw_config_t *c = parse_ok(FULL);
    cr_assert_str_eq(c->listen_host, "0.0.0.0");
    cr_assert_eq(c->listen_port, 9090);
    cr_assert_str_eq(c->log_level, "debug");
    cr_assert_eq(c->n_endpoints, 2);

    const gw_endpoint_cfg_t *e = &c->endpoints[0];
    cr_assert_str_eq(e->name, "chat-agent");
    cr_assert_eq(e->adapter, GW_ADAPTER_CHAT_COMPLETIONS);
    cr_assert_eq(e->flavor, GW_FLAVOR_OPENAI);
    cr_assert_str_eq(e->model, "qwen2.5-7b-instruct");
    cr_assert_eq(e->n_upstreams, 2);
    cr_assert_str_eq(e->upstreams[0].url, "http://10.0.0.1:8000/v1", "trailing slash removed");
    cr_assert_str_eq(e->upstreams[0].api_key_env, "AGATE_TEST_KEY");
    cr_assert_str_eq(e->upstreams[0].api_key, "sk-test-123", "api key resolved from the environment");
    cr_assert_eq(e->upstreams[0].weight, 3);
    cr_assert_str_eq(e->upstreams[1].url, "https://llm.example.com/v1");
    cr_assert_null(e->upstreams[1].api_key);
    cr_assert_null(e->upstreams[1].api_key_env);
    cr_assert_eq(e->upstreams[1].weight, 1);
    cr_assert(e->temperature.has);
    cr_assert_float_eq(e->temperature.value, 0.2, 1e-12);
    cr_assert(e->top_p.has);
    cr_assert_float_eq(e->top_p.value, 0.95, 1e-12);
    cr_assert(e->max_output_tokens.has);
    cr_assert_float_eq(e->max_output_tokens.value, 1024, 1e-12);
    cr_assert(e->developer_role);
    cr_assert_str_eq(e->max_tokens_field, "max_completion_tokens");
    cr_assert_eq(e->connect_timeout_ms, 1500);
    cr_assert_eq(e->first_event_timeout_ms, 8000);
    cr_assert_eq(e->idle_timeout_ms, 30000);
    cr_assert_eq(e->total_timeout_ms, 120000);
    cr_assert_float_eq(e->sampling_rate, 0.5, 1e-12);

    e = &c->endpoints[1];
    cr_assert_str_eq(e->name, "mlflow_agent.v2");
    cr_assert_eq(e->adapter, GW_ADAPTER_RESPONSES);
    cr_assert_eq(e->flavor, GW_FLAVOR_MLFLOW);
    cr_assert_str_eq(e->model, "mlflow_agent.v2", "model defaults to the endpoint name");

    cr_assert_eq(c->tables.sink, GW_SINK_JSONL);
    cr_assert_str_eq(c->tables.dir, "/var/lib/agate/tables");
    cr_assert_eq(c->tables.flush_ms, 250);
    cr_assert_eq(c->tables.max_logged_request_bytes, 2048);
    cr_assert_eq(c->tables.max_logged_response_bytes, 4096);
    cr_assert_eq(c->tables.max_queue_bytes, 1048576);

    cr_assert_eq(c->limits.max_body_bytes, 1048576);
    cr_assert_eq(c->limits.max_header_bytes, 8192);
    cr_assert_eq(c->limits.max_connections, 100);
    cr_assert_eq(c->limits.header_timeout_ms, 5000);
    cr_assert_eq(c->limits.keepalive_timeout_ms, 7000);
    cr_assert_eq(c->limits.sse_keepalive_ms, 9000);
    cr_assert_eq(c->limits.max_event_bytes, 65536);

    cr_assert_eq(strlen(c->version), 16);
    cr_assert_eq(strspn(c->version, "0123456789abcdef"), 16, "version is 16 hex digits: %s", c->version);

    cr_assert_eq(gw_config_endpoint(c, "chat-agent", 10), &c->endpoints[0]);
    cr_assert_eq(gw_config_endpoint(c, "mlflow_agent.v2", 15), &c->endpoints[1]);
    cr_assert_null(gw_config_endpoint(c, "chat-agen", 9));
    cr_assert_null(gw_config_endpoint(c, "chat-agent-x", 12));
    cr_assert_eq(gw_config_endpoint(c, "chat-agent-x", 10), &c->endpoints[0], "lookup uses the given length");
    gw_config_free(c);
    unsetenv("AGATE_TEST_KEY");
}

Test(config, defaults, .timeout = 10)
{
    unsetenv("AGATE_TEST_UNSET_KEY");
    gw_config_t *c = parse_ok("{\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\","
                              "\"api_key_env\":\"AGATE_TEST_UNSET_KEY\"}]}]}");
    cr_assert_str_eq(c->listen_host, "127.0.0.1");
    cr_assert_eq(c->listen_port, 8080);
    cr_assert_str_eq(c->log_level, "info");
    const gw_endpoint_cfg_t *e = &c->endpoints[0];
    cr_assert_eq(e->adapter, GW_ADAPTER_CHAT_COMPLETIONS);
    cr_assert_eq(e->flavor, GW_FLAVOR_OPENAI);
    cr_assert_str_eq(e->model, "a");
    cr_assert_str_eq(e->max_tokens_field, "max_tokens");
    cr_assert_not(e->developer_role);
    cr_assert_not(e->temperature.has);
    cr_assert_not(e->top_p.has);
    cr_assert_not(e->max_output_tokens.has);
    cr_assert_eq(e->connect_timeout_ms, 5000);
    cr_assert_eq(e->first_event_timeout_ms, 10000);
    cr_assert_eq(e->idle_timeout_ms, 60000);
    cr_assert_eq(e->total_timeout_ms, 297000);
    cr_assert_float_eq(e->sampling_rate, 1.0, 1e-12);
    cr_assert_eq(e->upstreams[0].weight, 1);
    cr_assert_null(e->upstreams[0].api_key, "an unset variable gives no key");
    cr_assert_eq(c->tables.sink, GW_SINK_NONE);
    cr_assert_eq(c->tables.flush_ms, 1000);
    cr_assert_eq(c->tables.max_logged_request_bytes, 1048576);
    cr_assert_eq(c->tables.max_logged_response_bytes, 1048576);
    cr_assert_eq(c->tables.max_queue_bytes, (size_t)64 << 20);
    cr_assert_eq(c->limits.max_body_bytes, (size_t)4 << 20);
    cr_assert_eq(c->limits.max_header_bytes, 16384);
    cr_assert_eq(c->limits.max_connections, 4096);
    cr_assert_eq(c->limits.header_timeout_ms, 30000);
    cr_assert_eq(c->limits.keepalive_timeout_ms, 60000);
    cr_assert_eq(c->limits.sse_keepalive_ms, 15000);
    cr_assert_eq(c->limits.max_event_bytes, (size_t)1 << 20);
    gw_config_free(c);

    /* Partial timeouts keep the other defaults; params without max_output_tokens. */
    c = parse_ok("{\"endpoints\":[{\"name\":\"a\"," UP
                 ",\"timeouts\":{\"idle_ms\":5},\"params\":{\"top_p\":0}}]}");
    cr_assert_eq(c->endpoints[0].idle_timeout_ms, 5);
    cr_assert_eq(c->endpoints[0].connect_timeout_ms, 5000);
    cr_assert_eq(c->endpoints[0].total_timeout_ms, 297000);
    cr_assert(c->endpoints[0].top_p.has);
    cr_assert_float_eq(c->endpoints[0].top_p.value, 0.0, 1e-12);
    cr_assert_not(c->endpoints[0].temperature.has);
    gw_config_free(c);

    /* tables.sink none needs no dir. */
    c = parse_ok("{\"endpoints\":[{\"name\":\"a\"," UP "}],\"tables\":{\"sink\":\"none\"}}");
    cr_assert_eq(c->tables.sink, GW_SINK_NONE);
    cr_assert_null(c->tables.dir);
    gw_config_free(c);
}

Test(config, version_follows_the_bytes, .timeout = 10)
{
    gw_config_t *a = parse_ok(MINIMAL);
    gw_config_t *b = parse_ok(MINIMAL);
    gw_config_t *c = parse_ok("{\"endpoints\":[{\"name\":\"b\",\"upstreams\":[{\"url\":\"http://h:1\"}]}]}");
    cr_assert_str_eq(a->version, b->version);
    cr_assert_str_neq(a->version, c->version);
    gw_config_free(a);
    gw_config_free(b);
    gw_config_free(c);
}

#define EPS "\"endpoints\":[{\"name\":\"a\"," UP "}]"

Test(config, listen_forms, .timeout = 10)
{
    gw_config_t *c = parse_ok("{\"listen\":\"localhost:0\"," EPS "}");
    cr_assert_str_eq(c->listen_host, "localhost");
    cr_assert_eq(c->listen_port, 0);
    gw_config_free(c);
    c = parse_ok("{\"listen\":\"10.1.2.3:65535\"," EPS "}");
    cr_assert_str_eq(c->listen_host, "10.1.2.3");
    cr_assert_eq(c->listen_port, 65535);
    gw_config_free(c);
}

Test(config, load_from_file, .timeout = 10)
{
    char path[] = "/tmp/agate_test_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, FULL, sizeof(FULL) - 1), (ssize_t)(sizeof(FULL) - 1));
    close(fd);
    char err[ERRLEN] = "";
    gw_config_t *c = gw_config_load(path, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->n_endpoints, 2);
    cr_assert_eq(c->listen_port, 9090);
    gw_config_t *d = parse_ok(FULL);
    cr_assert_str_eq(c->version, d->version, "load and parse of the same bytes agree");
    gw_config_free(c);
    gw_config_free(d);
    unlink(path);

    c = gw_config_load(path, err, sizeof(err));
    cr_assert_null(c);
    cr_assert_not_null(strstr(err, "cannot open"), "%s", err);
    cr_assert_not_null(strstr(err, path), "%s", err);
}

Test(config, rejects_bad_json_and_top_level, .timeout = 10)
{
    char err[ERRLEN] = "";
    const char *bad = "{\"endpoints\": [";
    cr_assert_null(gw_config_parse(bad, strlen(bad), err, sizeof(err)));
    cr_assert_eq(strncmp(err, "config: invalid JSON", 20), 0, "%s", err);
    expect_error("[]", "(top level)", "object");
    expect_error("\"x\"", "(top level)", "object");
}

Test(config, unknown_keys_name_their_path, .timeout = 10)
{
    expect_error("{\"listen\":\"127.0.0.1:1\",\"bogus\":1," EPS "}", "bogus", "unknown key");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"modle\":\"x\"}", "endpoints[0].modle", "unknown key");
    expect_error("{\"endpoints\":[{\"name\":\"a\"," UP
                 "},{\"name\":\"b\",\"upstreams\":[{\"url\":\"http://h:1\"},"
                 "{\"url\":\"http://h:2\",\"weigth\":2}]}]}",
                 "endpoints[1].upstreams[1].weigth", "unknown key");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":{\"temperature\":1,\"max_tokens\":5}}",
                          "endpoints[0].params.max_tokens", "unknown key");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"timeouts\":{\"read_ms\":5}}",
                          "endpoints[0].timeouts.read_ms", "unknown key");
    expect_error("{" EPS ",\"tables\":{\"sink\":\"none\",\"path\":\"/x\"}}", "tables.path", "unknown key");
    expect_error("{" EPS ",\"limits\":{\"max_body\":5}}", "limits.max_body", "unknown key");
}

Test(config, missing_required_keys, .timeout = 10)
{
    expect_error("{\"listen\":\"127.0.0.1:1\"}", "endpoints", "required");
    expect_error("{\"endpoints\":[]}", "endpoints", "at least one");
    expect_endpoint_error("{" UP "}", "endpoints[0].name", "required");
    expect_endpoint_error("{\"name\":\"a\"}", "endpoints[0].upstreams", "required");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[]}", "endpoints[0].upstreams", "at least one");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[{\"weight\":1}]}", "endpoints[0].upstreams[0].url",
                          "required");
    expect_error("{" EPS ",\"tables\":{\"dir\":\"/x\"}}", "tables.sink", "required");
    expect_error("{" EPS ",\"tables\":{\"sink\":\"jsonl\"}}", "tables.dir", "required");
}

Test(config, wrong_types, .timeout = 10)
{
    expect_error("{\"listen\":8080," EPS "}", "listen", "string");
    expect_error("{\"log_level\":1," EPS "}", "log_level", "string");
    expect_error("{\"endpoints\":{}}", "endpoints", "array");
    expect_error("{\"endpoints\":[\"a\"]}", "endpoints[0]", "object");
    expect_error("{" EPS ",\"tables\":[]}", "tables", "object");
    expect_error("{" EPS ",\"limits\":\"big\"}", "limits", "object");
    expect_endpoint_error("{\"name\":5," UP "}", "endpoints[0].name", "string");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":{\"url\":\"http://h\"}}", "endpoints[0].upstreams",
                          "array");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[\"http://h:1\"]}", "endpoints[0].upstreams[0]",
                          "object");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[{\"url\":7}]}", "endpoints[0].upstreams[0].url",
                          "string");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\",\"weight\":\"2\"}]}",
                          "endpoints[0].upstreams[0].weight", "number");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\",\"api_key_env\":true}]}",
                          "endpoints[0].upstreams[0].api_key_env", "string");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":[]}", "endpoints[0].params", "object");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":{\"temperature\":\"hot\"}}",
                          "endpoints[0].params.temperature", "number");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"developer_role\":\"yes\"}", "endpoints[0].developer_role",
                          "true or false");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"timeouts\":5}", "endpoints[0].timeouts", "object");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"timeouts\":{\"idle_ms\":null}}",
                          "endpoints[0].timeouts.idle_ms", "number");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"model\":[\"m\"]}", "endpoints[0].model", "string");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"sampling_rate\":true}", "endpoints[0].sampling_rate",
                          "number");
    expect_error("{" EPS ",\"limits\":{\"max_connections\":\"many\"}}", "limits.max_connections", "number");
    expect_error("{" EPS ",\"tables\":{\"sink\":\"none\",\"flush_ms\":{}}}", "tables.flush_ms", "number");
}

Test(config, bad_values, .timeout = 10)
{
    expect_error("{\"log_level\":\"verbose\"," EPS "}", "log_level", "debug");
    expect_endpoint_error("{\"name\":\"a b\"," UP "}", "endpoints[0].name", "A-Za-z0-9");
    expect_endpoint_error("{\"name\":\"\"," UP "}", "endpoints[0].name", "non-empty");
    expect_endpoint_error("{\"name\":\"a\\u0000b\"," UP "}", "endpoints[0].name", "NUL");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"adapter\":\"grpc\"}", "endpoints[0].adapter",
                          "chat_completions");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"flavor\":\"vertex\"}", "endpoints[0].flavor", "mlflow");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"max_tokens_field\":\"max_new_tokens\"}",
                          "endpoints[0].max_tokens_field", "max_completion_tokens");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\",\"weight\":0}]}",
                          "endpoints[0].upstreams[0].weight", "between");
    expect_endpoint_error("{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\",\"weight\":1.5}]}",
                          "endpoints[0].upstreams[0].weight", "integer");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":{\"temperature\":2.5}}",
                          "endpoints[0].params.temperature", "between");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":{\"top_p\":1.01}}", "endpoints[0].params.top_p",
                          "between");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":{\"max_output_tokens\":0}}",
                          "endpoints[0].params.max_output_tokens", "between");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"params\":{\"max_output_tokens\":10.5}}",
                          "endpoints[0].params.max_output_tokens", "integer");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"sampling_rate\":0}", "endpoints[0].sampling_rate",
                          "(0, 1]");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"sampling_rate\":1.5}", "endpoints[0].sampling_rate",
                          "between");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"timeouts\":{\"connect_ms\":0}}",
                          "endpoints[0].timeouts.connect_ms", "between");
    expect_endpoint_error("{\"name\":\"a\"," UP ",\"timeouts\":{\"total_ms\":1.5}}",
                          "endpoints[0].timeouts.total_ms", "integer");
    /* postgres without a DSN (and no DATABASE_URL in the test environment): named as such. */
    unsetenv("DATABASE_URL");
    expect_error("{" EPS ",\"tables\":{\"sink\":\"postgres\"}}", "tables.sink", "DATABASE_URL");
    expect_error("{" EPS ",\"tables\":{\"sink\":\"kafka\"}}", "tables.sink", "\"postgres\" or \"none\"");
    expect_error("{" EPS ",\"limits\":{\"max_event_bytes\":10}}", "limits.max_event_bytes", "between");
    expect_error("{" EPS ",\"limits\":{\"max_body_bytes\":1000.5}}", "limits.max_body_bytes", "integer");
    expect_error("{" EPS ",\"tables\":{\"sink\":\"none\",\"max_queue_bytes\":100000.25}}",
                 "tables.max_queue_bytes", "integer");
}

Test(config, bad_upstream_urls, .timeout = 10)
{
    static const char *const bad[] = {"ftp://h/v1",         "h:8000/v1", "HTTP//h",    "",
                                      "file:///etc/passwd", "http://",   "https:///v1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char ep[512];
        snprintf(ep, sizeof(ep),
                 "{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://ok:1\"},{\"url\":\"%s\"}]}", bad[i]);
        expect_endpoint_error(ep, "endpoints[0].upstreams[1].url", "http");
    }
    /* Deeper in the file the path keeps every index. */
    expect_error("{\"endpoints\":[{\"name\":\"a\"," UP
                 "},{\"name\":\"b\",\"upstreams\":[{\"url\":\"gopher://h\"}]}]}",
                 "endpoints[1].upstreams[0].url", "http");
}

Test(config, duplicate_endpoint_names, .timeout = 10)
{
    expect_error("{\"endpoints\":[{\"name\":\"a\"," UP "},{\"name\":\"b\"," UP "},{\"name\":\"a\"," UP "}]}",
                 "endpoints[2]", "duplicate endpoint name \"a\"");
    /* Names differ only by case: two endpoints. */
    gw_config_t *c = parse_ok("{\"endpoints\":[{\"name\":\"a\"," UP "},{\"name\":\"A\"," UP "}]}");
    cr_assert_eq(c->n_endpoints, 2);
    gw_config_free(c);
}

Test(config, bad_listen, .timeout = 10)
{
    static const char *const bad[] = {"localhost",    ":8080",         "127.0.0.1:",    "127.0.0.1:65536",
                                      "127.0.0.1:-1", "127.0.0.1:80x", "127.0.0.1: 80", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[512];
        snprintf(json, sizeof(json), "{\"listen\":\"%s\"," EPS "}", bad[i]);
        expect_error(json, "listen", "");
    }
    expect_error("{\"listen\":\"localhost\"," EPS "}", "listen", "host:port");
    expect_error("{\"listen\":\"127.0.0.1:99999\"," EPS "}", "listen", "0..65535");
}

Test(config, first_error_wins_and_err_buffer_is_bounded, .timeout = 10)
{
    /* Two errors: the first in document order is reported. */
    expect_error("{\"nope\":1,\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"ftp://h\"}]}]}",
                 "nope", "unknown key");
    /* A tiny buffer is filled, never overrun, and NUL-terminated. */
    char err[16];
    memset(err, 'Q', sizeof(err));
    const char *json = "{\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"ftp://h\"}]}]}";
    cr_assert_null(gw_config_parse(json, strlen(json), err, 12));
    cr_assert_lt(strlen(err), 12);
    cr_assert_eq(err[12], 'Q', "wrote past errlen");
    cr_assert_eq(strncmp(err, "config: end", 11), 0, "%s", err);
}

Test(config, access_log, .timeout = 10)
{
    gw_config_t *c = parse_ok("{\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\"}]}]}");
    cr_assert_str_eq(c->access_log, "off", "off by default");
    gw_config_free(c);
    c = parse_ok("{\"access_log\":\"/var/log/agate/access.log\","
                 "\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\"}]}]}");
    cr_assert_str_eq(c->access_log, "/var/log/agate/access.log");
    gw_config_free(c);
    expect_error("{\"access_log\":\"\",\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\"}]}]}",
                 "access_log", "must be");
    expect_error("{\"access_log\":true,\"endpoints\":[{\"name\":\"a\",\"upstreams\":[{\"url\":\"http://h:1\"}]}]}",
                 "access_log", "");
}
