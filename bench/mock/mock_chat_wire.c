/* mock_chat_wire: chat.completion.chunk events and the folded chat.completion object
 * (envelopes from MOCK_SCENARIOS.md "Streaming responses"). */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "mock_chat_wire.h"
#include "mock_json.h"

#define MOCK_MAX_CALLS 8
#define MOCK_UNKNOWN_TOP                                                                                     \
    "\"system_fingerprint\":\"fp_mock\",\"x_mock_chunk\":{\"nested\":[1,{\"k\":\"v\"}],\"n\":null},"

/* OP_FILL content without the quotes; the fill byte and tail are plain ASCII (asserted). */
static void put_fill(gw_buf_t *b, const mock_step_t *s)
{
    size_t tl = strlen(s->tail);
    assert(s->len >= tl && s->text[0] >= 0x20 && s->text[0] != '"' && s->text[0] != '\\');
    size_t n = s->len - tl;
    memset(gw_buf_reserve(b, n), s->text[0], n);
    b->len += n;
    gw_buf_append(b, s->tail, tl);
}

static void delta_members(gw_buf_t *b, const mock_step_t *s)
{
    switch (s->op) {
    case OP_ROLE:
        gw_buf_append_cstr(b, "\"role\":\"assistant\",\"content\":\"\"");
        break;
    case OP_CONTENT:
        gw_buf_append_cstr(b, "\"content\":");
        mock_json_cstr(b, s->text);
        break;
    case OP_FILL:
        gw_buf_append_cstr(b, "\"content\":\"");
        put_fill(b, s);
        gw_buf_append(b, "\"", 1);
        break;
    case OP_REASONING:
        gw_buf_append_cstr(b, "\"reasoning_content\":");
        mock_json_cstr(b, s->text);
        break;
    case OP_REASONING_FIELD:
        gw_buf_append_cstr(b, "\"reasoning\":");
        mock_json_cstr(b, s->text);
        break;
    case OP_REFUSAL:
        gw_buf_append_cstr(b, "\"refusal\":");
        mock_json_cstr(b, s->text);
        break;
    case OP_TOOL:
        if (s->role)
            gw_buf_append_cstr(b, "\"role\":\"assistant\",\"content\":null,");
        MOCK_APPENDF(b, "\"tool_calls\":[{\"index\":%d", s->idx);
        if (s->id) {
            gw_buf_append_cstr(b, ",\"id\":");
            mock_json_cstr(b, s->id);
            gw_buf_append_cstr(b, ",\"type\":\"function\"");
        }
        gw_buf_append_cstr(b, ",\"function\":{");
        if (s->name) {
            gw_buf_append_cstr(b, "\"name\":");
            mock_json_cstr(b, s->name);
        }
        if (s->text) {
            gw_buf_append_cstr(b, s->name ? ",\"arguments\":" : "\"arguments\":");
            mock_json_cstr(b, s->text);
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

void mock_chat_fan_piece(const mock_step_t *s, int rep, mock_step_t *out, char id[24], char args[24])
{
    int n = s->repeat / 2, j = rep % n;
    int k = (int)(((long long)j * 7) % n); /* a permutation while n is not a multiple of 7 */
    *out = (mock_step_t){.op = OP_TOOL, .idx = k * s->idx};
    if (rep < n) {
        snprintf(id, 24, "call_%d", k);
        out->id = id;
        out->name = s->name;
        out->text = "";
    } else {
        snprintf(args, 24, "{\"k\":%d}", k);
        out->text = args;
    }
}

/* One chat.completion.chunk for a delta-bearing step (OpenAI envelope from MOCK_SCENARIOS.md). */
static void chunk_json(gw_buf_t *b, unsigned fl, const mock_step_t *s)
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
        mock_json_cstr(b, s->finish);
    else
        gw_buf_append_cstr(b, "null");
    gw_buf_append_cstr(b, "}]}");
}

static void usage_members(gw_buf_t *b, const mock_step_t *s)
{
    MOCK_APPENDF(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d", s->prompt,
                 s->completion, s->prompt + s->completion);
    if (s->reasoning >= 0)
        MOCK_APPENDF(b, ",\"completion_tokens_details\":{\"reasoning_tokens\":%d}", s->reasoning);
    gw_buf_append(b, "}", 1);
}

static void usage_json(gw_buf_t *b, unsigned fl, const mock_step_t *s)
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
void mock_chat_event(gw_buf_t *ev, unsigned fl, const mock_step_t *s, unsigned nth)
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
            MOCK_APPENDF(ev, ": OPENROUTER PROCESSING%s%s", eol, eol);
        else
            MOCK_APPENDF(ev, ": keepalive%s", eol);
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
            MOCK_APPENDF(&sep, "%s%s", eol, data);
            buf_insert(ev, start + comma + 1, sep.base, sep.len);
            gw_buf_dispose(&sep);
        }
    }
    MOCK_APPENDF(ev, "%s%s", eol, eol);
}

/* The non-streaming answer: the script's steps folded into one chat.completion object. */
void mock_chat_completion(gw_buf_t *out, const mock_chat_sc_t *sc)
{
    struct {
        const char *id, *name;
        gw_buf_t args;
    } calls[MOCK_MAX_CALLS];
    gw_buf_t content, reasoning, refusal;
    bool has_content = false, has_reasoning = false, has_refusal = false;
    const char *reasoning_key = "reasoning_content", *finish = NULL;
    const mock_step_t *usage = NULL;
    int ncalls = 0;

    memset(calls, 0, sizeof(calls));
    gw_buf_init(&content);
    gw_buf_init(&reasoning);
    gw_buf_init(&refusal);
    for (const mock_step_t *s = sc->steps; s->op != OP_END && s->op != OP_CLOSE && s->op != OP_HOLD; s++) {
        for (int r = 0; r < mock_step_repeat(s); r++) {
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
        mock_json_str(out, gw_buf_str(&content));
    else
        gw_buf_append_cstr(out, "null");
    if (has_reasoning) {
        MOCK_APPENDF(out, ",\"%s\":", reasoning_key);
        mock_json_str(out, gw_buf_str(&reasoning));
    }
    if (has_refusal) {
        gw_buf_append_cstr(out, ",\"refusal\":");
        mock_json_str(out, gw_buf_str(&refusal));
    }
    if (ncalls) {
        gw_buf_append_cstr(out, ",\"tool_calls\":[");
        for (int i = 0; i < ncalls; i++) {
            gw_buf_append_cstr(out, i ? ",{\"id\":" : "{\"id\":");
            mock_json_cstr(out, calls[i].id ? calls[i].id : "");
            gw_buf_append_cstr(out, ",\"type\":\"function\",\"function\":{\"name\":");
            mock_json_cstr(out, calls[i].name ? calls[i].name : "");
            gw_buf_append_cstr(out, ",\"arguments\":");
            mock_json_str(out, gw_buf_str(&calls[i].args));
            gw_buf_append_cstr(out, "}}");
        }
        gw_buf_append(out, "]", 1);
    }
    if (sc->flags & SF_UNKNOWN)
        gw_buf_append_cstr(out, ",\"annotations\":[],\"x_mock_message\":42");
    gw_buf_append_cstr(out, "},\"logprobs\":null,\"finish_reason\":");
    if (finish)
        mock_json_cstr(out, finish);
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
