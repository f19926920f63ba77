/* harness.h - what integration tests need to run real servers: free ports from the OS, child
 * processes that are always stopped, a real redis-server per test, bounded waits on conditions,
 * and a small HTTP client over loopback. Test code only; blocking calls are fine here. */
#ifndef HERALD_TESTS_HARNESS_H
#define HERALD_TESTS_HARNESS_H

#include "core/buf.h"
#include "core/metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A TCP port the OS just handed out on 127.0.0.1 (bound to 0, then released). */
int th_free_port(void);
/* A fresh directory under $TMPDIR (or /tmp); returns a static-lifetime copy in out. */
int th_tmpdir(char *out, size_t outlen);
/* Writes text to <a fresh th_tmpdir>/<name>; out receives the file's path. Returns 0 or -1. */
int th_tmpfile(const char *name, const char *text, char *out, size_t outlen);
/* Directory of the built binaries (env HERALD_TEST_BIN_DIR, set by CMake), e.g. ".../build/bin". */
const char *th_bin_dir(void);
/* Path of a fixture file under tests/fixtures (env HERALD_TEST_FIXTURES). */
void th_fixture(const char *rel, char *out, size_t outlen);

typedef struct th_proc {
    pid_t pid;
    char name[64];
    char log[512]; /* combined stdout/stderr */
} th_proc_t;

/* Starts argv[0] with stdout and stderr to log_path (NULL: inherit). extra_env: NULL-terminated
 * "K=V" strings added to the environment, or NULL. Registered so th_stop_all() (run at exit too)
 * kills it if the test forgets. */
int th_spawn(th_proc_t *p, const char *name, char *const argv[], char *const extra_env[],
             const char *log_path);
/* Sends sig, waits up to timeout_ms, then SIGKILL. Returns the exit status as from waitpid
 * (WIFEXITED...), or -1. */
int th_stop(th_proc_t *p, int sig, int timeout_ms);
bool th_alive(th_proc_t *p);
void th_stop_all(void);

/* Polls pred every few ms until it returns true or timeout_ms passes. */
bool th_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms);
/* Waits for a TCP port on 127.0.0.1 to accept connections. */
bool th_wait_port(int port, int timeout_ms);
/* Waits until the file contains needle; copies the line holding it into line (may be NULL). */
bool th_wait_file_contains(const char *path, const char *needle, char *line, size_t linelen,
                           int timeout_ms);
/* The same, in what was written after the file's first from bytes (a log appended to by a
 * restarted process: its own lines only). */
bool th_wait_file_contains_after(const char *path, long from, const char *needle, int timeout_ms);
/* A file's size in bytes, 0 when it does not exist. */
long th_file_size(const char *path);

typedef struct th_redis {
    th_proc_t proc;
    int port;
    char url[64];
    char dir[256];
    bool aof; /* set before starting: append-only file fsynced on every write, so a restart on
                 the same port (same dir) after SIGKILL keeps every acknowledged write */
    char password[64];    /* set before starting: requirepass; th_redis_cmd authenticates with it */
    bool cluster;         /* set before starting: a cluster node (nodes-<port>.conf in dir; the port
                             and port + 10000, its bus port, are both probed free, below 55000) */
    long node_timeout_ms; /* cluster: cluster-node-timeout, 0 for Redis' default */
} th_redis_t;

/* A real redis-server on a free port (port == 0) or the given one, no persistence unless
 * r->aof, no password unless r->password. */
int th_redis_start(th_redis_t *r, int port);
void th_redis_stop(th_redis_t *r);
/* Runs one command with redis-cli-like semantics through hiredis and returns the reply as text
 * (integers in decimal, nil as "(nil)", arrays joined by '\n'); caller frees. NULL on error. On
 * a cluster node it follows MOVED and ASK to the node serving the key (as redis-cli -c). */
char *th_redis_cmd(th_redis_t *r, const char *fmt, ...);
/* th_redis_cmd with a va_list. */
char *th_redis_vcmd(th_redis_t *r, const char *fmt, va_list ap);
/* True when th_redis_cmd's reply is want; otherwise says both on stderr. */
bool th_redis_expect(th_redis_t *r, const char *want, const char *fmt, ...);

typedef struct th_resp {
    long status;
    buf_t headers; /* raw header lines */
    buf_t body;
} th_resp_t;

/* One HTTP request over loopback. headers: NULL-terminated "Name: value" strings or NULL. body
 * may be NULL. Returns 0 when a response arrived (any status), -1 on transport errors. */
int th_http(const char *method, const char *url, const char *const *headers, const char *body,
            size_t bodylen, th_resp_t *out);
/* Value of a response header (case-insensitive), copied into out; NULL if absent. */
const char *th_resp_header(const th_resp_t *r, const char *name, char *out, size_t outlen);
void th_resp_cleanup(th_resp_t *r);

/* Mints an HS256 JWT for tests: payload is the claims JSON text (borrowed). Returns new string. */
char *th_jwt_hs256(const char *secret, const char *payload_json);
/* Same with a custom header JSON (to test alg confusion, none, ...). sign=false leaves the
 * signature empty. */
char *th_jwt_custom(const char *header_json, const char *payload_json, const char *secret,
                    bool sign);

/* Starts the Expo simulator (build/bin/herald-expo-sim) with its port file, record file
 * <dir>/sim.jsonl and log <dir>/sim.log, plus extra arguments (NULL-terminated, may be NULL), and
 * waits (bounded) until it listens. url receives "http://127.0.0.1:PORT". Returns 0 or -1. */
int th_sim_start(th_proc_t *p, const char *dir, const char *const *extra, char *url, size_t urllen);

/* The simulator's GET /stats (sim_url as th_sim_start wrote it), parsed; NULL when it did not
 * answer with JSON. new: json_decref it. */
struct json_t;
struct json_t *th_sim_stats(const char *sim_url);

/* The sum of the values on the registry's sample lines that start with prefix (a metric name, or
 * a name and the start of its labels: "herald_expo_requests_total{class=\"4xx\"}"); 0 if none. */
double th_metric_sum(metric_reg_t *reg, const char *prefix);

typedef struct th_herald {
    th_proc_t proc;
    int api_port, admin_port;
    char dir[256];
    char conf[320];
    char log[320];
    char ready[320];
} th_herald_t;

/* Writes conf_text to <dir>/herald.conf (dir: a fresh tmpdir when h->dir is empty) and starts
 * build/bin/herald with --ready-file; waits (bounded) until it listens. Returns 0 or -1 (the log
 * is printed to stderr on failure). */
int th_herald_start(th_herald_t *h, const char *conf_text, char *const extra_env[]);
/* Sends sig and waits; returns the exit code (0..255), or -1 if it did not exit normally. */
int th_herald_stop(th_herald_t *h, int sig);
/* "http://127.0.0.1:<api_port><path>" into out. */
void th_herald_url(const th_herald_t *h, bool admin, const char *path, char *out, size_t outlen);

/* The sum of every sample of one metric family in herald's /metrics (labels ignored: `name` then
 * ' ' or '{'), or -1 when the admin listener did not answer 200. */
double th_herald_metric(const th_herald_t *h, const char *name);

#endif
