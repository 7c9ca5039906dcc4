"""Paging of queues that are not durable, under memory pressure: past half of the memory high
watermark their messages go to the store instead of memory, so a transient backlog larger
than the watermark is published without connection.blocked, stays in order, and costs no
memory to speak of; after a restart the queue and its paged messages are gone, as RabbitMQ
drops non-durable queues. Queue names start with wt52-."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

WATERMARK_MB = 40
BODY = 4000
COUNT = 25000  # 100 MB of bodies: two and a half watermarks


def body(i):
    return b"%08d" % i + b"\x33" * (BODY - 8)


@wt.needs_process
def test_transient_backlog_pages_instead_of_blocking():
    """100 MB of transient messages into a non-durable queue under a 40 MB memory watermark:
    never blocked, the broker's RSS stays under the watermark plus its fixed costs, every
    message comes back once in order; a restart drops the queue with what it had paged"""
    config = {"vm_memory_high_watermark.absolute": "%dMB" % WATERMARK_MB}
    with wt.server(config=config) as srv:
        conn = wt.pika_connect(srv.addr, blocked_connection_timeout=30)
        blocked = []
        conn.add_on_connection_blocked_callback(lambda *a: blocked.append(a))
        ch = conn.channel()
        ch.queue_declare("wt52-backlog")
        for i in range(COUNT):
            ch.basic_publish("", "wt52-backlog", body(i))
        n = ch.queue_declare("wt52-backlog", passive=True).method.message_count
        assert n == COUNT, "queue holds %d, expected %d" % (n, COUNT)
        assert not blocked, "the publisher was blocked: %r" % blocked
        if not srv.sanitized():
            rss_mib = srv.rss_kib() / 1024
            wt.log("  RSS with %d MB queued: %.0f MiB" % (COUNT * BODY // 10**6, rss_mib))
            # The watermark, RocksDB's memtables and cache (48 MiB), slack for the heap.
            assert rss_mib < WATERMARK_MB + 48 + 40, "RSS %.0f MiB" % rss_mib
        # Half of it, in order; the rest stays for the restart.
        for i in range(COUNT // 2):
            method, _, payload = ch.basic_get("wt52-backlog", auto_ack=True)
            assert method is not None, "queue empty after %d messages" % i
            assert payload == body(i), "message %d: got %r" % (i, payload[:8])
        conn.close()
        srv.restart()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        try:
            ch.queue_declare("wt52-backlog", passive=True)
            raise AssertionError("the non-durable queue came back after the restart")
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404, e
        ch = conn.channel()
        ch.queue_declare("wt52-backlog")
        method, _, _ = ch.basic_get("wt52-backlog", auto_ack=True)
        assert method is None, "a new queue of the same name holds an old message"
        conn.close()


if __name__ == "__main__":
    wt.run([test_transient_backlog_pages_instead_of_blocking], timeout=180)
