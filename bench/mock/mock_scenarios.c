/* mock_scenarios: the registry. Every scenario family (one file, one table) is listed here once;
 * lookups walk the families in this order. */
#include <string.h>

#include "mock_scenarios.h"

/* Each family file defines one of these (MOCK_CHAT_FAMILY / MOCK_R_FAMILY). */
extern const mock_family_t mock_chat_family, mock_chat_errors_family, mock_chat_load_family;
extern const mock_family_t mock_responses_family, mock_chat_timing_family, mock_codex_family;

/* A new family: define it in its own file, then add it to this list. */
static const mock_family_t *const families[] = {
    &mock_chat_family,
    &mock_chat_errors_family,
    &mock_chat_load_family,
    &mock_chat_timing_family,
    &mock_responses_family,
    &mock_codex_family,
};

static const char *family_name(const mock_family_t *f, size_t i)
{
    return f->chat ? f->chat[i].name : f->resp[i].name;
}

/* The family of the kind asked for (chat or Responses) that holds name, with *i its index in
 * the table; NULL when none does. */
static const mock_family_t *find(gw_str_t name, bool chat, size_t *i)
{
    for (size_t k = 0; k < MOCK_COUNT(families); k++) {
        const mock_family_t *f = families[k];
        if ((f->chat != NULL) != chat)
            continue;
        for (*i = 0; *i < f->n; (*i)++)
            if (gw_str_eq(name, family_name(f, *i)))
                return f;
    }
    return NULL;
}

const mock_chat_sc_t *mock_sc_find_chat(gw_str_t name)
{
    size_t i;
    const mock_family_t *f = find(name, true, &i);
    return f ? &f->chat[i] : NULL;
}

const mock_r_sc_t *mock_sc_find_r(gw_str_t name)
{
    size_t i;
    const mock_family_t *f = find(name, false, &i);
    return f ? &f->resp[i] : NULL;
}

/* Names are unique across both kinds too: --default-scenario picks the family by name alone. */
const char *mock_sc_duplicate(void)
{
    for (size_t k = 0; k < MOCK_COUNT(families); k++) {
        for (size_t i = 0; i < families[k]->n; i++) {
            const char *a = family_name(families[k], i);
            for (size_t l = k; l < MOCK_COUNT(families); l++)
                for (size_t j = l == k ? i + 1 : 0; j < families[l]->n; j++)
                    if (!strcmp(a, family_name(families[l], j)))
                        return a;
        }
    }
    return NULL;
}

static size_t count(gw_str_t hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (size_t i = 0; k && i + k <= hay.len; i++)
        if (memcmp(hay.base + i, needle, k) == 0)
            n++;
    return n;
}

const char *mock_sc_turn(const mock_chat_sc_t *sc, gw_str_t body)
{
    size_t turn = count(body, "\"role\":\"tool\""), last = 0;
    while (sc->turns[last + 1] && last < turn)
        last++;
    return sc->turns[last];
}

const char *mock_sc_missing(const mock_chat_sc_t *sc, gw_str_t body)
{
    for (const char *const *n = sc->needs; n && *n; n++)
        if (!count(body, *n))
            return *n;
    return NULL;
}
