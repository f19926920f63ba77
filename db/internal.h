/* internal.h - what db.c (connections, commands) and cluster.c (slot routing) share inside the db
 * module. Nothing outside db/ includes this.
 *
 * A conn_t is one server connection with its own FIFO of sent commands, deadline timer and
 * reconnect backoff; standalone has one, cluster mode one per master (plus seeds until the first
 * slot map). A cmd_t is one command from submission until its callback ran. */
#ifndef HERALD_DB_INTERNAL_H
#define HERALD_DB_INTERNAL_H

#include "core/list.h"
#include "db/db.h"
#include "db/slots.h"
#include "db/url.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct redisAsyncContext;

typedef enum { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_READY } conn_state_t;

typedef struct conn conn_t;
typedef struct cluster cluster_t;
typedef struct cmd cmd_t;

struct cmd {
    list_node_t node; /* in a conn's fifo, db->deferred or the cluster's parked list */
    db_t *db;
    conn_t *conn; /* where it was last sent */
    conn_t *pin;  /* db_command_at/db_eval_at: that connection only, no redirects */
    db_cb cb;
    void (*fn)(void *arg); /* db_defer: a plain function instead of cb */
    void *arg;
    uint64_t deadline; /* monotonic ms */
    uint64_t retry_at; /* cluster: parked until then */
    int status;        /* deferred: what to deliver */
    int slot;          /* cluster: the key's slot, -1 for keyless commands */
    unsigned tries;    /* cluster: redirects and retries so far */
    bool done;         /* callback already ran; hiredis may still report it (NULL reply) */
    bool internal;     /* handshake, ASKING, CLUSTER SLOTS: not counted in flight */
    db_script_t *script;
    size_t len; /* of resp */
    char *resp; /* the command in RESP, kept for resends: wire[], or its own block after NOSCRIPT */
    char wire[];
};

struct conn {
    list_node_t node; /* in db->conns */
    db_t *db;
    char host[DB_HOST_MAX];
    int port;
    const char *path;             /* unix socket (standalone only), or NULL */
    struct redisAsyncContext *ac; /* NULL unless CONNECTING/HANDSHAKE/READY */
    conn_state_t state;
    bool outage_logged; /* one log line per outage, not per failed attempt */
    bool retiring;      /* cluster: no longer a master; destroyed once its FIFO is empty */
    bool dead;          /* destroyed: handles closing */
    unsigned attempt;
    unsigned handshake_left;
    unsigned slots; /* cluster: slots the map routes here */
    uint64_t connect_deadline;
    list_t fifo; /* of cmd_t, oldest first */
    uv_timer_t deadline_timer, retry_timer;
    int open_handles;
    char last_error[128];
};

/* db.c, for cluster.c */
conn_t *conn_create(db_t *db, const char *host, int port);
/* Fails what it has in flight with status, closes it; the struct is freed once its handles
 * closed. No-op when already dead. */
void conn_destroy(conn_t *cn, int status);
/* Sends c (its RESP) on cn; 0, or -1 when cn is not ready or refused it. */
int conn_send(conn_t *cn, cmd_t *c);
cmd_t *cmd_internal(db_t *db, db_cb cb, void *arg, int argc, const char *const *argv);
/* Fails c with status from a later loop iteration. */
void cmd_defer(db_t *db, cmd_t *c, int status);
void db_notify(db_t *db, bool up);
uv_loop_t *db_loop(db_t *db);
list_t *db_conns(db_t *db);
const db_url_t *db_url(const db_t *db);
const char *db_name(const db_t *db);

/* wire.c, for db.c: ac's event hooks on loop; commands of one loop turn leave in one write.
 * 0, or -1 (ac already attached, or no poll handle for its socket). */
int wire_attach(struct redisAsyncContext *ac, uv_loop_t *loop);

/* cluster.c, for db.c */
cluster_t *cluster_create(db_t *db, const char *seeds, char *err, size_t errlen);
/* Fails the parked commands with DB_ESHUTDOWN and closes the timers (freed when closed). */
void cluster_destroy(cluster_t *cl);
/* The connection for c (by c->pin, else c->slot), or NULL when none serves it. */
conn_t *cluster_route(cluster_t *cl, cmd_t *c);
/* An error reply to c from cn: true when it was a redirect or a retryable error and c was taken
 * over (resent or parked); false when the error goes to the caller. */
bool cluster_on_error(cluster_t *cl, conn_t *cn, cmd_t *c, const char *s, size_t len);
/* cn connected (up) or lost its connection. */
void cluster_conn_changed(cluster_t *cl, conn_t *cn, bool up);
bool cluster_ready(const cluster_t *cl);
const char *cluster_last_error(cluster_t *cl);
/* The i-th master of the map, or NULL. */
conn_t *cluster_master(cluster_t *cl, size_t i);
size_t cluster_masters(cluster_t *cl);

#endif
