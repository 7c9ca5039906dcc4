#!/usr/bin/python3
"""What monitoring costs: Warren's management API and Prometheus metrics side by side with
RabbitMQ's management and rabbitmq_prometheus plugins, at 1,000 and 100,000 queues.

    make -C _build bench-mgmt                      # from a build directory
    python3 bench/mgmt.py --warren _build/warren-server [--perf _build/warren-perf] \\
        [--queues 1000,100000] [--duration 10] [--quick] [--out bench-mgmt.md]

It starts its own brokers (as bench/compare.py does, whose broker classes it uses): a Warren
and a RabbitMQ 3.10 with the management API (and, when the Warren build has it, the
Prometheus listener; RabbitMQ with rabbitmq_management and rabbitmq_prometheus), and prints:

  a) The throughput cost of statistics: warren-perf scenarios 1 and 2 of bench-compare
     against each broker with management off and on (four brokers, runs interleaved).
  b) For each --queues count N: N queues declared on both (every tenth holding a message),
     then the API requests monitoring tools make, each timed several times (median and
     slowest, in ms), with the reply's size and the broker CPU it cost: /api/overview, a page
     of /api/queues by name (the web UI), sorted by messages, a regex filter (KEDA), one queue
     (KEDA, Flower), every queue with two columns, every queue in full, every binding, a
     definitions export; /metrics (aggregated) and /metrics/per-object. Beside them an AMQP
     client times passive queue.declare round trips: its slowest says how long each request
     held AMQP clients up. RabbitMQ's management database catches up with new queues every
     few seconds: the requests start once /api/overview counts all N.
  c) At the largest N: warren-perf's scenario 2 throughput for --duration seconds alone and
     with a scraper fetching /metrics/per-object and a page of /api/queues every 5 s (what a
     Prometheus server and an open dashboard do).

Figures only, nothing asserted; every figure is one run on whatever else the machine does.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as cmp  # noqa: E402

log = cmp.log
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()
PREFIX = "bench-mgmt-q-"
SCENARIOS = [("1", "1p/1c, transient, auto-ack", ["-x", 1, "-y", 1, "-a"]),
             ("2", "1p/1c, manual ack, prefetch 100", ["-x", 1, "-y", 1, "-q", 100])]


# --- brokers --------------------------------------------------------------------------------

class Monitored:
    """A broker with its HTTP ports: mgmt_port (the API), prom_port (/metrics, or None)."""

    def __init__(self, broker, mgmt_port, prom_port):
        self.broker, self.mgmt_port, self.prom_port = broker, mgmt_port, prom_port
        self.name = broker.name

    def start(self):
        self.broker.start()
        if self.mgmt_port:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if get(self.mgmt_port, "/api/overview")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("%s: no management API on port %d" % (self.name,
                                                                             self.mgmt_port))
                time.sleep(0.5)

    @property
    def pid(self):
        return self.broker.pid

    @property
    def port(self):
        return self.broker.port

    def stop(self):
        self.broker.stop()


def warren_has_prometheus(binary):
    """Whether this build knows prometheus.tcp.port (an older one refuses the key)."""
    with open(binary, "rb") as f:
        return b"prometheus.tcp.port" in f.read()


def make_warren(opts, management, name):
    if not management:
        return Monitored(cmp.Warren(opts.warren, opts.keep, name=name), None, None)
    mport = cmp.free_port()
    conf = ["management.tcp.ip = %s" % cmp.HOST, "management.tcp.port = %d" % mport]
    pport = None
    if warren_has_prometheus(opts.warren):
        pport = cmp.free_port()
        conf += ["prometheus.tcp.ip = %s" % cmp.HOST, "prometheus.tcp.port = %d" % pport]
    return Monitored(cmp.Warren(opts.warren, opts.keep, name=name, conf=conf), mport, pport)


def make_rabbitmq(opts, management, name):
    if not management:
        b = cmp.RabbitMQ(opts.keep)
        b.name = name
        return Monitored(b, None, None)
    mport, pport = cmp.free_port(), cmp.free_port()
    b = cmp.RabbitMQ(opts.keep, plugins=["rabbitmq_management", "rabbitmq_prometheus"],
                     conf=["management.tcp.ip = %s" % cmp.HOST,
                           "management.tcp.port = %d" % mport,
                           "prometheus.tcp.ip = %s" % cmp.HOST,
                           "prometheus.tcp.port = %d" % pport])
    b.name = name
    return Monitored(b, mport, pport)


# --- HTTP and AMQP --------------------------------------------------------------------------

def get(port, path, timeout=600):
    """(status, body bytes) of GET path as guest."""
    c = http.client.HTTPConnection(cmp.HOST, port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Authorization": AUTH})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def declare_queues(port, lo, n, batch=500):
    """Declares queues lo..n-1 (PREFIX + number), pipelined batch at a time, and publishes
    one message to every tenth through the default exchange."""
    c = cmp.Amqp(port, timeout=120).connect()
    try:
        for first in range(lo, n, batch):
            names = [PREFIX + "%06d" % i for i in range(first, min(n, first + batch))]
            c.sock.sendall(b"".join(
                cmp._method(1, 50, 10, struct.pack("!H", 0) + cmp._shortstr(name) + b"\0"
                            + struct.pack("!I", 0)) for name in names))
            for _ in names:
                c.expect(1, (50, 11), "queue.declare-ok")
        body = b"x" * 100
        frames = []
        for i in range(lo + (-lo) % 10, n, 10):
            frames.append(cmp._method(1, 60, 40, struct.pack("!H", 0) + cmp._shortstr("")
                                      + cmp._shortstr(PREFIX + "%06d" % i) + b"\0"))
            frames.append(cmp._frame(2, 1, struct.pack("!HHQH", 60, 0, len(body), 0)))
            frames.append(cmp._frame(3, 1, body))
            if len(frames) >= 3 * batch:
                c.sock.sendall(b"".join(frames))
                frames = []
        c.sock.sendall(b"".join(frames))
        c.queue_declare(PREFIX + "%06d" % lo, passive=True)  # a round trip: all were taken
    finally:
        c.close()


def wait_counted(b, n, timeout=600):
    """Waits until b's /api/overview counts at least n queues (RabbitMQ's stats lag)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(b.mgmt_port, "/api/overview")
        if status == 200 and json.loads(body).get("object_totals", {}).get("queues", 0) >= n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("%s: /api/overview never counted %d queues" % (b.name, n))
        time.sleep(1)


