/* rabbitmq_prometheus's endpoints: GET /metrics (aggregated: one sample per metric, no
 * per-object labels), /metrics/per-object (the same metrics per queue {vhost,queue}, channel
 * {channel} and connection {connection}), and /metrics/detailed?family=F&vhost=V (only the
 * families asked for, per object, prefixed rabbitmq_detailed_; repeated family= and vhost=
 * parameters add up; no family: only build and identity info), with RabbitMQ 3.10's metric
 * names, help texts and family names; plus Warren's own figures, prefixed warren_.
 *
 * Cost: the text is written straight into the reply's evbuffer (prom_text.c), from the
 * counters the broker keeps anyway (warren/stats.h), never through JSON. A scrape works for
 * a budget of time per loop turn (prom_step), so that 100,000 queues (39 MB of
 * per-object text, 20-50 ms for the mere sums) never hold the loop for long. The queues are
 * walked in steps across turns (struct mgmt_walk, walk.c): first once for the sums and totals
 * (/metrics, /metrics/per-object), then, per object, once for each queue metric, writing
 * each queue's line as it is met, without copying anything up front. The connections and
 * channels, far fewer, are copied when the scrape starts, as before. A scrape thus mixes
 * moments (Prometheus tolerates it: a queue deleted meanwhile may be in one metric and not
 * the next), but each object is in a metric at most once and every line is whole. The
 * aggregated channel counters are the vhosts' sums (stats.h), which, unlike a sum over the
 * open channels, never go down when a channel closes.
 *
 * Deliberate differences from RabbitMQ: label values are escaped as the format requires
 * (RabbitMQ 3.10 writes a '"' in a queue name unescaped); channels are labelled with their
 * management name ("127.0.0.1:50312 -> 127.0.0.1:5672 (1)"), as Warren has no Erlang pids;
 * Warren keeps channel counters per channel, not per channel and queue or exchange, so the
 * channel families carry the channel label alone. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mgmt_int.h"
#include "prom_text.h"
#include "warren/cluster.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/store.h"
#include "warren/vhost.h"

#define PROM_VHOSTS_MAX 16 /* vhost= parameters honoured in one detailed request */
/* Per-object channel and connection samples: the clock is looked at every PROM_STEP_CHECK. */
#define PROM_STEP_CHECK 256

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

/* What a metric reads off a queue, a channel or a connection. */
enum prom_q_value {
    PQ_READY = 0,
    PQ_UNACKED,
    PQ_MESSAGES,
    PQ_CONSUMERS,
    PQ_PAGED_OUT,
    PQ_PUBLISHED,
    PQ_N
};
enum prom_c_value {
    PC_CONSUMERS = 0,
    PC_UNACKED,
    PC_UNCONFIRMED,
    PC_PREFETCH,
    PC_N,
    PC_STAT = PC_N, /* a stats.h counter: the metric's field */
};

enum prom_kind { PROM_KIND_QUEUE = 0, PROM_KIND_CHAN, PROM_KIND_CONN };

struct prom_metric {
    enum prom_family family;
    enum prom_kind kind;
    const char *name; /* after the prefix */
    const char *type;
    const char *help;
    int value;              /* enum prom_q_value or prom_c_value */
    enum stats_field field; /* PC_STAT's */
};

