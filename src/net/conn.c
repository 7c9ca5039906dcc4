/* An AMQP connection: the protocol header, the connection.start / start-ok / tune / tune-ok /
 * open handshake with RabbitMQ's negotiation rules, heartbeats, frame intake with frame_max
 * enforced, connection exceptions, and both directions of connection.close. Channel frames are
 * handed to chan.c; on a TLS listener, conn_tls.c does the socket's I/O. A connection is never
 * freed inside its own callbacks: it is marked dead and the server's reaper frees it (and with
 * it, everything it held). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "forward.h"
#include "net_int.h"
#include "warren/assert.h"
#include "warren/auth.h"
#include "warren/bytes.h"
#include "warren/conf.h"
#include "warren/msg.h"
#include "warren/tls.h"
#include "warren/vhost.h"

/* Frames before tune-ok may be at most this big (the spec's minimum frame_max): the peer is not
 * authenticated yet and gets no large buffers. */
#define CONN_PRETUNE_FRAME_MAX WIRE_FRAME_MIN_SIZE

static void conn_schedule_resume(struct conn *c);

/* Bounds what is read from the socket but not yet parsed to a little more than one frame of
 * frame_max: a connection whose frames the loop cannot keep up with (it handles at most
 * CONN_FRAMES_PER_EVENT per turn) stops being read, and TCP slows its peer down. This is the
 * broker's publisher flow control. A body frame read straight into its message adds at most
 * its payload, which its message was allocated for already. Takes effect with the next
 * conn_read_update. */
static void
conn_set_input_limit(struct conn *c, uint32_t frame_max)
{
    c->in_limit = CONN_INPUT_SLACK + (frame_max != 0 ? frame_max : (size_t)UINT32_MAX);
}

/* Whether the connection reads now: reading is on and there is room for input (the input
 * buffer is below its limit, or a payload is being read straight into its message). */
static bool
conn_read_wanted(const struct conn *c)
{
    return c->reading && !c->admit_waiting &&
           (c->body.left > 0 || evbuffer_get_length(c->in) < c->in_limit);
}

/* Polls the socket for input while conn_read_wanted. Input that OpenSSL holds already (read
 * ahead, or decrypted past the room there was) is not announced by the socket: it is read in
 * the next loop turn (conn_on_resume), after the loop has polled, as for buffered frames. */
static void
conn_read_update(struct conn *c)
{
    bool want = conn_read_wanted(c);
    if (want && conn_tls_pending(c))
        conn_schedule_resume(c);
    if (want == (event_pending(c->read_ev, EV_READ, NULL) != 0))
        return;
    if (want ? event_add(c->read_ev, NULL) < 0 : event_del(c->read_ev) < 0)
        conn_abort(c, "polling the socket");
}

/* Starts or stops reading the socket: stopped while a resource alarm blocks the connection,
 * once it closes, and after the end of the stream. */
static void
conn_reading(struct conn *c, bool on)
{
    c->reading = on;
    conn_read_update(c);
}

static void
conn_arm_timer(struct conn *c, unsigned msec)
{
    struct timeval tv = {msec / 1000, (msec % 1000) * 1000};
    evtimer_add(c->timer_ev, &tv);
}

size_t
conn_output_len(const struct conn *c)
{
    size_t n = evbuffer_get_length(c->out);
    return c->tls ? n + evbuffer_get_length(bufferevent_get_output(c->bev)) : n;
}

void
conn_drop(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    c->state = CONN_DEAD;
    c->reading = false;
    event_del(c->read_ev);
    bufferevent_disable(c->bev, EV_WRITE);
    /* Channels and exclusive queues are released by the reaper, later in this loop
     * iteration: this may run deep inside a queue's dispatch, which must not see its
     * consumers freed under it. A dead connection's consumers take no messages meanwhile. */
    server_conn_dead(c->server, c);
}

/* A failed login that gets no answer: nothing more is read and the socket closes after
 * CONN_SILENT_CLOSE_SEC, as RabbitMQ does, so that a client guessing passwords waits for each
 * guess rather than retrying at once on the same connection's heels. */
static void
conn_close_silently(struct conn *c)
{
    c->state = CONN_DRAINING;
    conn_schedule_resume(c); /* releases the channels (conn_process_input) */
    conn_reading(c, false);
    conn_arm_timer(c, CONN_SILENT_CLOSE_SEC * 1000);
}

/* Stops reading, lets what was written reach the peer, then closes (or gives up after the
 * close timeout for a peer that does not read). */
static void
conn_drain_and_close(struct conn *c)
{
    if (c->state >= CONN_DRAINING)
        return;
    c->state = CONN_DRAINING;
    conn_schedule_resume(c); /* releases the channels (conn_process_input) */
    conn_reading(c, false);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (c->heartbeat_ev != NULL)
        evtimer_del(c->heartbeat_ev);
    conn_tls_close_notify(c); /* (TLS) the last frames, then close_notify */
    if (c->state == CONN_DEAD)
        return;
    if (conn_output_len(c) == 0) {
        conn_drop(c);
        return;
    }
    conn_arm_timer(c, CONN_CLOSE_TIMEOUT_SEC * 1000);
}

void
conn_abort(struct conn *c, const char *what)
{
    log_conn(LOG_ERROR, c, "out of memory %s; dropping the connection", what);
    conn_drop(c);
}

int
conn_send(struct conn *c, uint16_t channel, const struct wire_method *m)
{
    if (c->state == CONN_DEAD)
        return -1;
    if (frame_write_method(c->out, channel, m) < 0) {
        conn_abort(c, "queueing a method");
        return -1;
    }
    c->sent_since_tick = true;
    return 0;
}

/* Sends connection.close and waits for close-ok (or the timeout). */
static void
conn_send_close(struct conn *c, uint16_t code, uint32_t method_id, const char *text)
{
    struct wire_method m = {.id = WIRE_CONNECTION_CLOSE};
    m.u.connection_close.reply_code = code;
    m.u.connection_close.reply_text = (struct wire_str){(const uint8_t *)text, strlen(text)};
    m.u.connection_close.class_id = WIRE_METHOD_CLASS(method_id);
    m.u.connection_close.method_id = WIRE_METHOD_INDEX(method_id);
    if (conn_send(c, 0, &m) < 0)
        return;
    c->state = CONN_CLOSING;
    if (c->heartbeat_ev != NULL)
        evtimer_del(c->heartbeat_ev);
    conn_arm_timer(c, CONN_CLOSE_TIMEOUT_SEC * 1000);
    conn_schedule_resume(c); /* releases the channels (conn_process_input) */
}

