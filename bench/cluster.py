#!/usr/bin/python3
"""A 3-node Warren cluster and a 3-node RabbitMQ cluster side by side, on a quorum queue.

    make -C _build bench-cluster                      # from a build directory: 10 s runs
    python3 bench/cluster.py --warren _build/warren-server --perf _build/warren-perf \\
        [--duration 10 | --quick] [--out bench-cluster.md] [--scenarios 1,3]
    python3 bench/cluster.py --warren ... --perf ... --self-check   # 1 s, Warren only, 1 and 2

It starts a Warren cluster of 3 nodes with scripts/local-cluster.sh (loopback ports from a
free base, a fresh directory under /tmp) and a RabbitMQ cluster of 3 nodes (Debian's
rabbitmq-server run as bench/compare.py's RabbitMQ class runs it: as root, each node with its
own node name, ports, mnesia and log directories under /tmp; r2 and r3 then join r1 with
rabbitmqctl join_cluster), and runs every scenario against Warren and then against RabbitMQ,
both clusters running throughout. Each scenario declares a fresh queue with x-queue-type
quorum (durable, with pika, on node 1), asks the cluster which node leads it (Warren: its HTTP
API, "leader" or else "node"; RabbitMQ: rabbitmqctl list_queues name leader), and places the
clients by that answer:

1. producer and consumer on the leader's node: one warren-perf, -x 1 -y 1;
2. producer on one follower, consumer on the other: two warren-perf processes (-x 1 -y 0 and
   -x 0 -y 1) on the same queue (--prefix, --keep-queues);
3. failover: a pika publisher (this file run with --failover-publisher, by /usr/bin/python3)
   on a follower publishes persistent messages one at a time, each waiting for its confirm
   (mandatory: a message no queue takes is returned, not counted), and reconnects after
   connection errors; about 3 s into it the leader's process gets SIGKILL. The figure is the
   time from the kill to the first confirm of a message published after it, or "none in
   30 s". The killed node is then restarted and the cluster waited for, whole again.

4. catch-up: a follower's process gets SIGKILL, then one warren-perf on the leader's node
   publishes --catch-up-messages (default 1,000,000) with no consumer (-C); the follower is
   started again, and a warren-perf publisher (no consumer) runs on the leader's node until
   the follower has caught up: it has applied the leader's commit index of the restart (and
   Warren's has every message: /api/queues' raft.messages_to_fetch 0; RabbitMQ: rabbitmq-queues
   quorum_status, the follower's log and commit index). The figures are the time from the
   restart to that, and the publishes confirmed per second meanwhile against those of the
   backlog's publisher (the follower down then).

1 and 2: persistent 1 KiB messages, confirms (window 100), prefetch 100, manual acks. For them
it records warren-perf's JSON (received msgs/s, confirm latency), the CPU of the three nodes'
processes (summed, % of one core, over warren-perf's lifetime) and the sum of their peak RSS
(each sampled every 0.1 s). The table goes to stdout in markdown and, with the date, the
machine and the command lines, to --out. Ratios are Warren/RabbitMQ. Benchmarks print figures
and assert nothing about time: --self-check only checks that the scenarios it runs print
their rows (exit 0), which tests/integration/44-bench-cluster.py relies on.
"""

import argparse
import base64
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from compare import HOST, RABBITMQ_BIN, Interrupted, fmt_num, fmt_ratio, log  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_CLUSTER = os.path.join(TOP, "scripts", "local-cluster.sh")
NODES = 3
FAILOVER_WAIT = 30     # seconds to wait for a confirm after the kill
FAILOVER_BEFORE = 3    # seconds of confirms before the kill
CATCH_UP_WAIT = 1800   # seconds to wait for a restarted follower to catch up
PUBLISHER_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
# the messages of scenarios 1 and 2
LOAD = ["-f", "-s", 1024, "--queue-arg", "x-queue-type=quorum"]
PRODUCE = ["-c", 100]
CONSUME = ["-q", 100]


class Scenario:
    def __init__(self, sid, title, kind):
        self.sid, self.title, self.kind = sid, title, kind


SCENARIOS = [
    Scenario("1", "quorum queue, 1p/1c both on the leader's node: persistent 1 KiB, confirms "
             "(window 100), manual ack, prefetch 100", "local"),
    Scenario("2", "as 1 with the producer on one follower and the consumer on the other",
             "followers"),
    Scenario("3", "failover: a publisher on a follower (one message at a time, each "
             "confirmed); SIGKILL to the leader's process", "failover"),
    Scenario("4", "catch-up: a follower killed, a backlog published (persistent 1 KiB, "
             "confirms), the follower started again under a publisher's load", "catch-up"),
]


def pika_connection(port, timeout=10):
    import pika  # only the queue set-up and the publisher need it
    return pika.BlockingConnection(pika.ConnectionParameters(
        HOST, port, connection_attempts=1, socket_timeout=timeout,
        blocked_connection_timeout=timeout))


def declare_quorum(port, queue):
    """The queue as scenario 1 and 2's warren-perf declare it: durable, x-queue-type quorum."""
    c = pika_connection(port)
    try:
        c.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        c.close()


def delete_queue(ports, queue):
    """Deletes queue through the first of ports that answers; False if none did."""
    for port in ports:
        try:
            c = pika_connection(port)
            try:
                c.channel().queue_delete(queue)
            finally:
                c.close()
            return True
        except Exception as e:  # pika's errors, OSError: try the next node
            last = e
    log("  could not delete queue %s: %s: %s" % (queue, type(last).__name__, last))
    return False


