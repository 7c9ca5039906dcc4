/* Warren's node-control routes, for warrenctl's commands that rabbitmqctl runs over Erlang
 * distribution and RabbitMQ's management API has no path for (so they live under
 * /api/warren/, administrator only):
 *   GET /api/warren/log-level          {"level": "info"}
 *   PUT /api/warren/log-level          {"level": "debug"}: every output's level, until the
 *                                      next restart (rabbitmqctl set_log_level); 400 with
 *                                      rabbitmqctl's text for another name
 *   POST /api/warren/rotate-logs       reopens the log file by name, as SIGUSR1 does (after
 *                                      an external logrotate moved it)
 *   GET /api/warren/environment        the effective configuration, {"key": "value"} in the
 *                                      configuration table's order, secrets redacted
 *                                      (conf_each; rabbitmqctl environment) */
#include "config.h"

#include "mgmt_int.h"
#include "warren/conf.h"
#include "warren/log.h"

/* GET and PUT /api/warren/log-level. */
void
mgmt_api_log_level(struct mgmt_req *r)
{
    if (r->method == MGMT_GET) {
        mgmt_reply_json(r, json_pack("{s:s}", "level", log_level_name(log_min_level)));
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    const char *name = json_string_value(json_object_get(body, "level"));
    enum log_level lvl;
    if (name == NULL || log_level_parse(name, &lvl) < 0) {
        char reason[200];
        snprintf(reason, sizeof(reason),
                 "level %.64s is not supported. Try one of debug, info, warning, error, "
                 "critical, none",
                 name != NULL ? name : "(none)");
        mgmt_bad_request(r, reason);
    } else {
        log_set_level(lvl);
        log_msg(LOG_INFO, "log level set to %s over the HTTP API", name);
        r->reply(r, 204, NULL);
    }
    json_decref(body);
}

/* POST /api/warren/rotate-logs: 204, or 500 with log_reopen's error (the old file kept). */
void
mgmt_api_rotate_logs(struct mgmt_req *r)
{
    char err[256];
    if (log_reopen(err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "reopening the log file: %s; still writing to the old file", err);
        mgmt_reply_error(r, 500, "internal_error", err);
        return;
    }
    log_msg(LOG_INFO, "log file reopened over the HTTP API");
    r->reply(r, 204, NULL);
}

/* conf_each's callback: adds key = value to the object arg. -1 on ENOMEM. */
static int
api_env_add(void *arg, const char *key, const char *value)
{
    return json_object_set_new(arg, key, json_string(value));
}

/* GET /api/warren/environment. */
void
mgmt_api_environment(struct mgmt_req *r)
{
    json_t *env = json_object();
    if (env != NULL && conf_each(r->env->conf, api_env_add, env) != 0) {
        json_decref(env);
        env = NULL;
    }
    mgmt_reply_json(r, env);
}
