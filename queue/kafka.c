/* kafka.c - the librdkafka adapter: a consumer-group member and a producer driven by the libuv
 * loop. Each rd_kafka_t's queue signals a non-blocking pipe (rd_kafka_queue_io_event_enable)
 * that a uv_poll watches; the loop then drains with zero-timeout polls, in bounded batches
 * continued from a uv_idle so one busy partition never starves the loop. A uv_timer polls too,
 * as a safety net and to refresh lag metrics.
 *
 * Offsets: every consumed message gets a ticket linked in offset order on its partition. A
 * completed ticket is marked done; the done prefix of the list is popped and its last offset
 * + 1 becomes the partition's offset to store (enable.auto.offset.store=false), handed to
 * rd_kafka_offsets_store once per loop iteration (uv_check) and committed by auto-commit and
 * at shutdown. Revoked partitions drop their lists; late completions only free the ticket.
 *
 * Undecodable values are produced to the DLQ; their tickets complete on the delivery report,
 * so a poison message's offset is committed only once its DLQ record is acknowledged. */
#include "queue/consumer.h"

#include "core/list.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DRAIN_BATCH 500     /* messages per loop turn */
#define SAFETY_POLL_MS 200  /* timer poll, in case a wake-up was missed */
#define PAUSE_AFTER_MS 2000 /* full this long: pause the partitions, poll on (see backpressure) */
#define LAG_EVERY_TICKS 5   /* lag refresh every second */
#define CLOSE_BOUND_MS 5000 /* commit + leave group, and producer flush, each */
#define DLQ_RETRY_MS 1000
#define MAX_HEADERS 64

const char *queue_strerror(int code)
{
    switch (code) {
    case QUEUE_OK:
        return "ok";
    case QUEUE_EFULL:
        return "producer queue full";
    case QUEUE_EDELIVERY:
        return "delivery failed";
    case QUEUE_ECLOSED:
        return "closed";
    case QUEUE_ETIMEDOUT:
        return "timed out";
    case QUEUE_EINVAL:
        return "invalid argument";
    default:
        return "kafka error";
    }
}

/* ---- loop wake-ups: a pipe written by librdkafka, watched by uv_poll ---- */

typedef struct waker {
    int fds[2];
    uv_poll_t poll;             /* data: the owner, as for its other handles */
    void (*serve)(void *owner); /* what the owner does when librdkafka wakes the loop */
} waker_t;

static void waker_clear(waker_t *w)
{
    char tmp[256];
    while (read(w->fds[0], tmp, sizeof tmp) > 0)
        ;
}

static void waker_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    waker_t *w = container_of(h, waker_t, poll);
    waker_clear(w);
    w->serve(h->data);
}

static int waker_init(waker_t *w, uv_loop_t *loop, rd_kafka_queue_t *q, void (*serve)(void *),
                      void *owner)
{
    if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    if (uv_poll_init(loop, &w->poll, w->fds[0]) < 0) {
        close(w->fds[0]);
        close(w->fds[1]);
        return -1;
    }
    w->poll.data = owner;
    w->serve = serve;
    rd_kafka_queue_io_event_enable(q, w->fds[1], "1", 1);
    uv_poll_start(&w->poll, UV_READABLE, waker_readable);
    return 0;
}

/* ---- configuration ---- */

static int conf_put(rd_kafka_conf_t *kc, const char *k, const char *v, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(kc, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.%s: %s", k, e);
        return -1;
    }
    return 0;
}

static void trim_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static const char *prop_get(const queue_kafka_opts_t *k, const char *name)
{
    for (size_t i = 0; i < k->nprops; i++)
        if (strcmp(k->props[i].key, name) == 0)
            return k->props[i].value;
    return NULL;
}

static int resolve(const queue_kafka_opts_t *k, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *bs = prop_get(k, "bootstrap.servers");
    if (bs) {
        snprintf(out, outlen, "%s", bs);
        return 0;
    }
    if (!k->embedded) {
        snprintf(err, errlen, "kafka.bootstrap.servers is not set (or set kafka.embedded = true)");
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/kafka.bootstrap", k->runtime_dir ? k->runtime_dir : ".");
    FILE *f = fopen(path, "r");
    if (!f || !fgets(out, (int)outlen, f)) {
        snprintf(err, errlen, "%s: cannot read the embedded broker's address: %s", path,
                 f ? "empty file" : strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    trim_line(out);
    if (!out[0]) {
        snprintf(err, errlen, "%s: empty file", path);
        return -1;
    }
    return 0;
}

int queue_bootstrap_resolve(const conf_t *conf, char *out, size_t outlen, char *err, size_t errlen)
{
    queue_kafka_opts_t k = {.props = conf->kafka,
                            .nprops = conf->nkafka,
                            .embedded = conf->kafka_embedded,
                            .runtime_dir = conf->runtime_dir};
    return resolve(&k, out, outlen, err, errlen);
}

/* librdkafka logs arrive through the handle's queue (log.queue), so this runs on the loop. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_level_t lvl = level <= 3   ? LOG_LVL_ERROR
                      : level <= 4 ? LOG_LVL_WARN
                      : level <= 6 ? LOG_LVL_INFO
                                   : LOG_LVL_DEBUG;
    LOG(lvl, "kafka", LKS("client", rd_kafka_name(rk)), LKS("facility", fac), LKS("text", buf));
}

static const struct {
    const char *k, *v;
} consumer_defaults[] = {
    {"group.id", "herald"},
    {"enable.auto.commit", "true"},
    {"auto.offset.reset", "earliest"},
    /* A killed instance's partitions move once its session expires: 6 s is the least a broker
     * accepts by default (group.min.session.timeout.ms), so a restart resumes soonest. */
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "2000"},
    {"partition.assignment.strategy", "cooperative-sticky"},
    /* The prefetch queue is what bounds memory under a backlog (backpressure leaves messages
     * there): librdkafka's defaults (100,000 messages per partition, 64 MB) let a big backlog
     * cost hundreds of MB; this still holds several seconds of work at full speed. */
    {"queued.min.messages", "10000"},
    {"queued.max.messages.kbytes", "8192"},
};

static rd_kafka_conf_t *build_conf(const queue_kafka_opts_t *ko, bool consumer, char *err,
                                   size_t errlen)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char bs[1024];
    if (resolve(ko, bs, sizeof bs, err, errlen) < 0 ||
        conf_put(kc, "bootstrap.servers", bs, err, errlen) < 0 ||
        conf_put(kc, "log.queue", "true", err, errlen) < 0)
        goto fail;
    for (size_t i = 0; consumer && i < sizeof consumer_defaults / sizeof consumer_defaults[0];
         i++) {
        if (conf_put(kc, consumer_defaults[i].k, consumer_defaults[i].v, err, errlen) < 0)
            goto fail;
    }
    for (size_t i = 0; i < ko->nprops; i++) {
        const char *k = ko->props[i].key;
        if (strcmp(k, "bootstrap.servers") == 0)
            continue;
        if (strcmp(k, "enable.auto.offset.store") == 0 && strcmp(ko->props[i].value, "false")) {
            snprintf(err, errlen,
                     "kafka.enable.auto.offset.store must stay false: herald stores "
                     "offsets only when an event has a durable outcome");
            goto fail;
        }
        if (!consumer && (strncmp(k, "group.", 6) == 0 || strstr(k, "offset") ||
                          strncmp(k, "partition.assignment", 20) == 0 ||
                          strncmp(k, "session.", 8) == 0 || strncmp(k, "heartbeat.", 10) == 0 ||
                          strncmp(k, "fetch.", 6) == 0 || strncmp(k, "auto.", 5) == 0))
            continue; /* consumer-only properties: keep the producer's log quiet */
        if (conf_put(kc, k, ko->props[i].value, err, errlen) < 0)
            goto fail;
    }
    if (consumer && conf_put(kc, "enable.auto.offset.store", "false", err, errlen) < 0)
        goto fail;
    rd_kafka_conf_set_log_cb(kc, log_cb);
    return kc;
fail:
    rd_kafka_conf_destroy(kc);
    return NULL;
}

