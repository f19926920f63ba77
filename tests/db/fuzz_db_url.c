/* fuzz_db_url.c - libFuzzer target for the Redis URL parser (db/url.c): any bytes must either
 * parse into bounded, NUL-terminated fields or be rejected with a message. */
#include "db/url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    db_url_t u;
    char err[128];
    if (db_url_parse(s, &u, err, sizeof err) == 0) {
        if (strlen(u.host) >= sizeof u.host || strlen(u.path) >= sizeof u.path ||
            strlen(u.password) >= sizeof u.password || (u.host[0] == '\0') == (u.path[0] == '\0') ||
            u.dbnum < 0 || u.dbnum > DB_URL_DB_MAX)
            abort();
        if (u.host[0] && (u.port < 1 || u.port > 65535))
            abort();
    } else if (err[0] == '\0' || u.password[0] != '\0') {
        abort();
    }
    free(s);
    return 0;
}
