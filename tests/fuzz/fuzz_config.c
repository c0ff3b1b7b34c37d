/* Config parser and validator (gateway/config.c gw_config_parse, the in-memory entry point that
 * gw_config_load uses after reading the file). Input: the config JSON. */
#include "fuzz.h"
#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    gw_config_t *c = gw_config_parse((const char *)data, size, err, sizeof(err));
    if (c)
        gw_config_free(c);
    return 0;
}
