/* Replicated queues' images (durable.h): what a replicated queue's committed commands left,
 * kept by every member of its group under the group's id.
 *
 * An entry is J(group, seq) with an 'I' entry's value (its expiry time and the message
 * inline: durable_entry_head), written once by its ENQUEUE; what later commands change of it
 * (its requeue count, its death) goes under J(group, seq, 'x'), which sorts right after it, so
 * that the entry's value, which holds the body, is never read back nor written again. An
 * entry whose message this member never had (a snapshot named it: quorum_snapshot.c) has an
 * empty value until the message is fetched from another member (quorum_fetch.c). The state,
 * K(group), is small: the index, the epoch and its term, and two seqs per lane. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "durable_int.h"
#include "warren/bytes.h"
#include "warren/deadletter.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/store.h"

#define IMAGE_KEY_LEN 17      /* 'J' u64 u64 */
#define IMAGE_MARK_KEY_LEN 18 /* and 'x' */
#define IMAGE_MARK_LEN 6      /* u32 count, u8 dead, u8 reason */
#define IMAGE_STATE_KEY_LEN 9
/* u64 index, u64 epoch, u64 its term, u16 lanes; then u64 delivered and last per lane */
#define IMAGE_STATE_HDR 26

static size_t
image_key(uint8_t *buf, uint64_t group, uint64_t seq)
{
    buf[0] = STORE_TAG_IMAGE;
    bytes_put64(buf + 1, group);
    bytes_put64(buf + 9, seq);
    return IMAGE_KEY_LEN;
}

static size_t
image_state_key(uint8_t *buf, uint64_t group)
{
    buf[0] = STORE_TAG_IMAGE_STATE;
    bytes_put64(buf + 1, group);
    return IMAGE_STATE_KEY_LEN;
}

void
durable_image_enqueue(struct store_batch *b, uint64_t group, uint64_t seq, uint64_t expires_at,
                      const uint8_t *record, size_t len)
{
    uint8_t key[IMAGE_KEY_LEN], head[DURABLE_ENTRY_HEAD_MAX];
    struct durable_entry_head h = {.flags = expires_at != 0 ? DURABLE_ENTRY_EXPIRES : 0,
                                   .expires_at = expires_at};
    struct iovec parts[2] = {{head, durable_entry_head_encode(head, &h)}, {(void *)record, len}};
    store_batch_putv(b, key, image_key(key, group, seq), parts, 2);
}

void
durable_image_put_missing(struct store_batch *b, uint64_t group, uint64_t seq)
{
    uint8_t key[IMAGE_KEY_LEN];
    store_batch_put(b, key, image_key(key, group, seq), "", 0);
}

void
durable_image_put_value(struct store_batch *b, uint64_t group, uint64_t seq, const void *val,
                        size_t len)
{
    uint8_t key[IMAGE_KEY_LEN];
    store_batch_put(b, key, image_key(key, group, seq), val, len);
}

/* Walking values: the entries of [first, last] with their message. */
struct image_values {
    durable_image_value_fn fn;
    void *arg;
};

static int
image_values_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct image_values *x = arg;
    if (klen != IMAGE_KEY_LEN || vlen == 0)
        return 0; /* a mark, or a message missing here too */
    return x->fn(x->arg, bytes_get64((const uint8_t *)key + 9), val, vlen);
}

int
durable_image_values(struct store *st, uint64_t group, uint64_t first, uint64_t last,
                     durable_image_value_fn fn, void *arg, char *err, size_t errlen)
{
    struct image_values x = {fn, arg};
    uint8_t lo[IMAGE_KEY_LEN], hi[IMAGE_KEY_LEN];
    image_key(lo, group, first);
    if (last == UINT64_MAX)
        image_key(hi, group + 1, 0);
    else
        image_key(hi, group, last + 1);
    int rc =
        store_iter_range(st, lo, sizeof(lo), hi, sizeof(hi), image_values_entry, &x, err, errlen);
    return rc < 0 ? -1 : 0;
}

void
durable_image_remove(struct store_batch *b, uint64_t group, uint64_t seq)
{
    uint8_t key[IMAGE_MARK_KEY_LEN];
    image_key(key, group, seq);
    key[IMAGE_KEY_LEN] = 'x';
    store_batch_delete(b, key, IMAGE_KEY_LEN);
    store_batch_delete(b, key, IMAGE_MARK_KEY_LEN);
}

void
durable_image_mark(struct store_batch *b, uint64_t group, uint64_t seq, uint32_t count, bool dead,
                   uint8_t reason)
{
    uint8_t key[IMAGE_MARK_KEY_LEN], val[IMAGE_MARK_LEN];
    image_key(key, group, seq);
    key[IMAGE_KEY_LEN] = 'x';
    bytes_put32(val, count);
    val[4] = dead;
    val[5] = reason;
    store_batch_put(b, key, sizeof(key), val, sizeof(val));
}

