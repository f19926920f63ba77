/* langtag.h - BCP 47 language tags (RFC 5646) for locales: a device's registered locale, a job
 * event's locale and the locales of notification templates all pass through these two functions,
 * so "pt-br" from an app, "pt-BR" in an event and templates.pt-BR.* in the configuration are the
 * same locale, and the fallback pt-BR -> pt is computed one way (RFC 4647 lookup). */
#ifndef HERALD_CORE_LANGTAG_H
#define HERALD_CORE_LANGTAG_H

#include <stddef.h>

/* Longest tag accepted, in bytes: RFC 5646 section 4.4.1's minimum buffer, which holds every tag
 * without extensions and the usual ones with (e.g. "de-DE-u-co-phonebk"). */
#define LANG_TAG_MAX 35

/* Whether s[0..n) is a well-formed BCP 47 tag of RFC 5646's langtag form: language (2-8 letters)
 * with up to three 3-letter extlangs, then optional script (4 letters), region (2 letters or 3
 * digits), variants, extensions (a singleton other than x, each at most once, then subtags of 2-8
 * letters or digits) and private use (x-...). Neither the legacy grandfathered tags nor a bare
 * private-use tag ("x-foo") is accepted, nor '_' as a separator. When out is not NULL (at least
 * LANG_TAG_MAX + 1 bytes) it receives the canonical letter case: language lower, script title,
 * region upper ("PT-br" -> "pt-BR", "zh-hant-tw" -> "zh-Hant-TW"). Returns 0, or -1. */
int lang_tag_parse(const char *s, size_t n, char *out);

/* Truncates a valid tag in place to the next broader one in the lookup fallback (RFC 4647 3.4):
 * the last subtag goes, and a singleton left at the end goes with it ("zh-Hant-TW" -> "zh-Hant"
 * -> "zh"; "de-DE-x-ab" -> "de-DE"). Returns 0, or -1 when tag is a bare language. */
int lang_tag_parent(char *tag);

#endif
