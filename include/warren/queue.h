/* Queues: ordered message entries, their consumers, and push delivery. A queue changes only
 * through its commands (enqueue, deliver, settle, requeue, purge, delete), and its state is a
 * deterministic function of the sequence of commands: each one, once applied in memory, is
 * handed in order to the command journal (struct queue_cmd below), which the durable layer
 * consumes (durable.h; cluster mirroring will ship the same stream). Nothing else touches the
 * lists; recovery rebuilds a queue by replaying, as ENQUEUE commands, what the commands left in
 * the store (queue_cmd_enqueue_replayed).
 *
 * A ready entry that was never delivered sits in the queue's ready list in enqueue order
 * (seq). Delivering moves it to the queue's unacked list and hands it to a consumer (or to
 * basic.get), whose channel owns it until it settles it (ack, or reject without requeue) or
 * requeues it, which puts it back at its original position with redelivered set: requeued
 * entries wait in a heap ordered by seq, and the next entry delivered is the lower of the
 * heap's first and the list's first. Putting one back is O(log n) whatever the order of the
 * requeues (walking the list to its place was O(n) each). Deleting a queue detaches its
 * unacked entries: their channel frees them when the client acks or requeues (RabbitMQ
 * accepts acks for a deleted queue's messages silently).
 *
 * Consumers belong to their channel; the queue links them (non-owning) and calls their ops to
 * ask for capacity and to deliver. Dispatch is round robin among the consumers with the highest
 * priority (x-priority) that can take a message now: those that may take one are in a heap by
 * priority, then by turn (the least recently served first). A consumer that cannot take a
 * message when its turn comes is parked, out of the heap, until its channel wakes it
 * (queue_consumer_wake: an ack, a qos change, its connection's output drained), so a delivery
 * costs O(log n) however many consumers are full.
 *
 * A queue with a single active consumer (x-single-active-consumer) has one consumer in that
 * heap at most, the active one; the others wait in a second heap, by priority, then by
 * registration order, and the first of them takes over when the active one goes (cancelled,
 * or its channel closed). Priorities are RabbitMQ 3.12+'s: a consumer of a higher priority
 * than the active one takes over as soon as the active one has settled what it was given
 * (RabbitMQ 3.10's classic queues keep the active one until it goes).
 *
 * Priority queues (x-max-priority N, 1..255) have N + 1 lanes, one per message priority (a
 * message's priority property, 0 if it has none, N if it is above N); every other queue has one
 * lane, 0. A lane is what a queue without priorities is: a ready list, a requeue heap and a seq
 * space of its own, and the queue delivers from its highest lane with ready entries, so that
 * priorities go in order, FIFO within one, and a requeued entry goes back to its place in its
 * lane. The lane is the seq's top byte (QUEUE_LANE_SHIFT): the seq stays an entry's one name,
 * in the store too, where a queue's keys sort by lane then order within it, and a queue's lane
 * 0 is numbered as a queue without lanes always was. An entry expiring (x-message-ttl) leaves
 * its lane from the head, or the heap, by the same commands, without changing any seq. */
#ifndef WARREN_QUEUE_H
#define WARREN_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "warren/exchange.h"
#include "warren/hmap.h"
#include "warren/pheap.h"
#include "warren/queue_settings.h"
#include "warren/stats.h"
#include "warren/wire.h"

struct event;
struct event_base;
struct msg;
struct vhost;
struct cons;
struct durable_queue;
struct queue_cmd;

struct qentry {
    union {
        TAILQ_ENTRY(qentry) link;        /* in its lane's ready list, or queue->unacked */
        struct pheap_node requeued_node; /* in its lane's requeued heap */
    };
    struct msg *msg;         /* owns one reference */
    struct queue *queue;     /* borrows; NULL once the queue was deleted under a delivery */
    uint64_t seq;            /* enqueue order in its lane (the top byte), kept across requeues */
    uint64_t expires_at;     /* us since the epoch; 0: never (x-message-ttl, expiration) */
    uint32_t delivery_count; /* requeues so far (x-delivery-limit, x-delivery-count) */
    bool redelivered;
    bool stored;        /* written to the store (durable.h): removing it is written too */
    bool relayed;       /* delivered here from another node's queue (src/net/relay.c) */
    uint8_t dlx_reason; /* in queue->dlx_waiting: why it died (enum deadletter_reason) */
};
TAILQ_HEAD(qentry_list, qentry);
TAILQ_HEAD(cons_list, cons);

