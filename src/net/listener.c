/* The server object: listening sockets and what they do when accept() fails (at the
 * file-descriptor limit), the set of live connections, the reaper that frees dead connections
 * outside their own callbacks (as redis freeClientAsync), shutdown, the server-properties table
 * sent in every connection.start, the TLS context of the amqps listeners (made at start, remade
 * on SIGHUP), and the resource alarms that block publishers: memory (vm_memory_high_watermark)
 * and free disk space (disk_free_limit). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "forward.h"
#include "net_int.h"
#include "quorum.h"
#include "relay.h"
#include "topology.h"
#include "warren/assert.h"
#include "warren/conf.h"
#include "warren/msg.h"
#include "warren/stats.h"
#include "warren/tls.h"
#include "warren/vhost.h"

/* The listen() backlog: connections the kernel completes before we accept them, capped by
 * net.core.somaxconn. RabbitMQ 3.10 defaults to 128 (tcp_listen_options.backlog) and its
 * networking guide tells servers with many clients to raise it: with 1024, that many clients
 * reconnecting at once (after a restart) wait for accept() instead of having their SYNs
 * dropped and retried only a second or more later. */
#define SERVER_LISTEN_BACKLOG 1024
/* After accept() fails, every listener pauses: SERVER_ACCEPT_PAUSE_MIN_MS, doubling while it
 * keeps failing up to SERVER_ACCEPT_PAUSE_MAX_MS (RabbitMQ's acceptors sleep 100 ms on
 * EMFILE). Long enough that the loop does not spin, short enough that a freed descriptor
 * is used soon. */
#define SERVER_ACCEPT_PAUSE_MIN_MS 100
#define SERVER_ACCEPT_PAUSE_MAX_MS 1000
/* While accept() keeps failing, a line says so at most this often (milliseconds). */
#define SERVER_ACCEPT_LOG_MS 10000

void
net_default_cluster_name(const struct conf *conf, char *buf, size_t cap)
{
    if (conf->cluster_name != NULL && conf->cluster_name[0] != '\0') {
        snprintf(buf, cap, "%s", conf->cluster_name);
        return;
    }
    struct conf_node first; /* in a cluster, the same on every node: the first one listed */
    char err[128];
    if (conf->cluster_nodes.n > 0 &&
        conf_node_parse(conf->cluster_nodes.items[0], true, &first, err, sizeof(err)) == 0) {
        snprintf(buf, cap, "%s@%s", first.name, first.host);
        return;
    }
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
        strcpy(host, "localhost");
    snprintf(buf, cap, "%.*s@%s", (int)strcspn(conf->nodename, "@"), conf->nodename, host);
}

/* Encodes the server-properties table for connection.start into s->server_props (replacing
 * the one there): what RabbitMQ clients look for, the capabilities table deciding which
 * extensions they use. cluster_name: the cluster's name, or NULL for the default
 * (net_default_cluster_name). Returns 0, or
 * -1 on ENOMEM with the table there before kept. */
static int
server_build_props(struct net_server *s, const char *cluster_name)
{
    static const char *const caps[] = {
        "publisher_confirms",           "exchange_exchange_bindings", "basic.nack",
        "consumer_cancel_notify",       "connection.blocked",         "consumer_priorities",
        "authentication_failure_close", "per_consumer_qos",           "direct_reply_to",
    };
    char cluster[300], platform[200] = "Linux";
    struct utsname un;
    if (uname(&un) == 0)
        snprintf(platform, sizeof(platform), "%s %s (C11, libevent)", un.sysname, un.machine);
    if (cluster_name == NULL) {
        net_default_cluster_name(s->env.conf, cluster, sizeof(cluster));
        cluster_name = cluster;
    }

    size_t cap = 2048 + strlen(cluster_name); /* the name is the only field of any length */
    uint8_t *props = malloc(cap);
    if (props == NULL)
        return -1;
    struct wire_writer w;
    wire_writer_init(&w, props, cap);
    size_t m = wire_table_put_table_begin(&w, "capabilities");
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        wire_table_put_bool(&w, caps[i], true);
    wire_table_put_table_end(&w, m);
    wire_table_put_longstr(&w, "cluster_name",
                           (struct wire_str){(const uint8_t *)cluster_name, strlen(cluster_name)});
    wire_table_put_longstr(&w, "copyright", WIRE_STR_LIT("Copyright (c) 2026 the Warren authors"));
    wire_table_put_longstr(&w, "information", WIRE_STR_LIT("Warren, an AMQP 0-9-1 message broker"));
    wire_table_put_longstr(&w, "platform",
                           (struct wire_str){(const uint8_t *)platform, strlen(platform)});
    wire_table_put_longstr(&w, "product", WIRE_STR_LIT("Warren"));
    wire_table_put_longstr(&w, "version", WIRE_STR_LIT(PACKAGE_VERSION));
    WR_ASSERT(!w.overflow);
    free(s->server_props);
    s->server_props = props;
    s->server_props_len = (uint32_t)wire_writer_len(&w);
    return 0;
}

