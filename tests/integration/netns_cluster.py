"""Warren nodes in network namespaces (netns.py), for the partition tests (82, 93): node i runs
in its own namespace as warrenI@<its address>, with the default ports (AMQP 5672, HTTP API 15672,
Prometheus 15692, cluster 25672), its files under a directory of the test's."""

import json
import os
import signal
import subprocess
import tempfile
import types

import cluster_harness as ch
import warren_test as wt

NODES = ch.NODES


class Nodes:
    """warren-server nodes i = 1..NODES in net's namespaces, named warrenI@<address>."""

    def __init__(self, net):
        self.net = net
        self.dir = tempfile.mkdtemp(prefix="warren-partition-")
        self.procs = {}

    def name(self, i):
        return "warren%d@%s" % (i, self.net.addr(i))

    def names(self):
        return [self.name(i) for i in range(1, NODES + 1)]

    def path(self, i, *rest):
        return os.path.join(self.dir, "node%d" % i, *rest)

    def start(self, i):
        os.makedirs(self.path(i, "data"), exist_ok=True)
        cookie = self.path(i, "data", ".erlang.cookie")
        if not os.path.exists(cookie):
            with open(cookie, "w") as f:
                f.write("PARTITIONTESTCOOKIE")
            os.chmod(cookie, 0o400)
        with open(self.path(i, "warren.conf"), "w") as f:
            f.write("listeners.tcp.default = 5672\n"
                    "management.tcp.port = 15672\n"
                    "prometheus.tcp.port = 15692\n"
                    "data_dir = %s\n"
                    "log.dir = %s\n"
                    "log.file = warren.log\n"
                    "log.console = false\n"
                    "loopback_users = none\n" % (self.path(i, "data"), self.path(i)))
            for j in range(1, NODES + 1):
                f.write("cluster_formation.classic_config.nodes.%d = %s\n" % (j, self.name(j)))
        out = open(self.path(i, "stdout.log"), "ab")
        self.procs[i] = subprocess.Popen(
            self.net.argv(i, [wt.server_binary(), "--config", self.path(i, "warren.conf"),
                              "--nodename", self.name(i)]),
            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        out.close()

    def log_text(self, i):
        try:
            with open(self.path(i, "warren.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def leader(self, i):
        found = ch.LEADER_LINE.findall(self.log_text(i))
        return (found[-1][0], int(found[-1][1])) if found else None

    def running(self, i):
        """The nodes node i shows running (over its data directory's socket: the test reaches
        it even when the node is cut off), or None when it does not answer."""
        rc, out, err = wt.warrenctl("--data-dir", self.path(i, "data"), "cluster_status",
                                    "--formatter", "json")
        return json.loads(out)["running_nodes"] if rc == 0 else None

    def quorum_critical(self, i):
        """GET /api/health/checks/node-is-quorum-critical on node i (over its socket):
        (status, body)."""
        api = types.SimpleNamespace(data_dir=self.path(i, "data"))
        status, _, body = wt.http(api, "GET", "/api/health/checks/node-is-quorum-critical",
                                  unix=True)
        return status, body

    def metrics(self, i):
        """node i's warren_cluster_* samples from its /metrics: {name{labels}: value}."""
        import urllib.request
        with urllib.request.urlopen("http://%s:15692/metrics" % self.net.addr(i),
                                    timeout=10) as r:
            text = r.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("warren_cluster_")}

    def stop_all(self):
        """SIGTERM to every node; each must exit 0."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {i: p.wait(30) for i, p in self.procs.items()}
        assert all(rc == 0 for rc in codes.values()), codes

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def finish(self):
        """After a pass: nothing a sanitizer printed in any node's output; the files removed."""
        for i in range(1, NODES + 1):
            with open(self.path(i, "stdout.log"), errors="replace") as f:
                text = f.read()
            assert "Sanitizer" not in text and "runtime error:" not in text, text[-4000:]
        wt.cleanup_dir(self.dir)

    def dump(self):
        for i in range(1, NODES + 1):
            for name in ("warren.log", "stdout.log"):
                if os.path.exists(self.path(i, name)):
                    with open(self.path(i, name), errors="replace") as f:
                        wt.log("  ---- node %d %s ----\n%s" % (i, name, f.read()[-6000:]))
