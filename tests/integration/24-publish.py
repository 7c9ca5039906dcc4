"""basic.publish: mandatory unroutable messages come back as basic.return 312 NO_ROUTE with
their properties and body; immediate=true is refused (540, as RabbitMQ); publisher
confirms (confirm.select: every publish is acked, routable or not, and a mandatory
message's basic.return comes before its ack; acks may cover several tags with multiple);
content headers come back byte for byte (all 14 basic properties, header tables with every
field type); bodies of 0 bytes, 1 MiB and 5 MiB are split into frames of at most
frame_max and reassembled exactly; a user_id other than the login -> 406; publishes sent
just before the client closes its socket are all routed (RabbitMQ may drop some). Checked
against RabbitMQ 3.10.

Raw frames (pika's codec builds them) are used where the exact bytes or frame boundaries
matter, pika elsewhere. Queue names start with wt24-."""

import datetime
import decimal
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.exceptions as pe  # noqa: E402
import pika.spec as spec  # noqa: E402
from pika.compat import long  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

Q = spec.Queue
B = spec.Basic


# ---------------------------------------------------------------------------------------
# Raw helpers: methods encoded by pika's codec, replies read by warren_test.RawConn.


def get(c, channel, queue):
    """basic.get no-ack; returns (GetOk, raw header payload, body, frame sizes)."""
    ok = wt.call_pika(c, channel, B.Get(queue=queue, no_ack=True), B.GetOk)
    return (ok,) + wt.read_content(c, channel, forbid_empty_frames=True)


def covered(acks):
    """Tags confirmed by a list of (tag, multiple): multiple confirms every tag up to its
    own not confirmed yet. Checks that each ack confirms something new and that no single
    ack repeats a tag. (RabbitMQ acks out of order: an unroutable message at once, a
    routed one once its queue has it.)"""
    done = set()
    for tag, multiple in acks:
        if multiple:
            new = set(range(1, tag + 1)) - done
        else:
            assert tag not in done, "tag %d acked twice: %r" % (tag, acks)
            new = {tag}
        assert new, "ack %d multiple=true confirms nothing new: %r" % (tag, acks)
        done |= new
    return done


# ---------------------------------------------------------------------------------------
# Tests


def test_mandatory_return():
    """mandatory publish that no queue gets -> basic.return 312 "NO_ROUTE" with exchange,
    routing key, the properties as sent and the body; a routable one and a non-mandatory
    unroutable one get nothing"""
    q = "wt24-mandatory"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        props = spec.BasicProperties(content_type="text/plain", headers={"k": "v"},
                                     message_id="m-1")
        with wt.opened(srv.addr, 1, timeout=10) as c:
            for ex, key in (("", "wt24-nowhere"), ("amq.direct", "unbound-key")):
                wt.publish(c, 1, key, b"come back", exchange=ex, props=props, mandatory=True)
                m = c.expect(wt.method_ids(B.Return), channel=1)
                r = B.Return().decode(m.args)
                assert (r.reply_code, r.reply_text, r.exchange, r.routing_key) == (
                    312, "NO_ROUTE", ex, key), r
                header, body, _ = wt.read_content(c, 1, forbid_empty_frames=True)
                assert header == wt.content_header_payload(9, props), header
                assert body == b"come back"
                wt.log("  basic.return 312 NO_ROUTE exchange %r key %r, properties and body "
                       "as sent" % (ex, key))
            wt.publish(c, 1, q, b"routable", mandatory=True)
            wt.publish(c, 1, "wt24-nowhere", b"not mandatory")
            c.expect_silence(0.3)
            ok, _, body, _ = get(c, 1, q)
            assert body == b"routable"
            c.close_connection()
        # pika: the return callback.
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        returned = []
        ch.add_on_return_callback(lambda c_, m, p, b: returned.append(
            (m.reply_code, m.reply_text, p.message_id, b)))
        ch.basic_publish("", "wt24-nowhere", b"pika", props, mandatory=True)
        ch.queue_declare(q, passive=True)
        conn.process_data_events(0.1)
        assert returned == [(312, "NO_ROUTE", "m-1", b"pika")], returned
        ch.queue_delete(q)
        conn.close()


