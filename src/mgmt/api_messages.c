/* Messages through the HTTP API, as RabbitMQ 3.10's management plugin moves them
 * (rabbit_mgmt_wm_exchange_publish.erl, rabbit_mgmt_wm_queue_get.erl):
 *   POST /api/exchanges/{vhost}/{name}/publish  {routing_key, properties, payload,
 *        payload_encoding "string"|"base64"} -> {"routed": bool}; amq.default is ""
 *   POST /api/queues/{vhost}/{name}/get         {count, ackmode, encoding "auto"|"base64",
 *        truncate} -> [{payload_bytes, redelivered, exchange, routing_key, message_count,
 *        properties, payload, payload_encoding}]
 * RabbitMQ runs both over an AMQP channel of its own; Warren takes the same paths an AMQP
 * channel does: the publish pipeline (publish.h) with the checks of basic.publish and its
 * content header, no confirm and no mandatory; basic.get's queue_cmd_deliver and the
 * settlement an AMQP client would send (ack, reject, requeue). A message's body is the one
 * allocation the queues share. While a memory or disk alarm is on, publishing answers 503. A failed
 * AMQP check answers 400 with "<code> <text>", as RabbitMQ's channel errors do here. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mgmt_int.h"
#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/msg.h"
#include "warren/net.h"
#include "warren/publish.h"
#include "warren/queue.h"
#include "warren/queue_args.h"
#include "warren/vhost.h"
#include "warren/wire_gen.h"

/* Answers 400 as RabbitMQ does when its channel closed: "406 PRECONDITION_FAILED - text". */
static void
api_msg_amqp_error(struct mgmt_req *r, uint16_t code, const char *text)
{
    char reason[700];
    snprintf(reason, sizeof(reason), "%u %s - %.600s", code, wire_reply_name(code), text);
    mgmt_bad_request(r, reason);
}

/* Replies 400 {"error":"bad_request","reason":[what, value]} (RabbitMQ's tuples). */
static void
api_msg_bad_pair(struct mgmt_req *r, const char *what, const char *value)
{
    r->reply(r, 400, json_pack("{s:s, s:[s,s]}", "error", "bad_request", "reason", what, value));
}

/* The JSON properties of a publish as basic properties in *p, their strings borrowed from
 * props, the headers table encoded into hbuf (ADMIN_ARGS_MAX bytes). Unknown keys are
 * ignored, as RabbitMQ ignores them. 0, or -1 after replying 400. */
static int
api_msg_props(struct mgmt_req *r, json_t *props, struct wire_basic_props *p, uint8_t *hbuf)
{
    static const struct {
        const char *key;
        uint16_t flag;
        size_t off;
    } strs[] = {
        {"content_type", WIRE_BASIC_CONTENT_TYPE_FLAG,
         offsetof(struct wire_basic_props, content_type)},
        {"content_encoding", WIRE_BASIC_CONTENT_ENCODING_FLAG,
         offsetof(struct wire_basic_props, content_encoding)},
        {"correlation_id", WIRE_BASIC_CORRELATION_ID_FLAG,
         offsetof(struct wire_basic_props, correlation_id)},
        {"reply_to", WIRE_BASIC_REPLY_TO_FLAG, offsetof(struct wire_basic_props, reply_to)},
        {"expiration", WIRE_BASIC_EXPIRATION_FLAG, offsetof(struct wire_basic_props, expiration)},
        {"message_id", WIRE_BASIC_MESSAGE_ID_FLAG, offsetof(struct wire_basic_props, message_id)},
        {"type", WIRE_BASIC_TYPE_FLAG, offsetof(struct wire_basic_props, type)},
        {"user_id", WIRE_BASIC_USER_ID_FLAG, offsetof(struct wire_basic_props, user_id)},
        {"app_id", WIRE_BASIC_APP_ID_FLAG, offsetof(struct wire_basic_props, app_id)},
        {"cluster_id", WIRE_BASIC_CLUSTER_ID_FLAG, offsetof(struct wire_basic_props, cluster_id)},
    };
    static const struct {
        const char *key;
        uint16_t flag;
        int64_t max;
    } ints[] = {
        {"delivery_mode", WIRE_BASIC_DELIVERY_MODE_FLAG, 255},
        {"priority", WIRE_BASIC_PRIORITY_FLAG, 255},
        {"timestamp", WIRE_BASIC_TIMESTAMP_FLAG, INT64_MAX},
    };
    memset(p, 0, sizeof(*p));
    if (!json_is_object(props)) /* [] is how RabbitMQ shows no properties: take it back */
        return 0;
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        json_t *v = json_object_get(props, strs[i].key);
        if (v == NULL)
            continue;
        const char *s = json_string_value(v);
        if (s == NULL || json_string_length(v) > 255) {
            api_msg_bad_pair(r, "not_string", strs[i].key);
            return -1;
        }
        *(struct wire_str *)((char *)p + strs[i].off) =
            (struct wire_str){(const uint8_t *)s, (uint32_t)json_string_length(v)};
        p->flags |= strs[i].flag;
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_t *v = json_object_get(props, ints[i].key);
        if (v == NULL)
            continue;
        json_int_t n = json_integer_value(v);
        if (!json_is_integer(v) || n < 0 || n > ints[i].max) {
            api_msg_bad_pair(r, "not_int", ints[i].key);
            return -1;
        }
        if (ints[i].flag == WIRE_BASIC_DELIVERY_MODE_FLAG)
            p->delivery_mode = (uint8_t)n;
        else if (ints[i].flag == WIRE_BASIC_PRIORITY_FLAG)
            p->priority = (uint8_t)n;
        else
            p->timestamp = (uint64_t)n;
        p->flags |= ints[i].flag;
    }
    json_t *h = json_object_get(props, "headers");
    if (h != NULL) {
        char why[200];
        json_t *wrap = json_pack("{s:O}", "arguments", h);
        int rc = wrap != NULL ? admin_json_args(wrap, hbuf, &p->headers, why, sizeof(why)) : -1;
        json_decref(wrap);
        if (rc < 0) {
            mgmt_bad_request(r, wrap != NULL ? why : "out of memory");
            return -1;
        }
        p->flags |= WIRE_BASIC_HEADERS_FLAG;
    }
    return 0;
}

