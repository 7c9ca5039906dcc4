"""Dead-lettering on rejection, as RabbitMQ 3.10 does it: basic.reject and basic.nack with
requeue=false republish the message to its queue's dead-letter exchange (x-dead-letter-
exchange), with the queue's dead-letter routing key or its own routing keys (CC and BCC
included), its properties kept but the expiration, and the x-death header RabbitMQ writes:
one table per (queue, reason), count, reason, queue, time, exchange, routing-keys (CC, not
BCC), original-expiration; x-first-death-reason/queue/exchange; the headers sorted by key.
A dead-letter routing key drops the CC header. A fanout DLX reaches every bound queue; a
missing DLX drops the message; rejecting a message of a deleted queue drops it; rejections
inside a transaction dead-letter at tx.commit; rejection cycles are not broken (only
automatic ones are: see check_deadletter for those); persistent messages dead-lettered to
durable queues survive a restart.

Every assertion was checked against RabbitMQ 3.10.8 (WARREN_TEST_ADDR=127.0.0.1:5691 with
Debian's rabbitmq-server there). Dead-lettering is asynchronous in RabbitMQ, so the tests
poll for the dead-lettered message. Names start with wt31- and are deleted after use."""

import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

IN = "wt31-in"      # direct exchange messages are published to
DLX = "wt31-dlx"    # direct dead-letter exchange
FAN = "wt31-fan"    # fanout dead-letter exchange
SRC = "wt31-src"    # the queue messages die in
DEAD = "wt31-dead"  # where dead-lettered messages land
QUEUES = [SRC, DEAD, "wt31-dead2", "wt31-a", "wt31-b", "wt31-q1", "wt31-q2", "wt31-q3",
          "wt31-q4", "wt31-cc"]
EXCHANGES = [IN, DLX, FAN]


def setup(ch, src_args, dead=(DEAD,), dlx_type="direct", dlx=DLX, binding="k",
          durable=False):
    """Declares IN (direct), the DLX, SRC bound to IN with key k and the dead queues bound to
    the DLX with binding."""
    for q in QUEUES:
        ch.queue_delete(q)
    for e in EXCHANGES:
        ch.exchange_delete(e)
    ch.exchange_declare(IN, "direct", durable=durable)
    ch.exchange_declare(dlx, dlx_type, durable=durable)
    ch.queue_declare(SRC, durable=durable, arguments=src_args)
    ch.queue_bind(SRC, IN, "k")
    for q in dead:
        ch.queue_declare(q, durable=durable)
        ch.queue_bind(q, dlx, binding)


def cleanup(addr):
    wt.cleanup(addr, *QUEUES, exchanges=EXCHANGES)


def get_one(ch, queue, timeout=5, auto_ack=True):
    """The next message of queue, waiting for it: (method, properties, body)."""
    deadline = time.monotonic() + timeout
    while True:
        m, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if m is not None:
            return m, props, body
        assert time.monotonic() < deadline, "nothing in %s within %d s" % (queue, timeout)
        time.sleep(0.02)


def reject_one(ch, queue, how="reject", requeue=False):
    """Takes the next message of queue (basic.get) and rejects or nacks it."""
    m, _, _ = get_one(ch, queue, auto_ack=False)
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=requeue)
    else:
        ch.basic_nack(m.delivery_tag, multiple=False, requeue=requeue)
    return m


def assert_empty(ch, queue, wait=0.3):
    time.sleep(wait)  # RabbitMQ dead-letters asynchronously: give it time to be wrong
    n = ch.queue_declare(queue, passive=True).method.message_count
    assert n == 0, "%s holds %d messages, expected none" % (queue, n)


def check_time(t):
    now = datetime.datetime.utcnow()
    assert isinstance(t, datetime.datetime), t
    assert abs((now - t).total_seconds()) < 10, (t, now)