/* ---- producer ---- */

/* Every message queue_produce accepted is a pmsg_t on one of two lists until its callback fired:
 * `queued` (librdkafka has it; dr_cb reports it) or `refused` (produceva said no; reported from
 * refused_timer on the next loop turn). destroy reports whatever is left on either. */
struct queue_producer {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    waker_t waker;
    uv_timer_t timer;
    uv_timer_t refused_timer;
    int open_handles;
    bool closing;
    list_t queued, refused; /* of pmsg_t */
    metric_t *m_ok, *m_fail;
};

typedef struct pmsg {
    list_node_t node;
    queue_produce_cb cb;
    void *arg;
    int status;  /* refused: QUEUE_EFULL or QUEUE_ERR */
    char *error; /* refused: librdkafka's text */
    char *topic; /* refused: a copy, for the report */
} pmsg_t;

static void pmsg_report(queue_producer_t *p, pmsg_t *pm, const queue_delivery_t *dr)
{
    list_remove(&pm->node);
    if (p->m_ok)
        metric_inc(dr->status ? p->m_fail : p->m_ok);
    pm->cb(dr, pm->arg);
    free(pm->error);
    free(pm->topic);
    free(pm);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    queue_producer_t *p = opaque;
    pmsg_t *pm = m->_private;
    queue_delivery_t dr = {
        .status = QUEUE_OK,
        .topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "",
        .partition = m->partition,
        .offset = m->err ? -1 : m->offset,
    };
    if (m->err) {
        dr.status =
            m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
                ? QUEUE_ECLOSED
                : QUEUE_EDELIVERY;
        dr.error = rd_kafka_err2str(m->err);
    }
    if (pm)
        pmsg_report(p, pm, &dr);
}

/* Messages produceva refused: their callbacks fire here, never inside queue_produce. At destroy,
 * everything still unreported comes here too, as QUEUE_ECLOSED. From the head each time: a
 * callback may produce again. */
static void report_refused(queue_producer_t *p)
{
    pmsg_t *pm;
    while ((pm = list_first_entry(&p->refused, pmsg_t, node)) != NULL) {
        queue_delivery_t dr = {p->closing ? QUEUE_ECLOSED : pm->status,
                               pm->error ? pm->error : "the producer was destroyed first",
                               pm->topic ? pm->topic : "", RD_KAFKA_PARTITION_UA, -1};
        pmsg_report(p, pm, &dr);
    }
}

static void on_refused_timer(uv_timer_t *t)
{
    report_refused(t->data);
}

static void producer_serve(void *arg)
{
    queue_producer_t *p = arg;
    rd_kafka_poll(p->rk, 0);
}

static void producer_tick(uv_timer_t *t)
{
    producer_serve(t->data);
}

static void producer_metrics(queue_producer_t *p, metric_reg_t *reg)
{
    if (!reg)
        return;
    metric_fam_t *f = metric_counter_new(reg, "herald_queue_produced_total",
                                         "Messages produced by delivery result", "result");
    p->m_ok = metric_get(f, "ok");
    p->m_fail = metric_get(f, "error");
}

queue_producer_t *queue_producer_create(uv_loop_t *loop, const queue_kafka_opts_t *kafka,
                                        metric_reg_t *metrics, char *err, size_t errlen)
{
    rd_kafka_conf_t *kc = build_conf(kafka, false, err, errlen);
    if (!kc)
        return NULL;
    queue_producer_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    list_init(&p->queued);
    list_init(&p->refused);
    rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
    rd_kafka_conf_set_opaque(kc, p);
    char e[512];
    if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, e, sizeof e))) {
        snprintf(err, errlen, "kafka producer: %s", e);
        rd_kafka_conf_destroy(kc);
        free(p);
        return NULL;
    }
    rd_kafka_set_log_queue(p->rk, NULL);
    p->mainq = rd_kafka_queue_get_main(p->rk);
    if (waker_init(&p->waker, loop, p->mainq, producer_serve, p) < 0) {
        snprintf(err, errlen, "kafka producer: pipe: %s", strerror(errno));
        rd_kafka_queue_destroy(p->mainq);
        rd_kafka_destroy(p->rk);
        free(p);
        return NULL;
    }
    uv_timer_init(loop, &p->timer);
    uv_timer_init(loop, &p->refused_timer);
    p->timer.data = p->refused_timer.data = p;
    uv_timer_start(&p->timer, producer_tick, SAFETY_POLL_MS, SAFETY_POLL_MS);
    producer_metrics(p, metrics);
    return p;
}

/* The message as librdkafka's array form (rd_kafka_produceva: no GNU macros, headers copied). */
static size_t fill_vus(rd_kafka_vu_t *vu, const char *topic, const void *key, size_t keylen,
                       const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                       void *opaque)
{
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[n++].u.cstr = topic;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = opaque;
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    memcpy(&vu[n++].u.mem.ptr, &value, sizeof value); /* librdkafka copies, never writes */
    vu[n - 1].u.mem.size = len;
    if (key) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        memcpy(&vu[n++].u.mem.ptr, &key, sizeof key);
        vu[n - 1].u.mem.size = keylen;
    }
    for (size_t i = 0; i < nhdrs; i++) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        vu[n].u.header.name = hdrs[i].name;
        vu[n].u.header.val = hdrs[i].value;
        vu[n++].u.header.size = hdrs[i].value ? (ssize_t)hdrs[i].len : -1;
    }
    return n;
}

