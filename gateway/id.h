/* gw_id: identifiers from a CSPRNG (getrandom), buffered so an id costs no syscall. */
#ifndef GW_ID_H
#define GW_ID_H

#include <stddef.h>
#include <stdint.h>

/** Fill out with n random bytes. */
void gw_id_random(void *out, size_t n);
/** prefix + nhex lowercase hex digits + NUL into out (size >= strlen(prefix) + nhex + 1). */
void gw_id_hex(char *out, const char *prefix, size_t nhex);
/** UUIDv7 text (36 chars + NUL) for unix time ms; also returns its 32 hex digits in hex32 (+NUL). */
void gw_id_uuid7(char out[37], char hex32[33], uint64_t unix_ms);

#endif