size_t
durable_image_state_encode(uint8_t *val, const struct durable_image_state *ist)
{
    bytes_put64(val, ist->index);
    bytes_put64(val + 8, ist->epoch);
    bytes_put64(val + 16, ist->epoch_term);
    bytes_put16(val + 24, (uint16_t)ist->n_lanes);
    for (unsigned i = 0; i < ist->n_lanes; i++) {
        bytes_put64(val + IMAGE_STATE_HDR + 16 * i, ist->delivered[i]);
        bytes_put64(val + IMAGE_STATE_HDR + 8 + 16 * i, ist->last[i]);
    }
    return IMAGE_STATE_HDR + 16 * (size_t)ist->n_lanes;
}

size_t
durable_image_state_decode(const uint8_t *v, size_t vlen, struct durable_image_state *ist)
{
    memset(ist, 0, sizeof(*ist));
    unsigned n = vlen >= IMAGE_STATE_HDR ? bytes_get16(v + 24) : 0;
    if (vlen < IMAGE_STATE_HDR || n > QUEUE_LANES_MAX || vlen < IMAGE_STATE_HDR + 16 * (size_t)n)
        return 0;
    ist->index = bytes_get64(v);
    ist->epoch = bytes_get64(v + 8);
    ist->epoch_term = bytes_get64(v + 16);
    ist->n_lanes = n;
    for (unsigned i = 0; i < n; i++) {
        ist->delivered[i] = bytes_get64(v + IMAGE_STATE_HDR + 16 * i);
        ist->last[i] = bytes_get64(v + IMAGE_STATE_HDR + 8 + 16 * i);
    }
    return IMAGE_STATE_HDR + 16 * (size_t)n;
}

void
durable_image_state_put(struct store_batch *b, uint64_t group,
                        const struct durable_image_state *ist)
{
    uint8_t key[IMAGE_STATE_KEY_LEN], val[DURABLE_IMAGE_STATE_MAX];
    store_batch_put(b, key, image_state_key(key, group), val, durable_image_state_encode(val, ist));
}

int
durable_image_state_get(struct store *st, uint64_t group, struct durable_image_state *ist,
                        char *err, size_t errlen)
{
    memset(ist, 0, sizeof(*ist));
    uint8_t key[IMAGE_STATE_KEY_LEN];
    char *val;
    size_t vlen;
    int rc = store_get(st, key, image_state_key(key, group), &val, &vlen, err, errlen);
    if (rc <= 0)
        return rc;
    if (durable_image_state_decode((const uint8_t *)val, vlen, ist) != vlen) {
        snprintf(err, errlen, "the state of replicated queue group %" PRIu64 " does not decode",
                 group);
        free(val);
        return -1;
    }
    free(val);
    return 1;
}

void
durable_image_drop(struct store_batch *b, uint64_t group)
{
    uint8_t lo[IMAGE_KEY_LEN], hi[IMAGE_KEY_LEN], key[IMAGE_STATE_KEY_LEN];
    image_key(lo, group, 0);
    image_key(hi, group + 1, 0);
    store_batch_delete_range(b, lo, sizeof(lo), hi, sizeof(hi));
    store_batch_delete(b, key, image_state_key(key, group));
}

/* Loading: the entries in key order, each entry's mark right after it. */
struct image_load {
    struct queue *q;
    const struct durable_image_state *st;
    struct queue_stored_entry se; /* the entry read last, its mark still to come */
    struct msg *m;                /* its message (one reference) */
    struct msg **dead;            /* dead entries: loaded after the others */
    struct queue_stored_entry *dead_se;
    size_t n_dead, cap_dead;
    int64_t n;
    bool missing; /* an entry's message is still to be fetched */
    char *err;
    size_t errlen;
};

static int
image_load_fail(struct image_load *x, const char *what)
{
    snprintf(x->err, x->errlen, "replicated queue '%s': %s", x->q->name, what);
    return -1;
}

/* Enqueues the entry read last (x->m), now that its mark (if any) was read. */
static int
image_load_flush(struct image_load *x)
{
    if (x->m == NULL)
        return 0;
    struct queue_stored_entry *se = &x->se;
    unsigned lane = queue_seq_lane(se->seq);
    se->redelivered = se->delivery_count > 0 || se->seq <= x->st->delivered[lane];
    if (se->dead) {
        if (x->n_dead == x->cap_dead) {
            size_t cap = x->cap_dead > 0 ? 2 * x->cap_dead : 16;
            struct msg **m = realloc(x->dead, cap * sizeof(*m));
            if (m == NULL)
                return image_load_fail(x, "out of memory");
            x->dead = m;
            struct queue_stored_entry *s = realloc(x->dead_se, cap * sizeof(*s));
            if (s == NULL)
                return image_load_fail(x, "out of memory");
            x->dead_se = s;
            x->cap_dead = cap;
        }
        x->dead[x->n_dead] = x->m;
        x->dead_se[x->n_dead++] = *se;
        x->m = NULL;
        return 0;
    }
    int rc = queue_cmd_enqueue_replayed(x->q, x->m, se);
    msg_unref(&x->m);
    if (rc < 0)
        return image_load_fail(x, "out of memory");
    x->n++;
    return 0;
}

