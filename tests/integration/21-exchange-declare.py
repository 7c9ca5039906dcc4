"""exchange.declare/delete/bind/unbind: the four exchange types, passive declares,
equivalence checks on redeclare (406), the reserved amq.* prefix (403) and the predeclared
exchanges, unknown types (503, a connection exception), delete if-unused, internal
exchanges, the default exchange (403 for every operation on it), exchange-to-exchange
bindings (messages flow through, cycles deliver once per queue) and alternate exchanges.
Checked against RabbitMQ 3.10.

Error cases use raw frames (pika's codec builds the methods), so the reply code, text and
the class/method ids in the close are checked; message flows use pika with publisher
confirms, so a basic.get right after a publish sees the message. Names start with wt21-
and each test deletes its own first, so the file reruns against one external broker."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.exceptions as pe  # noqa: E402
import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

Q = spec.Queue
E = spec.Exchange
B = spec.Basic

DEFAULT_EXCHANGE = "ACCESS_REFUSED - operation not permitted on the default exchange"


# ---------------------------------------------------------------------------------------
# Tests


def test_declare_each_type():
    """exchange.declare of direct, fanout, topic and headers -> declare-ok; redeclare and
    passive declare -> declare-ok; delete -> delete-ok; then passive -> 404 (40, 10)"""
    types = ("direct", "fanout", "topic", "headers")
    with wt.server() as srv:
        wt.cleanup(srv.addr, exchanges=["wt21-" + t for t in types])
        with wt.opened(srv.addr, 1) as c:
            for t in types:
                name = "wt21-" + t
                wt.call_pika(c, 1, E.Declare(exchange=name, type=t), E.DeclareOk)
                wt.call_pika(c, 1, E.Declare(exchange=name, type=t), E.DeclareOk)
                wt.call_pika(c, 1, E.Declare(exchange=name, type=t, passive=True), E.DeclareOk)
                wt.call_pika(c, 1, E.Declare(exchange=name, type=t, durable=True, auto_delete=True,
                                             passive=True), E.DeclareOk)
                wt.call_pika(c, 1, E.Delete(exchange=name), E.DeleteOk)
                wt.channel_refused(c, 1, E.Declare(exchange=name, type=t, passive=True), 404,
                                   "NOT_FOUND - no exchange '%s' in vhost '/'" % name)
                wt.log("  %s: declare, redeclare, passive, delete, passive -> 404" % t)
            c.close_connection()


def test_redeclare_inequivalent():
    """redeclare with another type / durable / auto_delete / internal / arguments -> 406
    "PRECONDITION_FAILED - inequivalent arg ..." (40, 10); passive ignores the type"""
    e = "wt21-redeclare"

    def ineq(arg, received, current):
        return ("PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%s' in vhost '/': "
                "received %s but current is %s" % (arg, e, received, current))

    with wt.server() as srv:
        wt.cleanup(srv.addr, exchanges=[e])
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, E.Declare(exchange=e, type="direct"), E.DeclareOk)
            wt.channel_refused(c, 1, E.Declare(exchange=e, type="fanout"), 406,
                               ineq("type", "'fanout'", "'direct'"))
            wt.channel_refused(c, 1, E.Declare(exchange=e, type="direct", durable=True), 406,
                               ineq("durable", "'true'", "'false'"))
            wt.channel_refused(c, 1, E.Declare(exchange=e, type="direct", auto_delete=True), 406,
                               ineq("auto_delete", "'true'", "'false'"))
            wt.channel_refused(c, 1, E.Declare(exchange=e, type="direct", internal=True), 406,
                               ineq("internal", "'true'", "'false'"))
            wt.channel_refused(c, 1, E.Declare(exchange=e, type="direct",
                                               arguments={"alternate-exchange": "x"}), 406,
                               ineq("alternate-exchange", "the value 'x' of type 'longstr'",
                                    "none"))
            wt.call_pika(c, 1, E.Declare(exchange=e, type="fanout", passive=True), E.DeclareOk)
            wt.log("  passive declare with another type: declare-ok")
            wt.call_pika(c, 1, E.Delete(exchange=e), E.DeleteOk)
            c.close_connection()


def test_reserved_prefix_and_predeclared():
    """amq.direct, amq.fanout, amq.topic, amq.headers and amq.match exist (durable, of their
    type: an equivalent redeclare is declare-ok, another type -> 406); declaring a new
    amq.* exchange -> 403 "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix
    'amq.*'"; deleting amq.direct -> 403"""
    predeclared = {"amq.direct": "direct", "amq.fanout": "fanout", "amq.topic": "topic",
                   "amq.headers": "headers", "amq.match": "headers"}
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            for name, t in predeclared.items():
                wt.call_pika(c, 1, E.Declare(exchange=name, type=t, passive=True), E.DeclareOk)
                wt.call_pika(c, 1, E.Declare(exchange=name, type=t, durable=True), E.DeclareOk)
                other = "fanout" if t != "fanout" else "direct"
                wt.channel_refused(c, 1, E.Declare(exchange=name, type=other, durable=True), 406,
                                   "PRECONDITION_FAILED - inequivalent arg 'type' for exchange "
                                   "'%s' in vhost '/': received '%s' but current is '%s'" % (
                                       name, other, t))
                wt.log("  %s: exists, durable %s" % (name, t))
            wt.channel_refused(c, 1, E.Declare(exchange="amq.direct", type="direct"), 406,
                               "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange "
                               "'amq.direct' in vhost '/': received 'false' but current is 'true'")
            wt.channel_refused(c, 1, E.Declare(exchange="amq.foo", type="direct"), 403,
                               "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved "
                               "prefix 'amq.*'")
            wt.channel_refused(c, 1, E.Declare(exchange="amq.foo", type="direct", passive=True),
                               404, "NOT_FOUND - no exchange 'amq.foo' in vhost '/'")
            for m in (E.Delete(exchange="amq.direct"),
                      E.Delete(exchange="amq.direct", if_unused=True)):
                wt.channel_refused(c, 1, m, 403, "ACCESS_REFUSED - deletion of system exchange "
                                   "'amq.direct' in vhost '/' not allowed")
            wt.call_pika(c, 1, E.Declare(exchange="amq.direct", type="direct", passive=True),
                         E.DeclareOk)
            c.close_connection()


