/* file.c - bounded small-file reads. Sizes are checked while reading, never trusted from stat. */
#include "core/file.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int file_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = xmalloc(max + 2);
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        if (bad)
            snprintf(err, errlen, "%s: read error", path);
        else
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        free(buf);
        return bad ? -1 : -2;
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

int file_read_secret(const char *path, size_t max, char **out, size_t *len, char *err,
                     size_t errlen)
{
    struct stat st;
    char *s;
    size_t n;
    int rc = file_read(path, max + 2, &s, &n, err, errlen); /* room for "\r\n" */
    if (rc == -2)
        snprintf(err, errlen, "%s: secret longer than %zu bytes", path, max);
    if (rc != 0)
        return -1;
    if (n > 0 && s[n - 1] == '\n')
        n -= 1 + (n > 1 && s[n - 2] == '\r');
    s[n] = '\0';
    if (n == 0 || n > max) {
        if (n == 0)
            snprintf(err, errlen, "%s: empty secret", path);
        else
            snprintf(err, errlen, "%s: secret longer than %zu bytes", path, max);
        free(s);
        return -1;
    }
    if (stat(path, &st) == 0 && (st.st_mode & S_IROTH))
        LOG(LOG_LVL_WARN, "secret file is readable by others", LKS("path", path));
    *out = s;
    *len = n;
    return 0;
}
