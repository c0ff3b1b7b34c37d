#define _GNU_SOURCE /* strptime, timegm */
#include "gateway/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/arena.h"
#include "gateway/json.h"
#include "gateway/sha256.h"

struct gw_keys {
    gw_arena_t *a;          /** owns the entries and their strings */
    gw_key_entry_t *entries; /** malloc'd, n entries */
    size_t n, cap;
    uint32_t *slots;        /** open addressing: entry index + 1, 0 = empty; nslots a power of two */
    size_t nslots;
};

bool gw_keys_valid_name(const char *s, size_t n)
{
    if (n == 0 || n > GW_KEYS_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
            return false;
    }
    return true;
}

static bool parse_hash(gw_str_t s, uint8_t out[32])
{
    if (s.len != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = gw_hex_digit(s.base[2 * i]), lo = gw_hex_digit(s.base[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC only: a key's expiry should not depend on the host's zone). */
static bool parse_time(gw_str_t s, int64_t *out)
{
    char tmp[32];
    if (s.len != 20)
        return false;
    memcpy(tmp, s.base, 20);
    tmp[20] = '\0';
    struct tm tm = {0};
    char *end = strptime(tmp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return false;
    *out = (int64_t)timegm(&tm);
    return *out > 0;
}

/* A string array member: each element a valid name; NULL list when absent. */
static const char *names(gw_arena_t *a, const gw_json_t *obj, const char *key, size_t max,
                         const char *const **out, size_t *n)
{
    const gw_json_t *x = gw_json_get(obj, key);
    *out = NULL;
    *n = 0;
    if (!x)
        return NULL;
    if (x->type != GW_JSON_ARRAY || x->len > max)
        return "must be an array of names";
    const char **v = gw_arena_calloc(a, sizeof(*v) * (x->len ? x->len : 1));
    size_t i = 0;
    for (const gw_json_t *m = x->child; m; m = m->next, i++) {
        if (m->type != GW_JSON_STRING || !gw_keys_valid_name(m->str.base, m->str.len))
            return "each element must be a name (1..256 printable bytes, no quotes)";
        v[i] = gw_arena_strndup(a, m->str.base, m->str.len);
    }
    *out = v;
    *n = x->len;
    return NULL;
}

static const char *parse_entry(gw_arena_t *a, const gw_json_t *o, gw_key_entry_t *e, const char **field)
{
    static const char *const allowed[] = {"key_sha256", "requester", "groups", "expires_at", "endpoints", NULL};
    for (const gw_json_t *m = o->child; m; m = m->next) {
        bool ok = false;
        for (const char *const *k = allowed; *k; k++)
            ok = ok || gw_str_eq(m->key, *k);
        if (!ok) {
            *field = "(key)";
            return "unknown key (allowed: key_sha256, requester, groups, expires_at, endpoints)";
        }
    }
    *field = "key_sha256";
    const gw_json_t *h = gw_json_get(o, "key_sha256");
    if (!h)
        return "required";
    if (h->type != GW_JSON_STRING || !parse_hash(h->str, e->sha))
        return "must be 64 hex digits (the SHA-256 of the key; agate --new-key prints it)";
    *field = "requester";
    const gw_json_t *r = gw_json_get(o, "requester");
    if (r && (r->type != GW_JSON_STRING || !gw_keys_valid_name(r->str.base, r->str.len)))
        return "must be a name (1..256 printable bytes, no quotes)";
    if (r) {
        e->requester = gw_arena_strndup(a, r->str.base, r->str.len);
    } else {
        char hex[65], id[20];
        gw_sha256_hex(e->sha, hex);
        snprintf(id, sizeof(id), "key-%.12s", hex);
        e->requester = gw_arena_strndup(a, id, strlen(id));
    }
    const char *why;
    *field = "groups";
    if ((why = names(a, o, "groups", GW_KEYS_MAX_GROUPS, &e->groups, &e->n_groups)))
        return why;
    *field = "endpoints";
    if ((why = names(a, o, "endpoints", 1024, &e->endpoints, &e->n_endpoints)))
        return why;
    *field = "expires_at";
    const gw_json_t *x = gw_json_get(o, "expires_at");
    if (x && x->type == GW_JSON_STRING) {
        if (!parse_time(x->str, &e->expires_at))
            return "must be \"YYYY-MM-DDTHH:MM:SSZ\" (UTC) or unix seconds";
    } else if (x && !gw_json_is_nullish(x)) {
        if (gw_json_int64(x, &e->expires_at) < 0 || e->expires_at <= 0)
            return "must be \"YYYY-MM-DDTHH:MM:SSZ\" (UTC) or unix seconds";
    }
    return NULL;
}

static uint32_t slot_of(const uint8_t sha[32], size_t nslots)
{
    uint32_t x = (uint32_t)sha[0] << 24 | (uint32_t)sha[1] << 16 | (uint32_t)sha[2] << 8 | sha[3];
    return x & (uint32_t)(nslots - 1);
}

/* Returns the index of the first entry whose hash repeats an earlier one, or -1. */
static long index_entries(gw_keys_t *k)
{
    k->nslots = 16;
    while (k->nslots < k->n * 2)
        k->nslots <<= 1;
    k->slots = gw_xcalloc(k->nslots, sizeof(*k->slots));
    for (size_t i = 0; i < k->n; i++) {
        uint32_t s = slot_of(k->entries[i].sha, k->nslots);
        while (k->slots[s]) {
            if (memcmp(k->entries[k->slots[s] - 1].sha, k->entries[i].sha, 32) == 0)
                return (long)i;
            s = (s + 1) & (uint32_t)(k->nslots - 1);
        }
        k->slots[s] = (uint32_t)i + 1;
    }
    return -1;
}

gw_keys_t *gw_keys_parse(const char *text, size_t n, char *err, size_t errlen)
{
    gw_keys_t *k = gw_xcalloc(1, sizeof(*k));
    k->a = gw_arena_new();
    gw_arena_t *scratch = gw_arena_new();
    size_t line = 0, pos = 0;
    while (pos < n) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - s) : n - pos;
        pos += len + (nl ? 1 : 0);
        line++;
        size_t b = 0;
        while (b < len && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r'))
            b++;
        if (b == len || s[b] == '#')
            continue;
        gw_arena_reset(scratch);
        gw_json_t *o;
        const char *perr = NULL;
        if (gw_json_parse(scratch, s, len, &o, &perr) < 0 || o->type != GW_JSON_OBJECT) {
            snprintf(err, errlen, "keys file: line %zu: %s", line, perr ? "invalid JSON" : "must be a JSON object");
            goto fail;
        }
        if (k->n == GW_KEYS_MAX) {
            snprintf(err, errlen, "keys file: line %zu: more than %d keys", line, GW_KEYS_MAX);
            goto fail;
        }
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 16;
            k->entries = gw_xrealloc(k->entries, k->cap * sizeof(*k->entries));
        }
        gw_key_entry_t *e = &k->entries[k->n];
        memset(e, 0, sizeof(*e));
        const char *field = "";
        const char *why = parse_entry(k->a, o, e, &field);
        if (why) {
            snprintf(err, errlen, "keys file: line %zu: %s: %s", line, field, why);
            goto fail;
        }
        k->n++;
    }
    gw_arena_free(scratch);
    long dup = index_entries(k);
    if (dup >= 0) {
        snprintf(err, errlen, "keys file: key %ld (requester %s): key_sha256: duplicate of an earlier line",
                 dup + 1, k->entries[dup].requester);
        gw_keys_free(k);
        return NULL;
    }
    return k;
fail:
    gw_arena_free(scratch);
    gw_keys_free(k);
    return NULL;
}

void gw_keys_free(gw_keys_t *k)
{
    if (!k)
        return;
    gw_arena_free(k->a);
    free(k->entries);
    free(k->slots);
    free(k);
}

size_t gw_keys_count(const gw_keys_t *k)
{
    return k ? k->n : 0;
}

const gw_key_entry_t *gw_keys_find(const gw_keys_t *k, const uint8_t sha[32])
{
    if (!k || !k->n)
        return NULL;
    uint32_t s = slot_of(sha, k->nslots);
    for (size_t probe = 0; probe < k->nslots && k->slots[s]; probe++) {
        const gw_key_entry_t *e = &k->entries[k->slots[s] - 1];
        if (gw_ct_memcmp(e->sha, sha, 32) == 0)
            return e;
        s = (s + 1) & (uint32_t)(k->nslots - 1);
    }
    return NULL;
}

bool gw_key_allows_endpoint(const gw_key_entry_t *e, const char *endpoint)
{
    if (!e->endpoints)
        return true;
    for (size_t i = 0; i < e->n_endpoints; i++)
        if (strcmp(e->endpoints[i], endpoint) == 0)
            return true;
    return false;
}
