"""Queue length limits, as RabbitMQ 3.10's classic queues apply them: x-max-length and
x-max-length-bytes with x-overflow drop-head (the default: the oldest ready messages go,
dead-lettered with reason maxlen when the queue has a dead-letter exchange), reject-publish
(the new message is refused: nacked under publisher confirms, dropped silently without) and
reject-publish-dlx (refused and dead-lettered); counted over ready messages only.

Checked against RabbitMQ 3.10.8 (WARREN_TEST_ADDR=127.0.0.1:PORT), which did, where it may
surprise:
- The limit is checked after adding the new message: under reject-publish a message is
  refused if the queue would then hold more than the limit (max-length 2: the third is
  nacked; max-length-bytes 10 holding 9 bytes: a 2-byte body is nacked, a 1-byte one taken).
  Under drop-head a message larger than max-length-bytes pushes out everything, itself too.
- Bytes are the bodies' sizes only: properties and headers do not count; an empty body
  counts 0 (max-length-bytes 0 takes it even under reject-publish).
- Unacknowledged messages do not count. Messages requeued to a full queue: under drop-head
  the requeued ones (now at the head) are dropped; under reject-publish they all go back and
  the queue holds more than its limit.
- max-length 0: drop-head still hands a message to a waiting consumer (otherwise drops or
  dead-letters it); reject-publish and reject-publish-dlx refuse every message even with a
  consumer waiting (reject-publish-dlx dead-letters it).
- reject-publish-dlx nacks the message under confirms and dead-letters it (reason maxlen);
  without confirms it is dead-lettered all the same.
- A message routed to two queues, one of which refuses it (reject-publish): the publisher
  gets basic.nack, but the other queue keeps its copy (no basic.return, even if mandatory).
- x-death for maxlen: count 1, reason maxlen, queue, time, exchange, routing-keys, as for the
  other reasons.

Queue and exchange names start with wt33- and are deleted at the start and end of each test,
so the file reruns against one broker."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

Q, DLQ, DLX = "wt33-q", "wt33-dlq", "wt33-dlx"


def setup(addr, args, dlx=False, queue=Q):
    """Declares queue afresh with args (and, with dlx, a fanout dead-letter exchange DLX
    bound to a fresh DLQ)."""
    wt.cleanup(addr, queue, DLQ, exchanges=(DLX,))
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    if dlx:
        ch.exchange_declare(DLX, "fanout")
        ch.queue_declare(DLQ)
        ch.queue_bind(DLQ, DLX)
        args = dict(args, **{"x-dead-letter-exchange": DLX})
    ch.queue_declare(queue, arguments=args)
    conn.close()


def publish(addr, bodies, confirm=True, queue=Q, exchange="", props=None, mandatory=False):
    """Publishes bodies on a connection of its own; returns per body "ack" or "nack" (with
    confirm) or "sent" (without: the channel must still be open afterwards)."""
    import pika
    conn = wt.pika_connect(addr)
    ch = wt.confirm_channel(conn) if confirm else conn.channel()
    out = []
    for b in bodies:
        try:
            ch.basic_publish(exchange, queue, b, props, mandatory=mandatory)
            out.append("ack" if confirm else "sent")
        except pika.exceptions.NackError:
            out.append("nack")
    if not confirm:
        ch.basic_qos(prefetch_count=0)  # a round trip: the publishes were all taken
    assert ch.is_open
    conn.close()
    return out


def bodies_in(addr, queue, expect=None):
    """Drains queue (basic.get, no-ack); returns [(body, properties)]. expect: first wait
    (up to 5 s) until it holds that many messages, for those that arrive asynchronously
    (published without confirms, or dead-lettered)."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    if expect:
        wt.wait_until(lambda: wt.message_count(ch, queue) >= expect, 5,
                      "%d messages in %s" % (expect, queue))
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            break
        out.append((b, p))
    conn.close()
    return out


def bodies(addr, queue, expect=None):
    return [b for b, _ in bodies_in(addr, queue, expect)]


def check_maxlen_deaths(addr, want):
    """The dead-letter queue holds exactly the bodies want, each with one maxlen death."""
    got = bodies_in(addr, DLQ, len(want))
    assert [b for b, _ in got] == want, "dead-lettered %r, expected %r" % (
        [b for b, _ in got], want)
    for _, p in got:
        wt.check_dead_lettered(p, "maxlen", Q, "", [Q])


