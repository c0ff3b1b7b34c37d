/* test_events: the machinery the adapter tests share (test_chat_completions.c, test_responses.c).
 *
 * A run drives one adapter through the real pipeline: upstream bytes go through the adapter's
 * start/feed/finish into a gw_stream_t, and what the client would receive is collected. The
 * rendered stream is then parsed back with gw_sse + gw_json and checked against PROTOCOL.md
 * §4.2/§4.3/§5.3/§9, event by event, into a summary the tests assert on.
 *
 * Every check is a criterion assertion, so these functions may only be called from a Test().
 * Strings returned as `char *` are malloc'd and NUL-terminated: the caller frees them. */
#ifndef TEST_EVENTS_H
#define TEST_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/config.h"
#include "gateway/error.h"
#include "gateway/json.h"
#include "gateway/stream.h"

/* The identity every run renders with: the lifecycle responses must echo it. The default client
 * request is for TEST_CLIENT_MODEL with instructions "Be terse.", metadata {"ticket":"T-17"},
 * temperature 0.25 and one function tool get_weather. */
#define TEST_RESP_ID      "resp_0123456789abcdef0123456789abcdef"
#define TEST_REQ_ID       "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define TEST_CREATED      1741290958
#define TEST_CLIENT_MODEL "assistant-v1"
#define TEST_MIB          ((size_t)1024 * 1024)
#define TEST_SSE_CT       "text/event-stream; charset=utf-8"

/* ---- small helpers ---- */

/** Contents of tests/data/<name>; *len excludes the NUL. The file must not be empty. */
char *test_read_data(const char *name, size_t *len);
/** Compact JSON text of a parsed value (key order kept). */
char *test_json_text(const gw_json_t *v);
/** Whether the bytes of b (not NUL-terminated) contain needle. */
bool test_buf_has(const gw_buf_t *b, const char *needle);
bool test_str_has(gw_str_t s, const char *needle);
/** Lower-case hex digit, as in minted ids. */
bool test_is_hex(char c);
/** Copy of s[0..n) with the random parts of minted ids (msg_/fc_/rs_/ctc_/lsh_ + 32 hex, call_ + 24 hex)
 * masked, so two runs of the same upstream bytes compare byte for byte. Upstream ids pass. */
char *test_normalize(const char *s, size_t n);

/** Member key of object o; fails the test when it is missing. */
const gw_json_t *test_jget(const gw_json_t *o, const char *key);
/** String member as a NUL-terminated arena string (the parser copies strings with a NUL). */
const char *test_js(const gw_json_t *o, const char *key);
int64_t test_ji(const gw_json_t *o, const char *key);
/** Whether member key is a number written exactly as text. */
bool test_jnum_is(const gw_json_t *o, const char *key, const char *text);

/* ---- driving the pipeline ---- */

typedef struct {
    gw_adapter_kind_t adapter;
    gw_front_t front;
    bool stream;              /** the client asked for stream:true */
    const char *content_type; /** the upstream's Content-Type */
    size_t max_event;         /** limits.max_event_bytes */
    size_t max_output;        /** limits.max_output_bytes (0 = no cap) */
    gw_flavor_t flavor;       /** responses adapter only */
    const char *req_body;     /** client request; NULL: the default one above */
    /** The adapter mints every item itself (ChatCompletions): the checker also requires
     * msg_/fc_/rs_ + 32 hex ids and non-empty messages even when they end incomplete. */
    bool minted_items;
} test_run_opts_t;

typedef struct {
    const ad_vtable_t *ad;
    gw_arena_t *a; /** request arena: parsed request and adapter state */
    gw_arena_t *scratch; /** the adapters' per-event scratch (shared by all transfers in agate) */
    gw_request_t req;
    gw_upstream_cfg_t up;
    gw_endpoint_cfg_t ep;
    gw_limits_cfg_t lim;
    gw_stream_t *s;
    ad_state_t *st;
    gw_buf_t out;  /** everything the client received, drained after every call */
    bool stopped;  /** a feed returned < 0 */
    int feed_rc;   /** the failing feed's value, 0 if none */
    int finish_rc; /** finish's value; 0 when finish was not called */
} test_run_t;

void test_run_begin(test_run_t *r, const test_run_opts_t *o);
/** Each feed gets a fresh heap copy, scribbled over and freed afterwards, so a view kept past
 * the feed that carried it shows up as wrong output (and as a use-after-free under ASan).
 * Does nothing once a feed has stopped the run. */
void test_run_feed(test_run_t *r, const char *data, size_t len);
/** finish (unless a feed stopped the run), then dispose of the adapter state. */
void test_run_end(test_run_t *r);
void test_run_free(test_run_t *r);
/** begin, feed tests/data/<name> in pieces of step bytes (0 = in one piece), end. */
void test_run_golden(test_run_t *r, const char *name, const test_run_opts_t *o, size_t step);
/** The client bytes with minted ids masked (test_normalize). */
char *test_run_normalized(const test_run_t *r);
/** Non-stream output: one JSON object and nothing around it, parsed into arena a. */
gw_json_t *test_run_json(gw_arena_t *a, const test_run_t *r);

/* ---- parsing the rendered stream back ---- */

typedef struct {
    char *event; /** the event: line's value, "" when absent */
    char *data;
    const gw_json_t *j; /** NULL for [DONE] */
} test_event_t;

typedef struct {
    gw_arena_t *a; /** event strings and parsed JSON */
    test_event_t *ev;
    size_t n, cap;
    size_t n_comments;
} test_events_t;

