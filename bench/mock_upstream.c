/* mock_upstream: a scripted ChatCompletions server for tests and benchmarks (libuv + llhttp).
 *
 * Contract: bench/MOCK_SCENARIOS.md. Every streaming scenario is data: a static list of steps
 * (emit one SSE event, wait, hold, close abruptly, end the chunked body) interpreted by one small
 * engine, run_script(). The same list also yields the non-streaming answer: build_completion()
 * folds its content / reasoning / refusal / tool-call steps into one chat.completion object.
 * Framing variants (CRLF, no space after "data:", comments, multi-line data, UTF-8 split writes,
 * unknown keys) are per-scenario flags applied while an event is serialised.
 *
 * Responses upstreams (MOCK_SCENARIOS.md, issue 5) run on the same engine: POST .../responses
 * (OpenAI flavour: `event:` lines, sequence numbers, full lifecycle) and POST .../invocations
 * (MLflow flavour: data-only, sparse events, `[DONE]`). An r_* scenario has one script per route
 * built from OP_R_* steps that name an output item by index into the scenario's item table.
 * Nothing is accumulated while streaming: every "done" event and every response object is derived
 * by folding the script's steps up to the current one (r_fold), and the non-streaming answer is
 * the fold of the whole script, as build_completion() does for chat.
 *
 * One request at a time per connection (STYLE.md §6): on_message_complete pauses llhttp, the
 * response runs, and only once its last write has completed is the parser resumed on the
 * leftover input. Reading stays on while a response runs so that a client going away is noticed
 * even when nothing is being written (the `stall` scenario); unparsed input is capped.
 * Memory: a connection owns its buffers; every write owns its bytes until on_uv_write; the
 * connection is freed in the close callback of the last of its two handles (tcp + timer). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#include "bench/mock_codex.h"
#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/error.h"
#include "gateway/json.h"

#define MOCK_READ_BUF  65536
#define MOCK_URL_MAX   8192        /* 414 past it */
#define MOCK_HEAD_MAX  65536       /* whole header block incl. request line; 431 past it */
#define MOCK_NAME_MAX  64          /* longer header names are never interesting */
#define MOCK_VALUE_MAX 256         /* interesting header values are short */
#define MOCK_BODY_MAX  (16u << 20) /* 413 past it */
#define MOCK_IN_MAX    (1u << 20)  /* unparsed (pipelined) input held while a response runs */
#define MOCK_BODY_KEEP (1u << 20)  /* request body capacity kept across keep-alive requests */
#define MOCK_LOW_WATER (64u << 10) /* write the next event only below this much queued output */
#define MOCK_SPLIT_MS  5           /* gap between the two halves of a split event */
#define MOCK_LINGER_MS 2000        /* lingering close: wait this long for the client's FIN */
#define MOCK_MAX_CONNS 4096
#define MOCK_MAX_CALLS 8
#define MOCK_CHUNK_ID  "\"id\":\"chatcmpl-mock\""
#define MOCK_CHUNK_HEAD                                                                                      \
    "{" MOCK_CHUNK_ID ",\"object\":\"chat.completion.chunk\",\"created\":1741290958,"                        \
    "\"model\":\"mock-model\","
#define MOCK_UNKNOWN_TOP                                                                                     \
    "\"system_fingerprint\":\"fp_mock\",\"x_mock_chunk\":{\"nested\":[1,{\"k\":\"v\"}],\"n\":null},"

/* gw_buf_appendf() computes the room left (cap - len) and calls gw_buf_reserve() as arguments of
 * one call; gcc evaluates the size first, so output past the old room is silently lost. Reserving
 * beforehand makes the evaluation order irrelevant. */
#define buf_printf(b, ...) (gw_buf_reserve((b), 64), gw_buf_appendf((b), __VA_ARGS__))

/* ---- scenario scripts ---- */

typedef enum {
    OP_END,             /* terminating chunk: the body ends cleanly */
    OP_CLOSE,           /* close the TCP connection once queued bytes are out (no terminating chunk) */
    OP_HOLD,            /* write nothing more; wait for the client to go away */
    OP_DELAY,           /* wait ms */
    OP_ROLE,            /* delta {"role":"assistant","content":""} */
    OP_CONTENT,         /* delta.content = text */
    OP_FILL,            /* delta.content = text[0] x (len - strlen(tail)), then tail */
    OP_REASONING,       /* delta.reasoning_content = text */
    OP_REASONING_FIELD, /* delta.reasoning = text */
    OP_REFUSAL,         /* delta.refusal = text */
    OP_TOOL,            /* one delta.tool_calls piece for call idx */
    OP_DELTA,           /* raw delta members (unknown delta kinds) */
    OP_FINISH,          /* empty delta carrying finish_reason */
    OP_USAGE,           /* usage chunk with "choices":[] */
    OP_DONE,            /* data: [DONE] */
    OP_DATA,            /* data: <text>, a verbatim payload */
    OP_RAW,             /* text verbatim, no SSE framing at all */
    /* Responses events (issue 5). Lifecycle and error events first, then the item-scoped ones,
     * which address the scenario's item idx (its output_index); r_is_item_op() relies on this order. */
    OP_R_CREATED,     /* response.created, status in_progress */
    OP_R_IN_PROGRESS, /* response.in_progress */
    OP_R_COMPLETED,   /* response.completed with usage */
    OP_R_FAILED,      /* response.failed, error {code, message = text} */
    OP_R_ERROR,       /* flat error event {code, message = text, param} */
    OP_R_EVENT,       /* an event of type name with extra members only (unknown event types) */
    OP_R_ADDED,       /* response.output_item.added, the item in its in_progress form */
    OP_R_PART_ADDED,  /* response.content_part.added, content_index 0 */
    OP_R_TEXT,        /* response.output_text.delta = text */
    OP_R_TEXT_DONE,   /* response.output_text.done */
    OP_R_PART_DONE,   /* response.content_part.done */
    OP_R_ARGS,        /* response.function_call_arguments.delta = text */
    OP_R_ARGS_DONE,   /* response.function_call_arguments.done */
    OP_R_SUM_ADDED,   /* response.reasoning_summary_part.added, summary_index 0 */
    OP_R_SUM,         /* response.reasoning_summary_text.delta = text */
    OP_R_SUM_DONE,    /* response.reasoning_summary_text.done */
    OP_R_SUM_PDONE,   /* response.reasoning_summary_part.done */
    OP_R_ITEM_DONE,   /* response.output_item.done; text (if set) replaces the streamed content */
} op_t;

typedef struct {
    const char *text;   /** payload; OP_TOOL: arguments fragment, NULL = "arguments" key omitted */
    const char *id;     /** OP_TOOL first piece: call id */
    const char *name;   /** OP_TOOL first piece: function name; OP_R_EVENT: event type */
    const char *tail;   /** OP_FILL: bytes after the fill */
    const char *finish; /** finish_reason carried by this chunk; NULL = null */
    const char *status; /** OP_R_ITEM_DONE: item status; NULL = "completed" */
    const char *code;   /** OP_R_FAILED, OP_R_ERROR: error code (the message is text) */
    const char *extra;  /** OP_R_*: raw JSON members appended to the event object */
    const char *rextra; /** OP_R_ lifecycle ops: raw JSON members appended to its response object */
    size_t len;         /** OP_FILL: content bytes */
    op_t op;
    int idx;    /** OP_TOOL: tool_calls[].index; item-scoped OP_R_*: output_index */
    int repeat; /** send this many times; 0 = once */
    int ms;     /** OP_DELAY: wait; other ops: gap between repeats */
    int prompt; /** OP_USAGE, OP_R_COMPLETED token counts */
    int completion;
    int reasoning; /** completion_tokens_details.reasoning_tokens; < 0 = no details */
    bool role;     /** OP_TOOL: the piece also carries role:"assistant", content:null */
} step_t;

/* Scripts are data tables, laid out by hand for reading. */
/* clang-format off */
#define S_ROLE                    {.op = OP_ROLE}
#define S_TEXT(s)                 {.op = OP_CONTENT, .text = (s)}
#define S_TEXT_N(s, n, gap)       {.op = OP_CONTENT, .text = (s), .repeat = (n), .ms = (gap)}
#define S_FILL(ch, n, tl, rep)    {.op = OP_FILL, .text = (ch), .len = (n), .tail = (tl), .repeat = (rep)}
#define S_THINK(s)                {.op = OP_REASONING, .text = (s)}
#define S_THINK_FIELD(s)          {.op = OP_REASONING_FIELD, .text = (s)}
#define S_REFUSE(s)               {.op = OP_REFUSAL, .text = (s)}
#define S_CALL(i, cid, fn, args)  {.op = OP_TOOL, .idx = (i), .id = (cid), .name = (fn), .text = (args)}
#define S_CALL_ROLE(i, cid, fn, args)                                                                      \
    {.op = OP_TOOL, .idx = (i), .id = (cid), .name = (fn), .text = (args), .role = true}
#define S_ARGS(i, frag)           {.op = OP_TOOL, .idx = (i), .text = (frag)}
#define S_ARGS_FINISH(i, frag, r) {.op = OP_TOOL, .idx = (i), .text = (frag), .finish = (r)}
#define S_DELTA(members)          {.op = OP_DELTA, .text = (members)}
#define S_FINISH(r)               {.op = OP_FINISH, .finish = (r)}
#define S_USAGE(p, c)             {.op = OP_USAGE, .prompt = (p), .completion = (c), .reasoning = -1}
#define S_USAGE_R(p, c, r)        {.op = OP_USAGE, .prompt = (p), .completion = (c), .reasoning = (r)}
#define S_DONE                    {.op = OP_DONE}
#define S_DATA(payload)           {.op = OP_DATA, .text = (payload)}
#define S_RAW(bytes)              {.op = OP_RAW, .text = (bytes)}
#define S_END                     {.op = OP_END}
#define S_CLOSE                   {.op = OP_CLOSE}
#define S_HOLD                    {.op = OP_HOLD}

/* 12 bytes: one bench delta is 185 bytes of SSE, so bench20 is 3.7 KB of content events. */
#define BENCH_TEXT "lorem ipsum "

