"""Consumers and acknowledgements: fair dispatch with prefetch 1, round robin, basic.qos
(RabbitMQ's reading: global=false is the limit of each consumer created afterwards,
global=true one limit for the whole channel), ack/nack/reject with multiple and requeue,
requeue to the original position (redelivered=true, order kept), unknown delivery tags
(406, the channel closes, the connection lives), basic.recover, unacked messages requeued
when their channel or connection goes, server-sent basic.cancel when a queue is deleted,
exclusive consumers, consumer priorities, basic.get and no-ack consumers. Checked against
RabbitMQ 3.10.

Error cases use raw frames (pika's codec builds the methods) so that code, text and the
class/method ids in the close are checked; flows use pika's BlockingConnection, one
thread, with publisher confirms so that the broker holds every message before a consumer
starts. Queue names start with wt23-."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.exceptions as pe  # noqa: E402
import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

Q = spec.Queue
B = spec.Basic


# ---------------------------------------------------------------------------------------
# Raw helpers: methods encoded by pika's codec, replies read by warren_test.RawConn.


def read_delivery(c, channel):
    """Reads basic.deliver with its content; returns (Deliver, body)."""
    m = c.expect(wt.method_ids(B.Deliver), channel=channel)
    d = B.Deliver().decode(m.args)
    _, body, _ = wt.read_content(c, channel)
    return d, body


# ---------------------------------------------------------------------------------------
# pika helpers


def pump(conns, seconds):
    """Runs pika's I/O on conns for about `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for conn in conns:
            conn.process_data_events(0.01)


