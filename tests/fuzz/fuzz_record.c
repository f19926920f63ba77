/* fuzz_record.c - stored records (Redis, or `heraldctl tokens import` lines): a parsed record
 * re-encodes to JSON that parses back to the same record. */
#include "tokens/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tok_record_t r, back;
    char err[128];
    if (tok_record_parse((const char *)data, size, &r, err, sizeof err) != 0)
        return 0;
    buf_t b = BUF_INIT;
    tok_record_json(&r, &b);
    if (tok_record_parse(b.data, b.len, &back, err, sizeof err) != 0 ||
        memcmp(&r, &back, sizeof r) != 0)
        abort();
    buf_cleanup(&b);
    return 0;
}
