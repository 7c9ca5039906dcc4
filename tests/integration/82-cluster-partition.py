"""A partition of the cluster (issue 14): three nodes, each in its own network namespace on a
bridge (tests/integration/netns.py), with their default ports (AMQP 5672, cluster 25672) on
addresses of their own. The metadata group's leader is cut off: the two others elect a leader
among themselves within seconds, each side shows the other side's nodes down, and once the
link is back the cut-off node follows the new leader (no second leader: one leader per term,
and every node agrees who leads) and every node shows all three running.
/api/health/checks/node-is-quorum-critical fails on every node while one is cut off."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import netns  # noqa: E402
import warren_test as wt  # noqa: E402

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
                    "log.console = false\n" % (self.path(i, "data"), self.path(i)))
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

    def dump(self):
        for i in range(1, NODES + 1):
            for name in ("warren.log", "stdout.log"):
                if os.path.exists(self.path(i, name)):
                    with open(self.path(i, name), errors="replace") as f:
                        wt.log("  ---- node %d %s ----\n%s" % (i, name, f.read()[-6000:]))


@wt.needs_process
def test_leader_cut_off():
    with netns.Net(NODES) as net:
        nodes = Nodes(net)
        try:
            for i in range(1, NODES + 1):
                nodes.start(i)
            every = range(1, NODES + 1)
            ch.wait_for("all running everywhere",
                     lambda: all(nodes.running(i) == nodes.names() for i in every), 30)
            leader, term = ch.wait_for("a leader", lambda: ch.agreed_leader(nodes, every), 10)
            li = nodes.names().index(leader) + 1
            others = [i for i in every if i != li]
            for i in every:  # any one of three may stop
                assert nodes.quorum_critical(i) == (200, {"status": "ok"}), i
            for i in every:
                m = nodes.metrics(i)
                assert m['warren_cluster_nodes{state="running"}'] == 3, m
                assert m['warren_cluster_nodes{state="down"}'] == 0, m
                assert m["warren_cluster_metadata_leader"] == (i == li), (i, m)
                assert m["warren_cluster_metadata_term_total"] == term, m
                assert m["warren_cluster_metadata_commit_index"] >= 2, m
            wt.log("  leader %s (term %d): cutting it off" % (leader, term))

            t0 = time.monotonic()
            net.isolate(li)
            leader2, term2 = ch.wait_for("a leader of the majority",
                                      lambda: ch.agreed_leader(nodes, others, term), 20)
            wt.log("  %s leads the majority in term %d, %.1f s after the cut" % (
                leader2, term2, time.monotonic() - t0))
            assert leader2 != leader
            ch.wait_for("the cut-off node alone", lambda: nodes.running(li) == [leader], 10)
            for i in others:
                ch.wait_for("node %d without the cut-off node" % i,
                         lambda: nodes.running(i) == [nodes.name(j) for j in others], 10)
            # the cut-off node never saw a leader of a later term on its side
            assert nodes.leader(li) == (leader, term), nodes.leader(li)
            for i in others:
                m = nodes.metrics(i)
                assert m['warren_cluster_nodes{state="running"}'] == 2, m
                assert m['warren_cluster_nodes{state="down"}'] == 1, m
                assert m["warren_cluster_metadata_term_total"] == term2, m
            # each of the two left is now critical (and so is the node alone)
            for i in every:
                status, body = nodes.quorum_critical(i)
                assert status == 503 and body["status"] == "failed" and body["queues"] == [], (
                    i, status, body)

            net.heal(li)
            t0 = time.monotonic()
            ch.wait_for("the cut-off node following the new leader",
                     lambda: nodes.leader(li) == (leader2, term2), 20)
            ch.wait_for("all running everywhere again",
                     lambda: all(nodes.running(i) == nodes.names() for i in every), 20)
            wt.log("  healed: all three agree again %.1f s after the link came back" % (
                time.monotonic() - t0))
            for i in every:
                assert nodes.quorum_critical(i) == (200, {"status": "ok"}), i
            # one leader per term on every node's log: no term had two
            for i in every:
                per_term = {}
                for name, t in ch.LEADER_LINE.findall(nodes.log_text(i)):
                    assert per_term.setdefault(t, name) == name, (i, t, per_term[t], name)
            nodes.stop_all()
        except BaseException:
            nodes.kill_all()
            nodes.dump()
            raise
        for i in every:
            with open(nodes.path(i, "stdout.log"), errors="replace") as f:
                text = f.read()
            assert "Sanitizer" not in text and "runtime error:" not in text, text[-4000:]
        wt.cleanup_dir(nodes.dir)


if __name__ == "__main__":
    wt.run([test_leader_cut_off])