def test_reject_keeps_routing_key():
    """basic.reject requeue=false: the message goes to the DLX with its own routing key; its
    properties stay but the expiration; x-death and x-first-death-* as RabbitMQ writes them
    on a first death, the headers sorted by key, the first x-death table in RabbitMQ's
    insertion order"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": DLX})
        props = pika.BasicProperties(content_type="text/plain", message_id="id-1",
                                     expiration="60000", priority=3,
                                     headers={"zz": "last", "h": 1, "a-first": True})
        ch.basic_publish(IN, "k", b"body-1", props)
        reject_one(ch, SRC)
        m, p, body = get_one(ch, DEAD)
        assert body == b"body-1"
        assert (m.exchange, m.routing_key, m.redelivered) == (DLX, "k", False), m
        assert p.expiration is None, p
        assert (p.content_type, p.message_id, p.priority) == ("text/plain", "id-1", 3), p
        h = p.headers
        assert list(h) == ["a-first", "h", "x-death", "x-first-death-exchange",
                           "x-first-death-queue", "x-first-death-reason", "zz"], list(h)
        assert (h["a-first"], h["h"], h["zz"]) == (True, 1, "last"), h
        assert (h["x-first-death-exchange"], h["x-first-death-queue"],
                h["x-first-death-reason"]) == (IN, SRC, "rejected"), h
        xd = h["x-death"]
        assert len(xd) == 1, xd
        d = xd[0]
        assert list(d) == ["count", "reason", "queue", "time", "exchange", "routing-keys",
                           "original-expiration"], list(d)
        assert (d["count"], d["reason"], d["queue"], d["exchange"], d["routing-keys"],
                d["original-expiration"]) == (1, "rejected", SRC, IN, ["k"], "60000"), d
        check_time(d["time"])
        assert_empty(ch, SRC)
        wt.log("  x-death: %r" % xd)
        conn.close()
        cleanup(srv.addr)


def test_nack_with_dead_letter_routing_key():
    """basic.nack requeue=false to a queue with x-dead-letter-routing-key: the message goes
    with that key only; the CC header is dropped, routing-keys still lists the CC keys (not
    the BCC ones), and no BCC header reaches the consumer"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": DLX, "x-dead-letter-routing-key": "dlk"},
              binding="dlk")
        ch.queue_declare("wt31-cc")
        ch.queue_bind("wt31-cc", DLX, "c1")
        props = pika.BasicProperties(headers={"CC": ["c1", "c2"], "BCC": ["b1"]})
        ch.basic_publish(IN, "k", b"body-2", props)
        reject_one(ch, SRC, how="nack")
        m, p, _ = get_one(ch, DEAD)
        assert (m.exchange, m.routing_key) == (DLX, "dlk"), m
        h = p.headers
        assert "CC" not in h and "BCC" not in h, h
        d = h["x-death"][0]
        assert (d["count"], d["reason"], d["queue"], d["exchange"],
                d["routing-keys"]) == (1, "rejected", SRC, IN, ["k", "c1", "c2"]), d
        assert "original-expiration" not in d, d
        assert_empty(ch, "wt31-cc", wait=0)  # the dead-letter key replaced the CC keys
        conn.close()
        cleanup(srv.addr)