# --- b) request timings ---------------------------------------------------------------------

def requests(n):
    """(label, which port, path, tries) for n queues."""
    mid = PREFIX + "%06d" % (n // 2)
    full_tries = 1 if n > 10000 else 3
    return [("/api/overview", "mgmt", "/api/overview", 5),
            ("/api/queues page 1 (100, by name)", "mgmt",
             "/api/queues?page=1&page_size=100", 5),
            ("/api/queues page 1 sorted by messages", "mgmt",
             "/api/queues?page=1&page_size=100&sort=messages&sort_reverse=true", 5),
            ("/api/queues regex filter (KEDA)", "mgmt",
             "/api/queues/%%2F?page=1&page_size=100&use_regex=true&name=%%5E%s" % mid, 5),
            ("/api/queues/%2F/{name} (one queue)", "mgmt", "/api/queues/%2F/" + mid, 5),
            ("/api/queues?columns=name,messages (all)", "mgmt",
             "/api/queues?columns=name,messages", full_tries),
            ("/api/queues (all, every field)", "mgmt", "/api/queues", full_tries),
            ("/api/bindings (all)", "mgmt", "/api/bindings", full_tries),
            ("/api/definitions (export)", "mgmt", "/api/definitions", full_tries),
            ("/metrics (aggregated)", "prom", "/metrics", 5),
            ("/metrics/per-object", "prom", "/metrics/per-object", full_tries)]


class Pinger:
    """An AMQP client beside the requests: a passive queue.declare round trip every 2 ms in a
    thread; the slowest (held_ms) says how long the broker kept AMQP clients waiting (Warren's
    event loop serves AMQP and HTTP; RabbitMQ's are separate Erlang processes)."""

    def __init__(self, b):
        self.conn = cmp.Amqp(b.port, timeout=120).connect()
        self.stop = threading.Event()
        self.held_ms = None  # no round trip ended while the requests ran
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        while not self.stop.wait(0.002):
            t0 = time.monotonic()
            self.conn.queue_declare(PREFIX + "000000", passive=True)
            self.held_ms = max(self.held_ms or 0.0, 1000 * (time.monotonic() - t0))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.conn.close()


def time_request(b, which, path, tries):
    """{median_ms, max_ms, bytes, cpu_ms, held_ms} of tries GETs, or {error}."""
    port = b.mgmt_port if which == "mgmt" else b.prom_port
    if port is None:
        return {"error": "no listener"}
    times, size = [], 0
    cpu0 = cmp.proc_cpu(b.pid)
    with Pinger(b) as pinger:
        for _ in range(tries):
            t0 = time.monotonic()
            try:
                status, body = get(port, path)
            except OSError as e:
                return {"error": str(e)}
            times.append(1000 * (time.monotonic() - t0))
            if status != 200:
                return {"error": "HTTP %d" % status}
            size = len(body)
    cpu = cmp.proc_cpu(b.pid) - cpu0
    return {"median_ms": statistics.median(times), "max_ms": max(times), "bytes": size,
            "cpu_ms": 1000 * cpu / tries, "held_ms": pinger.held_ms}


# --- a) and c) warren-perf runs -------------------------------------------------------------

def perf(opts, b, args, scrape=None):
    """warren-perf against b for --duration s: received msgs/s and broker CPU % of a core.
    scrape: a function called every 5 s meanwhile (in a thread)."""
    argv = [opts.perf, "--host", cmp.HOST, "--port", str(b.port), "-z", "%g" % opts.duration]
    argv += [str(a) for a in args]
    stop = threading.Event()
    scrapes = []

    def scraper():
        while not stop.wait(5):
            t0 = time.monotonic()
            scrape()
            scrapes.append(1000 * (time.monotonic() - t0))

    t = threading.Thread(target=scraper) if scrape else None
    cpu0, t0 = cmp.proc_cpu(b.pid), time.monotonic()
    if t:
        t.start()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=opts.duration + 300)
    finally:
        stop.set()
        if t:
            t.join()
    wall = time.monotonic() - t0
    cpu = cmp.proc_cpu(b.pid) - cpu0
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        return {"error": "warren-perf exit %d: %s" % (p.returncode, p.stderr.strip()[-200:])}
    j = json.loads(lines[-1])
    return {"msgs_per_s": j["received_msgs_per_s"], "cpu_pct": 100 * cpu / wall,
            "scrape_ms": scrapes}