static const step_t sc_text[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_USAGE(12, 3), S_DONE, S_END,
};
static const step_t sc_no_usage[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_DONE, S_END,
};
static const step_t sc_eof_after_finish[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_USAGE(12, 3), S_END,
};
static const step_t sc_unknown_fields[] = {
    S_ROLE,
    S_TEXT("Hi"),
    S_DELTA("\"audio\":{\"id\":\"audio_mock\",\"data\":\"UklGRiQAAABXQVZF\",\"expires_at\":1741294558,"
            "\"transcript\":\"Hi\"}"),
    S_TEXT(" there!"),
    S_FINISH("stop"),
    S_USAGE(12, 3),
    S_DONE,
    S_END,
};
static const step_t sc_tools2[] = {
    S_CALL_ROLE(0, "call_0", "tool_0", ""), S_CALL(1, "call_1", "tool_1", ""),
    S_ARGS(0, "{\"i\":"), S_ARGS(1, "{\"i\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"),
    S_FINISH("tool_calls"), S_USAGE(85, 31), S_DONE, S_END,
};
static const step_t sc_tools3[] = {
    S_CALL_ROLE(0, "call_0", "tool_0", ""), S_CALL(1, "call_1", "tool_1", ""), S_CALL(2, "call_2", "tool_2", ""),
    S_ARGS(0, "{\"i\":"), S_ARGS(1, "{\"i\":"), S_ARGS(2, "{\"i\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"), S_ARGS(2, "2}"),
    S_FINISH("tool_calls"), S_USAGE(85, 31), S_DONE, S_END,
};
static const step_t sc_tools5[] = {
    S_CALL_ROLE(0, "call_0", "tool_0", ""), S_CALL(1, "call_1", "tool_1", ""), S_CALL(2, "call_2", "tool_2", ""),
    S_CALL(3, "call_3", "tool_3", ""), S_CALL(4, "call_4", "tool_4", ""),
    S_ARGS(0, "{\"i\":"), S_ARGS(1, "{\"i\":"), S_ARGS(2, "{\"i\":"), S_ARGS(3, "{\"i\":"), S_ARGS(4, "{\"i\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"), S_ARGS(2, "2}"), S_ARGS(3, "3}"), S_ARGS(4, "4}"),
    S_FINISH("tool_calls"), S_USAGE(85, 31), S_DONE, S_END,
};
static const step_t sc_text_then_tools[] = {
    S_ROLE, S_TEXT("Let me check."),
    S_CALL(0, "call_a", "get_weather", ""), S_ARGS(0, "{\"city\":"), S_ARGS(0, "\"Paris\"}"),
    S_CALL(1, "call_b", "get_time", ""), S_ARGS(1, "{\"tz\":"), S_ARGS(1, "\"UTC\"}"),
    S_FINISH("tool_calls"), S_USAGE(40, 25), S_DONE, S_END,
};
static const step_t sc_tool_args_once[] = {
    S_CALL_ROLE(0, "call_x", "lookup", "{\"q\":\"x\"}"), S_FINISH("tool_calls"), S_USAGE(20, 8), S_DONE, S_END,
};
static const step_t sc_tool_args_empty[] = {
    S_CALL_ROLE(0, "call_e", "noop", NULL), S_FINISH("tool_calls"), S_USAGE(20, 5), S_DONE, S_END,
};
static const step_t sc_tool_args_late[] = {
    S_CALL_ROLE(0, "call_l", "set_flag", NULL), S_ARGS_FINISH(0, "{\"late\":true}", "tool_calls"),
    S_USAGE(20, 7), S_DONE, S_END,
};
/* "héllo wörld 😀 日本語" in three deltas, each holding a multi-byte character to split. */
static const step_t sc_utf8_split[] = {
    S_ROLE,
    S_TEXT("h\xc3\xa9llo"),
    S_TEXT(" w\xc3\xb6rld \xf0\x9f\x98\x80"),
    S_TEXT(" \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"),
    S_FINISH("stop"),
    S_USAGE(12, 8),
    S_DONE,
    S_END,
};
static const step_t sc_reasoning[] = {
    S_ROLE, S_THINK("Think"), S_THINK("ing..."), S_TEXT("Answer."), S_FINISH("stop"), S_USAGE_R(12, 5, 2),
    S_DONE, S_END,
};
static const step_t sc_reasoning_field[] = {
    S_ROLE, S_THINK_FIELD("Think"), S_THINK_FIELD("ing..."), S_TEXT("Answer."), S_FINISH("stop"),
    S_USAGE_R(12, 5, 2), S_DONE, S_END,
};
static const step_t sc_refusal[] = {
    S_ROLE, S_REFUSE("I can't"), S_REFUSE(" help."), S_FINISH("stop"), S_USAGE(12, 4), S_DONE, S_END,
};
static const step_t sc_length[] = {
    S_ROLE, S_TEXT("Truncat"), S_FINISH("length"), S_USAGE(12, 2), S_DONE, S_END,
};
static const step_t sc_content_filter[] = {
    S_ROLE, S_TEXT("Blocked"), S_FINISH("content_filter"), S_USAGE(12, 1), S_DONE, S_END,
};
static const step_t sc_error_openai[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA("{\"error\":{\"message\":\"Tool XYZ failed to execute.\",\"type\":\"server_error\",\"param\":null,"
           "\"code\":\"tool_error\"}}"),
    S_END,
};
static const step_t sc_error_vllm[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA("{\"error\":{\"object\":\"error\",\"message\":\"vLLM engine died\",\"type\":\"InternalServerError\","
           "\"param\":null,\"code\":500}}"),
    S_DONE, S_END,
};
static const step_t sc_error_sglang[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA(MOCK_CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"abort\","
                           "\"message\":\"SGLang request aborted\"}]}"),
    S_DONE, S_END,
};
static const step_t sc_error_llamacpp[] = {
    S_ROLE, S_TEXT("Hi"),
    S_RAW("error: {\"code\":500,\"message\":\"llama.cpp context overflow\",\"type\":\"server_error\"}\n\n"),
    S_DONE, S_END,
};
static const step_t sc_error_openrouter[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA(MOCK_CHUNK_HEAD "\"error\":{\"code\":502,\"message\":\"Provider returned error\"},"
                           "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}"),
    S_DONE, S_END,
};
static const step_t sc_error_first[] = {
    S_DATA("{\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\",\"code\":\"overloaded\"}}"),
    S_END,
};
static const step_t sc_abrupt_close[] = {
    S_ROLE, S_TEXT("Hi"), S_CLOSE,
};
static const step_t sc_json[] = {
    S_TEXT("Plain JSON answer."), S_FINISH("stop"), S_USAGE(5, 4), S_END,
};
static const step_t sc_slow[] = {
    S_ROLE, S_TEXT_N("tick ", 10, 200), S_FINISH("stop"), S_USAGE(12, 10), S_DONE, S_END,
};
static const step_t sc_stall[] = {
    S_ROLE, S_TEXT("Hi"), S_HOLD,
};
static const step_t sc_long[] = {
    S_ROLE, S_FILL("x", 100, " ", 5000), S_FINISH("stop"), S_USAGE(12, 5000), S_DONE, S_END,
};
static const step_t sc_xl[] = {
    S_ROLE, S_FILL("x", 2000, " ", 5000), S_FINISH("stop"), S_USAGE(12, 100000), S_DONE, S_END,
};
static const step_t sc_big[] = {
    S_ROLE, S_FILL("x", 1000, " ", 6000), S_FINISH("stop"), S_USAGE(12, 60000), S_DONE, S_END,
};
static const step_t sc_huge_line[] = {
    S_ROLE, S_FILL("a", 2u << 20, "", 1), S_FINISH("stop"), S_USAGE(12, 65536), S_DONE, S_END,
};
static const step_t sc_bench1[] = {
    S_ROLE, S_TEXT(BENCH_TEXT), S_FINISH("stop"), S_USAGE(12, 1), S_DONE, S_END,
};
static const step_t sc_bench20[] = {
    S_ROLE, S_TEXT_N(BENCH_TEXT, 20, 0), S_FINISH("stop"), S_USAGE(12, 20), S_DONE, S_END,
};
static const step_t sc_bench200[] = {
    S_ROLE, S_TEXT_N(BENCH_TEXT, 200, 0), S_FINISH("stop"), S_USAGE(12, 200), S_DONE, S_END,
};
static const step_t sc_bench_slow50[] = {
    S_ROLE, S_TEXT_N(BENCH_TEXT, 20, 50), S_FINISH("stop"), S_USAGE(12, 20), S_DONE, S_END,
};
/* Final arguments: {"query":"lorem ipsum ... ","n":<i>} for call i, in 10 fragments each. */
static const step_t sc_bench_tools2[] = {
    S_CALL_ROLE(0, "call_0", "search", ""), S_CALL(1, "call_1", "fetch", ""),
    S_ARGS(0, "{\"query\":\""), S_ARGS(1, "{\"query\":\""),
    S_ARGS(0, "lorem "), S_ARGS(1, "lorem "), S_ARGS(0, "ipsum "), S_ARGS(1, "ipsum "),
    S_ARGS(0, "dolor "), S_ARGS(1, "dolor "), S_ARGS(0, "sit "), S_ARGS(1, "sit "),
    S_ARGS(0, "amet "), S_ARGS(1, "amet "), S_ARGS(0, "consectetur "), S_ARGS(1, "consectetur "),
    S_ARGS(0, "adipiscing "), S_ARGS(1, "adipiscing "), S_ARGS(0, "elit"), S_ARGS(1, "elit"),
    S_ARGS(0, "\",\"n\":"), S_ARGS(1, "\",\"n\":"),
    S_ARGS(0, "0}"), S_ARGS(1, "1}"),
    S_FINISH("tool_calls"), S_USAGE(85, 40), S_DONE, S_END,
};

enum {
    SF_CRLF = 1u << 0,        /* every line ends with \r\n */
    SF_NOSPACE = 1u << 1,     /* "data:" not followed by a space */
    SF_COMMENTS = 1u << 2,    /* SSE comment lines around events */
    SF_MULTILINE = 1u << 3,   /* JSON payload split over two data: lines */
    SF_SPLIT = 1u << 4,       /* each event in two writes, split inside a multi-byte character */
    SF_UNKNOWN = 1u << 5,     /* unknown keys at chunk, choice and delta level */
    SF_STREAM_ONLY = 1u << 6, /* failure scenario: always SSE, "stream" is not consulted */
    SF_JSON_ONLY = 1u << 7,   /* always one chat.completion object */
};

typedef struct {
    const char *name;
    const step_t *steps; /** NULL: a plain HTTP answer made of the fields below */
    unsigned flags;
    int status;
    const char *ctype, *headers, *body; /** headers: extra CRLF-terminated header lines */
} scenario_t;

#define SC(n, s, f) {.name = (n), .steps = (s), .flags = (f)}
#define SC_HTTP(n, st, ct, hd, bd)                                                                         \
    {.name = (n), .status = (st), .ctype = (ct), .headers = (hd), .body = (bd)}

static const scenario_t scenarios[] = {
    SC("text", sc_text, 0),
    SC("tools2", sc_tools2, 0),
    SC("tools3", sc_tools3, 0),
    SC("tools5", sc_tools5, 0),
    SC("text_then_tools", sc_text_then_tools, 0),
    SC("tool_args_once", sc_tool_args_once, 0),
    SC("tool_args_empty", sc_tool_args_empty, 0),
    SC("tool_args_late", sc_tool_args_late, 0),
    SC("utf8_split", sc_utf8_split, SF_SPLIT),
    SC("reasoning", sc_reasoning, 0),
    SC("reasoning_field", sc_reasoning_field, 0),
    SC("refusal", sc_refusal, 0),
    SC("length", sc_length, 0),
    SC("content_filter", sc_content_filter, 0),
    SC("no_usage", sc_no_usage, 0),
    SC("error_openai", sc_error_openai, SF_STREAM_ONLY),
    SC("error_vllm", sc_error_vllm, SF_STREAM_ONLY),
    SC("error_sglang", sc_error_sglang, SF_STREAM_ONLY),
    SC("error_llamacpp", sc_error_llamacpp, SF_STREAM_ONLY),
    SC("error_openrouter", sc_error_openrouter, SF_STREAM_ONLY),
    SC("error_first", sc_error_first, SF_STREAM_ONLY),
    SC("abrupt_close", sc_abrupt_close, SF_STREAM_ONLY),
    SC("eof_after_finish", sc_eof_after_finish, 0),
    SC_HTTP("http400", 400, "application/json", "",
            "{\"error\":{\"message\":\"bad request from upstream\",\"type\":\"invalid_request_error\","
            "\"param\":null,\"code\":null}}"),
    SC_HTTP("http401", 401, "application/json", "",
            "{\"error\":{\"message\":\"invalid api key\",\"type\":\"invalid_request_error\"}}"),
    SC_HTTP("http429", 429, "application/json", "Retry-After: 7\r\n",
            "{\"error\":{\"message\":\"rate limited by upstream\",\"type\":\"rate_limit_error\"}}"),
    SC_HTTP("http500", 500, "application/json", "",
            "{\"error\":{\"message\":\"upstream exploded\",\"type\":\"server_error\"}}"),
    SC_HTTP("http503", 503, "text/plain", "", "service unavailable"),
    SC("json", sc_json, SF_JSON_ONLY),
    SC("slow", sc_slow, 0),
    SC("stall", sc_stall, SF_STREAM_ONLY),
    SC("long", sc_long, 0),
    SC("xl", sc_xl, 0),
    SC("big", sc_big, 0),
    SC("crlf", sc_text, SF_CRLF),
    SC("nospace", sc_text, SF_NOSPACE),
    SC("comments", sc_text, SF_COMMENTS),
    SC("multiline", sc_text, SF_MULTILINE),
    SC("huge_line", sc_huge_line, 0),
    SC("unknown_fields", sc_unknown_fields, SF_UNKNOWN),
    SC("bench20", sc_bench20, 0),
    SC("bench1", sc_bench1, 0),
    SC("bench200", sc_bench200, 0),
    SC("bench_tools2", sc_bench_tools2, 0),
    SC("bench_slow50", sc_bench_slow50, 0),
};
/* clang-format on */

static const scenario_t *find_scenario(gw_str_t name)
{
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (gw_str_eq(name, scenarios[i].name))
            return &scenarios[i];
    return NULL;
}

/* ---- Responses scenario scripts (MOCK_SCENARIOS.md "Responses upstream scenarios") ---- */

typedef enum {
    RI_MESSAGE,   /* assistant message with one output_text part */
    RI_CALL,      /* function_call */
    RI_REASONING, /* reasoning with one summary_text part */
} r_kind_t;

/* One output item; its content (text, arguments, summary) comes from the script's steps. */
typedef struct {
    r_kind_t kind;
    const char *id;
    const char *call_id; /** RI_CALL */
    const char *name;    /** RI_CALL */
} r_item_t;

/* What one route answers for a scenario. */
typedef struct {
    const step_t *steps; /** SSE script; NULL: the plain answer below, streaming or not */
    int status;          /** with body: the plain answer (with steps: only when not streaming) */
    const char *body;    /** application/json body of the plain answer; NULL: fold the script */
} r_route_t;

typedef struct {
    const char *name;
    const r_item_t *items; /** indexed by output_index */
    size_t nitems;
    unsigned flags;   /** SF_R_* */
    r_route_t openai; /** POST .../responses */
    r_route_t mlflow; /** POST .../invocations */
} r_scenario_t;

