/* gw_call: one client request from routing to its table row. The call object owns the request's
 * life and runs its phases in a fixed order (see run_phases in call.c):
 *   route -> admit (identity) -> resolve -> admit (access, rate limits) -> dispatch -> render -> finish
 * route answers admin routes (gateway/admin); admit decides who calls and, once resolve has
 * parsed the body and picked the endpoint (gateway/resolve), whether they may call it now
 * (gateway/admit); dispatch runs the upstream attempts
 * (gateway/dispatch); render is gateway/stream feeding the client; finish hands one summary to
 * every observer registered on the context (tables/row, gateway/admin's counters, ...). */
#ifndef GW_CALL_H
#define GW_CALL_H

#include "gateway/ctx.h"
#include "gateway/server.h"

typedef struct gw_call gw_call_t;

/** A request arrived (gw_req_handler_cb shape, ud = ctx). */
void gw_call_start(gw_req_t *r, void *ctx);
/** End of a curl batch: one client write per call for everything its upstream produced. */
void gw_call_flush_rendered(gw_ctx_t *ctx);

/** Shutdown safety net, after the server is gone: end every call still alive now (transfers
 * cut, timers closed). Observers still see each call; main closes the sink only after the last
 * call, so with a normal drain nothing is alive here. */
void gw_call_abort_all(gw_ctx_t *ctx);

#endif
