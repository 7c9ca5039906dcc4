"""A full disk under a publisher with confirms: the store's writes fail, the publishes they
carried are nacked (never acked), the log says why, the broker keeps serving consumers, and
every message confirmed before the disk filled is still there, in order, after a restart.
Before the restart too: the queue pages (a small store.queue_window), so the nacked messages
were written to the store only, and their failed write means they do not exist: the queue
counts the confirmed ones, a consumer gets exactly those, and then the broker sits idle
(paging must not go on looking for the messages that are not there).

The data directory lives on a small tmpfs mounted for the test (mounting needs root, which
scripts/run-tests.sh and CI have: the test fails, saying so, without it). disk_free_limit is
set to 0 so that the free-disk alarm, which would block the publisher before the disk is
full, stays out of the way: this test is about what happens when it is full anyway (a limit
set too low, another process filling the disk). Queue names start with wt51-."""

import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

TMPFS_SIZE = "24m"
BODY = 16 * 1024


def mount_tmpfs():
    path = tempfile.mkdtemp(prefix="warren-test-full-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % TMPFS_SIZE, "tmpfs",
                        path], capture_output=True, text=True)
    if p.returncode != 0:
        os.rmdir(path)
        raise AssertionError("cannot mount a %s tmpfs to fill up (%s): this test needs root, "
                             "as scripts/run-tests.sh runs it" % (TMPFS_SIZE, p.stderr.strip()))
    return path


def umount(path):
    subprocess.run(["umount", "-l", path], check=False)
    os.rmdir(path)


def body(i):
    """Message i: its id, then bytes that do not compress (RocksDB compresses its files)."""
    return b"%08d" % i + random.Random(i).randbytes(BODY - 8)


def fill_until_nacked(addr, queue):
    """Publishes persistent messages with confirms until one is nacked. Returns the ids
    confirmed before it and the nacked id."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, durable=True)
    confirmed = []
    props = pika.BasicProperties(delivery_mode=2)
    for i in range(100000):
        try:
            ch.basic_publish("", queue, body(i), props)
        except pika.exceptions.NackError:
            conn.close()
            return confirmed, i
        confirmed.append(i)
    raise AssertionError("%d messages of %d bytes fit on a %s tmpfs: nothing was nacked" % (
        len(confirmed), BODY, TMPFS_SIZE))


def message_count(addr, queue):
    conn = wt.pika_connect(addr)
    n = conn.channel().queue_declare(queue, durable=True, passive=True).method.message_count
    conn.close()
    return n


def cpu_seconds(pid):
    """utime + stime of process pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def consume_confirmed(srv, queue, expect):
    """A consumer of queue, acking nothing, gets exactly the ids expect, in order; then, with
    it still attached, the broker uses little CPU for 5 s."""
    conn = wt.pika_connect(srv.addr)
    ch = conn.channel()
    got = []

    def on_message(ch_, method, props, payload):
        got.append(int(payload[:8]))

    ch.basic_consume(queue, on_message)
    deadline = time.monotonic() + 30
    while len(got) < len(expect) and time.monotonic() < deadline:
        conn.process_data_events(0.1)
    conn.process_data_events(1)  # anything more would arrive now
    assert got == expect, "the consumer got %d messages (first %s, last %s), expected %d " \
        "(%s..%s)" % (len(got), got[:1], got[-1:], len(expect), expect[:1], expect[-1:])
    before = cpu_seconds(srv.pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        conn.process_data_events(0.2)
    used = cpu_seconds(srv.pid) - before
    conn.close()
    wt.log("  the broker used %.2f s of CPU in 5 s with a consumer holding every message "
           "attached" % used)
    assert used < 1, "the broker used %.2f s of CPU in 5 s with an idle consumer attached" % used


def drain(addr, queue, expect):
    """Consumes queue with acks; asserts it holds exactly the ids expect, in order."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    got = []
    while True:
        method, _, payload = ch.basic_get(queue)
        if method is None:
            break
        assert len(payload) == BODY, "message of %d bytes, expected %d" % (len(payload), BODY)
        assert payload == body(int(payload[:8])), "message %r corrupted" % payload[:8]
        got.append(int(payload[:8]))
        ch.basic_ack(method.delivery_tag)
    conn.close()
    assert got == expect, "queue %s holds %d messages (first %s, last %s), expected %d (%s..%s)" % (
        queue, len(got), got[:1], got[-1:], len(expect), expect[:1], expect[-1:])


@wt.needs_process
def test_full_disk_nacks_and_keeps_what_was_confirmed():
    """Persistent publishes with confirms onto a 24 MiB tmpfs until one is nacked: a log line
    names the error, the broker still serves (a consumer on the same node gets a queue's
    messages), the queue counts the confirmed messages only and a consumer gets exactly
    those, without the broker spinning afterwards; and after a restart every confirmed
    message is there once, in order"""
    mnt = mount_tmpfs()
    try:
        # A 1 MB window: the messages past the first 64 are paged out, the nacked ones too.
        config = {"disk_free_limit.absolute": "0", "store.write_buffer_size": "1MB",
                  "store.block_cache_size": "1MB", "store.queue_window": "1MB"}
        with wt.server(config=config, args=["--data-dir", os.path.join(mnt, "data")]) as srv:
            confirmed, nacked = fill_until_nacked(srv.addr, "wt51-fill")
            wt.log("  %d messages of %d bytes confirmed, then message %d nacked" % (
                len(confirmed), BODY, nacked))
            assert len(confirmed) > 100, "only %d confirmed before the disk was full" % len(
                confirmed)
            wt.wait_until(lambda: "No space left on device" in srv.stderr_text(), 5,
                          "a log line naming the full disk")
            # Transient traffic has nothing to write: the broker serves it as before.
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            ch.queue_declare("wt51-transient")
            for i in range(100):
                ch.basic_publish("", "wt51-transient", b"t%d" % i)
            got = [ch.basic_get("wt51-transient", auto_ack=True)[2] for _ in range(100)]
            assert got == [b"t%d" % i for i in range(100)], got[:5]
            conn.close()
            assert srv.proc.poll() is None, "the broker died on a full disk"
            # The nacked message was paged out in the batch that failed: it is not there.
            n = message_count(srv.addr, "wt51-fill")
            assert n == len(confirmed), "queue wt51-fill counts %d messages, %d confirmed" % (
                n, len(confirmed))
            # A consumer that does not ack: its messages come back when it goes, and the
            # restart below finds them all.
            consume_confirmed(srv, "wt51-fill", confirmed)
            n = message_count(srv.addr, "wt51-fill")
            assert n == len(confirmed), "queue wt51-fill counts %d messages after the consumer " \
                "left, %d confirmed" % (n, len(confirmed))
            # The operator makes room before restarting, as they would: RocksDB's start writes
            # (the memtables replayed from its log go to a table file), and on a disk still
            # full to the byte it refuses to open (once in CI, depending on how full).
            p = subprocess.run(["mount", "-o", "remount,size=48m", mnt], capture_output=True,
                               text=True)
            assert p.returncode == 0, p.stderr
            srv.restart()
            # The nacked message may or may not have been written (a nack says nothing was
            # promised); everything confirmed must be there.
            conn = wt.pika_connect(srv.addr)
            n = conn.channel().queue_declare("wt51-fill", durable=True,
                                             passive=True).method.message_count
            conn.close()
            expect = confirmed + ([nacked] if n == len(confirmed) + 1 else [])
            drain(srv.addr, "wt51-fill", expect)
    finally:
        umount(mnt)


if __name__ == "__main__":
    wt.run([test_full_disk_nacks_and_keeps_what_was_confirmed], timeout=120)
