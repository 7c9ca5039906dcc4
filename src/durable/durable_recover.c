/* Recovery: rebuilds the broker's durable state from the store at startup, before any client
 * connects. Exchanges first, then queues, then the bindings between them (both ends must be
 * back), then each stored queue's entries in seq order, replayed as the ENQUEUE commands that
 * made them (queue_cmd_enqueue_replayed). A message shared by several queues is
 * read once and shared again in memory. Nothing is written while this runs but the removal of
 * leftovers: the paged-out entries of queues that were not stored, or removed before their
 * deletion was done, transient messages paged out of stored ones, purged entries that were
 * still to be deleted (never read: a purge marker names them), and shared records no entry
 * refers to any more. A record that cannot be decoded stops the start with its key named: the
 * data directory is left as it is. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable_int.h"
#include "warren/bytes.h"
#include "warren/deadletter.h"
#include "warren/hmap.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/store.h"
#include "warren/vhost.h"

/* A shared record read back, by id, so that every in-memory entry referring to it shares one
 * msg (the reference counts are the durable layer's). */
struct recover_shared {
    struct hmap_entry by_id;
    uint8_t id[8]; /* big-endian, the map's key */
    struct msg *m; /* borrows: the queue entries own it */
};

/* A purge marker: seqs [lo, end) of the queue with that id are gone. */
struct recover_purged {
    uint64_t queue_id, lo, end;
};

struct recover_ctx {
    struct durable *d;
    struct vhost_registry *reg;
    struct hmap shared;            /* owns each struct recover_shared: the messages read */
    struct recover_purged *purged; /* owns: the purge markers, in key order */
    size_t n_purged;
    struct vhost *vh; /* the vhost of the key being handled */
    struct queue *q;  /* entries: the queue being restored */
    bool dead;        /* entries: reading its dead ones (under its dead id) */
    bool unclean;     /* the last run did not stop cleanly: every entry may have been delivered */
    uint64_t n_exchanges, n_queues, n_bindings, n_entries, n_orphans;
    char *err;
    size_t errlen;
};

/* Reads a length-prefixed name at *p (before end) into *out. 0, or -1 if truncated. */
static int
recover_name(const uint8_t **p, const uint8_t *end, struct wire_str *out)
{
    if (*p >= end || (size_t)(end - *p) < 1u + **p)
        return -1;
    *out = (struct wire_str){*p + 1, **p};
    *p += 1 + out->len;
    return 0;
}

static int
recover_corrupt(struct recover_ctx *x, const char *what, const void *key, size_t klen)
{
    char sample[96];
    snprintf(x->err, x->errlen, "corrupt %s record in the store (key %s): not starting", what,
             log_escape(sample, sizeof(sample), key, klen));
    return 1;
}

static int
recover_nomem(struct recover_ctx *x)
{
    snprintf(x->err, x->errlen, "out of memory restoring the store");
    return 1;
}

/* The key's vhost (created if this node does not have it yet). */
static struct vhost *
recover_vhost(struct recover_ctx *x, struct wire_str name)
{
    char cname[STORE_NAME_MAX + 1];
    memcpy(cname, name.ptr, name.len);
    cname[name.len] = '\0';
    return vhost_add(x->reg, cname);
}

/* Parses the tag and vhost name of a key and sets x->vh. Returns the rest of the key in *p. */
static int
recover_key_vhost(struct recover_ctx *x, const uint8_t **p, const uint8_t *end)
{
    struct wire_str vname;
    (*p)++; /* the tag */
    if (recover_name(p, end, &vname) < 0)
        return -1;
    x->vh = recover_vhost(x, vname);
    return x->vh != NULL ? 0 : -2;
}

static int
recover_exchange(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    const uint8_t *p = key, *end = p + klen, *v = val;
    struct wire_str name;
    enum exch_type type;
    int rc = recover_key_vhost(x, &p, end);
    if (rc == -2)
        return recover_nomem(x);
    if (rc < 0 || recover_name(&p, end, &name) < 0 || p != end || vlen < DURABLE_EXCH_HDR_LEN ||
        v[0] > EXCH_HEADERS)
        return recover_corrupt(x, "exchange", key, klen);
    type = (enum exch_type)v[0];
    if (vhost_exch_find(x->vh, name) != NULL)
        return 0;
    struct wire_table args = {v + DURABLE_EXCH_HDR_LEN, (uint32_t)(vlen - DURABLE_EXCH_HDR_LEN)};
    struct exch *e =
        exch_new(x->vh, name, type, (v[1] & DURABLE_EXCH_TRANSIENT) == 0,
                 (v[1] & DURABLE_EXCH_AUTO_DELETE) != 0, (v[1] & DURABLE_EXCH_INTERNAL) != 0, args);
    if (e == NULL)
        return recover_nomem(x);
    if (vhost_exch_add(x->vh, e) < 0) {
        exch_free(e);
        return recover_nomem(x);
    }
    x->n_exchanges++;
    return 0;
}

