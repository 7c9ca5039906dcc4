"""The memory alarm: when messages and output buffers take more than
vm_memory_high_watermark, connections that publish stop being read and, if they announced
the capability, get connection.blocked with a reason; connection.unblocked follows once
consumers (here: a purge) bring usage down, and every message published meanwhile arrives.
A connection that only consumes is never blocked, so it can drain the queue. The server says
so in its log. (Server-process tests: the watermark is set in the config file.)"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

LIMIT = 2 * 1024 * 1024
CONFIG = {"vm_memory_high_watermark.absolute": str(LIMIT)}
BODY = b"m" * (100 * 1024)


@wt.needs_process
def test_blocked_then_unblocked():
    """publishing past the watermark: connection.blocked ("low on memory"); a consumer-only
    connection still works; after a purge: connection.unblocked, nothing published is lost"""
    with wt.server(config=CONFIG) as srv:
        events = []
        pub = wt.pika_connect(srv.addr)
        pub.add_on_connection_blocked_callback(
            lambda conn, frame: events.append(("blocked", frame.method.reason)))
        pub.add_on_connection_unblocked_callback(lambda conn, frame: events.append(("unblocked",)))
        pch = pub.channel()
        pch.queue_declare("wt12-alarm")
        for _ in range(30):  # 3 MB: the alarm goes off on the way
            pch.basic_publish("", "wt12-alarm", BODY)
        wt.wait_until(lambda: events, 10, "connection.blocked", conns=[pub])
        assert events[0] == ("blocked", "low on memory"), events
        wt.log("  publisher got connection.blocked: %r" % (events[0],))
        # Published while blocked: held in the socket, not lost.
        for _ in range(5):
            pch.basic_publish("", "wt12-alarm", BODY)

        other = wt.pika_connect(srv.addr)  # never published: not blocked
        och = other.channel()
        ok = och.queue_declare("wt12-alarm", passive=True)
        wt.log("  a consumer connection still works: %d messages ready" %
               ok.method.message_count)
        purged = och.queue_purge("wt12-alarm").method.message_count
        wt.wait_until(lambda: ("unblocked",) in events, 10, "connection.unblocked", conns=[pub])
        wt.log("  purged %d, publisher got connection.unblocked" % purged)
        # The rest of what was published arrives once the socket is read again.
        pch.basic_publish("", "wt12-alarm", b"after")
        wt.wait_until(lambda: purged + och.queue_declare("wt12-alarm", passive=True)
                      .method.message_count == 36, 10, "all 36 messages", conns=[pub])
        log = srv.stderr_text()
        assert "memory alarm set" in log and "memory alarm cleared" in log, log[-2000:]
        pub.close()
        other.close()


@wt.needs_process
def test_blocked_without_capability():
    """a client that did not announce connection.blocked is blocked silently: its socket
    is not read until the alarm clears, then its publishes arrive"""
    with wt.server(config=CONFIG) as srv:
        setup = wt.pika_connect(srv.addr)
        sch = setup.channel()
        sch.queue_declare("wt12-silent")
        c = wt.opened(srv.addr, 1, capabilities={})
        body = b"x" * 60000
        for _ in range(40):  # 2.4 MB, in frames below frame_max
            wt.publish(c, 1, "wt12-silent", body)
        c.expect_silence(0.5)  # no connection.blocked for this client
        n = sch.queue_declare("wt12-silent", passive=True).method.message_count
        assert n < 40, "a blocked connection's publishes kept arriving (%d)" % n
        sch.queue_purge("wt12-silent")
        wt.wait_until(lambda: sch.queue_declare("wt12-silent", passive=True)
                      .method.message_count + n >= 40, 10,
                      "the held publishes after the alarm cleared")
        c.close_connection()
        setup.close()


if __name__ == "__main__":
    wt.run([test_blocked_then_unblocked, test_blocked_without_capability])
