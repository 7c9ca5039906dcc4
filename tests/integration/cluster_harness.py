"""Clustering tests' harness: a cluster of NODES nodes started by scripts/local-cluster.sh in a
fresh directory on a free port range (Cluster), and helpers to wait for it, find its leader
and read its nodes' logs. Used by 80-cluster-formation.py, 81-cluster-admin.py and
83-cluster-meta-faults.py (82-cluster-partition.py, whose nodes run in network namespaces,
uses its waits)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import types

import warren_test as wt

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "local-cluster.sh")
NODES = 3
LEADER_LINE = re.compile(r"cluster: (\S+) leads the metadata group \(term (\d+)\)")


def free_base():
    """A BASE_PORT whose AMQP, HTTP and cluster ports (base, +10000, +20000, one each per
    node, and for one more node that Cluster.start_extra may start) are all free now and below
    the ephemeral range."""
    import random
    for _ in range(200):
        base = random.randrange(10000, 12700)
        ports = [base + off + i for off in (0, 10000, 20000) for i in range(NODES + 1)]
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range for the cluster")


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warren-cluster-")
        self.base = free_base()

    def script(self, *args, timeout=120):
        env = dict(os.environ, WARREN_SERVER=wt.server_binary())
        p = subprocess.run(["sh", SCRIPT] + [str(a) for a in args], capture_output=True,
                           timeout=timeout, env=env)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        wt.log("  $ local-cluster.sh %s -> %d\n%s" % (" ".join(map(str, args)), p.returncode,
                                                       out))
        return p.returncode, out

    def start(self):
        """local-cluster.sh start NODES nodes, then waits for a leader every node names and for
        the default user everywhere. Returns (leader, follower, other follower): node numbers."""
        rc, out = self.script("start", NODES, self.dir, self.base)
        assert rc == 0, out
        leader, _ = wait_for("leader known to all", lambda: agreed_leader(self, range(1, 4)), 20)
        li = names().index(leader) + 1
        f, g = [i for i in range(1, NODES + 1) if i != li]
        wait_for("the default user on every node", self.has_defaults, 10)
        return li, f, g

    def conf(self, i):
        return os.path.join(self.dir, "node%d" % i, "warren.conf")

    def pid(self, i):
        with open(os.path.join(self.dir, "node%d.pid" % i)) as f:
            return int(f.read())

    def log_text(self, i):
        with open(os.path.join(self.dir, "node%d" % i, "warren.log"), errors="replace") as f:
            return f.read()

    def status(self, i):
        rc, out, err = wt.warrenctl("--config", self.conf(i), "cluster_status", "--formatter",
                                    "json")
        assert rc == 0 and err == "", (rc, out, err)
        return json.loads(out)

    def running(self, i):
        """The nodes node i shows running, or None while it does not answer (starting)."""
        rc, out, err = wt.warrenctl("--config", self.conf(i), "cluster_status", "--formatter",
                                    "json")
        return json.loads(out)["running_nodes"] if rc == 0 else None

    def leader(self, i):
        """(name, term) of the last leader node i's log names, or None."""
        found = LEADER_LINE.findall(self.log_text(i))
        return (found[-1][0], int(found[-1][1])) if found else None

    def queue(self, i, name):
        """(status, queue) of the queue name in vhost / as node i's API shows it; (None, None)
        while the node does not answer."""
        try:
            status, _, q = wt.http(self.api(i), "GET", "/api/queues/%2F/" + name, timeout=5)
        except OSError:
            return None, None
        return status, q

    def start_node(self, i):
        """Starts node i again as local-cluster.sh did, with its configuration and data."""
        log = open(os.path.join(self.dir, "node%d" % i, "stdout.log"), "ab")
        p = subprocess.Popen([wt.server_binary(), "--config", self.conf(i), "--nodename",
                              "warren%d@localhost" % i], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        log.close()
        with open(os.path.join(self.dir, "node%d.pid" % i), "w") as f:
            f.write(str(p.pid))
        return p

    def start_extra(self, i, listed):
        """Starts node i beyond those local-cluster.sh started, on its ports (base + i - 1 and
        so on), in a fresh directory with the cluster's cookie, its classic_config listing
        the nodes listed and itself. Returns its Popen."""
        d = os.path.join(self.dir, "node%d" % i)
        os.makedirs(os.path.join(d, "data"))
        cookie = os.path.join(d, "data", ".erlang.cookie")
        shutil.copyfile(os.path.join(self.dir, "node1", "data", ".erlang.cookie"), cookie)
        os.chmod(cookie, 0o400)
        port = self.base + i - 1
        with open(self.conf(i), "w") as f:
            f.write("listeners.tcp.default = 127.0.0.1:%d\n" % port)
            f.write("management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %d\n" % (port + 10000))
            f.write("prometheus.tcp.port = 0\ndata_dir = %s/data\nlog.dir = %s\n" % (d, d))
            f.write("log.file = warren.log\nlog.console = false\n")
            f.write("distribution.listener.interface = 127.0.0.1\n")
            f.write("distribution.listener.port_range.min = %d\n" % (port + 20000))
            f.write("cluster_formation.peer_discovery_backend = classic_config\n")
            for n, j in enumerate(sorted(set(listed) | {i}), 1):
                f.write("cluster_formation.classic_config.nodes.%d = warren%d@localhost:%d\n"
                        % (n, j, self.base + 20000 + j - 1))
        return self.start_node(i)

    def nodes(self):
        """The numbers of the nodes started in the directory."""
        return sorted(int(n[4:]) for n in os.listdir(self.dir) if re.fullmatch(r"node\d+", n))

    def api(self, i):
        """Node i's HTTP API, for wt.http."""
        return types.SimpleNamespace(mgmt_port=self.base + 10000 + i - 1)

    def amqp(self, i):
        """Node i's AMQP address."""
        return ("127.0.0.1", self.base + i - 1)

    def has_defaults(self):
        """Whether every node has the default user (a first start's defaults go through the
        cluster's log once it has a leader)."""
        return all(wt.http(self.api(i), "GET", "/api/whoami")[0] == 200
                   for i in range(1, NODES + 1))

    def kill_node(self, i, timeout=15):
        """SIGKILL to node i, returning once its process is gone (its store unlocked for a
        start_node: a process in the middle of an fsync takes a moment to die, and its main
        thread shows dead while the others still exit, the files still open)."""
        pid = self.pid(i)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    stat = f.read()
                threads = len(os.listdir("/proc/%d/task" % pid))
            except OSError:
                return
            # dead, not reaped yet (by local-cluster.sh's shell, gone: by init, soon)
            if stat[stat.rindex(")") + 2:].split()[0] == "Z" and threads == 1:
                return
            assert time.monotonic() < deadline, "node %d still runs after SIGKILL" % i
            time.sleep(0.01)

    def stop_node(self, i, proc=None, timeout=15):
        """SIGTERM to node i, waiting for it to exit (proc: its Popen when start_node started
        it, to reap it); it must exit 0."""
        pid = self.pid(i)
        os.kill(pid, signal.SIGTERM)
        if proc is not None:
            assert proc.wait(timeout) == 0, "node %d exited %r" % (i, proc.returncode)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "node %d still runs" % i
            time.sleep(0.05)
        assert "stopped" in self.log_text(i).splitlines()[-1], self.log_text(i)[-2000:]

    def stop(self, procs):
        """local-cluster.sh stop, then: every node's log ends with its clean stop, the nodes
        procs holds (started by start_node) exited 0, nothing a sanitizer printed; the
        directory removed."""
        rc, out = self.script("stop", self.dir)
        assert rc == 0, out
        for i in self.nodes():
            last = self.log_text(i).splitlines()[-1]
            assert last.endswith("] stopped"), (i, last)
        for p in procs.values():
            assert p.wait(10) == 0
        assert not sanitizer_reports(self), sanitizer_reports(self)
        wt.cleanup_dir(self.dir)

    def abort(self):
        """After a failure: the nodes' logs printed, the nodes stopped, the directory kept."""
        self.dump()
        self.script("stop", self.dir)

    def dump(self):
        for i in self.nodes():
            for name in ("warren.log", "stdout.log"):
                path = os.path.join(self.dir, "node%d" % i, name)
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        wt.log("  ---- node %d %s ----\n%s" % (i, name, f.read()[-8000:]))


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, "no %s within %d s" % (what, timeout)
        time.sleep(0.2)


def refused(fn):
    """(code, text) of the channel or connection error fn raised (pika); AssertionError if
    it raised none."""
    import pika.exceptions as pe
    try:
        fn()
    except (pe.ChannelClosedByBroker, pe.ConnectionClosedByBroker) as e:
        return e.reply_code, e.reply_text
    raise AssertionError("not refused")


def names():
    return ["warren%d@localhost" % i for i in range(1, NODES + 1)]


def agreed_leader(c, nodes, above_term=0):
    """The leader every node of nodes names in its log, in a term above above_term, or None."""
    seen = {c.leader(i) for i in nodes}
    if len(seen) != 1:
        return None
    leader = seen.pop()
    return leader if leader is not None and leader[1] > above_term else None


def sanitizer_reports(c):
    """What AddressSanitizer, LeakSanitizer or UBSan printed in the nodes' output."""
    found = []
    for i in c.nodes():
        with open(os.path.join(c.dir, "node%d" % i, "stdout.log"), errors="replace") as f:
            text = f.read()
        if "Sanitizer" in text or "runtime error:" in text:
            found.append("node %d: %s" % (i, text[-4000:]))
    return found
