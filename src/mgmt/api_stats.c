/* message_stats as RabbitMQ 3.10's management plugin shows them (rabbit_mgmt_format: each
 * counter with its X_details {"rate": per second}, and deliver_get, the sum of deliver,
 * deliver_no_ack, get and get_no_ack), from the counters and rates of warren/stats.h; and
 * the routes made of little else: GET /api/channels, /api/vhosts/{vhost}/channels,
 * /api/connections/{name}/channels, /api/consumers[/{vhost}]. A sample of RabbitMQ's replies is in
 * tests/integration/data/rabbitmq-3.10-stats.json. */
#include "config.h"

#include <string.h>

#include "mgmt_int.h"
#include "warren/auth.h"
#include "warren/net.h"

#define F(x) (1u << (x))
static const unsigned mgmt_stats_fields[] = {
    [MGMT_STATS_QUEUE] = F(STATS_PUBLISH) | F(STATS_DELIVER) | F(STATS_DELIVER_NO_ACK) |
                         F(STATS_GET) | F(STATS_GET_NO_ACK) | F(STATS_GET_EMPTY) | F(STATS_ACK) |
                         F(STATS_REDELIVER),
    [MGMT_STATS_EXCHANGE] = F(STATS_PUBLISH_IN) | F(STATS_PUBLISH_OUT),
    [MGMT_STATS_CHANNEL] = (F(STATS_N) - 1) & ~(F(STATS_PUBLISH_IN) | F(STATS_PUBLISH_OUT)),
};
#undef F

/* Sets name and name_details {"rate"} in o. 0, or -1 on ENOMEM. */
static int
api_stat_set(json_t *o, const char *name, uint64_t n, double rate)
{
    char details[64];
    snprintf(details, sizeof(details), "%s_details", name);
    return json_object_set_new(o, name, json_integer((json_int_t)n)) < 0 ||
                   json_object_set_new(o, details, json_pack("{s:f}", "rate", rate)) < 0
               ? -1
               : 0;
}

json_t *
mgmt_message_stats(const struct stats_obj *o, enum mgmt_stats_kind kind)
{
    if (!stats_obj_any(o))
        return NULL;
    unsigned fields = mgmt_stats_fields[kind];
    json_t *j = json_object();
    for (int f = 0; j != NULL && f < STATS_N; f++)
        if ((fields & (1u << f)) && api_stat_set(j, stats_name(f), o->n[f], stats_rate(o, f)) < 0)
            goto nomem;
    if (j != NULL && kind != MGMT_STATS_EXCHANGE) {
        static const enum stats_field dg[] = {STATS_DELIVER, STATS_DELIVER_NO_ACK, STATS_GET,
                                              STATS_GET_NO_ACK};
        uint64_t n = 0;
        double rate = 0;
        for (size_t i = 0; i < sizeof(dg) / sizeof(dg[0]); i++) {
            n += o->n[dg[i]];
            rate += stats_rate(o, dg[i]);
        }
        if (api_stat_set(j, "deliver_get", n, rate) < 0)
            goto nomem;
    }
    return j;
nomem:
    json_decref(j);
    return NULL;
}

/* ---- channels ---- */

struct api_chans {
    const struct mgmt_req *r;
    const char *vhost; /* only this vhost's, or NULL */
    const char *conn;  /* only this connection's, or NULL */
    bool conn_seen;    /* conn is one r may see */
    json_t *arr;
};

/* Whether r may see a channel (or consumer) of connection ci: monitoring users see all,
 * others their own (RabbitMQ's rule for connections and channels). */
static bool
api_chan_visible(const struct api_chans *l, const struct net_conn_info *ci)
{
    if (l->vhost != NULL && strcmp(l->vhost, ci->vhost) != 0)
        return false;
    if (l->conn != NULL && strcmp(l->conn, ci->name) != 0)
        return false;
    return mgmt_is_monitor(l->r) || strcmp(ci->user, auth_user_name(l->r->user)) == 0;
}

/* The channel's name as RabbitMQ writes it: its connection's, then " (number)". */
static void
api_chan_name(char *buf, size_t cap, const struct net_chan_info *ci)
{
    snprintf(buf, cap, "%s (%u)", ci->conn->name, (unsigned)ci->number);
}