def ready_count(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def wait_ready(ch, q, n, what):
    deadline = time.monotonic() + 5
    while ready_count(ch, q) != n:
        assert time.monotonic() < deadline, "%s: %d ready in %s, expected %d" % (
            what, ready_count(ch, q), q, n)
        time.sleep(0.02)


class Consumer:
    """Records deliveries of one pika consumer: (delivery_tag, body, redelivered)."""

    def __init__(self, ch, q, tag, auto_ack=False, arguments=None, exclusive=False,
                 on_message=None):
        self.ch = ch
        self.got = []
        self.on_message = on_message
        self.tag = ch.basic_consume(q, self._cb, auto_ack=auto_ack, exclusive=exclusive,
                                    consumer_tag=tag, arguments=arguments)

    def _cb(self, ch, method, props, body):
        self.got.append((method.delivery_tag, body, method.redelivered))
        if self.on_message:
            self.on_message(self, method, body)

    @property
    def bodies(self):
        return [g[1] for g in self.got]


# ---------------------------------------------------------------------------------------
# Tests


def test_fair_dispatch():
    """two consumers with prefetch 1, one acking at once and one after 0.3 s: the fast one
    gets most of 20 messages; each message is delivered exactly once"""
    q = "wt23-fair"
    with wt.server() as srv:
        fast_conn, slow_conn = wt.pika_connect(srv.addr), wt.pika_connect(srv.addr)
        wt.fresh_queue(fast_conn.channel(), q)
        pending = []

        def fast_ack(cons, method, body):
            cons.ch.basic_ack(method.delivery_tag)

        def slow_ack(cons, method, body):
            pending.append((time.monotonic() + 0.3, method.delivery_tag))

        chans = []
        for conn in (fast_conn, slow_conn):
            ch = conn.channel()
            ch.basic_qos(prefetch_count=1)
            chans.append(ch)
        fast = Consumer(chans[0], q, "fast", on_message=fast_ack)
        slow = Consumer(chans[1], q, "slow", on_message=slow_ack)
        wt.fill(fast_conn, q, 20)
        deadline = time.monotonic() + 15
        while len(fast.got) + len(slow.got) < 20:
            assert time.monotonic() < deadline, "only %d of 20 delivered" % (
                len(fast.got) + len(slow.got))
            fast_conn.process_data_events(0.01)
            slow_conn.process_data_events(0.01)
            while pending and pending[0][0] <= time.monotonic():
                chans[1].basic_ack(pending.pop(0)[1])
        wt.log("  fast consumer: %d messages, slow consumer: %d" % (len(fast.got),
                                                                  len(slow.got)))
        assert sorted(fast.bodies + slow.bodies) == sorted(b"m%d" % i for i in range(20))
        assert len(slow.got) <= 4 and len(fast.got) >= 16, \
            "prefetch 1 should favour the fast consumer: fast %d, slow %d" % (
                len(fast.got), len(slow.got))
        # The slow consumer never held more than 1 unacked.
        assert not any(r for _, _, r in fast.got + slow.got), "redelivered flag set"
        chans[0].queue_delete(q)
        fast_conn.close()
        slow_conn.close()


def test_round_robin():
    """three consumers registered before the messages, no prefetch limit: strict rotation
    (a: m0 m3 m6, b: m1 m4 m7, c: m2 m5 m8); a consumer that arrives when messages wait
    and has no limit takes them all"""
    q = "wt23-rr"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        ch = conn.channel()
        cons = [Consumer(ch, q, t) for t in "abc"]
        wt.fill(conn, q, 9)
        wt.wait_until(lambda: sum(len(c.got) for c in cons) == 9, 5, "9 deliveries", conns=[conn])
        pump([conn], 0.1)
        for i, c in enumerate(cons):
            want = [b"m%d" % j for j in range(i, 9, 3)]
            assert c.bodies == want, "consumer %s got %r, expected %r" % (c.tag, c.bodies,
                                                                          want)
            wt.log("  %s: %s" % (c.tag, b" ".join(c.bodies).decode()))
        ch.close()  # the 9 unacked go back
        ch = conn.channel()
        wait_ready(ch, q, 9, "requeued after channel close")
        late = Consumer(ch, q, "late")
        Consumer(ch, q, "later")
        wt.wait_until(lambda: len(late.got) == 9, 5, "first consumer takes all 9", conns=[conn])
        wt.log("  9 waiting: the first new consumer took all 9")
        ch.queue_delete(q)
        conn.close()


def test_qos_per_consumer_and_global():
    """basic.qos global=false limits each consumer created after it (an existing consumer
    keeps its limit); global=true limits the channel as a whole, existing consumers too;
    both together: each consumer and the channel; prefetch 0 lifts a limit"""
    q = "wt23-qos"

    def scenario(what, setup, want=None, total=None, n=10):
        """setup(ch, consume) registers consumers; want: {tag: count}, or total: the
        number of unacked deliveries summed over consumers; each within its limit."""
        with wt.server() as srv:
            conn = wt.pika_connect(srv.addr)
            wt.fresh_queue(conn.channel(), q)
            ch = conn.channel()
            cons = {}

            def consume(tag):
                cons[tag] = Consumer(ch, q, tag)

            limits = setup(ch, consume) or {}
            wt.fill(conn, q, n)
            pump([conn], 0.4)
            got = {t: len(c.got) for t, c in cons.items()}
            wt.log("  %s: %s" % (what, got))
            if want is not None:
                assert got == want, "%s: deliveries %s, expected %s" % (what, got, want)
            if total is not None:
                assert sum(got.values()) == total, "%s: %d unacked in all, expected %d" % (
                    what, sum(got.values()), total)
            for t, lim in limits.items():
                assert got[t] <= lim, "%s: consumer %s holds %d, limit %d" % (what, t,
                                                                             got[t], lim)
            conn.channel().queue_delete(q)
            conn.close()

    scenario("qos 2, consumers a and b", lambda ch, c: (
        ch.basic_qos(prefetch_count=2), c("a"), c("b")) and None, want={"a": 2, "b": 2})
    scenario("qos 1, a, qos 3, b", lambda ch, c: (
        ch.basic_qos(prefetch_count=1), c("a"), ch.basic_qos(prefetch_count=3), c("b"))
        and None, want={"a": 1, "b": 3})
    scenario("a, then qos 1 (does not limit a)", lambda ch, c: (
        c("a"), ch.basic_qos(prefetch_count=1)) and None, want={"a": 10})
    scenario("global 3, a and b", lambda ch, c: (
        ch.basic_qos(prefetch_count=3, global_qos=True), c("a"), c("b")) and None, total=3)
    scenario("a, then global 2 (limits a)", lambda ch, c: (
        c("a"), ch.basic_qos(prefetch_count=2, global_qos=True)) and None, want={"a": 2})
    scenario("qos 2, global 5, a b c", lambda ch, c: (
        ch.basic_qos(prefetch_count=2), ch.basic_qos(prefetch_count=5, global_qos=True),
        c("a"), c("b"), c("c")) and {"a": 2, "b": 2, "c": 2}, total=5)
    scenario("global 2, a, global 0", lambda ch, c: (
        ch.basic_qos(prefetch_count=2, global_qos=True), c("a"),
        ch.basic_qos(prefetch_count=0, global_qos=True)) and None, want={"a": 10})


def test_qos_per_consumer_clears_global():
    """RabbitMQ quirk: basic.qos global=false after global=true removes the channel-wide
    limit (rabbit_channel unlimits the channel's limiter): global 3, qos 2, a, b -> 2 + 2"""
    q = "wt23-qos-quirk"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=3, global_qos=True)
        ch.basic_qos(prefetch_count=2)
        a, b = Consumer(ch, q, "a"), Consumer(ch, q, "b")
        wt.fill(conn, q, 10)
        pump([conn], 0.4)
        got = (len(a.got), len(b.got))
        wt.log("  global 3 then qos 2: a %d, b %d" % got)
        assert got == (2, 2), got
        conn.channel().queue_delete(q)
        conn.close()


