/* db.c - the Redis adapter: hiredis 0.14 async on the libuv loop (wire.c), plus what hiredis
 * lacks.
 *
 * Every command is written as RESP once, into the block that holds its cmd_t (resp.c, no printf),
 * and handed to hiredis finished; the bytes stay for resends (NOSCRIPT, cluster redirects).
 *
 * Each server connection (conn_t: one in standalone mode, one per master in cluster mode, see
 * cluster.c) keeps every command sent to hiredis in a FIFO with a deadline (Redis answers in
 * order, so the head is always the oldest). One timer per connection watches the head: when it is
 * overdue the server is stuck, so every pending command fails with DB_ETIMEOUT and the connection
 * is dropped and re-established with backoff. A connect that never completes is bounded the same
 * way.
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
#include "db/internal.h"
#include "db/resp.h"
#include "db/url.h"

#include "core/backoff.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include "core/clock.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <openssl/evp.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
#define MAX_VA_ARGS 64

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
    list_t conns;  /* of conn_t */
    conn_t *main;  /* standalone: the one connection; NULL in cluster mode */
    cluster_t *cl; /* cluster mode, else NULL */
    bool closing;
    bool up;         /* what db_notify last said */
    list_t deferred; /* of cmd_t */
    uv_idle_t idle;
    void (*state_cb)(bool up, void *arg);
    void *state_arg;
    db_script_t *scripts;
    long inflight;
    metric_t *m_up, *m_timeout, *m_disconnect, *m_reply, *m_reconnects, *m_inflight;
};

static void conn_start(conn_t *cn);
static void arm_deadline(conn_t *cn, bool force);

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

static void fifo_push(conn_t *cn, cmd_t *c)
{
    list_push_back(&cn->fifo, &c->node);
    if (!c->internal)
        mset(cn->db->m_inflight, (double)++cn->db->inflight);
}

static void fifo_remove(conn_t *cn, cmd_t *c)
{
    list_remove(&c->node);
    if (!c->internal)
        mset(cn->db->m_inflight, (double)--cn->db->inflight);
}

/* A command with room for len bytes of RESP. Not zeroed beyond the struct: wire[] is written. */
static cmd_t *cmd_new(db_t *db, db_cb cb, void *arg, size_t len)
{
    cmd_t *c = xmalloc(sizeof *c + len);
    memset(c, 0, sizeof *c);
    c->db = db;
    c->cb = cb;
    c->arg = arg;
    c->slot = -1;
    c->len = len;
    c->resp = c->wire;
    return c;
}

static void cmd_free(cmd_t *c)
{
    if (c->resp != c->wire)
        free(c->resp);
    free(c);
}

/* The command head[0..nhead) (NUL-terminated, nhead <= 4) then argv[0..argc), as RESP in c->wire:
 * sized, then written in place. Lengths not given are measured once (on the stack for the usual
 * few arguments). */
