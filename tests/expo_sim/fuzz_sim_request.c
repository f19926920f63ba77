/* fuzz_sim_request.c - libFuzzer target for the simulator's request handling: the first byte
 * picks the endpoint and the headers (gzip or not, bearer or not), the rest is the body. Runs the
 * whole path of sim_handle(): inflate with its bound, JSON parse, validation, tickets, receipts,
 * /control. Checks that every reply is a status with a JSON body unless a fault asked otherwise,
 * and that the hot-path scanner (sim_json.c) accepts exactly what jansson accepts. */
#include "tools/expo_sim/sim.h"
#include "tools/expo_sim/sim_json.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sim_t *sim;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sim == NULL) {
        sim_opts_t o;
        sim_opts_defaults(&o);
        o.max_body = 1u << 20;
        o.receipt_capacity = 4096;
        o.token_capacity = 4096;
        o.record = true;
        char err[128];
        sim = sim_create(&o, err, sizeof err);
    }
    if (size < 1)
        return 0;
    static const char *const paths[] = {"/--/api/v2/push/send", "/--/api/v2/push/getReceipts",
                                        "/control", "/stats"};
    uint8_t sel = data[0];
    sim_req_t rq = {
        .method = (sel & 0x40) ? "GET" : "POST",
        .path = paths[sel & 3],
        .content_type = (sel & 0x20) ? "text/plain" : "application/json",
        .content_encoding = (sel & 0x04) ? "gzip" : NULL,
        .auth = NULL,
        .loopback = true,
        .body = (const char *)data + 1,
        .bodylen = size - 1,
        .mono_ms = (int64_t)(sel & 0x18) * 100,
        .wall_ms = 1700000000000,
    };
    if ((sel & 3) == 2 && (sel & 0x80)) { /* undo faults a previous input turned on */
        rq.body = "{\"fail-5xx\":0,\"malformed\":0,\"drop\":0,\"fail-429\":0,"
                  "\"drop-after\":0,\"latency-ms\":0,\"rate-limit\":0,\"access-token\":\"\"}";
        rq.bodylen = strlen(rq.body);
    }
    /* differential: the scanner and jansson agree on what is JSON. Not for bodies holding a NUL
     * byte: jansson 2.14 accepts "[8\0]" and "12\0" (its number lexer ends at the NUL and skips
     * it); the scanner refuses them, as RFC 8259 does. */
    if (memchr(data + 1, 0, size - 1) == NULL) {
        json_t *ref = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
        if ((sj_check((const char *)data + 1, size - 1) == 0) != (ref != NULL))
            abort();
        json_decref(ref);
    }
    sim_resp_t r = {0};
    sim_handle(sim, &rq, &r);
    if (r.action == SIM_RESPOND && r.status != 502 && r.status != 503 && r.status != 200) {
        json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
        if (j == NULL)
            abort(); /* every error reply must be JSON */
        json_decref(j);
    }
    sim_resp_cleanup(&r);
    buf_t rec = BUF_INIT;
    sim_record_take(sim, &rec);
    buf_cleanup(&rec);
    return 0;
}
