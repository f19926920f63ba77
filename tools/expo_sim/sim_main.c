/* sim_main.c - herald-expo-sim: the Expo simulator (sim.c) served over HTTP with libmicrohttpd.
 * One MHD polling thread (epoll) runs every request, so the simulator state needs no locks; a
 * timer thread resumes connections suspended for injected latency (other connections keep being
 * served meanwhile); a flusher thread writes the record file every 50 ms. SIGTERM/SIGINT stop it
 * cleanly after a last flush. Usage: see usage() and README.md. */
#include "tools/expo_sim/sim.h"
#include "core/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct conn_ctx {
    buf_t body;
    bool too_big, ready;
    sim_resp_t resp;
} conn_ctx_t;

typedef struct pending {
    int64_t due_ms;
    struct MHD_Connection *c;
} pending_t;

/* Everything the threads share; sim is touched only by the MHD thread (and the flusher through
 * the thread-safe sim_record_take()). */
static struct {
    sim_t *sim;
    size_t max_body;
    pthread_mutex_t mu; /* guards heap, stopping; with cond for the timer and flusher threads */
    pthread_cond_t cond;
    pending_t *heap;
    size_t nheap, capheap;
    bool stopping;
    size_t delayed; /* suspended or resumed connections whose reply is not sent yet */
    FILE *record;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- latency timer: a binary min-heap of suspended connections ---- */

static void heap_push(pending_t p)
{
    if (g.nheap == g.capheap) {
        g.capheap = g.capheap ? g.capheap * 2 : 64;
        g.heap = xrealloc(g.heap, g.capheap * sizeof *g.heap);
    }
    size_t i = g.nheap++;
    while (i > 0 && g.heap[(i - 1) / 2].due_ms > p.due_ms) {
        g.heap[i] = g.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g.heap[i] = p;
}

static pending_t heap_pop(void)
{
    pending_t top = g.heap[0], last = g.heap[--g.nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= g.nheap)
            break;
        if (c + 1 < g.nheap && g.heap[c + 1].due_ms < g.heap[c].due_ms)
            c++;
        if (g.heap[c].due_ms >= last.due_ms)
            break;
        g.heap[i] = g.heap[c];
        i = c;
    }
    if (g.nheap)
        g.heap[i] = last;
    return top;
}

/* Called on the MHD thread right after suspending c. */
static void timer_add(struct MHD_Connection *c, unsigned delay_ms)
{
    pthread_mutex_lock(&g.mu);
    g.delayed++;
    if (g.stopping) {
        pthread_mutex_unlock(&g.mu);
        MHD_resume_connection(c);
        return;
    }
    heap_push((pending_t){mono_ms() + delay_ms, c});
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    while (!g.stopping) {
        int64_t now = mono_ms();
        if (g.nheap && g.heap[0].due_ms <= now) {
            MHD_resume_connection(heap_pop().c);
            continue;
        }
        struct timespec ts;
        deadline_in(&ts, g.nheap ? g.heap[0].due_ms - now : 1000);
        pthread_cond_timedwait(&g.cond, &g.mu, &ts);
    }
    while (g.nheap) /* answer whatever is still waiting before the daemon stops */
        MHD_resume_connection(heap_pop().c);
    pthread_mutex_unlock(&g.mu);
    return NULL;
}

/* ---- record flusher ---- */

static void flush_record(buf_t *tmp)
{
    sim_record_take(g.sim, tmp);
    if (tmp->len) {
        fwrite(tmp->data, 1, tmp->len, g.record);
        fflush(g.record);
        buf_reset(tmp);
    }
}

static void *flusher_main(void *arg)
{
    (void)arg;
    buf_t tmp = BUF_INIT;
    pthread_mutex_lock(&g.mu);
    while (!g.stopping) {
        struct timespec ts;
        deadline_in(&ts, 50);
        pthread_cond_timedwait(&g.cond, &g.mu, &ts);
        pthread_mutex_unlock(&g.mu);
        flush_record(&tmp);
        pthread_mutex_lock(&g.mu);
    }
    pthread_mutex_unlock(&g.mu);
    buf_cleanup(&tmp);
    return NULL;
}

/* ---- MHD handlers ---- */

static bool is_loopback(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

static enum MHD_Result queue(struct MHD_Connection *c, conn_ctx_t *x)
{
    size_t len = x->resp.body.len;
    char *data = buf_steal(&x->resp.body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, x->resp.content_type);
    if (x->resp.retry_after_s) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", x->resp.retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (x->resp.status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)x->resp.status, r);
    MHD_destroy_response(r);
    return rc;
}

static void take_upload(conn_ctx_t *x, const char *data, size_t n)
{
    if (x->too_big)
        return;
    if (x->body.len + n > g.max_body) {
        x->too_big = true; /* keep reading (and discarding) so the client sees the 413 */
        buf_cleanup(&x->body);
        return;
    }
    buf_append(&x->body, data, n);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    conn_ctx_t *x = *con_cls;
    if (x == NULL) {
        *con_cls = xcalloc(1, sizeof(conn_ctx_t));
        return MHD_YES;
    }
    if (x->ready)
        return queue(c, x);
    if (*upload_size) {
        take_upload(x, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    sim_req_t req = {
        .method = method,
        .path = url,
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
        .content_encoding = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding"),
        .auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
        .loopback = is_loopback(c),
        .body = x->body.data,
        .bodylen = x->body.len,
        .body_too_big = x->too_big,
        .mono_ms = mono_ms(),
        .wall_ms = wall_ms(),
    };
    sim_handle(g.sim, &req, &x->resp);
    if (x->resp.action == SIM_DROP)
        return MHD_NO;
    if (x->resp.delay_ms) {
        x->ready = true;
        MHD_suspend_connection(c);
        timer_add(c, x->resp.delay_ms);
        return MHD_YES;
    }
    return queue(c, x);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx_t *x = *con_cls;
    if (x == NULL)
        return;
    if (x->ready) {
        pthread_mutex_lock(&g.mu);
        g.delayed--;
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.mu);
    }
    buf_cleanup(&x->body);
    sim_resp_cleanup(&x->resp);
    free(x);
    *con_cls = NULL;
}

/* ---- command line ---- */

typedef struct cli {
    struct sockaddr_in addr;
    const char *port_file, *record;
    sim_opts_t opts;
} cli_t;

static void usage(void)
{
    fputs("usage: herald-expo-sim [--listen 127.0.0.1:PORT] [--port-file F] [--record F]\n"
          "  [--projects F] [--default-project @owner/slug] [--access-token T]\n"
          "  [--receipt-delay-ms N] [--rate-limit N] [--rate-window sliding|fixed|strict]\n"
          "  [--fail-5xx P] [--fail-429 P] [--drop P] [--drop-after P] [--malformed P]\n"
          "  [--malformed-ticket P]\n"
          "  [--latency-ms N] [--retry-after S] [--seed N] [--max-body BYTES]\n"
          "  [--receipt-capacity N] [--token-capacity N]\n",
          stderr);
}

static int parse_listen(const char *v, struct sockaddr_in *a)
{
    const char *colon = strrchr(v, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - v) >= sizeof host)
        return -1;
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int parse_args(int argc, char **argv, cli_t *cl)
{
    char err[256];
    sim_opts_defaults(&cl->opts);
    parse_listen("127.0.0.1:0", &cl->addr);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            usage();
            return -1;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--listen") == 0) {
            if (parse_listen(v, &cl->addr) != 0) {
                fprintf(stderr, "herald-expo-sim: --listen wants IPV4:PORT, got %s\n", v);
                return -1;
            }
        } else if (strcmp(a, "--port-file") == 0) {
            cl->port_file = v;
        } else if (strcmp(a, "--record") == 0) {
            cl->record = v;
        } else if (sim_opts_set(&cl->opts, a + 2, v, false, err, sizeof err) != 0) {
            fprintf(stderr, "herald-expo-sim: %s\n", err);
            usage();
            return -1;
        }
    }
    cl->opts.record = cl->record != NULL;
    return 0;
}

static int write_port_file(const char *path, const char *addr)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%s\n", addr);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* ---- main ---- */

static struct MHD_Daemon *start_daemon(const cli_t *cl, char *addr, size_t addrlen)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &cl->addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)4096, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (d == NULL)
        return NULL;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &cl->addr.sin_addr, host, sizeof host);
    snprintf(addr, addrlen, "%s:%u", host, di ? (unsigned)di->port : 0u);
    return d;
}

