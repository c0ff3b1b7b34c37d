/* tb_redact: rewrite logged JSON so that configured paths never reach a table
 * (INFERENCE_TABLES.md §2.2 `redacted`, issue 3). A path is a dot-separated list of object keys;
 * `*` matches any key or any array element: "metadata.ssn", "input.*.content",
 * "custom_inputs.*". Matching values are replaced by the string "[REDACTED]". */
#ifndef TB_REDACT_H
#define TB_REDACT_H

#include <stddef.h>

#include "gateway/buf.h"
#include "gateway/json.h"

#define TB_REDACTED "[REDACTED]"

/** Validate one path (non-empty segments); returns NULL or a reason. */
const char *tb_redact_check(const char *path);
/** Serialise v into out with every value at one of paths[0..n) replaced. Returns the number of
 * values replaced (0: out holds an equivalent re-serialisation; callers keep the original). */
size_t tb_redact_json(const gw_json_t *v, const char *const *paths, size_t n, gw_buf_t *out);

#endif