static void refuse(queue_producer_t *p, pmsg_t *pm, int status, const char *error,
                   const char *topic)
{
    pm->status = status;
    pm->error = xstrdup(error);
    pm->topic = xstrdup(topic);
    list_remove(&pm->node);
    list_push_back(&p->refused, &pm->node);
    if (!p->closing)
        uv_timer_start(&p->refused_timer, on_refused_timer, 0, 0);
}

int queue_produce(queue_producer_t *p, const char *topic, const void *key, size_t keylen,
                  const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                  queue_produce_cb cb, void *arg)
{
    if (!p || !topic || !cb)
        return QUEUE_EINVAL;
    pmsg_t *pm = xcalloc(1, sizeof *pm);
    pm->cb = cb;
    pm->arg = arg;
    list_push_back(&p->queued, &pm->node);
    if (p->closing) {
        refuse(p, pm, QUEUE_ECLOSED, "the producer is shutting down", topic);
        return QUEUE_OK;
    }
    rd_kafka_vu_t stack[24], *vu = nhdrs + 5 <= 24 ? stack : xcalloc(nhdrs + 5, sizeof *vu);
    size_t n = fill_vus(vu, topic, key, keylen, value, len, hdrs, nhdrs, pm);
    rd_kafka_error_t *e = rd_kafka_produceva(p->rk, vu, n);
    if (vu != stack)
        free(vu);
    if (!e)
        return QUEUE_OK;
    LOG(LOG_LVL_WARN, "kafka produce refused", LKS("topic", topic),
        LKS("error", rd_kafka_error_string(e)));
    refuse(p, pm, rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL ? QUEUE_EFULL : QUEUE_ERR,
           rd_kafka_error_string(e), topic);
    rd_kafka_error_destroy(e);
    return QUEUE_OK;
}

size_t queue_producer_outq(const queue_producer_t *p)
{
    return p ? (size_t)rd_kafka_outq_len(p->rk) : 0;
}

static void producer_closed(uv_handle_t *h)
{
    queue_producer_t *p = h->data;
    if (h == (uv_handle_t *)&p->waker.poll)
        close(p->waker.fds[0]);
    if (--p->open_handles == 0)
        free(p);
}

void queue_producer_destroy(queue_producer_t *p)
{
    if (!p)
        return;
    p->closing = true;
    rd_kafka_flush(p->rk, CLOSE_BOUND_MS);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(p->rk, 1000); /* serves the purged messages' reports: QUEUE_ECLOSED */
    rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
    /* Refused and not reported yet, or never reported by librdkafka: QUEUE_ECLOSED, once. */
    list_splice(&p->refused, &p->queued);
    report_refused(p);
    close(p->waker.fds[1]);
    uv_poll_stop(&p->waker.poll);
    uv_timer_stop(&p->refused_timer);
    p->open_handles = 3;
    uv_close((uv_handle_t *)&p->waker.poll, producer_closed);
    uv_close((uv_handle_t *)&p->timer, producer_closed);
    uv_close((uv_handle_t *)&p->refused_timer, producer_closed);
}

/* ---- consumer state ---- */

typedef struct part part_t;

typedef enum { T_HELD, T_OUT, T_DLQ, T_DONE } tstate_t;

struct queue_ticket {
    queue_event_t ev;
    queue_consumer_t *c;
    part_t *part;
    int64_t offset;
    int64_t kafka_ts;
    tstate_t state;
    queue_ticket_t *next;    /* partition order */
    queue_ticket_t *qnext;   /* hold queue or DLQ retry list */
    list_node_t live;        /* in c->all: every live ticket, for destroy */
    rd_kafka_message_t *msg; /* DLQ: the original until its record is acknowledged */
    bool drop_value;         /* DLQ: the producer refused the value, send the record bare */
    queue_dec_error_t why;
};

struct part {
    char *topic;
    int32_t partition;
    int refs; /* tickets + 1 while assigned */
    bool revoked;
    bool dirty;
    queue_ticket_t *head, *tail;
    int64_t store; /* offset to store, -1 none yet */
    part_t *next;  /* assigned list */
    part_t *dirty_next;
    metric_t *lag;
};

typedef enum { STOP_NONE, STOP_DRAIN, STOP_COMMIT, STOP_CLOSE, STOP_FLUSH, STOP_DONE } stop_t;

struct queue_consumer {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *cq;
    waker_t waker;
    uv_idle_t pump;
    uv_check_t check;
    uv_timer_t timer;
    uv_timer_t dlq_timer;
    uv_timer_t stop_timer;
    int open_handles;
    queue_producer_t *prod;
    bool own_prod; /* prod was made here (else borrowed from the caller) */
    queue_handler_t h;
    char *dlq_topic; /* queue.dlq_topic, NULL when unset (see queue_dlq_topic) */
    size_t max_bytes;
    size_t max_in_flight, hold_cap;
    size_t in_flight; /* T_OUT + T_DLQ */
    size_t held;
    bool paused;
    uint64_t full_since; /* loop ms when in flight + held reached the cap; 0 when not full */
    size_t npaused, nassigned;
    part_t *parts, *last;
    part_t *dirty;
    queue_ticket_t *hold_head, *hold_tail;
    queue_ticket_t *retry;
    list_t all;
    unsigned ticks;
    bool closed;
    stop_t stop;
    uint64_t deadline, phase_deadline;
    bool commit_done;
    bool close_failed;
    int stop_status;
    queue_stop_cb stop_cb;
    void *stop_arg;
    queue_fatal_cb fatal_cb;
    void *fatal_arg;
    bool fatal; /* librdkafka raised a fatal error (reported once) */
    metric_reg_t *own_reg;
    metric_t *m_consumed, *m_decoded[QUEUE_ST_COUNT], *m_dlq[QUEUE_DEC_REASON_COUNT];
    metric_t *m_dlq_retry, *m_inflight, *m_paused, *m_assigned, *m_rebalance[2];
    metric_fam_t *f_lag;
};

static void kick(queue_consumer_t *c);
static void flush_stores(queue_consumer_t *c);

static void gauges(queue_consumer_t *c)
{
    metric_set(c->m_inflight, (double)c->in_flight);
    metric_set(c->m_paused, (double)c->npaused);
    metric_set(c->m_assigned, (double)c->nassigned);
}

/* ---- partitions ---- */