enum {
    /* Event content normally follows the route: full events on /responses, sparse (MLflow
     * helper style) on /invocations. These flip it for scenarios whose table cell says "same as
     * the other column"; the framing (event: lines, [DONE]) still follows the route. */
    SF_R_SPARSE = 1u << 8, /* sparse events on /responses too */
    SF_R_FULL = 1u << 9,   /* full events on /invocations too */
};

#define R_RESP_ID    "resp_upstream_1"
#define R_MODEL      "upstream-model"
#define R_CREATED_AT 1741290958
#define R_CUSTOM     "\"custom_outputs\":{\"k\":\"v\",\"n\":1.50}"
#define R_TRACE      "\"databricks_output\":{\"trace\":{\"spans\":[{\"name\":\"root\"}]}}"
#define R_DBX_ERROR                                                                                          \
    "\"databricks_output\":{\"error\":{\"error_code\":\"BAD_REQUEST\",\"message\":\"TimeoutException: Tool " \
    "XYZ failed to execute.\"}}"

/* clang-format off */
#define R_CREATED_EV              {.op = OP_R_CREATED}
#define R_IN_PROGRESS             {.op = OP_R_IN_PROGRESS}
#define R_COMPLETED(p, c, r)      {.op = OP_R_COMPLETED, .prompt = (p), .completion = (c), .reasoning = (r)}
#define R_COMPLETED_X(p, c, rx)   {.op = OP_R_COMPLETED, .prompt = (p), .completion = (c), .rextra = (rx)}
#define R_FAILED(cd, msg)         {.op = OP_R_FAILED, .code = (cd), .text = (msg)}
#define R_ERROR(cd, msg)          {.op = OP_R_ERROR, .code = (cd), .text = (msg)}
#define R_EVENT(type, members)    {.op = OP_R_EVENT, .name = (type), .extra = (members)}
#define R_ADDED(i)                {.op = OP_R_ADDED, .idx = (i)}
#define R_PART_ADDED(i)           {.op = OP_R_PART_ADDED, .idx = (i)}
#define R_TEXT(i, s)              {.op = OP_R_TEXT, .idx = (i), .text = (s)}
#define R_TEXT_DONE(i)            {.op = OP_R_TEXT_DONE, .idx = (i)}
#define R_PART_DONE(i)            {.op = OP_R_PART_DONE, .idx = (i)}
#define R_ARGS(i, s)              {.op = OP_R_ARGS, .idx = (i), .text = (s)}
#define R_ARGS_DONE(i)            {.op = OP_R_ARGS_DONE, .idx = (i)}
#define R_SUM_ADDED(i)            {.op = OP_R_SUM_ADDED, .idx = (i)}
#define R_SUM(i, s)               {.op = OP_R_SUM, .idx = (i), .text = (s)}
#define R_SUM_DONE(i)             {.op = OP_R_SUM_DONE, .idx = (i)}
#define R_SUM_PDONE(i)            {.op = OP_R_SUM_PDONE, .idx = (i)}
#define R_ITEM_DONE(i)            {.op = OP_R_ITEM_DONE, .idx = (i)}
#define R_ITEM_DONE_X(i, members) {.op = OP_R_ITEM_DONE, .idx = (i), .extra = (members)}
/* An item done without deltas (MLflow helpers send whole items), or with a non-final status. */
#define R_ITEM_DONE_AS(i, content, st, members)                                                            \
    {.op = OP_R_ITEM_DONE, .idx = (i), .text = (content), .status = (st), .extra = (members)}

/* The full r_text message item 0 around its deltas. */
#define R_OPEN_MSG0               R_CREATED_EV, R_IN_PROGRESS, R_ADDED(0), R_PART_ADDED(0)
#define R_CLOSE_MSG0              R_TEXT_DONE(0), R_PART_DONE(0), R_ITEM_DONE(0)
#define R_HELLO                   R_TEXT(0, "Hello"), R_TEXT(0, " from"), R_TEXT(0, " responses")

static const r_item_t ri_msg[] = {{.kind = RI_MESSAGE, .id = "msg_up_1"}};
static const r_item_t ri_tools[] = {
    {.kind = RI_CALL, .id = "fc_up_1", .call_id = "call_up_1", .name = "tool_a"},
    {.kind = RI_CALL, .id = "fc_up_2", .call_id = "call_up_2", .name = "tool_b"},
};
static const r_item_t ri_reasoning[] = {
    {.kind = RI_REASONING, .id = "rs_up_1"},
    {.kind = RI_MESSAGE, .id = "msg_up_1"},
};

static const step_t rs_text[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), S_END,
};
static const step_t rs_text_ml[] = {
    R_HELLO, R_ITEM_DONE(0), S_DONE, S_END,
};
static const step_t rs_tools[] = {
    R_CREATED_EV, R_IN_PROGRESS, R_ADDED(0), R_ADDED(1),
    R_ARGS(0, "{\"a\":"), R_ARGS(1, "{\"b\":"), R_ARGS(0, "1}"), R_ARGS(1, "2}"),
    R_ARGS_DONE(0), R_ARGS_DONE(1), R_ITEM_DONE(0), R_ITEM_DONE(1),
    R_COMPLETED(20, 8, 0), S_END,
};
static const step_t rs_tools_ml[] = {
    R_ITEM_DONE_AS(0, "{\"a\":1}", NULL, NULL), R_ITEM_DONE_AS(1, "{\"b\":2}", NULL, NULL), S_DONE, S_END,
};
static const step_t rs_reasoning[] = {
    R_CREATED_EV, R_IN_PROGRESS,
    R_ADDED(0), R_SUM_ADDED(0), R_SUM(0, "Think"), R_SUM(0, "ing"), R_SUM_DONE(0), R_SUM_PDONE(0), R_ITEM_DONE(0),
    R_ADDED(1), R_PART_ADDED(1), R_TEXT(1, "Done."), R_TEXT_DONE(1), R_PART_DONE(1), R_ITEM_DONE(1),
    R_COMPLETED(10, 5, 2), S_END,
};
static const step_t rs_reasoning_ml[] = {
    R_ITEM_DONE_AS(0, "Thinking", NULL, NULL), R_TEXT(1, "Done."), R_ITEM_DONE(1), S_DONE, S_END,
};
static const step_t rs_custom[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED_X(10, 3, R_CUSTOM), S_END,
};
static const step_t rs_custom_ml[] = {
    R_HELLO, R_ITEM_DONE_X(0, R_CUSTOM "," R_TRACE), S_DONE, S_END,
};
static const step_t rs_error[] = {
    R_OPEN_MSG0, R_TEXT(0, "Hello"),
    R_FAILED("server_error", "agent crashed"), R_ERROR("server_error", "agent crashed"), S_END,
};
static const step_t rs_error_ml[] = {
    R_TEXT(0, "Hello"), S_DATA("{\"error\":\"agent crashed\"}"), S_DONE, S_END,
};
static const step_t rs_error_dbx[] = {
    R_TEXT(0, "Hello"), R_ITEM_DONE_AS(0, NULL, "incomplete", R_DBX_ERROR), S_END,
};
static const step_t rs_error_dbx_ml[] = {
    R_TEXT(0, "Hello"), R_ITEM_DONE_AS(0, NULL, "incomplete", R_DBX_ERROR), S_DONE, S_END,
};
static const step_t rs_unknown_event[] = {
    R_OPEN_MSG0, R_TEXT(0, "Hello"), R_EVENT("response.custom_thing", "\"x\":1"),
    R_TEXT(0, " from"), R_TEXT(0, " responses"), R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), S_END,
};
static const step_t rs_unknown_event_ml[] = {
    R_TEXT(0, "Hello"), R_EVENT("response.custom_thing", "\"x\":1"),
    R_TEXT(0, " from"), R_TEXT(0, " responses"), R_ITEM_DONE(0), S_DONE, S_END,
};
static const step_t rs_bad_json[] = {
    R_CREATED_EV, S_DATA("{not json"), S_END,
};
static const step_t rs_bad_json_ml[] = {
    S_DATA("{not json"), S_DONE, S_END,
};
static const step_t rs_delta_after_done[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_TEXT(0, " late"), R_COMPLETED(10, 3, 0), S_END,
};
static const step_t rs_delta_after_done_ml[] = {
    R_HELLO, R_ITEM_DONE(0), R_TEXT(0, " late"), S_DONE, S_END,
};
static const step_t rs_two_terminal[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), R_COMPLETED(10, 3, 0), S_END,
};
static const step_t rs_two_terminal_ml[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, R_COMPLETED(10, 3, 0), R_COMPLETED(10, 3, 0), S_DONE, S_END,
};
static const step_t rs_no_terminal[] = {
    R_OPEN_MSG0, R_HELLO, R_CLOSE_MSG0, S_END,
};

/* RSC(name, items, flags, /responses, /invocations), each route an RR_* list of r_route_t fields. */
#define RSC(n, it, f, oa, ml)     {.name = (n), .items = (it), .nitems = sizeof(it) / sizeof((it)[0]),     \
                                   .flags = (f), .openai = {oa}, .mlflow = {ml}}
#define RR(s)                     .steps = (s)
/* The script when streaming; a plain answer for stream:false. */
#define RR_JSON(s, st, bd)        .steps = (s), .status = (st), .body = (bd)
#define RR_HTTP(st, bd)           .status = (st), .body = (bd)

/* Non-streaming forms of the failure scenarios (no events to fold): MLflow's AgentServer answers
 * an exception with 500 {"detail"}, Databricks serving with {"error_code","message"} and the
 * status of that code (PROTOCOL.md §6.3, §5.4); a broken upstream sends broken JSON either way. */
#define R_BAD_JSON_BODY           "{not json"
#define R_DETAIL_CRASHED          "{\"detail\":\"agent crashed\"}"
#define R_DBX_ERROR_BODY                                                                                     \
    "{\"error_code\":\"BAD_REQUEST\",\"message\":\"TimeoutException: Tool XYZ failed to execute.\"}"

static const r_scenario_t r_scenarios[] = {
    RSC("r_text", ri_msg, 0, RR(rs_text), RR(rs_text_ml)),
    RSC("r_tools", ri_tools, 0, RR(rs_tools), RR(rs_tools_ml)),
    RSC("r_reasoning", ri_reasoning, 0, RR(rs_reasoning), RR(rs_reasoning_ml)),
    RSC("r_custom", ri_msg, 0, RR(rs_custom), RR(rs_custom_ml)),
    RSC("r_error", ri_msg, 0, RR(rs_error), RR_JSON(rs_error_ml, 500, R_DETAIL_CRASHED)),
    RSC("r_error_dbx", ri_msg, SF_R_SPARSE, RR_JSON(rs_error_dbx, 400, R_DBX_ERROR_BODY),
        RR_JSON(rs_error_dbx_ml, 400, R_DBX_ERROR_BODY)),
    RSC("r_unknown_event", ri_msg, 0, RR(rs_unknown_event), RR(rs_unknown_event_ml)),
    RSC("r_bad_json", ri_msg, 0, RR_JSON(rs_bad_json, 200, R_BAD_JSON_BODY),
        RR_JSON(rs_bad_json_ml, 200, R_BAD_JSON_BODY)),
    RSC("r_delta_after_done", ri_msg, 0, RR(rs_delta_after_done), RR(rs_delta_after_done_ml)),
    RSC("r_two_terminal", ri_msg, SF_R_FULL, RR(rs_two_terminal), RR(rs_two_terminal_ml)),
    RSC("r_no_terminal", ri_msg, 0, RR(rs_no_terminal), RR(rs_text_ml)),
    RSC("r_http500", ri_msg, 0,
        RR_HTTP(500, "{\"error\":{\"message\":\"responses upstream exploded\",\"type\":\"server_error\"}}"),
        RR_HTTP(500, "{\"detail\":\"responses upstream exploded\"}")),
};
/* clang-format on */

static const r_scenario_t *find_r_scenario(gw_str_t name)
{
    for (size_t i = 0; i < sizeof(r_scenarios) / sizeof(r_scenarios[0]); i++)
        if (gw_str_eq(name, r_scenarios[i].name))
            return &r_scenarios[i];
    return NULL;
}

static int step_repeat(const step_t *s)
{
    return s->repeat > 0 ? s->repeat : 1;
}

/* Total time a script spends waiting: a non-streaming answer is delayed by as much. */
static uint64_t script_delay(const step_t *s)
{
    uint64_t ms = 0;
    for (; s->op != OP_END && s->op != OP_CLOSE && s->op != OP_HOLD; s++) {
        if (s->op == OP_DELAY)
            ms += (uint64_t)s->ms;
        else
            ms += (uint64_t)s->ms * (uint64_t)(step_repeat(s) - 1);
    }
    return ms;
}

/* ---- JSON / SSE serialisation ---- */

/* Quoted JSON string; the common case (nothing to escape) is one append. */
static void put_str(gw_buf_t *b, gw_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.base[i];
        if (ch < 0x20 || ch == '"' || ch == '\\' || ch == 0x7f) {
            gw_json_quote(b, s);
            return;
        }
    }
    char *p = gw_buf_reserve(b, s.len + 2);
    p[0] = '"';
    if (s.len)
        memcpy(p + 1, s.base, s.len);
    p[s.len + 1] = '"';
    b->len += s.len + 2;
}

