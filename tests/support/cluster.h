/* cluster.h - a real Redis Cluster for integration tests: 3 masters and 3 replicas on free ports
 * (redis-server --cluster-enabled yes, joined by redis-cli --cluster create), started once per
 * test binary and stopped at its end. Test code only; blocking calls are fine here. */
#ifndef HERALD_TESTS_CLUSTER_H
#define HERALD_TESTS_CLUSTER_H

#include "tests/support/harness.h"

#include <stdbool.h>

#define TH_CLUSTER_NODES 6

typedef struct th_cluster {
    th_redis_t node[TH_CLUSTER_NODES];
    char password[64];    /* set before starting: requirepass and masterauth on every node */
    long node_timeout_ms; /* set before starting: cluster-node-timeout, 0 for Redis' default */
    char url[64];         /* redis://127.0.0.1:<node 0>/0 (without the password) */
    char seeds[64];       /* "127.0.0.1:<node 1>,127.0.0.1:<node 2>" */
} th_cluster_t;

/* Starts the nodes, creates the cluster and waits (bounded) until every node says
 * cluster_state:ok. Returns 0, or -1 with the reason on stderr (everything started is stopped). */
int th_cluster_start(th_cluster_t *c);
void th_cluster_stop(th_cluster_t *c);
/* Waits until every running node says cluster_state:ok and agrees on who serves every slot. */
bool th_cluster_wait_ok(th_cluster_t *c, int timeout_ms);
/* The index of the node serving slot as master, as the running nodes see it, or -1. */
int th_cluster_owner(th_cluster_t *c, unsigned slot);
/* The index of a running node replicating node m (with its link up), or -1. */
int th_cluster_replica_of(th_cluster_t *c, int m);
/* Waits (bounded) until replica rep has applied every write master m had taken when called
 * (replication is asynchronous: a master killed before that loses its last writes on failover,
 * as Redis Cluster documents). */
bool th_cluster_synced(th_cluster_t *c, int m, int rep, int timeout_ms);
/* Node i's cluster id (CLUSTER MYID) into out. Returns 0 or -1. */
int th_cluster_id(th_cluster_t *c, int i, char *out, size_t outlen);

#endif