def test_unknown_type():
    """exchange.declare with an unknown type -> connection.close 503 "COMMAND_INVALID -
    unknown exchange type 'x-wt21-no-such-type'" (40, 10)"""
    with wt.server() as srv:
        # (RabbitMQ says "invalid exchange type 'foo'" for names that happen to be atoms of
        # its Erlang VM, such as foo: a name no Erlang code uses gets the general wording.)
        for t in ("x-wt21-no-such-type", "Direct"):
            with wt.opened(srv.addr, 1) as c:
                wt.send_pika(c, 1, E.Declare(exchange="wt21-unknown-type", type=t))
                c.expect_connection_close(
                    503, text="COMMAND_INVALID - unknown exchange type '%s'" % t,
                    ids=wt.method_ids(E.Declare))
        wt.assert_serves(srv.addr)


def test_delete_if_unused_and_missing():
    """exchange.delete if-unused with a queue bound, or as the source of an e2e binding ->
    406 "... in use" (40, 20); as a destination only it is unused; delete of a missing
    exchange -> delete-ok (idempotent)"""
    src, dst, q = "wt21-del-src", "wt21-del-dst", "wt21-del-q"
    in_use = "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q, exchanges=[src, dst])
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, E.Declare(exchange=src, type="direct"), E.DeclareOk)
            wt.call_pika(c, 1, E.Declare(exchange=dst, type="fanout"), E.DeclareOk)
            wt.call_pika(c, 1, Q.Declare(queue=q), Q.DeclareOk)
            wt.call_pika(c, 1, Q.Bind(queue=q, exchange=src, routing_key="k"), Q.BindOk)
            wt.channel_refused(c, 1, E.Delete(exchange=src, if_unused=True), 406, in_use % src)
            wt.call_pika(c, 1, Q.Unbind(queue=q, exchange=src, routing_key="k"), Q.UnbindOk)
            wt.call_pika(c, 1, E.Bind(destination=dst, source=src, routing_key="k"), E.BindOk)
            wt.channel_refused(c, 1, E.Delete(exchange=src, if_unused=True), 406, in_use % src)
            wt.log("  source of a queue binding, of an e2e binding: 406 in use")
            wt.call_pika(c, 1, E.Delete(exchange=dst, if_unused=True), E.DeleteOk)
            wt.log("  destination of an e2e binding only: delete-ok")
            wt.call_pika(c, 1, E.Delete(exchange=src, if_unused=True), E.DeleteOk)
            for m in (E.Delete(exchange=src), E.Delete(exchange="wt21-never", if_unused=True)):
                wt.call_pika(c, 1, m, E.DeleteOk)
            wt.log("  delete of missing exchanges: delete-ok")
            wt.call_pika(c, 1, Q.Delete(queue=q), Q.DeleteOk)
            c.close_connection()