struct cons_ops {
    /* True if the consumer can take one more message now (prefetch, flow, output space).
     * False parks it until queue_consumer_wake. */
    bool (*can_take)(struct cons *c);
    /* How many of its deliveries the consumer has not settled yet: a single active consumer
     * hands over to a higher-priority one only once it has none. */
    uint32_t (*unsettled)(const struct cons *c);
    /* Delivers e: the consumer's channel owns e from now on. Returns 0, or -1 if the consumer
     * could not take it after all (e.g. ENOMEM writing the frames); the queue then puts e
     * back and parks the consumer until its next wake-up. */
    int (*deliver)(struct cons *c, struct qentry *e);
    /* The queue is being deleted: c was unlinked and c->queue is NULL; the channel tells the
     * client (basic.cancel, when it announced consumer_cancel_notify) and frees c. */
    void (*queue_deleted)(struct cons *c);
};

/* Where a consumer stands in its queue's dispatch. */
enum cons_state {
    CONS_READY = 0, /* in queue->cons_ready: offered messages in its turn */
    CONS_PARKED,    /* could not take a message: out of cons_ready until woken */
    CONS_WAITING,   /* single active consumer: another one is active; in queue->sac_waiting */
    CONS_QUIESCING, /* single active consumer: still the active one, but one of a higher
                     * priority waits: offered nothing until it hands over (no unsettled left) */
};

/* The broker's view of a consumer; the channel embeds it in its own consumer record. */
struct cons {
    TAILQ_ENTRY(cons) link;       /* in queue->consumers */
    struct pheap_node ready_node; /* in queue->cons_ready (READY) or queue->sac_waiting */
    struct queue *queue;          /* borrows; NULL after queue_deleted */
    const struct cons_ops *ops;
    uint64_t turn;    /* its place in the round robin: lower goes first */
    uint64_t since;   /* registration order: single active consumer's turn among equals */
    int32_t priority; /* x-priority */
    bool exclusive;
    enum cons_state state;
};

/* A seq's top byte is its lane, the rest its order within the lane. */
#define QUEUE_LANE_SHIFT 56
#define QUEUE_LANES_MAX 256 /* x-max-priority 255, and lane 0 */

static inline unsigned
queue_seq_lane(uint64_t seq)
{
    return (unsigned)(seq >> QUEUE_LANE_SHIFT);
}

/* One priority's entries: what a queue without priorities keeps, for each priority. */
struct queue_lane {
    struct qentry_list ready; /* owns: entries never delivered, by seq, in memory */
    struct pheap requeued;    /* owns: entries put back by a requeue, by seq */
    uint64_t n_ready;         /* ready entries of the lane, paged-out ones included */
    uint64_t next_seq;        /* the seq of its next entry: lane << QUEUE_LANE_SHIFT, from 1 */
};

/* A replicated queue's part in its cluster's replication (src/net/quorum.c embeds it). Its
 * commands go to journal too, after the durable layer's; while it is not live (this node does
 * not lead the queue's group, or has not loaded its image yet) the queue has no entries and
 * refuses publishes (queue_refuses). */
struct queue_replica {
    void (*journal)(struct queue_replica *r, const struct queue_cmd *c);
    bool live;
};

/* Exclusive queues of one connection, so closing the connection deletes them. */
TAILQ_HEAD(queue_list, queue);
struct queue_owner {
    struct queue_list queues;
    uint64_t id; /* in a cluster: the owner's id on every node (queue.owner_id); 0 alone */
};