#define Q PROM_KIND_QUEUE
#define C PROM_KIND_CHAN
/* RabbitMQ 3.10's per-object metrics that Warren has figures for, in its order. */
static const struct prom_metric prom_metrics[] = {
    {PROM_QUEUE_COARSE, Q, "queue_messages_ready", "gauge",
     "Messages ready to be delivered to consumers", PQ_READY, 0},
    {PROM_QUEUE_COARSE, Q, "queue_messages_unacked", "gauge",
     "Messages delivered to consumers but not yet acknowledged", PQ_UNACKED, 0},
    {PROM_QUEUE_COARSE, Q, "queue_messages", "gauge",
     "Sum of ready and unacknowledged messages - total queue depth", PQ_MESSAGES, 0},
    {PROM_QUEUE_CONSUMERS, Q, "queue_consumers", "gauge", "Consumers on a queue", PQ_CONSUMERS, 0},
    {PROM_QUEUE_METRICS, Q, "queue_messages_paged_out", "gauge", "Messages paged out to disk",
     PQ_PAGED_OUT, 0},
    {PROM_CHAN_METRICS, C, "channel_consumers", "gauge", "Consumers on a channel", PC_CONSUMERS, 0},
    {PROM_CHAN_METRICS, C, "channel_messages_unacked", "gauge",
     "Delivered but not yet acknowledged messages", PC_UNACKED, 0},
    {PROM_CHAN_METRICS, C, "channel_messages_unconfirmed", "gauge",
     "Published but not yet confirmed messages", PC_UNCONFIRMED, 0},
    {PROM_CHAN_METRICS, C, "channel_prefetch", "gauge",
     "Total limit of unacknowledged messages for all consumers on a channel", PC_PREFETCH, 0},
    {PROM_CHAN_EXCH, C, "channel_messages_published_total", "counter",
     "Total number of messages published into an exchange on a channel", PC_STAT, STATS_PUBLISH},
    {PROM_CHAN_EXCH, C, "channel_messages_confirmed_total", "counter",
     "Total number of messages published into an exchange and confirmed on the channel", PC_STAT,
     STATS_CONFIRM},
    {PROM_CHAN_EXCH, C, "channel_messages_unroutable_returned_total", "counter",
     "Total number of messages published as mandatory into an exchange and returned to the "
     "publisher as unroutable",
     PC_STAT, STATS_RETURN_UNROUTABLE},
    {PROM_CHAN_EXCH, C, "channel_messages_unroutable_dropped_total", "counter",
     "Total number of messages published as non-mandatory into an exchange and dropped as "
     "unroutable",
     PC_STAT, STATS_DROP_UNROUTABLE},
    {PROM_CHAN_QUEUE, C, "channel_get_ack_total", "counter",
     "Total number of messages fetched with basic.get in manual acknowledgement mode", PC_STAT,
     STATS_GET},
    {PROM_CHAN_QUEUE, C, "channel_get_total", "counter",
     "Total number of messages fetched with basic.get in automatic acknowledgement mode", PC_STAT,
     STATS_GET_NO_ACK},
    {PROM_CHAN_QUEUE, C, "channel_messages_delivered_ack_total", "counter",
     "Total number of messages delivered to consumers in manual acknowledgement mode", PC_STAT,
     STATS_DELIVER},
    {PROM_CHAN_QUEUE, C, "channel_messages_delivered_total", "counter",
     "Total number of messages delivered to consumers in automatic acknowledgement mode", PC_STAT,
     STATS_DELIVER_NO_ACK},
    {PROM_CHAN_QUEUE, C, "channel_messages_redelivered_total", "counter",
     "Total number of messages redelivered to consumers", PC_STAT, STATS_REDELIVER},
    {PROM_CHAN_QUEUE, C, "channel_messages_acked_total", "counter",
     "Total number of messages acknowledged by consumers", PC_STAT, STATS_ACK},
    {PROM_CHAN_QUEUE, C, "channel_get_empty_total", "counter",
     "Total number of times basic.get operations fetched no message", PC_STAT, STATS_GET_EMPTY},
    {PROM_CONN_METRICS, PROM_KIND_CONN, "connection_channels", "gauge", "Channels on a connection",
     0, 0},
    {PROM_CHAN_QUEUE_EXCH, Q, "queue_messages_published_total", "counter",
     "Total number of messages published to queues", PQ_PUBLISHED, 0},
};
#undef Q
#undef C

#define PROM_N(a) (sizeof(a) / sizeof((a)[0]))
#define PROM_N_METRICS PROM_N(prom_metrics)

/* Per-object channels and connections are copied when the scrape starts (one walk, no text),
 * then written over several loop turns: they may come and go in between, and a sample must
 * not be written twice. Names are offsets into the scrape's names buffer. */
struct prom_crow {
    size_t name;
    uint64_t v[PC_N];
    uint64_t n[STATS_N];
};
struct prom_connrow {
    size_t name;
    uint64_t channels;
};

/* A scrape (mgmt_prom_start). */
struct mgmt_prom {
    struct mgmt_stepped base; /* first: what http.c holds */
    struct prom_w w;
    const struct mgmt_env *env;
    bool all;        /* /metrics or /metrics/per-object: node figures and totals too */
    bool per_object; /* samples per object with labels; else one sum per metric */
    bool detailed;   /* /metrics/detailed: prefix rabbitmq_detailed_, families[] only */
    bool families[PROM_N_FAMILIES];
    const char *vhosts[PROM_VHOSTS_MAX]; /* in params: only these vhosts' objects; none: all */
    size_t n_vhosts;
    struct evkeyvalq params; /* owns: the query's parameters */

