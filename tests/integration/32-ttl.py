"""Message TTL and queue expiry, as RabbitMQ 3.10's classic queues do them: per-queue
x-message-ttl, per-message expiration (a string of milliseconds, validated with RabbitMQ's 406
texts), the lower of the two wins, expired messages are never delivered (basic.get or
consume), TTL 0, expired messages dead-lettered with reason expired, expiry while nobody
consumes, requeued messages keeping their expiry, x-expires (a queue unused for that long is
deleted; a consumer, basic.get or a redeclare keep it; also across a restart), and the
retry-with-delay pattern of Celery/kombu retry libraries.

Checked against RabbitMQ 3.10.8 (WARREN_TEST_ADDR=127.0.0.1:PORT), which did, where it may
surprise:
- The expiration property is checked as an Erlang integer: "+1", "00" and "01" are accepted;
  "", " 1", "abc" and non-ASCII digits give "no_integer", "1 ", "1.5", "1e3" and "0x10"
  "{leftover_string,\\"...\\"}" (the rest after the digits), "-1" "{value_negative,-1}", and
  more than 315360000000 (ten years) "{value_too_large,N}", closing the channel with 406 and
  naming basic.publish. The check comes after the exchange's existence (404 first) and before
  routing (an unroutable message is refused too). The term is printed by Erlang's ~p: past
  about 80 columns it is wrapped, e.g. for 18446744073709551616 the text is
  "...': {value_too_large,\\n<44 spaces>18446744073709551616}"; the test compares the term
  with the whitespace after its comma removed.
- Per-queue TTL expires messages with nobody consuming (the message count drops to 0), and so
  does a per-message expiration at the head of the queue. A message with a short expiration
  behind one with a long expiration stays counted (message_count 2) until it reaches the
  head; it is then dropped, never delivered (when a get or delivery makes it the head, at
  once). The test accepts a broker that drops it earlier.
- x-message-ttl 0 (and expiration "0") deliver at once to a consumer that can take the
  message and expire it otherwise: with prefetch 1, of three messages published together the
  consumer gets one. An expiration "0" message delivered keeps its expiration property.
- A message delivered and requeued (nack, or its channel closed) keeps its expiry time: it
  expires when it would have, counting from its publish; requeued after that time it is
  dead-lettered with reason expired (rejected without requeue, the reason is "rejected").
- x-death entries: count is a long (type l), time a timestamp of the first death for that
  queue and reason (not updated when count grows), original-expiration only if the message
  had one (the expiration property is removed). CC routing keys are listed in routing-keys and
  the CC header is kept. In the retry loop the entries are ordered latest first, the updated
  entry moving to the front; a new first entry's keys are in the order count, reason, queue,
  time, exchange, routing-keys, original-expiration, and entries rewritten later in
  alphabetical order (not checked here: a header table's order carries no meaning).
- x-expires: a passive queue.declare counts as a use (polling a queue's existence with it
  keeps the queue alive for ever), as do a consumer, basic.get and a redeclare; publishing to
  the queue and queue.purge do not. Messages in the queue do not keep it.

Queue and exchange names start with wt32- and are deleted at the start and end of each test,
so the file reruns against one broker."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

BASIC_PUBLISH = (60, 40)


def props(**kw):
    import pika
    return pika.BasicProperties(**kw)


def routable(addr, queue):
    """True if a mandatory publish to queue on the default exchange is routed: the queue
    exists. Unlike a passive declare this does not count as using the queue."""
    import pika
    conn = wt.pika_connect(addr)
    try:
        ch = wt.confirm_channel(conn)
        try:
            ch.basic_publish("", queue, b"probe", mandatory=True)
        except pika.exceptions.UnroutableError:
            return False
        return True
    finally:
        conn.close()


def exists(addr, queue):
    """True if a passive declare of queue succeeds; False on 404 NOT_FOUND."""
    import pika
    conn = wt.pika_connect(addr)
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, "passive declare of %s: %r" % (queue, e)
        return False
    finally:
        if conn.is_open:
            conn.close()


def consumer(conn, queue, prefetch=0, auto_ack=True):
    """Starts a consumer of queue on a new channel of the pika connection conn; returns
    (channel, list that collects (method, properties, body) of each delivery)."""
    ch = conn.channel()
    if prefetch:
        ch.basic_qos(prefetch_count=prefetch)
    got = []
    ch.basic_consume(queue, lambda c, m, p, b: got.append((m, p, b)), auto_ack=auto_ack)
    return ch, got


def pump(conn, seconds):
    """Runs the pika connection's I/O for that long (deliveries go to their callbacks)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(0.05)


