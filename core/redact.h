/* redact.h - hiding credentials that ride inside URLs (redis://user:PASSWORD@host, an expo.url or
 * a kafka.* URL with userinfo) before a URL reaches any output: configuration dumps, parse errors,
 * logs and heraldctl messages. herald, heraldctl and the config module use this one function. */
#ifndef HERALD_CORE_REDACT_H
#define HERALD_CORE_REDACT_H

#include <stddef.h>

#define REDACT_URL_MAX 1100 /* a Redis URL is at most 1024 bytes; longer output is cut */

/* Copies url into out (always NUL-terminated, cut at outlen) with its userinfo hidden:
 * "scheme://user:secret@host..." -> "scheme://user:***@host...", and a userinfo without ':' (which
 * may well be a password) becomes "***" as a whole. The userinfo ends at the LAST '@' anywhere in
 * the string, so a malformed URL (unencoded '/', '?' or '@' in the password) is hidden too; a URL
 * with '@' only in its path loses its host in the output, never a secret. url may be NULL ("").
 * Returns out. */
const char *redact_url(const char *url, char *out, size_t outlen);

/* For one printf-style argument: the redacted URL in a buffer that lives until the end of the
 * enclosing block (a compound literal). */
#define REDACT_URL(url) redact_url((url), (char[REDACT_URL_MAX]){0}, REDACT_URL_MAX)

#endif