static part_t *find_part(queue_consumer_t *c, const char *topic, int32_t partition)
{
    if (c->last && c->last->partition == partition && strcmp(c->last->topic, topic) == 0)
        return c->last;
    for (part_t *p = c->parts; p; p = p->next) {
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return c->last = p;
    }
    return NULL;
}

static void part_unref(queue_consumer_t *c, part_t *p)
{
    if (--p->refs > 0)
        return;
    if (c->last == p)
        c->last = NULL;
    free(p->topic);
    free(p);
}

static void track_assign(queue_consumer_t *c, const rd_kafka_topic_partition_list_t *tpl)
{
    for (int i = 0; i < tpl->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &tpl->elems[i];
        if (find_part(c, tp->topic, tp->partition))
            continue;
        part_t *p = xcalloc(1, sizeof *p);
        p->topic = xstrdup(tp->topic);
        p->partition = tp->partition;
        p->refs = 1;
        p->store = -1;
        char num[16];
        snprintf(num, sizeof num, "%d", (int)tp->partition);
        p->lag = metric_get(c->f_lag, p->topic, num);
        p->next = c->parts;
        c->parts = p;
        c->nassigned++;
    }
}

/* ---- tickets ---- */

static queue_ticket_t *ticket_new(queue_consumer_t *c, part_t *p, const rd_kafka_message_t *m)
{
    queue_ticket_t *t = xcalloc(1, sizeof *t);
    t->c = c;
    t->part = p;
    p->refs++;
    t->offset = m->offset;
    t->kafka_ts = rd_kafka_message_timestamp(m, NULL);
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    list_push_back(&c->all, &t->live);
    return t;
}

static void ticket_free(queue_ticket_t *t)
{
    queue_consumer_t *c = t->c;
    list_remove(&t->live);
    queue_event_cleanup(&t->ev);
    if (t->msg)
        rd_kafka_message_destroy(t->msg);
    part_unref(c, t->part);
    free(t);
}

/* Pops the done prefix of a partition and remembers the offset to store. */
static void advance(queue_consumer_t *c, part_t *p)
{
    bool moved = false;
    while (p->head && p->head->state == T_DONE) {
        queue_ticket_t *t = p->head;
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        p->store = t->offset + 1;
        moved = true;
        ticket_free(t);
    }
    if (moved && !p->dirty) {
        p->dirty = true;
        p->refs++;
        p->dirty_next = c->dirty;
        c->dirty = p;
    }
}

static void complete(queue_ticket_t *t)
{
    queue_consumer_t *c = t->c;
    c->in_flight--;
    t->state = T_DONE;
    queue_event_cleanup(&t->ev);
    if (t->part->revoked) {
        ticket_free(t);
    } else {
        part_t *p = t->part;
        advance(c, p);
    }
    metric_set(c->m_inflight, (double)c->in_flight);
    kick(c);
}

void queue_complete(queue_ticket_t *t)
{
    if (!t)
        return;
    if (t->state != T_OUT) {
        LOG(LOG_LVL_ERROR, "queue_complete on a ticket not handed out", LKI("offset", t->offset));
        return;
    }
    complete(t);
}

const char *queue_ticket_topic(const queue_ticket_t *t)
{
    return t->part->topic;
}

int32_t queue_ticket_partition(const queue_ticket_t *t)
{
    return t->part->partition;
}

int64_t queue_ticket_offset(const queue_ticket_t *t)
{
    return t->offset;
}

int64_t queue_ticket_kafka_ts(const queue_ticket_t *t)
{
    return t->kafka_ts;
}

/* Once per loop iteration: hands the new store offsets to librdkafka in one call. */
static void flush_stores(queue_consumer_t *c)
{
    if (!c->dirty)
        return;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(8);
    while (c->dirty) {
        part_t *p = c->dirty;
        c->dirty = p->dirty_next;
        p->dirty = false;
        if (!p->revoked)
            rd_kafka_topic_partition_list_add(tpl, p->topic, p->partition)->offset = p->store;
        part_unref(c, p);
    }
    if (tpl->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, tpl);
        if (e)
            LOG(LOG_LVL_WARN, "kafka offsets_store", LKS("error", rd_kafka_err2str(e)));
    }
    rd_kafka_topic_partition_list_destroy(tpl);
}

static void on_check(uv_check_t *h)
{
    flush_stores(h->data);
}

/* ---- backpressure ---- */

static void pause_resume(queue_consumer_t *c, bool pause)
{
    rd_kafka_topic_partition_list_t *tpl = NULL;
    if (rd_kafka_assignment(c->rk, &tpl) != RD_KAFKA_RESP_ERR_NO_ERROR || !tpl)
        return;
    rd_kafka_resp_err_t e =
        pause ? rd_kafka_pause_partitions(c->rk, tpl) : rd_kafka_resume_partitions(c->rk, tpl);
    if (e)
        LOG(LOG_LVL_WARN, pause ? "kafka pause" : "kafka resume",
            LKS("error", rd_kafka_err2str(e)));
    c->paused = pause;
    c->npaused = pause ? (size_t)tpl->cnt : 0;
    LOG(LOG_LVL_DEBUG, pause ? "kafka partitions paused" : "kafka partitions resumed",
        LKI("partitions", tpl->cnt), LKI("in_flight", c->in_flight), LKI("held", c->held));
    rd_kafka_topic_partition_list_destroy(tpl);
    gauges(c);
}

static bool full(const queue_consumer_t *c)
{
    return c->in_flight + c->held >= c->max_in_flight + c->hold_cap;
}

/* Up to max_in_flight events are with the handler and up to hold_cap more wait here, decoded.
 * When both are full, drain() stops taking messages from librdkafka's queue (its prefetch is
 * bounded by queued.min.messages / queued.max.messages.kbytes) and takes them again as soon as
 * events complete. Pausing the partitions instead on every full moment capped a backlog at about
 * 1.5 x max_in_flight events per second: librdkafka drops a paused partition's prefetched
 * messages, and a resume takes effect only at its fetcher's next wake-up (measured up to ~1 s on
 * 2.0.2). Pausing is kept for a pipeline that stays full for PAUSE_AFTER_MS (Redis down, Expo
 * unreachable): then the partitions are paused and polling goes on, so rebalances are served and
 * max.poll.interval.ms never expires. Resume once the waiting ones are all handed out. */
static void backpressure(queue_consumer_t *c)
{
    size_t busy = c->in_flight + c->held;
    uint64_t now = uv_now(c->loop);
    if (!full(c))
        c->full_since = 0;
    else if (c->full_since == 0)
        c->full_since = now ? now : 1;
    if (!c->paused && c->full_since && now - c->full_since >= PAUSE_AFTER_MS)
        pause_resume(c, true);
    else if (c->paused && busy <= c->max_in_flight && c->stop == STOP_NONE)
        pause_resume(c, false);
}