struct queue {
    struct hmap_entry by_name; /* in the vhost's queue map; key = name */
    struct vhost *vhost;       /* borrows: the vhost owns the queue */
    char *name;                /* owns; NUL-terminated */
    uint32_t name_len;
    bool durable, auto_delete;
    struct queue_owner *owner; /* exclusive queues: the owning connection's list; else NULL */
    TAILQ_ENTRY(queue) owner_link;
    /* In a cluster (net/topology.c): the node the queue lives on when it is another
     * ("name@host"; owns), NULL when this one; an exclusive queue's owner's id (the same on
     * every node; the owner here is then a connection's, or a stand-in for one on its home
     * node), else 0. */
    char *home;
    uint64_t owner_id;
    /* In a cluster, an exclusive replicated queue's owner's node ("name@host"; owns): its
     * home moves with its group's leader, its owner stays there. NULL for the others (an
     * exclusive classic queue's owner is on its home). */
    char *owner_node;
    /* In a cluster: a replicated queue's (x-queue-type quorum) Raft group, the same on every
     * node, else 0; its replication (borrows: the network layer owns it) on the nodes that are
     * members of the group, else NULL. */
    uint64_t group_id;
    struct queue_replica *replica;
    uint8_t *args; /* owns a copy of the declare arguments */
    uint32_t args_len;
    struct queue_settings settings; /* owns: effective arguments and policies */
    struct bind_list bindings_in;   /* bindings with this queue as destination */
    /* owns: the ready entries, in n_lanes lanes (settings.max_priority + 1, fixed for the
     * queue's life: x-max-priority is an argument, never a policy); &lane0 when there is one */
    struct queue_lane *lanes;
    uint16_t n_lanes;
    uint16_t top_lane;          /* no lane above it has ready entries */
    struct queue_lane lane0;    /* the lane of a queue without priorities */
    struct qentry_list unacked; /* entries delivered, owned by channels */
    /* owns: dead entries whose copy reached no queue yet (dead-letter-strategy at-least-once),
     * in the order they died (queue_dlx.c); in no lane, neither ready nor unacked */
    struct qentry_list dlx_waiting;
    uint64_t n_ready, n_unacked; /* n_ready counts the paged-out entries too (of every lane) */
    uint64_t n_dlx, dlx_bytes;   /* dlx_waiting's entries and body bytes (messages_dlx) */
    uint64_t dlx_retry_at;       /* when dlx_waiting is tried again (us); 0: not planned */
    uint64_t mem_bytes;          /* bytes of the messages of the in-memory ready entries */
    uint64_t ready_bytes;        /* body bytes of the ready entries, paged ones too */
    uint64_t last_seq;           /* the seq of the entry enqueued last */
    /* The entry just enqueued by the publish being dispatched (queue_publish_dispatch): it may
     * go to a consumer that can take it now even with a TTL of 0. 0: none. */
    uint64_t fresh_seq;
    uint64_t unused_until;      /* x-expires: deleted at this time (us) if still unused; 0: never */
    struct event *deadline_ev;  /* owns: the next expiry (head entry or queue); NULL until needed */
    uint64_t deadline;          /* when deadline_ev fires (us); 0: not armed */
    struct cons_list consumers; /* borrows: channels own consumers */
    struct pheap cons_ready;    /* borrows: the consumers not parked, by priority then turn */
    uint64_t cons_turn;         /* the last turn (or registration number) handed out */
    /* Single active consumer (settings.single_active_consumer, fixed by the arguments): */
    struct cons *sac_active;  /* borrows: the one consumer that may get messages; NULL: none */
    struct pheap sac_waiting; /* borrows: the others, by priority, then registration order */
    uint32_t n_consumers;
    uint32_t n_exclusive; /* exclusive consumers (0 or 1) */
    /* owns, but made and freed by the durable layer (durable.h): its bookkeeping, for queues
     * stored or with entries paged out; NULL for the others */
    struct durable_queue *durable_state;
    bool had_consumer; /* auto-delete queues go when the last consumer does, not before */
    bool dlx_warned;   /* dlx_waiting's warning was logged (once per settings, as RabbitMQ) */
    bool dispatching;  /* guards against re-entering queue_dispatch */
    /* message_stats (stats.h): publish, deliver, get, ack, redeliver...; the sampler reads
     * n_ready and n_unacked as its gauges */
    struct stats_obj stats;
    uint64_t created_ms; /* wall clock (ms) at its creation: idle since then until traffic */
};

/* A new queue (not yet in the vhost's map). args are copied; its settings are theirs
 * (queue_settings_from_args) until a policy changes them. owner: the declaring
 * connection's list for exclusive queues, else NULL. NULL on ENOMEM. */
struct queue *queue_new(struct vhost *vh, struct wire_str name, bool durable, bool auto_delete,
                        struct queue_owner *owner, struct wire_table args);