def test_routing_keys_with_cc_and_bcc():
    """without a dead-letter routing key the message is routed with its routing key and its
    CC keys, once per queue; the CC header stays, the BCC one is gone (its queues got the
    message without it; RabbitMQ would dead-letter to the BCC keys too: not Warren, see
    deadletter.h, so no queue is bound with the BCC key here)"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": DLX})
        # SRC is bound with k only; the CC and BCC keys route nowhere when published.
        ch.queue_declare("wt31-cc")
        ch.queue_bind("wt31-cc", DLX, "c2")
        ch.queue_bind(DEAD, DLX, "c1")  # DEAD matches two keys: it gets one copy
        props = pika.BasicProperties(headers={"CC": ["c1", "c2"], "BCC": ["b1"]})
        ch.basic_publish(IN, "k", b"body-3", props)
        reject_one(ch, SRC)
        for q in (DEAD, "wt31-cc"):
            m, p, body = get_one(ch, q)
            assert (m.routing_key, body) == ("k", b"body-3"), (q, m)
            assert p.headers["CC"] == ["c1", "c2"] and "BCC" not in p.headers, p.headers
            assert p.headers["x-death"][0]["routing-keys"] == ["k", "c1", "c2"], p.headers
            assert_empty(ch, q, wait=0)
        conn.close()
        cleanup(srv.addr)


def test_fanout_dlx_two_queues():
    """a fanout dead-letter exchange delivers the message to both its queues with the same
    x-death; the default exchange as DLX with a dead-letter routing key names the queue"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": FAN}, dead=(DEAD, "wt31-dead2"), dlx=FAN,
              dlx_type="fanout", binding="")
        ch.basic_publish(IN, "k", b"fan", pika.BasicProperties(delivery_mode=2))
        reject_one(ch, SRC)
        got = [get_one(ch, q) for q in (DEAD, "wt31-dead2")]
        for m, p, body in got:
            assert (m.exchange, m.routing_key, body, p.delivery_mode) == (FAN, "k", b"fan", 2)
            assert p.headers["x-death"][0]["exchange"] == IN, p.headers
        assert got[0][1].headers == got[1][1].headers
        # The default exchange: x-dead-letter-routing-key is the queue's name.
        ch.queue_delete(SRC)
        ch.queue_declare(SRC, arguments={"x-dead-letter-exchange": "",
                                         "x-dead-letter-routing-key": DEAD})
        ch.queue_bind(SRC, IN, "k")
        ch.basic_publish(IN, "k", b"dflt")
        reject_one(ch, SRC)
        m, p, body = get_one(ch, DEAD)
        assert (m.exchange, m.routing_key, body) == ("", DEAD, b"dflt"), m
        conn.close()
        cleanup(srv.addr)


def test_rejection_cycles_and_counts():
    """A and B dead-letter to each other: rejections never count as a cycle, so the message
    keeps going, one x-death entry per queue, counts incremented, the latest first (repeated
    entries sorted by key); through three queues the order is RabbitMQ's regrouping order"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        for q in QUEUES:
            ch.queue_delete(q)
        ch.queue_declare("wt31-a", arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "wt31-b"})
        ch.queue_declare("wt31-b", arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": "wt31-a"})
        ch.basic_publish("", "wt31-a", b"loop")
        for q in ("wt31-a", "wt31-b", "wt31-a"):
            reject_one(ch, q)
        m, p, _ = get_one(ch, "wt31-b")
        xd = p.headers["x-death"]
        assert [(d["queue"], d["count"]) for d in xd] == [("wt31-a", 2), ("wt31-b", 1)], xd
        assert list(xd[0]) == ["count", "exchange", "queue", "reason", "routing-keys",
                               "time"], list(xd[0])
        # The repeat keeps the first time's exchange and routing keys.
        assert (xd[0]["exchange"], xd[0]["routing-keys"]) == ("", ["wt31-a"]), xd[0]
        assert (xd[1]["exchange"], xd[1]["routing-keys"]) == ("", ["wt31-b"]), xd[1]
        assert p.headers["x-first-death-queue"] == "wt31-a", p.headers
        # q1 -> q2 -> q3 -> q4: RabbitMQ regroups an x-death of two or more entries, which
        # reverses those it does not update.
        for i in (1, 2, 3):
            ch.queue_declare("wt31-q%d" % i, arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "wt31-q%d" % (i + 1)})
        ch.queue_declare("wt31-q4")
        ch.basic_publish("", "wt31-q1", b"chain")
        for i in (1, 2, 3):
            reject_one(ch, "wt31-q%d" % i)
        _, p, _ = get_one(ch, "wt31-q4")
        order = [d["queue"] for d in p.headers["x-death"]]
        assert order == ["wt31-q3", "wt31-q1", "wt31-q2"], order
        assert list(p.headers["x-death"][1]) == ["count", "reason", "queue", "time", "exchange",
                                                 "routing-keys"], p.headers
        conn.close()
        cleanup(srv.addr)


def test_missing_dlx_and_deleted_queue():
    """a DLX that does not exist drops the message (the channel stays open); once declared it
    routes; a message whose queue was deleted is dropped when rejected; requeue=true and acks
    never dead-letter"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": DLX})
        ch.exchange_delete(DLX)
        ch.basic_publish(IN, "k", b"lost")
        reject_one(ch, SRC)
        assert_empty(ch, SRC)
        ch.exchange_declare(DLX, "direct")
        ch.queue_bind(DEAD, DLX, "k")
        ch.basic_publish(IN, "k", b"found")
        reject_one(ch, SRC)
        _, _, body = get_one(ch, DEAD)
        assert body == b"found"
        # requeue=true puts it back; an ack just removes it.
        ch.basic_publish(IN, "k", b"again")
        reject_one(ch, SRC, requeue=True)
        m, _, _ = get_one(ch, SRC)
        assert m.redelivered
        # The queue goes while its message is unacked: rejecting it drops it.
        ch.basic_publish(IN, "k", b"orphan")
        ch2 = conn.channel()
        m, _, _ = ch2.basic_get(SRC, auto_ack=False)
        assert m is not None
        ch.queue_delete(SRC)
        ch2.basic_reject(m.delivery_tag, requeue=False)
        assert_empty(ch, DEAD)
        assert ch2.is_open
        conn.close()
        cleanup(srv.addr)


