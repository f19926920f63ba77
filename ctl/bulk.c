/* bulk.c - `heraldctl tokens count|sweep|cleanup|export|import`: jobs over every token, in
 * bounded chunks (SCAN cursors, expiry-index ranges, batches of import lines), so they run in
 * constant memory on millions of tokens. Removal and import use tokens/lifecycle.h, the same
 * scripts as the in-daemon sweep (import by registration's rules); export and the counts read
 * through tokens/store.h. Import lines are parsed by ctl/lines.h; a DynamoDB export is read by
 * ctl/dynamo_import.c. */
#include "core/clock.h"
#include "core/xalloc.h"
#include "ctl/dynamo.h"
#include "ctl/lines.h"
#include "ctl/tokens.h"
#include "db/keys.h"
#include "tokens/lifecycle.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int64_t now_s(void)
{
    return clk_wall_ms() / 1000;
}

typedef struct count_req {
    ctl_env_t *e;
    long long n;
} count_req_t;

static void on_count(int status, long long n, void *arg)
{
    count_req_t *q = arg;
    q->n = status == TOK_OK ? n : -1;
    ctl_env_done(q->e, ctl_tok_failure(status));
}

/* Expiry index entries with expiresAt <= max (INT64_MAX: about the number of records), or -1
 * when Redis did not answer (printed). */
static long long count_expiring(ctl_env_t *e, int64_t max)
{
    count_req_t q = {.e = e, .n = -1};
    ctl_env_begin(e);
    tok_store_count_expiring(e->store, max, on_count, &q);
    ctl_env_wait(e, 0);
    if (e->failure)
        ctl_unavailable(e, e->failure);
    return q.n;
}

/* Approximate number of records, for the progress bar (the expiry index has one entry per
 * record). */
static uint64_t approx_total(ctl_env_t *e)
{
    long long n = count_expiring(e, INT64_MAX);
    return n > 0 ? (uint64_t)n : 0;
}

/* ---- chunk driver: one lifecycle call at a time, results accumulated ---- */

typedef struct chunk_run {
    ctl_env_t *e;
    bool json, print_items, dry;
    int status;
    tok_lc_result_t sum;
    char cursor[64];
    bool done;
    long last_examined;
} chunk_run_t;

static void print_item(const chunk_run_t *c, const char *item, bool dry)
{
    const char *s1 = strchr(item, TOK_SEP);
    const char *s2 = s1 ? strchr(s1 + 1, TOK_SEP) : NULL;
    if (s2 == NULL)
        return;
    char user[TOK_USER_MAX + 1], dev[TOK_DEVICE_MAX + 1];
    snprintf(user, sizeof user, "%.*s", (int)(s1 - item), item);
    snprintf(dev, sizeof dev, "%.*s", (int)(s2 - s1 - 1), s1 + 1);
    if (c->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "userId", user);
        ctl_json_str(&b, "deviceId", dev);
        ctl_json_str(&b, "why", s2 + 1);
        ctl_json_str(&b, "action", dry ? "would remove" : "removed");
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else {
        printf("%s %s/%s (%s)\n", dry ? "would remove" : "removed", user, dev, s2 + 1);
    }
}

static void on_chunk(int status, const tok_lc_result_t *res, void *arg)
{
    chunk_run_t *c = arg;
    c->status = status;
    if (status == 0) {
        tok_lc_result_t *s = &c->sum;
        s->examined += res->examined;
        s->removed_expired += res->removed_expired;
        s->removed_stale += res->removed_stale;
        s->rescored += res->rescored;
        s->removed_inactive += res->removed_inactive;
        s->active += res->active;
        s->inactive += res->inactive;
        s->expired += res->expired;
        s->corrupt += res->corrupt;
        s->owners_written += res->owners_written;
        s->legacy_removed += res->legacy_removed;
        c->last_examined = res->examined;
        c->done = res->done;
        if (res->cursor)
            snprintf(c->cursor, sizeof c->cursor, "%s", res->cursor);
        for (size_t i = 0; c->print_items && i < res->nitems; i++)
            print_item(c, res->items[i], c->dry);
    }
    ctl_env_done(c->e, status ? DB_EDOWN : 0);
}