def free_base():
    """A base port B such that B..B+2, B+10000..B+10002 and B+20000..B+20002 (AMQP, HTTP API
    and cluster listeners of scripts/local-cluster.sh) are free and below the ephemeral range
    (see compare.free_port)."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(1000):
        base = random.randint(1024, low - 20000 - NODES)
        ports = [base + off + i for off in (0, 10000, 20000) for i in range(NODES)]
        ok = True
        for port in ports:
            with socket.socket() as s:
                try:
                    s.bind((HOST, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free base port found")


def proc_alive(pid):
    """The process is there and not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return False
    return s[s.rindex(")") + 2:].split()[0] != "Z"


class WarrenCluster:
    """NODES warren-server processes started by scripts/local-cluster.sh; node i (0-based)
    is warren<i+1>@localhost on AMQP port base+i, its pid in DIR/node<i+1>.pid."""
    name = "Warren"

    def __init__(self, binary, keep):
        self.binary = os.path.abspath(binary)
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="warren-cluster-bench-")
        self.base = free_base()
        self.ctl = os.path.join(os.path.dirname(self.binary), "warrenctl")
        if not os.access(self.ctl, os.X_OK):
            self.ctl = os.path.join(TOP, "_build", "warrenctl")
        self.restarted = []  # Popen of the nodes this script restarted (it reaps them)
        self.server = ""
        self.started = False

    def port(self, i):
        return self.base + i

    def nodename(self, i):
        return "warren%d@localhost" % (i + 1)

    def index(self, nodename):
        m = re.match(r"warren(\d+)@", nodename or "")
        if not m or not 1 <= int(m.group(1)) <= NODES:
            raise RuntimeError("unknown Warren node %r" % nodename)
        return int(m.group(1)) - 1

    def pid(self, i):
        with open(os.path.join(self.dir, "node%d.pid" % (i + 1))) as f:
            return int(f.read())

    def script(self, *args):
        env = dict(os.environ, WARREN_SERVER=self.binary)
        p = subprocess.run(["sh", LOCAL_CLUSTER] + list(args), env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=180)
        if p.returncode != 0:
            raise RuntimeError("local-cluster.sh %s: exit %d: %s" % (
                args[0], p.returncode, (p.stderr + p.stdout).strip()[-3000:]))

    def start(self):
        log("starting a Warren cluster of %d nodes: local-cluster.sh start %d %s %d"
            % (NODES, NODES, self.dir, self.base))
        self.started = True
        self.script("start", str(NODES), self.dir, str(self.base))
        self.wait_ready()
        log("  %s on %s:%d..%d, pids %s" % (self.server, HOST, self.port(0),
                                             self.port(NODES - 1), self.pids()))

    def wait_ready(self):
        """Every node logs in (the default user comes through the cluster's log, a moment
        after the cluster forms)."""
        deadline = time.monotonic() + 60
        for i in range(NODES):
            self.server = compare.amqp_ready(self.port(i), deadline)

    def pids(self):
        return [self.pid(i) for i in range(NODES)]

    def queue_info(self, queue, i):
        """GET /api/queues/%2F/<queue> on node i: its JSON (OSError, ValueError: no answer)."""
        url = "http://%s:%d/api/queues/%%2F/%s" % (HOST, self.base + 10000 + i,
                                                  urllib.parse.quote(queue, safe=""))
        req = urllib.request.Request(url, headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def leader(self, queue):
        """The index of the node leading queue, as the HTTP API of a running node says."""
        last = None
        for i in range(NODES):
            try:
                q = self.queue_info(queue, i)
                return self.index(q.get("leader") or q.get("node"))
            except (OSError, ValueError) as e:
                last = e
        raise RuntimeError("no node's HTTP API says where %s is: %s" % (queue, last))

    def progress(self, queue, i):
        """(applied index, messages still to fetch) of node i's member of queue, as its HTTP
        API says, or None while it does not answer."""
        try:
            raft = self.queue_info(queue, i).get("raft")
        except (OSError, ValueError):
            return None
        return (raft["last_applied"], raft["messages_to_fetch"]) if raft else None

    def commit_index(self, queue, i):
        """The commit index of node i's member of queue (its HTTP API)."""
        return self.queue_info(queue, i)["raft"]["commit_index"]

    def kill(self, i):
        """SIGKILL to node i, returning once its process is gone (its store unlocked)."""
        pid = self.pid(i)
        os.kill(pid, signal.SIGKILL)
        for p in self.restarted:
            if p.pid == pid:
                p.wait()
        deadline = time.monotonic() + 15
        while proc_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pid

    def restart(self, i):
        d = os.path.join(self.dir, "node%d" % (i + 1))
        argv = [self.binary, "--config", os.path.join(d, "warren.conf"), "--nodename",
                self.nodename(i)]
        log("  restarting %s: %s" % (self.nodename(i), " ".join(argv)))
        with open(os.path.join(d, "stdout.log"), "a") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
        self.restarted.append(p)
        with open(os.path.join(self.dir, "node%d.pid" % (i + 1)), "w") as f:
            f.write("%d\n" % p.pid)
        self.wait_whole()
        self.wait_ready()

    def wait_whole(self, timeout=90):
        """Every node sees all NODES running (local-cluster.sh's cluster_formed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self.running_nodes(i) == NODES for i in range(NODES)):
                    return
            except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Warren cluster was not whole again within %d s"
                                   % timeout)
            time.sleep(0.5)

    def running_nodes(self, i):
        p = subprocess.run([self.ctl, "--config", os.path.join(self.dir, "node%d" % (i + 1),
                                                               "warren.conf"),
                            "cluster_status", "--formatter", "json"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=20)
        if p.returncode != 0:
            raise ValueError(p.stderr)
        return len(json.loads(p.stdout)["running_nodes"])

    def alive(self):
        return all(proc_alive(pid) for pid in self.pids())

    def stop(self):
        if self.started:
            try:
                self.script("stop", self.dir)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                log("stopping the Warren cluster: %s" % e)
        for p in self.restarted:
            if p.poll() is None:
                p.kill()
            p.wait()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class RabbitMQCluster:
    """NODES compare.RabbitMQ nodes, named <prefix>-r1@localhost ..., r2 and r3 joined to
    r1. They share /var/lib/rabbitmq/.erlang.cookie (each runs with the rabbitmq user's
    HOME)."""
    name = "RabbitMQ"

    def __init__(self, keep):
        self.nodes = []
        for i in range(NODES):
            n = compare.RabbitMQ(keep)
            n.node = "bench-cluster-%d-r%d@localhost" % (os.getpid(), i + 1)
            n.env["RABBITMQ_NODENAME"] = n.node
            self.nodes.append(n)
        self.server = ""

    def port(self, i):
        return self.nodes[i].port

    def nodename(self, i):
        return self.nodes[i].node

    def index(self, nodename):
        for i, n in enumerate(self.nodes):
            if n.node == nodename:
                return i
        raise RuntimeError("unknown RabbitMQ node %r" % nodename)

    def pids(self):
        return [n.pid for n in self.nodes]

    def ctl(self, i, *args, tool="rabbitmqctl", timeout=120):
        n = self.nodes[i]
        p = subprocess.run([os.path.join(RABBITMQ_BIN, tool), "-n", n.node] + list(args),
                           cwd=n.dir, env=n.env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout, preexec_fn=n.as_rabbitmq)
        if p.returncode != 0:
            raise RuntimeError("%s -n %s %s: exit %d: %s" % (
                tool, n.node, " ".join(args), p.returncode, (p.stderr + p.stdout).strip()))
        return p.stdout

    def start(self):
        for n in self.nodes:
            n.start()
        for i in range(1, NODES):
            log("  %s joins %s" % (self.nodename(i), self.nodename(0)))
            self.ctl(i, "stop_app")
            self.ctl(i, "join_cluster", self.nodename(0))
            self.ctl(i, "start_app")
        self.wait_whole()
        for i in range(NODES):
            self.server = compare.amqp_ready(self.port(i), time.monotonic() + 60)
        log("  RabbitMQ cluster of %d nodes: %s" % (NODES, ", ".join(
            "%s on port %d (pid %d)" % (n.node, n.port, n.pid) for n in self.nodes)))

    def running_nodes(self, i):
        out = self.ctl(i, "cluster_status", "--formatter", "json", timeout=60)
        return len(json.loads(out)["running_nodes"])

    def wait_whole(self, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self.running_nodes(i) == NODES for i in range(NODES)):
                    return
            except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the RabbitMQ cluster was not whole within %d s" % timeout)
            time.sleep(1)

    def leader(self, queue):
        last = None
        for i in range(NODES):
            try:
                out = self.ctl(i, "-q", "list_queues", "name", "leader", "--formatter", "json",
                               timeout=60)
                for q in json.loads(out[out.index("["):]):
                    if q.get("name") == queue:
                        return self.index(q.get("leader"))
                last = "not listed"
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                last = e
        raise RuntimeError("rabbitmqctl list_queues does not say who leads %s: %s"
                           % (queue, last))

    def quorum_status(self, queue, asked):
        """rabbitmq-queues quorum_status, asked of node asked: {node name: its row}."""
        out = self.ctl(asked, "quorum_status", queue, "--formatter", "json",
                       tool="rabbitmq-queues", timeout=60)
        return {row.get("Node Name"): row for row in json.loads(out[out.index("["):])}

    def progress(self, queue, i):
        """(the index node i's member has in its log and knows committed, 0 messages to
        fetch: RabbitMQ's followers get the messages with the log), or None."""
        for asked in range(NODES):
            try:
                row = self.quorum_status(queue, asked).get(self.nodename(i), {})
                last = row.get("Log Index", row.get("Last Log Index"))
                commit = row.get("Commit Index")
                if isinstance(last, int) and isinstance(commit, int):
                    return (min(last, commit), 0)
                return None
            except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                continue
        return None

    def commit_index(self, queue, i):
        return self.quorum_status(queue, i)[self.nodename(i)]["Commit Index"]

    def kill(self, i):
        n = self.nodes[i]
        os.kill(n.pid, signal.SIGKILL)
        try:
            n.proc.wait(15)  # the rabbitmq-server script, once its beam.smp is gone
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()
        return n.pid

    def restart(self, i):
        log("  restarting %s" % self.nodename(i))
        self.nodes[i].start()  # it rejoins the cluster it was in
        self.wait_whole()

    def alive(self):
        return all(proc_alive(pid) for pid in self.pids())

    def stop(self):
        for n in self.nodes:
            try:
                n.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (n.node, e))


# --- the failover publisher (a child process: --failover-publisher PORT QUEUE) --------------

def failover_publisher(port, queue):
    """Publishes persistent messages to queue (default exchange, mandatory) one at a time,
    each waiting for its confirm, until killed. Prints a line per outcome, with
    time.monotonic() (CLOCK_MONOTONIC, the same clock as the parent's):
    'C <published> <confirmed>', 'R <t>' returned (no queue), 'N <t>' nacked,
    'E <t> <error>' a connection or channel error (it then reconnects)."""
    import pika
    import pika.exceptions as pe
    body = b"x" * 1024
    props = pika.BasicProperties(delivery_mode=2)

    def out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    while True:
        try:
            c = pika_connection(port)
            ch = c.channel()
            ch.confirm_delivery()
            while True:
                t0 = time.monotonic()
                try:
                    ch.basic_publish("", queue, body, props, mandatory=True)
                    out("C %.6f %.6f" % (t0, time.monotonic()))
                except pe.UnroutableError:
                    out("R %.6f" % time.monotonic())
                    time.sleep(0.01)
                except pe.NackError:
                    out("N %.6f" % time.monotonic())
                    time.sleep(0.01)
        except (pe.AMQPError, OSError) as e:
            out("E %.6f %s: %s" % (time.monotonic(), type(e).__name__,
                                   str(e).replace("\n", " ")[:200]))
            time.sleep(0.1)


# --- the runs ------------------------------------------------------------------------------

class Runner:
    def __init__(self, opts):
        self.opts = opts
        self.perf = os.path.abspath(opts.perf)
        self.clusters = []
        self.results = {}  # (sid, cluster name) -> dict
        self.errors = []
        self.children = []  # running warren-perf and publisher processes
        self.queues = 0
        self.brokers = []  # for compare.Runner.wait_quiet: objects with a pid

    def wait_quiet(self):
        """compare.Runner's: waits (--quiet-wait) until processes other than the brokers
        use under 20% of a core."""
        if self.opts.quiet_wait <= 0:
            return
        self.brokers = [types.SimpleNamespace(pid=pid) for c in self.clusters
                        for pid in c.pids()]
        compare.Runner.wait_quiet(self)

    def new_queue(self, cluster):
        """A fresh quorum queue declared on node 1; returns (prefix, queue, leader index)."""
        self.queues += 1
        prefix = "bench-cluster-%d-%d" % (os.getpid(), self.queues)
        queue = prefix + "-0"  # warren-perf's queue 0
        declare_quorum(cluster.port(0), queue)
        li = cluster.leader(queue)
        log("  queue %s, leader %s" % (queue, cluster.nodename(li)))
        return prefix, queue, li

    def perf_runs(self, cluster, runs, timed=True):
        """Runs warren-perf processes at once, runs: [(node index, args)], for --duration
        (unless not timed: args say when they end), while sampling the CPU and RSS of every
        node; returns the result with "json": one per run."""
        self.wait_quiet()
        pids = [pid for pid in cluster.pids() if proc_alive(pid)]  # (scenario 4 kills one)
        others = [pid for c in self.clusters if c is not cluster for pid in c.pids()]
        argvs = [[self.perf, "--host", HOST, "--port", str(cluster.port(i))]
                 + (["-z", "%g" % self.opts.duration] if timed else [])
                 + [str(a) for a in args] for i, args in runs]
        outs = [tempfile.TemporaryFile("w+") for _ in runs]
        errs = [tempfile.TemporaryFile("w+") for _ in runs]
        try:
            t0 = time.monotonic()
            b0 = [compare.proc_cpu(pid) for pid in pids]
            o0 = sum(compare.proc_cpu(pid) for pid in others)
            m0 = compare.machine_busy()
            peaks = [compare.proc_rss_kib(pid) for pid in pids]
            procs = []
            for argv, out, err in zip(argvs, outs, errs):
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
                procs.append(p)
                self.children.append(p)
            deadline = t0 + (self.opts.duration + 300 if timed else CATCH_UP_WAIT)
            status, perf_cpu = {}, 0.0
            while len(status) < len(procs):
                for p in procs:
                    if p.pid in status:
                        continue
                    if time.monotonic() >= deadline:
                        p.kill()
                    pid, st, ru = os.wait4(p.pid, os.WNOHANG)
                    if pid:
                        status[p.pid] = os.waitstatus_to_exitcode(st)
                        p.returncode = status[p.pid]
                        perf_cpu += ru.ru_utime + ru.ru_stime
                for k, pid in enumerate(pids):
                    try:
                        peaks[k] = max(peaks[k], compare.proc_rss_kib(pid))
                    except (OSError, RuntimeError):
                        pass
                time.sleep(0.1)
            wall = time.monotonic() - t0
            b1 = [compare.proc_cpu(pid) for pid in pids]
            o1 = sum(compare.proc_cpu(pid) for pid in others)
            m1 = compare.machine_busy()
            res = {"argv": argvs, "wall_s": wall,
                   "broker_cpu_pct": 100 * sum(b1) / wall - 100 * sum(b0) / wall,
                   "node_cpu_pct": [100 * (y - x) / wall for x, y in zip(b0, b1)],
                   "perf_cpu_pct": 100 * perf_cpu / wall, "peak_rss_kib": sum(peaks),
                   "node_peak_rss_kib": peaks, "other_cluster_cpu_pct": 100 * (o1 - o0) / wall}
            rest = m1 - m0 - (sum(b1) - sum(b0)) - perf_cpu - (o1 - o0)
            res["rest_cpu_pct"] = max(0.0, 100 * rest / wall)
            res["json"] = []
            for p, out, err in zip(procs, outs, errs):
                self.children.remove(p)
                out.seek(0)
                err.seek(0)
                lines = out.read().strip().splitlines()
                try:
                    if p.returncode != 0 or not lines:
                        raise ValueError
                    res["json"].append(json.loads(lines[-1]))
                except ValueError:
                    last = (err.read().strip().splitlines() or ["(no output)"])[-1]
                    res["error"] = "warren-perf exit %d: %s" % (p.returncode, last)
        finally:
            for f in outs + errs:
                f.close()
        return res

    def run_local(self, sc, cluster):
        prefix, queue, li = self.new_queue(cluster)
        try:
            res = self.perf_runs(cluster, [(li, ["-x", 1, "-y", 1] + PRODUCE + CONSUME + LOAD
                                            + ["--prefix", prefix, "--keep-queues"])])
        finally:
            delete_queue([cluster.port(li)], queue)
        if "error" not in res:
            j = res["json"][0]
            res.update(received=j["received_msgs_per_s"], sent=j["sent_msgs_per_s"],
                       confirm_us=j["confirm_latency_us"])
        res["placement"] = "both on %s (leader)" % cluster.nodename(li)
        return res

    def run_followers(self, sc, cluster):
        prefix, queue, li = self.new_queue(cluster)
        fa, fb = [i for i in range(NODES) if i != li][:2]
        common = LOAD + ["--prefix", prefix, "--keep-queues"]
        try:
            # the consumer first: it must be there when the first messages arrive
            res = self.perf_runs(cluster, [(fb, ["-x", 0, "-y", 1] + CONSUME + common),
                                           (fa, ["-x", 1, "-y", 0] + PRODUCE + common)])
        finally:
            delete_queue([cluster.port(li), cluster.port(fa)], queue)
        if "error" not in res:
            cons, prod = res["json"]
            res.update(received=cons["received_msgs_per_s"], sent=prod["sent_msgs_per_s"],
                       confirm_us=prod["confirm_latency_us"])
        res["placement"] = "producer on %s, consumer on %s, leader %s" % (
            cluster.nodename(fa), cluster.nodename(fb), cluster.nodename(li))
        return res

    def run_failover(self, sc, cluster):
        self.wait_quiet()
        prefix, queue, li = self.new_queue(cluster)
        fi = [i for i in range(NODES) if i != li][0]
        argv = [PUBLISHER_PYTHON, os.path.abspath(__file__), "--failover-publisher",
                str(cluster.port(fi)), queue]
        events = []  # (kind, time, published time or error text)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.children.append(p)

        def reader():
            for line in p.stdout:
                f = line.split(" ", 3)
                if f[0] == "C":
                    events.append(("C", float(f[2]), float(f[1])))
                elif f[0] in ("R", "N"):
                    events.append((f[0], float(f[1]), None))
                elif f[0] == "E":
                    events.append(("E", float(f[1]), " ".join(f[2:]).strip()))
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        res = {"placement": "publisher on %s, leader %s killed" % (cluster.nodename(fi),
                                                                   cluster.nodename(li))}
        killed = interrupted = False
        try:
            deadline = time.monotonic() + 30
            while not any(e[0] == "C" for e in events):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the publisher had no confirm in 30 s: %s %s" % (
                        [e for e in events if e[0] != "C"][:3], p.stderr.read()[-500:]
                        if p.poll() is not None else ""))
                time.sleep(0.05)
            time.sleep(FAILOVER_BEFORE)
            t_kill = time.monotonic()
            pid = cluster.kill(li)
            killed = True
            log("  SIGKILL to %s (pid %d)" % (cluster.nodename(li), pid))
            first = None
            while time.monotonic() < t_kill + FAILOVER_WAIT:
                after = [e for e in list(events) if e[0] == "C" and e[2] > t_kill]
                if after:
                    first = after[0]
                    break
                if p.poll() is not None:
                    break
                time.sleep(0.01)
            time.sleep(0.5)  # a little of what comes after the first confirm
            p.terminate()
            p.wait()
            th.join(5)
            before = [e for e in events if e[0] == "C" and e[1] <= t_kill]
            t_first = [e for e in events if e[0] == "C"][0][1]
            res["confirm_rate_before"] = len(before) / max(1e-3, t_kill - t_first)
            res["failover_ms"] = 1000 * (first[1] - t_kill) if first else None
            res["gap_ms"] = 1000 * (first[1] - before[-1][1]) if first and before else None
            res["errors"] = [e for e in events if e[0] == "E" and e[1] > t_kill]
            res["returned"] = sum(1 for e in events if e[0] in ("R", "N") and e[1] > t_kill)
            log("  failover: %s; %d errors, %d returned or nacked after the kill%s" % (
                "%.0f ms" % res["failover_ms"] if first else "none in %d s" % FAILOVER_WAIT,
                len(res["errors"]), res["returned"],
                "; first error: %s" % res["errors"][0][2] if res["errors"] else ""))
            if first:
                try:
                    res["new_leader"] = cluster.nodename(cluster.leader(queue))
                except RuntimeError as e:
                    log("  new leader: %s" % e)
        except (KeyboardInterrupt, Interrupted):
            interrupted = True  # no restart: the clusters are stopped at once
            raise
        finally:
            self.end_child(p)
            self.after_fault(cluster, li if killed else None, queue, interrupted)
        return res

    def run_catch_up(self, sc, cluster):
        prefix, queue, li = self.new_queue(cluster)
        fi = [i for i in range(NODES) if i != li][0]
        n = self.opts.catch_up_messages
        res = {"placement": "%d messages published on %s (leader) while %s was down, then a "
               "publisher there while it caught up" % (n, cluster.nodename(li),
                                                       cluster.nodename(fi))}
        common = ["-x", 1, "-y", 0] + PRODUCE + LOAD + ["--prefix", prefix, "--keep-queues"]
        killed = interrupted = False
        live = None
        try:
            self.wait_quiet()
            cluster.kill(fi)
            killed = True
            log("  SIGKILL to %s; publishing %d messages" % (cluster.nodename(fi), n))
            backlog = self.perf_runs(cluster, [(li, common + ["-C", n])], timed=False)
            if "error" in backlog:
                log("  the backlog: %s" % backlog["error"])
                return dict(res, error="the backlog: " + backlog["error"])
            j = backlog["json"][0]
            res.update(backlog_rate=j["sent_msgs_per_s"], backlog_p99=j["confirm_latency_us"]["p99"],
                       backlog_rss_kib=backlog["peak_rss_kib"])
            target = cluster.commit_index(queue, li)
            out = tempfile.TemporaryFile("w+")
            live = subprocess.Popen([self.perf, "--host", HOST, "--port", str(cluster.port(li)),
                                     "-z", str(CATCH_UP_WAIT)] + [str(a) for a in common],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.DEVNULL)
            self.children.append(live)
            t_restart = time.monotonic()
            killed = False
            cluster.restart(fi)
            log("  %s started again: waiting for it to apply index %d" % (cluster.nodename(fi),
                                                                          target))
            seen = None
            while time.monotonic() < t_restart + CATCH_UP_WAIT:
                seen = cluster.progress(queue, fi)
                if seen is not None and seen[0] >= target and seen[1] == 0:
                    break
                if live.poll() is not None:
                    raise RuntimeError("the publisher exited %d" % live.returncode)
                time.sleep(0.5)
            else:
                raise RuntimeError("%s had not caught up after %d s: %s" % (
                    cluster.nodename(fi), CATCH_UP_WAIT, seen))
            res["catch_up_s"] = time.monotonic() - t_restart
            live.send_signal(signal.SIGTERM)
            live.wait(60)
            out.seek(0)
            lines = out.read().strip().splitlines()
            if not lines:
                raise RuntimeError("the publisher printed no result")
            j = json.loads(lines[-1])
            res.update(live_rate=j["sent_msgs_per_s"], live_p99=j["confirm_latency_us"]["p99"])
            log("  caught up in %.1f s; publishes confirmed meanwhile %.0f/s (p99 %.0f µs), "
                "%.0f/s with it down" % (res["catch_up_s"], res["live_rate"], res["live_p99"],
                                         res["backlog_rate"]))
        except (KeyboardInterrupt, Interrupted):
            interrupted = True
            raise
        finally:
            if live is not None:
                self.end_child(live)
            self.after_fault(cluster, fi if killed else None, queue, interrupted)
        return res

    def end_child(self, p):
        """Child p (one of self.children) killed if it still runs, reaped and forgotten."""
        if p.poll() is None:
            p.kill()
            p.wait()
        self.children.remove(p)

    def after_fault(self, cluster, killed, queue, interrupted):
        """A fault scenario's end: node killed (None: none is down) started again and the queue
        deleted, unless interrupted (the clusters are stopped at once then)."""
        if interrupted:
            return
        if killed is not None:
            cluster.restart(killed)
        delete_queue([cluster.port(i) for i in range(NODES)], queue)

    def record(self, sc, cluster, res):
        self.results[(sc.sid, cluster.name)] = res
        if "error" in res:
            self.errors.append("scenario %s on %s: %s" % (sc.sid, cluster.name, res["error"]))
            log("  %s: FAILED: %s" % (cluster.name, res["error"]))
        elif "received" in res:
            log("  %s: received %.0f msg/s, confirm p50 %.0fus p99 %.0fus; CPU of the nodes "
                "%.0f%% (%s), warren-perf %.0f%%, rest %.0f%%; peak RSS %.0f MiB"
                % (cluster.name, res["received"], res["confirm_us"]["p50"],
                   res["confirm_us"]["p99"], res["broker_cpu_pct"],
                   " + ".join("%.0f" % x for x in res["node_cpu_pct"]), res["perf_cpu_pct"],
                   res["rest_cpu_pct"], res["peak_rss_kib"] / 1024))

    def run(self, scenarios):
        for c in self.clusters:
            c.start()
        for sc in scenarios:
            for c in self.clusters:
                log("[%s] %s: %s" % (sc.sid, c.name, sc.title))
                fn = {"local": self.run_local, "followers": self.run_followers,
                      "failover": self.run_failover, "catch-up": self.run_catch_up}[sc.kind]
                try:
                    res = fn(sc, c)
                except Exception as e:  # pika's errors too: the next scenario still runs
                    if isinstance(e, (KeyboardInterrupt, Interrupted)):
                        raise
                    res = {"error": "%s: %s" % (type(e).__name__, e)}
                self.record(sc, c, res)
                if not c.alive():
                    raise RuntimeError("a node of %s exited during scenario %s"
                                       % (c.name, sc.sid))

    def stop(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait()
        for c in self.clusters:
            try:
                c.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (c.name, e))


