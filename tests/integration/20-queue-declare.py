"""queue.declare, purge and delete, and queue ownership: server-named queues, passive
declares, equivalence checks on redeclare (406), the message and consumer counts in
declare-ok, purge-ok and delete-ok, exclusive queues (405 RESOURCE_LOCKED for every other
connection, deleted with their connection), auto-delete queues (deleted after their last
consumer goes, never before a first one), delete if-unused / if-empty, and the reserved
amq.* prefix. Checked against RabbitMQ 3.10.

Error cases use raw frames (pika's codec builds the methods) so that the reply code, the
reply text and the class/method ids named in channel.close are all checked; the flows use
pika. Queue names start with wt20- and each test deletes its queues first, so the file can
run repeatedly against one external broker."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.exceptions as pe  # noqa: E402
import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

Q = spec.Queue
B = spec.Basic

LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'."
          " It could be originally declared on another connection or the exclusive property"
          " value does not match that of the original declaration.")


# ---------------------------------------------------------------------------------------
# pika helpers


def exists(conn, name):
    """True if passive queue.declare finds name (on a fresh channel of conn), or finds it
    locked by another connection (405); False on 404 with RabbitMQ's text."""
    ch = conn.channel()
    try:
        ch.queue_declare(name, passive=True)
    except pe.ChannelClosedByBroker as e:
        if e.reply_code == 405:
            assert e.reply_text == LOCKED % name, e
            return True
        assert (e.reply_code, e.reply_text) == (
            404, "NOT_FOUND - no queue '%s' in vhost '/'" % name), e
        return False
    ch.close()
    return True


# ---------------------------------------------------------------------------------------
# Tests


def test_server_named():
    """queue.declare with an empty name -> amq.gen-<22 chars>, a new one each time; the
    channel remembers it: basic.get and queue.purge with an empty queue name use it; on a
    fresh channel an empty name -> 404 "no previously declared queue\""""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1, 2) as c:
            names = []
            for _ in range(3):
                ok = wt.call_pika(c, 1, Q.Declare(queue=""), Q.DeclareOk)
                assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", ok.queue), ok.queue
                assert (ok.message_count, ok.consumer_count) == (0, 0), ok
                names.append(ok.queue)
            assert len(set(names)) == 3, names
            wt.log("  server-named: %s" % ", ".join(names))
            # The last declared queue is the channel's default: publish to it, get it back.
            wt.publish(c, 1, names[-1], b"to-the-last")
            wt.call_pika(c, 1, spec.Basic.Qos(prefetch_count=0), spec.Basic.QosOk)  # a round trip
            wt.send_pika(c, 1, B.Get(queue="", no_ack=True))
            m = c.expect(wt.method_ids(B.GetOk), channel=1)
            ok = B.GetOk().decode(m.args)
            assert ok.routing_key == names[-1], ok
            c.read_frame()  # content header
            _, _, body = c.read_frame()
            assert body == b"to-the-last", body
            ok = wt.call_pika(c, 1, Q.Purge(queue=""), Q.PurgeOk)
            assert ok.message_count == 0, ok
            wt.log("  basic.get and queue.purge with queue '' used %s" % names[-1])
            # Channel 2 never declared a queue.
            wt.channel_refused(c, 2, B.Get(queue=""), 404,
                               "NOT_FOUND - no previously declared queue")
            wt.channel_refused(c, 2, B.Consume(queue=""), 404,
                               "NOT_FOUND - no previously declared queue")
            for n in names:
                wt.call_pika(c, 1, Q.Delete(queue=n), Q.DeleteOk)
            c.close_connection()