# The expiration property: accepted values, and the term of each refusal (after
# "PRECONDITION_FAILED - invalid expiration '<value>': ").
EXPIRATION_OK = ["0", "00", "01", "+1", "100000", "4294967296", "315360000000"]
EXPIRATION_BAD = [
    ("abc", "no_integer"),
    ("", "no_integer"),
    (" 1", "no_integer"),
    ("\u0663", "no_integer"),  # ARABIC-INDIC DIGIT THREE
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    ("1 ", '{leftover_string," "}'),
    ("1e3", '{leftover_string,"e3"}'),
    ("0x10", '{leftover_string,"x10"}'),
    ("315360000001", "{value_too_large,315360000001}"),
    ("1000000000000", "{value_too_large,1000000000000}"),
    ("18446744073709551616", "{value_too_large,18446744073709551616}"),
]


def test_expiration_validation():
    """expiration is a string of milliseconds: bad values close the channel with 406 and
    RabbitMQ's texts (no_integer, value_negative, leftover_string, value_too_large over ten
    years), also for an unroutable message; good ones are accepted"""
    import pika
    wt.name_pika_methods()
    q = "wt32-valid"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
            tag = 0
            for value in EXPIRATION_OK:
                wt.publish(c, 1, q, b"ok", props=props(expiration=value))
                tag += 1
                m = c.expect(wt.method_ids(pika.spec.Basic.Ack), channel=1)
                assert pika.spec.Basic.Ack().decode(m.args).delivery_tag == tag
            for value, term in EXPIRATION_BAD:
                for routing_key in (q, "wt32-nowhere"):
                    wt.publish(c, 1, routing_key, b"bad", props=props(expiration=value))
                    _, text, cls, meth = c.expect_channel_close(1, 406, ids=BASIC_PUBLISH)
                    prefix = "PRECONDITION_FAILED - invalid expiration '%s': " % value
                    assert text.startswith(prefix), "expiration %r: text %r" % (value, text)
                    got = re.sub(r",\s+", ",", text[len(prefix):])
                    assert got == term, "expiration %r: %r, expected %r" % (value, got, term)
                    wt.send_pika(c, 1, pika.spec.Channel.CloseOk())
                    c.open_channel(1)
            # An exchange that does not exist is reported first.
            wt.publish(c, 1, "k", b"bad", exchange="wt32-no-exchange",
                       props=props(expiration="abc"))
            c.expect_channel_close(1, 404, text="NOT_FOUND - no exchange 'wt32-no-exchange' in "
                                   "vhost '/'", ids=BASIC_PUBLISH)
        # Those accepted: all but the ones of 0 and 1 ms are still there.
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        wt.wait_until(lambda: wt.message_count(ch, q) == 3, 5,
                      "the messages of expiration 0, 00, 01 and +1 expired, 3 others left")
        conn.close()
        wt.cleanup(srv.addr, q)


def test_queue_ttl_without_consumer():
    """x-message-ttl: messages expire while nobody consumes (the message count drops to 0 by
    itself) and basic.get never returns them; fresh ones are still delivered"""
    q = "wt32-qttl"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        wt.fresh_queue(ch, q, arguments={"x-message-ttl": 200})
        wt.fill(conn, q, 5)
        assert wt.message_count(ch, q) == 5
        wt.wait_until(lambda: wt.message_count(ch, q) == 0, 5,
                      "5 messages with x-message-ttl 200 expire with nobody consuming")
        m, _, _ = ch.basic_get(q, auto_ack=True)
        assert m is None, "basic.get returned an expired message"
        wt.fill(conn, q, 1, prefix="fresh")
        assert wt.drain(ch, q) == [b"fresh0"]
        ch.queue_delete(q)
        conn.close()


