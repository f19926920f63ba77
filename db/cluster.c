/* cluster.c - Redis Cluster routing for db.c: the slot map, one connection per master, redirects
 * and readiness.
 *
 * The map comes from CLUSTER SLOTS, asked of any connected node: at start (of the seeds: the URL's
 * node and redis.cluster_seeds), every REFRESH_MS while the cluster is whole, soon after a MOVED,
 * a CLUSTERDOWN or a lost connection, and with backoff while a slot is not served. A new map
 * opens connections to new masters and retires those of nodes that are no longer masters (a
 * retiring connection closes once its FIFO drained).
 *
 * A command goes to the master of its slot (db.c computes it), keyless ones round-robin over the
 * masters. MOVED updates that slot at once and resends; ASK sends ASKING then the command to the
 * importing node (pipelined on one connection, so nothing comes between them); TRYAGAIN and
 * CLUSTERDOWN, and redirects to a node not yet connected, park the command and retry it with
 * backoff. Each command gets MAX_TRIES redirects and retries in all, then the last error reply
 * (or DB_EDOWN) goes to its caller. A command to a slot whose master is down fails at once with
 * DB_EDOWN, as in standalone mode: the callers already handle an unavailable Redis. */
#include "db/internal.h"

#include "core/backoff.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_MS 10000   /* map refresh while every slot is served */
#define REFRESH_MIN_MS 100 /* refreshes come at most this often */
#define REFRESH_CAP_MS 1000
#define PARK_BASE_MS 20 /* retry backoff: 20, 40, ... 640 ms, then 1 s */
#define PARK_CAP_MS 1000
#define MAX_TRIES 8
#define MAX_SEEDS 16

typedef struct seed {
    char host[DB_HOST_MAX];
    int port;
} seed_t;

struct cluster {
    db_t *db;
    conn_t *slot[DB_SLOTS]; /* the master serving each slot, NULL when none */
    bool have_map;
    bool ready;
    bool refreshing;
    conn_t *asked; /* the node the CLUSTER SLOTS in flight went to */
    unsigned refresh_attempt;
    uint64_t last_refresh;
    size_t rr; /* keyless commands: round robin */
    seed_t seeds[MAX_SEEDS];
    size_t nseeds;
    list_t parked; /* of cmd_t waiting to be retried */
    uv_timer_t refresh_timer, park_timer;
    int open_handles;
    char last_error[256];
};

static void refresh(cluster_t *cl);
static void no_map_error(cluster_t *cl);

/* "host:port,host:port" (spaces allowed around entries); IPv6 as [addr]:port. */
static int parse_seeds(cluster_t *cl, const char *s, char *err, size_t errlen)
{
    while (s && *s) {
        s += strspn(s, " ");
        size_t n = strcspn(s, ",");
        size_t t = n;
        while (t > 0 && s[t - 1] == ' ')
            t--;
        char entry[DB_HOST_MAX + 16], url[DB_HOST_MAX + 32];
        db_url_t u;
        if (t == 0 || t >= sizeof entry || cl->nseeds == MAX_SEEDS) {
            snprintf(err, errlen, "redis.cluster_seeds: expected up to %d host:port entries",
                     MAX_SEEDS - 1);
            return -1;
        }
        memcpy(entry, s, t);
        entry[t] = '\0';
        snprintf(url, sizeof url, "redis://%s", entry);
        if (strchr(entry, '@') || strchr(entry, '/') || !strchr(entry, ':') ||
            db_url_parse(url, &u, err, errlen) != 0) {
            snprintf(err, errlen, "redis.cluster_seeds: \"%s\" is not host:port", entry);
            return -1;
        }
        snprintf(cl->seeds[cl->nseeds].host, DB_HOST_MAX, "%s", u.host);
        cl->seeds[cl->nseeds++].port = u.port;
        s += n + (s[n] == ',');
    }
    return 0;
}

static conn_t *find_conn(cluster_t *cl, const char *host, int port)
{
    list_t *l = db_conns(cl->db);
    for (list_node_t *n = l->head.next; n != &l->head; n = n->next) {
        conn_t *cn = container_of(n, conn_t, node);
        if (cn->port == port && strcmp(cn->host, host) == 0)
            return cn;
    }
    return NULL;
}

/* The connection to host:port, opened when there is none; a retiring one is kept after all. */
static conn_t *conn_for(cluster_t *cl, const char *host, int port)
{
    conn_t *cn = find_conn(cl, host, port);
    if (cn == NULL)
        return conn_create(cl->db, host, port);
    cn->retiring = false;
    return cn;
}

static void on_timer_closed(uv_handle_t *h)
{
    cluster_t *cl = h->data;
    if (--cl->open_handles == 0)
        free(cl);
}

