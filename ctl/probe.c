/* probe.c - adapter for heraldctl's reachability probes (probe.h): one libcurl HEAD
 * request and one librdkafka metadata request, each bounded by a short timeout. */
#include "ctl/probe.h"
#include "queue/consumer.h"

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

int ctl_probe_http(const char *url, long timeout_ms, long *status, char *detail, size_t len)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(detail, len, "curl_easy_init failed");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "heraldctl/" HERALD_VERSION);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        snprintf(detail, len, "HTTP %ld", *status);
    } else {
        snprintf(detail, len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static bool topic_in(const rd_kafka_metadata_t *md, const char *name, size_t n)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strlen(md->topics[i].topic) == n && strncmp(md->topics[i].topic, name, n) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return true;
    return false;
}

/* Names the first topic of queue.topics, or the DLQ topic of one of them (queue_dlq_topic: the
 * configured one, or each topic's own "<topic>.dlq"), missing from md into missing. */
static bool topics_missing(const conf_t *conf, const rd_kafka_metadata_t *md, char *missing,
                           size_t len)
{
    for (int pass = 0; pass < 2; pass++) {
        for (const char *s = conf->queue_topics; *s;) {
            size_t n = strcspn(s, ",");
            while (n && s[0] == ' ')
                s++, n--;
            char topic[250], name[256]; /* Kafka topic names are at most 249 bytes */
            snprintf(topic, sizeof topic, "%.*s", (int)n, s);
            if (pass == 1)
                queue_dlq_topic(conf->queue_dlq_topic, topic, name, sizeof name);
            else
                snprintf(name, sizeof name, "%s", topic);
            if (n && !topic_in(md, name, strlen(name))) {
                snprintf(missing, len, "%s", name);
                return true;
            }
            s += n + (s[n] == ',');
        }
    }
    return false;
}

int ctl_probe_kafka(const conf_t *conf, const char *bootstrap, long timeout_ms, char *detail,
                    size_t len)
{
    char err[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(kc, quiet_log);
    for (size_t i = 0; i < conf->nkafka; i++)
        if (rd_kafka_conf_set(kc, conf->kafka[i].key, conf->kafka[i].value, err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            snprintf(detail, len, "kafka.%s: %s", conf->kafka[i].key, err);
            rd_kafka_conf_destroy(kc);
            return -1;
        }
    if (bootstrap)
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof err);
    else
        bootstrap = conf_kafka_get(conf, "bootstrap.servers");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof err);
    if (rk == NULL) {
        snprintf(detail, len, "%s", err);
        rd_kafka_conf_destroy(kc);
        return -1;
    }
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, (int)timeout_ms);
    int rc = -1;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(detail, len, "%s: %s", bootstrap, rd_kafka_err2str(e));
    } else {
        char missing[256];
        rc = topics_missing(conf, md, missing, sizeof missing) ? 1 : 0;
        if (rc)
            snprintf(detail, len, "%d broker(s) answered, but topic %s does not exist",
                     md->broker_cnt, missing);
        else
            snprintf(detail, len, "%d broker(s), %d topic(s), job and DLQ topics present",
                     md->broker_cnt, md->topic_cnt);
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return rc;
}