def test_internal_exchange():
    """basic.publish to an internal exchange -> 403 "ACCESS_REFUSED - cannot publish to
    internal exchange 'e' in vhost '/'" (60, 40); messages reach it through an e2e binding"""
    e, front, q = "wt21-internal", "wt21-internal-front", "wt21-internal-q"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q, exchanges=[e, front])
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.exchange_declare(e, "fanout", internal=True)
        ch.exchange_declare(front, "fanout")
        ch.queue_declare(q)
        ch.queue_bind(q, e)
        ch.exchange_bind(destination=e, source=front)
        ch.basic_publish(front, "", b"via the front exchange")
        assert wt.drain(ch, q) == [b"via the front exchange"]
        wt.log("  front -> internal -> queue: delivered")
        with wt.opened(srv.addr, 1) as c:
            wt.publish(c, 1, "", b"direct to internal", exchange=e)
            c.expect_channel_close(1, 403, text="ACCESS_REFUSED - cannot publish to internal "
                                   "exchange '%s' in vhost '/'" % e, ids=wt.method_ids(B.Publish))
            wt.send_pika(c, 1, spec.Channel.CloseOk())
            c.open_channel(1)
            c.close_connection()
        try:
            ch.basic_publish(e, "", b"pika to internal")
            raise AssertionError("publish to an internal exchange was confirmed")
        except pe.ChannelClosedByBroker as err:
            assert err.reply_code == 403, err
        ch = conn.channel()
        assert wt.drain(ch, q) == []
        ch.exchange_delete(front)
        ch.exchange_delete(e)
        ch.queue_delete(q)
        conn.close()


def test_default_exchange_refused():
    """the default exchange "": declare (also passive), delete, queue.bind/unbind,
    exchange.bind/unbind with it as source or destination -> 403 "ACCESS_REFUSED -
    operation not permitted on the default exchange" with each method's ids"""
    q = "wt21-default"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q, exchanges=["wt21-default-e"])
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, Q.Declare(queue=q), Q.DeclareOk)
            wt.call_pika(c, 1, E.Declare(exchange="wt21-default-e", type="direct"), E.DeclareOk)
            for m in (E.Declare(exchange="", type="direct"),
                      E.Declare(exchange="", type="direct", passive=True),
                      E.Delete(exchange=""),
                      Q.Bind(queue=q, exchange="", routing_key="k"),
                      Q.Unbind(queue=q, exchange="", routing_key=q),
                      E.Bind(destination="", source="wt21-default-e", routing_key="k"),
                      E.Bind(destination="wt21-default-e", source="", routing_key="k"),
                      E.Unbind(destination="wt21-default-e", source="", routing_key="k")):
                wt.channel_refused(c, 1, m, 403, DEFAULT_EXCHANGE)
            wt.log("  403 for declare, passive declare, delete, queue.bind, queue.unbind, "
                   "exchange.bind (both ways), exchange.unbind")
            wt.call_pika(c, 1, Q.Delete(queue=q), Q.DeleteOk)
            wt.call_pika(c, 1, E.Delete(exchange="wt21-default-e"), E.DeleteOk)
            c.close_connection()