/* Hands held events to the handler while there is room. */
static void dispatch_held(queue_consumer_t *c)
{
    while (c->hold_head && c->in_flight < c->max_in_flight && c->stop == STOP_NONE) {
        queue_ticket_t *t = c->hold_head;
        c->hold_head = t->qnext;
        if (!c->hold_head)
            c->hold_tail = NULL;
        t->qnext = NULL;
        c->held--;
        t->state = T_OUT;
        c->in_flight++;
        metric_set(c->m_inflight, (double)c->in_flight);
        c->h.on_event(&t->ev, t, c->h.arg); /* may complete (and free) t at once */
    }
}

static void hold(queue_consumer_t *c, queue_ticket_t *t)
{
    t->state = T_HELD;
    if (c->hold_tail)
        c->hold_tail->qnext = t;
    else
        c->hold_head = t;
    c->hold_tail = t;
    c->held++;
}

/* Drops revoked partitions' held tickets from the hold queue. */
static void unhold_revoked(queue_consumer_t *c)
{
    queue_ticket_t **pp = &c->hold_head;
    c->hold_tail = NULL;
    while (*pp) {
        queue_ticket_t *t = *pp;
        if (t->part->revoked) {
            *pp = t->qnext;
            c->held--;
        } else {
            c->hold_tail = t;
            pp = &t->qnext;
        }
    }
}

static void track_revoke_one(queue_consumer_t *c, part_t *p)
{
    c->nassigned--;
    metric_set(p->lag, 0);
    queue_ticket_t *t = p->head;
    p->head = p->tail = NULL;
    while (t) {
        queue_ticket_t *next = t->next;
        if (t->state == T_DONE || t->state == T_HELD)
            ticket_free(t); /* held ones were unlinked by unhold_revoked */
        t = next;
    }
    part_unref(c, p);
}

/* Forgets partitions: their in-flight tickets complete later without storing anything. */
static void track_revoke(queue_consumer_t *c, const rd_kafka_topic_partition_list_t *tpl)
{
    flush_stores(c);
    for (int i = 0; i < tpl->cnt; i++) {
        part_t *p = find_part(c, tpl->elems[i].topic, tpl->elems[i].partition);
        if (p)
            p->revoked = true;
    }
    unhold_revoked(c);
    c->last = NULL;
    part_t **pp = &c->parts;
    while (*pp) {
        part_t *p = *pp;
        if (p->revoked) {
            *pp = p->next;
            track_revoke_one(c, p);
        } else {
            pp = &p->next;
        }
    }
}

/* ---- DLQ ---- */

static void dlq_send(queue_consumer_t *c, queue_ticket_t *t);
static void on_dlq_timer(uv_timer_t *h);

static void retry_later(queue_consumer_t *c, queue_ticket_t *t)
{
    metric_inc(c->m_dlq_retry);
    t->qnext = c->retry;
    c->retry = t;
    if (!uv_is_active((uv_handle_t *)&c->dlq_timer))
        uv_timer_start(&c->dlq_timer, on_dlq_timer, DLQ_RETRY_MS, 0);
}

static void dlq_done(const queue_delivery_t *dr, void *arg)
{
    queue_ticket_t *t = arg;
    queue_consumer_t *c = t->c;
    if (dr->status == QUEUE_ECLOSED)
        return; /* producer gone: shutdown frees the ticket, the offset stays uncommitted */
    if (dr->status == QUEUE_ERR && !t->drop_value && t->msg->len > 0) {
        /* Refused outright (too large for the producer): keep the record, drop the value. */
        t->drop_value = true;
        dlq_send(c, t);
        return;
    }
    if (dr->status != QUEUE_OK) {
        LOG(LOG_LVL_WARN, "DLQ delivery failed, will retry", LKS("topic", dr->topic),
            LKS("error", dr->error));
        retry_later(c, t);
        return;
    }
    metric_inc(c->m_dlq[t->why.reason]);
    LOG(LOG_LVL_WARN, "event sent to DLQ", LKS("reason", queue_dec_reason_name(t->why.reason)),
        LKS("field", t->why.field), LKS("detail", t->why.detail), LKS("topic", t->part->topic),
        LKI("partition", t->part->partition), LKI("offset", t->offset), LKS("dlq", dr->topic),
        LKI("dlq_offset", dr->offset));
    rd_kafka_message_destroy(t->msg);
    t->msg = NULL;
    complete(t);
}

static void on_dlq_timer(uv_timer_t *h)
{
    queue_consumer_t *c = h->data;
    queue_ticket_t *t = c->retry;
    c->retry = NULL;
    while (t) {
        queue_ticket_t *next = t->qnext;
        t->qnext = NULL;
        if (t->part->revoked)
            complete(t); /* the new owner sends it to the DLQ again */
        else
            dlq_send(c, t);
        t = next;
    }
}