/* Deletes the queue (the DELETE command): removes its bindings (auto-delete exchanges emptied
 * by that are returned as exch_unbind_all does; emptied may be NULL when the caller does not
 * care), detaches consumers (their queue_deleted op runs) and unacked entries, removes it from
 * the store (if stored), frees ready entries, paged ones included, and the queue. Returns the
 * number of ready messages dropped. The caller has removed it from the vhost's map. */
uint64_t queue_free(struct queue *q, struct exch ***emptied, uint32_t *n_emptied);

/* Empties q without a command, its state being elsewhere (a replicated queue whose group
 * another node leads now): its unacked entries are left to their channels (their settles then
 * change nothing), its ready entries and dead letters freed, and its lanes numbered afresh.
 * Its definition, bindings, settings and consumers stay. */
void queue_reset(struct queue *q);

/* Replaces q's settings with *s, taking what it owns (*s is left empty), and applies them
 * now: a policy changed. */
void queue_settings_set(struct queue *q, struct queue_settings *s);

/* Commands.
 *
 * The invariants every command keeps: an entry's lane is its message's priority (capped at
 * the queue's maximum), and it keeps its seq, lane included, for life; seqs are handed out in
 * enqueue order within a lane (its next_seq only grows); the ready entries are delivered from
 * the highest lane that has some, lowest seq first within it, so that within a lane deliveries
 * go out in seq order; n_ready counts the ready entries in memory plus the paged-out ones (a
 * lane's n_ready those of the lane), n_unacked the unacked list, n_dlx the dlx_waiting list
 * (always in memory); an entry is in one of its lane's ready list and requeued heap, unacked,
 * and dlx_waiting (a deleted queue's unacked entries stay with their channels); settle and requeue
 * take unacked entries only; redelivered is set by requeue only (and by a replayed enqueue, for
 * entries delivered before a restart).
 *
 * What is not a command, because a replica would not compute it the same way: paging (which
 * ready entries live only in the store, and reading them back ahead of consumers: the durable
 * layer's choice, from local memory, made below the commands through durable.h's paging
 * calls), dispatch (which consumer gets the next entry and when: it depends on sockets; what a
 * replica sees is the deliveries it results in), a delivery the client never saw (ENOMEM
 * before its frames were written, to a consumer or for basic.get), put back in place by
 * queue_delivery_undo, without a command nor the redelivered mark, and paged entries the
 * store lost (a failed batch's page-outs, a record that cannot be read back), which the durable
 * layer takes off n_ready (queue_paged_lost) with an error logged. */
enum queue_cmd_kind {
    /* e (new, at the tail of its lane's ready list) holds m at seq; e is NULL when the durable
     * layer paged the entry out instead (it wrote it then). n_ready + 1. */
    QUEUE_CMD_ENQUEUE = 0,
    /* e, the ready entry with the lowest seq of the highest lane that has ready entries, moved
     * to unacked (seq: its seq). n_ready - 1, n_unacked + 1. */
    QUEUE_CMD_DELIVER,
    /* e left unacked for good (ack, or reject/nack without requeue): freed after the record.
     * Only from unacked; n_unacked - 1. */
    QUEUE_CMD_SETTLE,
    /* e went back from unacked among the ready at its seq's place, redelivered set, its
     * delivery count up by one (the count is part of the entry's record: a stored entry is
     * written again). n_ready + 1, n_unacked - 1. (Past the queue's delivery limit it settles
     * instead: SETTLE.) */
    QUEUE_CMD_REQUEUE,
    /* e, the head ready entry (as DELIVER's), left the queue undelivered: it expired, or the
     * queue was over its length limit (drop-head); dead-lettered first if the queue says so.
     * Freed after the record. n_ready - 1. */
    QUEUE_CMD_DROP,
    /* Every ready entry was dropped, paged ones too (unacked ones stay, as RabbitMQ, and so do
     * those of dlx_waiting, as in RabbitMQ 3.10's quorum queues): those in memory are in the
     * list dropped, off the queue, freed after the record. n_ready = 0. */
    QUEUE_CMD_PURGE,
    /* The queue is out of its vhost and unbound; its entries (ready and unacked, as they are)
     * are still there for the record, then its consumers and unacked entries are detached and
     * the rest freed. The last command of a queue. */
    QUEUE_CMD_DELETE,
    /* e died (the ready entry with the lowest seq, or an unacked one: its list says which, as
     * for DROP and SETTLE) under dead-letter-strategy at-least-once, and its copy reached no
     * queue: it joined the tail of dlx_waiting, e->dlx_reason set, kept until a copy does.
     * n_ready - 1 or n_unacked - 1; n_dlx + 1. */
    QUEUE_CMD_DLX_HOLD,
    /* e left dlx_waiting: its copy reached a queue (enqueued, and written, just before this
     * record), or the queue stopped being at-least-once. Freed after the record. n_dlx - 1. */
    QUEUE_CMD_DLX_RELEASE,
};