/* The payload of a publish, decoded into a new message of props (encoded) for exchange and
 * rk. One reference, the caller's; NULL after replying (bad base64, ENOMEM). */
static struct msg *
api_msg_make(struct mgmt_req *r, json_t *body, const struct wire_basic_props *p,
             const uint8_t *props, uint32_t props_len, struct wire_str exchange, struct wire_str rk)
{
    json_t *pj = json_object_get(body, "payload");
    const char *enc = json_string_value(json_object_get(body, "payload_encoding"));
    const char *payload = json_string_value(pj);
    if (payload == NULL) {
        api_msg_bad_pair(r, "not_string", "payload");
        return NULL;
    }
    size_t n = json_string_length(pj);
    bool b64 = enc != NULL && strcmp(enc, "base64") == 0;
    if (!b64 && (enc == NULL || strcmp(enc, "string") != 0)) {
        api_msg_bad_pair(r, "unsupported_encoding", enc != NULL ? enc : "");
        return NULL;
    }
    uint64_t len = n;
    if (b64) {
        if (n % 4 != 0 || n > INT32_MAX) {
            api_msg_bad_pair(r, "not_base64", payload);
            return NULL;
        }
        len = n / 4 * 3 - (n > 0 && payload[n - 1] == '=') - (n > 1 && payload[n - 2] == '=');
    }
    uint8_t mode = (p->flags & WIRE_BASIC_DELIVERY_MODE_FLAG) ? p->delivery_mode : 1;
    uint8_t prio = (p->flags & WIRE_BASIC_PRIORITY_FLAG) ? p->priority : 0;
    struct msg *m = msg_new(props, props_len, mode, prio, exchange, rk, len);
    if (m == NULL) {
        mgmt_nomem(r);
        return NULL;
    }
    if (!b64) {
        memcpy(m->body, payload, n);
    } else if (n > 0) {
        /* EVP_DecodeBlock writes the padding's zero bytes too: decode into room for them. */
        uint8_t *tmp = malloc(n / 4 * 3);
        int got = tmp != NULL ? EVP_DecodeBlock(tmp, (const unsigned char *)payload, (int)n) : -1;
        if (got < 0) {
            free(tmp);
            msg_unref(&m);
            if (tmp == NULL)
                mgmt_nomem(r);
            else
                api_msg_bad_pair(r, "not_base64", payload);
            return NULL;
        }
        memcpy(m->body, tmp, len);
        free(tmp);
    }
    msg_body_filled(m, (uint32_t)len);
    return m;
}

