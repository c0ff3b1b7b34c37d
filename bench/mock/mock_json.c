/* mock_json: quoted JSON strings for the mock's serialisers. */
#include <string.h>

#include "gateway/json.h"
#include "mock_json.h"

void mock_json_str(gw_buf_t *b, gw_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.base[i];
        if (ch < 0x20 || ch == '"' || ch == '\\' || ch == 0x7f) {
            gw_json_quote(b, s);
            return;
        }
    }
    char *p = gw_buf_reserve(b, s.len + 2);
    p[0] = '"';
    if (s.len)
        memcpy(p + 1, s.base, s.len);
    p[s.len + 1] = '"';
    b->len += s.len + 2;
}

void mock_json_cstr(gw_buf_t *b, const char *s)
{
    mock_json_str(b, gw_str(s));
}
