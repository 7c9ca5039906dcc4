"""Single active consumer (x-single-active-consumer): one consumer at a time gets a queue's
messages, the others wait; the next takes over when the active one is cancelled, when its
channel closes (getting the requeued messages first, in order) and when its connection
goes; successors by priority (x-priority), then registration order; every consumer gets
consume-ok, waiting or not, a waiting one can be cancelled, and a deleted queue sends
basic.cancel to all of them; an exclusive consumer is refused on such a queue even when it
has no consumer (403, RabbitMQ's text). Checked against RabbitMQ 3.10.

A consumer of a higher priority than the active one takes over as RabbitMQ 3.12+ does
(the active one first settles what it has, getting nothing more meanwhile); RabbitMQ 3.10's
classic queues keep the active one, and test_higher_priority_takes_over asserts that when
run against a RabbitMQ older than 3.12. Queue names start with wt35-."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.spec as spec  # noqa: E402

wt.name_pika_methods()

B = spec.Basic
SAC = {"x-single-active-consumer": True}


class Consumer:
    """Records the deliveries of one pika consumer as (body, redelivered, delivery tag)."""

    def __init__(self, ch, q, tag, priority=None, auto_ack=False):
        self.ch = ch
        self.got = []
        args = {"x-priority": priority} if priority is not None else None
        self.tag = ch.basic_consume(q, self._cb, auto_ack=auto_ack, consumer_tag=tag,
                                    arguments=args)

    def _cb(self, ch, method, props, body):
        self.got.append((body, method.redelivered, method.delivery_tag))

    @property
    def bodies(self):
        return [g[0] for g in self.got]

    def ack_all(self):
        self.ch.basic_ack(0, multiple=True)


def pump(conns, seconds=0.3):
    """Runs pika's I/O on conns for about `seconds`: long enough for deliveries that are
    going to happen to happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for conn in conns:
            conn.process_data_events(0.01)


def delivered(conns, consumers, n, what):
    """Waits until the consumers have n deliveries between them, then a little more (to see
    that no other comes)."""
    wt.wait_until(lambda: sum(len(c.got) for c in consumers) >= n, 5, what, conns=conns)
    pump(conns)
    got = sum(len(c.got) for c in consumers)
    assert got == n, "%s: %d deliveries, expected %d" % (what, got, n)


def rabbitmq_before_3_12(addr):
    """Whether the broker is a RabbitMQ older than 3.12 (its SAC ignores newcomers'
    priorities)."""
    with wt.opened(addr) as c:
        props = c.start["server_properties"]
        c.close_connection()
    if props.get("product") != "RabbitMQ":
        return False
    version = props.get("version")
    version = version.decode() if isinstance(version, bytes) else version
    return tuple(int(x) for x in version.split(".")[:2]) < (3, 12)


def sac_queue(conn, q):
    """Declares q anew with x-single-active-consumer on a channel of conn; returns a confirm
    channel of conn to publish on."""
    ch = conn.channel()
    wt.fresh_queue(ch, q, arguments=SAC)
    ch.close()
    return wt.confirm_channel(conn)


# ---------------------------------------------------------------------------------------
# Tests


def test_failover_on_cancel():
    """a, b, c register in that order on separate channels, room for everything: a gets all
    of m0..m2; a is cancelled (its unacked messages stay its channel's, can still be acked):
    b gets n0 and n1, c nothing; a waiting consumer cancelled changes nothing; b cancelled:
    c takes over; queue.declare-ok counts every consumer, active or waiting"""
    q = "wt35-cancel"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        pub = sac_queue(conn, q)
        chans = [conn.channel() for _ in range(3)]
        a, b, c = (Consumer(ch, q, tag) for ch, tag in zip(chans, "abc"))
        assert pub.queue_declare(q, passive=True).method.consumer_count == 3
        wt.publish_confirmed(pub, q, 3)
        delivered([conn], [a, b, c], 3, "m0..m2")
        assert a.bodies == [b"m0", b"m1", b"m2"], a.got
        chans[0].basic_cancel("a")
        wt.publish_confirmed(pub, q, 2, prefix="n")
        delivered([conn], [a, b, c], 5, "after a was cancelled")
        assert b.bodies == [b"n0", b"n1"] and c.got == [], (b.got, c.got)
        a.ack_all()  # acks for a cancelled consumer's deliveries are fine
        wt.log("  a: m0 m1 m2; a cancelled: b gets n0 n1, c nothing")
        # c is waiting: cancelling it does not move anything.
        chans[2].basic_cancel("c")
        c = Consumer(chans[2], q, "c2")
        wt.publish_confirmed(pub, q, 1, prefix="o")
        delivered([conn], [b, c], 3, "after c went and came back")
        assert b.bodies[-1] == b"o0", b.got
        b.ack_all()
        chans[1].basic_cancel("b")
        wt.publish_confirmed(pub, q, 1, prefix="p")
        delivered([conn], [b, c], 4, "after b was cancelled")
        assert c.bodies == [b"p0"], c.got
        wt.log("  waiting c cancelled and back as c2; b cancelled: c2 gets p0")
        assert pub.queue_declare(q, passive=True).method.consumer_count == 1
        pub.queue_delete(q)
        conn.close()


