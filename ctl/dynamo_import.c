/* dynamo_import.c - `heraldctl tokens import --format dynamodb-json PATH`: the seed's DynamoDB
 * export into herald. The folder's manifest-files.json names the data files (read under data/),
 * each read with zlib line by line (bounded) through ctl_ddb_item (ctl/dynamo.h); records are
 * written in batches by tok_lc_import, the JSON-lines import's path, so registration's rules
 * hold (owner index, device limit with eviction, reassignment).
 *
 * The seed's table can hold one token under several (user, device) items (it never unbound a
 * token), and the migration may be run again during the drain while herald already serves
 * registrations. So before a batch is written, the latest updatedAt wins, as the seed's last
 * registration did:
 * - an item whose device herald already holds with a later updatedAt is skipped ("newer");
 * - an active item whose token another item of the batch, or another record in herald, claims
 *   with a later updatedAt is imported inactive, reason "reassigned", deactivatedAt that
 *   updatedAt ("superseded").
 * Both depend only on the export and what is stored, so a second run writes nothing. Batches
 * are strictly sequential (read, decide, write): every read sees the batches before it. */
#include "core/clock.h"
#include "core/xalloc.h"
#include "ctl/dynamo.h"
#include "ctl/tokens.h"
#include "tokens/lifecycle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define DDB_BATCH 500
#define DDB_FILES_MAX 100000
#define DDB_MANIFEST_LINE_MAX 4096
#define DDB_SUMMARY_MAX (1 << 20)

typedef struct ddb_file {
    char *path;          /* as opened */
    char *name;          /* as reported: "data/<x>", or the path given */
    long manifest_items; /* itemCount from manifest-files.json, -1 unknown */
    long items, expired, rejected, refused, newer;
    bool broken; /* not read whole: open or read error, or fewer items than the manifest says */
} ddb_file_t;

/* One item of the current batch, with what herald holds for it. */
typedef struct ddb_slot {
    tok_record_t rec;
    int64_t updated_ms;
    size_t file;
    long line;
    ctl_recs_t cur;    /* the stored record of (user, device) */
    ctl_owner_t owner; /* who holds the token in herald (active items) */
    ctl_recs_t holder; /* that holder's record, when it is another device */
    bool skip;         /* herald holds a newer record of the device */
    bool superseded;   /* imported inactive: a newer record claims the token */
} ddb_slot_t;

typedef struct ddb_run {
    ctl_env_t *e;
    tok_lc_t *lc;
    bool dry, json;
    int64_t now;
    long ttl_days, max_devices;
    ddb_file_t *files;
    size_t nfiles;
    long manifest_total; /* -1 unknown */
    long items, valid, expired, rejected, refused, newer, superseded, derived, in_ms, broken;
    long shown; /* items counted by the progress bar */
    tok_lc_import_result_t sum;
    ddb_slot_t *slots;
    size_t n;
    size_t *sent; /* slot of each record of the batch in flight */
    int status;
    ctl_progress_t prog;
} ddb_run_t;

/* ---- reports ---- */

/* An item not imported, or a file not read whole (line 0: the whole file). */
static void report(const ddb_run_t *run, const ddb_file_t *f, long line, const char *kind,
                   const char *why)
{
    if (run->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "file", f->name);
        if (line > 0)
            ctl_json_int(&b, "line", line);
        ctl_json_str(&b, kind, why);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stderr);
        buf_cleanup(&b);
    } else if (line > 0) {
        fprintf(stderr, "%s:%ld: %s: %s\n", f->name, line, kind, why);
    } else {
        fprintf(stderr, "%s: %s: %s\n", f->name, kind, why);
    }
}

static void broken(ddb_run_t *run, ddb_file_t *f, long line, const char *why)
{
    if (!f->broken)
        run->broken++;
    f->broken = true;
    report(run, f, line, "error", why);
}

/* ---- the input: one file, or the export folder's manifest ---- */

static void add_file(ddb_run_t *run, char *path, char *name, long manifest_items)
{
    if (run->nfiles % 64 == 0)
        run->files = xrealloc(run->files, (run->nfiles + 64) * sizeof *run->files);
    ddb_file_t *f = &run->files[run->nfiles++];
    memset(f, 0, sizeof *f);
    f->path = path;
    f->name = name;
    f->manifest_items = manifest_items;
}

