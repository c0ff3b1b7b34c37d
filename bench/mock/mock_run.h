/* mock_run: the script engine. It interprets a scenario's steps on one connection: as SSE events
 * (waiting on timers, on the client's reading, or on the client itself), or folded into one JSON
 * object after the script's total delay. The serialisers decide the bytes; mock_conn moves them. */
#ifndef MOCK_RUN_H
#define MOCK_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/buf.h"
#include "mock_scenarios.h"

typedef struct mock_conn mock_conn_t;

/* One response's progress through its script. Embedded in its connection (like a libuv handle);
 * only mock_run.c reads or writes the fields. */
typedef struct {
    mock_route_t route;
    const mock_chat_sc_t *sc; /** MOCK_ROUTE_CHAT */
    const mock_r_sc_t *rsc;   /** the Responses routes */
    const mock_step_t *steps; /** the script run: sc->steps or the route's mock_r_route_t.steps */
    size_t step;              /** index into steps */
    int rep;                  /** repetitions of the current step already sent */
    unsigned events;          /** events sent in this response */
    bool wait_drain;          /** stopped on backpressure: resume once the write queue drains */
    gw_buf_t split;           /** owned: second half of a split event, written by the timer */
    int gap_after;            /** ms to wait after the split half has been written */
} mock_run_t;

/* Answer the current request with chat scenario sc (its steps), as SSE or as one object. */
void mock_run_chat(mock_conn_t *c, const mock_chat_sc_t *sc, bool stream);
/* The same for r_* scenario rs on Responses route rt, whose script is steps. */
void mock_run_responses(mock_conn_t *c, const mock_r_sc_t *rs, mock_route_t rt, const mock_step_t *steps,
                        bool stream);

/* Hooks for mock_conn: its timer fired while a script runs or waits (MOCK_CS_STREAM,
 * MOCK_CS_WAIT_JSON), and a write completed while streaming. */
void mock_run_on_timer(mock_conn_t *c);
void mock_run_on_written(mock_conn_t *c);

/* Back to the idle state between requests; dispose when the connection goes. */
void mock_run_reset(mock_run_t *r);
void mock_run_dispose(mock_run_t *r);

#endif
