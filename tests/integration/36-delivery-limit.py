"""Delivery limit, as RabbitMQ 3.10's quorum queues do it: x-delivery-limit N lets a message
be delivered N+1 times; when it comes back once more (requeued by nack, reject, recover or
its channel closing) it is dead-lettered with reason delivery_limit, or dropped without a
dead-letter exchange. Redeliveries carry the x-delivery-count header. This is how poison
messages stop looping. Warren also takes x-delivery-limit on classic queues (RabbitMQ refuses
it there: 406 "invalid arg 'x-delivery-limit' ... of queue type rabbit_classic_queue"); that
case runs against Warren only.

Checked against RabbitMQ 3.10.8 (WARREN_TEST_ADDR=127.0.0.1:PORT), x-queue-type quorum, which
did, where it may surprise:
- x-delivery-count is a long (type l): absent on a message's first delivery to a consumer,
  but 0 on its first basic.get; then 1, 2... on each redelivery, counting every return: nack
  or reject with requeue, basic.recover, a closed channel. A publisher's own x-delivery-count
  header reaches the first consumer unchanged and is overwritten on redelivery.
- With limit 2 the deliveries are (redelivered, x-delivery-count) (false, none), (true, 1),
  (true, 2), and the third requeue dead-letters the message. Limit 0: the first requeue does.
- The dead-lettered message has no x-delivery-count; its x-death entry is count 1, reason
  delivery_limit, queue, time, exchange, routing-keys (as for the other reasons).
- A returned message is delivered again before the messages behind it.
- RabbitMQ takes any x-delivery-limit on a quorum queue without complaint: -1 behaves as 0,
  a string ("2", "a") as no limit. Not tested: Warren validates it (28-queue-args.py).
- The count of a persistent message survives a restart of the broker (the quorum queue's log
  holds it): the message gets only what was left of its limit, and x-delivery-count goes on.
  Warren writes the count with each requeue (not synced by itself: a later confirm covers it);
  a delivery the broker was killed under may go uncounted (one less, never more).

Queue and exchange names start with wt36- and are deleted at the start and end of each test,
so the file reruns against one broker."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

Q, DLQ, DLX = "wt36-q", "wt36-dlq", "wt36-dlx"
QUORUM = {"x-queue-type": "quorum"}


def setup(addr, limit, dlx=False, qtype=QUORUM):
    """Declares Q afresh, durable, with qtype's arguments and x-delivery-limit limit (and,
    with dlx, a fanout dead-letter exchange DLX bound to a fresh DLQ, both durable: they
    outlive a restart)."""
    wt.cleanup(addr, Q, DLQ, exchanges=(DLX,))
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    args = dict(qtype, **{"x-delivery-limit": limit})
    if dlx:
        ch.exchange_declare(DLX, "fanout", durable=True)
        ch.queue_declare(DLQ, durable=True)
        ch.queue_bind(DLQ, DLX)
        args["x-dead-letter-exchange"] = DLX
    ch.queue_declare(Q, durable=True, arguments=args)
    conn.close()


def publish(addr, *bodies, headers=None, persistent=False):
    """Publishes bodies to Q with confirms (persistent: delivery mode 2)."""
    import pika
    conn = wt.pika_connect(addr)
    ch = wt.confirm_channel(conn)
    for b in bodies:
        ch.basic_publish("", Q, b, pika.BasicProperties(
            headers=headers, delivery_mode=2 if persistent else None))
    conn.close()


def delivery_count(props):
    """The x-delivery-count header (None when absent); asserts it is a long (type l)."""
    import pika.compat
    n = (props.headers or {}).get("x-delivery-count")
    assert n is None or type(n) is pika.compat.long, "x-delivery-count %r of type %s" % (
        n, type(n).__name__)
    return n


def bounce(addr, how="nack", quiet=0.6, limit=20):
    """Consumes Q (prefetch 1) and sends back every delivery with how (nack, reject or
    recover, all requeueing) until none comes for `quiet` seconds (or limit deliveries);
    returns [(redelivered, x-delivery-count)] of the deliveries."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)
    seen = []

    def on_message(c, m, p, b):
        seen.append((m.redelivered, delivery_count(p)))
        if how == "nack":
            ch.basic_nack(m.delivery_tag, requeue=True)
        elif how == "reject":
            ch.basic_reject(m.delivery_tag, requeue=True)
        else:
            ch.basic_recover(requeue=True)

    ch.basic_consume(Q, on_message)
    last, n = time.monotonic(), 0
    while time.monotonic() - last < quiet and len(seen) < limit:
        conn.process_data_events(0.05)
        if len(seen) != n:
            last, n = time.monotonic(), len(seen)
    conn.close()
    return seen