def test_ack_multiple():
    """basic.ack multiple=true acks every tag up to it; the rest stay unacked and come back
    (redelivered) when the channel closes; ack tag 0 multiple=true acks all outstanding"""
    q = "wt23-ack-multi"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 6)
        ch = conn.channel()
        c = Consumer(ch, q, "c")
        wt.wait_until(lambda: len(c.got) == 6, 5, "6 deliveries", conns=[conn])
        tags = [g[0] for g in c.got]
        assert tags == list(range(1, 7)), "delivery tags %r, expected 1..6" % tags
        ch.basic_ack(3, multiple=True)
        ch.basic_ack(5)
        ch.close()
        ch = conn.channel()
        wait_ready(ch, q, 2, "m3 and m5 requeued")
        got = wt.drain(ch, q, redelivered=True)
        assert got == [(b"m3", True), (b"m5", True)], got
        wt.log("  ack 3 multiple + ack 5: m3 and m5 came back, redelivered")
        wt.fill(conn, q, 3)
        c = Consumer(ch, q, "c2")
        wt.wait_until(lambda: len(c.got) == 3, 5, "3 deliveries", conns=[conn])
        ch.basic_ack(0, multiple=True)
        ch.close()
        ch = conn.channel()
        time.sleep(0.2)
        assert ready_count(ch, q) == 0
        wt.log("  ack 0 multiple: all 3 acked")
        ch.queue_delete(q)
        conn.close()


def test_nack_and_reject():
    """basic.nack multiple requeue=true: all back at their places, redelivered; nack and
    reject requeue=false: dropped; reject requeue=true of a later then an earlier message:
    each returns to its original position, before the newer ones"""
    q = "wt23-nack"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 6)
        ch = conn.channel()
        got = [ch.basic_get(q) for _ in range(4)]
        assert [g[2] for g in got] == [b"m0", b"m1", b"m2", b"m3"]
        ch.basic_nack(got[1][0].delivery_tag, multiple=True, requeue=True)  # m0, m1
        ch.basic_nack(got[2][0].delivery_tag, requeue=False)              # m2 dropped
        ch.basic_reject(got[3][0].delivery_tag, requeue=False)            # m3 dropped
        rest = wt.drain(ch, q, redelivered=True)
        assert rest == [(b"m0", True), (b"m1", True), (b"m4", False), (b"m5", False)], rest
        wt.log("  nack m0-m1 multiple requeue, nack m2 and reject m3 without: "
               "m0* m1* m4 m5 (* redelivered)")

        wt.fill(conn, q, 6)
        got = [ch.basic_get(q) for _ in range(3)]
        assert [g[2] for g in got] == [b"m0", b"m1", b"m2"]
        ch.basic_reject(got[2][0].delivery_tag, requeue=True)
        ch.basic_reject(got[0][0].delivery_tag, requeue=True)
        m = ch.basic_get(q, auto_ack=True)
        assert (m[2], m[0].redelivered, m[0].message_count) == (b"m0", True, 4), \
            (m[2], m[0].redelivered, m[0].message_count)
        rest = wt.drain(ch, q, redelivered=True)
        assert rest == [(b"m2", True), (b"m3", False), (b"m4", False), (b"m5", False)], rest
        ch.basic_ack(got[1][0].delivery_tag)
        wt.log("  reject m2 then m0 with requeue (m1 held): m0* m2* m3 m4 m5")
        ch.queue_delete(q)
        conn.close()


