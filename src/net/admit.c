/* Admission: the work done for connections that are not open yet (accepting them, their TLS
 * handshake, the AMQP handshake and login) is bounded per loop turn, so that established
 * connections are served between batches of it.
 *
 * libevent runs every event that the last poll found ready before it polls again. Without a
 * bound, 500 clients whose ClientHellos arrive together cost one loop turn 500 signatures
 * (0.4 s of CPU, seconds on a loaded machine or under ASan), and a client already connected
 * waits for all of them; likewise the listener, which accepts until accept() runs dry, ran
 * for as long as clients kept connecting. Here:
 *
 *   - A connection not open yet whose socket is readable is read at once only if no other
 *     has been since the last admission turn; otherwise it waits in admit_queue (its socket
 *     not polled meanwhile). admit_ev, a zero-timeout timer, runs the admission turn after
 *     the next poll, that is after the established connections that poll found ready: it
 *     reads the waiting connections in the order they became readable, for up to
 *     SERVER_ADMIT_BUDGET_US, and comes again in the next turn if it read any (those left
 *     and those becoming readable meanwhile wait for it, in order). Each admission turn
 *     reads at least one, so none waits for ever, however busy the broker.
 *   - Accepting stops for the rest of the turn after SERVER_ADMIT_BUDGET_US (the listeners
 *     are off until the admission turn turns them on again).
 *
 * Deadlines are unchanged: a waiting connection's handshake timer runs as before, and a
 * connection closed while it waits leaves the queue (server_admit_forget). Event priorities
 * would have done the ordering without a queue, but a broker kept busy by its established
 * connections would then never get to the new ones. */
#include "config.h"

#include <time.h>

#include <event2/event.h>

#include "net_int.h"
#include "warren/assert.h"

/* Monotonic microseconds. */
static uint64_t
server_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Makes sure an admission turn follows the next poll. 0, or -1 if it cannot be scheduled
 * (ENOMEM): then nothing waits for it. */
static int
server_admit_schedule(struct net_server *s)
{
    static const struct timeval now = {0, 0};
    /* Not re-added when pending: a timer made active again would lose its place behind the
     * sockets this turn's poll found ready. */
    return evtimer_pending(s->admit_ev, NULL) ? 0 : evtimer_add(s->admit_ev, &now);
}

/* The admission turn: reads waiting connections for up to SERVER_ADMIT_BUDGET_US, at least
 * one, in order; ends the accepting budget's turn; comes again in the next turn if it had
 * anything to do (so that connections becoming readable meanwhile queue behind the ones
 * left). */
static void
server_admit_turn(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    uint64_t start = server_now_us();
    bool worked = false;
    struct conn *c;
    while ((c = TAILQ_FIRST(&s->admit_queue)) != NULL &&
           (!worked || server_now_us() - start < SERVER_ADMIT_BUDGET_US)) {
        TAILQ_REMOVE(&s->admit_queue, c, admit_link);
        worked = true;
        conn_admitted(c);
    }
    s->accept_since_us = 0;
    if (s->accept_deferred) {
        s->accept_deferred = false;
        server_listeners_resume(s);
    }
    if (worked && server_admit_schedule(s) < 0) {
        /* No turn to wait for: whatever waits is read now. */
        while ((c = TAILQ_FIRST(&s->admit_queue)) != NULL) {
            TAILQ_REMOVE(&s->admit_queue, c, admit_link);
            conn_admitted(c);
        }
    }
}

int
server_admit_init(struct net_server *s)
{
    TAILQ_INIT(&s->admit_queue);
    s->admit_ev = evtimer_new(s->env.base, server_admit_turn, s);
    return s->admit_ev != NULL ? 0 : -1;
}

bool
server_admit_defer(struct conn *c)
{
    struct net_server *s = c->server;
    WR_ASSERT(!c->admit_waiting); /* not polled while it waits */
    if (!evtimer_pending(s->admit_ev, NULL)) {
        /* The first since the last admission turn: read now (a lone client waits for
         * nothing), and the next ones wait for that turn. */
        server_admit_schedule(s);
        return false;
    }
    TAILQ_INSERT_TAIL(&s->admit_queue, c, admit_link);
    conn_admit_wait(c);
    return true;
}

void
server_admit_forget(struct net_server *s, struct conn *c)
{
    if (!c->admit_waiting)
        return;
    TAILQ_REMOVE(&s->admit_queue, c, admit_link);
    c->admit_waiting = false;
}

bool
server_admit_accepting(struct net_server *s)
{
    uint64_t now = server_now_us();
    if (s->accept_since_us == 0) {
        s->accept_since_us = now;
        server_admit_schedule(s);
    }
    /* Without an admission turn to come, nothing would turn the listeners on again. */
    if (now - s->accept_since_us < SERVER_ADMIT_BUDGET_US || !evtimer_pending(s->admit_ev, NULL))
        return false;
    s->accept_deferred = true;
    return true;
}