def test_nack_multiple_and_tx():
    """basic.nack multiple=true requeue=false dead-letters every message up to the tag, in
    order; inside a transaction the rejections wait for tx.commit, and tx.rollback keeps
    them unacked"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": DLX})
        for i in range(3):
            ch.basic_publish(IN, "k", b"n%d" % i)
        tags = []
        for _ in range(3):
            m, _, _ = get_one(ch, SRC, auto_ack=False)
            tags.append(m.delivery_tag)
        ch.basic_nack(tags[-1], multiple=True, requeue=False)
        assert [get_one(ch, DEAD)[2] for _ in range(3)] == [b"n0", b"n1", b"n2"]
        tx = conn.channel()
        tx.tx_select()
        tx.basic_publish(IN, "k", b"t0")
        tx.tx_commit()
        m, _, _ = get_one(tx, SRC, auto_ack=False)
        tx.basic_reject(m.delivery_tag, requeue=False)
        assert_empty(ch, DEAD)
        tx.tx_rollback()
        assert_empty(ch, DEAD, wait=0)
        tx.basic_reject(m.delivery_tag, requeue=False)
        tx.tx_commit()
        _, _, body = get_one(ch, DEAD)
        assert body == b"t0"
        conn.close()
        cleanup(srv.addr)


@wt.needs_process
def test_persistent_survives_restart():
    """a persistent message rejected from a durable queue to a durable dead-letter queue is
    there, with its x-death, after a restart; the original is gone"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-dead-letter-exchange": DLX}, dead=(DEAD, "wt31-dead2"), durable=True)
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish(IN, "k", b"p%d" % i, pika.BasicProperties(delivery_mode=2))
        for _ in range(3):
            reject_one(ch, SRC)
        conn.close()
        srv.restart()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        assert_empty(ch, SRC, wait=0)
        for q in (DEAD, "wt31-dead2"):
            for i in range(3):
                m, p, body = get_one(ch, q, timeout=1)
                assert (body, m.redelivered, p.delivery_mode) == (b"p%d" % i, False, 2), (q, m)
                d = p.headers["x-death"][0]
                assert (d["count"], d["reason"], d["queue"]) == (1, "rejected", SRC), d
            assert_empty(ch, q, wait=0)
        conn.close()
        cleanup(srv.addr)


if __name__ == "__main__":
    wt.run([test_reject_keeps_routing_key, test_nack_with_dead_letter_routing_key,
            test_routing_keys_with_cc_and_bcc, test_fanout_dlx_two_queues,
            test_rejection_cycles_and_counts, test_missing_dlx_and_deleted_queue,
            test_nack_multiple_and_tx, test_persistent_survives_restart])
