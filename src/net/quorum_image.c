/* A replicated queue's state machine, run by the Raft thread (quorum_int.h): each committed
 * command changes the member's image (durable_image.c), each log entry's changes written with
 * the image's state in one store write, and its entries' positions, kept in memory for
 * snapshots (quorum_snapshot.c). Nothing of the loop's is touched here.
 *
 * Epochs (quorum.c's top comment): a marker of a term above the image's starts an epoch at its
 * index; a command of another epoch changes nothing and answers -1. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorum_int.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/store.h"

static int
quorum_image_scanned(void *arg, const struct durable_image_pos *pos)
{
    return quorum_image_pos_set(arg, pos);
}

struct quorum_image *
quorum_image_new(struct store *st, uint64_t gid, const char *queue, unsigned n_lanes, bool fresh)
{
    struct quorum_image *im = calloc(1, sizeof(*im));
    char err[256];
    if (im == NULL) {
        log_msg(LOG_ERROR, "cluster: queue '%s': out of memory: not replicated here", queue);
        return NULL;
    }
    im->st = st;
    im->gid = gid;
    snprintf(im->queue, sizeof(im->queue), "%s", queue);
    im->ist.n_lanes = n_lanes;
    struct store_batch *b = NULL;
    if (fresh) {
        /* Its state, empty, marks this node a member at the next start. */
        if ((b = store_batch_new()) != NULL)
            durable_image_state_put(b, gid, &im->ist);
        if (b == NULL || store_write_now(st, b, false, err, sizeof(err)) < 0) {
            log_msg(LOG_ERROR, "cluster: queue '%s': %s: not replicated here", queue,
                    b == NULL ? "out of memory" : err);
            quorum_image_free(im);
            return NULL;
        }
    } else if (durable_image_state_get(st, gid, &im->ist, err, sizeof(err)) < 0 ||
               durable_image_scan(st, gid, quorum_image_scanned, im, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s': %s: not replicated here", queue, err);
        quorum_image_free(im);
        return NULL;
    }
    im->restored_index = im->ist.index;
    return im;
}

void
quorum_image_free(struct quorum_image *im)
{
    if (im == NULL)
        return;
    struct idmap_iter it;
    struct idmap_entry *e;
    idmap_iter_init(&it, &im->positions);
    while ((e = idmap_iter_next(&it)) != NULL)
        free(idmap_container_of(e, struct quorum_pos, by_seq));
    idmap_clear(&im->positions);
    store_batch_free(im->batch);
    free(im->fetch_seqs);
    free(im);
}

struct quorum_pos *
quorum_image_pos(const struct quorum_image *im, uint64_t seq)
{
    struct idmap_entry *e = idmap_find(&im->positions, seq);
    return e != NULL ? idmap_container_of(e, struct quorum_pos, by_seq) : NULL;
}

int
quorum_image_pos_set(struct quorum_image *im, const struct durable_image_pos *p)
{
    struct quorum_pos *pos = quorum_image_pos(im, p->seq);
    if (pos == NULL) {
        if ((pos = calloc(1, sizeof(*pos))) == NULL ||
            idmap_insert(&im->positions, &pos->by_seq, p->seq) < 0) {
            free(pos);
            if (!im->positions_lost)
                log_msg(LOG_ERROR,
                        "cluster: queue '%s': out of memory: no snapshot of it from this "
                        "member any more (its log grows) until the node restarts",
                        im->queue);
            im->positions_lost = true;
            return -1;
        }
    } else if (pos->missing) {
        im->n_missing--;
    }
    pos->count = p->count;
    pos->dead = p->dead;
    pos->reason = p->reason;
    pos->missing = p->missing;
    if (pos->missing)
        im->n_missing++;
    return 0;
}

void
quorum_image_pos_drop(struct quorum_image *im, struct quorum_pos *pos)
{
    if (pos->missing)
        im->n_missing--;
    idmap_remove(&im->positions, &pos->by_seq);
    free(pos);
}

/* The batch of the entry being applied, made if needed (NULL on ENOMEM: logged). */
static struct store_batch *
quorum_image_batch(struct quorum_image *im)
{
    if (im->batch == NULL && (im->batch = store_batch_new()) == NULL && !im->failed) {
        im->failed = true;
        log_msg(LOG_ERROR,
                "cluster: queue '%s': out of memory writing its image: it is not written any "
                "more here until the node restarts",
                im->queue);
    }
    return im->batch;
}

