/* warren-server: reads the configuration, opens the store, reads users, vhosts and
 * permissions back (creating the defaults on a first start, importing load_definitions),
 * listens for AMQP and for the HTTP API (warren/mgmt.h), and runs the event loop until
 * SIGTERM or SIGINT; then stops accepting, closes every connection with 320
 * CONNECTION_FORCED, flushes the store and exits 0. SIGHUP reloads the TLS certificate and
 * key; SIGUSR1 reopens the log file (after logrotate moved it). Under systemd (Type=notify) it
 * says READY=1 once it listens and STOPPING=1 when a signal starts the shutdown. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/cluster.h"
#include "warren/conf.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/mgmt.h"
#include "warren/msg.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/sdnotify.h"
#include "warren/store.h"
#include "warren/vhost.h"

struct server_main {
    struct event_base *base;
    struct net_server *net;
    struct durable *durable;       /* borrows */
    struct vhost_registry *vhosts; /* borrows */
    struct cluster *cluster;       /* borrows; NULL: not clustered */
    bool stopping;
};

static void
main_on_libevent_log(int severity, const char *msg)
{
    enum log_level lvl = severity == EVENT_LOG_DEBUG  ? LOG_DEBUG
                         : severity == EVENT_LOG_MSG  ? LOG_INFO
                         : severity == EVENT_LOG_WARN ? LOG_WARNING
                                                      : LOG_ERROR;
    if (log_enabled(lvl))
        log_write(lvl, "libevent", "%s", msg);
}

static void
main_on_cluster_closed(void *arg)
{
    struct server_main *m = arg;
    event_base_loopexit(m->base, NULL);
}

/* The connections are closed: the node leaves the cluster's groups last, once nothing it
 * serves can submit to them. */
static void
main_on_shutdown_done(void *arg)
{
    struct server_main *m = arg;
    if (m->cluster != NULL)
        cluster_close(m->cluster, main_on_cluster_closed, m);
    else
        event_base_loopexit(m->base, NULL);
}

/* SIGHUP: certificates and keys replaced on disk serve new TLS connections. */
static void
main_on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct server_main *m = arg;
    log_msg(LOG_INFO, "SIGHUP: reloading the TLS certificate and key");
    net_server_tls_reload(m->net);
}

/* SIGUSR1: the log file is reopened by name, so that an external logrotate (without
 * copytruncate) can move it away; the broker's own rotation needs no signal. */
static void
main_on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
    char err[512];
    if (log_reopen(err, sizeof(err)) < 0)
        log_msg(LOG_ERROR, "SIGUSR1: %s; still writing to the old file", err);
    else
        log_msg(LOG_INFO, "SIGUSR1: log file reopened");
}

/* Tells systemd (if it started us) state; a failure is logged, never fatal. */
static void
main_notify(const char *state)
{
    if (sdnotify_send(state) < 0)
        log_msg(LOG_WARNING, "cannot notify systemd (%s) of %s", strerror(errno), state);
}

static void
main_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server_main *m = arg;
    if (m->stopping) {
        log_msg(LOG_WARNING, "%s again: still closing connections", strsignal((int)sig));
        return;
    }
    m->stopping = true;
    log_msg(LOG_INFO, "%s: shutting down", strsignal((int)sig));
    main_notify("STOPPING=1");
    /* From now on nothing is deleted from disk: closing connections drop their consumers,
     * and durable auto-delete queues must come back after the restart, as in RabbitMQ. */
    durable_detach(m->durable, m->vhosts);
    net_server_shutdown(m->net, main_on_shutdown_done, m);
}

/* The event loop. With epoll's change list, enabling and disabling a socket's write event in
 * the same loop turn (a connection's output refilled as soon as it drained, turn after turn
 * under load) costs no epoll_ctl call: libevent applies only the net change before it polls. */
