/* harness.c - real servers for integration tests; see harness.h. */
#include "tests/support/harness.h"
#include "core/xalloc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64
static th_proc_t *procs[MAX_PROCS];
static bool atexit_set;

extern char **environ;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int th_tmpdir(char *out, size_t outlen)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, outlen, "%s/herald-test-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(out) ? 0 : -1;
}

int th_tmpfile(const char *name, const char *text, char *out, size_t outlen)
{
    char dir[256];
    if (th_tmpdir(dir, sizeof dir) != 0)
        return -1;
    snprintf(out, outlen, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    if (f == NULL)
        return -1;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

const char *th_bin_dir(void)
{
    const char *d = getenv("HERALD_TEST_BIN_DIR");
    return d && *d ? d : "build/bin";
}

void th_fixture(const char *rel, char *out, size_t outlen)
{
    const char *d = getenv("HERALD_TEST_FIXTURES");
    snprintf(out, outlen, "%s/%s", d && *d ? d : "tests/fixtures", rel);
}

void th_stop_all(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i])
            th_stop(procs[i], SIGKILL, 2000);
}

static void on_exit_kill(void)
{
    th_stop_all();
}

int th_spawn(th_proc_t *p, const char *name, char *const argv[], char *const extra_env[],
             const char *log_path)
{
    if (!atexit_set) {
        atexit(on_exit_kill);
        atexit_set = true;
    }
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    if (log_path)
        snprintf(p->log, sizeof p->log, "%s", log_path);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* A test that aborts (an assertion under ASan, a crash) runs no atexit handler: its
         * servers die with it instead of holding ports and CPU on the machine. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(127); /* the test died before the line above ran */
        if (log_path) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        for (size_t i = 0; extra_env && extra_env[i]; i++)
            putenv(extra_env[i]);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i] == NULL) {
            procs[i] = p;
            break;
        }
    }
    return 0;
}

bool th_alive(th_proc_t *p)
{
    if (p->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->pid = -st - 1; /* remember it exited; th_stop reads the status back */
        return false;
    }
    return r == 0;
}

int th_stop(th_proc_t *p, int sig, int timeout_ms)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i] == p)
            procs[i] = NULL;
    if (p->pid < 0)
        return -(p->pid + 1);
    if (p->pid == 0)
        return -1;
    kill(p->pid, sig);
    long long deadline = now_ms() + timeout_ms;
    int st = -1;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0) {
            st = -1;
            break;
        }
        if (now_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            break;
        }
        sleep_ms(5);
    }
    p->pid = 0;
    return st;
}

bool th_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    int delay = 2;
    for (;;) {
        if (pred(arg))
            return true;
        if (now_ms() > deadline)
            return false;
        sleep_ms(delay);
        if (delay < 50)
            delay *= 2;
    }
}

