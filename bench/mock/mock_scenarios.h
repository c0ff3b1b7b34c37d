/* mock_scenarios: the scenario data model and the registry of scenario families.
 *
 * A scenario is data: a static list of steps (emit one SSE event, wait, hold, close abruptly, end
 * the chunked body) that one small engine (mock_run.c) interprets, and from which the serialisers
 * (mock_chat_wire.c, mock_r_wire.c) also fold the non-streaming answer. Scenarios come in families,
 * one file each with its own table (mock_chat.c, mock_responses.c, ...), all listed once in
 * mock_scenarios.c. Contract: bench/MOCK_SCENARIOS.md. */
#ifndef MOCK_SCENARIOS_H
#define MOCK_SCENARIOS_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/buf.h"

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
    OP_TOOL_FAN,        /* repeat/2 parallel calls, interleaved: see mock_chat_fan_piece() */
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
} mock_op_t;

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
    mock_op_t op;
    int idx;    /** OP_TOOL: tool_calls[].index; item-scoped OP_R_*: output_index */
    int repeat; /** send this many times; 0 = once */
    int ms;     /** OP_DELAY: wait; other ops: gap between repeats */
    int prompt; /** OP_USAGE, OP_R_COMPLETED token counts */
    int completion;
    int reasoning; /** completion_tokens_details.reasoning_tokens; < 0 = no details */
    bool role;     /** OP_TOOL: the piece also carries role:"assistant", content:null */
} mock_step_t;

enum {
    SF_CRLF = 1u << 0,        /* every line ends with \r\n */
    SF_NOSPACE = 1u << 1,     /* "data:" not followed by a space */
    SF_COMMENTS = 1u << 2,    /* SSE comment lines around events */
    SF_MULTILINE = 1u << 3,   /* JSON payload split over two data: lines */
    SF_SPLIT = 1u << 4,       /* each event in two writes, split inside a multi-byte character */
    SF_UNKNOWN = 1u << 5,     /* unknown keys at chunk, choice and delta level */
    SF_STREAM_ONLY = 1u << 6, /* failure scenario: always SSE, "stream" is not consulted */
    SF_JSON_ONLY = 1u << 7,   /* always one chat.completion object */
    /* Responses event content normally follows the route: full events on /responses, sparse
     * (MLflow helper style) on /invocations. These flip it for scenarios whose table cell says
     * "same as the other column"; the framing (event: lines, [DONE]) still follows the route. */
    SF_R_SPARSE = 1u << 8, /* sparse events on /responses too */
    SF_R_FULL = 1u << 9,   /* full events on /invocations too */
    /* The whole SSE stream in one write with Content-Length (no chunking, no per-event writes):
     * the other upstream shape bench/run.sh measures. Scripts without delays only. */
    SF_WHOLE = 1u << 10,
};

static inline int mock_step_repeat(const mock_step_t *s)
{
    return s->repeat > 0 ? s->repeat : 1;
}

/* The three scenario routes (MOCK_SCENARIOS.md "Routes"). */
typedef enum {
    MOCK_ROUTE_CHAT,        /* POST .../chat/completions */
    MOCK_ROUTE_RESPONSES,   /* POST .../responses: OpenAI flavour */
    MOCK_ROUTE_INVOCATIONS, /* POST .../invocations: MLflow flavour */
} mock_route_t;

/* A scenario of the chat route (POST .../chat/completions). */
typedef struct {
    const char *name;
    const mock_step_t *steps; /** NULL: a plain HTTP answer made of the fields below */
    unsigned flags;           /** SF_* */
    int status;
    const char *ctype, *headers, *body; /** headers: extra CRLF-terminated header lines */
    /** Turn dispatch, for agents that loop on tool results (Codex): the scenario answering turn n
     * is turns[n], n = the `"role":"tool"` messages in the request; the last entry answers every
     * later turn. NULL-terminated; NULL = an ordinary scenario. */
    const char *const *turns;
    /** Byte strings the request body must contain (NULL-terminated), else 400 naming the first
     * one missing: a translation that lost a tool fails at once instead of looping. */
    const char *const *needs;
} mock_chat_sc_t;

typedef enum {
    RI_MESSAGE,   /* assistant message with one output_text part */
    RI_CALL,      /* function_call */
    RI_REASONING, /* reasoning with one summary_text part */
} mock_r_kind_t;

