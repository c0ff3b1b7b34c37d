#include "gateway/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static gw_log_level_t min_level = GW_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(gw_log_level_t lvl)
{
    min_level = lvl;
}

int gw_log_level_parse(const char *s, gw_log_level_t *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (gw_log_level_t)i;
            return 0;
        }
    return -1;
}

int gw_log_enabled(gw_log_level_t lvl)
{
    return lvl >= min_level;
}

/* Request-scoped warnings and errors are capped per second so a failing upstream under load
 * cannot flood stderr (STYLE.md §4); what was held back is counted in the next line. */
#define PER_REQUEST_LINES_PER_SEC 50

static bool rate_limited(gw_log_level_t lvl, const char *rid, unsigned long *suppressed_out)
{
    static time_t window;
    static unsigned count;
    static unsigned long suppressed;
    if (!rid || lvl < GW_LOG_WARN)
        return false;
    time_t now = time(NULL);
    if (now != window) {
        window = now;
        count = 0;
    }
    if (++count > PER_REQUEST_LINES_PER_SEC) {
        suppressed++;
        return true;
    }
    *suppressed_out = suppressed;
    suppressed = 0;
    return false;
}

void gw_log(gw_log_level_t lvl, const char *rid, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    unsigned long held = 0;
    if (rate_limited(lvl, rid, &held))
        return;
    if (held)
        fprintf(stderr, "level=warn event=log_suppressed lines=%lu\n", held);
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     names[lvl]);
    if (rid && n > 0 && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, " rid=%s", rid);
    if (n > 0 && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
