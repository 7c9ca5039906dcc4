"""Clustering (issue 14): the cluster's members change. Three nodes started by
scripts/local-cluster.sh; warrenctl forget_cluster_node refuses a running node, the node asked
and a node that is not a member, in rabbitmqctl's shape (HTTP DELETE /api/nodes/{name}: 409,
400, 404); node 3 stopped and forgotten from a follower (the request goes to the leader over
the node link) is listed by no node any more, the link to it is dropped, and a change still
commits with the two nodes left. Then a fourth node with a fresh data directory, listing nodes
1, 2 and itself, joins at its start (the nodes it asks have a formed cluster: they have the
leader add it): every node lists it running, it has the users made before it joined, a change
made on it reaches the others, and with node 2 stopped nodes 1 and 4 still commit (it votes).
Node 2 started again on an empty data directory (its cookie kept) is told it is a member: it
does not form a cluster of its own but receives the log, with the change made while it was
down."""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, agreed_leader, names, wait_for  # noqa: E402


def get(c, i, path):
    status, _, body = wt.http(c.api(i), "GET", path)
    return body if status == 200 else None


def listed(c, i):
    """The nodes node i lists: (cluster_status' disk nodes, its running ones, /api/nodes)."""
    st = c.status(i)
    return (sorted(st["disk_nodes"]), sorted(st["running_nodes"]),
            sorted(n["name"] for n in get(c, i, "/api/nodes")))


def check_refusals(c):
    """Every node runs: forgetting one, the node asked or a stranger is refused."""
    w = names()
    rc, out, err = wt.warrenctl("--config", c.conf(1), "forget_cluster_node", w[1])
    assert rc == 69 and "Removing node %s from the cluster" % w[1] in out, (rc, out, err)
    assert err == "Error:\nFailed to remove node %s: it is running. Stop it before forgetting " \
        "it\n" % w[1], err
    rc, out, err = wt.warrenctl("--config", c.conf(1), "forget_cluster_node", w[0])
    assert rc == 69 and "cannot forget itself" in err, (rc, out, err)
    rc, out, err = wt.warrenctl("--config", c.conf(1), "forget_cluster_node", "warren9@localhost")
    assert rc == 69 and err == "Error:\nThe node selected is not in the cluster.\n", (rc, err)
    for path, status in (("/api/nodes/" + w[2], 409), ("/api/nodes/" + w[1], 400),
                         ("/api/nodes/nobody@nowhere", 404)):
        got, _, body = wt.http(c.api(2), "DELETE", path)
        assert got == status, (path, got, body)
    status, _, _ = wt.http(c.api(1), "PUT", "/api/users/mon",
                           {"password": "mpw", "tags": "monitoring"})
    assert status == 201, status
    wait_for("user mon on node 2", lambda: get(c, 2, "/api/users/mon"), 5)
    status, _, body = wt.http(c.api(2), "DELETE", "/api/nodes/" + w[2], auth=("mon", "mpw"))
    assert status == 401, (status, body)
    assert all(len(listed(c, i)[0]) == NODES for i in range(1, NODES + 1))


def check_forget(c):
    """Node 3 stopped, then forgotten from the follower of the two left."""
    w = names()
    c.stop_node(3)
    leader, _ = wait_for("a leader of nodes 1 and 2",
                         lambda: agreed_leader(c, (1, 2)) if c.leader(1) and
                         c.leader(1)[0] != w[2] else None, 10)
    f = 1 if leader == w[1] else 2
    wait_for("node 3 seen down", lambda: w[2] not in listed(c, f)[1], 5)
    t0 = time.monotonic()
    rc, out, err = wt.warrenctl("--config", c.conf(f), "forget_cluster_node", w[2])
    took = time.monotonic() - t0
    assert rc == 0 and err == "", (rc, out, err)
    assert out == "Removing node %s from the cluster\n" % w[2], out
    wt.log("  forget_cluster_node on follower node %d answered in %.3f s" % (f, took))
    for i in (1, 2):
        wait_for("two nodes listed by node %d" % i,
                 lambda: listed(c, i) == (w[:2], w[:2], w[:2]), 5)
        assert "%s:%d is no longer a member: link dropped" % (
            w[2], c.base + 20002) in c.log_text(i), i
    rc, out, err = wt.warrenctl("--config", c.conf(f), "forget_cluster_node", w[2])
    assert rc == 69 and err == "Error:\nThe node selected is not in the cluster.\n", (rc, err)
    # a change commits with the two voters left
    status, _, _ = wt.http(c.api(f), "PUT", "/api/users/after", {"password": "a", "tags": ""})
    assert status == 201, status
    for i in (1, 2):
        wait_for("user after on node %d" % i, lambda: get(c, i, "/api/users/after"), 5)
    status, _, body = wt.http(c.api(f), "GET", "/api/health/checks/node-is-quorum-critical")
    assert status == 503, (status, body)  # either of the two stopped leaves no majority