/* A cluster's queue definition (DURABLE_QUEUE_CLUSTER) of vhost x->vh: the queue, without
 * messages. 0, or 1 with x->err filled. */
static int
recover_queue_definition(struct recover_ctx *x, struct wire_str name, const uint8_t *v, size_t vlen,
                         const void *key, size_t klen)
{
    const uint8_t *p = v + DURABLE_QUEUE_HDR_LEN + 8, *end = v + vlen;
    struct wire_str home, owner_node = {0};
    if (vlen < DURABLE_QUEUE_CLUSTER_HDR_LEN || recover_name(&p, end, &home) < 0 ||
        ((v[8] & DURABLE_QUEUE_OWNER_NODE) && recover_name(&p, end, &owner_node) < 0))
        return recover_corrupt(x, "queue", key, klen);
    uint8_t flags = v[8];
    struct wire_table args = {p, (uint32_t)(end - p)};
    struct queue_owner *owner = (flags & DURABLE_QUEUE_EXCLUSIVE) ? &x->reg->others : NULL;
    struct queue *q = queue_new(x->vh, name, (flags & DURABLE_QUEUE_TRANSIENT) == 0,
                                (flags & DURABLE_QUEUE_AUTO_DELETE) != 0, owner, args);
    if (q == NULL)
        return recover_nomem(x);
    q->owner_id = bytes_get64(v + DURABLE_QUEUE_HDR_LEN);
    q->group_id = bytes_get64(v);
    if ((home.len > 0 && (q->home = strndup((const char *)home.ptr, home.len)) == NULL) ||
        (owner_node.len > 0 &&
         (q->owner_node = strndup((const char *)owner_node.ptr, owner_node.len)) == NULL) ||
        vhost_queue_add(x->vh, q) < 0) {
        queue_free(q, NULL, NULL);
        return recover_nomem(x);
    }
    x->n_queues++;
    return 0;
}

static int
recover_queue(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    const uint8_t *p = key, *end = p + klen, *v = val;
    struct wire_str name;
    int rc = recover_key_vhost(x, &p, end);
    if (rc == -2)
        return recover_nomem(x);
    if (rc < 0 || recover_name(&p, end, &name) < 0 || p != end || vlen < DURABLE_QUEUE_HDR_LEN)
        return recover_corrupt(x, "queue", key, klen);
    uint64_t id = bytes_get64(v);
    if (vhost_queue_find(x->vh, name) != NULL)
        return recover_corrupt(x, "queue", key, klen);
    if (v[8] & DURABLE_QUEUE_CLUSTER)
        return recover_queue_definition(x, name, v, vlen, key, klen);
    if (id == 0)
        return recover_corrupt(x, "queue", key, klen);
    struct wire_table args = {v + DURABLE_QUEUE_HDR_LEN, (uint32_t)(vlen - DURABLE_QUEUE_HDR_LEN)};
    struct queue *q =
        queue_new(x->vh, name, true, (v[8] & DURABLE_QUEUE_AUTO_DELETE) != 0, NULL, args);
    if (q == NULL)
        return recover_nomem(x);
    if (vhost_queue_add(x->vh, q) < 0) {
        queue_free(q, NULL, NULL);
        return recover_nomem(x);
    }
    struct durable_queue *dq = durable_queue_attach(q);
    if (dq == NULL)
        return recover_nomem(x);
    dq->store_id = id;
    if (id >= x->d->next_queue_id)
        x->d->next_queue_id = id + 1;
    x->n_queues++;
    return 0;
}

