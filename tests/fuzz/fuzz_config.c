/* fuzz_config.c - the configuration parser on arbitrary text: it must either load it or fail with
 * a "name:line: message" sentence, never crash, leak or accept a value outside its bounds. */
#include "config/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024] = "";
    conf_t *c = conf_create();
    int rc = conf_load_string(c, "f.conf", (const char *)data, size, err, sizeof err);
    if (rc != 0 && strncmp(err, "f.conf", 6) != 0)
        abort(); /* every error names the file (and line) */
    if (rc == 0) {
        if (c->tokens_ttl_days < 1 || c->tokens_ttl_days > 3650 || c->http_max_body_bytes < 256)
            abort();
        conf_validate(c, err, sizeof err);
        buf_t b = BUF_INIT;
        conf_dump(c, &b);
        buf_cleanup(&b);
    }
    conf_destroy(c);
    return 0;
}