int
net_server_set_cluster_name(struct net_server *s, const char *name)
{
    if (server_build_props(s, name) < 0) {
        log_msg(LOG_ERROR, "out of memory: connection.start keeps the cluster name it had");
        return -1;
    }
    return 0;
}

/* Bytes the memory alarm counts: message bodies and properties, and connections' output. */
static uint64_t
server_memory_used(const struct net_server *s)
{
    uint64_t used = msg_bytes_live;
    const struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link)
        used += conn_output_len(c);
    return used;
}

const char *
server_alarm_reason(const struct net_server *s)
{
    bool memory = s->memory_alarm || (s->remote_alarms & NET_ALARM_MEMORY);
    bool disk = s->disk_alarm || (s->remote_alarms & NET_ALARM_DISK);
    if (memory && disk)
        return "low on memory & disk";
    return disk ? "low on disk" : "low on memory";
}

/* An alarm went on or off: while any is on, every connection that has published is blocked;
 * once none is, they are unblocked. As in RabbitMQ, a blocked connection gets one
 * connection.blocked (a second alarm adds none) and connection.unblocked when the last clears. */
void
server_alarms_apply(struct net_server *s)
{
    bool on = server_publishers_blocked(s);
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link) {
        if (on && c->publisher)
            conn_block(c);
        else if (!on && c->blocked)
            conn_unblock(c);
    }
}

/* What publishers do now that an alarm cleared, for its log line. */
static const char *
server_alarm_cleared_outcome(const struct net_server *s)
{
    if (s->memory_alarm)
        return "publishers stay blocked by the memory alarm";
    if (s->disk_alarm)
        return "publishers stay blocked by the disk alarm";
    if (s->remote_alarms != 0)
        return "publishers stay blocked by another node's alarm";
    return "publishers resume";
}

static void
server_memory_alarm(struct net_server *s, bool on, uint64_t used)
{
    s->memory_alarm = on;
    if (on)
        log_msg(LOG_WARNING,
                "memory alarm set: %llu bytes in messages and output buffers, above "
                "vm_memory_high_watermark (%llu bytes): publishing connections are blocked",
                (unsigned long long)used, (unsigned long long)s->memory_limit);
    else
        log_msg(LOG_INFO, "memory alarm cleared: %llu bytes used, limit %llu: %s",
                (unsigned long long)used, (unsigned long long)s->memory_limit,
                server_alarm_cleared_outcome(s));
    server_alarms_apply(s);
    net_alarms_local_changed(s);
}

void
server_memory_check_fast(struct net_server *s)
{
    if (!s->memory_alarm && msg_bytes_live > s->memory_limit)
        server_memory_alarm(s, true, msg_bytes_live);
    else if (s->disk_alarm) {
        /* The message came from a connection not blocked yet, so one publishing for the first
         * time: only blocked connections have published before, and they are not read. */
        server_alarms_apply(s);
    }
}

/* Four times a second: messages are freed by acks and output drains without telling anyone,
 * so clearing the alarm (and raising it for output growth) is found by looking. */
static void
server_memory_tick(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    /* A blocked connection is not read, so its peer hanging up goes unseen: what the dead
     * client held would keep the alarm on for good. */
    if (server_publishers_blocked(s)) {
        struct conn *c;
        TAILQ_FOREACH(c, &s->conns, link)
            conn_blocked_check_peer(c);
    }
    uint64_t used = server_memory_used(s);
    if (s->memory_alarm != (used > s->memory_limit))
        server_memory_alarm(s, !s->memory_alarm, used);
    /* After a backlog drains, give its memory back to the system: glibc keeps freed message
     * buffers in its heap otherwise, and the broker's RSS would stay at its high-water mark. */
    if (msg_bytes_live > s->memory_peak)
        s->memory_peak = msg_bytes_live;
    else if (s->memory_peak - msg_bytes_live > SERVER_TRIM_AFTER_FREED) {
        malloc_trim(0);
        s->memory_peak = msg_bytes_live;
    }
}

/* Every collect_statistics_interval: the message rates of the objects that changed, over the
 * time that really passed (a busy loop fires the timer late). */
static void
server_stats_tick(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    uint64_t now = server_now_ms();
    uint64_t ms = now > s->stats_sampled_ms ? now - s->stats_sampled_ms : 1;
    stats_sample(ms);
    /* Connections' socket rates: a getsockopt each, the kernel keeping the counters. */
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link)
        conn_io_sample(c, (double)ms / 1000.0);
    s->stats_sampled_ms = now;
}

static uint64_t
server_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Arms the lag probe SERVER_LAG_PROBE_MS from now. */
static int
server_lag_arm(struct net_server *s)
{
    struct timeval tv = {0, SERVER_LAG_PROBE_MS * 1000};
    s->lag_due_us = server_now_us() + SERVER_LAG_PROBE_MS * 1000;
    return evtimer_add(s->lag_ev, &tv);
}