def test_unknown_delivery_tag():
    """ack, nack and reject of an unknown tag -> channel.close 406 "PRECONDITION_FAILED -
    unknown delivery tag 42" naming the method; ack tag 0 (not multiple) -> "... tag 0";
    the connection and its other channels live on"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1, 2) as c:
            for m in (B.Ack(delivery_tag=42), B.Ack(delivery_tag=42, multiple=True),
                      B.Nack(delivery_tag=42), B.Nack(delivery_tag=42, multiple=True),
                      B.Reject(delivery_tag=42)):
                wt.channel_refused(c, 1, m, 406, "PRECONDITION_FAILED - unknown delivery tag 42")
            wt.channel_refused(c, 1, B.Ack(delivery_tag=0), 406,
                               "PRECONDITION_FAILED - unknown delivery tag 0")
            wt.call_pika(c, 2, spec.Channel.Flow(active=True), spec.Channel.FlowOk)
            c.close_connection()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.basic_ack(42)
        try:
            ch.basic_qos(prefetch_count=1)
            raise AssertionError("ack of unknown tag 42 did not close the channel")
        except pe.ChannelClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (
                406, "PRECONDITION_FAILED - unknown delivery tag 42"), e
            wt.log("  pika: %r" % e)
        assert conn.is_open
        conn.close()


def test_double_ack_and_no_ack_tags():
    """acking a tag twice -> 406 unknown delivery tag; acking a no-ack delivery -> 406; the
    unacked messages of the closed channel are requeued"""
    q = "wt23-double-ack"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 3)
        with wt.opened(srv.addr, 1) as c:
            wt.send_pika(c, 1, B.Get(queue=q))
            ok = B.GetOk().decode(c.expect(wt.method_ids(B.GetOk), channel=1).args)
            wt.read_content(c, 1)
            wt.send_pika(c, 1, B.Get(queue=q))
            ok2 = B.GetOk().decode(c.expect(wt.method_ids(B.GetOk), channel=1).args)
            wt.read_content(c, 1)
            wt.send_pika(c, 1, B.Ack(delivery_tag=ok.delivery_tag))
            wt.channel_refused(c, 1, B.Ack(delivery_tag=ok.delivery_tag), 406,
                               "PRECONDITION_FAILED - unknown delivery tag %d" % ok.delivery_tag)
            wt.log("  second ack of tag %d: 406" % ok.delivery_tag)
            # m1 (tag ok2) was unacked on the closed channel: back in the queue.
            ch = conn.channel()
            wait_ready(ch, q, 2, "the closed channel's unacked message requeued")
            assert wt.drain(ch, q, redelivered=True) == [(b"m1", True), (b"m2", False)]
            assert ok2.delivery_tag == ok.delivery_tag + 1
            # A no-ack get, then its tag acked.
            wt.fill(conn, q, 1)
            wt.send_pika(c, 1, B.Get(queue=q, no_ack=True))
            ok = B.GetOk().decode(c.expect(wt.method_ids(B.GetOk), channel=1).args)
            wt.read_content(c, 1)
            wt.channel_refused(c, 1, B.Ack(delivery_tag=ok.delivery_tag), 406,
                               "PRECONDITION_FAILED - unknown delivery tag %d" % ok.delivery_tag)
            wt.log("  ack of a no-ack delivery: 406")
            c.close_connection()
        conn.channel().queue_delete(q)
        conn.close()


def test_recover():
    """basic.recover requeue=true -> recover-ok, and the unacked messages are redelivered
    (redelivered=true, in order); requeue=false -> connection.close 540 "NOT_IMPLEMENTED -
    requeue=false" (60, 110)"""
    q = "wt23-recover"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 3)
        ch = conn.channel()
        c = Consumer(ch, q, "c")
        wt.wait_until(lambda: len(c.got) == 3, 5, "3 deliveries", conns=[conn])
        ch.basic_ack(c.got[1][0])
        ch.basic_recover(requeue=True)
        wt.wait_until(lambda: len(c.got) == 5, 5, "2 redeliveries after basic.recover",
                      conns=[conn])
        again = [(b, r) for _, b, r in c.got[3:]]
        assert again == [(b"m0", True), (b"m2", True)], again
        wt.log("  recover after acking m1: m0 and m2 redelivered")
        for tag, _, _ in c.got[3:]:
            ch.basic_ack(tag)
        ch.close()
        conn.channel().queue_delete(q)
        conn.close()
        with wt.opened(srv.addr, 1) as raw:
            wt.send_pika(raw, 1, B.Recover(requeue=False))
            raw.expect_connection_close(540, text="NOT_IMPLEMENTED - requeue=false",
                                        ids=wt.method_ids(B.Recover))


