/* W3C Trace Context parsing (gateway/traceparent): the traceparent grammar with the strictness
 * documented in traceparent.h, tracestate list validation, formatting round trip; and the
 * `tracing` config block (gateway/config_tracing.c) with each validation error by path. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "gateway/config.h"
#include "gateway/traceparent.h"

#define VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *s, gw_tp_t *t)
{
    return gw_tp_parse(gw_str(s), t);
}

Test(traceparent, valid_and_round_trip, .timeout = 10)
{
    gw_tp_t t;
    cr_assert_eq(parse(VALID, &t), 0);
    cr_assert_eq(t.trace_id[0], 0x4b);
    cr_assert_eq(t.trace_id[15], 0x36);
    cr_assert_eq(t.span_id[7], 0xb7);
    cr_assert_eq(t.flags, 1);
    char out[GW_TP_HEADER_LEN + 1];
    gw_tp_format(out, t.trace_id, t.span_id, t.flags);
    cr_assert_str_eq(out, VALID);
    cr_assert_eq(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t), 0);
    cr_assert_eq(t.flags, 0);
}

Test(traceparent, invalid, .timeout = 10)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  /* v00 is exactly 55 */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",   /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  /* later version: '-' must follow */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    gw_tp_t t;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i], &t), -1, "accepted: \"%s\"", bad[i]);
    cr_assert_eq(gw_tp_parse(GW_STR_NULL, &t), -1);
}