static void
server_lag_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct net_server *s = arg;
    uint64_t now = server_now_us();
    stats_hist_observe(&s->lag_us, now > s->lag_due_us ? now - s->lag_due_us : 0);
    if (server_lag_arm(s) < 0)
        log_msg(LOG_ERROR, "cannot schedule the event loop lag probe: its figures stop");
}

/* The lag histogram's upper bounds, in microseconds: from a loop that keeps up to one stalled
 * for a second. */
static const uint64_t server_lag_bounds[] = {100,   500,   1000,   2500,   5000,   10000,
                                             20000, 50000, 100000, 250000, 500000, 1000000};

void
net_server_loop_lag(const struct net_server *s, struct stats_hist *out)
{
    *out = s->lag_us;
}

/* Bytes of physical memory, which relative limits multiply (1 GiB if unknown). */
static uint64_t
server_phys_mem(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 1024u * 1024 * 1024;
}

/* vm_memory_high_watermark in bytes: the absolute setting, or the relative one times
 * physical memory. */
static uint64_t
server_memory_limit(const struct conf *conf)
{
    if (conf->vm_memory_high_watermark_absolute != 0)
        return conf->vm_memory_high_watermark_absolute;
    return (uint64_t)((double)server_phys_mem() * conf->vm_memory_high_watermark_relative);
}

uint64_t
net_server_memory_limit(const struct net_server *s)
{
    return s->memory_limit;
}

uint64_t
net_server_disk_limit(const struct net_server *s)
{
    return s->disk_limit;
}

static void
server_disk_alarm(struct net_server *s, bool on)
{
    s->disk_alarm = on;
    if (on)
        log_msg(LOG_WARNING,
                "disk alarm set: %llu bytes free on the filesystem of %s, below disk_free_limit "
                "(%llu bytes): publishing connections are blocked",
                (unsigned long long)s->disk_free, s->env.conf->data_dir,
                (unsigned long long)s->disk_limit);
    else
        log_msg(LOG_INFO, "disk alarm cleared: %llu bytes free, limit %llu: %s",
                (unsigned long long)s->disk_free, (unsigned long long)s->disk_limit,
                server_alarm_cleared_outcome(s));
    server_alarms_apply(s);
    net_alarms_local_changed(s);
}

/* Looks at the free space of the data directory's filesystem: what an unprivileged user may
 * still write (df's "Avail"), as RabbitMQ's disk monitor reads it from df. The alarm is on while
 * that is below the limit. A failing statvfs() changes nothing and is logged once. */
static void
server_disk_check(struct net_server *s)
{
    const char *dir = s->env.conf->data_dir;
    struct statvfs st;
    if (statvfs(dir, &st) < 0) {
        if (!s->disk_check_failed)
            log_msg(LOG_WARNING, "cannot read the free disk space of %s: %s; disk alarm stays %s",
                    dir, strerror(errno), s->disk_alarm ? "on" : "off");
        s->disk_check_failed = true;
        return;
    }
    if (s->disk_check_failed)
        log_msg(LOG_INFO, "free disk space of %s readable again", dir);
    s->disk_check_failed = false;
    s->disk_free = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    if (s->disk_alarm != (s->disk_free < s->disk_limit))
        server_disk_alarm(s, !s->disk_alarm);
}

/* Arms the next disk check: soon enough that a disk filling at SERVER_DISK_FILL_RATE cannot
 * use up the space left above the limit in between (see SERVER_DISK_CHECK_MIN_MS). */