/* One applied command, as the journal receives it: valid for the call only. */
struct queue_cmd {
    enum queue_cmd_kind kind;
    struct queue *q;
    struct qentry *e;            /* ENQUEUE (or NULL), DELIVER, SETTLE, REQUEUE, DROP, DLX_* */
    const struct msg *m;         /* ENQUEUE: the message enqueued */
    uint64_t seq;                /* ENQUEUE, DELIVER: the entry's seq */
    struct qentry_list *dropped; /* PURGE: the in-memory ready entries dropped */
    bool replayed;               /* ENQUEUE: replayed from the store, which holds it already */
};

/* Appends a message (taking a new reference), expiring after the lower of the queue's
 * message TTL and the message's expiration. 0, or -1 on ENOMEM. Does not dispatch: see
 * queue_publish_dispatch. */
int queue_cmd_enqueue(struct queue *q, struct msg *m);
/* True if q refuses m by its length limits (x-overflow reject-publish or reject-publish-dlx:
 * one more message, or m's body, would take it over max-length or max-length-bytes), or is a
 * replicated queue that is not live here. The publisher then hears a nack (under confirms),
 * as from RabbitMQ. */
bool queue_refuses(const struct queue *q, const struct msg *m);
/* After a publish enqueued its message on q (the last entry): hands ready entries to
 * consumers (the new one may go even with a TTL of 0, as RabbitMQ's does to a consumer that
 * can take it at once), then drops what is over a drop-head length limit and what expired
 * at the head, the new entry included if its TTL was 0. */
void queue_publish_dispatch(struct queue *q);
/* Removes the head ready entry (of the highest lane that has any), moves it to unacked and
 * returns it (NULL if none is in memory and none could be read back from the store yet). */
struct qentry *queue_cmd_deliver(struct queue *q);
/* Puts back a delivered entry the client never saw (ENOMEM before anything was sent): at its
 * place among the ready entries, neither marked redelivered nor counted as a delivery. Not a
 * command (see above): the DELIVER stays in the journal, as if the entry had been requeued
 * without a count. Its queue is live (the caller has not returned to the loop since
 * queue_cmd_deliver). */
void queue_delivery_undo(struct qentry *e);
/* Settles a delivered entry (ack, or reject/nack without requeue) and frees it; an entry
 * whose queue was deleted is just freed (no command: the queue is gone). */
void queue_cmd_settle(struct qentry *e);
/* A delivered entry rejected or nacked without requeue: dead-lettered (reason rejected) if its
 * queue says so, then settled and freed, or kept in dlx_waiting (at-least-once, when the copy
 * reached no queue: queue_dlx.c). An entry whose queue was deleted is just freed (RabbitMQ
 * drops a reject sent to a queue that is gone). */
void queue_cmd_reject(struct qentry *e);
/* Puts a delivered entry back at its original position, redelivered; past the queue's
 * delivery limit it is dead-lettered (reason delivery_limit) and settled instead. An entry
 * whose queue was deleted is freed (no command). */
void queue_cmd_requeue(struct qentry *e);
/* Drops every ready entry, paged ones too; returns how many. Unacked entries are untouched
 * (as RabbitMQ), and so are dead letters waiting in dlx_waiting (as RabbitMQ 3.10). */
uint64_t queue_cmd_purge(struct queue *q);

/* An entry as the store keeps it (recovery, paging). */
struct queue_stored_entry {
    uint64_t seq;
    uint64_t expires_at;     /* us since the epoch; 0: never */
    uint64_t body_len;       /* its message's body size, for one left in the store (m NULL) */
    uint32_t delivery_count; /* requeues written so far (x-delivery-limit) */
    bool redelivered;
    bool dead;          /* it waits in dlx_waiting (QUEUE_CMD_DLX_HOLD), for dlx_reason */
    uint8_t dlx_reason; /* enum deadletter_reason */
};

