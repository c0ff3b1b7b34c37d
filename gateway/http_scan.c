/* gw_hscan: the pre-parse byte checks of a request (see http_scan.h). */
#include "gateway/http_scan.h"

#include <string.h>

/* RFC 9110 §5.6.2 token characters (field names). */
bool gw_hscan_is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

bool gw_hscan_is_token(gw_str_t s)
{
    if (!s.len)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!gw_hscan_is_tchar((unsigned char)s.base[i]))
            return false;
    return true;
}

/* Transfer-Encoding value, with optional whitespace around it, is exactly "chunked". */
bool gw_hscan_is_plain_chunked(gw_str_t v)
{
    while (v.len && (v.base[0] == ' ' || v.base[0] == '\t'))
        v.base++, v.len--;
    while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    return gw_str_ieq(v, "chunked");
}

/* Reject bytes llhttp 8.1 would accept leniently (STYLE.md §6): bare CR, obs-fold, CTLs.
 * Scans the header block only; returns -1 on a bad byte, else how many bytes of data belong to
 * the header block (len when its end is not in data yet). Tracks the block end across reads. */
ssize_t gw_hscan_head(gw_hscan_head_t *h, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)data[i];
        unsigned char prev = (unsigned char)(h->last4 & 0xFF);
        if (prev == '\r' && ch != '\n')
            return -1;
        if (prev == '\n' && (ch == ' ' || ch == '\t') && h->last4 != 0)
            return -1;
        if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7F)
            return -1;
        h->last4 = (h->last4 << 8) | ch;
        if (h->last4 == 0x0D0A0D0A)
            return (ssize_t)(i + 1);
    }
    return (ssize_t)len;
}

void gw_hscan_chunked_start(gw_hscan_chunked_t *ck)
{
    ck->st = GW_HSCAN_CK_SIZE;
    ck->digit = false;
    ck->size = ck->total = 0;
}

/* Chunked framing (RFC 9112 §7.1), checked on the raw bytes before llhttp parses them, because
 * llhttp 8.1 accepts any two bytes in place of the CRLF after chunk data (a request smuggled in
 * the "data" would run) and does not hold trailer lines to the header rules (obs-fold, bare CR,
 * CTLs, names). Also refuses a chunk that takes the body past the limit as soon as its size is
 * read (413 at once, a 2^63 size included), instead of waiting for the data. Returns 0, or
 * GW_ERR_BAD_HTTP / GW_ERR_TOO_LARGE; ck->st is GW_HSCAN_CK_OFF once the message's last byte was
 * seen (bytes after it are the next request's). */
gw_err_kind_t gw_hscan_chunked(gw_hscan_chunked_t *ck, uint64_t max_body, const char *data, size_t len)
{
    for (size_t i = 0; i < len && ck->st != GW_HSCAN_CK_OFF; i++) {
        unsigned char ch = (unsigned char)data[i];
        switch (ck->st) {
        case GW_HSCAN_CK_SIZE: {
            int d = ch >= '0' && ch <= '9' ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                               : -1;
            if (d >= 0) {
                ck->digit = true;
                ck->size = ck->size * 16 + (uint64_t)d;
                if (ck->size > max_body - ck->total)
                    return GW_ERR_TOO_LARGE;
                break;
            }
            if (!ck->digit)
                return GW_ERR_BAD_HTTP;
            if (ch == '\r')
                ck->st = GW_HSCAN_CK_SIZE_LF;
            else if (ch == ';' || ch == ' ' || ch == '\t')
                ck->st = GW_HSCAN_CK_EXT;
            else
                return GW_ERR_BAD_HTTP;
            break;
        }
        case GW_HSCAN_CK_EXT:
            if (ch == '\r')
                ck->st = GW_HSCAN_CK_SIZE_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7F)
                return GW_ERR_BAD_HTTP;
            break;
        case GW_HSCAN_CK_SIZE_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            ck->total += ck->size;
            ck->left = ck->size;
            ck->st = ck->size ? GW_HSCAN_CK_DATA : GW_HSCAN_CK_TR_START;
            break;
        case GW_HSCAN_CK_DATA: {
            size_t take = len - i;
            if ((uint64_t)take > ck->left)
                take = (size_t)ck->left;
            ck->left -= take;
            i += take - 1;
            if (!ck->left)
                ck->st = GW_HSCAN_CK_DATA_CR;
            break;
        }
        case GW_HSCAN_CK_DATA_CR:
            if (ch != '\r')
                return GW_ERR_BAD_HTTP;
            ck->st = GW_HSCAN_CK_DATA_LF;
            break;
        case GW_HSCAN_CK_DATA_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            ck->st = GW_HSCAN_CK_SIZE;
            ck->digit = false;
            ck->size = 0;
            break;
        case GW_HSCAN_CK_TR_START:
            if (ch == '\r')
                ck->st = GW_HSCAN_CK_END_LF;
            else if (gw_hscan_is_tchar(ch))
                ck->st = GW_HSCAN_CK_TR_NAME; /* SP/HTAB here is obs-fold, ':' an empty name: both refused */
            else
                return GW_ERR_BAD_HTTP;
            break;
        case GW_HSCAN_CK_TR_NAME:
            if (ch == ':')
                ck->st = GW_HSCAN_CK_TR_VALUE;
            else if (!gw_hscan_is_tchar(ch))
                return GW_ERR_BAD_HTTP;
            break;
        case GW_HSCAN_CK_TR_VALUE:
            if (ch == '\r')
                ck->st = GW_HSCAN_CK_TR_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7F)
                return GW_ERR_BAD_HTTP;
            break;
        case GW_HSCAN_CK_TR_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            ck->st = GW_HSCAN_CK_TR_START;
            break;
        case GW_HSCAN_CK_END_LF:
            if (ch != '\n')
                return GW_ERR_BAD_HTTP;
            ck->st = GW_HSCAN_CK_OFF;
            break;
        case GW_HSCAN_CK_OFF:
            break;
        }
    }
    return GW_ERR_NONE;
}
