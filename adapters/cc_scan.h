/* cc_scan: a purpose-built scanner for the common ChatCompletions stream chunk (private to
 * adapters/chat_completions.c and its fuzz target).
 *
 * Most upstream chunks are one small object with a text delta, a finish_reason or a usage block.
 * Building a yajl tree for each costs ~8k instructions; this scanner reads the few fields the
 * adapter uses straight from the bytes, strings decoded only when they hold escapes. It accepts
 * only what it fully understands: strict JSON, no duplicate keys it reads, no tool calls, no
 * error shapes, no \u surrogates. Anything else returns CC_SCAN_OTHER and the caller parses the
 * chunk with yajl as before, so the scanner can be wrong only by being slow.
 * tests/fuzz/fuzz_cc_scan.c checks that the adapter emits the same events with and without it
 * (the adapter reads through the memo below, so the memo is in that check too).
 *
 * Consecutive chunks from vLLM, llama.cpp or SGLang repeat every byte but the delta's text
 * (id, object, created, model, choices). cc_scan_chunk_memo compares a chunk with the previous
 * plain-text one and, when only the content string differs, scans that string alone: ~54k fewer
 * instructions per 20-delta stream (callgrind, bench20 with JSONL: 383k to 329k). */
#ifndef AD_CC_SCAN_H
#define AD_CC_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/arena.h"
#include "gateway/buf.h"

enum { CC_SCAN_OK = 0, CC_SCAN_OTHER = 1 };

/* The fields of one chunk the adapter reads; a gw_str_t with base NULL is absent (or not a
 * string). Strings point into the input, or into the arena when they held escapes. */
typedef struct {
    gw_str_t model;
    bool choice;          /** a choice with index 0 (the one the adapter uses) was present */
    gw_str_t reasoning_content, reasoning, content, refusal, finish_reason;
    bool usage;           /** usage was an object */
    bool has_input, has_output, has_total, has_cached, has_reasoning;
    int64_t input, output, total, cached, reasoning_tokens;
} cc_chunk_t;

/** Scan one chunk's JSON text. CC_SCAN_OK with *out filled, or CC_SCAN_OTHER: use yajl. */
int cc_scan_chunk(gw_arena_t *scratch, const char *p, size_t n, cc_chunk_t *out);

/* The previous plain-text chunk, to read a chunk that differs from it only in its text. */
typedef struct {
    char prev[512];
    size_t len, cs, ce; /** chunk length; content string's offsets, quotes included */
    cc_chunk_t res;
    bool ok;
    unsigned long hits; /** chunks read through the memo (tests, benchmarks) */
} cc_scan_memo_t;

/** cc_scan_chunk, reading only the content string when the chunk matches the memo elsewhere. */
int cc_scan_chunk_memo(cc_scan_memo_t *m, gw_arena_t *scratch, const char *p, size_t n, cc_chunk_t *out);

/** Test hook (fuzz target): when set, the adapter never uses the scanner. */
extern bool ad__cc_scan_off;

#endif
