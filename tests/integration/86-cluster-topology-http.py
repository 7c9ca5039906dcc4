"""Clustering (issue 14): the HTTP API's exchange, queue and binding changes go through the
cluster's metadata log as the AMQP methods' do. On three nodes started by
scripts/local-cluster.sh: a PUT of an exchange on a follower is there on the answering node
at once and on every node; 201 then 204 for the same PUT on another node; an inequivalent PUT
gets the status and body a node alone gives; a queue PUT on node 2 lives on node 2 (its "node"
on every node); a binding POSTed on node 3 is listed by all; DELETEs on other nodes remove
them everywhere; purging, or deleting with if-empty, a queue on a node that is not its home
is asked of its home (the reason a node alone gives when it is not empty); the Unix socket's changes (no user) go
through the log too; a client that closes before its answer leaves nothing behind (the
sanitizer build checks); with no majority a change is answered 503."""

import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, wait_for  # noqa: E402

# Declares a cluster must answer as a node alone: the first creates, the second repeats,
# the third is inequivalent.
SAME = [
    ("PUT", "/api/exchanges/%2F/xa", {"type": "topic", "durable": True}),
    ("PUT", "/api/exchanges/%2F/xa", {"type": "topic", "durable": True}),
    ("PUT", "/api/exchanges/%2F/xa", {"type": "direct", "durable": True}),
    ("PUT", "/api/queues/%2F/qa", {"durable": True}),
    ("PUT", "/api/queues/%2F/qa", {"durable": True}),
    ("PUT", "/api/queues/%2F/qa", {"durable": False}),
    ("PUT", "/api/queues/%2F/qb", {"arguments": {"x-max-length": "x"}}),
    ("PUT", "/api/exchanges/%2F/amq.nope", {"type": "direct"}),
    ("PUT", "/api/exchanges/%2F/xb", {"type": "nope"}),
    ("POST", "/api/bindings/%2F/e/nosuch/q/qa", {"routing_key": "k"}),
    ("DELETE", "/api/exchanges/%2F/xa?if-unused=true", None),
]


def alone_replies():
    """What a node alone answers to SAME: [(status, body)] (with a queue bound to xa before
    the if-unused delete)."""
    with wt.server(mgmt=True) as srv:
        got = [wt.http(srv, m, p, body)[::2] for m, p, body in SAME[:-1]]
        assert wt.http(srv, "POST", "/api/bindings/%2F/e/xa/q/qa", {})[0] == 201
        return got + [wt.http(srv, *SAME[-1])[::2]]


def get(c, i, path):
    status, _, body = wt.http(c.api(i), "GET", path)
    return body if status == 200 else None


def on_every_node(c, answering, what, fn):
    """fn(i) holds on the answering node at once (it answered once it applied the change),
    and on every other within 5 s (it applies the change once it learns it was committed)."""
    assert fn(answering), "%s: not on node %d, which answered" % (what, answering)
    for i in range(1, NODES + 1):
        wait_for("%s on node %d" % (what, i), lambda: fn(i), 5)


def bindings_from(c, i, source):
    return [(x["destination"], x["routing_key"]) for x in get(c, i, "/api/bindings/%2F") or []
            if x["source"] == source]


def check_same_as_alone(c, alone):
    """SAME on nodes 1, 2, 3 in turn gives what a node alone gives."""
    for n, ((m, p, body), want) in enumerate(zip(SAME[:-1], alone)):
        status, _, got = wt.http(c.api(n % NODES + 1), m, p, body)
        assert (status, got) == want, (m, p, body, (status, got), want)
    assert wt.http(c.api(1), "POST", "/api/bindings/%2F/e/xa/q/qa", {})[0] == 201
    status, _, got = wt.http(c.api(2), *SAME[-1])
    assert (status, got) == alone[-1], ((status, got), alone[-1])
    assert alone[0][0] == 201 and alone[1][0] == 204 and alone[2][0] == 400, alone
    for i in (1, 2):
        assert wt.http(c.api(i), "DELETE", ("/api/exchanges/%2F/xa", "/api/queues/%2F/qa")[i - 1])[
            0] == 204
    on_every_node(c, 2, "xa and qa gone", lambda i: get(c, i, "/api/exchanges/%2F/xa") is None
                  and get(c, i, "/api/queues/%2F/qa") is None)


