/* Private to gateway/config*.c: the validation context and the typed getters every config parser
 * uses (config.c for the core keys; config_auth.c, config_limits.c for their blocks). Each getter
 * names the key by its path on failure; the first failure wins and later calls are no-ops. */
#ifndef GW_CONFIG_INT_H
#define GW_CONFIG_INT_H

#include "gateway/config.h"
#include "gateway/json.h"

typedef struct {
    gw_arena_t *a; /** the config's arena: everything parsed lives there */
    char *err;
    size_t errlen;
    bool failed;
} gw_cfg_v_t;

void gw__cfg_fail(gw_cfg_v_t *v, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *gw__cfg_join(gw_cfg_v_t *v, const char *path, const char *key);
const char *gw__cfg_index(gw_cfg_v_t *v, const char *path, size_t i);
/** Reject keys that are not in the NULL-terminated allowed list, naming the first unknown one. */
void gw__cfg_check_keys(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *const *allowed);
const char *gw__cfg_string(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, bool required,
                           const char *def);
double gw__cfg_number(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, double def,
                      double min, double max, bool *present);
int gw__cfg_int(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, int def, int min, int max);
size_t gw__cfg_size(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, double def,
                    double min, double max);
bool gw__cfg_bool(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, bool def);
/** The member if it has type t (object or array), else NULL (and a failure if present or required). */
const gw_json_t *gw__cfg_typed(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key,
                               gw_json_type_t t, bool required);
/** One of a NULL-terminated list of words; its index, def when absent. */
int gw__cfg_enum(gw_cfg_v_t *v, const gw_json_t *o, const char *path, const char *key, const char *const *words,
                 int def, const char *msg);

/* Block parsers with a one-line hook in config.c. */
/** Endpoint keys `allow` (config_auth.c) and `rate_limits` (config_limits.c). */
void gw__cfg_parse_access(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e);
void gw__cfg_parse_rate_limits(gw_cfg_v_t *v, const gw_json_t *o, const char *path, gw_endpoint_cfg_t *e);
/** Top-level `auth` (config_auth.c), then `rate_limits_store` and the test-only period (config_limits.c). */
void gw__cfg_parse_auth(gw_cfg_v_t *v, const gw_json_t *root, gw_config_t *c);
void gw__cfg_parse_rl_store(gw_cfg_v_t *v, const gw_json_t *root, gw_config_t *c);
/** A string array of identity names (gw_keys_valid_name) at obj[key]; NULL list when absent. */
const char **gw__cfg_names(gw_cfg_v_t *v, const gw_json_t *obj, const char *path, const char *key, size_t max,
                           size_t *n);

#endif
