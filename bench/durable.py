#!/usr/bin/python3
"""What persistence costs in Warren: throughput, confirm latency, memory, restart time and
disk use with persistent 1 KiB messages on a durable queue.

    make -C _build bench-durable                   # from a build directory: about a minute
    python3 bench/durable.py --warren _build/warren-server [--perf _build/warren-perf] \\
        [--quick] [--count N] [--duration S] [--json] [--keep]

It starts its own warren-server (a free loopback port, a fresh data directory under /tmp,
log level info), drives it with warren-perf (confirm window 100, prefetch 100, an ack per
message) and prints a table:

  a) 1 producer / 1 consumer for --duration seconds: msgs/s, confirm latency (publish to
     basic.ack, which waits for the fsync) and end-to-end latency.
  b) --backlog: --count messages with no consumer, then drained (warren-perf -B): seconds and
     msgs/s each way, the broker's peak RSS (VmHWM, reset before the run), the largest size
     of the data directory during the run.
  c) --count messages published and kept (--keep-queues), the broker stopped with SIGTERM and
     started again on the same directory: time until it completes an AMQP handshake (it
     restores before listening), its "store: restored ..." log line, RSS after the restart,
     then the queue drained by a consumer-only warren-perf; stored, restored, queued and
     drained counts must all be --count.
  d) du of the data directory after a), after b)'s drain and after c)'s drain: acked
     messages are deleted, so it must not keep growing.

warren-perf's bodies are the letters a-z repeated (and a timestamp), which RocksDB's block
compression shrinks several times over: the sizes are those of such bodies, not of random
ones. A running broker's directory also holds a preallocated write-ahead log (about 20 MiB).
Every figure is for one run on whatever else the machine is doing.

No figure is asserted (the machine may be shared); the exit status is 1 only when something
failed or c)'s counts disagree, 130 when interrupted. --json prints the figures as one JSON object instead of the
table. The broker is stopped at the end, also on errors, Ctrl-C and SIGTERM; --keep keeps its
directory (and log).

The broker, the raw AMQP client (and its frame helpers, for a passive queue.declare) and
the /proc helpers come from bench/compare.py.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as cmp  # noqa: E402

log = cmp.log
BASE = ["-s", 1024, "-f", "-c", 100]  # 1 KiB persistent messages, durable queue, confirms
CONSUME = ["-q", 100]  # manual acks, one per message, prefetch 100
PREFIX = "bench-durable"
RESTORED_RE = re.compile(r"store: restored (\d+) exchanges, (\d+) queues, (\d+) bindings, "
                         r"(\d+) messages")


# --- the broker and /proc ------------------------------------------------------------------

def status_kib(pid, key):
    """A "Vm...:" line of /proc/PID/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s for pid %d" % (key, pid))


def reset_peak_rss(pid):
    """Resets the process's VmHWM to its current RSS (Linux 4.0+). False if not allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def du_bytes(path):
    """Bytes the files under path take on disk, as du counts them."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass  # RocksDB removed it meanwhile
    return total


