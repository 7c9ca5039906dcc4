"""Clustering (issue 14): users, vhosts, permissions, policies, parameters and global
parameters are replicated through the cluster's metadata log. Three nodes started by
scripts/local-cluster.sh make the default user and vhost once (through the log); a change made
on a follower (warrenctl or the HTTP API) is answered once that node applied it, and every
node has it; a user added on node 2 logs in on node 3; deleting a vhost closes its
connections on every node; invalid input gets the same status and text as from a node alone;
a node stopped during changes catches up after its restart and never shows an older state
than it had; definitions (POST /api/definitions, load_definitions) are imported on every
node; with a majority of the nodes down a change gets a 503, not a hang."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, agreed_leader, names, wait_for  # noqa: E402

# Requests that are refused alone, with the texts a cluster must give too: checked without
# state before submitting (policy validation, a limit's name) or by the apply on every node
# (a hash that does not decode, a bad queue type, a regex that does not compile).
INVALID = [
    ("PUT", "/api/policies/%2F/bad", {"pattern": ".*", "definition": {"message-ttl": "x"}}),
    ("PUT", "/api/vhosts/badq", {"default_queue_type": "nope"}),
    ("PUT", "/api/users/badhash", {"password_hash": "notbase64!!", "tags": ""}),
    ("PUT", "/api/user-limits/guest/max-bogus", {"value": 1}),
    ("PUT", "/api/user-limits/nosuch/max-connections", {"value": 1}),
    ("PUT", "/api/parameters/vhost-limits/%2F/limits", {"value": {"max-bogus": 1}}),
    ("PUT", "/api/topic-permissions/%2F/guest", {"exchange": "amq.topic", "write": "(",
                                                 "read": ".*"}),
    ("PUT", "/api/permissions/%2F/nosuch", {"configure": ".*", "write": ".*", "read": ".*"}),
    ("POST", "/api/definitions", {"permissions": [{"user": "nosuch", "vhost": "/",
                                                   "configure": ".*", "write": ".*",
                                                   "read": ".*"}]}),
    ("DELETE", "/api/users/nosuch", None),
    ("DELETE", "/api/policies/%2F/nosuch", None),
]


def alone_replies():
    """What a node alone answers to INVALID: [(status, body)]."""
    with wt.server(mgmt=True) as srv:
        return [wt.http(srv, m, p, body)[::2] for m, p, body in INVALID]


def get(c, i, path):
    status, _, body = wt.http(c.api(i), "GET", path)
    return body if status == 200 else None


def on_every_node(c, answering, what, fn):
    """fn(i) holds on the answering node at once, and on every other within 5 s: returns
    the longest wait (s) of the others."""
    assert fn(answering), "%s: not on node %d, which answered" % (what, answering)
    lag = 0.0
    t0 = time.monotonic()
    for i in range(1, NODES + 1):
        wait_for("%s on node %d" % (what, i), lambda: fn(i), 5)
        lag = max(lag, time.monotonic() - t0)
    return lag


def ctl(c, i, *args):
    rc, out, err = wt.warrenctl("--config", c.conf(i), *args)
    assert rc == 0, (args, rc, out, err)
    return out


def tags(c, i, user):
    u = get(c, i, "/api/users/" + user)
    return u["tags"] if u else None


def check_defaults(c):
    """guest and / on every node, made once: every node applied the first start's defaults
    once, whichever node's submission came first in the log."""
    wait_for("the default user on every node", c.has_defaults, 10)
    for i in range(1, NODES + 1):
        assert c.log_text(i).count("new database: created vhost '/' and user 'guest'") == 1
    perms = [get(c, i, "/api/permissions") for i in range(1, NODES + 1)]
    assert all(p == perms[0] for p in perms) and len(perms[0]) == 1, perms