def test_requeue_on_close():
    """unacked messages of a channel closed by the client, of a connection closed cleanly
    and of a dropped socket are requeued in their original order, redelivered=true"""
    q = "wt23-requeue"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        for how in ("channel.close", "connection.close", "socket dropped"):
            wt.fill(conn, q, 5)
            with wt.opened(srv.addr, 1) as c:
                wt.call_pika(c, 1, B.Consume(queue=q, consumer_tag="c"), B.ConsumeOk)
                tags = [read_delivery(c, 1)[0].delivery_tag for _ in range(5)]
                wt.send_pika(c, 1, B.Ack(delivery_tag=tags[1]))
                wt.send_pika(c, 1, B.Ack(delivery_tag=tags[3]))
                if how == "channel.close":
                    c.close_channel(1)
                elif how == "connection.close":
                    c.close_connection()
            ch = conn.channel()
            wait_ready(ch, q, 3, "requeue after %s" % how)
            got = wt.drain(ch, q, redelivered=True)
            assert got == [(b"m0", True), (b"m2", True), (b"m4", True)], (how, got)
            wt.log("  %s: m0 m2 m4 requeued in order, redelivered" % how)
        conn.channel().queue_delete(q)
        conn.close()


def test_cancel_notify():
    """queue deleted under a consumer: a client announcing consumer_cancel_notify gets
    basic.cancel (60, 30) with its consumer tag (pika calls its on-cancel callback); a client
    that does not announce it gets nothing, and its channel stays open"""
    q = "wt23-cancel-notify"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        admin = conn.channel()
        wt.fresh_queue(admin, q)
        ch = conn.channel()
        cancelled = []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        Consumer(ch, q, "pika-consumer")
        admin.queue_delete(q)
        wt.wait_until(lambda: cancelled, 5, "pika's on-cancel callback", conns=[conn])
        assert cancelled == ["pika-consumer"], cancelled
        assert ch.is_open
        wt.log("  pika: on-cancel callback for pika-consumer, channel open")

        for caps, notified in (({"consumer_cancel_notify": True}, True), ({}, False)):
            wt.fresh_queue(admin, q)
            with wt.opened(srv.addr, 1, capabilities=caps) as c:
                wt.call_pika(c, 1, B.Consume(queue=q, consumer_tag="raw"), B.ConsumeOk)
                admin.queue_delete(q)
                if notified:
                    m = c.expect(wt.method_ids(B.Cancel), channel=1)
                    cancel = B.Cancel().decode(m.args)
                    assert cancel.consumer_tag == "raw", cancel
                    wt.log("  capabilities %r: basic.cancel %r" % (caps, cancel))
                else:
                    c.expect_silence(0.5)
                    wt.log("  capabilities %r: no basic.cancel" % (caps,))
                wt.call_pika(c, 1, spec.Channel.Flow(active=True), spec.Channel.FlowOk)
                c.close_connection()
        conn.close()


def test_cancel_by_client():
    """basic.cancel -> cancel-ok with the tag; no deliveries after it; messages delivered
    before it can still be acked; cancelling an unknown tag -> cancel-ok"""
    q = "wt23-cancel"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 2)
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, B.Qos(prefetch_count=2), B.QosOk)
            wt.call_pika(c, 1, B.Consume(queue=q, consumer_tag="ct"), B.ConsumeOk)
            d1, _ = read_delivery(c, 1)
            read_delivery(c, 1)
            ok = wt.call_pika(c, 1, B.Cancel(consumer_tag="ct"), B.CancelOk)
            assert ok.consumer_tag == "ct", ok
            wt.fill(conn, q, 2, prefix="late")
            c.expect_silence(0.3)
            wt.send_pika(c, 1, B.Ack(delivery_tag=d1.delivery_tag))
            ok = wt.call_pika(c, 1, B.Cancel(consumer_tag="never"), B.CancelOk)
            assert ok.consumer_tag == "never", ok
            wt.log("  cancel-ok; nothing delivered after it; ack after cancel ok; unknown "
                   "tag: cancel-ok")
            c.close_channel(1)
            c.close_connection()
        ch = conn.channel()
        wait_ready(ch, q, 3, "m1 requeued, late0 and late1 waiting")
        assert wt.drain(ch, q, redelivered=True) == [(b"m1", True), (b"late0", False),
                                                     (b"late1", False)]
        ch.queue_delete(q)
        conn.close()