# --- output ---------------------------------------------------------------------------------

def num(v, digits=0):
    return "-" if v is None else "{:,.{}f}".format(v, digits)


def cell(r, key, digits=0):
    if r is None or "error" in r:
        return (r or {}).get("error", "-")
    return num(r.get(key), digits)


def table_stats_cost(res):
    lines = ["### a) Throughput with management off and on (received msg/s, broker CPU)", "",
             "| scenario | Warren off | Warren on | on/off | RabbitMQ off | RabbitMQ on "
             "| on/off |", "|---|---|---|---|---|---|---|"]
    for sid, title, _ in SCENARIOS:
        row = ["%s %s" % (sid, title)]
        for broker in ("Warren", "RabbitMQ"):
            off, on = res.get((sid, broker + " off")), res.get((sid, broker + " on"))
            for r in (off, on):
                row.append(cell(r, "msgs_per_s") if r is None or "error" in r else
                           "%s (%.0f%%)" % (num(r["msgs_per_s"]), r["cpu_pct"]))
            ok = off and on and "error" not in off and "error" not in on
            row.append("%.2f" % (on["msgs_per_s"] / off["msgs_per_s"]) if ok else "-")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def table_requests(n, res, names):
    lines = ["### b) %s queues: median ms (slowest), reply KiB, broker CPU ms per request, "
             "slowest AMQP round trip meanwhile (held); ratio of the medians (lower: Warren "
             "faster)" % num(n), "",
             "| request | " + " | ".join(names) + " | ratio |",
             "|---|" + "---|" * (len(names) + 1)]
    for label, _, _, _ in requests(n):
        row, medians = [label], []
        for name in names:
            r = res.get((n, label, name))
            if r is None or "error" in r:
                row.append((r or {}).get("error", "-"))
                medians.append(None)
                continue
            row.append("%s (%s), %s KiB, %s CPU, held %s" % (
                num(r["median_ms"], 1), num(r["max_ms"], 1), num(r["bytes"] / 1024, 1),
                num(r["cpu_ms"], 1), num(r["held_ms"], 1)))
            medians.append(r["median_ms"])
        ratio = ("%.3g" % (medians[0] / medians[1])
                 if len(medians) == 2 and None not in medians and medians[1] > 0 else "-")
        lines.append("| " + " | ".join(row + [ratio]) + " |")
    return lines


