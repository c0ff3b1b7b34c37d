/* The API-keys file parser (gateway/keys.c gw_keys_parse): JSON lines, each checked field by
 * field; a parsed table is probed with lookups of the input's own hash and a fixed one.
 * Input: the file's bytes. */
#include "fuzz.h"
#include "gateway/keys.h"
#include "gateway/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    gw_keys_t *k = gw_keys_parse((const char *)data, size, err, sizeof(err));
    if (k) {
        uint8_t sha[32] = {0};
        (void)gw_keys_find(k, sha);
        gw_sha256(data, size, sha);
        const gw_key_entry_t *e = gw_keys_find(k, sha);
        if (e)
            (void)gw_key_allows_endpoint(e, "chat");
        gw_keys_free(k);
    }
    return 0;
}
