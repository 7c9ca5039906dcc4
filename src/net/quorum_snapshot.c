/* Snapshots of a replicated queue's group (quorum_int.h), on the Raft thread: the image's
 * state and its entries' positions, from memory, never their messages. A member too far behind
 * for the log restores one, then fetches the messages it lacks from another member
 * (quorum_fetch.c): a snapshot is 14 bytes a message whatever the bodies, and the leader
 * goes on serving while the member catches up.
 *
 * Format: [u8 version][u32 state length][the state, as in K][u64 entries] then per entry
 * [u64 seq][u32 requeue count][u8 dead][u8 reason].
 *
 * Raft cuts its log up to a snapshot once the snapshot is written: the image then holds the
 * only copy of those entries' messages here, so it is synced first (its writes are not). */
#include "config.h"

#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorum_int.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/store.h"

#define SNAPSHOT_VERSION 2
#define SNAPSHOT_ENTRY 14

int
quorum_image_snapshot(void *raft_arg, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct quorum_image *im = raft_arg;
    char err[256];
    if (im->positions_lost || im->failed)
        return RAFT_BUSY; /* the log stays the copy of what the image may lack */
    struct store_batch *b = store_batch_new();
    if (b == NULL)
        return RAFT_NOMEM;
    durable_image_state_put(b, im->gid, &im->ist);
    if (store_write_now(im->st, b, true, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s': no snapshot: %s", im->queue, err);
        return RAFT_BUSY;
    }
    size_t len = 1 + 4 + DURABLE_IMAGE_STATE_MAX + 8 + SNAPSHOT_ENTRY * im->positions.count;
    uint8_t *p = raft_malloc(len);
    if (p == NULL || (*bufs = raft_malloc(sizeof(**bufs))) == NULL) {
        raft_free(p);
        return RAFT_NOMEM;
    }
    p[0] = SNAPSHOT_VERSION;
    size_t n = durable_image_state_encode(p + 5, &im->ist);
    bytes_put32(p + 1, (uint32_t)n);
    uint8_t *q = p + 5 + n;
    bytes_put64(q, im->positions.count);
    q += 8;
    struct idmap_iter it;
    struct idmap_entry *e;
    idmap_iter_init(&it, &im->positions);
    while ((e = idmap_iter_next(&it)) != NULL) {
        const struct quorum_pos *pos = idmap_container_of(e, struct quorum_pos, by_seq);
        bytes_put64(q, e->id);
        bytes_put32(q + 8, pos->count);
        q[12] = pos->dead;
        q[13] = pos->reason;
        q += SNAPSHOT_ENTRY;
    }
    (*bufs)[0] = (struct raft_buffer){.base = p, .len = (size_t)(q - p)};
    *n_bufs = 1;
    return 0;
}

/* The state and entries of the snapshot buf: 0, or -1 if it does not decode. */
static int
snapshot_decode(const struct raft_buffer *buf, struct durable_image_state *ist,
                const uint8_t **entries, uint64_t *n)
{
    const uint8_t *p = buf->base;
    size_t len = buf->len, slen;
    if (len < 5 || p[0] != SNAPSHOT_VERSION || (slen = bytes_get32(p + 1)) > len - 5 ||
        durable_image_state_decode(p + 5, slen, ist) != slen || len - 5 - slen < 8)
        return -1;
    *n = bytes_get64(p + 5 + slen);
    *entries = p + 5 + slen + 8;
    return *n == (len - 5 - slen - 8) / SNAPSHOT_ENTRY && (len - 5 - slen - 8) % SNAPSHOT_ENTRY == 0
               ? 0
               : -1;
}

/* Makes the image the snapshot's, in b: its entries kept where this member has their
 * message, missing where not (to be fetched), gone where the snapshot has them no more.
 * -1 on ENOMEM (logged by quorum_image_pos_set). */
static int
snapshot_replace(struct quorum_image *im, struct store_batch *b, const uint8_t *p, uint64_t n)
{
    struct idmap old = im->positions;
    idmap_init(&im->positions);
    im->n_missing = 0;
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++, p += SNAPSHOT_ENTRY) {
        struct durable_image_pos sp = {.seq = bytes_get64(p),
                                       .count = bytes_get32(p + 8),
                                       .dead = p[12] != 0,
                                       .reason = p[13],
                                       .missing = true};
        struct idmap_entry *e = idmap_find(&old, sp.seq);
        struct quorum_pos *had =
            e != NULL ? idmap_container_of(e, struct quorum_pos, by_seq) : NULL;
        if (had != NULL) {
            sp.missing = had->missing;
            if (had->count != sp.count || had->dead != sp.dead || had->reason != sp.reason)
                durable_image_mark(b, im->gid, sp.seq, sp.count, sp.dead, sp.reason);
            idmap_remove(&old, e);
            free(had);
        } else {
            durable_image_put_missing(b, im->gid, sp.seq);
            if (sp.count != 0 || sp.dead)
                durable_image_mark(b, im->gid, sp.seq, sp.count, sp.dead, sp.reason);
        }
        rc = quorum_image_pos_set(im, &sp);
    }
    /* What is left went from the queue since (settled on the other members). */
    struct idmap_iter it;
    struct idmap_entry *e;
    idmap_iter_init(&it, &old);
    while ((e = idmap_iter_next(&it)) != NULL) {
        durable_image_remove(b, im->gid, e->id);
        free(idmap_container_of(e, struct quorum_pos, by_seq));
    }
    idmap_clear(&old);
    return rc;
}

int
quorum_image_restore(void *raft_arg, struct raft_buffer *buf)
{
    struct quorum_image *im = raft_arg;
    char err[256];
    struct durable_image_state ist;
    const uint8_t *entries;
    uint64_t n;
    if (snapshot_decode(buf, &ist, &entries, &n) < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s': a snapshot does not decode", im->queue);
        return RAFT_CORRUPT;
    }
    /* At a start, the image is as far as the last snapshot at least (it was synced before
     * the snapshot was taken): only a leader's snapshot for a member behind changes it. */
    if (ist.index <= im->ist.index) {
        raft_free(buf->base);
        return 0;
    }
    struct store_batch *b = store_batch_new();
    if (b == NULL)
        return RAFT_NOMEM;
    if (snapshot_replace(im, b, entries, n) < 0) {
        store_batch_free(b);
        return RAFT_NOMEM;
    }
    im->ist = ist;
    durable_image_state_put(b, im->gid, &im->ist);
    if (store_write_now(im->st, b, true, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s': a snapshot not restored: %s", im->queue, err);
        im->failed = true;
        return RAFT_IOERR;
    }
    im->restored_index = ist.index;
    free(im->fetch_seqs); /* listed afresh */
    im->fetch_seqs = NULL;
    im->n_fetch_seqs = im->fetch_next = 0;
    log_msg(LOG_INFO,
            "cluster: queue '%s': a snapshot restored at index %llu: %llu messages, %llu of "
            "them to fetch from other members",
            im->queue, (unsigned long long)ist.index, (unsigned long long)n,
            (unsigned long long)im->n_missing);
    raft_free(buf->base);
    return 0;
}