def read_deliveries(c, channel, n):
    """Reads n basic.deliver with their content on channel of the RawConn c; returns them as
    (body, redelivered, delivery tag)."""
    got = []
    for _ in range(n):
        m = c.expect(wt.method_ids(B.Deliver), channel=channel)
        d = B.Deliver().decode(m.args)
        got.append((wt.read_content(c, channel)[1], d.redelivered, d.delivery_tag))
    return got


def test_failover_on_channel_close():
    """raw frames: the active consumer's channel closes (channel.close, no basic.cancel
    first) with m0 and m1 unacked: the next consumer gets m0 and m1 back first (redelivered,
    in order), then m2, which was waiting in the queue meanwhile; then that consumer's socket
    closes (no close handshake) with m0..m2 unacked: the third one gets them, in order"""
    q = "wt35-close"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        pub = sac_queue(conn, q)
        ra, rb = wt.opened(srv.addr, 1), wt.opened(srv.addr, 1)
        wt.call_pika(ra, 1, B.Qos(prefetch_count=2), B.QosOk)
        wt.call_pika(ra, 1, B.Consume(queue=q, consumer_tag="a"), B.ConsumeOk)
        wt.call_pika(rb, 1, B.Consume(queue=q, consumer_tag="b"), B.ConsumeOk)
        c = Consumer(conn.channel(), q, "c")
        wt.publish_confirmed(pub, q, 3)
        got = read_deliveries(ra, 1, 2)
        assert got == [(b"m0", False, 1), (b"m1", False, 2)], got
        assert pub.queue_declare(q, passive=True).method.message_count == 1
        ra.close_channel(1)
        got = read_deliveries(rb, 1, 3)
        assert got == [(b"m0", True, 1), (b"m1", True, 2), (b"m2", False, 3)], got
        rb.expect_silence(0.3)
        wt.log("  a's channel closed with m0 m1 unacked: b gets m0 m1 (redelivered) m2")
        rb.close()
        wt.wait_until(lambda: len(c.got) == 3, 5, "c getting m0..m2", conns=[conn])
        assert c.bodies == [b"m0", b"m1", b"m2"] and all(r for _, r, _ in c.got), c.got
        wt.log("  b's socket closed with m0..m2 unacked: c gets them, in order")
        ra.close_connection()
        pub.queue_delete(q)
        conn.close()


def test_successors_by_priority():
    """a (x-priority 10) is active; b (1), c (5) and d (5) wait, in that order; the active
    one is cancelled each time: c (the highest priority, registered before d), then d, then
    b take over"""
    q = "wt35-prio"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        pub = sac_queue(conn, q)
        cons = {}
        for tag, prio in (("a", 10), ("b", 1), ("c", 5), ("d", 5)):
            cons[tag] = Consumer(conn.channel(), q, tag, priority=prio, auto_ack=True)
        order = []
        for i, tag in enumerate("acdb"):
            wt.publish_confirmed(pub, q, 1, prefix="m%d-" % i)
            delivered([conn], list(cons.values()), i + 1, "message %d" % i)
            got = [t for t, c in cons.items() if c.bodies and c.bodies[-1] == b"m%d-0" % i]
            assert got == [tag], "message %d went to %s, expected %s" % (i, got, tag)
            order.append(tag)
            cons[tag].ch.basic_cancel(tag)
        wt.log("  active in turn: %s" % " ".join(order))
        pub.queue_delete(q)
        conn.close()


