"""Large bodies on their way in: body frames of 16 KiB and more are read from the socket
straight into their message. A body sent in pieces cut anywhere in its frames (inside a frame
header, inside a payload, just before a frame-end octet) comes back identical; a bad frame-end
octet arriving after such a payload is 501 FRAME_ERROR and the message is not enqueued; a
shutdown while a payload is half read still takes the rest of the frame and the close-ok.

Warren only (they need the server process): a megabyte of body costs the broker few reads
(/proc/PID/io syscr: libevent's bufferevent read 4 KiB at a time, 256 reads per MiB) and,
once its heap has grown to the traffic, almost no page faults (/proc/PID/stat minflt:
glibc used to map or trim the heap under each large body, a fault per 4 KiB touched).

Raw frames are used where frame boundaries matter. Queue names start with wt28-."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

B = spec.Basic
MIB = 1 << 20


def body_of(size, seed=0):
    """size bytes of a pattern that differs from message to message (seed)."""
    return (bytes((i * 7 + seed) & 0xFF for i in range(256)) * (size // 256 + 1))[:size]


def publish_bytes(c, channel, queue, body):
    """basic.publish, its content header and body frames of frame_max - 8 bytes, as bytes;
    and where the first body frame starts in them."""
    out = [wt.method_frame(channel, wt.BASIC_PUBLISH, wt.publish_args("", queue)),
           wt.frame(wt.FRAME_HEADER, channel, wt.content_header_payload(len(body)))]
    first = len(out[0]) + len(out[1])
    chunk = c.frame_max - 8
    for i in range(0, len(body), chunk):
        out.append(wt.frame(wt.FRAME_BODY, channel, body[i:i + chunk]))
    return b"".join(out), first


def get_body(c, channel, queue):
    """basic.get no-ack on the RawConn c: the body (fails if the queue is empty)."""
    wt.call_pika(c, channel, B.Get(queue=queue, no_ack=True), B.GetOk)
    return wt.read_content(c, channel)[1]


def message_count(addr, queue):
    conn = wt.pika_connect(addr)
    n = conn.channel().queue_declare(queue, passive=True).method.message_count
    conn.close()
    return n


def proc_counter(pid, path, field):
    """A number from /proc/PID/<path>: the value after 'field:' (io), or field number
    `field` (1-based, after the command name) of stat."""
    with open("/proc/%d/%s" % (pid, path)) as f:
        text = f.read()
    if path == "stat":
        return int(text[text.rindex(")") + 2:].split()[field - 3])
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/%s" % (field, pid, path))


def test_frames_split_across_reads():
    """a 300 KiB body whose frames are sent in pieces cut inside a frame header, inside a
    payload and just before a frame-end octet, with a pause after each (a read each): it
    comes back identical; so do a 40 KiB body sent with its frame-end octet on its own and
    a 1 MiB body sent in one piece after them"""
    q = "wt28-split"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, timeout=10) as c:
            body = body_of(300 << 10, 1)
            data, first = publish_bytes(c, 1, q, body)
            frame = c.frame_max  # bytes per full body frame on the wire
            cuts = [first + 3, first + 7, first + 1000, first + frame - 1, first + frame,
                    first + frame + 5, first + 2 * frame - 1, len(data) - 1]
            pos = 0
            for cut in cuts:
                c.send(data[pos:cut])
                pos = cut
                time.sleep(0.05)
            c.send(data[pos:])
            assert get_body(c, 1, q) == body, "the 300 KiB body came back different"
            wt.log("  300 KiB in %d pieces: identical" % (len(cuts) + 1))
            body = body_of(40 << 10, 2)
            data = publish_bytes(c, 1, q, body)[0]
            c.send(data[:-1])
            time.sleep(0.05)
            c.send(data[-1:])
            assert get_body(c, 1, q) == body, "the 40 KiB body came back different"
            body = body_of(MIB, 3)
            c.send(publish_bytes(c, 1, q, body)[0])
            assert get_body(c, 1, q) == body, "the 1 MiB body came back different"
            wt.log("  40 KiB with its frame-end octet apart, 1 MiB at once: identical")
            c.close_connection()
        wt.cleanup(srv.addr, q)


def test_bad_frame_end_after_payload():
    """a 100 KiB body frame whose payload arrives in two pieces and whose frame-end octet,
    sent apart, is 0x00 -> 501 FRAME_ERROR; the message is not enqueued"""
    q = "wt28-bad-end"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, timeout=10) as c:
            data = publish_bytes(c, 1, q, body_of(100 << 10))[0]
            half = len(data) // 2
            c.send(data[:half])
            time.sleep(0.05)
            c.send(data[half:-1])
            time.sleep(0.05)
            c.send(b"\x00")
            c.expect_connection_close(501, text_prefix="FRAME_ERROR - ", ids=(0, 0),
                                      send_close_ok=False)
        n = message_count(srv.addr, q)
        assert n == 0, "%d messages enqueued from a frame with a bad end" % n
        wt.assert_serves(srv.addr)
        wt.cleanup(srv.addr, q)


@wt.needs_process
def test_shutdown_during_payload():
    """SIGTERM while a 128 KiB body frame is half read: connection.close 320 comes, the
    rest of the frame and the close-ok are taken (the socket closes after them), and the
    server exits 0"""
    q = "wt28-shutdown"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        c = wt.opened(srv.addr, 1, timeout=10)
        data, first = publish_bytes(c, 1, q, body_of(300 << 10))
        cut = first + c.frame_max // 2
        c.send(data[:cut])
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)
        m = c.expect(wt.CONNECTION_CLOSE, channel=0, timeout=10)
        assert m.close_fields()[0] == 320, m.close_fields()
        c.send(data[cut:first + c.frame_max] + wt.method_frame(0, wt.CONNECTION_CLOSE_OK))
        c.expect_eof(timeout=10)
        c.close()
        rc = srv.proc.wait(10)
        assert rc == 0, "exit status %d" % rc
        wt.log("  connection.close 320 mid-payload, rest and close-ok taken, exit 0")


@wt.needs_process
def test_reads_per_megabyte():
    """32 messages of 1 MiB published (frames of frame_max) and got back one at a time:
    the broker reads their bytes in at most 64 reads per MiB (libevent's 4 KiB reads took
    256)"""
    q = "wt28-reads"
    n = 32
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, timeout=10) as c:
            body = body_of(MIB)
            data = publish_bytes(c, 1, q, body)[0]
            c.send(data)
            assert get_body(c, 1, q) == body
            before = proc_counter(srv.pid, "io", "syscr")
            for _ in range(n):
                c.send(data)
                assert get_body(c, 1, q) == body
            reads = proc_counter(srv.pid, "io", "syscr") - before
            c.close_connection()
        wt.log("  %d reads for %d MiB: %.1f per MiB" % (reads, n, reads / n))
        assert reads <= 64 * n, "%d reads for %d MiB (%.0f per MiB)" % (reads, n, reads / n)
        wt.cleanup(srv.addr, q)


@wt.needs_process
def test_page_faults_per_megabyte():
    """rounds of 8 messages of 1 MiB published, then got back: after two rounds that grow
    the heap, 6 more rounds cost the broker under 16 page faults per MiB (a body written to
    fresh pages takes 256)"""
    q = "wt28-faults"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, timeout=10) as c:
            bodies = [body_of(MIB, i) for i in range(8)]
            data = b"".join(publish_bytes(c, 1, q, b)[0] for b in bodies)

            def one_round():
                c.send(data)
                for b in bodies:
                    assert get_body(c, 1, q) == b
            one_round()
            one_round()
            before = proc_counter(srv.pid, "stat", 10)  # minflt
            for _ in range(6):
                one_round()
            faults = proc_counter(srv.pid, "stat", 10) - before
            c.close_connection()
        wt.log("  %d minor page faults for 48 MiB: %.1f per MiB" % (faults, faults / 48))
        if srv.sanitized():
            wt.log("  (AddressSanitizer build: its allocator decides; bound not checked)")
        else:
            assert faults <= 16 * 48, "%d page faults for 48 MiB (%.0f per MiB)" % (
                faults, faults / 48)
        wt.cleanup(srv.addr, q)


if __name__ == "__main__":
    wt.run([test_frames_split_across_reads, test_bad_frame_end_after_payload,
            test_shutdown_during_payload, test_reads_per_megabyte,
            test_page_faults_per_megabyte])
