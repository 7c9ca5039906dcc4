"""Sender-selected distribution (RabbitMQ's CC and BCC headers): a publish carrying a "CC"
and/or "BCC" header (an array of longstr) is routed by its routing key and by each of those
keys, each queue getting one copy, on direct and topic exchanges, the default exchange,
through exchange-to-exchange bindings, and to the alternate exchange only when no key
matched; fanout and headers exchanges ignore the keys. What the queues get has no BCC header
(the other headers kept, in their order), and a headers exchange matches that; the CC header
stays. Array members that are not
longstr are ignored; a CC or BCC header that is not an array closes the channel with 406
PRECONDITION_FAILED. A mandatory message routable only by its CC or BCC keys is not
returned; one routable by none is, without its BCC header; confirms ack both. A persistent
message routed by BCC to durable queues is stored without the header and survives a clean
restart. Checked against RabbitMQ 3.10.8 (Debian). Names start with wt43-."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402
import pika.exceptions as pe  # noqa: E402

wt.name_pika_methods()

DIRECT, TOPIC, FANOUT, HEADERS = "wt43-direct", "wt43-topic", "wt43-fanout", "wt43-headers"
AE_SRC, AE = "wt43-ae-src", "wt43-ae"
QA, QB, QC, QT, QF, QH, QALT, QAE = ("wt43-a", "wt43-b", "wt43-c", "wt43-t", "wt43-f",
                                     "wt43-h", "wt43-alt", "wt43-ae-q")
QUEUES = [QA, QB, QC, QT, QF, QH, QALT, QAE]
EXCHANGES = [DIRECT, TOPIC, FANOUT, HEADERS, AE_SRC, AE]


def setup(ch, durable=False):
    """Direct exchange: QA, QB, QC bound with keys a, b, c; topic: QT with x.*; fanout: QF;
    headers: QH (x-match any, three bindings: h=1, BCC=[k], CC=[k]); AE_SRC (direct, alternate exchange AE, a fanout to QALT):
    QAE bound with k; TOPIC is also bound to DIRECT with key e2e (exchange to exchange)."""
    for e in EXCHANGES:
        ch.exchange_delete(e)
    for q in QUEUES:
        ch.queue_delete(q)
    ch.exchange_declare(DIRECT, "direct", durable=durable)
    ch.exchange_declare(TOPIC, "topic", durable=durable)
    ch.exchange_declare(FANOUT, "fanout", durable=durable)
    ch.exchange_declare(HEADERS, "headers", durable=durable)
    ch.exchange_declare(AE, "fanout", durable=durable)
    ch.exchange_declare(AE_SRC, "direct", durable=durable, arguments={"alternate-exchange": AE})
    for q in QUEUES:
        ch.queue_declare(q, durable=durable)
    for q, key in ((QA, "a"), (QB, "b"), (QC, "c")):
        ch.queue_bind(q, DIRECT, key)
    ch.queue_bind(QT, TOPIC, "x.*")
    ch.queue_bind(QF, FANOUT, "")
    ch.queue_bind(QH, HEADERS, "", arguments={"x-match": "any", "h": 1})
    ch.queue_bind(QH, HEADERS, "", arguments={"x-match": "any", "BCC": ["k"]})
    ch.queue_bind(QH, HEADERS, "", arguments={"x-match": "any", "CC": ["k"]})
    ch.queue_bind(QALT, AE, "")
    ch.queue_bind(QAE, AE_SRC, "k")
    ch.exchange_bind(TOPIC, DIRECT, "e2e")


def publish(ch, exchange, key, headers, body, mandatory=False, persistent=False):
    props = pika.BasicProperties(headers=headers, delivery_mode=2 if persistent else None)
    ch.basic_publish(exchange, key, body, props, mandatory=mandatory)


def everything(ch):
    """{queue: [(body, headers, routing key)]} of every non-empty queue, drained."""
    out = {}
    for q in QUEUES:
        while True:
            m, p, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            out.setdefault(q, []).append((body, p.headers, m.routing_key))
    return out


def expect(ch, want, what):
    """Drains every queue and compares with want: {queue: [(body, headers, routing key)]}.
    Headers are compared with their order (what a client reads back)."""
    got = everything(ch)
    norm = {q: [(b, list((h or {}).items()), k) for b, h, k in v] for q, v in got.items()}
    norm_want = {q: [(b, list(h.items()), k) for b, h, k in v] for q, v in want.items()}
    assert norm == norm_want, "%s:\n got  %r\n want %r" % (what, got, want)


def test_direct_topic_default():
    """CC and BCC keys route on direct and topic exchanges and the default exchange, one
    copy per queue; BCC is gone from every copy, CC and the other headers stay in order"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch)
        ch.confirm_delivery()  # each publish is routed when basic_publish returns
        h = {"z": 1, "BCC": ["c"], "CC": ["b"], "a": 2}
        publish(ch, DIRECT, "a", h, b"d1")
        seen = {"z": 1, "CC": ["b"], "a": 2}
        expect(ch, {q: [(b"d1", seen, "a")] for q in (QA, QB, QC)}, "direct, CC and BCC")

        publish(ch, TOPIC, "y", {"CC": ["x.1", "x.2"], "BCC": ["x.3"]}, b"t1")
        expect(ch, {QT: [(b"t1", {"CC": ["x.1", "x.2"]}, "y")]}, "topic: one copy")

        publish(ch, "", QA, {"CC": [QB], "BCC": [QC, QA, "wt43-none"]}, b"q1")
        expect(ch, {q: [(b"q1", {"CC": [QB]}, QA)] for q in (QA, QB, QC)}, "default exchange")

        # The routing key and CC naming the same queue, twice: one copy.
        publish(ch, DIRECT, "a", {"CC": ["a", "a"], "BCC": ["a"]}, b"dup")
        expect(ch, {QA: [(b"dup", {"CC": ["a", "a"]}, "a")]}, "dedup")

        # Empty arrays: the routing key alone; an empty BCC is removed all the same, and a
        # message whose only header was BCC keeps an empty headers table.
        publish(ch, DIRECT, "a", {"CC": [], "BCC": []}, b"empty")
        publish(ch, DIRECT, "none", {"BCC": ["c"]}, b"only-bcc")
        expect(ch, {QA: [(b"empty", {"CC": []}, "a")], QC: [(b"only-bcc", {}, "none")]},
               "empty arrays, BCC alone")

        # Members that are not longstr are ignored (an integer, a byte array, a table).
        publish(ch, DIRECT, "none", {"CC": [1, "b", b"c", {"t": 1}]}, b"mixed")
        expect(ch, {QB: [(b"mixed", {"CC": [1, "b", b"c", {"t": 1}]}, "none")]},
               "non-longstr members")

        # A consumer sees the same as basic.get.
        publish(ch, DIRECT, "none", {"CC": ["b"], "BCC": ["a"]}, b"consumed")
        got = []
        tag = ch.basic_consume(QA, lambda c, m, p, b: got.append((b, p.headers)), auto_ack=True)
        wt.wait_until(lambda: got, 5, "delivery to the consumer", conns=[conn])
        ch.basic_cancel(tag)
        assert got == [(b"consumed", {"CC": ["b"]})], got
        expect(ch, {QB: [(b"consumed", {"CC": ["b"]}, "none")]}, "the CC copy")
        conn.close()
        wt.cleanup(srv.addr, *QUEUES, exchanges=EXCHANGES)


