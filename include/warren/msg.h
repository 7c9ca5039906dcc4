/* A published message: its raw content-header properties (re-sent byte-for-byte, never
 * re-encoded), the exchange and routing key it was published with (basic.deliver repeats
 * them), and its body, all in one allocation. A message routed to many queues exists once:
 * every queue entry, delivery in flight and pending store write holds a reference. A message
 * made from another one with new properties (dead-lettering) shares that one's body rather
 * than copying it: it holds a reference to the message whose allocation has the body.
 * Event-loop thread only. */
#ifndef WARREN_MSG_H
#define WARREN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/wire.h"

struct msg {
    uint32_t refs;
    uint32_t props_len;
    uint64_t body_len;
    uint8_t exchange_len, routing_key_len;
    uint8_t delivery_mode; /* 2 = persistent */
    uint8_t priority;
    uint32_t headers_off, headers_len; /* the headers table within props (len 0: none), found
                                        * when the properties were validated, for routing */
    uint32_t body_missing;  /* body bytes not filled in yet: not counted in msg_bytes_live */
    uint64_t store_id;      /* its shared record in the store (durable.h), 0 if none */
    int64_t expiration_ms;  /* the expiration property as published (ms); -1: none, or not
                             * known (read back from the store, where entries keep their
                             * expiry time instead) */
    struct msg *body_owner; /* owns a reference: the message whose allocation holds body;
                             * NULL when body is in data */
    uint8_t *props;         /* points into data: the property flags and list */
    uint8_t *exchange;      /* points into data */
    uint8_t *routing_key;   /* points into data */
    uint8_t *body;          /* points into data (filled by the publisher's body frames), or
                             * into body_owner's */
    uint8_t data[];
};

/* Bytes held by all live messages (bodies filled so far, properties, names): drives the
 * memory alarm. A body counts as it arrives, not as its content header announces it. */
extern uint64_t msg_bytes_live;

/* Makes glibc keep freed message memory for the next messages (a process-wide setting: call
 * once, before allocating). By default an allocation of 128 KiB or more is mapped for itself,
 * and the heap is trimmed whenever 128 KiB at its top are free; glibc raises both thresholds
 * as mappings are freed, but only to the largest body seen (twice that for the trim), so
 * large messages kept landing on fresh pages: a page fault per 4 KiB written, which in a VM
 * costs more than copying the body. 0, or -1 if glibc refused (its defaults stay). */
int msg_heap_setup(void);
/* A message with room for body_len bytes of body (not yet filled: see msg_body_filled).
 * Copies props, exchange and routing key; delivery_mode and priority come from the decoded
 * properties. One reference, owned by the caller. NULL on ENOMEM or a body_len above
 * UINT32_MAX. */
struct msg *msg_new(const uint8_t *props, uint32_t props_len, uint8_t delivery_mode,
                    uint8_t priority, struct wire_str exchange, struct wire_str routing_key,
                    uint64_t body_len);
/* A complete message with new properties, exchange and routing key (copied, as msg_new) and
 * the body of src, shared: it holds a reference to src (or to the message src shares its body
 * with, so that chains of copies stay one step long). src must be complete. delivery_mode and
 * priority come from the new properties. One reference, owned by the caller. NULL on ENOMEM. */
struct msg *msg_new_sharing_body(const uint8_t *props, uint32_t props_len, uint8_t delivery_mode,
                                 uint8_t priority, struct wire_str exchange,
                                 struct wire_str routing_key, struct msg *src);
/* n more bytes of m's body were written into m->body: they count in msg_bytes_live now. */
void msg_body_filled(struct msg *m, uint32_t n);
/* Records where in m->props the headers table lies: headers was decoded from a copy of the
 * same property bytes starting at base (e.g. the content-header frame they came from). */
void msg_set_headers(struct msg *m, const uint8_t *base, struct wire_table headers);
/* The headers table, for headers exchanges. */
struct wire_table msg_headers(const struct msg *m);
/* Bytes the message keeps in memory: its allocation, and the body it shares if it does (a
 * queue holding it holds that much; msg_bytes_live counts a shared body once). */
size_t msg_size(const struct msg *m);
struct msg *msg_ref(struct msg *m);
/* Drops one reference, freeing the message at zero, and sets *mp to NULL. */
void msg_unref(struct msg **mp);

#endif