def test_message_ttl_head_and_behind():
    """per-message expiration: at the head it expires with nobody consuming; behind a
    longer-lived head it may stay counted (RabbitMQ) but is never delivered"""
    q = "wt32-mttl"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        wt.fresh_queue(ch, q)
        ch.basic_publish("", q, b"short-1", props(expiration="100"))
        ch.basic_publish("", q, b"short-2", props(expiration="150"))
        wt.wait_until(lambda: wt.message_count(ch, q) == 0, 5,
                      "messages with expiration 100/150 at the head expire unconsumed")
        ch.basic_publish("", q, b"long", props(expiration="60000"))
        ch.basic_publish("", q, b"short", props(expiration="100"))
        time.sleep(0.5)
        n = wt.message_count(ch, q)
        wt.log("  message count with the short one expired behind the head: %d" % n)
        assert n in (1, 2), n
        m, p, body = ch.basic_get(q, auto_ack=True)
        assert body == b"long" and p.expiration == "60000", (body, p)
        assert m.message_count in (0, 1), m
        m, _, body = ch.basic_get(q, auto_ack=True)
        assert m is None, "the expired message behind the head was delivered: %r" % body
        assert wt.message_count(ch, q) == 0
        # Once the long-lived head is taken, the one behind expires when it is due, with no
        # further get (RabbitMQ looks at the head's expiry after each fetch).
        ch.basic_publish("", q, b"long", props(expiration="60000"))
        ch.basic_publish("", q, b"short", props(expiration="500"))
        m, _, body = ch.basic_get(q, auto_ack=True)
        assert body == b"long", body
        time.sleep(1)  # (nothing asked meanwhile: a passive declare would look at the head)
        assert wt.message_count(ch, q) == 0, "the message behind, now the head, not expired"
        ch.queue_delete(q)
        conn.close()


def test_lower_ttl_wins():
    """the lower of x-message-ttl and the message's expiration applies, either way round"""
    q = "wt32-lower"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        wt.fresh_queue(ch, q, arguments={"x-message-ttl": 60000})
        ch.basic_publish("", q, b"m", props(expiration="100"))
        wt.wait_until(lambda: wt.message_count(ch, q) == 0, 5,
                      "expiration 100 in a queue with x-message-ttl 60000")
        wt.fresh_queue(ch, q, arguments={"x-message-ttl": 100})
        ch.basic_publish("", q, b"m", props(expiration="60000"))
        wt.wait_until(lambda: wt.message_count(ch, q) == 0, 5,
                      "expiration 60000 in a queue with x-message-ttl 100")
        assert ch.basic_get(q)[0] is None
        ch.queue_delete(q)
        conn.close()


def test_expired_never_consumed():
    """a consumer with prefetch 1 holding a message: the others expire meanwhile and are not
    delivered when it acks; the one it holds does not expire under it"""
    q = "wt32-consume"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        conn.channel().queue_delete(q)
        conn.channel().queue_declare(q, arguments={"x-message-ttl": 300})
        ch, got = consumer(conn, q, prefetch=1, auto_ack=False)
        wt.fill(conn, q, 3)
        wt.wait_until(lambda: got, 5, "the first delivery", conns=[conn])
        pump(conn, 0.8)
        assert [b for _, _, b in got] == [b"m0"], [b for _, _, b in got]
        ch.basic_ack(got[0][0].delivery_tag)
        pump(conn, 0.5)
        assert [b for _, _, b in got] == [b"m0"], "expired messages were delivered: %r" % (
            [b for _, _, b in got],)
        assert wt.message_count(ch, q) == 0
        ch.queue_delete(q)
        conn.close()


def test_ttl_zero():
    """x-message-ttl 0 and expiration "0": delivered at once to a consumer that can take the
    message (one of three with prefetch 1), expired otherwise (basic.get finds nothing)"""
    q = "wt32-zero"
    with wt.server() as srv:
        for args, expiration in (({"x-message-ttl": 0}, None), ({}, "0")):
            wt.log("  queue arguments %r, expiration %r" % (args, expiration))
            conn = wt.pika_connect(srv.addr)
            ch = wt.confirm_channel(conn)
            wt.fresh_queue(ch, q, arguments=args)
            ch.basic_publish("", q, b"nobody", props(expiration=expiration))
            assert wt.message_count(ch, q) == 0
            assert ch.basic_get(q)[0] is None
            # Each consumer on a connection of its own.
            for prefetch, want in ((0, [b"c0", b"c1", b"c2"]), (1, [b"c0"])):
                cconn = wt.pika_connect(srv.addr)
                cch, got = consumer(cconn, q, prefetch=prefetch, auto_ack=False)
                for i in range(3):
                    ch.basic_publish("", q, b"c%d" % i, props(expiration=expiration))
                wt.wait_until(lambda: len(got) >= len(want), 5, "deliveries", conns=[cconn])
                pump(cconn, 0.3)
                assert [b for _, _, b in got] == want, "prefetch %d: got %r" % (
                    prefetch, [b for _, _, b in got])
                for _, p, _ in got:
                    assert p.expiration == expiration, p.expiration
                assert wt.message_count(ch, q) == 0
                cconn.close()
            # The unacked ones went back when the consumers' connections closed: expired.
            assert wt.message_count(ch, q) == 0
            ch.queue_delete(q)
            conn.close()