static int
server_disk_schedule(struct net_server *s)
{
    uint64_t ms = SERVER_DISK_CHECK_MAX_MS;
    if (!s->disk_alarm && !s->disk_check_failed) {
        ms = (s->disk_free - s->disk_limit) / (SERVER_DISK_FILL_RATE / 1000);
        ms = ms < SERVER_DISK_CHECK_MIN_MS   ? SERVER_DISK_CHECK_MIN_MS
             : ms > SERVER_DISK_CHECK_MAX_MS ? SERVER_DISK_CHECK_MAX_MS
                                             : ms;
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    return evtimer_add(s->disk_ev, &tv);
}

static void
server_disk_tick(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    server_disk_check(s);
    if (server_disk_schedule(s) < 0)
        log_msg(LOG_ERROR, "cannot schedule the next free disk space check; disk alarm stays %s",
                s->disk_alarm ? "on" : "off");
}

/* disk_free_limit in bytes, logged with where it comes from. */
static uint64_t
server_disk_limit(const struct conf *conf)
{
    uint64_t limit = conf_disk_free_limit(conf, server_phys_mem());
    if (conf->disk_free_limit_relative > 0 && conf->disk_free_limit_absolute_set)
        log_msg(LOG_WARNING, "both disk_free_limit.absolute and disk_free_limit.relative are "
                             "set: disk_free_limit.absolute has precedence, as in RabbitMQ");
    log_msg(LOG_INFO, "free disk space limit: %llu bytes on the filesystem of %s",
            (unsigned long long)limit, conf->data_dir);
    return limit;
}

/* connection_max, as RabbitMQ applies it (ranch's max_connections): at the limit the
 * listeners stop accepting, so that new clients wait in the kernel's backlog, and they start
 * again as soon as a connection has gone. One line says so each time the limit is reached. */
static void
server_conn_max_check(struct net_server *s)
{
    uint32_t max = s->env.conf->connection_max;
    if (!s->at_conn_max && max != CONF_INFINITY && s->n_conns >= max) {
        s->at_conn_max = true;
        log_msg(LOG_WARNING,
                "connection_max (%u) reached: not accepting connections until one closes", max);
        for (struct listener *l = s->listeners; l != NULL; l = l->next)
            evconnlistener_disable(l->evl);
    } else if (s->at_conn_max && s->n_conns < max) {
        s->at_conn_max = false;
        server_listeners_resume(s);
    }
}

void
server_listeners_resume(struct net_server *s)
{
    /* A pause for accept() failing, or for the accepting budget (admit.c), turns them on
     * itself when it ends. */
    if (s->shutting_down || s->at_conn_max || evtimer_pending(s->accept_ev, NULL) ||
        s->accept_deferred)
        return;
    for (struct listener *l = s->listeners; l != NULL; l = l->next)
        evconnlistener_enable(l->evl);
}

static void
server_reap(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    struct conn *c;
    while ((c = TAILQ_FIRST(&s->dead)) != NULL) {
        TAILQ_REMOVE(&s->dead, c, link);
        conn_free(c);
    }
    server_conn_max_check(s);
    if (s->shutting_down && TAILQ_EMPTY(&s->conns) && s->shutdown_done != NULL) {
        void (*done)(void *) = s->shutdown_done;
        s->shutdown_done = NULL;
        done(s->shutdown_arg);
    }
}

void
server_conn_dead(struct net_server *s, struct conn *c)
{
    server_admit_forget(s, c);
    TAILQ_REMOVE(&s->conns, c, link);
    s->n_conns--;
    TAILQ_INSERT_TAIL(&s->dead, c, link);
    event_active(s->reaper_ev, 0, 0);
}

uint64_t
server_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Opens the reserve descriptor unless it is held. Returns 0, or -1 (errno set). */
static int
server_reserve_take(struct net_server *s)
{
    if (s->reserve_fd < 0)
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return s->reserve_fd < 0 ? -1 : 0;
}

/* Out of descriptors: frees the reserve one, accepts the oldest connection pending on the
 * listening socket lfd with it and closes that at once (its client sees the connection
 * reset), then takes the reserve again. Without a reserve (another thread took it while it
 * was free) nothing is refused until it is taken back. */
static void
server_refuse_one(struct net_server *s, evutil_socket_t lfd)
{
    if (s->reserve_fd < 0)
        return;
    close(s->reserve_fd);
    s->reserve_fd = -1;
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0) {
        close(fd);
        s->accept_refused++;
    }
    server_reserve_take(s);
}

/* Stops every listener for s->accept_pause_ms (server_accept_resume starts them again) and
 * doubles the next pause, up to SERVER_ACCEPT_PAUSE_MAX_MS. If the timer cannot be set, the
 * listeners stay on: accepting without a pause beats not accepting at all. */
static void
server_accept_pause(struct net_server *s)
{
    unsigned ms = s->accept_pause_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    if (evtimer_add(s->accept_ev, &tv) < 0) {
        log_msg(LOG_ERROR, "cannot schedule the end of a pause in accepting: not pausing");
        return;
    }
    for (struct listener *l = s->listeners; l != NULL; l = l->next)
        evconnlistener_disable(l->evl);
    s->accept_pause_ms = ms * 2 > SERVER_ACCEPT_PAUSE_MAX_MS ? SERVER_ACCEPT_PAUSE_MAX_MS : ms * 2;
}

/* The pause is over: the listeners accept again (unless the server is shutting down). The
 * reserve descriptor is taken back here if it was lost. A listener that cannot be turned on
 * pauses them all again. */
static void
server_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    if (s->shutting_down || s->at_conn_max)
        return;
    server_reserve_take(s);
    for (struct listener *l = s->listeners; l != NULL; l = l->next)
        if (evconnlistener_enable(l->evl) < 0) {
            log_msg(LOG_ERROR, "cannot resume accepting connections: retrying");
            server_accept_pause(s);
            return;
        }
}

/* accept() worked after failing: says so if the failure was logged, and the next failure
 * starts from the shortest pause again. */
static void
server_accept_works(struct net_server *s)
{
    if (s->accept_failing_logged) {
        log_msg(LOG_INFO,
                "accepting connections again after %.1f s; %llu connections refused at the "
                "file-descriptor limit since the last report",
                (double)(server_now_ms() - s->accept_failing_ms) / 1000,
                (unsigned long long)s->accept_refused);
        s->accept_logged_ms = server_now_ms();
        s->accept_refused = 0;
    }
    s->accept_failing = false;
    s->accept_failing_logged = false;
    s->accept_pause_ms = SERVER_ACCEPT_PAUSE_MIN_MS;
    server_reserve_take(s);
}

