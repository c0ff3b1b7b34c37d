#include "gateway/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Per thread: request work may run on libuv's pool (gateway/offload.h). */
static _Thread_local unsigned char pool[4096];
static _Thread_local size_t pool_left;

void gw_id_random(void *out, size_t n)
{
    unsigned char *o = out;
    while (n) {
        if (!pool_left) {
            size_t got = 0;
            while (got < sizeof(pool)) {
                ssize_t r = getrandom(pool + got, sizeof(pool) - got, 0);
                if (r < 0) {
                    perror("getrandom");
                    abort();
                }
                got += (size_t)r;
            }
            pool_left = sizeof(pool);
        }
        size_t take = n < pool_left ? n : pool_left;
        memcpy(o, pool + sizeof(pool) - pool_left, take);
        /* Never hand out the same bytes twice. */
        memset(pool + sizeof(pool) - pool_left, 0, take);
        pool_left -= take;
        o += take;
        n -= take;
    }
}

static void to_hex(char *out, const unsigned char *b, size_t nhex)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nhex; i++)
        out[i] = hex[(b[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
}

void gw_id_hex(char *out, const char *prefix, size_t nhex)
{
    unsigned char b[64];
    size_t p = strlen(prefix);
    if (nhex > 128)
        nhex = 128;
    gw_id_random(b, (nhex + 1) / 2);
    memcpy(out, prefix, p);
    to_hex(out + p, b, nhex);
    out[p + nhex] = '\0';
}

void gw_id_uuid7(char out[37], char hex32[33], uint64_t unix_ms)
{
    unsigned char b[16];
    gw_id_random(b, sizeof(b));
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0F)); /* version 7 (RFC 9562 §5.7) */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3F)); /* variant 10 */
    to_hex(hex32, b, 32);
    hex32[32] = '\0';
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex32, hex32 + 8, hex32 + 12, hex32 + 16, hex32 + 20);
}
