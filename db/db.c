/* db.c - the Redis adapter: hiredis 0.14 async on the libuv loop, plus what hiredis lacks.
 *
 * Every command sent to hiredis is a cmd_t kept in a FIFO with a deadline (Redis answers in
 * order, so the head is always the oldest). One timer watches the head: when it is overdue the
 * server is stuck, so every pending command fails with DB_ETIMEOUT and the connection is dropped
 * and re-established with backoff. A connect that never completes is bounded the same way.
 *
 * Ownership of a cmd_t: once handed to hiredis, hiredis calls on_reply exactly once for it (with
 * a reply, or with NULL when the context is freed), and on_reply frees it. When we fail a command
 * ourselves (timeout, shutdown, lost connection) we run its callback and mark it `done`; the late
 * NULL reply hiredis fires for it afterwards only frees it. Commands that never reach hiredis
 * (not connected) sit in the `deferred` list and fail from a uv_idle callback, never inside the
 * call that issued them.
 *
 * On every connect: AUTH (when there is a password), SELECT (db != 0), then PING; the connection
 * counts as ready only after all three answered, so a server that accepts TCP but is stuck (e.g.
 * SIGSTOPped) is never reported up. */
#include "db/db.h"
#include "db/url.h"

#include "core/backoff.h"
#include "core/list.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include "core/clock.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include <openssl/evp.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
#define MAX_VA_ARGS 64

typedef enum { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_READY } conn_state_t;

typedef struct cmd cmd_t;
struct cmd {
    list_node_t node; /* in db->fifo or db->deferred */
    db_t *db;
    db_cb cb;
    void (*fn)(void *arg); /* db_defer: a plain function instead of cb */
    void *arg;
    uint64_t deadline; /* monotonic ms */
    int status;        /* deferred: what to deliver */
    bool done;         /* callback already ran; hiredis may still report it (NULL reply) */
    bool internal;     /* handshake command: not counted in flight */
    db_script_t *script;
    int argc; /* eval: the full EVALSHA argv, kept for the EVAL resend */
    const char **argv;
    size_t *argvlen;
};

struct db_script {
    db_script_t *next;
    char *lua;
    size_t len;
    char sha[41];
};

struct db {
    uv_loop_t *loop;
    db_url_t url;
    uint64_t timeout_ms;
    char *name;
    redisAsyncContext *ac; /* NULL unless CONNECTING/HANDSHAKE/READY */
    conn_state_t state;
    bool closing;
    bool outage_logged; /* one log line per outage, not per failed attempt */
    unsigned attempt;
    uint64_t connect_deadline;
    unsigned handshake_left;
    list_t fifo, deferred; /* of cmd_t */
    uv_timer_t deadline_timer, retry_timer;
    uv_idle_t idle;
    int open_handles;
    char last_error[128];
    void (*state_cb)(bool up, void *arg);
    void *state_arg;
    db_script_t *scripts;
    long inflight;
    metric_t *m_up, *m_timeout, *m_disconnect, *m_reply, *m_reconnects, *m_inflight;
};

static void conn_start(db_t *db);
static void arm_deadline(db_t *db, bool force);

/* The oldest command of a list, or NULL. */
static cmd_t *first_cmd(const list_t *l)
{
    return list_first_entry(l, cmd_t, node);
}

static void mset(metric_t *m, double v)
{
    if (m)
        metric_set(m, v);
}

static void minc(metric_t *m)
{
    if (m)
        metric_inc(m);
}

static void fifo_push(db_t *db, cmd_t *c)
{
    list_push_back(&db->fifo, &c->node);
    if (!c->internal)
        mset(db->m_inflight, (double)++db->inflight);
}

static void fifo_remove(db_t *db, cmd_t *c)
{
    list_remove(&c->node);
    if (!c->internal)
        mset(db->m_inflight, (double)--db->inflight);
}

static cmd_t *cmd_new(db_t *db, db_cb cb, void *arg)
{
    cmd_t *c = xcalloc(1, sizeof *c);
    c->db = db;
    c->cb = cb;
    c->arg = arg;
    return c;
}

