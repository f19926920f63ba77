/* fuzz_record.c - stored records (Redis, or `heraldctl tokens import` lines): the one-pass reader
 * and the full parser agree on every input (result, record, reason), and a parsed record
 * re-encodes to JSON that parses back to the same record. */
#include "tokens/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tok_record_t r, back, full;
    char err[128] = "", errfull[128] = "";
    int rc = tok_record_parse((const char *)data, size, &r, err, sizeof err);
    int rcfull = tok_record_parse_full((const char *)data, size, &full, errfull, sizeof errfull);
    if (rc != rcfull || strcmp(err, errfull) != 0 || (rc == 0 && memcmp(&r, &full, sizeof r) != 0))
        abort();
    if (rc != 0)
        return 0;
    buf_t b = BUF_INIT;
    tok_record_json(&r, &b);
    if (tok_record_parse(b.data, b.len, &back, err, sizeof err) != 0 ||
        memcmp(&r, &back, sizeof r) != 0)
        abort();
    buf_cleanup(&b);
    return 0;
}