static int
recover_binding(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    const uint8_t *p = key, *end = p + klen;
    struct wire_str src_name, dst_name, rk;
    int rc = recover_key_vhost(x, &p, end);
    if (rc == -2)
        return recover_nomem(x);
    if (rc < 0 || recover_name(&p, end, &src_name) < 0 || p >= end || (*p != 'q' && *p != 'e'))
        return recover_corrupt(x, "binding", key, klen);
    bool to_exch = *p++ == 'e';
    if (recover_name(&p, end, &dst_name) < 0 || recover_name(&p, end, &rk) < 0)
        return recover_corrupt(x, "binding", key, klen);
    struct wire_table args = {p, (uint32_t)(end - p)};
    struct exch *src = vhost_exch_find(x->vh, src_name);
    struct bind_dest dst = {.is_exch = to_exch};
    if (to_exch)
        dst.u.exch = vhost_exch_find(x->vh, dst_name);
    else
        dst.u.queue = vhost_queue_find(x->vh, dst_name);
    if (src == NULL || (to_exch ? dst.u.exch == NULL : dst.u.queue == NULL)) {
        /* Its ends are written and removed in the same batches as it: this is a bug's mark. */
        log_msg(LOG_WARNING,
                "store: binding from '%.*s' to missing %s '%.*s' in vhost '%s' skipped",
                WIRE_STR_ARG(src_name), to_exch ? "exchange" : "queue", WIRE_STR_ARG(dst_name),
                x->vh->name);
        return 0;
    }
    if (exch_bind(src, dst, rk, args) < 0)
        return recover_nomem(x);
    x->n_bindings++;
    return 0;
}

/* The message a shared entry refers to: read once, then shared. */
static int
recover_shared_msg(struct recover_ctx *x, uint64_t id, struct msg **mp)
{
    uint8_t idkey[8];
    bytes_put64(idkey, id);
    struct hmap_entry *he = hmap_find(&x->shared, idkey, sizeof(idkey));
    if (he != NULL) {
        *mp = msg_ref(hmap_container_of(he, struct recover_shared, by_id)->m);
        return 0;
    }
    uint8_t key[STORE_KEY_MSG_LEN];
    store_key_msg(key, id);
    switch (durable_shared_load(x->d, id, mp, x->err, x->errlen)) {
    case DURABLE_LOAD_OK:
        break;
    case DURABLE_LOAD_READ_ERROR:
        return 1;
    case DURABLE_LOAD_MISSING:
        return recover_corrupt(x, "queue entry (its shared message is missing)", key, sizeof(key));
    case DURABLE_LOAD_CORRUPT:
        return recover_corrupt(x, "message", key, sizeof(key));
    case DURABLE_LOAD_NOMEM:
        return recover_nomem(x);
    }
    struct recover_shared *s = malloc(sizeof(*s));
    if (s == NULL) {
        msg_unref(mp);
        return recover_nomem(x);
    }
    memcpy(s->id, idkey, sizeof(idkey));
    s->m = *mp;
    if (hmap_insert(&x->shared, &s->by_id, s->id, sizeof(s->id)) < 0) {
        free(s);
        msg_unref(mp);
        return recover_nomem(x);
    }
    if (id >= x->d->next_msg_id)
        x->d->next_msg_id = id + 1;
    return 0;
}

