/* A replicated queue's state machine on its own (src/net/quorum_image.c, quorum_snapshot.c),
 * against a real store: commands applied to a member's image and its positions; a snapshot of
 * them, with no message in it; restored into a member that has some of the messages, lacks
 * others (missing: to be fetched) and has one the snapshot no longer names (gone); a start
 * reading the positions back from the store. */
#include "config.h"

#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "image_value.h"
#include "quorum_int.h"
#include "warren/bytes.h"
#include "warren/durable.h"
#include "warren/store.h"

static struct event_base *base;
static struct store *st;
static char dir[] = "/tmp/check_quorum.XXXXXX";

static void
setup(void)
{
    char err[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    base = event_base_new();
    st = store_open(dir, NULL, base, err, sizeof(err));
    ck_assert_msg(st != NULL, "store_open: %s", err);
}

static void
teardown(void)
{
    char err[256], cmd[128];
    ck_assert_int_eq(store_close(st, err, sizeof(err)), 0);
    event_base_free(base);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    strcpy(dir, "/tmp/check_quorum.XXXXXX");
}

/* Applies one command (op, epoch, then fields) at index, then ends the entry. */
static int
apply(struct quorum_image *im, uint64_t index, uint8_t op, uint64_t epoch, const uint8_t *fields,
      size_t n)
{
    uint8_t cmd[QUORUM_HDR + 64];
    cmd[0] = op;
    bytes_put64(cmd + 1, epoch);
    memcpy(cmd + QUORUM_HDR, fields, n);
    int rc = quorum_image_apply(im, index, cmd, QUORUM_HDR + n);
    quorum_image_applied(im, index);
    return rc;
}

/* The leader's marker of term 1 at index 1: the epoch is 1. */
static void
mark(struct quorum_image *im)
{
    uint8_t f[8];
    bytes_put64(f, 1);
    ck_assert_int_eq(apply(im, 1, QUORUM_MARKER, 0, f, sizeof(f)), QUORUM_MARKER_NEW);
}

/* Enqueues seq with a record of a few bytes that say which. */
static void
enqueue(struct quorum_image *im, uint64_t index, uint64_t seq)
{
    uint8_t f[16 + 8];
    bytes_put64(f, seq);
    bytes_put64(f + 8, 0);
    memcpy(f + 16, "message", 7);
    f[23] = (uint8_t)seq;
    ck_assert_int_eq(apply(im, index, QUORUM_ENQUEUE, 1, f, sizeof(f)), 0);
}

static void
seq_cmd(struct quorum_image *im, uint64_t index, uint8_t op, uint64_t seq, uint32_t count)
{
    uint8_t f[12];
    bytes_put64(f, seq);
    bytes_put32(f + 8, count);
    ck_assert_int_eq(apply(im, index, op, 1, f, op == QUORUM_REQUEUE ? 12 : 8), 0);
}

/* The snapshot of im, as raft would hand it to a member's restore (a copy it owns). */
static struct raft_buffer
snapshot(struct quorum_image *im)
{
    struct raft_buffer *bufs;
    unsigned n;
    ck_assert_int_eq(quorum_image_snapshot(im, &bufs, &n), 0);
    ck_assert_uint_eq(n, 1);
    struct raft_buffer copy = {raft_malloc(bufs[0].len), bufs[0].len};
    memcpy(copy.base, bufs[0].base, bufs[0].len);
    raft_free(bufs[0].base);
    raft_free(bufs);
    return copy;
}

/* Whether the store has entry seq of group with its message (1), missing (0, listed), or
 * not at all (-1). */
static int
stored(uint64_t group, uint64_t seq)
{
    char *val;
    size_t len;
    if (image_value(st, group, seq, &val, &len)) {
        ck_assert(len > 7 && memcmp(val + len - 8, "message", 7) == 0 &&
                  (uint8_t)val[len - 1] == seq);
        free(val);
        return 1;
    }
    struct quorum_image *back = quorum_image_new(st, group, "q", 1, false);
    ck_assert_ptr_nonnull(back);
    int found = quorum_image_pos(back, seq) != NULL ? 0 : -1;
    quorum_image_free(back);
    return found;
}

START_TEST(test_snapshot_restore)
{
    /* The leader's image: 1..4 enqueued, 2 settled, 3 requeued twice. */
    struct quorum_image *lead = quorum_image_new(st, 1, "q", 1, true);
    ck_assert_ptr_nonnull(lead);
    mark(lead);
    for (uint64_t seq = 1; seq <= 4; seq++)
        enqueue(lead, 2, seq);
    seq_cmd(lead, 3, QUORUM_SETTLE, 2, 0);
    seq_cmd(lead, 4, QUORUM_REQUEUE, 3, 2);
    ck_assert_uint_eq(lead->positions.count, 3);
    /* A command of another epoch (a deposed leader's) changes nothing. */
    uint8_t f[8];
    bytes_put64(f, 1);
    ck_assert_int_eq(apply(lead, 5, QUORUM_SETTLE, 7, f, sizeof(f)), -1);
    ck_assert_uint_eq(lead->positions.count, 3);
    struct raft_buffer snap = snapshot(lead);
    ck_assert_uint_lt(snap.len, 200); /* positions: no message in it */

    /* A member far behind: it has 1, and 9, which the snapshot no longer names. */
    struct quorum_image *behind = quorum_image_new(st, 2, "q", 1, true);
    ck_assert_ptr_nonnull(behind);
    mark(behind);
    enqueue(behind, 2, 1);
    enqueue(behind, 2, 9);
    ck_assert_int_eq(quorum_image_restore(behind, &snap), 0);
    ck_assert_uint_eq(behind->ist.index, 5);
    ck_assert_uint_eq(behind->n_missing, 2);
    ck_assert(!quorum_image_pos(behind, 1)->missing);
    ck_assert(quorum_image_pos(behind, 3)->missing && quorum_image_pos(behind, 3)->count == 2);
    ck_assert(quorum_image_pos(behind, 4)->missing);
    ck_assert_ptr_null(quorum_image_pos(behind, 2));
    ck_assert_ptr_null(quorum_image_pos(behind, 9));
    ck_assert_int_eq(stored(2, 1), 1);
    ck_assert_int_eq(stored(2, 3), 0);
    ck_assert_int_eq(stored(2, 4), 0);
    ck_assert_int_eq(stored(2, 9), -1);

    /* Read back at a start: the same positions, the same messages missing; a snapshot not
     * beyond the image (a start's own) changes nothing. */
    struct quorum_image *again = quorum_image_new(st, 2, "q", 1, false);
    ck_assert_ptr_nonnull(again);
    ck_assert_uint_eq(again->ist.index, 5);
    ck_assert_uint_eq(again->positions.count, 3);
    ck_assert_uint_eq(again->n_missing, 2);
    ck_assert_uint_eq(quorum_image_pos(again, 3)->count, 2);
    snap = snapshot(lead);
    ck_assert_int_eq(quorum_image_restore(again, &snap), 0);
    ck_assert_uint_eq(again->n_missing, 2);

    /* A settle of a missing entry, once applied, leaves nothing to fetch for it. */
    seq_cmd(again, 6, QUORUM_SETTLE, 4, 0);
    ck_assert_uint_eq(again->n_missing, 1);
    ck_assert_int_eq(stored(2, 4), -1);

    /* A snapshot that does not decode. */
    struct raft_buffer bad = {raft_malloc(3), 3};
    memcpy(bad.base, "\x02\x00\x00", 3);
    ck_assert_int_eq(quorum_image_restore(again, &bad), RAFT_CORRUPT);
    raft_free(bad.base);

    quorum_image_closed(again, false);
    quorum_image_closed(behind, false);
    quorum_image_closed(lead, true);
    ck_assert_int_eq(stored(1, 1), -1);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("quorum");
    TCase *tc = tcase_create("image");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_snapshot_restore);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