struct net_server *
net_server_new(const struct net_server_env *env)
{
    struct net_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    s->env = *env;
    s->reserve_fd = -1;
    TAILQ_INIT(&s->conns);
    TAILQ_INIT(&s->dead);
    hmap_init(&s->reply_to);
    s->next_conn_id = 1;
    s->reaper_ev = event_new(env->base, -1, 0, server_reap, s);
    s->memory_ev = event_new(env->base, -1, EV_PERSIST, server_memory_tick, s);
    s->disk_ev = evtimer_new(env->base, server_disk_tick, s);
    s->stats_ev = event_new(env->base, -1, EV_PERSIST, server_stats_tick, s);
    s->lag_ev = evtimer_new(env->base, server_lag_tick, s);
    stats_hist_init(&s->lag_us, server_lag_bounds,
                    (unsigned)(sizeof(server_lag_bounds) / sizeof(server_lag_bounds[0])));
    s->accept_ev = evtimer_new(env->base, server_accept_resume, s);
    s->accept_pause_ms = SERVER_ACCEPT_PAUSE_MIN_MS;
    struct timeval quarter = {0, 250000};
    uint32_t sms = env->conf->collect_statistics_interval;
    struct timeval stats_every = {sms / 1000, (sms % 1000) * 1000};
    s->stats_sampled_ms = server_now_ms();
    if (s->reaper_ev == NULL || s->memory_ev == NULL || s->disk_ev == NULL ||
        s->accept_ev == NULL || s->stats_ev == NULL || s->lag_ev == NULL ||
        server_admit_init(s) < 0 || evtimer_add(s->memory_ev, &quarter) < 0 ||
        evtimer_add(s->stats_ev, &stats_every) < 0 || server_lag_arm(s) < 0 ||
        server_build_props(s, NULL) < 0 || net_topology_open(s) < 0 || net_forward_open(s) < 0 ||
        net_relay_open(s) < 0 || net_alarms_open(s) < 0 || net_quorum_open(s) < 0)
        goto fail;
    s->memory_limit = server_memory_limit(env->conf);
    log_msg(LOG_INFO, "memory high watermark: %llu bytes", (unsigned long long)s->memory_limit);
    /* Checked now, so that a server started short of space blocks its first publisher. */
    s->disk_limit = server_disk_limit(env->conf);
    server_disk_check(s);
    if (server_disk_schedule(s) < 0)
        goto fail;
    return s;
fail:
    log_msg(LOG_ERROR, "out of memory creating the server");
    if (s != NULL)
        net_server_free(s);
    return NULL;
}

static void
server_on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *peer, int peerlen,
                 void *arg)
{
    struct listener *l = arg;
    struct net_server *s = l->server;
    /* libevent accepts until accept() runs dry: for as long as clients keep connecting, were
     * the listeners not stopped once this turn's budget is spent. */
    bool last = server_admit_accepting(s);
    if (s->accept_failing)
        server_accept_works(s);
    int one = 1;
    /* Frames are written whole per loop iteration; Nagle would only add latency. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        log_msg(LOG_WARNING, "TCP_NODELAY: %s", strerror(errno));
    if (conn_new(s, fd, peer, peerlen, l->tls ? s->tls_ctx : NULL) == NULL)
        evutil_closesocket(fd);
    server_conn_max_check(s);
    if (last)
        for (struct listener *o = s->listeners; o != NULL; o = o->next)
            evconnlistener_disable(o->evl);
}

int
net_server_adopt(struct net_server *s, int fd, const struct sockaddr *peer, int peerlen)
{
    if (evutil_make_socket_nonblocking(fd) < 0) {
        log_msg(LOG_ERROR, "cannot make an adopted socket non-blocking: %s", strerror(errno));
        return -1;
    }
    return conn_new(s, fd, peer, peerlen, NULL) != NULL ? 0 : -1;
}

/* accept() failed with an error libevent does not retry itself (it does EAGAIN, EINTR and
 * ECONNABORTED): EMFILE or ENFILE at the file-descriptor limit, ENOBUFS or ENOMEM. These last
 * until something is freed, and the listening socket stays readable meanwhile: accepting
 * again at once would spin, and log, as fast as the loop turns. So every listener pauses
 * (server_accept_pause, as nginx disables its accept events for a while). At the descriptor
 * limit, the oldest pending connection is first accepted on the reserve descriptor and closed,
 * so that its client learns at once rather than waiting in the backlog (libev's documented
 * remedy). Connections already open are unaffected. One line says that accept() fails, then
 * one every SERVER_ACCEPT_LOG_MS while it does, and one when it works again. */
static void
server_on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct net_server *s = ((struct listener *)arg)->server;
    int err = EVUTIL_SOCKET_ERROR();
    bool fd_limit = err == EMFILE || err == ENFILE;
    if (fd_limit)
        server_refuse_one(s, evconnlistener_get_fd(evl));
    uint64_t now = server_now_ms();
    bool log_due = s->accept_logged_ms == 0 || now - s->accept_logged_ms >= SERVER_ACCEPT_LOG_MS;
    if (!s->accept_failing) {
        s->accept_failing = true;
        s->accept_failing_ms = now;
        s->accept_failing_logged = log_due;
        if (log_due) {
            char limit[64] = "";
            struct rlimit rl;
            if (fd_limit && getrlimit(RLIMIT_NOFILE, &rl) == 0)
                snprintf(limit, sizeof(limit), " (open files limit %llu)",
                         (unsigned long long)rl.rlim_cur);
            log_msg(LOG_ERROR,
                    "accept failed: %s%s: new connections are refused, accepting pauses for "
                    "%d ms to %d ms at a time until it works again",
                    evutil_socket_error_to_string(err), limit, SERVER_ACCEPT_PAUSE_MIN_MS,
                    SERVER_ACCEPT_PAUSE_MAX_MS);
        }
    } else if (log_due) {
        log_msg(LOG_WARNING,
                "accept still failing (%s): %llu connections refused at the file-descriptor "
                "limit in the last %llu s",
                evutil_socket_error_to_string(err), (unsigned long long)s->accept_refused,
                (unsigned long long)(now - s->accept_logged_ms) / 1000);
        s->accept_failing_logged = true;
    }
    if (log_due) {
        s->accept_logged_ms = now;
        s->accept_refused = 0;
    }
    server_accept_pause(s);
}