static int
recover_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    struct queue *q = x->q;
    struct durable_queue *dq = q->durable_state;
    const uint8_t *v = val;
    if (klen != STORE_KEY_QENTRY_LEN || vlen < 1)
        return recover_corrupt(x, "queue entry", key, klen);
    struct durable_entry_head h;
    if (!durable_entry_head_decode(v, vlen, &h))
        return recover_corrupt(x, "queue entry", key, klen);
    struct queue_stored_entry se = {.seq = bytes_get64((const uint8_t *)key + 9),
                                    .expires_at = h.expires_at,
                                    .delivery_count = h.delivery_count};
    /* Dead entries, read after the others, are under the queue's dead id (x->dead). */
    se.dead = (h.flags & DURABLE_ENTRY_DEAD) != 0;
    se.dlx_reason = h.dead_reason;
    unsigned lane = queue_seq_lane(se.seq);
    if (se.dead != x->dead || se.dlx_reason > DEADLETTER_DELIVERY_LIMIT || lane >= q->n_lanes ||
        (!se.dead && se.seq < q->lanes[lane].next_seq))
        return recover_corrupt(x, "queue entry", key, klen); /* not a seq the queue can have */
    struct durable_lane *dl = &dq->lanes[lane];
    bool shared = (h.flags & DURABLE_ENTRY_SHARED) != 0;
    if (h.flags & DURABLE_ENTRY_TRANSIENT) {
        /* A transient message paged out before the restart: it does not survive one. */
        struct store_batch *b = durable_batch(x->d);
        if (b == NULL)
            return recover_nomem(x);
        store_batch_delete(b, key, klen);
        return 0;
    }
    if (shared && durable_shared_ref(x->d, h.shared_id) < 0)
        return recover_nomem(x);
    x->n_entries++;
    /* After an unclean stop the watermark may be behind deliveries that went out (it is
     * written lazily, not before the frames leave): any entry may have been delivered, so the
     * lane's watermark moves over all of them, paged ones included, and is written anew. */
    if (x->unclean && !se.dead && se.seq > dl->delivered_seq) {
        dl->delivered_seq = se.seq;
        durable_watermark_moved(x->d, dq);
    }
    se.redelivered = se.seq <= dl->delivered_seq;
    /* Dead entries are always read back, into dlx_waiting. */
    if (!se.dead && (dl->n_paged > 0 || q->mem_bytes >= x->d->window)) {
        /* Past the window: left in the store, read back ahead of consumers. */
        if (dl->n_paged == 0)
            dl->page_lo = se.seq;
        dl->n_paged++;
        dl->paged_shared |= shared;
        se.body_len = shared ? h.body_len : durable_msg_body_len(h.msg, h.msg_len);
        queue_cmd_enqueue_replayed(q, NULL, &se); /* no message: cannot fail */
        return 0;
    }
    struct msg *m;
    if (shared) {
        int rc = recover_shared_msg(x, h.shared_id, &m);
        if (rc != 0)
            return rc;
    } else {
        enum durable_load rc = durable_msg_decode(h.msg, h.msg_len, &m);
        if (rc == DURABLE_LOAD_CORRUPT)
            return recover_corrupt(x, "queue entry", key, klen);
        if (rc == DURABLE_LOAD_NOMEM)
            return recover_nomem(x);
    }
    int rc = queue_cmd_enqueue_replayed(q, m, &se);
    msg_unref(&m);
    return rc < 0 ? recover_nomem(x) : 0;
}

/* Restores q's entries with seqs [lo, end); from 0 and to UINT64_MAX, every key of its
 * prefix (a malformed one stops the start). 0, or -1 with the error in x->err. */
static int
recover_entries_range(struct recover_ctx *x, struct queue *q, uint64_t lo, uint64_t end)
{
    uint8_t begin[STORE_KEY_QENTRY_LEN], stop[STORE_KEY_QENTRY_LEN];
    uint64_t id = q->durable_state->store_id;
    size_t blen = lo != 0 ? store_key_qentry(begin, id, lo) : store_key_qentry_prefix(begin, id);
    size_t slen =
        end != UINT64_MAX ? store_key_qentry(stop, id, end) : store_key_qentry_prefix(stop, id + 1);
    return store_iter_range(x->d->st, begin, blen, stop, slen, recover_entry, x, x->err,
                            x->errlen) != 0
               ? -1
               : 0;
}

/* Reads q's delivery watermark into its lanes: one u64 per lane, lane 0 first (a queue
 * without priorities, or stored before lanes, has one; lanes it leaves out had none
 * delivered). 0, or -1 with the error in x->err. */
static int
recover_watermark(struct recover_ctx *x, struct queue *q)
{
    struct durable_queue *dq = q->durable_state;
    uint8_t key[STORE_KEY_DELIVERED_LEN];
    char *val;
    size_t vlen;
    store_key_delivered(key, dq->store_id);
    int rc = store_get(x->d->st, key, STORE_KEY_DELIVERED_LEN, &val, &vlen, x->err, x->errlen);
    if (rc <= 0)
        return rc;
    bool ok = vlen >= 8 && vlen % 8 == 0 && vlen / 8 <= dq->n_lanes;
    for (unsigned i = 0; ok && i < vlen / 8; i++) {
        uint64_t seq = bytes_get64((const uint8_t *)val + 8 * i);
        ok = seq == 0 || queue_seq_lane(seq) == i;
        dq->lanes[i].delivered_seq = seq;
    }
    free(val);
    if (!ok) {
        recover_corrupt(x, "delivery watermark", key, STORE_KEY_DELIVERED_LEN);
        return -1;
    }
    return 0;
}

/* Restores q's entries, in seq order (lane by lane), with their redelivered flags; purged
 * ones are not read. */