def test_passive_missing():
    """passive queue.declare of a missing queue -> 404 "NOT_FOUND - no queue 'x' in vhost
    '/'" (50, 10), also with nowait; the connection lives on; pika sees the same"""
    with wt.server() as srv:
        wt.cleanup(srv.addr, "wt20-missing")
        text = "NOT_FOUND - no queue 'wt20-missing' in vhost '/'"
        with wt.opened(srv.addr, 1) as c:
            wt.channel_refused(c, 1, Q.Declare(queue="wt20-missing", passive=True), 404, text)
            wt.channel_refused(c, 1, Q.Declare(queue="wt20-missing", passive=True, nowait=True),
                               404, text)
            # Passive ignores every other flag and argument of an existing queue.
            wt.call_pika(c, 1, Q.Declare(queue="wt20-missing"), Q.DeclareOk)
            ok = wt.call_pika(c, 1, Q.Declare(queue="wt20-missing", passive=True, durable=True,
                                              exclusive=True, auto_delete=True,
                                              arguments={"x-max-length": 3}), Q.DeclareOk)
            assert ok.queue == "wt20-missing", ok
            wt.log("  passive declare with other flags and args on an existing queue: ok")
            wt.call_pika(c, 1, Q.Delete(queue="wt20-missing"), Q.DeleteOk)
            c.close_connection()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        try:
            ch.queue_declare("wt20-missing", passive=True)
            raise AssertionError("passive declare of a missing queue succeeded")
        except pe.ChannelClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (404, text), e
        assert conn.is_open
        conn.close()


def test_redeclare_inequivalent():
    """redeclare with other durable / auto_delete / x-args -> 406 "PRECONDITION_FAILED -
    inequivalent arg ..." (50, 10) in RabbitMQ's wording; with other exclusive -> 405;
    an equivalent redeclare is fine"""
    q = "wt20-redeclare"

    def ineq(arg, received, current):
        return ("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': "
                "received %s but current is %s" % (arg, q, received, current))

    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, Q.Declare(queue=q, arguments={"x-max-length": 10}), Q.DeclareOk)
            ok = wt.call_pika(c, 1, Q.Declare(queue=q, arguments={"x-max-length": 10}), Q.DeclareOk)
            assert ok.queue == q
            wt.log("  equivalent redeclare: declare-ok")
            wt.channel_refused(c, 1,
                               Q.Declare(queue=q, durable=True, arguments={"x-max-length": 10}),
                               406, ineq("durable", "'true'", "'false'"))
            wt.channel_refused(c, 1, Q.Declare(queue=q, auto_delete=True,
                                               arguments={"x-max-length": 10}),
                               406, ineq("auto_delete", "'true'", "'false'"))
            wt.channel_refused(c, 1, Q.Declare(queue=q, arguments={"x-max-length": 11}),
                               406, ineq("x-max-length", "'11'", "'10'"))
            wt.channel_refused(c, 1, Q.Declare(queue=q), 406,
                               ineq("x-max-length", "none", "the value '10' of type 'signedint'"))
            # Exclusivity is checked before equivalence: 405 even from the same connection.
            wt.channel_refused(c, 1,
                               Q.Declare(queue=q, exclusive=True, arguments={"x-max-length": 10}),
                               405, LOCKED % q)
            wt.channel_refused(c, 1, Q.Declare(queue=q, exclusive=True, durable=True),
                               405, LOCKED % q)
            wt.call_pika(c, 1, Q.Delete(queue=q), Q.DeleteOk)
            # The other way round: no args now, some on redeclare.
            wt.call_pika(c, 1, Q.Declare(queue=q), Q.DeclareOk)
            wt.channel_refused(c, 1, Q.Declare(queue=q, arguments={"x-max-length": 10}), 406,
                               ineq("x-max-length", "the value '10' of type 'signedint'", "none"))
            wt.channel_refused(c, 1, Q.Declare(queue=q, arguments={"x-message-ttl": 1000}), 406,
                               ineq("x-message-ttl", "the value '1000' of type 'signedint'",
                                    "none"))
            wt.call_pika(c, 1, Q.Delete(queue=q), Q.DeleteOk)
            c.close_connection()


def test_redeclare_unknown_args_ignored():
    """arguments RabbitMQ does not know (x-foo) are not compared on redeclare"""
    q = "wt20-unknown-args"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, Q.Declare(queue=q, arguments={"x-foo": 1}), Q.DeclareOk)
            wt.call_pika(c, 1, Q.Declare(queue=q, arguments={"x-foo": 2}), Q.DeclareOk)
            wt.call_pika(c, 1, Q.Declare(queue=q), Q.DeclareOk)
            wt.call_pika(c, 1, Q.Declare(queue=q, arguments={"bar": "x"}), Q.DeclareOk)
            wt.log("  x-foo 1, x-foo 2, none, bar: all declare-ok")
            wt.call_pika(c, 1, Q.Delete(queue=q), Q.DeleteOk)
            c.close_connection()