def test_dead_lettered_expired():
    """expired messages go to the dead-letter exchange with reason expired: the x-death
    entry (count, reason, queue, time, exchange, routing-keys with CC, original-expiration),
    x-first-death-*, the expiration removed, other properties and headers kept"""
    q, dlq, src, dlx = "wt32-dl", "wt32-dl-dlq", "wt32-dl-src", "wt32-dl-dlx"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q, dlq, exchanges=(src, dlx))
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.exchange_declare(dlx, "fanout")
        ch.exchange_declare(src, "direct")
        ch.queue_declare(dlq)
        ch.queue_bind(dlq, dlx)
        ch.queue_declare(q, arguments={"x-message-ttl": 200, "x-dead-letter-exchange": dlx})
        ch.queue_bind(q, src, "rk1")
        ch.basic_publish(src, "rk1", b"with-cc", props(
            headers={"CC": ["rk2"], "h": 1}, expiration="100000", delivery_mode=2,
            message_id="mid", timestamp=123))
        ch.basic_publish("", q, b"plain")
        wt.wait_until(lambda: wt.message_count(ch, dlq) == 2, 5, "2 messages dead-lettered")
        assert wt.message_count(ch, q) == 0
        m, p, body = ch.basic_get(dlq, auto_ack=True)
        assert body == b"with-cc", body
        assert (m.exchange, m.routing_key, m.redelivered) == (dlx, "rk1", False), m
        wt.check_dead_lettered(p, "expired", q, src, ["rk1", "rk2"],
                               original_expiration="100000")
        assert (p.delivery_mode, p.message_id, p.timestamp) == (2, "mid", 123), p
        assert p.headers["CC"] == ["rk2"] and p.headers["h"] == 1, p.headers
        m, p, body = ch.basic_get(dlq, auto_ack=True)
        assert body == b"plain" and (m.exchange, m.routing_key) == (dlx, q), (body, m)
        wt.check_dead_lettered(p, "expired", q, "", [q])
        # A per-message expiration in a queue without x-message-ttl: the same reason.
        ch.queue_delete(q)
        ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
        ch.basic_publish("", q, b"per-message", props(expiration="100"))
        wt.wait_until(lambda: wt.message_count(ch, dlq) == 1, 5, "dead-lettered")
        m, p, body = ch.basic_get(dlq, auto_ack=True)
        assert body == b"per-message", body
        wt.check_dead_lettered(p, "expired", q, "", [q], original_expiration="100")
        conn.close()
        wt.cleanup(srv.addr, q, dlq, exchanges=(src, dlx))


def requeue(conn, q, how, wait):
    """Takes the head of q by basic.get on a channel of its own of conn, waits `wait`
    seconds, and gives the message back by how: nack (requeue), close (the channel) or
    reject (nack without requeue)."""
    gch = conn.channel()
    m, _, _ = gch.basic_get(q)
    assert m is not None, "nothing in %s" % q
    time.sleep(wait)
    if how != "close":
        gch.basic_nack(m.delivery_tag, requeue=how == "nack")
    gch.close()


