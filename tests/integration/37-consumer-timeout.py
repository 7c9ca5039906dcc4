"""The consumer acknowledgement timeout: a delivery left unacknowledged longer than
consumer_timeout (the config file's, milliseconds) or its queue's x-consumer-timeout closes
its channel with 406 PRECONDITION_FAILED and RabbitMQ's text, naming no method (0, 0); its
messages are back in the queue at once, before the client's close-ok; the log names the
consumer tag, the queue and the delivery tag. basic.get deliveries count too, as in
RabbitMQ. Deliveries acked in time keep the channel open however long it lives; 0 turns the
timeout off for a queue; a queue's own timeout wins over the server's both ways. A connection
blocked by a resource alarm (Warren stops reading it) is not timed out until it is read
again. The text and the basic.get rule were checked against RabbitMQ 3.10 run by hand with
consumer_timeout = 3000 (its channels look once per channel_tick_interval).

Timing figures go to the log; the assertions only bound them loosely (a timeout of 1 s must
not fire before 0.9 s, and fires within 5 s). These tests set the server's consumer_timeout
in its config file: they need the server process. Queue names start with wt37-."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.spec as spec  # noqa: E402

wt.name_pika_methods()

B = spec.Basic
TIMEOUT_MS = 1000


def timeout_text(channel, ms):
    return ("PRECONDITION_FAILED - delivery acknowledgement on channel %d timed out. Timeout "
            "value used: %d ms. This timeout value can be configured, see consumers doc guide "
            "to learn more" % (channel, ms))


def declare(conn, q, **args):
    """Declares q anew (arguments args) on a channel of conn, with m0..m<n-1> in it when
    n= is given; returns a confirm channel of conn."""
    n = args.pop("n", 1)
    ch = conn.channel()
    wt.fresh_queue(ch, q, arguments=args or None)
    ch.close()
    pub = wt.confirm_channel(conn)
    wt.publish_confirmed(pub, q, n)
    return pub


def consume_unacked(c, channel, q, tag, n=1):
    """basic.consume on the RawConn c, reads n deliveries; returns the monotonic time the
    first arrived."""
    wt.call_pika(c, channel, B.Consume(queue=q, consumer_tag=tag), B.ConsumeOk)
    since = None
    for _ in range(n):
        c.expect(wt.method_ids(B.Deliver), channel=channel)
        since = since or time.monotonic()
        wt.read_content(c, channel)
    return since


def closed_after(c, channel, since, ms, what):
    """Expects channel.close 406 with the timeout text for ms on channel; returns (and logs)
    the seconds since `since`, bounded loosely."""
    c.expect_channel_close(channel, 406, text=timeout_text(channel, ms), ids=(0, 0), timeout=10)
    took = time.monotonic() - since
    wt.log("  %s: channel %d closed after %.2f s (timeout %d ms)" % (what, channel, took, ms))
    assert ms / 1000 * 0.9 <= took <= ms / 1000 + 5, "%s: closed after %.2f s" % (what, took)
    return took


@wt.needs_process
def test_consumer_times_out():
    """consumer_timeout = 1000: a consumer that does not ack gets channel.close 406 with
    RabbitMQ's text after about 1 s; before its close-ok, its messages are ready again and
    its consumer gone; the log line names consumer tag, queue and delivery tag; the
    connection and its other channels live on"""
    q = "wt37-consume"
    with wt.server(config={"consumer_timeout": TIMEOUT_MS}) as srv:
        conn = wt.pika_connect(srv.addr)
        pub = declare(conn, q, n=3)
        with wt.opened(srv.addr, 1, 2) as c:
            since = consume_unacked(c, 1, q, "slow", n=3)
            closed_after(c, 1, since, TIMEOUT_MS, "consumer")
            ok = pub.queue_declare(q, passive=True).method
            assert (ok.message_count, ok.consumer_count) == (3, 0), ok
            wt.log("  before close-ok: 3 ready, no consumer")
            wt.send_pika(c, 1, spec.Channel.CloseOk())
            wt.call_pika(c, 2, spec.Channel.Flow(active=True), spec.Channel.FlowOk)
            c.close_connection()
        log = srv.stderr_text()
        line = ("consumer 'slow' on channel 1 and queue '%s' in vhost '/' has timed out "
                "waiting for a consumer acknowledgement of a delivery with delivery tag = 1. "
                "Timeout used: %d ms. This timeout value can be configured, see consumers "
                "doc guide to learn more" % (q, TIMEOUT_MS))
        assert "[warning]" in log and line in log, log[-3000:]
        wt.log("  log: ..." + line[:80] + "...")
        pub.queue_delete(q)
        conn.close()


@wt.needs_process
def test_basic_get_times_out():
    """a basic.get delivery not acked: the channel is closed the same way (RabbitMQ does
    too); the log says consumer 'none'"""
    q = "wt37-get"
    with wt.server(config={"consumer_timeout": TIMEOUT_MS}) as srv:
        conn = wt.pika_connect(srv.addr)
        pub = declare(conn, q)
        with wt.opened(srv.addr, 1) as c:
            wt.send_pika(c, 1, B.Get(queue=q))
            c.expect(wt.method_ids(B.GetOk), channel=1)
            wt.read_content(c, 1)
            closed_after(c, 1, time.monotonic(), TIMEOUT_MS, "basic.get")
            c.close()
        assert "consumer 'none' on channel 1 and queue '%s'" % q in srv.stderr_text()
        pub.queue_delete(q)
        conn.close()


@wt.needs_process
def test_acked_in_time():
    """consumer_timeout = 1000, prefetch 1: six messages, each acked 0.5 s after it arrives
    (3 s in all, the channel's oldest delivery changing each time): the channel stays open;
    so does a consumer with auto-ack, which has nothing unacked"""
    q = "wt37-in-time"
    with wt.server(config={"consumer_timeout": TIMEOUT_MS}) as srv:
        conn = wt.pika_connect(srv.addr)
        declare(conn, q, n=6)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)
        got = []
        ch.basic_consume(q, lambda ch, m, p, body: got.append((time.monotonic(), m)))
        t0 = time.monotonic()
        acked = 0
        while acked < 6:
            assert time.monotonic() - t0 < 15, "only %d of 6 acked" % acked
            conn.process_data_events(0.02)
            if len(got) > acked and time.monotonic() - got[acked][0] >= 0.5:
                ch.basic_ack(got[acked][1].delivery_tag)
                acked += 1
        conn.process_data_events(0.3)
        assert ch.is_open
        wt.log("  6 messages acked 0.5 s each over %.1f s: channel open" % (time.monotonic() - t0))
        declare(conn, q + "-auto", n=2)
        auto = conn.channel()
        n = []
        auto.basic_consume(q + "-auto", lambda ch, m, p, body: n.append(body), auto_ack=True)
        wt.wait_until(lambda: len(n) == 2, 5, "auto-ack deliveries", conns=[conn])
        conn.process_data_events(1.5)
        assert auto.is_open and ch.is_open
        auto.queue_delete(q)
        auto.queue_delete(q + "-auto")
        conn.close()


@wt.needs_process
def test_queue_timeout():
    """a queue's x-consumer-timeout wins over the server's: 1000 on a queue times out under
    the default 30 minutes; 0 turns it off (not closed after 2.5 s while a queue without it
    on the same server, consumer_timeout = 1000, closes its channel); 1500 under the
    server's 1000 is 1500"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        declare(conn, "wt37-q1000", **{"x-consumer-timeout": 1000})
        with wt.opened(srv.addr, 1) as c:
            closed_after(c, 1, consume_unacked(c, 1, "wt37-q1000", "a"), 1000,
                         "x-consumer-timeout 1000, server default")
            c.close()
        conn.close()
    with wt.server(config={"consumer_timeout": TIMEOUT_MS}) as srv:
        conn = wt.pika_connect(srv.addr)
        declare(conn, "wt37-off", **{"x-consumer-timeout": 0})
        declare(conn, "wt37-server")
        declare(conn, "wt37-q1500", **{"x-consumer-timeout": 1500})
        with wt.opened(srv.addr, 1, 2, 3) as c:
            since_off = consume_unacked(c, 1, "wt37-off", "off")
            since = consume_unacked(c, 2, "wt37-server", "server")
            since_1500 = consume_unacked(c, 3, "wt37-q1500", "q1500")
            closed_after(c, 2, since, TIMEOUT_MS, "server's 1000")
            closed_after(c, 3, since_1500, 1500, "x-consumer-timeout 1500")
            wt.send_pika(c, 2, spec.Channel.CloseOk())
            wt.send_pika(c, 3, spec.Channel.CloseOk())
            c.expect_silence(max(0, 2.5 - (time.monotonic() - since_off)))
            wt.call_pika(c, 1, spec.Channel.Flow(active=True), spec.Channel.FlowOk)
            wt.log("  x-consumer-timeout 0: channel 1 open after %.1f s"
                   % (time.monotonic() - since_off))
            c.close_connection()
        conn.close()


@wt.needs_process
def test_blocked_connection_not_timed_out():
    """a connection that consumes (one delivery unacked) and publishes past the memory
    watermark is blocked and not read: its channel is not closed while blocked (2.5 s, the
    timeout being 1 s), and is closed once a purge ends the alarm and it is read again"""
    config = {"consumer_timeout": TIMEOUT_MS, "vm_memory_high_watermark.absolute": 2 << 20}
    with wt.server(config=config) as srv:
        conn = wt.pika_connect(srv.addr)
        declare(conn, "wt37-blocked")
        conn.close()
        conn = wt.pika_connect(srv.addr)  # never publishes: never blocked
        admin = conn.channel()
        admin.queue_declare("wt37-fill")
        with wt.opened(srv.addr, 1, 2) as c:
            consume_unacked(c, 1, "wt37-blocked", "b")
            for _ in range(25):  # 2.5 MB: the alarm goes off on the way
                wt.publish(c, 2, "wt37-fill", b"x" * (100 * 1024))
            c.expect(wt.CONNECTION_BLOCKED, channel=0)
            blocked_at = time.monotonic()
            c.expect_silence(2.5)
            wt.log("  blocked for %.1f s with a delivery 1 s overdue: channel open"
                   % (time.monotonic() - blocked_at))
            admin.queue_purge("wt37-fill")
            purged = time.monotonic()
            closed = None
            deadline = purged + 10
            while closed is None:
                m = c.read_method(timeout=max(0.1, deadline - time.monotonic()))
                if m.ids == wt.CHANNEL_CLOSE:
                    closed = m
            assert closed.channel == 1 and closed.close_fields()[:2] == (
                406, timeout_text(1, TIMEOUT_MS)), closed
            wt.log("  unblocked: channel 1 closed %.1f s after the purge"
                   % (time.monotonic() - purged))
            c.close()
        admin.queue_delete("wt37-fill")
        admin.queue_delete("wt37-blocked")
        conn.close()


wt.run([test_consumer_times_out, test_basic_get_times_out, test_acked_in_time,
        test_queue_timeout, test_blocked_connection_not_timed_out])
