"""Listeners: --bind on the IPv6 loopback, several listeners from the config file, a bare port
(0.0.0.0 and [::], the IPv6 socket v6-only, as RabbitMQ binds it), a port already in use (a
prompt exit naming the address), and the log context of a connection's lines. Warren only:
these tests need the server process. They need an IPv6 loopback (::1) too, and fail, never
skip, on a machine without one."""

import os
import re
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


def require_ipv6_loopback():
    """Fails the test when ::1 cannot be bound: IPv6 listeners must be tested, not skipped."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        raise AssertionError("this machine has no IPv6 loopback (cannot bind [::1]: %s); the "
                             "listener tests need one (sysctl net.ipv6.conf.lo.disable_ipv6=0)"
                             % e) from None


def free_port_both():
    """A port free on both 127.0.0.1 and ::1 (so that a refusal on the other family means the
    server did not listen there, not that someone else does)."""
    for _ in range(50):
        port = wt.free_port(socket.AF_INET6, "::1")
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
            s6.bind(("::1", port))
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
                    s4.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free on both 127.0.0.1 and ::1")


def assert_refused(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return
    except OSError as e:
        raise AssertionError("connecting to %s port %d: %s, expected 'connection refused'" % (
            host, port, e)) from None
    raise AssertionError("%s port %d accepted a connection, expected it refused" % (host, port))


def conn_lines(text, peer, local):
    """The log lines that name the connection from peer to local ("host:port" or
    "[v6]:port"): [(conn id, user@vhost or None, the whole line)]."""
    pat = re.compile(r"\] conn (\d+) %s -> %s( \S+@\S+)?: " % (re.escape(peer),
                                                                  re.escape(local)))
    out = []
    for line in text.splitlines():
        if peer in line:
            m = pat.search(line)
            assert m, "log line about %s without the context 'conn N %s -> %s': %r" % (
                peer, peer, local, line)
            out.append((m.group(1), (m.group(2) or "").strip() or None, line))
    return out


def listener_config(directory, text):
    """Writes text as warren.conf in directory; returns its path."""
    path = os.path.join(directory, "warren.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


@wt.needs_process
def test_bind_ipv6_loopback():
    """--bind ::1 --port N: pika connects over [::1] and opens a channel; 127.0.0.1:N is
    refused"""
    require_ipv6_loopback()
    port = free_port_both()
    with wt.server(bind="::1", port=port) as srv:
        assert srv.addr == ("::1", port), srv.addr
        conn = wt.pika_connect(("::1", port))
        ch = conn.channel()
        assert ch.is_open
        assert ch.flow(True) is True
        conn.close()
        assert_refused("127.0.0.1", port)
        # The server saw the connection arrive over IPv6.
        with wt.RawConn(("::1", port)) as c:
            c.handshake("open")
            peer = "[::1]:%d" % c.sock.getsockname()[1]
            c.close_connection()
        srv.stop()
        text = srv.stderr_text()
    assert "listening for AMQP connections on [::1]:%d" % port in text, text
    assert "listening for AMQP connections on 127.0.0.1" not in text, text
    lines = conn_lines(text, peer, "[::1]:%d" % port)
    assert any(user == "guest@/" for _, user, _ in lines), lines


@wt.needs_process
def test_two_listeners_from_config():
    """listeners.tcp.a = 127.0.0.1:P1 and listeners.tcp.b = ::1:P2: both serve, each only on
    its own address; the log names both"""
    require_ipv6_loopback()
    p1, p2 = free_port_both(), free_port_both()
    config = {"listeners.tcp.a": "127.0.0.1:%d" % p1, "listeners.tcp.b": "::1:%d" % p2}
    with wt.server(config=config, listen_args=False, port=p1) as srv:
        wt.assert_serves(("127.0.0.1", p1))
        wt.assert_serves(("::1", p2))
        wt.log("  127.0.0.1:%d and [::1]:%d serve" % (p1, p2))
        assert_refused("::1", p1)
        assert_refused("127.0.0.1", p2)
        srv.stop()
        text = srv.stderr_text()
    for addr in ("127.0.0.1:%d" % p1, "[::1]:%d" % p2):
        assert "listening for AMQP connections on %s" % addr in text, \
            "no 'listening for AMQP connections on %s' in the log:\n%s" % (addr, text)


@wt.needs_process
def test_bare_port_listens_on_both_families():
    """listeners.tcp.default = P without --bind: serves on 127.0.0.1 and ::1 (0.0.0.0:P and
    [::]:P, the IPv6 socket v6-only)"""
    require_ipv6_loopback()
    port = free_port_both()
    config = {"listeners.tcp.default": str(port)}
    with wt.server(config=config, listen_args=False, port=port) as srv:
        wt.assert_serves(("127.0.0.1", port))
        wt.assert_serves(("::1", port))
        # v6-only: an IPv4 client reaches the IPv4 socket, not [::] as ::ffff:127.0.0.1.
        peers = []
        for host in ("127.0.0.1", "::1"):
            with wt.RawConn((host, port)) as c:
                c.handshake("open")
                peers.append(c.sock.getsockname()[1])
                c.close_connection()
        srv.stop()
        text = srv.stderr_text()
    for addr in ("0.0.0.0:%d" % port, "[::]:%d" % port):
        assert "listening for AMQP connections on %s" % addr in text, \
            "no 'listening for AMQP connections on %s' in the log:\n%s" % (addr, text)
    assert conn_lines(text, "127.0.0.1:%d" % peers[0], "127.0.0.1:%d" % port)
    assert conn_lines(text, "[::1]:%d" % peers[1], "[::1]:%d" % port)
    assert "::ffff:" not in text, "an IPv4 client was accepted on the IPv6 socket:\n" + text


@wt.needs_process
def test_port_in_use():
    """a listener's port already in use: exit nonzero within seconds, with 'cannot listen on
    ADDR: Address already in use'"""
    require_ipv6_loopback()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy4, \
            socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as busy6, \
            tempfile.TemporaryDirectory() as d:
        busy4.bind(("127.0.0.1", 0))
        busy4.listen(1)
        busy6.bind(("::1", 0))
        busy6.listen(1)
        p4, p6 = busy4.getsockname()[1], busy6.getsockname()[1]
        free = wt.free_port()
        cases = [
            (["--port", str(p4), "--bind", "127.0.0.1"], "127.0.0.1:%d" % p4),
            (["--port", str(p6), "--bind", "::1"], "[::1]:%d" % p6),
            # The second of two listeners: the first one does not keep the server up.
            (["--config", listener_config(d, "listeners.tcp.a = 127.0.0.1:%d\n"
                                             "listeners.tcp.b = 127.0.0.1:%d\n" % (free, p4))],
             "127.0.0.1:%d" % p4),
        ]
        for argv, addr in cases:
            rc, out, err, took = wt.run_server_to_exit(*argv, data_dir=True)
            assert rc != 0, "warren-server exited 0 with %s in use" % addr
            assert took < 5, "warren-server took %.1f s to give up" % took
            want = "cannot listen on %s: Address already in use" % addr
            assert want in out + err, "no %r in the output:\n%s" % (want, out + err)
        assert_refused("127.0.0.1", free)