def check_changes(c, f, lags):
    """Changes through warrenctl and the HTTP API on follower f, on every node."""
    ctl(c, f, "add_user", "alice", "pw1")
    lags.append(on_every_node(c, f, "alice", lambda i: get(c, i, "/api/users/alice")))
    hashes = {get(c, i, "/api/users/alice")["password_hash"] for i in range(1, NODES + 1)}
    assert len(hashes) == 1, hashes  # hashed once, by the node that was asked
    ctl(c, f, "add_vhost", "v1")
    lags.append(on_every_node(c, f, "v1", lambda i: get(c, i, "/api/vhosts/v1")))
    ctl(c, f, "set_permissions", "-p", "v1", "alice", ".*", ".*", ".*")
    lags.append(on_every_node(c, f, "alice's permissions",
                              lambda i: get(c, i, "/api/permissions/v1/alice")))
    ctl(c, f, "set_policy", "-p", "v1", "ttl", "^q", '{"message-ttl": 60000}')
    lags.append(on_every_node(
        c, f, "policy ttl",
        lambda i: (get(c, i, "/api/policies/v1/ttl") or {}).get("definition") ==
        {"message-ttl": 60000}))
    status, _, body = wt.http(c.api(f), "PUT", "/api/parameters/vhost-limits/v1/limits",
                              {"value": {"max-queues": 7}})
    assert status in (201, 204), (status, body)
    lags.append(on_every_node(
        c, f, "v1's limits",
        lambda i: (get(c, i, "/api/vhost-limits/v1") or [{}])[0].get("value") ==
        {"max-queues": 7}))
    status, _, body = wt.http(c.api(f), "PUT", "/api/operator-policies/v1/cap",
                              {"pattern": ".*", "definition": {"max-length": 10},
                               "apply-to": "queues"})
    assert status == 201, (status, body)
    lags.append(on_every_node(c, f, "operator policy",
                              lambda i: get(c, i, "/api/operator-policies/v1/cap")))
    status, _, body = wt.http(c.api(f), "PUT", "/api/global-parameters/colour",
                              {"value": "green"})
    assert status in (201, 204), (status, body)
    lags.append(on_every_node(
        c, f, "global parameter",
        lambda i: (get(c, i, "/api/global-parameters/colour") or {}).get("value") == "green"))
    status, _, body = wt.http(c.api(f), "PUT", "/api/cluster-name", {"name": "rabbits"})
    assert status == 204, (status, body)

    def named(i):
        if get(c, i, "/api/cluster-name") != {"name": "rabbits"}:
            return False
        with wt.opened(c.amqp(i)) as conn:  # connection.start says it too
            return conn.start["server_properties"]["cluster_name"] == "rabbits"
    lags.append(on_every_node(c, f, "cluster name", named))


def check_definitions(c, f, lags):
    """POST /api/definitions on follower f imports on every node: the same user (its password
    hashed once), vhost, permissions and queue."""
    defs = {"users": [{"name": "frank", "password": "fpw", "tags": ""}],
            "vhosts": [{"name": "dv"}],
            "permissions": [{"user": "frank", "vhost": "dv", "configure": ".*", "write": ".*",
                             "read": ".*"}],
            "queues": [{"name": "dq", "vhost": "dv", "durable": True, "auto_delete": False,
                        "arguments": {}}]}
    status, _, body = wt.http(c.api(f), "POST", "/api/definitions", defs)
    assert status == 204, (status, body)
    lags.append(on_every_node(c, f, "imported definitions",
                              lambda i: get(c, i, "/api/permissions/dv/frank") and
                              get(c, i, "/api/queues/dv/dq")))
    hashes = {get(c, i, "/api/users/frank")["password_hash"] for i in range(1, NODES + 1)}
    assert len(hashes) == 1, hashes


def check_login_elsewhere(c):
    """A user added on node 2 logs in over AMQP on node 3."""
    import pika
    status, _, body = wt.http(c.api(2), "PUT", "/api/users/bob",
                              {"password": "bobpw", "tags": ""})
    assert status == 201, (status, body)
    status, _, body = wt.http(c.api(2), "PUT", "/api/permissions/%2F/bob",
                              {"configure": ".*", "write": ".*", "read": ".*"})
    assert status == 201, (status, body)
    wait_for("bob's permissions on node 3", lambda: get(c, 3, "/api/permissions/%2F/bob"), 5)
    conn = wt.pika_connect(c.amqp(3), credentials=pika.PlainCredentials("bob", "bobpw"))
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)
    conn.close()


def check_vhost_delete(c, f):
    """Deleting v1 on follower f closes alice's connections to it on every node."""
    conns = []
    for i in range(1, NODES + 1):
        conn = wt.RawConn(c.amqp(i))
        conn.handshake(user="alice", password="pw1", vhost="v1")
        conns.append(conn)
    ctl(c, f, "delete_vhost", "v1")
    for i, conn in enumerate(conns, 1):
        m = conn.expect_connection_close(320, timeout=5)
        wt.log("  node %d closed its v1 connection: %r" % (i, m))
        conn.close()
    on_every_node(c, f, "v1 gone", lambda i: get(c, i, "/api/vhosts/v1") is None)
    assert all(get(c, i, "/api/permissions/v1/alice") is None for i in range(1, NODES + 1))