def test_bind_missing():
    """queue.bind and exchange.bind naming a missing queue or exchange -> 404 with the
    method's ids; queue.unbind and exchange.unbind of missing things -> unbind-ok"""
    with wt.server() as srv:
        wt.cleanup(srv.addr, "wt21-nq", exchanges=["wt21-nx"])
        nq, nx = "NOT_FOUND - no queue 'wt21-nq' in vhost '/'", \
            "NOT_FOUND - no exchange 'wt21-nx' in vhost '/'"
        with wt.opened(srv.addr, 1) as c:
            wt.channel_refused(c, 1,
                               Q.Bind(queue="wt21-nq", exchange="amq.direct", routing_key="k"),
                               404, nq)
            wt.call_pika(c, 1, Q.Declare(queue="wt21-nq"), Q.DeclareOk)
            wt.channel_refused(c, 1, Q.Bind(queue="wt21-nq", exchange="wt21-nx", routing_key="k"),
                               404, nx)
            wt.channel_refused(c, 1,
                               E.Bind(destination="wt21-nx", source="amq.direct", routing_key="k"),
                               404, nx)
            wt.channel_refused(c, 1,
                               E.Bind(destination="amq.fanout", source="wt21-nx", routing_key="k"),
                               404, nx)
            wt.call_pika(c, 1, Q.Unbind(queue="wt21-nq", exchange="wt21-nx", routing_key="k"),
                         Q.UnbindOk)
            wt.call_pika(c, 1,
                         Q.Unbind(queue="wt21-nq", exchange="amq.direct", routing_key="never"),
                         Q.UnbindOk)
            wt.call_pika(c, 1,
                         E.Unbind(destination="wt21-nx", source="amq.direct", routing_key="k"),
                         E.UnbindOk)
            wt.call_pika(c, 1, Q.Delete(queue="wt21-nq"), Q.DeleteOk)
            wt.call_pika(c, 1, Q.Unbind(queue="wt21-nq", exchange="amq.direct", routing_key="k"),
                         Q.UnbindOk)
            wt.log("  unbind of missing bindings, queues, exchanges: unbind-ok")
            c.close_connection()


def test_exchange_to_exchange():
    """exchange.bind: a message published to a direct source reaches the queues of a fanout
    destination bound with the matching key, and a topic destination filters further;
    after exchange.unbind it no longer does"""
    src, fan, top = "wt21-e2e-src", "wt21-e2e-fan", "wt21-e2e-topic"
    q1, q2 = "wt21-e2e-q1", "wt21-e2e-q2"
    with wt.server() as srv:
        wt.cleanup(srv.addr, q1, q2, exchanges=[src, fan, top])
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.exchange_declare(src, "direct")
        ch.exchange_declare(fan, "fanout")
        ch.exchange_declare(top, "topic")
        ch.queue_declare(q1)
        ch.queue_declare(q2)
        ch.queue_bind(q1, fan)
        ch.queue_bind(q2, top, "a.*")
        ch.exchange_bind(destination=fan, source=src, routing_key="a.b")
        ch.exchange_bind(destination=top, source=src, routing_key="a.b")
        ch.exchange_bind(destination=top, source=src, routing_key="a.b.c")
        ch.basic_publish(src, "a.b", b"one")
        ch.basic_publish(src, "a.b.c", b"two")   # only top gets it; a.* does not match
        ch.basic_publish(src, "x", b"three")     # no e2e binding matches
        assert wt.drain(ch, q1) == [b"one"], "fanout destination"
        assert wt.drain(ch, q2) == [b"one"], "topic destination"
        wt.log("  direct -> fanout -> q1 and direct -> topic(a.*) -> q2: 'one' once in each")
        ch.exchange_unbind(destination=fan, source=src, routing_key="a.b")
        ch.basic_publish(src, "a.b", b"four")
        assert wt.drain(ch, q1) == [], "still routed after exchange.unbind"
        assert wt.drain(ch, q2) == [b"four"]
        wt.log("  after unbind: q1 gets nothing, q2 still gets it")
        # Deleting the destination removes the binding from the source.
        ch.exchange_delete(top)
        ch.basic_publish(src, "a.b", b"five")
        assert wt.drain(ch, q2) == []
        ch.exchange_delete(src)
        ch.exchange_delete(fan)
        ch.queue_delete(q1)
        ch.queue_delete(q2)
        conn.close()


def test_exchange_cycle():
    """a cycle of e2e bindings (a -> b -> c -> a, fanout) terminates: a message published
    to any of them arrives exactly once in each exchange's queue"""
    xs = ["wt21-cycle-a", "wt21-cycle-b", "wt21-cycle-c"]
    qs = [x + "-q" for x in xs]
    with wt.server() as srv:
        wt.cleanup(srv.addr, *qs, exchanges=xs)
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        for x, q in zip(xs, qs):
            ch.exchange_declare(x, "fanout")
            ch.queue_declare(q)
            ch.queue_bind(q, x)
        for i, x in enumerate(xs):
            ch.exchange_bind(destination=xs[(i + 1) % 3], source=x)
        # And a self-loop on a.
        ch.exchange_bind(destination=xs[0], source=xs[0], routing_key="self")
        for x in xs:
            body = ("to " + x).encode()
            ch.basic_publish(x, "self", body)
            for q in qs:
                assert wt.drain(ch, q) == [body], "%s after publishing to %s" % (q, x)
        wt.log("  published to each of a, b, c: once in each of the 3 queues")
        for x in xs:
            ch.exchange_delete(x)
        for q in qs:
            ch.queue_delete(q)
        conn.close()


