/* file.h - bounded reads of small files (secrets, JWKS documents), for setup paths only. */
#ifndef HERALD_CORE_FILE_H
#define HERALD_CORE_FILE_H

#include <stddef.h>

/* Reads the whole file if it holds at most max bytes. *out is new (free()), NUL-terminated;
 * *len excludes the NUL. Returns 0, or -1 (cannot read) / -2 (larger than max) with
 * "path: reason" in err. */
int file_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);
/* A secret: as file_read, then exactly one trailing "\n" or "\r\n" removed (the rest is kept byte
 * for byte); an empty secret is refused. herald and heraldctl read every secret file this way, so
 * both see the same bytes. Warns (log) when the file is readable by others. */
int file_read_secret(const char *path, size_t max, char **out, size_t *len, char *err,
                     size_t errlen);

#endif