static void cmd_free(cmd_t *c)
{
    free(c->argv); /* one block with argvlen and the copied bytes */
    free(c);
}

/* ---- deferred completions ---- */

/* Runs the completions deferred so far, each with its own status, or with `status` when it is
 * not DB_OK (shutdown). What they add meanwhile waits for the next call. */
static void run_deferred(db_t *db, int status)
{
    list_t batch;
    list_init(&batch);
    list_splice(&batch, &db->deferred);
    for (cmd_t *c; (c = first_cmd(&batch)) != NULL;) {
        list_remove(&c->node);
        if (c->fn)
            c->fn(c->arg);
        else
            c->cb(status != DB_OK ? status : c->status, NULL, c->arg);
        cmd_free(c);
    }
}

static void on_idle(uv_idle_t *h)
{
    db_t *db = h->data;
    run_deferred(db, DB_OK);
    if (list_empty(&db->deferred) && !db->closing)
        uv_idle_stop(&db->idle);
}

static void defer(db_t *db, cmd_t *c, int status)
{
    c->status = status;
    list_push_back(&db->deferred, &c->node);
    if (!db->closing && !uv_is_active((uv_handle_t *)&db->idle))
        uv_idle_start(&db->idle, on_idle);
}

void db_defer(db_t *db, void (*fn)(void *arg), void *arg)
{
    cmd_t *c = cmd_new(db, NULL, arg);
    c->fn = fn;
    defer(db, c, DB_OK);
}

/* ---- state changes ---- */

static void set_error(db_t *db, const char *reason)
{
    snprintf(db->last_error, sizeof db->last_error, "%s", reason && *reason ? reason : "error");
}

static void notify(db_t *db, bool up)
{
    mset(db->m_up, up ? 1 : 0);
    if (db->state_cb && !db->closing)
        db->state_cb(up, db->state_arg);
}

static void set_ready(db_t *db)
{
    db->state = ST_READY;
    db->attempt = 0;
    db->outage_logged = false;
    db->last_error[0] = '\0';
    LOG(LOG_LVL_INFO, "redis connected", LKS("db", db->name),
        LKS("addr", db->url.path[0] ? db->url.path : db->url.host), LKI("port", db->url.port));
    notify(db, true);
}

/* Forgets the connection (the caller frees it or hiredis does) and logs the change once. */
static void conn_detach(db_t *db, const char *reason)
{
    bool was_ready = db->state == ST_READY;
    db->ac = NULL;
    db->state = ST_DOWN;
    set_error(db, reason);
    if (db->closing)
        return;
    if (was_ready) {
        LOG(LOG_LVL_WARN, "redis connection lost", LKS("db", db->name), LKS("reason", reason));
        db->outage_logged = true;
        notify(db, false);
    } else if (!db->outage_logged) {
        LOG(LOG_LVL_WARN, "redis unavailable, retrying", LKS("db", db->name),
            LKS("reason", reason));
        db->outage_logged = true;
    }
}

/* Runs the callbacks of everything sent to hiredis with `status`. The commands stay owned by
 * hiredis, which reports them once more (NULL reply) when the context is freed. Pops from the
 * head each time: a callback may add commands (they go to `deferred`) or destroy db. */
static void fail_fifo(db_t *db, int status)
{
    for (cmd_t *c; (c = first_cmd(&db->fifo)) != NULL;) {
        fifo_remove(db, c);
        c->done = true;
        c->cb(status, NULL, c->arg);
    }
}

static void on_retry(uv_timer_t *t)
{
    db_t *db = t->data;
    minc(db->m_reconnects);
    conn_start(db);
}

static void schedule_retry(db_t *db)
{
    if (db->closing)
        return;
    uint64_t ceil = backoff_ceiling(db->attempt, RETRY_BASE_MS, RETRY_CAP_MS);
    uint64_t delay = ceil / 2 + rand_below(ceil / 2 + 1); /* 50-100 ms, ... 2.5-5 s */
    if (db->attempt < 32)
        db->attempt++;
    uv_timer_start(&db->retry_timer, on_retry, delay, 0);
}

