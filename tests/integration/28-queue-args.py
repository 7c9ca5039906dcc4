"""queue.declare arguments (x-message-ttl, x-max-length, x-queue-type...) checked as RabbitMQ
3.10 checks them when it creates a queue: 406 PRECONDITION_FAILED with its reply texts for a
bad type or value, for an argument only another queue type takes, and for a quorum queue that
is not durable, or exclusive (RabbitMQ also refuses auto-delete and x-max-priority there,
which Warren's replicated queues keep); integers of every width accepted, timestamps and
floats not. The checks happen only when a queue is created: a redeclare is compared for
equivalence instead, a passive declare is not checked, and exclusivity (405) comes first.
Warren logs, once, when a queue is created, the arguments it accepts but does not apply yet.

Each case is one raw queue.declare (any field type, in a given order) and its expected
reply, checked on RabbitMQ 3.10 (WARREN_TEST_ADDR=127.0.0.1:5692 with a RabbitMQ there).
Where Warren deliberately differs, the case says what RabbitMQ does and why, and the
expectation follows the broker's product name in connection.start: x-queue-type "stream" is
refused as an unknown type (Warren has no streams), and where RabbitMQ 3.10 crashes (541
INTERNAL_ERROR closing the connection: an unknown x-queue-master-locator, a server-named
queue of an unknown type) Warren refuses the argument with a 406. Queue names start with
wt28- and are deleted after use, so the file can run repeatedly against one broker."""

import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

QUEUE_DECLARE_OK = (50, 11)
QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)

Q = "wt28-q"
OK = "ok"
GEN = "\0gen\0"  # stands for the generated name of a server-named queue in expected texts


def tagged(tag, fmt, v):
    return (tag, struct.pack(fmt, v))


def i8(v):
    return tagged(b"b", ">b", v)


def u8(v):
    return tagged(b"B", ">B", v)


def i16(v):
    return tagged(b"s", ">h", v)


def u16(v):
    return tagged(b"u", ">H", v)


def u32(v):
    return tagged(b"i", ">I", v)


def i64(v):
    return tagged(b"l", ">q", v)


def ts(v):
    return tagged(b"T", ">Q", v)


def f32(v):
    return tagged(b"f", ">f", v)


def invalid(arg, term, q=Q):
    return (406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/': %s"
            % (arg, q, term))


def other_type(arg, qtype="classic", q=Q):
    return (406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/' of queue"
            " type rabbit_%s_queue" % (arg, q, qtype))


def prop(name, q=Q):
    return (406, "PRECONDITION_FAILED - invalid property '%s' for queue '%s' in vhost '/'"
            % (name, q))


def not_int(t):
    return '"expected integer, got %s"' % t


DURABLE = {"durable": True}
QUORUM = ("x-queue-type", "quorum")
CRASH = ("connection.close", 541, "INTERNAL_ERROR")  # RabbitMQ 3.10's crash