void
net_reply_textv(char *dst, size_t cap, uint16_t code, const char *fmt, va_list ap)
{
    const char *name = wire_reply_name(code);
    int n = snprintf(dst, cap, "%s - ", name != NULL ? name : "ERROR");
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    vsnprintf(dst + n, cap - (size_t)n, fmt, ap);
}

int
conn_raisev(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, va_list ap)
{
    char text[256]; /* a reply-text is a shortstr: 255 bytes at most */
    net_reply_textv(text, sizeof(text), code, fmt, ap);
    if (c->state >= CONN_CLOSING)
        return -1; /* already on the way out: the first error is the one reported */
    log_conn(LOG_ERROR, c, "closing: %s", text);
    if (c->state < CONN_AWAIT_OPEN) {
        /* Not tuned yet: like RabbitMQ, the peer gets no explanation before it has logged in
         * and agreed on frame sizes. */
        conn_drop(c);
        return -1;
    }
    conn_send_close(c, code, method_id, text);
    return -1;
}

int
conn_raise(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_raisev(c, code, method_id, fmt, ap);
    va_end(ap);
    return -1;
}

/* Continues parsing buffered input in the NEXT loop iteration, after the loop has polled the
 * sockets: a publisher with a full input buffer thus takes turns with the consumers whose acks
 * free room for deliveries, instead of monopolising the loop (an event made active now would
 * run in this same iteration). */
static void
conn_schedule_resume(struct conn *c)
{
    static const struct timeval now = {0, 0};
    evtimer_add(c->resume_ev, &now);
}

void
conn_resume(struct conn *c)
{
    if (c->store_paused == 0)
        conn_schedule_resume(c);
}

void
conn_block(struct conn *c)
{
    if (c->blocked || c->state != CONN_OPEN)
        return;
    c->blocked = true;
    conn_reading(c, false);
    const char *reason = server_alarm_reason(c->server);
    log_conn(LOG_INFO, c, "blocked: %s", reason);
    if (c->cap_connection_blocked) {
        struct wire_method m = {.id = WIRE_CONNECTION_BLOCKED};
        m.u.connection_blocked.reason =
            (struct wire_str){(const uint8_t *)reason, (uint32_t)strlen(reason)};
        conn_send(c, 0, &m);
    }
}

void
conn_unblock(struct conn *c)
{
    if (!c->blocked)
        return;
    c->blocked = false;
    if (c->state != CONN_OPEN)
        return;
    log_conn(LOG_INFO, c, "unblocked");
    if (c->cap_connection_blocked) {
        struct wire_method m = {.id = WIRE_CONNECTION_UNBLOCKED};
        conn_send(c, 0, &m);
    }
    if (!c->peer_closed)
        conn_reading(c, true);
    conn_schedule_resume(c); /* frames read before the block are still waiting */
}

void
conn_blocked_check_peer(struct conn *c)
{
    if (!c->blocked || c->peer_hup || c->state != CONN_OPEN)
        return;
    struct pollfd p = {.fd = bufferevent_getfd(c->bev), .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return;
    log_conn(LOG_INFO, c, "client hung up while blocked: handling what it sent, then closing");
    /* What it sent before hanging up is bounded by the socket's buffers: it is read and
     * handled whatever the alarm, as for any client that publishes and closes. The end of
     * the stream (or the reset) then reaches conn_on_event. */
    c->peer_hup = true;
    conn_reading(c, true);
    conn_schedule_resume(c);
}

void
conn_close_forced(struct conn *c, const char *text)
{
    char reply[256];
    snprintf(reply, sizeof(reply), "CONNECTION_FORCED - %s", text);
    switch (c->state) {
    case CONN_AWAIT_OPEN:
    case CONN_OPEN:
        log_conn(LOG_INFO, c, "closing: %s", reply);
        conn_send_close(c, WIRE_CONNECTION_FORCED, 0, reply);
        break;
    case CONN_CLOSING:
    case CONN_DRAINING:
    case CONN_DEAD:
        break;
    default:
        conn_drop(c);
        break;
    }
}

static bool
conn_capability(struct wire_table caps, const char *name)
{
    struct wire_value v;
    return wire_table_get(caps, name, &v) && v.type == WIRE_FIELD_BOOL && v.v.b;
}

/* The mechanisms offered to c in connection.start, space-separated: auth_mechanisms.N in
 * order, EXTERNAL only on a TLS connection whose client certificate was verified. */
static void
conn_mechanisms(const struct conn *c, char *buf, size_t cap)
{
    const struct conf_list *mechs = &c->server->env.conf->auth_mechanisms;
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < mechs->n && n < cap; i++)
        if (strcmp(mechs->items[i], "EXTERNAL") != 0 || conn_tls_peer_verified(c))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " " : "", mechs->items[i]);
}

/* Checks the login in a start-ok: as auth_login does it for the mechanisms offered, and
 * EXTERNAL with the user name from the client certificate (tls_peer_login_name). A mechanism
 * Warren has but did not offer here is refused as RabbitMQ does: "invalid authentication
 * mechanism". */
static enum auth_result
conn_login(struct conn *c, const struct wire_connection_start_ok *so, const struct auth_user **user,
           char *why, size_t whylen)
{
    const struct net_server_env *env = &c->server->env;
    static const char *const known[] = {"PLAIN", "AMQPLAIN", "EXTERNAL"};
    char offered[64];
    conn_mechanisms(c, offered, sizeof(offered));
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (!wire_str_eq(so->mechanism, known[i]))
            continue;
        size_t len = strlen(known[i]);
        const char *at = strstr(offered, known[i]);
        if (at == NULL || (at[len] != ' ' && at[len] != '\0')) {
            snprintf(why, whylen, "invalid authentication mechanism '%s'", known[i]);
            return AUTH_BAD_MECHANISM;
        }
        if (i != 2)
            break;
        char name[1024], reason[128];
        if (tls_peer_login_name(c->ssl, env->conf, name, sizeof(name), reason, sizeof(reason)) <
            0) {
            snprintf(why, whylen, "EXTERNAL login refused: %s", reason);
            return AUTH_REFUSED;
        }
        log_conn(LOG_DEBUG, c, "auth mechanism TLS extracted username '%s' from peer certificate",
                 name);
        c->login_external = true;
        return auth_login_external(env->auth, name, c->peer_is_loopback, user, why, whylen);
    }
    return auth_login(env->auth, so->mechanism, so->response, c->peer_is_loopback, user, why,
                      whylen);
}