/* manifest-summary.json, when there is one: the format check and the item count. */
static int read_summary(ddb_run_t *run, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest-summary.json", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL && errno == ENOENT)
        return CTL_OK;
    if (f == NULL) {
        fprintf(stderr, "heraldctl: %s: %s\n", path, strerror(errno));
        return CTL_USAGE;
    }
    char *text = xmalloc(DDB_SUMMARY_MAX + 1);
    size_t n = fread(text, 1, DDB_SUMMARY_MAX + 1, f);
    fclose(f);
    const char *why = "larger than 1 MiB";
    int rc = n <= DDB_SUMMARY_MAX && ctl_ddb_summary(text, n, &run->manifest_total, &why) == 0
                 ? CTL_OK
                 : CTL_USAGE;
    if (rc != CTL_OK)
        fprintf(stderr, "heraldctl: %s: %s\n", path, why);
    free(text);
    return rc;
}

/* One manifest-files.json line into a file of the run. */
static int manifest_entry(ddb_run_t *run, const char *dir, const char *mpath, long lineno,
                          const char *line, size_t len)
{
    char name[CTL_DDB_NAME_MAX + 1];
    long items = -1;
    const char *why = NULL;
    int rc = ctl_ddb_manifest_line(line, len, name, &items, &why);
    if (rc > 0)
        return CTL_OK;
    if (rc == 0 && run->nfiles == DDB_FILES_MAX)
        why = "more than 100000 data files";
    if (rc == 0 && !why) {
        size_t plen = strlen(dir) + strlen(name) + 7;
        char *path = xmalloc(plen);
        snprintf(path, plen, "%s/data/%s", dir, name);
        size_t nlen = strlen(name) + 6;
        char *shown = xmalloc(nlen);
        snprintf(shown, nlen, "data/%s", name);
        struct stat st;
        errno = 0;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            add_file(run, path, shown, items);
            return CTL_OK;
        }
        fprintf(stderr, "heraldctl: %s:%ld: %s: %s\n", mpath, lineno, path,
                errno ? strerror(errno) : "not a regular file");
        free(path);
        free(shown);
        return CTL_USAGE;
    }
    fprintf(stderr, "heraldctl: %s:%ld: %s\n", mpath, lineno, why);
    return CTL_USAGE;
}

/* The export folder: every data file named by manifest-files.json must be there before
 * anything is imported. */
static int read_manifest(ddb_run_t *run, const char *dir)
{
    int rc = read_summary(run, dir);
    if (rc != CTL_OK)
        return rc;
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/manifest-files.json", dir);
    FILE *f = fopen(mpath, "r");
    if (f == NULL) {
        fprintf(stderr,
                "heraldctl: %s: %s (PATH is the export folder: manifest-files.json, "
                "data/)\n",
                mpath, strerror(errno));
        return CTL_USAGE;
    }
    char *line = xmalloc(DDB_MANIFEST_LINE_MAX + 1);
    size_t len;
    long lineno = 0;
    int r;
    while (rc == CTL_OK && (r = ctl_read_line(f, line, DDB_MANIFEST_LINE_MAX, &len)) != 0) {
        lineno++;
        if (r < 0) {
            fprintf(stderr, "heraldctl: %s:%ld: line longer than %d bytes\n", mpath, lineno,
                    DDB_MANIFEST_LINE_MAX);
            rc = CTL_USAGE;
        } else {
            rc = manifest_entry(run, dir, mpath, lineno, line, len);
        }
    }
    free(line);
    fclose(f);
    if (rc == CTL_OK && run->nfiles == 0) {
        fprintf(stderr, "heraldctl: %s names no data file\n", mpath);
        rc = CTL_USAGE;
    }
    return rc;
}

static int open_input(ddb_run_t *run, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "heraldctl: %s: %s\n", path, strerror(errno));
        return CTL_USAGE;
    }
    if (S_ISDIR(st.st_mode))
        return read_manifest(run, path);
    add_file(run, xstrdup(path), xstrdup(path), -1);
    return CTL_OK;
}

/* ---- one batch: in-batch duplicates, what herald holds, the write ---- */

