/* fake_transport.c - see fake_transport.h. */
#include "tests/expo/fake_transport.h"
#include "core/xalloc.h"
#include "expo/proto.h"

#include <stdlib.h>
#include <string.h>

typedef struct fake_pending {
    struct fake_pending *next;
    size_t idx;
    expo_http_cb cb;
    void *arg;
} fake_pending_t;

static size_t count_msgs(const char *b)
{
    size_t n = 0;
    for (const char *p = b; (p = strstr(p, "\"to\":")); p++)
        n++;
    return n;
}

static void on_timer(uv_timer_t *t)
{
    fake_t *f = t->data;
    if (f->hold)
        return;
    fake_pending_t *p = f->pending, *rev = NULL;
    f->pending = NULL;
    while (p) { /* oldest first */
        fake_pending_t *nx = p->next;
        p->next = rev;
        rev = p;
        p = nx;
    }
    while (rev) {
        fake_pending_t *q = rev;
        rev = q->next;
        expo_http_resp_t r = {0};
        r.retry_after_s = -1;
        r.detail = "";
        buf_t out = BUF_INIT;
        f->script(f, q->idx, &f->reqs[q->idx], &r, &out, f->arg);
        r.body = buf_cstr(&out);
        r.len = out.len;
        f->in_flight--;
        q->cb(&r, q->arg);
        buf_cleanup(&out);
        free(q);
    }
}

static int fake_post(struct expo_transport *t, const char *url, const char *const *headers,
                     size_t nheaders, const void *body, size_t len, long timeout_ms,
                     expo_http_cb cb, void *arg)
{
    (void)url;
    (void)timeout_ms;
    fake_t *f = (fake_t *)t;
    fake_req_t *r = &f->reqs[f->nreqs];
    for (size_t i = 0; i < nheaders; i++) {
        if (strcmp(headers[i], "content-encoding: gzip") == 0)
            r->gzip = true;
        if (strncmp(headers[i], "authorization: Bearer ", 22) == 0)
            r->auth = true;
    }
    buf_t b = BUF_INIT;
    if (r->gzip) {
        if (expo_gunzip(body, len, 1 << 24, &b) != 0)
            abort();
    } else {
        buf_append(&b, body, len);
    }
    r->len = b.len;
    r->body = buf_steal(&b);
    r->nmsgs = count_msgs(r->body);
    fake_pending_t *p = xcalloc(1, sizeof *p);
    p->idx = f->nreqs++;
    p->cb = cb;
    p->arg = arg;
    p->next = f->pending;
    f->pending = p;
    if (++f->in_flight > f->max_in_flight)
        f->max_in_flight = f->in_flight;
    uv_timer_start(&f->timer, on_timer, 0, 0);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

/* As the real transport: every request still pending is answered now, cancelled. */
static void fake_destroy(struct expo_transport *t)
{
    fake_t *f = (fake_t *)t;
    while (f->pending) {
        fake_pending_t *p = f->pending;
        f->pending = p->next;
        expo_http_resp_t r = {0};
        r.terr = EXPO_TERR_CANCELLED;
        r.retry_after_s = -1;
        r.detail = "cancelled";
        r.body = "";
        f->in_flight--;
        f->cancelled++;
        p->cb(&r, p->arg);
        free(p);
    }
    uv_close((uv_handle_t *)&f->timer, on_closed);
}

fake_t *fake_create(uv_loop_t *loop, fake_script script, void *arg)
{
    fake_t *f = xcalloc(1, sizeof *f);
    f->base.post = fake_post;
    f->base.destroy = fake_destroy;
    f->loop = loop;
    f->script = script;
    f->arg = arg;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    return f;
}

void fake_free(fake_t *f)
{
    for (size_t i = 0; i < f->nreqs; i++)
        free(f->reqs[i].body);
    free(f);
}