static int
conn_on_start_ok(struct conn *c, const struct wire_connection_start_ok *so)
{
    const struct net_server_env *env = &c->server->env;
    struct wire_value caps;
    if (wire_table_get(so->client_properties, "capabilities", &caps) &&
        caps.type == WIRE_FIELD_TABLE) {
        c->cap_auth_failure_close = conn_capability(caps.v.table, "authentication_failure_close");
        c->cap_connection_blocked = conn_capability(caps.v.table, "connection.blocked");
        c->cap_consumer_cancel_notify = conn_capability(caps.v.table, "consumer_cancel_notify");
    }

    const struct auth_user *user = NULL;
    char why[256] = "";
    enum auth_result r = conn_login(c, so, &user, why, sizeof(why));
    if (r != AUTH_OK) {
        char text[256];
        snprintf(text, sizeof(text), "ACCESS_REFUSED - " AUTH_REFUSAL_FMT,
                 WIRE_STR_ARG(so->mechanism));
        log_conn(LOG_ERROR, c, "closing: %s (%s)", r == AUTH_REFUSED ? text : "login failed", why);
        /* Clients that announce authentication_failure_close get a proper connection.close;
         * older ones only understand the socket closing (RabbitMQ does the same). A mechanism
         * we do not offer or a response that does not parse gets no answer at all. Either
         * way the socket closes 3 s later, as in RabbitMQ. */
        if (r == AUTH_REFUSED && c->cap_auth_failure_close)
            conn_send_close(c, WIRE_ACCESS_REFUSED, 0, text);
        else
            conn_close_silently(c);
        return -1;
    }
    c->user = auth_user_ref((struct auth_user *)user);
    /* Kept for the HTTP API's listing; a copy that fails only leaves the listing without. */
    if (so->client_properties.len > 0 &&
        (c->client_props = malloc(so->client_properties.len)) != NULL) {
        memcpy(c->client_props, so->client_properties.ptr, so->client_properties.len);
        c->client_props_len = so->client_properties.len;
    }
    const struct conf *conf = env->conf;
    struct wire_method m = {.id = WIRE_CONNECTION_TUNE};
    m.u.connection_tune.channel_max = (uint16_t)conf->channel_max;
    m.u.connection_tune.frame_max = conf->frame_max;
    m.u.connection_tune.heartbeat = (uint16_t)conf->heartbeat;
    if (conn_send(c, 0, &m) < 0)
        return -1;
    c->state = CONN_AWAIT_TUNE_OK;
    return 0;
}

/* RabbitMQ's rule for a tune-ok value: at least min (unless 0, "no limit"), and not above the
 * server's limit when the server has one (a client's 0 is above any limit). */
static int
conn_check_tuned(struct conn *c, const char *field, uint32_t client, uint32_t min,
                 uint32_t server_max)
{
    if (client != 0 && client < min)
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_TUNE_OK, "%s=%u < %u min", field,
                          client, min);
    if (server_max != 0 && (client == 0 || client > server_max))
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_TUNE_OK, "%s=%u > %u max", field,
                          client, server_max);
    return 0;
}

/* Heartbeats tick every half interval, as RabbitMQ's do: a heartbeat goes out in any half
 * interval in which nothing else did, and the peer is gone after four silent half intervals. */
#define CONN_HEARTBEAT_TICKS_PER_INTERVAL 2
#define CONN_HEARTBEAT_SILENT_TICKS 4

static void
conn_on_heartbeat_tick(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    /* A blocked connection is not read, so its heartbeats cannot be seen: not missed. */
    if (c->recv_since_tick || c->blocked)
        c->heartbeats_missed = 0;
    else if (++c->heartbeats_missed >= CONN_HEARTBEAT_SILENT_TICKS) {
        /* Nothing arrived since the tick four ticks ago: at least two whole intervals of
         * silence, never fewer. RabbitMQ closes the socket without a frame. */
        log_conn(LOG_ERROR, c, "closing: missed heartbeats from client, timeout: %us",
                 c->heartbeat);
        conn_drop(c);
        return;
    }
    c->recv_since_tick = false;
    if (!c->sent_since_tick) {
        if (frame_write_heartbeat(c->out) < 0) {
            log_conn(LOG_ERROR, c, "cannot queue a heartbeat: out of memory; dropping");
            conn_drop(c);
            return;
        }
    }
    c->sent_since_tick = false;
}

static int
conn_on_tune_ok(struct conn *c, const struct wire_connection_tune_ok *t)
{
    const struct conf *conf = c->server->env.conf;
    /* Past start-ok the peer is authenticated: tune-ok errors are reported to it. */
    c->state = CONN_AWAIT_OPEN;
    if (conn_check_tuned(c, "frame_max", t->frame_max, WIRE_FRAME_MIN_SIZE, conf->frame_max) < 0 ||
        conn_check_tuned(c, "channel_max", t->channel_max, 1, conf->channel_max) < 0)
        return -1;
    c->frame_max = t->frame_max;
    c->channel_max = t->channel_max;
    conn_set_input_limit(c, c->frame_max);
    c->heartbeat = t->heartbeat;
    if (c->heartbeat > 0) {
        c->heartbeat_ev = event_new(c->server->env.base, -1, EV_PERSIST, conn_on_heartbeat_tick, c);
        unsigned half_ms = c->heartbeat * 1000u / CONN_HEARTBEAT_TICKS_PER_INTERVAL;
        struct timeval tv = {half_ms / 1000, (half_ms % 1000) * 1000};
        if (c->heartbeat_ev == NULL || evtimer_add(c->heartbeat_ev, &tv) < 0) {
            log_conn(LOG_ERROR, c, "cannot start heartbeats: out of memory; dropping");
            conn_drop(c);
            return -1;
        }
    }
    return 0;
}