static struct event_base *
main_event_base_new(void)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int
main(int argc, char **argv)
{
    struct conf conf;
    switch (conf_from_cmdline(&conf, argc, argv)) {
    case CONF_EXIT_ERR:
        return 1;
    case CONF_EXIT_OK:
        conf_free(&conf);
        return 0;
    case CONF_RUN:
        break;
    }
    struct log_options logopts;
    char logerr[512];
    conf_log_options(&conf, &logopts);
    if (log_open(&logopts, logerr, sizeof(logerr)) < 0) {
        log_msg(LOG_CRITICAL, "%s", logerr);
        conf_free(&conf);
        return 1;
    }
    if (msg_heap_setup() < 0)
        log_msg(LOG_WARNING, "glibc refused the heap settings for messages: large messages "
                             "will be slower");
    event_set_log_callback(main_on_libevent_log);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    char err[512];
    struct server_main m = {0};
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *sigusr1 = NULL;
    struct store *store = NULL;
    struct durable *durable = NULL;
    struct admin *admin = NULL;
    struct mgmt *mgmt = NULL;
    struct cluster *cluster = NULL;
    struct vhost_registry vhosts;
    vhost_registry_init(&vhosts);
    struct auth_db *auth = auth_db_new();
    if (auth == NULL) {
        log_msg(LOG_CRITICAL, "out of memory");
        goto out;
    }
    log_msg(LOG_INFO, "Warren %s starting%s%s", PACKAGE_VERSION,
            conf.config_path != NULL ? ", config file " : "",
            conf.config_path != NULL ? conf.config_path : "");
    if ((m.base = main_event_base_new()) == NULL) {
        log_msg(LOG_CRITICAL, "cannot create the event loop");
        goto out;
    }
    queue_set_event_base(m.base);
    queue_set_dlx_retry_interval(conf.dead_letter_worker_publisher_confirm_timeout);
    struct store_options store_opts = {.block_cache_size = conf.store_block_cache_size,
                                       .write_buffer_size = conf.store_write_buffer_size,
                                       .max_write_buffers = conf.store_max_write_buffers};
    store = store_open(conf.data_dir, &store_opts, m.base, err, sizeof(err));
    if (store == NULL) {
        log_msg(LOG_CRITICAL, "%s", err);
        goto out;
    }
    if ((durable = durable_new(store, m.base)) == NULL) {
        log_msg(LOG_CRITICAL, "out of memory");
        goto out;
    }
    durable_set_window(durable, conf.store_queue_window);
    if (conf.cluster_nodes.n > 0)
        durable_set_clustered(durable);
    /* Users, vhosts and permissions first: the stored exchanges and queues go into vhosts.
     * load_definitions comes after durable_recover, so that its exchanges and queues are
     * stored (and those already stored are kept, as RabbitMQ keeps existing ones). */
    struct admin_env aenv = {.base = m.base,
                             .auth = auth,
                             .vhosts = &vhosts,
                             .durable = durable,
                             .store = store,
                             .conf = &conf};
    if ((admin = admin_new(&aenv)) == NULL) {
        log_msg(LOG_CRITICAL, "out of memory");
        goto out;
    }
    if (admin_recover(admin, err, sizeof(err)) < 0) {
        log_msg(LOG_CRITICAL, "%s", err);
        goto out;
    }
    if (durable_recover(durable, &vhosts, err, sizeof(err)) < 0) {
        log_msg(LOG_CRITICAL, "%s", err);
        goto out;
    }
    if (*conf.load_definitions != '\0' &&
        admin_definitions_load(admin, conf.load_definitions, err, sizeof(err)) != ADMIN_OK) {
        log_msg(LOG_CRITICAL, "%s", err);
        goto out;
    }
    m.durable = durable;
    m.vhosts = &vhosts;
    if (cluster_open(m.base, &conf, &cluster, err, sizeof(err)) < 0) {
        log_msg(LOG_CRITICAL, "%s", err);
        goto out;
    }
    m.cluster = cluster;
    admin_set_cluster(admin, cluster); /* changes go through its log from now on */

    struct net_server_env env = {
        .base = m.base, .conf = &conf, .auth = auth, .vhosts = &vhosts, .cluster = cluster};
    m.net = net_server_new(&env);
    if (m.net == NULL)
        goto out;
    /* The HTTP API listens first: once clients can connect over AMQP, they can administer
     * over HTTP too (nothing runs before the loop starts). */
    struct mgmt_env menv = {.base = m.base,
                            .conf = &conf,
                            .admin = admin,
                            .auth = auth,
                            .vhosts = &vhosts,
                            .net = m.net,
                            .store = store,
                            .cluster = cluster};
    if ((mgmt = mgmt_new(&menv)) == NULL || mgmt_listen(mgmt) < 0 || net_server_listen(m.net) < 0)
        goto out;
    admin_set_net(admin, m.net);
    /* Queues that are not durable page out once messages take half of the memory alarm's
     * limit: the alarm then stays for what paging cannot relieve. */
    durable_set_memory_pressure(durable, net_server_memory_limit(m.net) / 2);
    sigterm = evsignal_new(m.base, SIGTERM, main_on_signal, &m);
    sigint = evsignal_new(m.base, SIGINT, main_on_signal, &m);
    sighup = evsignal_new(m.base, SIGHUP, main_on_sighup, &m);
    sigusr1 = evsignal_new(m.base, SIGUSR1, main_on_sigusr1, &m);
    if (sigterm == NULL || sigint == NULL || sighup == NULL || sigusr1 == NULL ||
        evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0 ||
        evsignal_add(sighup, NULL) < 0 || evsignal_add(sigusr1, NULL) < 0) {
        log_msg(LOG_CRITICAL, "cannot install signal handlers");
        goto out;
    }
    log_msg(LOG_INFO, "ready: data directory %s", conf.data_dir);
    main_notify("READY=1");
    if (event_base_dispatch(m.base) < 0) {
        log_msg(LOG_CRITICAL, "event loop failed");
        goto out;
    }
    rc = 0;
out:
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (sighup != NULL)
        event_free(sighup);
    if (sigusr1 != NULL)
        event_free(sigusr1);
    mgmt_free(mgmt); /* answers nothing more: a change still in flight is durable or lost */
    durable_detach(durable, &vhosts); /* (again, unless a signal stopped the loop) */
    if (admin != NULL)
        admin_set_net(admin, NULL);
    if (m.net != NULL)
        net_server_free(m.net);
    cluster_free(cluster);           /* (closed already, unless the loop ended otherwise) */
    durable_submit_pending(durable); /* the last batch: store_close completes it */
    /* A flush that fails (a full disk) loses nothing: what it would have written is in the
     * write-ahead log, which the next start replays. The shutdown is still a clean one. */
    if (store != NULL && store_close(store, err, sizeof(err)) < 0)
        log_msg(LOG_WARNING, "%s; the write-ahead log keeps every write", err);
    durable_free(durable);
    admin_free(admin);
    vhost_registry_clear(&vhosts); /* queues free their timers: before the base goes */
    if (auth != NULL)
        auth_db_free(auth);
    if (m.base != NULL)
        event_base_free(m.base);
    if (log_dropped() > 0)
        log_msg(LOG_WARNING, "%llu log lines could not be written",
                (unsigned long long)log_dropped());
    if (rc == 0)
        log_msg(LOG_INFO, "stopped");
    log_close();
    conf_free(&conf);
    return rc;
}
