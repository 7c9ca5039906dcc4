"""basic.get on a queue that pages: past store.queue_window its messages are written to the
store only, and read back when the in-memory ones run out. A basic.get that arrives while
the next messages are still in a store batch that has not completed must wait for it, not
answer get-empty: RabbitMQ never says empty while messages are ready. Publishes and gets go
in one write, so the broker handles the gets in the loop turns that page the messages out.
Queue names start with wt53-."""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

COUNT = 2000
SIZE = 1024  # 2 MB: 30 windows of 64 KB
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)
QUEUE_DECLARE_OK = (50, 11)


def body(i):
    return b"%08d" % i + b"g" * (SIZE - 8)


def declare_durable(c, name):
    args = struct.pack(">H", 0) + wt.shortstr(name) + bytes([0b00010]) + wt.table({})
    c.send_method(1, wt.QUEUE_DECLARE, args)
    c.expect(QUEUE_DECLARE_OK, 1)


def publishes_then_gets(c, name, persistent, gets):
    """COUNT publishes to name, then `gets` basic.get (no-ack) of it, all in one send."""
    props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    out = []
    for i in range(COUNT):
        out.append(wt.method_frame(1, wt.BASIC_PUBLISH, wt.publish_args("", name)))
        out.append(wt.frame(wt.FRAME_HEADER, 1, wt.content_header_payload(SIZE, props)))
        out.append(wt.frame(wt.FRAME_BODY, 1, body(i)))
    get = wt.method_frame(1, BASIC_GET, struct.pack(">H", 0) + wt.shortstr(name) + b"\x01")
    c.send(b"".join(out) + get * gets)


@wt.needs_process
def test_get_waits_for_paged_messages():
    """2,000 publishes of 1 KiB to a durable queue with a 64 KB window and 2,000 gets in the
    same write, persistent and transient: every get answers get-ok, in publish order, and
    one more get answers get-empty"""
    with wt.server(config={"store.queue_window": "64KB"}) as srv:
        with wt.opened(srv.addr, 1, timeout=30) as c:
            for persistent in (True, False):
                name = "wt53-%s" % ("persistent" if persistent else "transient")
                declare_durable(c, name)
                publishes_then_gets(c, name, persistent, COUNT + 1)
                for i in range(COUNT):
                    m = c.read_method()
                    assert m.ids == BASIC_GET_OK, \
                        "%s: get %d answered %s with messages ready" % (name, i, m.name)
                    _, got, _ = wt.read_content(c, 1)
                    assert got == body(i), "%s: get %d returned message %r" % (
                        name, i, got[:8])
                m = c.read_method()
                assert m.ids == BASIC_GET_EMPTY, "%s: the last get answered %s" % (name, m.name)


@wt.needs_process
def test_connection_closed_while_get_waits():
    """a client that sends its publishes and gets and closes the socket at once, its gets
    still waiting for the store: the broker handles what it received, keeps serving, and the
    queue holds whatever the gets did not take. (The client closes with get-oks unread, so
    its kernel resets the connection, and a reset discards what the broker's kernel had
    not handed over yet: how much is handled varies.)"""
    with wt.server(config={"store.queue_window": "64KB"}) as srv:
        for round_ in range(5):
            name = "wt53-abandoned-%d" % round_
            with wt.opened(srv.addr, 1, timeout=30) as c:
                declare_durable(c, name)
                publishes_then_gets(c, name, True, COUNT)
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            n = ch.queue_declare(name, durable=True, passive=True).method.message_count
            assert 0 <= n <= COUNT, "queue %s holds %d" % (name, n)
            conn.close()
        wt.assert_serves(srv.addr)


if __name__ == "__main__":
    wt.run([test_get_waits_for_paged_messages, test_connection_closed_while_get_waits],
           timeout=120)