def dead_lettered(addr, n=1):
    """Waits for n messages in DLQ and returns them as [(body, properties)]."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    wt.wait_until(lambda: wt.message_count(ch, DLQ) >= n, 5, "%d dead-lettered" % n)
    out = []
    for _ in range(n):
        _, p, b = ch.basic_get(DLQ, auto_ack=True)
        out.append((b, p))
    assert wt.message_count(ch, DLQ) == 0
    conn.close()
    return out


def check_dead_lettered_at_limit(addr, qtype):
    setup(addr, 2, dlx=True, qtype=qtype)
    publish(addr, b"poison", headers={"h": 1})
    for how in ("nack", "reject", "recover"):
        seen = bounce(addr, how)
        assert seen == [(False, None), (True, 1), (True, 2)], "%s: %r" % (how, seen)
        [(body, p)] = dead_lettered(addr)
        assert body == b"poison", body
        assert p.headers.get("h") == 1, p.headers
        assert "x-delivery-count" not in p.headers, p.headers
        wt.check_dead_lettered(p, "delivery_limit", Q, "", [Q])
        publish(addr, b"poison", headers={"h": 1})
    wt.cleanup(addr, Q, DLQ, exchanges=(DLX,))


def check_dropped_by_basic_get(addr, qtype):
    setup(addr, 2, qtype=qtype)
    publish(addr, b"poison", b"next")
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    seen = []
    for _ in range(3):
        m, p, body = ch.basic_get(Q)
        assert body == b"poison", "a returned message is not delivered first: %r" % body
        seen.append((m.redelivered, delivery_count(p)))
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert seen == [(False, 0), (True, 1), (True, 2)], seen
    # The third requeue dropped it (no dead-letter exchange).
    m, p, body = ch.basic_get(Q, auto_ack=True)
    assert body == b"next" and not m.redelivered, (body, m)
    assert delivery_count(p) == 0
    assert wt.message_count(ch, Q) == 0
    # Each way of returning a message counts: nack, reject, recover, channel close.
    setup(addr, 10, qtype=qtype)
    publish(addr, b"m", headers={"x-delivery-count": 7})
    cconn = wt.pika_connect(addr)
    cch = cconn.channel()
    got = []
    cch.basic_consume(Q, lambda c, m, p, b: got.append((m, p)))
    counts = []
    for how in ("nack", "reject", "recover", "close"):
        wt.wait_until(lambda: got, 5, "a delivery", conns=[cconn])
        m, p = got.pop()
        counts.append((p.headers or {}).get("x-delivery-count"))
        if how == "nack":
            cch.basic_nack(m.delivery_tag, requeue=True)
        elif how == "reject":
            cch.basic_reject(m.delivery_tag, requeue=True)
        elif how == "recover":
            cch.basic_recover(requeue=True)
        else:
            cconn.close()
    m, p, _ = ch.basic_get(Q, auto_ack=True)
    counts.append(delivery_count(p))
    assert counts == [7, 1, 2, 3, 4], "x-delivery-count after nack, reject, recover, close: %r" % (
        counts,)
    # Limit 0: the first return is one too many.
    setup(addr, 0, dlx=True, qtype=qtype)
    publish(addr, b"once")
    assert bounce(addr) == [(False, None)]
    [(body, p)] = dead_lettered(addr)
    wt.check_dead_lettered(p, "delivery_limit", Q, "", [Q])
    conn.close()
    wt.cleanup(addr, Q, DLQ, exchanges=(DLX,))


def test_quorum_dead_lettered_at_limit():
    """quorum queue, x-delivery-limit 2: deliveries (false, no header), (true, 1), (true, 2),
    then the message is dead-lettered with reason delivery_limit, its other headers kept and
    x-delivery-count removed; the same whether returned by nack, reject or recover"""
    with wt.server() as srv:
        check_dead_lettered_at_limit(srv.addr, QUORUM)


def test_quorum_counts_and_drops():
    """quorum queue: basic.get shows x-delivery-count 0, 1, 2 and the returned message comes
    before the next; past the limit it is dropped without a DLX; nack, reject, recover and a
    closed channel each count (a publisher's own header is overwritten); limit 0"""
    with wt.server() as srv:
        check_dropped_by_basic_get(srv.addr, QUORUM)


def get_and_return(addr, n):
    """basic.get on Q n times, nacking each (with requeue); returns the x-delivery-counts."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    counts = []
    for _ in range(n):
        m, p, body = ch.basic_get(Q)
        assert m is not None and body == b"poison", (m, body)
        counts.append(delivery_count(p))
        ch.basic_nack(m.delivery_tag, requeue=True)
    conn.close()
    return counts


def check_count_after_restart(srv, hard):
    """Limit 4 (5 deliveries), two used before the restart (clean, or kill -9 once a later
    confirm covered the requeues' writes): after it, x-delivery-count goes on from 2 and the
    third return is the last but one allowed: the fifth delivery's return dead-letters it."""
    setup(srv.addr, 4, dlx=True)
    publish(srv.addr, b"poison", persistent=True)
    assert get_and_return(srv.addr, 2) == [0, 1]
    publish(srv.addr, b"sync", persistent=True)  # its confirm covers the requeues' writes
    srv.restart(hard=hard)
    counts = get_and_return(srv.addr, 3)
    assert counts == [2, 3, 4], "x-delivery-count after a restart (hard=%s): %r" % (hard, counts)
    [(body, p)] = dead_lettered(srv.addr)
    assert body == b"poison", body
    wt.check_dead_lettered(p, "delivery_limit", Q, "", [Q])
    conn = wt.pika_connect(srv.addr)
    ch = conn.channel()
    m, p, body = ch.basic_get(Q, auto_ack=True)
    assert body == b"sync" and delivery_count(p) == 0, (body, p.headers)
    conn.close()


@wt.needs_process
def test_count_survives_restart():
    """durable quorum queue, persistent message, x-delivery-limit 4, returned twice: after a
    clean restart, and after a kill -9 that follows a confirm, x-delivery-count goes on from
    2 and the message is dead-lettered after its 5th delivery; killed while the message is
    out (not returned), its count after the restart is what was written (2), or one more"""
    with wt.server() as srv:
        check_count_after_restart(srv, hard=False)
        check_count_after_restart(srv, hard=True)
        setup(srv.addr, 4)
        publish(srv.addr, b"poison", persistent=True)
        assert get_and_return(srv.addr, 2) == [0, 1]
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        m, p, _ = ch.basic_get(Q)
        assert delivery_count(p) == 2
        publish(srv.addr, b"sync", persistent=True)
        srv.restart(hard=True)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        m, p, body = ch.basic_get(Q, auto_ack=True)
        assert body == b"poison" and m.redelivered, (body, m)
        assert delivery_count(p) in (2, 3), p.headers
        conn.close()
        wt.cleanup(srv.addr, Q, DLQ, exchanges=(DLX,))


@wt.warren_only("RabbitMQ 3.10 refuses x-delivery-limit on a classic queue (406 PRECONDITION_"
                "FAILED - invalid arg 'x-delivery-limit' ... of queue type rabbit_classic_queue)")
def test_classic_delivery_limit():
    """classic queue (Warren only): x-delivery-limit behaves as on a quorum queue, the
    x-delivery-count header included"""
    with wt.server() as srv:
        check_dead_lettered_at_limit(srv.addr, {})
        check_dropped_by_basic_get(srv.addr, {})
        check_dead_lettered_at_limit(srv.addr, {"x-queue-type": "classic"})


if __name__ == "__main__":
    wt.run([test_quorum_dead_lettered_at_limit, test_quorum_counts_and_drops,
            test_classic_delivery_limit, test_count_survives_restart])