def test_counts():
    """declare-ok counts ready messages and consumers (unacked messages are not counted);
    purge-ok and delete-ok count the ready messages they removed"""
    q = "wt20-counts"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ok = ch.queue_declare(q).method
        assert (ok.message_count, ok.consumer_count) == (0, 0), ok
        wt.publish_confirmed(ch, q, 5)
        ok = ch.queue_declare(q).method
        assert (ok.message_count, ok.consumer_count) == (5, 0), ok
        ok = ch.queue_declare(q, passive=True).method
        assert (ok.message_count, ok.consumer_count) == (5, 0), ok
        wt.log("  5 published: declare-ok message_count 5, consumer_count 0")
        # Two consumers with prefetch 1 each hold one unacked message.
        cons = conn.channel()
        cons.basic_qos(prefetch_count=1)
        got = []
        cons.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag), consumer_tag="a")
        cons.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag), consumer_tag="b")
        wt.wait_until(lambda: (conn.process_data_events(0.05), len(got) == 2)[1], 5,
                      "2 deliveries to 2 consumers with prefetch 1")
        ok = ch.queue_declare(q, passive=True).method
        assert (ok.message_count, ok.consumer_count) == (3, 2), ok
        wt.log("  2 consumers, 2 unacked: message_count 3, consumer_count 2")
        # Purge takes the 3 ready ones; the 2 unacked come back when the channel closes.
        ok = ch.queue_purge(q).method
        assert ok.message_count == 3, ok
        cons.close()
        wt.wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 2, 5,
                      "2 unacked messages requeued when their channel closed")
        ok = ch.queue_declare(q, passive=True).method
        assert ok.consumer_count == 0, ok
        ok = ch.queue_purge(q).method
        assert ok.message_count == 2, ok
        ok = ch.queue_purge(q).method
        assert ok.message_count == 0, ok
        wt.log("  purge-ok 3 (ready only), then 2 (requeued), then 0")
        wt.publish_confirmed(ch, q, 4)
        ok = ch.queue_delete(q).method
        assert ok.message_count == 4, ok
        wt.log("  delete-ok message_count 4")
        conn.close()


def test_delete_with_unacked():
    """delete-ok's message_count leaves out the unacked messages"""
    q = "wt20-delete-unacked"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.queue_declare(q)
        wt.publish_confirmed(ch, q, 5)
        cons = conn.channel()
        cons.basic_qos(prefetch_count=2)
        got = []
        cons.basic_consume(q, lambda c, m, p, b: got.append(b))
        wt.wait_until(lambda: (conn.process_data_events(0.05), len(got) == 2)[1], 5,
                      "2 deliveries with prefetch 2")
        ok = ch.queue_delete(q).method
        assert ok.message_count == 3, ok
        wt.log("  5 messages, 2 unacked: delete-ok message_count 3")
        conn.close()


