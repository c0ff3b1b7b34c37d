/* gw_keys: the API-keys file (JSON lines) parsed into an immutable lookup table.
 *
 * One object per line: {"key_sha256": "<64 hex>", "requester": "alice@example.com",
 * "groups": ["eng"], "expires_at": "2027-01-01T00:00:00Z" | <unix seconds>, "endpoints": ["chat"]}.
 * Only key_sha256 is required. Blank lines and lines whose first non-blank byte is '#' are skipped.
 * Only SHA-256 hashes of keys are ever stored; the secret itself never reaches this module.
 * Lookup cost depends only on the hash of the presented key (an open-addressing slot chosen by
 * the hash's first bytes, then a constant-time compare of all 32 bytes), never on how many of
 * the secret's bytes match a stored one. Pure: no I/O (gateway/auth reads the file). */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_KEYS_MAX         100000
#define GW_KEYS_MAX_GROUPS  64
#define GW_KEYS_MAX_NAME    256

typedef struct {
    uint8_t sha[32];
    const char *requester;     /** never NULL: the file's requester, else "key-" + 12 hex of the hash */
    const char *const *groups; /** n_groups entries */
    size_t n_groups;
    int64_t expires_at;        /** unix seconds, 0 = never */
    const char *const *endpoints; /** endpoints this key may call; NULL (n 0) = every endpoint */
    size_t n_endpoints;
} gw_key_entry_t;

typedef struct gw_keys gw_keys_t;

/** Parse a whole file; NULL with a message naming the line on the first error. */
gw_keys_t *gw_keys_parse(const char *text, size_t n, char *err, size_t errlen);
void gw_keys_free(gw_keys_t *k);
size_t gw_keys_count(const gw_keys_t *k);
/** The entry whose hash is sha, NULL if none (expiry is the caller's business). */
const gw_key_entry_t *gw_keys_find(const gw_keys_t *k, const uint8_t sha[32]);
/** Does the entry allow calling this endpoint (its `endpoints` list, when it has one)? */
bool gw_key_allows_endpoint(const gw_key_entry_t *e, const char *endpoint);
/** A printable identity name: 1..256 bytes, no control characters, no quotes or backslashes. */
bool gw_keys_valid_name(const char *s, size_t n);

#endif