def test_consumer_tags():
    """an empty consumer tag gets a server-made one (amq.ctag-...); the same tag twice on
    one channel -> connection.close 530 "NOT_ALLOWED - attempt to reuse consumer tag 't'"
    (60, 20); the same tag on another channel is fine"""
    q = "wt23-tags"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        with wt.opened(srv.addr, 1, 2) as c:
            ok = wt.call_pika(c, 1, B.Consume(queue=q), B.ConsumeOk)
            assert ok.consumer_tag.startswith("amq.ctag-") and len(ok.consumer_tag) > 9, ok
            wt.log("  server-made tag: %s" % ok.consumer_tag)
            wt.call_pika(c, 1, B.Consume(queue=q, consumer_tag="t"), B.ConsumeOk)
            wt.call_pika(c, 2, B.Consume(queue=q, consumer_tag="t"), B.ConsumeOk)
            wt.send_pika(c, 1, B.Consume(queue=q, consumer_tag="t"))
            c.expect_connection_close(530, text="NOT_ALLOWED - attempt to reuse consumer "
                                      "tag 't'", ids=wt.method_ids(B.Consume))
        conn.channel().queue_delete(q)
        conn.close()


def test_exclusive_consumer():
    """basic.consume exclusive on a queue with a consumer, or any consume on a queue with an
    exclusive consumer -> 403 "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
    (60, 20); once the exclusive consumer cancels, others may consume"""
    q = "wt23-excl-consumer"
    text = "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        with wt.opened(srv.addr, 1) as a, wt.opened(srv.addr, 1) as b:
            wt.call_pika(a, 1, B.Consume(queue=q, consumer_tag="plain"), B.ConsumeOk)
            wt.channel_refused(b, 1, B.Consume(queue=q, consumer_tag="x", exclusive=True),
                               403, text)
            wt.call_pika(a, 1, B.Cancel(consumer_tag="plain"), B.CancelOk)
            wt.call_pika(a, 1, B.Consume(queue=q, consumer_tag="excl", exclusive=True), B.ConsumeOk)
            wt.channel_refused(b, 1, B.Consume(queue=q, consumer_tag="y"), 403, text)
            a.open_channel(2)
            wt.channel_refused(a, 2, B.Consume(queue=q, consumer_tag="z"), 403, text)
            wt.log("  refused on another connection and on the owner's other channel")
            wt.call_pika(a, 1, B.Cancel(consumer_tag="excl"), B.CancelOk)
            wt.call_pika(b, 1, B.Consume(queue=q, consumer_tag="after"), B.ConsumeOk)
            wt.log("  exclusive consumer cancelled: others consume again")
            a.close_connection()
            b.close_connection()
        conn.channel().queue_delete(q)
        conn.close()


def test_consumer_priorities():
    """x-priority: with no prefetch limit the higher-priority consumer gets every message;
    with prefetch 2 each, it gets 2 and the lower one 2 while it holds them (2 wait); once
    it acks, it gets the waiting ones"""
    q = "wt23-priority"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        ch = conn.channel()
        low = Consumer(ch, q, "low", arguments={"x-priority": 1})
        high = Consumer(ch, q, "high", arguments={"x-priority": 10})
        Consumer(ch, q, "default")  # priority 0
        wt.fill(conn, q, 6)
        wt.wait_until(lambda: len(high.got) + len(low.got) == 6, 5, "6 deliveries", conns=[conn])
        pump([conn], 0.1)
        assert (len(high.got), len(low.got)) == (6, 0), (len(high.got), len(low.got))
        wt.log("  no prefetch: high 6, low 0, default 0")
        ch.close()

        ch = conn.channel()
        wait_ready(ch, q, 6, "requeued")
        ch.queue_purge(q)
        ch.basic_qos(prefetch_count=2)
        low = Consumer(ch, q, "low", arguments={"x-priority": 1})
        high = Consumer(ch, q, "high", arguments={"x-priority": 10})
        wt.fill(conn, q, 6)
        wt.wait_until(lambda: len(high.got) + len(low.got) == 4, 5, "4 deliveries", conns=[conn])
        pump([conn], 0.1)
        assert (len(high.got), len(low.got)) == (2, 2), (len(high.got), len(low.got))
        wt.log("  prefetch 2, 6 messages: high 2, low 2, 2 waiting")
        ch.basic_ack(high.got[1][0], multiple=True)
        wt.wait_until(lambda: len(high.got) == 4, 5, "high served first after its ack",
                      conns=[conn])
        pump([conn], 0.1)
        assert len(low.got) == 2
        wt.log("  high acked 2: it got the 2 waiting ones")
        ch.close()
        conn.channel().queue_delete(q)
        conn.close()


