/* expo.c - heraldctl's Expo commands: `push` sends one notification through the same client
 * the daemon uses (the runbook's "test the endpoint") and can wait for its receipt; `receipts`
 * shows the pending receipt checks (expo/receipts.h) over the shared Redis session (util.h).
 * Each runs its own libuv loop until done. */
#include "config/config.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "ctl/ctl.h"
#include "ctl/util.h"
#include "daemon/options.h"
#include "expo/expo.h"
#include "expo/proto.h"
#include "expo/receipts.h"
#include "expo/transport.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct push_state {
    bool done;
    expo_outcome_t oc;
    char ticket[300];
    char error[64];
    char message[512];
    unsigned attempts;
    bool ambiguous;
} push_state_t;

static void on_push(const expo_result_t *r, void *arg)
{
    push_state_t *s = arg;
    s->done = true;
    s->oc = r->outcome;
    s->attempts = r->attempts;
    s->ambiguous = r->ambiguous;
    snprintf(s->ticket, sizeof s->ticket, "%s", r->ticket_id ? r->ticket_id : "");
    snprintf(s->error, sizeof s->error, "%s", r->error ? r->error : "");
    snprintf(s->message, sizeof s->message, "%s", r->message ? r->message : "");
}

typedef struct push_args {
    const char *to, *title, *body, *data;
    bool wait, json;
    long wait_s;
} push_args_t;

static int parse_push(int argc, char **argv, push_args_t *a)
{
    static const struct option opts[] = {{"to", required_argument, NULL, 't'},
                                         {"title", required_argument, NULL, 'T'},
                                         {"body", required_argument, NULL, 'b'},
                                         {"data", required_argument, NULL, 'd'},
                                         {"wait-receipt", no_argument, NULL, 'w'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"receipt-timeout", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->wait_s = 120;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            a->to = optarg;
            break;
        case 'T':
            a->title = optarg;
            break;
        case 'b':
            a->body = optarg;
            break;
        case 'd':
            a->data = optarg;
            break;
        case 'w':
            a->wait = true;
            break;
        case 'j':
            a->json = true;
            break;
        case 'r':
            a->wait_s = strtol(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    return a->to && optind == argc ? 0 : -1;
}

/* ---- waiting for one receipt: getReceipts directly, every second, bounded ---- */

typedef struct rwait {
    uv_loop_t *loop;
    expo_transport_t *tr;
    uv_timer_t timer;
    char url[512], auth[4200];
    const char *id;
    buf_t body;
    int left;
    bool done, in_flight;
    int status; /* 0 found, 1 not found in time */
    char result[64], message[512];
} rwait_t;

static void rw_ask(uv_timer_t *t);

static void on_rw_reply(const expo_http_resp_t *resp, void *arg)
{
    rwait_t *w = arg;
    w->in_flight = false;
    expo_receipt_t *rc = NULL;
    size_t n = 0;
    char err[64];
    if (resp->status &&
        expo_receipts_parse(resp->status, resp->body, resp->len, &rc, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rc[i].id, w->id) != 0)
                continue;
            w->done = true;
            w->status = 0;
            snprintf(w->result, sizeof w->result, "%s",
                     rc[i].kind == EXPO_TK_OK ? "ok" : rc[i].error);
            snprintf(w->message, sizeof w->message, "%s", rc[i].message ? rc[i].message : "");
        }
    }
    expo_receipts_free(rc, n);
    if (!w->done && --w->left <= 0) {
        w->done = true;
        w->status = 1;
    }
    if (!w->done)
        uv_timer_start(&w->timer, rw_ask, 1000, 0);
}

static void rw_ask(uv_timer_t *t)
{
    rwait_t *w = t->data;
    const char *hdr[] = {"accept: application/json", "content-type: application/json", w->auth};
    w->in_flight = true;
    w->tr->post(w->tr, w->url, hdr, w->auth[0] ? 3 : 2, w->body.data, w->body.len, 10000,
                on_rw_reply, w);
}

static void on_nop_close(uv_handle_t *h)
{
    (void)h;
}

static int wait_receipt(uv_loop_t *loop, const expo_opts_t *o, const char *id, long wait_s,
                        rwait_t *w)
{
    char err[256];
    expo_curl_opts_t co = {1, o->http2, EXPO_MAX_REPLY};
    memset(w, 0, sizeof *w);
    w->tr = expo_transport_curl_create(loop, &co, err, sizeof err);
    if (!w->tr)
        return -1;
    size_t ul = strlen(o->url);
    while (ul > 0 && o->url[ul - 1] == '/')
        ul--;
    snprintf(w->url, sizeof w->url, "%.*s/--/api/v2/push/getReceipts", (int)ul, o->url);
    if (o->access_token && *o->access_token)
        snprintf(w->auth, sizeof w->auth, "authorization: Bearer %s", o->access_token);
    w->id = id;
    w->left = (int)(wait_s > 0 ? wait_s : 1);
    buf_puts(&w->body, "{\"ids\":[");
    buf_json_str(&w->body, id, strlen(id));
    buf_puts(&w->body, "]}");
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, rw_ask, 0, 0);
    while (!w->done)
        uv_run(loop, UV_RUN_ONCE);
    w->tr->destroy(w->tr);
    uv_close((uv_handle_t *)&w->timer, on_nop_close);
    buf_cleanup(&w->body);
    return 0;
}

