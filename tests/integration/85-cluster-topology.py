"""Clustering (issue 14): exchanges, queues' definitions and bindings change through the
cluster's metadata log. On three nodes started by scripts/local-cluster.sh, with pika: a
declare answered on one node is there on every node (a passive declare on another node finds
it at once); an inequivalent redeclare on another node is refused with the text a node alone
gives; a binding made on one node is listed by all; an exclusive queue is locked to its
connection on every node and goes everywhere when the connection closes; auto-delete and
x-expires queues go everywhere; a queue lives on the node that declared it; a publish on
another node reaches it, in order,
confirmed once its node took it (one to queues on two other nodes reaches both; one to a
stopped node's queue is nacked); a node stopped during changes has them after its restart,
and its own transient queues are gone (as RabbitMQ deletes a restarted node's transient
queues); declare latency on the leader and on a follower is logged."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, refused, wait_for  # noqa: E402


def get(c, i, path):
    status, _, body = wt.http(c.api(i), "GET", path)
    return body if status == 200 else None


def everywhere(c, what, fn, timeout=5):
    for i in range(1, NODES + 1):
        wait_for("%s on node %d" % (what, i), lambda: fn(i), timeout)


def alone_inequivalent():
    """What a node alone answers to redeclaring a topic exchange as direct."""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.exchange_declare("x1", "topic", durable=True)
        got = refused(lambda: ch.exchange_declare("x1", "direct", durable=True))
        conn.close()
        return got


def check_declares(c, a, b, alone):
    """An exchange, a queue and a binding declared on nodes a and b are on every node."""
    ca, cb = wt.pika_connect(c.amqp(a)), wt.pika_connect(c.amqp(b))
    cha, chb = ca.channel(), cb.channel()
    cha.exchange_declare("x1", "topic", durable=True)
    for i in range(1, NODES + 1):  # at once: a passive declare that misses waits for the log
        conn = wt.pika_connect(c.amqp(i))
        conn.channel().exchange_declare("x1", "topic", passive=True)
        conn.close()
    assert refused(lambda: chb.exchange_declare("x1", "direct", durable=True)) == alone
    chb = cb.channel()
    ok = cha.queue_declare("q1", durable=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == ("q1", 0, 0), ok
    chb.queue_declare("q1", passive=True)
    chb.queue_bind("q1", "x1", "k.#")
    everywhere(c, "the binding", lambda i: [
        (x["source"], x["destination"], x["routing_key"])
        for x in get(c, i, "/api/bindings/%2F") or [] if x["source"] == "x1"] ==
        [("x1", "q1", "k.#")])
    everywhere(c, "q1's home", lambda i: get(c, i, "/api/queues/%2F/q1")["node"] ==
               "warren%d@localhost" % a)
    chb.queue_unbind("q1", "x1", "k.#")
    chb.queue_delete("q1")
    chb.exchange_delete("x1")
    everywhere(c, "q1 and x1 gone", lambda i: get(c, i, "/api/queues/%2F/q1") is None and
               get(c, i, "/api/exchanges/%2F/x1") is None)
    ca.close()
    cb.close()


def check_exclusive(c, a, b):
    """An exclusive queue of a connection on node a: locked on node b, gone everywhere when
    the connection closes."""
    ca, cb = wt.pika_connect(c.amqp(a)), wt.pika_connect(c.amqp(b))
    name = ca.channel().queue_declare("", exclusive=True).method.queue
    chb = cb.channel()
    code, text = refused(lambda: chb.queue_declare(name, passive=True))
    assert code == 405 and text.startswith("RESOURCE_LOCKED - cannot obtain exclusive access"), \
        (code, text)
    chb = cb.channel()
    assert refused(lambda: chb.queue_declare(name))[0] == 405
    ca.close()
    everywhere(c, "the exclusive queue gone", lambda i: get(c, i, "/api/queues/%2F/" + name)
               is None)
    cb.close()


def check_self_deleting(c, a):
    """An auto-delete queue whose consumer cancels, and an x-expires queue left unused, go on
    every node."""
    conn = wt.pika_connect(c.amqp(a))
    ch = conn.channel()
    ch.queue_declare("ad", auto_delete=True)
    ch.queue_declare("ex", arguments={"x-expires": 300})
    everywhere(c, "both declared", lambda i: get(c, i, "/api/queues/%2F/ad") and
               get(c, i, "/api/queues/%2F/ex"))
    tag = ch.basic_consume("ad", lambda *args: None)
    ch.basic_cancel(tag)
    everywhere(c, "the auto-delete queue gone", lambda i: get(c, i, "/api/queues/%2F/ad") is None)
    everywhere(c, "the expired queue gone", lambda i: get(c, i, "/api/queues/%2F/ex") is None)
    conn.close()


def check_forwarding(c, a, b, g):
    """Publishes on node b to queues that live on nodes a and g: confirmed, in order, each
    copy on its node; persistent ones there after a restart of the home."""
    import pika
    ca, cb, cg = (wt.pika_connect(c.amqp(i)) for i in (a, b, g))
    cha, chb, chg = ca.channel(), cb.channel(), cg.channel()
    cha.queue_declare("fa", durable=True)
    chg.queue_declare("fg", durable=True)
    chb.exchange_declare("fan", "fanout")
    chb.queue_bind("fa", "fan")
    chb.queue_bind("fg", "fan")
    chb.confirm_delivery()
    n = 500
    t0 = time.monotonic()
    for i in range(n):
        chb.basic_publish("", "fa", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    took = time.monotonic() - t0
    for i in range(n):
        chb.basic_publish("fan", "", b"f%d" % i, pika.BasicProperties(delivery_mode=2))
    wt.log("  %d confirmed publishes on node %d to node %d's queue, one at a time: %.0f/s" % (
        n, b, a, n / took))
    assert cha.queue_declare("fa", passive=True).method.message_count == 2 * n
    assert chg.queue_declare("fg", passive=True).method.message_count == n
    got = [cha.basic_get("fa", auto_ack=True)[2] for _ in range(n)]
    assert got == [b"m%d" % i for i in range(n)], got[:10]
    got = [chg.basic_get("fg", auto_ack=True)[2] for _ in range(n)]
    assert got == [b"f%d" % i for i in range(n)], got[:10]
    ca.close()
    cg.close()
    cb.close()
    return n


def check_home_down(c, a, b, procs, queue):
    """A publish on node b to queue, whose node a is stopped, is nacked; the messages node a
    confirmed before its stop are there after its restart."""
    import pika
    conn = wt.pika_connect(c.amqp(b))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"kept", pika.BasicProperties(delivery_mode=2))
    c.stop_node(a, procs.pop(a, None))
    wait_for("node %d seen down" % a, lambda: len(c.running(b)) == NODES - 1, 10)
    try:
        ch.basic_publish("", queue, b"lost", pika.BasicProperties(delivery_mode=2))
        raise AssertionError("a publish to a stopped node's queue was confirmed")
    except pika.exceptions.NackError:
        pass
    conn.close()
    procs[a] = c.start_node(a)
    wait_for("node %d back" % a, lambda: c.running(a) and len(c.running(a)) == NODES, 20)
    conn = wt.pika_connect(c.amqp(a))
    ch = conn.channel()
    got = ch.basic_get(queue, auto_ack=True)
    assert got[2] == b"kept" and ch.basic_get(queue)[0] is None, got
    conn.close()


def check_restart(c, g, f, procs):
    """Node g, stopped while topology changes on node f, has the changes after its restart;
    its transient queue is gone everywhere, its durable one stays, a transient exchange made
    before its stop is still there."""
    conn = wt.pika_connect(c.amqp(g))
    ch = conn.channel()
    ch.queue_declare("g-transient")
    ch.queue_declare("g-durable", durable=True)
    ch.exchange_declare("x-transient", "fanout")
    conn.close()
    everywhere(c, "g's queues", lambda i: get(c, i, "/api/queues/%2F/g-transient"))
    c.stop_node(g, procs.pop(g, None))
    conn = wt.pika_connect(c.amqp(f))
    ch = conn.channel()
    ch.exchange_declare("x-while", "direct", durable=True)
    ch.queue_declare("q-while", durable=True)
    ch.queue_bind("q-while", "x-while", "k")
    conn.close()
    procs[g] = c.start_node(g)
    wait_for("node %d back" % g, lambda: c.running(g) and len(c.running(g)) == NODES, 20)
    everywhere(c, "the changes made while node %d was down" % g,
               lambda i: get(c, i, "/api/queues/%2F/q-while") and
               get(c, i, "/api/exchanges/%2F/x-while") and
               get(c, i, "/api/exchanges/%2F/x-transient"))
    everywhere(c, "node %d's transient queue gone" % g,
               lambda i: get(c, i, "/api/queues/%2F/g-transient") is None)
    assert all(get(c, i, "/api/queues/%2F/g-durable")["node"] == "warren%d@localhost" % g
               for i in range(1, NODES + 1))
    bound = [x["destination"] for x in get(c, g, "/api/bindings/%2F") if x["source"] == "x-while"]
    assert bound == ["q-while"], bound


def declare_latency(c, i):
    """p50 and p99 (ms) of 100 queue.declare on node i."""
    conn = wt.pika_connect(c.amqp(i))
    ch = conn.channel()
    took = []
    for n in range(100):
        t0 = time.monotonic()
        ch.queue_declare("lat%d" % n)
        took.append((time.monotonic() - t0) * 1000)
    for n in range(100):
        ch.queue_delete("lat%d" % n)
    conn.close()
    took.sort()
    return took[50], took[98]


@wt.needs_process
def test_cluster_topology():
    alone = alone_inequivalent()
    c = Cluster()
    procs = {}
    try:
        li, f, g = c.start()
        check_declares(c, f, g, alone)
        check_declares(c, li, f, alone)
        check_exclusive(c, f, li)
        check_self_deleting(c, g)
        check_forwarding(c, li, f, g)
        check_home_down(c, g, li, procs, "fg")
        for i in (li, f):
            wt.log("  queue.declare on node %d (%s): p50 %.2f ms, p99 %.2f ms" % (
                i, "leader" if i == li else "follower", *declare_latency(c, i)))
        check_restart(c, g, f, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_topology])