def test_basic_get():
    """basic.get: get-ok with tag, redelivered, exchange, routing key and the number of
    messages left; get-empty when none; no-ack gets need no ack"""
    q = "wt23-get"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 3)
        with wt.opened(srv.addr, 1) as c:
            oks = []
            for i in range(3):
                wt.send_pika(c, 1, B.Get(queue=q, no_ack=(i == 2)))
                ok = B.GetOk().decode(c.expect(wt.method_ids(B.GetOk), channel=1).args)
                _, body, _ = wt.read_content(c, 1)
                assert body == b"m%d" % i, body
                assert (ok.delivery_tag, ok.redelivered, ok.exchange, ok.routing_key,
                        ok.message_count) == (i + 1, False, "", q, 2 - i), ok
                oks.append(ok)
            ok = wt.call_pika(c, 1, B.Get(queue=q), B.GetEmpty)
            wt.log("  get-ok tags 1-3, message_count 2,1,0; then get-empty")
            wt.send_pika(c, 1, B.Reject(delivery_tag=1, requeue=True))
            wt.send_pika(c, 1, B.Get(queue=q))
            ok = B.GetOk().decode(c.expect(wt.method_ids(B.GetOk), channel=1).args)
            _, body, _ = wt.read_content(c, 1)
            assert (body, ok.delivery_tag, ok.redelivered, ok.message_count) == (
                b"m0", 4, True, 0), (body, ok)
            wt.send_pika(c, 1, B.Ack(delivery_tag=4))
            c.close_connection()
        ch = conn.channel()
        wait_ready(ch, q, 1, "m1 requeued on close")
        assert wt.drain(ch, q, redelivered=True) == [(b"m1", True)]
        ch.queue_delete(q)
        conn.close()


def test_no_ack_consumer():
    """a no-ack consumer: every message delivered without acks, the queue empties, nothing
    comes back when its channel closes"""
    q = "wt23-noack"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        wt.fresh_queue(conn.channel(), q)
        wt.fill(conn, q, 50)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)  # no-ack consumers ignore the prefetch limit
        c = Consumer(ch, q, "noack", auto_ack=True)
        wt.wait_until(lambda: len(c.got) == 50, 5, "50 no-ack deliveries", conns=[conn])
        assert c.bodies == [b"m%d" % i for i in range(50)]
        ch.close()
        ch = conn.channel()
        time.sleep(0.2)
        assert ready_count(ch, q) == 0
        wt.log("  50 delivered in order; queue empty after the channel closed")
        ch.queue_delete(q)
        conn.close()


def test_consume_errors():
    """basic.consume and basic.get on a missing queue -> 404 "NOT_FOUND - no queue 'q' in
    vhost '/'" (60, 20) / (60, 70); basic.qos with prefetch_size -> connection.close 540
    "NOT_IMPLEMENTED - prefetch_size!=0 (10)" (60, 10)"""
    q = "wt23-missing"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        conn.channel().queue_delete(q)
        conn.close()
        with wt.opened(srv.addr, 1) as c:
            text = "NOT_FOUND - no queue '%s' in vhost '/'" % q
            wt.channel_refused(c, 1, B.Consume(queue=q), 404, text)
            wt.channel_refused(c, 1, B.Get(queue=q), 404, text)
            wt.send_pika(c, 1, B.Qos(prefetch_size=10))
            c.expect_connection_close(540, text="NOT_IMPLEMENTED - prefetch_size!=0 (10)",
                                      ids=wt.method_ids(B.Qos))


if __name__ == "__main__":
    wt.run([test_fair_dispatch, test_round_robin, test_qos_per_consumer_and_global,
            test_qos_per_consumer_clears_global, test_ack_multiple, test_nack_and_reject,
            test_unknown_delivery_tag, test_double_ack_and_no_ack_tags, test_recover,
            test_requeue_on_close, test_cancel_notify, test_cancel_by_client,
            test_consumer_tags, test_exclusive_consumer, test_consumer_priorities,
            test_basic_get, test_no_ack_consumer, test_consume_errors])