class Broker(cmp.Warren):
    """compare.py's Warren, logging at info (for the restore line), restartable on the same
    directory, timing its start to the first AMQP handshake."""

    def __init__(self, binary):
        super().__init__(binary, keep=True)  # stop() must not delete it between starts
        self.data = os.path.join(self.dir, "data")
        self.log_from = 0

    def start(self):
        """Returns the seconds from exec to the first completed AMQP handshake."""
        argv = [self.binary, "--port", str(self.port), "--bind", cmp.HOST, "--data-dir",
                self.data, "--log-level", "info",
                "--management-port", "0"]  # no HTTP API: brokers run side by side
        usage = subprocess.run([self.binary, "--help"], capture_output=True, text=True).stdout
        if "--prometheus-port" in usage:  # nor Prometheus listener (an older build has none)
            argv += ["--prometheus-port", "0"]
        log("starting %s" % " ".join(argv))
        with open(self.logfile, "a") as lf:
            self.log_from = lf.tell()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                         start_new_session=True)
        self.pid = self.proc.pid
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("warren-server exited with status %d while starting; its "
                                   "log:\n%s" % (self.proc.returncode, cmp.tail(self.logfile)))
            try:
                c = cmp.Amqp(self.port, timeout=5).connect()
            except (OSError, cmp.AmqpError):
                if time.monotonic() - t0 > 900:
                    raise RuntimeError("warren-server is not accepting connections after 900 s")
                time.sleep(0.005)
                continue
            ready = time.monotonic() - t0
            self.server = c.server
            c.close()
            log("  %s on %s:%d after %.2f s, data dir %s" % (self.server, cmp.HOST, self.port,
                                                              ready, self.data))
            return ready

    def stop_timed(self):
        """SIGTERM; returns the seconds until the process exited."""
        t0 = time.monotonic()
        self.stop()
        return time.monotonic() - t0

    def log_since_start(self):
        with open(self.logfile, errors="replace") as f:
            f.seek(self.log_from)
            return f.read()

    def queue_depth(self, name):
        """message-count of a passive queue.declare."""
        c = cmp.Amqp(self.port).connect()
        try:
            args = struct.pack("!H", 0) + cmp._shortstr(name) + b"\x01" + struct.pack("!I", 0)
            c.sock.sendall(cmp._method(1, 50, 10, args))
            ok = c.expect(1, (50, 11), "queue.declare-ok")
            return struct.unpack("!I", ok[1 + ok[0]:5 + ok[0]])[0]
        finally:
            c.close()


# --- warren-perf runs ----------------------------------------------------------------------

def perf(opts, broker, args, timeout):
    """Runs warren-perf; returns its JSON line with the broker's CPU % of a core, its peak RSS
    (VmHWM, reset first) and the data directory's largest size during the run."""
    argv = [opts.perf, "--host", cmp.HOST, "--port", str(broker.port)] + [str(a) for a in args]
    log("  running: %s" % " ".join(argv))
    peak_ok = reset_peak_rss(broker.pid)
    cpu0, t0, du_max, next_du = cmp.proc_cpu(broker.pid), time.monotonic(), 0, 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            while p.poll() is None:
                now = time.monotonic()
                if now - t0 > timeout:
                    p.kill()
                    p.wait()
                    raise RuntimeError("warren-perf still running after %d s" % timeout)
                if now >= next_du:
                    du_max, next_du = max(du_max, du_bytes(broker.data)), now + 1
                time.sleep(0.05)
        except BaseException:
            if p.poll() is None:
                p.kill()
                p.wait()
            raise
        wall = time.monotonic() - t0
        cpu1 = cmp.proc_cpu(broker.pid)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = stderr.strip().splitlines()
    if lines:
        log("    | %s" % lines[-1])
    if p.returncode != 0 or not stdout.strip():
        raise RuntimeError("warren-perf exited %d: %s" % (p.returncode, "\n".join(lines[-5:])))
    r = json.loads(stdout.strip().splitlines()[-1])
    r["broker_cpu_pct"] = 100 * (cpu1 - cpu0) / wall
    r["broker_peak_rss_kib"] = status_kib(broker.pid, "VmHWM") if peak_ok else None
    r["data_dir_max_bytes"] = max(du_max, du_bytes(broker.data))
    return r


def scenario_a(opts, b, res):
    r = perf(opts, b, ["-x", 1, "-y", 1, "-z", "%g" % opts.duration, "--prefix", PREFIX + "-a"]
             + BASE + CONSUME, opts.duration + 300)
    res["a"] = {"received_msgs_per_s": r["received_msgs_per_s"],
                "sent_msgs_per_s": r["sent_msgs_per_s"],
                "confirm_latency_us": r["confirm_latency_us"], "latency_us": r["latency_us"],
                "broker_cpu_pct": r["broker_cpu_pct"]}
    res["d"]["after_a_bytes"] = du_bytes(b.data)


