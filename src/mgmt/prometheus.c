/* rabbitmq_prometheus's endpoints: GET /metrics (aggregated: one sample per metric, no
 * per-object labels), /metrics/per-object (the same metrics per queue {vhost,queue}, channel
 * {channel} and connection {connection}), and /metrics/detailed?family=F&vhost=V (only the
 * families asked for, per object, prefixed rabbitmq_detailed_; repeated family= and vhost=
 * parameters add up; no family: only build and identity info), with RabbitMQ 3.10's metric
 * names, help texts and family names; plus Warren's own figures, prefixed warren_.
 *
 * Cost: the text is written straight into the reply's evbuffer (prom_text.c), from the
 * counters the broker keeps anyway (warren/stats.h), never through JSON. The aggregated
 * output walks the queues once for its sums (integer additions) and the channels once; its
 * channel counters are the vhosts' sums (stats.h), which, unlike a sum over the open
 * channels, never go down when a channel closes. Per-object output walks the objects once
 * per family (families must be contiguous in the text).
 *
 * Deliberate differences from RabbitMQ: label values are escaped as the format requires
 * (RabbitMQ 3.10 writes a '"' in a queue name unescaped); channels are labelled with their
 * management name ("127.0.0.1:50312 -> 127.0.0.1:5672 (1)"), as Warren has no Erlang pids;
 * Warren keeps channel counters per channel, not per channel and queue or exchange, so the
 * channel families carry the channel label alone. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mgmt_int.h"
#include "prom_text.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/store.h"
#include "warren/vhost.h"

#define PROM_VHOSTS_MAX 16 /* vhost= parameters honoured in one detailed request */

/* RabbitMQ's family names, as /metrics/detailed?family= takes them. */
enum prom_family {
    PROM_QUEUE_COARSE = 0, /* queue_coarse_metrics */
    PROM_QUEUE_CONSUMERS,  /* queue_consumer_count */
    PROM_QUEUE_METRICS,    /* queue_metrics */
    PROM_CHAN_METRICS,     /* channel_metrics */
    PROM_CHAN_EXCH,        /* channel_exchange_metrics */
    PROM_CHAN_QUEUE,       /* channel_queue_metrics */
    PROM_CHAN_QUEUE_EXCH,  /* channel_queue_exchange_metrics */
    PROM_CONN_METRICS,     /* connection_metrics */
    PROM_N_FAMILIES
};

static const char *const prom_family_names[PROM_N_FAMILIES] = {
    [PROM_QUEUE_COARSE] = "queue_coarse_metrics",
    [PROM_QUEUE_CONSUMERS] = "queue_consumer_count",
    [PROM_QUEUE_METRICS] = "queue_metrics",
    [PROM_CHAN_METRICS] = "channel_metrics",
    [PROM_CHAN_EXCH] = "channel_exchange_metrics",
    [PROM_CHAN_QUEUE] = "channel_queue_metrics",
    [PROM_CHAN_QUEUE_EXCH] = "channel_queue_exchange_metrics",
    [PROM_CONN_METRICS] = "connection_metrics",
};

/* One scrape. */
struct prom_scrape {
    struct prom_w w;
    const struct mgmt_env *env;
    bool per_object; /* samples per object with labels; else one sum per metric */
    bool detailed;   /* /metrics/detailed: prefix rabbitmq_detailed_, families[] only */
    bool families[PROM_N_FAMILIES];
    const char *vhosts[PROM_VHOSTS_MAX]; /* borrows: only these vhosts' objects; none: all */
    size_t n_vhosts;
};

/* What a per-object metric reads off a queue or a channel. */
enum prom_q_value {
    PQ_READY = 0,
    PQ_UNACKED,
    PQ_MESSAGES,
    PQ_CONSUMERS,
    PQ_PAGED_OUT,
    PQ_PUBLISHED,
};
enum prom_c_value {
    PC_CONSUMERS = 0,
    PC_UNACKED,
    PC_UNCONFIRMED,
    PC_PREFETCH,
    PC_STAT, /* a stats.h counter: field */
};

struct prom_metric {
    enum prom_family family;
    const char *name; /* after the prefix */
    const char *type;
    const char *help;
    int value;              /* enum prom_q_value or prom_c_value */
    enum stats_field field; /* PC_STAT's */
};

