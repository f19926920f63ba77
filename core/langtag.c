/* langtag.c - well-formedness, canonical case and the lookup fallback of BCP 47 language tags
 * (RFC 5646 section 2.1, RFC 4647 section 3.4). A tag is at most LANG_TAG_MAX bytes: it is split
 * into its subtags once, then walked through the langtag production in order. */
#include "core/langtag.h"

#include <stdbool.h>
#include <string.h>

#define MAX_SUBTAGS (LANG_TAG_MAX / 2 + 1)

static bool is_alpha(char c)
{
    return c >= 'a' && c <= 'z'; /* the tag is lower-cased first */
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool all_alpha(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(s[i]))
            return false;
    return true;
}

static bool all_digit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

static char upper(char c)
{
    return is_alpha(c) ? (char)(c - 'a' + 'A') : c;
}

typedef struct tag {
    char t[LANG_TAG_MAX + 1]; /* the tag, lower case */
    char *sub[MAX_SUBTAGS];
    size_t len[MAX_SUBTAGS];
    size_t n;
} tag_t;

/* Lower-cases s into tg and splits it at '-': every subtag is 1-8 letters or digits. */
static int split(const char *s, size_t n, tag_t *tg)
{
    tg->n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? s[i] : '-';
        if (c == '-') {
            if (i - start < 1 || i - start > 8)
                return -1;
            tg->sub[tg->n] = tg->t + start;
            tg->len[tg->n++] = i - start;
            start = i + 1;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))) {
            return -1;
        }
        tg->t[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    tg->t[n] = '\0';
    return 0;
}

/* Index after the language, extlangs, script, region and variants (canonical case applied). */
static size_t walk_head(tag_t *tg)
{
    size_t i = 1;
    if (tg->len[0] <= 3)
        for (int e = 0; e < 3 && i < tg->n && tg->len[i] == 3 && all_alpha(tg->sub[i], 3); e++)
            i++;
    if (i < tg->n && tg->len[i] == 4 && all_alpha(tg->sub[i], 4)) {
        tg->sub[i][0] = upper(tg->sub[i][0]);
        i++;
    }
    if (i < tg->n && ((tg->len[i] == 2 && all_alpha(tg->sub[i], 2)) ||
                      (tg->len[i] == 3 && all_digit(tg->sub[i], 3)))) {
        for (size_t k = 0; k < tg->len[i]; k++)
            tg->sub[i][k] = upper(tg->sub[i][k]);
        i++;
    }
    while (i < tg->n && (tg->len[i] >= 5 || (tg->len[i] == 4 && is_digit(tg->sub[i][0]))))
        i++;
    return i;
}

/* Index after the extensions (each singleton once, each with at least one subtag of 2-8), or
 * (size_t)-1 when they are malformed. */
static size_t walk_extensions(const tag_t *tg, size_t i)
{
    unsigned long seen = 0;
    while (i < tg->n && tg->len[i] == 1 && tg->sub[i][0] != 'x') {
        char c = tg->sub[i][0];
        unsigned long bit = 1ul << (is_digit(c) ? c - '0' : c - 'a' + 10);
        if (seen & bit)
            return (size_t)-1;
        seen |= bit;
        size_t body = ++i;
        while (i < tg->n && tg->len[i] >= 2)
            i++;
        if (i == body)
            return (size_t)-1;
    }
    return i;
}

int lang_tag_parse(const char *s, size_t n, char *out)
{
    tag_t tg;
    if (s == NULL || n == 0 || n > LANG_TAG_MAX || split(s, n, &tg) != 0)
        return -1;
    if (tg.len[0] < 2 || !all_alpha(tg.sub[0], tg.len[0]))
        return -1;
    size_t i = walk_extensions(&tg, walk_head(&tg));
    if (i == (size_t)-1)
        return -1;
    if (i < tg.n && tg.len[i] == 1 && tg.sub[i][0] == 'x') {
        if (i + 1 == tg.n)
            return -1; /* "x" needs at least one subtag */
        i = tg.n;      /* private use: 1-8 letters or digits each, as split checked */
    }
    if (i != tg.n)
        return -1;
    if (out)
        memcpy(out, tg.t, n + 1);
    return 0;
}

int lang_tag_parent(char *tag)
{
    char *dash = strrchr(tag, '-');
    if (dash == NULL)
        return -1;
    *dash = '\0';
    char *prev = strrchr(tag, '-');
    if (prev && strlen(prev + 1) == 1)
        *prev = '\0';
    return 0;
}