static int
quorum_image_marker(struct quorum_image *im, uint64_t index, const uint8_t *p, size_t n)
{
    uint64_t term = n >= 8 ? bytes_get64(p) : 0;
    if (term > im->ist.epoch_term) {
        im->ist.epoch = index;
        im->ist.epoch_term = term;
        return QUORUM_MARKER_NEW;
    }
    /* A marker of an older term, committed after a newer one (forwarded late by a member that
     * led then), changes nothing. */
    return term == im->ist.epoch_term ? QUORUM_MARKER_AGAIN : -1;
}

int
quorum_image_apply(void *raft_arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct quorum_image *im = raft_arg;
    if (index <= im->restored_index)
        return 0;
    struct store_batch *b = quorum_image_batch(im);
    if (len < QUORUM_HDR || b == NULL)
        return -1;
    const uint8_t *p = cmd + QUORUM_HDR;
    size_t n = len - QUORUM_HDR;
    if (cmd[0] == QUORUM_MARKER)
        return quorum_image_marker(im, index, p, n);
    if (bytes_get64(cmd + 1) != im->ist.epoch || n < 8)
        return -1; /* a deposed leader's (or malformed): not the queue's any more */
    uint64_t seq = bytes_get64(p);
    unsigned lane = queue_seq_lane(seq);
    switch (cmd[0]) {
    case QUORUM_ENQUEUE:
        if (n < 16)
            return -1;
        durable_image_enqueue(b, im->gid, seq, bytes_get64(p + 8), p + 16, n - 16);
        quorum_image_pos_set(im, &(struct durable_image_pos){.seq = seq});
        if (seq > im->ist.last[lane])
            im->ist.last[lane] = seq;
        break;
    case QUORUM_DELIVER:
        if (seq > im->ist.delivered[lane])
            im->ist.delivered[lane] = seq;
        break;
    case QUORUM_SETTLE: {
        struct quorum_pos *pos = quorum_image_pos(im, seq);
        durable_image_remove(b, im->gid, seq);
        if (pos != NULL)
            quorum_image_pos_drop(im, pos);
        return 0;
    }
    case QUORUM_REQUEUE:
    case QUORUM_DIED: {
        if (n < (cmd[0] == QUORUM_REQUEUE ? 12u : 13u))
            return -1;
        struct quorum_pos *pos = quorum_image_pos(im, seq);
        struct durable_image_pos mark = {.seq = seq,
                                         .count = bytes_get32(p + 8),
                                         .dead = cmd[0] == QUORUM_DIED,
                                         .reason = cmd[0] == QUORUM_DIED ? p[12] : 0,
                                         .missing = pos != NULL && pos->missing};
        durable_image_mark(b, im->gid, seq, mark.count, mark.dead, mark.reason);
        if (pos != NULL)
            quorum_image_pos_set(im, &mark);
        return 0;
    }
    default:
        return -1;
    }
    if (lane >= im->ist.n_lanes)
        im->ist.n_lanes = lane + 1;
    return 0;
}

/* The entry's changes and the state at its index, in one write. */
void
quorum_image_applied(void *raft_arg, uint64_t index)
{
    struct quorum_image *im = raft_arg;
    if (index <= im->restored_index)
        return;
    struct store_batch *b = quorum_image_batch(im);
    char err[256];
    if (b == NULL)
        return;
    im->ist.index = index;
    durable_image_state_put(b, im->gid, &im->ist);
    im->batch = NULL;
    if (im->failed) {
        store_batch_free(b); /* (it would skip the entry whose write failed) */
        return;
    }
    if (store_write_now(im->st, b, false, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR,
                "cluster: queue '%s': its image is not written: %s; it is not written any more "
                "here until the node restarts (and replays it from the log, which is kept "
                "until then)",
                im->queue, err);
        im->failed = true;
    }
}

/* The group is closed: the image goes with a deleted queue. */
void
quorum_image_closed(void *raft_arg, bool destroyed)
{
    struct quorum_image *im = raft_arg;
    char err[256];
    struct store_batch *b;
    if (destroyed && (b = store_batch_new()) != NULL) {
        durable_image_drop(b, im->gid);
        if (store_write_now(im->st, b, false, err, sizeof(err)) < 0)
            log_msg(LOG_ERROR, "cluster: queue '%s': its image is not deleted: %s", im->queue, err);
    }
    quorum_image_free(im);
}
