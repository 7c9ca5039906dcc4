/* libFuzzer target for the HTTP API's request bodies (src/mgmt/api.c): the first byte picks a
 * route that takes a body (PUT users, vhosts, permissions, topic permissions, limits, policies,
 * operator policies, parameters, global parameters, the cluster name; POST definitions, for
 * all vhosts or one; POST of a binding, a publish, a get), the rest is the body, handled as the
 * administrator of the Unix socket would have it handled, over a fresh broker state (defaults of a
 * first start, a queue fzq holding one message, no store, no connections). Checked for every input:
 * the route answers exactly once, with a status RabbitMQ would give (200, 201, 204, 400 with
 * {"error":"bad_request"}), and whatever the change left behind still exports (GET /api/definitions
 * answers 200). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/conf.h"
#include "warren/log.h"
#include "warren/vhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    enum mgmt_method method;
    const char *segs[7];
} fz_routes[] = {
    {MGMT_PUT, {"users", "fz"}},
    {MGMT_PUT, {"users", "guest"}},
    {MGMT_PUT, {"vhosts", "fz"}},
    {MGMT_PUT, {"permissions", "/", "guest"}},
    {MGMT_PUT, {"topic-permissions", "/", "guest"}},
    {MGMT_PUT, {"vhost-limits", "/", "max-queues"}},
    {MGMT_PUT, {"user-limits", "guest", "max-channels"}},
    {MGMT_POST, {"definitions"}},
    {MGMT_POST, {"definitions", "/"}},
    {MGMT_PUT, {"policies", "/", "fz"}},
    {MGMT_PUT, {"operator-policies", "/", "fz"}},
    {MGMT_POST, {"bindings", "/", "e", "amq.headers", "q", "fzq"}},
    {MGMT_POST, {"bindings", "/", "e", "amq.direct", "e", "amq.topic"}},
    {MGMT_POST, {"exchanges", "/", "amq.default", "publish"}},
    {MGMT_POST, {"exchanges", "/", "amq.topic", "publish"}},
    {MGMT_POST, {"queues", "/", "fzq", "get"}},
    {MGMT_PUT, {"parameters", "vhost-limits", "/", "limits"}},
    {MGMT_PUT, {"parameters", "operator_policy", "/", "fz"}},
    {MGMT_PUT, {"parameters", "federation-upstream", "/", "fz"}},
    {MGMT_PUT, {"global-parameters", "fz"}},
    {MGMT_PUT, {"global-parameters", "cluster_name"}},
    {MGMT_PUT, {"cluster-name"}},
};
#define FZ_NROUTES (sizeof(fz_routes) / sizeof(fz_routes[0]))

struct fz_reply {
    int calls, status;
    json_t *body;
};

static void
fz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_mgmt: %s: %s\n", what, detail);
    abort();
}

/* mgmt_reply_fn: records the answer; the request lives on the caller's stack. */
static void
fz_on_reply(struct mgmt_req *r, int status, json_t *body)
{
    struct fz_reply *out = r->transport;
    out->calls++;
    out->status = status;
    json_decref(out->body);
    out->body = body;
    mgmt_req_clear(r);
}

/* mgmt_req's stepped: runs the steps to the end, then records the answer as fz_on_reply. */
static void
fz_on_stepped(struct mgmt_req *r, struct mgmt_stepped *job)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL)
        fz_fail("set-up", "out of memory");
    int status;
    while ((status = job->step(job, buf, 1000000)) == 0)
        ;
    job->free(job);
    size_t len = evbuffer_get_length(buf);
    json_t *body =
        len > 0 ? json_loadb((const char *)evbuffer_pullup(buf, -1), len, 0, NULL) : NULL;
    evbuffer_free(buf);
    if (len > 0 && body == NULL)
        fz_fail("a reply written in steps", "not JSON");
    fz_on_reply(r, status, body);
}

/* Runs one request; returns its status after checking that it answered once. */
static int
fz_request(const struct mgmt_env *env, enum mgmt_method method, const char *const *segs,
           const uint8_t *body, size_t len, json_t **reply_body)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        fz_fail("set-up", "out of memory");
    memcpy(copy, body, len);
    copy[len] = '\0';
    struct fz_reply out = {0};
    struct mgmt_req r = {.env = env,
                         .method = method,
                         .body = copy,
                         .body_len = len,
                         .reply = fz_on_reply,
                         .stepped = fz_on_stepped,
                         .transport = &out};
    for (; r.n_segs < 7 && segs[r.n_segs] != NULL; r.n_segs++)
        if ((r.segs[r.n_segs] = strdup(segs[r.n_segs])) == NULL)
            fz_fail("set-up", "out of memory");
    mgmt_api_dispatch(&r);
    free(copy);
    if (out.calls != 1)
        fz_fail("a request answered other than once", segs[0]);
    if (reply_body != NULL)
        *reply_body = out.body;
    else
        json_decref(out.body);
    return out.status;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    log_set_level(LOG_NONE);
    char err[256];
    struct conf conf;
    conf_init_defaults(&conf);
    struct auth_db *db = auth_db_new();
    struct vhost_registry vhosts;
    vhost_registry_init(&vhosts);
    struct admin_env aenv = {.auth = db, .vhosts = &vhosts, .conf = &conf};
    struct admin *adm = db != NULL ? admin_new(&aenv) : NULL;
    if (adm == NULL || admin_recover(adm, err, sizeof(err)) < 0)
        fz_fail("set-up", adm == NULL ? "out of memory" : err);
    struct mgmt_env env = {.conf = &conf, .admin = adm, .auth = db, .vhosts = &vhosts};

    static const char *const declare[] = {"queues", "/", "fzq", NULL};
    static const char *const publish[] = {"exchanges", "/", "amq.default", "publish", NULL};
    static const char msg[] = "{\"routing_key\":\"fzq\",\"payload\":\"m\","
                              "\"payload_encoding\":\"string\",\"properties\":{}}";
    if (fz_request(&env, MGMT_PUT, declare, (const uint8_t *)"{}", 2, NULL) != 201 ||
        fz_request(&env, MGMT_POST, publish, (const uint8_t *)msg, sizeof(msg) - 1, NULL) != 200)
        fz_fail("set-up", "declaring fzq and publishing to it");

    unsigned which = data[0] % FZ_NROUTES;
    json_t *body = NULL;
    int st =
        fz_request(&env, fz_routes[which].method, fz_routes[which].segs, data + 1, size - 1, &body);
    if (st == 400) {
        const char *e = json_string_value(json_object_get(body, "error"));
        json_t *reason = json_object_get(body, "reason");
        /* RabbitMQ's reasons are texts, or pairs for a publish's or get's bad value */
        if (e == NULL || strcmp(e, "bad_request") != 0 ||
            !(json_is_string(reason) || json_is_array(reason)))
            fz_fail("a 400 without RabbitMQ's error body", fz_routes[which].segs[0]);
    } else if (st != 200 && st != 201 && st != 204) {
        char what[64];
        snprintf(what, sizeof(what), "status %d for %s", st, fz_routes[which].segs[0]);
        fz_fail("unexpected status", what);
    }
    json_decref(body);
    static const char *const export[] = {"definitions", NULL};
    if (fz_request(&env, MGMT_GET, export, (const uint8_t *)"", 0, NULL) != 200)
        fz_fail("export after a change", "not 200");

    admin_free(adm);
    vhost_registry_clear(&vhosts);
    auth_db_free(db);
    conf_free(&conf);
    return 0;
}
