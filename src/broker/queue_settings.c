/* Queue settings from declare arguments (warren/queue_settings.h). */
#include "config.h"

#include "warren/queue_settings.h"

#include <stdlib.h>
#include <string.h>

void
queue_settings_init(struct queue_settings *s)
{
    *s = (struct queue_settings){
        .message_ttl = QUEUE_SETTING_NONE,
        .expires = QUEUE_SETTING_NONE,
        .max_length = QUEUE_SETTING_NONE,
        .max_length_bytes = QUEUE_SETTING_NONE,
        .delivery_limit = QUEUE_SETTING_NONE,
        .consumer_timeout = QUEUE_SETTING_NONE,
    };
}

void
queue_settings_free(struct queue_settings *s)
{
    free(s->dlx);
    free(s->dlx_routing_key);
    free(s->policy);
    free(s->operator_policy);
    queue_settings_init(s);
}

/* The integer argument key of args, if it has one that is not negative (queue_args_check
 * refused the others at declare). */
static bool
queue_settings_int(struct wire_table args, const char *key, int64_t *out)
{
    struct wire_value v;
    int64_t n;
    if (!wire_table_get(args, key, &v) || v.type == WIRE_FIELD_TIMESTAMP ||
        !wire_value_to_i64(&v, &n) || n < 0)
        return false;
    *out = n;
    return true;
}

/* A copy of the longstr argument key of args, into *out (left NULL if there is none). -1 on
 * ENOMEM. */
static int
queue_settings_str(struct wire_table args, const char *key, char **out)
{
    struct wire_value v;
    if (!wire_table_get(args, key, &v) || v.type != WIRE_FIELD_LONGSTR)
        return 0;
    if ((*out = malloc(v.v.str.len + 1)) == NULL)
        return -1;
    memcpy(*out, v.v.str.ptr, v.v.str.len);
    (*out)[v.v.str.len] = '\0';
    return 0;
}

/* True if args has the longstr argument key equal to value. */
static bool
queue_settings_str_is(struct wire_table args, const char *key, const char *value)
{
    struct wire_value v;
    return wire_table_get(args, key, &v) && v.type == WIRE_FIELD_LONGSTR &&
           wire_str_eq(v.v.str, value);
}

int
queue_settings_from_args(struct queue_settings *s, struct wire_table args)
{
    queue_settings_init(s);
    queue_settings_int(args, "x-message-ttl", &s->message_ttl);
    queue_settings_int(args, "x-max-length", &s->max_length);
    queue_settings_int(args, "x-max-length-bytes", &s->max_length_bytes);
    struct wire_value v;
    int64_t n;
    /* RabbitMQ takes any x-delivery-limit: a negative one acts as 0, a string as none. */
    if (wire_table_get(args, "x-delivery-limit", &v) && v.type != WIRE_FIELD_TIMESTAMP &&
        wire_value_to_i64(&v, &n))
        s->delivery_limit = n < 0 ? 0 : n;
    queue_settings_int(args, "x-consumer-timeout", &s->consumer_timeout);
    if (queue_settings_int(args, "x-expires", &n) && n > 0)
        s->expires = n;
    if (queue_settings_int(args, "x-max-priority", &n))
        s->max_priority = n > 255 ? 255 : (uint8_t)n;
    if (queue_settings_str_is(args, "x-overflow", "reject-publish"))
        s->overflow = QUEUE_OVERFLOW_REJECT_PUBLISH;
    else if (queue_settings_str_is(args, "x-overflow", "reject-publish-dlx"))
        s->overflow = QUEUE_OVERFLOW_REJECT_PUBLISH_DLX;
    if (queue_settings_str_is(args, "x-dead-letter-strategy", "at-least-once"))
        s->dlx_strategy = QUEUE_DLX_AT_LEAST_ONCE;
    s->single_active_consumer =
        wire_table_get(args, "x-single-active-consumer", &v) && v.type == WIRE_FIELD_BOOL && v.v.b;
    s->quorum = queue_settings_str_is(args, "x-queue-type", "quorum");
    if (queue_settings_str(args, "x-dead-letter-exchange", &s->dlx) < 0 ||
        queue_settings_str(args, "x-dead-letter-routing-key", &s->dlx_routing_key) < 0) {
        queue_settings_free(s);
        return -1;
    }
    return 0;
}