def test_requeue_keeps_expiry():
    """a delivered message requeued before its expiry (per message or per queue; by nack or
    by its channel closing) is back in the queue and still expires; requeued after it, it is
    gone at once and never delivered again"""
    q = "wt32-requeue"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        # (queue arguments, expiration): 1500 ms to be requeued in time, 200 ms too late.
        for early, late in ((({}, "1500"), ({}, "200")),
                            (({"x-message-ttl": 1500}, None), ({"x-message-ttl": 200}, None))):
            for how in ("nack", "close"):
                wt.log("  %r, requeued by %s" % (early, how))
                wt.fresh_queue(ch, q, arguments=early[0])
                ch.basic_publish("", q, b"early", props(expiration=early[1]))
                requeue(conn, q, how, 0)
                wt.wait_until(lambda: wt.message_count(ch, q) == 1, 1, "the message requeued")
                wt.wait_until(lambda: wt.message_count(ch, q) == 0, 5,
                              "the requeued message expires")
                assert ch.basic_get(q)[0] is None
                wt.fresh_queue(ch, q, arguments=late[0])
                ch.basic_publish("", q, b"late", props(expiration=late[1]))
                requeue(conn, q, how, 0.5)
                wt.wait_until(lambda: wt.message_count(ch, q) == 0, 1,
                              "requeued after its expiry, gone")
                assert ch.basic_get(q)[0] is None, "an expired requeued message was delivered"
        ch.queue_delete(q)
        conn.close()


def test_requeue_expired_dead_lettered():
    """requeued before its expiry and expiring in the queue, or requeued after it (nack,
    channel close), a message is dead-lettered with reason expired; rejected without requeue
    after its expiry, with reason rejected"""
    q, dlq = "wt32-requeue-dl", "wt32-requeue-dlq"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q, dlq)
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.queue_declare(dlq)
        ch.queue_declare(q, arguments={"x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": dlq})
        for body, expiration, how, wait, reason in (
                (b"early", "1500", "nack", 0, "expired"),
                (b"nack", "200", "nack", 0.5, "expired"),
                (b"close", "200", "close", 0.5, "expired"),
                (b"rejected", "200", "reject", 0.5, "rejected")):
            ch.basic_publish("", q, body, props(expiration=expiration))
            requeue(conn, q, how, wait)
            wt.wait_until(lambda: wt.message_count(ch, dlq) == 1, 5,
                          "%s: dead-lettered" % body.decode())
            assert ch.basic_get(q)[0] is None, "an expired requeued message was delivered"
            _, p, got = ch.basic_get(dlq, auto_ack=True)
            assert got == body, got
            wt.check_dead_lettered(p, reason, q, "", [q], original_expiration=expiration)
        conn.close()
        wt.cleanup(srv.addr, q, dlq)


def test_x_expires():
    """x-expires: an unused queue is deleted (messages in it do not keep it, nor do
    publishes or purges); a consumer, basic.get every so often or a redeclare keep it;
    after the consumer cancels it goes"""
    import pika
    q = "wt32-expires"
    args = {"x-expires": 400}
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare(q, arguments=args)
        ch.basic_publish("", q, b"inside")
        t0 = time.monotonic()
        wt.wait_until(lambda: not routable(srv.addr, q), 10,
                      "a queue with x-expires 400 and a message, published to, deleted")
        wt.log("  deleted %.2f s after its declare" % (time.monotonic() - t0))
        assert not exists(srv.addr, q)
        ch.queue_declare(q, arguments=args)
        purges = 0
        pch = conn.channel()
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                pch.queue_purge(q)
                purges += 1
                time.sleep(0.1)
            raise AssertionError("a queue purged every 0.1 s was kept for 5 s")
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404, e
        wt.log("  deleted after %d purges" % purges)

        ch.queue_declare(q, arguments=args)
        tag = ch.basic_consume(q, lambda *a: None)
        time.sleep(1.0)
        assert exists(srv.addr, q), "deleted while it had a consumer"
        ch.basic_cancel(tag)
        wt.wait_until(lambda: not routable(srv.addr, q), 10, "deleted after the cancel")

        for what in ("basic.get", "redeclare"):
            ch.queue_declare(q, arguments=args)
            for _ in range(8):
                time.sleep(0.15)
                if what == "basic.get":
                    ch.basic_get(q)
                else:
                    ch.queue_declare(q, arguments=args)
            assert exists(srv.addr, q), "deleted while used by %s every 0.15 s" % what
            wt.wait_until(lambda: not routable(srv.addr, q), 10,
                          "deleted when %s stopped" % what)
        conn.close()


