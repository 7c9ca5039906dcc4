/* tcp_floor: the lowest latency any broker can show on this machine at a fixed rate. A
 * producer thread sends 16-byte timestamps over loopback TCP to a relay process that only
 * reads and writes them on (epoll, TCP_NODELAY, as a broker's event loop does) to a consumer
 * thread, which records send-to-receive times. The same two wake-ups and two TCP hops as a
 * message through a broker, with no broker work at all: on a 2-vCPU VM the wake-ups of idle
 * vCPUs dominate, so this floor is what scenario 7 of bench/compare.py is bounded by.
 *
 *     tcp_floor [--rate MSGS_PER_S] [--duration SECONDS]
 *
 * Prints one JSON line: {"rate":...,"messages":...,"latency_us":{"p50":...,"p99":...,...}}. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "hist.h"

struct floor_run {
    int in_fd, out_fd; /* connected to the relay: producer side, consumer side */
    double rate;
    double duration;
    struct perf_hist hist; /* recorded by the consumer thread */
    uint64_t received;
    int err; /* errno of a failed thread, 0 if none */
};

static void
die(const char *what)
{
    fprintf(stderr, "tcp_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A listener on 127.0.0.1 with a port the kernel picks; *port gets it. */
static int
floor_listen(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    *port = ntohs(a.sin_port);
    return fd;
}

static void
floor_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        die("TCP_NODELAY");
}

/* Connects to 127.0.0.1:port (the listen backlog completes it before the relay accepts). */
static int
floor_connect(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    floor_nodelay(fd);
    return fd;
}

/* The relay process: whatever arrives from the producer goes to the consumer, until EOF. */
static void
floor_relay(int in_listener, int out_listener)
{
    int in = accept(in_listener, NULL, NULL);
    int out = accept(out_listener, NULL, NULL);
    if (in < 0 || out < 0)
        die("relay: accept");
    floor_nodelay(out);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = in};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev) < 0)
        die("relay: epoll");
    char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, &ev, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("relay: epoll_wait");
        ssize_t got = read(in, buf, sizeof buf);
        if (got == 0)
            _exit(0);
        if (got < 0)
            die("relay: read");
        for (ssize_t off = 0; off < got;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0)
                die("relay: write");
            off += w;
        }
    }
}

/* Sends rate timestamps a second for duration seconds, paced against the clock, the first
 * after 100 ms that let the relay reach its loop. */
static void *
floor_producer(void *arg)
{
    struct floor_run *r = arg;
    int fd = r->in_fd;
    uint64_t start = perf_now_ns() + 100000000u;
    uint64_t total = (uint64_t)(r->rate * r->duration);
    for (uint64_t i = 0; i < total; i++) {
        uint64_t due = start + (uint64_t)((double)i * 1e9 / r->rate);
        for (uint64_t now = perf_now_ns(); now < due; now = perf_now_ns()) {
            struct timespec ts = {.tv_sec = (time_t)((due - now) / 1000000000u),
                                  .tv_nsec = (long)((due - now) % 1000000000u)};
            nanosleep(&ts, NULL);
        }
        uint64_t msg[2] = {perf_now_ns(), i};
        if (send(fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
            r->err = errno != 0 ? errno : EIO;
            break;
        }
    }
    close(fd); /* the relay sees EOF and exits, then the consumer does */
    return NULL;
}

/* Records the latency of every timestamp until the relay closes. */
static void *
floor_consumer(void *arg)
{
    struct floor_run *r = arg;
    int fd = r->out_fd;
    uint8_t buf[16];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->err = errno;
            break;
        }
        have += (size_t)n;
        if (have == sizeof buf) {
            uint64_t sent;
            memcpy(&sent, buf, sizeof sent);
            perf_hist_record(&r->hist, perf_now_ns() - sent);
            r->received++;
            have = 0;
        }
    }
    close(fd);
    return NULL;
}

static double
floor_arg(int argc, char **argv, int *i)
{
    char *end;
    if (*i + 1 >= argc) {
        fprintf(stderr, "tcp_floor: %s needs a value\n", argv[*i]);
        exit(2);
    }
    double v = strtod(argv[++*i], &end);
    if (*end != '\0' || !(v > 0)) {
        fprintf(stderr, "tcp_floor: %s: not a positive number: %s\n", argv[*i - 1], argv[*i]);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static struct floor_run r = {.rate = 1000, .duration = 10};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rate") == 0) {
            r.rate = floor_arg(argc, argv, &i);
        } else if (strcmp(argv[i], "--duration") == 0) {
            r.duration = floor_arg(argc, argv, &i);
        } else {
            fprintf(stderr, "usage: tcp_floor [--rate MSGS_PER_S] [--duration SECONDS]\n");
            return 2;
        }
    }

    uint16_t in_port, out_port;
    int in_listener = floor_listen(&in_port);
    int out_listener = floor_listen(&out_port);
    pid_t relay = fork();
    if (relay < 0)
        die("fork");
    if (relay == 0)
        floor_relay(in_listener, out_listener);
    close(in_listener);
    close(out_listener);
    r.in_fd = floor_connect(in_port);
    r.out_fd = floor_connect(out_port);

    pthread_t prod, cons;
    if (pthread_create(&cons, NULL, floor_consumer, &r) != 0 ||
        pthread_create(&prod, NULL, floor_producer, &r) != 0) {
        kill(relay, SIGKILL);
        die("pthread_create");
    }
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    int status;
    if (waitpid(relay, &status, 0) < 0)
        die("waitpid");
    if (r.err != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tcp_floor: failed: %s\n",
                r.err != 0 ? strerror(r.err) : "the relay did not exit cleanly");
        return 1;
    }
    printf("{\"rate\":%.0f,\"messages\":%llu,\"latency_us\":{\"p50\":%.1f,\"p95\":%.1f,"
           "\"p99\":%.1f,\"max\":%.1f}}\n",
           r.rate, (unsigned long long)r.received, perf_hist_percentile(&r.hist, 50) / 1e3,
           perf_hist_percentile(&r.hist, 95) / 1e3, perf_hist_percentile(&r.hist, 99) / 1e3,
           perf_hist_max(&r.hist) / 1e3);
    return 0;
}