/* connection.open, checked in the order of RabbitMQ's reader (rabbit_reader.erl): the vhost
 * exists and is under its connection limit, the user is under its own, and the user has
 * permissions on the vhost (any: RabbitMQ's internal backend asks for an entry, whatever its
 * patterns). */
static int
conn_on_open(struct conn *c, const struct wire_connection_open *o)
{
    const char *user = auth_user_name(c->user);
    struct vhost *vh = vhost_find(c->server->env.vhosts, o->virtual_host);
    if (vh == NULL)
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_OPEN, "vhost %.*s not found",
                          WIRE_STR_ARG(o->virtual_host));
    if (vh->meta.max_connections >= 0 && vh->n_conns >= vh->meta.max_connections) {
        log_conn(LOG_WARNING, c, "vhost '%s' is at its connection limit (%lld)", vh->name,
                 (long long)vh->meta.max_connections);
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_OPEN,
                          "access to vhost '%s' refused for user '%s': connection limit (%lld) "
                          "is reached",
                          vh->name, user, (long long)vh->meta.max_connections);
    }
    const struct auth_user_limits *ul = auth_user_limits(c->user);
    if (ul->max_connections >= 0 && *auth_user_conn_count(c->user) >= ul->max_connections) {
        log_conn(LOG_WARNING, c, "user '%s' is at its connection limit (%lld)", user,
                 (long long)ul->max_connections);
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_OPEN,
                          "connection refused for user '%s': user connection limit (%lld) is "
                          "reached",
                          user, (long long)ul->max_connections);
    }
    if (auth_perm_find(c->user, vh->name) == NULL)
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_OPEN,
                          "access to vhost '%s' refused for user '%s'", vh->name, user);
    struct wire_method m = {.id = WIRE_CONNECTION_OPEN_OK};
    if (conn_send(c, 0, &m) < 0)
        return -1;
    c->vhost = vh;
    vh->n_conns++;
    stats_node.conns_opened++; /* as RabbitMQ: once open, not every TCP probe */
    (*auth_user_conn_count(c->user))++;
    c->state = CONN_OPEN;
    evtimer_del(c->timer_ev); /* the handshake deadline */
    size_t len = strlen(c->ctx);
    snprintf(c->ctx + len, sizeof(c->ctx) - len, " %s@%s", auth_user_name(c->user), vh->name);
    log_conn(LOG_INFO, c, "user '%s' authenticated and granted access to vhost '%s'",
             auth_user_name(c->user), vh->name);
    return 0;
}

/* A method on channel 0, for each state of the handshake and after. */
/* connection.update-secret (RabbitMQ's extension: amqplib, pika and aiormq send it to renew
 * credentials that expire). RabbitMQ 3.10's internal backend answers update-secret-ok to any
 * secret without looking at it; Warren checks it as a login would, so that a client renewing
 * its password learns at once, not at its next reconnection, that the new one is wrong: the
 * secret must be the user's password now, or the connection is closed with RabbitMQ's 530
 * for a refused secret. A connection that logged in with EXTERNAL has no password: its
 * certificate stays its credential, and the secret is accepted as RabbitMQ does. */
static int
conn_on_update_secret(struct conn *c, const struct wire_connection_update_secret *us)
{
    char why[256] = "", reason[128];
    const char *name = auth_user_name(c->user);
    if (!c->login_external && auth_check_secret(c->server->env.auth, c->user, us->new_secret, why,
                                                sizeof(why)) != AUTH_OK) {
        log_conn(LOG_ERROR, c, "secret update was refused for user '%s': %s", name, why);
        return conn_raise(c, WIRE_NOT_ALLOWED, WIRE_CONNECTION_UPDATE_SECRET,
                          "New secret was refused by one of the backends");
    }
    log_conn(LOG_INFO, c, "user '%s' updated secret, reason: %s", name,
             log_escape(reason, sizeof(reason), us->reason.ptr, us->reason.len));
    struct wire_method ok = {.id = WIRE_CONNECTION_UPDATE_SECRET_OK};
    return conn_send(c, 0, &ok);
}

static int
conn_on_method0(struct conn *c, const struct wire_method *m)
{
    static const enum wire_method_id expected[] = {
        [CONN_AWAIT_START_OK] = WIRE_CONNECTION_START_OK,
        [CONN_AWAIT_TUNE_OK] = WIRE_CONNECTION_TUNE_OK,
        [CONN_AWAIT_OPEN] = WIRE_CONNECTION_OPEN,
    };
    if (c->state < CONN_OPEN && m->id != expected[c->state] && m->id != WIRE_CONNECTION_CLOSE)
        return conn_raise(c, WIRE_COMMAND_INVALID, m->id, "expected %s, got %s",
                          wire_method_name(expected[c->state]), wire_method_name(m->id));
    if (c->state == CONN_OPEN && m->id != WIRE_CONNECTION_CLOSE &&
        m->id != WIRE_CONNECTION_UPDATE_SECRET)
        /* A repeated handshake method, or a stray close-ok: RabbitMQ's answer. */
        return conn_raise(c, WIRE_CHANNEL_ERROR, m->id, "unexpected %s on channel 0",
                          wire_method_name(m->id));
    switch (m->id) {
    case WIRE_CONNECTION_START_OK:
        return conn_on_start_ok(c, &m->u.connection_start_ok);
    case WIRE_CONNECTION_TUNE_OK:
        return conn_on_tune_ok(c, &m->u.connection_tune_ok);
    case WIRE_CONNECTION_OPEN:
        return conn_on_open(c, &m->u.connection_open);
    case WIRE_CONNECTION_UPDATE_SECRET:
        return conn_on_update_secret(c, &m->u.connection_update_secret);
    case WIRE_CONNECTION_CLOSE: {
        const struct wire_connection_close *cl = &m->u.connection_close;
        log_conn(LOG_INFO, c, "closing at the client's request (%u %.*s)", cl->reply_code,
                 WIRE_STR_ARG(cl->reply_text));
        struct wire_method ok = {.id = WIRE_CONNECTION_CLOSE_OK};
        if (conn_send(c, 0, &ok) == 0)
            conn_drain_and_close(c);
        return 0;
    }
    default:
        WR_ASSERT(!"conn_on_method0: method not filtered by state");
        return -1;
    }
}

