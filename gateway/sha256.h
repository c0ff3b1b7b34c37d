/* gw_sha256: SHA-256 (FIPS 180-4), for API-key hashes (gateway/keys). Written here because the
 * project has no crypto dependency and needs only this one function. */
#ifndef GW_SHA256_H
#define GW_SHA256_H

#include <stddef.h>
#include <stdint.h>

void gw_sha256(const void *data, size_t n, uint8_t out[32]);
/** 64 lowercase hex digits + NUL. */
void gw_sha256_hex(const uint8_t h[32], char out[65]);
/** Compare n bytes in time that depends only on n (no early exit). */
int gw_ct_memcmp(const void *a, const void *b, size_t n);

#endif
