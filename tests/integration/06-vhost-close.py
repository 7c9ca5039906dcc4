"""connection.open to an unknown vhost; connection.close from the client; the closing state
after a server-sent connection.close (everything but close/close-ok dropped); SIGTERM with
clients connected (each gets connection.close 320 CONNECTION_FORCED, the server exits 0).
Checked against RabbitMQ 3.10 (its shutdown was observed by sending SIGTERM to beam.smp)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

SHUTDOWN_TEXT = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"


def test_unknown_vhost():
    """connection.open to vhost 'nope' -> 530 "NOT_ALLOWED - vhost nope not found" (10, 40)"""
    import pika.exceptions as pe
    with wt.server() as srv:
        for vhost in ("nope", "", "/nope"):
            with wt.RawConn(srv.addr) as c:
                c.handshake("open-sent", vhost=vhost)
                c.expect_connection_close(530, text="NOT_ALLOWED - vhost %s not found" % vhost,
                                          ids=wt.CONNECTION_OPEN)
        try:
            wt.pika_connect(srv.addr, virtual_host="nope").close()
            raise AssertionError("pika opened vhost 'nope'")
        except pe.ProbableAccessDeniedError as e:
            wt.log("  pika: %s" % e)
            assert "(530)" in str(e) and "NOT_ALLOWED - vhost nope not found" in str(e), e
        wt.assert_serves(srv.addr)


def test_client_close():
    """client-initiated connection.close gets close-ok (with and without open channels)"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            c.close_connection()
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            for n in (1, 2, 3):
                c.open_channel(n)
            c.send_method(0, wt.CONNECTION_CLOSE, wt.close_args(200, "Goodbye"))
            c.expect(wt.CONNECTION_CLOSE_OK, channel=0)
        # A close with an error code from the client is answered the same way.
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            c.open_channel(1)
            c.send_method(0, wt.CONNECTION_CLOSE,
                          wt.close_args(320, "CONNECTION_FORCED - client says so", 20, 10))
            c.expect(wt.CONNECTION_CLOSE_OK, channel=0)
        conn = wt.pika_connect(srv.addr)
        conn.channel()
        conn.close()
        assert conn.is_closed
        wt.assert_serves(srv.addr)


def test_closing_state_drops_methods():
    """after the server's connection.close, methods other than close/close-ok are dropped;
    close-ok then ends the connection"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            c.open_channel(1)
            c.send_method(5, wt.CHANNEL_FLOW, b"\x01")  # 504 on an unopened channel
            m = c.expect(wt.CONNECTION_CLOSE, channel=0)
            assert m.close_fields()[0] == 504, m
            # Ignored while the server waits for close-ok:
            c.send_method(2, wt.CHANNEL_OPEN, wt.shortstr(""))
            c.send_method(1, wt.CHANNEL_FLOW, b"\x01")
            c.send_method(1, wt.CHANNEL_CLOSE, wt.close_args())
            c.send(wt.heartbeat_frame())
            c.expect_silence(1.0)
            c.send_method(0, wt.CONNECTION_CLOSE_OK)
            took = c.expect_eof(timeout=5, allow_heartbeats=False)
            wt.log("  methods ignored; socket closed %.2f s after close-ok" % took)
        wt.assert_serves(srv.addr)


def test_close_crossing():
    """both sides send connection.close: the server answers the client's with close-ok"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            c.send_method(5, wt.CHANNEL_FLOW, b"\x01")
            m = c.expect(wt.CONNECTION_CLOSE, channel=0)
            assert m.close_fields()[0] == 504, m
            c.send_method(0, wt.CONNECTION_CLOSE, wt.close_args(200, "Goodbye"))
            c.expect(wt.CONNECTION_CLOSE_OK, channel=0)
            c.send_method(0, wt.CONNECTION_CLOSE_OK)
            c.expect_eof(timeout=5, allow_heartbeats=False)
        wt.assert_serves(srv.addr)


@wt.needs_process
def test_sigterm_closes_clients():
    """SIGTERM with clients connected: each gets connection.close 320 CONNECTION_FORCED
    (0, 0), and the server exits 0"""
    import pika.exceptions as pe
    with wt.server() as srv:
        raws = []
        for i in range(3):
            c = wt.RawConn(srv.addr, timeout=10)
            c.handshake("open")
            if i:
                c.open_channel(i)
            raws.append(c)
        half = wt.RawConn(srv.addr, timeout=10)  # mid-handshake: just closed
        half.handshake("start")
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        srv.signal(signal.SIGTERM)
        t0 = time.monotonic()
        for c in raws:
            # RabbitMQ closes the socket right after sending this, without waiting for
            # close-ok; the close-ok the helper sends may hit a closed socket.
            c.expect_connection_close(320, text=SHUTDOWN_TEXT, ids=(0, 0), timeout=10)
            c.close()
        half.expect_eof(timeout=10)
        half.close()
        try:
            conn.process_data_events(time_limit=5)
            conn.sleep(1)
            raise AssertionError("pika connection still open after SIGTERM")
        except pe.ConnectionClosedByBroker as e:
            wt.log("  pika: %r" % (e,))
            assert e.reply_code == 320 and e.reply_text == SHUTDOWN_TEXT, e
        assert not ch.is_open
        rc = srv.proc.wait(10)
        wt.log("  server exited with status %d %.2f s after SIGTERM" % (
            rc, time.monotonic() - t0))
        assert rc == 0, rc
        # srv.stop() (at the end of the block) checks the status again.


if __name__ == "__main__":
    wt.run([test_unknown_vhost, test_client_close, test_closing_state_drops_methods,
            test_close_crossing, test_sigterm_closes_clients])
