"""Back-pressure: a consumer that stops reading its socket must not make the broker buffer
without bound, and must not stop the broker serving everyone else.

The scenario: one queue, two no-ack consumers on it. The "stuck" one is a raw socket
(SO_RCVBUF 64 KiB) that subscribes and then never reads; the other is a pika consumer
that keeps reading. A producer publishes 3000 messages of 64 KiB (187.5 MiB) with
publisher confirms. A broker that stops delivering to a consumer whose socket is full
sends the stuck one only what fits in the socket buffers and its own output buffer, and
everything else to the reader; a broker that buffers without bound gives the stuck one
about half (94 MiB). Checked:
  - the stuck consumer's share (3000 - what the reader got - what is left in the queue)
    is at most 512 messages (32 MiB). RabbitMQ 3.10 stops at 250 messages (16 MiB:
    its credit flow) whatever the total; on loopback Linux lets the server's send buffer
    grow to 4 MiB (net.ipv4.tcp_wmem), so 32 MiB leaves Warren 28 MiB for its own output
    buffer and in-flight messages and still fails a broker that buffers half of 187 MiB;
  - while the stuck consumer holds its share, a new connection declares a queue,
    publishes and gets a message within 2 s;
  - once the stuck consumer reads again it receives exactly its share, intact: nothing is
    lost (no-ack deliveries already counted as delivered must arrive);
  - (warren-server only) the server's RSS grows by at most 64 MiB from before the 3000
    messages to after them: a third of what went through, well under the 94 MiB an
    unbounded output buffer would hold.
Also: channel.flow(active=true) on a consuming channel -> flow-ok, deliveries go on.
Checked against RabbitMQ 3.10 (the RSS part needs the warren-server process)."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

B = spec.Basic

MESSAGES = 3000
BODY = 64 * 1024
STUCK_MAX = 512          # messages (32 MiB): see the module comment
RSS_MAX_KIB = 64 * 1024  # RSS growth over the 3000 messages


def stuck_consumer(addr, queue):
    """A raw connection with a small receive buffer, consuming queue with no-ack; the
    caller does not read from it until it chooses to."""
    c = wt.RawConn(addr, timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.handshake("open")
    c.open_channel(1)
    wt.send_pika(c, 1, B.Consume(queue=queue, no_ack=True, consumer_tag="stuck"))
    c.expect(wt.method_ids(B.ConsumeOk), channel=1)
    return c


def read_deliveries(c, n, timeout):
    """Reads n deliveries (basic.deliver, header, body) from c; checks each body."""
    deadline = time.monotonic() + timeout
    for i in range(n):
        left = max(0.01, deadline - time.monotonic())
        m = c.read_method(timeout=left)
        assert m.ids == wt.method_ids(B.Deliver), \
            "delivery %d: expected basic.deliver, got %r" % (i, m)
        ftype, _, header = c.read_frame(timeout=left)
        assert ftype == wt.FRAME_HEADER
        size = int.from_bytes(header[4:12], "big")
        body = b""
        while len(body) < size:
            body += c.read_frame(timeout=max(0.01, deadline - time.monotonic()))[2]
        assert body == b"%08d" % int(body[:8]) + b"x" * (BODY - 8), \
            "delivery %d: body damaged" % i


def served_within(addr, seconds):
    """A new connection declares a queue, publishes to it and gets the message back."""
    t0 = time.monotonic()
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"still served")
    assert ch.basic_get(q, auto_ack=True)[2] == b"still served"
    conn.close()
    took = time.monotonic() - t0
    assert took <= seconds, "another client took %.1f s for declare/publish/get" % took
    return took


def scenario(srv, queue, measure_rss=False):
    admin = wt.pika_connect(srv.addr)
    ach = admin.channel()
    wt.fresh_queue(ach, queue)
    stuck = stuck_consumer(srv.addr, queue)
    reader = wt.pika_connect(srv.addr)
    rch = reader.channel()
    got = [0]

    def on_message(ch, method, props, body):
        assert len(body) == BODY, len(body)
        got[0] += 1

    rch.basic_consume(queue, on_message, auto_ack=True)
    producer = wt.pika_connect(srv.addr)
    pch = wt.confirm_channel(producer)
    if measure_rss:
        # Warm up: the first 100 messages set up buffers and allocator arenas.
        for i in range(100):
            pch.basic_publish("", "wt27-nowhere", b"%08d" % i + b"x" * (BODY - 8))
        before = srv.rss_kib()
    t0 = time.monotonic()
    for i in range(MESSAGES):
        pch.basic_publish("", queue, b"%08d" % i + b"x" * (BODY - 8))
        if i % 16 == 0:
            reader.process_data_events(0)
    wt.log("  published %d x %d KiB in %.1f s" % (MESSAGES, BODY // 1024,
                                                 time.monotonic() - t0))
    # Let the reader take everything it can get.
    deadline = time.monotonic() + 30
    last = -1
    while True:
        reader.process_data_events(0.2)
        ready = ach.queue_declare(queue, passive=True).method.message_count
        if ready == 0 and got[0] == last:
            break
        assert time.monotonic() < deadline, "queue still holds %d after 30 s (reader got %d)" \
            % (ready, got[0])
        last = got[0]
    share = MESSAGES - got[0]
    wt.log("  reader got %d, stuck consumer's share %d messages (%.1f MiB)" % (
        got[0], share, share * BODY / 2 ** 20))
    if measure_rss:
        after = srv.rss_kib()
        srv.check_rss_growth(before, after, RSS_MAX_KIB,
                             "over %d messages of 64 KiB with a stuck consumer" % MESSAGES)
    assert share <= STUCK_MAX, ("the stuck consumer was given %d messages (%.1f MiB): the "
                                "broker buffers for a consumer that does not read" % (
                                    share, share * BODY / 2 ** 20))
    took = served_within(srv.addr, 2)
    wt.log("  meanwhile a new client declared, published and got in %.2f s" % took)
    read_deliveries(stuck, share, timeout=30)
    stuck.expect_silence(0.3)
    wt.log("  the stuck consumer, reading again, got exactly its %d messages, intact" % share)
    stuck.close_connection()
    ach.queue_delete(queue)
    for conn in (producer, reader, admin):
        conn.close()


def test_stuck_consumer():
    """a no-ack consumer that does not read gets at most 512 of 3000 64-KiB messages; the
    other consumer gets the rest; other clients are served; nothing is lost"""
    with wt.server() as srv:
        scenario(srv, "wt27-stuck")


@wt.needs_process
def test_stuck_consumer_rss():
    """the same with warren-server's RSS: it grows by at most 64 MiB over the 3000
    messages"""
    with wt.server() as srv:
        scenario(srv, "wt27-stuck-rss", measure_rss=True)


def test_flow_active_true_while_consuming():
    """channel.flow(active=true) on a channel with a consumer -> flow-ok(true); deliveries
    before and after it arrive"""
    q = "wt27-flow"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        wt.fresh_queue(ch, q)
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
        pub = wt.confirm_channel(conn)
        pub.basic_publish("", q, b"before")
        assert ch.flow(True) is True
        pub.basic_publish("", q, b"after")
        deadline = time.monotonic() + 5
        while len(got) < 2:
            assert time.monotonic() < deadline, got
            conn.process_data_events(0.05)
        assert got == [b"before", b"after"], got
        wt.log("  flow(True) -> True; deliveries before and after it")
        ch.queue_delete(q)
        conn.close()


if __name__ == "__main__":
    wt.run([test_stuck_consumer, test_stuck_consumer_rss,
            test_flow_active_true_while_consuming])
