"""Priority queues (x-max-priority): messages go out by priority, highest first, FIFO within a
priority; a priority above the queue's maximum counts as the maximum, a message without one as
0, and x-max-priority 0 is a queue without priorities; a requeued message goes back to its
place within its priority, redelivered; a consumer under prefetch gets a higher priority that
arrives while it is full as soon as it has room. The same holds for a durable queue across a
restart, kill -9 included (messages delivered and not acked come back redelivered), and for a
backlog far larger than the in-memory window, which stays in bounded memory and comes back in
order from the store.

The tests that do not need the server process were checked against Debian's RabbitMQ 3.10
(WARREN_TEST_ADDR). Queue names start with wt34-."""

import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
QUEUE_DECLARE_OK = (50, 11)


def body(i, prio):
    """Message i, published with priority prio (None: without one)."""
    return b"%d:%s:" % (i, b"-" if prio is None else b"%d" % prio)


def parse(b):
    """(index, priority or None) of a body made by body()."""
    i, p, _ = b.split(b":", 2)
    return int(i), None if p == b"-" else int(p)


def expected_order(published, max_priority):
    """The bodies of published [(i, prio)] in the order a queue with that maximum hands them
    out: by effective priority (capped; none is 0), highest first, then as published."""
    def eff(p):
        return 0 if p is None or max_priority == 0 else min(p, max_priority)
    return [body(i, p) for i, p in sorted(published, key=lambda ip: (-eff(ip[1]), ip[0]))]


def declare(ch, name, max_priority, durable=False):
    ch.queue_delete(name)
    ch.queue_declare(name, durable=durable, arguments={"x-max-priority": max_priority})


def publish_all(ch, name, published, persistent=False):
    """Publishes [(i, prio)] to name on the confirm channel ch."""
    for i, p in published:
        ch.basic_publish("", name, body(i, p), pika.BasicProperties(
            priority=p, delivery_mode=2 if persistent else 1))


def consume(conn, ch, name, n, prefetch, ack=True):
    """n deliveries from name to a consumer with that prefetch, acked one by one as they come
    (ack=False: left unacked): [(body, redelivered, priority property, delivery tag)]."""
    got = []
    ch.basic_qos(prefetch_count=prefetch)

    def on_msg(c, method, props, b):
        got.append((b, method.redelivered, props.priority, method.delivery_tag))
        if ack:
            c.basic_ack(method.delivery_tag)

    tag = ch.basic_consume(name, on_msg)
    wt.wait_until(lambda: len(got) >= n, 30, "%d deliveries from %s" % (n, name), [conn])
    ch.basic_cancel(tag)
    return got


def test_ten_levels_prefetch():
    """10 levels (x-max-priority 9), 50 messages each published in a random order, then
    consumed with prefetch 1, 3 and 50: by priority, FIFO within each"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        rng = random.Random(34)
        for prefetch in (1, 3, 50):
            name = "wt34-levels-%d" % prefetch
            declare(ch, name, 9)
            prios = [p for p in range(10) for _ in range(50)]
            rng.shuffle(prios)
            published = list(enumerate(prios))
            publish_all(ch, name, published)
            got = consume(conn, ch, name, len(published), prefetch)
            assert [b for b, _, _, _ in got] == expected_order(published, 9), \
                "prefetch %d: delivered out of priority order: %r" % (
                    prefetch, [parse(b)[1] for b, _, _, _ in got][:60])
            assert not any(r for _, r, _, _ in got)
            ch.queue_delete(name)
        conn.close()


def test_higher_priority_under_prefetch():
    """a consumer with prefetch 2 holding two of a low-priority backlog: priorities 4 and 5
    published then wait for its acks, and go out first, 5 then 4"""
    with wt.server() as srv:
        name = "wt34-prefetch"
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        declare(ch, name, 5)
        publish_all(ch, name, [(i, 1) for i in range(10)])
        cch = conn.channel()
        cch.basic_qos(prefetch_count=2)
        got = []
        tag = cch.basic_consume(name, lambda c, m, p, b: got.append((parse(b)[0], m)))
        wt.wait_until(lambda: len(got) >= 2, 10, "two deliveries", [conn])
        publish_all(ch, name, [(100, 4), (101, 5)])
        conn.process_data_events(0.3)
        assert [i for i, _ in got] == [0, 1], "delivered past the prefetch: %r" % got
        for k in range(10):
            cch.basic_ack(got[k][1].delivery_tag)
            wt.wait_until(lambda: len(got) >= min(k + 3, 12), 10, "a delivery after an ack",
                          [conn])
        cch.basic_cancel(tag)
        assert [i for i, _ in got] == [0, 1, 101, 100] + list(range(2, 10)), got
        ch.queue_delete(name)
        conn.close()


def test_above_max_and_none():
    """x-max-priority 3: priorities 3, 4, 200 and 255 all count as 3 (FIFO among them), no
    priority counts as 0; the priority property is delivered as published"""
    with wt.server() as srv:
        name = "wt34-above"
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        declare(ch, name, 3)
        published = [(0, None), (1, 200), (2, 1), (3, 3), (4, 0), (5, 255), (6, None), (7, 4),
                     (8, 2)]
        publish_all(ch, name, published)
        got = consume(conn, ch, name, len(published), 1)
        assert [b for b, _, _, _ in got] == expected_order(published, 3), \
            [parse(b) for b, _, _, _ in got]
        for b, _, prop, _ in got:
            assert prop == parse(b)[1], "message %r delivered with priority %r" % (b, prop)
        ch.queue_delete(name)
        conn.close()


def test_max_priority_zero():
    """x-max-priority 0 is accepted and is a queue without priorities: FIFO whatever the
    messages' priorities"""
    with wt.server() as srv:
        name = "wt34-zero"
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        declare(ch, name, 0)
        published = [(0, 0), (1, 9), (2, None), (3, 5), (4, 255)]
        publish_all(ch, name, published)
        assert [parse(b)[0] for b in wt.drain(ch, name)] == [0, 1, 2, 3, 4]
        ch.queue_delete(name)
        conn.close()