# (arguments in order, declare flags, expected reply[, RabbitMQ's reply where Warren differs])
CASES = [
    # Integers of every width, signed or not, for integer arguments; nothing else.
    ([("x-expires", i8(5))], {}, OK),
    ([("x-expires", u8(5))], {}, OK),
    ([("x-expires", i16(5))], {}, OK),
    ([("x-expires", u16(5))], {}, OK),
    ([("x-expires", 5)], {}, OK),
    ([("x-expires", u32(5))], {}, OK),
    ([("x-expires", i64(5))], {}, OK),
    ([("x-expires", "10")], {}, invalid("x-expires", not_int("longstr"))),
    ([("x-expires", b"10")], {}, invalid("x-expires", not_int("binary"))),
    ([("x-expires", True)], {}, invalid("x-expires", not_int("bool"))),
    ([("x-expires", ts(5))], {}, invalid("x-expires", not_int("timestamp"))),
    ([("x-expires", f32(5.0))], {}, invalid("x-expires", not_int("float"))),
    ([("x-expires", None)], {}, invalid("x-expires", not_int("void"))),
    # Times: x-expires above 0, both at most ten years, a TTL of 0 allowed.
    ([("x-expires", 0)], {}, invalid("x-expires", "{value_zero,0}")),
    ([("x-expires", -1)], {}, invalid("x-expires", "{value_negative,-1}")),
    ([("x-expires", i64(-2**63))], {}, invalid("x-expires",
                                                "{value_negative,-9223372036854775808}")),
    ([("x-expires", 315360000000)], {}, OK),
    ([("x-expires", 315360000001)], {}, invalid("x-expires", "{value_too_large,315360000001}")),
    ([("x-message-ttl", 0)], {}, OK),
    ([("x-message-ttl", -1)], {}, invalid("x-message-ttl", "{value_negative,-1}")),
    ([("x-message-ttl", u32(2**32 - 1))], {}, OK),
    ([("x-message-ttl", 315360000001)], {},
     invalid("x-message-ttl", "{value_too_large,315360000001}")),
    ([("x-message-ttl", "1000")], {}, invalid("x-message-ttl", not_int("longstr"))),
    # Lengths and priorities.
    ([("x-max-length", 0)], {}, OK),
    ([("x-max-length", -1)], {}, invalid("x-max-length", "{value_negative,-1}")),
    ([("x-max-length", "5")], {}, invalid("x-max-length", not_int("longstr"))),
    ([("x-max-length-bytes", i16(-1))], {}, invalid("x-max-length-bytes", "{value_negative,-1}")),
    ([("x-max-priority", 0)], {}, OK),
    ([("x-max-priority", u8(255))], {}, OK),
    ([("x-max-priority", 256)], {}, invalid("x-max-priority", "{max_value_exceeded,256}")),
    ([("x-max-priority", -1)], {}, invalid("x-max-priority", "{value_negative,-1}")),
    ([("x-max-priority", "3")], {}, invalid("x-max-priority", not_int("longstr"))),
    # Strings from a list.
    ([("x-overflow", "drop-head")], {}, OK),
    ([("x-overflow", "reject-publish")], {}, OK),
    ([("x-overflow", "reject-publish-dlx")], {}, OK),
    ([("x-overflow", "drop-tail")], {}, invalid("x-overflow", "invalid_overflow")),
    ([("x-overflow", 1)], {}, invalid("x-overflow", "{unacceptable_type,signedint}")),
    ([("x-overflow", b"drop-head")], {}, invalid("x-overflow", "{unacceptable_type,binary}")),
    ([("x-queue-mode", "lazy")], {}, OK),
    ([("x-queue-mode", "default")], {}, OK),
    ([("x-queue-mode", "eager")], {},
     invalid("x-queue-mode", '"unsupported queue mode \'eager\'"')),
    ([("x-queue-mode", "a\tb")], {}, invalid("x-queue-mode", '"unsupported queue mode \'a\\tb\'"')),
    ([("x-queue-mode", u8(1))], {}, invalid("x-queue-mode", "{unacceptable_type,unsignedbyte}")),
    ([("x-queue-version", 1)], {}, OK),
    ([("x-queue-version", 2)], {}, OK),
    ([("x-queue-version", 3)], {}, invalid("x-queue-version", '"unsupported queue version \'3\'"')),
    ([("x-queue-version", -1)], {}, invalid("x-queue-version", "{value_negative,-1}")),
    ([("x-single-active-consumer", True)], {}, OK),
    ([("x-single-active-consumer", 1)], {},
     invalid("x-single-active-consumer", "{unacceptable_type,signedint}")),
    ([("x-single-active-consumer", "true")], {},
     invalid("x-single-active-consumer", "{unacceptable_type,longstr}")),
    # Dead-lettering: the exchange's type is checked first, with a text of its own; a
    # routing key needs an exchange, which need not exist.
    ([("x-dead-letter-exchange", "wt28-nowhere")], {}, OK),
    ([("x-dead-letter-exchange", "")], {}, OK),
    ([("x-dead-letter-exchange", 1)], {},
     (406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in"
      " queue '%s' in vhost '/'" % Q)),
    ([("x-dead-letter-exchange", b"dlx")], {},
     (406, "PRECONDITION_FAILED - invalid type 'binary' for arg 'x-dead-letter-exchange' in"
      " queue '%s' in vhost '/'" % Q)),
    ([("x-dead-letter-routing-key", "rk")], {},
     invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")),
    ([("x-dead-letter-routing-key", "rk"), ("x-dead-letter-exchange", "dlx")], {}, OK),
    ([("x-dead-letter-exchange", "dlx"), ("x-dead-letter-routing-key", 1)], {},
     invalid("x-dead-letter-routing-key", "{unacceptable_type,signedint}")),
    # Queue types: classic is what Warren's queues are; unknown names are printed as Erlang
    # prints strings (escapes, or a list of codes when a character is not printable).
    ([("x-queue-type", "classic")], {}, OK),
    ([("x-queue-type", "Classic")], {},
     invalid("x-queue-type", '"unsupported queue type \'Classic\'"')),
    ([("x-queue-type", 'a"b\\c')], {},
     invalid("x-queue-type", '"unsupported queue type \'a\\"b\\\\c\'"')),
    ([("x-queue-type", "a\x01b")], {},
     invalid("x-queue-type", "[117,110,115,117,112,112,111,114,116,101,100,32,113,117,101,117,"
             "101,32,116,121,112,101,32,39,97,1,98,39]")),
    ([("x-queue-type", "\u00e9")], {},
     invalid("x-queue-type", '"unsupported queue type \'\u00e9\'"')),
    ([("x-queue-type", 1)], {}, invalid("x-queue-type", "{unacceptable_type,signedint}")),
    ([("x-queue-type", b"classic")], {}, invalid("x-queue-type", "{unacceptable_type,binary}")),
    # Arguments that only other queue types take, in the table's order.
    ([("x-max-age", "1D"), ("x-max-in-memory-length", 5)], {}, other_type("x-max-age")),
    ([("x-max-in-memory-length", 5), ("x-max-age", "1D")], {},
     other_type("x-max-in-memory-length")),
    # Beyond RabbitMQ (whose classic queues refuse them): a delivery limit and a consumer
    # timeout on classic queues.
    ([("x-delivery-limit", 5)], {}, other_type("x-delivery-limit") if wt.EXTERNAL else OK),
    ([("x-consumer-timeout", 5000)], {}, OK),
    ([("x-dead-letter-strategy", "at-least-once")], {}, other_type("x-dead-letter-strategy")),
    ([("x-max-in-memory-length", 5)], {}, other_type("x-max-in-memory-length")),
    ([("x-quorum-initial-group-size", 3)], {}, other_type("x-quorum-initial-group-size")),
    ([("x-queue-leader-locator", "balanced")], {}, other_type("x-queue-leader-locator")),
    ([("x-stream-max-segment-size-bytes", 5)], {}, other_type("x-stream-max-segment-size-bytes")),
    ([("x-initial-cluster-size", 3)], {}, other_type("x-initial-cluster-size")),
    # Arguments RabbitMQ does not know are ignored, consumer arguments included.
    ([("x-foo", 5), ("x-priority", "a"), ("x-cancel-on-ha-failover", "a"), ("x-ha-policy", 1)],
     {}, OK),
    # The order of the checks: x-dead-letter-exchange's type, x-queue-type, then each
    # argument in RabbitMQ's order (not the table's), then the other types' arguments.
    ([("x-expires", 0), ("x-dead-letter-exchange", 1)], {},
     (406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in"
      " queue '%s' in vhost '/'" % Q)),
    ([("x-expires", 0), ("x-queue-type", "foo")], {},
     invalid("x-queue-type", '"unsupported queue type \'foo\'"')),
    ([("x-message-ttl", -1), ("x-expires", 0)], {}, invalid("x-expires", "{value_zero,0}")),
    ([("x-single-active-consumer", 1), ("x-max-priority", 300)], {},
     invalid("x-max-priority", "{max_value_exceeded,300}")),
    ([("x-max-in-memory-length", 5), ("x-expires", 0)], {},
     invalid("x-expires", "{value_zero,0}")),
    # The first of two equal keys counts.
    ([("x-expires", 0), ("x-expires", 10)], {}, invalid("x-expires", "{value_zero,0}")),
    ([("x-expires", 10), ("x-expires", 0)], {}, OK),
    # Classic queues are placed by x-queue-master-locator (not exclusive ones).
    ([("x-queue-master-locator", "min-masters")], {}, OK),
    ([("x-queue-master-locator", "client-local")], {}, OK),
    ([("x-queue-master-locator", b"random")], {}, OK),
    ([("x-queue-master-locator", "nearest")], {"exclusive": True}, OK),
    ([("x-queue-master-locator", "nearest")], {},
     invalid("x-queue-master-locator", "invalid_queue_master_locator"), CRASH),
    ([("x-queue-master-locator", "nearest"), ("x-max-in-memory-length", 5)], {},
     other_type("x-max-in-memory-length")),
    # Quorum queues: durable, with their own arguments. Warren's replicated queues keep
    # exclusive, auto-delete and priorities (issue 14), which RabbitMQ refuses.
    ([QUORUM], DURABLE, OK),
    ([QUORUM], {}, prop("non-durable")),
    ([QUORUM], {"durable": True, "exclusive": True}, OK, prop("exclusive-owner")),
    ([QUORUM], {"durable": True, "auto_delete": True}, OK, prop("auto-delete")),
    ([QUORUM], {"exclusive": True, "auto_delete": True}, prop("non-durable"),
     prop("auto-delete")),
    ([QUORUM, ("x-expires", 0)], {}, invalid("x-expires", "{value_zero,0}")),
    ([QUORUM, ("x-max-priority", 5)], DURABLE, OK, other_type("x-max-priority", "quorum")),
    ([QUORUM, ("x-queue-mode", "lazy")], DURABLE, other_type("x-queue-mode", "quorum")),
    ([QUORUM, ("x-queue-master-locator", "x")], DURABLE,
     other_type("x-queue-master-locator", "quorum")),
    ([QUORUM, ("x-delivery-limit", -1)], DURABLE, OK),
    ([QUORUM, ("x-delivery-limit", "3")], DURABLE, OK),
    ([QUORUM, ("x-dead-letter-strategy", "at-most-once")], DURABLE, OK),
    ([QUORUM, ("x-dead-letter-strategy", "maybe")], DURABLE,
     invalid("x-dead-letter-strategy", "invalid_dlx_strategy")),
    ([QUORUM, ("x-max-in-memory-bytes", -1)], DURABLE,
     invalid("x-max-in-memory-bytes", "{value_negative,-1}")),
    ([QUORUM, ("x-quorum-initial-group-size", 0)], DURABLE,
     invalid("x-quorum-initial-group-size", "{value_zero,0}")),
    ([QUORUM, ("x-quorum-initial-group-size", 3)], DURABLE, OK),
    ([QUORUM, ("x-queue-leader-locator", "nearest")], DURABLE,
     invalid("x-queue-leader-locator", "invalid_queue_locator_arg")),
    ([QUORUM, ("x-queue-leader-locator", 1)], DURABLE,
     invalid("x-queue-leader-locator", "{unacceptable_type,signedint}")),
    ([QUORUM, ("x-queue-leader-locator", "client-local"), ("x-overflow", "reject-publish-dlx"),
      ("x-single-active-consumer", True), ("x-message-ttl", 5), ("x-expires", 1000),
      ("x-max-length", 4), ("x-max-length-bytes", 4), ("x-dead-letter-exchange", "d"),
      ("x-dead-letter-routing-key", "k")], DURABLE, OK),
    ([QUORUM, ("x-max-age", "1D")], DURABLE, other_type("x-max-age", "quorum")),
    # Streams: Warren has none and refuses them as an unknown type; RabbitMQ makes one.
    ([("x-queue-type", "stream")], DURABLE,
     invalid("x-queue-type", '"unsupported queue type \'stream\'"'), OK),
    ([("x-queue-type", "stream")], {},
     invalid("x-queue-type", '"unsupported queue type \'stream\'"'), prop("non-durable")),
    # Server-named queues: neither quorum nor stream ones; the text names the new queue.
    (("", [QUORUM]), DURABLE, (406, "PRECONDITION_FAILED - Cannot declare a server-named queue"
                                    " for type rabbit_quorum_queue")),
    (("", [("x-queue-type", b"stream")]), DURABLE,
     (406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type"
      " rabbit_stream_queue")),
    (("", [("x-expires", 0)]), {}, invalid("x-expires", "{value_zero,0}", q=GEN)),
    (("", [("x-queue-type", "foo")]), {},
     invalid("x-queue-type", '"unsupported queue type \'foo\'"', q=GEN), CRASH),
    # The reserved prefix is refused first.
    (("amq.wt28", [("x-expires", 0)]), {},
     (403, "ACCESS_REFUSED - queue name 'amq.wt28' contains reserved prefix 'amq.*'")),
]


def declare_payload(name, args, passive=False, durable=False, exclusive=False,
                    auto_delete=False, nowait=False):
    """queue.declare's arguments with the x-arguments in the given order (repeats allowed)."""
    bits = (passive << 0) | (durable << 1) | (exclusive << 2) | (auto_delete << 3) | (nowait << 4)
    body = b"".join(wt.shortstr(k) + wt.field_value(v) for k, v in args)
    return (struct.pack(">H", 0) + wt.shortstr(name) + struct.pack(">B", bits) +
            struct.pack(">I", len(body)) + body)


def delete(c, channel, name):
    c.send_method(channel, QUEUE_DELETE, struct.pack(">H", 0) + wt.shortstr(name) + b"\0")
    c.expect(QUEUE_DELETE_OK, channel=channel)


def declare(c, channel, name, args, **flags):
    """Sends queue.declare on channel of the RawConn c and reads the reply: ("ok", queue name),
    (code, text) for a channel.close (answered with close-ok, the channel reopened), or
    ("connection.close", code, text) for a connection.close (answered; c is then closed)."""
    c.send_method(channel, wt.QUEUE_DECLARE, declare_payload(name, args, **flags))
    m = c.read_method()
    if m.ids == QUEUE_DECLARE_OK:
        return (OK, m.reader().shortstr())
    code, text, cls, meth = m.close_fields()
    if m.ids == wt.CONNECTION_CLOSE:
        c.send_method(0, wt.CONNECTION_CLOSE_OK)
        c.expect_eof()
        c.close()
        return ("connection.close", code, text)
    assert m.ids == wt.CHANNEL_CLOSE and m.channel == channel, "unexpected reply %r" % (m,)
    assert (cls, meth) == wt.QUEUE_DECLARE, "channel.close names %d.%d" % (cls, meth)
    c.send_method(channel, wt.CHANNEL_CLOSE_OK)
    c.open_channel(channel)
    return (code, text)


def declared(c, channel, name, args, **flags):
    """declare() that must answer declare-ok."""
    got = declare(c, channel, name, args, **flags)
    assert got == (OK, name), "declare %r %r %r: %r" % (name, args, flags, got)


def matches(got, expected):
    """True if the reply got is the expected one (whose text may contain GEN)."""
    if expected == OK:
        return got[0] == OK
    if len(got) != len(expected) or got[:-1] != expected[:-1]:
        return False
    pattern = re.escape(expected[-1]).replace(re.escape(GEN), r"amq\.gen-[A-Za-z0-9_-]{22}")
    return re.fullmatch(pattern, got[-1]) is not None


def is_rabbitmq(c):
    return c.start["server_properties"].get("product") == "RabbitMQ"


# ---------------------------------------------------------------------------------------
# Tests


def test_cases():
    """each case of the table: one queue.declare of a new queue, its reply code and text
    (or declare-ok; the queue is then deleted)"""
    with wt.server() as srv:
        wt.cleanup(srv.addr, Q)
        c = wt.opened(srv.addr, 1)
        rabbit = is_rabbitmq(c)
        wt.log("  broker: %s" % c.start["server_properties"].get("product"))
        failures = []
        for case in CASES:
            spec, flags, expected = case[:3]
            name, args = spec if isinstance(spec, tuple) else (Q, spec)
            if rabbit and len(case) > 3:
                expected = case[3]
            got = declare(c, 1, name, args, **flags)
            if got[0] == OK:
                delete(c, 1, got[1])
            elif got[0] == "connection.close":
                c = wt.opened(srv.addr, 1)
            if not matches(got, expected):
                failures.append("%r %r: got %r, expected %r" % (args, flags, got, expected))
        wt.log("  %d cases, %d failed" % (len(CASES), len(failures)))
        for f in failures:
            wt.log("    " + f)
        c.close_connection()
        assert not failures, "%d of %d cases failed" % (len(failures), len(CASES))


def test_existing_queue_not_checked():
    """a redeclare of an existing queue is compared (406 inequivalent arg), not checked; a
    passive declare is neither; another connection's exclusive queue -> 405 first; a
    declare with nowait is refused all the same"""
    ineq = ("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': "
            "received %s but current is %s")
    locked = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost "
              "'/'. It could be originally declared on another connection or the exclusive "
              "property value does not match that of the original declaration.")
    with wt.server() as srv:
        wt.cleanup(srv.addr, Q)
        with wt.opened(srv.addr, 1) as c, wt.opened(srv.addr, 1) as other:
            # (x-expires long enough for the queue to outlive the test)
            declared(c, 1, Q, [("x-expires", 600000)])
            got = declare(c, 1, Q, [("x-expires", 0)])
            assert got == (406, ineq % ("x-expires", Q, "'0'", "'600000'")), got
            got = declare(c, 1, Q, [("x-expires", 600000), ("x-max-age", "x")])
            assert got == (OK, Q), got
            got = declare(c, 1, Q, [("x-expires", 0)], passive=True)
            assert got == (OK, Q), got
            wt.log("  redeclare: compared, not checked; passive: neither")
            delete(c, 1, Q)
            declared(c, 1, Q, [], exclusive=True)
            got = declare(other, 1, Q, [("x-expires", 0)], exclusive=True)
            assert got == (405, locked % Q), got
            got = declare(c, 1, Q, [("x-expires", 0)], exclusive=True)
            assert got == (406, ineq % ("x-expires", Q, "the value '0' of type 'signedint'",
                                        "none")), got
            wt.log("  another connection's exclusive queue: 405 before any argument check")
            delete(c, 1, Q)
            c.send_method(1, wt.QUEUE_DECLARE, declare_payload(Q, [("x-expires", 0)],
                                                               nowait=True))
            c.expect_channel_close(1, 406, invalid("x-expires", "{value_zero,0}")[1],
                                   ids=wt.QUEUE_DECLARE)
            c.send_method(1, wt.CHANNEL_CLOSE_OK)
            c.open_channel(1)
            got = declare(c, 1, Q, [], passive=True)
            assert got == (404, "NOT_FOUND - no queue '%s' in vhost '/'" % Q), got
            wt.log("  nowait: refused all the same, no queue made")
            c.close_connection()
            other.close_connection()


