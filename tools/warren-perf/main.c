/* warren-perf's main thread: parses the options, declares the queues, starts the producer and
 * consumer threads together (each connects and sets up first, then all are released at once,
 * so connection setup is not timed), watches the run (a progress line per second, the end
 * condition of the mode), stops the threads, deletes the queues and prints the results.
 *
 * Modes: --duration S stops everyone after S seconds. --count N stops when the producers have
 * published (and, with confirms, had confirmed) N messages and the consumers have received
 * the copies the topology routes to them. --backlog N publishes N with no consumer running,
 * waits until the queues hold them, then starts the consumers and times the drain.
 *
 * Exit status: 0, 1 when a connection failed or the server closed a channel or connection
 * (the reply code and text are printed), or fewer messages arrived than were expected, 2 for
 * a usage error, 130 after SIGINT/SIGTERM (the results so far are still printed). */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "perf.h"
#include "report.h"

#define TICK_MS 10
#define IDLE_TIMEOUT_NS (5 * 1000000000ull)  /* count/backlog: give up waiting after this */
#define JOIN_TIMEOUT_NS (15 * 1000000000ull) /* then connections are abandoned */

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

/* ---- the start barrier ---- */

int
perf_worker_ready(struct perf_worker *w, bool ok)
{
    struct perf_run *run = w->run;
    pthread_mutex_lock(&run->mu);
    run->ready++;
    pthread_cond_broadcast(&run->cv);
    while (ok && !atomic_load(&w->go) && !atomic_load(&run->cancel))
        pthread_cond_wait(&run->cv, &run->mu);
    pthread_mutex_unlock(&run->mu);
    return ok && atomic_load(&w->go) ? 0 : -1;
}

void
perf_worker_fail(struct perf_worker *w, const char *err)
{
    snprintf(w->err, sizeof w->err, "%s: %s", w->name, err);
    atomic_fetch_add(&w->run->failures, 1);
}

static void
run_cancel(struct perf_run *run)
{
    atomic_store(&run->stop_producers, true);
    atomic_store(&run->stop_consumers, true);
    pthread_mutex_lock(&run->mu);
    atomic_store(&run->cancel, true);
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Starts the threads of workers [from, to), waits until each is set up, then releases them
 * all at once. Returns 0 and *t0 = the release time, or -1 (failure or interrupt). */
static int
run_start(struct perf_run *run, unsigned from, unsigned to, uint64_t *t0)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to the main thread */
    for (unsigned i = from; i < to; i++) {
        struct perf_worker *w = &run->workers[i];
        if (pthread_create(&w->thread, NULL, w->producer ? perf_producer_main : perf_consumer_main,
                           w) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            fprintf(stderr, "warren-perf: cannot create a thread\n");
            return -1;
        }
        w->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    pthread_mutex_lock(&run->mu);
    while (run->ready < to && !interrupted) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&run->cv, &run->mu, &ts);
    }
    bool ok = !interrupted && atomic_load(&run->failures) == 0;
    if (ok) {
        *t0 = perf_now_ns();
        for (unsigned i = from; i < to; i++)
            atomic_store(&run->workers[i].go, true);
        pthread_cond_broadcast(&run->cv);
    }
    pthread_mutex_unlock(&run->mu);
    return ok ? 0 : -1;
}

/* Stops every thread and joins them; connections that do not close within JOIN_TIMEOUT_NS
 * are abandoned. */
static void
run_join(struct perf_run *run)
{
    uint64_t deadline = perf_now_ns() + JOIN_TIMEOUT_NS;
    run_cancel(run);
    for (unsigned i = 0; i < run->nworkers; i++) {
        struct perf_worker *w = &run->workers[i];
        if (!w->started)
            continue;
        while (!atomic_load(&w->exited) && !atomic_load(&run->abort)) {
            if (perf_now_ns() >= deadline) {
                fprintf(stderr, "warren-perf: %s did not finish in time: dropping connections\n",
                        w->name);
                atomic_store(&run->abort, true);
            }
            sleep_ms(10);
        }
        pthread_join(w->thread, NULL);
    }
}

/* ---- what to expect ---- */

static uint64_t
quota(uint64_t total, unsigned n, unsigned i)
{
    return total / n + (i < total % n ? 1 : 0);
}