@wt.needs_process
def test_x_expires_restart():
    """across a restart: a durable queue with x-expires is still deleted when unused after
    it; one with a long x-expires is still there; persistent messages in a durable queue
    with x-message-ttl still expire"""
    short, long_, ttl = "wt32-r-short", "wt32-r-long", "wt32-r-ttl"
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.queue_declare(short, durable=True, arguments={"x-expires": 1500})
        ch.queue_declare(long_, durable=True, arguments={"x-expires": 600000})
        ch.queue_declare(ttl, durable=True, arguments={"x-message-ttl": 1500})
        for i in range(3):
            ch.basic_publish("", ttl, b"p%d" % i, props(delivery_mode=2))
        conn.close()
        took = srv.restart()
        wt.log("  restarted in %.2f s" % took)
        t0 = time.monotonic()
        wt.wait_until(lambda: not routable(srv.addr, short), 15,
                      "the queue with x-expires 1500 deleted after the restart")
        wt.log("  x-expires 1500 queue gone %.2f s after the restart" % (time.monotonic() - t0))
        assert exists(srv.addr, long_), "the queue with x-expires 600000 is gone"
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        wt.wait_until(lambda: wt.message_count(ch, ttl) == 0, 15,
                      "persistent messages with x-message-ttl 1500 expire after the restart")
        assert ch.basic_get(ttl)[0] is None
        ch.queue_delete(long_)
        ch.queue_delete(ttl)
        conn.close()


def test_retry_with_delay():
    """the retry pattern (kombu): a work queue dead-letters rejected jobs to a wait queue
    whose x-message-ttl dead-letters them back; each lap adds to the x-death counts of both
    queues (latest first), x-first-death-* stay the first rejection"""
    import kombu
    work, wait = "wt32-work", "wt32-wait"
    with wt.server() as srv:
        wt.cleanup(srv.addr, work, wait)
        url = "amqp://guest:guest@%s:%d//" % srv.addr
        work_q = kombu.Queue(work, kombu.Exchange(""), routing_key=work, queue_arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": wait})
        wait_q = kombu.Queue(wait, kombu.Exchange(""), routing_key=wait, message_ttl=0.1,
                             queue_arguments={"x-dead-letter-exchange": "",
                                              "x-dead-letter-routing-key": work})
        laps = []
        with kombu.Connection(url, connect_timeout=5) as kconn:
            for qq in (work_q, wait_q):
                qq(kconn.default_channel).declare()

            def handle(body, message):
                laps.append((body, message.delivery_info["routing_key"],
                             message.properties.get("expiration"),
                             message.headers.get("x-death"), dict(message.headers)))
                deaths = message.headers.get("x-death") or []
                if not deaths or deaths[0]["count"] < 3:
                    message.reject()
                else:
                    message.ack()

            with kconn.Consumer(work_q, callbacks=[handle], accept=["json"]):
                kconn.Producer().publish("job", exchange="", routing_key=work,
                                         serializer="json", expiration=60)
                deadline = time.monotonic() + 20
                while len(laps) < 4:
                    assert time.monotonic() < deadline, "only %d laps in 20 s" % len(laps)
                    try:
                        kconn.drain_events(timeout=0.5)
                    except OSError:
                        pass
        assert laps[0][2] == "60000" and not laps[0][3], laps[0]
        for n, (body, key, expiration, deaths, headers) in enumerate(laps[1:], 1):
            wt.log("  lap %d: x-death %r" % (n, deaths))
            assert body == "job" and key == work and expiration is None, laps[n]
            assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
                (wait, "expired", n), (work, "rejected", n)], deaths
            assert deaths[0]["routing-keys"] == [wait] and deaths[0]["exchange"] == ""
            assert deaths[1]["routing-keys"] == [work] and deaths[1]["exchange"] == ""
            assert deaths[1]["original-expiration"] == "60000", deaths[1]
            assert "original-expiration" not in deaths[0], deaths[0]
            assert (headers["x-first-death-reason"], headers["x-first-death-queue"],
                    headers["x-first-death-exchange"]) == ("rejected", work, ""), headers
        wt.cleanup(srv.addr, work, wait)


if __name__ == "__main__":
    wt.run([test_expiration_validation, test_queue_ttl_without_consumer,
            test_message_ttl_head_and_behind, test_lower_ttl_wins, test_expired_never_consumed,
            test_ttl_zero, test_dead_lettered_expired, test_requeue_keeps_expiry,
            test_requeue_expired_dead_lettered, test_x_expires,
            test_x_expires_restart, test_retry_with_delay])