/* We give up on the connection: fail what is pending, free the context, retry later. */
static void conn_drop(db_t *db, int status, const char *reason)
{
    redisAsyncContext *ac = db->ac;
    if (ac == NULL)
        return;
    ac->data = NULL; /* its disconnect/connect callbacks are no longer ours */
    conn_detach(db, reason);
    fail_fifo(db, status);
    /* Fires the late NULL replies (cmd_free) now, or after the current hiredis callback. */
    redisAsyncFree(ac);
    schedule_retry(db);
    arm_deadline(db, true);
}

/* hiredis lost the connection and frees the context itself after this. */
static void conn_lost(db_t *db, const char *reason)
{
    if (db->state == ST_READY)
        minc(db->m_disconnect);
    db->ac->data = NULL;
    conn_detach(db, reason);
    fail_fifo(db, DB_EPROTO);
    schedule_retry(db);
    arm_deadline(db, true);
}

/* ---- the deadline timer ---- */

static void on_deadline(uv_timer_t *t)
{
    db_t *db = t->data;
    uint64_t now = clk_mono_ms();
    if (db->state == ST_CONNECTING && now >= db->connect_deadline) {
        minc(db->m_timeout);
        conn_drop(db, DB_ETIMEOUT, "connect timeout");
    } else if (!list_empty(&db->fifo) && now >= first_cmd(&db->fifo)->deadline) {
        minc(db->m_timeout);
        conn_drop(db, DB_ETIMEOUT, "timeout");
    }
    arm_deadline(db, true);
}

/* Arms the timer for the earliest deadline. Not forced, it only starts an idle timer: a later
 * command never has an earlier deadline than the head, and on_deadline re-arms itself. */
static void arm_deadline(db_t *db, bool force)
{
    if (db->closing || (!force && uv_is_active((uv_handle_t *)&db->deadline_timer)))
        return;
    uint64_t next = UINT64_MAX;
    if (db->state == ST_CONNECTING)
        next = db->connect_deadline;
    const cmd_t *oldest = first_cmd(&db->fifo);
    if (oldest && oldest->deadline < next)
        next = oldest->deadline;
    if (next == UINT64_MAX) {
        uv_timer_stop(&db->deadline_timer);
        return;
    }
    uint64_t now = clk_mono_ms();
    uv_timer_start(&db->deadline_timer, on_deadline, next > now ? next - now : 0, 0);
}

/* ---- replies ---- */

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static int send_cmd(db_t *db, cmd_t *c, int argc, const char *const *argv, const size_t *lens);

/* The server flushed its script cache: send the script itself this time (which also loads it,
 * so later EVALSHA calls succeed again). Returns 0 when resent. */
static int resend_eval(db_t *db, cmd_t *c)
{
    c->argv[0] = "EVAL";
    c->argvlen[0] = 4;
    c->argv[1] = c->script->lua;
    c->argvlen[1] = c->script->len;
    c->script = NULL; /* once: a NOSCRIPT answer to EVAL goes to the caller */
    return send_cmd(db, c, c->argc, c->argv, c->argvlen);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    cmd_t *c = priv;
    db_t *db = c->db;
    if (c->done) {
        cmd_free(c);
        return;
    }
    if (r == NULL) { /* hiredis is tearing the connection down after an error */
        if (db->ac == ac)
            conn_lost(db, ac->errstr[0] ? ac->errstr : "connection lost");
        if (!c->done) {
            fifo_remove(db, c);
            c->cb(DB_EPROTO, NULL, c->arg);
        }
        cmd_free(c);
        return;
    }
    fifo_remove(db, c);
    redisReply *rep = r;
    if (c->script && is_noscript(rep) && resend_eval(db, c) == 0)
        return;
    if (rep->type == REDIS_REPLY_ERROR && !c->internal)
        minc(db->m_reply);
    c->done = true;
    c->cb(DB_OK, (const db_reply_t *)rep, c->arg);
    cmd_free(c);
}