@wt.needs_process
def test_log_context():
    """a connection's log lines carry 'conn N 127.0.0.1:x -> 127.0.0.1:P', and
    ' guest@/' from the login on"""
    with wt.server() as srv:
        port = srv.addr[1]
        with wt.RawConn(srv.addr) as c:
            c.handshake("open")
            peer = "127.0.0.1:%d" % c.sock.getsockname()[1]
            c.open_channel(1)
            c.close_channel(1)
            c.close_connection()
        srv.stop()
        text = srv.stderr_text()
    lines = conn_lines(text, peer, "127.0.0.1:%d" % port)
    for _, _, line in lines:
        wt.log("    " + line)
    assert len({n for n, _, _ in lines}) == 1, "one connection, several ids: %r" % lines
    login = [i for i, (_, _, line) in enumerate(lines) if "authenticated" in line]
    assert login, "no login line for %s" % peer
    assert all(user is None for _, user, _ in lines[:login[0]]), lines
    after = lines[login[0]:]
    assert len(after) >= 2, "expected the login line and more after it: %r" % lines
    assert all(user == "guest@/" for _, user, _ in after), after


if __name__ == "__main__":
    wt.run([test_bind_ipv6_loopback, test_two_listeners_from_config,
            test_bare_port_listens_on_both_families, test_port_in_use, test_log_context])
