/* mock_routes: what a complete request gets (MOCK_SCENARIOS.md "Routes", "Scenario selection"):
 * the scenario routes pick a scenario and hand it to mock_run; /health, /stats and
 * /last-request answer from here. Owns the request counter and the last scenario request body. */
#ifndef MOCK_ROUTES_H
#define MOCK_ROUTES_H

#include "mock_conn.h"
#include "mock_scenarios.h"

typedef struct mock_routes mock_routes_t;

/* def: the chat route's default scenario, r_def: the Responses routes' one (both required). */
mock_routes_t *mock_routes_new(const mock_chat_sc_t *def, const mock_r_sc_t *r_def);
void mock_routes_free(mock_routes_t *rt);
/* Answer c's current request (complete, parser paused). */
void mock_routes_serve(mock_routes_t *rt, mock_conn_t *c);

#endif