def test_delete_if_unused_if_empty():
    """queue.delete if-unused with a consumer -> 406 "... in use"; if-empty with messages ->
    406 "... not empty" (50, 40); both succeed once the condition holds"""
    q = "wt20-delete-if"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.queue_declare(q)
        wt.publish_confirmed(ch, q, 2)
        with wt.opened(srv.addr, 1) as c:
            wt.channel_refused(c, 1, Q.Delete(queue=q, if_empty=True), 406,
                               "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q)
            cons = conn.channel()
            cons.basic_consume(q, lambda *a: None, auto_ack=True, consumer_tag="c1")
            wt.channel_refused(c, 1, Q.Delete(queue=q, if_unused=True), 406,
                               "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q)
            cons.basic_cancel("c1")
            # The consumer (no-ack) emptied the queue.
            wt.wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 0, 5,
                          "the no-ack consumer drained the queue")
            ok = wt.call_pika(c, 1, Q.Delete(queue=q, if_unused=True, if_empty=True), Q.DeleteOk)
            assert ok.message_count == 0, ok
            wt.log("  if-unused + if-empty on an idle empty queue: delete-ok")
            c.close_connection()
        assert not exists(conn, q)
        conn.close()


def test_delete_missing():
    """queue.delete of a missing queue -> delete-ok message_count 0 (RabbitMQ 3.10:
    idempotent), also with if-unused and if-empty"""
    with wt.server() as srv:
        wt.cleanup(srv.addr, "wt20-never")
        with wt.opened(srv.addr, 1) as c:
            for m in (Q.Delete(queue="wt20-never"),
                      Q.Delete(queue="wt20-never", if_unused=True, if_empty=True)):
                ok = wt.call_pika(c, 1, m, Q.DeleteOk)
                assert ok.message_count == 0, ok
            wt.log("  delete-ok message_count 0, twice")
            c.close_connection()


def test_reserved_prefix():
    """queue.declare 'amq.x' -> 403 "ACCESS_REFUSED - queue name 'amq.x' contains reserved
    prefix 'amq.*'" (50, 10); passive 'amq.x' -> 404"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            for name in ("amq.x", "amq.gen-wt20"):
                wt.channel_refused(c, 1, Q.Declare(queue=name), 403,
                                   "ACCESS_REFUSED - queue name '%s' contains reserved prefix "
                                   "'amq.*'" % name)
            wt.channel_refused(c, 1, Q.Declare(queue="amq.x", passive=True), 404,
                               "NOT_FOUND - no queue 'amq.x' in vhost '/'")
            # Only the prefix "amq." is reserved.
            wt.call_pika(c, 1, Q.Declare(queue="amqx-wt20"), Q.DeclareOk)
            wt.call_pika(c, 1, Q.Delete(queue="amqx-wt20"), Q.DeleteOk)
            c.close_connection()


def test_exclusive_locked():
    """an exclusive queue used from another connection -> 405 RESOURCE_LOCKED for declare,
    passive declare, basic.consume, basic.get, queue.bind, queue.purge, queue.delete (with the
    method's ids); unbind of a binding that does not exist is unbind-ok; the owner's other
    channels may use it"""
    q = "wt20-exclusive"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        owner = wt.opened(srv.addr, 1, 2)
        wt.call_pika(owner, 1, Q.Declare(queue=q, exclusive=True), Q.DeclareOk)
        wt.call_pika(owner, 1, Q.Bind(queue=q, exchange="amq.direct", routing_key="bound"),
                     Q.BindOk)
        with wt.opened(srv.addr, 1) as c:
            for m in (Q.Declare(queue=q), Q.Declare(queue=q, exclusive=True),
                      Q.Declare(queue=q, durable=True), Q.Declare(queue=q, passive=True),
                      B.Consume(queue=q), B.Get(queue=q),
                      Q.Bind(queue=q, exchange="amq.direct", routing_key="k"),
                      Q.Purge(queue=q), Q.Delete(queue=q),
                      Q.Delete(queue=q, if_unused=True, if_empty=True)):
                wt.channel_refused(c, 1, m, 405, LOCKED % q)
            wt.log("  405 for declare (3 ways), passive, consume, get, bind, purge, delete (2)")
            wt.call_pika(c, 1, Q.Unbind(queue=q, exchange="amq.direct", routing_key="k"),
                         Q.UnbindOk)
            wt.log("  unbind of a binding that does not exist: unbind-ok")
            c.close_connection()
        # The owner, on another channel: get, purge, passive declare all work.
        wt.call_pika(owner, 2, B.Get(queue=q), B.GetEmpty)
        wt.call_pika(owner, 2, Q.Purge(queue=q), Q.PurgeOk)
        wt.call_pika(owner, 2, Q.Declare(queue=q, passive=True), Q.DeclareOk)
        wt.call_pika(owner, 2, Q.Declare(queue=q, exclusive=True), Q.DeclareOk)
        # Redeclaring without exclusive is refused even for the owner.
        wt.channel_refused(owner, 2, Q.Declare(queue=q), 405, LOCKED % q)
        wt.log("  owner on channel 2: get-empty, purge-ok, declare-ok; non-exclusive -> 405")
        owner.close_connection()


def test_exclusive_unbind_existing():
    """another connection's queue.unbind of an existing binding of an exclusive queue ->
    405 (50, 50)"""
    q = "wt20-exclusive-unbind"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        with wt.opened(srv.addr, 1) as owner, wt.opened(srv.addr, 1) as c:
            wt.call_pika(owner, 1, Q.Declare(queue=q, exclusive=True), Q.DeclareOk)
            wt.call_pika(owner, 1, Q.Bind(queue=q, exchange="amq.direct", routing_key="k"),
                         Q.BindOk)
            wt.channel_refused(c, 1, Q.Unbind(queue=q, exchange="amq.direct", routing_key="k"), 405,
                               LOCKED % q)
            c.close_connection()
            owner.close_connection()


def test_exclusive_deleted_with_connection():
    """an exclusive queue goes when its connection closes: cleanly (connection.close) or by
    dropping the socket; its messages go with it"""
    with wt.server() as srv:
        watcher = wt.pika_connect(srv.addr)
        for how in ("connection.close", "socket dropped"):
            q = "wt20-excl-gone"
            wt.cleanup(srv.addr, q)
            c = wt.opened(srv.addr, 1)
            wt.call_pika(c, 1, Q.Declare(queue=q, exclusive=True), Q.DeclareOk)
            wt.publish(c, 1, q, b"dies with the queue")
            wt.call_pika(c, 1, Q.Declare(queue=q, passive=True), Q.DeclareOk)  # a round trip
            assert exists(watcher, q)
            if how == "connection.close":
                c.close_connection()
            else:
                c.close()
            wt.wait_until(lambda: not exists(watcher, q), 5,
                          "exclusive queue deleted after %s" % how)
            wt.log("  %s: exclusive queue deleted" % how)
        # A new exclusive queue of that name can be declared by anyone now.
        ch = watcher.channel()
        ok = ch.queue_declare(q, exclusive=True).method
        assert ok.message_count == 0, ok
        watcher.close()


def test_auto_delete():
    """an auto-delete queue stays while it never had a consumer; it stays when one of two
    consumers cancels, and goes when the last one cancels; also when the last consumer's
    channel closes"""
    q = "wt20-auto-delete"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare(q, auto_delete=True)
        ch.basic_get(q)
        time.sleep(0.5)
        assert exists(conn, q), "auto-delete queue deleted before it ever had a consumer"
        wt.log("  no consumer yet (and a basic.get): still there after 0.5 s")
        ch.basic_consume(q, lambda *a: None, consumer_tag="a")
        ch.basic_consume(q, lambda *a: None, consumer_tag="b")
        ch.basic_cancel("a")
        time.sleep(0.3)
        assert exists(conn, q), "auto-delete queue deleted while a consumer was left"
        wt.log("  1 of 2 consumers cancelled: still there")
        ch.basic_cancel("b")
        wt.wait_until(lambda: not exists(conn, q), 5, "auto-delete queue deleted after its last "
                      "consumer cancelled")
        wt.log("  last consumer cancelled: deleted")
        # Again, the last consumer goes with its channel.
        ch.queue_declare(q, auto_delete=True)
        ch2 = conn.channel()
        ch2.basic_consume(q, lambda *a: None)
        ch2.close()
        wt.wait_until(lambda: not exists(conn, q), 5, "auto-delete queue deleted after its last "
                      "consumer's channel closed")
        wt.log("  last consumer's channel closed: deleted")
        conn.close()


if __name__ == "__main__":
    wt.run([test_server_named, test_passive_missing, test_redeclare_inequivalent,
            test_redeclare_unknown_args_ignored, test_counts, test_delete_with_unacked,
            test_delete_if_unused_if_empty, test_delete_missing, test_reserved_prefix,
            test_exclusive_locked, test_exclusive_unbind_existing,
            test_exclusive_deleted_with_connection, test_auto_delete])
