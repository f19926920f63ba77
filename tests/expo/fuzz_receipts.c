/* fuzz_receipts.c - libFuzzer target for the getReceipts reply parser. */
#include "expo/proto.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    expo_receipt_t *r;
    size_t n;
    char err[64];
    if (expo_receipts_parse(200, (const char *)data, size, &r, &n, err, sizeof err) == 0)
        expo_receipts_free(r, n);
    return 0;
}