/* The checks basic.publish and its content header make (chan_publish_begin,
 * chan_publish_header), in RabbitMQ's order. x: the exchange (NULL: the default one). 0, or
 * -1 after replying. */
static int
api_msg_publish_allowed(struct mgmt_req *r, const struct vhost *v, const struct exch *x,
                        struct wire_str rk, const struct wire_basic_props *p, int64_t *expiration)
{
    const char *name = x != NULL ? x->name : "amq.default";
    char why[320];
    if (r->user != NULL) {
        const struct auth_perm *perm = auth_perm_find(r->user, v->name);
        if (perm == NULL || !auth_perm_allows(perm, AUTH_WRITE, name, strlen(name))) {
            snprintf(why, sizeof(why),
                     "access to exchange '%s' in vhost '%s' refused for user '%s'", name, v->name,
                     auth_user_name(r->user));
            api_msg_amqp_error(r, WIRE_ACCESS_REFUSED, why);
            return -1;
        }
    }
    if (x != NULL && x->internal) {
        snprintf(why, sizeof(why), "cannot publish to internal exchange '%s' in vhost '%s'",
                 x->name, v->name);
        api_msg_amqp_error(r, WIRE_ACCESS_REFUSED, why);
        return -1;
    }
    if (r->user != NULL && x != NULL && x->type == EXCH_TOPIC &&
        !auth_topic_allows(r->user, v->name, x->name, x->name_len, AUTH_WRITE, rk.ptr, rk.len,
                           NULL)) {
        snprintf(why, sizeof(why),
                 "access to topic '%.*s' in exchange '%s' in vhost '%s' refused for user '%s'",
                 WIRE_STR_ARG(rk), x->name, v->name, auth_user_name(r->user));
        api_msg_amqp_error(r, WIRE_ACCESS_REFUSED, why);
        return -1;
    }
    if (r->user != NULL && (p->flags & WIRE_BASIC_USER_ID_FLAG) &&
        !wire_str_eq(p->user_id, auth_user_name(r->user)) &&
        !auth_user_has_tag(r->user, "impersonator")) {
        snprintf(why, sizeof(why), "user_id property set to '%.*s' but authenticated user was '%s'",
                 WIRE_STR_ARG(p->user_id), auth_user_name(r->user));
        api_msg_amqp_error(r, WIRE_PRECONDITION_FAILED, why);
        return -1;
    }
    if (((p->flags & WIRE_BASIC_EXPIRATION_FLAG) &&
         queue_args_expiration(p->expiration, expiration, why, sizeof(why)) < 0) ||
        (p->headers.len > 0 && publish_check_header_routes(p->headers, why, sizeof(why)) < 0)) {
        api_msg_amqp_error(r, WIRE_PRECONDITION_FAILED, why);
        return -1;
    }
    return 0;
}

