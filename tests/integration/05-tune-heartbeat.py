"""connection.start and connection.tune contents, tune-ok negotiation limits, heartbeats
(sent by the server, keeping a connection alive, dropping a silent client) and the
handshake timeout. Checked against RabbitMQ 3.10.

The handshake-timeout test starts Warren with `handshake_timeout = 1000`; an external
broker must be configured the same way (RabbitMQ: `handshake_timeout = 1000` in
rabbitmq.conf; its default is 10 s)."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


def test_start_contents():
    """connection.start: version 0-9, mechanisms 'PLAIN AMQPLAIN', locale en_US,
    capability authentication_failure_close"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("start")
            s = c.start
            wt.log("  %r" % (s,))
            assert s["version"] == (0, 9), s["version"]
            assert s["mechanisms"] == ["PLAIN", "AMQPLAIN"], s["mechanisms"]
            assert s["locales"] == ["en_US"], s["locales"]
            props = s["server_properties"]
            for key in ("product", "version", "platform", "copyright", "information"):
                assert isinstance(props.get(key), str), "server property %r: %r" % (
                    key, props.get(key))
            caps = props.get("capabilities")
            assert isinstance(caps, dict), props
            assert caps.get("authentication_failure_close") is True, caps


def test_tune_defaults():
    """connection.tune proposes channel_max 2047, frame_max 131072, heartbeat 60"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("tune")
            wt.log("  tune %r" % (c.tune,))
            assert c.tune == (2047, 131072, 60), c.tune
        conn = wt.pika_connect(srv.addr)  # pika takes the server's values
        params = conn._impl.params
        wt.log("  pika negotiated channel_max %d frame_max %d heartbeat %r" % (
            params.channel_max, params.frame_max, params.heartbeat))
        assert (params.channel_max, params.frame_max, params.heartbeat) == (2047, 131072, 60)
        conn.close()


def test_tune_ok_out_of_range():
    """tune-ok outside the server's limits (frame_max < 4096, 0 or above 131072,
    channel_max 0 or above 2047): socket closed, no open-ok"""
    # RabbitMQ 3.10 logs "failed to negotiate connection parameters: negotiated frame_max =
    # 4095 is lower than the minimum allowed value (4096)" and closes the socket after 3 s
    # without a reply. A connection.close is accepted instead only with 530 NOT_ALLOWED
    # naming connection.tune-ok.
    cases = [(2047, 4095, 0), (2047, 0, 0), (2047, 131073, 0), (2047, 1 << 20, 0),
             (0, 131072, 0), (2048, 131072, 0), (65535, 131072, 0)]
    with wt.server() as srv:
        conns = []
        for tune_ok in cases:
            c = wt.RawConn(srv.addr, timeout=10)
            c.handshake("tune")
            c.send_method(0, wt.CONNECTION_TUNE_OK, wt.tune_ok_args(*tune_ok))
            c.send_method(0, wt.CONNECTION_OPEN, wt.open_args())
            conns.append(c)
        for c, tune_ok in zip(conns, cases):
            wt.log("  tune-ok %r:" % (tune_ok,))
            c.expect_refusal(530, ids=wt.CONNECTION_TUNE_OK)
            c.close()
        wt.assert_serves(srv.addr)


def test_tune_ok_accepted_values():
    """tune-ok with smaller limits, or a longer heartbeat than proposed, is accepted; the
    negotiated frame_max is enforced"""
    with wt.server() as srv:
        for tune_ok in ((100, 4096, 0), (1, 4096, 0), (2047, 131072, 61),
                        (2047, 131072, 65535), (2047, 131072, 0)):
            with wt.RawConn(srv.addr) as c:
                c.handshake("open", tune_ok=tune_ok)
                c.open_channel(1)
                c.close_connection()
                wt.log("  tune-ok %r: open-ok" % (tune_ok,))
        with wt.RawConn(srv.addr) as c:
            c.handshake("open", tune_ok=(2047, 4096, 0))
            c.open_channel(1)
            c.send(wt.frame(wt.FRAME_BODY, 1, b"\0" * 4097))
            c.expect_connection_close(501, text_prefix="FRAME_ERROR - ", ids=(0, 0),
                                      send_close_ok=False)
        wt.assert_serves(srv.addr)


def collect_heartbeats(c, seconds, send_every=None):
    """Reads for `seconds`, optionally sending a heartbeat every `send_every` seconds.
    Returns the arrival times (from the start) of the server's heartbeats; fails on any
    other frame or on the socket closing."""
    t0 = time.monotonic()
    next_send = t0
    got = []
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            return got
        if send_every is not None and now >= next_send:
            c.send(wt.heartbeat_frame())
            next_send = now + send_every
        wait = min(t0 + seconds, next_send if send_every else t0 + seconds) - now
        try:
            ftype, channel, payload = c.read_frame(max(0.01, wait))
        except socket.timeout:
            continue
        except wt.Closed:
            raise AssertionError("server closed the connection after %.1f s" % (
                time.monotonic() - t0))
        assert (ftype, channel, payload) == (wt.FRAME_HEARTBEAT, 0, b""), \
            "expected only heartbeats, got frame type %d channel %d" % (ftype, channel)
        got.append(time.monotonic() - t0)


def test_server_sends_heartbeats():
    """heartbeat 1 negotiated: the server sends heartbeat frames at least every second
    (RabbitMQ: every 0.5 s) and keeps a client that heartbeats alive"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("open", tune_ok=(2047, 131072, 1))
            beats = collect_heartbeats(c, 4.0, send_every=0.4)
            wt.log("  server heartbeats at %s" % ", ".join("%.2f" % t for t in beats))
            assert len(beats) >= 3, beats
            gaps = [b - a for a, b in zip([0.0] + beats, beats)]
            assert max(gaps) <= 1.6, "gap of %.2f s between server heartbeats" % max(gaps)
            c.open_channel(1)
            c.close_connection()