def test_alternate_exchange():
    """an exchange with alternate-exchange: unroutable messages go to the AE (a mandatory
    publish is not returned); routable ones do not; an AE that is missing or does not
    route -> basic.return 312 NO_ROUTE; an AE loop terminates; a non-string AE argument
    -> 406 "invalid type 'signedint' for arg 'alternate-exchange' ..." (40, 10)"""
    main, ae, bad, loop1, loop2 = ("wt21-ae-main", "wt21-ae", "wt21-ae-bad", "wt21-ae-l1",
                                   "wt21-ae-l2")
    dead, via_dead = "wt21-ae-dead", "wt21-ae-via-dead"
    qm, qa = "wt21-ae-main-q", "wt21-ae-q"
    with wt.server() as srv:
        wt.cleanup(srv.addr, qm, qa, exchanges=[main, ae, bad, loop1, loop2, dead, via_dead,
                                             "wt21-ae-int"])
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append((m.reply_code,
                                                                      m.reply_text, b)))
        ch.exchange_declare(ae, "fanout")
        ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
        ch.queue_declare(qm)
        ch.queue_declare(qa)
        ch.queue_bind(qm, main, "k")
        ch.queue_bind(qa, ae)
        ch.basic_publish(main, "k", b"routed", mandatory=True)
        ch.basic_publish(main, "other", b"unrouted", mandatory=True)
        ch.exchange_declare(bad, "direct", arguments={"alternate-exchange": "wt21-ae-none"})
        ch.basic_publish(bad, "x", b"ae missing", mandatory=True)
        ch.exchange_declare(dead, "direct")
        ch.exchange_declare(via_dead, "direct", arguments={"alternate-exchange": dead})
        ch.basic_publish(via_dead, "x", b"ae does not route", mandatory=True)
        ch.exchange_declare(loop1, "direct", arguments={"alternate-exchange": loop2})
        ch.exchange_declare(loop2, "direct", arguments={"alternate-exchange": loop1})
        ch.basic_publish(loop1, "x", b"ae loop", mandatory=True)
        ch.queue_declare(qm, passive=True)  # a round trip: returns come before its reply
        conn.process_data_events(0.2)
        assert returned == [(312, "NO_ROUTE", b"ae missing"),
                            (312, "NO_ROUTE", b"ae does not route"),
                            (312, "NO_ROUTE", b"ae loop")], returned
        assert wt.drain(ch, qm) == [b"routed"]
        assert wt.drain(ch, qa) == [b"unrouted"]
        wt.log("  routed -> main queue; unrouted -> AE's queue, not returned; missing AE, AE "
               "without a match, AE loop -> returned 312 NO_ROUTE")
        try:
            ch.exchange_declare("wt21-ae-int", "direct", arguments={"alternate-exchange": 5})
            raise AssertionError("alternate-exchange=5 accepted")
        except pe.ChannelClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (
                406, "PRECONDITION_FAILED - invalid type 'signedint' for arg "
                "'alternate-exchange' in exchange 'wt21-ae-int' in vhost '/'"), e
            wt.log("  alternate-exchange=5: %r" % e)
        ch = conn.channel()
        for x in (main, ae, bad, loop1, loop2, dead, via_dead):
            ch.exchange_delete(x)
        ch.queue_delete(qm)
        ch.queue_delete(qa)
        conn.close()


if __name__ == "__main__":
    wt.run([test_declare_each_type, test_redeclare_inequivalent,
            test_reserved_prefix_and_predeclared, test_unknown_type,
            test_delete_if_unused_and_missing, test_internal_exchange,
            test_default_exchange_refused, test_bind_missing, test_exchange_to_exchange,
            test_exchange_cycle, test_alternate_exchange])