/* RabbitMQ 3.10's queue metrics that Warren has figures for, in its order. */
static const struct prom_metric prom_queue_metrics[] = {
    {PROM_QUEUE_COARSE, "queue_messages_ready", "gauge",
     "Messages ready to be delivered to consumers", PQ_READY, 0},
    {PROM_QUEUE_COARSE, "queue_messages_unacked", "gauge",
     "Messages delivered to consumers but not yet acknowledged", PQ_UNACKED, 0},
    {PROM_QUEUE_COARSE, "queue_messages", "gauge",
     "Sum of ready and unacknowledged messages - total queue depth", PQ_MESSAGES, 0},
    {PROM_QUEUE_CONSUMERS, "queue_consumers", "gauge", "Consumers on a queue", PQ_CONSUMERS, 0},
    {PROM_QUEUE_METRICS, "queue_messages_paged_out", "gauge", "Messages paged out to disk",
     PQ_PAGED_OUT, 0},
};

static const struct prom_metric prom_chan_metrics[] = {
    {PROM_CHAN_METRICS, "channel_consumers", "gauge", "Consumers on a channel", PC_CONSUMERS, 0},
    {PROM_CHAN_METRICS, "channel_messages_unacked", "gauge",
     "Delivered but not yet acknowledged messages", PC_UNACKED, 0},
    {PROM_CHAN_METRICS, "channel_messages_unconfirmed", "gauge",
     "Published but not yet confirmed messages", PC_UNCONFIRMED, 0},
    {PROM_CHAN_METRICS, "channel_prefetch", "gauge",
     "Total limit of unacknowledged messages for all consumers on a channel", PC_PREFETCH, 0},
    {PROM_CHAN_EXCH, "channel_messages_published_total", "counter",
     "Total number of messages published into an exchange on a channel", PC_STAT, STATS_PUBLISH},
    {PROM_CHAN_EXCH, "channel_messages_confirmed_total", "counter",
     "Total number of messages published into an exchange and confirmed on the channel", PC_STAT,
     STATS_CONFIRM},
    {PROM_CHAN_EXCH, "channel_messages_unroutable_returned_total", "counter",
     "Total number of messages published as mandatory into an exchange and returned to the "
     "publisher as unroutable",
     PC_STAT, STATS_RETURN_UNROUTABLE},
    {PROM_CHAN_EXCH, "channel_messages_unroutable_dropped_total", "counter",
     "Total number of messages published as non-mandatory into an exchange and dropped as "
     "unroutable",
     PC_STAT, STATS_DROP_UNROUTABLE},
    {PROM_CHAN_QUEUE, "channel_get_ack_total", "counter",
     "Total number of messages fetched with basic.get in manual acknowledgement mode", PC_STAT,
     STATS_GET},
    {PROM_CHAN_QUEUE, "channel_get_total", "counter",
     "Total number of messages fetched with basic.get in automatic acknowledgement mode", PC_STAT,
     STATS_GET_NO_ACK},
    {PROM_CHAN_QUEUE, "channel_messages_delivered_ack_total", "counter",
     "Total number of messages delivered to consumers in manual acknowledgement mode", PC_STAT,
     STATS_DELIVER},
    {PROM_CHAN_QUEUE, "channel_messages_delivered_total", "counter",
     "Total number of messages delivered to consumers in automatic acknowledgement mode", PC_STAT,
     STATS_DELIVER_NO_ACK},
    {PROM_CHAN_QUEUE, "channel_messages_redelivered_total", "counter",
     "Total number of messages redelivered to consumers", PC_STAT, STATS_REDELIVER},
    {PROM_CHAN_QUEUE, "channel_messages_acked_total", "counter",
     "Total number of messages acknowledged by consumers", PC_STAT, STATS_ACK},
    {PROM_CHAN_QUEUE, "channel_get_empty_total", "counter",
     "Total number of times basic.get operations fetched no message", PC_STAT, STATS_GET_EMPTY},
};

#define PROM_N(a) (sizeof(a) / sizeof((a)[0]))

/* The metric's full name: rabbitmq_ or rabbitmq_detailed_ before name. */
static void
prom_name(const struct prom_scrape *s, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", s->detailed ? "rabbitmq_detailed_" : "rabbitmq_", name);
}

static bool
prom_vhost_wanted(const struct prom_scrape *s, const char *vhost)
{
    if (s->n_vhosts == 0)
        return true;
    for (size_t i = 0; i < s->n_vhosts; i++)
        if (strcmp(s->vhosts[i], vhost) == 0)
            return true;
    return false;
}

