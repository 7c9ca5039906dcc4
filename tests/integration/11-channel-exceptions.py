"""Channel exceptions: the server closes one channel (channel.close with a soft reply code)
and the connection lives on. Until the messaging core exists, the one channel exception
Warren raises is RabbitMQ's max_message_size check: a basic.publish whose content is larger
than max_message_size gets channel.close 406 PRECONDITION_FAILED "message size N is larger
than configured max size M", naming basic.publish (60, 40). RabbitMQ checks once the whole
body has arrived, Warren at the content header; either way the client sees the same close.
Until the client's close-ok, the closed channel drops whatever else arrives on it (the rest
of the body, more publishes, channel.flow) without an answer, and then it can be opened
again. Checked against RabbitMQ 3.10.

The Warren process runs with max_message_size = 1000, so oversized bodies are cheap. An
external broker's limit cannot be set from here: with WARREN_TEST_ADDR the limit is
RabbitMQ's default (134217728 bytes) and the same tests send bodies of 134217729 bytes, a
fraction of a second each over loopback."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

if wt.EXTERNAL:
    MAX = 134217728  # RabbitMQ's default max_message_size
else:
    MAX = 1000
CONFIG = {"max_message_size": MAX}  # (not applied to an external broker)
TOO_BIG = "PRECONDITION_FAILED - message size %d is larger than configured max size %d" % (
    MAX + 1, MAX)


def assert_flow_ok(c, channel):
    """channel.flow active=true on channel is answered with flow-ok: the channel is alive."""
    c.send_method(channel, wt.CHANNEL_FLOW, b"\x01")
    m = c.expect(wt.CHANNEL_FLOW_OK, channel=channel)
    assert m.args == b"\x01", m.args


def test_oversized_publish_closes_channel():
    """a publish over max_message_size -> channel.close 406 (60, 40) on its channel; after
    close-ok the channel opens again, and another channel was never affected"""
    with wt.server(config=CONFIG) as srv:
        with wt.opened(srv.addr, 1, 2) as c:
            # Several body frames, so that with Warren most arrive after its channel.close.
            wt.publish(c, 1, "", b"x" * (MAX + 1), chunk=None if wt.EXTERNAL else 400)
            c.expect_channel_close(1, 406, text=TOO_BIG, ids=wt.BASIC_PUBLISH)
            assert_flow_ok(c, 2)
            c.send_method(1, wt.CHANNEL_CLOSE_OK)
            c.open_channel(1)
            assert_flow_ok(c, 1)
            assert_flow_ok(c, 2)
            c.close_connection()
        wt.assert_serves(srv.addr)


def test_closing_channel_ignores_frames():
    """between the server's channel.close and the client's close-ok, publishes (with content)
    and channel.flow on that channel get no answer and do not close the connection"""
    with wt.server(config=CONFIG) as srv:
        with wt.opened(srv.addr, 1, 2) as c:
            wt.publish(c, 1, "", b"x" * (MAX + 1), chunk=None if wt.EXTERNAL else 300)
            c.expect_channel_close(1, 406, text=TOO_BIG, ids=wt.BASIC_PUBLISH)
            # Each would be answered on an open channel: a mandatory publish to a missing
            # exchange (404 on RabbitMQ), a second oversized one (406), flow (flow-ok).
            wt.publish(c, 1, "", b"x" * 10, exchange="no-such-exchange", mandatory=True)
            wt.publish(c, 1, "", b"x" * (MAX + 1))
            c.send_method(1, wt.CHANNEL_FLOW, b"\x01")
            c.expect_silence(0.5)
            assert_flow_ok(c, 2)
            c.send_method(1, wt.CHANNEL_CLOSE_OK)
            c.open_channel(1)
            assert_flow_ok(c, 1)
            c.close_connection()
        wt.assert_serves(srv.addr)


def test_crossing_channel_close():
    """the client's own channel.close crossing the server's: answered with close-ok, and the
    channel stays closing (a channel.open there is 504) until the client's close-ok"""
    with wt.server(config=CONFIG) as srv:
        with wt.opened(srv.addr, 1) as c:
            wt.publish(c, 1, "", b"x" * (MAX + 1))
            c.expect_channel_close(1, 406, text=TOO_BIG, ids=wt.BASIC_PUBLISH)
            c.send_method(1, wt.CHANNEL_CLOSE, wt.close_args())
            c.expect(wt.CHANNEL_CLOSE_OK, channel=1)
            c.send_method(1, wt.CHANNEL_CLOSE_OK)
            c.expect_silence(0.3)
            c.open_channel(1)
            assert_flow_ok(c, 1)
            c.close_connection()
        with wt.opened(srv.addr, 1) as c:
            wt.publish(c, 1, "", b"x" * (MAX + 1))
            c.expect_channel_close(1, 406, text=TOO_BIG, ids=wt.BASIC_PUBLISH)
            c.send_method(1, wt.CHANNEL_OPEN, wt.shortstr(""))
            c.expect_connection_close(504, text="CHANNEL_ERROR - second 'channel.open' seen",
                                      ids=wt.CHANNEL_OPEN)
        wt.assert_serves(srv.addr)


def test_stray_content_on_closing_channel():
    """a content header with no publish before it is 505 even on a closing channel (the
    refused message's own body frames are dropped quietly)"""
    with wt.server(config=CONFIG) as srv:
        with wt.opened(srv.addr, 1) as c:
            wt.publish(c, 1, "", b"x" * (MAX + 1))
            c.expect_channel_close(1, 406, text=TOO_BIG, ids=wt.BASIC_PUBLISH)
            c.send(wt.content_header_frame(1, 10))
            c.expect_connection_close(
                505, text="UNEXPECTED_FRAME - expected method frame, got non method frame "
                "instead", ids=(0, 0))
        wt.assert_serves(srv.addr)


def test_pika_oversized_publish():
    """pika: basic_publish over the limit -> ChannelClosedByBroker(406, ...) from it or the
    next channel operation; the connection stays open and a new channel publishes"""
    import pika.exceptions as pe
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        try:
            ch.basic_publish(exchange="", routing_key="nowhere", body=b"x" * (MAX + 1))
            ch.flow(True)
        except pe.ChannelClosedByBroker as e:
            wt.log("  pika: %r" % e)
            assert (e.reply_code, e.reply_text) == (406, TOO_BIG), e
        else:
            raise AssertionError("no ChannelClosedByBroker after publishing %d bytes" % (MAX + 1))
        assert ch.is_closed
        assert conn.is_open, "the connection closed with the channel"
        ch2 = conn.channel()
        ch2.basic_publish(exchange="", routing_key="nowhere", body=b"x" * MAX)
        assert ch2.flow(True) is True
        assert ch2.is_open and conn.is_open
        conn.close()


def test_publish_of_max_size_accepted():
    """a publish of exactly max_message_size bytes is accepted: the channel still answers"""
    with wt.server(config=CONFIG) as srv:
        with wt.opened(srv.addr, 1) as c:
            wt.publish(c, 1, "", b"x" * MAX)
            assert_flow_ok(c, 1)
            wt.publish(c, 1, "", b"")
            assert_flow_ok(c, 1)
            c.close_connection()


if __name__ == "__main__":
    wt.run([test_oversized_publish_closes_channel, test_closing_channel_ignores_frames,
            test_crossing_channel_close, test_stray_content_on_closing_channel,
            test_pika_oversized_publish, test_publish_of_max_size_accepted])