Test(traceparent, later_versions_keep_the_known_fields, .timeout = 10)
{
    gw_tp_t t;
    cr_assert_eq(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
    cr_assert_eq(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", &t), 0);
    cr_assert_eq(t.flags, 1);
}

Test(traceparent, tracestate, .timeout = 10)
{
    static const char *const good[] = {
        "rojo=00f067aa0ba902b7",
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "  a=1 ,\tb=2",
        "a=1,,b=2",                 /* empty members are allowed */
        "tenant@vendor=x",
        "a/b*c_d-e=v w",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(gw_tp_state_valid(gw_str(good[i])), "rejected: \"%s\"", good[i]);
    static const char *const bad[] = {
        "",
        " , ",
        "Rojo=1",                   /* uppercase key */
        "1abc=1",                   /* simple key starts with a letter */
        "a=",                       /* empty value */
        "a=b=c",
        "a",
        "a=1,a=2",                  /* duplicate key */
        "@v=1",
        "t@=1",
        "t@V=1",
        "a=\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(gw_tp_state_valid(gw_str(bad[i])), "accepted: \"%s\"", bad[i]);
    char many[400] = "";
    for (int i = 0; i < 33; i++) {
        char m[12];
        snprintf(m, sizeof(m), "%sk%d=v", i ? "," : "", i);
        strcat(many, m);
    }
    cr_assert_not(gw_tp_state_valid(gw_str(many)), "33 members");
    char longv[600];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[0] = 'k';
    longv[1] = '=';
    longv[sizeof(longv) - 1] = '\0';
    cr_assert_not(gw_tp_state_valid(gw_str(longv)), "over 512 bytes");
}

#define ERRLEN 512
#define EP     "\"endpoints\":[{\"name\":\"e\",\"upstreams\":[{\"url\":\"http://127.0.0.1:9\"}]}]"

static gw_config_t *cfg(const char *tracing, char *err)
{
    char json[2048];
    snprintf(json, sizeof(json), "{" EP "%s%s}", tracing ? ",\"tracing\":" : "", tracing ? tracing : "");
    return gw_config_parse(json, strlen(json), err, ERRLEN);
}

Test(config_tracing, defaults_and_values, .timeout = 10)
{
    char err[ERRLEN] = "";
    gw_config_t *c = cfg(NULL, err);
    cr_assert(c, "%s", err);
    cr_assert_null(c->tracing.endpoint, "off by default");
    gw_config_free(c);
    c = cfg("{\"endpoint\":\"http://127.0.0.1:4318/v1/traces\",\"headers\":{\"x-mlflow-experiment-id\":\"7\"},"
            "\"service_name\":\"gw\",\"sample_ratio\":0.25,\"batch_size\":10,\"max_queue\":20,"
            "\"batch_timeout_ms\":100,\"export_timeout_ms\":200}",
            err);
    cr_assert(c, "%s", err);
    cr_assert_str_eq(c->tracing.endpoint, "http://127.0.0.1:4318/v1/traces");
    cr_assert_eq(c->tracing.n_headers, 1);
    cr_assert_str_eq(c->tracing.headers[0], "x-mlflow-experiment-id: 7");
    cr_assert_str_eq(c->tracing.service_name, "gw");
    cr_assert_float_eq(c->tracing.sample_ratio, 0.25, 1e-9);
    cr_assert_eq(c->tracing.batch_size, 10);
    cr_assert_eq(c->tracing.max_queue, 20);
    cr_assert_eq(c->tracing.batch_timeout_ms, 100);
    cr_assert_eq(c->tracing.export_timeout_ms, 200);
    gw_config_free(c);
    c = cfg("{\"endpoint\":\"https://collector/v1/traces\"}", err);
    cr_assert(c, "%s", err);
    cr_assert_str_eq(c->tracing.service_name, "agate");
    cr_assert_float_eq(c->tracing.sample_ratio, 1, 1e-9);
    cr_assert_eq(c->tracing.batch_size, 512);
    cr_assert_eq(c->tracing.max_queue, 2048);
    gw_config_free(c);
}

Test(config_tracing, errors, .timeout = 10)
{
    static const struct {
        const char *tracing, *want;
    } cases[] = {
        {"[]", "config: tracing: must be an object"},
        {"{}", "config: tracing.endpoint: required string"},
        {"{\"endpoint\":\"ftp://x\"}", "config: tracing.endpoint: must start with http:// or https://"},
        {"{\"endpoint\":\"http://x\",\"bogus\":1}", "config: tracing.bogus: unknown key"},
        {"{\"endpoint\":\"http://x\",\"sample_ratio\":2}", "config: tracing.sample_ratio: must be a number between 0 and 1"},
        {"{\"endpoint\":\"http://x\",\"max_queue\":0}", "config: tracing.max_queue: must be an integer between 1 and"},
        {"{\"endpoint\":\"http://x\",\"max_queue\":5,\"batch_size\":6}", "config: tracing.batch_size: must be an integer between 1 and 5"},
        {"{\"endpoint\":\"http://x\",\"batch_timeout_ms\":1.5}", "config: tracing.batch_timeout_ms: must be an integer"},
        {"{\"endpoint\":\"http://x\",\"headers\":[]}", "config: tracing.headers: must be an object"},
        {"{\"endpoint\":\"http://x\",\"headers\":{\"a b\":\"v\"}}", "config: tracing.headers: \"a b\" is not a valid header name"},
        {"{\"endpoint\":\"http://x\",\"headers\":{\"Content-Type\":\"v\"}}", "config: tracing.headers: \"Content-Type\" is set by agate"},
        {"{\"endpoint\":\"http://x\",\"headers\":{\"a\":\"x\\r\\ny: z\"}}", "config: tracing.headers: \"a\" must not contain CR, LF or NUL"},
        {"{\"endpoint\":\"http://x\",\"headers\":{\"a\":1}}", "config: tracing.headers: \"a\" must be a string"},
        {"{\"endpoint\":\"http://x\",\"service_name\":\"\"}", "config: tracing.service_name: must be a non-empty string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[ERRLEN] = "";
        gw_config_t *c = cfg(cases[i].tracing, err);
        cr_assert_null(c, "accepted: %s", cases[i].tracing);
        cr_assert(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0, "%s: got \"%s\"", cases[i].tracing, err);
    }
}