/* The original headers plus herald's: reason, field, detail, source topic/partition/offset. */
static size_t dlq_headers(queue_ticket_t *t, queue_header_t **out, char *part, char *off)
{
    rd_kafka_headers_t *hs = NULL;
    size_t n = 0, cnt = 0;
    if (rd_kafka_message_headers(t->msg, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR)
        cnt = rd_kafka_header_cnt(hs);
    queue_header_t *h = xcalloc(cnt + 7, sizeof *h); /* + one spare, see dlq_send */
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; i < cnt; i++) {
        if (rd_kafka_header_get_all(hs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR)
            h[n++] = (queue_header_t){name, val, size};
    }
    const char *reason = queue_dec_reason_name(t->why.reason);
    h[n++] = (queue_header_t){"herald-dlq-reason", reason, strlen(reason)};
    if (t->why.field[0])
        h[n++] = (queue_header_t){"herald-dlq-field", t->why.field, strlen(t->why.field)};
    h[n++] = (queue_header_t){"herald-dlq-detail", t->why.detail, strlen(t->why.detail)};
    h[n++] = (queue_header_t){"herald-source-topic", t->part->topic, strlen(t->part->topic)};
    snprintf(part, 16, "%d", (int)t->part->partition);
    snprintf(off, 24, "%lld", (long long)t->offset);
    h[n++] = (queue_header_t){"herald-source-partition", part, strlen(part)};
    h[n++] = (queue_header_t){"herald-source-offset", off, strlen(off)};
    *out = h;
    return n;
}

static void dlq_send(queue_consumer_t *c, queue_ticket_t *t)
{
    char topic[512], part[16], off[24];
    queue_dlq_topic(c->dlq_topic, t->part->topic, topic, sizeof topic);
    queue_header_t *h;
    size_t n = dlq_headers(t, &h, part, off);
    rd_kafka_message_t *m = t->msg;
    if (t->drop_value)
        h[n++] = (queue_header_t){"herald-dlq-value-dropped", "true", 4};
    /* dlq_done answers every outcome, a refusal included */
    queue_produce(c->prod, topic, m->key, m->key_len, t->drop_value ? NULL : m->payload,
                  t->drop_value ? 0 : m->len, h, n, dlq_done, t);
    free(h);
}

/* ---- consuming ---- */

static size_t collect_headers(const rd_kafka_message_t *m, queue_header_t *out, size_t max)
{
    rd_kafka_headers_t *hs = NULL;
    if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    size_t n = 0, size;
    const char *name;
    const void *val;
    for (size_t i = 0; n < max && rd_kafka_header_get_all(hs, i, &name, &val, &size) == 0; i++)
        out[n++] = (queue_header_t){name, val, size};
    return n;
}

static void consumer_error(queue_consumer_t *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    char fatal[256] = "";
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
        rd_kafka_fatal_error(c->rk, fatal, sizeof fatal);
    LOG(fatal[0] ? LOG_LVL_ERROR : LOG_LVL_WARN, "kafka consumer error",
        LKS("error", rd_kafka_err2str(m->err)),
        LKS("detail", fatal[0] ? fatal : rd_kafka_message_errstr(m)));
    if (fatal[0] && !c->fatal) {
        c->fatal = true;
        if (c->fatal_cb)
            c->fatal_cb(fatal, c->fatal_arg);
    }
}

static void on_message(queue_consumer_t *c, rd_kafka_message_t *m)
{
    if (m->err) {
        consumer_error(c, m);
        rd_kafka_message_destroy(m);
        return;
    }
    metric_inc(c->m_consumed);
    part_t *p = find_part(c, rd_kafka_topic_name(m->rkt), m->partition);
    if (!p) { /* not (or no longer) ours */
        rd_kafka_message_destroy(m);
        return;
    }
    queue_ticket_t *t = ticket_new(c, p, m);
    queue_header_t hv[MAX_HEADERS];
    size_t nh = collect_headers(m, hv, MAX_HEADERS);
    if (queue_event_decode(m->payload, m->len, hv, nh, c->max_bytes, &t->ev, &t->why) == 0) {
        metric_inc(c->m_decoded[t->ev.status]);
        rd_kafka_message_destroy(m);
        hold(c, t);
        dispatch_held(c);
    } else {
        t->msg = m;
        t->state = T_DLQ;
        c->in_flight++;
        dlq_send(c, t);
    }
    backpressure(c);
}

static void stop_step(queue_consumer_t *c);

/* Serves the consumer queue: messages, rebalances, logs, commit results. */
static void drain(queue_consumer_t *c)
{
    if (c->closed)
        return;
    int n = 0;
    rd_kafka_message_t *m;
    /* Full and not paused: leave the messages in librdkafka's queue until events complete. */
    while (n < DRAIN_BATCH && (c->paused || !full(c)) && (m = rd_kafka_consumer_poll(c->rk, 0))) {
        on_message(c, m);
        n++;
    }
    backpressure(c);
    if (n == DRAIN_BATCH)
        kick(c);
}

static void on_pump(uv_idle_t *h)
{
    queue_consumer_t *c = h->data;
    uv_idle_stop(&c->pump);
    dispatch_held(c);
    drain(c);
    if (c->stop != STOP_NONE && c->stop != STOP_DONE)
        stop_step(c);
}

/* Continue on the next loop turn: never re-enter the handler from queue_complete. */
static void kick(queue_consumer_t *c)
{
    if (!c->closed)
        uv_idle_start(&c->pump, on_pump);
}

static void consumer_serve(void *c)
{
    drain(c);
}

static void update_lag(queue_consumer_t *c)
{
    if (!c->parts || c->closed)
        return;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new((int)c->nassigned);
    for (part_t *p = c->parts; p; p = p->next)
        rd_kafka_topic_partition_list_add(tpl, p->topic, p->partition);
    rd_kafka_position(c->rk, tpl);
    for (int i = 0; i < tpl->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &tpl->elems[i];
        int64_t lo, hi;
        part_t *p = find_part(c, tp->topic, tp->partition);
        if (!p || rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) ||
            hi < 0)
            continue;
        int64_t pos = tp->offset >= 0 ? tp->offset : p->store;
        if (pos >= 0)
            metric_set(p->lag, (double)(hi > pos ? hi - pos : 0));
    }
    rd_kafka_topic_partition_list_destroy(tpl);
}

static void on_timer(uv_timer_t *h)
{
    queue_consumer_t *c = h->data;
    drain(c);
    if (++c->ticks % LAG_EVERY_TICKS == 0)
        update_lag(c);
}

/* Runs inside rd_kafka_consumer_poll, on the loop. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *tpl, void *opaque)
{
    queue_consumer_t *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        metric_inc(c->m_rebalance[0]);
        track_assign(c, tpl);
        if (coop)
            e = rd_kafka_incremental_assign(rk, tpl);
        else
            re = rd_kafka_assign(rk, tpl);
        if (c->paused && tpl->cnt > 0) {
            rd_kafka_pause_partitions(rk, tpl);
            c->npaused += (size_t)tpl->cnt;
        }
    } else {
        metric_inc(c->m_rebalance[1]);
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            LOG(LOG_LVL_ERROR, "kafka rebalance error", LKS("error", rd_kafka_err2str(err)));
        track_revoke(c, tpl);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, tpl);
        else
            re = rd_kafka_assign(rk, NULL);
        c->npaused = c->npaused > (size_t)tpl->cnt && coop ? c->npaused - (size_t)tpl->cnt : 0;
    }
    LOG(LOG_LVL_INFO,
        err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "kafka partitions assigned"
                                                    : "kafka partitions revoked",
        LKI("partitions", tpl->cnt), LKI("assigned", c->nassigned), LKB("cooperative", coop));
    if (e) {
        LOG(LOG_LVL_ERROR, "kafka assign", LKS("error", rd_kafka_error_string(e)));
        rd_kafka_error_destroy(e);
    } else if (re) {
        LOG(LOG_LVL_ERROR, "kafka assign", LKS("error", rd_kafka_err2str(re)));
    }
    gauges(c);
}

/* ---- lifecycle ---- */