static void supersede(ddb_slot_t *s, int64_t by_ms)
{
    s->rec.active = false;
    snprintf(s->rec.deactivated_reason, sizeof s->rec.deactivated_reason, "reassigned");
    s->rec.deactivated_at = by_ms / 1000;
    s->superseded = true;
}

/* Orders active slots by token, then updatedAt, then position: the last of each token wins. */
static int by_token(const void *a, const void *b)
{
    const ddb_slot_t *x = *(ddb_slot_t *const *)a, *y = *(ddb_slot_t *const *)b;
    int c = strcmp(x->rec.token, y->rec.token);
    if (c == 0)
        c = x->updated_ms < y->updated_ms ? -1 : x->updated_ms > y->updated_ms;
    return c ? c : x < y ? -1 : x > y;
}

static void dedupe_batch(ddb_run_t *run)
{
    ddb_slot_t *act[DDB_BATCH];
    size_t m = 0;
    for (size_t i = 0; i < run->n; i++)
        if (run->slots[i].rec.active)
            act[m++] = &run->slots[i];
    qsort(act, m, sizeof *act, by_token);
    for (size_t i = 0; i + 1 < m; i++)
        if (strcmp(act[i]->rec.token, act[i + 1]->rec.token) == 0)
            supersede(act[i], act[i + 1]->updated_ms); /* the next one is at least as new */
}

static int64_t updated_ms(const ctl_recs_t *rs)
{
    int64_t ms;
    if (rs->n == 0 || rs->v[0].corrupt || clk_parse_iso8601(rs->v[0].rec.updated_at, &ms) != 0)
        return INT64_MIN;
    return ms;
}

/* Reads, for every slot, its stored record and its token's holder; then the holders' records. */
static int read_held(ddb_run_t *run)
{
    ctl_env_t *e = run->e;
    for (size_t i = 0; i < run->n; i++) {
        ddb_slot_t *s = &run->slots[i];
        ctl_read_async(e, s->rec.user_id, s->rec.device_id, &s->cur);
        if (s->rec.active)
            ctl_find_owner_async(e, s->rec.token, &s->owner);
        else
            s->owner.status = TOK_ENOTFOUND;
    }
    ctl_env_wait(e, 0);
    if (e->failure)
        return ctl_unavailable(e, e->failure);
    for (size_t i = 0; i < run->n; i++) {
        ddb_slot_t *s = &run->slots[i];
        const tok_owner_t *w = &s->owner.who;
        if (s->owner.status != TOK_OK || tok_valid_user(w->user_id, strlen(w->user_id)) != 0 ||
            tok_valid_device(w->device_id, strlen(w->device_id)) != 0 ||
            (strcmp(w->user_id, s->rec.user_id) == 0 &&
             strcmp(w->device_id, s->rec.device_id) == 0))
            continue;
        ctl_read_async(e, w->user_id, w->device_id, &s->holder);
    }
    ctl_env_wait(e, 0);
    return e->failure ? ctl_unavailable(e, e->failure) : CTL_OK;
}

/* The latest updatedAt wins against what herald holds (see the top of the file). */
static void decide(ddb_run_t *run)
{
    for (size_t i = 0; i < run->n; i++) {
        ddb_slot_t *s = &run->slots[i];
        if (updated_ms(&s->cur) > s->updated_ms) {
            s->skip = true;
            run->newer++;
            run->files[s->file].newer++;
            continue;
        }
        int64_t held = updated_ms(&s->holder);
        if (s->rec.active && held > s->updated_ms &&
            strcmp(s->holder.v[0].rec.token, s->rec.token) == 0)
            supersede(s, held);
        run->superseded += s->superseded;
    }
}

