"""Hostile clients that send requests and never read the answers. Every answer goes through
the connection's output buffer; once it holds more than a megabyte, the broker stops handling
that connection's requests (and so stops reading it) until the client reads: memory stays
bounded, the memory alarm is not set (it would block well-behaved publishers), and everyone
else is served meanwhile.

- basic.get and basic.nack(requeue) of one 16 KiB message, in a loop: each get answers the
  whole message again.
- passive queue.declare in a loop: each answers a declare-ok.
- mandatory publishes that cannot be routed: each is returned, body and all."""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

ATTACK_SECONDS = 4


def flood(c, chunks, seconds):
    """Sends the chunks made by chunks(k), k = 0, 1..., for `seconds` without reading;
    returns the bytes sent."""
    c.sock.setblocking(False)
    sent = 0
    k = 0
    pending = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pending:
            pending = chunks(k)
            k += 1
        try:
            n = c.sock.send(pending)
            sent += n
            pending = pending[n:]
        except BlockingIOError:
            time.sleep(0.01)
    return sent


def get_nack_loop(k):
    """basic.get (no-ack false) then basic.nack(requeue) of its delivery tag, 1,000 times."""
    out = []
    get = wt.method_frame(1, (60, 70), struct.pack(">H", 0) + wt.shortstr("wt65") + b"\x00")
    for tag in range(k * 1000 + 1, k * 1000 + 1001):
        out.append(get)
        out.append(wt.method_frame(1, (60, 120), struct.pack(">QB", tag, 0x02)))
    return b"".join(out)


def passive_declares(k):
    args = struct.pack(">H", 0) + wt.shortstr("wt65") + b"\x01" + wt.table({})
    return wt.method_frame(1, wt.QUEUE_DECLARE, args) * 1000


def unroutable_mandatory(k):
    body = b"r" * 16384
    return (wt.method_frame(1, wt.BASIC_PUBLISH, wt.publish_args("", "nowhere", True)) +
            wt.frame(wt.FRAME_HEADER, 1, wt.content_header_payload(len(body))) +
            wt.frame(wt.FRAME_BODY, 1, body)) * 100


@wt.needs_process
def test_unread_replies():
    """each flood for 4 s, then a second of waiting without a spin: RSS stays within 64 MiB of where it started (freed output buffers
    stay in glibc's heap; without the limit the first flood grew it by 1.5 GB in 6 s), no
    memory alarm, the watcher is never stalled; the connection still works once its client
    reads"""
    with wt.server(config={"vm_memory_high_watermark.absolute": "512MB"}) as srv:
        setup = wt.pika_connect(srv.addr)
        sch = setup.channel()
        sch.queue_declare("wt65")
        sch.basic_publish("", "wt65", b"g" * 16384)
        with watcher.Watcher(srv.addr) as w:
            rss0 = srv.rss_kib()
            for what, chunks in (("basic.get + nack", get_nack_loop),
                                 ("passive queue.declare", passive_declares),
                                 ("unroutable mandatory publishes", unroutable_mandatory)):
                c = wt.opened(srv.addr, 1)
                sent = flood(c, chunks, ATTACK_SECONDS)
                wt.log("  %s: %.1f MB sent without reading" % (what, sent / 1e6))
                w.check("during %s" % what)
                # Its requests wait: nothing spins meanwhile (a paused connection whose input
                # buffer is full is not polled for more).
                cpu0 = srv.cpu_seconds()
                time.sleep(1)
                cpu = srv.cpu_seconds() - cpu0
                wt.log("  broker CPU over 1 s while it waits: %.2f s" % cpu)
                assert cpu < 0.3, "the broker spun while %s waited: %.2f s of CPU" % (what, cpu)
                srv.check_rss_growth(rss0, srv.rss_kib(), 64 << 10, "during %s" % what)
                # Reading again lets the broker go on with the requests.
                c.sock.setblocking(True)
                c.sock.settimeout(1)
                got = b""
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    try:
                        got += c.sock.recv(1 << 20)
                    except socket.timeout:
                        break
                assert len(got) > 1 << 20, "%s: only %d bytes of answers came" % (what, len(got))
                assert b"PRECONDITION_FAILED" not in got, "%s: the channel was closed" % what
                c.close()
        assert "memory alarm set" not in srv.stderr_text()
        assert sch.queue_declare("wt65", passive=True).method.message_count == 1
        setup.close()


if __name__ == "__main__":
    wt.run([test_unread_replies])