/* Hands c to hiredis; 0, or -1 when the context refused it (it is shutting down). */
static int send_cmd(db_t *db, cmd_t *c, int argc, const char *const *argv, const size_t *lens)
{
    if (db->ac == NULL || redisAsyncCommandArgv(db->ac, on_reply, c, argc,
                                                (const char **)(uintptr_t)argv, lens) != REDIS_OK)
        return -1;
    c->deadline = clk_mono_ms() + db->timeout_ms;
    fifo_push(db, c);
    arm_deadline(db, false);
    return 0;
}

static void submit(db_t *db, cmd_t *c, int argc, const char *const *argv, const size_t *lens)
{
    if (db->closing) {
        defer(db, c, DB_ESHUTDOWN);
        return;
    }
    if (db->state != ST_READY || send_cmd(db, c, argc, argv, lens) != 0)
        defer(db, c, DB_EDOWN);
}

/* ---- connecting ---- */

static void on_handshake(int status, const db_reply_t *reply, void *arg)
{
    db_t *db = arg;
    const redisReply *r = (const redisReply *)reply;
    if (status != DB_OK)
        return; /* whoever failed it is already dropping the connection */
    if (r->type == REDIS_REPLY_ERROR) {
        char reason[128];
        snprintf(reason, sizeof reason, "handshake refused: %.100s", r->str);
        conn_drop(db, DB_EDOWN, reason);
        return;
    }
    if (--db->handshake_left == 0)
        set_ready(db);
}

static void handshake_cmd(db_t *db, int argc, const char **argv)
{
    cmd_t *c = cmd_new(db, on_handshake, db);
    c->internal = true;
    if (send_cmd(db, c, argc, argv, NULL) != 0)
        cmd_free(c);
    else
        db->handshake_left++;
}

static void send_handshake(db_t *db)
{
    char num[24];
    db->handshake_left = 0;
    if (db->url.password[0] && db->url.user[0])
        handshake_cmd(db, 3, (const char *[]){"AUTH", db->url.user, db->url.password});
    else if (db->url.password[0])
        handshake_cmd(db, 2, (const char *[]){"AUTH", db->url.password});
    if (db->url.dbnum != 0) {
        snprintf(num, sizeof num, "%ld", db->url.dbnum);
        handshake_cmd(db, 2, (const char *[]){"SELECT", num});
    }
    handshake_cmd(db, 1, (const char *[]){"PING"});
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    db_t *db = cac->data;
    if (db == NULL || db->ac != cac)
        return;
    if (status != REDIS_OK) { /* hiredis frees the context when we return: no free here */
        db->ac->data = NULL;
        conn_detach(db, cac->errstr[0] ? cac->errstr : "connect failed");
        schedule_retry(db);
        arm_deadline(db, true);
        return;
    }
    db->state = ST_HANDSHAKE;
    send_handshake(db);
    arm_deadline(db, true);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    db_t *db = cac->data;
    if (db == NULL || db->ac != cac)
        return; /* a context we dropped ourselves */
    conn_lost(db, cac->errstr[0] ? cac->errstr : "connection closed by server");
}