cluster_t *cluster_create(db_t *db, const char *seeds, char *err, size_t errlen)
{
    cluster_t *cl = xcalloc(1, sizeof *cl);
    const db_url_t *u = db_url(db);
    cl->db = db;
    snprintf(cl->seeds[0].host, DB_HOST_MAX, "%s", u->host);
    cl->seeds[0].port = u->port;
    cl->nseeds = 1;
    if (parse_seeds(cl, seeds, err, errlen) != 0) {
        free(cl);
        return NULL;
    }
    list_init(&cl->parked);
    snprintf(cl->last_error, sizeof cl->last_error, "connecting: no slot map yet");
    uv_timer_init(db_loop(db), &cl->refresh_timer);
    uv_timer_init(db_loop(db), &cl->park_timer);
    cl->refresh_timer.data = cl->park_timer.data = cl;
    cl->open_handles = 2;
    for (size_t i = 0; i < cl->nseeds; i++)
        conn_for(cl, cl->seeds[i].host, cl->seeds[i].port);
    return cl;
}

void cluster_destroy(cluster_t *cl)
{
    for (cmd_t *c; (c = list_first_entry(&cl->parked, cmd_t, node)) != NULL;) {
        list_remove(&c->node);
        cmd_defer(cl->db, c, DB_ESHUTDOWN);
    }
    uv_close((uv_handle_t *)&cl->refresh_timer, on_timer_closed);
    uv_close((uv_handle_t *)&cl->park_timer, on_timer_closed);
}

bool cluster_ready(const cluster_t *cl)
{
    return cl->ready;
}

const char *cluster_last_error(cluster_t *cl)
{
    if (!cl->have_map)
        no_map_error(cl); /* the seeds' reasons change without a state change */
    return cl->last_error;
}

/* ---- readiness ---- */

/* Writes what keeps the map from serving every slot: the first gap and why. */
static void describe_gap(cluster_t *cl, unsigned first, unsigned last, unsigned gaps)
{
    const conn_t *cn = cl->slot[first];
    char more[48] = "";
    if (gaps > 1)
        snprintf(more, sizeof more, " (and %u more ranges)", gaps - 1);
    if (cn)
        snprintf(cl->last_error, sizeof cl->last_error,
                 "slots %u-%u not served%s: %.64s:%d: %.100s", first, last, more, cn->host,
                 cn->port, cn->last_error);
    else
        snprintf(cl->last_error, sizeof cl->last_error, "slots %u-%u not served%s: no master",
                 first, last, more);
}

static void no_map_error(cluster_t *cl)
{
    list_t *l = db_conns(cl->db);
    const conn_t *cn = list_empty(l) ? NULL : container_of(l->head.next, conn_t, node);
    if (cn && cn->state != ST_READY)
        snprintf(cl->last_error, sizeof cl->last_error,
                 "connecting: no slot map yet (%.64s:%d: %.100s)", cn->host, cn->port,
                 cn->last_error);
    else
        snprintf(cl->last_error, sizeof cl->last_error, "connecting: no slot map yet");
}

static bool slot_ok(const cluster_t *cl, unsigned s)
{
    return cl->slot[s] && cl->slot[s]->state == ST_READY;
}

/* Recomputes readiness (every slot on a connected master) and tells db.c when it changed. */
static void update(cluster_t *cl)
{
    unsigned gaps = 0, first = 0, last = 0;
    for (unsigned s = 0; s < DB_SLOTS; s++) {
        if (slot_ok(cl, s))
            continue;
        unsigned e = s;
        while (e + 1 < DB_SLOTS && !slot_ok(cl, e + 1) && cl->slot[e + 1] == cl->slot[s])
            e++;
        if (gaps++ == 0)
            first = s, last = e;
        s = e;
    }
    bool ready = cl->have_map && gaps == 0;
    if (!cl->have_map)
        no_map_error(cl);
    else if (!ready)
        describe_gap(cl, first, last, gaps);
    else
        cl->last_error[0] = '\0';
    if (ready == cl->ready)
        return;
    cl->ready = ready;
    if (ready)
        LOG(LOG_LVL_INFO, "redis cluster ready", LKS("db", db_name(cl->db)),
            LKI("masters", (long long)cluster_masters(cl)));
    else
        LOG(LOG_LVL_WARN, "redis cluster not ready", LKS("db", db_name(cl->db)),
            LKS("reason", cl->last_error));
    db_notify(cl->db, ready);
}

/* ---- the slot map ---- */

static void on_refresh_timer(uv_timer_t *t)
{
    refresh(t->data);
}

/* Schedules the next refresh: after REFRESH_MS while ready, with backoff otherwise, or soon
 * (`soon`) but never sooner than REFRESH_MIN_MS after the last one. */
