/* gw_hscan: byte-level checks on a client's HTTP/1.1 request, before llhttp reads the bytes.
 *
 * Debian's llhttp 8.1 is lenient where a proxy must not be (STYLE.md §6): it accepts a bare CR as a
 * line end, obs-fold lines, CTLs in the header block, any two bytes in place of the CRLF after
 * chunk data, and trailer lines that break the header rules. These checks run on the raw bytes
 * first; they hold no sockets and no allocations, so they are unit-tested and fuzzed on their own.
 * Both scanners are incremental: feed them the bytes as they arrive, in any split. */
#ifndef GW_HTTP_SCAN_H
#define GW_HTTP_SCAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/buf.h"
#include "gateway/error.h"

/** RFC 9110 §5.6.2 token character (field names). */
bool gw_hscan_is_tchar(unsigned char ch);
/** Non-empty and made of token characters only. */
bool gw_hscan_is_token(gw_str_t s);
/** A Transfer-Encoding value that is exactly "chunked", optional whitespace around it. */
bool gw_hscan_is_plain_chunked(gw_str_t v);

/** Header-block scan state; zeroed at the start of each request's header block. */
typedef struct {
    uint32_t last4; /** last bytes seen, for CRLFCRLF detection */
} gw_hscan_head_t;

/** Scan header-block bytes: -1 on a bare CR, an obs-fold line or a CTL/NUL byte; else how many
 * bytes of data belong to the header block (len when its end is not in data yet). */
ssize_t gw_hscan_head(gw_hscan_head_t *h, const char *data, size_t len);

typedef enum {
    GW_HSCAN_CK_OFF = 0,
    GW_HSCAN_CK_SIZE,    /* chunk-size digits */
    GW_HSCAN_CK_EXT,     /* after the digits: BWS, chunk extensions, up to CR */
    GW_HSCAN_CK_SIZE_LF, /* CR seen at the end of the size line */
    GW_HSCAN_CK_DATA,    /* chunk data, left bytes to go */
    GW_HSCAN_CK_DATA_CR, /* the CRLF after chunk data */
    GW_HSCAN_CK_DATA_LF,
    GW_HSCAN_CK_TR_START, /* start of a trailer line, or the final CRLF */
    GW_HSCAN_CK_TR_NAME,
    GW_HSCAN_CK_TR_VALUE,
    GW_HSCAN_CK_TR_LF,  /* CR seen at the end of a trailer line */
    GW_HSCAN_CK_END_LF, /* CR of the final empty line seen */
} gw_hscan_ck_state_t;

/** Chunked-body check state; zeroed (GW_HSCAN_CK_OFF) when the body is not chunked or ended. */
typedef struct {
    gw_hscan_ck_state_t st;
    bool digit;                 /** a size digit seen on this size line */
    uint64_t size, left, total; /** size being read, data left in the chunk, sum of sizes */
} gw_hscan_chunked_t;

/** Start checking a chunked body (after a header block that declares one). */
void gw_hscan_chunked_start(gw_hscan_chunked_t *ck);
static inline bool gw_hscan_chunked_active(const gw_hscan_chunked_t *ck)
{
    return ck->st != GW_HSCAN_CK_OFF;
}
/** Check chunked-body bytes (RFC 9112 §7.1). Returns GW_ERR_NONE, GW_ERR_BAD_HTTP, or
 * GW_ERR_TOO_LARGE as soon as a chunk size takes the body past max_body. ck is off once the
 * message's last byte was seen; bytes after it are the next request's. */
gw_err_kind_t gw_hscan_chunked(gw_hscan_chunked_t *ck, uint64_t max_body, const char *data, size_t len);

#endif
