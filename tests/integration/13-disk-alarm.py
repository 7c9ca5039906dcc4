"""The disk alarm: while the filesystem holding the data directory has less free space than
disk_free_limit, connections that publish stop being read and, if they announced the
capability, get connection.blocked "low on disk"; connections that only consume are still
served. connection.unblocked follows once there is enough space again, but only when no
alarm is on: a connection blocked by both the memory and the disk alarm ("low on memory &
disk") stays blocked until both clear. The server logs each edge. (Server-process tests: the
limit is set in the config file; free space is taken away at runtime by reserving a file
next to the data directory with posix_fallocate, and given back by deleting it.)"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

BODY = b"m" * (100 * 1024)


def disk_free(path):
    """Bytes an unprivileged user may still write on path's filesystem, as the server
    reads it."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def runtime_limit():
    """(disk_free_limit, bytes to reserve) for tests that cross the limit at runtime: the
    limit sits `margin` below the free space now, so that the broker's own files (RocksDB
    preallocates a few tens of MB) leave it clear, and reserving 3 * margin puts the disk well
    below it; other processes writing or deleting meanwhile have margin to spare."""
    free = disk_free(tempfile.gettempdir())
    margin = min(512 << 20, free // 4)
    assert margin >= 64 << 20, "these tests need 256 MB free in %s, have %d bytes" % (
        tempfile.gettempdir(), free)
    return free - margin, 3 * margin


class Filler:
    """A file of `size` reserved bytes on the filesystem of srv's data directory."""

    def __init__(self, srv, size):
        self.path = os.path.join(srv.tmp, "filler")
        self.size = size

    def __enter__(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, self.size)
        finally:
            os.close(fd)
        wt.log("  reserved %d MB: %d MB free" % (self.size >> 20, disk_free(self.path) >> 20))
        return self

    def __exit__(self, *exc):
        self.remove()

    def remove(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
            wt.log("  freed the reserved space")


def watch_blocked(conn):
    """The connection.blocked/unblocked events of the pika connection conn, in a list."""
    events = []
    conn.add_on_connection_blocked_callback(
        lambda c, frame: events.append(("blocked", frame.method.reason)))
    conn.add_on_connection_unblocked_callback(lambda c, frame: events.append(("unblocked",)))
    return events


def count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_log(srv, text, timeout=10, conns=()):
    wt.wait_until(lambda: text in srv.stderr_text(), timeout, "log line '%s'" % text, conns)


@wt.needs_process
def test_blocked_from_start():
    """a broker started with less free disk than disk_free_limit (1000000TB): a publisher
    gets connection.blocked "low on disk" and its message waits unread; the persistent
    messages queued in an earlier run are still delivered to a consumer"""
    import pika
    with wt.server(config={"disk_free_limit.absolute": "0"}) as srv:
        setup = wt.pika_connect(srv.addr)
        sch = wt.confirm_channel(setup)
        sch.queue_declare("wt13-start", durable=True)
        for i in range(5):
            sch.basic_publish("", "wt13-start", b"m%d" % i,
                              pika.BasicProperties(delivery_mode=2))
        setup.close()
        assert "disk alarm" not in srv.stderr_text()

        srv.config = {"disk_free_limit.absolute": "1000000TB"}
        srv.restart()
        log = srv.stderr_text()
        assert "free disk space limit: 1000000000000000000 bytes" in log, log[-2000:]
        assert "[warning] disk alarm set: " in log, log[-2000:]

        pub = wt.opened(srv.addr, 1)  # announces connection.blocked
        wt.publish(pub, 1, "wt13-start", b"held")
        m = pub.expect(wt.CONNECTION_BLOCKED, channel=0)
        reason = m.reader().shortstr()
        assert reason == "low on disk", reason
        wt.log("  publisher got connection.blocked %r" % reason)

        cons = wt.pika_connect(srv.addr)  # never publishes: served
        cch = cons.channel()
        got = wt.drain(cch, "wt13-start")
        assert got == [b"m%d" % i for i in range(5)], got
        wt.log("  a consumer got the %d queued messages" % len(got))
        assert count(cch, "wt13-start") == 0, "the blocked publish was read"
        pub.close()
        cch.queue_delete("wt13-start")
        cons.close()


@wt.needs_process
def test_runtime_set_and_clear():
    """the disk fills past the limit at runtime: a pika publisher gets connection.blocked
    "low on disk" within a few checks while a consumer still gets what was queued; once the
    space is freed, connection.unblocked and the publishes held meanwhile arrive"""
    limit, reserve = runtime_limit()
    with wt.server(config={"disk_free_limit.absolute": str(limit)}) as srv:
        assert "disk alarm" not in srv.stderr_text()
        pub = wt.pika_connect(srv.addr, blocked_connection_timeout=30)
        events = watch_blocked(pub)
        pch = pub.channel()
        pch.queue_declare("wt13-run")
        for i in range(3):
            pch.basic_publish("", "wt13-run", b"before%d" % i)
        cons = wt.pika_connect(srv.addr)
        cch = cons.channel()
        wt.wait_until(lambda: count(cch, "wt13-run") == 3, 5, "3 messages queued")

        with Filler(srv, reserve) as filler:
            wt.wait_until(lambda: events, 5, "connection.blocked", conns=[pub])
            assert events == [("blocked", "low on disk")], events
            wt.log("  publisher got %r" % (events[0],))
            for i in range(2):
                pch.basic_publish("", "wt13-run", b"held%d" % i)
            got = wt.drain(cch, "wt13-run")
            assert got == [b"before%d" % i for i in range(3)], got
            wt.log("  a consumer still got the %d queued messages" % len(got))
            filler.remove()
            wt.wait_until(lambda: len(events) == 2, 5, "connection.unblocked", conns=[pub])
            assert events[1] == ("unblocked",), events
        wt.wait_until(lambda: count(cch, "wt13-run") == 2, 5, "the 2 held publishes",
                      conns=[pub])
        log = srv.stderr_text()
        assert "[warning] disk alarm set: " in log and "[info] disk alarm cleared: " in log \
            and "publishers resume" in log, log[-2000:]
        pch.queue_delete("wt13-run")
        pub.close()
        cons.close()


@wt.needs_process
def test_both_alarms():
    """with the memory alarm on, the disk alarm going on sends nothing more; a new publisher
    is blocked "low on memory & disk"; clearing the memory alarm unblocks nobody, freeing the
    disk then unblocks everyone and every held publish arrives"""
    limit, reserve = runtime_limit()
    config = {"disk_free_limit.absolute": str(limit),
              "vm_memory_high_watermark.absolute": str(2 << 20)}
    with wt.server(config=config) as srv:
        pub = wt.pika_connect(srv.addr, blocked_connection_timeout=30)
        events = watch_blocked(pub)
        pch = pub.channel()
        pch.queue_declare("wt13-big")
        pch.queue_declare("wt13-small")
        for _ in range(30):  # 3 MB: past the memory watermark
            pch.basic_publish("", "wt13-big", BODY)
        wt.wait_until(lambda: events, 10, "connection.blocked", conns=[pub])
        assert events == [("blocked", "low on memory")], events

        with Filler(srv, reserve) as filler:
            wait_log(srv, "disk alarm set", conns=[pub])
            pub2 = wt.pika_connect(srv.addr, blocked_connection_timeout=30)
            events2 = watch_blocked(pub2)
            pch2 = pub2.channel()
            pch2.basic_publish("", "wt13-small", b"second")
            wt.wait_until(lambda: events2, 5, "connection.blocked for a new publisher",
                          conns=[pub, pub2])
            assert events2 == [("blocked", "low on memory & disk")], events2
            wt.log("  new publisher got %r" % (events2[0],))

            cons = wt.pika_connect(srv.addr)
            cch = cons.channel()
            purged = cch.queue_purge("wt13-big").method.message_count
            wait_log(srv, "publishers stay blocked by the disk alarm", conns=[pub, pub2])
            pub.process_data_events(0.5)
            pub2.process_data_events(0.2)
            assert events == [("blocked", "low on memory")], events
            assert events2 == [("blocked", "low on memory & disk")], events2
            wt.log("  memory alarm cleared after purging %d: both still blocked" % purged)

            filler.remove()
            wt.wait_until(lambda: len(events) == 2 and len(events2) == 2, 5,
                          "connection.unblocked on both", conns=[pub, pub2])
            assert events[1] == events2[1] == ("unblocked",), (events, events2)
        wt.wait_until(lambda: count(cch, "wt13-small") == 1, 5, "the held publish",
                      conns=[pub, pub2])
        wt.wait_until(lambda: purged + count(cch, "wt13-big") == 30, 5,
                      "all 30 large publishes", conns=[pub, pub2])
        cch.queue_delete("wt13-big")
        cch.queue_delete("wt13-small")
        for c in (pub, pub2, cons):
            c.close()


@wt.needs_process
def test_relative_limit():
    """disk_free_limit.relative is a multiple of physical memory and replaces the default
    absolute limit; given together with .absolute, .absolute wins with a warning"""
    phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with wt.server(config={"disk_free_limit.relative": "0.5"}) as srv:
        want = "free disk space limit: %d bytes" % ((phys + 1) // 2)
        log = srv.stderr_text()
        assert want in log and "has precedence" not in log, (want, log[-2000:])
    config = {"disk_free_limit.relative": "1000", "disk_free_limit.absolute": "1MB"}
    with wt.server(config=config) as srv:
        log = srv.stderr_text()
        assert "free disk space limit: 1000000 bytes" in log, log[-2000:]
        assert "[warning] both disk_free_limit.absolute and disk_free_limit.relative are set" \
            in log, log[-2000:]
        wt.assert_serves(srv.addr)


if __name__ == "__main__":
    wt.run([test_blocked_from_start, test_runtime_set_and_clear, test_both_alarms,
            test_relative_limit])
