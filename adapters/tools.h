/* ad_tools: the whole Responses tool surface on a ChatCompletions model (PROTOCOL.md §2.2, issue 10).
 *
 * A ChatCompletions model only knows functions. The request's tools are flattened into one table:
 *   function            → the same function
 *   custom (freeform)   → a function whose parameters are {"input": string}; the grammar or text
 *                         format goes into the description
 *   namespace           → its inner function/custom tools, each under an upstream name (below)
 *   local_shell         → a function `local_shell` taking the exec action's fields
 *   hosted tools        → kept in the table as AD_TOOL_HOSTED, never sent upstream
 *
 * Upstream names must match ^[a-zA-Z0-9_-]{1,64}$. A namespaced tool keeps its inner name when no
 * other tool of the request has that name; otherwise it is sent as the mangled name
 * `<namespace>__<name>`, every byte outside [a-zA-Z0-9_-] replaced by `_`, and when that is longer
 * than 64 bytes its first 55 bytes + `_` + 8 hex digits of FNV-1a-32 over "<namespace>\0<name>".
 * Calls map back through the table: the client sees the inner name and its namespace.
 *
 * The table lives in the request arena and is built once, when the request is parsed. */
#ifndef AD_TOOLS_H
#define AD_TOOLS_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/arena.h"
#include "gateway/buf.h"
#include "gateway/json.h"

typedef enum { AD_TOOL_FUNCTION = 0, AD_TOOL_CUSTOM, AD_TOOL_LOCAL_SHELL, AD_TOOL_HOSTED } ad_tool_kind_t;

typedef struct {
    ad_tool_kind_t kind;
    gw_str_t type;          /** the Responses tool type as sent (`web_search`, `custom`, ...) */
    gw_str_t name;          /** client name; inner name for namespaced tools; the type for hosted ones */
    gw_str_t ns;            /** namespace, base NULL when none */
    gw_str_t upstream;      /** the function name sent upstream (hosted: empty) */
    const gw_json_t *def;   /** the tool object (inner object for namespaced tools) */
    const gw_json_t *nsdef; /** the namespace object, or NULL */
} ad_tool_t;

typedef struct ad_tools {
    ad_tool_t *v;
    size_t n;
    size_t n_upstream; /** tools that are sent upstream (all but hosted) */
} ad_tools_t;

/** Hosted (server-side) tool types a ChatCompletions model cannot run. `tool_search` is one
 * whatever its `execution` (see README: Codex keeps its deferred tools to itself). */
bool ad_tools_is_hosted_type(gw_str_t type);
/** Input item types produced by hosted tools (`web_search_call`, `mcp_call`, ...): dropped. */
bool ad_tools_is_hosted_item(gw_str_t type);

/** Build the table from a validated `tools` array (NULL → empty table). Never fails. */
void ad_tools_build(gw_arena_t *a, const gw_json_t *tools, ad_tools_t *out);

/** Mangled upstream name for a namespaced tool (see the header comment). */
gw_str_t ad_tools_mangle(gw_arena_t *a, gw_str_t ns, gw_str_t name);

/** Entry whose upstream name is `upstream`, or NULL. */
const ad_tool_t *ad_tools_by_upstream(const ad_tools_t *t, gw_str_t upstream);
/** Entry for a client (namespace, name) pair; ns base NULL = top level. NULL when absent. */
const ad_tool_t *ad_tools_find(const ad_tools_t *t, gw_str_t ns, gw_str_t name);
/** Upstream name for a call item of history: the table's, else the name (mangled if namespaced). */
gw_str_t ad_tools_upstream_name(gw_arena_t *a, const ad_tools_t *t, gw_str_t ns, gw_str_t name);

/** Write `[...]`: the ChatCompletions `tools` array for every non-hosted entry. */
void ad_tools_put_upstream(gw_jgen_t *j, const ad_tools_t *t, gw_buf_t *tmp);

/* ---- incremental decoding of a custom tool's `input` ----
 * The model streams the arguments JSON `{"input": "..."}` in fragments. The decoder yields the
 * decoded text of the `input` string as it arrives: escapes, surrogate pairs and UTF-8 sequences
 * split between fragments are held until complete, so every piece it yields is whole UTF-8.
 * Arguments that do not start like `{"input":"` are handled without guessing: text whose first
 * byte is not `{` is the input itself (streamed raw); an object of another shape is held and
 * decided at the end (its string `input` if it has one, else the raw arguments text). Either way
 * the pieces yielded concatenate to the final input. */
typedef struct {
    int mode;       /** internal state */
    size_t matched; /** bytes of the `{"input":"` prefix matched */
    gw_buf_t raw;   /** all argument bytes (for the fallbacks) */
    char esc[6];    /** an escape sequence not complete yet (`\` + up to `uXXXX`) */
    size_t n_esc;
    char u8[4]; /** the start of a UTF-8 sequence cut by the fragment's end */
    size_t n_u8;
    uint32_t high; /** a decoded high surrogate waiting for its low half, 0 = none */
} ad_input_dec_t;

void ad_input_dec_init(ad_input_dec_t *d);
void ad_input_dec_dispose(ad_input_dec_t *d);
/** Feed a fragment; appends the decoded text that became available to out. */
void ad_input_dec_feed(ad_input_dec_t *d, gw_str_t frag, gw_buf_t *out);
/** Arguments ended: appends whatever is still held (lone halves and cut sequences → U+FFFD). */
void ad_input_dec_finish(ad_input_dec_t *d, gw_buf_t *out);

#endif