def test_immediate_refused():
    """basic.publish immediate=true -> connection.close 540 "NOT_IMPLEMENTED -
    immediate=true" (60, 40), routable or not"""
    q = "wt24-immediate"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        for key in (q, "wt24-nowhere"):
            with wt.opened(srv.addr, 1, timeout=10) as c:
                wt.publish(c, 1, key, b"now", immediate=True)
                c.expect_connection_close(540, text="NOT_IMPLEMENTED - immediate=true",
                                          ids=wt.method_ids(B.Publish))
        wt.cleanup(srv.addr, q)


def test_confirms():
    """confirm.select -> select-ok (twice is fine; nowait gets no reply); 200 pipelined
    publishes, routable, unroutable and mandatory-unroutable, are all acked exactly once
    with tags 1..200 (multiple allowed, any order: RabbitMQ acks unroutable ones first); no
    nack; each basic.return comes before the ack of its message"""
    q = "wt24-confirms"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, 2, timeout=10) as c:
            wt.call_pika(c, 1, spec.Confirm.Select(), spec.Confirm.SelectOk)
            wt.call_pika(c, 1, spec.Confirm.Select(), spec.Confirm.SelectOk)
            wt.send_pika(c, 2, spec.Confirm.Select(nowait=True))
            wt.call_pika(c, 2, spec.Channel.Flow(active=True), spec.Channel.FlowOk)
            wt.log("  confirm.select twice: select-ok; nowait: no reply")
            kinds = {}
            for tag in range(1, 201):
                kind = ("routable", "unroutable", "mandatory")[tag % 3]
                kinds[tag] = kind
                wt.publish(c, 1, q if kind == "routable" else "wt24-nowhere",
                           b"%d" % tag, mandatory=(kind == "mandatory"))
            acks, returns = [], []
            done = set()
            deadline = time.monotonic() + 10
            while len(done) < 200:
                m = c.read_method(timeout=max(0.01, deadline - time.monotonic()))
                assert m.channel == 1, m
                if m.ids == wt.method_ids(B.Return):
                    _, body, _ = wt.read_content(c, 1, forbid_empty_frames=True)
                    tag = int(body)
                    assert kinds[tag] == "mandatory", "returned %s message %d" % (kinds[tag],
                                                                                 tag)
                    assert tag not in done, "basic.return of %d after its ack" % tag
                    returns.append(tag)
                    continue
                assert m.ids == wt.method_ids(B.Ack), \
                    "expected basic.ack or basic.return, got %r" % m
                a = B.Ack().decode(m.args)
                acks.append((a.delivery_tag, a.multiple))
                done = covered(acks)
            assert done == set(range(1, 201)), sorted(set(range(1, 201)) - done)
            want_returns = [t for t in range(1, 201) if kinds[t] == "mandatory"]
            assert returns == want_returns, returns
            wt.log("  200 publishes: %d acks (%d with multiple), %d returns, each before its "
                   "ack" % (len(acks), sum(1 for a in acks if a[1]), len(returns)))
            ok = wt.call_pika(c, 1, Q.Declare(queue=q, passive=True), Q.DeclareOk)
            assert ok.message_count == len([t for t in kinds if kinds[t] == "routable"]), ok
            c.close_connection()
        wt.cleanup(srv.addr, q)


def test_pika_confirm_delivery():
    """pika's confirm_delivery(): basic_publish returns once acked; a mandatory unroutable
    publish raises UnroutableError (returned, then acked); a non-mandatory one is acked"""
    q = "wt24-pika-confirm"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        for i in range(20):
            ch.basic_publish("", q, b"%d" % i, mandatory=True)
        ch.basic_publish("", "wt24-nowhere", b"dropped")
        try:
            ch.basic_publish("", "wt24-nowhere", b"returned", mandatory=True)
            raise AssertionError("mandatory unroutable publish did not raise UnroutableError")
        except pe.UnroutableError as e:
            assert len(e.messages) == 1 and e.messages[0].body == b"returned", e.messages
            wt.log("  UnroutableError with the returned message")
        assert ch.queue_declare(q, passive=True).method.message_count == 20
        ch.queue_delete(q)
        conn.close()


