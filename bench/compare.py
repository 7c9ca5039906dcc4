#!/usr/bin/python3
"""Warren and RabbitMQ side by side: the same warren-perf scenarios against both brokers.

    make -C _build bench-compare                      # from a build directory: 10 s runs
    python3 bench/compare.py --warren _build/warren-server --perf _build/warren-perf \\
        [--duration 10 | --quick] [--out bench-compare.md] [--scenarios 1,5a,9]
    python3 bench/compare.py --warren ... --perf ... --self-check   # 1 s, Warren only
    python3 bench/compare.py --warren new/warren-server --perf new/warren-perf \
        --baseline old/warren-server        # a third broker: before and after a change

It starts its own Warren (a free loopback port, a fresh data directory under /tmp,
--log-level warning) and its own RabbitMQ (Debian's rabbitmq-server, run as interop/rabbitmq/
ref.sh does: its own node name, AMQP and distribution ports, mnesia and log directories under
/tmp; as root, since the Debian wrapper runs the node as the rabbitmq user), waits until each
completes an AMQP handshake, then runs every scenario against Warren and at once against
RabbitMQ (1 Warren, 1 RabbitMQ, 2 Warren, ...), so that slow drifts of the machine hit both
alike. Both brokers are stopped at the end, also on errors, Ctrl-C and SIGTERM.

For each run it records warren-perf's JSON line, the CPU time of the broker process and of
warren-perf (CPU % of one core, over warren-perf's lifetime: setup, run and teardown; on a
2-core machine the load generator and the broker share the CPU), and the broker's peak RSS
(sampled every 0.1 s). Before each broker's run of scenario 7 it measures the machine's latency
floor at the same rate with bench/tcp_floor (--floor; a relay that only moves bytes between two
loopback TCP connections), so that each p99 can be read against the floor of its moment. The
table goes to stdout in markdown and, with the date, the machine
and the command lines, to --out. Ratios are Warren/RabbitMQ; each figure says whether
higher or lower is better. Benchmarks print figures and assert nothing about time:
--self-check only checks that every scenario runs and prints its rows (exit 0), which
tests/integration/41-bench-compare.py relies on.

The task-queue scenarios use warren-perf's queue arguments: 11 dead-letters every message
once (x-message-ttl 0 and --dead-letter) on its way to the consumer; 12 and 12b use a
priority queue with 10 levels, live and as a backlog drained (how many deliveries come
above the priority before them shows the order); 13 fills a queue with 1,000,000 messages
(--expiring; 200,000 with --quick) that expire at the same moment (warren-perf --expire-at)
and times how long the broker takes to empty it, polling queue.declare's message count.

The TLS scenarios (2t, 5at: scenarios 2 and 5a over TLS; 10: TLS handshakes per second,
warren-perf --churn) run against each broker's own TLS listener, both given the same
throwaway certificate, made with the openssl CLI (a CA and an ECDSA P-256 server certificate,
in a temporary directory). Only when a TLS scenario is chosen are the brokers configured with
a TLS listener: loading TLS costs memory that the other scenarios' RSS figures do not include.

Python 3 standard library only: the topic bindings and the idle connections use the small
raw AMQP 0-9-1 client below.
"""

import argparse
import datetime
import json
import os
import platform
import pwd
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")
# A run during which other processes used more than this % of a core is repeated (--retries).
DISTURBED_PCT = 25
HOST = "127.0.0.1"
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"  # Debian's rabbitmq-server, without the su wrapper