static uint64_t
prom_queue_value(const struct queue *q, int value)
{
    switch (value) {
    case PQ_READY:
        return q->n_ready;
    case PQ_UNACKED:
        return q->n_unacked;
    case PQ_MESSAGES:
        return q->n_ready + q->n_unacked;
    case PQ_CONSUMERS:
        return q->n_consumers;
    case PQ_PAGED_OUT:
        return durable_queue_paged(q);
    default:
        return q->stats.n[STATS_PUBLISH];
    }
}

/* One queue metric: a sample per queue {vhost,queue}, or their sum. */
static void
prom_queue_metric(struct prom_scrape *s, const struct prom_metric *m)
{
    char name[96];
    prom_name(s, m->name, name, sizeof(name));
    prom_family(&s->w, name, m->type, m->help);
    uint64_t sum = 0;
    for (struct vhost *v = s->env->vhosts->head; v != NULL; v = v->next) {
        if (!prom_vhost_wanted(s, v->name))
            continue;
        struct hmap_iter it;
        hmap_iter_init(&it, &v->queues);
        for (struct hmap_entry *e; (e = hmap_iter_next(&it)) != NULL;) {
            const struct queue *q = hmap_container_of(e, struct queue, by_name);
            uint64_t n = prom_queue_value(q, m->value);
            if (s->per_object) {
                struct prom_label l[] = {{"vhost", v->name}, {"queue", q->name}};
                prom_u64(&s->w, name, l, 2, n);
            } else {
                sum += n;
            }
        }
    }
    if (!s->per_object)
        prom_u64(&s->w, name, NULL, 0, sum);
}

struct prom_chan_walk {
    struct prom_scrape *s;
    const struct prom_metric *m;
    const char *name;
    uint64_t sum;
};

static uint64_t
prom_chan_value(const struct net_chan_info *ci, const struct prom_metric *m)
{
    switch (m->value) {
    case PC_CONSUMERS:
        return ci->consumer_count;
    case PC_UNACKED:
        return ci->messages_unacknowledged;
    case PC_UNCONFIRMED:
        return ci->messages_unconfirmed;
    case PC_PREFETCH:
        return ci->global_prefetch_count;
    default:
        return ci->stats->n[m->field];
    }
}

static void
prom_on_chan(void *arg, const struct net_chan_info *ci)
{
    struct prom_chan_walk *cw = arg;
    if (ci->conn->vhost == NULL || !prom_vhost_wanted(cw->s, ci->conn->vhost))
        return;
    uint64_t n = prom_chan_value(ci, cw->m);
    if (!cw->s->per_object) {
        cw->sum += n;
        return;
    }
    char chan[300];
    snprintf(chan, sizeof(chan), "%s (%u)", ci->conn->name, (unsigned)ci->number);
    struct prom_label l[] = {{"channel", chan}};
    prom_u64(&cw->s->w, cw->name, l, 1, n);
}

/* One channel metric: a sample per channel, or their sum; the aggregated counters are the
 * vhosts' (see the top of the file). */
static void
prom_chan_metric(struct prom_scrape *s, const struct prom_metric *m)
{
    char name[96];
    prom_name(s, m->name, name, sizeof(name));
    prom_family(&s->w, name, m->type, m->help);
    struct prom_chan_walk cw = {s, m, name, 0};
    if (!s->per_object && m->value == PC_STAT) {
        for (struct vhost *v = s->env->vhosts->head; v != NULL; v = v->next)
            cw.sum += v->stats.n[m->field];
    } else if (s->env->net != NULL) {
        net_server_chan_foreach(s->env->net, prom_on_chan, &cw);
    }
    if (!s->per_object)
        prom_u64(&s->w, name, NULL, 0, cw.sum);
}

struct prom_conn_walk {
    struct prom_scrape *s;
    const char *name; /* NULL: count only */
    uint64_t conns, chans;
};

static void
prom_on_conn(void *arg, const struct net_conn_info *ci)
{
    struct prom_conn_walk *cw = arg;
    cw->conns++;
    cw->chans += ci->channels;
    if (cw->name != NULL && ci->vhost != NULL && prom_vhost_wanted(cw->s, ci->vhost)) {
        struct prom_label l[] = {{"connection", ci->name}};
        prom_u64(&cw->s->w, cw->name, l, 1, ci->channels);
    }
}