def test_no_heartbeats_when_disabled():
    """tune-ok heartbeat 0: no heartbeat frames, and an idle connection stays open"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("open", tune_ok=(2047, 131072, 0))
            try:
                f = c.read_frame(3.0)
                raise AssertionError("server sent frame type %d with heartbeats off" % f[0])
            except socket.timeout:
                pass
            c.open_channel(1)
            c.close_connection()


def test_silent_client_dropped():
    """heartbeat 1 negotiated, client silent: socket closed after two missed intervals
    (RabbitMQ: 3 s after the client's last frame, no connection.close)"""
    with wt.server() as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("open", tune_ok=(2047, 131072, 1))
            took = c.expect_eof(timeout=6.0, allow_heartbeats=True)
            wt.log("  dropped %.2f s after connection.open-ok" % took)
            assert took >= 1.9, "dropped after %.2f s, before two heartbeat intervals" % took
            assert took <= 5.0, took
        wt.assert_serves(srv.addr)


def test_pika_heartbeats_keep_alive():
    """pika with heartbeat=1 stays connected through 3 s of idle processing"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr, heartbeat=1)
        assert conn._impl.params.heartbeat == 1
        ch = conn.channel()
        conn.sleep(3.0)
        assert conn.is_open and ch.is_open
        ch.close()
        conn.close()


def test_handshake_timeout():
    """a client that stops mid-handshake is closed after handshake_timeout (1000 ms)"""
    if wt.EXTERNAL:
        wt.log("  (assumes the external broker has handshake_timeout = 1000)")
    with wt.server(config={"handshake_timeout": 1000}) as srv:
        steps = [("nothing sent", None), ("half a protocol header", "partial"),
                 ("protocol header only", "header"), ("start-ok sent", "start-ok"),
                 ("tune-ok sent", "tune-ok")]
        conns = []
        for what, upto in steps:
            c = wt.RawConn(srv.addr, timeout=10)
            if upto == "partial":
                c.send(b"AMQP")
            elif upto == "start-ok":
                c.handshake("start-ok")
                c.read_tune()
            elif upto == "header":
                c.handshake("start")
            conns.append((what, c, time.monotonic()))
        # A connection that completed the handshake is not affected.
        done = wt.RawConn(srv.addr)
        done.handshake("open", tune_ok=(2047, 131072, 0))
        for what, c, t0 in conns:
            c.expect_eof(timeout=8, allow_heartbeats=False)
            took = time.monotonic() - t0
            wt.log("  %s: closed after %.2f s" % (what, took))
            assert 0.8 <= took <= 5.0, "%s: closed after %.2f s" % (what, took)
            c.close()
        done.expect_silence(0.5)
        done.open_channel(1)
        done.close_connection()
        wt.assert_serves(srv.addr)


@wt.needs_process
def test_config_tune_values():
    """heartbeat, frame_max and channel_max from the config file appear in connection.tune
    and are enforced"""
    config = {"heartbeat": 5, "frame_max": 65536, "channel_max": 100}
    with wt.server(config=config) as srv:
        with wt.RawConn(srv.addr) as c:
            c.handshake("tune")
            assert c.tune == (100, 65536, 5), c.tune
        conn = wt.pika_connect(srv.addr)
        p = conn._impl.params
        assert (p.channel_max, p.frame_max, p.heartbeat) == (100, 65536, 5)
        conn.close()
        with wt.RawConn(srv.addr, timeout=10) as c:
            c.handshake("tune")
            c.send_method(0, wt.CONNECTION_TUNE_OK, wt.tune_ok_args(100, 131072, 5))
            c.send_method(0, wt.CONNECTION_OPEN, wt.open_args())
            c.expect_refusal(530, ids=wt.CONNECTION_TUNE_OK)
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            for n in range(1, 101):
                c.send_method(n, wt.CHANNEL_OPEN, wt.shortstr(""))
            for n in range(1, 101):
                c.expect(wt.CHANNEL_OPEN_OK, channel=n)
            c.send_method(101, wt.CHANNEL_OPEN, wt.shortstr(""))
            c.expect_connection_close(
                530, text="NOT_ALLOWED - number of channels opened (100) has reached the "
                "negotiated channel_max (100)", ids=(0, 0))
        wt.assert_serves(srv.addr)


@wt.needs_process
def test_config_heartbeat():
    """heartbeat = 1 in the config: pika negotiates 1 and stays alive; a silent raw
    client that accepts the proposal is dropped"""
    with wt.server(config={"heartbeat": 1}) as srv:
        conn = wt.pika_connect(srv.addr)
        assert conn._impl.params.heartbeat == 1, conn._impl.params.heartbeat
        conn.sleep(2.5)
        assert conn.is_open
        conn.close()
        with wt.RawConn(srv.addr) as c:
            c.handshake("tune")
            assert c.tune[2] == 1, c.tune
            c.send_method(0, wt.CONNECTION_TUNE_OK, wt.tune_ok_args(c.tune[0], c.tune[1], 1))
            c.send_method(0, wt.CONNECTION_OPEN, wt.open_args())
            c.expect(wt.CONNECTION_OPEN_OK)
            took = c.expect_eof(timeout=6.0)
            assert 1.9 <= took <= 5.0, took


if __name__ == "__main__":
    wt.run([test_start_contents, test_tune_defaults, test_tune_ok_out_of_range,
            test_tune_ok_accepted_values, test_server_sends_heartbeats,
            test_no_heartbeats_when_disabled, test_silent_client_dropped,
            test_pika_heartbeats_keep_alive, test_handshake_timeout, test_config_tune_values,
            test_config_heartbeat])
