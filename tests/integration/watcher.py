"""A well-behaved client beside an attack, for the hostile-client tests (6x-hostile-*.py).

The watcher is a pika client in a process of its own (so that the attacking test code never
holds it up through Python's interpreter lock): it publishes one ping every 100 ms to a
queue of its own and consumes it. A broker that stalls, or blocks every publisher, shows up
as a gap between two pings received. Tests assert a generous bound (no gap over a second,
three in the AddressSanitizer build) that a noisy machine still meets; latency figures
belong to the benchmarks.

    with watcher.Watcher(srv.addr) as w:
        ... attack ...
        w.check("during the attack")        # no gap over MAX_GAP since the last check
    # leaving the block checks once more

Memory: sample_rss(srv) follows the broker's RSS during an attack; Server.check_rss_growth
asserts the bound.

A loaded machine: `with watcher.crowded(srv.pid): ...` gives the broker's event loop a tenth
of one CPU for the block, as on a busy machine, where a burst of work the broker does in one
go stalls its clients for ten times as long.

Run as a script it is the watcher process itself: `watcher.py HOST PORT QUEUE`; it prints
one line per ping received ("<time.monotonic()> <round trip in seconds>") and stops when
its standard input closes.
"""

import contextlib
import os
import subprocess
import sys
import threading
import time

MAX_GAP = 1.0  # seconds without a ping back that count as a stall
# The AddressSanitizer build runs the broker two to three times slower: the same bound, scaled.
MAX_GAP_SANITIZED = 3.0
PING_EVERY = 0.1


class Watcher:
    def __init__(self, addr, queue=None):
        import warren_test
        self.max_gap = MAX_GAP_SANITIZED if warren_test.binary_sanitized() else MAX_GAP
        self.addr = addr
        self.queue = queue or "watcher-%d" % os.getpid()
        self.pings = []  # (received at, round trip), by the watcher's clock
        self.checked = 0  # pings already covered by check()
        self.skipped_at = None  # skip(): the next check() counts from then
        self.proc = None
        self.reader = None
        self.errors = []

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-u", os.path.abspath(__file__), self.addr[0],
             str(self.addr[1]), self.queue],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_pings(3, 10)
        return self

    def _read(self):
        for line in self.proc.stdout:
            t, rtt = line.split()
            self.pings.append((float(t), float(rtt)))

    def wait_pings(self, n, timeout):
        """Waits until n more pings came back; fails if they do not within timeout."""
        want = len(self.pings) + n
        deadline = time.monotonic() + timeout
        while len(self.pings) < want:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("watcher: %d of %d pings within %.0f s%s" % (
                    len(self.pings) - (want - n), n, timeout, self._stderr_tail()))
            time.sleep(0.05)

    def skip(self, what):
        """Starts the next check() from now: for a stall that the test itself causes and
        asserts otherwise (a memory alarm blocks every publisher, the watcher included)."""
        print("  watcher: not checked %s" % what, flush=True)
        self.checked = len(self.pings)
        self.skipped_at = time.monotonic()

    def _stderr_tail(self):
        if self.proc.poll() is None:
            return ""
        return "; watcher exited: %s" % self.proc.stderr.read().decode()[-1500:]

    def check(self, what):
        """Asserts that pings kept coming since the last check: none missing for over MAX_GAP
        (counting the time up to now, so a broker stalled right now fails too)."""
        now = time.monotonic()  # the watcher stamps pings with the same system-wide clock
        pings = self.pings[max(0, self.checked - 1):]
        times = [t for t, _ in pings]
        if self.skipped_at is not None:
            times = [self.skipped_at] + [t for t in times if t > self.skipped_at]
            pings = [p for p in pings if p[0] > self.skipped_at]
            self.skipped_at = None
        gaps = [b - a for a, b in zip(times, times[1:])]
        if times:
            gaps.append(now - times[-1])
        worst_gap = max(gaps, default=now)
        worst_rtt = max((r for _, r in pings), default=0.0)
        print("  watcher %s: %d pings, longest gap %.3f s, worst round trip %.3f s" % (
            what, len(pings), worst_gap, worst_rtt), flush=True)
        assert worst_gap <= self.max_gap, (
            "the watcher client stalled %s: %.2f s without a ping back (limit %.1f s)%s" % (
                what, worst_gap, self.max_gap, self._stderr_tail()))
        self.checked = len(self.pings)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.check("to the end")
        finally:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return False


@contextlib.contextmanager
def crowded(pid, hogs=9):
    """For the block, pins pid's main thread (the broker's event loop) to one CPU and runs
    `hogs` busy loops on that CPU: the loop gets about 1/(hogs + 1) of it whatever the machine,
    as on a loaded one. Its CPU affinity is restored afterwards."""
    cpu = max(os.sched_getaffinity(0))
    was = os.sched_getaffinity(pid)
    procs = []
    try:
        os.sched_setaffinity(pid, {cpu})
        for _ in range(hogs):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                preexec_fn=lambda: os.sched_setaffinity(0, {cpu})))
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()
        os.sched_setaffinity(pid, was)


def sample_rss(srv, seconds, every=0.2):
    """The broker's highest RSS in KiB over the next `seconds`."""
    peak = 0
    deadline = time.monotonic() + seconds
    while True:
        peak = max(peak, srv.rss_kib())
        if time.monotonic() >= deadline:
            return peak
        time.sleep(every)


def _watch(host, port, queue):
    import select

    import pika

    params = pika.ConnectionParameters(host, port, heartbeat=0, blocked_connection_timeout=None)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(queue, exclusive=True)
    sent = {}

    def on_ping(ch_, method, props, body):
        n = int(body)
        now = time.monotonic()
        print("%.6f %.6f" % (now, now - sent.pop(n, now)), flush=True)

    ch.basic_consume(queue, on_ping, auto_ack=True)
    n = 0
    next_ping = time.monotonic()
    while True:
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
            break
        now = time.monotonic()
        if now >= next_ping:
            n += 1
            sent[n] = now
            ch.basic_publish("", queue, str(n).encode())
            next_ping = now + PING_EVERY
        conn.process_data_events(time_limit=max(0.0, next_ping - time.monotonic()))
    conn.close()


if __name__ == "__main__":
    _watch(sys.argv[1], int(sys.argv[2]), sys.argv[3])