def test_redeclare_by_type():
    """a redeclare compares the arguments the queue's type takes, in RabbitMQ's order: a
    classic queue x-queue-version and x-queue-master-locator too, a quorum queue its own
    (x-delivery-limit, not x-queue-version; x-max-priority on Warren, whose replicated queues
    have priorities); x-queue-type "classic" equals none"""
    ineq = ("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': "
            "received %s but current is %s")
    qq = "wt28-quorum"
    with wt.server() as srv:
        wt.cleanup(srv.addr, Q, qq)
        with wt.opened(srv.addr, 1) as c:
            declared(c, 1, Q, [])
            declared(c, 1, Q, [("x-queue-type", "classic")])
            got = declare(c, 1, Q, [("x-queue-type", "quorum")])
            assert got == (406, ineq % ("x-queue-type", Q, "the value 'quorum' of type 'longstr'",
                                        "none")), got
            got = declare(c, 1, Q, [("x-queue-version", 2)])
            assert got == (406, ineq % ("x-queue-version", Q, "the value '2' of type 'signedint'",
                                        "none")), got
            got = declare(c, 1, Q, [("x-queue-master-locator", "random")])
            assert got == (406, ineq % ("x-queue-master-locator", Q,
                                        "the value 'random' of type 'longstr'", "none")), got
            declared(c, 1, Q, [("x-max-in-memory-length", 5)])
            delete(c, 1, Q)
            declared(c, 1, Q, [("x-queue-type", "classic")])
            declared(c, 1, Q, [])
            delete(c, 1, Q)
            wt.log("  classic: x-queue-type classic or none alike; x-queue-version and"
                   " x-queue-master-locator compared")
            args = [QUORUM, ("x-delivery-limit", 3)]
            declared(c, 1, qq, args, durable=True)
            got = declare(c, 1, qq, [QUORUM, ("x-delivery-limit", 5)], durable=True)
            assert got == (406, ineq % ("x-delivery-limit", qq, "'5'", "'3'")), got
            got = declare(c, 1, qq, [("x-delivery-limit", 3)], durable=True)
            assert got == (406, ineq % ("x-queue-type", qq, "none",
                                        "the value 'quorum' of type 'longstr'")), got
            got = declare(c, 1, qq, args + [("x-queue-version", 2)], durable=True)
            assert got == (OK, qq), got
            # RabbitMQ's quorum queues have no priorities: it does not compare x-max-priority.
            # Warren's keep them, and compare it as a classic queue does.
            got = declare(c, 1, qq, args + [("x-max-priority", 5)], durable=True)
            assert got == ((OK, qq) if is_rabbitmq(c) else
                           (406, ineq % ("x-max-priority", qq,
                                         "the value '5' of type 'signedint'", "none"))), got
            delete(c, 1, qq)
            wt.log("  quorum: x-delivery-limit compared, x-queue-version not")
            c.close_connection()


