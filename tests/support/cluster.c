/* cluster.c - a real Redis Cluster for the tests (cluster.h). */
#include "tests/support/cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool running(th_cluster_t *c, int i)
{
    return c->node[i].proc.pid > 0 && th_alive(&c->node[i].proc);
}

int th_cluster_id(th_cluster_t *c, int i, char *out, size_t outlen)
{
    char *id = th_redis_cmd(&c->node[i], "CLUSTER MYID");
    if (id == NULL || strlen(id) != 40) {
        free(id);
        return -1;
    }
    snprintf(out, outlen, "%s", id);
    free(id);
    return 0;
}

/* The node index listening on port, or -1. */
static int node_at(th_cluster_t *c, int port)
{
    for (int i = 0; i < TH_CLUSTER_NODES; i++)
        if (c->node[i].port == port)
            return i;
    return -1;
}

/* Who serves slot according to node i's CLUSTER NODES (master lines: "... myself,master - ...
 * 0-5460 ..."), or -1. */
static int owner_seen_by(th_cluster_t *c, int i, unsigned slot)
{
    char *nodes = th_redis_cmd(&c->node[i], "CLUSTER NODES");
    int owner = -1;
    for (char *line = nodes ? strtok(nodes, "\n") : NULL; line && owner < 0;
         line = strtok(NULL, "\n")) {
        char addr[64], flags[64];
        int port;
        if (sscanf(line, "%*s %63s %63s", addr, flags) != 2 || !strstr(flags, "master") ||
            strstr(flags, "fail") || sscanf(strrchr(addr, ':') + 1, "%d", &port) != 1)
            continue;
        const char *p = line;
        for (int field = 0; field < 8 && p; field++)
            p = strchr(p + 1, ' ');
        for (; p && *p == ' '; p = strchr(p + 1, ' ')) {
            unsigned a, b;
            int k = sscanf(p, " %u-%u", &a, &b); /* "[slot->-id]" entries match nothing */
            if (k == 1)
                b = a;
            if (k >= 1 && slot >= a && slot <= b)
                owner = node_at(c, port);
        }
    }
    free(nodes);
    return owner;
}

int th_cluster_owner(th_cluster_t *c, unsigned slot)
{
    int owner = -2;
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        if (!running(c, i))
            continue;
        int o = owner_seen_by(c, i, slot);
        if (owner == -2)
            owner = o;
        else if (o != owner)
            return -1;
    }
    return owner < 0 ? -1 : owner;
}

int th_cluster_replica_of(th_cluster_t *c, int m)
{
    char port[32];
    snprintf(port, sizeof port, "master_port:%d", c->node[m].port);
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        if (i == m || !running(c, i))
            continue;
        char *info = th_redis_cmd(&c->node[i], "INFO replication");
        bool yes = info && strstr(info, port) && strstr(info, "master_link_status:up");
        free(info);
        if (yes)
            return i;
    }
    return -1;
}

/* The number after name in node i's INFO replication, or -1. */
static long long repl_field(th_cluster_t *c, int i, const char *name)
{
    char *info = th_redis_cmd(&c->node[i], "INFO replication");
    const char *at = info ? strstr(info, name) : NULL;
    long long v = at ? strtoll(at + strlen(name), NULL, 10) : -1;
    free(info);
    return v;
}

struct synced {
    th_cluster_t *c;
    int rep;
    long long want;
};

static bool replica_caught_up(void *arg)
{
    struct synced *s = arg;
    return repl_field(s->c, s->rep, "slave_repl_offset:") >= s->want;
}

bool th_cluster_synced(th_cluster_t *c, int m, int rep, int timeout_ms)
{
    struct synced s = {c, rep, repl_field(c, m, "master_repl_offset:")};
    return s.want >= 0 && th_wait_until(replica_caught_up, &s, timeout_ms);
}

static bool all_ok(void *arg)
{
    th_cluster_t *c = arg;
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        if (!running(c, i))
            continue;
        char *info = th_redis_cmd(&c->node[i], "CLUSTER INFO");
        bool ok = info && strstr(info, "cluster_state:ok");
        free(info);
        if (!ok)
            return false;
    }
    /* Every node agrees on an owner of each range's first slot (3 masters: 0, 5461, 10923). */
    return th_cluster_owner(c, 0) >= 0 && th_cluster_owner(c, 5461) >= 0 &&
           th_cluster_owner(c, 16383) >= 0;
}

bool th_cluster_wait_ok(th_cluster_t *c, int timeout_ms)
{
    return th_wait_until(all_ok, c, timeout_ms);
}

static bool exited(void *arg)
{
    return !th_alive(arg);
}

/* redis-cli --cluster create over every node, 1 replica per master. */
static int create(th_cluster_t *c)
{
    char addr[TH_CLUSTER_NODES][32], log[600];
    char *argv[16 + TH_CLUSTER_NODES];
    int n = 0;
    argv[n++] = "redis-cli";
    if (c->password[0]) {
        argv[n++] = "-a";
        argv[n++] = c->password;
        argv[n++] = "--no-auth-warning";
    }
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", c->node[i].port);
        argv[n++] = addr[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "1";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/create.log", c->node[0].dir);
    th_proc_t p;
    if (th_spawn(&p, "redis-cli", argv, NULL, log) != 0)
        return -1;
    bool done = th_wait_until(exited, &p, 60000);
    int st = th_stop(&p, SIGKILL, 1000);
    if (!done || st != 0) {
        fprintf(stderr, "th_cluster: redis-cli --cluster create failed (see %s)\n", log);
        return -1;
    }
    return 0;
}

int th_cluster_start(th_cluster_t *c)
{
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        th_redis_t *r = &c->node[i];
        memset(r, 0, sizeof *r);
        r->cluster = true;
        r->node_timeout_ms = c->node_timeout_ms;
        snprintf(r->password, sizeof r->password, "%s", c->password);
        if (th_redis_start(r, 0) != 0) {
            fprintf(stderr, "th_cluster: node %d did not start\n", i);
            goto fail;
        }
    }
    if (create(c) != 0)
        goto fail;
    if (!th_cluster_wait_ok(c, 30000)) {
        fprintf(stderr, "th_cluster: no cluster_state:ok on every node within 30 s\n");
        goto fail;
    }
    snprintf(c->url, sizeof c->url, "redis://127.0.0.1:%d/0", c->node[0].port);
    snprintf(c->seeds, sizeof c->seeds, "127.0.0.1:%d,127.0.0.1:%d", c->node[1].port,
             c->node[2].port);
    return 0;
fail:
    th_cluster_stop(c);
    return -1;
}

void th_cluster_stop(th_cluster_t *c)
{
    for (int i = 0; i < TH_CLUSTER_NODES; i++)
        if (c->node[i].proc.pid)
            th_stop(&c->node[i].proc, SIGKILL, 2000);
}