/* Deliveries the consumers should see in all when producers publish `total` messages. */
static uint64_t
expected_deliveries(const struct perf_opts *o, uint64_t total)
{
    unsigned consumed = o->consumers < o->queues ? o->consumers : o->queues;
    uint64_t n = 0;
    if (o->producers == 0)
        return total; /* consume-only: stop after `total` deliveries */
    for (unsigned p = 0; p < o->producers; p++) {
        uint64_t q = quota(total, o->producers, p);
        if (perf_routes_all(o))
            n += q * consumed;
        else if (p % o->queues < consumed)
            n += q;
    }
    return n;
}

/* Messages the queues hold after the producers published `total`. */
static uint64_t
expected_queued(const struct perf_opts *o, uint64_t total)
{
    return perf_routes_all(o) ? total * o->queues : total;
}

/* ---- watching the run ---- */

enum phase {
    PHASE_DURATION = 0, /* until the time is up */
    PHASE_COUNT,        /* until producers are done and consumers have it all */
    PHASE_PUBLISH,      /* backlog: until the producers are done */
    PHASE_DRAIN,        /* backlog: until the consumers have it all */
};

static bool
producers_done(const struct perf_run *run)
{
    for (unsigned i = 0; i < run->nworkers; i++)
        if (run->workers[i].producer && !atomic_load(&run->workers[i].done))
            return false;
    return true;
}

/* Prints progress until the phase ends. Returns 0, or -1 on failure or interrupt. */
static int
run_watch(struct perf_run *run, struct perf_progress *pg, enum phase ph, uint64_t t0,
          uint64_t expected)
{
    const struct perf_opts *o = run->opts;
    uint64_t next_tick = pg->last_ns + 1000000000u, last_change = perf_now_ns(), last_recv = 0;
    for (bool first = true;; first = false) {
        if (!first)
            sleep_ms(TICK_MS);
        if (interrupted || atomic_load(&run->failures) > 0)
            return -1;
        uint64_t now = perf_now_ns();
        if (now >= next_tick) {
            perf_progress_tick(pg, run, now);
            next_tick += 1000000000u;
            if (next_tick <= now)
                next_tick = now + 1000000000u;
        }
        struct perf_totals t;
        perf_totals_sum(run, &t);
        if (t.received != last_recv) {
            last_recv = t.received;
            last_change = now;
        }
        switch (ph) {
        case PHASE_DURATION:
            if (now - t0 >= (uint64_t)(o->duration * 1e9))
                return 0;
            break;
        case PHASE_PUBLISH:
            if (producers_done(run))
                return 0;
            break;
        case PHASE_COUNT:
        case PHASE_DRAIN:
            if (!producers_done(run))
                break;
            if (o->consumers == 0 || t.received >= expected)
                return 0;
            if (now - last_change >= IDLE_TIMEOUT_NS) {
                fprintf(stderr,
                        "warren-perf: received %llu of the %llu messages expected; nothing "
                        "arrived for %llu s, giving up\n",
                        (unsigned long long)t.received, (unsigned long long)expected,
                        IDLE_TIMEOUT_NS / 1000000000u);
                return 0;
            }
            break;
        }
    }
}

/* Backlog mode: waits until the queues hold what was published (with confirms they do at
 * once; without, the last messages may still be on their way). */
static int
wait_backlog(struct perf_run *run, struct perf_conn *c, uint64_t want, uint64_t *ready_ns)
{
    uint64_t depth = 0, last = UINT64_MAX, since = perf_now_ns();
    for (;;) {
        if (perf_topo_depth(c, run->opts, &depth) < 0) {
            fprintf(stderr, "warren-perf: reading queue depths: %s\n", c->err);
            atomic_fetch_add(&run->failures, 1);
            return -1;
        }
        uint64_t now = perf_now_ns();
        *ready_ns = now;
        if (depth >= want || interrupted)
            break;
        if (depth != last) {
            last = depth;
            since = now;
        } else if (now - since >= IDLE_TIMEOUT_NS) {
            fprintf(stderr,
                    "warren-perf: the queues hold %llu of the %llu messages published; "
                    "draining those\n",
                    (unsigned long long)depth, (unsigned long long)want);
            break;
        }
        sleep_ms(5);
    }
    return 0;
}

/* ---- setup and teardown ---- */

static int
topo(struct perf_run *run, bool setup, char *server, size_t cap)
{
    struct perf_conn c;
    if (perf_conn_open(&c, run->opts, "setup", NULL) < 0) {
        fprintf(stderr, "warren-perf: %s\n", c.err);
        return -1;
    }
    if (server != NULL)
        snprintf(server, cap, "%s", c.server);
    int rc = setup ? perf_topo_setup(&c, run->opts) : perf_topo_teardown(&c, run->opts);
    if (rc < 0)
        fprintf(stderr, "warren-perf: %s: %s\n",
                setup ? "declaring queues and exchange" : "deleting queues and exchange", c.err);
    perf_conn_close(&c, PERF_RPC_TIMEOUT_MS);
    return rc;
}