static int
image_load_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct image_load *x = arg;
    const uint8_t *k = key;
    if (klen == IMAGE_MARK_KEY_LEN) {
        if (x->m == NULL || vlen != IMAGE_MARK_LEN || bytes_get64(k + 9) != x->se.seq)
            return 0; /* the mark of an entry gone: left over, harmless */
        const uint8_t *v = val;
        x->se.delivery_count = bytes_get32(v);
        x->se.dead = v[4] != 0;
        x->se.dlx_reason = v[5];
        return 0;
    }
    if (image_load_flush(x) < 0)
        return -1;
    struct durable_entry_head h;
    uint64_t seq = klen == IMAGE_KEY_LEN ? bytes_get64(k + 9) : 0;
    unsigned lane = queue_seq_lane(seq);
    if (klen == IMAGE_KEY_LEN && vlen == 0) {
        x->missing = true;
        return image_load_fail(x, "messages still to be fetched from another member");
    }
    if (klen != IMAGE_KEY_LEN || !durable_entry_head_decode(val, vlen, &h) ||
        (h.flags & DURABLE_ENTRY_SHARED) || lane >= x->q->n_lanes)
        return image_load_fail(x, "an entry does not decode");
    enum durable_load rc = durable_msg_decode(h.msg, h.msg_len, &x->m);
    if (rc != DURABLE_LOAD_OK)
        return image_load_fail(x, rc == DURABLE_LOAD_NOMEM ? "out of memory"
                                                           : "a message does not decode");
    x->se = (struct queue_stored_entry){.seq = seq, .expires_at = h.expires_at};
    return 0;
}

int64_t
durable_image_load(struct store *st, uint64_t group, struct queue *q,
                   const struct durable_image_state *ist, char *err, size_t errlen)
{
    struct image_load x = {.q = q, .st = ist, .err = err, .errlen = errlen};
    uint8_t prefix[9];
    prefix[0] = STORE_TAG_IMAGE;
    bytes_put64(prefix + 1, group);
    char rerr[256];
    int rc =
        store_iter_prefix(st, prefix, sizeof(prefix), image_load_entry, &x, rerr, sizeof(rerr));
    if (rc < 0)
        snprintf(err, errlen, "replicated queue '%s': %s", q->name, rerr);
    if (rc == 0 && image_load_flush(&x) < 0)
        rc = -1;
    msg_unref(&x.m);
    for (size_t i = 0; i < x.n_dead; i++) {
        if (rc == 0 && queue_cmd_enqueue_replayed(q, x.dead[i], &x.dead_se[i]) < 0)
            rc = image_load_fail(&x, "out of memory");
        else if (rc == 0)
            x.n++;
        msg_unref(&x.dead[i]);
    }
    free(x.dead);
    free(x.dead_se);
    if (rc != 0)
        return x.missing ? DURABLE_IMAGE_MISSING : -1;
    for (unsigned lane = 0; lane < ist->n_lanes && lane < q->n_lanes; lane++)
        if (ist->last[lane] != 0)
            queue_seq_raise(q, ist->last[lane] + 1);
    return x.n;
}

/* Scanning: each entry's position once its mark (which follows it) was read. */
struct image_scan {
    durable_image_scan_fn fn;
    void *arg;
    struct durable_image_pos pos;
    bool pending; /* pos is an entry's, not reported yet */
};

static int
image_scan_flush(struct image_scan *x)
{
    if (!x->pending)
        return 0;
    x->pending = false;
    return x->fn(x->arg, &x->pos);
}

static int
image_scan_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct image_scan *x = arg;
    const uint8_t *k = key, *v = val;
    if (klen == IMAGE_MARK_KEY_LEN) {
        if (x->pending && vlen == IMAGE_MARK_LEN && bytes_get64(k + 9) == x->pos.seq) {
            x->pos.count = bytes_get32(v);
            x->pos.dead = v[4] != 0;
            x->pos.reason = v[5];
        }
        return 0;
    }
    if (image_scan_flush(x) != 0)
        return 1;
    if (klen == IMAGE_KEY_LEN) {
        x->pos = (struct durable_image_pos){.seq = bytes_get64(k + 9), .missing = vlen == 0};
        x->pending = true;
    }
    return 0;
}

int
durable_image_scan(struct store *st, uint64_t group, durable_image_scan_fn fn, void *arg, char *err,
                   size_t errlen)
{
    struct image_scan x = {.fn = fn, .arg = arg};
    uint8_t prefix[9];
    prefix[0] = STORE_TAG_IMAGE;
    bytes_put64(prefix + 1, group);
    int rc = store_iter_prefix(st, prefix, sizeof(prefix), image_scan_entry, &x, err, errlen);
    if (rc == 0 && image_scan_flush(&x) != 0)
        rc = 1;
    if (rc > 0)
        snprintf(err, errlen, "out of memory");
    return rc != 0 ? -1 : 0;
}