/* The families asked for, each metric of them in RabbitMQ's order. */
static void
prom_object_families(struct prom_scrape *s)
{
    for (size_t i = 0; i < PROM_N(prom_queue_metrics); i++)
        if (s->families[prom_queue_metrics[i].family])
            prom_queue_metric(s, &prom_queue_metrics[i]);
    for (size_t i = 0; i < PROM_N(prom_chan_metrics); i++)
        if (s->families[prom_chan_metrics[i].family])
            prom_chan_metric(s, &prom_chan_metrics[i]);
    if (s->families[PROM_CONN_METRICS]) {
        char name[96];
        prom_name(s, "connection_channels", name, sizeof(name));
        prom_family(&s->w, name, "gauge", "Channels on a connection");
        struct prom_conn_walk cw = {s, s->per_object ? name : NULL, 0, 0};
        if (s->env->net != NULL)
            net_server_conn_foreach(s->env->net, prom_on_conn, &cw);
        if (!s->per_object)
            prom_u64(&s->w, name, NULL, 0, cw.chans);
    }
    if (s->families[PROM_CHAN_QUEUE_EXCH]) {
        static const struct prom_metric published = {PROM_CHAN_QUEUE_EXCH,
                                                     "queue_messages_published_total",
                                                     "counter",
                                                     "Total number of messages published to queues",
                                                     PQ_PUBLISHED,
                                                     0};
        prom_queue_metric(s, &published);
    }
}

static void
prom_build_identity(struct prom_scrape *s)
{
    char node[300];
    mgmt_node_name(node, sizeof(node));
    prom_family(&s->w, "rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info");
    struct prom_label b[] = {{"rabbitmq_version", API_RABBITMQ_VERSION},
                             {"prometheus_plugin_version", API_RABBITMQ_VERSION},
                             {"erlang_version", "none"},
                             {"product_name", "Warren"},
                             {"product_version", PACKAGE_VERSION}};
    prom_u64(&s->w, "rabbitmq_build_info", b, PROM_N(b), 1);
    prom_family(&s->w, "rabbitmq_identity_info", "untyped",
                "RabbitMQ node & cluster identity info");
    /* The cluster is named after the node, as /api/overview's cluster_name. */
    struct prom_label id[] = {{"rabbitmq_node", node}, {"rabbitmq_cluster", node}};
    prom_u64(&s->w, "rabbitmq_identity_info", id, PROM_N(id), 1);
}

static void
prom_gauge(struct prom_scrape *s, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_family(&s->w, name, type, help);
    prom_u64(&s->w, name, NULL, 0, v);
}

/* Resident memory (/proc/self/statm) and open descriptors (/proc/self/fd), as RabbitMQ reads
 * them on Linux. 0 when unreadable. */