/* Lets the MHD thread send the replies the timer thread just resumed (bounded: 5 s). */
static void drain_delayed(void)
{
    struct timespec ts;
    deadline_in(&ts, 5000);
    pthread_mutex_lock(&g.mu);
    while (g.delayed > 0 && pthread_cond_timedwait(&g.cond, &g.mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&g.mu);
}

static int wait_for_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

int main(int argc, char **argv)
{
    cli_t cl = {0};
    if (parse_args(argc, argv, &cl) != 0)
        return 2;
    char err[256];
    g.sim = sim_create(&cl.opts, err, sizeof err);
    if (g.sim == NULL) {
        fprintf(stderr, "herald-expo-sim: %s\n", err);
        return 1;
    }
    g.max_body = cl.opts.max_body;
    if (cl.record && (g.record = fopen(cl.record, "a")) == NULL) {
        fprintf(stderr, "herald-expo-sim: %s: %s\n", cl.record, strerror(errno));
        return 1;
    }
    /* Signals go to sigwait() in main only; the library threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g.cond, &ca);
    pthread_t timer, flusher;
    pthread_create(&timer, NULL, timer_main, NULL);
    if (g.record)
        pthread_create(&flusher, NULL, flusher_main, NULL);
    char addr[64];
    struct MHD_Daemon *d = start_daemon(&cl, addr, sizeof addr);
    if (d == NULL) {
        fprintf(stderr, "herald-expo-sim: cannot listen: %s\n", strerror(errno));
        return 1;
    }
    printf("listening %s\n", addr);
    fflush(stdout);
    if (cl.port_file && write_port_file(cl.port_file, addr) != 0)
        fprintf(stderr, "herald-expo-sim: cannot write %s\n", cl.port_file);
    wait_for_signal();
    pthread_mutex_lock(&g.mu);
    g.stopping = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
    pthread_join(timer, NULL);
    drain_delayed();
    MHD_stop_daemon(d);
    if (g.record) {
        pthread_join(flusher, NULL);
        buf_t tmp = BUF_INIT;
        flush_record(&tmp);
        buf_cleanup(&tmp);
        fclose(g.record);
    }
    sim_destroy(g.sim);
    free(g.heap);
    return 0;
}
