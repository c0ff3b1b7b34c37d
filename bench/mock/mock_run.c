/* mock_run: the script engine (mock_run.h). Each SSE event is its own write so that the receiver
 * sees event boundaries; a script pauses while the client is behind on reading. */
#include <stdint.h>

#include "mock_chat_wire.h"
#include "mock_conn.h"
#include "mock_r_wire.h"
#include "mock_run.h"

#define MOCK_LOW_WATER (64u << 10) /* write the next event only below this much queued output */
#define MOCK_SPLIT_MS  5           /* gap between the two halves of a split event */

/* Total time a script spends waiting: a non-streaming answer is delayed by as much. */
static uint64_t script_delay(const mock_step_t *s)
{
    uint64_t ms = 0;
    for (; s->op != OP_END && s->op != OP_CLOSE && s->op != OP_HOLD; s++) {
        if (s->op == OP_DELAY)
            ms += (uint64_t)s->ms;
        else
            ms += (uint64_t)s->ms * (uint64_t)(mock_step_repeat(s) - 1);
    }
    return ms;
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

/* Interpret the script from r->step until it has to wait: on a timer (delays, repeat gaps, the
 * second half of a split event), on the write queue (backpressure: it resumes from
 * mock_run_on_written once less than MOCK_LOW_WATER is queued), on the client (OP_HOLD), or for
 * the end. */
static void run_script(mock_conn_t *c)
{
    mock_run_t *r = mock_conn_run(c);
    while (mock_conn_state(c) == MOCK_CS_STREAM) {
        if (mock_conn_queued(c) >= MOCK_LOW_WATER) {
            r->wait_drain = true;
            return;
        }
        const mock_step_t *s = &r->steps[r->step];
        switch (s->op) {
        case OP_END:
            mock_conn_stream_end(c);
            return;
        case OP_CLOSE:
            mock_conn_stream_abort(c);
            return;
        case OP_HOLD:
            mock_conn_stream_hold(c);
            return;
        case OP_DELAY:
            r->step++;
            mock_conn_timer(c, (uint64_t)s->ms);
            return;
        default:
            break;
        }

        gw_buf_t ev;
        unsigned flags = r->sc ? r->sc->flags : r->rsc->flags;
        gw_buf_init(&ev);
        mock_step_t fan;
        char fan_id[24], fan_args[24];
        if (s->op == OP_TOOL_FAN)
            mock_chat_fan_piece(s, r->rep, &fan, fan_id, fan_args);
        if (r->route == MOCK_ROUTE_CHAT)
            mock_chat_event(&ev, flags, s->op == OP_TOOL_FAN ? &fan : s, r->events++);
        else
            mock_r_event(&ev, r->rsc, r->route, r->steps, r->step, r->events++);
        if ((flags & SF_SPLIT) && ev.len > 1) {
            size_t k = split_point(ev.base, ev.len);
            gw_buf_append(&r->split, ev.base + k, ev.len - k);
            ev.len = k;
        }
        mock_conn_stream_write(c, &ev);
        if (mock_conn_state(c) != MOCK_CS_STREAM)
            return;

        int gap = 0;
        if (++r->rep < mock_step_repeat(s)) {
            gap = s->ms;
        } else {
            r->rep = 0;
            r->step++;
        }
        if (r->split.len) {
            r->gap_after = gap;
            mock_conn_timer(c, MOCK_SPLIT_MS);
            return;
        }
        if (gap) {
            mock_conn_timer(c, (uint64_t)gap);
            return;
        }
    }
}

static void send_completion(mock_conn_t *c)
{
    mock_run_t *r = mock_conn_run(c);
    gw_buf_t body;
    gw_buf_init(&body);
    if (r->route == MOCK_ROUTE_CHAT)
        mock_chat_completion(&body, r->sc);
    else
        mock_r_object(&body, r->rsc, r->route, r->steps);
    mock_conn_reply(c, 200, "application/json", "", gw_buf_str(&body));
    gw_buf_dispose(&body);
}

/* SF_WHOLE: every event of the (delay-free) chat script serialised into one body, answered in
 * one write with Content-Length, the way a buffering upstream or proxy hands a stream over. */
static void send_whole(mock_conn_t *c)
{
    mock_run_t *r = mock_conn_run(c);
    gw_buf_t body, ev;
    gw_buf_init(&body);
    gw_buf_init(&ev);
    for (const mock_step_t *s = r->steps; s->op != OP_END && s->op != OP_CLOSE && s->op != OP_HOLD; s++) {
        if (s->op == OP_DELAY)
            continue;
        for (int i = 0; i < mock_step_repeat(s); i++) {
            gw_buf_reset(&ev);
            mock_chat_event(&ev, r->sc->flags, s, r->events++);
            gw_buf_append(&body, ev.base, ev.len);
        }
    }
    mock_conn_reply(c, 200, "text/event-stream", "Cache-Control: no-cache\r\n", gw_buf_str(&body));
    gw_buf_dispose(&ev);
    gw_buf_dispose(&body);
}

/* Run r->steps: as SSE, or as one JSON object after the script's total delay. */
static void start(mock_conn_t *c, bool stream)
{
    mock_run_t *r = mock_conn_run(c);
    if (stream && r->route == MOCK_ROUTE_CHAT && (r->sc->flags & SF_WHOLE)) {
        r->events = 0;
        send_whole(c);
        return;
    }
    if (stream) {
        mock_conn_stream_begin(c);
        r->step = 0;
        r->rep = 0;
        r->events = 0;
        run_script(c);
        return;
    }
    uint64_t delay = script_delay(r->steps);
    if (delay) {
        mock_conn_wait(c, delay);
        return;
    }
    send_completion(c);
}

void mock_run_chat(mock_conn_t *c, const mock_chat_sc_t *sc, bool stream)
{
    mock_run_t *r = mock_conn_run(c);
    r->route = MOCK_ROUTE_CHAT;
    r->sc = sc;
    r->steps = sc->steps;
    start(c, stream);
}

void mock_run_responses(mock_conn_t *c, const mock_r_sc_t *rs, mock_route_t rt, const mock_step_t *steps,
                        bool stream)
{
    mock_run_t *r = mock_conn_run(c);
    r->route = rt;
    r->rsc = rs;
    r->steps = steps;
    start(c, stream);
}

void mock_run_on_timer(mock_conn_t *c)
{
    mock_run_t *r = mock_conn_run(c);
    if (mock_conn_state(c) == MOCK_CS_WAIT_JSON) {
        send_completion(c);
        return;
    }
    if (r->split.len) {
        gw_buf_t rest = r->split;
        gw_buf_init(&r->split);
        mock_conn_stream_write(c, &rest);
        if (mock_conn_state(c) != MOCK_CS_STREAM)
            return;
        /* Pause after the second half too, so that it is not coalesced with the first half
         * of the next event and every write reaches the client on its own. */
        mock_conn_timer(c, (uint64_t)(r->gap_after > MOCK_SPLIT_MS ? r->gap_after : MOCK_SPLIT_MS));
        r->gap_after = 0;
        return;
    }
    run_script(c);
}

void mock_run_on_written(mock_conn_t *c)
{
    mock_run_t *r = mock_conn_run(c);
    if (r->wait_drain && mock_conn_queued(c) < MOCK_LOW_WATER) {
        r->wait_drain = false;
        run_script(c);
    }
}

void mock_run_reset(mock_run_t *r)
{
    gw_buf_reset(&r->split);
    r->wait_drain = false;
    r->route = MOCK_ROUTE_CHAT;
    r->sc = NULL;
    r->rsc = NULL;
    r->steps = NULL;
    r->step = 0;
    r->rep = 0;
    r->events = 0;
    r->gap_after = 0;
}

void mock_run_dispose(mock_run_t *r)
{
    gw_buf_dispose(&r->split);
}
