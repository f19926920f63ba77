/* redact.c - credentials out of URLs before they are printed; see redact.h. */
#include "core/redact.h"

#include <stdio.h>
#include <string.h>

const char *redact_url(const char *url, char *out, size_t outlen)
{
    if (outlen == 0)
        return out;
    if (url == NULL)
        url = "";
    const char *scheme = strstr(url, "://");
    const char *start = scheme ? scheme + 3 : url;
    const char *at = strrchr(start, '@');
    if (at == NULL) {
        snprintf(out, outlen, "%s", url);
        return out;
    }
    const char *colon = memchr(start, ':', (size_t)(at - start));
    int keep = (int)((colon ? colon + 1 : start) - url); /* scheme:// and the user name */
    snprintf(out, outlen, "%.*s***%s", keep, url, at);
    return out;
}