static void conn_start(db_t *db)
{
    redisAsyncContext *ac = db->url.path[0] ? redisAsyncConnectUnix(db->url.path)
                                            : redisAsyncConnect(db->url.host, db->url.port);
    if (ac == NULL || ac->err) {
        conn_detach(db, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(db);
        return;
    }
    if (redisLibuvAttach(ac, db->loop) != REDIS_OK) {
        conn_detach(db, "cannot attach to the loop");
        redisAsyncFree(ac);
        schedule_retry(db);
        return;
    }
    ac->data = db;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    db->ac = ac;
    db->state = ST_CONNECTING;
    db->connect_deadline = clk_mono_ms() + db->timeout_ms;
    arm_deadline(db, true);
}

/* ---- lifecycle ---- */

static void init_metrics(db_t *db, metric_reg_t *reg)
{
    if (reg == NULL)
        return;
    metric_fam_t *up = metric_gauge_new(reg, "herald_redis_up",
                                        "1 when the Redis connection is ready, else 0", NULL);
    metric_fam_t *err = metric_counter_new(
        reg, "herald_redis_errors_total",
        "Redis failures: command timeouts, lost connections, error replies", "kind");
    metric_fam_t *rc =
        metric_counter_new(reg, "herald_redis_reconnects_total", "Reconnection attempts", NULL);
    metric_fam_t *inf = metric_gauge_new(reg, "herald_redis_commands_in_flight",
                                         "Commands sent and not yet answered", NULL);
    db->m_up = metric_get(up);
    db->m_timeout = metric_get(err, "timeout");
    db->m_disconnect = metric_get(err, "disconnect");
    db->m_reply = metric_get(err, "reply");
    db->m_reconnects = metric_get(rc);
    db->m_inflight = metric_get(inf);
    metric_set(db->m_up, 0);
    metric_set(db->m_inflight, 0);
}

db_t *db_create(uv_loop_t *loop, const db_opts_t *opts, char *err, size_t errlen)
{
    db_url_t url;
    if (db_url_parse(opts->url, &url, err, errlen) != 0)
        return NULL;
    if (opts->password && *opts->password) {
        if (strlen(opts->password) >= sizeof url.password) {
            snprintf(err, errlen, "Redis password longer than %zu bytes", sizeof url.password - 1);
            return NULL;
        }
        snprintf(url.password, sizeof url.password, "%s", opts->password);
    }
    db_t *db = xcalloc(1, sizeof *db);
    list_init(&db->fifo);
    list_init(&db->deferred);
    db->loop = loop;
    db->url = url;
    db->timeout_ms = opts->timeout_ms > 0 ? (uint64_t)opts->timeout_ms : 1000;
    db->name = xstrdup(opts->name ? opts->name : "main");
    set_error(db, "connecting");
    uv_timer_init(loop, &db->deadline_timer);
    uv_timer_init(loop, &db->retry_timer);
    uv_idle_init(loop, &db->idle);
    db->deadline_timer.data = db->retry_timer.data = db->idle.data = db;
    db->open_handles = 3;
    init_metrics(db, opts->metrics);
    conn_start(db);
    return db;
}

static void on_handle_closed(uv_handle_t *h)
{
    db_t *db = h->data;
    if (--db->open_handles > 0)
        return;
    for (db_script_t *s = db->scripts, *next; s; s = next) {
        next = s->next;
        free(s->lua);
        free(s);
    }
    free(db->name);
    free(db);
}

void db_destroy(db_t *db)
{
    if (db == NULL || db->closing)
        return;
    db->closing = true;
    redisAsyncContext *ac = db->ac;
    if (ac)
        ac->data = NULL;
    db->ac = NULL;
    db->state = ST_DOWN;
    mset(db->m_up, 0);
    /* Callbacks may issue more commands; they land in `deferred` and fail here too. */
    while (!list_empty(&db->fifo) || !list_empty(&db->deferred)) {
        fail_fifo(db, DB_ESHUTDOWN);
        run_deferred(db, DB_ESHUTDOWN);
    }
    if (ac)
        redisAsyncFree(ac); /* late NULL replies only free the (done) commands */
    uv_close((uv_handle_t *)&db->deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&db->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&db->idle, on_handle_closed);
}

bool db_ready(const db_t *db)
{
    return db->state == ST_READY && !db->closing;
}

const char *db_last_error(const db_t *db)
{
    return db_ready(db) ? "" : db->last_error;
}

void db_on_state(db_t *db, void (*cb)(bool up, void *arg), void *arg)
{
    db->state_cb = cb;
    db->state_arg = arg;
}

/* ---- commands ---- */

int db_command(db_t *db, db_cb cb, void *arg, int argc, const char *const *argv,
               const size_t *argvlen)
{
    submit(db, cmd_new(db, cb, arg), argc, argv, argvlen);
    return 0;
}

int db_cmd(db_t *db, db_cb cb, void *arg, ...)
{
    const char *argv[MAX_VA_ARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (argc == MAX_VA_ARGS)
            abort(); /* a programming error, not input */
        argv[argc++] = s;
    }
    va_end(ap);
    return db_command(db, cb, arg, argc, argv, NULL);
}

db_script_t *db_script(db_t *db, const char *lua)
{
    for (db_script_t *s = db->scripts; s; s = s->next)
        if (strcmp(s->lua, lua) == 0)
            return s;
    db_script_t *s = xcalloc(1, sizeof *s);
    s->lua = xstrdup(lua);
    s->len = strlen(lua);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s->lua, s->len, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        abort();
    for (unsigned i = 0; i < 20; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    s->next = db->scripts;
    db->scripts = s;
    return s;
}

/* Copies EVALSHA sha nkeys argv... into one block owned by c, for a possible EVAL resend. */
static void eval_argv(cmd_t *c, db_script_t *s, const char *nkeys, int argc,
                      const char *const *argv, const size_t *argvlen)
{
    size_t n = (size_t)argc + 3, bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += (argvlen ? argvlen[i] : strlen(argv[i])) + 1;
    size_t nk = strlen(nkeys);
    char *block = xmalloc(n * (sizeof(char *) + sizeof(size_t)) + bytes + nk + 1);
    c->argv = (const char **)(void *)block;
    c->argvlen = (size_t *)(void *)(block + n * sizeof(char *));
    char *p = block + n * (sizeof(char *) + sizeof(size_t));
    c->argc = (int)n;
    c->argv[0] = "EVALSHA";
    c->argvlen[0] = 7;
    c->argv[1] = s->sha;
    c->argvlen[1] = 40;
    for (size_t i = 2; i < n; i++) {
        const char *src = i == 2 ? nkeys : argv[i - 3];
        size_t len = i == 2 ? nk : (argvlen ? argvlen[i - 3] : strlen(src));
        memcpy(p, src, len);
        p[len] = '\0';
        c->argv[i] = p;
        c->argvlen[i] = len;
        p += len + 1;
    }
}

int db_eval(db_t *db, db_script_t *s, db_cb cb, void *arg, int nkeys, int argc,
            const char *const *argv, const size_t *argvlen)
{
    cmd_t *c = cmd_new(db, cb, arg);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    eval_argv(c, s, nk, argc, argv, argvlen);
    c->script = s;
    submit(db, c, c->argc, c->argv, c->argvlen);
    return 0;
}

/* ---- replies: db_reply_t is a redisReply seen through an opaque type ---- */

db_reply_type_t db_reply_type(const db_reply_t *r)
{
    switch (((const redisReply *)r)->type) {
    case REDIS_REPLY_STRING:
        return DB_REPLY_STRING;
    case REDIS_REPLY_ARRAY:
        return DB_REPLY_ARRAY;
    case REDIS_REPLY_INTEGER:
        return DB_REPLY_INTEGER;
    case REDIS_REPLY_STATUS:
        return DB_REPLY_STATUS;
    case REDIS_REPLY_ERROR:
        return DB_REPLY_ERROR;
    default:
        return DB_REPLY_NIL;
    }
}

long long db_reply_int(const db_reply_t *r)
{
    const redisReply *rep = (const redisReply *)r;
    return rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
}

const char *db_reply_str(const db_reply_t *r, size_t *len)
{
    const redisReply *rep = (const redisReply *)r;
    bool has = rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
               rep->type == REDIS_REPLY_ERROR;
    if (len)
        *len = has ? rep->len : 0;
    return has ? rep->str : NULL;
}

size_t db_reply_len(const db_reply_t *r)
{
    const redisReply *rep = (const redisReply *)r;
    return rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
}

const db_reply_t *db_reply_elem(const db_reply_t *r, size_t i)
{
    const redisReply *rep = (const redisReply *)r;
    if (rep->type != REDIS_REPLY_ARRAY || i >= rep->elements)
        return NULL;
    return (const db_reply_t *)rep->element[i];
}

const char *db_strerror(int status)
{
    switch (status) {
    case DB_OK:
        return "ok";
    case DB_EDOWN:
        return "Redis not connected";
    case DB_ETIMEOUT:
        return "Redis command timed out";
    case DB_ESHUTDOWN:
        return "Redis client shut down";
    case DB_EPROTO:
        return "Redis connection broke mid-command";
    default:
        return "unknown Redis error";
    }
}
