"""Hostile clients that make the single event loop do quadratic work with cheap requests.
Every per-message and per-request path must cost O(1) or O(log n) in the number of
consumers and unacked messages; here each attack runs beside the watcher client, which must
never stall for a second. Where the loop's turns slice the work finely enough that nobody
stalls (acks and nacks, 64 frames a turn), what it costs shows in the broker's CPU time:
a generous bound (half a second for 50,000 requests, 10 us each) that quadratic work
exceeds many times over:

- 5,000 consumers at prefetch 1 on one queue with messages ready, then 20 basic.qos: each qos
  offers messages to every consumer of the channel (a consumer that is full is parked until
  its channel wakes it, instead of being scanned at every delivery);
- 50,000 unacked messages requeued by closing the channel, after acking... nothing; and
  with 2,000 consumers on the channel, each of whose cancellation walked every delivery;
- 50,000 unacked messages acked one by one, newest first (each ack found its delivery by
  walking the list from the oldest);
- the same inside a transaction, then tx.rollback (each delivery was put back by a walk);
- nack(requeue) of 50,000 messages one by one, oldest first (each walked the queue to its
  original position);
- 10,000 consumers without a prefetch limit on a connection that reads slowly: each time its
  output drained, every consumer was offered messages and each offer scanned all of them.
  The broker's CPU over the attack shows it (here too the work came in slices)."""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

N = 50000


def qos(prefetch, global_=False):
    return wt.method_frame(1, (60, 10), struct.pack(">IHB", 0, prefetch, 1 if global_ else 0))


def consume(queue, tag, no_ack=False, nowait=True):
    bits = (2 if no_ack else 0) | (8 if nowait else 0)
    return wt.method_frame(1, (60, 20), struct.pack(">H", 0) + wt.shortstr(queue) +
                           wt.shortstr(tag) + struct.pack(">B", bits) + wt.table({}))


def ack(tag, multiple=False):
    return wt.method_frame(1, (60, 80), struct.pack(">QB", tag, 1 if multiple else 0))


def nack(tag, requeue=True):
    return wt.method_frame(1, (60, 120), struct.pack(">QB", tag, 2 if requeue else 0))


def fill(srv, queue, n, body=b"m"):
    """Declares queue afresh and publishes n messages on a pika connection."""
    conn = wt.pika_connect(srv.addr)
    ch = conn.channel()
    wt.fresh_queue(ch, queue)
    for _ in range(n):
        ch.basic_publish("", queue, body)
    assert ch.queue_declare(queue, passive=True).method.message_count == n
    return conn, ch


def read_deliveries(c, n, timeout=60):
    """Reads frames until n basic.deliver have come; returns their delivery tags."""
    tags = []
    deadline = time.monotonic() + timeout
    while len(tags) < n:
        ftype, channel, payload = c.read_frame(max(0.1, deadline - time.monotonic()))
        if ftype == wt.FRAME_METHOD and payload[:4] == struct.pack(">HH", 60, 60):
            r = wt.Reader(payload[4:])
            r.shortstr()
            tags.append(r.unpack(">Q")[0])
    return tags


def reply(c, ids, channel=1, timeout=30):
    """Waits for the method ids on channel, skipping deliveries and their content."""
    deadline = time.monotonic() + timeout
    while True:
        ftype, on, payload = c.read_frame(max(0.1, deadline - time.monotonic()))
        if ftype != wt.FRAME_METHOD:
            continue
        got = struct.unpack(">HH", payload[:4])
        if got == (60, 60):
            continue
        assert got == ids and on == channel, "expected %s, got %s on channel %d" % (
            wt.method_name(ids), wt.method_name(got), on)
        return


def close(c):
    """connection.close, then close-ok (what was still being delivered skipped)."""
    c.send_method(0, wt.CONNECTION_CLOSE, wt.close_args())
    reply(c, wt.CONNECTION_CLOSE_OK, channel=0)
    c.close()


def cpu_limit(srv, seconds):
    """A CPU bound for the plain build, scaled for the AddressSanitizer build (which runs the
    broker up to four times slower: 0.7 s where the plain build takes 0.1 s)."""
    return seconds * (4 if srv.sanitized() else 1)


def cpu_bound(srv, cpu0, what):
    cpu = srv.cpu_seconds() - cpu0
    wt.log("  broker CPU for %s: %.2f s" % (what, cpu))
    assert cpu < cpu_limit(srv, 0.5), "%s took %.1f s of the broker's CPU" % (what, cpu)


def count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


@wt.needs_process
def test_qos_with_many_full_consumers():
    """5,000 consumers at prefetch 1 with 10,000 messages ready, then 20 basic.qos"""
    with wt.server() as srv:
        conn, ch = fill(srv, "wt66-qos", 10000)
        with watcher.Watcher(srv.addr) as w:
            c = wt.opened(srv.addr, 1)
            c.send(qos(1) + b"".join(consume("wt66-qos", "c%d" % i) for i in range(5000)))
            read_deliveries(c, 5000)
            w.check("while 5,000 consumers start")
            c.send(qos(1) * 20)
            for _ in range(20):
                reply(c, (60, 11))
            w.check("after 20 basic.qos")
            close(c)
        assert count(ch, "wt66-qos") == 10000
        conn.close()