static void consumer_metrics(queue_consumer_t *c, metric_reg_t *reg)
{
    metric_fam_t *f = metric_counter_new(reg, "herald_queue_events_consumed_total",
                                         "Kafka messages consumed", NULL);
    c->m_consumed = metric_get(f);
    f = metric_counter_new(reg, "herald_queue_events_decoded_total",
                           "Job events decoded, by status", "status");
    for (int i = 0; i < QUEUE_ST_COUNT; i++)
        c->m_decoded[i] = metric_get(f, queue_status_name((queue_status_t)i));
    f = metric_counter_new(reg, "herald_queue_dlq_total",
                           "Messages acknowledged by the DLQ topic, by reason", "reason");
    for (int i = 1; i < QUEUE_DEC_REASON_COUNT; i++)
        c->m_dlq[i] = metric_get(f, queue_dec_reason_name((queue_dec_reason_t)i));
    c->m_dlq[0] = c->m_dlq[QUEUE_DEC_NOT_JSON]; /* never used: a failure has a reason */
    c->m_dlq_retry = metric_get(metric_counter_new(reg, "herald_queue_dlq_retries_total",
                                                   "DLQ produce attempts to retry", NULL));
    c->m_inflight = metric_get(
        metric_gauge_new(reg, "herald_queue_in_flight", "Events handed out, not completed", NULL));
    c->m_paused = metric_get(metric_gauge_new(reg, "herald_queue_paused_partitions",
                                              "Partitions paused for backpressure", NULL));
    c->m_assigned = metric_get(
        metric_gauge_new(reg, "herald_queue_assigned_partitions", "Partitions assigned", NULL));
    f = metric_counter_new(reg, "herald_queue_rebalances_total", "Rebalance callbacks", "type");
    c->m_rebalance[0] = metric_get(f, "assign");
    c->m_rebalance[1] = metric_get(f, "revoke");
    c->f_lag = metric_gauge_new(reg, "herald_queue_consumer_lag",
                                "High watermark minus position, per partition", "topic,partition");
}

static int subscribe(queue_consumer_t *c, const char *topics, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(4);
    char *copy = xstrdup(topics), *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        rd_kafka_topic_partition_list_add(tpl, tok, RD_KAFKA_PARTITION_UA);
    free(copy);
    rd_kafka_resp_err_t e =
        tpl->cnt ? rd_kafka_subscribe(c->rk, tpl) : RD_KAFKA_RESP_ERR__INVALID_ARG;
    rd_kafka_topic_partition_list_destroy(tpl);
    if (e) {
        snprintf(err, errlen, "kafka subscribe to \"%s\": %s", topics, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void handles_init(queue_consumer_t *c)
{
    uv_idle_init(c->loop, &c->pump);
    uv_check_init(c->loop, &c->check);
    uv_timer_init(c->loop, &c->timer);
    uv_timer_init(c->loop, &c->dlq_timer);
    uv_timer_init(c->loop, &c->stop_timer);
    c->pump.data = c->check.data = c->timer.data = c->dlq_timer.data = c->stop_timer.data = c;
    uv_check_start(&c->check, on_check);
    uv_timer_start(&c->timer, on_timer, SAFETY_POLL_MS, SAFETY_POLL_MS);
}

static rd_kafka_t *new_consumer(queue_consumer_t *c, const queue_kafka_opts_t *conf, char *err,
                                size_t errlen)
{
    rd_kafka_conf_t *kc = build_conf(conf, true, err, errlen);
    if (!kc)
        return NULL;
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    rd_kafka_conf_set_opaque(kc, c);
    char e[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, e, sizeof e);
    if (!rk) {
        snprintf(err, errlen, "kafka consumer: %s", e);
        rd_kafka_conf_destroy(kc);
    }
    return rk;
}

queue_consumer_t *queue_consumer_create(uv_loop_t *loop, const queue_consumer_opts_t *o, char *err,
                                        size_t errlen)
{
    if (!o->topics || !*o->topics || o->max_in_flight < 1 || o->max_event_bytes < 1) {
        snprintf(err, errlen,
                 "kafka consumer: topics, max_in_flight and max_event_bytes are "
                 "required");
        return NULL;
    }
    queue_consumer_t *c = xcalloc(1, sizeof *c);
    list_init(&c->all);
    c->loop = loop;
    c->h = o->handler;
    c->max_bytes = (size_t)o->max_event_bytes;
    c->max_in_flight = (size_t)o->max_in_flight;
    c->hold_cap = c->max_in_flight / 2 ? c->max_in_flight / 2 : 1;
    if (o->dlq_topic && o->dlq_topic[0])
        c->dlq_topic = xstrdup(o->dlq_topic);
    metric_reg_t *metrics = o->metrics;
    if (!metrics)
        metrics = c->own_reg = metric_reg_create();
    consumer_metrics(c, metrics);
    c->prod = o->dlq;
    c->own_prod = o->dlq == NULL;
    if (c->own_prod && !(c->prod = queue_producer_create(loop, &o->kafka, metrics, err, errlen)))
        goto fail;
    if (!(c->rk = new_consumer(c, &o->kafka, err, errlen)))
        goto fail;
    rd_kafka_set_log_queue(c->rk, NULL);
    rd_kafka_poll_set_consumer(c->rk);
    c->cq = rd_kafka_queue_get_consumer(c->rk);
    if (waker_init(&c->waker, loop, c->cq, consumer_serve, c) < 0) {
        snprintf(err, errlen, "kafka consumer: pipe: %s", strerror(errno));
        goto fail;
    }
    c->open_handles = 6;
    handles_init(c);
    if (subscribe(c, o->topics, err, errlen) < 0)
        goto fail;
    const char *group = prop_get(&o->kafka, "group.id");
    LOG(LOG_LVL_INFO, "kafka consumer started", LKS("topics", o->topics),
        LKS("group", group ? group : "herald"), LKI("max_in_flight", c->max_in_flight));
    return c;
fail:
    queue_consumer_destroy(c);
    return NULL;
}

/* ---- graceful stop: drain, commit, leave the group, flush ---- */

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    queue_consumer_t *c = opaque;
    c->commit_done = true;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        LOG(LOG_LVL_ERROR, "kafka commit at shutdown", LKS("error", rd_kafka_err2str(err)));
        c->stop_status = QUEUE_ERR;
    } else {
        LOG(LOG_LVL_INFO, "kafka offsets committed", LKI("partitions", offsets ? offsets->cnt : 0));
    }
}

static void start_commit(queue_consumer_t *c, uint64_t now)
{
    if (c->in_flight > 0) {
        LOG(LOG_LVL_WARN, "shutdown timeout with events in flight", LKI("in_flight", c->in_flight));
        c->stop_status = QUEUE_ETIMEDOUT;
    }
    flush_stores(c);
    c->stop = STOP_COMMIT;
    c->phase_deadline = now + CLOSE_BOUND_MS;
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(c->rk, NULL, c->cq, commit_cb, c);
    if (e) {
        c->commit_done = true;
        if (e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            LOG(LOG_LVL_ERROR, "kafka commit at shutdown", LKS("error", rd_kafka_err2str(e)));
            c->stop_status = QUEUE_ERR;
        }
    }
}

static void start_close(queue_consumer_t *c, uint64_t now)
{
    if (!c->commit_done)
        c->stop_status = QUEUE_ETIMEDOUT;
    c->stop = STOP_CLOSE;
    c->phase_deadline = now + CLOSE_BOUND_MS;
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, c->cq);
    if (e) { /* e.g. after a fatal error: it will never close, do not wait for it */
        LOG(LOG_LVL_ERROR, "kafka close", LKS("error", rd_kafka_error_string(e)));
        rd_kafka_error_destroy(e);
        c->stop_status = QUEUE_ERR;
        c->close_failed = true;
    }
}