def check_changes(c, f):
    """An exchange PUT on follower f, a queue on node 2, a binding on node 3, then deleted on
    other nodes: on (then off) every node."""
    status, _, body = wt.http(c.api(f), "PUT", "/api/exchanges/%2F/x1",
                              {"type": "topic", "durable": True})
    assert (status, body) == (201, None), (status, body)
    on_every_node(c, f, "x1", lambda i: (get(c, i, "/api/exchanges/%2F/x1") or {}).get("type")
                  == "topic")
    g = f % NODES + 1
    assert wt.http(c.api(g), "PUT", "/api/exchanges/%2F/x1",
                   {"type": "topic", "durable": True})[0] == 204
    assert wt.http(c.api(2), "PUT", "/api/queues/%2F/q1", {"durable": True})[0] == 201
    on_every_node(c, 2, "q1 on node 2", lambda i: (get(c, i, "/api/queues/%2F/q1") or {}).get(
        "node") == "warren2@localhost")
    assert wt.http(c.api(1), "PUT", "/api/queues/%2F/q1", {"durable": True})[0] == 204
    status, headers, _ = wt.http(c.api(3), "POST", "/api/bindings/%2F/e/x1/q/q1",
                                 {"routing_key": "k.#"})
    assert status == 201 and headers["location"] == "q1/k.%2523", (status, headers)
    on_every_node(c, 3, "the binding", lambda i: bindings_from(c, i, "x1") == [("q1", "k.#")])
    props = get(c, 1, "/api/bindings/%2F/e/x1/q/q1")[0]["properties_key"]
    assert wt.http(c.api(1), "DELETE", "/api/bindings/%2F/e/x1/q/q1/" +
                   urllib.parse.quote(props, safe="~"))[0] == 204
    on_every_node(c, 1, "the binding gone", lambda i: bindings_from(c, i, "x1") == [])
    assert wt.http(c.api(3), "DELETE", "/api/queues/%2F/q1")[0] == 204
    assert wt.http(c.api(1), "DELETE", "/api/exchanges/%2F/x1")[0] == 204
    on_every_node(c, 1, "q1 and x1 gone", lambda i: get(c, i, "/api/queues/%2F/q1") is None
                  and get(c, i, "/api/exchanges/%2F/x1") is None)


def check_elsewhere(c):
    """Purge and a conditional delete of queue q2, which lives on node 1, from node 2: asked
    of node 1, which purges it (204), and refuses the if-empty delete of it with a message
    (400 with a node alone's reason) until it is empty."""
    import pika
    assert wt.http(c.api(1), "PUT", "/api/queues/%2F/q2", {})[0] == 201
    wait_for("q2 on node 2", lambda: get(c, 2, "/api/queues/%2F/q2"), 5)
    conn = wt.pika_connect(c.amqp(1))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "q2", b"m", pika.BasicProperties(delivery_mode=2))
    status, _, body = wt.http(c.api(2), "DELETE", "/api/queues/%2F/q2?if-empty=true")
    assert status == 400 and body == {
        "error": "bad_request", "reason": "queue 'q2' in vhost '/' not empty"}, (status, body)
    assert get(c, 2, "/api/queues/%2F/q2")
    assert wt.http(c.api(2), "DELETE", "/api/queues/%2F/q2/contents")[0] == 204
    assert ch.basic_get("q2")[0] is None
    conn.close()
    assert wt.http(c.api(2), "DELETE", "/api/queues/%2F/q2?if-empty=true")[0] == 204
    on_every_node(c, 1, "q2 gone", lambda i: get(c, i, "/api/queues/%2F/q2") is None)


def check_unix_socket(c, f):
    """The Unix socket's administrator (no user) declares through the log too."""
    node = type("Node", (), {"data_dir": os.path.join(c.dir, "node%d" % f, "data")})
    status, _, body = wt.http(node, "PUT", "/api/exchanges/%2F/xu", {"type": "fanout"},
                              unix=True)
    assert (status, body) == (201, None), (status, body)
    on_every_node(c, f, "xu", lambda i: get(c, i, "/api/exchanges/%2F/xu"))
    assert wt.http(node, "DELETE", "/api/exchanges/%2F/xu", unix=True)[0] == 204
    on_every_node(c, f, "xu gone", lambda i: get(c, i, "/api/exchanges/%2F/xu") is None)


def check_client_gone(c, f):
    """PUTs whose clients close before the answer: made anyway, the node unharmed."""
    import base64
    auth = base64.b64encode(b"guest:guest").decode()
    for n in range(20):
        body = b'{"type": "direct"}'
        s = socket.create_connection(("127.0.0.1", c.api(f).mgmt_port))
        s.sendall(b"PUT /api/exchanges/%%2F/xg%d HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                  b"%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                      n, auth.encode(), len(body), body))
        s.close()
    for i in range(1, NODES + 1):
        wait_for("the PUTs of gone clients on node %d" % i, lambda: all(
            get(c, i, "/api/exchanges/%%2F/xg%d" % n) for n in range(20)), 5)
    for n in range(20):
        assert wt.http(c.api(f), "DELETE", "/api/exchanges/%%2F/xg%d" % n)[0] == 204


def check_no_majority(c, keep, procs):
    """With the two other nodes stopped, a declare on node keep is answered 503."""
    for i in range(1, NODES + 1):
        if i != keep:
            c.stop_node(i, procs.pop(i, None))
    t0 = time.monotonic()
    status, _, body = wt.http(c.api(keep), "PUT", "/api/queues/%2F/q-none", {}, timeout=60)
    took = time.monotonic() - t0
    wt.log("  no majority: %d %r after %.1f s" % (status, body, took))
    assert status == 503 and body["error"] == "service_unavailable", (status, body)
    assert "may or may not" in body["reason"] or "no leader" in body["reason"], body


@wt.needs_process
def test_cluster_topology_http():
    alone = alone_replies()
    c = Cluster()
    procs = {}
    try:
        li, f, _ = c.start()
        check_same_as_alone(c, alone)
        check_changes(c, f)
        check_elsewhere(c)
        check_unix_socket(c, f)
        check_client_gone(c, f)
        check_no_majority(c, li, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_topology_http])