void
net_format_addr(char *dst, size_t cap, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(dst, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(dst, cap, "%s:%u", ip, ntohs(a->sin_port));
    }
}

/* Binds one address, for AMQP over TLS if tls. IPv6 sockets are v6-only so that a bare port
 * can bind 0.0.0.0 and :: side by side, as RabbitMQ does. Returns 0, -1 on error (errno
 * set). */
static int
server_bind_one(struct net_server *s, const struct sockaddr *sa, socklen_t len, bool tls)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (sa->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, sa, len) < 0 || listen(fd, SERVER_LISTEN_BACKLOG) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    struct listener *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    /* Backlog 0: libevent leaves the socket as listen() above made it (-1 would listen()
     * again with 128). */
    l->server = s;
    l->tls = tls;
    l->evl = evconnlistener_new(s->env.base, server_on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (l->evl == NULL) {
        free(l);
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    evconnlistener_set_error_cb(l->evl, server_on_accept_error);
    memcpy(&l->addr, sa, len);
    l->next = s->listeners;
    s->listeners = l;
    char name[80];
    net_format_addr(name, sizeof(name), sa);
    log_msg(LOG_INFO, "listening for AMQP%s connections on %s", tls ? " over TLS" : "", name);
    return 0;
}

static int
server_listen_conf(struct net_server *s, const struct conf_listener *cl, bool tls)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(cl->port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(cl->port)};
    if (cl->host[0] == '\0') {
        v4.sin_addr.s_addr = htonl(INADDR_ANY);
        v6.sin6_addr = in6addr_any;
        if (server_bind_one(s, (struct sockaddr *)&v4, sizeof(v4), tls) < 0) {
            log_msg(LOG_ERROR, "cannot listen on 0.0.0.0:%u: %s", cl->port, strerror(errno));
            return -1;
        }
        if (server_bind_one(s, (struct sockaddr *)&v6, sizeof(v6), tls) < 0)
            log_msg(LOG_WARNING, "not listening on [::]:%u: %s", cl->port, strerror(errno));
        return 0;
    }
    int rc;
    if (inet_pton(AF_INET, cl->host, &v4.sin_addr) == 1)
        rc = server_bind_one(s, (struct sockaddr *)&v4, sizeof(v4), tls);
    else if (inet_pton(AF_INET6, cl->host, &v6.sin6_addr) == 1)
        rc = server_bind_one(s, (struct sockaddr *)&v6, sizeof(v6), tls);
    else {
        log_msg(LOG_ERROR, "cannot listen on '%s': not a numeric IPv4 or IPv6 address", cl->host);
        return -1;
    }
    if (rc < 0)
        log_msg(LOG_ERROR, "cannot listen on %s%s%s:%u: %s", strchr(cl->host, ':') ? "[" : "",
                cl->host, strchr(cl->host, ':') ? "]" : "", cl->port, strerror(errno));
    return rc;
}

