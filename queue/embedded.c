/* embedded.c - kafka.embedded = true: librdkafka's mock cluster as herald's development broker.
 * The cluster belongs to a producer handle that is never used to produce; clients (herald's
 * consumer, heraldctl) connect to it over loopback like to any broker, through the address
 * written to <runtime_dir>/kafka.bootstrap. */
#include "queue/embedded.h"
#include "queue/consumer.h"

#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct queue_embedded {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    char *bootstrap;
    char *file;
};

/* Called from the mock cluster's own thread: log_write makes one write(2) per line and keeps no
 * shared buffers, so only warnings and errors are passed on. */
static void embedded_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 4)
        LOG(level <= 3 ? LOG_LVL_ERROR : LOG_LVL_WARN, "embedded kafka", LKS("facility", fac),
            LKS("text", buf));
}

static int mkdirs(const char *dir)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Writes the bootstrap file through a temporary name so readers never see half of it. */
static int write_bootstrap(queue_embedded_t *e, const char *dir, char *err, size_t errlen)
{
    if (mkdirs(dir) < 0) {
        snprintf(err, errlen, "runtime.dir %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t n = strlen(dir) + 32;
    e->file = xmalloc(n);
    snprintf(e->file, n, "%s/kafka.bootstrap", dir);
    char *tmp = xmalloc(n + 8);
    snprintf(tmp, n + 8, "%s.tmp", e->file);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s\n", e->bootstrap) > 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, e->file) < 0) {
        snprintf(err, errlen, "%s: %s", e->file, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int queue_embedded_topic(queue_embedded_t *e, const char *topic, int partitions)
{
    rd_kafka_resp_err_t r = rd_kafka_mock_topic_create(e->mc, topic, partitions, e->brokers);
    if (r) {
        LOG(LOG_LVL_ERROR, "embedded kafka topic", LKS("topic", topic),
            LKS("error", rd_kafka_err2str(r)));
        return -1;
    }
    return 0;
}

static int create_topics(queue_embedded_t *e, const conf_t *conf, char *err, size_t errlen)
{
    char *copy = xstrdup(conf->queue_topics), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ", ", &save); t && rc == 0; t = strtok_r(NULL, ", ", &save)) {
        char dlq[512];
        queue_dlq_topic(conf->queue_dlq_topic, t, dlq, sizeof dlq);
        if (queue_embedded_topic(e, t, QUEUE_EMBEDDED_PARTITIONS) < 0 ||
            queue_embedded_topic(e, dlq, QUEUE_EMBEDDED_PARTITIONS) < 0) {
            snprintf(err, errlen, "embedded kafka: cannot create topic %s or %s", t, dlq);
            rc = -1;
        }
    }
    free(copy);
    return rc;
}

queue_embedded_t *queue_embedded_start(const conf_t *conf, int brokers, char *err, size_t errlen)
{
    queue_embedded_t *e = xcalloc(1, sizeof *e);
    e->brokers = brokers > 0 ? brokers : 1;
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(kc, embedded_log);
    char errstr[512];
    if (!(e->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof errstr))) {
        snprintf(err, errlen, "embedded kafka: %s", errstr);
        rd_kafka_conf_destroy(kc);
        goto fail;
    }
    if (!(e->mc = rd_kafka_mock_cluster_new(e->rk, e->brokers))) {
        snprintf(err, errlen, "embedded kafka: cannot start the mock cluster");
        goto fail;
    }
    e->bootstrap = xstrdup(rd_kafka_mock_cluster_bootstraps(e->mc));
    if (create_topics(e, conf, err, errlen) < 0 ||
        write_bootstrap(e, conf->runtime_dir, err, errlen) < 0)
        goto fail;
    LOG(LOG_LVL_INFO, "embedded kafka started", LKS("bootstrap", e->bootstrap),
        LKI("brokers", e->brokers), LKS("file", e->file));
    return e;
fail:
    queue_embedded_destroy(e);
    return NULL;
}

const char *queue_embedded_bootstrap(const queue_embedded_t *e)
{
    return e->bootstrap;
}

void queue_embedded_destroy(queue_embedded_t *e)
{
    if (!e)
        return;
    if (e->file)
        unlink(e->file);
    if (e->mc)
        rd_kafka_mock_cluster_destroy(e->mc);
    if (e->rk)
        rd_kafka_destroy(e->rk);
    free(e->bootstrap);
    free(e->file);
    free(e);
}