def test_requeue_keeps_place():
    """delivered messages of several priorities, requeued in another order (reject, nack,
    and the channel closing) go back to their places within their priorities, redelivered"""
    with wt.server() as srv:
        name = "wt34-requeue"
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        declare(ch, name, 5)
        published = [(i, [1, 3, 5, 3, 1, 5, 0, 3][i]) for i in range(8)]
        publish_all(ch, name, published)
        order = expected_order(published, 5)  # 2 5 1 3 7 0 4 6
        ch2 = conn.channel()
        held = consume(conn, ch2, name, 6, 6, ack=False)
        assert [b for b, _, _, _ in held] == order[:6]
        # Back in the order: the 5th (reject), the 2nd (nack), the 4th and 1st (channel close);
        # the 3rd and 6th are acked.
        ch2.basic_reject(held[4][3], requeue=True)
        ch2.basic_nack(held[1][3], requeue=True)
        ch2.basic_ack(held[2][3])
        ch2.basic_ack(held[5][3])
        ch2.close()
        acked = {held[2][0], held[5][0]}
        requeued = {held[i][0] for i in (0, 1, 3, 4)}
        got = wt.drain(ch, name, redelivered=True)
        want = [(b, b in requeued) for b in order if b not in acked]
        assert got == want, "after requeues: %r, expected %r" % (got, want)
        ch.queue_delete(name)
        conn.close()