/* Replay: applies an ENQUEUE the queue did not originate, at the seq it was given then, which
 * is above every seq its lane has had so far (the seqs it skips were the queue's once:
 * settled or purged since), with its redelivered mark, expiry time and delivery count (se).
 * The store holds what the command stream left, every entry still there at its seq, and
 * recovery replays each one as the ENQUEUE that made it; an entry at or below the delivery
 * watermark was delivered and never settled, and its channel died with the process, so it
 * comes back redelivered, as REQUEUE would have left it, with the delivery count its last
 * REQUEUE wrote (a delivery out when the process stopped is not counted: the watermark cannot
 * tell it from one requeued since). A replica will apply its leader's ENQUEUEs the same way.
 * m NULL: the entry stays in the store only (paged: the durable layer counted it, as a page-out
 * does before its ENQUEUE, and marks it redelivered when it reads it back); else m gets a new
 * reference. A dead one (se->dead, m not NULL; replayed after the others, whatever its seq)
 * joins dlx_waiting rather than the ready entries, and is tried again soon. The command goes to the
 * journal with replayed set: its consumer writes nothing. 0, or -1 on ENOMEM. */
int queue_cmd_enqueue_replayed(struct queue *q, struct msg *m, const struct queue_stored_entry *se);

/* Below the commands: the durable layer accounting for the entries it keeps in the store
 * (recovery, paging), which the commands wrote. */
/* Recovery: seqs of seq's lane below seq were the queue's once (delivered, purged): new
 * entries of that lane get seqs from seq up. */
void queue_seq_raise(struct queue *q, uint64_t seq);
/* Paging: appends the paged-out entry se->seq (the lowest one of its lane) read back from the
 * store: it was counted in n_ready and ready_bytes all along. 0, or -1 on ENOMEM. */
int queue_entry_page_in(struct queue *q, struct msg *m, const struct queue_stored_entry *se);
/* Paging: n paged-out entries of lane, of body_bytes bytes of body as far as the store knows,
 * are not in the store after all (a batch that failed, a record that cannot be read back):
 * they leave n_ready and ready_bytes. */
void queue_paged_lost(struct queue *q, unsigned lane, uint64_t n, uint64_t body_bytes);

/* Time: entries expire (x-message-ttl, expiration) and unused queues go (x-expires) from one
 * timer per queue that has something to expire, on base. Without a base (unit tests) nothing
 * expires by itself: only when a publish or a delivery looks at the head. */
void queue_set_event_base(struct event_base *base);
/* Dead-letter-strategy at-least-once: ms between two tries of a queue's dead letters whose
 * copy reached no queue (dead_letter_worker_publisher_confirm_timeout). */
void queue_set_dlx_retry_interval(uint64_t ms);
/* q was used (declared again, basic.get, a consumer came or went): x-expires counts from now. */
void queue_used(struct queue *q);

/* Consumers. */
/* Links c (its ops, priority and exclusive set) to q. With a single active consumer, c
 * waits unless it is the first, or the highest priority (then the active one hands over, see
 * above). The caller dispatches. */
void queue_consumer_add(struct queue *q, struct cons *c);
/* Unlinks c; with a single active consumer, the next one takes over if c was active. Returns
 * true if the queue is auto-delete and c was its last consumer: the caller deletes the
 * queue; otherwise the caller dispatches (after putting back what c's channel requeues, so
 * that a successor gets messages in order). */
bool queue_consumer_remove(struct cons *c);
/* An exclusive consumer holds the queue (basic.consume exclusive, or 403 for others). */
bool queue_has_exclusive_consumer(const struct queue *q);
/* c may be able to take messages again (its channel freed capacity: an ack, a qos change, its
 * connection's output drained): it rejoins the round robin, or hands over if it was a
 * quiescing single active consumer that has settled everything, and the queue dispatches. */
void queue_consumer_wake(struct cons *c);

/* Hands ready entries to consumers that can take them, until none can or none are ready. */
void queue_dispatch(struct queue *q);

#endif
