/* gw_keys (keys-file parser and lookup), gw_sha256, gw_auth_peer_in (trusted proxy CIDRs). */
#include <criterion/criterion.h>

#include <string.h>

#include "gateway/auth.h"
#include "gateway/keys.h"
#include "gateway/sha256.h"

static void hex_of(const char *s, char out[65])
{
    uint8_t h[32];
    gw_sha256(s, strlen(s), h);
    gw_sha256_hex(h, out);
}

Test(keys, sha256_vectors, .timeout = 5)
{
    char hex[65];
    hex_of("", hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex); /* two blocks */
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char big[1000];
    memset(big, 'a', sizeof(big));
    big[999] = '\0';
    hex_of(big, hex);
    cr_assert_eq(strlen(hex), 64);
}

Test(keys, parse_and_find, .timeout = 5)
{
    char ha[65], hb[65];
    hex_of("key-a", ha);
    hex_of("key-b", hb);
    char text[1024];
    snprintf(text, sizeof(text),
             "# comment\n\n{\"key_sha256\":\"%s\",\"requester\":\"alice\",\"groups\":[\"eng\",\"ml\"],"
             "\"expires_at\":\"2030-01-02T03:04:05Z\",\"endpoints\":[\"chat\"]}\r\n"
             "{\"key_sha256\":\"%s\",\"expires_at\":1900000000}",
             ha, hb);
    char err[256];
    gw_keys_t *k = gw_keys_parse(text, strlen(text), err, sizeof(err));
    cr_assert_not_null(k, "%s", err);
    cr_assert_eq(gw_keys_count(k), 2);
    uint8_t sha[32];
    gw_sha256("key-a", 5, sha);
    const gw_key_entry_t *e = gw_keys_find(k, sha);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->requester, "alice");
    cr_assert_eq(e->n_groups, 2);
    cr_assert_str_eq(e->groups[1], "ml");
    cr_assert_eq(e->expires_at, 1893553445);
    cr_assert(gw_key_allows_endpoint(e, "chat"));
    cr_assert_not(gw_key_allows_endpoint(e, "other"));
    gw_sha256("key-b", 5, sha);
    e = gw_keys_find(k, sha);
    cr_assert_not_null(e);
    cr_assert(strncmp(e->requester, "key-", 4) == 0 && strlen(e->requester) == 16, "no owner: key id %s", e->requester);
    cr_assert(gw_key_allows_endpoint(e, "anything"));
    gw_sha256("key-c", 5, sha);
    cr_assert_null(gw_keys_find(k, sha));
    gw_keys_free(k);
}

Test(keys, errors_name_the_line_and_field, .timeout = 5)
{
    char h[65];
    hex_of("x", h);
    char dup[400];
    snprintf(dup, sizeof(dup), "{\"key_sha256\":\"%s\"}\n{\"key_sha256\":\"%s\"}\n", h, h);
    struct {
        const char *text, *want;
    } cases[] = {
        {"{\"requester\":\"a\"}", "line 1: key_sha256: required"},
        {"\n\n[1]", "line 3: must be a JSON object"},
        {"{", "line 1: invalid JSON"},
        {"{\"key_sha256\":\"zz\"}", "line 1: key_sha256: must be 64 hex digits"},
        {"{\"key_sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"requester\":\"a\\\"b\"}",
         "line 1: requester: must be a name"},
        {"{\"key_sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"groups\":\"eng\"}",
         "line 1: groups: must be an array"},
        {"{\"key_sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"expires_at\":\"tomorrow\"}",
         "line 1: expires_at: must be"},
        {"{\"key_sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"secret\":\"x\"}",
         "line 1: (key): unknown key"},
        {dup, "duplicate"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        gw_keys_t *k = gw_keys_parse(cases[i].text, strlen(cases[i].text), err, sizeof(err));
        cr_assert_null(k, "case %zu parsed", i);
        cr_assert(strstr(err, cases[i].want), "case %zu: %s", i, err);
    }
}

Test(keys, peer_in_cidr, .timeout = 5)
{
    gw_cidr_t c[2] = {{.family = 2 /* AF_INET */, .addr = {10, 0, 0, 0}, .bits = 8},
                      {.family = 10 /* AF_INET6 */, .addr = {0xfd}, .bits = 8}};
    cr_assert(gw_auth_peer_in("10.1.2.3:5555", c, 2));
    cr_assert_not(gw_auth_peer_in("11.1.2.3:5555", c, 2));
    cr_assert(gw_auth_peer_in("::ffff:10.9.9.9:80", c, 2), "v4-mapped v6 peers match v4 blocks");
    cr_assert(gw_auth_peer_in("fd12::1:443", c, 2));
    cr_assert_not(gw_auth_peer_in("fe80::1:443", c, 2));
    cr_assert_not(gw_auth_peer_in("garbage", c, 2));
    gw_cidr_t one = {.family = 2, .addr = {127, 0, 0, 1}, .bits = 32};
    cr_assert(gw_auth_peer_in("127.0.0.1:1", &one, 1));
    cr_assert_not(gw_auth_peer_in("127.0.0.2:1", &one, 1));
    cr_assert(gw_ct_memcmp("abc", "abc", 3) == 0 && gw_ct_memcmp("abc", "abd", 3) != 0);
}