/* After we sent connection.close: only the peer's close-ok (or its own close) matters. */
static void
conn_on_frame_closing(struct conn *c, const struct frame *f)
{
    if (f->type != WIRE_FRAME_METHOD || f->channel != 0)
        return;
    struct wire_method m;
    struct wire_error err;
    if (wire_method_decode(f->payload, f->size, &m, &err) < 0)
        return;
    if (m.id == WIRE_CONNECTION_CLOSE) {
        struct wire_method ok = {.id = WIRE_CONNECTION_CLOSE_OK};
        if (conn_send(c, 0, &ok) < 0)
            return;
    }
    if (m.id == WIRE_CONNECTION_CLOSE || m.id == WIRE_CONNECTION_CLOSE_OK) {
        conn_drain_and_close(c);
    }
}

static uint32_t
conn_frame_method_id(const struct frame *f)
{
    if (f->type != WIRE_FRAME_METHOD || f->size < 4)
        return 0;
    return bytes_get32(f->payload);
}

/* Whether method m, on a channel of an open connection, must wait for the connection's
 * output to drain below CONN_OUTPUT_LOW before it is handled: any request that may be
 * answered (basic.get with a message, a declare-ok, a mandatory publish's return...) while
 * the output is above CONN_OUTPUT_HIGH. A client that sends requests and never reads would
 * otherwise make the broker buffer their answers without bound. Publishes that cannot be
 * returned, acks and channel.close go on: they answer nothing in proportion (a confirm is a
 * few bytes a turn, and the messages behind it count towards the memory alarm), and a client
 * blocked writing a burst of them while not reading must not deadlock against an output full
 * of deliveries (which stop by themselves at CONN_OUTPUT_HIGH). */
static bool
conn_reply_must_wait(struct conn *c, const struct wire_method *m)
{
    if (c->peer_closed || conn_output_len(c) < CONN_OUTPUT_HIGH)
        return false;
    switch (m->id) {
    case WIRE_BASIC_PUBLISH:
        return m->u.basic_publish.mandatory;
    case WIRE_BASIC_ACK:
    case WIRE_BASIC_NACK:
    case WIRE_BASIC_REJECT:
    case WIRE_CHANNEL_CLOSE:
    case WIRE_CHANNEL_CLOSE_OK:
        return false;
    default:
        return true;
    }
}

/* Handles one frame. 0, -1 after raising, or 1 when the frame must wait for the output to
 * drain (conn_reply_must_wait): it is left in the input buffer. */
static int
conn_on_frame(struct conn *c, const struct frame *f)
{
    if (c->state == CONN_CLOSING) {
        conn_on_frame_closing(c, f);
        return 0;
    }
    switch (f->type) {
    case WIRE_FRAME_HEARTBEAT:
        if (f->size != 0)
            return conn_raise(c, WIRE_FRAME_ERROR, 0, "heartbeat frame with a %u-byte payload",
                              f->size);
        if (f->channel != 0)
            return conn_raise(c, WIRE_UNEXPECTED_FRAME, 0, "heartbeat frame on channel %u",
                              f->channel);
        return 0;
    case WIRE_FRAME_METHOD: {
        struct wire_method m;
        struct wire_error err;
        if (wire_method_decode(f->payload, f->size, &m, &err) < 0)
            return conn_raise(c, err.code, conn_frame_method_id(f), "%s", err.text);
        const struct wire_method_info *info = wire_method_info(m.id);
        if (!(info->chassis & WIRE_CHASSIS_SERVER))
            return conn_raise(c, WIRE_COMMAND_INVALID, m.id, "%s is sent by servers, not clients",
                              info->name);
        if (f->channel == 0) {
            if (WIRE_METHOD_CLASS(m.id) != WIRE_CLASS_CONNECTION)
                return conn_raise(c, WIRE_CHANNEL_ERROR, m.id, "%s on channel 0", info->name);
            return conn_on_method0(c, &m);
        }
        if (c->state != CONN_OPEN)
            return conn_raise(c, WIRE_UNEXPECTED_FRAME, 0,
                              "%s on channel %u before connection.open", info->name, f->channel);
        if (conn_reply_must_wait(c, &m))
            return 1;
        return chan_on_method(c, f->channel, &m);
    }
    case WIRE_FRAME_HEADER:
    case WIRE_FRAME_BODY:
        if (f->channel == 0 || c->state != CONN_OPEN)
            return conn_raise(c, WIRE_UNEXPECTED_FRAME, 0, "content frame (type %u) on channel %u",
                              f->type, f->channel);
        return chan_on_content_frame(c, f);
    default:
        WR_ASSERT(!"frame_parse returned an unknown frame type");
        return -1;
    }
}

/* The protocol header. Anything but AMQP 0-9-1 is answered with ours, then the socket closes,
 * so the client can tell it is talking to the wrong protocol version. */
static int
conn_on_protocol_header(struct conn *c, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(avail < 8 ? avail : 8));
    enum frame_status st = frame_parse_protocol_header(p, avail);
    if (st == FRAME_AGAIN)
        return 1;
    if (st == FRAME_ERROR) {
        char sample[64];
        log_escape(sample, sizeof(sample), p, avail < 8 ? avail : 8);
        if (p[0] == 0x16 && !c->tls) /* a TLS record of type handshake: a ClientHello */
            log_conn(LOG_ERROR, c,
                     "closing: the client began a TLS handshake on a plain AMQP listener "
                     "(bad protocol header '%s'; use amqps:// on a TLS port, or plain AMQP here)",
                     sample);
        else
            log_conn(LOG_ERROR, c, "closing: bad protocol header '%s'", sample);
        evbuffer_drain(in, avail);
        if (evbuffer_add(c->out, frame_protocol_header, FRAME_PROTOCOL_HEADER_SIZE) < 0) {
            conn_drop(c);
            return -1;
        }
        conn_drain_and_close(c);
        return -1;
    }
    evbuffer_drain(in, FRAME_PROTOCOL_HEADER_SIZE);

    const struct net_server *s = c->server;
    struct wire_method m = {.id = WIRE_CONNECTION_START};
    m.u.connection_start.version_major = 0;
    m.u.connection_start.version_minor = 9;
    m.u.connection_start.server_properties =
        (struct wire_table){s->server_props, s->server_props_len};
    char mechs[64];
    conn_mechanisms(c, mechs, sizeof(mechs));
    m.u.connection_start.mechanisms = (struct wire_str){(const uint8_t *)mechs, strlen(mechs)};
    m.u.connection_start.locales = WIRE_STR_LIT("en_US");
    if (conn_send(c, 0, &m) < 0)
        return -1;
    c->state = CONN_AWAIT_START_OK;
    return 0;
}

