"""Hostile clients against the memory alarm (vm_memory_high_watermark), which blocks every
publishing connection while it is on: one client must not be able to set it with memory it
does not hold, nor keep it set once it has gone.

- Content headers announcing huge bodies that never come: the memory alarm counts what is
  held (the body bytes received), not what a header announces, so 80 channels announcing
  128 MiB each with 100 bytes sent block nobody.
- A client blocked by the alarm that hangs up: its connection is not read while blocked,
  yet its hang-up is seen (within the alarm's periodic check), what it sent is handled, its
  partial messages are freed and the alarm clears for everyone else."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402


def announce_bodies(c, channels, announced, sent):
    """On each channel: basic.publish, a content header announcing `announced` bytes, and a
    first body frame of `sent` bytes; the rest never comes."""
    for ch in channels:
        c.send_method(ch, wt.BASIC_PUBLISH, wt.publish_args("", "wt64"))
        c.send(wt.frame(wt.FRAME_HEADER, ch, wt.content_header_payload(announced)))
        c.send(wt.frame(wt.FRAME_BODY, ch, b"x" * sent))


@wt.needs_process
def test_announced_bodies_do_not_count():
    """80 channels announce 128 MiB bodies and send 100 bytes each: no memory alarm, the
    watcher publishes on, RSS stays put. (In the AddressSanitizer build, 10 channels: ASan
    writes the shadow of every allocation, 16 MiB for each 128 MiB body, which takes the loop
    long enough to stall the watcher; 1.25 GiB announced is still over the watermark.)"""
    with wt.server(config={"vm_memory_high_watermark.absolute": "1GB"}) as srv:
        with watcher.Watcher(srv.addr) as w:
            rss0 = srv.rss_kib()
            channels = list(range(1, 11 if srv.sanitized() else 81))
            c = wt.opened(srv.addr, *channels)
            announce_bodies(c, channels, 128 << 20, 100)
            c.expect_silence(2)  # no connection.blocked for the attacker either
            w.check("while 10 GiB of bodies are announced")
            srv.check_rss_growth(rss0, srv.rss_kib(), 16 << 10, "with the bodies announced")
            c.close()
        assert "memory alarm set" not in srv.stderr_text()


@wt.needs_process
def test_blocked_client_hangs_up():
    """a client holding 12 MB of partial messages sets the alarm (the watcher is blocked
    too, as RabbitMQ blocks every publisher); once it hangs up without connection.close,
    the alarm clears within a few seconds and the watcher's publishes flow again"""
    for how in ("close", "reset"):
        with wt.server(config={"vm_memory_high_watermark.absolute": "8MB", "heartbeat": "0"}) \
                as srv:
            with watcher.Watcher(srv.addr) as w:
                channels = list(range(1, 13))
                c = wt.opened(srv.addr, *channels)
                # 12 partial messages of 1 MB received each: over the watermark. The broker
                # stops reading once the alarm is on: what is left stays unsent.
                data = b"".join(
                    wt.method_frame(ch, wt.BASIC_PUBLISH, wt.publish_args("", "wt64")) +
                    wt.frame(wt.FRAME_HEADER, ch, wt.content_header_payload(2 << 20)) +
                    wt.frame(wt.FRAME_BODY, ch, b"x" * (128 << 10)) * 8 for ch in channels)
                c.sock.settimeout(2)
                try:
                    c.sock.sendall(data)
                except socket.timeout:
                    pass
                wt.wait_until(lambda: "memory alarm set" in srv.stderr_text(), 10,
                              "the memory alarm")
                w.skip("while the alarm is on")
                t0 = time.monotonic()
                if how == "reset":
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
                wt.wait_until(lambda: "memory alarm cleared" in srv.stderr_text(), 10,
                              "the alarm to clear after the blocked client's %s" % how)
                wt.log("  %s: alarm cleared %.2f s after the hang-up" % (
                    how, time.monotonic() - t0))
                w.skip("until the alarm cleared")
                w.wait_pings(5, 5)
            # Seen while blocked (the broker reads no more of it), or, for a reset that comes
            # before the broker stopped reading (as under ASan's slowness), as the read's error.
            text = srv.stderr_text()
            assert "client hung up while blocked" in text or (
                how == "reset" and "connection error: Connection reset by peer" in text), text


if __name__ == "__main__":
    wt.run([test_announced_bodies_do_not_count, test_blocked_client_hangs_up])