def test_drop_head():
    """x-max-length 2, default overflow and drop-head: every publish is confirmed, the
    oldest go (dead-lettered with reason maxlen with a DLX), with or without confirms"""
    with wt.server() as srv:
        for args in ({"x-max-length": 2}, {"x-max-length": 2, "x-overflow": "drop-head"}):
            for confirm in (True, False):
                wt.log("  %r, confirms %s" % (args, confirm))
                setup(srv.addr, args, dlx=True)
                got = publish(srv.addr, [b"a", b"b", b"c", b"d"], confirm=confirm)
                assert got == ["ack" if confirm else "sent"] * 4, got
                assert bodies(srv.addr, Q, 2) == [b"c", b"d"]
                check_maxlen_deaths(srv.addr, [b"a", b"b"])
        setup(srv.addr, {"x-max-length": 2})
        assert publish(srv.addr, [b"a", b"b", b"c"]) == ["ack"] * 3
        assert bodies(srv.addr, Q) == [b"b", b"c"]
        wt.cleanup(srv.addr, Q, DLQ, exchanges=(DLX,))


def test_reject_publish():
    """x-overflow reject-publish: over the limit the new message is nacked under confirms
    and dropped silently without (the channel stays open); nothing is dead-lettered"""
    with wt.server() as srv:
        for confirm in (True, False):
            setup(srv.addr, {"x-max-length": 2, "x-overflow": "reject-publish"}, dlx=True)
            got = publish(srv.addr, [b"a", b"b", b"c", b"d"], confirm=confirm)
            assert got == (["ack", "ack", "nack", "nack"] if confirm else ["sent"] * 4), got
            assert bodies(srv.addr, Q, 2) == [b"a", b"b"]
            assert bodies(srv.addr, DLQ) == []
            # Room again: taken again.
            assert publish(srv.addr, [b"e"], confirm=confirm) == [
                "ack" if confirm else "sent"]
            assert bodies(srv.addr, Q, 1) == [b"e"]
        wt.cleanup(srv.addr, Q, DLQ, exchanges=(DLX,))


def test_reject_publish_dlx():
    """x-overflow reject-publish-dlx: the refused message is nacked under confirms and
    dead-lettered with reason maxlen (also without confirms)"""
    with wt.server() as srv:
        for confirm in (True, False):
            setup(srv.addr, {"x-max-length": 2, "x-overflow": "reject-publish-dlx"}, dlx=True)
            got = publish(srv.addr, [b"a", b"b", b"c", b"d"], confirm=confirm)
            assert got == (["ack", "ack", "nack", "nack"] if confirm else ["sent"] * 4), got
            assert bodies(srv.addr, Q, 2) == [b"a", b"b"]
            check_maxlen_deaths(srv.addr, [b"c", b"d"])
        wt.cleanup(srv.addr, Q, DLQ, exchanges=(DLX,))


def test_max_length_bytes():
    """x-max-length-bytes counts body bytes only (not headers); reject-publish refuses a
    message that would take the queue over the limit; drop-head drops from the head until
    the queue fits, a message larger than the limit included"""
    import pika
    big_headers = pika.BasicProperties(headers={"h": "x" * 1000})
    with wt.server() as srv:
        cases = [
            ("drop-head", [b"12345", b"1234", b"12", b"1"], ["ack"] * 4, [b"1234", b"12", b"1"]),
            ("drop-head", [b"12345", b"12345678901", b"1"], ["ack"] * 3, [b"1"]),
            ("reject-publish", [b"12345", b"1234", b"12", b"1"], ["ack", "ack", "nack", "ack"],
             [b"12345", b"1234", b"1"]),
            ("reject-publish", [b"12345", b"12345678901", b"1"], ["ack", "nack", "ack"],
             [b"12345", b"1"]),
        ]
        for overflow, sent, acks, kept in cases:
            setup(srv.addr, {"x-max-length-bytes": 10, "x-overflow": overflow})
            got = publish(srv.addr, sent)
            assert got == acks, "%s, %r: %r" % (overflow, sent, got)
            assert bodies(srv.addr, Q) == kept, overflow
        for overflow in ("drop-head", "reject-publish"):
            setup(srv.addr, {"x-max-length-bytes": 10, "x-overflow": overflow})
            assert publish(srv.addr, [b"12345", b"54321"], props=big_headers) == ["ack"] * 2
            assert bodies(srv.addr, Q) == [b"12345", b"54321"], "headers were counted"
        # Both limits: whichever is reached first.
        setup(srv.addr, {"x-max-length-bytes": 10, "x-max-length": 3,
                         "x-overflow": "reject-publish"})
        assert publish(srv.addr, [b"1", b"2", b"3", b"4"]) == ["ack"] * 3 + ["nack"]
        setup(srv.addr, {"x-max-length-bytes": 10, "x-max-length": 3,
                         "x-overflow": "reject-publish"})
        assert publish(srv.addr, [b"123456789", b"12"]) == ["ack", "nack"]
        wt.cleanup(srv.addr, Q)