def test_length_limit_and_ttl():
    """with x-max-length 3 (drop-head) the messages dropped are those delivered next, the
    highest priorities first, as RabbitMQ's; a per-message TTL expires a message at the head
    only: one of a lower priority behind an unexpired higher one counts until it is the
    head, and is never delivered"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        name = "wt34-maxlen"
        ch.queue_delete(name)
        ch.queue_declare(name, arguments={"x-max-priority": 5, "x-max-length": 3})
        publish_all(ch, name, [(0, 0), (1, 5), (2, 0), (3, 5), (4, 1)])
        assert [parse(b)[0] for b in wt.drain(ch, name)] == [4, 0, 2]
        ch.queue_delete(name)
        name = "wt34-ttl"
        declare(ch, name, 5)
        ch.basic_publish("", name, body(0, 5), pika.BasicProperties(priority=5,
                                                                    expiration="60000"))
        ch.basic_publish("", name, body(1, 1), pika.BasicProperties(priority=1,
                                                                    expiration="100"))
        conn.sleep(0.5)
        assert ch.queue_declare(name, passive=True).method.message_count == 2
        assert [parse(b)[0] for b in wt.drain(ch, name)] == [0]
        assert ch.queue_declare(name, passive=True).method.message_count == 0
        ch.queue_delete(name)
        conn.close()


# ---- the server process: paging, restarts ----

def raw_publish_all(c, name, published, size, persistent=True):
    """Publishes [(i, prio)] to name on channel 1 of the RawConn c in one send per 1000,
    bodies padded to size bytes; then waits for the broker to have handled them all."""
    for k in range(0, len(published), 1000):
        out = []
        for i, p in published[k:k + 1000]:
            b = body(i, p)
            b += b"x" * (size - len(b))
            props = pika.BasicProperties(priority=p, delivery_mode=2 if persistent else 1)
            out.append(wt.method_frame(1, wt.BASIC_PUBLISH, wt.publish_args("", name)))
            out.append(wt.frame(wt.FRAME_HEADER, 1, wt.content_header_payload(len(b), props)))
            out.append(wt.frame(wt.FRAME_BODY, 1, b))
        c.send(b"".join(out))
    return raw_count(c, name)


def raw_count(c, name):
    """The message count of the durable queue name (a passive declare on the RawConn c)."""
    c.send_method(1, wt.QUEUE_DECLARE, struct.pack(">H", 0) + wt.shortstr(name) +
                  bytes([0b00011]) + wt.table({}))
    m = c.expect(QUEUE_DECLARE_OK, 1)
    r = m.reader()
    r.shortstr()
    return r.long()


def raw_get(c, name, n):
    """n basic.get (no-ack) of name in one send on the RawConn c: the bodies, stripped of
    their padding, as (index, priority)."""
    get = wt.method_frame(1, BASIC_GET, struct.pack(">H", 0) + wt.shortstr(name) + b"\x01")
    c.send(get * n)
    out = []
    for _ in range(n):
        m = c.read_method(timeout=30)
        assert m.ids == BASIC_GET_OK, "get answered %s with messages ready" % m.name
        _, b, _ = wt.read_content(c, 1)
        out.append(parse(b))
    return out


def durable_queue(c, name, max_priority):
    args = struct.pack(">H", 0) + wt.shortstr(name) + bytes([0b00010]) + \
        wt.table({"x-max-priority": max_priority})
    c.send_method(1, wt.QUEUE_DECLARE, args)
    c.expect(QUEUE_DECLARE_OK, 1)


@wt.needs_process
def test_paged_order_restart():
    """a durable queue with 10 levels and a 64 KB window, 20,000 persistent messages of 1 KiB
    (300 windows) in every priority: handed out by priority, FIFO within each, from the store;
    then again with 2,000 delivered and not acked when the broker stops: they come back first
    within their priorities, redelivered, and nothing else is (each lane's watermark)"""
    n = 20000
    rng = random.Random(3434)
    published = [(i, rng.randrange(10)) for i in range(n)]
    order = [parse(b) for b in expected_order(published, 9)]
    with wt.server(config={"store.queue_window": "64KB"}) as srv:
        with wt.opened(srv.addr, 1, timeout=30) as c:
            durable_queue(c, "wt34-paged", 9)
            assert raw_publish_all(c, "wt34-paged", published, 1024) == n
            got = raw_get(c, "wt34-paged", n)
            assert got == order, "first difference at %d: %r, expected %r" % next(
                (k, got[k], order[k]) for k in range(n) if got[k] != order[k])
            assert raw_publish_all(c, "wt34-paged", published, 1024) == n
        # A consumer takes 2,000 without acking them: the top priority and some of the next.
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        held = consume(conn, ch, "wt34-paged", 2000, 2000, ack=False)
        assert [parse(b) for b, _, _, _ in held] == order[:2000]
        srv.restart()
        with wt.opened(srv.addr, 1, timeout=30) as c:
            assert raw_count(c, "wt34-paged") == n
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        got = consume(conn, ch, "wt34-paged", n, 500)
        assert [parse(b) for b, _, _, _ in got] == order
        redelivered = [k for k, (_, r, _, _) in enumerate(got) if r]
        assert redelivered == list(range(2000)), "redelivered: %d of them, the first at %r" % (
            len(redelivered), redelivered[:3])
        ch.queue_delete("wt34-paged")
        conn.close()


@wt.needs_process
def test_backlog_bounded_memory():
    """400,000 persistent messages of 600 bytes (240 MB) in 10 priorities on a durable queue
    with the default 8 MB window: RSS grows by far less than the backlog; after kill -9 all
    are back, the two top priorities (paged out) first and in order"""
    n = 400000
    # Two small top priorities published throughout, the bulk below them.
    published = [(i, 9 if i % 1000 == 0 else 8 if i % 1000 == 1 else i % 8) for i in range(n)]
    with wt.server() as srv:
        with wt.opened(srv.addr, 1, timeout=60) as c:
            durable_queue(c, "wt34-backlog", 9)
            before = srv.rss_kib()
            assert raw_publish_all(c, "wt34-backlog", published, 600) == n
            srv.check_rss_growth(before, srv.rss_kib(), 128 << 10, "with 240 MB queued")
        conn = wt.pika_connect(srv.addr)
        pch = wt.confirm_channel(conn)
        pch.queue_declare("wt34-sync", durable=True)
        pch.basic_publish("", "wt34-sync", b"sync", pika.BasicProperties(delivery_mode=2))
        conn.close()
        srv.restart(hard=True, timeout=60)
        with wt.opened(srv.addr, 1, timeout=60) as c:
            assert raw_count(c, "wt34-backlog") == n
            got = raw_get(c, "wt34-backlog", 1000)
            want = [parse(b) for b in expected_order(published, 9)[:1000]]
            assert got == want, "first difference at %d: %r, expected %r" % next(
                (k, got[k], want[k]) for k in range(1000) if got[k] != want[k])
            srv.check_rss_growth(before, srv.rss_kib(), 128 << 10, "after a restart")
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_delete("wt34-backlog")
        ch.queue_delete("wt34-sync")
        conn.close()


if __name__ == "__main__":
    wt.run([test_ten_levels_prefetch, test_higher_priority_under_prefetch,
            test_above_max_and_none, test_max_priority_zero, test_requeue_keeps_place,
            test_length_limit_and_ttl, test_paged_order_restart, test_backlog_bounded_memory], timeout=300)
