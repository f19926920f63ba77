/* lines.h - the parsers of heraldctl's input files, one line at a time: `tokens import` (a JSON
 * record per line, as `tokens export` writes) and `tokens deactivate --file` (`userId deviceId`
 * or a JSON object with both). Pure functions of the line (no I/O, no state, the line is not
 * changed), so the fuzz target (tests/fuzz/fuzz_ctl_lines.c) drives exactly what the commands
 * run. Lines come from ctl_read_line (ctl/util.h): newline stripped, at most 4096 bytes. */
#ifndef HERALD_CTL_LINES_H
#define HERALD_CTL_LINES_H

#include "tokens/model.h"

#include <stddef.h>

/* One import line into r: everything tok_record_parse checks (fields, timestamps) plus what a
 * restore needs, an expiresAt in 1..9999-12-31. Returns 0; 1 for an empty line (skipped); -1
 * with the reason in why (a static string, or err). */
int ctl_import_line(const char *line, size_t len, tok_record_t *r, char *err, size_t errlen,
                    const char **why);

/* One deactivate line: after leading blanks, `userId deviceId` (separated by blanks, nothing
 * after) or a JSON object with string userId and deviceId; both valid as the API requires.
 * Returns 0 with user and device filled; 1 for a blank or `#` comment line (skipped); -1 with a
 * static reason in why. */
int ctl_deact_line(const char *line, size_t len, char user[TOK_USER_MAX + 1],
                   char device[TOK_DEVICE_MAX + 1], const char **why);

#endif