# --- the table -------------------------------------------------------------------------------

def build_rows(scenarios, results, names):
    rows = []

    def add(sc, first, figure, fn, digits=0, ratio=True):
        vals, cells = [], []
        for name in names:
            res = results.get((sc.sid, name))
            v = None if res is None or "error" in res else fn(res)
            vals.append(v)
            if res is None:
                cells.append("—")
            elif "error" in res:
                cells.append("failed")
            else:
                cells.append(v if isinstance(v, str) else fmt_num(v, digits))
        while len(cells) < 2:
            cells.append("—")
            vals.append(None)
        rats = [fmt_ratio(vals[0], v) if ratio and not isinstance(vals[0], str)
                and not isinstance(v, str) else "—" for v in vals[1:]]
        rows.append((sc.sid if first else "", sc.title if first else "", figure, *cells, *rats))

    for sc in scenarios:
        if sc.kind in ("local", "followers"):
            add(sc, True, "received msg/s (higher is better)", lambda r: r["received"])
            add(sc, False, "sent msg/s", lambda r: r["sent"])
            add(sc, False, "confirm latency p50, µs (lower is better)",
                lambda r: r["confirm_us"]["p50"])
            add(sc, False, "confirm latency p99, µs (lower is better)",
                lambda r: r["confirm_us"]["p99"])
            add(sc, False, "CPU % of a core, the 3 nodes summed (lower is better)",
                lambda r: r["broker_cpu_pct"])
            add(sc, False, "CPU % of a core per node / warren-perf",
                lambda r: "%s / %.0f" % (" + ".join("%.0f" % x for x in r["node_cpu_pct"]),
                                         r["perf_cpu_pct"]), ratio=False)
            add(sc, False, "peak RSS of the 3 nodes summed, MiB (lower is better)",
                lambda r: r["peak_rss_kib"] / 1024)
        elif sc.kind == "catch-up":
            add(sc, True, "time from the follower's restart to caught up, s (lower is better)",
                lambda r: r["catch_up_s"], digits=1)
            add(sc, False, "publishes confirmed/s while it caught up (higher is better)",
                lambda r: r["live_rate"])
            add(sc, False, "publishes confirmed/s of the backlog, the follower down",
                lambda r: r["backlog_rate"])
            add(sc, False, "confirm latency p99 while it caught up, µs (lower is better)",
                lambda r: r["live_p99"])
            add(sc, False, "peak RSS of the 3 nodes summed during the backlog, MiB",
                lambda r: r["backlog_rss_kib"] / 1024)
        else:
            add(sc, True, "failover: SIGKILL of the leader to the first confirm of a message "
                "published after it, ms (lower is better)",
                lambda r: r["failover_ms"] if r["failover_ms"] is not None
                else "none in %d s" % FAILOVER_WAIT)
            add(sc, False, "longest time without a confirm around the kill, ms",
                lambda r: r["gap_ms"])
            add(sc, False, "confirms/s before the kill (one message at a time)",
                lambda r: r["confirm_rate_before"])
            add(sc, False, "connection errors / messages returned after the kill",
                lambda r: "%d / %d" % (len(r["errors"]), r["returned"]), ratio=False)
            add(sc, False, "new leader", lambda r: r.get("new_leader", "—"), ratio=False)
    return rows