void
mgmt_api_exchange_publish(struct mgmt_req *r)
{
    static const char *const keys[] = {"routing_key", "properties", "payload", "payload_encoding"};
    char missing[200];
    json_t *body = mgmt_body_nul(r);
    if (body == NULL)
        return;
    uint8_t *hbuf = NULL, *pbuf = NULL;
    struct msg *m = NULL;
    struct vhost *v;
    const struct exch *x = NULL;
    json_t *rkj = json_object_get(body, "routing_key");
    if (mgmt_keys_missing(body, keys, 4, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
        goto out;
    }
    if ((v = mgmt_vhost_find(r, r->segs[1])) == NULL || !mgmt_vhost_visible(r, v->name)) {
        mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        goto out;
    }
    /* An AMQP publisher is blocked while an alarm is on; RabbitMQ's HTTP publish then hangs
     * on its blocked channel. Refusing at once keeps the memory bounded and the client told. */
    bool mem_alarm = false, disk_alarm = false;
    if (r->env->net != NULL)
        net_server_alarms(r->env->net, &mem_alarm, &disk_alarm);
    if (mem_alarm || disk_alarm) {
        mgmt_reply_error(r, 503, "service_unavailable",
                         mem_alarm ? "resource alarm in effect: memory, publishing is blocked"
                                   : "resource alarm in effect: disk, publishing is blocked");
        goto out;
    }
    if (strcmp(r->segs[2], "amq.default") != 0 &&
        (x = vhost_exch_find(v, (struct wire_str){(const uint8_t *)r->segs[2],
                                                  (uint32_t)strlen(r->segs[2])})) == NULL) {
        char why[600];
        snprintf(why, sizeof(why), "no exchange '%.255s' in vhost '%.255s'", r->segs[2], v->name);
        api_msg_amqp_error(r, WIRE_NOT_FOUND, why);
        goto out;
    }
    const char *rk = json_string_value(rkj);
    if (rk == NULL || json_string_length(rkj) > 255) {
        api_msg_bad_pair(r, "not_string", "routing_key");
        goto out;
    }
    struct wire_str wrk = {(const uint8_t *)rk, (uint32_t)json_string_length(rkj)};
    struct wire_basic_props p;
    int64_t expiration = -1;
    if ((hbuf = malloc(ADMIN_ARGS_MAX)) == NULL || (pbuf = malloc(ADMIN_ARGS_MAX + 4096)) == NULL) {
        mgmt_nomem(r);
        goto out;
    }
    if (api_msg_props(r, json_object_get(body, "properties"), &p, hbuf) < 0 ||
        api_msg_publish_allowed(r, v, x, wrk, &p, &expiration) < 0)
        goto out;
    struct wire_writer w;
    wire_writer_init(&w, pbuf, ADMIN_ARGS_MAX + 4096);
    if (wire_basic_props_encode(&p, &w) < 0 || w.overflow) {
        mgmt_bad_request(r, "properties too large");
        goto out;
    }
    uint32_t props_len = (uint32_t)wire_writer_len(&w);
    struct wire_str ex = x != NULL ? (struct wire_str){(const uint8_t *)x->name, x->name_len}
                                   : (struct wire_str){NULL, 0};
    if ((m = api_msg_make(r, body, &p, pbuf, props_len, ex, wrk)) == NULL)
        goto out;
    if (p.flags & WIRE_BASIC_HEADERS_FLAG) {
        struct wire_basic_props again;
        struct wire_error err;
        if (wire_basic_props_decode(pbuf, props_len, &again, &err) == 0)
            msg_set_headers(m, pbuf, again.headers);
    }
    m->expiration_ms = expiration;
    struct route_result route = {0};
    struct publish_outcome outcome = {0};
    stats_add(&v->stats, STATS_PUBLISH, 1);
    enum publish_status st = publish_message(v, &m, &route, &outcome);
    route_result_free(&route);
    if (st == PUBLISH_NOMEM) {
        mgmt_nomem(r);
    } else if (st == PUBLISH_NO_EXCHANGE) {
        api_msg_amqp_error(r, WIRE_NOT_FOUND, "exchange deleted while publishing");
    } else {
        bool routed = outcome.n_queues > 0 || outcome.n_refused > 0;
        if (!routed)
            stats_add(&v->stats, STATS_DROP_UNROUTABLE, 1);
        mgmt_reply_json(r, json_pack("{s:b}", "routed", routed));
    }
out:
    msg_unref(&m);
    free(pbuf);
    free(hbuf);
    json_decref(body);
}

/* What a get does with the messages it took (RabbitMQ's ackmode names). */
enum api_ackmode {
    API_ACK_REQUEUE_TRUE = 0, /* left unacked, requeued when RabbitMQ's channel closes */
    API_ACK_REQUEUE_FALSE,    /* basic.get with no_ack */
    API_REJECT_REQUEUE_TRUE,  /* basic.reject requeue=true */
    API_REJECT_REQUEUE_FALSE, /* basic.reject requeue=false: dead-lettered if so configured */
};

/* A message's properties as rabbit_mgmt_format:basic_properties shows them: the ones present,
 * headers as a table; [] when there are none. A new value; NULL on ENOMEM. */
static json_t *
api_msg_props_json(const struct msg *m)
{
    struct wire_basic_props p;
    struct wire_error err;
    if (m->props_len == 0 || wire_basic_props_decode(m->props, m->props_len, &p, &err) < 0 ||
        p.flags == 0)
        return json_array();
    json_t *o = json_object();
    const struct {
        const char *key;
        uint16_t flag;
        struct wire_str v;
    } strs[] = {
        {"content_type", WIRE_BASIC_CONTENT_TYPE_FLAG, p.content_type},
        {"content_encoding", WIRE_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding},
        {"correlation_id", WIRE_BASIC_CORRELATION_ID_FLAG, p.correlation_id},
        {"reply_to", WIRE_BASIC_REPLY_TO_FLAG, p.reply_to},
        {"expiration", WIRE_BASIC_EXPIRATION_FLAG, p.expiration},
        {"message_id", WIRE_BASIC_MESSAGE_ID_FLAG, p.message_id},
        {"type", WIRE_BASIC_TYPE_FLAG, p.type},
        {"user_id", WIRE_BASIC_USER_ID_FLAG, p.user_id},
        {"app_id", WIRE_BASIC_APP_ID_FLAG, p.app_id},
        {"cluster_id", WIRE_BASIC_CLUSTER_ID_FLAG, p.cluster_id},
    };
    int rc = o != NULL ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < sizeof(strs) / sizeof(strs[0]); i++)
        if (p.flags & strs[i].flag)
            rc = json_object_set_new(
                o, strs[i].key, json_stringn_nocheck((const char *)strs[i].v.ptr, strs[i].v.len));
    if (rc == 0 && (p.flags & WIRE_BASIC_DELIVERY_MODE_FLAG))
        rc = json_object_set_new(o, "delivery_mode", json_integer(p.delivery_mode));
    if (rc == 0 && (p.flags & WIRE_BASIC_PRIORITY_FLAG))
        rc = json_object_set_new(o, "priority", json_integer(p.priority));
    if (rc == 0 && (p.flags & WIRE_BASIC_TIMESTAMP_FLAG))
        rc = json_object_set_new(o, "timestamp", json_integer((json_int_t)p.timestamp));
    if (rc == 0 && (p.flags & WIRE_BASIC_HEADERS_FLAG))
        rc = json_object_set_new(o, "headers", mgmt_table_json(p.headers.ptr, p.headers.len, 0));
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* One got message as RabbitMQ lists it; the payload cut to trunc bytes (negative: whole),
 * as a string when base64 is false and it is UTF-8, else in base64. NULL on ENOMEM. */
static json_t *
api_msg_got_json(const struct qentry *e, const struct msg *m, uint64_t message_count, bool base64,
                 int64_t trunc)
{
    size_t n = m->body_len;
    if (trunc >= 0 && (uint64_t)trunc < n)
        n = (size_t)trunc;
    json_t *payload = base64 ? NULL : json_stringn((const char *)m->body, n);
    const char *encoding = "string";
    if (payload == NULL) { /* not UTF-8, or base64 asked for */
        char *b = malloc(4 * ((n + 2) / 3) + 1);
        if (b == NULL)
            return NULL;
        EVP_EncodeBlock((unsigned char *)b, m->body, (int)n);
        payload = json_string(b);
        free(b);
        encoding = "base64";
    }
    return json_pack("{s:I, s:b, s:s%, s:s%, s:I, s:o?, s:o?, s:s}", "payload_bytes",
                     (json_int_t)m->body_len, "redelivered", e->redelivered, "exchange",
                     (const char *)m->exchange, (size_t)m->exchange_len, "routing_key",
                     (const char *)m->routing_key, (size_t)m->routing_key_len, "message_count",
                     (json_int_t)message_count, "properties", api_msg_props_json(m), "payload",
                     payload, "payload_encoding", encoding);
}

int
mgmt_ackmode_parse(const char *s)
{
    static const char *const names[] = {"ack_requeue_true", "ack_requeue_false",
                                        "reject_requeue_true", "reject_requeue_false"};
    for (int i = 0; s != NULL && i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int
mgmt_json_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    /* digits with an optional sign, as list_to_integer takes them (strtoll alone would skip
     * leading spaces) */
    if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '-'))
        return -1;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = n;
    return 0;
}

