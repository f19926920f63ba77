/* fuzz_ctl_dynamo.c - the parsers of a DynamoDB export (ctl/dynamo.h), as `tokens import
 * --format dynamodb-json` runs them: each input is a data-file item line, a manifest-files.json
 * line and a manifest-summary.json. Checks: an accepted item is a record that `tokens import`
 * (ctl_import_line) reads back identical, unexpired, with every field valid and an inactive one
 * carrying its deactivation; rejected items say why; a manifest line yields a plain file name. */
#include "ctl/dynamo.h"
#include "ctl/lines.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_item(const char *line, size_t len)
{
    tok_record_t r, back;
    unsigned flags = 0;
    char why[160] = "", err[128];
    const char *ewhy = NULL;
    int rc = ctl_ddb_item(line, len, NOW, 90, &r, &flags, why, sizeof why);
    if (rc == CTL_DDB_REJECTED && why[0] == '\0')
        abort();
    if (rc != CTL_DDB_ITEM)
        return;
    if (r.expires_at <= NOW || r.expires_at > 253402300799 ||
        tok_valid_token(r.token, strlen(r.token)) != 0 || (!r.active && !r.deactivated_reason[0]))
        abort();
    buf_t b = BUF_INIT;
    tok_record_json(&r, &b);
    if (ctl_import_line(b.data, b.len, &back, err, sizeof err, &ewhy) != 0 ||
        memcmp(&r, &back, sizeof r) != 0)
        abort();
    buf_cleanup(&b);
}

static void check_manifest(const char *line, size_t len)
{
    char name[CTL_DDB_NAME_MAX + 1];
    long items = -1;
    const char *why = NULL;
    int rc = ctl_ddb_manifest_line(line, len, name, &items, &why);
    if (rc < 0 && why == NULL)
        abort();
    if (rc == 0 && (name[0] == '\0' || strchr(name, '/') || strcmp(name, "..") == 0 ||
                    strcmp(name, ".") == 0 || strlen(name) > CTL_DDB_NAME_MAX || items < -1))
        abort();
    rc = ctl_ddb_summary(line, len, &items, &why);
    if (rc < 0 && why == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_item((const char *)data, size);
    check_manifest((const char *)data, size);
    return 0;
}
