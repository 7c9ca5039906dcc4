"""Purging and deleting big paged-out queues must not stall the broker. Past
store.queue_window a durable queue's messages live in the store only; a message routed to
several durable queues is one shared record there, which goes with the last entry referring
to it. Dropping a queue's paged entries thus means reading them all to drop their references:
done on the event loop in one go, every other client waited for the whole walk (issue 10:
141 ms for 622k messages, growing with the queue), and a client sending the purges of many
queues in one write held everyone up for their sum. The broker must answer purge-ok and
delete-ok at once with the right counts, keep serving others meanwhile, and leave the store
right whenever it is restarted: the purged messages stay gone, the other queues keep theirs,
and no shared record outlives the entries referring to it.

A watcher client pings through the broker throughout (no gap over a second), and a prober
times passive queue.declare round trips from a raw connection while the purges and the
delete run: the longest one is the loop's stall, reported (only the watcher's generous bound
is asserted). Queue names start with wt62-."""

import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

import pika  # noqa: E402
import pika.spec  # noqa: E402

PUBLISHES = 250000
QUEUES = ["wt62-%d" % i for i in range(16)]  # 4M entries, all but 64 KB of each paged out
KEPT, PURGED = QUEUES[0], QUEUES[1:]
BODY = 32
EXCHANGE = "wt62-fan"
PROBE = "wt62-probe"
PROPS = pika.BasicProperties(delivery_mode=2)
CONFIG = {"store.queue_window": "64KB"}


def body(i):
    return b"%08d" % i + b"p" * (BODY - 8)


def declare(c, name, passive=False):
    """A durable queue.declare on channel 1 of the RawConn c; returns its message count."""
    ok = wt.call_pika(c, 1, pika.spec.Queue.Declare(queue=name, passive=passive, durable=True),
                      pika.spec.Queue.DeclareOk)
    return ok.message_count


def counts(addr, names):
    with wt.opened(addr, 1) as c:
        n = [declare(c, q, passive=True) for q in names]
        c.close_connection()
    return n


def setup(addr):
    """The fanout exchange and its durable queues, and the prober's queue."""
    with wt.opened(addr, 1) as c:
        wt.call_pika(c, 1, pika.spec.Exchange.Declare(exchange=EXCHANGE, type="fanout",
                                                      durable=True),
                     pika.spec.Exchange.DeclareOk)
        for q in QUEUES:
            declare(c, q)
            wt.call_pika(c, 1, pika.spec.Queue.Bind(queue=q, exchange=EXCHANGE),
                         pika.spec.Queue.BindOk)
        declare(c, PROBE)
        c.close_connection()


def fill(addr):
    """PUBLISHES persistent messages to the fanout exchange on a confirm channel, sent in
    big writes; returns once the last is confirmed (none may be nacked)."""
    header = wt.frame(wt.FRAME_HEADER, 1, wt.content_header_payload(BODY, PROPS))
    method = wt.method_frame(1, wt.BASIC_PUBLISH, wt.publish_args(EXCHANGE, ""))
    with wt.opened(addr, 1, timeout=60) as c:
        wt.call_pika(c, 1, pika.spec.Confirm.Select(), pika.spec.Confirm.SelectOk)
        data = b"".join(method + header + wt.frame(wt.FRAME_BODY, 1, body(i))
                        for i in range(PUBLISHES))
        sender = threading.Thread(target=c.send, args=(data,))
        sender.start()
        acked = 0
        while acked < PUBLISHES:
            m = c.read_method()
            assert m.ids == wt.method_ids(pika.spec.Basic.Ack), "publish answered %r" % m
            acked = struct.unpack(">Q", m.args[:8])[0]
        sender.join()
        c.close_connection()


class Prober(threading.Thread):
    """Passive queue.declare round trips on a raw connection, back to back, until stopped:
    the longest shows how long the broker's loop stalled."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.conn = wt.opened(addr, 1)
        self.done = threading.Event()
        self.rtts = []

    def run(self):
        while not self.done.is_set():
            t0 = time.monotonic()
            declare(self.conn, PROBE, passive=True)
            self.rtts.append(time.monotonic() - t0)

    def __enter__(self):
        self.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.done.set()
        self.join(10)
        self.conn.close()
        wt.log("  longest passive declare round trip from another connection: %.3f s "
               "(%d probes)" % (max(self.rtts), len(self.rtts)))


def start_log(srv):
    """The log of the broker's last start."""
    text = srv.stderr_text()
    return text[text.rfind(" starting, config file"):]