static void
api_chan_entry(void *arg, const struct net_chan_info *ci)
{
    struct api_chans *l = arg;
    if (l->arr == NULL || !api_chan_visible(l, ci->conn))
        return;
    const char *node = mgmt_node_name(l->r->env);
    char name[512];
    api_chan_name(name, sizeof(name), ci);
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:{s:s, s:s, s:I}, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I}",
        "name", name, "node", node, "number", (json_int_t)ci->number, "user", ci->conn->user,
        "vhost", ci->conn->vhost, "connection_details", "name", ci->conn->name, "peer_host",
        ci->conn->peer_host, "peer_port", (json_int_t)ci->conn->peer_port, "state", "running",
        "confirm", ci->confirm, "transactional", ci->transactional, "consumer_count",
        (json_int_t)ci->consumer_count, "prefetch_count", (json_int_t)ci->prefetch_count,
        "global_prefetch_count", (json_int_t)ci->global_prefetch_count, "messages_unacknowledged",
        (json_int_t)ci->messages_unacknowledged, "messages_unconfirmed",
        (json_int_t)ci->messages_unconfirmed, "messages_uncommitted", (json_int_t)0,
        "acks_uncommitted", (json_int_t)0);
    json_t *ms = o != NULL ? mgmt_message_stats(ci->stats, MGMT_STATS_CHANNEL) : NULL;
    if (o == NULL || (ms != NULL && json_object_set_new(o, "message_stats", ms) < 0) ||
        json_array_append_new(l->arr, o) < 0) {
        json_decref(l->arr);
        l->arr = NULL;
    }
}

/* Starts a list of r's channels or consumers in vhost (NULL: every vhost). false once a
 * vhost that is missing or not visible to r was answered 404. */
static bool
api_chans_start(struct api_chans *l, struct mgmt_req *r, const char *vhost)
{
    *l = (struct api_chans){r, vhost, NULL, false, NULL};
    if (vhost != NULL && (mgmt_vhost_find(r, vhost) == NULL || !mgmt_vhost_visible(r, vhost))) {
        mgmt_not_found(r);
        return false;
    }
    l->arr = json_array();
    return true;
}

/* Notes whether the connection l asks for is one its user may see. */
static void
api_chans_conn(void *arg, const struct net_conn_info *ci)
{
    struct api_chans *l = arg;
    if (api_chan_visible(l, ci))
        l->conn_seen = true;
}

/* GET /api/channels, /api/vhosts/{vhost}/channels and /api/connections/{name}/channels (404
 * for a connection that is gone or not the user's; RabbitMQ 3.10 answers 500 there). */
void
mgmt_api_channels(struct mgmt_req *r)
{
    struct api_chans l;
    bool of_conn = strcmp(r->segs[0], "connections") == 0;
    if (!api_chans_start(&l, r, r->n_segs == 3 && !of_conn ? r->segs[1] : NULL))
        return;
    if (of_conn) {
        l.conn = r->segs[1];
        if (r->env->net != NULL)
            net_server_conn_foreach(r->env->net, api_chans_conn, &l);
        if (!l.conn_seen) {
            json_decref(l.arr);
            mgmt_not_found(r);
            return;
        }
    }
    if (r->env->net != NULL && l.arr != NULL)
        net_server_chan_foreach(r->env->net, api_chan_entry, &l);
    mgmt_list_reply(r, l.arr, NULL, true); /* RabbitMQ pages, sorts and filters channels */
}

/* ---- consumers ---- */

static void
api_cons_entry(void *arg, const struct net_cons_info *k)
{
    struct api_chans *l = arg;
    const struct net_conn_info *ci = k->chan->conn;
    if (l->arr == NULL || !api_chan_visible(l, ci) || !mgmt_vhost_visible(l->r, k->vhost))
        return;
    const char *node = mgmt_node_name(l->r->env);
    char name[512];
    api_chan_name(name, sizeof(name), k->chan);
    json_t *args = k->priority != 0 ? json_pack("{s:I}", "x-priority", (json_int_t)k->priority)
                                    : json_object();
    json_t *o = json_pack(
        "{s:s#, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:I, s:s, s:I, s:s}, s:b, s:b, s:b, s:s, s:I, "
        "s:o?}",
        "consumer_tag", k->tag, (int)k->tag_len, "queue", "name", k->queue, "vhost", k->vhost,
        "channel_details", "connection_name", ci->name, "name", name, "node", node, "number",
        (json_int_t)k->chan->number, "peer_host", ci->peer_host, "peer_port",
        (json_int_t)ci->peer_port, "user", ci->user, "ack_required", k->ack_required, "exclusive",
        k->exclusive, "active", 1, "activity_status", "up", "prefetch_count",
        (json_int_t)k->prefetch_count, "arguments", args);
    if (o == NULL || json_array_append_new(l->arr, o) < 0) {
        json_decref(l->arr);
        l->arr = NULL;
    }
}

/* GET /api/consumers[/{vhost}]. */
void
mgmt_api_consumers(struct mgmt_req *r)
{
    struct api_chans l;
    if (!api_chans_start(&l, r, r->n_segs == 2 ? r->segs[1] : NULL))
        return;
    if (r->env->net != NULL && l.arr != NULL)
        net_server_cons_foreach(r->env->net, api_cons_entry, &l);
    mgmt_reply_json(r, l.arr);
}