@wt.needs_process
def test_close_with_many_unacked():
    """50,000 unacked messages on 2,000 consumers, requeued by closing the channel: they all
    come back, in order"""
    with wt.server() as srv:
        conn, ch = fill(srv, "wt66-close", N)
        with watcher.Watcher(srv.addr) as w:
            c = wt.opened(srv.addr, 1)
            c.send(b"".join(consume("wt66-close", "c%d" % i) for i in range(2000)))
            read_deliveries(c, N)
            w.check("while 50,000 messages are delivered")
            c.send_method(1, wt.CHANNEL_CLOSE, wt.close_args())
            reply(c, wt.CHANNEL_CLOSE_OK)
            w.check("after the channel with 50,000 unacked closed")
            assert count(ch, "wt66-close") == N
            close(c)
        got = [ch.basic_get("wt66-close", auto_ack=True) for _ in range(3)]
        assert all(m.redelivered for m, _, _ in got), "requeued, so redelivered"
        conn.close()


@wt.needs_process
def test_acks_newest_first():
    """50,000 single acks in reverse tag order; then the same in a transaction rolled back"""
    with wt.server() as srv:
        conn, ch = fill(srv, "wt66-acks", 2 * N)
        with watcher.Watcher(srv.addr) as w:
            c = wt.opened(srv.addr, 1)
            c.send(consume("wt66-acks", "c"))
            tags = read_deliveries(c, 2 * N)
            first, second = tags[:N], tags[N:]
            cpu0 = srv.cpu_seconds()
            c.send(b"".join(ack(t) for t in reversed(first)))
            c.send(wt.method_frame(1, (90, 10)))  # tx.select
            reply(c, (90, 11))
            w.check("after 50,000 acks newest first")
            cpu_bound(srv, cpu0, "50,000 acks newest first")
            c.send(b"".join(ack(t) for t in reversed(second)))
            c.send(wt.method_frame(1, (90, 30)))  # tx.rollback
            reply(c, (90, 31))
            w.check("after a rollback of 50,000 acks")
            # Rolled back: still unacked, so acking them all at once works.
            c.send(ack(second[-1], multiple=True) + wt.method_frame(1, (90, 20)))
            reply(c, (90, 21))
            close(c)
        assert count(ch, "wt66-acks") == 0
        conn.close()


@wt.needs_process
def test_nack_requeue_oldest_first():
    """50,000 gets, then nack(requeue) of each, oldest first: back in order"""
    with wt.server() as srv:
        conn, ch = fill(srv, "wt66-nack", N)
        with watcher.Watcher(srv.addr) as w:
            c = wt.opened(srv.addr, 1)
            c.send(consume("wt66-nack", "c"))
            tags = read_deliveries(c, N)
            c.send(wt.method_frame(1, (60, 30), wt.shortstr("c") + b"\x00"))  # basic.cancel
            reply(c, (60, 31))
            cpu0 = srv.cpu_seconds()
            c.send(b"".join(nack(t) for t in tags))
            c.send(qos(0))  # a round trip after the nacks
            reply(c, (60, 11))
            w.check("after 50,000 nacks oldest first")
            cpu_bound(srv, cpu0, "50,000 nacks oldest first")
            close(c)
        assert count(ch, "wt66-nack") == N
        m, _, _ = ch.basic_get("wt66-nack", auto_ack=True)
        assert m.redelivered and m.message_count == N - 1
        conn.close()


@wt.needs_process
def test_slow_reader_with_many_consumers():
    """10,000 consumers on a connection read 256 KiB every 50 ms, with 40 MB of messages to
    deliver: the watcher is never stalled and the broker spends under 0.6 s of CPU in 5 s
    (before consumers were parked: 1.05 s, and the watcher waited up to 0.84 s)"""
    with wt.server() as srv:
        conn, ch = fill(srv, "wt66-slow", 40000, body=b"s" * 1024)
        with watcher.Watcher(srv.addr) as w:
            c = wt.opened(srv.addr, 1)
            c.send(b"".join(consume("wt66-slow", "c%d" % i, no_ack=True) for i in range(10000)))
            cpu0 = srv.cpu_seconds()
            t0 = time.monotonic()
            c.sock.settimeout(0.05)
            while time.monotonic() - t0 < 5:
                try:
                    c.sock.recv(256 << 10)
                except OSError:
                    pass
                time.sleep(0.05)
            cpu = srv.cpu_seconds() - cpu0
            wt.log("  broker CPU over 5 s with a slow reader of 10,000 consumers: %.2f s" % cpu)
            w.check("with a slow reader of 10,000 consumers")
            assert cpu < cpu_limit(srv, 0.6), "the broker spent %.1f s of CPU in 5 s" % cpu
            c.close()
        conn.close()


if __name__ == "__main__":
    wt.run([test_qos_with_many_full_consumers, test_close_with_many_unacked,
            test_acks_newest_first, test_nack_requeue_oldest_first,
            test_slow_reader_with_many_consumers], timeout=180)
