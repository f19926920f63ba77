/* stack.c - herald and its dependencies started and stopped as one, for end-to-end tests. */
#include "tests/support/stack.h"
#include "core/buf.h"
#include "db/keys.h"

#include "tests/support/kafka_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

int th_stack_start(th_stack_t *s, const char *topic, const char *secret)
{
    char path[300];
    if (th_tmpdir(s->dir, sizeof s->dir) != 0)
        return -1;
    if (s->cluster) {
        if (th_cluster_start(s->cluster) != 0)
            return -1;
        s->redis.port = s->cluster->node[0].port;
        snprintf(s->redis.password, sizeof s->redis.password, "%s", s->cluster->password);
        snprintf(s->redis.url, sizeof s->redis.url, "%s", s->cluster->url);
    } else if (th_redis_start(&s->redis, 0) != 0) {
        return -1;
    }
    if ((s->bootstrap = th_kafka_start(topic)) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/secret", s->dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%s\n", secret);
    fclose(f);
    return th_sim_start(&s->sim, s->dir, NULL, s->sim_url, sizeof s->sim_url);
}

int th_stack_herald_at(th_stack_t *s, th_herald_t *h, const char *topic, const char *group,
                       const char *extra)
{
    if (h->dir[0] == '\0' && th_tmpdir(h->dir, sizeof h->dir) != 0)
        return -1;
    char conf[4096], cluster[160] = "";
    if (s->cluster)
        snprintf(cluster, sizeof cluster, "redis.cluster = true\nredis.cluster_seeds = %s\n",
                 s->cluster->seeds);
    snprintf(conf, sizeof conf,
             "%s"
             "http.listen = 127.0.0.1:0\n"
             "admin.listen = 127.0.0.1:0\n"
             "redis.url = %s\n"
             "auth.jwt.hs256_secret_file = %s/secret\n"
             "kafka.bootstrap.servers = %s\n"
             "kafka.group.id = %s\n"
             "queue.topics = %s\n"
             "expo.url = %s\n"
             "expo.backoff_base_ms = 20\n"
             "expo.backoff_cap_ms = 200\n"
             "runtime.dir = %s/run\n"
             "%s",
             cluster, s->redis.url, s->dir, s->bootstrap, group, topic, s->sim_url, h->dir, extra);
    /* A restart appends to the same log: wait for this process's own line. */
    char log[sizeof h->log];
    snprintf(log, sizeof log, "%s/herald.log", h->dir);
    long from = th_file_size(log);
    if (th_herald_start(h, conf, NULL) != 0)
        return -1;
    /* The group forms in about 3 s on the mock broker: the tests begin once herald consumes. */
    if (!th_wait_file_contains_after(h->log, from, "kafka partitions assigned", 60000)) {
        fprintf(stderr, "herald never got partitions; see %s\n", h->log);
        return -1;
    }
    return 0;
}

int th_stack_herald(th_stack_t *s, const char *topic, const char *group, const char *extra)
{
    snprintf(s->herald.dir, sizeof s->herald.dir, "%s", s->dir);
    return th_stack_herald_at(s, &s->herald, topic, group, extra);
}

int th_stack_stop(th_stack_t *s)
{
    int code = th_herald_stop(&s->herald, SIGTERM);
    th_stop(&s->sim, SIGTERM, 5000);
    if (s->cluster)
        th_cluster_stop(s->cluster);
    else
        th_redis_stop(&s->redis);
    th_kafka_stop();
    return code == 0 ? 0 : -1;
}

void th_bearer(const char *secret, const char *sub, char *out, size_t outlen)
{
    char payload[256];
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"exp\":%lld}", sub,
             (long long)time(NULL) + 3600);
    char *jwt = th_jwt_hs256(secret, payload);
    snprintf(out, outlen, "Authorization: Bearer %s", jwt);
    free(jwt);
}

long th_stack_api(const th_stack_t *s, const char *secret, const char *method, const char *user,
                  const char *path, const char *body)
{
    char url[512], auth[2048];
    if (user)
        th_bearer(secret, user, auth, sizeof auth);
    else
        snprintf(auth, sizeof auth, "Authorization: Bearer not-a-jwt");
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    th_herald_url(&s->herald, false, path, url, sizeof url);
    th_resp_t r;
    long status = -1;
    if (th_http(method, url, h, body, body ? strlen(body) : 0, &r) == 0)
        status = r.status;
    th_resp_cleanup(&r);
    return status;
}

int th_stack_ctl(const th_stack_t *s, const char *args, char *out, size_t outlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/heraldctl --config %s %s 2>&1", th_bin_dir(), s->herald.conf,
             args);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_stack_publish(const char *topic, const char *value)
{
    if (th_kafka_send(topic, NULL, value, NULL) != 0)
        return -1;
    return th_kafka_flush() == 0 ? 0 : -1;
}

typedef struct trace_rec {
    char *field, *text;
} trace_rec_t;

static int trace_rec_cmp(const void *a, const void *b)
{
    return strcmp(((const trace_rec_t *)a)->field, ((const trace_rec_t *)b)->field);
}

/* The t:<seq> fields of one entry, from HGETALL's "field\nvalue\n..." text, into recs. */
static void entry_records(char *all, trace_rec_t **recs, size_t *n)
{
    char *save = NULL;
    for (char *f = strtok_r(all, "\n", &save); f; f = strtok_r(NULL, "\n", &save)) {
        char *v = strtok_r(NULL, "\n", &save);
        if (v == NULL)
            break;
        if (strncmp(f, "t:", 2) != 0)
            continue;
        *recs = realloc(*recs, (*n + 1) * sizeof **recs);
        (*recs)[(*n)++] = (trace_rec_t){strdup(f), strdup(v)};
    }
}

char *th_stack_trace(th_stack_t *s, const char *prefix, const char *job)
{
    char k[KEY_MAX];
    key_job(k, prefix, job);
    char *members = th_redis_cmd(&s->redis, "SMEMBERS %s", k);
    if (members == NULL)
        return NULL;
    trace_rec_t *recs = NULL;
    size_t n = 0;
    char *save = NULL;
    for (char *m = strtok_r(members, "\n", &save); m; m = strtok_r(NULL, "\n", &save)) {
        char *sep = strchr(m, '\x1f');
        if (sep == NULL)
            continue;
        *sep = '\0';
        key_ledger(k, prefix, m, sep + 1);
        char *all = th_redis_cmd(&s->redis, "HGETALL %s", k);
        if (all)
            entry_records(all, &recs, &n);
        free(all);
    }
    free(members);
    if (n > 0) /* recs is NULL when there is none */
        qsort(recs, n, sizeof *recs, trace_rec_cmp);
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "%s%s", i ? "\n" : "", recs[i].text);
        free(recs[i].field);
        free(recs[i].text);
    }
    free(recs);
    return buf_steal(&b);
}