def test_fanout_headers_e2e_alternate():
    """fanout and headers exchanges route once whatever the keys; exchange-to-exchange
    bindings follow CC keys and route there with every key; a headers exchange matches the
    headers without BCC; the alternate exchange is used only when no key matched, and gets
    the message without BCC"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch)
        ch.confirm_delivery()
        publish(ch, FANOUT, "", {"CC": ["a", "b"], "BCC": ["c"]}, b"fan")
        publish(ch, HEADERS, "", {"h": 1, "CC": ["a"], "BCC": ["b"]}, b"hdr")
        expect(ch, {QF: [(b"fan", {"CC": ["a", "b"]}, "")],
                    QH: [(b"hdr", {"h": 1, "CC": ["a"]}, "")]}, "fanout, headers")
        # A headers exchange matches what the queues would get: BCC is gone by then.
        publish(ch, HEADERS, "", {"BCC": ["k"]}, b"hdr-bcc")
        publish(ch, HEADERS, "", {"CC": ["k"]}, b"hdr-cc")
        expect(ch, {QH: [(b"hdr-cc", {"CC": ["k"]}, "")]}, "headers exchange on CC and BCC")

        # DIRECT -> TOPIC by the CC key e2e; TOPIC matches the BCC key x.1.
        publish(ch, DIRECT, "none", {"CC": ["e2e"], "BCC": ["x.1"]}, b"e2e")
        expect(ch, {QT: [(b"e2e", {"CC": ["e2e"]}, "none")]}, "exchange to exchange")

        publish(ch, AE_SRC, "none", {"CC": ["k"]}, b"no-ae")
        publish(ch, AE_SRC, "none", {"BCC": ["k"]}, b"no-ae-bcc")
        publish(ch, AE_SRC, "none", {"CC": ["n1"], "BCC": ["n2"]}, b"ae")
        expect(ch, {QAE: [(b"no-ae", {"CC": ["k"]}, "none"), (b"no-ae-bcc", {}, "none")],
                    QALT: [(b"ae", {"CC": ["n1"]}, "none")]}, "alternate exchange")
        conn.close()
        wt.cleanup(srv.addr, *QUEUES, exchanges=EXCHANGES)


def test_mandatory_confirms_tx():
    """mandatory: routable by CC or BCC alone -> no basic.return, acked; routable by no key
    -> returned without its BCC header (CC kept), acked; in a transaction the keys route at
    commit the same way"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch)
        ch.confirm_delivery()
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append((m.reply_code, b, p.headers)))
        publish(ch, DIRECT, "none", {"CC": ["b"]}, b"cc", mandatory=True)
        publish(ch, DIRECT, "none", {"BCC": ["c"]}, b"bcc", mandatory=True)
        try:
            publish(ch, DIRECT, "none", {"z": 0, "CC": ["n1"], "BCC": ["n2"]}, b"lost",
                    mandatory=True)
            raise AssertionError("no basic.return for a message no key routes")
        except pe.UnroutableError as e:
            msgs = [(m.method.reply_code, m.body, m.properties.headers) for m in e.messages]
        conn.process_data_events(0.1)
        assert msgs == [(312, b"lost", {"z": 0, "CC": ["n1"]})], msgs
        assert returned == msgs, returned
        expect(ch, {QB: [(b"cc", {"CC": ["b"]}, "none")], QC: [(b"bcc", {}, "none")]},
               "mandatory CC/BCC-routable")
        ch.close()

        tx = conn.channel()
        tx.tx_select()
        publish(tx, DIRECT, "a", {"CC": ["b"], "BCC": ["c"]}, b"tx")
        assert everything(tx) == {}, "published before tx.commit"
        tx.tx_commit()
        expect(tx, {q: [(b"tx", {"CC": ["b"]}, "a")] for q in (QA, QB, QC)}, "tx.commit")
        conn.close()
        wt.cleanup(srv.addr, *QUEUES, exchanges=EXCHANGES)


