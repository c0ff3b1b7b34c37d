/* gw_tp: W3C Trace Context (https://www.w3.org/TR/trace-context/) as agate reads it from a client
 * and writes it to an upstream. Pure functions over bytes, no allocation: the parser reads outside
 * input (fuzzed by tests/fuzz/fuzz_traceparent.c).
 *
 * Strictness, where the spec leaves a choice: only lowercase hex; version "ff" and all-zero ids are
 * invalid; version 00 is exactly 55 bytes; a later version may be longer only if byte 55 is '-'
 * (its extra fields are ignored, as the spec asks). A tracestate that breaks the list grammar or
 * its limits (512 bytes, 32 members, keys and values as the spec defines) is dropped, while the
 * traceparent it came with is kept. */
#ifndef GW_TRACEPARENT_H
#define GW_TRACEPARENT_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/buf.h"

#define GW_TP_SAMPLED     0x01
#define GW_TP_HEADER_LEN  55  /** "00-" 32 hex "-" 16 hex "-" 2 hex */
#define GW_TP_STATE_MAX   512

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;
} gw_tp_t;

/** The trace context of one call (a plain value kept in the call): the trace it belongs to, the
 * client's span (has_parent) and agate's server span. on = tracing is configured for this call. */
typedef struct {
    bool on, has_parent;
    uint8_t flags;            /** GW_TP_SAMPLED: spans are recorded and exported */
    uint8_t trace_id[16];
    uint8_t parent_id[8];     /** the client's span when has_parent */
    uint8_t span_id[8];       /** agate's server span */
    gw_str_t tracestate;      /** the client's valid tracestate (a view into its request), else empty */
} gw_tp_ctx_t;

/** 0 and *out filled when s is a valid traceparent value, -1 otherwise. */
int gw_tp_parse(gw_str_t s, gw_tp_t *out);
/** A tracestate value agate may continue. */
bool gw_tp_state_valid(gw_str_t s);
/** "00-<trace>-<span>-<flags>" + NUL. */
void gw_tp_format(char out[GW_TP_HEADER_LEN + 1], const uint8_t trace_id[16], const uint8_t span_id[8],
                  uint8_t flags);
/** Lowercase hex of n bytes + NUL (out holds 2n + 1). */
void gw_tp_hex(char *out, const uint8_t *bytes, size_t n);

#endif
