/* stack.h - herald end to end with every dependency, for the tests that run the daemon as in
 * production: a temp folder, a real redis-server, librdkafka's mock cluster with one topic, the
 * Expo simulator and an HS256 secret file; then herald configured for them, consuming. */
#ifndef HERALD_TESTS_STACK_H
#define HERALD_TESTS_STACK_H

#include "tests/support/cluster.h"
#include "tests/support/harness.h"

#include <stddef.h>

typedef struct th_stack {
    char dir[256];
    /* Set before th_stack_start to run on a Redis Cluster (started and stopped with the stack)
     * instead of one redis-server; redis then names its node 0, and th_redis_cmd on it follows
     * the cluster's redirects. */
    th_cluster_t *cluster;
    th_redis_t redis;
    const char *bootstrap; /* the mock cluster's (static storage) */
    th_proc_t sim;
    char sim_url[96];
    th_herald_t herald;
} th_stack_t;

/* Starts everything but herald: the folder, Redis (or s->cluster), Kafka with topic (and its DLQ),
 * the secret in <dir>/secret and the simulator. Returns 0 or -1. */
int th_stack_start(th_stack_t *s, const char *topic, const char *secret);

/* Starts herald in s->dir with the configuration these tests share (API and admin on free ports,
 * this Redis and secret, Kafka group `group` consuming `topic` with 6 s sessions, the simulator as
 * Expo with 20-200 ms backoff, the runtime dir under s->dir; redis.cluster with s->cluster) and
 * the lines in extra, then waits
 * (bounded) until the group owns partitions. Returns 0 or -1. */
int th_stack_herald(th_stack_t *s, const char *topic, const char *group, const char *extra);

/* The same for another herald instance h (its runtime dir under h->dir, a fresh tmpdir when
 * empty): several instances of one group share the stack. Stop it with th_herald_stop. */
int th_stack_herald_at(th_stack_t *s, th_herald_t *h, const char *topic, const char *group,
                       const char *extra);

/* A job's delivery trace as herald keeps it (pipeline/trace.h): the records of every ledger entry
 * the job index <prefix>job:<job> names, oldest first, one JSON object a line ("" when none).
 * Caller frees; NULL when Redis does not answer. */
char *th_stack_trace(th_stack_t *s, const char *prefix, const char *job);

/* Stops herald (SIGTERM), the simulator, Redis and Kafka. Returns 0 when herald exited with 0,
 * else -1. */
int th_stack_stop(th_stack_t *s);

/* Produces one event value (no key, no headers) to topic and waits until the broker has it.
 * Returns 0 or -1. */
int th_stack_publish(const char *topic, const char *value);

/* "Authorization: Bearer <JWT>" for sub, signed with secret, valid for an hour, into out. */
void th_bearer(const char *secret, const char *sub, char *out, size_t outlen);

/* One API request to herald as user (JWTs signed with secret; user NULL: a malformed JWT), body
 * JSON or NULL. Returns the HTTP status, or -1 when no response arrived. */
long th_stack_api(const th_stack_t *s, const char *secret, const char *method, const char *user,
                  const char *path, const char *body);

/* Runs heraldctl with herald's own config file: stdout and stderr into out (NUL-terminated,
 * truncated to outlen - 1). Returns the exit code, or -1. */
int th_stack_ctl(const th_stack_t *s, const char *args, char *out, size_t outlen);

#endif