# (headers, RabbitMQ's reply text): the first of CC and BCC that is not an array.
MALFORMED = [
    ({"CC": "b"}, 'invalid message: {unacceptable_type_in_header,"CC",longstr}'),
    ({"BCC": 5}, 'invalid message: {unacceptable_type_in_header,"BCC",signedint}'),
    ({"CC": ["a"], "BCC": {"t": 1}}, 'invalid message: {unacceptable_type_in_header,"BCC",table}'),
    ({"CC": None}, 'invalid message: {unacceptable_type_in_header,"CC",void}'),
    ({"BCC": 5, "CC": "b"}, 'invalid message: {unacceptable_type_in_header,"CC",longstr}'),
    ({"CC": b"x"}, 'invalid message: {unacceptable_type_in_header,"CC",binary}'),
    ({"CC": True}, 'invalid message: {unacceptable_type_in_header,"CC",bool}'),
]


def test_malformed():
    """a CC or BCC header that is not an array: 406 PRECONDITION_FAILED naming the header and
    its type, the message routed nowhere, the connection kept (also in a transaction, at
    the publish); an array with no longstr member just adds no key"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch)
        for headers, text in MALFORMED:
            bad = conn.channel()
            if headers is MALFORMED[-1][0]:
                bad.tx_select()
            publish(bad, DIRECT, "a", headers, b"bad")
            try:
                bad.queue_declare(QA, passive=True)
                raise AssertionError("%r accepted" % (headers,))
            except pe.ChannelClosedByBroker as e:
                assert (e.reply_code, e.reply_text) == (406, "PRECONDITION_FAILED - " + text), (
                    headers, e)
        ch.confirm_delivery()
        publish(ch, DIRECT, "a", {"CC": [7, 8]}, b"ok")
        expect(ch, {QA: [(b"ok", {"CC": [7, 8]}, "a")]}, "after the refusals")
        conn.close()
        wt.cleanup(srv.addr, *QUEUES, exchanges=EXCHANGES)


@wt.needs_process
def test_persistent_restart():
    """persistent messages routed by CC and BCC to durable queues are stored as the queues
    got them (no BCC) and come back so after a clean restart, one per queue"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, durable=True)
        ch.confirm_delivery()
        publish(ch, DIRECT, "a", {"CC": ["b"], "BCC": ["c", "a"], "n": 1}, b"p1", persistent=True)
        publish(ch, DIRECT, "none", {"BCC": ["c"]}, b"p2", persistent=True)
        conn.close()
        srv.restart()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        seen = {"CC": ["b"], "n": 1}
        for q in (QA, QB, QC):
            m, p, body = ch.basic_get(q, auto_ack=True)
            assert (body, p.headers, p.delivery_mode) == (b"p1", seen, 2), (q, body, p)
        m, p, body = ch.basic_get(QC, auto_ack=True)
        assert (body, p.headers, p.delivery_mode) == (b"p2", {}, 2), (body, p)
        expect(ch, {}, "after the restart")
        conn.close()
        wt.cleanup(srv.addr, *QUEUES, exchanges=EXCHANGES)


if __name__ == "__main__":
    wt.run([test_direct_topic_default, test_fanout_headers_e2e_alternate,
            test_mandatory_confirms_tx, test_malformed, test_persistent_restart])
