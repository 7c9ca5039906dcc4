/* A queue's effective settings: what its declare arguments say, combined with the vhost's
 * policy and operator policy that match it as RabbitMQ 3.10 combines them. The queue keeps
 * one (queue->settings) and applies it (queue_settings_set in queue.h); it changes when a
 * policy that matches the queue does, and never otherwise.
 *
 * Arguments alone: queue_settings_from_args (here). Policies on top of them: the policy layer,
 * which calls queue_settings_set when a policy changes. */
#ifndef WARREN_QUEUE_SETTINGS_H
#define WARREN_QUEUE_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/wire.h"

/* What a queue over max-length / max-length-bytes does (x-overflow, policy "overflow"). */
enum queue_overflow {
    QUEUE_OVERFLOW_DROP_HEAD = 0,      /* drops (dead-letters) the oldest ready message */
    QUEUE_OVERFLOW_REJECT_PUBLISH,     /* refuses the new one: nacked under confirms */
    QUEUE_OVERFLOW_REJECT_PUBLISH_DLX, /* refuses it and dead-letters it */
};

/* How dead-lettered messages reach the dead-letter exchange's queues. */
enum queue_dlx_strategy {
    QUEUE_DLX_AT_MOST_ONCE = 0, /* published, the original dropped at once (RabbitMQ's classic) */
    QUEUE_DLX_AT_LEAST_ONCE,    /* the original kept until the targets have it (confirmed) */
};

/* An unset limit or time. */
#define QUEUE_SETTING_NONE (-1)

struct queue_settings {
    int64_t message_ttl;      /* ms (0 allowed), or QUEUE_SETTING_NONE */
    int64_t expires;          /* ms (> 0) unused before the queue is deleted, or NONE */
    int64_t max_length;       /* ready messages, or NONE */
    int64_t max_length_bytes; /* body bytes of the ready messages, or NONE */
    int64_t delivery_limit;   /* deliveries after the first a message may have, or NONE */
    int64_t consumer_timeout; /* ms an unacked delivery may wait, 0 off, or NONE: the server's */
    enum queue_overflow overflow;
    enum queue_dlx_strategy dlx_strategy;
    char *dlx;                   /* owns: dead-letter exchange ("": the default one); NULL: none */
    char *dlx_routing_key;       /* owns: routing key of dead-lettered messages; NULL: their own */
    uint8_t max_priority;        /* 0: not a priority queue. Arguments only, as in RabbitMQ */
    bool single_active_consumer; /* arguments only, as in RabbitMQ */
    bool quorum;                 /* declared x-queue-type "quorum" */
    char *policy;                /* owns: the name of the policy applied; NULL: none */
    char *operator_policy;       /* owns: the name of the operator policy applied; NULL: none */
};

/* Settings with nothing set: no limits, no TTLs, no dead-lettering. */
void queue_settings_init(struct queue_settings *s);
/* The settings args alone give (a table queue_args_check accepted, or one stored by an older
 * build: values of the wrong type are ignored). s is initialised first. 0, or -1 on ENOMEM
 * (s is left empty). */
int queue_settings_from_args(struct queue_settings *s, struct wire_table args);
/* Frees what s owns and leaves it empty (as queue_settings_init). */
void queue_settings_free(struct queue_settings *s);

#endif
