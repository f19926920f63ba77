/* fuzz_ctl_lines.c - heraldctl's input files, read as the commands read them: ctl_read_line
 * splits the input into lines, and each line goes through both line parsers of ctl/lines.h
 * (`tokens import` records, `tokens deactivate --file` lines); the whole input is also given to
 * the parsers as one line. Checks: lines are bounded and terminated; an accepted import line
 * re-encodes to JSON that parses back to the same record with expiresAt in range; an accepted
 * deactivate line names a valid user and device. */
#include "ctl/lines.h"
#include "ctl/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_ 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_import(const char *line, size_t len)
{
    tok_record_t r, back;
    char err[128];
    const char *why = NULL;
    int rc = ctl_import_line(line, len, &r, err, sizeof err, &why);
    if (rc < 0 && (why == NULL || why[0] == '\0'))
        abort();
    if (rc != 0)
        return;
    if (r.expires_at <= 0 || r.expires_at > 253402300799)
        abort();
    buf_t b = BUF_INIT;
    tok_record_json(&r, &b);
    if (ctl_import_line(b.data, b.len, &back, err, sizeof err, &why) != 0 ||
        memcmp(&r, &back, sizeof r) != 0)
        abort();
    buf_cleanup(&b);
}

static void check_deact(const char *line, size_t len)
{
    char user[TOK_USER_MAX + 1], device[TOK_DEVICE_MAX + 1];
    const char *why = NULL;
    int rc = ctl_deact_line(line, len, user, device, &why);
    if (rc < 0 && why == NULL)
        abort();
    if (rc == 0 &&
        (tok_valid_user(user, strlen(user)) != 0 || tok_valid_device(device, strlen(device)) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_import((const char *)data, size);
    check_deact((const char *)data, size);
    if (size == 0)
        return 0;
    /* fmemopen takes a writable buffer even for reading. */
    char *copy = malloc(size);
    memcpy(copy, data, size);
    FILE *f = fmemopen(copy, size, "r");
    if (f == NULL)
        abort();
    char *line = malloc(LINE_MAX_ + 1);
    size_t len = 0;
    int r;
    while ((r = ctl_read_line(f, line, LINE_MAX_, &len)) != 0) {
        if (r < 0)
            continue; /* refused as too long: never parsed */
        if (len > LINE_MAX_ || line[len] != '\0')
            abort();
        check_import(line, len);
        check_deact(line, len);
    }
    fclose(f);
    free(line);
    free(copy);
    return 0;
}