void
mgmt_api_queue_get(struct mgmt_req *r)
{
    static const char *const keys[] = {"ackmode", "count", "encoding"};
    char missing[200];
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    json_t *arr = NULL;
    struct qentry **taken = NULL;
    int64_t count, trunc = -1;
    int ackmode = mgmt_ackmode_parse(json_string_value(json_object_get(body, "ackmode")));
    const char *enc = json_string_value(json_object_get(body, "encoding"));
    json_t *tj = json_object_get(body, "truncate");
    struct vhost *v;
    if (mgmt_keys_missing(body, keys, 3, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
        goto out;
    }
    if ((v = mgmt_vhost_find(r, r->segs[1])) == NULL || !mgmt_vhost_visible(r, v->name)) {
        mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        goto out;
    }
    if (ackmode < 0) {
        mgmt_bad_request(r, "ackmode must be one of ack_requeue_true, ack_requeue_false, "
                            "reject_requeue_true, reject_requeue_false");
        goto out;
    }
    if (enc == NULL || (strcmp(enc, "auto") != 0 && strcmp(enc, "base64") != 0)) {
        mgmt_bad_request(r, "Unsupported encoding. Please use auto or base64.");
        goto out;
    }
    if (mgmt_json_int(json_object_get(body, "count"), &count) < 0) {
        api_msg_bad_pair(r, "not_integer", json_string_value(json_object_get(body, "count")));
        goto out;
    }
    if (tj != NULL && !json_is_null(tj) && (mgmt_json_int(tj, &trunc) < 0 || trunc < 0)) {
        api_msg_bad_pair(r, "not_integer", json_string_value(tj) ? json_string_value(tj) : "");
        goto out;
    }
    /* basic.get's checks: read permission, then the queue (another connection's exclusive
     * one is locked, as for any channel but its owner's). */
    struct wire_str qname = {(const uint8_t *)r->segs[2], (uint32_t)strlen(r->segs[2])};
    char why[600];
    if (r->user != NULL) {
        const struct auth_perm *perm = auth_perm_find(r->user, v->name);
        if (perm == NULL || !auth_perm_allows(perm, AUTH_READ, qname.ptr, qname.len)) {
            snprintf(why, sizeof(why),
                     "access to queue '%.255s' in vhost '%.255s' refused for "
                     "user '%s'",
                     r->segs[2], v->name, auth_user_name(r->user));
            api_msg_amqp_error(r, WIRE_ACCESS_REFUSED, why);
            goto out;
        }
    }
    struct queue *q = vhost_queue_find(v, qname);
    if (q == NULL) {
        snprintf(why, sizeof(why), "NOT_FOUND - no queue '%.255s' in vhost '%.255s'", r->segs[2],
                 v->name);
        mgmt_reply_error(r, 404, "not_found", why);
        goto out;
    }
    if (q->owner != NULL) {
        snprintf(why, sizeof(why),
                 "cannot obtain exclusive access to locked queue '%s' in vhost "
                 "'%s'",
                 q->name, v->name);
        api_msg_amqp_error(r, WIRE_RESOURCE_LOCKED, why);
        goto out;
    }
    queue_used(q);
    /* RabbitMQ stops at get-empty: a negative count takes every ready message. */
    uint64_t want = count < 0 ? q->n_ready : (uint64_t)count;
    if (want > q->n_ready)
        want = q->n_ready;
    arr = json_array();
    taken = calloc(want > 0 ? want : 1, sizeof(*taken));
    if (arr == NULL || taken == NULL) {
        mgmt_nomem(r);
        goto out;
    }
    bool no_ack = ackmode == API_ACK_REQUEUE_FALSE;
    size_t n_taken = 0;
    bool nomem = false;
    while (n_taken < want && !nomem) {
        /* Each is taken before the next is asked for, as the unacked gets of RabbitMQ's
         * channel are: a count above the queue's depth never shows one message twice. The
         * message count is the queue's ready messages after that one left. */
        struct qentry *e = q->n_ready > 0 ? queue_cmd_deliver(q) : NULL;
        if (e == NULL) /* paged out and not read back yet: the reply stops here */
            break;
        taken[n_taken++] = e;
        stats_add(&q->stats, no_ack ? STATS_GET_NO_ACK : STATS_GET, 1);
        stats_add(&v->stats, no_ack ? STATS_GET_NO_ACK : STATS_GET, 1);
        if (e->redelivered) {
            stats_add(&q->stats, STATS_REDELIVER, 1);
            stats_add(&v->stats, STATS_REDELIVER, 1);
        }
        json_t *o = api_msg_got_json(e, e->msg, q->n_ready, strcmp(enc, "base64") == 0, trunc);
        nomem = o == NULL || json_array_append_new(arr, o) < 0;
    }
    /* Settled as the AMQP client of RabbitMQ's would have: no_ack at once, the others
     * rejected or requeued (an ack_requeue_true get closes its channel: a requeue). */
    for (size_t i = 0; i < n_taken; i++) {
        if (no_ack)
            queue_cmd_settle(taken[i]);
        else if (ackmode == API_REJECT_REQUEUE_FALSE)
            queue_cmd_reject(taken[i]);
        else
            queue_cmd_requeue(taken[i]);
    }
    if (n_taken > 0 && !no_ack)
        queue_dispatch(q);
    if (nomem) {
        mgmt_nomem(r);
        goto out;
    }
    r->reply(r, 200, arr);
    arr = NULL;
out:
    free(taken);
    json_decref(arr);
    json_decref(body);
}