static void put_cstr(gw_buf_t *b, const char *s)
{
    put_str(b, gw_str(s));
}

/* OP_FILL content without the quotes; the fill byte and tail are plain ASCII (asserted). */
static void put_fill(gw_buf_t *b, const step_t *s)
{
    size_t tl = strlen(s->tail);
    assert(s->len >= tl && s->text[0] >= 0x20 && s->text[0] != '"' && s->text[0] != '\\');
    size_t n = s->len - tl;
    memset(gw_buf_reserve(b, n), s->text[0], n);
    b->len += n;
    gw_buf_append(b, s->tail, tl);
}

static void delta_members(gw_buf_t *b, const step_t *s)
{
    switch (s->op) {
    case OP_ROLE:
        gw_buf_append_cstr(b, "\"role\":\"assistant\",\"content\":\"\"");
        break;
    case OP_CONTENT:
        gw_buf_append_cstr(b, "\"content\":");
        put_cstr(b, s->text);
        break;
    case OP_FILL:
        gw_buf_append_cstr(b, "\"content\":\"");
        put_fill(b, s);
        gw_buf_append(b, "\"", 1);
        break;
    case OP_REASONING:
        gw_buf_append_cstr(b, "\"reasoning_content\":");
        put_cstr(b, s->text);
        break;
    case OP_REASONING_FIELD:
        gw_buf_append_cstr(b, "\"reasoning\":");
        put_cstr(b, s->text);
        break;
    case OP_REFUSAL:
        gw_buf_append_cstr(b, "\"refusal\":");
        put_cstr(b, s->text);
        break;
    case OP_TOOL:
        if (s->role)
            gw_buf_append_cstr(b, "\"role\":\"assistant\",\"content\":null,");
        buf_printf(b, "\"tool_calls\":[{\"index\":%d", s->idx);
        if (s->id) {
            gw_buf_append_cstr(b, ",\"id\":");
            put_cstr(b, s->id);
            gw_buf_append_cstr(b, ",\"type\":\"function\"");
        }
        gw_buf_append_cstr(b, ",\"function\":{");
        if (s->name) {
            gw_buf_append_cstr(b, "\"name\":");
            put_cstr(b, s->name);
        }
        if (s->text) {
            gw_buf_append_cstr(b, s->name ? ",\"arguments\":" : "\"arguments\":");
            put_cstr(b, s->text);
        }
        gw_buf_append_cstr(b, "}}]");
        break;
    case OP_DELTA:
        gw_buf_append_cstr(b, s->text);
        break;
    default:
        break;
    }
}

/* One chat.completion.chunk for a delta-bearing step (OpenAI envelope from MOCK_SCENARIOS.md). */
static void chunk_json(gw_buf_t *b, unsigned fl, const step_t *s)
{
    gw_buf_append_cstr(b, MOCK_CHUNK_HEAD);
    if (fl & SF_UNKNOWN)
        gw_buf_append_cstr(b, MOCK_UNKNOWN_TOP);
    gw_buf_append_cstr(b, "\"choices\":[{\"index\":0,");
    if (fl & SF_UNKNOWN)
        gw_buf_append_cstr(b, "\"logprobs\":null,\"x_mock_choice\":true,");
    gw_buf_append_cstr(b, "\"delta\":{");
    size_t mark = b->len;
    delta_members(b, s);
    if (fl & SF_UNKNOWN) {
        if (b->len != mark)
            gw_buf_append(b, ",", 1);
        gw_buf_append_cstr(b, "\"annotations\":[],\"x_mock_delta\":42");
    }
    gw_buf_append_cstr(b, "},\"finish_reason\":");
    if (s->finish)
        put_cstr(b, s->finish);
    else
        gw_buf_append_cstr(b, "null");
    gw_buf_append_cstr(b, "}]}");
}

static void usage_members(gw_buf_t *b, const step_t *s)
{
    buf_printf(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d", s->prompt,
               s->completion, s->prompt + s->completion);
    if (s->reasoning >= 0)
        buf_printf(b, ",\"completion_tokens_details\":{\"reasoning_tokens\":%d}", s->reasoning);
    gw_buf_append(b, "}", 1);
}

static void usage_json(gw_buf_t *b, unsigned fl, const step_t *s)
{
    gw_buf_append_cstr(b, MOCK_CHUNK_HEAD);
    if (fl & SF_UNKNOWN)
        gw_buf_append_cstr(b, MOCK_UNKNOWN_TOP);
    gw_buf_append_cstr(b, "\"choices\":[],");
    usage_members(b, s);
    gw_buf_append(b, "}", 1);
}

/* Offset of the top-level comma between two members closest to the middle of a JSON object,
 * 0 when there is none. */
static size_t member_comma(const char *s, size_t n)
{
    int depth = 0;
    bool in_str = false;
    size_t best = 0, mid = n / 2;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == ',' && depth == 1) {
            size_t d = i > mid ? i - mid : mid - i, bd = best > mid ? best - mid : mid - best;
            if (!best || d < bd)
                best = i;
        }
    }
    return best;
}

static void buf_insert(gw_buf_t *b, size_t at, const char *s, size_t n)
{
    assert(at <= b->len);
    gw_buf_reserve(b, n);
    memmove(b->base + at + n, b->base + at, b->len - at);
    memcpy(b->base + at, s, n);
    b->len += n;
}

/* Serialise step s as the bytes of one SSE event (the framing flags apply here), into ev.
 * nth counts the events already sent in this response. */
static void build_event(gw_buf_t *ev, unsigned fl, const step_t *s, unsigned nth)
{
    const char *eol = (fl & SF_CRLF) ? "\r\n" : "\n";
    const char *data = (fl & SF_NOSPACE) ? "data:" : "data: ";
    if (s->op == OP_RAW) {
        gw_buf_append_cstr(ev, s->text);
        return;
    }
    if (fl & SF_COMMENTS) {
        /* Both comment forms: a comment-only block (an SSE event with no data, ignored by
         * receivers per WHATWG HTML §9.2.6) and a comment line inside the event itself. */
        if (nth % 2 == 0)
            buf_printf(ev, ": OPENROUTER PROCESSING%s%s", eol, eol);
        else
            buf_printf(ev, ": keepalive%s", eol);
    }
    gw_buf_append_cstr(ev, data);
    size_t start = ev->len;
    bool json = true;
    switch (s->op) {
    case OP_DONE:
        gw_buf_append_cstr(ev, "[DONE]");
        json = false;
        break;
    case OP_DATA:
        gw_buf_append_cstr(ev, s->text);
        break;
    case OP_USAGE:
        usage_json(ev, fl, s);
        break;
    default:
        chunk_json(ev, fl, s);
        break;
    }
    if ((fl & SF_MULTILINE) && json) {
        /* SSE joins consecutive data: lines with "\n" (WHATWG HTML §9.2.6), which is JSON
         * whitespace between members, so the receiver must reassemble one valid object. */
        size_t comma = member_comma(ev->base + start, ev->len - start);
        if (comma) {
            gw_buf_t sep;
            gw_buf_init(&sep);
            buf_printf(&sep, "%s%s", eol, data);
            buf_insert(ev, start + comma + 1, sep.base, sep.len);
            gw_buf_dispose(&sep);
        }
    }
    buf_printf(ev, "%s%s", eol, eol);
}

/* Where to cut an event into two writes: inside its longest multi-byte UTF-8 character (first
 * one wins; a 4-byte character is cut 2+2), or in the middle when it is plain ASCII. */
static size_t split_point(const char *s, size_t n)
{
    size_t best = 0, best_len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        size_t l = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 0;
        if (l > best_len && i + l <= n) {
            best = i;
            best_len = l;
        }
    }
    return best_len ? best + best_len / 2 : n / 2;
}