/* Runs SCAN chunks until the cursor comes back to 0. */
static int scan_all(ctl_env_t *e, tok_lc_t *lc, const tok_lc_scan_opts_t *o, chunk_run_t *c,
                    const char *what)
{
    ctl_progress_t p;
    ctl_progress_start(&p, what, approx_total(e));
    snprintf(c->cursor, sizeof c->cursor, "0");
    do {
        ctl_env_begin(e);
        tok_lc_scan_chunk(lc, c->cursor, o, on_chunk, c);
        ctl_env_wait(e, 0);
        ctl_progress_add(&p, (uint64_t)c->last_examined);
    } while (c->status == 0 && !c->done);
    ctl_progress_end(&p);
    return c->status ? ctl_unavailable(e, e->failure) : CTL_OK;
}

/* ---- count ---- */

static const char COUNT_USAGE[] =
    "usage: heraldctl tokens count [--active | --inactive | --expired] [--json]\n"
    "Counts records by state over a SCAN of every device hash (active = isActive and not\n"
    "expired; expired = expiresAt <= now, whatever isActive says). With one state flag only\n"
    "that number is printed.\n";

int ctl_tokens_count(ctl_env_t *e, int argc, char **argv)
{
    bool json = false, a = false, ina = false, ex = false;
    ctl_opt_t opts[] = {{"--active", NULL, CTL_OPT_FLAG, &a, false},
                        {"--inactive", NULL, CTL_OPT_FLAG, &ina, false},
                        {"--expired", NULL, CTL_OPT_FLAG, &ex, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, COUNT_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (a + ina + ex > 1) {
        fputs(COUNT_USAGE, stderr);
        return CTL_USAGE;
    }
    tok_lc_t *lc = tok_lc_create(e->db, e->conf->redis_prefix);
    chunk_run_t c = {.e = e};
    tok_lc_scan_opts_t o = {.now_s = now_s(), .inactive_cutoff = -1, .count = 500};
    rc = scan_all(e, lc, &o, &c, "count");
    tok_lc_destroy(lc);
    if (rc != CTL_OK)
        return rc;
    const tok_lc_result_t *s = &c.sum;
    long one = a ? s->active : ina ? s->inactive : s->expired;
    if (json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        if (a || ina || ex) {
            ctl_json_int(&b, a ? "active" : ina ? "inactive" : "expired", one);
        } else {
            ctl_json_int(&b, "active", s->active);
            ctl_json_int(&b, "inactive", s->inactive);
            ctl_json_int(&b, "expired", s->expired);
            ctl_json_int(&b, "corrupt", s->corrupt);
            ctl_json_int(&b, "total", s->examined);
        }
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else if (a || ina || ex)
        printf("%ld\n", one);
    else
        printf("STATE     COUNT\nactive    %ld\ninactive  %ld\nexpired   %ld\ncorrupt   %ld\n"
               "total     %ld\n",
               s->active, s->inactive, s->expired, s->corrupt, s->examined);
    return CTL_OK;
}

/* ---- sweep ---- */

static const char SWEEP_USAGE[] =
    "usage: heraldctl tokens sweep [--dry-run] [--chunk N] [--verbose] [--json]\n"
    "Removes every record whose expiresAt has passed, with its owner key and expiry entry, in\n"
    "chunks of N (default 500) from each expiry bucket. --dry-run lists what would go;\n"
    "--verbose lists what went.\n";

static void print_summary(const chunk_run_t *c, bool dry, const char *kind)
{
    const tok_lc_result_t *s = &c->sum;
    const char *verb = dry ? "would remove" : "removed";
    if (c->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_open(&b, "summary", '{');
        ctl_json_bool(&b, "dryRun", dry);
        ctl_json_int(&b, "expired", s->removed_expired);
        ctl_json_int(&b, "inactive", s->removed_inactive);
        ctl_json_int(&b, "staleIndex", s->removed_stale);
        ctl_json_int(&b, "rescored", s->rescored);
        ctl_json_close(&b, '}');
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else if (strcmp(kind, "sweep") == 0)
        printf("%s %ld expired token(s), %ld stale index entr%s; %ld index entr%s rescored\n", verb,
               s->removed_expired, s->removed_stale, s->removed_stale == 1 ? "y" : "ies",
               s->rescored, s->rescored == 1 ? "y" : "ies");
    else
        printf("%s %ld inactive token(s); kept %ld active, %ld inactive, %ld expired (for "
               "sweep), %ld corrupt\n",
               verb, s->removed_inactive, s->active, s->inactive, s->expired, s->corrupt);
}

int ctl_tokens_sweep(ctl_env_t *e, int argc, char **argv)
{
    bool dry = false, verbose = false;
    long chunk = 500;
    chunk_run_t c = {.e = e};
    ctl_opt_t opts[] = {{"--dry-run", "-n", CTL_OPT_FLAG, &dry, false},
                        {"--chunk", NULL, CTL_OPT_LONG, &chunk, false},
                        {"--verbose", "-v", CTL_OPT_FLAG, &verbose, false},
                        {"--json", NULL, CTL_OPT_FLAG, &c.json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, SWEEP_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (chunk < 1 || chunk > 10000) {
        fputs(SWEEP_USAGE, stderr);
        return CTL_USAGE;
    }
    int64_t now = now_s();
    long long due = count_expiring(e, now);
    if (due < 0)
        return CTL_UNAVAILABLE;
    if (!c.json)
        fprintf(stderr, "%s %lld expired index entr%s (expiresAt <= now)\n",
                dry ? "checking" : "removing", due, due == 1 ? "y" : "ies");
    c.print_items = dry || verbose;
    c.dry = dry;
    tok_lc_t *lc = tok_lc_create(e->db, e->conf->redis_prefix);
    ctl_progress_t p;
    ctl_progress_start(&p, "sweep", (uint64_t)due);
    for (unsigned b = 0; b < KEY_TOKEN_BUCKETS && c.status == 0; b++) {
        long walked = 0;
        do {
            ctl_env_begin(e);
            /* Dry runs walk the range by offset; real runs always take its head. */
            tok_lc_expire_chunk(lc, b, now, walked, chunk, dry, c.print_items, on_chunk, &c);
            ctl_env_wait(e, 0);
            walked += c.last_examined;
            ctl_progress_add(&p, (uint64_t)c.last_examined);
        } while (c.status == 0 && c.last_examined == chunk);
    }
    ctl_progress_end(&p);
    tok_lc_destroy(lc);
    if (c.status)
        return ctl_unavailable(e, e->failure);
    print_summary(&c, dry, "sweep");
    return CTL_OK;
}

/* ---- cleanup ---- */

static const char CLEANUP_USAGE[] =
    "usage: heraldctl tokens cleanup [--inactive-older-than 30d] [--dry-run] [--verbose] [--json]\n"
    "Removes inactive tokens deactivated (or, without deactivatedAt, last updated) longer ago\n"
    "than the given age (default tokens.inactive_retention_days), with their index entries.\n"
    "--dry-run lists what would go; --verbose lists what went.\n";

int ctl_tokens_cleanup(ctl_env_t *e, int argc, char **argv)
{
    bool dry = false, verbose = false;
    int64_t age = e->conf->tokens_inactive_retention_days * 86400;
    chunk_run_t c = {.e = e};
    ctl_opt_t opts[] = {{"--inactive-older-than", NULL, CTL_OPT_DURATION, &age, false},
                        {"--dry-run", "-n", CTL_OPT_FLAG, &dry, false},
                        {"--verbose", "-v", CTL_OPT_FLAG, &verbose, false},
                        {"--json", NULL, CTL_OPT_FLAG, &c.json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, CLEANUP_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    int64_t now = now_s();
    char cut[40];
    clk_iso8601(now - age, cut, sizeof cut);
    if (!c.json)
        fprintf(stderr, "%s inactive tokens deactivated before %s\n", dry ? "listing" : "removing",
                cut);
    c.print_items = dry || verbose;
    c.dry = dry;
    tok_lc_t *lc = tok_lc_create(e->db, e->conf->redis_prefix);
    tok_lc_scan_opts_t o = {.now_s = now,
                            .inactive_cutoff = now - age,
                            .dry_run = dry,
                            .want_items = c.print_items,
                            .count = 200};
    rc = scan_all(e, lc, &o, &c, "cleanup");
    tok_lc_destroy(lc);
    if (rc == CTL_OK)
        print_summary(&c, dry, "cleanup");
    return rc;
}

/* ---- reindex ---- */

static const char REINDEX_USAGE[] =
    "usage: heraldctl tokens reindex [--json]\n"
    "Rebuilds the owner keys and expiry buckets from the device hashes (under registration's\n"
    "rules) and removes the keys of the schema before token buckets (<prefix>owner:<token>,\n"
    "<prefix>expiry). Run once after upgrading from it; running it again changes nothing.\n";

int ctl_tokens_reindex(ctl_env_t *e, int argc, char **argv)
{
    chunk_run_t c = {.e = e};
    ctl_opt_t opts[] = {{"--json", NULL, CTL_OPT_FLAG, &c.json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, REINDEX_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    tok_lc_t *lc = tok_lc_create(e->db, e->conf->redis_prefix);
    int64_t now = now_s();
    snprintf(c.cursor, sizeof c.cursor, "0");
    do {
        ctl_env_begin(e);
        tok_lc_reindex_chunk(lc, c.cursor, 1000, now, on_chunk, &c);
        ctl_env_wait(e, 0);
    } while (c.status == 0 && !c.done);
    tok_lc_destroy(lc);
    if (c.status)
        return ctl_unavailable(e, e->failure);
    const tok_lc_result_t *sum = &c.sum;
    if (c.json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_int(&b, "records", sum->examined);
        ctl_json_int(&b, "ownerKeysWritten", sum->owners_written);
        ctl_json_int(&b, "oldKeysRemoved", sum->legacy_removed);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else {
        printf("indexed %ld record(s): %ld owner key(s) written, %ld old key(s) removed\n",
               sum->examined, sum->owners_written, sum->legacy_removed);
    }
    return CTL_OK;
}

/* ---- export ---- */

typedef struct export_run {
    ctl_env_t *e;
    FILE *out;
    bool inactive_only;
    int64_t older_than; /* <0: no filter */
    int64_t now;
    long written, corrupt, seen;
    buf_t line;
    char cursor[64]; /* the SCAN cursor, "0" at the start and at the end */
} export_run_t;

static bool export_wants(const export_run_t *x, const tok_record_t *r)
{
    if (x->inactive_only && r->active)
        return false;
    if (x->older_than >= 0) {
        int64_t since = r->active ? 0 : ctl_rec_inactive_since(r);
        int64_t ms = 0;
        if (r->active && clk_parse_iso8601(r->updated_at, &ms) == 0)
            since = ms / 1000;
        if (since == 0 || since >= x->now - x->older_than)
            return false;
    }
    return true;
}

static void export_entries(export_run_t *x, const tok_entry_t *es, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x->seen++;
        if (es[i].corrupt) {
            fprintf(stderr, "skipped corrupt record of user %s device %s: %s\n", es[i].user_id,
                    es[i].device_id, es[i].err);
            x->corrupt++;
            continue;
        }
        if (!export_wants(x, &es[i].rec))
            continue;
        buf_reset(&x->line);
        tok_record_json(&es[i].rec, &x->line);
        buf_putc(&x->line, '\n');
        fwrite(x->line.data, 1, x->line.len, x->out);
        x->written++;
    }
}

static void on_scanned(int status, const tok_entry_t *es, size_t n, const char *cursor, void *arg)
{
    export_run_t *x = arg;
    if (status == TOK_OK) {
        export_entries(x, es, n);
        snprintf(x->cursor, sizeof x->cursor, "%s", cursor ? cursor : "0");
    }
    ctl_env_done(x->e, ctl_tok_failure(status));
}

/* One SCAN step: the records of the device hashes it returned. */
static int export_step(export_run_t *x)
{
    ctl_env_begin(x->e);
    tok_store_scan(x->e->store, x->cursor, 1000, on_scanned, x);
    ctl_env_wait(x->e, 0);
    return x->e->failure ? ctl_unavailable(x->e, x->e->failure) : CTL_OK;
}

static const char EXPORT_USAGE[] =
    "usage: heraldctl tokens export [--inactive] [--older-than 30d] [-o FILE]\n"
    "Writes records as JSON lines (stdout by default), in SCAN order with bounded memory.\n"
    "--inactive: only inactive records; --older-than: only records inactive (or, when active,\n"
    "not updated) for longer than that. Corrupt records are reported on stderr and skipped\n"
    "(exit 4 when any were).\n";

int ctl_tokens_export(ctl_env_t *e, int argc, char **argv)
{
    const char *path = NULL;
    export_run_t x = {.e = e, .older_than = -1, .now = now_s()};
    ctl_opt_t opts[] = {{"--inactive", NULL, CTL_OPT_FLAG, &x.inactive_only, false},
                        {"--older-than", NULL, CTL_OPT_DURATION, &x.older_than, false},
                        {"--output", "-o", CTL_OPT_STR, &path, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, EXPORT_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    x.out = path && strcmp(path, "-") != 0 ? fopen(path, "w") : stdout;
    if (x.out == NULL) {
        fprintf(stderr, "heraldctl: cannot write %s\n", path);
        return CTL_USAGE;
    }
    ctl_progress_t p;
    ctl_progress_start(&p, "export", approx_total(e));
    snprintf(x.cursor, sizeof x.cursor, "0");
    do {
        long before = x.seen;
        rc = export_step(&x);
        ctl_progress_add(&p, (uint64_t)(x.seen - before));
    } while (rc == CTL_OK && strcmp(x.cursor, "0") != 0);
    ctl_progress_end(&p);
    buf_cleanup(&x.line);
    if (fflush(x.out) != 0 || (x.out != stdout && fclose(x.out) != 0)) {
        fprintf(stderr, "heraldctl: write failed\n");
        return CTL_UNAVAILABLE;
    }
    fprintf(stderr, "exported %ld record(s) of %ld seen, %ld corrupt skipped\n", x.written, x.seen,
            x.corrupt);
    return rc != CTL_OK ? rc : x.corrupt ? CTL_PARTIAL : CTL_OK;
}

/* ---- import ---- */

#define IMPORT_BATCH 500
#define IMPORT_INFLIGHT 4

typedef struct import_run {
    ctl_env_t *e;
    tok_lc_t *lc;
    bool dry, json;
    long max_devices;
    long lines, ok, rejected, refused;
    tok_lc_import_result_t sum;
    int status;
} import_run_t;

/* One batch of valid lines, kept until its script answers to name the refused ones. */
typedef struct import_batch {
    import_run_t *im;
    size_t n;
    long lineno[IMPORT_BATCH];
    tok_record_t recs[IMPORT_BATCH];
} import_batch_t;

/* A line that is not imported: kind "rejected" (invalid) or "refused" (the device limit). */
static void report_line(const import_run_t *im, long lineno, const char *kind, const char *why)
{
    if (im->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_int(&b, "line", lineno);
        ctl_json_str(&b, kind, why);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stderr);
        buf_cleanup(&b);
    } else {
        fprintf(stderr, "line %ld: %s: %s\n", lineno, kind, why);
    }
}

static void on_imported(int status, const tok_lc_import_result_t *res, void *arg)
{
    import_batch_t *bt = arg;
    import_run_t *im = bt->im;
    if (status == 0) {
        im->sum.created += res->created;
        im->sum.updated += res->updated;
        im->sum.unchanged += res->unchanged;
        im->sum.reassigned += res->reassigned;
        im->sum.evicted += res->evicted;
        for (size_t k = 0; k < res->nrefused; k++) {
            char why[TOK_USER_MAX + 128];
            snprintf(why, sizeof why,
                     "user %s is at tokens.max_devices_per_user (%ld) with no inactive or "
                     "expired device to evict",
                     bt->recs[res->refused[k]].user_id, im->max_devices);
            report_line(im, bt->lineno[res->refused[k]], "refused", why);
        }
        im->refused += (long)res->nrefused;
    } else {
        im->status = status;
    }
    free(bt);
    ctl_env_done(im->e, status ? DB_EDOWN : 0);
}

/* Sends the batch (which it takes) and returns a fresh one. */
static import_batch_t *import_flush(import_run_t *im, import_batch_t *bt)
{
    if (bt->n == 0 || im->dry) {
        bt->n = 0;
        return bt;
    }
    ctl_env_begin(im->e);
    tok_lc_import(im->lc, clk_wall_ms(), im->max_devices, bt->recs, bt->n, on_imported, bt);
    ctl_env_wait(im->e, IMPORT_INFLIGHT); /* bounded pipelining */
    import_batch_t *next = xmalloc(sizeof *next);
    next->im = im;
    next->n = 0;
    return next;
}

static int import_stream(import_run_t *im, FILE *f)
{
    import_batch_t *bt = xmalloc(sizeof *bt);
    bt->im = im;
    bt->n = 0;
    char *line = xmalloc(4097);
    char err[128];
    size_t len;
    int r;
    ctl_progress_t p;
    ctl_progress_start(&p, "import", 0);
    while (im->status == 0 && (r = ctl_read_line(f, line, 4096, &len)) != 0) {
        im->lines++;
        const char *why = "line longer than 4096 bytes";
        int pr = r < 0 ? -1 : ctl_import_line(line, len, &bt->recs[bt->n], err, sizeof err, &why);
        if (pr > 0)
            continue;
        if (pr < 0) {
            im->rejected++;
            report_line(im, im->lines, "rejected", why);
            continue;
        }
        im->ok++;
        bt->lineno[bt->n] = im->lines;
        if (++bt->n == IMPORT_BATCH) {
            ctl_progress_add(&p, bt->n);
            bt = import_flush(im, bt);
        }
    }
    bt = import_flush(im, bt);
    free(bt);
    ctl_env_wait(im->e, 0);
    ctl_progress_end(&p);
    free(line);
    return im->status ? ctl_unavailable(im->e, im->e->failure) : CTL_OK;
}

static void import_summary(const import_run_t *im)
{
    const tok_lc_import_result_t *s = &im->sum;
    if (im->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_int(&b, "lines", im->lines);
        ctl_json_int(&b, "valid", im->ok);
        ctl_json_int(&b, "rejected", im->rejected);
        ctl_json_int(&b, "created", s->created);
        ctl_json_int(&b, "updated", s->updated);
        ctl_json_int(&b, "unchanged", s->unchanged);
        ctl_json_int(&b, "reassigned", s->reassigned);
        ctl_json_int(&b, "evicted", s->evicted);
        ctl_json_int(&b, "refused", im->refused);
        ctl_json_bool(&b, "dryRun", im->dry);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else {
        printf("%s %ld record(s) of %ld line(s): %ld created, %ld updated, %ld unchanged, %ld "
               "reassigned, %ld evicted; %ld rejected, %ld refused\n",
               im->dry ? "validated" : "imported", im->ok - im->refused, im->lines, s->created,
               s->updated, s->unchanged, s->reassigned, s->evicted, im->rejected, im->refused);
    }
}

static const char IMPORT_USAGE[] =
    "usage: heraldctl tokens import [-i FILE | FILE] [--dry-run] [--json]\n"
    "       heraldctl tokens import --format dynamodb-json PATH [--dry-run] [--json]\n"
    "Restores JSON lines as written by `tokens export` (stdin by default) under the rules of\n"
    "registration: a token imported for another user or device deactivates its previous binding\n"
    "(reason reassigned), and tokens.max_devices_per_user holds (inactive or expired devices are\n"
    "evicted first, oldest first; past that the line is refused). Every line is validated (field\n"
    "formats, ISO-8601 times, expiresAt); registeredAt, updatedAt, isActive and expiresAt are\n"
    "kept. A record already stored as given is left alone: importing the same file twice\n"
    "changes nothing. Rejected and refused lines are listed on stderr with their numbers; the\n"
    "exit code is then 4 (the other lines are imported). --dry-run only validates.\n"
    "--format dynamodb-json reads the seed's DynamoDB table as `aws dynamodb\n"
    "export-table-to-point-in-time --export-format DYNAMODB_JSON` wrote it: PATH is the export\n"
    "folder (manifest-files.json, data/*.json.gz) or one .json/.json.gz data file. Expired items\n"
    "are dropped; an item without expiresAt expires updatedAt + tokens.ttl_days; where items\n"
    "or herald's records disagree, the latest updatedAt wins (older items are skipped, or\n"
    "imported inactive when only their token was taken). Lines are reported as FILE:LINE.\n";

int ctl_tokens_import(ctl_env_t *e, int argc, char **argv)
{
    const char *path = NULL, *format = "jsonl", *pos[1];
    int npos = 0;
    import_run_t im = {.e = e, .max_devices = e->conf->tokens_max_devices_per_user};
    ctl_opt_t opts[] = {{"--input", "-i", CTL_OPT_STR, &path, false},
                        {"--format", NULL, CTL_OPT_STR, &format, false},
                        {"--dry-run", "-n", CTL_OPT_FLAG, &im.dry, false},
                        {"--json", NULL, CTL_OPT_FLAG, &im.json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, pos, 1, &npos, IMPORT_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    bool dynamo = strcmp(format, "dynamodb-json") == 0;
    if ((npos && path) || (!dynamo && strcmp(format, "jsonl") != 0) || (dynamo && !npos && !path)) {
        fputs(IMPORT_USAGE, stderr);
        return CTL_USAGE;
    }
    if (npos)
        path = pos[0];
    if (dynamo)
        return ctl_import_dynamo(e, path, im.dry, im.json);
    FILE *f = path && strcmp(path, "-") != 0 ? fopen(path, "r") : stdin;
    if (f == NULL) {
        fprintf(stderr, "heraldctl: cannot open %s\n", path);
        return CTL_USAGE;
    }
    im.lc = tok_lc_create(e->db, e->conf->redis_prefix);
    rc = import_stream(&im, f);
    tok_lc_destroy(im.lc);
    if (f != stdin)
        fclose(f);
    import_summary(&im);
    return rc != CTL_OK ? rc : im.rejected || im.refused ? CTL_PARTIAL : CTL_OK;
}