# Topic scenario: the bindings, in four families of a quarter each, all onto the consumer's
# queue; the routing key of every message matches one binding of each family.
TOPIC_FAMILIES = ("stock.a{a}.b{b}", "*.a{a}.b{b}", "stock.a{a}.b{b}.#", "#.a{a}.b{b}")
TOPIC_KEY = "stock.a7.b3"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that the brokers are stopped on the way out."""


# --- a minimal AMQP 0-9-1 client: handshake, channel.open, queue methods -------------------

def _shortstr(s):
    b = s.encode()
    return struct.pack("!B", len(b)) + b


def _longstr(b):
    return struct.pack("!I", len(b)) + b


def _frame(ftype, channel, payload):
    return struct.pack("!BHI", ftype, channel, len(payload)) + payload + b"\xce"


def _method(channel, class_id, method_id, args=b""):
    return _frame(1, channel, struct.pack("!HH", class_id, method_id) + args)


class AmqpError(Exception):
    pass


class Amqp:
    """One connection, PLAIN login, no heartbeats, channel 1 open after connect()."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.server = ""

    def connect(self, user="guest", password="guest", vhost="/"):
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        ch, ids, args = self.read_method()
        if ids != (10, 10):
            raise AmqpError("expected connection.start, got %r" % (ids,))
        self.server = _server_name(args)
        start_ok = (struct.pack("!I", 0) + _shortstr("PLAIN")
                    + _longstr(("\0%s\0%s" % (user, password)).encode()) + _shortstr("en_US"))
        self.sock.sendall(_method(0, 10, 11, start_ok))
        ch, ids, args = self.read_method()
        if ids != (10, 30):
            raise AmqpError("expected connection.tune, got %r" % (ids,))
        channel_max, frame_max, _ = struct.unpack("!HIH", args[:8])
        self.sock.sendall(_method(0, 10, 31, struct.pack("!HIH", channel_max, frame_max, 0))
                          + _method(0, 10, 40, _shortstr(vhost) + _shortstr("") + b"\0")
                          + _method(1, 20, 10, _shortstr("")))
        self.expect(0, (10, 41), "connection.open-ok")
        self.expect(1, (20, 11), "channel.open-ok")
        return self

    def _fill(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise AmqpError("the broker closed the connection")
            self.buf += data

    def read_method(self):
        """The next method frame (heartbeats and content are skipped):
        (channel, (class, method), arguments). Raises AmqpError on a close."""
        while True:
            self._fill(7)
            ftype, channel, size = struct.unpack("!BHI", self.buf[:7])
            self._fill(7 + size + 1)
            payload = self.buf[7:7 + size]
            self.buf = self.buf[7 + size + 1:]
            if ftype != 1:
                continue
            ids = struct.unpack("!HH", payload[:4])
            if ids in ((10, 50), (20, 40)):
                code = struct.unpack("!H", payload[4:6])[0]
                text = payload[7:7 + payload[6]].decode(errors="replace")
                raise AmqpError("%d %s" % (code, text))
            return channel, ids, payload[4:]

    def expect(self, channel, ids, name):
        ch, got, args = self.read_method()
        if (ch, got) != (channel, ids):
            raise AmqpError("expected %s on channel %d, got %r on %d" % (name, channel, got, ch))
        return args

    def queue_declare(self, name, passive=False):
        """Returns the queue's message count (declare-ok's)."""
        args = (struct.pack("!H", 0) + _shortstr(name) + (b"\1" if passive else b"\0")
                + struct.pack("!I", 0))
        self.sock.sendall(_method(1, 50, 10, args))
        ok = self.expect(1, (50, 11), "queue.declare-ok")
        return struct.unpack("!I", ok[1 + ok[0]:5 + ok[0]])[0]

    @staticmethod
    def queue_bind_frame(queue, exchange, key, nowait):
        args = (struct.pack("!H", 0) + _shortstr(queue) + _shortstr(exchange) + _shortstr(key)
                + (b"\1" if nowait else b"\0") + struct.pack("!I", 0))
        return _method(1, 50, 20, args)

    def queue_delete(self, name):
        self.sock.sendall(_method(1, 50, 40, struct.pack("!H", 0) + _shortstr(name) + b"\0"))
        self.expect(1, (50, 41), "queue.delete-ok")

    def send_close(self):
        self.sock.sendall(_method(0, 10, 50, struct.pack("!H", 200) + _shortstr("bye")
                                  + struct.pack("!HH", 0, 0)))

    def finish_close(self):
        try:
            self.expect(0, (10, 51), "connection.close-ok")
        finally:
            self.sock.close()

    def close(self):
        try:
            self.send_close()
            self.finish_close()
        except (OSError, AmqpError):
            self.sock.close()


def _server_name(start_args):
    """'product version' from connection.start's server-properties (longstr values only)."""
    n = struct.unpack("!I", start_args[2:6])[0]
    t, pos, props = start_args[6:6 + n], 0, {}
    while pos < len(t):
        klen = t[pos]
        key = t[pos + 1:pos + 1 + klen].decode(errors="replace")
        pos += 1 + klen
        kind = t[pos:pos + 1]
        pos += 1
        if kind == b"S":
            vlen = struct.unpack("!I", t[pos:pos + 4])[0]
            props[key] = t[pos + 4:pos + 4 + vlen].decode(errors="replace")
            pos += 4 + vlen
        elif kind == b"F":
            pos += 4 + struct.unpack("!I", t[pos:pos + 4])[0]
        elif kind == b"t":
            pos += 1
        else:
            break  # a type we do not need to name the server
    return ("%s %s" % (props.get("product", "?"), props.get("version", "?"))).strip()


def amqp_ready(port, deadline, proc=None):
    """Waits until the broker on port completes an AMQP handshake; returns its name."""
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("exited with status %d while starting" % proc.returncode)
        try:
            c = Amqp(port, timeout=5).connect()
            name = c.server
            c.close()
            return name
        except (OSError, AmqpError) as e:
            last = e
            time.sleep(0.25)
    raise RuntimeError("no AMQP handshake on port %d in time (%s)" % (port, last))


def topic_match(pattern, key):
    """RabbitMQ's topic matching: '*' one word, '#' zero or more."""
    def m(p, k):
        if not p:
            return not k
        if p[0] == "#":
            return any(m(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and m(p[1:], k[1:])
    return m(pattern.split("."), key.split("."))


def topic_patterns(n):
    """n distinct binding keys: TOPIC_FAMILIES over a grid of (a, b)."""
    per = (n + len(TOPIC_FAMILIES) - 1) // len(TOPIC_FAMILIES)
    out = []
    for fam in TOPIC_FAMILIES:
        for i in range(per):
            if len(out) == n:
                break
            out.append(fam.format(a=i % 250, b=i // 250))
    return out


# --- processes: CPU time and memory from /proc ---------------------------------------------

def proc_cpu(pid):
    """utime + stime of a live process, in seconds (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def machine_busy():
    """CPU seconds the whole machine has spent busy (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / HZ


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def free_port():
    """A loopback port free to bind, below the kernel's range of ephemeral ports: with ports
    from that range (bind to port 0), warren-server's own bind a moment later failed with
    EADDRINUSE in 2 runs of 4 on a machine with 19,000 connections in TIME_WAIT."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(1000):
        port = random.randint(max(1024, low // 2), low - 1)
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found below %d" % low)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Warren:
    def __init__(self, binary, keep, tls=None, name="Warren", conf=()):
        self.name = name
        self.conf = list(conf)  # extra warren.conf lines; management stays off unless set
        self.binary = os.path.abspath(binary)
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="warren-bench-")
        self.port = free_port()
        self.tls = tls  # a Certificates, or None: no TLS listener
        self.tls_port = free_port() if tls else None
        self.proc = None
        self.pid = None
        self.logfile = os.path.join(self.dir, "warren.log")
        self.server = ""

    def start(self):
        argv = [self.binary, "--port", str(self.port), "--bind", HOST, "--data-dir",
                os.path.join(self.dir, "data"), "--log-level", "warning"]
        # No HTTP API and no Prometheus listener unless asked for: brokers run side by side
        # (a --baseline build may predate them).
        usage = subprocess.run([self.binary, "--help"], capture_output=True, text=True).stdout
        if "--management-port" in usage and not any(
                line.startswith("management.tcp.port") for line in self.conf):
            argv += ["--management-port", "0"]
        if "--prometheus-port" in usage and not any(
                line.startswith("prometheus.tcp.port") for line in self.conf):
            argv += ["--prometheus-port", "0"]
        lines = self.conf[:]
        if self.tls:
            lines.append("listeners.ssl.default = %s:%d\n%s" % (HOST, self.tls_port,
                                                               self.tls.ssl_options()))
        if lines:
            conf = os.path.join(self.dir, "warren.conf")
            with open(conf, "w") as f:
                f.write("".join(line.rstrip("\n") + "\n" for line in lines))
            argv += ["--config", conf]
        log("starting %s" % " ".join(argv))
        with open(self.logfile, "w") as lf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                         start_new_session=True)
        self.pid = self.proc.pid
        try:
            self.server = amqp_ready(self.port, time.monotonic() + 20, self.proc)
        except RuntimeError as e:
            raise RuntimeError("warren-server %s; its log:\n%s" % (e, tail(self.logfile)))
        log("  %s on %s:%d, data dir %s" % (self.server, HOST, self.port, self.dir))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.returncode != 0:
                log("warren-server exited with status %d; its log:\n%s"
                    % (self.proc.returncode, tail(self.logfile)))
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class RabbitMQ:
    name = "RabbitMQ"
    started = 0

    def __init__(self, keep, tls=None, plugins=(), conf=()):
        """plugins: the plugins to enable (none by default, whatever /etc/rabbitmq has);
        conf: extra rabbitmq.conf lines."""
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="rabbitmq-bench-")
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.dist_port = free_port()
        RabbitMQ.started += 1  # one process may run several nodes (bench/mgmt.py)
        self.node = "warren-bench-%d-%d@localhost" % (os.getpid(), RabbitMQ.started)
        self.proc = None
        self.pid = None
        self.server = ""
        self.stdout = os.path.join(self.dir, "stdout.log")
        conf_file = os.path.join(self.dir, "rabbitmq.conf")
        with open(conf_file, "w") as f:
            f.write("listeners.tcp.default = %d\n" % self.port)
            if tls:
                f.write("listeners.ssl.default = %d\n%s" % (self.tls_port, tls.ssl_options()))
            f.write("".join(line + "\n" for line in conf))
        plugins_file = os.path.join(self.dir, "enabled_plugins")
        with open(plugins_file, "w") as f:
            f.write("[%s].\n" % ",".join(plugins))
        self.env = dict(os.environ, RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                        RABBITMQ_CONFIG_FILE=conf_file,
                        RABBITMQ_ENABLED_PLUGINS_FILE=plugins_file,
                        HOME=self.dir)

    def as_rabbitmq(self):
        """preexec_fn: become the rabbitmq user, as the Debian wrapper's su does, but keep
        our file descriptor limit (su's PAM session would cap it at 1024, and the node would
        refuse connections past about 830)."""
        os.setgroups([])
        os.setgid(self.pw.pw_gid)
        os.setuid(self.pw.pw_uid)

    def start(self):
        exe = os.path.join(RABBITMQ_BIN, "rabbitmq-server")
        if not os.access(exe, os.X_OK):
            raise RuntimeError("%s not found: apt-get install rabbitmq-server "
                               "(or run with --warren-only)" % exe)
        if os.geteuid() != 0:
            raise RuntimeError("starting RabbitMQ needs root (the node runs as the rabbitmq "
                               "user, as Debian's wrapper runs it); or run with --warren-only")
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)  # again on a restart
        self.pw = pwd.getpwnam("rabbitmq")
        # what su sets: the node and rabbitmqctl share /var/lib/rabbitmq/.erlang.cookie
        self.env.update(HOME=self.pw.pw_dir, USER="rabbitmq", LOGNAME="rabbitmq",
                        SHELL="/bin/sh")
        for root, dirs, files in os.walk(self.dir):
            for name in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(name, self.pw.pw_uid, self.pw.pw_gid)
        log("starting RabbitMQ node %s on %s:%d (dist port %d), files in %s"
            % (self.node, HOST, self.port, self.dist_port, self.dir))
        with open(self.stdout, "w") as out:
            self.proc = subprocess.Popen([exe], cwd=self.dir, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         start_new_session=True, preexec_fn=self.as_rabbitmq)
        try:
            self.server = amqp_ready(self.port, time.monotonic() + 120, self.proc)
        except RuntimeError as e:
            raise RuntimeError("rabbitmq-server %s; see %s:\n%s" % (e, self.stdout,
                                                                   tail(self.stdout)))
        self.pid = self.find_beam()
        log("  %s on %s:%d, beam.smp pid %d" % (self.server, HOST, self.port, self.pid))

    def find_beam(self):
        """The beam.smp process running our node (the one whose RSS and CPU we measure): the
        descendant of the wrapper we started (its command line does not name the node)."""
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
            except OSError:
                continue
            comm = s[s.index("(") + 1:s.rindex(")")]
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append((int(d), comm))
        todo = [self.proc.pid]
        while todo:
            for pid, comm in children.get(todo.pop(), []):
                if comm == "beam.smp":
                    return pid
                todo.append(pid)
        raise RuntimeError("no beam.smp process under pid %d for node %s"
                           % (self.proc.pid, self.node))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                subprocess.run([os.path.join(RABBITMQ_BIN, "rabbitmqctl"), "-n", self.node,
                                "stop"], cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=60, preexec_fn=self.as_rabbitmq)
            except (OSError, subprocess.TimeoutExpired):
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        if self.pid is not None:  # the node outlived rabbitmqctl stop, or it failed
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
                for _ in range(100):
                    if not os.path.exists("/proc/%d" % self.pid):
                        break
                    time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- scenarios -------------------------------------------------------------------------------

class Scenario:
    """A title may name {backlog} and {expiring}: main() fills them in from the options."""

    def __init__(self, sid, title, args=None, kind="throughput", tls=False):
        self.sid, self.title, self.args, self.kind = sid, title, args or [], kind
        self.tls = tls  # run against the broker's TLS listener, with warren-perf --tls


SCENARIOS = [
    Scenario("1", "1p/1c, transient, auto-ack", ["-x", 1, "-y", 1, "-a"]),
    Scenario("2", "1p/1c, manual ack, prefetch 100", ["-x", 1, "-y", 1, "-q", 100]),
    Scenario("3", "1p/1c, persistent, durable queue, confirms (window 100), manual ack, "
             "prefetch 100", ["-x", 1, "-y", 1, "-f", "-c", 100, "-q", 100]),
    Scenario("4", "4p/4c over 4 queues, transient, auto-ack",
             ["-x", 4, "-y", 4, "-Q", 4, "-a"]),
    Scenario("5a", "as 2 with 1 KiB bodies", ["-x", 1, "-y", 1, "-q", 100, "-s", 1024]),
    Scenario("5b", "as 2 with 64 KiB bodies", ["-x", 1, "-y", 1, "-q", 100, "-s", 65536]),
    Scenario("5c", "1p/1c, 256 KiB bodies, confirms (window 20), manual ack, prefetch 10",
             ["-x", 1, "-y", 1, "-c", 20, "-q", 10, "-s", 262144]),
    Scenario("5d", "as 5c with 1 MiB bodies",
             ["-x", 1, "-y", 1, "-c", 20, "-q", 10, "-s", 1048576]),
    Scenario("6", "fanout to 10 queues, 10 consumers, 1 producer, auto-ack",
             ["-x", 1, "-y", 10, "-Q", 10, "-t", "fanout", "-k", "all", "-a"]),
    Scenario("7", "latency at 1,000 msg/s, 1p/1c, manual ack, prefetch 100",
             ["-x", 1, "-y", 1, "-q", 100, "-r", 1000], kind="latency"),
    Scenario("8", "topic exchange (amq.topic) with 100,000 bindings, 1p/1c, auto-ack",
             ["-x", 1, "-y", 1, "-a", "-e", "amq.topic", "-k", TOPIC_KEY, "-K", TOPIC_KEY,
              "--keep-queues"], kind="topic"),
    Scenario("9", "1,000 idle connections, one channel each", kind="idle"),
    Scenario("2t", "as 2 over TLS", ["-x", 1, "-y", 1, "-q", 100], tls=True),
    Scenario("5at", "as 5a over TLS", ["-x", 1, "-y", 1, "-q", 100, "-s", 1024], tls=True),
    Scenario("10", "TLS handshakes: 2 threads open (TCP, TLS, login, channel) and close "
             "connections", ["-x", 2, "-y", 0, "--churn"], kind="churn", tls=True),
    Scenario("11", "dead-lettering: 1p (confirms, window 100) publishes to a queue with "
             "x-message-ttl 0, a dead-letter exchange and no consumer: each message expires on "
             "arrival and is dead-lettered to a second queue, which 1c reads (manual ack, "
             "prefetch 100)", ["-x", 1, "-y", 1, "-c", 100, "-q", 100, "--queue-arg",
                               "x-message-ttl=0", "--dead-letter"]),
    Scenario("12", "priority queue (x-max-priority 10), random priorities 0-9, 1p/1c, manual "
             "ack, prefetch 100", ["-x", 1, "-y", 1, "-q", 100, "--queue-arg",
                                   "x-max-priority=10", "--priorities", 10]),
    Scenario("12b", "as 12 with a backlog of {backlog}: published with no consumer, then "
             "drained",
             ["-x", 1, "-y", 1, "-q", 100, "--queue-arg", "x-max-priority=10", "--priorities",
              10], kind="backlog"),
    Scenario("13", "{expiring} messages expiring at once in a queue with no consumer",
             kind="expiry"),
]


class Certificates:
    """A throwaway CA and server certificate (ECDSA P-256, CN localhost) made with the
    openssl CLI in a temporary directory that both brokers can read (RabbitMQ runs as the
    rabbitmq user)."""

    def __init__(self, keep):
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="bench-tls-")
        os.chmod(self.dir, 0o755)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for argv in (["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days",
                                              "2", "-subj", "/CN=bench-compare CA"],
                     ["req", "-new"] + ec + ["-keyout", "server.key", "-out", "server.csr",
                                             "-subj", "/CN=localhost"],
                     ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", "server.pem", "-days", "2"]):
            p = subprocess.run(["openssl"] + argv, cwd=self.dir, capture_output=True,
                               stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                raise RuntimeError("openssl %s: %s" % (argv[0], p.stderr.decode().strip()))
        for f in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, f), 0o644)

    def ssl_options(self):
        """The rabbitmq.conf lines both brokers get: no client certificates asked for."""
        return "".join("ssl_options.%s = %s\n" % kv for kv in (
            ("certfile", os.path.join(self.dir, "server.pem")),
            ("keyfile", os.path.join(self.dir, "server.key")),
            ("cacertfile", os.path.join(self.dir, "ca.pem")),
            ("verify", "verify_none"), ("fail_if_no_peer_cert", "false")))

    def remove(self):
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Runner:
    def __init__(self, opts):
        self.opts = opts
        self.perf = os.path.abspath(opts.perf)
        self.floor = os.path.abspath(opts.floor) if opts.floor else None
        self.brokers = []
        self.results = {}  # (sid, broker name) -> dict
        self.errors = []
        self.current = None  # the running warren-perf

    def wait_quiet(self):
        """On a shared machine, waits (at most --quiet-wait seconds) until processes other
        than the brokers have used under 20% of a core for 3 s, so that they do not skew the
        next run."""
        deadline = time.monotonic() + self.opts.quiet_wait
        said = False
        quiet = 0
        while True:
            m0, b0 = machine_busy(), sum(proc_cpu(b.pid) for b in self.brokers if b.pid)
            time.sleep(1)
            m1, b1 = machine_busy(), sum(proc_cpu(b.pid) for b in self.brokers if b.pid)
            busy = 100 * (m1 - m0 - (b1 - b0))
            quiet = quiet + 1 if busy < 20 else 0
            if quiet == 3:
                return
            if time.monotonic() > deadline:
                log("  the machine is still busy (%.0f%% of a core outside the brokers): "
                    "running anyway" % busy)
                return
            if not said and busy >= 20:
                log("  waiting for the machine to quiet down (%.0f%% of a core outside the "
                    "brokers)" % busy)
                said = True

    # -- one warren-perf run, with CPU and RSS accounting --
    def perf_run(self, broker, args, duration, tls=False):
        if self.opts.quiet_wait > 0:
            self.wait_quiet()
        argv = [self.perf, "--host", HOST, "--port", str(broker.tls_port if tls else broker.port)]
        argv += (["-z", "%g" % duration] if duration else []) + (["--tls"] if tls else [])
        argv += [str(a) for a in args]
        others = [b for b in self.brokers if b is not broker and b.pid]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            t0 = time.monotonic()
            b0 = proc_cpu(broker.pid)
            o0 = [proc_cpu(b.pid) for b in others]
            m0 = machine_busy()
            peak = proc_rss_kib(broker.pid)
            self.current = p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=err)
            deadline = t0 + (duration or 0) + 300
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    pid, status, ru = os.wait4(p.pid, 0)
                    break
                try:
                    peak = max(peak, proc_rss_kib(broker.pid))
                except (OSError, RuntimeError):
                    pass
                time.sleep(0.1)
            wall = time.monotonic() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
            self.current = None
            b1 = proc_cpu(broker.pid)
            o1 = [proc_cpu(b.pid) for b in others]
            m1 = machine_busy()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        res = {"argv": argv, "rc": p.returncode, "wall_s": wall,
               "broker_cpu_pct": 100 * (b1 - b0) / wall,
               "perf_cpu_pct": 100 * (ru.ru_utime + ru.ru_stime) / wall,
               "broker_cpu_s": b1 - b0, "peak_rss_kib": peak,
               "other_broker_cpu_pct": [100 * (y - x) / wall for x, y in zip(o0, o1)]}
        # whatever else ran on the machine meanwhile (the other broker, compare.py, the kernel,
        # other users): large values mean the figures were disturbed
        rest = m1 - m0 - (b1 - b0) - (ru.ru_utime + ru.ru_stime)
        res["rest_cpu_pct"] = max(0.0, 100 * rest / wall - sum(res["other_broker_cpu_pct"]))
        lines = stdout.strip().splitlines()
        if p.returncode == 0 and lines:
            try:
                res["json"] = json.loads(lines[-1])
            except ValueError:
                pass
        if "json" not in res:
            last = (stderr.strip().splitlines() or ["(no output)"])[-1]
            res["error"] = "warren-perf exit %d: %s" % (p.returncode, last)
        return res

    def record(self, sc, broker, res):
        self.results[(sc.sid, broker.name)] = res
        if "error" in res:
            self.errors.append("scenario %s on %s: %s" % (sc.sid, broker.name, res["error"]))
            log("  %s: FAILED: %s" % (broker.name, res["error"]))
            return
        j = res.get("json")
        if j:
            log("  %s: sent %.0f msg/s, received %.0f msg/s, p50 %.0fus p99 %.0fus; CPU broker "
                "%.0f%% warren-perf %.0f%% rest %.0f%%; peak RSS %.0f MiB"
                % (broker.name, j["sent_msgs_per_s"], j["received_msgs_per_s"],
                   j["latency_us"]["p50"], j["latency_us"]["p99"], res["broker_cpu_pct"],
                   res["perf_cpu_pct"], res["rest_cpu_pct"], res["peak_rss_kib"] / 1024))
        for key in ("idle_rss_kib", "bind_s", "clear_s", "held_rss_kib"):
            if key in res:
                log("  %s: %s = %s" % (broker.name, key, res[key]))

    # -- scenario kinds --
    def run_throughput(self, sc, broker):
        return self.perf_run(broker, sc.args, self.opts.duration, tls=sc.tls)

    def run_latency(self, sc, broker):
        """The broker's run with the TCP floor measured just before it (--floor)."""
        floor = None
        if self.floor:
            if self.opts.quiet_wait > 0:
                self.wait_quiet()
            rate = sc.args[sc.args.index("-r") + 1]
            p = subprocess.run([self.floor, "--rate", str(rate), "--duration",
                                "%g" % self.opts.duration], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=self.opts.duration + 60)
            if p.returncode != 0:
                raise RuntimeError("tcp_floor exit %d: %s" % (p.returncode, p.stderr.strip()))
            floor = json.loads(p.stdout.strip().splitlines()[-1])["latency_us"]
        res = self.perf_run(broker, sc.args, self.opts.duration)
        if floor is not None:
            res["floor_us"] = floor
        return res

    def run_topic(self, sc, broker):
        n = self.opts.bindings
        prefix = "bench-topic-%d" % os.getpid()
        queue = prefix + "-0"
        pats = topic_patterns(n)
        if self.opts.quiet_wait > 0:
            self.wait_quiet()
        c = Amqp(broker.port, timeout=300).connect()
        try:
            c.queue_declare(queue)
            t0 = time.monotonic()
            batch = []
            for i, pat in enumerate(pats):
                batch.append(Amqp.queue_bind_frame(queue, "amq.topic", pat, nowait=True))
                if len(batch) == 2000:
                    c.sock.sendall(b"".join(batch))
                    batch = []
            batch.append(Amqp.queue_bind_frame(queue, "amq.topic", TOPIC_KEY, nowait=False))
            c.sock.sendall(b"".join(batch))
            c.expect(1, (50, 21), "queue.bind-ok")
            bind_s = time.monotonic() - t0
            res = self.perf_run(broker, sc.args + ["--prefix", prefix], self.opts.duration)
            t0 = time.monotonic()
            c.queue_delete(queue)
            res["unbind_s"] = time.monotonic() - t0
            res["bind_s"] = bind_s
        finally:
            c.close()
        return res

    def run_backlog(self, sc, broker):
        """--priority-backlog messages published with no consumer, then drained."""
        return self.perf_run(broker, sc.args + ["-B", self.opts.priority_backlog], None)

    def run_expiry(self, sc, broker):
        """--expiring messages published with no consumer, all with an expiration ending
        --expire-after seconds after the start (while the publishing takes longer, tried
        again, twice, with twice that or 1.5 times the publishing's time); then the time from
        that moment until queue.declare (passive) says the queue is empty, and the broker's
        RSS and CPU meanwhile (not the publishing's)."""
        n, lead = self.opts.expiring, self.opts.expire_after
        prefix = "bench-expiry-%d" % os.getpid()
        queue = prefix + "-0"
        c = Amqp(broker.port, timeout=300).connect()
        try:
            for _ in range(3):
                if self.opts.quiet_wait > 0:
                    self.wait_quiet()
                expire_at = time.time() + lead
                expire_mono = time.monotonic() + lead
                res = self.perf_run(broker, ["-x", 1, "-y", 0, "-C", n, "-c", 1000,
                                             "--keep-queues", "--expire-at", "%.3f" % expire_at,
                                             "--prefix", prefix], None)
                if "error" in res:
                    return res
                left = expire_mono - time.monotonic()
                held = c.queue_declare(queue, passive=True)
                if left >= 0.5 and held == n:
                    break
                res["error"] = ("the queue held %d of %d messages %.1f s before they expire "
                                "(publishing took %.1f s): raise --expire-after"
                                % (held, n, left, res["wall_s"]))
                c.queue_delete(queue)
                lead = max(2 * lead, 1.5 * res["wall_s"])
                log("  publishing took %.1f s: again, with the expiry %g s after the start"
                    % (res["wall_s"], lead))
            else:
                return res
            res["expire_after_s"] = lead
            time.sleep(left - 0.3)
            res["held_rss_kib"] = proc_rss_kib(broker.pid)
            time.sleep(max(0.0, expire_mono - time.monotonic()))
            cpu0, peak = proc_cpu(broker.pid), res["held_rss_kib"]
            while c.queue_declare(queue, passive=True) > 0:
                peak = max(peak, proc_rss_kib(broker.pid))
                if time.monotonic() > expire_mono + 300:
                    raise RuntimeError("the messages were still there 300 s after expiring")
                time.sleep(0.01)
            res["clear_s"] = time.monotonic() - expire_mono
            res["clear_cpu_s"] = proc_cpu(broker.pid) - cpu0
            res["peak_rss_kib"] = max(peak, proc_rss_kib(broker.pid))
            c.queue_delete(queue)
        finally:
            c.close()
        return res

    def run_idle(self, sc, broker):
        n = self.opts.connections
        time.sleep(1)
        before = proc_rss_kib(broker.pid)
        conns = []
        t0 = time.monotonic()
        try:
            for _ in range(n):
                try:
                    conns.append(Amqp(broker.port, timeout=30).connect())
                except (OSError, AmqpError) as e:
                    raise RuntimeError("connection %d of %d: %s: %s"
                                       % (len(conns) + 1, n, type(e).__name__, e))
            open_s = time.monotonic() - t0
            time.sleep(2)  # let the broker settle (lazy allocations, garbage collection)
            after = proc_rss_kib(broker.pid)
        finally:
            for c in conns:
                try:
                    c.send_close()
                except OSError:
                    pass
            for c in conns:
                try:
                    c.finish_close()
                except (OSError, AmqpError):
                    pass
        return {"rss_before_kib": before, "rss_after_kib": after, "open_s": open_s,
                "per_conn_kib": (after - before) / n, "idle_rss_kib": broker.idle_rss_kib}

    def run(self, scenarios):
        for b in self.brokers:
            b.start()
        time.sleep(2)
        for b in self.brokers:
            b.idle_rss_kib = proc_rss_kib(b.pid)
        # The idle connections first, on fresh brokers: after the load scenarios the heap has
        # free space that new connections reuse without growing the RSS.
        for sc in sorted(scenarios, key=lambda sc: sc.kind != "idle"):
            for b in self.brokers:
                log("[%s] %s: %s" % (sc.sid, b.name, sc.title))
                fn = {"throughput": self.run_throughput, "latency": self.run_latency,
                      "topic": self.run_topic, "idle": self.run_idle,
                      "churn": self.run_throughput, "backlog": self.run_backlog,
                      "expiry": self.run_expiry}[sc.kind]
                best = None
                for attempt in range(1 + self.opts.retries):
                    try:
                        res = fn(sc, b)
                    except (OSError, AmqpError, RuntimeError) as e:
                        res = {"error": "%s: %s" % (type(e).__name__, e)}
                    res["attempts"] = attempt + 1
                    if best is None or res.get("rest_cpu_pct", 0) < best.get("rest_cpu_pct", 0):
                        best = res
                    if "error" in res or res.get("rest_cpu_pct", 0) <= DISTURBED_PCT:
                        break
                    log("  disturbed: other processes used %.0f%% of a core during the run"
                        % res["rest_cpu_pct"] + ("; repeating it" if attempt < self.opts.retries
                                                 else "; keeping the least disturbed run"))
                self.record(sc, b, best)
                if b.proc.poll() is not None:
                    raise RuntimeError("%s exited (status %s) during scenario %s"
                                       % (b.name, b.proc.returncode, sc.sid))

    def stop(self):
        if self.current is not None and self.current.poll() is None:
            self.current.kill()
            self.current.wait()
        for b in self.brokers:
            try:
                b.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (b.name, e))


# --- the table ---------------------------------------------------------------------------------

def fmt_num(v, digits=0):
    if v is None:
        return "—"
    return "{:,.{}f}".format(v, digits)


def fmt_ratio(w, r):
    if w is None or r is None or w < 0 or r <= 0:  # e.g. a p99 that fell below its floor
        return "—"
    x = w / r
    return "%.2f" % x if x < 100 else "%.0f" % x


def build_rows(scenarios, results, names):
    """Markdown table rows: (sid, scenario, figure, one cell per broker, then the ratio of the
    first broker's figure to each other's)."""
    rows = []

    def get(sc, name):
        return results.get((sc.sid, name))

    def add(sc, first, figure, fn, digits=0, ratio=True):
        vals = []
        for name in names:
            res = get(sc, name)
            vals.append(None if res is None or "error" in res else fn(res))
        cells = []
        for name, v, res in zip(names, vals, [get(sc, n) for n in names]):
            if res is None:
                cells.append("—")
            elif "error" in res:
                cells.append("failed")
            else:
                cells.append(fmt_num(v, digits) if not isinstance(v, str) else v)
        while len(cells) < 2:
            cells.append("—")
            vals.append(None)
        rats = [fmt_ratio(vals[0], v) if ratio and not isinstance(vals[0], str) else "—"
                for v in vals[1:]]
        rows.append((sc.sid if first else "", sc.title if first else "", figure,
                     *cells, *rats))

    def rate(key):
        return lambda r: r["json"][key]

    def cpu(r):
        return "%.0f / %.0f" % (r["broker_cpu_pct"], r["perf_cpu_pct"])

    def us_per_msg(r):
        n = r["json"]["received"]
        return 1e6 * r["broker_cpu_s"] / n if n else None

    for sc in scenarios:
        if sc.kind in ("throughput", "topic", "latency"):
            if sc.kind == "latency":
                add(sc, True, "latency p50, µs (lower is better)",
                    lambda r: r["json"]["latency_us"]["p50"])
                add(sc, False, "latency p99, µs (lower is better)",
                    lambda r: r["json"]["latency_us"]["p99"])
                add(sc, False, "received msg/s (rate-limited)", rate("received_msgs_per_s"))
                if any("floor_us" in r for r in results.values()):
                    add(sc, False, "TCP floor just before, p50 / p99, µs (bench/tcp_floor)",
                        lambda r: "%.0f / %.0f" % (r["floor_us"]["p50"], r["floor_us"]["p99"])
                        if "floor_us" in r else "—", ratio=False)
                    add(sc, False, "p99 above that floor, µs (lower is better)",
                        lambda r: r["json"]["latency_us"]["p99"] - r["floor_us"]["p99"]
                        if "floor_us" in r else None)
            else:
                add(sc, True, "received msg/s (higher is better)", rate("received_msgs_per_s"))
                add(sc, False, "sent msg/s", rate("sent_msgs_per_s"))
                if "-c" in sc.args:
                    add(sc, False, "confirm latency p50, µs (lower is better)",
                        lambda r: r["json"]["confirm_latency_us"]["p50"])
                    add(sc, False, "confirm latency p99, µs (lower is better)",
                        lambda r: r["json"]["confirm_latency_us"]["p99"])
            add(sc, False, "CPU % of a core: broker / warren-perf", cpu, ratio=False)
            add(sc, False, "broker CPU µs per received msg (lower is better)", us_per_msg, 1)
            add(sc, False, "broker peak RSS, MiB (lower is better)",
                lambda r: r["peak_rss_kib"] / 1024)
            if sc.kind == "topic":
                add(sc, False, "time to add the bindings, s (lower is better)",
                    lambda r: r["bind_s"], 1)
        elif sc.kind == "backlog":
            add(sc, True, "drain msg/s (higher is better)", rate("drain_msgs_per_s"))
            add(sc, False, "publish msg/s", rate("publish_msgs_per_s"))
            add(sc, False, "deliveries of a higher priority than the one before, % (0: in "
                "priority order; 45: FIFO)", lambda r: 100 * r["json"]["priority_rises"]
                / r["json"]["received"] if r["json"]["received"] else None, 1, ratio=False)
            add(sc, False, "CPU % of a core: broker / warren-perf", cpu, ratio=False)
            add(sc, False, "broker CPU µs per received msg (lower is better)", us_per_msg, 1)
            add(sc, False, "broker peak RSS, MiB (lower is better)",
                lambda r: r["peak_rss_kib"] / 1024)
        elif sc.kind == "expiry":
            add(sc, True, "time from their expiry until the queue is empty, s (lower is "
                "better)", lambda r: r["clear_s"], 2)
            add(sc, False, "broker peak RSS during it, MiB (lower is better)",
                lambda r: r["peak_rss_kib"] / 1024)
            add(sc, False, "broker RSS holding them, MiB (lower is better)",
                lambda r: r["held_rss_kib"] / 1024)
            add(sc, False, "broker CPU during it, s (lower is better)",
                lambda r: r["clear_cpu_s"], 2)
            add(sc, False, "publish msg/s, with confirms", rate("sent_msgs_per_s"))
        elif sc.kind == "churn":
            add(sc, True, "TLS handshakes (connections opened and closed) per s (higher is "
                "better)", rate("sent_msgs_per_s"))
            add(sc, False, "open + close p50, µs (lower is better)",
                lambda r: r["json"]["connection_us"]["p50"])
            add(sc, False, "CPU % of a core: broker / warren-perf", cpu, ratio=False)
            add(sc, False, "broker CPU µs per connection (lower is better)",
                lambda r: 1e6 * r["broker_cpu_s"] / r["json"]["sent"] if r["json"]["sent"]
                else None, 1)
        elif sc.kind == "idle":
            add(sc, True, "RSS per idle connection, KiB (lower is better)",
                lambda r: r["per_conn_kib"], 1)
            add(sc, False, "RSS idle after start, MiB (lower is better)",
                lambda r: r["idle_rss_kib"] / 1024, 1)
            add(sc, False, "RSS before / with the connections, MiB",
                lambda r: "%.1f / %.1f" % (r["rss_before_kib"] / 1024,
                                           r["rss_after_kib"] / 1024), ratio=False)
    return rows


def markdown(rows, names):
    names = list(names) + ["RabbitMQ"] * (len(names) < 2)
    head = ["#", "Scenario", "Figure"] + names + ["%s/%s" % (names[0], n) for n in names[1:]]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out) + "\n"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    return "%d CPUs (nproc), %s, %s RAM, Linux %s" % (os.cpu_count(), model, mem,
                                                     platform.release())


def report(opts, runner, scenarios, rows):
    names = [b.name for b in runner.brokers]
    servers = ", ".join("%s (%s)" % (b.name, b.server) for b in runner.brokers)
    lines = ["# Warren and RabbitMQ side by side (bench/compare.py)", "",
             "- date: %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
             "- machine: %s" % machine(),
             "- brokers: %s; load generator: warren-perf, on the same machine" % servers,
             "- %g s per run, %s; runs interleaved (scenario 1 on %s, ...)"
             % (opts.duration, "16-byte bodies unless noted", " then ".join(names)),
             "", markdown(rows, names),
             "Ratios are Warren/RabbitMQ: above 1 is better for rates, below 1 for latency, "
             "CPU per message and memory. Sent and received rates are both shown because "
             "Warren does not yet slow publishers down when consumers fall behind: the "
             "received rate is the throughput. CPU %% is of one core (the machine has %d), over "
             "warren-perf's lifetime (setup, run, teardown); the broker and the load generator "
             "share the cores. Peak RSS is sampled every 0.1 s during a run and includes what "
             "the broker kept from the runs before it (neither broker returns all of it), so "
             "scenario 1's row compares like with like best." % os.cpu_count(),
             "",
             "- Scenario 3: both brokers confirm a message once it is on disk (Warren: its "
             "RocksDB write-ahead log fsynced; RabbitMQ: its message store); confirm latency is "
             "from the publish to the basic.ack covering it.",
             "- Scenario 7: the TCP floor is bench/tcp_floor at the same rate, run just before "
             "each broker's run: a producer thread sends timestamps through a relay process "
             "(epoll, TCP_NODELAY, nothing else) to a consumer thread, the same two wake-ups "
             "and two loopback hops as through a broker. No broker's p99 can be below the "
             "floor of its moment; what it adds above it is its own.",
             "- Scenario 8: %s bindings on amq.topic, all onto the consumer's queue, in four "
             "families (%s, a in 0..249, b counting up), bound before the run by compare.py's "
             "raw AMQP client (queue.bind with nowait, pipelined, and one synchronous bind at "
             "the end, timed); every message has routing key %s, which matches %d of them "
             "(the queue gets one copy). compare.py deletes the queue afterwards."
             % (fmt_num(opts.bindings), ", ".join(TOPIC_FAMILIES), TOPIC_KEY,
                sum(topic_match(p, TOPIC_KEY) for p in topic_patterns(opts.bindings))),
             "- Scenario 11: without confirms (as scenario 2) RabbitMQ's publisher outruns "
             "its dead-lettering, which has no flow control, and its received rate collapses "
             "to about 1,000 msg/s while the dead-letter queue's backlog grows; the confirm "
             "window keeps both brokers at the rate they sustain.",
             "- Scenario 12b: %s messages with random priorities 0-9 published into a queue "
             "with x-max-priority 10 and no consumer (warren-perf -B), then drained; the share "
             "of deliveries with a higher priority than the one before is 0 when they come "
             "out in priority order, about 45%% when they come out in FIFO order."
             % fmt_num(opts.priority_backlog),
             "- Scenario 13: %s messages of 16 bytes published (warren-perf -y 0 -C, "
             "confirms, window 1000, --expire-at) into a queue with no consumer, each with "
             "an expiration property set to the milliseconds left until the same moment, "
             "%g s after the start (more when the publishing takes longer): a per-queue "
             "TTL would expire them over as long as the publishing took. From that moment "
             "compare.py polls queue.declare (passive) every 10 ms until the queue is empty; "
             "RSS and CPU are the broker's over that interval (RSS holding them: just before)."
             % (fmt_num(opts.expiring), opts.expire_after),
             "- Scenario 9: %s connections opened by compare.py's raw AMQP client (PLAIN, "
             "heartbeats off, channel 1 open), RSS of warren-server and of RabbitMQ's "
             "beam.smp from /proc/PID/status before and 2 s after; per connection = the "
             "difference / the count. It runs first, on fresh brokers: after the load "
             "scenarios, freed heap would absorb the connections without growing the RSS."
             % fmt_num(opts.connections),
             "", "warren-perf arguments (plus --host, --port and -z %g):" % opts.duration, ""]
    for sc in scenarios:
        if sc.args:
            lines.append("- %s: `warren-perf %s`" % (sc.sid, " ".join(str(a) for a in sc.args))
                         + (" -B %d" % opts.priority_backlog if sc.kind == "backlog" else ""))
    others, busy = [], []
    for (sid, name), res in sorted(runner.results.items()):
        for other, pct in zip([n for n in names if n != name],
                              res.get("other_broker_cpu_pct", [])):
            if pct > 5:
                others.append("%s during %s's run of %s: %.0f%%" % (other, name, sid, pct))
        if res.get("rest_cpu_pct", 0) > DISTURBED_PCT:
            busy.append("%s on %s: %.0f%%" % (sid, name, res["rest_cpu_pct"]))
    if others:
        lines += ["", "CPU of the idle broker while the other ran (over 5% of a core): "
                  + "; ".join(others) + "."]
    if busy:
        lines += ["", "Runs disturbed by other processes (CPU used outside the brokers and "
                  "warren-perf over %d%% of a core, after %d attempts): " % (DISTURBED_PCT,
                                                                         1 + opts.retries)
                  + "; ".join(busy) + "."]
    if runner.errors:
        lines += ["", "Errors:"] + ["- " + e for e in runner.errors]
    return "\n".join(lines) + "\n"


def add_binary_args(ap):
    """--warren and --perf, as every bench script takes them (see resolve_binaries)."""
    ap.add_argument("--warren", default=os.environ.get("WARREN_SERVER", "./warren-server"),
                    help="the warren-server binary (default $WARREN_SERVER or ./warren-server)")
    ap.add_argument("--perf", default=None,
                    help="the warren-perf binary (default: next to --warren)")


def resolve_binaries(ap, opts):
    """Fills in --perf next to --warren; exits with a usage error unless both run."""
    if opts.perf is None:
        opts.perf = os.path.join(os.path.dirname(os.path.abspath(opts.warren)), "warren-perf")
    for path in (opts.warren, opts.perf):
        if not os.access(path, os.X_OK):
            ap.error("%s is not an executable (give --warren and --perf)" % path)


def main():
    ap = argparse.ArgumentParser(
        description="Runs the same warren-perf scenarios against Warren and RabbitMQ, "
        "interleaved, and prints a markdown table (see the docstring of this file).")
    add_binary_args(ap)
    ap.add_argument("--duration", type=float, default=10, help="seconds per run (default 10)")
    ap.add_argument("--quick", action="store_true",
                    help="3 s runs; at most 200000 messages in scenario 13")
    ap.add_argument("--self-check", action="store_true",
                    help="every scenario for 1 s against Warren only: checks that it all runs")
    ap.add_argument("--warren-only", action="store_true", help="do not start RabbitMQ")
    ap.add_argument("--floor", default=None,
                    help="bench/tcp_floor, run before each broker's latency run (default: "
                    "bench/tcp_floor next to --warren if built; 'none' to skip)")
    ap.add_argument("--scenarios", default="",
                    help="comma-separated scenario ids to run (default all: %s)"
                    % ",".join(s.sid for s in SCENARIOS))
    ap.add_argument("--bindings", type=int, default=100000,
                    help="topic bindings in scenario 8 (default 100000)")
    ap.add_argument("--connections", type=int, default=1000,
                    help="idle connections in scenario 9 (default 1000)")
    ap.add_argument("--priority-backlog", type=int, default=200000,
                    help="messages in scenario 12b's backlog (default 200000)")
    ap.add_argument("--expiring", type=int, default=1000000,
                    help="messages expiring at once in scenario 13 (default 1000000)")
    ap.add_argument("--expire-after", type=float, default=30,
                    help="scenario 13: they expire this many seconds after the publishing "
                    "starts, more when that is too early (default 30)")
    ap.add_argument("--quiet-wait", type=float, default=300,
                    help="before each run, wait up to this many seconds for other processes "
                    "to use under 20%% of a core (default 300; 0: do not wait)")
    ap.add_argument("--retries", type=int, default=2,
                    help="repeat a run during which other processes used over %d%%%% of a core "
                    "up to this many times, keeping the least disturbed (default 2)"
                    % DISTURBED_PCT)
    ap.add_argument("--baseline", default=None,
                    help="another warren-server build (e.g. before a change), run interleaved "
                    "as a third broker, 'Warren before'; the table adds Warren/Warren before")
    ap.add_argument("--out", default=None, help="also write the report (markdown) here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the brokers' directories under /tmp (logs, data)")
    opts = ap.parse_args()
    if opts.quick:
        opts.duration = 3
        opts.expiring = min(opts.expiring, 200000)
    if opts.self_check:
        opts.duration = 1
        opts.priority_backlog = 5000
        opts.expiring = 20000
        opts.expire_after = 3
        opts.warren_only = True
        opts.quiet_wait = 0
        opts.retries = 0
    resolve_binaries(ap, opts)
    for sc in SCENARIOS:
        sc.title = sc.title.format(backlog=fmt_num(opts.priority_backlog),
                                   expiring=fmt_num(opts.expiring))
    if opts.floor is None:
        opts.floor = os.path.join(os.path.dirname(os.path.abspath(opts.warren)), "bench",
                                  "tcp_floor")
        if not os.access(opts.floor, os.X_OK):
            opts.floor = None
    elif opts.floor == "none":
        opts.floor = None
    elif not os.access(opts.floor, os.X_OK):
        ap.error("--floor %s is not an executable" % opts.floor)
    scenarios = SCENARIOS
    if opts.scenarios:
        want = opts.scenarios.split(",")
        unknown = set(want) - {s.sid for s in SCENARIOS}
        if unknown:
            ap.error("unknown scenario %s" % ", ".join(sorted(unknown)))
        scenarios = [s for s in SCENARIOS if s.sid in want]
    # the idle connections: one descriptor each here and in the broker
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = opts.connections + 1024
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    def on_term(signum, frame):
        raise Interrupted("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    runner = Runner(opts)
    certs = Certificates(opts.keep) if any(sc.tls for sc in scenarios) else None
    runner.brokers.append(Warren(opts.warren, opts.keep, certs))
    if not opts.warren_only:
        runner.brokers.append(RabbitMQ(opts.keep, certs))
    if opts.baseline:
        runner.brokers.append(Warren(opts.baseline, opts.keep, certs, "Warren before"))
    status = 0
    try:
        runner.run(scenarios)
    except (KeyboardInterrupt, Interrupted) as e:
        log("interrupted (%s): stopping the brokers; the table has what ran so far"
            % (type(e).__name__ if isinstance(e, KeyboardInterrupt) else e))
        status = 130
    except (RuntimeError, OSError) as e:
        log("error: %s" % e)
        status = 1
    finally:
        runner.stop()
        if certs is not None:
            certs.remove()
    rows = build_rows(scenarios, runner.results, [b.name for b in runner.brokers])
    text = report(opts, runner, scenarios, rows)
    sys.stdout.write(markdown(rows, [b.name for b in runner.brokers]))
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text)
        log("report written to %s" % opts.out)
    if status == 0 and runner.errors:
        status = 1
    if status == 0 and opts.self_check:
        missing = [s.sid for s in scenarios if (s.sid, "Warren") not in runner.results]
        if missing:
            log("self-check: no result for scenario(s) %s" % ", ".join(missing))
            status = 1
        else:
            log("self-check: every scenario ran against Warren")
    return status


if __name__ == "__main__":
    sys.exit(main())
