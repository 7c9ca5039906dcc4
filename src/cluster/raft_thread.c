/* The Raft thread and its two mailboxes (see raft_thread.h). The broker's calls wake the
 * thread through a uv_async_t; the thread's posts wake the broker's loop through an eventfd
 * watched by an ordinary libevent read event, so the broker's event base needs no locking of
 * its own (libevent's evthread locks would tax every event of every connection). Both wake-ups
 * coalesce: a woken side takes its whole mailbox, and the poster signals only when it finds
 * the mailbox empty. */
#include "config.h"

#include "raft_thread.h"

#include <errno.h>
#include <pthread.h>
#include <raft.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "warren/log.h"

struct cluster_mailbox {
    pthread_mutex_t lock;
    struct cluster_call *head, **tail; /* FIFO: calls run in the order they were posted */
};

struct cluster_thread {
    uv_loop_t loop;
    uv_async_t wake;                  /* the broker posted to to_raft */
    struct cluster_mailbox to_raft;   /* run on the Raft thread */
    struct cluster_mailbox to_broker; /* run on the broker's loop */
    int posted_fd;                    /* eventfd: the Raft thread posted to to_broker */
    struct event *on_posted;          /* owns; reads posted_fd on the broker's loop */
    pthread_t thread;
    bool started;
};

static void
mailbox_init(struct cluster_mailbox *mb)
{
    pthread_mutex_init(&mb->lock, NULL);
    mb->head = NULL;
    mb->tail = &mb->head;
}

/* Appends call; returns whether the mailbox was empty (the reader must be woken). */
static bool
mailbox_push(struct cluster_mailbox *mb, struct cluster_call *call)
{
    call->next = NULL;
    pthread_mutex_lock(&mb->lock);
    bool was_empty = mb->head == NULL;
    *mb->tail = call;
    mb->tail = &call->next;
    pthread_mutex_unlock(&mb->lock);
    return was_empty;
}

/* Takes every call and runs them in order. A call may free itself: its link is read first. */
static void
mailbox_run(struct cluster_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    struct cluster_call *call = mb->head;
    mb->head = NULL;
    mb->tail = &mb->head;
    pthread_mutex_unlock(&mb->lock);
    while (call != NULL) {
        struct cluster_call *next = call->next;
        call->fn(call);
        call = next;
    }
}

/* raft 0.15 writes buffers it allocated and did not fill entirely (padding in its
 * configuration and message encodings) to its log and to the other nodes (cowsql/raft, its
 * maintained fork, changed that to calloc later): a heap that zeroes raft's allocations keeps
 * stray bytes of this process's memory off the disk and the wire (and valgrind quiet).
 * realloc's growth is not zeroed: raft 0.15 writes none of it. */
static void *
raft_zeroed_malloc(void *data, size_t size)
{
    return calloc(1, size);
}

static void
raft_zeroed_free(void *data, void *ptr)
{
    free(ptr);
}

static void *
raft_zeroed_calloc(void *data, size_t nmemb, size_t size)
{
    return calloc(nmemb, size);
}

static void *
raft_zeroed_realloc(void *data, void *ptr, size_t size)
{
    return realloc(ptr, size);
}

static void *
raft_zeroed_aligned_alloc(void *data, size_t alignment, size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, alignment, size) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}

static void
raft_zeroed_aligned_free(void *data, size_t alignment, void *ptr)
{
    free(ptr);
}

static struct raft_heap raft_zeroed_heap = {
    .malloc = raft_zeroed_malloc,
    .free = raft_zeroed_free,
    .calloc = raft_zeroed_calloc,
    .realloc = raft_zeroed_realloc,
    .aligned_alloc = raft_zeroed_aligned_alloc,
    .aligned_free = raft_zeroed_aligned_free,
};

static void
thread_on_wake(uv_async_t *wake)
{
    struct cluster_thread *t = wake->data;
    mailbox_run(&t->to_raft);
}

/* The eventfd is drained before the mailbox is taken: a post that lands after the take
 * finds the mailbox empty and signals again, so no call waits for a later wake-up. */
