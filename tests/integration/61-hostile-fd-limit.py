"""Hostile clients: connections up to the file-descriptor limit. A client that holds every
file descriptor the broker may open must not make it spin: accept() failing with EMFILE
pauses accepting for a while (the listeners back off), a connection over the limit is
closed at once rather than left hanging, the log gets a few lines rather than one per
failed accept(), a well-behaved client already connected keeps being served, and once the
attacker lets go a new client connects again. The listen backlog is the 1024 Warren asks
for, not libevent's 128. (Server-process tests: the limit is lowered with prlimit on the
running broker.)"""

import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

FD_LIMIT = 64  # the broker uses 16 when idle: room for some 45 connections
BACKLOG = 1024  # what Warren asks listen() for
HOLD = 5.0  # seconds the attacker holds its connections
EXTRA = 3  # connections that queue up behind the one that found the limit


def accept_lines(text):
    return sum(1 for line in text.splitlines() if "accept" in line)


def refused(c, timeout):
    """True if the broker closed (or reset) the RawConn c within timeout seconds."""
    try:
        c.read_all(timeout)
    except AssertionError:
        return False
    except OSError:
        pass
    return True


@wt.needs_process
def test_listen_backlog():
    """`ss -ltn` shows the listening socket's backlog as 1024 (or net.core.somaxconn if
    that is lower), not libevent's default of 128"""
    with open("/proc/sys/net/core/somaxconn") as f:
        want = min(BACKLOG, int(f.read()))
    with wt.server() as srv:
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % srv.port], check=True,
                             capture_output=True, text=True).stdout
        wt.log("  ss -ltn: %s" % out.strip())
        rows = [line.split() for line in out.splitlines() if line.strip()]
        assert rows, "ss shows no listening socket on port %d" % srv.port
        for row in rows:
            assert int(row[2]) == want, "listen backlog %s on %s, expected %d" % (
                row[2], row[3], want)


@wt.needs_process
def test_connections_up_to_the_fd_limit():
    """with a limit of 64 open files, raw connections open until one gets no
    connection.start, held 5 s: the broker uses little CPU, logs a few lines, closes the
    connections over the limit, the watcher is served throughout; afterwards a new pika
    client connects"""
    import pika.exceptions

    with wt.server() as srv:
        resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        wt.log("  broker's open-files limit lowered to %d (it has %d open)" % (
            FD_LIMIT, len(os.listdir("/proc/%d/fd" % srv.pid))))
        with watcher.Watcher(srv.addr) as w:
            held, over = [], None
            for _ in range(4 * FD_LIMIT):
                c = wt.RawConn(srv.addr, timeout=2)
                try:
                    c.handshake("open")  # open: the handshake timeout does not close it
                except (AssertionError, wt.Closed, OSError):
                    over = c
                    break
                held.append(c)
            assert over is not None, "the broker took %d connections under a limit of %d" % (
                len(held), FD_LIMIT)
            wt.log("  %d connections open, the next one was not served" % len(held))
            queued = [wt.RawConn(srv.addr) for _ in range(EXTRA)]
            for c in queued:
                c.send_header()

            cpu0 = srv.cpu_seconds()
            lines0 = accept_lines(srv.stderr_text())
            t0 = time.monotonic()
            time.sleep(HOLD)
            cpu = srv.cpu_seconds() - cpu0
            wall = time.monotonic() - t0
            lines = accept_lines(srv.stderr_text()) - lines0
            wt.log("  holding %d connections for %.1f s: %.2f s of broker CPU, %d log lines "
                   "about accept" % (len(held), wall, cpu, lines))
            w.check("at the file-descriptor limit")
            assert cpu < 0.3 * wall, "the broker used %.2f s of CPU in %.1f s at the limit" % (
                cpu, wall)
            assert lines < 50, "the broker logged %d lines about accept in %.1f s" % (
                lines, wall)
            # Over the limit: closed by the broker, not left waiting in the backlog.
            for c in [over] + queued:
                assert refused(c, 1.0), "a connection over the limit was left hanging"
            wt.log("  the %d connections over the limit were closed by the broker" % (
                1 + EXTRA))

            for c in held + [over] + queued:
                c.close()
            t1 = time.monotonic()
            while True:
                try:
                    wt.assert_serves(srv.addr)
                    break
                except pika.exceptions.AMQPConnectionError as e:
                    assert time.monotonic() - t1 < 5, "no new connection 5 s after the " \
                        "attacker let go: %r" % (e,)
                    time.sleep(0.2)
            wt.log("  a new pika connection opened %.2f s after the attacker let go" % (
                time.monotonic() - t1))
        text = srv.stderr_text()
        wt.log("  broker log about the limit:\n" + "\n".join(
            "    " + line for line in text.splitlines()
            if "accept" in line and "accepting AMQP connection" not in line))


wt.run([test_listen_backlog, test_connections_up_to_the_fd_limit])