    /* Per object: the copies (owned), and where the writing is. */
    char *names;
    size_t names_len, names_cap;
    struct prom_crow *c;
    size_t n_c, cap_c;
    struct prom_connrow *conn;
    size_t n_conn, cap_conn;
    size_t metric, row;    /* the next sample: prom_metrics[metric], its row-th object */
    bool in_family;        /* prom_metrics[metric]'s header is written */
    struct mgmt_walk walk; /* the queue walk under way: the sums', then a metric's */
    bool summed;           /* the sums' walk is over (or not wanted) */
    bool started;          /* the first step (node figures) was written */
    char name[96];         /* prom_metrics[metric]'s full name */

    /* Aggregated: the sums, added up by the sums' walk (channels: when the scrape starts). */
    uint64_t qsum[PQ_N], csum[PC_N], conn_chans;
    /* Totals: rabbitmq_connections, _channels, _consumers, _queues. */
    uint64_t conns, chans, consumers, queues;
    bool failed; /* ENOMEM while copying */
};

/* The metric's full name: rabbitmq_ or rabbitmq_detailed_ before name. */
static void
prom_name(const struct mgmt_prom *s, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", s->detailed ? "rabbitmq_detailed_" : "rabbitmq_", name);
}

static bool
prom_vhost_wanted(const struct mgmt_prom *s, const char *vhost)
{
    if (s->n_vhosts == 0)
        return true;
    for (size_t i = 0; i < s->n_vhosts; i++)
        if (strcmp(s->vhosts[i], vhost) == 0)
            return true;
    return false;
}