static int push_exit(const push_state_t *s)
{
    if (s->oc == EXPO_OK)
        return CTL_OK;
    if (s->oc == EXPO_INVALID_TOKEN)
        return CTL_NOTFOUND;
    if (strcmp(s->error, "MessageTooBig") == 0 || strcmp(s->error, "InvalidMessage") == 0)
        return CTL_USAGE;
    return CTL_UNAVAILABLE;
}

static void print_push(const push_args_t *a, const push_state_t *s, const rwait_t *w)
{
    static const char *oc[] = {"ok", "invalid_token", "failed"};
    if (a->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "outcome", oc[s->oc]);
        ctl_json_str(&b, "ticket", s->ticket);
        ctl_json_str(&b, "error", s->error);
        ctl_json_str(&b, "message", s->message);
        ctl_json_int(&b, "attempts", s->attempts);
        ctl_json_bool(&b, "ambiguous", s->ambiguous);
        if (w)
            ctl_json_str(&b, "receipt", w->status == 0 ? w->result : NULL);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
        return;
    }
    printf("outcome   %s\n", oc[s->oc]);
    if (s->ticket[0])
        printf("ticket    %s\n", s->ticket);
    if (s->error[0])
        printf("error     %s%s%s\n", s->error, s->message[0] ? ": " : "", s->message);
    printf("attempts  %u%s\n", s->attempts,
           s->ambiguous ? " (an earlier attempt may have been delivered)" : "");
    if (w)
        printf("receipt   %s%s%s\n", w->status == 0 ? w->result : "not available yet",
               w->message[0] ? ": " : "", w->message);
}

static int run_push(const conf_t *conf, const push_args_t *a)
{
    expo_opts_t o;
    char err[256], *tok = NULL;
    if (daemon_expo_opts(conf, &o, &tok, err, sizeof err) != 0) {
        fprintf(stderr, "heraldctl push: %s\n", err);
        return CTL_USAGE;
    }
    o.linger_ms = 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    expo_client_t *c = expo_client_create(&loop, &o, NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "heraldctl push: %s\n", err);
        free(tok);
        uv_loop_close(&loop);
        return CTL_USAGE;
    }
    expo_msg_t m;
    expo_msg_init(&m);
    m.to = a->to;
    m.title = a->title;
    m.body = a->body;
    m.data = a->data;
    m.sound = "default";
    push_state_t s = {0};
    expo_send(c, &m, on_push, &s);
    while (!s.done)
        uv_run(&loop, UV_RUN_ONCE);
    expo_client_destroy(c);
    rwait_t w;
    bool waited =
        a->wait && s.oc == EXPO_OK && wait_receipt(&loop, &o, s.ticket, a->wait_s, &w) == 0;
    print_push(a, &s, waited ? &w : NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(tok);
    if (waited && w.status == 0 && strcmp(w.result, "DeviceNotRegistered") == 0)
        return CTL_NOTFOUND;
    return push_exit(&s);
}

int ctl_push(const conf_t *conf, int argc, char **argv)
{
    push_args_t a;
    if (parse_push(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: heraldctl push --to TOKEN [--title T] [--body B] [--data JSON] "
                        "[--wait-receipt [--receipt-timeout S]] [--json]\n");
        return CTL_USAGE;
    }
    return run_push(conf, &a);
}

/* ---- receipts ---- */

typedef struct pend_state {
    ctl_env_t *e;
    long long count;
    int64_t oldest;
} pend_state_t;

static void on_pend(int status, long long count, int64_t oldest, void *arg)
{
    pend_state_t *p = arg;
    p->count = count;
    p->oldest = oldest;
    ctl_env_done(p->e, status);
}

static long no_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *e,
                       const char *m, void *arg)
{
    (void)t, (void)st, (void)e, (void)m, (void)arg;
    return -1;
}

static void print_pending(const pend_state_t *p, bool json)
{
    char when[32] = "";
    if (p->count > 0)
        clk_iso8601(p->oldest, when, sizeof when);
    long long now = (long long)time(NULL);
    long long overdue = p->count > 0 && p->oldest < now ? now - p->oldest : 0;
    if (json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_int(&b, "pending", p->count);
        ctl_json_str(&b, "oldest_due", p->count ? when : NULL);
        ctl_json_int(&b, "oldest_overdue_s", overdue);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else {
        printf("pending     %lld\noldest due  %s%s\n", p->count, p->count ? when : "-",
               overdue ? " (overdue)" : "");
    }
}

static int run_receipts(const conf_t *conf, bool json)
{
    ctl_env_t e;
    int rc = ctl_env_open(&e, conf);
    if (rc != CTL_OK)
        return rc;
    char err[256];
    expo_receipts_opts_t ro;
    daemon_receipts_opts(conf, NULL, &ro);
    ro.on_receipt = no_receipt;
    expo_receipts_t *r = expo_receipts_create(&e.loop, e.db, &ro, NULL, err, sizeof err);
    pend_state_t p = {.e = &e};
    if (r == NULL) {
        fprintf(stderr, "heraldctl receipts: %s\n", err);
        rc = CTL_USAGE;
    } else {
        ctl_env_begin(&e);
        expo_receipts_pending(r, on_pend, &p);
        ctl_env_wait(&e, 0);
        rc = e.failure ? ctl_unavailable(&e, e.failure) : CTL_OK;
    }
    expo_receipts_destroy(r); /* every command it issued has answered */
    ctl_env_close(&e);        /* runs the loop until its handles are closed */
    if (rc == CTL_OK)
        print_pending(&p, json);
    return rc;
}

int ctl_receipts(const conf_t *conf, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "usage: heraldctl receipts [--json]\n");
            return CTL_USAGE;
        }
    }
    return run_receipts(conf, json);
}
