/* warren-perf: a load generator for AMQP 0-9-1 brokers, like RabbitMQ's PerfTest. Producer
 * and consumer threads each own a connection (client.c); main.c declares the queues (topo.c),
 * starts the threads together, prints a progress line per second and a final JSON line
 * (report.c). This header holds what the threads share: the options, the run's state, and
 * one worker's counters, which its thread writes and the main thread reads (relaxed atomics:
 * the figures are statistics, and each has one writer). */
#ifndef WARREN_PERF_H
#define WARREN_PERF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define PERF_NAME_MAX 256 /* AMQP shortstrs: 255 bytes and a NUL */
#define PERF_MIN_SIZE 16  /* a body carries a send timestamp and a sequence number */
#define PERF_QUEUE_ARGS_MAX 16

/* --queue-arg KEY=VALUE: a queue.declare argument, a signed 64-bit integer when VALUE reads
 * as one, else a string. */
struct perf_queue_arg {
    char key[PERF_NAME_MAX];
    char str[PERF_NAME_MAX];
    bool is_int;
    int64_t num;
};

struct perf_opts {
    char host[PERF_NAME_MAX];
    uint16_t port;
    char user[PERF_NAME_MAX], password[PERF_NAME_MAX], vhost[PERF_NAME_MAX];
    uint32_t producers, consumers, queues;
    uint32_t size;         /* body bytes */
    uint32_t prefetch;     /* basic.qos prefetch-count; 0 = none */
    uint32_t multiple_ack; /* manual acks: one basic.ack (multiple) per this many messages */
    uint32_t confirm;      /* publisher confirms: at most this many unconfirmed; 0 = off */
    bool auto_ack, persistent, keep_queues;
    bool tls;         /* AMQP over TLS (amqps); the server's certificate is not checked */
    bool churn;       /* producers open and close connections in a loop instead of publishing */
    char prefix[200]; /* queue i is "<prefix>-<i>" */
    char exchange[PERF_NAME_MAX];    /* "" = the default exchange */
    char exchange_type[16];          /* direct, fanout, topic ("" with the default exchange) */
    char routing_key[PERF_NAME_MAX]; /* "" = each producer's queue name */
    char binding_key[PERF_NAME_MAX]; /* "" = the routing key, or each queue's name */
    double rate;                     /* per producer, msgs/s; 0 = unlimited */
    double duration;                 /* seconds; 0 = count or backlog mode */
    uint64_t count;                  /* messages to publish in all; 0 = duration mode */
    uint64_t backlog;                /* publish this many, then drain them; 0 = off */
    struct perf_queue_arg queue_args[PERF_QUEUE_ARGS_MAX]; /* declare arguments of queue i */
    unsigned n_queue_args;
    bool dead_letter;    /* queue i dead-letters to PREFIX-dlx, routed to PREFIX-dead-i */
    uint32_t priorities; /* each message a random priority below this; 0 = none */
    double expire_at;    /* Unix time (s) when every message expires (expiration); 0 = none */
};

/* Parses argv into o (exits on --help, --version, or a usage error). */
void perf_opts_parse(struct perf_opts *o, int argc, char **argv);
/* Writes o as the members of a JSON object: "producers":1,... */
void perf_opts_json(const struct perf_opts *o, FILE *out);

struct perf_run;

/* One producer or consumer thread. */
struct perf_worker {
    pthread_t thread;
    struct perf_run *run; /* borrows */
    unsigned id;
    bool producer;
    bool started;              /* its thread was created (and must be joined) */
    char name[32];             /* "producer 0" */
    char queue[PERF_NAME_MAX]; /* the queue it publishes to or consumes */
    char rkey[PERF_NAME_MAX];  /* producer: its routing key */
    uint64_t quota;            /* producer: messages to publish; 0 = until stopped */
    atomic_bool go;            /* set by the main thread once every worker is ready */
    atomic_bool done;          /* producer: quota published and confirmed */
    atomic_bool exited;        /* its thread is about to return */
    _Atomic uint64_t sent, confirmed, nacked, received;
    _Atomic uint64_t priority_rises; /* consumer: deliveries of a higher priority than the last */
    _Atomic uint64_t first_ns, last_ns; /* its first and latest publish or delivery */
    struct perf_hist hist;              /* ns: publish to delivery (consumer), to ack (producer) */
    char err[600];                      /* why it failed (set before run->failures++) */
};

struct perf_run {
    const struct perf_opts *opts;
    atomic_bool stop_producers, stop_consumers;
    atomic_bool cancel; /* workers waiting to start give up (they still close politely) */
    atomic_bool abort;  /* tear down now: connections stop waiting, no polite close */
    atomic_int failures;
    pthread_mutex_t mu; /* with cv: the start barrier */
    pthread_cond_t cv;
    unsigned ready; /* workers done with their setup (or failed at it) */
    struct perf_worker *workers;
    unsigned nworkers;
};

/* Thread bodies. Each reports an error in w->err and bumps run->failures. */
void *perf_producer_main(void *arg);
void *perf_consumer_main(void *arg);
/* Called by a worker after its setup: counts it ready and waits for the go. ok=false reports
 * a failed setup. Returns 0 to proceed, -1 when the run was cancelled before it started. */
int perf_worker_ready(struct perf_worker *w, bool ok);
/* Records a worker's failure: w->err = "<name>: <err>", then run->failures++ (the main
 * thread then stops the run). */
void perf_worker_fail(struct perf_worker *w, const char *err);

/* Queue i's name: the queue producers publish to. */
void perf_queue_name(const struct perf_opts *o, unsigned i, char *buf, size_t cap);
/* The queue consumer i reads: queue i, or with --dead-letter its dead-letter queue. */
void perf_consumed_queue_name(const struct perf_opts *o, unsigned i, char *buf, size_t cap);
/* The exchange producers publish to ("" = default). */
const char *perf_exchange(const struct perf_opts *o);
/* Whether every queue receives every message (fanout, or one routing key for all). */
bool perf_routes_all(const struct perf_opts *o);

/* topo.c: the setup connection declares the exchange, queues and bindings (and with
 * --dead-letter the dead-letter exchange and queues), polls the depths of the queues the
 * consumers read for the backlog mode, and deletes what it declared at the end. */
struct perf_conn;
int perf_topo_setup(struct perf_conn *c, const struct perf_opts *o);
int perf_topo_depth(struct perf_conn *c, const struct perf_opts *o, uint64_t *total);
int perf_topo_teardown(struct perf_conn *c, const struct perf_opts *o);

#endif