def scenario_b(opts, b, res):
    r = perf(opts, b, ["-x", 1, "-y", 1, "-B", opts.count, "--prefix", PREFIX + "-b"]
             + BASE + CONSUME, opts.count / 1000 + 600)
    res["b"] = {"count": opts.count, "publish_s": r["publish_s"],
                "publish_msgs_per_s": r["publish_msgs_per_s"], "drain_s": r["drain_s"],
                "drain_msgs_per_s": r["drain_msgs_per_s"],
                "confirm_latency_us": r["confirm_latency_us"],
                "broker_peak_rss_kib": r["broker_peak_rss_kib"],
                "data_dir_max_bytes": r["data_dir_max_bytes"], "received": r["received"]}
    res["d"]["after_b_drain_bytes"] = du_bytes(b.data)


def scenario_c(opts, b, res):
    q = PREFIX + "-c"
    c = res["c"] = {"count": opts.count}
    r = perf(opts, b, ["-x", 1, "-y", 0, "-C", opts.count, "--keep-queues", "--prefix", q]
             + BASE, opts.count / 1000 + 600)
    c["publish_msgs_per_s"] = r["sent_msgs_per_s"]
    c["confirmed"] = r["confirmed"]
    c["queued_before"] = b.queue_depth(q + "-0")
    c["data_dir_stored_bytes"] = du_bytes(b.data)
    c["rss_before_kib"] = status_kib(b.pid, "VmRSS")
    c["stop_s"] = b.stop_timed()
    c["start_s"] = b.start()
    c["rss_after_restart_kib"] = status_kib(b.pid, "VmRSS")
    c["peak_rss_restore_kib"] = status_kib(b.pid, "VmHWM")
    m = RESTORED_RE.search(b.log_since_start())
    c["restored_line"] = m.group(0) if m else None
    c["restored_messages"] = int(m.group(4)) if m else None
    c["queued_after"] = b.queue_depth(q + "-0")
    # Consume only: the consumer stops after --count deliveries; the queue is deleted after.
    r = perf(opts, b, ["-x", 0, "-y", 1, "-C", opts.count, "-f", "--prefix", q] + CONSUME,
             opts.count / 1000 + 600)
    c["drained"] = r["received"]
    c["drain_msgs_per_s"] = r["received_msgs_per_s"]
    c["drain_s"] = r["received"] / r["received_msgs_per_s"] if r["received_msgs_per_s"] else 0
    c["broker_peak_rss_drain_kib"] = r["broker_peak_rss_kib"]
    counts = (c["confirmed"], c["queued_before"], c["restored_messages"], c["queued_after"],
              c["drained"])
    c["counts_match"] = all(n == opts.count for n in counts)
    res["d"]["after_c_drain_bytes"] = du_bytes(b.data)


# --- the table -----------------------------------------------------------------------------

def num(v, digits=0):
    return "—" if v is None else "{:,.{}f}".format(v, digits)


def mib(v):
    return "—" if v is None else "%.1f" % (v / 1048576)


def kib_mib(v):
    return "—" if v is None else "%.1f" % (v / 1024)


def lat(d):
    return "%s / %s" % (num(d["p50"]), num(d["p99"]))