def test_properties_round_trip():
    """the content header of a delivered message is byte for byte the one published: all
    14 basic properties set, header tables nesting every type pika sends (S x t I l D T F A
    V), and a table with the types pika cannot send (b B s u i f d)"""
    q = "wt24-props"
    headers = {
        "str": "string", "bytes": b"\x00\xff\x01bytes", "true": True, "false": False,
        "int": -5, "long": long(1 << 40), "decimal": decimal.Decimal("3.14"),
        "timestamp": datetime.datetime(2020, 1, 2, 3, 4, 5), "void": None,
        "table": {"nested": {"deeper": [1, "a", {"k": None, "t": True}]}},
        "array": [1, "two", b"3", [4, [5]], {"six": 6}, None, decimal.Decimal("-1.5")],
        "empty-table": {}, "empty-array": [], "utf8-\u00e9": "\u2603",
    }
    props = spec.BasicProperties(
        content_type="application/json", content_encoding="gzip", headers=headers,
        delivery_mode=2, priority=7, correlation_id="corr-1", reply_to="wt24-reply",
        expiration="60000", message_id="msg-1", timestamp=1700000000, type="event",
        user_id="guest", app_id="warren-tests", cluster_id="c1")
    raw_tags = {"b": (b"b", struct.pack(">b", -3)), "B": (b"B", struct.pack(">B", 250)),
                "s": (b"s", struct.pack(">h", -300)), "u": (b"u", struct.pack(">H", 60000)),
                "i": (b"i", struct.pack(">I", 4000000000)), "f": (b"f", struct.pack(">f", 1.5)),
                "d": (b"d", struct.pack(">d", 2.25)), "l": (b"l", struct.pack(">q", -1)),
                "nested": {"u": (b"u", struct.pack(">H", 1))}}
    raw_header = struct.pack(">HHQH", 60, 0, 3, 0x2000) + wt.table(raw_tags)
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, timeout=10) as c:
            sent = wt.content_header_payload(5, props)
            wt.publish(c, 1, q, b"hello", props=props)
            ok, header, body, _ = get(c, 1, q)
            assert body == b"hello"
            assert header == sent, "content header changed:\n sent %s\n  got %s" % (
                sent.hex(), header.hex())
            got = spec.BasicProperties()
            got.decode(header[12:])
            assert got.headers == headers, got.headers
            wt.log("  14 properties and a %d-byte header table: identical" % len(sent))
            wt.publish(c, 1, q, b"abc", header=raw_header)
            ok, header, body, _ = get(c, 1, q)
            assert header == raw_header, "content header changed:\n sent %s\n  got %s" % (
                raw_header.hex(), header.hex())
            wt.log("  header table with b B s u i f d l: identical")
            wt.publish(c, 1, q, b"", props=spec.BasicProperties())
            ok, header, body, _ = get(c, 1, q)
            assert header == wt.content_header_payload(0, spec.BasicProperties()), header.hex()
            c.close_connection()
        # And through pika on both ends.
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.basic_publish("", q, b"via pika", props)
        m, p, body = ch.basic_get(q, auto_ack=True)
        assert body == b"via pika"
        for name in ("content_type", "content_encoding", "headers", "delivery_mode",
                     "priority", "correlation_id", "reply_to", "expiration", "message_id",
                     "timestamp", "type", "user_id", "app_id", "cluster_id"):
            assert getattr(p, name) == getattr(props, name), "%s: %r, sent %r" % (
                name, getattr(p, name), getattr(props, name))
        ch.queue_delete(q)
        conn.close()