int
net_server_listen(struct net_server *s)
{
    const struct conf *conf = s->env.conf;
    /* Taken now, while descriptors are plentiful (see server_refuse_one). */
    if (server_reserve_take(s) < 0) {
        log_msg(LOG_ERROR, "cannot open /dev/null as the reserve descriptor: %s", strerror(errno));
        return -1;
    }
    if (conf->n_ssl_listeners > 0) {
        char err[1024];
        s->tls_ctx = tls_server_ctx_new(conf, err, sizeof(err));
        if (s->tls_ctx == NULL) {
            log_msg(LOG_CRITICAL, "cannot start the TLS listeners: %s", err);
            return -1;
        }
    }
    for (unsigned i = 0; i < conf->n_listeners; i++)
        if (server_listen_conf(s, &conf->listeners[i], false) < 0)
            return -1;
    for (unsigned i = 0; i < conf->n_ssl_listeners; i++)
        if (server_listen_conf(s, &conf->ssl_listeners[i], true) < 0)
            return -1;
    if (s->listeners == NULL)
        log_msg(LOG_WARNING, "no listeners configured (listeners.tcp = none and no "
                             "listeners.ssl): no client can connect");
    return 0;
}

int
net_server_tls_reload(struct net_server *s)
{
    if (s->tls_ctx == NULL)
        return 0;
    char err[1024];
    struct ssl_ctx_st *ctx = tls_server_ctx_new(s->env.conf, err, sizeof(err));
    if (ctx == NULL) {
        log_msg(LOG_ERROR, "TLS certificates not reloaded, the previous ones stay in use: %s", err);
        return -1;
    }
    SSL_CTX_free(s->tls_ctx); /* open connections hold their own references */
    s->tls_ctx = ctx;
    log_msg(LOG_INFO, "TLS certificate %s and key %s reloaded: new connections use them",
            s->env.conf->ssl_certfile, s->env.conf->ssl_keyfile);
    return 0;
}

static void
server_grace_expired(evutil_socket_t fd, short what, void *arg)
{
    struct net_server *s = arg;
    struct conn *c;
    while ((c = TAILQ_FIRST(&s->conns)) != NULL) {
        log_conn(LOG_WARNING, c, "still open at the end of the shutdown grace period: dropped");
        c->state = CONN_DEAD;
        server_conn_dead(s, c);
    }
}

void
net_server_shutdown(struct net_server *s, void (*done)(void *arg), void *arg)
{
    struct listener *l;
    s->shutting_down = true;
    s->shutdown_done = done;
    s->shutdown_arg = arg;
    for (l = s->listeners; l != NULL; l = l->next)
        evconnlistener_disable(l->evl);
    struct conn *c, *next;
    for (c = TAILQ_FIRST(&s->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        conn_close_forced(c, "broker forced connection closure with reason 'shutdown'");
    }
    s->grace_ev = evtimer_new(s->env.base, server_grace_expired, s);
    struct timeval tv = {SERVER_SHUTDOWN_GRACE_SEC, 0};
    if (s->grace_ev == NULL || evtimer_add(s->grace_ev, &tv) < 0)
        server_grace_expired(-1, 0, s);
    /* The reaper reports completion, also when there was nothing to close. */
    event_active(s->reaper_ev, 0, 0);
}

void
net_server_free(struct net_server *s)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&s->conns)) != NULL) {
        TAILQ_REMOVE(&s->conns, c, link);
        conn_free(c);
    }
    while ((c = TAILQ_FIRST(&s->dead)) != NULL) {
        TAILQ_REMOVE(&s->dead, c, link);
        conn_free(c);
    }
    struct listener *l = s->listeners;
    while (l != NULL) {
        struct listener *next = l->next;
        evconnlistener_free(l->evl);
        free(l);
        l = next;
    }
    if (s->reaper_ev != NULL)
        event_free(s->reaper_ev);
    if (s->memory_ev != NULL)
        event_free(s->memory_ev);
    if (s->stats_ev != NULL)
        event_free(s->stats_ev);
    if (s->lag_ev != NULL)
        event_free(s->lag_ev);
    if (s->disk_ev != NULL)
        event_free(s->disk_ev);
    if (s->grace_ev != NULL)
        event_free(s->grace_ev);
    if (s->accept_ev != NULL)
        event_free(s->accept_ev);
    if (s->admit_ev != NULL)
        event_free(s->admit_ev);
    if (s->reserve_fd >= 0)
        close(s->reserve_fd);
    SSL_CTX_free(s->tls_ctx);
    hmap_clear(&s->reply_to);
    net_alarms_free(s);
    net_quorum_free(s);
    net_relay_free(s);
    net_forward_free(s);
    net_topology_free(s);
    free(s->server_props);
    free(s);
}

void
net_server_close_user(struct net_server *s, const struct auth_user *u, const char *text)
{
    /* A connection may be dropped on the way (moved to the dead list): next is taken first. */
    for (struct conn *c = TAILQ_FIRST(&s->conns), *next; c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->user == u)
            conn_close_forced(c, text);
    }
}

void
net_server_close_vhost(struct net_server *s, const struct vhost *v, const char *text)
{
    for (struct conn *c = TAILQ_FIRST(&s->conns), *next; c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->vhost != v)
            continue;
        conn_close_forced(c, text);
        conn_release(c);
        conn_detach(c);
    }
}