static void schedule_refresh(cluster_t *cl, bool soon)
{
    uint64_t delay = REFRESH_MS;
    if (soon || !cl->ready) {
        delay = soon ? 0 : backoff_ceiling(cl->refresh_attempt, REFRESH_MIN_MS, REFRESH_CAP_MS);
        uint64_t now = clk_mono_ms(), next = cl->last_refresh + REFRESH_MIN_MS;
        if (next > now + delay)
            delay = next - now;
    }
    if (soon && uv_is_active((uv_handle_t *)&cl->refresh_timer) &&
        uv_timer_get_due_in(&cl->refresh_timer) <= delay)
        return;
    uv_timer_start(&cl->refresh_timer, on_refresh_timer, delay, 0);
}

static void set_slot(cluster_t *cl, unsigned s, conn_t *cn)
{
    if (cl->slot[s])
        cl->slot[s]->slots--;
    cl->slot[s] = cn;
    if (cn)
        cn->slots++;
}

/* Retires every connection the map no longer routes to (keeps them all when the map is empty:
 * they are the only way to ask again). */
static void retire_unused(cluster_t *cl)
{
    list_t *l = db_conns(cl->db);
    for (list_node_t *n = l->head.next, *next; n != &l->head; n = next) {
        next = n->next;
        conn_t *cn = container_of(n, conn_t, node);
        if (cn->slots > 0)
            continue;
        cn->retiring = true;
        if (list_empty(&cn->fifo))
            conn_destroy(cn, DB_EPROTO);
    }
}

static void apply_map(cluster_t *cl, const db_slot_range_t *r, size_t n, const char *asked)
{
    for (unsigned s = 0; s < DB_SLOTS; s++)
        set_slot(cl, s, NULL);
    for (size_t i = 0; i < n; i++) {
        conn_t *cn = conn_for(cl, r[i].host[0] ? r[i].host : asked, r[i].port);
        for (unsigned s = r[i].first; s <= r[i].last; s++)
            set_slot(cl, s, cn);
    }
    cl->have_map = true;
    if (n > 0)
        retire_unused(cl);
}

static void on_slots(int status, const db_reply_t *reply, void *arg)
{
    cluster_t *cl = arg;
    char err[160] = "";
    db_slot_range_t *r = NULL;
    size_t n = 0;
    cl->refreshing = false;
    if (status == DB_ESHUTDOWN)
        return;
    if (status != DB_OK)
        snprintf(err, sizeof err, "%s", db_strerror(status));
    else if (db_reply_type(reply) == DB_REPLY_ERROR)
        snprintf(err, sizeof err, "CLUSTER SLOTS: %.120s", db_reply_str(reply, NULL));
    else
        db_slots_parse(reply, &r, &n, err, sizeof err);
    if (err[0]) {
        LOG(LOG_LVL_WARN, "redis cluster map refresh failed", LKS("db", db_name(cl->db)),
            LKS("reason", err));
        if (cl->refresh_attempt < 32)
            cl->refresh_attempt++;
    } else {
        char asked[DB_HOST_MAX];
        snprintf(asked, sizeof asked, "%s", cl->asked ? cl->asked->host : "");
        apply_map(cl, r, n, asked);
        cl->refresh_attempt = 0;
    }
    free(r);
    cl->asked = NULL;
    update(cl);
    schedule_refresh(cl, false);
}

/* A connected node to ask, round robin; NULL when none is connected. */
static conn_t *any_ready(cluster_t *cl, bool masters_only)
{
    list_t *l = db_conns(cl->db);
    size_t n = 0;
    for (list_node_t *p = l->head.next; p != &l->head; p = p->next) {
        conn_t *cn = container_of(p, conn_t, node);
        n += cn->state == ST_READY && (!masters_only || cn->slots > 0);
    }
    if (n == 0)
        return NULL;
    size_t k = cl->rr++ % n;
    for (list_node_t *p = l->head.next; p != &l->head; p = p->next) {
        conn_t *cn = container_of(p, conn_t, node);
        if (cn->state == ST_READY && (!masters_only || cn->slots > 0) && k-- == 0)
            return cn;
    }
    return NULL;
}

static void refresh(cluster_t *cl)
{
    if (cl->refreshing)
        return;
    cl->last_refresh = clk_mono_ms();
    conn_t *cn = any_ready(cl, false);
    if (cn == NULL) {
        /* Nobody to ask: make sure the seeds are being tried, then wait for one. */
        for (size_t i = 0; i < cl->nseeds; i++)
            conn_for(cl, cl->seeds[i].host, cl->seeds[i].port);
        if (cl->refresh_attempt < 32)
            cl->refresh_attempt++;
        schedule_refresh(cl, false);
        return;
    }
    cmd_t *c = cmd_internal(cl->db, on_slots, cl, 2, (const char *const[]){"CLUSTER", "SLOTS"});
    cl->refreshing = true;
    cl->asked = cn;
    if (conn_send(cn, c) != 0)
        cmd_defer(cl->db, c, DB_EDOWN); /* on_slots schedules the next try */
}