static int
recover_queue_entries(struct recover_ctx *x, struct queue *q)
{
    struct durable_queue *dq = q->durable_state;
    if (recover_watermark(x, q) < 0)
        return -1;
    x->q = q;
    uint64_t from = 0;
    bool purged = false;
    for (size_t i = 0; i < x->n_purged; i++) {
        const struct recover_purged *p = &x->purged[i];
        if (p->queue_id != dq->store_id)
            continue;
        if (queue_seq_lane(p->end) >= q->n_lanes) {
            uint8_t key[DURABLE_PURGED_KEY_LEN];
            recover_corrupt(x, "purge marker", key, durable_key_purged(key, p->queue_id, p->lo));
            return -1;
        }
        if (p->end <= from)
            continue;
        if (p->lo > from && recover_entries_range(x, q, from, p->lo) < 0)
            return -1;
        from = p->end;
        purged = true;
    }
    if (recover_entries_range(x, q, from, UINT64_MAX) < 0)
        return -1;
    /* Then its dead ones (dead-letter-strategy at-least-once), apart under its dead id. */
    uint8_t begin[STORE_KEY_QENTRY_LEN], stop[STORE_KEY_QENTRY_LEN];
    size_t blen = store_key_qentry_prefix(begin, dq->store_id | DURABLE_DEAD_QUEUE);
    size_t slen = store_key_qentry_prefix(stop, (dq->store_id | DURABLE_DEAD_QUEUE) + 1);
    x->dead = true;
    int rc =
        store_iter_range(x->d->st, begin, blen, stop, slen, recover_entry, x, x->err, x->errlen);
    x->dead = false;
    if (rc != 0)
        return -1;
    /* New entries go above the purged ones, which this start is deleting. */
    for (size_t i = 0; i < x->n_purged; i++) {
        if (x->purged[i].queue_id == dq->store_id)
            queue_seq_raise(q, x->purged[i].end);
    }
    bool paged = false;
    for (unsigned i = 0; i < dq->n_lanes; i++) {
        struct durable_lane *dl = &dq->lanes[i];
        /* New entries go above the watermark, or they would come back redelivered after the
         * next restart. */
        if (dl->delivered_seq != 0)
            queue_seq_raise(q, dl->delivered_seq + 1);
        dl->restored_below = q->lanes[i].next_seq;
        paged |= dl->n_paged > 0;
    }
    /* The purged entries among the paged ones are deleted by this start's batch: no page-in
     * before it is written. */
    if (purged && paged)
        durable_page_wait(x->d, q);
    return 0;
}

/* Queues that were not stored but had paged out entries, and stored queues deleted before
 * all their entries were: the entries go. */
static int
recover_temp_queue(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    if (klen != STORE_KEY_DELIVERED_LEN)
        return recover_corrupt(x, "paged queue", key, klen);
    uint64_t id = bytes_get64((const uint8_t *)key + 1);
    struct store_batch *b = durable_batch(x->d);
    if (b == NULL)
        return recover_nomem(x);
    durable_entries_delete_all(b, id);
    store_batch_delete(b, key, klen);
    if (id >= x->d->next_queue_id)
        x->d->next_queue_id = id + 1;
    return 0;
}

/* Purge markers: the entries they name are deleted, and skipped when their queue is read. */
static int
recover_purge_marker(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    if (klen != DURABLE_PURGED_KEY_LEN || vlen != 8)
        return recover_corrupt(x, "purge marker", key, klen);
    const uint8_t *k = (const uint8_t *)key + DURABLE_PURGED_PREFIX_LEN;
    struct recover_purged p = {bytes_get64(k), bytes_get64(k + 8), bytes_get64(val)};
    struct recover_purged *grown = realloc(x->purged, (x->n_purged + 1) * sizeof(*grown));
    if (grown == NULL)
        return recover_nomem(x);
    x->purged = grown;
    x->purged[x->n_purged++] = p;
    struct store_batch *b = durable_batch(x->d);
    if (b == NULL)
        return recover_nomem(x);
    uint8_t begin[STORE_KEY_QENTRY_LEN], end[STORE_KEY_QENTRY_LEN];
    store_key_qentry(begin, p.queue_id, p.lo);
    store_key_qentry(end, p.queue_id, p.end);
    store_batch_delete_range(b, begin, sizeof(begin), end, sizeof(end));
    store_batch_delete(b, key, klen);
    if (p.queue_id >= x->d->next_queue_id)
        x->d->next_queue_id = p.queue_id + 1;
    return 0;
}