/* One output item; its content (text, arguments, summary) comes from the script's steps. */
typedef struct {
    mock_r_kind_t kind;
    const char *id;
    const char *call_id; /** RI_CALL */
    const char *name;    /** RI_CALL */
} mock_r_item_t;

/* What one Responses route answers for a scenario. */
typedef struct {
    const mock_step_t *steps; /** SSE script; NULL: the plain answer below, streaming or not */
    int status;               /** with body: the plain answer (with steps: only when not streaming) */
    const char *body;         /** application/json body of the plain answer; NULL: fold the script */
} mock_r_route_t;

/* A scenario of the Responses routes: one script per route over one item table. */
typedef struct {
    const char *name;
    const mock_r_item_t *items; /** indexed by output_index */
    size_t nitems;
    unsigned flags;        /** SF_SPLIT, SF_R_* */
    mock_r_route_t openai; /** POST .../responses */
    mock_r_route_t mlflow; /** POST .../invocations */
} mock_r_sc_t;

/* One file's table: either chat or Responses scenarios. */
typedef struct {
    const char *name; /** for diagnostics */
    const mock_chat_sc_t *chat;
    const mock_r_sc_t *resp;
    size_t n;
} mock_family_t;

#define MOCK_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Lookup by name across the registered families (mock_scenarios.c); NULL when unknown. Chat and
 * Responses names are separate spaces: each route looks in its own. */
const mock_chat_sc_t *mock_sc_find_chat(gw_str_t name);
const mock_r_sc_t *mock_sc_find_r(gw_str_t name);
/* A dispatching scenario (turns != NULL): the name of the scenario for this request body. */
const char *mock_sc_turn(const mock_chat_sc_t *sc, gw_str_t body);
/* The first of sc->needs that body lacks, or NULL. */
const char *mock_sc_missing(const mock_chat_sc_t *sc, gw_str_t body);
/* The first name registered twice (within or across families), or NULL: checked at startup. */
const char *mock_sc_duplicate(void);

/* Scripts are data tables, laid out by hand for reading. */
/* clang-format off */
/* A family file ends with one of these: const mock_family_t mock_<x>_family = MOCK_*_FAMILY(...). */
#define MOCK_CHAT_FAMILY(nm, table) {.name = (nm), .chat = (table), .n = MOCK_COUNT(table)}
#define MOCK_R_FAMILY(nm, table)    {.name = (nm), .resp = (table), .n = MOCK_COUNT(table)}

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
#define S_CALL_FAN(n, stride, fn) {.op = OP_TOOL_FAN, .repeat = 2 * (n), .idx = (stride), .name = (fn)}
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

/* Chat scenario table rows: a script with SF_* flags, or a plain HTTP answer. */
#define SC(n, s, f)               {.name = (n), .steps = (s), .flags = (f)}
#define SC_HTTP(n, st, ct, hd, bd)                                                                         \
    {.name = (n), .status = (st), .ctype = (ct), .headers = (hd), .body = (bd)}
/* A scenario chosen per turn from a NULL-terminated list of names; one with required strings. */
#define SC_TURNS(n, list)         {.name = (n), .turns = (list)}
#define SC_NEEDS(n, s, f, nd)     {.name = (n), .steps = (s), .flags = (f), .needs = (nd)}

/* The chat.completion.chunk envelope (MOCK_SCENARIOS.md "Streaming responses"). */
#define MOCK_CHUNK_ID  "\"id\":\"chatcmpl-mock\""
#define MOCK_CHUNK_HEAD                                                                                      \
    "{" MOCK_CHUNK_ID ",\"object\":\"chat.completion.chunk\",\"created\":1741290958,"                        \
    "\"model\":\"mock-model\","

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

/* Responses scenario table rows: RSC(name, items, flags, /responses, /invocations), each route an
 * RR_* list of mock_r_route_t fields. */
#define RSC(n, it, f, oa, ml)     {.name = (n), .items = (it), .nitems = MOCK_COUNT(it),                   \
                                   .flags = (f), .openai = {oa}, .mlflow = {ml}}
#define RR(s)                     .steps = (s)
/* The script when streaming; a plain answer for stream:false. */
#define RR_JSON(s, st, bd)        .steps = (s), .status = (st), .body = (bd)
#define RR_HTTP(st, bd)           .status = (st), .body = (bd)
/* clang-format on */

#endif