/* A large body frame (hdr: its 7 header bytes, need: its size with overhead) for the message
 * its channel is assembling goes straight into the message: the header is consumed, what is
 * buffered of the payload is copied, and conn_on_readable reads the rest from the socket into
 * the message (c->body) rather than through the input buffer and evbuffer_pullup, which
 * would copy it twice more. The payload counts once its frame-end octet is checked
 * (conn_body_read_end). Returns 0 if the frame was taken, 1 to let the general path (and its
 * error reporting) have it. */
static int
conn_body_direct(struct conn *c, struct evbuffer *in, const uint8_t *hdr, size_t need)
{
    if (hdr[0] != WIRE_FRAME_BODY || c->state != CONN_OPEN ||
        need - FRAME_OVERHEAD < CONN_BODY_DIRECT_MIN)
        return 1;
    uint16_t channel = bytes_get16(hdr + 1);
    uint32_t size = (uint32_t)(need - FRAME_OVERHEAD);
    uint8_t *dst;
    struct msg *m = chan_body_target(c, channel, size, &dst);
    if (m == NULL)
        return 1;
    evbuffer_drain(in, FRAME_HEADER_SIZE);
    size_t have = evbuffer_get_length(in) < size ? evbuffer_get_length(in) : size;
    if (evbuffer_remove(in, dst, have) != (int)have) {
        conn_abort(c, "copying a body frame");
        return 0;
    }
    /* The reference keeps the payload's destination valid should the channel go (the
     * connection closing) before the payload is all in. */
    c->body = (struct conn_body_read){msg_ref(m), dst + have, size - (uint32_t)have, size, channel};
    return 0;
}

/* The body frame read straight into its message (c->body): once its payload is in and the
 * frame-end octet after it checked, the payload counts in its message, which is published
 * if complete. 0 when done, 1 while its bytes have not all arrived, -1 after raising. */
static int
conn_body_read_end(struct conn *c, struct evbuffer *in)
{
    if (c->body.left > 0 || evbuffer_get_length(in) == 0)
        return 1;
    uint8_t end;
    evbuffer_remove(in, &end, 1);
    struct msg *m = c->body.msg;
    c->body.msg = NULL;
    int rc = 0;
    if (end != WIRE_FRAME_END) {
        log_conn(LOG_DEBUG, c, "bad frame-end octet 0x%02X after a %u-byte body", end,
                 c->body.size);
        conn_raise(c, WIRE_FRAME_ERROR, 0, "frame-end octet 0x%02X, expected 0x%02X", end,
                   WIRE_FRAME_END);
        /* The stream cannot be resynchronised: say why, then close without waiting. */
        if (c->state == CONN_CLOSING)
            conn_drain_and_close(c);
        rc = -1;
    } else if (c->state == CONN_OPEN) {
        rc = chan_on_body_read(c, c->body.channel, m, c->body.size);
    }
    msg_unref(&m);
    return rc;
}

/* Parses and handles frames until the input runs dry, the connection stops reading, or
 * CONN_FRAMES_PER_EVENT frames were handled (then it yields to other connections and resumes
 * from resume_ev). */
static void
conn_process_frames(struct conn *c)
{
    struct evbuffer *in = c->in;
    for (unsigned handled = 0; handled < CONN_FRAMES_PER_EVENT; handled++) {
        if (c->state >= CONN_DRAINING) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (c->blocked && !c->peer_hup)
            return; /* the rest waits in the input buffer for conn_unblock */
        if (c->store_paused > 0 && c->state == CONN_OPEN)
            return; /* the rest waits for a reply that waits for the store (conn_resume) */
        if (c->peer_closed) {
            /* Answers cannot reach a peer that has gone: they are dropped as they come, or a
             * closed client's last requests (basic.get...) would pile up output nobody
             * reads until the connection goes. */
            struct evbuffer *out = bufferevent_get_output(c->bev);
            if (c->tls)
                evbuffer_drain(c->out, evbuffer_get_length(c->out));
            /* The bufferevent keeps the front of its output frozen but while it writes. */
            evbuffer_unfreeze(out, 1);
            evbuffer_drain(out, evbuffer_get_length(out));
            evbuffer_freeze(out, 1);
        }
        if (c->body.msg != NULL) {
            if (conn_body_read_end(c, in) != 0)
                return;
            continue;
        }
        size_t avail = evbuffer_get_length(in);
        if (c->state == CONN_AWAIT_HEADER) {
            if (avail == 0 || conn_on_protocol_header(c, in) != 0)
                return;
            continue;
        }
        if (avail < FRAME_HEADER_SIZE)
            return;
        uint32_t frame_max = c->state <= CONN_AWAIT_TUNE_OK ? CONN_PRETUNE_FRAME_MAX : c->frame_max;
        struct frame f;
        struct wire_error err;
        size_t need;
        const uint8_t *p = evbuffer_pullup(in, FRAME_HEADER_SIZE);
        enum frame_status st = frame_parse(p, FRAME_HEADER_SIZE, frame_max, &f, &need, &err);
        if (st == FRAME_AGAIN) {
            if (conn_body_direct(c, in, p, need) == 0)
                continue;
            if (avail < need)
                return;
            p = evbuffer_pullup(in, (ev_ssize_t)need);
            if (p == NULL) {
                log_conn(LOG_ERROR, c, "out of memory assembling a frame; dropping");
                conn_drop(c);
                return;
            }
            st = frame_parse(p, need, frame_max, &f, &need, &err);
        }
        if (st == FRAME_ERROR) {
            char sample[64];
            log_conn(LOG_DEBUG, c, "bad frame bytes: %s",
                     log_escape(sample, sizeof(sample), p, FRAME_HEADER_SIZE));
            conn_raise(c, err.code, 0, "%s", err.text);
            /* The stream cannot be resynchronised: say why, then close without waiting. */
            if (c->state == CONN_CLOSING)
                conn_drain_and_close(c);
            return;
        }
        WR_ASSERT(st == FRAME_OK);
        if (conn_on_frame(c, &f) == 1) {
            c->output_paused = true; /* conn_on_write resumes */
            return;
        }
        evbuffer_drain(in, need);
    }
    if (evbuffer_get_length(in) > 0)
        conn_schedule_resume(c);
}