static cmd_t *cmd_build(db_t *db, db_cb cb, void *arg, int nhead, const char *const *head, int argc,
                        const char *const *argv, const size_t *lens)
{
    size_t hl[4], stack[64], *measured = NULL;
    size_t len = resp_argc_size((size_t)(nhead + argc));
    for (int i = 0; i < nhead; i++)
        len += resp_arg_size(hl[i] = strlen(head[i]));
    if (lens == NULL && argc > 0) {
        measured = argc <= 64 ? stack : xmalloc((size_t)argc * sizeof *measured);
        for (int i = 0; i < argc; i++)
            measured[i] = strlen(argv[i]);
        lens = measured;
    }
    for (int i = 0; i < argc; i++)
        len += resp_arg_size(lens[i]);
    cmd_t *c = cmd_new(db, cb, arg, len);
    char *p = resp_put_argc(c->wire, (size_t)(nhead + argc));
    for (int i = 0; i < nhead; i++)
        p = resp_put_arg(p, head[i], hl[i]);
    for (int i = 0; i < argc; i++)
        p = resp_put_arg(p, argv[i], lens[i]);
    if (measured != stack)
        free(measured);
    return c;
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

void cmd_defer(db_t *db, cmd_t *c, int status)
{
    c->status = status;
    list_push_back(&db->deferred, &c->node);
    if (!db->closing && !uv_is_active((uv_handle_t *)&db->idle))
        uv_idle_start(&db->idle, on_idle);
}

void db_defer(db_t *db, void (*fn)(void *arg), void *arg)
{
    cmd_t *c = cmd_new(db, NULL, arg, 0);
    c->fn = fn;
    cmd_defer(db, c, DB_OK);
}

/* ---- state changes ---- */

static void set_error(conn_t *cn, const char *reason)
{
    snprintf(cn->last_error, sizeof cn->last_error, "%s", reason && *reason ? reason : "error");
}

void db_notify(db_t *db, bool up)
{
    db->up = up;
    mset(db->m_up, up ? 1 : 0);
    if (db->state_cb && !db->closing)
        db->state_cb(up, db->state_arg);
}

static void conn_changed(conn_t *cn, bool up)
{
    if (cn->db->cl)
        cluster_conn_changed(cn->db->cl, cn, up);
    else
        db_notify(cn->db, up);
}

static void set_ready(conn_t *cn)
{
    cn->state = ST_READY;
    cn->attempt = 0;
    cn->outage_logged = false;
    cn->last_error[0] = '\0';
    LOG(LOG_LVL_INFO, "redis connected", LKS("db", cn->db->name),
        LKS("addr", cn->path ? cn->path : cn->host), LKI("port", cn->port));
    conn_changed(cn, true);
}

/* Forgets the connection (the caller frees it or hiredis does) and logs the change once. */
static void conn_detach(conn_t *cn, const char *reason)
{
    bool was_ready = cn->state == ST_READY;
    cn->ac = NULL;
    cn->state = ST_DOWN;
    set_error(cn, reason);
    if (cn->db->closing || cn->dead || cn->retiring)
        return;
    if (was_ready) {
        LOG(LOG_LVL_WARN, "redis connection lost", LKS("db", cn->db->name),
            LKS("addr", cn->path ? cn->path : cn->host), LKI("port", cn->port),
            LKS("reason", reason));
        cn->outage_logged = true;
        conn_changed(cn, false);
    } else if (!cn->outage_logged) {
        LOG(LOG_LVL_WARN, "redis unavailable, retrying", LKS("db", cn->db->name),
            LKS("addr", cn->path ? cn->path : cn->host), LKI("port", cn->port),
            LKS("reason", reason));
        cn->outage_logged = true;
    }
}

/* Runs the callbacks of everything sent to hiredis with `status`. The commands stay owned by
 * hiredis, which reports them once more (NULL reply) when the context is freed. Pops from the
 * head each time: a callback may add commands (they go to `deferred`) or destroy db. */
static void fail_fifo(conn_t *cn, int status)
{
    for (cmd_t *c; (c = first_cmd(&cn->fifo)) != NULL;) {
        fifo_remove(cn, c);
        c->done = true;
        c->cb(status, NULL, c->arg);
    }
}

static void on_retry(uv_timer_t *t)
{
    conn_t *cn = t->data;
    minc(cn->db->m_reconnects);
    conn_start(cn);
}

/* After a lost or failed connection: a retiring one is done, others retry with backoff. */
static void schedule_retry(conn_t *cn)
{
    if (cn->db->closing || cn->dead)
        return;
    if (cn->retiring) {
        conn_destroy(cn, DB_EPROTO);
        return;
    }
    uint64_t ceil = backoff_ceiling(cn->attempt, RETRY_BASE_MS, RETRY_CAP_MS);
    uint64_t delay = ceil / 2 + rand_below(ceil / 2 + 1); /* 50-100 ms, ... 2.5-5 s */
    if (cn->attempt < 32)
        cn->attempt++;
    uv_timer_start(&cn->retry_timer, on_retry, delay, 0);
}

/* We give up on the connection: fail what is pending, free the context, retry later. */
static void conn_drop(conn_t *cn, int status, const char *reason)
{
    redisAsyncContext *ac = cn->ac;
    if (ac == NULL)
        return;
    ac->data = NULL; /* its disconnect/connect callbacks are no longer ours */
    conn_detach(cn, reason);
    fail_fifo(cn, status);
    /* Fires the late NULL replies (cmd_free) now, or after the current hiredis callback. */
    redisAsyncFree(ac);
    arm_deadline(cn, true);
    schedule_retry(cn);
}

/* hiredis lost the connection and frees the context itself after this. */
static void conn_lost(conn_t *cn, const char *reason)
{
    if (cn->state == ST_READY)
        minc(cn->db->m_disconnect);
    cn->ac->data = NULL;
    conn_detach(cn, reason);
    fail_fifo(cn, DB_EPROTO);
    arm_deadline(cn, true);
    schedule_retry(cn);
}

/* ---- the deadline timer ---- */

static void on_deadline(uv_timer_t *t)
{
    conn_t *cn = t->data;
    uint64_t now = clk_mono_ms();
    if (cn->state == ST_CONNECTING && now >= cn->connect_deadline) {
        minc(cn->db->m_timeout);
        conn_drop(cn, DB_ETIMEOUT, "connect timeout");
    } else if (!list_empty(&cn->fifo) && now >= first_cmd(&cn->fifo)->deadline) {
        minc(cn->db->m_timeout);
        conn_drop(cn, DB_ETIMEOUT, "timeout");
    }
    arm_deadline(cn, true);
}

/* Arms the timer for the earliest deadline. Not forced, it only starts an idle timer: a later
 * command never has an earlier deadline than the head, and on_deadline re-arms itself. */
static void arm_deadline(conn_t *cn, bool force)
{
    if (cn->db->closing || cn->dead || (!force && uv_is_active((uv_handle_t *)&cn->deadline_timer)))
        return;
    uint64_t next = UINT64_MAX;
    if (cn->state == ST_CONNECTING)
        next = cn->connect_deadline;
    const cmd_t *oldest = first_cmd(&cn->fifo);
    if (oldest && oldest->deadline < next)
        next = oldest->deadline;
    if (next == UINT64_MAX) {
        uv_timer_stop(&cn->deadline_timer);
        return;
    }
    uint64_t now = clk_mono_ms();
    uv_timer_start(&cn->deadline_timer, on_deadline, next > now ? next - now : 0, 0);
}

/* ---- replies ---- */

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static int send_cmd(conn_t *cn, cmd_t *c);

/* The server flushed its script cache: send the script itself this time (which also loads it,
 * so later EVALSHA calls succeed again). Returns 0 when resent. c->resp is "*<n>" CR LF, EVALSHA
 * (13 bytes as RESP), the sha (47), then what EVAL takes alike: numkeys, keys, args. */
static int resend_eval(conn_t *cn, cmd_t *c)
{
    const db_script_t *s = c->script;
    size_t hdr = (size_t)((const char *)memchr(c->resp, '\n', c->len) - c->resp) + 1;
    size_t rest = hdr + 13 + 47;
    size_t len = hdr + resp_arg_size(4) + resp_arg_size(s->len) + (c->len - rest);
    char *resp = xmalloc(len), *p = resp;
    memcpy(p, c->resp, hdr);
    p = resp_put_arg(p + hdr, "EVAL", 4);
    p = resp_put_arg(p, s->lua, s->len);
    memcpy(p, c->resp + rest, c->len - rest);
    if (c->resp != c->wire)
        free(c->resp);
    c->resp = resp;
    c->len = len;
    c->script = NULL; /* once: a NOSCRIPT answer to EVAL goes to the caller */
    return send_cmd(cn, c);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    cmd_t *c = priv;
    if (c->done) {
        cmd_free(c);
        return;
    }
    conn_t *cn = c->conn;
    db_t *db = c->db;
    if (r == NULL) { /* hiredis is tearing the connection down after an error */
        if (cn->ac == ac)
            conn_lost(cn, ac->errstr[0] ? ac->errstr : "connection lost");
        if (!c->done) {
            fifo_remove(cn, c);
            c->cb(DB_EPROTO, NULL, c->arg);
        }
        cmd_free(c);
        return;
    }
    fifo_remove(cn, c);
    redisReply *rep = r;
    if (c->script && is_noscript(rep) && resend_eval(cn, c) == 0)
        return;
    if (db->cl && rep->type == REDIS_REPLY_ERROR && !c->internal &&
        cluster_on_error(db->cl, cn, c, rep->str, rep->len))
        goto reap;
    if (rep->type == REDIS_REPLY_ERROR && !c->internal)
        minc(db->m_reply);
    c->done = true;
    c->cb(DB_OK, (const db_reply_t *)rep, c->arg);
    cmd_free(c);
reap:
    if (cn->retiring && list_empty(&cn->fifo))
        conn_destroy(cn, DB_EPROTO); /* no-op when the callback destroyed db */
}

/* Hands c to hiredis; 0, or -1 when the context refused it (it is shutting down). */
static int send_cmd(conn_t *cn, cmd_t *c)
{
    if (cn->ac == NULL ||
        redisAsyncFormattedCommand(cn->ac, on_reply, c, c->resp, c->len) != REDIS_OK)
        return -1;
    c->conn = cn;
    c->deadline = clk_mono_ms() + cn->db->timeout_ms;
    fifo_push(cn, c);
    arm_deadline(cn, false);
    return 0;
}

int conn_send(conn_t *cn, cmd_t *c)
{
    if (cn->state != ST_READY && !c->internal)
        return -1;
    return send_cmd(cn, c);
}

static void submit(db_t *db, cmd_t *c)
{
    if (db->closing) {
        cmd_defer(db, c, DB_ESHUTDOWN);
        return;
    }
    conn_t *cn = db->cl ? cluster_route(db->cl, c) : db->main;
    if (cn == NULL || cn->state != ST_READY || send_cmd(cn, c) != 0)
        cmd_defer(db, c, DB_EDOWN);
}

/* ---- connecting ---- */

static void on_handshake(int status, const db_reply_t *reply, void *arg)
{
    conn_t *cn = arg;
    const redisReply *r = (const redisReply *)reply;
    if (status != DB_OK)
        return; /* whoever failed it is already dropping the connection */
    if (r->type == REDIS_REPLY_ERROR) {
        char reason[128];
        snprintf(reason, sizeof reason, "handshake refused: %.100s", r->str);
        conn_drop(cn, DB_EDOWN, reason);
        return;
    }
    if (--cn->handshake_left == 0)
        set_ready(cn);
}

cmd_t *cmd_internal(db_t *db, db_cb cb, void *arg, int argc, const char *const *argv)
{
    cmd_t *c = cmd_build(db, cb, arg, 0, NULL, argc, argv, NULL);
    c->internal = true;
    return c;
}

static void handshake_cmd(conn_t *cn, int argc, const char *const *argv)
{
    cmd_t *c = cmd_internal(cn->db, on_handshake, cn, argc, argv);
    if (send_cmd(cn, c) != 0)
        cmd_free(c);
    else
        cn->handshake_left++;
}

static void send_handshake(conn_t *cn)
{
    const db_url_t *u = &cn->db->url;
    char num[24];
    cn->handshake_left = 0;
    if (u->password[0] && u->user[0])
        handshake_cmd(cn, 3, (const char *const[]){"AUTH", u->user, u->password});
    else if (u->password[0])
        handshake_cmd(cn, 2, (const char *const[]){"AUTH", u->password});
    if (u->dbnum != 0) {
        snprintf(num, sizeof num, "%ld", u->dbnum);
        handshake_cmd(cn, 2, (const char *const[]){"SELECT", num});
    }
    handshake_cmd(cn, 1, (const char *const[]){"PING"});
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    conn_t *cn = cac->data;
    if (cn == NULL || cn->ac != cac)
        return;
    if (status != REDIS_OK) { /* hiredis frees the context when we return: no free here */
        cn->ac->data = NULL;
        conn_detach(cn, cac->errstr[0] ? cac->errstr : "connect failed");
        arm_deadline(cn, true);
        schedule_retry(cn);
        return;
    }
    cn->state = ST_HANDSHAKE;
    send_handshake(cn);
    arm_deadline(cn, true);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    conn_t *cn = cac->data;
    if (cn == NULL || cn->ac != cac)
        return; /* a context we dropped ourselves */
    conn_lost(cn, cac->errstr[0] ? cac->errstr : "connection closed by server");
}

static void conn_start(conn_t *cn)
{
    redisAsyncContext *ac =
        cn->path ? redisAsyncConnectUnix(cn->path) : redisAsyncConnect(cn->host, cn->port);
    if (ac == NULL || ac->err) {
        conn_detach(cn, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(cn);
        return;
    }
    if (wire_attach(ac, cn->db->loop) != 0) {
        conn_detach(cn, "cannot attach to the loop");
        redisAsyncFree(ac);
        schedule_retry(cn);
        return;
    }
    ac->data = cn;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    cn->ac = ac;
    cn->state = ST_CONNECTING;
    cn->connect_deadline = clk_mono_ms() + cn->db->timeout_ms;
    arm_deadline(cn, true);
}

static conn_t *conn_open(db_t *db, const char *host, int port, const char *path)
{
    conn_t *cn = xcalloc(1, sizeof *cn);
    cn->db = db;
    snprintf(cn->host, sizeof cn->host, "%s", host);
    cn->port = port;
    cn->path = path;
    list_init(&cn->fifo);
    set_error(cn, "connecting");
    uv_timer_init(db->loop, &cn->deadline_timer);
    uv_timer_init(db->loop, &cn->retry_timer);
    cn->deadline_timer.data = cn->retry_timer.data = cn;
    cn->open_handles = 2;
    list_push_back(&db->conns, &cn->node);
    conn_start(cn);
    return cn;
}

conn_t *conn_create(db_t *db, const char *host, int port)
{
    return conn_open(db, host, port, NULL);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *cn = h->data;
    if (--cn->open_handles == 0)
        free(cn);
}

void conn_destroy(conn_t *cn, int status)
{
    if (cn->dead)
        return;
    cn->dead = true;
    list_remove(&cn->node);
    redisAsyncContext *ac = cn->ac;
    if (ac)
        ac->data = NULL;
    cn->ac = NULL;
    cn->state = ST_DOWN;
    fail_fifo(cn, status);
    if (ac)
        redisAsyncFree(ac); /* late NULL replies only free the (done) commands */
    uv_close((uv_handle_t *)&cn->deadline_timer, on_conn_closed);
    uv_close((uv_handle_t *)&cn->retry_timer, on_conn_closed);
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

static int parse_opts(const db_opts_t *opts, db_url_t *url, char *err, size_t errlen)
{
    if (db_url_parse(opts->url, url, err, errlen) != 0)
        return -1;
    if (opts->password && *opts->password) {
        if (strlen(opts->password) >= sizeof url->password) {
            snprintf(err, errlen, "Redis password longer than %zu bytes", sizeof url->password - 1);
            return -1;
        }
        snprintf(url->password, sizeof url->password, "%s", opts->password);
    }
    if (opts->cluster && (url->path[0] || url->dbnum != 0)) {
        snprintf(err, errlen,
                 "Redis Cluster needs a redis:// URL with database 0 (cluster nodes "
                 "have no unix:// address and only database 0)");
        return -1;
    }
    return 0;
}

static void on_db_closed(uv_handle_t *h)
{
    db_t *db = h->data;
    for (db_script_t *s = db->scripts, *next; s; s = next) {
        next = s->next;
        free(s->lua);
        free(s);
    }
    free(db->name);
    free(db);
}

db_t *db_create(uv_loop_t *loop, const db_opts_t *opts, char *err, size_t errlen)
{
    db_url_t url;
    if (parse_opts(opts, &url, err, errlen) != 0)
        return NULL;
    db_t *db = xcalloc(1, sizeof *db);
    list_init(&db->conns);
    list_init(&db->deferred);
    db->loop = loop;
    db->url = url;
    db->timeout_ms = opts->timeout_ms > 0 ? (uint64_t)opts->timeout_ms : 1000;
    db->name = xstrdup(opts->name ? opts->name : "main");
    if (opts->cluster && (db->cl = cluster_create(db, opts->seeds, err, errlen)) == NULL) {
        free(db->name);
        free(db);
        return NULL;
    }
    uv_idle_init(loop, &db->idle);
    db->idle.data = db;
    init_metrics(db, opts->metrics);
    if (!db->cl)
        db->main = conn_open(db, db->url.host, db->url.port, db->url.path[0] ? db->url.path : NULL);
    return db;
}

void db_destroy(db_t *db)
{
    if (db == NULL || db->closing)
        return;
    db->closing = true;
    mset(db->m_up, 0);
    /* Callbacks may issue more commands; they land in `deferred` and fail here too. */
    for (conn_t *cn; (cn = list_first_entry(&db->conns, conn_t, node)) != NULL;)
        conn_destroy(cn, DB_ESHUTDOWN);
    if (db->cl)
        cluster_destroy(db->cl);
    while (!list_empty(&db->deferred))
        run_deferred(db, DB_ESHUTDOWN);
    uv_close((uv_handle_t *)&db->idle, on_db_closed);
}

bool db_ready(const db_t *db)
{
    if (db->closing)
        return false;
    return db->cl ? cluster_ready(db->cl) : db->main->state == ST_READY;
}

const char *db_last_error(const db_t *db)
{
    if (db_ready(db))
        return "";
    if (db->closing)
        return "shut down";
    return db->cl ? cluster_last_error(db->cl) : db->main->last_error;
}

void db_on_state(db_t *db, void (*cb)(bool up, void *arg), void *arg)
{
    db->state_cb = cb;
    db->state_arg = arg;
}

uv_loop_t *db_loop(db_t *db)
{
    return db->loop;
}

list_t *db_conns(db_t *db)
{
    return &db->conns;
}

const db_url_t *db_url(const db_t *db)
{
    return &db->url;
}

const char *db_name(const db_t *db)
{
    return db->name;
}

/* ---- commands ---- */

static bool name_is(const char *s, size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp(s, name, len) == 0;
}

/* The slot of a command's key for routing, -1 for keyless commands. Covers what herald sends:
 * the key is the first argument except for the server commands below and EVAL/EVALSHA (after
 * numkeys). */
static int command_slot(int argc, const char *const *argv, const size_t *lens)
{
    static const char *const keyless[] = {
        "PING",     "INFO",    "SCRIPT", "TIME",     "CLUSTER", "DBSIZE",   "SCAN", "RANDOMKEY",
        "FLUSHALL", "FLUSHDB", "CONFIG", "CLIENT",   "DEBUG",   "COMMAND",  "ECHO", "ROLE",
        "SLOWLOG",  "LATENCY", "MEMORY", "LASTSAVE", "WAIT",    "FUNCTION", NULL};
    size_t l0 = lens ? lens[0] : strlen(argv[0]);
    for (size_t i = 0; keyless[i]; i++)
        if (name_is(argv[0], l0, keyless[i]))
            return -1;
    int k = 1;
    if (name_is(argv[0], l0, "EVAL") || name_is(argv[0], l0, "EVALSHA") ||
        name_is(argv[0], l0, "EVAL_RO") || name_is(argv[0], l0, "EVALSHA_RO") ||
        name_is(argv[0], l0, "FCALL")) {
        if (argc < 4 || atoi(argv[2]) <= 0) /* lens unused: a number is NUL-terminated by */
            return -1;                      /* every caller that passes one as text */
        k = 3;
    }
    if (argc <= k)
        return -1;
    return (int)db_key_slot(argv[k], lens ? lens[k] : strlen(argv[k]));
}

int db_command(db_t *db, db_cb cb, void *arg, int argc, const char *const *argv,
               const size_t *argvlen)
{
    cmd_t *c = cmd_build(db, cb, arg, 0, NULL, argc, argv, argvlen);
    if (db->cl)
        c->slot = command_slot(argc, argv, argvlen);
    submit(db, c);
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

/* Cluster: the slot of the first key (-1 without keys); in debug builds every key must share
 * it (-2 otherwise), which catches a script that would meet CROSSSLOT only in production. */
static int eval_slot(int nkeys, const char *const *argv, const size_t *argvlen)
{
    if (nkeys <= 0)
        return -1;
    int slot = (int)db_key_slot(argv[0], argvlen ? argvlen[0] : strlen(argv[0]));
#ifndef NDEBUG
    for (int i = 1; i < nkeys; i++)
        if ((int)db_key_slot(argv[i], argvlen ? argvlen[i] : strlen(argv[i])) != slot)
            return -2;
#endif
    return slot;
}

static cmd_t *eval_cmd(db_t *db, db_script_t *s, db_cb cb, void *arg, int nkeys, int argc,
                       const char *const *argv, const size_t *argvlen)
{
    char nk[BUF_NUM_MAX];
    buf_fmt_i64(nk, nkeys);
    cmd_t *c = cmd_build(db, cb, arg, 3, (const char *const[]){"EVALSHA", s->sha, nk}, argc, argv,
                         argvlen);
    c->script = s;
    return c;
}

int db_eval(db_t *db, db_script_t *s, db_cb cb, void *arg, int nkeys, int argc,
            const char *const *argv, const size_t *argvlen)
{
    cmd_t *c = eval_cmd(db, s, cb, arg, nkeys, argc, argv, argvlen);
    if (db->cl) {
        c->slot = eval_slot(nkeys, argv, argvlen);
        if (c->slot == -2) {
            LOG(LOG_LVL_ERROR, "redis script keys in different cluster slots", LKS("db", db->name),
                LKS("sha", s->sha));
            cmd_defer(db, c, DB_ECROSSSLOT);
            return 0;
        }
    }
    submit(db, c);
    return 0;
}

/* ---- every master ---- */

size_t db_masters(const db_t *db)
{
    return db->cl ? cluster_masters(db->cl) : 1;
}

static conn_t *master(const db_t *db, size_t i)
{
    if (db->cl)
        return cluster_master(db->cl, i);
    return i == 0 ? db->main : NULL;
}

int db_master_info(const db_t *db, size_t i, db_node_info_t *out)
{
    const conn_t *cn = master(db, i);
    memset(out, 0, sizeof *out);
    if (cn == NULL)
        return -1;
    if (cn->path)
        snprintf(out->addr, sizeof out->addr, "%s", cn->path);
    else if (strchr(cn->host, ':'))
        snprintf(out->addr, sizeof out->addr, "[%s]:%d", cn->host, cn->port);
    else
        snprintf(out->addr, sizeof out->addr, "%s:%d", cn->host, cn->port);
    out->slots = db->cl ? cn->slots : DB_SLOTS;
    out->up = cn->state == ST_READY;
    snprintf(out->error, sizeof out->error, "%s", out->up ? "" : cn->last_error);
    return 0;
}

/* Sends c to master i without redirects (c->pin), or fails it with DB_EDOWN. */
static void submit_at(db_t *db, size_t i, cmd_t *c)
{
    c->pin = master(db, i);
    if (db->closing)
        cmd_defer(db, c, DB_ESHUTDOWN);
    else if (c->pin == NULL || conn_send(c->pin, c) != 0)
        cmd_defer(db, c, DB_EDOWN);
}

int db_command_at(db_t *db, size_t i, db_cb cb, void *arg, int argc, const char *const *argv,
                  const size_t *argvlen)
{
    submit_at(db, i, cmd_build(db, cb, arg, 0, NULL, argc, argv, argvlen));
    return 0;
}

int db_eval_at(db_t *db, size_t i, db_script_t *s, db_cb cb, void *arg, int nkeys, int argc,
               const char *const *argv, const size_t *argvlen)
{
    submit_at(db, i, eval_cmd(db, s, cb, arg, nkeys, argc, argv, argvlen));
    return 0;
}

bool db_is_cluster(const db_t *db)
{
    return db->cl != NULL;
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
    case DB_ECROSSSLOT:
        return "keys of one Redis command in different cluster slots";
    default:
        return "unknown Redis error";
    }
}