static void on_imported(int status, const tok_lc_import_result_t *res, void *arg)
{
    ddb_run_t *run = arg;
    if (status == 0) {
        run->sum.created += res->created;
        run->sum.updated += res->updated;
        run->sum.unchanged += res->unchanged;
        run->sum.reassigned += res->reassigned;
        run->sum.evicted += res->evicted;
        for (size_t k = 0; k < res->nrefused; k++) {
            const ddb_slot_t *s = &run->slots[run->sent[res->refused[k]]];
            ddb_file_t *f = &run->files[s->file];
            char why[TOK_USER_MAX + 128];
            snprintf(why, sizeof why,
                     "user %s is at tokens.max_devices_per_user (%ld) with no inactive or "
                     "expired device to evict",
                     s->rec.user_id, run->max_devices);
            report(run, f, s->line, "refused", why);
            f->refused++;
        }
        run->refused += (long)res->nrefused;
    } else {
        run->status = status;
    }
    ctl_env_done(run->e, status ? DB_EDOWN : 0);
}

static int write_batch(ddb_run_t *run)
{
    tok_record_t *recs = xmalloc(run->n * sizeof *recs);
    size_t m = 0;
    for (size_t i = 0; i < run->n; i++)
        if (!run->slots[i].skip) {
            run->sent[m] = i;
            recs[m++] = run->slots[i].rec;
        }
    if (m) {
        ctl_env_begin(run->e);
        tok_lc_import(run->lc, clk_wall_ms(), run->max_devices, recs, m, on_imported, run);
        ctl_env_wait(run->e, 0);
    }
    free(recs);
    return run->status ? ctl_unavailable(run->e, run->e->failure) : CTL_OK;
}

static int flush(ddb_run_t *run)
{
    int rc = CTL_OK;
    if (run->n && !run->dry) {
        dedupe_batch(run);
        rc = read_held(run);
        if (rc == CTL_OK) {
            decide(run);
            rc = write_batch(run);
        }
    }
    for (size_t i = 0; i < run->n; i++) {
        ctl_recs_cleanup(&run->slots[i].cur);
        ctl_recs_cleanup(&run->slots[i].holder);
    }
    ctl_progress_add(&run->prog, (uint64_t)(run->items - run->shown));
    run->shown = run->items;
    run->n = 0;
    return rc;
}

/* ---- reading the data files ---- */

/* One line of at most max bytes (newline and a trailing CR stripped) into line (max + 1
 * bytes). Returns 1; 0 at the end; -1 when longer (the rest of it is skipped); -2 on a read
 * error (a truncated or corrupt gzip stream). */