static bool port_open(void *arg)
{
    int port = *(int *)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

bool th_wait_port(int port, int timeout_ms)
{
    return th_wait_until(port_open, &port, timeout_ms);
}

struct file_wait {
    const char *path, *needle;
    char *line;
    size_t linelen;
    long from; /* bytes of the file to skip */
};

static bool file_has(void *arg)
{
    struct file_wait *w = arg;
    FILE *f = fopen(w->path, "r");
    if (f == NULL)
        return false;
    if (w->from > 0 && fseek(f, w->from, SEEK_SET) != 0) {
        fclose(f);
        return false;
    }
    char buf[8192];
    bool found = false;
    while (fgets(buf, sizeof buf, f)) {
        if (strstr(buf, w->needle)) {
            if (w->line)
                snprintf(w->line, w->linelen, "%s", buf);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

bool th_wait_file_contains(const char *path, const char *needle, char *line, size_t linelen,
                           int timeout_ms)
{
    struct file_wait w = {path, needle, line, linelen, 0};
    return th_wait_until(file_has, &w, timeout_ms);
}

bool th_wait_file_contains_after(const char *path, long from, const char *needle, int timeout_ms)
{
    struct file_wait w = {path, needle, NULL, 0, from};
    return th_wait_until(file_has, &w, timeout_ms);
}

long th_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* A port below 55000 that is free with port + 10000 (a cluster node's bus port). */
static int free_port_pair(void)
{
    static bool seeded;
    if (!seeded) {
        srand((unsigned)getpid() ^ (unsigned)now_ms());
        seeded = true;
    }
    /* Both ports below the ephemeral range (ip_local_port_range, 32768 by default), so that no
     * outgoing connection of a concurrent test takes one between this probe and the bind. */
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    int top = low - 10000; /* p + 10000 < low */
    if (top <= 12000)
        top = 55000; /* an unusual range: any pair then */
    for (int i = 0; i < 200; i++) {
        int p = 2000 + rand() % (top - 2000);
        if (port_free(p) && port_free(p + 10000))
            return p;
    }
    return -1;
}

int th_redis_start(th_redis_t *r, int port)
{
    char portbuf[16], logp[600], conf[600], tmo[24];
    if (r->dir[0] == '\0' && th_tmpdir(r->dir, sizeof r->dir) != 0)
        return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = port ? port : r->cluster ? free_port_pair() : th_free_port();
        snprintf(conf, sizeof conf, "%s/nodes-%d.conf", r->dir, r->port);
        snprintf(tmo, sizeof tmo, "%ld", r->node_timeout_ms > 0 ? r->node_timeout_ms : 15000);
        snprintf(portbuf, sizeof portbuf, "%d", r->port);
        snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
        snprintf(logp, sizeof logp, "%s/redis.log", r->dir);
        char *argv[] = {"redis-server",
                        "--port",
                        portbuf,
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        r->aof ? "yes" : "no",
                        "--appendfsync",
                        "always",
                        "--dir",
                        r->dir,
                        "--cluster-enabled",
                        r->cluster ? "yes" : "no",
                        "--cluster-config-file",
                        conf,
                        "--cluster-node-timeout",
                        tmo,
                        r->password[0] ? "--requirepass" : NULL,
                        r->password,
                        "--masterauth",
                        r->password,
                        NULL};
        if (th_spawn(&r->proc, "redis", argv, NULL, logp) != 0)
            return -1;
        /* A cluster node exits when it cannot bind its bus port, after its client port took
         * connections: wait for both. */
        if (th_wait_port(r->port, 10000) && (!r->cluster || th_wait_port(r->port + 10000, 10000)))
            return 0;
        th_stop(&r->proc, SIGKILL, 1000);
        if (port)
            sleep_ms(200); /* fixed port (restart): the old socket may linger briefly */
    }
    return -1;
}

void th_redis_stop(th_redis_t *r)
{
    if (r->proc.pid)
        th_stop(&r->proc, SIGTERM, 5000);
}

static void reply_text(buf_t *b, const redisReply *rep)
{
    switch (rep->type) {
    case REDIS_REPLY_INTEGER:
        buf_printf(b, "%lld", rep->integer);
        break;
    case REDIS_REPLY_NIL:
        buf_puts(b, "(nil)");
        break;
    case REDIS_REPLY_ARRAY:
        for (size_t i = 0; i < rep->elements; i++) {
            if (i)
                buf_putc(b, '\n');
            reply_text(b, rep->element[i]);
        }
        break;
    default:
        buf_append(b, rep->str, rep->len);
    }
}

static redisContext *redis_connect(const th_redis_t *r, int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    if (r->password[0]) {
        redisReply *auth = redisCommand(c, "AUTH %s", r->password);
        bool ok = auth && auth->type == REDIS_REPLY_STATUS;
        if (auth)
            freeReplyObject(auth);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The port a cluster node's MOVED or ASK reply redirects to (0: not a redirect), *ask for ASK. */
static int redirect_port(const redisReply *rep, bool *ask)
{
    if (rep->type != REDIS_REPLY_ERROR)
        return 0;
    *ask = strncmp(rep->str, "ASK ", 4) == 0;
    if (strncmp(rep->str, "MOVED ", 6) != 0 && !*ask)
        return 0;
    const char *colon = strrchr(rep->str, ':');
    return colon ? atoi(colon + 1) : 0;
}

/* One command; on a cluster node it follows MOVED and ASK (a few hops, as redis-cli -c does). */
char *th_redis_vcmd(th_redis_t *r, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    long long len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0)
        return NULL;
    int port = r->port;
    bool ask = false;
    char *out = NULL;
    for (int hop = 0; hop < 5 && port > 0 && out == NULL; hop++) {
        redisContext *c = redis_connect(r, port);
        if (c == NULL)
            break;
        if (ask)
            redisAppendCommand(c, "ASKING");
        redisAppendFormattedCommand(c, cmd, (size_t)len);
        redisReply *rep = NULL;
        void *v = NULL;
        if (ask && redisGetReply(c, &v) == REDIS_OK)
            freeReplyObject(v);
        if (redisGetReply(c, &v) == REDIS_OK)
            rep = v;
        port = rep ? redirect_port(rep, &ask) : 0;
        if (rep && port == 0) {
            buf_t b = BUF_INIT;
            reply_text(&b, rep);
            out = buf_steal(&b);
        }
        if (rep)
            freeReplyObject(rep);
        redisFree(c);
    }
    redisFreeCommand(cmd);
    return out;
}

char *th_redis_cmd(th_redis_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = th_redis_vcmd(r, fmt, ap);
    va_end(ap);
    return out;
}

bool th_redis_expect(th_redis_t *r, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *got = th_redis_vcmd(r, fmt, ap);
    va_end(ap);
    bool ok = got != NULL && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "redis %s: got \"%s\", want \"%s\"\n", fmt, got ? got : "(error)", want);
    free(got);
    return ok;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    buf_append(arg, p, sz * n);
    return sz * n;
}

int th_http(const char *method, const char *url, const char *const *headers, const char *body,
            size_t bodylen, th_resp_t *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

const char *th_resp_header(const th_resp_t *r, const char *name, char *out, size_t outlen)
{
    const char *p = buf_cstr(&r->headers);
    size_t nl = strlen(name);
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(p + len - v);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return out;
        }
        p += len + (eol ? 1 : 0);
    }
    return NULL;
}

void th_resp_cleanup(th_resp_t *r)
{
    buf_cleanup(&r->headers);
    buf_cleanup(&r->body);
}

static void b64url(buf_t *b, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63]};
        buf_append(b, q, 4);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        char q[2] = {tbl[v >> 18], tbl[(v >> 12) & 63]};
        buf_append(b, q, 2);
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        char q[3] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63]};
        buf_append(b, q, 3);
    }
}

