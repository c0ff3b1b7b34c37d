/* gw_log: one key=value line per event on stderr. Never bodies, never secrets. */
#ifndef GW_LOG_H
#define GW_LOG_H

typedef enum { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR } gw_log_level_t;

void gw_log_set_level(gw_log_level_t lvl);
int gw_log_level_parse(const char *s, gw_log_level_t *out);
int gw_log_enabled(gw_log_level_t lvl);
/** rid may be NULL (not request-scoped). fmt is the key=value tail, e.g. "event=x key=%s". */
void gw_log(gw_log_level_t lvl, const char *rid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
