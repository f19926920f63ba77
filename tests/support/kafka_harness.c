/* kafka_harness.c - see kafka_harness.h. Test code: blocking calls are fine here. */
#include "tests/support/kafka_harness.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mc;
static rd_kafka_t *producer;
static char bootstrap[256];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *th_kafka_start(const char *topics)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (mock_rk == NULL)
        return NULL;
    mc = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (mc == NULL)
        return NULL;
    snprintf(bootstrap, sizeof bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(mc));
    char *list = strdup(topics), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char dlq[300];
        snprintf(dlq, sizeof dlq, "%s.dlq", t);
        rd_kafka_mock_topic_create(mc, t, 4, 1);
        rd_kafka_mock_topic_create(mc, dlq, 4, 1);
    }
    free(list);
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_conf_set(conf, "linger.ms", "5", NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    return producer ? bootstrap : NULL;
}

void th_kafka_stop(void)
{
    if (producer) {
        rd_kafka_flush(producer, 5000);
        rd_kafka_destroy(producer);
    }
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (mock_rk)
        rd_kafka_destroy(mock_rk);
    producer = mock_rk = NULL;
    mc = NULL;
}

int th_kafka_send(const char *topic, const char *key, const char *value, const char *const *headers)
{
    rd_kafka_headers_t *h = NULL;
    if (headers) {
        h = rd_kafka_headers_new(4);
        for (size_t i = 0; headers[i] && headers[i + 1]; i += 2)
            rd_kafka_header_add(h, headers[i], -1, headers[i + 1], -1);
    }
    for (int attempt = 0; attempt < 1000; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)value, strlen(value)), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(producer, 10);
    }
    if (h)
        rd_kafka_headers_destroy(h);
    return -1;
}

int th_kafka_flush(void)
{
    return rd_kafka_flush(producer, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int th_kafka_inject_errors(int apikey, int count, int err)
{
    if (mc == NULL || count < 0)
        return -1;
    for (int i = 0; i < count; i++)
        rd_kafka_mock_push_request_errors(mc, (int16_t)apikey, 1, (rd_kafka_resp_err_t)err);
    return 0;
}

static void collect_headers(rd_kafka_message_t *m, th_kmsg_t *out)
{
    rd_kafka_headers_t *h = NULL;
    out->headers[0] = '\0';
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    const char *name;
    const void *val;
    size_t len, used = 0;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++) {
        int n = snprintf(out->headers + used, sizeof out->headers - used, "%s=%.*s\n", name,
                         (int)len, val ? (const char *)val : "");
        if (n < 0 || (size_t)n >= sizeof out->headers - used)
            break;
        used += (size_t)n;
    }
}

int th_kafka_read(const char *topic, int want, int timeout_ms,
                  void (*cb)(const th_kmsg_t *m, void *arg), void *arg)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", "herald-test-reader", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == NULL)
        return -1;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(4);
    for (int p = 0; p < 4; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    int n = 0;
    long long deadline = now_ms() + timeout_ms;
    while (n < want && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            th_kmsg_t km = {m->payload, m->len, m->partition, (long long)m->offset, ""};
            collect_headers(m, &km);
            if (cb)
                cb(&km, arg);
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}