def table(opts, res):
    rows = []

    def add(sid, figure, value):
        rows.append((sid, figure, value))

    n = num(opts.count)
    a, b, c, d = res.get("a"), res.get("b"), res.get("c"), res["d"]
    if a:
        add("a", "1p/1c, %g s: received msgs/s" % opts.duration, num(a["received_msgs_per_s"]))
        add("", "confirm latency p50 / p99 (us)", lat(a["confirm_latency_us"]))
        add("", "publish-to-delivery latency p50 / p99 (us)", lat(a["latency_us"]))
        add("", "broker CPU (% of a core)", num(a["broker_cpu_pct"]))
    if b:
        add("b", "%s with no consumer: publish s (msgs/s)" % n,
            "%.1f (%s)" % (b["publish_s"], num(b["publish_msgs_per_s"])))
        add("", "then drain: s (msgs/s)", "%.1f (%s)" % (b["drain_s"],
                                                        num(b["drain_msgs_per_s"])))
        add("", "confirm latency p50 / p99 (us)", lat(b["confirm_latency_us"]))
        add("", "broker peak RSS (MiB)", kib_mib(b["broker_peak_rss_kib"]))
        add("", "largest data dir (MiB)", mib(b["data_dir_max_bytes"]))
    if c:
        add("c", "%s kept: publish msgs/s" % n, num(c.get("publish_msgs_per_s")))
        stored = c.get("data_dir_stored_bytes")
        add("", "data dir with them (MiB; bodies: %s MiB, compressible)" % mib(1024 * opts.count),
            mib(stored))
        add("", "RSS before / after restart (MiB)", "%s / %s" % (
            kib_mib(c.get("rss_before_kib")), kib_mib(c.get("rss_after_restart_kib"))))
        add("", "SIGTERM to exit (s)", num(c.get("stop_s"), 2))
        add("", "start to first AMQP handshake (s)", num(c.get("start_s"), 2))
        add("", "peak RSS during the restore (MiB)", kib_mib(c.get("peak_rss_restore_kib")))
        add("", "log", c.get("restored_line") or "no 'store: restored' line")
        if "drained" in c:
            add("", "drain: s (msgs/s)", "%.1f (%s)" % (c["drain_s"],
                                                       num(c["drain_msgs_per_s"])))
            add("", "broker peak RSS during the drain (MiB)",
                kib_mib(c["broker_peak_rss_drain_kib"]))
            add("", "confirmed / queued / restored / queued / drained", "%s / %s / %s / %s / %s"
                % tuple(num(c[k]) for k in ("confirmed", "queued_before", "restored_messages",
                                            "queued_after", "drained"))
                + ("" if c["counts_match"] else "  MISMATCH"))
    add("d", "data dir (MiB): after a) / b)'s drain / c)'s drain", " / ".join(
        mib(d.get(k)) for k in ("after_a_bytes", "after_b_drain_bytes", "after_c_drain_bytes")))
    w1 = max(len(r[1]) for r in rows)
    return "".join("%-2s %-*s  %s\n" % (sid, w1, fig, val) for sid, fig, val in rows)


def main():
    ap = argparse.ArgumentParser(
        description="Warren's durability figures: persistent 1 KiB messages on a durable "
                    "queue (prints a table, asserts nothing about speed).")
    cmp.add_binary_args(ap)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test: 100,000 messages and 3 s runs")
    ap.add_argument("--count", type=int, default=None,
                    help="messages in b) and c) (default 1,000,000; --quick 100,000)")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of a) (default 10; --quick 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    ap.add_argument("--keep", action="store_true",
                    help="keep the broker's directory (data and log) under /tmp")
    opts = ap.parse_args()
    if opts.count is None:
        opts.count = 100000 if opts.quick else 1000000
    if opts.duration is None:
        opts.duration = 3 if opts.quick else 10
    cmp.resolve_binaries(ap, opts)

    def on_term(signum, frame):
        raise cmp.Interrupted("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    res = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": cmp.machine(), "count": opts.count, "duration_s": opts.duration,
           "d": {}}
    status = 0
    b = Broker(opts.warren)
    try:
        b.start()
        res["server"] = b.server
        for fn in (scenario_a, scenario_b, scenario_c):
            fn(opts, b, res)
        if not res["c"]["counts_match"]:
            log("c): the counts differ from %d" % opts.count)
            status = 1
    except (KeyboardInterrupt, cmp.Interrupted) as e:
        log("interrupted: stopping the broker; the figures are what ran so far (%s)"
            % type(e).__name__)
        status = 130
    except (RuntimeError, OSError, ValueError, cmp.AmqpError) as e:
        log("error: %s" % e)
        status = 1
    finally:
        b.stop()
        if opts.keep:
            log("kept %s (log: %s)" % (b.dir, b.logfile))
        else:
            shutil.rmtree(b.dir, ignore_errors=True)
    if opts.json:
        print(json.dumps(res))
    else:
        print("%s, %s, %s" % (res.get("server", "warren-server"), res["date"], res["machine"]))
        print("1 KiB persistent messages, durable queue, confirm window 100, prefetch 100 "
              "(an ack per message)\n")
        sys.stdout.write(table(opts, res))
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
