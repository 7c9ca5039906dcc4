"""Clustering, first step (issue 14): three nodes started by scripts/local-cluster.sh form one
cluster through the metadata Raft group; warrenctl cluster_status and GET /api/nodes show
it, every node seeing every other run (through the node links) and the dead one not; kill -9 of the leader gets the survivors a new leader within seconds, and the killed node,
restarted on its data, catches up and runs again; a leader stopped with SIGTERM hands its
leadership over before it exits; a client without the cluster's secret is
refused and logged; `local-cluster.sh stop` stops every node cleanly."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, agreed_leader, names, wait_for  # noqa: E402


def stranger_refused(c):
    """A node with another secret that lists node 1 as its peer: node 1 refuses its
    connections, says so in its log, and still counts three nodes."""
    tmp = tempfile.mkdtemp(prefix="warren-stranger-")
    data = os.path.join(tmp, "data")
    os.mkdir(data)
    with open(os.path.join(data, ".erlang.cookie"), "w") as f:
        f.write("NOTTHECLUSTERSCOOKIE")
    os.chmod(os.path.join(data, ".erlang.cookie"), 0o400)
    dist = wt.free_port()
    conf = os.path.join(tmp, "warren.conf")
    with open(conf, "w") as f:
        f.write("distribution.listener.interface = 127.0.0.1\n"
                "distribution.listener.port_range.min = %d\n"
                "cluster_formation.classic_config.nodes.1 = warren1@localhost:%d\n"
                "cluster_formation.classic_config.nodes.2 = stranger@localhost\n" % (
                    dist, c.base + 20000))
    with open(os.path.join(tmp, "stderr.log"), "wb") as err:
        p = subprocess.Popen([wt.server_binary(), "--config", conf, "--nodename",
                              "stranger@localhost", "--data-dir", data, "--bind", "127.0.0.1",
                              "--port", str(wt.free_port()), "--management-port", "0",
                              "--prometheus-port", "0"], stdout=err, stderr=err,
                             stdin=subprocess.DEVNULL)
    try:
        # (SIGTERM before its handlers are installed would kill it: they come with "ready")
        wait_for("the stranger ready", lambda: b"ready: data directory" in
                 open(os.path.join(tmp, "stderr.log"), "rb").read(), 15)
        wait_for("node 1 refusing the stranger",
                 lambda: "wrong HMAC: not a member, or a different cluster secret" in
                 c.log_text(1), 15)
        assert sorted(c.status(1)["disk_nodes"]) == names()
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        with open(os.path.join(tmp, "stderr.log"), errors="replace") as f:
            text = f.read()
        wt.cleanup_dir(tmp)
    assert rc == 0, (rc, text[-3000:])


@wt.needs_process
def test_form_fail_over_rejoin():
    c = Cluster()
    procs = {}
    try:
        rc, out = c.script("start", NODES, c.dir, c.base)
        assert rc == 0, out
        leader, term = wait_for("leader known to all", lambda: agreed_leader(c, range(1, 4)), 10)
        wt.log("  leader %s in term %d" % (leader, term))
        wait_for("the default user on every node", c.has_defaults, 10)
        for i in range(1, NODES + 1):
            st = c.status(i)
            assert st["disk_nodes"] == names(), st
            assert st["running_nodes"] == names(), st
            assert any(l["protocol"] == "clustering" and l["port"] == c.base + 20000 + i - 1
                       for l in st["listeners"]["warren%d@localhost" % i]), st
        li = names().index(leader) + 1
        assert c.status(li)["running_nodes"] == names()
        stranger_refused(c)
        api = types.SimpleNamespace(mgmt_port=c.base + 10000 + li - 1)
        status, _, nodes = wt.http(api, "GET", "/api/nodes")
        assert status == 200, (status, nodes)
        assert [n["name"] for n in nodes] == names() and all(n["running"] for n in nodes), nodes

        def peers_described():
            nodes = wt.http(api, "GET", "/api/nodes")[2]
            return all(n.get("os_pid") == str(c.pid(i + 1)) and n.get("mem_used", 0) > 0 and
                       n.get("type") == "disc" for i, n in enumerate(nodes))
        # every node sends its figures every collect_statistics_interval (5 s)
        wait_for("the other nodes' figures", peers_described, 15)

        # kill -9 of the leader: the two others elect one of them within seconds
        t0 = time.monotonic()
        os.kill(c.pid(li), signal.SIGKILL)
        survivors = [i for i in range(1, NODES + 1) if i != li]
        leader2, term2 = wait_for("new leader", lambda: agreed_leader(c, survivors, term), 15)
        wt.log("  new leader %s in term %d, %.1f s after the kill" % (
            leader2, term2, time.monotonic() - t0))
        assert leader2 != leader
        for i in survivors:
            wait_for("the killed node shown down on node %d" % i,
                     lambda: c.status(i)["running_nodes"] == [names()[j - 1] for j in survivors],
                     10)
        l2 = names().index(leader2) + 1

        # the killed node comes back on its data, follows the new leader, and runs again
        procs[li] = c.start_node(li)
        wait_for("rejoined", lambda: c.leader(li) == (leader2, term2) and
                 all(c.running(i) == names() for i in range(1, NODES + 1)), 20)

        # a leader stopped cleanly hands its leadership over: no election timeout to wait
        t0 = time.monotonic()
        os.kill(c.pid(l2), signal.SIGTERM)
        rest = [i for i in range(1, NODES + 1) if i != l2]
        leader3, term3 = wait_for("a leader after the handover",
                                  lambda: agreed_leader(c, rest, term2), 10)
        took = time.monotonic() - t0
        wt.log("  %s handed the leadership to %s (term %d) %.2f s after SIGTERM" % (
            leader2, leader3, term3, took))
        if l2 in procs:
            assert procs.pop(l2).wait(10) == 0
        else:  # local-cluster.sh's child: gone once its log says so
            wait_for("node %d stopped" % l2, lambda: "] stopped" in c.log_text(l2), 10)
        assert "leadership handed to " + leader3 in c.log_text(l2), c.log_text(l2)[-2000:]
        procs[l2] = c.start_node(l2)
        wait_for("all running after the restart",
                 lambda: all(c.running(i) == names() for i in range(1, NODES + 1)), 20)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_form_fail_over_rejoin])