static const char *
server_conn_state_name(enum conn_state st)
{
    switch (st) {
    case CONN_AWAIT_HEADER:
    case CONN_AWAIT_START_OK:
        return "starting";
    case CONN_AWAIT_TUNE_OK:
        return "tuning";
    case CONN_AWAIT_OPEN:
        return "opening";
    case CONN_OPEN:
        return "running";
    default:
        return "closing";
    }
}

/* c as net_conn_info shows it (its strings borrowed from c). */
static struct net_conn_info
server_conn_info(const struct conn *c)
{
    struct net_conn_info ci = {
        .name = c->name,
        .peer_host = c->peer_host,
        .host = c->host,
        .peer_port = c->peer_port,
        .port = c->port,
        .user = c->user != NULL ? auth_user_name(c->user) : NULL,
        .vhost = c->vhost != NULL ? c->vhost->name : NULL,
        .state = server_conn_state_name(c->state),
        .client_properties = c->client_props,
        .client_properties_len = c->client_props_len,
        .channels = (uint32_t)c->chans.count,
        .frame_max = c->frame_max,
        .channel_max = c->channel_max,
        .heartbeat = c->heartbeat,
        .connected_at = c->connected_at,
    };
    /* as of the last sample, as RabbitMQ's statistics are */
    memcpy(ci.io, c->io_prev, sizeof(ci.io));
    memcpy(ci.io_rate, c->io_rate, sizeof(ci.io_rate));
    return ci;
}

void
net_server_conn_foreach(struct net_server *s, void (*fn)(void *arg, const struct net_conn_info *ci),
                        void *arg)
{
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link) {
        struct net_conn_info ci = server_conn_info(c);
        fn(arg, &ci);
    }
}

/* Calls chan_fn for each open channel of every running connection, or cons_fn for each of
 * their consumers (the other one NULL). */
static void
server_chan_walk(struct net_server *s, void (*chan_fn)(void *, const struct net_chan_info *),
                 void (*cons_fn)(void *, const struct net_cons_info *), void *arg)
{
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link) {
        if (c->vhost == NULL)
            continue;
        struct net_conn_info conn = server_conn_info(c);
        struct idmap_iter it;
        struct idmap_entry *e;
        idmap_iter_init(&it, &c->chans);
        while ((e = idmap_iter_next(&it)) != NULL) {
            struct chan *ch = idmap_container_of(e, struct chan, by_id);
            if (ch->state != CHAN_OPEN)
                continue;
            struct net_chan_info ci = {
                .conn = &conn,
                .number = ch->id,
                .confirm = ch->confirm_mode,
                .transactional = ch->tx_mode,
                .prefetch_count = ch->prefetch_consumer,
                .global_prefetch_count = ch->prefetch_channel,
                .consumer_count = (uint32_t)ch->consumers.count,
                .messages_unacknowledged = ch->unacked_by_tag.count,
                .messages_unconfirmed = ch->publish_seq - ch->confirmed_upto,
                .stats = &ch->stats,
            };
            if (chan_fn != NULL) {
                chan_fn(arg, &ci);
                continue;
            }
            struct hmap_iter hi;
            struct hmap_entry *he;
            hmap_iter_init(&hi, &ch->consumers);
            while ((he = hmap_iter_next(&hi)) != NULL) {
                struct chan_cons *cc = hmap_container_of(he, struct chan_cons, by_tag);
                if (cc->base.queue == NULL)
                    continue;
                struct net_cons_info k = {
                    .chan = &ci,
                    .tag = cc->tag,
                    .tag_len = cc->tag_len,
                    .queue = cc->base.queue->name,
                    .vhost = cc->base.queue->vhost->name,
                    .ack_required = !cc->no_ack,
                    .exclusive = cc->base.exclusive,
                    .prefetch_count = cc->prefetch,
                    .priority = cc->base.priority,
                };
                cons_fn(arg, &k);
            }
        }
    }
}

void
net_server_chan_foreach(struct net_server *s, void (*fn)(void *arg, const struct net_chan_info *ci),
                        void *arg)
{
    server_chan_walk(s, fn, NULL, arg);
}

void
net_server_cons_foreach(struct net_server *s, void (*fn)(void *arg, const struct net_cons_info *ci),
                        void *arg)
{
    server_chan_walk(s, NULL, fn, arg);
}

bool
net_server_close_conn(struct net_server *s, const char *name, const char *text)
{
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link) {
        if (strcmp(c->name, name) == 0) {
            conn_close_forced(c, text);
            return true;
        }
    }
    return false;
}

void
net_server_disk(const struct net_server *s, uint64_t *free_bytes, uint64_t *limit)
{
    *free_bytes = s->disk_free;
    *limit = s->disk_limit;
}

void
net_server_alarms(const struct net_server *s, bool *memory, bool *disk)
{
    *memory = s->memory_alarm;
    *disk = s->disk_alarm;
}