/* Grows *arr (of *cap elements of size) to hold n + 1. -1 on ENOMEM (s->failed set). */
static int
prom_grow(struct mgmt_prom *s, void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap > 0 ? *cap * 2 : 256;
    void *p = realloc(*arr, ncap * size);
    if (p == NULL) {
        s->failed = true;
        return -1;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Copies str into the names buffer; its offset, or SIZE_MAX on ENOMEM. */
static size_t
prom_keep_name(struct mgmt_prom *s, const char *str)
{
    size_t len = strlen(str) + 1;
    if (s->names_len + len > s->names_cap) {
        size_t ncap = s->names_cap > 0 ? s->names_cap : 4096;
        while (ncap < s->names_len + len)
            ncap *= 2;
        char *p = realloc(s->names, ncap);
        if (p == NULL) {
            s->failed = true;
            return SIZE_MAX;
        }
        s->names = p;
        s->names_cap = ncap;
    }
    memcpy(s->names + s->names_len, str, len);
    s->names_len += len;
    return s->names_len - len;
}

/* Whether any metric of kind is wanted. */
static bool
prom_kind_wanted(const struct mgmt_prom *s, enum prom_kind kind)
{
    for (size_t i = 0; i < PROM_N_METRICS; i++)
        if (prom_metrics[i].kind == kind && s->families[prom_metrics[i].family])
            return true;
    return false;
}

/* What prom_walk_step hands mgmt_walk_step. */
struct prom_walk_visit {
    struct mgmt_prom *s;
    void (*fn)(struct mgmt_prom *s, const struct vhost *v, const struct queue *q);
};

static void
prom_walk_visit(void *arg, const struct vhost *v, const struct hmap_entry *e)
{
    const struct prom_walk_visit *x = arg;
    x->fn(x->s, v, hmap_container_of(e, const struct queue, by_name));
}

/* Hands fn the queues w has not met yet, until all are met (returns true, w cleared for the
 * next walk) or the clock passes until (false; the next call goes on from there). fn must
 * not create or delete queues. On ENOMEM s->failed is set and true returned. */
static bool
prom_walk_step(struct mgmt_prom *s, struct mgmt_walk *w, uint64_t until,
               void (*fn)(struct mgmt_prom *s, const struct vhost *v, const struct queue *q))
{
    struct prom_walk_visit x = {s, fn};
    int rc = mgmt_walk_step(w, s->env->vhosts, until, prom_walk_visit, &x);
    if (rc < 0)
        s->failed = true;
    return rc != 0;
}

static void
prom_queue_values(const struct queue *q, uint64_t val[PQ_N])
{
    val[PQ_READY] = q->n_ready;
    val[PQ_UNACKED] = q->n_unacked;
    val[PQ_MESSAGES] = q->n_ready + q->n_unacked;
    val[PQ_CONSUMERS] = q->n_consumers;
    val[PQ_PAGED_OUT] = durable_queue_paged(q);
    val[PQ_PUBLISHED] = q->stats.n[STATS_PUBLISH];
}

/* The sums' walk: the totals over every vhost, the sums over the wanted ones. */
static void
prom_on_queue_sum(struct mgmt_prom *s, const struct vhost *v, const struct queue *q)
{
    s->queues++;
    s->consumers += q->n_consumers;
    if (!prom_vhost_wanted(s, v->name))
        return;
    uint64_t val[PQ_N];
    prom_queue_values(q, val);
    for (int i = 0; i < PQ_N; i++)
        s->qsum[i] += val[i];
}

/* A queue metric's walk, per object: the queue's sample. */
static void
prom_on_queue_row(struct mgmt_prom *s, const struct vhost *v, const struct queue *q)
{
    if (!prom_vhost_wanted(s, v->name))
        return;
    uint64_t val[PQ_N];
    prom_queue_values(q, val);
    struct prom_label l[] = {{"vhost", v->name}, {"queue", q->name}};
    prom_u64(&s->w, s->name, l, 2, val[prom_metrics[s->metric].value]);
}

static void
prom_on_chan(void *arg, const struct net_chan_info *ci)
{
    struct mgmt_prom *s = arg;
    if (ci->conn->vhost == NULL || !prom_vhost_wanted(s, ci->conn->vhost))
        return;
    uint64_t val[PC_N] = {
        [PC_CONSUMERS] = ci->consumer_count,
        [PC_UNACKED] = ci->messages_unacknowledged,
        [PC_UNCONFIRMED] = ci->messages_unconfirmed,
        [PC_PREFETCH] = ci->global_prefetch_count,
    };
    if (!s->per_object) {
        for (int i = 0; i < PC_N; i++)
            s->csum[i] += val[i];
        return;
    }
    if (s->failed || prom_grow(s, (void **)&s->c, &s->cap_c, s->n_c, sizeof(*s->c)) < 0)
        return;
    char chan[300];
    snprintf(chan, sizeof(chan), "%s (%u)", ci->conn->name, (unsigned)ci->number);
    struct prom_crow *r = &s->c[s->n_c++];
    r->name = prom_keep_name(s, chan);
    memcpy(r->v, val, sizeof(val));
    memcpy(r->n, ci->stats->n, sizeof(r->n));
}

static void
prom_on_conn(void *arg, const struct net_conn_info *ci)
{
    struct mgmt_prom *s = arg;
    s->conns++;
    s->chans += ci->channels;
    if (ci->vhost == NULL || !prom_vhost_wanted(s, ci->vhost))
        return;
    if (!s->per_object) {
        s->conn_chans += ci->channels;
        return;
    }
    if (s->failed || prom_grow(s, (void **)&s->conn, &s->cap_conn, s->n_conn, sizeof(*s->conn)) < 0)
        return;
    struct prom_connrow *r = &s->conn[s->n_conn++];
    r->name = prom_keep_name(s, ci->name);
    r->channels = ci->channels;
}

/* Takes what the scrape shows of the connections and channels, in this loop turn. */
static void
prom_take(struct mgmt_prom *s)
{
    if (s->env->net == NULL)
        return;
    if (s->all || prom_kind_wanted(s, PROM_KIND_CONN))
        net_server_conn_foreach(s->env->net, prom_on_conn, s);
    if (prom_kind_wanted(s, PROM_KIND_CHAN))
        net_server_chan_foreach(s->env->net, prom_on_chan, s);
}

/* Writes row i of metric m, a channel's or a connection's (queues: prom_on_queue_row). */
static void
prom_write_row(struct mgmt_prom *s, const struct prom_metric *m, const char *name, size_t i)
{
    if (m->kind == PROM_KIND_CHAN) {
        const struct prom_crow *r = &s->c[i];
        struct prom_label l[] = {{"channel", s->names + r->name}};
        prom_u64(&s->w, name, l, 1, m->value == PC_STAT ? r->n[m->field] : r->v[m->value]);
        return;
    }
    const struct prom_connrow *r = &s->conn[i];
    struct prom_label l[] = {{"connection", s->names + r->name}};
    prom_u64(&s->w, name, l, 1, r->channels);
}

/* Metric m's sum: the aggregated channel counters are the vhosts' (see the top of the file). */
static uint64_t
prom_sum(const struct mgmt_prom *s, const struct prom_metric *m)
{
    switch (m->kind) {
    case PROM_KIND_QUEUE:
        return s->qsum[m->value];
    case PROM_KIND_CONN:
        return s->conn_chans;
    case PROM_KIND_CHAN:
        break;
    }
    if (m->value != PC_STAT)
        return s->csum[m->value];
    uint64_t sum = 0;
    for (struct vhost *v = s->env->vhosts->head; v != NULL; v = v->next)
        sum += v->stats.n[m->field];
    return sum;
}

/* Writes the wanted families' samples from where the last step stopped, until the clock
 * passes until. Returns true once all are written. */
static bool
prom_write_families(struct mgmt_prom *s, uint64_t until)
{
    unsigned since_check = 0;
    for (; s->metric < PROM_N_METRICS; s->metric++, s->row = 0, s->in_family = false) {
        const struct prom_metric *m = &prom_metrics[s->metric];
        if (!s->families[m->family])
            continue;
        if (!s->in_family) {
            prom_name(s, m->name, s->name, sizeof(s->name));
            prom_family(&s->w, s->name, m->type, m->help);
            s->in_family = true;
        }
        if (!s->per_object) {
            prom_u64(&s->w, s->name, NULL, 0, prom_sum(s, m));
            continue;
        }
        if (m->kind == PROM_KIND_QUEUE) {
            if (!prom_walk_step(s, &s->walk, until, prom_on_queue_row))
                return false;
            continue;
        }
        size_t n = m->kind == PROM_KIND_CHAN ? s->n_c : s->n_conn;
        for (; s->row < n; s->row++) {
            if (++since_check == PROM_STEP_CHECK) {
                since_check = 0;
                if (mgmt_now_us() >= until)
                    return false;
            }
            prom_write_row(s, m, s->name, s->row);
        }
    }
    return true;
}

static void
prom_build_identity(struct mgmt_prom *s)
{
    const char *node = mgmt_node_name(s->env);
    char cluster[300];
    mgmt_cluster_name(s->env, cluster, sizeof(cluster));
    prom_family(&s->w, "rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info");
    struct prom_label b[] = {{"rabbitmq_version", API_RABBITMQ_VERSION},
                             {"prometheus_plugin_version", API_RABBITMQ_VERSION},
                             {"erlang_version", "none"},
                             {"product_name", "Warren"},
                             {"product_version", PACKAGE_VERSION}};
    prom_u64(&s->w, "rabbitmq_build_info", b, PROM_N(b), 1);
    prom_family(&s->w, "rabbitmq_identity_info", "untyped",
                "RabbitMQ node & cluster identity info");
    /* The cluster's name as /api/overview's cluster_name (Grafana's dashboards filter by it). */
    struct prom_label id[] = {{"rabbitmq_node", node}, {"rabbitmq_cluster", cluster}};
    prom_u64(&s->w, "rabbitmq_identity_info", id, PROM_N(id), 1);
}

static void
prom_gauge(struct mgmt_prom *s, const char *name, const char *type, const char *help, uint64_t v)
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
prom_node(struct mgmt_prom *s)
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
    prom_gauge(s, "rabbitmq_process_open_tcp_sockets", "gauge", "Open TCP sockets", s->conns);
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
prom_global(struct mgmt_prom *s)
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
    prom_u64(&s->w, "rabbitmq_global_consumers", l, 1, s->consumers);
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
prom_warren(struct mgmt_prom *s)
{
    prom_gauge(s, "warren_log_lines_dropped_total", "counter",
               "Log lines the logger could not write (full disk, I/O error) and dropped",
               log_dropped());
    if (s->env->net != NULL) {
        struct stats_hist lag;
        net_server_loop_lag(s->env->net, &lag);
        prom_family(&s->w, "warren_event_loop_lag_seconds", "histogram",
                    "How late a timer due every 100 ms fired: how long the event loop was "
                    "busy with other work");
        prom_hist(&s->w, "warren_event_loop_lag_seconds", NULL, 0, &lag, 1e-6);
    }
    if (s->env->cluster != NULL) {
        struct cluster_metadata_stats cs;
        cluster_metadata_stats(s->env->cluster, &cs);
        struct prom_label running = {"state", "running"}, down = {"state", "down"};
        prom_family(&s->w, "warren_cluster_nodes", "gauge",
                    "The cluster's nodes, by whether this node sees them run");
        prom_u64(&s->w, "warren_cluster_nodes", &running, 1, cs.running);
        prom_u64(&s->w, "warren_cluster_nodes", &down, 1, cs.down);
        prom_gauge(s, "warren_cluster_metadata_leader", "gauge",
                   "1 if this node leads the cluster's metadata Raft group", cs.leader);
        prom_gauge(s, "warren_cluster_metadata_term_total", "counter",
                   "The metadata Raft group's current term", cs.term);
        prom_gauge(s, "warren_cluster_metadata_commit_index", "gauge",
                   "The last metadata log entry this node knows committed", cs.commit_index);
        prom_gauge(s, "warren_cluster_metadata_last_applied_index", "gauge",
                   "The last metadata log entry this node applied", cs.last_applied);
    }
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

/* The family= and vhost= parameters of query (all of them, repeated ones too). */
static int
prom_detailed_query(struct mgmt_prom *s, const char *query)
{
    if (query == NULL)
        return 0;
    if (evhttp_parse_query_str(query, &s->params) < 0)
        return -1;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &s->params, next) {
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

/* The job's free (struct mgmt_stepped). */
static void
prom_free(struct mgmt_stepped *base)
{
    struct mgmt_prom *s = (struct mgmt_prom *)base;
    evhttp_clear_headers(&s->params);
    free(s->names);
    mgmt_walk_clear(&s->walk);
    free(s->c);
    free(s->conn);
    free(s);
}

/* The job's step (struct mgmt_stepped): 0 while there is more, 200 once the text is whole,
 * 500 on ENOMEM (logged). */
static int
prom_step(struct mgmt_stepped *base, struct evbuffer *out, unsigned budget_us)
{
    struct mgmt_prom *s = (struct mgmt_prom *)base;
    uint64_t until = mgmt_now_us() + budget_us;
    s->w.buf = out;
    if (!s->summed) {
        if (!prom_walk_step(s, &s->walk, until, prom_on_queue_sum))
            return 0;
        s->summed = true;
    }
    if (!s->started && s->all)
        prom_node(s);
    s->started = true;
    if (!prom_write_families(s, until))
        return s->w.failed ? 500 : 0;
    if (s->failed) {
        log_msg(LOG_ERROR, "management: out of memory for a Prometheus scrape");
        return 500;
    }
    if (s->all) {
        prom_gauge(s, "rabbitmq_connections", "gauge", "Connections currently open", s->conns);
        prom_gauge(s, "rabbitmq_channels", "gauge", "Channels currently open", s->chans);
        prom_gauge(s, "rabbitmq_consumers", "gauge", "Consumers currently connected", s->consumers);
        prom_gauge(s, "rabbitmq_queues", "gauge", "Queues available", s->queues);
    }
    prom_build_identity(s);
    if (s->all) {
        prom_global(s);
        prom_warren(s);
    }
    if (s->w.failed) {
        log_msg(LOG_ERROR, "management: out of memory writing Prometheus metrics");
        return 500;
    }
    return 200;
}

int
mgmt_prom_start(const struct mgmt_env *env, const char *path, const char *query,
                struct mgmt_stepped **out)
{
    *out = NULL;
    struct mgmt_prom *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto nomem;
    s->base.step = prom_step;
    s->base.free = prom_free;
    TAILQ_INIT(&s->params);
    s->env = env;
    if (strcmp(path, "/metrics") == 0 || strcmp(path, "/metrics/") == 0) {
        s->all = true;
    } else if (strcmp(path, "/metrics/per-object") == 0) {
        s->all = s->per_object = true;
    } else if (strcmp(path, "/metrics/detailed") == 0) {
        s->per_object = s->detailed = true;
        if (prom_detailed_query(s, query) < 0) {
            prom_free(&s->base);
            return 400;
        }
    } else {
        prom_free(&s->base);
        return 404;
    }
    for (int f = 0; s->all && f < PROM_N_FAMILIES; f++)
        s->families[f] = true;
    s->summed = !s->all; /* /metrics/detailed shows no sums nor totals */
    prom_take(s);
    if (s->failed) {
        prom_free(&s->base);
        goto nomem;
    }
    *out = &s->base;
    return 200;
nomem:
    log_msg(LOG_ERROR, "management: out of memory for a Prometheus scrape");
    return 500;
}