def report(opts, runner, scenarios, rows):
    names = [c.name for c in runner.clusters]
    servers = ", ".join("%s (%s)" % (c.name, c.server) for c in runner.clusters)
    lines = ["# A Warren cluster and a RabbitMQ cluster side by side (bench/cluster.py)", "",
             "- date: %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
             "- machine: %s" % compare.machine(),
             "- clusters: %d nodes each, all on this machine: %s; load generator: warren-perf "
             "and a pika publisher, on the same machine" % (NODES, servers),
             "- %g s per run of 1 and 2; runs interleaved (scenario 1 on %s, ...)"
             % (opts.duration, " then ".join(names)),
             "", compare.markdown(rows, names),
             "Ratios are Warren/RabbitMQ: above 1 is better for rates, below 1 for latency, "
             "CPU and memory. Every scenario uses a fresh queue declared durable with "
             "x-queue-type quorum on node 1 (pika); the clients are placed by the leader the "
             "cluster names (Warren: GET /api/queues/%%2F/NAME, \"leader\" or else \"node\"; "
             "RabbitMQ: rabbitmqctl list_queues name leader). CPU %% is of one core (the "
             "machine has %d), summed over the three nodes' processes, over warren-perf's "
             "lifetime; peak RSS is each node's peak (sampled every 0.1 s), summed; both "
             "clusters run throughout, the idle one too." % os.cpu_count(),
             "",
             "- Scenario 3: the publisher (pika, one persistent 1 KiB message at a time to the "
             "default exchange with mandatory set, waiting for each confirm; reconnecting "
             "after errors) runs on a follower; %d s after its first confirm the leader's "
             "process (warren-server, or RabbitMQ's beam.smp) gets SIGKILL. The figure is the "
             "time from the kill to the first confirm of a message published after it; the "
             "longest gap is between the last confirm before the kill and that one. The node "
             "is then restarted and the cluster waited for until whole." % FAILOVER_BEFORE,
             "- Scenario 4: a follower's process gets SIGKILL; warren-perf publishes %d "
             "persistent 1 KiB messages (confirms, window 100, no consumer) on the leader's "
             "node; the follower is started again while the same publisher runs until the "
             "follower has applied the commit index the leader had at the restart (Warren: and "
             "fetched every message its snapshot named; RabbitMQ: its log and commit index "
             "from rabbitmq-queues quorum_status)." % opts.catch_up_messages,
             "", "Placement of the clients:", ""]
    for (sid, name), res in sorted(runner.results.items()):
        if "placement" in res:
            lines.append("- %s on %s: %s" % (sid, name, res["placement"]))
    lines += ["", "warren-perf arguments (plus --host, --port, -z %g, --prefix, "
              "--keep-queues):" % opts.duration, "",
              "- 1: `warren-perf %s`" % " ".join(str(a) for a in ["-x", 1, "-y", 1] + PRODUCE
                                                  + CONSUME + LOAD),
              "- 2: `warren-perf %s` on one follower, `warren-perf %s` on the other"
              % (" ".join(str(a) for a in ["-x", 1, "-y", 0] + PRODUCE + LOAD),
                 " ".join(str(a) for a in ["-x", 0, "-y", 1] + CONSUME + LOAD))]
    idle = ["%s during %s's run of %s: %.0f%%" % (other, name, sid,
                                                  res["other_cluster_cpu_pct"])
            for (sid, name), res in sorted(runner.results.items())
            for other in names if other != name and res.get("other_cluster_cpu_pct", 0) > 5]
    if idle:
        lines += ["", "CPU of the idle cluster while the other ran (over 5% of a core): "
                  + "; ".join(idle) + "."]
    busy = ["%s on %s: %.0f%%" % (sid, name, res["rest_cpu_pct"])
            for (sid, name), res in sorted(runner.results.items())
            if res.get("rest_cpu_pct", 0) > compare.DISTURBED_PCT]
    if busy:
        lines += ["", "Runs disturbed by other processes (CPU outside the clusters and "
                  "warren-perf over %d%% of a core): " % compare.DISTURBED_PCT
                  + "; ".join(busy) + "."]
    if runner.errors:
        lines += ["", "Errors:"] + ["- " + e for e in runner.errors]
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--failover-publisher":
        failover_publisher(int(sys.argv[2]), sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(
        description="Runs the same load against a 3-node Warren cluster and a 3-node RabbitMQ "
        "cluster on a quorum queue and prints a markdown table (see the docstring of this "
        "file).")
    compare.add_binary_args(ap)
    ap.add_argument("--duration", type=float, default=10,
                    help="seconds per run of scenarios 1 and 2 (default 10)")
    ap.add_argument("--quick", action="store_true", help="3 s runs")
    ap.add_argument("--self-check", action="store_true",
                    help="scenarios 1 and 2 for 1 s against Warren only: checks that it runs")
    ap.add_argument("--warren-only", action="store_true", help="do not start RabbitMQ")
    ap.add_argument("--scenarios", default="",
                    help="comma-separated scenario ids to run (default all: %s)"
                    % ",".join(s.sid for s in SCENARIOS))
    ap.add_argument("--quiet-wait", type=float, default=120,
                    help="before each run, wait up to this many seconds for other processes "
                    "to use under 20%% of a core (default 120; 0: do not wait)")
    ap.add_argument("--catch-up-messages", type=int, default=1000000,
                    help="the backlog of scenario 4 (default 1000000)")
    ap.add_argument("--out", default=None, help="also write the report (markdown) here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the nodes' directories under /tmp (logs, data)")
    opts = ap.parse_args()
    if opts.quick:
        opts.duration = 3
    scenarios = SCENARIOS
    if opts.self_check:
        opts.duration = 1
        opts.warren_only = True
        opts.quiet_wait = 0
        opts.scenarios = opts.scenarios or "1,2"
    compare.resolve_binaries(ap, opts)
    if opts.scenarios:
        want = opts.scenarios.split(",")
        unknown = set(want) - {s.sid for s in SCENARIOS}
        if unknown:
            ap.error("unknown scenario %s" % ", ".join(sorted(unknown)))
        scenarios = [s for s in SCENARIOS if s.sid in want]

    def on_term(signum, frame):
        raise Interrupted("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    runner = Runner(opts)
    status = 0
    try:
        runner.clusters.append(WarrenCluster(opts.warren, opts.keep))
        if not opts.warren_only:
            runner.clusters.append(RabbitMQCluster(opts.keep))
        runner.run(scenarios)
    except (KeyboardInterrupt, Interrupted) as e:
        log("interrupted (%s): stopping the clusters; the table has what ran so far"
            % (type(e).__name__ if isinstance(e, KeyboardInterrupt) else e))
        status = 130
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log("error: %s" % e)
        status = 1
    finally:
        runner.stop()
    names = [c.name for c in runner.clusters] or ["Warren"]
    rows = build_rows(scenarios, runner.results, names)
    sys.stdout.write(compare.markdown(rows, names))
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(report(opts, runner, scenarios, rows))
        log("report written to %s" % opts.out)
    if status == 0 and runner.errors:
        status = 1
    if status == 0 and opts.self_check:
        missing = [s.sid for s in scenarios if (s.sid, "Warren") not in runner.results]
        if missing:
            log("self-check: no result for scenario(s) %s" % ", ".join(missing))
            status = 1
        else:
            log("self-check: every scenario ran against the Warren cluster")
    return status


if __name__ == "__main__":
    sys.exit(main())
