/* admin.c - operational endpoints. /healthz answers as long as the loop turns (it is served by the
 * same loop as everything else); /readyz reports each dependency; /metrics renders the registry
 * plus process gauges. */
#include "http/admin.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHECKS 8

struct disp_admin {
    metric_reg_t *metrics;
    struct {
        char *name;
        disp_ready_fn fn;
        void *arg;
    } checks[MAX_CHECKS];
    size_t nchecks;
    bool draining;
    int64_t started_ms;
};

static double rss_bytes(void *arg)
{
    (void)arg;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double uptime_s(void *arg)
{
    disp_admin_t *a = arg;
    return (double)(clk_wall_ms() - a->started_ms) / 1000.0;
}

disp_admin_t *disp_admin_create(metric_reg_t *metrics)
{
    disp_admin_t *a = xcalloc(1, sizeof *a);
    a->metrics = metrics;
    a->started_ms = clk_wall_ms();
    metric_set(
        metric_get(metric_gauge_new(metrics, "herald_build_info", "Build information.", "version"),
                   HERALD_VERSION),
        1);
    metric_set_fn(metric_get(metric_gauge_new(metrics, "herald_process_resident_memory_bytes",
                                              "Resident set size.", NULL)),
                  rss_bytes, NULL);
    metric_set_fn(metric_get(metric_gauge_new(metrics, "herald_uptime_seconds",
                                              "Seconds since start.", NULL)),
                  uptime_s, a);
    return a;
}

void disp_admin_destroy(disp_admin_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nchecks; i++)
        free(a->checks[i].name);
    free(a);
}

void disp_admin_add_check(disp_admin_t *a, const char *name, disp_ready_fn fn, void *arg)
{
    if (a->nchecks == MAX_CHECKS)
        return;
    a->checks[a->nchecks].name = xstrdup(name);
    a->checks[a->nchecks].fn = fn;
    a->checks[a->nchecks].arg = arg;
    a->nchecks++;
}

void disp_admin_set_draining(disp_admin_t *a, bool draining)
{
    a->draining = draining;
}

static void reply(http_req_t *req, int status, const char *ctype, const buf_t *b)
{
    const http_header_t h[] = {{"Content-Type", ctype}, {"Cache-Control", "no-store"}};
    http_respond(req, status, h, 2, buf_cstr(b), b->len);
}

static void readyz(disp_admin_t *a, http_req_t *req)
{
    buf_t b = BUF_INIT;
    bool ready = !a->draining;
    buf_puts(&b, "{\"checks\":{");
    for (size_t i = 0; i < a->nchecks; i++) {
        char reason[128] = "";
        bool ok = a->checks[i].fn(a->checks[i].arg, reason, sizeof reason);
        ready = ready && ok;
        buf_printf(&b, "%s\"%s\":", i ? "," : "", a->checks[i].name);
        if (ok)
            buf_puts(&b, "\"ok\"");
        else
            buf_json_str(&b, reason, strlen(reason));
    }
    buf_printf(&b, "},\"status\":\"%s\"}",
               a->draining ? "draining"
               : ready     ? "ready"
                           : "not ready");
    reply(req, ready ? 200 : 503, "application/json", &b);
    buf_cleanup(&b);
}

void disp_admin_handle(disp_admin_t *a, http_req_t *req)
{
    buf_t b = BUF_INIT;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        buf_puts(&b, "{\"error\":\"Method not allowed\"}");
        const http_header_t h[] = {{"Content-Type", "application/json"}, {"Allow", "GET, HEAD"}};
        http_respond(req, 405, h, 2, buf_cstr(&b), b.len);
    } else if (strcmp(req->path, "/healthz") == 0) {
        buf_puts(&b, "{\"status\":\"ok\"}");
        reply(req, 200, "application/json", &b);
    } else if (strcmp(req->path, "/readyz") == 0) {
        readyz(a, req);
    } else if (strcmp(req->path, "/metrics") == 0) {
        metric_render(a->metrics, &b);
        reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    } else {
        buf_puts(&b, "{\"error\":\"Not found\"}");
        reply(req, 404, "application/json", &b);
    }
    buf_cleanup(&b);
}
