#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_frame into tests/fuzz/corpus/, or with --session
that of tests/fuzz/fuzz_session into tests/fuzz/corpus-session/.

Each file is a byte stream as a client sends it after the protocol header (the fuzz target's
input). Seeds come from two places:
  * a real pika client (python3-pika) talking to a scripted fake broker in this process: the
    bytes pika sends for a whole session (handshake, declares with x-arguments, publishes with
    every basic property, consume, acks, confirms, tx, close) are recorded as they are;
  * hand-built frames: server-side methods, field tables with every type tag RabbitMQ knows,
    nested tables and arrays, property lists with continuation flags, and broken frames.

The session fuzzer's input is a program (see the top of tests/fuzz/fuzz_session.c): an op
byte (bit 7: the connection slot; the rest: enum fz_op) and its argument bytes. The seeds are
small sessions written with the same numbering (class Session below): declares, bindings of
every exchange type, publishes of every size, consumers, acks, transactions, confirms, direct
reply-to, two connections, and errors while channels hold deliveries.

The corpora are committed; rerun this only to change them:
    python3 tests/fuzz/make_corpus.py [--session]
"""

import os
import socket
import struct
import sys
import threading

import pika
import pika.frame
import pika.spec as spec

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
OUT_SESSION = os.path.join(HERE, "corpus-session")

# ---------------------------------------------------------------------------------------
# Raw frame building


def frame(ftype, channel, payload, end=0xCE):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method(channel, class_id, method_id, args=b""):
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    return bytes([len(s)]) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def table(entries):
    """entries: list of (key, encoded value with its tag)."""
    body = b"".join(shortstr(k) + v for k, v in entries)
    return struct.pack(">I", len(body)) + body


def array(values):
    body = b"".join(values)
    return b"A" + struct.pack(">I", len(body)) + body


def every_type():
    """One value of every type tag RabbitMQ and its clients use."""
    return [
        ("bool", b"t\x01"),
        ("i8", b"b" + struct.pack(">b", -5)),
        ("u8", b"B" + struct.pack(">B", 250)),
        ("i16", b"s" + struct.pack(">h", -300)),
        ("u16", b"u" + struct.pack(">H", 60000)),
        ("i32", b"I" + struct.pack(">i", -70000)),
        ("u32", b"i" + struct.pack(">I", 4000000000)),
        ("i64", b"l" + struct.pack(">q", -(1 << 40))),
        ("float", b"f" + struct.pack(">f", 1.5)),
        ("double", b"d" + struct.pack(">d", -2.25)),
        ("decimal", b"D" + struct.pack(">Bi", 2, -12345)),
        ("longstr", b"S" + longstr("hello")),
        ("bytes", b"x" + longstr(b"\x00\x01\xff")),
        ("timestamp", b"T" + struct.pack(">Q", 1700000000)),
        ("void", b"V"),
        ("array", array([b"I" + struct.pack(">i", 1), b"S" + longstr("two"), b"V",
                         array([b"t\x00"])])),
        ("table", b"F" + table([("x-inner", b"S" + longstr("v")), ("n", b"l" + bytes(8))])),
    ]


def nested(depth):
    v = b"F" + table([])
    for _ in range(depth):
        v = b"F" + table([("k", v)])
    return v


def props(flags_words, fields):
    return b"".join(struct.pack(">H", w) for w in flags_words) + b"".join(fields)


def header(channel, body_size, prop_bytes, class_id=60):
    return frame(2, channel, struct.pack(">HHQ", class_id, 0, body_size) + prop_bytes)


def all_props():
    return props([0xFFFC], [
        shortstr("application/json"), shortstr("gzip"), table(every_type()),
        b"\x02", b"\x09", shortstr("corr-1"), shortstr("amq.rabbitmq.reply-to"),
        shortstr("60000"), shortstr("msg-1"), struct.pack(">Q", 1700000000),
        shortstr("order.created"), shortstr("guest"), shortstr("warren-tests"),
        shortstr("cluster-a"),
    ])


def pika_frame(channel, m):
    return pika.frame.Method(channel, m).marshal()


# ---------------------------------------------------------------------------------------
# A real pika session against a scripted broker


def fake_broker(sock, record):
    """Answers one pika connection, recording everything it sends after the protocol header."""
    conn, _ = sock.accept()
    buf = b""

    def recv():
        nonlocal buf
        data = conn.recv(65536)
        if not data:
            raise EOFError
        record.append(data)
        buf += data

    while len(buf) < 8:
        recv()
    buf = buf[8:]
    record[:] = [buf]
    conn.sendall(pika_frame(0, spec.Connection.Start(
        server_properties={"product": "fake", "capabilities": {
            "publisher_confirms": True, "basic.nack": True, "consumer_cancel_notify": True,
            "exchange_exchange_bindings": True, "connection.blocked": True,
            "authentication_failure_close": True}},
        mechanisms="PLAIN AMQPLAIN", locales="en_US")))
    delivery = 0
    confirming = set()
    while True:
        try:
            n, f = pika.frame.decode_frame(buf)
            while f is None:
                recv()
                n, f = pika.frame.decode_frame(buf)
        except EOFError:
            break
        buf = buf[n:]
        if not isinstance(f, pika.frame.Method):
            continue
        m, ch = f.method, f.channel_number
        reply = None
        if isinstance(m, spec.Connection.StartOk):
            reply = spec.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60)
        elif isinstance(m, spec.Connection.Open):
            reply = spec.Connection.OpenOk()
        elif isinstance(m, spec.Connection.Close):
            reply = spec.Connection.CloseOk()
        elif isinstance(m, spec.Channel.Open):
            reply = spec.Channel.OpenOk()
        elif isinstance(m, spec.Channel.Close):
            reply = spec.Channel.CloseOk()
        elif isinstance(m, spec.Exchange.Declare):
            reply = spec.Exchange.DeclareOk()
        elif isinstance(m, spec.Exchange.Bind):
            reply = spec.Exchange.BindOk()
        elif isinstance(m, spec.Exchange.Delete):
            reply = spec.Exchange.DeleteOk()
        elif isinstance(m, spec.Queue.Declare):
            reply = spec.Queue.DeclareOk(queue=m.queue or "amq.gen-1", message_count=0,
                                         consumer_count=0)
        elif isinstance(m, spec.Queue.Bind):
            reply = spec.Queue.BindOk()
        elif isinstance(m, spec.Queue.Purge):
            reply = spec.Queue.PurgeOk(message_count=0)
        elif isinstance(m, spec.Queue.Delete):
            reply = spec.Queue.DeleteOk(message_count=0)
        elif isinstance(m, spec.Queue.Unbind):
            reply = spec.Queue.UnbindOk()
        elif isinstance(m, spec.Basic.Qos):
            reply = spec.Basic.QosOk()
        elif isinstance(m, spec.Basic.Consume):
            reply = spec.Basic.ConsumeOk(consumer_tag=m.consumer_tag)
        elif isinstance(m, spec.Basic.Cancel):
            reply = spec.Basic.CancelOk(consumer_tag=m.consumer_tag)
        elif isinstance(m, spec.Basic.Get):
            reply = spec.Basic.GetEmpty()
        elif isinstance(m, spec.Basic.Recover):
            reply = spec.Basic.RecoverOk()
        elif isinstance(m, spec.Confirm.Select):
            confirming.add(ch)
            reply = spec.Confirm.SelectOk()
        elif isinstance(m, spec.Tx.Select):
            reply = spec.Tx.SelectOk()
        elif isinstance(m, spec.Tx.Commit):
            reply = spec.Tx.CommitOk()
        elif isinstance(m, spec.Tx.Rollback):
            reply = spec.Tx.RollbackOk()
        elif isinstance(m, spec.Basic.Publish) and ch in confirming:
            # The body follows; confirm once the frames are in (pika waits for the ack).
            delivery += 1
            n2, f2 = pika.frame.decode_frame(buf)
            while f2 is None:
                recv()
                n2, f2 = pika.frame.decode_frame(buf)
            buf = buf[n2:]
            remaining = f2.body_size
            while remaining > 0:
                n3, f3 = pika.frame.decode_frame(buf)
                while f3 is None:
                    recv()
                    n3, f3 = pika.frame.decode_frame(buf)
                buf = buf[n3:]
                remaining -= len(f3.fragment)
            reply = spec.Basic.Ack(delivery_tag=delivery, multiple=False)
        if reply is not None:
            conn.sendall(pika_frame(ch, reply))
        if isinstance(m, spec.Connection.Close):
            break
    conn.close()


def pika_session():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    record = []
    t = threading.Thread(target=fake_broker, args=(sock, record), daemon=True)
    t.start()
    params = pika.ConnectionParameters(host="127.0.0.1", port=port, heartbeat=0,
                                       client_properties={"connection_name": "corpus"})
    c = pika.BlockingConnection(params)
    marks = [len(b"".join(record))]
    ch = c.channel()
    ch.exchange_declare("orders", exchange_type="topic", durable=True, auto_delete=False,
                        internal=False, arguments={"alternate-exchange": "ae"})
    ch.queue_declare("q1", durable=True, exclusive=False, auto_delete=False, arguments={
        "x-max-length": 1000, "x-message-ttl": 60000, "x-dead-letter-exchange": "dlx",
        "x-queue-type": "classic", "x-max-priority": 10, "x-expires": 3600000})
    ch.queue_bind("q1", "orders", routing_key="order.*", arguments={"x-match": "all"})
    ch.exchange_bind("orders", "amq.topic", routing_key="#")
    ch.basic_qos(prefetch_count=10)
    ch.confirm_delivery()
    marks.append(len(b"".join(record)))
    ch.basic_publish("orders", "order.created", b'{"id": 1}', pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8",
        headers={"retries": 3, "tags": ["a", "b"], "meta": {"nested": True}, "none": None,
                 "big": 1 << 40},
        delivery_mode=2, priority=5, correlation_id="c-1", reply_to="replies",
        expiration="60000", message_id="m-1", timestamp=1700000000, type="order",
        user_id="guest", app_id="corpus", cluster_id="cl"))
    ch.basic_publish("", "q1", b"x" * 140000, pika.BasicProperties())
    ch.basic_publish("", "q1", b"", pika.BasicProperties(delivery_mode=1))
    marks.append(len(b"".join(record)))
    ch.basic_get("q1", auto_ack=False)
    ch.basic_consume("q1", lambda *a: None, auto_ack=False, exclusive=False,
                     consumer_tag="ctag-1", arguments={"x-priority": 1})
    ch.basic_ack(delivery_tag=1, multiple=True)
    ch.basic_nack(delivery_tag=2, multiple=False, requeue=True)
    ch.basic_reject(delivery_tag=3, requeue=False)
    ch.basic_recover(requeue=True)
    ch.basic_cancel("ctag-1")
    ch.queue_purge("q1")
    ch.queue_unbind("q1", "orders", routing_key="order.*")
    ch.queue_delete("q1", if_unused=True, if_empty=False)
    ch.exchange_delete("orders", if_unused=False)
    ch2 = c.channel()
    ch2.tx_select()
    ch2.basic_publish("", "q1", b"in tx")
    ch2.tx_commit()
    ch2.tx_rollback()
    ch2.close()
    c.close()
    t.join(5)
    sock.close()
    stream = b"".join(record)
    return stream, marks


# ---------------------------------------------------------------------------------------


def every_method():
    """One frame of each method pika knows (all of 0-9-1 with RabbitMQ's additions), with
    strings and numbers filled in where pika has no default."""
    import inspect
    import itertools
    out = []
    for _, cls in sorted(spec.methods.items()):
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.default is None]
        for combo in itertools.product(["x", 1], repeat=len(params)):
            try:
                out.append(pika_frame(1, cls(**dict(zip((p.name for p in params), combo)))))
                break
            except Exception:  # pika asserts on types: try the next combination
                continue
    return b"".join(out)


def seeds():
    s = {}
    stream, marks = pika_session()
    s["pika-handshake"] = stream[:marks[0]]
    s["pika-setup"] = stream[marks[0]:marks[1]]
    s["pika-publish-confirm"] = stream[marks[1]:marks[2]]
    s["pika-session"] = stream

    srv = b"".join([
        pika_frame(0, spec.Connection.Start(
            server_properties={"product": "Warren", "version": "0.1.0",
                               "capabilities": {"publisher_confirms": True}},
            mechanisms="PLAIN AMQPLAIN", locales="en_US")),
        pika_frame(0, spec.Connection.Secure(challenge="c")),
        pika_frame(0, spec.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60)),
        pika_frame(0, spec.Connection.OpenOk()),
        pika_frame(1, spec.Channel.OpenOk()),
        pika_frame(1, spec.Channel.Flow(active=False)),
        pika_frame(1, spec.Channel.FlowOk(active=True)),
        pika_frame(1, spec.Queue.DeclareOk(queue="amq.gen-x", message_count=5, consumer_count=1)),
        pika_frame(1, spec.Basic.ConsumeOk(consumer_tag="amq.ctag-1")),
        pika_frame(1, spec.Basic.Deliver(consumer_tag="amq.ctag-1", delivery_tag=1,
                                         redelivered=True, exchange="ex", routing_key="rk")),
        header(1, 5, all_props()),
        frame(3, 1, b"hello"),
        pika_frame(1, spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="ex",
                                        routing_key="nowhere")),
        header(1, 0, props([0x0000], [])),
        pika_frame(1, spec.Basic.GetOk(delivery_tag=2, redelivered=False, exchange="",
                                       routing_key="q", message_count=3)),
        header(1, 2, props([0x1000], [b"\x02"])),
        frame(3, 1, b"ab"),
        pika_frame(1, spec.Basic.GetEmpty()),
        pika_frame(1, spec.Basic.Ack(delivery_tag=7, multiple=True)),
        pika_frame(1, spec.Basic.Nack(delivery_tag=8, multiple=False, requeue=False)),
        pika_frame(1, spec.Basic.Cancel(consumer_tag="amq.ctag-1", nowait=True)),
        pika_frame(1, spec.Channel.Close(reply_code=404, reply_text="NOT_FOUND - no queue 'q'",
                                         class_id=50, method_id=10)),
        pika_frame(0, spec.Connection.Close(reply_code=320, reply_text="CONNECTION_FORCED",
                                            class_id=0, method_id=0)),
    ])
    s["server-stream"] = srv

    s["table-every-type"] = method(1, 50, 10, struct.pack(">H", 0) + shortstr("q") + b"\x02" +
                                   table(every_type()))
    s["table-nested-16"] = method(1, 50, 10, struct.pack(">H", 0) + shortstr("q") + b"\x00" +
                                  table([("deep", nested(15))]))
    s["table-nested-17"] = method(1, 50, 10, struct.pack(">H", 0) + shortstr("q") + b"\x00" +
                                  table([("deep", nested(16))]))
    s["array-nested"] = method(1, 60, 20, struct.pack(">H", 0) + shortstr("q") + shortstr("") +
                               b"\x00" + table([("a", array([array([array([b"V"])]),
                                                             b"F" + table(every_type())]))]))
    s["props-all"] = method(1, 60, 40, struct.pack(">H", 0) + shortstr("ex") + shortstr("rk") +
                            b"\x03") + header(1, 3, all_props()) + frame(3, 1, b"abc")
    s["props-continuation"] = header(1, 0, props([0x9001, 0x0001, 0x0000], [shortstr("t/p"),
                                                                           b"\x01"]))
    s["props-bad-flag"] = header(1, 0, props([0x0002], []))
    s["body-split"] = (method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") +
                              b"\x00") + header(1, 131164, props([0], [])) +
                       frame(3, 1, b"a" * 131064) + frame(3, 1, b"b" * 100))
    s["every-method"] = every_method()
    s["heartbeats"] = frame(8, 0, b"") * 3
    s["bad-frame-end"] = method(1, 20, 10, shortstr("")) [:-1] + b"\x00"
    s["frame-too-large"] = struct.pack(">BHI", 1, 1, 200000) + b"\x00" * 16
    s["unknown-frame-type"] = frame(5, 0, b"abc")
    s["unknown-method"] = method(1, 99, 1)
    s["trailing-bytes"] = method(1, 20, 10, shortstr("") + b"junk")
    s["truncated-method"] = method(1, 10, 11, table([("product", b"S" + longstr("x"))])[:-2])
    s["unknown-field-type"] = method(1, 50, 10, struct.pack(">H", 0) + shortstr("q") + b"\x00" +
                                     table([("bad", b"Z\x00")]))
    return s


# ---------------------------------------------------------------------------------------
# Session programs for tests/fuzz/fuzz_session (keep in step with enum fz_op and the order in
# which each fz_* handler reads its argument bytes)

(FLUSH, CHANNEL_CLOSE, EXCHANGE_DECLARE, EXCHANGE_DELETE, EXCHANGE_BIND, QUEUE_DECLARE,
 QUEUE_BIND, QUEUE_UNBIND, QUEUE_PURGE, QUEUE_DELETE, QOS, CONSUME, CANCEL, PUBLISH,
 PUBLISH_REPLY, GET, ACK, NACK, REJECT, RECOVER, TX, CONFIRM_SELECT, FLOW, CONNECTION_CLOSE,
 HANG_UP, CONNECT, MISBEHAVE, ADMIN) = range(28)
# Indexes into the fuzzer's name tables (first occurrence).
Q = {"q0": 0, "q1": 1, "q2": 2, "q3": 3, "": 8, "amq.q": 9}
X = {"x0": 0, "x1": 1, "x2": 2, "x3": 3, "": 8, "amq.direct": 9, "amq.fanout": 10,
     "amq.topic": 11, "amq.headers": 12, "nope": 13}
K = {"": 0, "k0": 1, "k1": 2, "k0.k1": 3, "k1.k0": 4, "#": 5, "*": 6, "k0.#": 7, "q0": 8,
     "q1": 9, "q2": 10, "q3": 11, "*.k1": 12}
T = {"direct": 0, "fanout": 1, "topic": 2, "headers": 3, "bogus": 4}
TAG = {"": 0, "c0": 1, "c1": 2, "c2": 3}
USER = {"guest": 0, "u0": 1, "u1": 2, "u2": 3}
VHOST = {"/": 0, "v1": 1, "v2": 2}
PAT = {".*": 0, "": 1, "^q[01]$": 2, "^(q0|x0|amq\\.default)$": 3, "^x": 4,
       "^(q[0-3]|x[0-3]|amq\\..*)$": 5, "^amq\\.": 6, "^k0": 7, "^(k0|k1)\\.": 8, "(q": 9}
# FZ_OP_ADMIN's kinds
(PERM_SET, PERM_CLEAR, TOPIC_SET, TOPIC_CLEAR, USER_DELETE, USER_PUT, VHOST_DELETE, VHOST_PUT,
 USER_LIMIT, VHOST_LIMIT) = range(10)
LIMIT_VALUE = {-1: 0, 0: 1, 1: 2, 2: 3, 3: 4, 5: 5}
# Declare flags: the properties other than the fixture's need bit 6.
EXCLUSIVE, AUTO_DELETE = 0x44, 0x48


class Session:
    """Builds one program; every method takes the channel (1-4) and the slot (0 or 1). The
    fuzzer has declared q0-q3 and x0 (direct), x1 (fanout), x2 (topic), x3 (headers) with
    bindings q0-x0 k0, q1-x0 k1, q1-x1, q2-x2 k0.#, q3-x3 (any h0=v0), q3-x2 *.k1."""

    def __init__(self):
        self.b = bytearray()

    def op(self, kind, slot, *args):
        self.b.append(kind | (slot << 7))
        self.b.extend(args)
        return self

    def flush(self, hold=0):
        return self.op(FLUSH, 0, hold)

    def declare(self, ch, q, flags=0, slot=0):
        return self.op(QUEUE_DECLARE, slot, ch - 1, Q[q], flags)

    def declare_args(self, ch, q, bits, v, slot=0):
        return self.op(QUEUE_DECLARE, slot, ch - 1, Q[q], 0x20, bits, v)

    def exchange(self, ch, x, typ, flags=0, slot=0):
        # a type byte of 0xc0 and above is taken as it is (modulo 5)
        t = next(v for v in range(0xc0, 0x100) if v % 5 == T[typ])
        return self.op(EXCHANGE_DECLARE, slot, ch - 1, X[x], t, flags)

    def bind(self, ch, q, x, key, bind_bits=0, slot=0):
        return self.op(QUEUE_BIND, slot, ch - 1, Q[q], X[x], K[key], bind_bits, 0)

    def consume(self, ch, q, tag, flags=0, slot=0):
        if flags & 0x40:  # the direct reply-to pseudo-queue: no queue byte
            return self.op(CONSUME, slot, ch - 1, flags, TAG[tag])
        return self.op(CONSUME, slot, ch - 1, flags, Q[q], TAG[tag])

    def publish(self, ch, x, key, props=0, size=3, split=0, mandatory=0, slot=0):
        return self.op(PUBLISH, slot, ch - 1, X[x], K[key], mandatory, props,
                       size | (split << 3))

    def get(self, ch, q, no_ack=0, slot=0):
        return self.op(GET, slot, ch - 1, Q[q], no_ack)

    def ack(self, ch, v=0, slot=0):
        return self.op(ACK, slot, ch - 1, v)

    def connect(self, slot, user="guest", vhost="/"):
        return self.op(CONNECT, slot, USER[user] | VHOST[vhost] << 2)

    def admin(self, kind, user="guest", vhost="/", *args):
        return self.op(ADMIN, 0, kind, USER[user], VHOST[vhost], *args)

    def perm_set(self, user, vhost, conf, write, read):
        return self.admin(PERM_SET, user, vhost, PAT[conf], PAT[write], PAT[read])

    def limit(self, kind, user, vhost, which, value):
        return self.admin(kind, user, vhost, which | LIMIT_VALUE[value] << 1)


def session_seeds():
    s = {}
    s["roundtrip"] = (Session().consume(1, "q0", "c0").publish(1, "", "q0")
                      .flush().ack(1).flush().b)
    s["exchange-types"] = (
        Session().publish(1, "x0", "k0").publish(1, "x1", "").publish(1, "x2", "k0.k1")
        .publish(1, "x3", "", props=0x04).publish(1, "x2", "k1.k0").flush()
        .get(1, "q0").get(1, "q1").get(1, "q2").get(1, "q3").get(1, "q1", 1).flush()
        .op(QUEUE_UNBIND, 0, 0, Q["q2"], X["x2"], K["k0.#"], 0)
        .publish(1, "x2", "k0.k1").get(1, "q2").flush().b)
    s["new-exchanges"] = (
        Session().exchange(1, "nope", "topic").exchange(2, "amq.direct", "fanout")
        .exchange(1, "x0", "fanout").flush()
        .op(EXCHANGE_DELETE, 0, 0, X["x0"], 0x05).op(EXCHANGE_DELETE, 0, 1, X["x0"], 0).flush()
        .exchange(1, "x0", "direct").bind(1, "q0", "x0", "k0").flush().b)
    s["exchange-to-exchange"] = (
        Session().op(EXCHANGE_BIND, 0, 0, 0, X["x1"], X["x2"], K["k0.#"], 0)
        .publish(1, "x2", "k0.k1").flush()
        .op(EXCHANGE_BIND, 0, 0, 1, X["x1"], X["x2"], K["k0.#"], 0).get(1, "q1").flush().b)
    s["tx-confirm-return"] = (
        Session().op(TX, 0, 0, 0).publish(1, "", "q1").publish(1, "", "q1")
        .op(TX, 0, 0, 1).get(1, "q1").flush().ack(1).op(TX, 0, 0, 3).op(TX, 0, 0, 1)
        .op(CONFIRM_SELECT, 0, 1, 0).publish(2, "amq.direct", "k1", mandatory=1)
        .publish(2, "", "q1", props=0x01).flush().b)
    s["two-connections-requeue"] = (
        Session().op(QOS, 0, 0, 1).consume(1, "q0", "c0")
        .connect(1).op(QOS, 1, 0, 1).consume(1, "q0", "c1", slot=1)
        .publish(2, "", "q0").publish(2, "", "q0").publish(2, "", "q0").flush()
        .op(MISBEHAVE, 0, 0, 0).flush().ack(1, slot=1).flush().ack(1, slot=1).flush().b)
    s["direct-reply-to"] = (
        Session().consume(1, "", "c0", 0x41)
        .connect(1).consume(1, "q1", "c1", 0x01, slot=1)
        .publish(1, "", "q1", props=0x08).flush()
        .op(PUBLISH_REPLY, 1, 0, 0, 0, 3).flush()
        .op(CHANNEL_CLOSE, 0, 0).op(PUBLISH_REPLY, 1, 0, 0, 0, 3).flush().b)
    s["auto-delete-close"] = (
        Session().declare(2, "", AUTO_DELETE).consume(2, "", "c2").bind(2, "", "x1", "")
        .publish(1, "x1", "").publish(1, "x1", "").flush().op(CHANNEL_CLOSE, 0, 1).flush()
        .publish(1, "x1", "").get(1, "q1").flush().b)
    s["exclusive-hang-up"] = (
        Session().declare(2, "", EXCLUSIVE).consume(2, "", "c0").bind(2, "", "x0", "k1")
        .publish(1, "x0", "k1").flush().op(MISBEHAVE, 0, 7, 1).connect(1)
        .publish(1, "x0", "k1", slot=1).flush().op(HANG_UP, 0, 5)
        .publish(1, "x0", "k1", slot=1).get(1, "q1", slot=1).flush().b)
    s["soft-error-reuse"] = (
        Session().declare(2, "amq.q", 0x01).publish(2, "", "q3").declare(2, "q3")
        .flush().declare(2, "q3").publish(2, "", "q3").get(2, "q3").flush().b)
    s["large-bodies"] = (
        Session().publish(1, "", "q0", size=6, split=5)
        .publish(1, "", "q0", size=7, split=7).publish(1, "", "q0", size=5, split=1).flush(9)
        .get(1, "q0").get(1, "q0").consume(2, "q0", "c1", 0x01).flush().b)
    s["split-flushes"] = (
        Session().consume(1, "q1", "").flush(11)
        .publish(1, "", "q1", size=4, split=3).flush(7).ack(1, 0x90).flush(1).b)
    s["nack-reject-recover"] = (
        Session().consume(1, "q0", "c0").publish(2, "", "q0")
        .publish(2, "", "q0").publish(2, "", "q0").flush()
        .op(NACK, 0, 0, 0x21).op(REJECT, 0, 0, 0x21).flush().op(RECOVER, 0, 0, 0x02)
        .flush().op(NACK, 0, 0, 0x30).op(CANCEL, 0, 0, TAG["c0"], 0).flush().b)
    s["queue-arguments"] = (
        Session().declare_args(1, "", 0x03, 5).declare_args(2, "", 0x40, 0)
        .declare_args(3, "", 0x1c, 1).declare_args(4, "", 0xa0, 3).flush()
        .op(QUEUE_PURGE, 0, 0, Q["q0"], 0).op(QUEUE_DELETE, 0, 0, Q["q0"], 0x02).flush()
        .declare(1, "q0").flush().b)
    s["hard-error-holding-everything"] = (
        Session().declare(2, "", AUTO_DELETE).bind(2, "", "x1", "").op(TX, 0, 1, 0)
        .consume(2, "q0", "c0").consume(2, "", "c1").publish(3, "", "q0")
        .publish(3, "x1", "").flush().ack(2).publish(2, "", "q0")
        .op(CONFIRM_SELECT, 0, 2, 0).op(MISBEHAVE, 0, 7, 2).op(MISBEHAVE, 0, 2, 0).flush()
        .connect(0).get(1, "q0").get(1, "q1").flush().b)
    s["client-close"] = (
        Session().consume(1, "q2", "c0").publish(1, "x2", "k0.k1").flush()
        .op(CONNECTION_CLOSE, 0).flush().b)
    s["perm-revoked-under-consumer"] = (
        Session().connect(1, "u0").consume(1, "q0", "c0", slot=1).publish(1, "", "q0").flush()
        .perm_set("u0", "/", "", "", "").get(2, "q0", slot=1).publish(1, "", "q0").flush()
        .ack(1, slot=1).perm_set("u0", "/", ".*", ".*", ".*").get(2, "q1", slot=1).flush().b)
    s["topic-permission"] = (
        Session().connect(1, "u0").publish(1, "amq.topic", "k0.k1", slot=1)
        .publish(2, "amq.topic", "k1.k0", slot=1).flush()
        .admin(TOPIC_SET, "u0", "/", 0, PAT["^(k0|k1)\\."], PAT[".*"])
        .publish(2, "amq.topic", "k1.k0", slot=1).bind(3, "q1", "amq.topic", "k1.k0", slot=1)
        .flush().admin(TOPIC_CLEAR, "u0", "/", 1).publish(3, "amq.topic", "#", slot=1)
        .flush().b)
    s["delete-user-holding-everything"] = (
        Session().connect(1, "u0").op(QOS, 1, 0, 1).consume(1, "q0", "c0", slot=1)
        .op(TX, 1, 1, 0).publish(2, "", "q1", slot=1).publish(1, "", "q0").publish(1, "", "q0")
        .flush().publish(3, "", "q0", size=6, split=5, slot=1).flush(9)
        .admin(USER_DELETE, "u0").flush().connect(1, "u0").admin(USER_PUT, "u0", "/", 1)
        .connect(1, "u0").perm_set("u0", "/", "^q[01]$", "^(q0|x0|amq\\.default)$", ".*")
        .connect(1, "u0").get(1, "q0", slot=1).publish(1, "", "q0", slot=1).flush().b)
    s["delete-vhost"] = (
        Session().connect(1, "u1", "v1").declare(1, "q0", slot=1).consume(1, "q0", "c1", slot=1)
        .declare(2, "q1", slot=1).publish(2, "", "q0", slot=1).publish(2, "", "q1", slot=1)
        .get(2, "q1", slot=1).flush().publish(3, "", "q1", size=5, split=1, slot=1).flush(3)
        .admin(VHOST_DELETE, "guest", "v1").flush().connect(1, "u1", "v1")
        .admin(VHOST_PUT, "guest", "v1").connect(1, "u1", "v1")
        .perm_set("u1", "v1", ".*", ".*", ".*").connect(1, "u1", "v1")
        .declare(1, "q2", slot=1).flush().b)
    s["channel-limit"] = (
        Session().connect(1, "u0").declare(1, "q0", slot=1).declare(2, "q1", slot=1)
        .declare(3, "q2", slot=1).declare(4, "q0", slot=1).flush()
        .limit(USER_LIMIT, "u0", "/", 0, -1).connect(1, "u0").declare(1, "q0", slot=1)
        .declare(2, "q1", slot=1).declare(3, "q0", slot=1).declare(4, "q1", slot=1)
        .limit(USER_LIMIT, "u0", "/", 0, 1).declare(4, "q0", slot=1).flush().b)
    s["vhost-limits"] = (
        Session().limit(VHOST_LIMIT, "guest", "/", 0, 1).connect(1).flush()
        .limit(VHOST_LIMIT, "guest", "v1", 1, 0).connect(1, "guest", "v1")
        .declare(1, "q0", slot=1).flush().limit(VHOST_LIMIT, "guest", "v1", 1, 2)
        .declare(1, "q0", slot=1).declare(1, "q1", slot=1).declare(1, "q2", slot=1).flush().b)
    s["delete-guest-and-root"] = (
        Session().consume(2, "q1", "c0").publish(1, "", "q1").publish(1, "", "q2").flush()
        .connect(1, "u1").get(1, "q2", slot=1).consume(2, "q3", "c1", slot=1)
        .publish(1, "x3", "", props=0x04).flush().admin(USER_DELETE, "guest").flush()
        .admin(VHOST_DELETE, "guest", "/").flush().admin(VHOST_PUT, "guest", "/")
        .connect(0).admin(USER_PUT, "guest", "/", 2).connect(0)
        .perm_set("guest", "/", ".*", ".*", ".*").connect(0).declare(1, "q0").flush().b)
    return s


def write(out, seeds_by_name):
    os.makedirs(out, exist_ok=True)
    for i, (name, data) in enumerate(seeds_by_name.items()):
        path = os.path.join(out, "%02d-%s" % (i + 1, name))
        with open(path, "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (path, len(data)))


def main():
    if sys.argv[1:] == ["--session"]:
        write(OUT_SESSION, session_seeds())
    else:
        write(OUT, seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