static int gz_line(gzFile gz, char *line, size_t max, size_t *len)
{
    size_t n = 0;
    int c, err = Z_OK;
    bool over = false;
    while ((c = gzgetc(gz)) != -1 && c != '\n') {
        if (n < max)
            line[n++] = (char)c;
        else
            over = true;
    }
    if (c == -1 && (gzerror(gz, &err), err != Z_OK))
        return -2;
    if (c == -1 && n == 0 && !over)
        return 0;
    if (n && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    *len = n;
    return over ? -1 : 1;
}

/* One line of file fi: counted by outcome, valid items queued in the batch. */
static int take_line(ddb_run_t *run, size_t fi, long lineno, const char *line, size_t len)
{
    ddb_file_t *f = &run->files[fi];
    ddb_slot_t *s = &run->slots[run->n];
    char why[160];
    unsigned flags = 0;
    int rc = ctl_ddb_item(line, len, run->now, run->ttl_days, &s->rec, &flags, why, sizeof why);
    if (rc == CTL_DDB_BLANK)
        return CTL_OK;
    run->items++;
    f->items++;
    if (rc == CTL_DDB_EXPIRED) {
        run->expired++;
        f->expired++;
        return CTL_OK;
    }
    if (rc == CTL_DDB_REJECTED) {
        run->rejected++;
        f->rejected++;
        report(run, f, lineno, "rejected", why);
        return CTL_OK;
    }
    run->valid++;
    run->derived += (flags & CTL_DDB_EXP_DERIVED) != 0;
    run->in_ms += (flags & CTL_DDB_EXP_MS) != 0;
    clk_parse_iso8601(s->rec.updated_at, &s->updated_ms);
    s->file = fi;
    s->line = lineno;
    s->skip = s->superseded = false;
    memset(&s->cur, 0, sizeof s->cur);
    memset(&s->holder, 0, sizeof s->holder);
    memset(&s->owner, 0, sizeof s->owner);
    return ++run->n == DDB_BATCH ? flush(run) : CTL_OK;
}

static void check_count(ddb_run_t *run, ddb_file_t *f)
{
    if (f->broken || f->manifest_items < 0 || f->items == f->manifest_items)
        return;
    char why[160];
    snprintf(why, sizeof why, "%ld item(s) read, manifest-files.json says %ld (incomplete copy?)",
             f->items, f->manifest_items);
    broken(run, f, 0, why);
}

/* The items of every file against manifest-summary.json's itemCount (when the files alone
 * agree with manifest-files.json, a file missing from that manifest shows here). */
static void check_total(ddb_run_t *run, const char *dir)
{
    if (run->manifest_total < 0 || run->items == run->manifest_total || run->broken)
        return;
    char name[32] = "manifest-summary.json", why[160];
    ddb_file_t f = {.name = name};
    snprintf(why, sizeof why, "%ld item(s) read in %s, itemCount says %ld", run->items, dir,
             run->manifest_total);
    broken(run, &f, 0, why);
}

static int read_file(ddb_run_t *run, size_t fi, char *line)
{
    ddb_file_t *f = &run->files[fi];
    gzFile gz = gzopen(f->path, "rb");
    if (gz == NULL) {
        broken(run, f, 0, errno ? strerror(errno) : "cannot open");
        return CTL_OK;
    }
    gzbuffer(gz, 128 * 1024);
    size_t len;
    long lineno = 0;
    int r, rc = CTL_OK;
    char why[96];
    while (rc == CTL_OK && (r = gz_line(gz, line, CTL_DDB_LINE_MAX, &len)) != 0) {
        lineno++;
        if (r == -2) {
            int err;
            snprintf(why, sizeof why, "read error: %s", gzerror(gz, &err));
            broken(run, f, lineno, why);
            break;
        }
        /* An over-long line is given to the parser at its full length: it says why. */
        rc = take_line(run, fi, lineno, line, r < 0 ? CTL_DDB_LINE_MAX + 1 : len);
    }
    gzclose(gz);
    check_count(run, f);
    ctl_progress_add(&run->prog, (uint64_t)(run->items - run->shown));
    run->shown = run->items;
    return rc;
}

/* ---- the report ---- */

static void files_json(const ddb_run_t *run, buf_t *b)
{
    ctl_json_open(b, "files", '[');
    for (size_t i = 0; i < run->nfiles; i++) {
        const ddb_file_t *f = &run->files[i];
        ctl_json_open(b, NULL, '{');
        ctl_json_str(b, "file", f->name);
        ctl_json_int(b, "items", f->items);
        if (f->manifest_items >= 0)
            ctl_json_int(b, "manifestItems", f->manifest_items);
        ctl_json_int(b, "expired", f->expired);
        ctl_json_int(b, "rejected", f->rejected);
        ctl_json_int(b, "refused", f->refused);
        ctl_json_int(b, "newer", f->newer);
        ctl_json_bool(b, "complete", !f->broken);
        ctl_json_close(b, '}');
    }
    ctl_json_close(b, ']');
}

static void summary_json(const ddb_run_t *run)
{
    const tok_lc_import_result_t *s = &run->sum;
    buf_t b = BUF_INIT;
    ctl_json_open(&b, NULL, '{');
    files_json(run, &b);
    const struct {
        const char *k;
        long v;
    } n[] = {{"items", run->items},           {"valid", run->valid},
             {"expired", run->expired},       {"rejected", run->rejected},
             {"refused", run->refused},       {"newer", run->newer},
             {"superseded", run->superseded}, {"created", s->created},
             {"updated", s->updated},         {"unchanged", s->unchanged},
             {"reassigned", s->reassigned},   {"evicted", s->evicted},
             {"expiryDerived", run->derived}, {"expiryInMs", run->in_ms},
             {"incompleteFiles", run->broken}};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        ctl_json_int(&b, n[i].k, n[i].v);
    ctl_json_bool(&b, "dryRun", run->dry);
    ctl_json_close(&b, '}');
    ctl_json_print(&b, stdout);
    buf_cleanup(&b);
}

static void files_table(const ddb_run_t *run)
{
    static const char *const hdr[] = {"FILE",     "ITEMS",   "MANIFEST", "EXPIRED",
                                      "REJECTED", "REFUSED", "NEWER"};
    ctl_table_t t;
    ctl_table_init(&t, 7, hdr);
    for (size_t i = 0; i < run->nfiles; i++) {
        const ddb_file_t *f = &run->files[i];
        char c[6][24];
        long v[6] = {f->items, f->manifest_items, f->expired, f->rejected, f->refused, f->newer};
        for (int k = 0; k < 6; k++)
            snprintf(c[k], sizeof c[k], "%ld", v[k]);
        const char *row[7] = {f->name, c[0], v[1] < 0 ? NULL : c[1], c[2], c[3], c[4], c[5]};
        ctl_table_row(&t, row);
    }
    ctl_table_print(&t, stdout);
    ctl_table_cleanup(&t);
}

static void summary_text(const ddb_run_t *run)
{
    const tok_lc_import_result_t *s = &run->sum;
    if (run->nfiles > 1 || run->files[0].manifest_items >= 0)
        files_table(run);
    if (run->dry)
        printf("validated %ld item(s) of %ld in %zu file(s); %ld expired (dropped), %ld "
               "rejected\n",
               run->valid, run->items, run->nfiles, run->expired, run->rejected);
    else
        printf("imported %ld item(s) of %ld in %zu file(s): %ld created, %ld updated, %ld "
               "unchanged, %ld reassigned, %ld evicted; %ld superseded (imported inactive); %ld "
               "expired (dropped), %ld newer in herald (skipped); %ld rejected, %ld refused\n",
               run->valid - run->refused - run->newer, run->items, run->nfiles, s->created,
               s->updated, s->unchanged, s->reassigned, s->evicted, run->superseded, run->expired,
               run->newer, run->rejected, run->refused);
    if (run->derived || run->in_ms)
        printf("expiresAt: %ld item(s) without one got updatedAt + %ld days; %ld given in "
               "milliseconds\n",
               run->derived, run->ttl_days, run->in_ms);
    if (run->broken)
        printf("%ld file(s) not read whole or not as the manifests say (listed on stderr)\n",
               run->broken);
}

/* ---- the command ---- */

static void run_cleanup(ddb_run_t *run)
{
    for (size_t i = 0; i < run->nfiles; i++) {
        free(run->files[i].path);
        free(run->files[i].name);
    }
    free(run->files);
    free(run->slots);
    free(run->sent);
    tok_lc_destroy(run->lc);
}

int ctl_import_dynamo(ctl_env_t *e, const char *path, bool dry, bool json)
{
    ddb_run_t run = {.e = e,
                     .dry = dry,
                     .json = json,
                     .now = clk_wall_ms() / 1000,
                     .ttl_days = e->conf->tokens_ttl_days,
                     .max_devices = e->conf->tokens_max_devices_per_user,
                     .manifest_total = -1};
    int rc = open_input(&run, path);
    if (rc != CTL_OK) {
        run_cleanup(&run);
        return rc;
    }
    if (!json)
        fprintf(stderr,
                "%s %zu data file(s)%s: items expired by now are dropped; without expiresAt, "
                "updatedAt + %ld days\n",
                dry ? "validating" : "importing", run.nfiles,
                run.nfiles > 1 ? " of the export" : "", run.ttl_days);
    run.lc = tok_lc_create(e->db, e->conf->redis_prefix);
    run.slots = xmalloc(DDB_BATCH * sizeof *run.slots);
    run.sent = xmalloc(DDB_BATCH * sizeof *run.sent);
    char *line = xmalloc(CTL_DDB_LINE_MAX + 1);
    ctl_progress_start(&run.prog, "import",
                       run.manifest_total > 0 ? (uint64_t)run.manifest_total : 0);
    for (size_t i = 0; rc == CTL_OK && i < run.nfiles; i++)
        rc = read_file(&run, i, line);
    if (rc == CTL_OK)
        rc = flush(&run);
    ctl_progress_end(&run.prog);
    if (rc == CTL_OK)
        check_total(&run, path);
    free(line);
    if (rc == CTL_OK) {
        if (json)
            summary_json(&run);
        else
            summary_text(&run);
    }
    bool partial = run.rejected || run.refused || run.broken;
    run_cleanup(&run);
    return rc != CTL_OK ? rc : partial ? CTL_PARTIAL : CTL_OK;
}