def test_higher_priority_takes_over():
    """a (priority 0) is active with m0 unacked; b (priority 5) registers: n0 goes to nobody
    until a acks m0, then b gets n0 and a no more (RabbitMQ 3.12+); a newcomer of a higher
    priority takes over at once from an active consumer with nothing unacked. Against a
    RabbitMQ older than 3.12: a keeps the queue (3.10 activates in registration order)"""
    q = "wt35-takeover"
    with wt.server() as srv:
        old = rabbitmq_before_3_12(srv.addr)
        conn = wt.pika_connect(srv.addr)
        pub = sac_queue(conn, q)
        a = Consumer(conn.channel(), q, "a", priority=0)
        wt.publish_confirmed(pub, q, 1)
        delivered([conn], [a], 1, "m0 to a")
        b = Consumer(conn.channel(), q, "b", priority=5)
        wt.publish_confirmed(pub, q, 1, prefix="n")
        if old:
            delivered([conn], [a, b], 2, "n0")
            assert a.bodies == [b"m0", b"n0"] and b.got == [], (a.got, b.got)
            wt.log("  RabbitMQ < 3.12: a keeps the queue")
            pub.queue_delete(q)
            conn.close()
            return
        delivered([conn], [a, b], 1, "n0 held while a has m0 unacked")
        a.ack_all()
        delivered([conn], [a, b], 2, "n0 after a acked m0")
        assert b.bodies == [b"n0"] and a.bodies == [b"m0"], (a.got, b.got)
        wt.log("  a holds m0: n0 waits; a acks: b takes over with n0")
        # b has n0 unacked; c (9) arrives: b hands over once it acks; d (9) then waits.
        b.ack_all()
        pump([conn])
        c = Consumer(conn.channel(), q, "c", priority=9)
        wt.publish_confirmed(pub, q, 1, prefix="o")
        delivered([conn], [a, b, c], 3, "o0")
        assert c.bodies == [b"o0"], c.got
        wt.log("  b with nothing unacked: c (9) takes over at once")
        pub.queue_delete(q)
        conn.close()


def test_consume_ok_and_notifications():
    """raw frames: every basic.consume gets consume-ok (waiting ones too), only the active
    one gets basic.deliver, a waiting consumer's basic.cancel gets cancel-ok, and deleting
    the queue sends basic.cancel to the active and the waiting consumers alike (client
    announcing consumer_cancel_notify)"""
    q = "wt35-notify"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        pub = sac_queue(conn, q)
        with wt.opened(srv.addr, 1, capabilities={"consumer_cancel_notify": True}) as c:
            for tag in ("a", "b", "c"):
                ok = wt.call_pika(c, 1, B.Consume(queue=q, consumer_tag=tag), B.ConsumeOk)
                assert ok.consumer_tag == tag, ok
            wt.publish_confirmed(pub, q, 1)
            m = c.expect(wt.method_ids(B.Deliver), channel=1)
            d = B.Deliver().decode(m.args)
            wt.read_content(c, 1)
            assert d.consumer_tag == "a", d
            ok = wt.call_pika(c, 1, B.Cancel(consumer_tag="b"), B.CancelOk)
            assert ok.consumer_tag == "b", ok
            c.expect_silence(0.3)
            pub.queue_delete(q)
            tags = set()
            for _ in range(2):
                m = c.expect(wt.method_ids(B.Cancel), channel=1)
                tags.add(B.Cancel().decode(m.args).consumer_tag)
            assert tags == {"a", "c"}, tags
            wt.log("  consume-ok a b c; deliver to a; cancel-ok b; queue deleted: "
                   "basic.cancel a and c")
            c.close_connection()
        conn.close()


def test_exclusive_refused():
    """an exclusive basic.consume on a single-active-consumer queue with no consumer: 403
    ACCESS_REFUSED "queue '...' in vhost '/' in exclusive use", naming basic.consume; a
    non-exclusive one then works"""
    q = "wt35-exclusive"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        sac_queue(conn, q).close()
        with wt.opened(srv.addr, 1) as c:
            wt.channel_refused(c, 1, B.Consume(queue=q, exclusive=True), 403,
                               "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
            wt.call_pika(c, 1, B.Consume(queue=q, consumer_tag="x"), B.ConsumeOk)
            c.close_connection()
        wt.cleanup(srv.addr, q)
        conn.close()


wt.run([test_failover_on_cancel, test_failover_on_channel_close, test_successors_by_priority,
        test_higher_priority_takes_over, test_consume_ok_and_notifications,
        test_exclusive_refused])
