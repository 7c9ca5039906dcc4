/* A replicated queue's state machine, run by the Raft thread (quorum_int.h): each committed
 * command changes the member's image (durable_image.c), each log entry's changes written with
 * the image's state in one store write; snapshots are dumps of the image, and restoring one
 * replaces it. Nothing of the loop's is touched here.
 *
 * Epochs (quorum.c's top comment): a marker of a term above the image's starts an epoch at its
 * index; a command of another epoch changes nothing and answers -1. */
#include "config.h"

#include <inttypes.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorum_int.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/store.h"

/* The largest snapshot: a backlog bigger than this keeps the log (and its entries in memory)
 * until it drains below. */
#define QUORUM_SNAPSHOT_MAX (64u << 20)
/* After a snapshot too big, none is tried for this many entries. */
#define QUORUM_SNAPSHOT_RETRY 4096

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
        if (b == NULL || store_write_now(st, b, err, sizeof(err)) < 0) {
            log_msg(LOG_ERROR, "cluster: queue '%s': %s: not replicated here", queue,
                    b == NULL ? "out of memory" : err);
            free(im);
            return NULL;
        }
    } else if (durable_image_state_get(st, gid, &im->ist, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s': %s: not replicated here", queue, err);
        free(im);
        return NULL;
    }
    im->restored_index = im->ist.index;
    return im;
}

/* The batch of the entry being applied, made if needed (NULL on ENOMEM: logged). */
static struct store_batch *
quorum_image_batch(struct quorum_image *im)
{
    if (im->batch == NULL && (im->batch = store_batch_new()) == NULL && !im->failed) {
        im->failed = true;
        log_msg(LOG_ERROR, "cluster: queue '%s': out of memory writing its image", im->queue);
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
        if (seq > im->ist.last[lane])
            im->ist.last[lane] = seq;
        break;
    case QUORUM_DELIVER:
        if (seq > im->ist.delivered[lane])
            im->ist.delivered[lane] = seq;
        break;
    case QUORUM_SETTLE:
        durable_image_remove(b, im->gid, seq);
        return 0;
    case QUORUM_REQUEUE:
    case QUORUM_DIED:
        if (n < (cmd[0] == QUORUM_REQUEUE ? 12u : 13u))
            return -1;
        durable_image_mark(b, im->gid, seq, bytes_get32(p + 8), cmd[0] == QUORUM_DIED,
                           cmd[0] == QUORUM_DIED ? p[12] : 0);
        return 0;
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
    if (store_write_now(im->st, b, err, sizeof(err)) < 0) {
        if (!im->failed)
            log_msg(LOG_ERROR, "cluster: queue '%s': its image is not written: %s", im->queue, err);
        im->failed = true;
    } else if (im->failed) {
        log_msg(LOG_INFO, "cluster: queue '%s': its image is written again", im->queue);
        im->failed = false;
    }
}

int
quorum_image_snapshot(void *raft_arg, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct quorum_image *im = raft_arg;
    char err[256];
    if (im->ist.index < im->busy_until)
        return RAFT_BUSY;
    void *p;
    size_t len;
    int rc = durable_image_dump(im->st, im->gid, &im->ist, QUORUM_SNAPSHOT_MAX, raft_realloc, &p,
                                &len, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            log_msg(LOG_ERROR, "cluster: queue '%s': no snapshot: %s", im->queue, err);
        im->busy_until = im->ist.index + QUORUM_SNAPSHOT_RETRY;
        return RAFT_BUSY;
    }
    if ((*bufs = raft_malloc(sizeof(**bufs))) == NULL) {
        raft_free(p);
        return RAFT_NOMEM;
    }
    (*bufs)[0] = (struct raft_buffer){.base = p, .len = len};
    *n_bufs = 1;
    return 0;
}

int
quorum_image_restore(void *raft_arg, struct raft_buffer *buf)
{
    struct quorum_image *im = raft_arg;
    char err[256];
    struct durable_image_state ist;
    int rc = 0;
    if (durable_image_snapshot_state(buf->base, buf->len, &ist) < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s': a snapshot does not decode", im->queue);
        return RAFT_CORRUPT;
    }
    /* At a start, the image is at least as far as the last snapshot, unless the machine lost
     * its last writes (they are not synced): then it is the snapshot's again. */
    if (ist.index > im->ist.index) {
        if (durable_image_restore(im->st, im->gid, buf->base, buf->len, &im->ist, err,
                                  sizeof(err)) < 0) {
            log_msg(LOG_ERROR, "cluster: queue '%s': a snapshot not restored: %s", im->queue, err);
            rc = RAFT_IOERR;
        } else {
            im->restored_index = im->ist.index;
        }
    }
    if (rc == 0)
        raft_free(buf->base);
    return rc;
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
        if (store_write_now(im->st, b, err, sizeof(err)) < 0)
            log_msg(LOG_ERROR, "cluster: queue '%s': its image is not deleted: %s", im->queue, err);
    }
    store_batch_free(im->batch);
    free(im);
}
