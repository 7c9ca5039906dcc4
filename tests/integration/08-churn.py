"""Connection churn: 1,000 connections, each a raw handshake, channel.open, channel.close and
connection.close, one after another. The broker must still serve afterwards, and (server
process only) its RSS after the loop must be within 2 MiB of its RSS after a 100-connection
warm-up: no per-connection leak. The loop itself was checked against RabbitMQ 3.10."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

MARGIN_KIB = 2048


def churn(addr, n):
    t0 = time.monotonic()
    for i in range(n):
        with wt.RawConn(addr) as c:
            c.handshake("open")
            c.open_channel(1)
            c.close_channel(1)
            c.close_connection()
    return time.monotonic() - t0


def churn_abrupt(addr, n):
    """Clients that vanish without closing, at every stage of the handshake."""
    stages = ["header", "start", "start-ok", "tune", "tune-ok", "open"]
    for i in range(n):
        c = wt.RawConn(addr)
        c.handshake(stages[i % len(stages)])
        if i % len(stages) == len(stages) - 1:
            c.open_channel(1)
        c.close()


def test_churn_serves():
    """1,000 connections opened and closed; the broker still serves"""
    with wt.server() as srv:
        took = churn(srv.addr, 1000)
        wt.log("  1000 connections in %.1f s" % took)
        churn_abrupt(srv.addr, 120)
        wt.assert_serves(srv.addr)


@wt.needs_process
def test_churn_rss():
    """RSS after 1,000 connections (clean and abrupt) within 2 MiB of RSS after warm-up"""
    with wt.server() as srv:
        churn(srv.addr, 100)
        churn_abrupt(srv.addr, 12)
        time.sleep(0.2)
        before = srv.rss_kib()
        took = churn(srv.addr, 1000)
        churn_abrupt(srv.addr, 120)
        # Abruptly closed sockets are noticed asynchronously: let the server reap them.
        time.sleep(0.5)
        wt.assert_serves(srv.addr)
        after = srv.rss_kib()
        wt.log("  1000 connections in %.1f s" % took)
        srv.check_rss_growth(before, after, MARGIN_KIB, "from warm-up to after 1000 connections")


if __name__ == "__main__":
    wt.run([test_churn_serves, test_churn_rss])