/* A connection that is closing holds its channels until no handler is running: whatever
 * raised the exception (a method handler, a consumer's delivery, a store callback) may still
 * use its channel, consumer or message when the raise returns. They go here, from the loop,
 * before any further input is handled: unacked deliveries are requeued, consumers cancelled,
 * exclusive queues deleted. */
void
conn_release(struct conn *c)
{
    chan_table_clear(c);
    if (c->server->topo != NULL)
        conn_topology_close(c); /* its exclusive queues go through the cluster's log */
    net_forward_unhold(c);
    chan_delete_exclusive_queues(c);
}

void
conn_detach(struct conn *c)
{
    if (c->vhost == NULL)
        return;
    c->vhost->n_conns--;
    stats_node.conns_closed++;
    (*auth_user_conn_count(c->user))--;
    c->vhost = NULL;
}

static void
conn_process_input(struct conn *c)
{
    conn_process_frames(c);
    /* Confirms for everything handled in this batch go out together. */
    if (c->state == CONN_OPEN)
        chan_flush_confirms(c);
    else if (c->state == CONN_CLOSING || c->state == CONN_DRAINING)
        conn_release(c);
    /* A peer that closed its socket: once its input is handled (whatever is left is a
     * partial frame), or cannot be (the connection is closing), the connection goes. It
     * waits while the input waits for the next turn, the store or the end of an alarm. */
    if (c->peer_closed && c->state != CONN_DEAD &&
        (c->state != CONN_OPEN || ((!c->blocked || c->peer_hup) && c->store_paused == 0 &&
                                   !evtimer_pending(c->resume_ev, NULL))))
        conn_drop(c);
    conn_read_update(c);
}

static void conn_on_readable(evutil_socket_t fd, short what, void *arg);
static void conn_read(struct conn *c);

static void
conn_on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (conn_read_wanted(c) && conn_tls_pending(c))
        conn_on_readable(-1, EV_READ, c); /* reads, then handles the input */
    else
        conn_process_input(c);
}

/* The output fell to the low watermark: zero while draining, CONN_OUTPUT_LOW otherwise. */
static void
conn_on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_DRAINING) {
        conn_drop(c);
        return;
    }
    if (c->output_full)
        chan_wake_all_consumers(c);
    if (c->output_paused) {
        c->output_paused = false;
        conn_resume(c);
    }
}

/* The peer closed its socket (or it failed) with input not handled yet: RabbitMQ handles
 * every frame it received before the close (a client may publish and close without
 * waiting), so the input is handled first and the connection goes after it
 * (conn_process_input). Replies cannot reach the peer any more: they are discarded. Returns
 * whether the connection stays for that. */
static bool
conn_finish_input(struct conn *c)
{
    if (c->state != CONN_OPEN || evbuffer_get_length(c->in) == 0)
        return false;
    c->peer_closed = true;
    conn_reading(c, false);
    bufferevent_disable(c->bev, EV_WRITE);
    /* Its answers are dropped (conn_process_frames); a block or a store wait stops it there,
     * as for any input. */
    conn_schedule_resume(c);
    return true;
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_EOF) {
        if (c->state == CONN_AWAIT_HEADER)
            log_conn(LOG_DEBUG, c, "closed by the client before sending anything");
        else if (c->state < CONN_CLOSING)
            log_conn(LOG_WARNING, c, "client unexpectedly closed TCP connection");
    } else if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        if (c->state < CONN_CLOSING)
            log_conn(LOG_WARNING, c, "connection error: %s", evutil_socket_error_to_string(err));
    }
    if (!conn_finish_input(c))
        conn_drop(c);
}

void
conn_admit_wait(struct conn *c)
{
    c->admit_waiting = true;
    conn_read_update(c);
}

void
conn_admitted(struct conn *c)
{
    c->admit_waiting = false;
    conn_read_update(c);
    conn_read(c);
}

/* The socket is readable (or OpenSSL holds input): read now, unless the connection is not
 * open yet and waits for its admission turn (admit.c). */
static void
conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->state < CONN_OPEN && server_admit_defer(c))
        return;
    conn_read(c);
}

/* Reads: the next TLS handshake step, or one readv(2) into what is left of a payload read
 * straight into its message (c->body), then into the input buffer up to its limit,
 * CONN_READ_MAX at most; then the input is handled. libevent 2.1's bufferevent reads 4 KiB
 * per loop turn, after an ioctl(FIONREAD): a large message would take hundreds of turns. The
 * end of the stream and errors go to conn_on_event, as the bufferevent reports them for
 * writes. */