/** Split the client bytes into events; every data line but [DONE] must be a JSON object, the
 * stream must not end inside an event and must carry no id:/retry: lines (§4.1). */
void test_events_parse(test_events_t *v, const gw_buf_t *out);
void test_events_free(test_events_t *v);
/** How many JSON events have this type. */
size_t test_events_count(const test_events_t *v, const char *type);
/** The event types joined with ',', [DONE] as "[DONE]". */
char *test_events_types(const test_events_t *v);
/** String member key of each event of this type, in order, into out[0..max). Returns the count. */
size_t test_events_strings(const test_events_t *v, const char *type, const char *key, const char **out,
                           size_t max);

/* ---- protocol checker ---- */

#define TEST_MAX_ITEMS 16
#define TEST_MAX_PARTS 4
#define TEST_TEXT_MAX  4096

/* One output item as streamed. */
typedef struct {
    char type[24];
    char id[96];
    char call_id[64], name[64];
    size_t n_parts;
    char part_type[TEST_MAX_PARTS][16];
    char text[TEST_MAX_PARTS][TEST_TEXT_MAX];
    bool part_open, text_done;
    size_t n_deltas; /** text/refusal/summary/argument delta events */
    char args[TEST_TEXT_MAX];
    bool done;
    char status[16];
    const gw_json_t *done_item; /** the output_item.done event's item */
} test_item_t;

typedef struct {
    test_item_t it[TEST_MAX_ITEMS];
    size_t n;
    const gw_json_t *terminal; /** the response.completed/incomplete/failed event */
    char terminal_type[40];
    const gw_json_t *error_ev;
    size_t n_events; /** JSON events, [DONE] excluded */
    bool done_marker;
    size_t n_comments;
} test_summary_t;

/** Check every §4.3/§9 invariant over events rendered by a run with options o; fill m with what
 * was streamed. Pointers in m point into v. */
void test_events_check(const test_events_t *v, const test_run_opts_t *o, test_summary_t *m);

/* A run, its parsed events and their summary (heap: a summary is large). */
typedef struct {
    test_run_t r;
    test_events_t v;
    test_summary_t *m;
} test_checked_t;

/** Run tests/data/<name> (test_run_golden), parse and check it. */
void test_checked_run(test_checked_t *c, const char *name, const test_run_opts_t *o, size_t step);
/** Run data[0..len) in one feed, parse and check it. */
void test_checked_feed(test_checked_t *c, const test_run_opts_t *o, const char *data, size_t len);
void test_checked_free(test_checked_t *c);
/** The terminal event's response object. */
const gw_json_t *test_checked_response(const test_checked_t *c);

/* ---- assertions the tests share ---- */

void test_check_usage(const gw_json_t *resp, int64_t in, int64_t out, int64_t total, int64_t cached,
                      int64_t reasoning);
/** No upstream usage: the terminal response's usage is null. */
void test_check_no_usage(const test_checked_t *c);
/** A message with one part of this kind and text; id NULL: any id. */
void test_check_message(const test_item_t *it, const char *id, const char *kind, const char *text);
/** A function call; id NULL: any id. */
void test_check_call(const test_item_t *it, const char *id, const char *call_id, const char *name,
                     const char *args);
/* A row of §7.6 as a client sees it in a failed stream (§5.3). */
typedef struct {
    const char *failed_code; /** response.failed error.code, and the error event's flat code */
    const char *type;        /** the error event's nested error.type */
    const char *code;        /** the error event's nested error.code */
    const char *error_code;  /** the error event's databricks_output.error.error_code */
} test_err_row_t;

extern const test_err_row_t test_err_upstream;    /* 502: upstream 5xx or bad upstream data */
extern const test_err_row_t test_err_bad_request; /* 400 from the upstream */
extern const test_err_row_t test_err_rate_limit;  /* 429 */

/** §5.3: response.failed carries {code,message}; the error event right after it flat
 * code/message/param, a nested error {type,code,message} and databricks_output.error
 * {error_code,message}, all from this row; the stream failed with this message and no item is
 * left in_progress. */
void test_check_failure(const test_checked_t *c, const char *message, const test_err_row_t *row);
/** A failure before anything was written: the owner answers with a plain HTTP error. */
void test_check_http_error(const test_run_t *r, gw_err_kind_t kind, const char *message);
/** Two JSON values have the same compact text once minted ids are masked; what names got. */
void test_check_json_alike(const gw_json_t *want, const gw_json_t *got, const char *what);
/** Two runs rendered the same bytes once minted ids are masked. */
void test_check_same_output(const test_run_t *a, const test_run_t *b);
/** Whole-feed rendering vs. a feed split in two at every byte offset: identical bytes and status. */
void test_check_split_every_offset(const char *name, const test_run_opts_t *o);
/** Whole-feed rendering vs. feeds in pieces of 1, 1 + stride, ... < 64 bytes: identical bytes. */
void test_check_step_feeds(const char *name, const test_run_opts_t *o, size_t stride);
/** Whole-feed rendering vs. `iterations` feeds in random pieces of 1..97 bytes: identical bytes.
 * *seed is the LCG state, carried on from golden to golden. */
void test_check_random_chunks(const char *name, const test_run_opts_t *o, int iterations, unsigned *seed);
/** Non-stream output of `name` run with `no` must equal the terminal event's response of
 * `stream_name` run with `so`, and be exactly that object's bytes, with the same status. */
void test_check_nonstream_equals_stream(const char *name, const test_run_opts_t *no, const char *stream_name,
                                        const test_run_opts_t *so);

#endif