def warnings(srv, name):
    return [line for line in srv.stderr_text().splitlines()
            if "[warning]" in line and ("queue '%s' in vhost '/': arguments not applied yet"
                                        % name) in line]


@wt.needs_process
def test_warning_once():
    """creating a queue with arguments Warren does not apply yet logs one warning naming
    them (the quorum type as a classic queue); a redeclare, a restart that restores the
    durable queue, and queues with only applied arguments (priorities and single active
    consumer among them) log none"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            args = [("x-foo", 1), ("x-max-length", 10), ("x-single-active-consumer", True),
                    ("x-max-priority", 5), ("x-queue-mode", "lazy"), ("x-queue-type", "classic")]
            declared(c, 1, "wt28-applied", args, durable=True)
            declared(c, 1, "wt28-quorum", [QUORUM, ("x-delivery-limit", 3)], durable=True)
            declared(c, 1, "wt28-quorum", [QUORUM, ("x-delivery-limit", 3)], durable=True)
            declared(c, 1, "wt28-plain", [("x-queue-type", "classic"), ("x-queue-version", 2),
                                          ("x-foo", 1)])
            got = declare(c, 1, "wt28-bad", [("x-max-length", 10), ("x-expires", 0)])
            assert got[0] == 406, got
            c.close_connection()
        lines = warnings(srv, "wt28-quorum")
        assert len(lines) == 1 and lines[0].endswith(
            "guest@/: queue 'wt28-quorum' in vhost '/': arguments not applied yet: "
            "x-queue-type 'quorum' (a classic queue here)"), lines
        wt.log("  " + lines[0])
        for name in ("wt28-applied", "wt28-plain", "wt28-bad"):
            assert warnings(srv, name) == [], (name, warnings(srv, name))
        srv.restart()
        with wt.opened(srv.addr, 1) as c:
            got = declare(c, 1, "wt28-quorum", [], passive=True)
            assert got == (OK, "wt28-quorum"), got
            c.close_connection()
        assert len(warnings(srv, "wt28-quorum")) == 1, warnings(srv, "wt28-quorum")
        wt.log("  after a restart restoring the queue: still one warning")


if __name__ == "__main__":
    wt.run([test_cases, test_existing_queue_not_checked, test_redeclare_by_type,
            test_warning_once])
