/* fuzz_api_body.c - the registration body parser: any bytes either yield a valid registration
 * (fields pass the model's validators) or a refusal with a detail sentence. */
#include "tokens/api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tok_reg_body_t b;
    const char *field;
    char detail[160] = "";
    if (size > 4096)
        return 0; /* the listener refuses larger bodies before parsing */
    if (tok_api_parse_body((const char *)data, size, &b, &field, detail, sizeof detail) == 0) {
        if (tok_valid_device(b.device, strlen(b.device)) != 0 ||
            tok_valid_token(b.token, strlen(b.token)) != 0)
            abort();
    } else if (detail[0] == '\0') {
        abort();
    }
    return 0;
}