def check_invalid(c, f, alone):
    for (m, p, body), want in zip(INVALID, alone):
        status, _, got = wt.http(c.api(f), m, p, body)
        assert (status, got) == want, (m, p, (status, got), want)
        assert want[0] in (400, 404), want
    assert get(c, f, "/api/vhosts/badq") is None and get(c, f, "/api/users/badhash") is None


def check_restart(c, f, g, procs):
    """Node g, stopped during changes, catches up after its restart, never showing a state
    older than the one it had when it stopped (its stored state is not replayed over)."""
    ctl(c, f, "add_user", "carol", "pw")
    ctl(c, f, "set_user_tags", "carol", "t1")
    ctl(c, f, "set_user_tags", "carol", "t2")
    wait_for("t2 on node %d" % g, lambda: tags(c, g, "carol") == ["t2"], 5)
    c.stop_node(g, procs.pop(g, None))
    # g's next start submits load_definitions through the log: every node imports it
    path = os.path.join(c.dir, "defs.json")
    with open(path, "w") as out:
        json.dump({"users": [{"name": "gina", "password": "gpw", "tags": "management"}]}, out)
    with open(c.conf(g), "a") as out:
        out.write("load_definitions = %s\n" % path)
    ctl(c, f, "set_user_tags", "carol", "t3")
    ctl(c, f, "set_user_tags", "carol", "t4")
    ctl(c, f, "add_user", "dave", "pw")
    t0 = time.monotonic()
    procs[g] = c.start_node(g)
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            t = tags(c, g, "carol")
        except OSError:
            time.sleep(0.02)
            continue
        seen.append(t)
        if t == ["t4"] and get(c, g, "/api/users/dave"):
            break
        time.sleep(0.02)
    wt.log("  node %d after its restart showed carol's tags %r, caught up %.2f s after the "
           "start" % (g, sorted(set(map(str, seen))), time.monotonic() - t0))
    order = [["t2"], ["t3"], ["t4"]]
    assert seen and all(t in order for t in seen), seen
    assert [order.index(t) for t in seen] == sorted(order.index(t) for t in seen), seen
    assert seen[-1] == ["t4"], seen
    for i in range(1, NODES + 1):
        wait_for("load_definitions' user on node %d" % i, lambda: get(c, i, "/api/users/gina"), 5)
    assert "imported the definitions of %s through the cluster's log" % path in c.log_text(g)
    for line in ("new database in a cluster", "new database: created"):
        assert c.log_text(g).count(line) == 1, line  # not made again, not submitted again


def check_no_majority(c, keep, procs):
    """With the two other nodes stopped, a change on node keep is refused with a 503 within
    the bounded wait, not left hanging."""
    for i in range(1, NODES + 1):
        if i != keep:
            c.stop_node(i, procs.pop(i, None))
    t0 = time.monotonic()
    status, _, body = wt.http(c.api(keep), "PUT", "/api/users/erin",
                              {"password": "pw", "tags": ""}, timeout=30)
    took = time.monotonic() - t0
    wt.log("  no majority: %d %r after %.1f s" % (status, body, took))
    assert status == 503, (status, body)
    assert body["error"] == "service_unavailable", body
    assert ("may or may not" in body["reason"] or "no leader" in body["reason"]), body
    assert took < 15, took


@wt.needs_process
def test_cluster_admin():
    alone = alone_replies()
    c = Cluster()
    procs = {}
    try:
        rc, out = c.script("start", NODES, c.dir, c.base)
        assert rc == 0, out
        leader, _ = wait_for("leader known to all", lambda: agreed_leader(c, range(1, 4)), 10)
        li = names().index(leader) + 1
        f, g = [i for i in range(1, NODES + 1) if i != li]
        wt.log("  leader: node %d; followers %d and %d" % (li, f, g))
        check_defaults(c)
        lags = []
        check_changes(c, f, lags)
        check_definitions(c, f, lags)
        wt.log("  changes on node %d seen on every node within %.3f s (the longest)" % (
            f, max(lags)))
        check_login_elsewhere(c)
        check_vhost_delete(c, f)
        check_invalid(c, f, alone)
        check_restart(c, f, g, procs)
        check_no_majority(c, li, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_admin])
