/* fuzz_tickets.c - libFuzzer target for the send-reply parser (tickets, request errors, split).
 * The first two bytes choose the HTTP status and the expected ticket count. The one-pass reader of
 * the common reply must read every input exactly as the general (tree) path does. */
#include "expo/proto.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const long statuses[] = {200, 400, 401, 429, 500, 502, 503, 504};
    long st = statuses[data[0] & 7];
    size_t n = data[1] % 101;
    expo_reply_t r;
    expo_reply_t tree;
    expo_reply_parse(st, (const char *)data + 2, size - 2, n, &r);
    expo_reply_parse_tree(st, (const char *)data + 2, size - 2, n, &tree);
    if ((r.kind == EXPO_REPLY_TICKETS && r.ntickets != n) || !expo_reply_equal(&r, &tree))
        __builtin_trap();
    expo_reply_cleanup(&r);
    expo_reply_cleanup(&tree);
    return 0;
}