static void
thread_on_posted(evutil_socket_t fd, short what, void *arg)
{
    struct cluster_thread *t = arg;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_msg(LOG_ERROR, "cluster: reading the Raft thread's eventfd: %s", strerror(errno));
    mailbox_run(&t->to_broker);
}

struct cluster_thread *
cluster_thread_new(struct event_base *base, char *err, size_t errlen)
{
    raft_heap_set(&raft_zeroed_heap); /* before raft allocates anything */
    struct cluster_thread *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "cluster: out of memory");
        return NULL;
    }
    t->posted_fd = -1;
    mailbox_init(&t->to_raft);
    mailbox_init(&t->to_broker);
    int rc = uv_loop_init(&t->loop);
    if (rc != 0) {
        snprintf(err, errlen, "cluster: cannot create the Raft loop: %s", uv_strerror(rc));
        free(t);
        return NULL;
    }
    if ((rc = uv_async_init(&t->loop, &t->wake, thread_on_wake)) != 0) {
        snprintf(err, errlen, "cluster: cannot create the Raft loop's wake-up: %s",
                 uv_strerror(rc));
        goto fail_loop;
    }
    t->wake.data = t;
    t->posted_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->posted_fd < 0) {
        snprintf(err, errlen, "cluster: eventfd: %s", strerror(errno));
        goto fail_async;
    }
    t->on_posted = event_new(base, t->posted_fd, EV_READ | EV_PERSIST, thread_on_posted, t);
    if (t->on_posted == NULL || event_add(t->on_posted, NULL) < 0) {
        snprintf(err, errlen, "cluster: cannot watch the Raft thread's eventfd");
        goto fail_async;
    }
    return t;

fail_async:
    if (t->on_posted != NULL)
        event_free(t->on_posted);
    if (t->posted_fd >= 0)
        close(t->posted_fd);
    uv_close((uv_handle_t *)&t->wake, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT); /* completes the close */
fail_loop:
    uv_loop_close(&t->loop);
    free(t);
    return NULL;
}

uv_loop_t *
cluster_thread_loop(struct cluster_thread *t)
{
    return &t->loop;
}

static void *
thread_main(void *arg)
{
    struct cluster_thread *t = arg;
    /* A write to a node that just went away raises SIGPIPE in the writing thread: here it
     * stays pending and the write fails with EPIPE, whatever the process does with it. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    return NULL;
}

int
cluster_thread_start(struct cluster_thread *t, char *err, size_t errlen)
{
    int rc = pthread_create(&t->thread, NULL, thread_main, t);
    if (rc != 0) {
        snprintf(err, errlen, "cluster: cannot start the Raft thread: %s", strerror(rc));
        return -1;
    }
    t->started = true;
    return 0;
}

void
cluster_thread_call(struct cluster_thread *t, struct cluster_call *call)
{
    if (mailbox_push(&t->to_raft, call))
        uv_async_send(&t->wake);
}

void
cluster_thread_post(struct cluster_thread *t, struct cluster_call *call)
{
    static const uint64_t one = 1;
    if (mailbox_push(&t->to_broker, call) && write(t->posted_fd, &one, sizeof(one)) < 0)
        log_msg(LOG_ERROR, "cluster: waking the broker's loop: %s", strerror(errno));
}

void
cluster_thread_finish(struct cluster_thread *t)
{
    uv_close((uv_handle_t *)&t->wake, NULL);
}

void
cluster_thread_free(struct cluster_thread *t)
{
    if (t == NULL)
        return;
    if (t->started)
        pthread_join(t->thread, NULL);
    else {
        cluster_thread_finish(t);
        uv_run(&t->loop, UV_RUN_DEFAULT);
    }
    mailbox_run(&t->to_broker);
    int rc = uv_loop_close(&t->loop);
    if (rc != 0)
        log_msg(LOG_ERROR, "cluster: the Raft loop still had handles at close: %s",
                uv_strerror(rc));
    event_free(t->on_posted);
    close(t->posted_fd);
    pthread_mutex_destroy(&t->to_raft.lock);
    pthread_mutex_destroy(&t->to_broker.lock);
    free(t);
}