@wt.needs_process
def test_purge_and_delete_paged_queues():
    """250k persistent messages routed to 16 durable queues (shared records), nearly all
    paged out: purging 15 of them in one write answers at once with the counts, which are 0
    right after, and the last queue keeps its messages across a restart; deleting it too;
    a watcher never stalls; after the restarts nothing is left in the store"""
    with wt.server(config=CONFIG, log_level="info") as srv:
        setup(srv.addr)
        with watcher.Watcher(srv.addr) as w:
            t0 = time.monotonic()
            fill(srv.addr)
            wt.log("  %d messages of %d bytes routed to %d queues in %.1f s" % (
                PUBLISHES, BODY, len(QUEUES), time.monotonic() - t0))
            w.check("while filling")
            assert counts(srv.addr, QUEUES) == [PUBLISHES] * len(QUEUES)
            with wt.opened(srv.addr, 1) as c, Prober(srv.addr):
                t0 = time.monotonic()
                c.send(b"".join(wt.method_frame(1, wt.method_ids(pika.spec.Queue.Purge),
                                                struct.pack(">H", 0) + wt.shortstr(q) + b"\0")
                                for q in PURGED))
                for q in PURGED:
                    m = c.expect(wt.method_ids(pika.spec.Queue.PurgeOk), 1)
                    n = pika.spec.Queue.PurgeOk().decode(m.args).message_count
                    assert n == PUBLISHES, "purge-ok of %s counts %d, %d were there" % (
                        q, n, PUBLISHES)
                wt.log("  %d purge-oks after %.3f s" % (len(PURGED), time.monotonic() - t0))
                for q in PURGED:
                    n = declare(c, q, passive=True)
                    assert n == 0, "%s holds %d messages right after purge-ok" % (q, n)
                c.close_connection()
            w.check("during the purges")
            assert counts(srv.addr, [KEPT]) == [PUBLISHES]
        # Restarted straight away: what the purges left to do goes on, or the start does it.
        srv.restart()
        assert counts(srv.addr, QUEUES) == [PUBLISHES] + [0] * len(PURGED)
        with wt.opened(srv.addr, 1) as c:
            for i in range(3):
                wt.send_pika(c, 1, pika.spec.Basic.Get(queue=KEPT, no_ack=True))
                c.expect(wt.method_ids(pika.spec.Basic.GetOk), 1)
                _, got, _ = wt.read_content(c, 1)
                assert got == body(i), "message %d of %s is %r" % (i, KEPT, got[:8])
            c.close_connection()

        with watcher.Watcher(srv.addr) as w:
            with wt.opened(srv.addr, 1) as c, Prober(srv.addr):
                t0 = time.monotonic()
                ok = wt.call_pika(c, 1, pika.spec.Queue.Delete(queue=KEPT),
                                  pika.spec.Queue.DeleteOk)
                wt.log("  delete-ok after %.3f s" % (time.monotonic() - t0))
                assert ok.message_count == PUBLISHES - 3, "delete-ok counts %d, %d were there" % (
                    ok.message_count, PUBLISHES - 3)
                c.close_connection()
            w.check("during the delete")
        srv.restart()
        with wt.opened(srv.addr, 1) as c:
            wt.send_pika(c, 1, pika.spec.Queue.Declare(queue=KEPT, passive=True, durable=True))
            c.expect_channel_close(1, 404)
        assert counts(srv.addr, PURGED) == [0] * len(PURGED)
        # Whatever that start found left over, it removed: the next one finds nothing.
        srv.restart()
        log = start_log(srv)
        assert "bindings, 0 messages" in log and "unreferenced" not in log, log


if __name__ == "__main__":
    wt.run([test_purge_and_delete_paged_queues], timeout=120)
