/* fuzz_db_slots.c - libFuzzer target for what cluster routing reads from the network
 * (db/slots.c): the input is RESP, read by hiredis' reader into a reply; CLUSTER SLOTS parsing
 * must give sorted, disjoint, in-range ranges with bounded hosts or reject the reply, and the
 * error text parser must give a slot and port in range or reject the text. */
#include "db/slots.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slots(const redisReply *rep)
{
    db_slot_range_t *r;
    size_t n;
    char err[128] = "";
    if (db_slots_parse((const db_reply_t *)rep, &r, &n, err, sizeof err) != 0) {
        if (err[0] == '\0' || r != NULL)
            abort();
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (r[i].first > r[i].last || r[i].last >= DB_SLOTS || strlen(r[i].host) >= DB_HOST_MAX ||
            r[i].port < 1 || r[i].port > 65535 || (i > 0 && r[i].first <= r[i - 1].last))
            abort();
    free(r);
}

static void check_redirect(const char *s, size_t len)
{
    db_redirect_t rd;
    if (db_redirect_parse(s, len, &rd) == 0 &&
        (rd.slot >= DB_SLOTS || rd.port < 1 || rd.port > 65535 || strlen(rd.host) >= DB_HOST_MAX))
        abort();
}

/* hiredis 0.14's reader allocates whatever an array header announces (it trusts the server, and
 * so does herald): keep the fuzzer to headers a real reply could have. */
static bool huge_array(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*' || (i > 0 && data[i - 1] != '\n'))
            continue;
        long n = 0;
        for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n <= 100000; j++)
            n = n * 10 + (data[j] - '0');
        if (n > 100000)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536 || huge_array(data, size))
        return 0;
    check_redirect((const char *)data, size);
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(rd, &rep) == REDIS_OK && rep != NULL) {
        check_slots(rep);
        freeReplyObject(rep);
    }
    redisReaderFree(rd);
    return 0;
}