def test_user_id_checked():
    """a user_id property other than the authenticated user -> channel.close 406
    "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was
    'guest'" (60, 40)"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1, timeout=10) as c:
            wt.publish(c, 1, "wt24-nowhere", b"x", props=spec.BasicProperties(user_id="bob"))
            c.expect_channel_close(1, 406, text="PRECONDITION_FAILED - user_id property set "
                                   "to 'bob' but authenticated user was 'guest'",
                                   ids=wt.method_ids(B.Publish))
            wt.send_pika(c, 1, spec.Channel.CloseOk())
            c.open_channel(1)
            c.close_connection()


def test_large_bodies():
    """bodies of 1 MiB and 5 MiB (and 5 MiB sent in 1000-byte frames) come back identical,
    in body frames of at most frame_max - 8 bytes; a 0-byte body has no body frame"""
    q = "wt24-large"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, timeout=10) as c:
            limit = c.frame_max - 8
            for size, chunk in ((1 << 20, None), (5 << 20, None), (5 << 20, 1000),
                                (limit, None), (limit + 1, None)):
                body = bytes((i * 7 + size) & 0xFF for i in range(256)) * (size // 256) + \
                    b"z" * (size % 256)
                wt.publish(c, 1, q, body, chunk=chunk)
                ok, header, got, sizes = get(c, 1, q)
                assert got == body, "body of %d bytes came back different (%d bytes)" % (
                    size, len(got))
                assert max(sizes) <= limit, "body frame of %d bytes, frame_max %d" % (
                    max(sizes), c.frame_max)
                wt.log("  %d bytes (sent in %s-byte frames): identical, %d body frames of "
                       "at most %d" % (size, chunk or limit, len(sizes), max(sizes)))
            wt.publish(c, 1, q, b"")
            ok, header, got, sizes = get(c, 1, q)
            assert (got, sizes) == (b"", [])
            # The next frame is the reply to this, not an empty body frame.
            wt.call_pika(c, 1, B.Get(queue=q), B.GetEmpty)
            wt.log("  0 bytes: content header only, no body frame")
            c.close_connection()
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        big = os.urandom(5 << 20)
        ch.basic_publish("", q, big)
        ch.basic_publish("", q, b"")
        assert ch.basic_get(q, auto_ack=True)[2] == big
        assert ch.basic_get(q, auto_ack=True)[2] == b""
        wt.log("  pika: 5 MiB random and empty bodies round-trip")
        ch.queue_delete(q)
        conn.close()


def publish_frames(queue, n, persistent=False):
    """n basic.publish of 16-byte bodies to queue on channel 1, as bytes to send at once."""
    props = wt.content_header_payload(16, spec.BasicProperties(delivery_mode=2)
                                      if persistent else None)
    one = (wt.method_frame(1, wt.BASIC_PUBLISH, wt.publish_args("", queue)) +
           wt.frame(wt.FRAME_HEADER, 1, props) + wt.frame(wt.FRAME_BODY, 1, b"x" * 16))
    return one * n


def wait_count(ch, queue, want):
    """The queue's message count once it reaches want, or the last one seen after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        n = ch.queue_declare(queue, durable=True, passive=True).method.message_count
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def test_publish_then_close():
    """a client that publishes and closes its socket at once, without connection.close:
    every publish sent before the close is routed, also those committed behind a tx.commit
    that waits for the store. RabbitMQ 3.10 does not: its reader stops at the close while
    its channel still works, so it routed 19,870 of the 20,000 in one run (all in others)
    and keeps only the first commit's messages. Against it the counts are only logged."""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        for q in ("wt24-abrupt", "wt24-abrupt-tx"):
            ch.queue_declare(q, durable=True)
            ch.queue_purge(q)
        with wt.opened(srv.addr, 1) as c:
            c.send(publish_frames("wt24-abrupt", 20000))
        n = wait_count(ch, "wt24-abrupt", 20000)
        wt.log("  20000 publishes, then the socket closed: %d routed" % n)
        assert n == 20000 or wt.EXTERNAL, "20000 published before the close, %d routed" % n
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, spec.Tx.Select(), spec.Tx.SelectOk)
            commit = wt.method_frame(1, (90, 20))  # tx.commit
            c.send(publish_frames("wt24-abrupt-tx", 1000, persistent=True) + commit +
                   publish_frames("wt24-abrupt-tx", 1000, persistent=True) + commit +
                   publish_frames("wt24-abrupt-tx", 10, persistent=True))  # not committed
        n = wait_count(ch, "wt24-abrupt-tx", 2000)
        wt.log("  two commits of 1000, then the socket closed: %d routed" % n)
        assert n == 2000 or wt.EXTERNAL, "2000 committed before the close, %d routed" % n
        for q in ("wt24-abrupt", "wt24-abrupt-tx"):
            ch.queue_delete(q)
        conn.close()


if __name__ == "__main__":
    wt.run([test_mandatory_return, test_immediate_refused, test_confirms,
            test_pika_confirm_delivery, test_properties_round_trip, test_user_id_checked,
            test_large_bodies, test_publish_then_close])