void cluster_conn_changed(cluster_t *cl, conn_t *cn, bool up)
{
    (void)cn;
    if (up && !cl->have_map)
        refresh(cl);
    else if (!up)
        schedule_refresh(cl, true); /* a failover may be under way */
    update(cl);
}

/* ---- routing ---- */

size_t cluster_masters(cluster_t *cl)
{
    size_t n = 0;
    list_t *l = db_conns(cl->db);
    for (list_node_t *p = l->head.next; p != &l->head; p = p->next)
        n += container_of(p, conn_t, node)->slots > 0;
    return n;
}

conn_t *cluster_master(cluster_t *cl, size_t i)
{
    list_t *l = db_conns(cl->db);
    for (list_node_t *p = l->head.next; p != &l->head; p = p->next) {
        conn_t *cn = container_of(p, conn_t, node);
        if (cn->slots > 0 && i-- == 0)
            return cn;
    }
    return NULL;
}

conn_t *cluster_route(cluster_t *cl, cmd_t *c)
{
    if (c->slot >= 0)
        return cl->slot[c->slot];
    return any_ready(cl, true);
}

static void on_park_timer(uv_timer_t *t);

static void arm_park(cluster_t *cl)
{
    uint64_t next = UINT64_MAX, now = clk_mono_ms();
    for (list_node_t *p = cl->parked.head.next; p != &cl->parked.head; p = p->next) {
        const cmd_t *c = container_of(p, const cmd_t, node);
        if (c->retry_at < next)
            next = c->retry_at;
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&cl->park_timer);
    else
        uv_timer_start(&cl->park_timer, on_park_timer, next > now ? next - now : 0, 0);
}

static void park(cluster_t *cl, cmd_t *c)
{
    c->retry_at = clk_mono_ms() + backoff_ceiling(c->tries, PARK_BASE_MS, PARK_CAP_MS);
    list_push_back(&cl->parked, &c->node);
    arm_park(cl);
}

/* Sends c to cn, or parks it while tries remain, or fails it. */
static void resend(cluster_t *cl, conn_t *cn, cmd_t *c)
{
    if (cn && conn_send(cn, c) == 0)
        return;
    if (++c->tries < MAX_TRIES)
        park(cl, c);
    else
        cmd_defer(cl->db, c, DB_EDOWN);
}

static void on_park_timer(uv_timer_t *t)
{
    cluster_t *cl = t->data;
    uint64_t now = clk_mono_ms();
    list_t due;
    list_init(&due);
    for (list_node_t *p = cl->parked.head.next, *next; p != &cl->parked.head; p = next) {
        next = p->next;
        if (container_of(p, cmd_t, node)->retry_at <= now) {
            list_remove(p);
            list_push_back(&due, p);
        }
    }
    for (cmd_t *c; (c = list_first_entry(&due, cmd_t, node)) != NULL;) {
        list_remove(&c->node);
        resend(cl, cluster_route(cl, c), c);
    }
    arm_park(cl);
}

static void noop_cb(int status, const db_reply_t *r, void *arg)
{
    (void)status, (void)r, (void)arg;
}

static bool starts(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0 && (len == n || s[n] == ' ');
}

/* MOVED: the slot lives elsewhere now (resend there, refresh the map); ASK: this one command goes
 * to the importing node after ASKING. */
static bool redirect(cluster_t *cl, conn_t *from, cmd_t *c, const db_redirect_t *rd)
{
    conn_t *to = conn_for(cl, rd->host[0] ? rd->host : from->host, rd->port);
    if (!rd->ask) {
        set_slot(cl, rd->slot, to);
        schedule_refresh(cl, true);
        resend(cl, to, c);
        return true;
    }
    if (to->state != ST_READY) {
        resend(cl, NULL, c); /* parked: routed by slot again, and ASKed again */
        return true;
    }
    cmd_t *asking = cmd_internal(cl->db, noop_cb, NULL, 1, (const char *const[]){"ASKING"});
    if (conn_send(to, asking) != 0)
        cmd_defer(cl->db, asking, DB_EDOWN);
    resend(cl, to, c);
    return true;
}

bool cluster_on_error(cluster_t *cl, conn_t *cn, cmd_t *c, const char *s, size_t len)
{
    db_redirect_t rd;
    if (c->pin || c->tries + 1 >= MAX_TRIES)
        return false;
    if (db_redirect_parse(s, len, &rd) == 0) {
        c->tries++;
        return redirect(cl, cn, c, &rd);
    }
    if (starts(s, len, "TRYAGAIN") || starts(s, len, "CLUSTERDOWN")) {
        if (s[0] == 'C')
            schedule_refresh(cl, true);
        c->tries++;
        park(cl, c);
        return true;
    }
    return false;
}