char *th_jwt_custom(const char *header_json, const char *payload_json, const char *secret,
                    bool sign)
{
    buf_t b = BUF_INIT;
    b64url(&b, (const unsigned char *)header_json, strlen(header_json));
    buf_putc(&b, '.');
    b64url(&b, (const unsigned char *)payload_json, strlen(payload_json));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (sign) {
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)b.data, b.len, mac,
             &maclen);
    }
    buf_putc(&b, '.');
    b64url(&b, mac, maclen);
    return buf_steal(&b);
}

char *th_jwt_hs256(const char *secret, const char *payload_json)
{
    return th_jwt_custom("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload_json, secret, true);
}

static void dump_log(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    if (f == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

struct ready_wait {
    th_herald_t *h;
};

static bool ready_file_done(void *arg)
{
    th_herald_t *h = arg;
    FILE *f = fopen(h->ready, "r");
    if (f == NULL)
        return !th_alive(&h->proc); /* stop waiting if it died */
    int pid = 0;
    int n = fscanf(f, "{\"pid\":%d,\"api_port\":%d,\"admin_port\":%d", &pid, &h->api_port,
                   &h->admin_port);
    fclose(f);
    return n == 3;
}

int th_herald_start(th_herald_t *h, const char *conf_text, char *const extra_env[])
{
    if (h->dir[0] == '\0' && th_tmpdir(h->dir, sizeof h->dir) != 0)
        return -1;
    snprintf(h->conf, sizeof h->conf, "%s/herald.conf", h->dir);
    snprintf(h->log, sizeof h->log, "%s/herald.log", h->dir);
    snprintf(h->ready, sizeof h->ready, "%s/ready.json", h->dir);
    unlink(h->ready);
    FILE *f = fopen(h->conf, "w");
    if (f == NULL)
        return -1;
    fputs(conf_text, f);
    fclose(f);
    char bin[512];
    snprintf(bin, sizeof bin, "%s/herald", th_bin_dir());
    char *argv[] = {bin, "--config", h->conf, "--ready-file", h->ready, NULL};
    h->api_port = h->admin_port = 0;
    if (th_spawn(&h->proc, "herald", argv, extra_env, h->log) != 0)
        return -1;
    if (!th_wait_until(ready_file_done, h, 20000) || h->api_port == 0) {
        dump_log(h->log);
        th_stop(&h->proc, SIGKILL, 1000);
        return -1;
    }
    return 0;
}

int th_herald_stop(th_herald_t *h, int sig)
{
    int st = th_stop(&h->proc, sig, 15000);
    if (st < 0 || !WIFEXITED(st)) {
        dump_log(h->log);
        return -1;
    }
    return WEXITSTATUS(st);
}

void th_herald_url(const th_herald_t *h, bool admin, const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "http://127.0.0.1:%d%s", admin ? h->admin_port : h->api_port, path);
}

struct sim_wait {
    const char *portfile;
    char *url;
    size_t urllen;
};

static bool sim_listening(void *arg)
{
    struct sim_wait *w = arg;
    char addr[64] = "";
    FILE *f = fopen(w->portfile, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(addr, sizeof addr, f) != NULL;
    fclose(f);
    addr[strcspn(addr, "\n")] = '\0';
    snprintf(w->url, w->urllen, "http://%s", addr);
    return ok && addr[0];
}

int th_sim_start(th_proc_t *p, const char *dir, const char *const *extra, char *url, size_t urllen)
{
    char bin[512], portfile[512], record[512], logp[512];
    char *argv[32];
    size_t n = 0;
    snprintf(bin, sizeof bin, "%s/herald-expo-sim", th_bin_dir());
    snprintf(portfile, sizeof portfile, "%s/sim.port", dir);
    snprintf(record, sizeof record, "%s/sim.jsonl", dir);
    snprintf(logp, sizeof logp, "%s/sim.log", dir);
    unlink(portfile);
    char *base[] = {bin, "--listen", "127.0.0.1:0", "--port-file", portfile, "--record", record};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        argv[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = (char *)(uintptr_t)extra[i];
    argv[n] = NULL;
    struct sim_wait w = {portfile, url, urllen};
    if (th_spawn(p, "sim", argv, NULL, logp) != 0)
        return -1;
    return th_wait_until(sim_listening, &w, 10000) ? 0 : -1;
}

double th_metric_sum(metric_reg_t *reg, const char *prefix)
{
    buf_t out = BUF_INIT;
    metric_render(reg, &out);
    size_t plen = strlen(prefix);
    double sum = 0;
    for (const char *line = buf_cstr(&out); *line;) {
        const char *eol = line + strcspn(line, "\n");
        const char *sp = memrchr(line, ' ', (size_t)(eol - line));
        if (strncmp(line, prefix, plen) == 0 && sp != NULL)
            sum += strtod(sp + 1, NULL);
        line = *eol ? eol + 1 : eol;
    }
    buf_cleanup(&out);
    return sum;
}

struct json_t *th_sim_stats(const char *sim_url)
{
    char url[256];
    th_resp_t r;
    snprintf(url, sizeof url, "%s/stats", sim_url);
    if (th_http("GET", url, NULL, NULL, 0, &r) != 0)
        return NULL;
    json_t *j = r.status == 200 ? json_loads(buf_cstr(&r.body), 0, NULL) : NULL;
    th_resp_cleanup(&r);
    return j;
}

double th_herald_metric(const th_herald_t *h, const char *name)
{
    char url[256];
    th_resp_t r;
    th_herald_url(h, true, "/metrics", url, sizeof url);
    if (th_http("GET", url, NULL, NULL, 0, &r) != 0 || r.status != 200) {
        th_resp_cleanup(&r);
        return -1;
    }
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *p = buf_cstr(&r.body); *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{'))
            sum += strtod(strchr(p, ' ') + 1, NULL);
        p = eol ? eol + 1 : p + strlen(p);
    }
    th_resp_cleanup(&r);
    return sum;
}
