"""The channel layer: channel.open/close/close-ok, channel.flow, methods that are not valid
on a channel in its state, and many channels on one connection. Only connection- and
channel-class methods are used (no messaging core). Checked against RabbitMQ 3.10.

Not covered here: a server-initiated channel.close and the rule that a channel the server
closed drops the client's methods until close-ok. Every soft (channel-level) error that
RabbitMQ raises comes from a messaging-core method (queue, exchange, basic), so those
belong with the messaging core's tests."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


def replies(c, count):
    """Reads count methods; returns {channel: [method ids in arrival order]}. Replies on
    different channels may interleave in any order (RabbitMQ runs a process per channel);
    on one channel they come in order."""
    got = {}
    for _ in range(count):
        m = c.read_method()
        got.setdefault(m.channel, []).append(m.ids)
    return got


def test_channel_open_ok_and_close():
    """channel.open -> open-ok; channel.close -> close-ok (with any reply code); the
    connection is unaffected"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1, 2) as c:
            c.send_method(1, wt.CHANNEL_CLOSE, wt.close_args(200, "bye"))
            c.expect(wt.CHANNEL_CLOSE_OK, channel=1)
            # A client-side error close (as a client does after its own exception).
            c.send_method(2, wt.CHANNEL_CLOSE,
                          wt.close_args(406, "PRECONDITION_FAILED - client", 60, 40))
            c.expect(wt.CHANNEL_CLOSE_OK, channel=2)
            c.open_channel(1)
            c.open_channel(2)
            c.close_connection()
        wt.assert_serves(srv.addr)


def test_channel_open_ok_reply():
    """channel.open-ok carries an empty long string (reserved-1)"""
    with wt.server() as srv:
        with wt.opened(srv.addr) as c:
            c.send_method(1, wt.CHANNEL_OPEN, wt.shortstr(""))
            m = c.expect(wt.CHANNEL_OPEN_OK, channel=1)
            assert m.args == b"\x00\x00\x00\x00", m.args
            c.close_connection()


def test_flow_active_true():
    """channel.flow active=true -> flow-ok active=true (raw and pika)"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            c.send_method(1, wt.CHANNEL_FLOW, b"\x01")
            m = c.expect(wt.CHANNEL_FLOW_OK, channel=1)
            assert m.args == b"\x01", m.args
            c.close_connection()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        assert ch.flow(True) is True
        assert ch.is_open
        conn.close()


def test_flow_active_false():
    """channel.flow active=false -> 540 "NOT_IMPLEMENTED - active=false" (20, 20)"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            c.send_method(1, wt.CHANNEL_FLOW, b"\x00")
            c.expect_connection_close(540, text="NOT_IMPLEMENTED - active=false",
                                      ids=wt.CHANNEL_FLOW)
        wt.assert_serves(srv.addr)


def test_unexpected_channel_methods():
    """flow-ok or close-ok from the client on an open channel -> 503 COMMAND_INVALID"""
    with wt.server() as srv:
        for ids, args in ((wt.CHANNEL_FLOW_OK, b"\x01"), (wt.CHANNEL_CLOSE_OK, b"")):
            with wt.opened(srv.addr, 1) as c:
                c.send_method(1, ids, args)
                c.expect_connection_close(503, text="COMMAND_INVALID - unimplemented method",
                                          ids=ids)
        wt.assert_serves(srv.addr)


def test_connection_methods_after_open():
    """connection.open or tune-ok again on channel 0 after the handshake -> 504"""
    with wt.server() as srv:
        for ids, args in ((wt.CONNECTION_OPEN, wt.open_args()),
                          (wt.CONNECTION_TUNE_OK, wt.tune_ok_args(2047, 131072, 0)),
                          (wt.CONNECTION_START_OK, wt.start_ok_args())):
            with wt.opened(srv.addr, 1) as c:
                c.send_method(0, ids, args)
                c.expect_connection_close(504, text_prefix="CHANNEL_ERROR - ", ids=ids)
        wt.assert_serves(srv.addr)


def test_many_channels():
    """2047 channels open on one connection (pipelined); the 2048th -> 530"""
    with wt.server() as srv:
        with wt.opened(srv.addr) as c:
            for n in range(1, 2048):
                c.send_method(n, wt.CHANNEL_OPEN, wt.shortstr(""))
            got = replies(c, 2047)
            assert got == {n: [wt.CHANNEL_OPEN_OK] for n in range(1, 2048)}, got
            wt.log("  2047 channels open")
            # Close and reopen a few while the others stay open.
            for n in (1, 1000, 2047):
                c.close_channel(n)
                c.open_channel(n)
            c.send_method(2048, wt.CHANNEL_OPEN, wt.shortstr(""))
            c.expect_connection_close(
                530, text="NOT_ALLOWED - number of channels opened (2047) has reached the "
                "negotiated channel_max (2047)", ids=(0, 0))
        wt.assert_serves(srv.addr)


def test_pipelined_open_close():
    """open, flow and close pipelined on 200 channels without waiting: each channel's
    replies in order"""
    with wt.server() as srv:
        with wt.opened(srv.addr) as c:
            data = b""
            for n in range(1, 201):
                data += wt.method_frame(n, wt.CHANNEL_OPEN, wt.shortstr(""))
                data += wt.method_frame(n, wt.CHANNEL_FLOW, b"\x01")
                data += wt.method_frame(n, wt.CHANNEL_CLOSE, wt.close_args())
            c.send(data)
            got = replies(c, 600)
            want = [wt.CHANNEL_OPEN_OK, wt.CHANNEL_FLOW_OK, wt.CHANNEL_CLOSE_OK]
            assert got == {n: want for n in range(1, 201)}, got
            c.close_connection()
        wt.assert_serves(srv.addr)


if __name__ == "__main__":
    wt.run([test_channel_open_ok_and_close, test_channel_open_ok_reply, test_flow_active_true,
            test_flow_active_false, test_unexpected_channel_methods,
            test_connection_methods_after_open, test_many_channels, test_pipelined_open_close])