/* Shared records: the ones no entry refers to are leftovers, deleted. */
static int
recover_shared_record(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct recover_ctx *x = arg;
    if (klen != STORE_KEY_MSG_LEN)
        return recover_corrupt(x, "message", key, klen);
    uint64_t id = bytes_get64((const uint8_t *)key + 1);
    if (id >= x->d->next_msg_id)
        x->d->next_msg_id = id + 1;
    if (hmap_find(&x->d->shared, (const uint8_t *)key + 1, 8) != NULL)
        return 0;
    struct store_batch *b = durable_batch(x->d);
    if (b == NULL)
        return recover_nomem(x);
    store_batch_delete(b, key, klen);
    x->n_orphans++;
    return 0;
}

static void
recover_shared_free(struct hmap_entry *e)
{
    free(hmap_container_of(e, struct recover_shared, by_id));
}

/* The metadata log index the store is at (durable_meta_index) into d->meta_index. 0, or -1
 * with err filled. */
static int
recover_meta_index(struct durable *d, char *err, size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    int rc = store_get(d->st, DURABLE_META_INDEX_KEY, DURABLE_META_INDEX_KEY_LEN, &val, &vlen, err,
                       errlen);
    if (rc < 0)
        return -1;
    d->meta_index = 0;
    if (rc == 1) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(val, &end, 10);
        if (vlen == 0 || *end != '\0' || errno != 0) {
            snprintf(err, errlen, "corrupt metadata log index in the store: not starting");
            free(val);
            return -1;
        }
        d->meta_index = x;
    }
    free(val);
    return 0;
}

int
durable_recover(struct durable *d, struct vhost_registry *reg, char *err, size_t errlen)
{
    struct recover_ctx x = {
        .d = d, .reg = reg, .unclean = store_unclean_stop(d->st), .err = err, .errlen = errlen};
    hmap_init(&x.shared);
    uint8_t tag;
    int rc = -1;
    if (recover_meta_index(d, err, errlen) < 0)
        goto out;
    tag = STORE_TAG_EXCHANGE;
    if (store_iter_prefix(d->st, &tag, 1, recover_exchange, &x, err, errlen) != 0)
        goto out;
    tag = STORE_TAG_QUEUE;
    if (store_iter_prefix(d->st, &tag, 1, recover_queue, &x, err, errlen) != 0)
        goto out;
    tag = STORE_TAG_BINDING;
    if (store_iter_prefix(d->st, &tag, 1, recover_binding, &x, err, errlen) != 0)
        goto out;
    tag = STORE_TAG_TEMP_QUEUE;
    if (store_iter_prefix(d->st, &tag, 1, recover_temp_queue, &x, err, errlen) != 0)
        goto out;
    if (store_iter_prefix(d->st, DURABLE_PURGED_PREFIX, DURABLE_PURGED_PREFIX_LEN,
                          recover_purge_marker, &x, err, errlen) != 0)
        goto out;
    /* The entries are replayed as commands, which go to the layer's journal: attached from
     * here on (the entities are back, so their hooks write nothing more). */
    vhost_registry_set_durable(reg, d);
    for (struct vhost *vh = reg->head; vh != NULL; vh = vh->next) {
        struct hmap_iter it;
        struct hmap_entry *he;
        hmap_iter_init(&it, &vh->queues);
        while ((he = hmap_iter_next(&it)) != NULL) {
            struct queue *q = hmap_container_of(he, struct queue, by_name);
            if (q->durable_state != NULL && recover_queue_entries(&x, q) < 0)
                goto out;
        }
    }
    tag = STORE_TAG_MSG;
    if (store_iter_prefix(d->st, &tag, 1, recover_shared_record, &x, err, errlen) != 0)
        goto out;
    log_msg(LOG_INFO,
            "store: restored %" PRIu64 " exchanges, %" PRIu64 " queues, %" PRIu64
            " bindings, %" PRIu64 " messages%s",
            x.n_exchanges, x.n_queues, x.n_bindings, x.n_entries,
            x.n_orphans > 0 ? " (unreferenced shared messages removed)" : "");
    rc = 0;
out:
    if (rc < 0) {
        vhost_registry_set_durable(reg, NULL);
        durable_discard_pending(d); /* the data is left as it was found */
    }
    hmap_drain(&x.shared, recover_shared_free);
    free(x.purged);
    return rc;
}