def test_ready_only():
    """unacknowledged messages do not count towards the limit; requeued into a full queue
    they are dropped under drop-head (they are at the head) and all kept under
    reject-publish (over the limit)"""
    with wt.server() as srv:
        for overflow, acks, after in (
                ("drop-head", ["ack"] * 3, [b"d", b"e"]),
                ("reject-publish", ["ack", "ack", "nack"], [b"a", b"b", b"c", b"d"])):
            setup(srv.addr, {"x-max-length": 2, "x-overflow": overflow})
            publish(srv.addr, [b"a", b"b"])
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            assert ch.basic_get(Q)[2] == b"a" and ch.basic_get(Q)[2] == b"b"
            got = publish(srv.addr, [b"c", b"d", b"e"])
            assert got == acks, "%s with 2 unacked: %r" % (overflow, got)
            assert wt.message_count(ch, Q) == 2
            conn.close()  # a and b go back to the head
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            wt.wait_until(lambda: wt.message_count(ch, Q) == len(after), 5,
                          "%d messages after the requeue" % len(after))
            conn.close()
            assert bodies(srv.addr, Q) == after, overflow
        wt.cleanup(srv.addr, Q)


def test_two_queues_one_refuses():
    """a message routed to two queues, one of which refuses it (reject-publish): the
    publisher gets a nack (no basic.return, even mandatory), the other queue keeps it"""
    ex, a, b = "wt33-fan", "wt33-two-a", "wt33-two-b"
    with wt.server() as srv:
        wt.cleanup(srv.addr, a, b, exchanges=(ex,))
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.exchange_declare(ex, "fanout")
        ch.queue_declare(a)
        ch.queue_declare(b, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        for q in (a, b):
            ch.queue_bind(q, ex)
        conn.close()
        got = publish(srv.addr, [b"1", b"2"], queue="", exchange=ex, mandatory=True)
        assert got == ["ack", "nack"], got
        assert bodies(srv.addr, a) == [b"1", b"2"]
        assert bodies(srv.addr, b) == [b"1"]
        wt.cleanup(srv.addr, a, b, exchanges=(ex,))


def test_max_length_zero():
    """x-max-length 0: drop-head drops (dead-letters) a message unless a consumer is waiting
    for it; reject-publish nacks every message, consumer or not; reject-publish-dlx nacks and
    dead-letters it; x-max-length-bytes 0 takes empty bodies only"""
    with wt.server() as srv:
        for overflow, alone, with_consumer, consumer_gets, dead in (
                ("drop-head", "ack", "ack", [b"z"], [b"a"]),
                ("reject-publish", "nack", "nack", [], []),
                ("reject-publish-dlx", "nack", "nack", [], [b"a", b"z"])):
            wt.log("  %s" % overflow)
            setup(srv.addr, {"x-max-length": 0, "x-overflow": overflow}, dlx=True)
            assert publish(srv.addr, [b"a"]) == [alone]
            assert bodies(srv.addr, Q) == []
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            got = []
            ch.basic_consume(Q, lambda c, m, p, b: got.append(b), auto_ack=True)
            assert publish(srv.addr, [b"z"]) == [with_consumer]
            if consumer_gets:
                wt.wait_until(lambda: got, 5, "the delivery", conns=[conn])
            conn.process_data_events(0.3)
            assert got == consumer_gets, "%s: the consumer got %r" % (overflow, got)
            conn.close()
            check_maxlen_deaths(srv.addr, dead)
            setup(srv.addr, {"x-max-length-bytes": 0, "x-overflow": overflow}, dlx=True)
            assert publish(srv.addr, [b"a", b""]) == [alone, "ack"], overflow
            assert bodies(srv.addr, Q) == [b""]
            check_maxlen_deaths(srv.addr, [b"a"] if dead else [])
        wt.cleanup(srv.addr, Q, DLQ, exchanges=(DLX,))


if __name__ == "__main__":
    wt.run([test_drop_head, test_reject_publish, test_reject_publish_dlx, test_max_length_bytes,
            test_ready_only, test_two_queues_one_refuses, test_max_length_zero])
