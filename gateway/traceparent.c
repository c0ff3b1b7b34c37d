#include "gateway/traceparent.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

/* n bytes from 2n lowercase hex digits; -1 on a bad digit. */
static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int gw_tp_parse(gw_str_t s, gw_tp_t *out)
{
    if (!s.base || s.len < GW_TP_HEADER_LEN)
        return -1;
    const char *p = s.base;
    uint8_t version;
    if (unhex(p, &version, 1) < 0 || version == 0xff)
        return -1;
    if (version == 0 && s.len != GW_TP_HEADER_LEN)
        return -1;
    if (s.len > GW_TP_HEADER_LEN && p[GW_TP_HEADER_LEN] != '-')
        return -1;
    if (p[2] != '-' || p[35] != '-' || p[52] != '-')
        return -1;
    gw_tp_t t;
    if (unhex(p + 3, t.trace_id, 16) < 0 || unhex(p + 36, t.span_id, 8) < 0 || unhex(p + 53, &t.flags, 1) < 0)
        return -1;
    if (all_zero(t.trace_id, 16) || all_zero(t.span_id, 8))
        return -1;
    *out = t;
    return 0;
}

static bool lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool key_char(char c)
{
    return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* simple-key, or tenant-id "@" system-id. */
static bool key_valid(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (!at) {
        if (n < 1 || n > 256 || !lcalpha(k[0]))
            return false;
        for (size_t i = 1; i < n; i++)
            if (!key_char(k[i]))
                return false;
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    if (tn < 1 || tn > 241 || sn < 1 || sn > 14 || !(lcalpha(k[0]) || digit(k[0])) || !lcalpha(at[1]))
        return false;
    for (size_t i = 1; i < tn; i++)
        if (!key_char(k[i]))
            return false;
    for (size_t i = 1; i < sn; i++)
        if (!key_char(at[1 + i]))
            return false;
    return true;
}

static bool value_valid(const char *v, size_t n)
{
    if (n < 1 || n > 256 || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
            return false;
    return true;
}

bool gw_tp_state_valid(gw_str_t s)
{
    if (!s.base || s.len > GW_TP_STATE_MAX)
        return false;
    struct {
        const char *k;
        size_t n;
    } keys[32];
    size_t n_keys = 0, i = 0;
    while (i <= s.len) {
        size_t end = i;
        while (end < s.len && s.base[end] != ',')
            end++;
        size_t b = i, e = end; /* one member, OWS trimmed */
        while (b < e && (s.base[b] == ' ' || s.base[b] == '\t'))
            b++;
        while (e > b && (s.base[e - 1] == ' ' || s.base[e - 1] == '\t'))
            e--;
        if (e > b) {
            const char *m = s.base + b, *eq = memchr(m, '=', e - b);
            if (!eq || n_keys == 32)
                return false;
            size_t kn = (size_t)(eq - m);
            if (!key_valid(m, kn) || !value_valid(eq + 1, e - b - kn - 1))
                return false;
            for (size_t x = 0; x < n_keys; x++)
                if (keys[x].n == kn && memcmp(keys[x].k, m, kn) == 0)
                    return false; /* keys are unique */
            keys[n_keys].k = m;
            keys[n_keys++].n = kn;
        }
        i = end + 1;
    }
    return n_keys > 0;
}

void gw_tp_hex(char *out, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void gw_tp_format(char out[GW_TP_HEADER_LEN + 1], const uint8_t trace_id[16], const uint8_t span_id[8],
                  uint8_t flags)
{
    memcpy(out, "00-", 3);
    gw_tp_hex(out + 3, trace_id, 16);
    out[35] = '-';
    gw_tp_hex(out + 36, span_id, 8);
    out[52] = '-';
    gw_tp_hex(out + 53, &flags, 1);
}
