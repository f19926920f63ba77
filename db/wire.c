/* wire.c - hiredis async on the libuv loop, in place of hiredis' adapters/libuv.h, so that the
 * commands of one loop turn leave in one write.
 *
 * The stock adapter calls uv_poll_start on every hook hiredis fires: per command (addWrite), per
 * read (addRead) and per flush (delWrite), each a change libuv turns into epoll_ctl calls, and
 * each write waits one more loop turn for a writable event. Here read interest is registered once
 * and stays; a command only marks the connection dirty, and just before the loop next waits, a
 * uv_prepare handle has redisAsyncHandleWrite write everything queued since. Only a write the
 * socket did not take whole (or a connect in progress) waits for a writable event.
 *
 * The prepare handle stays active (unreferenced) for the connection's life: libuv runs prepare
 * handles last-started first, so one that other modules start per turn (the pipeline's claims)
 * runs before it and its commands share the write. A command queued after the flush all the
 * same (from a prepare handle started earlier) starts the idle handle `guard`, which keeps the
 * loop from blocking, so it goes out in the next turn instead of waiting for unrelated I/O.
 *
 * hiredis frees the context itself on errors and on redisAsyncFree (possibly deferred until its
 * callback returns); it calls the cleanup hook first, which clears `ac` and closes the handles,
 * so nothing here touches a freed context. The struct goes once its three handles closed. */
#include "db/internal.h"

#include "core/xalloc.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <stdbool.h>
#include <stdlib.h>

typedef struct wire {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    uv_prepare_t flush; /* always active: writes what the turn queued */
    uv_idle_t guard;    /* active while commands wait for the flush: the loop must not block */
    int events;         /* what poll is registered for */
    bool dirty;         /* commands queued since the last write */
    bool writing;       /* inside redisAsyncHandleWrite: a write left over waits for writable */
    int open_handles;
} wire_t;

static void on_poll(uv_poll_t *h, int status, int events);

static void set_events(wire_t *w, int events)
{
    if (events == w->events)
        return;
    w->events = events;
    if (events)
        uv_poll_start(&w->poll, events, on_poll);
    else
        uv_poll_stop(&w->poll);
}

static void handle_write(wire_t *w)
{
    w->writing = true;
    redisAsyncHandleWrite(w->ac); /* may free it: the cleanup hook clears w->ac */
    w->writing = false;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    wire_t *w = h->data;
    if (status < 0) {
        /* A socket error (a refused connect, a reset): libuv stopped the poll. hiredis reads
         * the error on the next read or connect check and tears the connection down. */
        w->events = 0;
        events = UV_READABLE | UV_WRITABLE;
    }
    if (w->ac && (events & UV_READABLE))
        redisAsyncHandleRead(w->ac);
    if (w->ac && (events & UV_WRITABLE))
        handle_write(w);
}

static void clean(wire_t *w)
{
    w->dirty = false;
    uv_idle_stop(&w->guard);
}

static void on_flush(uv_prepare_t *h)
{
    wire_t *w = h->data;
    if (!w->dirty)
        return;
    clean(w);
    if (w->ac)
        handle_write(w);
}

static void on_guard(uv_idle_t *h)
{
    (void)h; /* being active is its job; on_flush runs later in this turn */
}

static void add_read(void *priv)
{
    wire_t *w = priv;
    if (w->ac)
        set_events(w, w->events | UV_READABLE);
}

static void del_read(void *priv)
{
    wire_t *w = priv;
    if (w->ac)
        set_events(w, w->events & ~UV_READABLE);
}

static void add_write(void *priv)
{
    wire_t *w = priv;
    if (w->ac == NULL)
        return;
    if (w->writing || !(w->ac->c.flags & REDIS_CONNECTED))
        set_events(w, w->events | UV_WRITABLE); /* socket full, or connecting */
    else if (!(w->events & UV_WRITABLE) && !w->dirty) {
        w->dirty = true;
        uv_idle_start(&w->guard, on_guard);
    }
}

static void del_write(void *priv)
{
    wire_t *w = priv;
    if (w->ac == NULL)
        return;
    clean(w);
    set_events(w, w->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    wire_t *w = h->data;
    if (--w->open_handles == 0)
        free(w);
}

static void cleanup(void *priv)
{
    wire_t *w = priv;
    if (w->ac == NULL)
        return; /* called twice */
    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    uv_close((uv_handle_t *)&w->flush, on_closed);
    uv_close((uv_handle_t *)&w->guard, on_closed);
}

int wire_attach(struct redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return -1;
    wire_t *w = xcalloc(1, sizeof *w);
    if (uv_poll_init(loop, &w->poll, ac->c.fd) != 0) {
        free(w);
        return -1;
    }
    uv_prepare_init(loop, &w->flush);
    uv_idle_init(loop, &w->guard);
    uv_prepare_start(&w->flush, on_flush);
    uv_unref((uv_handle_t *)&w->flush);
    w->poll.data = w->flush.data = w->guard.data = w;
    w->open_handles = 3;
    w->ac = ac;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