/* The non-streaming answer: the script's steps folded into one chat.completion object. */
static void build_completion(gw_buf_t *out, const scenario_t *sc)
{
    struct {
        const char *id, *name;
        gw_buf_t args;
    } calls[MOCK_MAX_CALLS];
    gw_buf_t content, reasoning, refusal;
    bool has_content = false, has_reasoning = false, has_refusal = false;
    const char *reasoning_key = "reasoning_content", *finish = NULL;
    const step_t *usage = NULL;
    int ncalls = 0;

    memset(calls, 0, sizeof(calls));
    gw_buf_init(&content);
    gw_buf_init(&reasoning);
    gw_buf_init(&refusal);
    for (const step_t *s = sc->steps; s->op != OP_END && s->op != OP_CLOSE && s->op != OP_HOLD; s++) {
        for (int r = 0; r < step_repeat(s); r++) {
            switch (s->op) {
            case OP_CONTENT:
                gw_buf_append_cstr(&content, s->text);
                has_content = true;
                break;
            case OP_FILL:
                put_fill(&content, s);
                has_content = true;
                break;
            case OP_REASONING:
            case OP_REASONING_FIELD:
                reasoning_key = s->op == OP_REASONING ? "reasoning_content" : "reasoning";
                gw_buf_append_cstr(&reasoning, s->text);
                has_reasoning = true;
                break;
            case OP_REFUSAL:
                gw_buf_append_cstr(&refusal, s->text);
                has_refusal = true;
                break;
            case OP_TOOL:
                assert(s->idx >= 0 && s->idx < MOCK_MAX_CALLS);
                if (s->idx >= ncalls)
                    ncalls = s->idx + 1;
                if (s->id)
                    calls[s->idx].id = s->id;
                if (s->name)
                    calls[s->idx].name = s->name;
                if (s->text)
                    gw_buf_append_cstr(&calls[s->idx].args, s->text);
                break;
            case OP_USAGE:
                usage = s;
                break;
            default:
                break;
            }
            if (s->finish)
                finish = s->finish;
        }
    }

    gw_buf_append_cstr(out, "{" MOCK_CHUNK_ID ",\"object\":\"chat.completion\",\"created\":1741290958,"
                            "\"model\":\"mock-model\",");
    if (sc->flags & SF_UNKNOWN)
        gw_buf_append_cstr(out, MOCK_UNKNOWN_TOP);
    gw_buf_append_cstr(out, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (has_content)
        put_str(out, gw_buf_str(&content));
    else
        gw_buf_append_cstr(out, "null");
    if (has_reasoning) {
        buf_printf(out, ",\"%s\":", reasoning_key);
        put_str(out, gw_buf_str(&reasoning));
    }
    if (has_refusal) {
        gw_buf_append_cstr(out, ",\"refusal\":");
        put_str(out, gw_buf_str(&refusal));
    }
    if (ncalls) {
        gw_buf_append_cstr(out, ",\"tool_calls\":[");
        for (int i = 0; i < ncalls; i++) {
            gw_buf_append_cstr(out, i ? ",{\"id\":" : "{\"id\":");
            put_cstr(out, calls[i].id ? calls[i].id : "");
            gw_buf_append_cstr(out, ",\"type\":\"function\",\"function\":{\"name\":");
            put_cstr(out, calls[i].name ? calls[i].name : "");
            gw_buf_append_cstr(out, ",\"arguments\":");
            put_str(out, gw_buf_str(&calls[i].args));
            gw_buf_append_cstr(out, "}}");
        }
        gw_buf_append(out, "]", 1);
    }
    if (sc->flags & SF_UNKNOWN)
        gw_buf_append_cstr(out, ",\"annotations\":[],\"x_mock_message\":42");
    gw_buf_append_cstr(out, "},\"logprobs\":null,\"finish_reason\":");
    if (finish)
        put_cstr(out, finish);
    else
        gw_buf_append_cstr(out, "null");
    gw_buf_append_cstr(out, "}]");
    if (usage) {
        gw_buf_append(out, ",", 1);
        usage_members(out, usage);
    }
    gw_buf_append(out, "}", 1);

    for (int i = 0; i < MOCK_MAX_CALLS; i++)
        gw_buf_dispose(&calls[i].args);
    gw_buf_dispose(&content);
    gw_buf_dispose(&reasoning);
    gw_buf_dispose(&refusal);
}

/* ---- Responses serialisation ---- */

typedef enum {
    ROUTE_CHAT,        /* POST .../chat/completions */
    ROUTE_RESPONSES,   /* POST .../responses: OpenAI flavour */
    ROUTE_INVOCATIONS, /* POST .../invocations: MLflow flavour */
} route_t;

#define MOCK_R_ITEMS 4

/* One output item as of some point of a script. */
typedef struct {
    gw_buf_t text;      /** owned: message text, call arguments or summary text so far */
    const char *status; /** status from its output_item.done; NULL while not done */
    bool seen;          /** some step has addressed it */
} r_state_t;

/* The state of every item, plus the last lifecycle step, as of a point of a script. */
typedef struct {
    r_state_t item[MOCK_R_ITEMS];
    const step_t *life; /** last OP_R_CREATED/IN_PROGRESS/COMPLETED/FAILED step; NULL if none */
} r_fold_t;

static bool r_is_item_op(op_t op)
{
    return op >= OP_R_ADDED && op <= OP_R_ITEM_DONE;
}

static bool r_is_life_op(op_t op)
{
    return op >= OP_R_CREATED && op <= OP_R_FAILED;
}

/* Content is full (sequence numbers, indexes, logprobs) or sparse (MLflow helper style). */
static bool r_sparse(const r_scenario_t *rs, route_t rt)
{
    if (rt == ROUTE_RESPONSES)
        return (rs->flags & SF_R_SPARSE) != 0;
    return !(rs->flags & SF_R_FULL);
}

/* Fold steps [0, end) into f (to be released with r_fold_dispose). Deltas reaching an item after
 * its output_item.done are ignored, so the item stays as it was announced done: that is what the
 * terminal response must list even in r_delta_after_done. */
static void r_fold(r_fold_t *f, const r_scenario_t *rs, const step_t *steps, size_t end)
{
    memset(f, 0, sizeof(*f));
    for (size_t k = 0; k < end && steps[k].op != OP_END; k++) {
        const step_t *s = &steps[k];
        if (r_is_life_op(s->op))
            f->life = s;
        if (!r_is_item_op(s->op))
            continue;
        assert(s->idx >= 0 && (size_t)s->idx < rs->nitems && s->idx < MOCK_R_ITEMS);
        r_state_t *it = &f->item[s->idx];
        it->seen = true;
        if (it->status)
            continue;
        if (s->op == OP_R_TEXT || s->op == OP_R_ARGS || s->op == OP_R_SUM) {
            for (int r = 0; r < step_repeat(s); r++)
                gw_buf_append_cstr(&it->text, s->text);
        } else if (s->op == OP_R_ITEM_DONE) {
            if (s->text) {
                gw_buf_reset(&it->text);
                gw_buf_append_cstr(&it->text, s->text);
            }
            it->status = s->status ? s->status : "completed";
        }
    }
}

static void r_fold_dispose(r_fold_t *f)
{
    for (int i = 0; i < MOCK_R_ITEMS; i++)
        gw_buf_dispose(&f->item[i].text);
}

/* An output item. done = false gives the output_item.added form (empty content, in_progress). */
static void r_item_json(gw_buf_t *b, const r_item_t *it, const r_state_t *st, bool done, const char *status)
{
    gw_str_t text = done ? gw_buf_str(&st->text) : GW_STR_LIT("");
    if (!done)
        status = "in_progress";
    gw_buf_append_cstr(b, "{\"id\":");
    put_cstr(b, it->id);
    switch (it->kind) {
    case RI_MESSAGE:
        gw_buf_append_cstr(b, ",\"type\":\"message\",\"status\":");
        put_cstr(b, status);
        gw_buf_append_cstr(b, ",\"role\":\"assistant\",\"content\":[");
        if (done) {
            gw_buf_append_cstr(b, "{\"type\":\"output_text\",\"text\":");
            put_str(b, text);
            gw_buf_append_cstr(b, ",\"annotations\":[],\"logprobs\":[]}");
        }
        gw_buf_append_cstr(b, "]}");
        break;
    case RI_CALL:
        gw_buf_append_cstr(b, ",\"type\":\"function_call\",\"status\":");
        put_cstr(b, status);
        gw_buf_append_cstr(b, ",\"call_id\":");
        put_cstr(b, it->call_id);
        gw_buf_append_cstr(b, ",\"name\":");
        put_cstr(b, it->name);
        gw_buf_append_cstr(b, ",\"arguments\":");
        put_str(b, text);
        gw_buf_append(b, "}", 1);
        break;
    case RI_REASONING:
        gw_buf_append_cstr(b, ",\"type\":\"reasoning\",\"status\":");
        put_cstr(b, status);
        gw_buf_append_cstr(b, ",\"summary\":[");
        if (done) {
            gw_buf_append_cstr(b, "{\"type\":\"summary_text\",\"text\":");
            put_str(b, text);
            gw_buf_append(b, "}", 1);
        }
        gw_buf_append_cstr(b, "]}");
        break;
    }
}

/* The output array: every item addressed so far, in output_index order. An item not done yet is
 * in_progress, or incomplete once the response has failed (PROTOCOL.md §5.3). */
static void r_output_json(gw_buf_t *b, const r_scenario_t *rs, const r_fold_t *f, bool failed)
{
    bool first = true;
    gw_buf_append(b, "[", 1);
    for (size_t i = 0; i < rs->nitems && i < MOCK_R_ITEMS; i++) {
        const r_state_t *st = &f->item[i];
        if (!st->seen)
            continue;
        if (!first)
            gw_buf_append(b, ",", 1);
        first = false;
        const char *status = st->status ? st->status : failed ? "incomplete" : "in_progress";
        r_item_json(b, &rs->items[i], st, true, status);
    }
    gw_buf_append(b, "]", 1);
}

/* usage with both detail objects (PROTOCOL.md §3); reasoning < 0 counts as 0. */
static void r_usage_json(gw_buf_t *b, const step_t *s)
{
    int reasoning = s->reasoning > 0 ? s->reasoning : 0;
    buf_printf(b, "{\"input_tokens\":%d,", s->prompt);
    gw_buf_append_cstr(b, "\"input_tokens_details\":{\"cached_tokens\":0,\"cache_write_tokens\":0},");
    buf_printf(b, "\"output_tokens\":%d,\"output_tokens_details\":{\"reasoning_tokens\":%d},", s->completion,
               reasoning);
    buf_printf(b, "\"total_tokens\":%d}", s->prompt + s->completion);
}

/* A full Responses object (PROTOCOL.md §3) as of fold f. life is the lifecycle step it belongs
 * to (its status, error, usage and extra members); NULL gives a completed response without usage. */
static void r_response_json(gw_buf_t *b, const r_scenario_t *rs, const r_fold_t *f, const step_t *life)
{
    op_t op = life ? life->op : OP_R_COMPLETED;
    const char *status = op == OP_R_COMPLETED ? "completed" : op == OP_R_FAILED ? "failed" : "in_progress";
    buf_printf(b, "{\"id\":\"%s\",\"object\":\"response\",\"created_at\":%d,\"status\":\"%s\",\"error\":",
               R_RESP_ID, R_CREATED_AT, status);
    if (op == OP_R_FAILED) {
        gw_buf_append_cstr(b, "{\"code\":");
        put_cstr(b, life->code);
        gw_buf_append_cstr(b, ",\"message\":");
        put_cstr(b, life->text);
        gw_buf_append(b, "}", 1);
    } else {
        gw_buf_append_cstr(b, "null");
    }
    gw_buf_append_cstr(b, ",\"incomplete_details\":null,\"instructions\":null,\"model\":\"" R_MODEL
                          "\",\"output\":");
    r_output_json(b, rs, f, op == OP_R_FAILED);
    gw_buf_append_cstr(b, ",\"parallel_tool_calls\":true,\"tool_choice\":\"auto\",\"tools\":[],"
                          "\"temperature\":null,\"top_p\":null,\"metadata\":{},\"usage\":");
    if (life && op == OP_R_COMPLETED)
        r_usage_json(b, life);
    else
        gw_buf_append_cstr(b, "null");
    if (life && life->rextra) {
        gw_buf_append(b, ",", 1);
        gw_buf_append_cstr(b, life->rextra);
    }
    gw_buf_append(b, "}", 1);
}

static const char *r_event_type(const step_t *s)
{
    switch (s->op) {
    case OP_R_CREATED:
        return "response.created";
    case OP_R_IN_PROGRESS:
        return "response.in_progress";
    case OP_R_COMPLETED:
        return "response.completed";
    case OP_R_FAILED:
        return "response.failed";
    case OP_R_ERROR:
        return "error";
    case OP_R_EVENT:
        return s->name;
    case OP_R_ADDED:
        return "response.output_item.added";
    case OP_R_PART_ADDED:
        return "response.content_part.added";
    case OP_R_TEXT:
        return "response.output_text.delta";
    case OP_R_TEXT_DONE:
        return "response.output_text.done";
    case OP_R_PART_DONE:
        return "response.content_part.done";
    case OP_R_ARGS:
        return "response.function_call_arguments.delta";
    case OP_R_ARGS_DONE:
        return "response.function_call_arguments.done";
    case OP_R_SUM_ADDED:
        return "response.reasoning_summary_part.added";
    case OP_R_SUM:
        return "response.reasoning_summary_text.delta";
    case OP_R_SUM_DONE:
        return "response.reasoning_summary_text.done";
    case OP_R_SUM_PDONE:
        return "response.reasoning_summary_part.done";
    case OP_R_ITEM_DONE:
        return "response.output_item.done";
    default:
        assert(!"not a Responses event");
        return "";
    }
}

/* The addressing members of an item-scoped event; sparse events carry item_id only. */
static void r_address(gw_buf_t *b, const char *item_id, int idx, const char *sub, bool sparse)
{
    if (item_id) {
        gw_buf_append_cstr(b, ",\"item_id\":");
        put_cstr(b, item_id);
    }
    if (!sparse)
        buf_printf(b, ",\"output_index\":%d", idx);
    if (sub && !sparse)
        buf_printf(b, ",\"%s\":0", sub);
}

/* The members of an item-scoped event s after its type and sequence number; st is item it as of
 * s included (its done status, the content that s's done event reports). */
static void r_item_members(gw_buf_t *b, const step_t *s, const r_item_t *it, const r_state_t *st, bool sparse)
{
    gw_str_t text = gw_buf_str(&st->text);
    switch (s->op) {
    case OP_R_ADDED:
    case OP_R_ITEM_DONE:
        r_address(b, NULL, s->idx, NULL, sparse);
        gw_buf_append_cstr(b, ",\"item\":");
        r_item_json(b, it, st, s->op == OP_R_ITEM_DONE, st->status);
        break;
    case OP_R_PART_ADDED:
    case OP_R_PART_DONE:
        r_address(b, it->id, s->idx, "content_index", sparse);
        gw_buf_append_cstr(b, ",\"part\":{\"type\":\"output_text\",\"text\":");
        put_str(b, s->op == OP_R_PART_DONE ? text : GW_STR_LIT(""));
        gw_buf_append_cstr(b, ",\"annotations\":[],\"logprobs\":[]}");
        break;
    case OP_R_TEXT:
    case OP_R_TEXT_DONE:
        r_address(b, it->id, s->idx, "content_index", sparse);
        gw_buf_append_cstr(b, s->op == OP_R_TEXT ? ",\"delta\":" : ",\"text\":");
        put_str(b, s->op == OP_R_TEXT ? gw_str(s->text) : text);
        if (!sparse)
            gw_buf_append_cstr(b, ",\"logprobs\":[]");
        break;
    case OP_R_ARGS:
        r_address(b, it->id, s->idx, NULL, sparse);
        gw_buf_append_cstr(b, ",\"delta\":");
        put_cstr(b, s->text);
        break;
    case OP_R_ARGS_DONE:
        r_address(b, it->id, s->idx, NULL, sparse);
        gw_buf_append_cstr(b, ",\"name\":");
        put_cstr(b, it->name);
        gw_buf_append_cstr(b, ",\"arguments\":");
        put_str(b, text);
        break;
    case OP_R_SUM_ADDED:
    case OP_R_SUM_PDONE:
        r_address(b, it->id, s->idx, "summary_index", sparse);
        gw_buf_append_cstr(b, ",\"part\":{\"type\":\"summary_text\",\"text\":");
        put_str(b, s->op == OP_R_SUM_PDONE ? text : GW_STR_LIT(""));
        gw_buf_append(b, "}", 1);
        break;
    case OP_R_SUM:
    case OP_R_SUM_DONE:
        r_address(b, it->id, s->idx, "summary_index", sparse);
        gw_buf_append_cstr(b, s->op == OP_R_SUM ? ",\"delta\":" : ",\"text\":");
        put_str(b, s->op == OP_R_SUM ? gw_str(s->text) : text);
        break;
    default:
        assert(!"not an item-scoped Responses event");
        break;
    }
}

/* One Responses event object for steps[k] (PROTOCOL.md §4.2). seq is its sequence_number; sparse
 * events (MLflow helper style, §5.1) have none, and no indexes or logprobs either. */
static void r_event_json(gw_buf_t *b, const r_scenario_t *rs, const step_t *steps, size_t k, unsigned seq,
                         bool sparse)
{
    const step_t *s = &steps[k];
    r_fold_t f;
    r_fold(&f, rs, steps, k + 1); /* includes s: its own done status and replaced content */

    gw_buf_append_cstr(b, "{\"type\":");
    put_cstr(b, r_event_type(s));
    if (!sparse)
        buf_printf(b, ",\"sequence_number\":%u", seq);
    if (r_is_life_op(s->op)) {
        gw_buf_append_cstr(b, ",\"response\":");
        r_response_json(b, rs, &f, s);
    } else if (s->op == OP_R_ERROR) {
        gw_buf_append_cstr(b, ",\"code\":");
        put_cstr(b, s->code);
        gw_buf_append_cstr(b, ",\"message\":");
        put_cstr(b, s->text);
        gw_buf_append_cstr(b, ",\"param\":null");
    } else if (r_is_item_op(s->op)) {
        r_item_members(b, s, &rs->items[s->idx], &f.item[s->idx], sparse);
    }
    if (s->extra) {
        gw_buf_append(b, ",", 1);
        gw_buf_append_cstr(b, s->extra);
    }
    gw_buf_append(b, "}", 1);
    r_fold_dispose(&f);
}

/* Serialise steps[k] as one SSE event of route rt into ev: /responses names every JSON event
 * with an `event:` line (PROTOCOL.md §1), /invocations sends data lines only (§5.1). OP_DATA and
 * OP_DONE are data lines on both; nth counts the events already sent and is the sequence number. */
static void build_r_event(gw_buf_t *ev, const r_scenario_t *rs, route_t rt, const step_t *steps, size_t k,
                          unsigned nth)
{
    const step_t *s = &steps[k];
    switch (s->op) {
    case OP_RAW:
        gw_buf_append_cstr(ev, s->text);
        return;
    case OP_DATA:
        buf_printf(ev, "data: %s\n\n", s->text);
        return;
    case OP_DONE:
        gw_buf_append_cstr(ev, "data: [DONE]\n\n");
        return;
    default:
        break;
    }
    if (rt == ROUTE_RESPONSES)
        buf_printf(ev, "event: %s\n", r_event_type(s));
    gw_buf_append_cstr(ev, "data: ");
    r_event_json(ev, rs, steps, k, nth, r_sparse(rs, rt));
    gw_buf_append_cstr(ev, "\n\n");
}

/* The non-streaming answer: the whole script folded into one object. /responses: the response
 * as of the last lifecycle event (completed, failed, or in_progress when the script never ends
 * it). /invocations: an MLflow ResponsesAgentResponse, {"output":[...]} plus the extra top-level
 * members (custom_outputs, databricks_output) that the stream's events carried. */
static void build_r_object(gw_buf_t *out, const r_scenario_t *rs, route_t rt, const step_t *steps)
{
    r_fold_t f;
    r_fold(&f, rs, steps, SIZE_MAX);
    if (rt == ROUTE_RESPONSES) {
        r_response_json(out, rs, &f, f.life);
    } else {
        gw_buf_append_cstr(out, "{\"output\":");
        r_output_json(out, rs, &f, false);
        for (const step_t *s = steps; s->op != OP_END; s++) {
            if (s->extra && s->op != OP_R_EVENT) {
                gw_buf_append(out, ",", 1);
                gw_buf_append_cstr(out, s->extra);
            }
        }
        gw_buf_append(out, "}", 1);
    }
    r_fold_dispose(&f);
}

/* ---- server ---- */

typedef struct mock_ctx mock_ctx_t;
typedef struct mock_conn mock_conn_t;

struct mock_ctx {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sig_term, sig_int;
    llhttp_settings_t settings;
    const scenario_t *def;     /** --default-scenario on the chat route (text unless it names one) */
    const r_scenario_t *r_def; /** on the Responses routes (r_text unless it names an r_* one) */
    uint64_t requests;         /** scenario requests received (chat and Responses routes) */
    uint64_t connections;      /** TCP connections accepted */
    uint64_t next_id;
    size_t nconns;
    mock_conn_t *conns; /** live connections; each unlinks itself in its last close callback */
    gw_buf_t last;      /** owned: raw body of the most recent scenario request (any route) */
    bool have_last;
    bool stopping;
    uint64_t log_window; /** ms, start of the current rate-limit second */
    unsigned log_count;
    char rbuf[MOCK_READ_BUF]; /** shared read buffer: on_read consumes it before the next alloc */
};

typedef enum {
    CS_READ,      /* parsing a request (head or body) */
    CS_STREAM,    /* running a scenario script */
    CS_HOLD,      /* the script reached OP_HOLD: idle until the client leaves */
    CS_WAIT_JSON, /* non-streaming answer delayed by the script's total delay */
    CS_FLUSH,     /* response fully queued; waiting for the writes to complete */
    CS_LINGER,    /* FIN sent, draining input until the client's FIN or a timeout */
    CS_CLOSING,
} conn_state_t;

struct mock_conn {
    uv_tcp_t tcp;     /** data = this conn */
    uv_timer_t timer; /** delays, split halves, lingering close; one use at a time */
    uv_shutdown_t shut;
    mock_ctx_t *ctx;
    mock_conn_t *prev, *next;
    uint64_t id;
    conn_state_t state;
    int handles_open; /** tcp + timer; freed when both close callbacks have run */
    bool reading, peer_eof;
    llhttp_t parser;
    gw_buf_t in; /** owned: received, not yet parsed input (pipelined requests) */

    /* current request */
    bool head_ok; /* header block pre-scanned */
    bool headers_done;
    int err_status;         /* set by a parser callback before it fails the parse */
    const char *err_reason; /* static text going with err_status */
    size_t head_bytes;
    gw_buf_t url, body, hname, hval, scen; /** owned; reset per request */
    bool hname_long, hval_long, has_scen, expect, keep_alive;
    int host_count;
    uint8_t method, major, minor;

    /* current response */
    route_t route;
    const scenario_t *sc;    /* ROUTE_CHAT */
    const r_scenario_t *rsc; /* the Responses routes */
    const step_t *steps;     /* the script run: sc->steps or the route's r_route_t.steps */
    size_t step;             /* index into steps */
    int rep;                 /* repetitions of the current step already sent */
    unsigned events;         /* events sent in this response */
    bool chunked, wait_drain, abrupt;
    gw_buf_t split; /** owned: second half of a split event, written by the timer */
    int gap_after;  /* ms to wait after the split half has been written */
    size_t writes_pending;
};

typedef struct {
    uv_write_t req;
    char *base;   /** owned payload, freed in on_uv_write */
    char hdr[20]; /** chunk-size line */
    char crlf[2];
} wreq_t;

static void close_conn(mock_conn_t *c);
static void run_script(mock_conn_t *c);
static void process_input(mock_conn_t *c);

static bool log_allowed(mock_ctx_t *ctx)
{
    uint64_t now = uv_now(ctx->loop);
    if (now - ctx->log_window >= 1000) {
        ctx->log_window = now;
        ctx->log_count = 0;
    }
    return ++ctx->log_count <= 20;
}


static void mock_log(mock_ctx_t *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One key=value line on stderr; warnings are rate-limited (20 per second). */
static void mock_log(mock_ctx_t *ctx, const char *level, const char *fmt, ...)
{
    va_list ap;
    if (strcmp(level, "info") != 0 && !log_allowed(ctx))
        return;
    fprintf(stderr, "level=%s ", level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- connection lifecycle ---- */

static void on_close(uv_handle_t *h)
{
    mock_conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    mock_ctx_t *ctx = c->ctx;
    if (c->prev)
        c->prev->next = c->next;
    else
        ctx->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctx->nconns--;
    gw_buf_dispose(&c->in);
    gw_buf_dispose(&c->url);
    gw_buf_dispose(&c->body);
    gw_buf_dispose(&c->hname);
    gw_buf_dispose(&c->hval);
    gw_buf_dispose(&c->scen);
    gw_buf_dispose(&c->split);
    free(c);
}

/* Start closing both handles. The memory stays valid until the last close callback, so callers
 * up the stack only need to notice state == CS_CLOSING; pending writes get UV_ECANCELED first. */
static void close_conn(mock_conn_t *c)
{
    if (c->state == CS_CLOSING)
        return;
    c->state = CS_CLOSING;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mock_conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->ctx->rbuf, sizeof(c->ctx->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Read whenever the client has not sent its FIN and the unparsed input is under its cap. Reading
 * continues while a response runs: that is how a client leaving a `stall` is noticed. */
static void update_read(mock_conn_t *c)
{
    bool want = c->state != CS_CLOSING && !c->peer_eof && c->in.len < MOCK_IN_MAX;
    if (want && !c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc < 0) {
            mock_log(c->ctx, "warn", "event=read_start_failed conn=%" PRIu64 " err=%s", c->id,
                     uv_err_name(rc));
            close_conn(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* The one state transition: leaving a state disarms the timer, and read interest is re-derived.
 * Callers arm the timer for the new state afterwards. */
static void set_state(mock_conn_t *c, conn_state_t s)
{
    if (c->state == CS_CLOSING)
        return;
    if (c->state != s) {
        c->state = s;
        uv_timer_stop(&c->timer);
    }
    update_read(c);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(mock_conn_t *c, uint64_t ms)
{
    if (c->state != CS_CLOSING)
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- output ---- */

static void flushed(mock_conn_t *c);

static void on_uv_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    mock_conn_t *c = req->handle->data;
    free(w->base);
    free(w);
    assert(c->writes_pending > 0);
    c->writes_pending--;
    if (status < 0) {
        if (status != UV_ECANCELED)
            mock_log(c->ctx, "warn", "event=write_failed conn=%" PRIu64 " err=%s", c->id,
                     uv_err_name(status));
        close_conn(c);
        return;
    }
    if (c->state == CS_STREAM && c->wait_drain &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < MOCK_LOW_WATER) {
        c->wait_drain = false;
        run_script(c);
    } else if (c->state == CS_FLUSH && c->writes_pending == 0) {
        flushed(c);
    }
}

/* Queue b's bytes as one uv_write (one writev: one TCP write), taking ownership of them; with
 * chunk set they are framed as one HTTP chunk (RFC 9112 §7.1). On failure the conn closes. */
static void write_buf(mock_conn_t *c, gw_buf_t *b, bool chunk)
{
    uv_buf_t bufs[3];
    unsigned nb = 0;
    size_t n;
    wreq_t *w;

    if (c->state == CS_CLOSING || (chunk && b->len == 0)) {
        gw_buf_dispose(b); /* a zero-size chunk would be the last-chunk */
        return;
    }
    w = gw_xmalloc(sizeof(*w));
    w->base = gw_buf_steal(b, &n);
    if (chunk) {
        int h = snprintf(w->hdr, sizeof(w->hdr), "%zx\r\n", n);
        bufs[nb++] = uv_buf_init(w->hdr, (unsigned)h);
    }
    bufs[nb++] = uv_buf_init(w->base, (unsigned)n);
    if (chunk) {
        memcpy(w->crlf, "\r\n", 2);
        bufs[nb++] = uv_buf_init(w->crlf, 2);
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nb, on_uv_write);
    if (rc < 0) {
        mock_log(c->ctx, "warn", "event=write_failed conn=%" PRIu64 " err=%s", c->id, uv_err_name(rc));
        free(w->base);
        free(w);
        close_conn(c);
        return;
    }
    c->writes_pending++;
}

static void write_copy(mock_conn_t *c, const char *p, size_t n, bool chunk)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append(&b, p, n);
    write_buf(c, &b, chunk);
}

/* The whole response is queued: wait for its writes, then go on in flushed(). */
static void finish_response(mock_conn_t *c)
{
    if (c->state == CS_CLOSING)
        return;
    set_state(c, CS_FLUSH);
    if (c->writes_pending == 0)
        arm_timer(c, 0); /* never continue with the next request from inside this one */
}

static void reply(mock_conn_t *c, int status, const char *ctype, const char *extra, gw_str_t body)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_reserve(&b, body.len + 256);
    buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s\r\n\r\n",
               status, gw_http_reason(status), ctype, body.len, extra, c->keep_alive ? "keep-alive" : "close");
    gw_buf_append(&b, body.base, body.len);
    write_buf(c, &b, false);
    finish_response(c);
}

static void reply_error(mock_conn_t *c, int status, const char *type, gw_str_t message)
{
    gw_buf_t b;
    gw_buf_init(&b);
    gw_buf_append_cstr(&b, "{\"error\":{\"message\":");
    put_str(&b, message);
    gw_buf_append_cstr(&b, ",\"type\":");
    put_cstr(&b, type);
    gw_buf_append_cstr(&b, "}}");
    reply(c, status, "application/json", "", gw_buf_str(&b));
    gw_buf_dispose(&b);
}

/* Parse or protocol error: answer, then close (STYLE.md §6). */
static void fail_request(mock_conn_t *c, int status, const char *reason)
{
    mock_log(c->ctx, "warn", "event=bad_request conn=%" PRIu64 " status=%d reason=\"%s\"", c->id, status,
             reason);
    c->keep_alive = false;
    reply_error(c, status, "invalid_request_error", gw_str(reason));
}

/* ---- the script engine ---- */

static void start_stream(mock_conn_t *c)
{
    gw_buf_t b;
    /* RFC 9112 §7.1: chunked only to HTTP/1.1 clients; for HTTP/1.0 the close delimits the body. */
    c->chunked = c->major > 1 || (c->major == 1 && c->minor >= 1);
    if (!c->chunked)
        c->keep_alive = false;
    gw_buf_init(&b);
    buf_printf(&b,
               "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               "%sConnection: %s\r\n\r\n",
               c->chunked ? "Transfer-Encoding: chunked\r\n" : "", c->keep_alive ? "keep-alive" : "close");
    write_buf(c, &b, false);
    c->step = 0;
    c->rep = 0;
    c->events = 0;
    set_state(c, CS_STREAM);
    run_script(c);
}

/* Interpret the script from c->step until it has to wait: on a timer (delays, repeat gaps, the
 * second half of a split event), on the write queue (backpressure: it resumes from on_uv_write
 * once less than MOCK_LOW_WATER is queued), on the client (OP_HOLD), or for the end. */
static void run_script(mock_conn_t *c)
{
    while (c->state == CS_STREAM) {
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= MOCK_LOW_WATER) {
            c->wait_drain = true;
            return;
        }
        const step_t *s = &c->steps[c->step];
        switch (s->op) {
        case OP_END:
            if (c->chunked)
                write_copy(c, "0\r\n\r\n", 5, false); /* last-chunk, no trailers (RFC 9112 §7.1) */
            finish_response(c);
            return;
        case OP_CLOSE:
            c->abrupt = true;
            c->keep_alive = false;
            finish_response(c);
            return;
        case OP_HOLD:
            if (c->peer_eof)
                close_conn(c);
            else
                set_state(c, CS_HOLD);
            return;
        case OP_DELAY:
            c->step++;
            arm_timer(c, (uint64_t)s->ms);
            return;
        default:
            break;
        }

        gw_buf_t ev;
        unsigned flags = c->sc ? c->sc->flags : c->rsc->flags;
        gw_buf_init(&ev);
        if (c->route == ROUTE_CHAT)
            build_event(&ev, flags, s, c->events++);
        else
            build_r_event(&ev, c->rsc, c->route, c->steps, c->step, c->events++);
        if ((flags & SF_SPLIT) && ev.len > 1) {
            size_t k = split_point(ev.base, ev.len);
            gw_buf_append(&c->split, ev.base + k, ev.len - k);
            ev.len = k;
        }
        write_buf(c, &ev, c->chunked);
        if (c->state != CS_STREAM)
            return;

        int gap = 0;
        if (++c->rep < step_repeat(s)) {
            gap = s->ms;
        } else {
            c->rep = 0;
            c->step++;
        }
        if (c->split.len) {
            c->gap_after = gap;
            arm_timer(c, MOCK_SPLIT_MS);
            return;
        }
        if (gap) {
            arm_timer(c, (uint64_t)gap);
            return;
        }
    }
}

static void send_completion(mock_conn_t *c)
{
    gw_buf_t body;
    gw_buf_init(&body);
    if (c->route == ROUTE_CHAT)
        build_completion(&body, c->sc);
    else
        build_r_object(&body, c->rsc, c->route, c->steps);
    reply(c, 200, "application/json", "", gw_buf_str(&body));
    gw_buf_dispose(&body);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    mock_conn_t *c = req->handle->data;
    if (status < 0)
        close_conn(c);
}

/* Lingering close (RFC 9112 §9.6): send our FIN first and read until the client's, so input we
 * never read cannot turn close() into an RST that destroys the response still in flight. */
static void linger_close(mock_conn_t *c)
{
    if (c->peer_eof) {
        close_conn(c);
        return;
    }
    gw_buf_dispose(&c->in);
    set_state(c, CS_LINGER);
    int rc = uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc < 0) {
        close_conn(c);
        return;
    }
    arm_timer(c, MOCK_LINGER_MS);
}

static void reset_request(mock_conn_t *c)
{
    gw_buf_reset(&c->url);
    gw_buf_reset(&c->hname);
    gw_buf_reset(&c->hval);
    gw_buf_reset(&c->scen);
    gw_buf_reset(&c->split);
    if (c->body.cap > MOCK_BODY_KEEP)
        gw_buf_dispose(&c->body);
    else
        gw_buf_reset(&c->body);
    c->head_ok = c->headers_done = false;
    c->hname_long = c->hval_long = c->has_scen = c->expect = false;
    c->wait_drain = c->abrupt = false;
    c->err_status = 0;
    c->err_reason = NULL;
    c->head_bytes = 0;
    c->host_count = 0;
    c->route = ROUTE_CHAT;
    c->sc = NULL;
    c->rsc = NULL;
    c->steps = NULL;
    c->step = 0;
    c->rep = 0;
    c->events = 0;
    c->gap_after = 0;
}

/* Response done and flushed: keep-alive goes on with the next (maybe already buffered) request. */
static void flushed(mock_conn_t *c)
{
    if (c->abrupt) {
        close_conn(c);
        return;
    }
    if (!c->keep_alive || c->peer_eof) {
        linger_close(c);
        return;
    }
    reset_request(c);
    llhttp_resume(&c->parser);
    set_state(c, CS_READ);
    process_input(c);
}

static void on_timer(uv_timer_t *t)
{
    mock_conn_t *c = t->data;
    switch (c->state) {
    case CS_STREAM:
        if (c->split.len) {
            gw_buf_t rest = c->split;
            gw_buf_init(&c->split);
            write_buf(c, &rest, c->chunked);
            if (c->state != CS_STREAM)
                return;
            /* Pause after the second half too, so that it is not coalesced with the first half
             * of the next event and every write reaches the client on its own. */
            arm_timer(c, (uint64_t)(c->gap_after > MOCK_SPLIT_MS ? c->gap_after : MOCK_SPLIT_MS));
            c->gap_after = 0;
            return;
        }
        run_script(c);
        break;
    case CS_WAIT_JSON:
        send_completion(c);
        break;
    case CS_FLUSH:
        if (c->writes_pending == 0)
            flushed(c);
        break;
    case CS_LINGER:
        close_conn(c);
        break;
    default:
        break;
    }
}

/* ---- routes ---- */

static bool wants_stream(const gw_buf_t *body)
{
    gw_arena_t *a = gw_arena_new();
    gw_json_t *root = NULL;
    const char *err = NULL;
    bool on = false;
    if (body->len && gw_json_parse(a, body->base, body->len, &root, &err) == 0) {
        const gw_json_t *v = gw_json_get(root, "stream");
        on = gw_json_is(v, GW_JSON_BOOL) && v->boolean;
    }
    gw_arena_free(a);
    return on;
}

/* First occurrence of needle in [p, end), or NULL (memmem without _GNU_SOURCE). */
static const char *find_bytes(const char *p, const char *end, const char *needle, size_t n)
{
    while (p && (size_t)(end - p) >= n) {
        p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (!p || memcmp(p, needle, n) == 0)
            return p;
        p++;
    }
    return NULL;
}

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* x-mock-scenario header, else the first mock:NAME token of the raw body, else def. */
static gw_str_t scenario_name(const mock_conn_t *c, const char *def)
{
    if (c->has_scen)
        return gw_buf_str(&c->scen);
    const char *p = c->body.base, *end = c->body.base + c->body.len;
    while (p && p < end) {
        const char *m = find_bytes(p, end, "mock:", 5);
        if (!m)
            break;
        const char *n = m + 5, *q = n;
        while (q < end && is_name_char(*q))
            q++;
        if (q > n)
            return gw_str_n(n, (size_t)(q - n));
        p = n;
    }
    return gw_str(def);
}

/* Every scenario route keeps the raw body for /last-request and counts in /stats. */
static void record_request(mock_conn_t *c)
{
    mock_ctx_t *ctx = c->ctx;
    ctx->requests++;
    gw_buf_reset(&ctx->last);
    gw_buf_append(&ctx->last, c->body.base, c->body.len);
    ctx->have_last = true;
}

static void reply_unknown(mock_conn_t *c, gw_str_t name)
{
    gw_buf_t msg;
    gw_buf_init(&msg);
    gw_buf_append_cstr(&msg, "unknown mock scenario ");
    gw_buf_append_str(&msg, name);
    reply_error(c, 400, "invalid_request_error", gw_buf_str(&msg));
    gw_buf_dispose(&msg);
}

/* Run c->steps: as SSE, or as one JSON object after the script's total delay. */
static void serve_script(mock_conn_t *c, bool stream)
{
    if (stream) {
        start_stream(c);
        return;
    }
    uint64_t delay = script_delay(c->steps);
    if (delay) {
        set_state(c, CS_WAIT_JSON);
        arm_timer(c, delay);
        return;
    }
    send_completion(c);
}

/* POST .../chat/completions: record it, pick the scenario, then stream it, answer it as one JSON
 * object (after the script's total delay), or send its plain HTTP answer. */
static void serve_chat(mock_conn_t *c)
{
    record_request(c);
    gw_str_t name = scenario_name(c, c->ctx->def->name);
    if (mock_codex_is(name)) {
        gw_buf_t sse;
        gw_buf_init(&sse);
        if (mock_codex_answer(name, gw_buf_str(&c->body), &sse) < 0)
            reply_unknown(c, name);
        else
            reply(c, 200, "text/event-stream", "", gw_buf_str(&sse));
        gw_buf_dispose(&sse);
        return;
    }
    const scenario_t *sc = find_scenario(name);
    if (!sc) {
        reply_unknown(c, name);
        return;
    }
    if (!sc->steps) {
        reply(c, sc->status, sc->ctype, sc->headers, gw_str(sc->body));
        return;
    }
    c->route = ROUTE_CHAT;
    c->sc = sc;
    c->steps = sc->steps;
    serve_script(c, (sc->flags & SF_STREAM_ONLY) || (!(sc->flags & SF_JSON_ONLY) && wants_stream(&c->body)));
}

/* POST .../responses or .../invocations: the same selection, among the r_* scenarios only (a
 * chat scenario name is unknown here, and an r_* name is unknown on the chat route). Each route
 * has its own script and its own plain answers (MOCK_SCENARIOS.md, issue 5). */
static void serve_responses(mock_conn_t *c, route_t rt)
{
    record_request(c);
    gw_str_t name = scenario_name(c, c->ctx->r_def->name);
    const r_scenario_t *rs = find_r_scenario(name);
    if (!rs) {
        reply_unknown(c, name);
        return;
    }
    const r_route_t *r = rt == ROUTE_RESPONSES ? &rs->openai : &rs->mlflow;
    bool stream = wants_stream(&c->body);
    if (!r->steps || (!stream && r->body)) {
        reply(c, r->status, "application/json", "", gw_str(r->body));
        return;
    }
    c->route = rt;
    c->rsc = rs;
    c->steps = r->steps;
    serve_script(c, stream);
}

static bool has_suffix(gw_str_t path, const char *suffix)
{
    size_t n = strlen(suffix);
    return path.len >= n && memcmp(path.base + path.len - n, suffix, n) == 0;
}

/* Route one complete request (MOCK_SCENARIOS.md "Routes"); the query string is ignored. */
static void dispatch(mock_conn_t *c)
{
    mock_ctx_t *ctx = c->ctx;
    gw_str_t path = gw_buf_str(&c->url);
    const char *q = path.len ? memchr(path.base, '?', path.len) : NULL;
    if (q)
        path.len = (size_t)(q - path.base);

    if (c->method == HTTP_POST && has_suffix(path, "/chat/completions")) {
        serve_chat(c);
    } else if (c->method == HTTP_POST && has_suffix(path, "/responses")) {
        serve_responses(c, ROUTE_RESPONSES);
    } else if (c->method == HTTP_POST && has_suffix(path, "/invocations")) {
        serve_responses(c, ROUTE_INVOCATIONS);
    } else if (c->method == HTTP_GET && gw_str_eq(path, "/health")) {
        reply(c, 200, "application/json", "", GW_STR_LIT("{\"status\":\"ok\"}"));
    } else if (c->method == HTTP_GET && gw_str_eq(path, "/stats")) {
        gw_buf_t b;
        gw_buf_init(&b);
        /* open_connections counts this /stats connection too. */
        buf_printf(&b, "{\"requests\":%" PRIu64 ",\"connections\":%" PRIu64 ",\"open_connections\":%zu}",
                   ctx->requests, ctx->connections, ctx->nconns);
        reply(c, 200, "application/json", "", gw_buf_str(&b));
        gw_buf_dispose(&b);
    } else if (c->method == HTTP_GET && gw_str_eq(path, "/last-request")) {
        if (ctx->have_last)
            reply(c, 200, "application/json", "", gw_buf_str(&ctx->last));
        else
            reply_error(c, 404, "not_found_error", GW_STR_LIT("no chat request received yet"));
    } else {
        reply_error(c, 404, "not_found_error", GW_STR_LIT("not found"));
    }
}

/* ---- request parsing (llhttp, strict) ---- */

/* Strict pre-scan of a header block before llhttp sees it (STYLE.md §6): llhttp 8.1 still accepts
 * obs-fold, a bare CR as line end (CVE-2023-30589) and bare LF. Returns 1 when the whole block is
 * buffered and clean, 0 when more input is needed, otherwise the HTTP status to fail with. */
static int prescan_head(const mock_conn_t *c)
{
    const unsigned char *s = (const unsigned char *)c->in.base;
    size_t n = c->in.len, i = 0;
    bool line_start = true;

    /* RFC 9112 §2.2: empty lines before the request-line are ignored (llhttp skips them too). */
    while (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n')
        i += 2;
    for (; i < n; i++) {
        unsigned char ch = s[i];
        if (i >= MOCK_HEAD_MAX)
            return 431;
        if (ch == '\r') {
            if (i + 1 == n)
                return 0;
            if (s[i + 1] != '\n')
                return 400;
            i++;
            if (line_start)
                return 1; /* the empty line ending the header section */
            line_start = true;
            continue;
        }
        if (ch == '\n')
            return 400;
        if (line_start && (ch == ' ' || ch == '\t'))
            return 400; /* obs-fold, rejected per RFC 9112 §5.2 */
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 400;
        line_start = false;
    }
    return 0;
}

/* Parse buffered input: at most one request, which is dispatched; the rest stays in c->in. */
static void parse_input(mock_conn_t *c)
{
    if (c->state != CS_READ || c->in.len == 0)
        return;
    if (!c->head_ok) {
        int rc = prescan_head(c);
        if (rc == 0)
            return;
        if (rc != 1) {
            fail_request(c, rc, rc == 431 ? "request header block too large" : "malformed header block");
            return;
        }
        c->head_ok = true;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, c->in.base, c->in.len);
    if (c->state != CS_READ)
        return; /* a failed 100-continue write closed the connection */
    if (e == HPE_OK) {
        gw_buf_reset(&c->in); /* all consumed: the body continues in the next read */
        return;
    }
    if (e == HPE_PAUSED) {
        gw_buf_consume(&c->in, (size_t)(llhttp_get_error_pos(&c->parser) - c->in.base));
        dispatch(c);
        return;
    }
    if (c->err_status) {
        fail_request(c, c->err_status, c->err_reason);
        return;
    }
    const char *reason = llhttp_get_error_reason(&c->parser);
    fail_request(c, 400, reason ? reason : llhttp_errno_name(e));
}

static void process_input(mock_conn_t *c)
{
    parse_input(c);
    /* Reading may have stopped at MOCK_IN_MAX during the previous response: resume it. */
    if (c->state == CS_READ)
        update_read(c);
}

static int fail_cb(mock_conn_t *c, int status, const char *reason)
{
    /* Kept here: llhttp replaces the reason of a failed callback with its own generic text. */
    c->err_status = status;
    c->err_reason = reason;
    return -1;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    mock_conn_t *c = p->data;
    if (c->url.len + n > MOCK_URL_MAX)
        return fail_cb(c, 414, "request target too long");
    gw_buf_append(&c->url, at, n);
    return 0;
}

static int count_head(mock_conn_t *c, size_t n)
{
    c->head_bytes += n;
    return c->head_bytes > MOCK_HEAD_MAX ? fail_cb(c, 431, "header fields too large") : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    mock_conn_t *c = p->data;
    if (count_head(c, n) < 0)
        return -1;
    if (c->hname.len + n > MOCK_NAME_MAX)
        c->hname_long = true;
    else
        gw_buf_append(&c->hname, at, n);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    mock_conn_t *c = p->data;
    if (count_head(c, n) < 0)
        return -1;
    if (c->hval.len + n > MOCK_VALUE_MAX)
        c->hval_long = true;
    else
        gw_buf_append(&c->hval, at, n);
    return 0;
}

/* One header field is complete (fires for empty values too). Trailer fields are ignored. */
static int on_header_value_complete(llhttp_t *p)
{
    mock_conn_t *c = p->data;
    gw_str_t name = gw_buf_str(&c->hname), v = gw_buf_str(&c->hval);
    while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    while (v.len && (v.base[0] == ' ' || v.base[0] == '\t')) {
        v.base++;
        v.len--;
    }
    if (!c->headers_done && !c->hname_long) {
        if (gw_str_ieq(name, "host")) {
            c->host_count++;
        } else if (gw_str_ieq(name, "x-mock-scenario") && !c->has_scen && v.len) {
            gw_buf_append_str(&c->scen, v); /* first one wins */
            c->has_scen = true;
        } else if (gw_str_ieq(name, "expect") && !c->hval_long && gw_str_ieq(v, "100-continue")) {
            c->expect = true;
        }
    }
    gw_buf_reset(&c->hname);
    gw_buf_reset(&c->hval);
    c->hname_long = c->hval_long = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    mock_conn_t *c = p->data;
    c->headers_done = true;
    c->method = p->method;
    c->major = p->http_major;
    c->minor = p->http_minor;
    bool http11 = c->major > 1 || (c->major == 1 && c->minor >= 1);
    /* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any with several. */
    if (c->host_count > 1 || (http11 && c->host_count == 0))
        return fail_cb(c, 400, "missing or repeated Host header");
    /* RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request cannot be trusted. */
    if (!http11 && (p->flags & F_TRANSFER_ENCODING))
        return fail_cb(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
    /* RFC 9110 §10.1.1: answer 100 so curl sends the body now instead of after its 1 s wait. */
    if (c->expect && http11)
        write_copy(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, false);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    mock_conn_t *c = p->data;
    if (c->body.len + n > MOCK_BODY_MAX)
        return fail_cb(c, 413, "request body too large");
    gw_buf_append(&c->body, at, n);
    return 0;
}

/* One request at a time: pause here; process_input() dispatches and the parser is resumed only
 * once the response is flushed. Keep-alive is read now, while llhttp's flags still hold. */
static int on_message_complete(llhttp_t *p)
{
    mock_conn_t *c = p->data;
    /* An Upgrade request is served as plain HTTP/1.1 (RFC 9110 §7.8 lets us ignore Upgrade), but
     * llhttp would treat the following bytes as the new protocol, so the connection ends with it. */
    c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    return HPE_PAUSED;
}

/* Input arrives in every state but CS_CLOSING: parsed in CS_READ, buffered (capped) while a
 * response runs, discarded while lingering. EOF and errors end the connection (see below). */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    mock_conn_t *c = st->data;
    if (nread == 0 || c->state == CS_CLOSING)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->state == CS_READ || c->state == CS_HOLD || c->state == CS_LINGER) {
            close_conn(c);
            return;
        }
        /* Half-close mid-response: finish this response, then close (RFC 9112 §9.6). A client
         * that really went away makes the next write fail, which closes at once. */
        c->peer_eof = true;
        c->keep_alive = false;
        update_read(c);
        return;
    }
    if (c->state == CS_LINGER)
        return; /* draining */
    gw_buf_append(&c->in, buf->base, (size_t)nread);
    if (c->state == CS_READ)
        process_input(c);
    else
        update_read(c);
}

/* Accept one client: the conn owns a tcp and a timer handle and lives until both are closed. */
static void on_connection(uv_stream_t *server, int status)
{
    mock_ctx_t *ctx = server->data;
    if (status < 0) {
        mock_log(ctx, "warn", "event=accept_failed err=%s", uv_err_name(status));
        return;
    }
    mock_conn_t *c = gw_xcalloc(1, sizeof(*c));
    c->ctx = ctx;
    if (uv_tcp_init(ctx->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->handles_open = 1;
    if (uv_timer_init(ctx->loop, &c->timer) == 0) {
        c->timer.data = c;
        c->handles_open = 2;
    }
    c->id = ++ctx->next_id;
    c->next = ctx->conns;
    if (ctx->conns)
        ctx->conns->prev = c;
    ctx->conns = c;
    ctx->nconns++;
    c->state = CS_READ;
    llhttp_init(&c->parser, HTTP_REQUEST, &ctx->settings);
    c->parser.data = c;
    if (c->handles_open != 2) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        c->state = CS_CLOSING;
        return;
    }
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        mock_log(ctx, "warn", "event=accept_failed err=%s", uv_err_name(rc));
        close_conn(c);
        return;
    }
    ctx->connections++;
    if (ctx->stopping || ctx->nconns > MOCK_MAX_CONNS) {
        mock_log(ctx, "warn", "event=connection_refused conns=%zu", ctx->nconns);
        close_conn(c);
        return;
    }
    /* Each SSE event is its own write and must leave at once, not wait behind Nagle. */
    uv_tcp_nodelay(&c->tcp, 1);
    update_read(c);
}

/* SIGTERM/SIGINT: close every handle; uv_run then returns and main exits 0. */
static void on_signal(uv_signal_t *sig, int signum)
{
    mock_ctx_t *ctx = sig->data;
    if (ctx->stopping)
        return;
    ctx->stopping = true;
    mock_log(ctx, "info", "event=stopping signal=%d conns=%zu", signum, ctx->nconns);
    uv_close((uv_handle_t *)&ctx->listener, NULL);
    uv_close((uv_handle_t *)&ctx->sig_term, NULL);
    uv_close((uv_handle_t *)&ctx->sig_int, NULL);
    for (mock_conn_t *c = ctx->conns; c; c = c->next)
        close_conn(c); /* unlinking happens in the close callbacks, after this loop */
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mock_upstream [--host 127.0.0.1] [--port N] [--default-scenario NAME]\n");
}

/* Parse the CLI, listen, print "listening <port>" on stdout, run the loop until a signal. */
int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *def = "text", *what = NULL;
    long port = 0;
    struct sockaddr_storage addr;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--host")) {
            host = argv[++i];
        } else if (!strcmp(a, "--port")) {
            char *end;
            errno = 0;
            port = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || port < 0 || port > 65535) {
                fprintf(stderr, "level=error event=bad_port value=\"%s\"\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--default-scenario")) {
            def = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }

    /* One default per family: an r_* name sets the Responses routes' default, any other the
     * chat route's; the other family keeps its own (text, r_text). */
    const scenario_t *chat_def = find_scenario(gw_str(def));
    const r_scenario_t *r_def = find_r_scenario(gw_str(def));
    if (!chat_def && !r_def) {
        fprintf(stderr, "level=error event=unknown_scenario name=\"%s\"\n", def);
        return 2;
    }
    mock_ctx_t *ctx = gw_xcalloc(1, sizeof(*ctx));
    ctx->def = chat_def ? chat_def : find_scenario(GW_STR_LIT("text"));
    ctx->r_def = r_def ? r_def : find_r_scenario(GW_STR_LIT("r_text"));
    assert(ctx->def && ctx->r_def);
    /* A client gone mid-write must surface as EPIPE from uv_write, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    ctx->loop = uv_default_loop();

    llhttp_settings_init(&ctx->settings);
    ctx->settings.on_url = on_url;
    ctx->settings.on_header_field = on_header_field;
    ctx->settings.on_header_value = on_header_value;
    ctx->settings.on_header_value_complete = on_header_value_complete;
    ctx->settings.on_headers_complete = on_headers_complete;
    ctx->settings.on_body = on_body;
    ctx->settings.on_message_complete = on_message_complete;

    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        what = "bad_host";
        goto fail;
    }
    what = "listen_failed";
    if ((rc = uv_tcp_init(ctx->loop, &ctx->listener)) < 0)
        goto fail;
    ctx->listener.data = ctx;
    if ((rc = uv_tcp_bind(&ctx->listener, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&ctx->listener, 511, on_connection)) < 0)
        goto fail;

    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if ((rc = uv_tcp_getsockname(&ctx->listener, (struct sockaddr *)&bound, &blen)) < 0)
        goto fail;
    int bport = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);

    if ((rc = uv_signal_init(ctx->loop, &ctx->sig_term)) < 0 ||
        (rc = uv_signal_init(ctx->loop, &ctx->sig_int)) < 0)
        goto fail;
    ctx->sig_term.data = ctx->sig_int.data = ctx;
    if ((rc = uv_signal_start(&ctx->sig_term, on_signal, SIGTERM)) < 0 ||
        (rc = uv_signal_start(&ctx->sig_int, on_signal, SIGINT)) < 0)
        goto fail;

    printf("listening %d\n", bport);
    fflush(stdout);
    mock_log(ctx, "info", "event=listening host=%s port=%d default_scenario=%s default_r_scenario=%s", host,
             bport, ctx->def->name, ctx->r_def->name);

    uv_run(ctx->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(ctx->loop);
    if (rc < 0)
        mock_log(ctx, "warn", "event=loop_close err=%s", uv_err_name(rc));
    gw_buf_dispose(&ctx->last);
    free(ctx);
    return 0;

fail:
    /* Exiting: the kernel reclaims the socket; the loop is not run again. */
    fprintf(stderr, "level=error event=%s host=%s port=%ld err=%s\n", what, host, port, uv_err_name(rc));
    free(ctx);
    return 1;
}