/* The stop's callback, once: from finish_stop, or from destroy when that comes first. */
static void report_stop(queue_consumer_t *c, int status)
{
    queue_stop_cb cb = c->stop_cb;
    c->stop_cb = NULL;
    if (cb)
        cb(status, c->stop_arg);
}

static void finish_stop(queue_consumer_t *c)
{
    c->stop = STOP_DONE;
    uv_timer_stop(&c->stop_timer);
    uv_timer_stop(&c->timer);
    LOG(LOG_LVL_INFO, "kafka consumer stopped", LKS("status", queue_strerror(c->stop_status)));
    report_stop(c, c->stop_status);
}

static void flush_step(queue_consumer_t *c, uint64_t now)
{
    size_t left = queue_producer_outq(c->prod);
    if (left == 0 || now >= c->phase_deadline) {
        if (left > 0)
            c->stop_status = QUEUE_ETIMEDOUT;
        finish_stop(c);
    }
}

static void stop_step(queue_consumer_t *c)
{
    uint64_t now = uv_now(c->loop);
    switch (c->stop) {
    case STOP_DRAIN:
        if (c->in_flight == 0 || now >= c->deadline)
            start_commit(c, now);
        break;
    case STOP_COMMIT:
        if (c->commit_done || now >= c->phase_deadline)
            start_close(c, now);
        break;
    case STOP_CLOSE:
        if (rd_kafka_consumer_closed(c->rk)) {
            c->closed = true;
        } else if (c->close_failed) {
            /* flush the producer all the same */
        } else if (now >= c->phase_deadline) {
            LOG0(LOG_LVL_WARN, "kafka consumer close timed out");
            c->stop_status = QUEUE_ETIMEDOUT;
        } else {
            break;
        }
        c->stop = STOP_FLUSH;
        c->phase_deadline = now + CLOSE_BOUND_MS;
        flush_step(c, now);
        break;
    case STOP_FLUSH:
        flush_step(c, now);
        break;
    default:
        break;
    }
}

static void on_stop_timer(uv_timer_t *h)
{
    queue_consumer_t *c = h->data;
    drain(c);
    if (c->stop != STOP_DONE)
        stop_step(c);
}

int queue_consumer_stop(queue_consumer_t *c, int timeout_ms, queue_stop_cb cb, void *arg)
{
    if (c->stop != STOP_NONE)
        return QUEUE_ECLOSED;
    c->stop = STOP_DRAIN;
    c->stop_cb = cb;
    c->stop_arg = arg;
    c->deadline = uv_now(c->loop) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    if (!c->paused)
        pause_resume(c, true);
    LOG(LOG_LVL_INFO, "kafka consumer stopping", LKI("in_flight", c->in_flight),
        LKI("timeout_ms", timeout_ms));
    uv_timer_start(&c->stop_timer, on_stop_timer, 0, 20);
    return QUEUE_OK;
}

static void consumer_closed(uv_handle_t *h)
{
    queue_consumer_t *c = h->data;
    if (h == (uv_handle_t *)&c->waker.poll)
        close(c->waker.fds[0]);
    if (--c->open_handles == 0) {
        metric_reg_destroy(c->own_reg);
        free(c);
    }
}

static void free_tracking(queue_consumer_t *c)
{
    while (!list_empty(&c->all)) /* also drops the partitions' references */
        ticket_free(list_first_entry(&c->all, queue_ticket_t, live));
    c->hold_head = c->hold_tail = NULL;
    c->retry = NULL;
    flush_stores(c);
    while (c->parts) {
        part_t *p = c->parts;
        c->parts = p->next;
        part_unref(c, p);
    }
}

void queue_consumer_destroy(queue_consumer_t *c)
{
    if (!c)
        return;
    if (c->stop != STOP_NONE && c->stop != STOP_DONE) {
        LOG(LOG_LVL_WARN, "kafka consumer destroyed before its stop finished",
            LKI("in_flight", c->in_flight));
        c->stop = STOP_DONE;
        report_stop(c, QUEUE_ECLOSED);
    }
    if (c->own_prod)
        queue_producer_destroy(c->prod); /* DLQ reports fire now, before tickets go */
    c->prod = NULL;
    c->closed = true;
    if (c->rk)
        free_tracking(c);
    if (c->cq) {
        rd_kafka_queue_io_event_enable(c->cq, -1, NULL, 0);
        rd_kafka_queue_destroy(c->cq);
    }
    if (c->rk)
        rd_kafka_destroy_flags(
            c->rk, rd_kafka_consumer_closed(c->rk) ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (c->open_handles == 0) {
        metric_reg_destroy(c->own_reg);
        free(c->dlq_topic);
        free(c);
        return;
    }
    close(c->waker.fds[1]);
    free(c->dlq_topic);
    c->dlq_topic = NULL;
    uv_handle_t *hs[] = {(uv_handle_t *)&c->waker.poll, (uv_handle_t *)&c->pump,
                         (uv_handle_t *)&c->check,      (uv_handle_t *)&c->timer,
                         (uv_handle_t *)&c->dlq_timer,  (uv_handle_t *)&c->stop_timer};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        uv_close(hs[i], consumer_closed);
}

void queue_consumer_on_fatal(queue_consumer_t *c, queue_fatal_cb cb, void *arg)
{
    c->fatal_cb = cb;
    c->fatal_arg = arg;
}

queue_producer_t *queue_consumer_producer(queue_consumer_t *c)
{
    return c->prod;
}

size_t queue_consumer_in_flight(const queue_consumer_t *c)
{
    return c->in_flight;
}

size_t queue_consumer_assigned(const queue_consumer_t *c)
{
    return c->nassigned;
}

size_t queue_consumer_held(const queue_consumer_t *c)
{
    return c->held;
}

size_t queue_consumer_paused(const queue_consumer_t *c)
{
    return c->npaused;
}