static uint64_t
prom_rss(void)
{
    unsigned long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t
prom_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

/* The node's figures: alarms, lifetime counters, process and disk. */
static void
prom_node(struct prom_scrape *s, uint64_t conns)
{
    bool mem = false, disk = false;
    uint64_t disk_free = 0, disk_limit = 0, mem_limit = 0;
    if (s->env->net != NULL) {
        net_server_alarms(s->env->net, &mem, &disk);
        net_server_disk(s->env->net, &disk_free, &disk_limit);
        mem_limit = net_server_memory_limit(s->env->net);
    }
    prom_gauge(s, "rabbitmq_alarms_file_descriptor_limit", "untyped",
               "is 1 if file descriptor limit alarm is in effect", 0);
    prom_gauge(s, "rabbitmq_alarms_free_disk_space_watermark", "untyped",
               "is 1 if free disk space watermark alarm is in effect", disk);
    prom_gauge(s, "rabbitmq_alarms_memory_used_watermark", "untyped",
               "is 1 if VM memory watermark alarm is in effect", mem);
    const struct stats_node *n = &stats_node;
    prom_gauge(s, "rabbitmq_connections_opened_total", "counter",
               "Total number of connections opened", n->conns_opened);
    prom_gauge(s, "rabbitmq_connections_closed_total", "counter",
               "Total number of connections closed or terminated", n->conns_closed);
    prom_gauge(s, "rabbitmq_channels_opened_total", "counter", "Total number of channels opened",
               n->chans_opened);
    prom_gauge(s, "rabbitmq_channels_closed_total", "counter", "Total number of channels closed",
               n->chans_closed);
    prom_gauge(s, "rabbitmq_queues_declared_total", "counter", "Total number of queues declared",
               n->queues_declared);
    prom_gauge(s, "rabbitmq_queues_created_total", "counter", "Total number of queues created",
               n->queues_created);
    prom_gauge(s, "rabbitmq_queues_deleted_total", "counter", "Total number of queues deleted",
               n->queues_deleted);
    prom_gauge(s, "rabbitmq_process_open_fds", "gauge", "Open file descriptors", prom_open_fds());
    prom_gauge(s, "rabbitmq_process_open_tcp_sockets", "gauge", "Open TCP sockets", conns);
    prom_gauge(s, "rabbitmq_process_resident_memory_bytes", "gauge", "Memory used in bytes",
               prom_rss());
    prom_gauge(s, "rabbitmq_disk_space_available_bytes", "gauge", "Disk space available in bytes",
               disk_free);
    struct rlimit rl;
    uint64_t max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0;
    prom_gauge(s, "rabbitmq_process_max_fds", "gauge", "Open file descriptors limit", max_fds);
    prom_gauge(s, "rabbitmq_resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes",
               mem_limit);
    prom_gauge(s, "rabbitmq_disk_space_available_limit_bytes", "gauge",
               "Free disk space low watermark in bytes", disk_limit);
}

/* rabbitmq_global_*: the node's lifetime message counters (the vhosts' sums), labelled as
 * RabbitMQ 3.10 labels them (Warren's queues are all classic). */
static void
prom_global(struct prom_scrape *s, uint64_t consumers)
{
    static const struct {
        const char *name, *help;
        enum stats_field f;
        bool queue_type;
    } g[] = {
        {"rabbitmq_global_messages_acknowledged_total",
         "Total number of messages acknowledged by consumers", STATS_ACK, true},
        {"rabbitmq_global_messages_confirmed_total",
         "Total number of messages confirmed to publishers", STATS_CONFIRM, false},
        {"rabbitmq_global_messages_delivered_consume_auto_ack_total",
         "Total number of messages delivered to consumers using basic.consume with automatic "
         "acknowledgment",
         STATS_DELIVER_NO_ACK, true},
        {"rabbitmq_global_messages_delivered_consume_manual_ack_total",
         "Total number of messages delivered to consumers using basic.consume with manual "
         "acknowledgment",
         STATS_DELIVER, true},
        {"rabbitmq_global_messages_delivered_get_auto_ack_total",
         "Total number of messages delivered to consumers using basic.get with automatic "
         "acknowledgment",
         STATS_GET_NO_ACK, true},
        {"rabbitmq_global_messages_delivered_get_manual_ack_total",
         "Total number of messages delivered to consumers using basic.get with manual "
         "acknowledgment",
         STATS_GET, true},
        {"rabbitmq_global_messages_get_empty_total",
         "Total number of times basic.get operations fetched no message", STATS_GET_EMPTY, true},
        {"rabbitmq_global_messages_received_total",
         "Total number of messages received from publishers", STATS_PUBLISH, false},
        {"rabbitmq_global_messages_redelivered_total",
         "Total number of messages redelivered to consumers", STATS_REDELIVER, true},
        {"rabbitmq_global_messages_unroutable_dropped_total",
         "Total number of messages published as non-mandatory into an exchange and dropped as "
         "unroutable",
         STATS_DROP_UNROUTABLE, false},
        {"rabbitmq_global_messages_unroutable_returned_total",
         "Total number of messages published as mandatory into an exchange and returned to the "
         "publisher as unroutable",
         STATS_RETURN_UNROUTABLE, false},
    };
    struct prom_label l[] = {{"protocol", "amqp091"}, {"queue_type", "rabbit_classic_queue"}};
    prom_family(&s->w, "rabbitmq_global_consumers", "gauge", "Current number of consumers");
    prom_u64(&s->w, "rabbitmq_global_consumers", l, 1, consumers);
    for (size_t i = 0; i < PROM_N(g); i++) {
        uint64_t sum = 0;
        for (struct vhost *v = s->env->vhosts->head; v != NULL; v = v->next)
            sum += v->stats.n[g[i].f];
        prom_family(&s->w, g[i].name, "counter", g[i].help);
        prom_u64(&s->w, g[i].name, l, g[i].queue_type ? 2 : 1, sum);
    }
}

/* warren_*: what RabbitMQ has no metric for. */
static void
prom_warren(struct prom_scrape *s)
{
    prom_gauge(s, "warren_log_lines_dropped_total", "counter",
               "Log lines the logger could not write (full disk, I/O error) and dropped",
               log_dropped());
    if (s->env->store == NULL)
        return;
    struct store_stats st;
    store_stats(s->env->store, &st);
    prom_gauge(s, "warren_store_writes_total", "counter",
               "RocksDB writes made by the store's writer thread", st.writes);
    prom_gauge(s, "warren_store_syncs_total", "counter", "WAL fsyncs made by the store", st.syncs);
    prom_gauge(s, "warren_store_written_bytes_total", "counter",
               "Bytes handed to RocksDB by the store", st.bytes);
    prom_gauge(s, "warren_store_pending_bytes", "gauge",
               "Bytes of store batches submitted and not completed yet", st.pending_bytes);
    prom_family(&s->w, "warren_store_write_seconds", "histogram",
                "Time a RocksDB write without fsync took");
    prom_hist(&s->w, "warren_store_write_seconds", NULL, 0, &st.write_us, 1e-6);
    prom_family(&s->w, "warren_store_sync_write_seconds", "histogram",
                "Time a RocksDB write with the WAL's fsync took (group commit)");
    prom_hist(&s->w, "warren_store_sync_write_seconds", NULL, 0, &st.sync_write_us, 1e-6);
    prom_family(&s->w, "warren_store_group_commit_batches", "histogram",
                "Batches carried by one RocksDB write (group commit)");
    prom_hist(&s->w, "warren_store_group_commit_batches", NULL, 0, &st.group_batches, 1);
}

/* /metrics and /metrics/per-object: everything, aggregated or per object. */
static void
prom_all(struct prom_scrape *s)
{
    struct prom_conn_walk cw = {s, NULL, 0, 0};
    if (s->env->net != NULL)
        net_server_conn_foreach(s->env->net, prom_on_conn, &cw);
    uint64_t queues = 0, consumers = 0;
    for (struct vhost *v = s->env->vhosts->head; v != NULL; v = v->next) {
        queues += v->queues.count;
        struct hmap_iter it;
        hmap_iter_init(&it, &v->queues);
        for (struct hmap_entry *e; (e = hmap_iter_next(&it)) != NULL;)
            consumers += hmap_container_of(e, struct queue, by_name)->n_consumers;
    }
    prom_node(s, cw.conns);
    for (int f = 0; f < PROM_N_FAMILIES; f++)
        s->families[f] = true;
    prom_object_families(s);
    prom_gauge(s, "rabbitmq_connections", "gauge", "Connections currently open", cw.conns);
    prom_gauge(s, "rabbitmq_channels", "gauge", "Channels currently open", cw.chans);
    prom_gauge(s, "rabbitmq_consumers", "gauge", "Consumers currently connected", consumers);
    prom_gauge(s, "rabbitmq_queues", "gauge", "Queues available", queues);
    prom_build_identity(s);
    prom_global(s, consumers);
    prom_warren(s);
}

/* The family= and vhost= parameters of query (all of them, repeated ones too). */
static int
prom_detailed_query(struct prom_scrape *s, const char *query, struct evkeyvalq *params)
{
    if (query == NULL)
        return 0;
    if (evhttp_parse_query_str(query, params) < 0)
        return -1;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, params, next) {
        if (strcmp(kv->key, "family") == 0) {
            for (int f = 0; f < PROM_N_FAMILIES; f++)
                if (strcmp(kv->value, prom_family_names[f]) == 0)
                    s->families[f] = true;
        } else if (strcmp(kv->key, "vhost") == 0 && s->n_vhosts < PROM_VHOSTS_MAX) {
            s->vhosts[s->n_vhosts++] = kv->value;
        }
    }
    return 0;
}

int
mgmt_prom_render(const struct mgmt_env *env, const char *path, const char *query,
                 struct evbuffer *out)
{
    struct prom_scrape s = {.w = {out, false}, .env = env};
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (strcmp(path, "/metrics") == 0 || strcmp(path, "/metrics/") == 0) {
        prom_all(&s);
    } else if (strcmp(path, "/metrics/per-object") == 0) {
        s.per_object = true;
        prom_all(&s);
    } else if (strcmp(path, "/metrics/detailed") == 0) {
        s.per_object = s.detailed = true;
        if (prom_detailed_query(&s, query, &params) < 0) {
            evhttp_clear_headers(&params);
            return 400;
        }
        prom_object_families(&s);
        prom_build_identity(&s);
    } else {
        return 404;
    }
    evhttp_clear_headers(&params);
    if (s.w.failed) {
        log_msg(LOG_ERROR, "management: out of memory writing Prometheus metrics");
        return 500;
    }
    return 200;
}