static void
workers_init(struct perf_run *run, const struct perf_opts *o)
{
    uint64_t total = o->backlog ? o->backlog : o->count;
    run->nworkers = o->producers + o->consumers;
    run->workers = calloc(run->nworkers, sizeof *run->workers);
    if (run->workers == NULL) {
        fprintf(stderr, "warren-perf: out of memory\n");
        exit(1);
    }
    for (unsigned i = 0; i < run->nworkers; i++) {
        struct perf_worker *w = &run->workers[i];
        w->run = run;
        w->producer = i < o->producers;
        w->id = w->producer ? i : i - o->producers;
        snprintf(w->name, sizeof w->name, "%s %u", w->producer ? "producer" : "consumer", w->id);
        if (w->producer)
            perf_queue_name(o, w->id % o->queues, w->queue, sizeof w->queue);
        else
            perf_consumed_queue_name(o, w->id % o->queues, w->queue, sizeof w->queue);
        if (w->producer) {
            snprintf(w->rkey, sizeof w->rkey, "%s", o->routing_key[0] ? o->routing_key : w->queue);
            w->quota = total ? quota(total, o->producers, w->id) : 0;
        }
        perf_hist_reset(&w->hist);
    }
}

int
main(int argc, char **argv)
{
    struct perf_opts o;
    struct perf_run run = {.opts = &o};
    struct perf_result res = {0};
    struct perf_progress pg;
    struct perf_conn depth_conn = {.fd = -1};
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    int rc = 0;

    perf_opts_parse(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    workers_init(&run, &o);

    if (topo(&run, true, res.server, sizeof res.server) < 0) {
        free(run.workers);
        return 1;
    }
    uint64_t total = o.backlog ? o.backlog : o.count;
    res.expected = total ? expected_deliveries(&o, total) : 0;
    if (o.backlog) {
        /* Opened now, so that seeing the queues full does not wait for a handshake. */
        if (perf_conn_open(&depth_conn, &o, "setup", &run.abort) < 0) {
            fprintf(stderr, "warren-perf: %s\n", depth_conn.err);
            atomic_fetch_add(&run.failures, 1);
            goto stop;
        }
        if (run_start(&run, 0, o.producers, &res.t0_ns) < 0)
            goto stop;
        perf_progress_init(&pg, &run, res.t0_ns);
        if (run_watch(&run, &pg, PHASE_PUBLISH, res.t0_ns, 0) < 0 ||
            wait_backlog(&run, &depth_conn, expected_queued(&o, total), &res.ready_ns) < 0 ||
            run_start(&run, o.producers, run.nworkers, &res.drain_ns) < 0 ||
            run_watch(&run, &pg, PHASE_DRAIN, res.drain_ns, res.expected) < 0)
            goto stop_pg;
    } else {
        if (run_start(&run, 0, run.nworkers, &res.t0_ns) < 0)
            goto stop;
        perf_progress_init(&pg, &run, res.t0_ns);
        if (run_watch(&run, &pg, o.duration > 0 ? PHASE_DURATION : PHASE_COUNT, res.t0_ns,
                      res.expected) < 0)
            goto stop_pg;
    }
stop_pg:
    res.end_ns = perf_now_ns();
    perf_progress_free(&pg);
stop:
    if (res.end_ns == 0)
        res.end_ns = perf_now_ns();
    run_join(&run);
    perf_conn_close(&depth_conn, PERF_RPC_TIMEOUT_MS);
    res.interrupted = interrupted;
    if (topo(&run, false, NULL, 0) < 0)
        rc = 1;
    if (atomic_load(&run.failures) > 0) {
        for (unsigned i = 0; i < run.nworkers; i++)
            if (run.workers[i].err[0])
                fprintf(stderr, "warren-perf: %s\n", run.workers[i].err);
        rc = 1;
    } else if (res.t0_ns != 0) {
        struct perf_totals t;
        perf_report(&run, &res, stdout);
        perf_totals_sum(&run, &t);
        if (!interrupted && o.consumers > 0 && res.expected > 0 && t.received < res.expected) {
            fprintf(stderr, "warren-perf: received %llu messages, expected %llu\n",
                    (unsigned long long)t.received, (unsigned long long)res.expected);
            rc = 1;
        }
        if (interrupted)
            rc = 130;
    } else if (interrupted) {
        rc = 130;
    }
    free(run.workers);
    return rc;
}
