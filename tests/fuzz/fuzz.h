/* Shared by the libFuzzer targets (tests/fuzz/README.md). */
#ifndef TEST_FUZZ_H
#define TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Split sizes from a control byte: 0 feeds everything at once, else chunks of 1..255 bytes, so
 * every target also sees its input cut at arbitrary points (as the network cuts it). */
static inline size_t test_fuzz_step(uint8_t ctl, size_t size)
{
    return ctl ? ctl : (size ? size : 1);
}

#endif