def table_scrape(n, res, names):
    lines = ["### c) %s queues: scenario 2 alone and with a scrape every 5 s "
             "(/metrics/per-object and a page of /api/queues)" % num(n), "",
             "| broker | msg/s alone | msg/s scraped | ratio | broker CPU alone / scraped "
             "| scrape ms (median) |", "|---|---|---|---|---|---|"]
    for name in names:
        a, s = res.get(("alone", name)), res.get(("scraped", name))
        if not a or not s or "error" in a or "error" in s:
            lines.append("| %s | %s | %s | - | - | - |" % (name, cell(a, "msgs_per_s"),
                                                          cell(s, "msgs_per_s")))
            continue
        med = statistics.median(s["scrape_ms"]) if s["scrape_ms"] else None
        lines.append("| %s | %s | %s | %.2f | %.0f%% / %.0f%% | %s |"
                     % (name, num(a["msgs_per_s"]), num(s["msgs_per_s"]),
                        s["msgs_per_s"] / a["msgs_per_s"], a["cpu_pct"], s["cpu_pct"],
                        num(med, 1)))
    return lines


# --- main -----------------------------------------------------------------------------------

def run_stats_cost(opts, res):
    brokers = [make_warren(opts, False, "Warren off"), make_warren(opts, True, "Warren on")]
    if not opts.warren_only:
        brokers += [make_rabbitmq(opts, False, "RabbitMQ off"),
                    make_rabbitmq(opts, True, "RabbitMQ on")]
    try:
        for b in brokers:
            b.start()
        for sid, title, args in SCENARIOS:
            log("scenario %s: %s" % (sid, title))
            for b in brokers:
                r = res[(sid, b.name)] = perf(opts, b, args + ["--prefix", "bm%s" % sid])
                log("  %s: %s" % (b.name, r))
    finally:
        for b in brokers:
            b.stop()


def run_scale(opts, res, counts):
    brokers = [make_warren(opts, True, "Warren")]
    if not opts.warren_only:
        brokers.append(make_rabbitmq(opts, True, "RabbitMQ"))
    try:
        for b in brokers:
            b.start()
        have = 0
        for n in counts:
            for b in brokers:
                t0 = time.monotonic()
                declare_queues(b.port, have, n)
                wait_counted(b, n)
                log("%s: %d queues declared and counted in %.1f s" % (b.name, n,
                                                                     time.monotonic() - t0))
            have = n
            for label, which, path, tries in requests(n):
                for b in brokers:
                    r = res[(n, label, b.name)] = time_request(b, which, path, tries)
                    log("  %s %s: %s" % (b.name, label, r))
        for b in brokers:
            def scrape(b=b):
                if b.prom_port:
                    get(b.prom_port, "/metrics/per-object")
                get(b.mgmt_port, "/api/queues?page=1&page_size=100")
            res[("alone", b.name)] = perf(opts, b, SCENARIOS[1][2] + ["--prefix", "bms"])
            res[("scraped", b.name)] = perf(opts, b, SCENARIOS[1][2] + ["--prefix", "bms"],
                                            scrape)
            log("  %s: alone %s, scraped %s" % (b.name, res[("alone", b.name)],
                                                res[("scraped", b.name)]))
        return [b.name for b in brokers]
    finally:
        for b in brokers:
            b.stop()


def main():
    ap = argparse.ArgumentParser(description="The management API's and metrics' cost, "
                                 "Warren and RabbitMQ side by side (see this file's docstring).")
    cmp.add_binary_args(ap)
    ap.add_argument("--queues", default="1000,100000", help="queue counts (ascending)")
    ap.add_argument("--duration", type=float, default=10, help="seconds per warren-perf run")
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 queues, 3 s runs")
    ap.add_argument("--warren-only", action="store_true", help="do not start RabbitMQ")
    ap.add_argument("--skip-stats-cost", action="store_true", help="leave out a)")
    ap.add_argument("--keep", action="store_true", help="keep the brokers' directories")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    opts = ap.parse_args()
    cmp.resolve_binaries(ap, opts)
    if opts.quick:
        opts.queues, opts.duration = "1000,10000", 3
    counts = sorted(int(x) for x in opts.queues.split(","))
    res = {}
    if not opts.skip_stats_cost:
        run_stats_cost(opts, res)
    names = run_scale(opts, res, counts)
    out = ["## bench/mgmt.py, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "",
           "Machine: %s. Command: %s" % (cmp.machine(), " ".join(sys.argv)), ""]
    if not opts.skip_stats_cost:
        out += table_stats_cost(res) + [""]
    for n in counts:
        out += table_requests(n, res, names) + [""]
    out += table_scrape(counts[-1], res, names)
    text = "\n".join(out) + "\n"
    print(text)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