static void
conn_read(struct conn *c)
{
    if (c->tls && !c->tls_ready) {
        int rc = conn_tls_handshake(c);
        if (rc < 0)
            conn_drain_and_close(c); /* the alert OpenSSL queued goes out, then the socket */
        if (rc != 0)
            return;
        /* Done: the AMQP handshake has handshake_timeout from now, as in RabbitMQ. What the
         * client sent after its Finished may be in OpenSSL already. */
        conn_arm_timer(c, c->server->env.conf->handshake_timeout);
    }
    struct iovec iov[3];
    int n = 0;
    if (c->body.left > 0)
        iov[n++] = (struct iovec){c->body.dst, c->body.left};
    struct evbuffer_iovec space[2];
    int nspace = 0;
    size_t len = evbuffer_get_length(c->in);
    size_t room = len < c->in_limit ? c->in_limit - len : 0;
    if (room > CONN_READ_MAX)
        room = CONN_READ_MAX;
    if (room > 0) {
        nspace = evbuffer_reserve_space(c->in, (ev_ssize_t)room, space, 2);
        if (nspace < 0) {
            conn_abort(c, "reading");
            return;
        }
        for (int i = 0; i < nspace; i++) { /* the space reserved may be larger */
            if (space[i].iov_len > room)
                space[i].iov_len = room;
            room -= space[i].iov_len;
            iov[n++] = (struct iovec){space[i].iov_base, space[i].iov_len};
        }
    }
    if (n == 0) {
        conn_read_update(c); /* nothing to read into: not polled until there is */
        return;
    }
    ssize_t got = c->tls ? conn_tls_read(c, iov, n) : readv(event_get_fd(c->read_ev), iov, n);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (got == -2) { /* a TLS error, logged: the stream cannot go on */
        if (!conn_finish_input(c))
            conn_drop(c);
        return;
    }
    if (got <= 0) {
        conn_on_event(c->bev, BEV_EVENT_READING | (got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
        return;
    }
    c->recv_since_tick = true;
    size_t rest = (size_t)got;
    if (c->body.left > 0) {
        uint32_t k = rest < c->body.left ? (uint32_t)rest : c->body.left;
        c->body.dst += k;
        c->body.left -= k;
        rest -= k;
    }
    int used = 0;
    for (; used < nspace && rest > 0; used++) {
        if (space[used].iov_len > rest)
            space[used].iov_len = rest;
        rest -= space[used].iov_len;
    }
    if (evbuffer_commit_space(c->in, space, used) < 0) {
        conn_abort(c, "reading");
        return;
    }
    conn_process_input(c);
}

static void
conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->tls && !c->tls_ready && c->state == CONN_AWAIT_HEADER)
        log_conn(LOG_ERROR, c, "closing: TLS handshake timeout (%u ms)",
                 c->server->env.conf->ssl_handshake_timeout);
    else if (c->state < CONN_OPEN)
        log_conn(LOG_ERROR, c, "closing: handshake timeout (%u ms) in state %d",
                 c->server->env.conf->handshake_timeout, (int)c->state);
    else if (c->state == CONN_CLOSING)
        log_conn(LOG_WARNING, c, "no connection.close-ok within %d s; closing the socket",
                 CONN_CLOSE_TIMEOUT_SEC);
    conn_drop(c);
}

static bool
conn_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* The numeric host and the port of sa (IPv4 or IPv6) into host (INET6_ADDRSTRLEN bytes) and
 * *port; "?" and 0 for another family (a socketpair in the tests). */
static void
conn_addr_split(const struct sockaddr *sa, char *host, uint16_t *port)
{
    strcpy(host, "?");
    *port = 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, INET6_ADDRSTRLEN);
        *port = ntohs(a->sin6_port);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, INET6_ADDRSTRLEN);
        *port = ntohs(a->sin_port);
    }
}

struct conn *
conn_new(struct net_server *s, int fd, const struct sockaddr *peer, int peerlen,
         struct ssl_ctx_st *tls)
{
    struct event_base *base = s->env.base;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->server = s;
    c->id = s->next_conn_id++;
    c->state = CONN_AWAIT_HEADER;
    c->peer_is_loopback = conn_addr_is_loopback(peer);
    c->frame_max = s->env.conf->frame_max;
    c->channel_max = (uint16_t)s->env.conf->channel_max;
    TAILQ_INIT(&c->exclusive.queues);
    TAILQ_INIT(&c->confirm_due);

    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    char from[80], to[80] = "?";
    net_format_addr(from, sizeof(from), peer);
    if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
        net_format_addr(to, sizeof(to), (struct sockaddr *)&local);
    snprintf(c->ctx, sizeof(c->ctx), "conn %llu %s -> %s", (unsigned long long)c->id, from, to);
    snprintf(c->name, sizeof(c->name), "%s -> %s", from, to);
    conn_addr_split(peer, c->peer_host, &c->peer_port);
    conn_addr_split((struct sockaddr *)&local, c->host, &c->port);
    struct timeval now;
    gettimeofday(&now, NULL);
    c->connected_at = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;

    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        goto fail;
    c->out = bufferevent_get_output(c->bev);
    c->tls = tls != NULL;
    if (c->tls && conn_tls_start(c, tls, fd) < 0)
        goto fail;
    c->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_readable, c);
    c->in = evbuffer_new();
    c->timer_ev = evtimer_new(base, conn_on_timer, c);
    c->resume_ev = evtimer_new(base, conn_on_resume, c);
    if (c->read_ev == NULL || c->in == NULL || c->timer_ev == NULL || c->resume_ev == NULL)
        goto fail;
    bufferevent_setcb(c->bev, NULL, conn_on_write, conn_on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUTPUT_LOW, 0);
    /* libevent writes 16 KiB per callback by default: large bodies would take a loop turn
     * per 16 KiB. */
    bufferevent_set_max_single_write(c->bev, CONN_WRITE_MAX);
    conn_set_input_limit(c, CONN_PRETUNE_FRAME_MAX);
    if (bufferevent_enable(c->bev, EV_WRITE) < 0)
        goto fail;
    c->reading = true;
    if (event_add(c->read_ev, NULL) < 0)
        goto fail;
    conn_arm_timer(c, c->tls ? s->env.conf->ssl_handshake_timeout : s->env.conf->handshake_timeout);
    TAILQ_INSERT_TAIL(&s->conns, c, link);
    s->n_conns++;
    log_conn(LOG_DEBUG, c, "accepting AMQP connection%s", c->tls ? " (TLS)" : "");
    return c;
fail:
    log_msg(LOG_ERROR, "out of memory accepting a connection");
    if (c != NULL) {
        if (c->bev != NULL)
            bufferevent_setfd(c->bev, -1); /* the caller closes fd */
        conn_free(c);
    }
    return NULL;
}

void
conn_free(struct conn *c)
{
    conn_release(c);
    conn_detach(c);
    auth_user_unref(c->user);
    if (c->heartbeat_ev != NULL)
        event_free(c->heartbeat_ev);
    if (c->timer_ev != NULL)
        event_free(c->timer_ev);
    if (c->resume_ev != NULL)
        event_free(c->resume_ev);
    if (c->read_ev != NULL)
        event_free(c->read_ev);
    if (c->in != NULL)
        evbuffer_free(c->in);
    msg_unref(&c->body.msg);
    conn_tls_free(c);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    free(c->client_props);
    free(c);
}