def check_join(c, procs):
    """Node 4 joins the cluster of nodes 1 and 2."""
    w = names()[:2] + ["warren4@localhost"]
    t0 = time.monotonic()
    procs[4] = c.start_extra(4, (1, 2))
    for i in (1, 2, 4):
        wait_for("three nodes listed by node %d" % i,
                 lambda: os.path.exists(os.path.join(c.dir, "node4", "data",
                                                     "warren-admin.sock")) and
                 listed(c, i) == (w, w, w), 15)
    wt.log("  node 4 listed running by every node %.3f s after its start" % (
        time.monotonic() - t0))
    assert "joining the formed cluster" in c.log_text(4), c.log_text(4)[-3000:]
    assert "forming it" not in c.log_text(4)
    assert any("warren4@localhost:%d asks to join: adding it" % (c.base + 20003) in
               c.log_text(i) for i in (1, 2))
    wait_for("node 4 made a voter", lambda: any(
        "warren4@localhost:%d is a voter" % (c.base + 20003) in c.log_text(i)
        for i in (1, 2)), 10)
    wt.log("  node 4's log:\n" + "".join(
        line + "\n" for line in c.log_text(4).splitlines() if "cluster:" in line
        or "database" in line))
    wait_for("users made before it joined, on node 4",
             lambda: get(c, 4, "/api/users/after") and get(c, 4, "/api/users/mon"), 5)
    status, _, _ = wt.http(c.api(4), "PUT", "/api/users/fromfour", {"password": "f", "tags": ""})
    assert status == 201, status
    for i in (1, 2, 4):
        wait_for("user fromfour on node %d" % i, lambda: get(c, i, "/api/users/fromfour"), 5)
    # node 4 votes: with node 2 stopped, nodes 1 and 4 are a majority of three
    c.stop_node(2)
    t0 = time.monotonic()
    wait_for("a change committed by nodes 1 and 4",
             lambda: wt.http(c.api(1), "PUT", "/api/users/twoofthree",
                             {"password": "t", "tags": ""})[0] == 201, 15)
    wt.log("  node 2 stopped: a change on node 1 committed %.3f s later" % (
        time.monotonic() - t0))
    wait_for("user twoofthree on node 4", lambda: get(c, 4, "/api/users/twoofthree"), 5)


def check_wiped_member(c, procs):
    """Node 2, a member, starts again with nothing but its cookie."""
    data = os.path.join(c.dir, "node2", "data")
    for name in os.listdir(data):
        if name != ".erlang.cookie":
            path = os.path.join(data, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    start = len(c.log_text(2))
    procs[2] = c.start_node(2)
    wait_for("the change made while it was down, on node 2",
             lambda: c.running(2) and get(c, 2, "/api/users/twoofthree"), 15)
    log = c.log_text(2)[start:]
    assert "joining the formed cluster" in log and "forming it" not in log, log
    w = names()[:2] + ["warren4@localhost"]
    for i in (1, 2, 4):
        wait_for("three nodes running for node %d" % i, lambda: listed(c, i) == (w, w, w), 10)


@wt.needs_process
def test_cluster_membership():
    c = Cluster()
    procs = {}
    try:
        rc, out = c.script("start", NODES, c.dir, c.base)
        assert rc == 0, out
        wait_for("leader known to all", lambda: agreed_leader(c, range(1, NODES + 1)), 10)
        wait_for("the default user on every node", c.has_defaults, 10)
        check_refusals(c)
        check_forget(c)
        check_join(c, procs)
        check_wiped_member(c, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_membership])
