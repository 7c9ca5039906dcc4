"""Clustering (issue 14): queue.purge and queue.delete with if-unused / if-empty of a queue
that lives on another node are asked of its home; tx.commit-ok waits for the nodes a
transaction's publishes were forwarded to. On three nodes started by
scripts/local-cluster.sh, with pika and the HTTP API: a purge on node 2 of node 1's queue
answers purge-ok with the count node 1 purged (and the HTTP API's purge on node 2 empties it
too); a delete with if-empty (messages there) or if-unused (a consumer there, itself relayed
from node 3) on node 2 is refused with the text a node alone gives, and goes through once the
queue is empty and unused; another connection's exclusive queue is locked (405); with the
queue's home stopped, purge and the conditional delete are answered with RabbitMQ's "home node
... is down or inaccessible" 404 (AMQP and HTTP). A transaction committed on node 2 with
publishes to node 1's queue has them there once tx.commit-ok is in; one whose publish node 1's
full reject-publish queue refuses fails with 406 "partial tx completion", as on a node alone
(and as RabbitMQ fails such a commit); so does one to a stopped node's queue."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, refused, wait_for  # noqa: E402


def get(c, i, path):
    status, _, body = wt.http(c.api(i), "GET", path)
    return body if status == 200 else None


def alone_refusals():
    """What a node alone answers to queue.delete of a queue with a message (if-empty) and with
    a consumer (if-unused), and to purging another connection's exclusive queue."""
    with wt.server() as srv:
        conn, other = wt.pika_connect(srv.addr), wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("q-p", durable=True)
        ch.basic_publish("", "q-p", b"m")
        not_empty = refused(lambda: ch.queue_delete("q-p", if_empty=True))
        ch = conn.channel()
        ch.basic_consume("q-p", lambda *a: None)
        och = other.channel()
        in_use = refused(lambda: och.queue_delete("q-p", if_unused=True))
        ch.queue_declare("q-x", exclusive=True)
        locked = refused(lambda: other.channel().queue_purge("q-x"))
        conn.close()
        other.close()
        return not_empty, in_use, locked


def alone_partial_tx():
    """What a node alone answers to a tx.commit whose publish a full reject-publish queue
    refuses."""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("q-full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.basic_publish("", "q-full", b"first")
        ch.tx_select()
        ch.basic_publish("", "q-full", b"refused")
        got = refused(ch.tx_commit)
        conn.close()
        return got


def tx_publish(c, i, queue, n, size=16):
    """A transaction of n persistent publishes of size bytes to queue on node i: the
    tx.commit's error (code, text), or None once tx.commit-ok is in."""
    import pika
    conn = wt.pika_connect(c.amqp(i))
    try:
        ch = conn.channel()
        ch.tx_select()
        for k in range(n):
            ch.basic_publish("", queue, b"%-*d" % (size, k), pika.BasicProperties(delivery_mode=2))
        try:
            return refused(ch.tx_commit)
        except AssertionError:
            return None
    finally:
        conn.close()


def check_tx(c, partial):
    """Transactions on node 2 publishing to node 1's queues."""
    conn = wt.pika_connect(c.amqp(1))
    ch = conn.channel()
    ch.queue_declare("q-tx", durable=True)
    ch.queue_declare("q-full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.basic_publish("", "q-full", b"first")
    wait_for("the queues on node 2", lambda: get(c, 2, "/api/queues/%2F/q-full"), 5)
    for n, size in ((20, 16), (400, 65536)):  # (the large ones take a while to forward)
        assert tx_publish(c, 2, "q-tx", n, size) is None
        # once tx.commit-ok is in, the messages are on node 1
        assert ch.queue_declare("q-tx", passive=True).method.message_count == n
        ch.queue_purge("q-tx")
    assert tx_publish(c, 2, "q-full", 1) == partial
    assert ch.queue_declare("q-full", passive=True).method.message_count == 1
    ch.queue_delete("q-tx")
    ch.queue_delete("q-full")
    conn.close()


def publish(c, i, queue, n):
    """n persistent messages to queue, published on node i with confirms."""
    import pika
    conn = wt.pika_connect(c.amqp(i))
    ch = conn.channel()
    ch.confirm_delivery()
    for k in range(n):
        ch.basic_publish("", queue, b"m%d" % k, pika.BasicProperties(delivery_mode=2))
    conn.close()


def check_purge_delete(c, alone):
    """Node 1's queue q-p, purged and conditionally deleted from node 2."""
    not_empty, in_use, locked = alone
    c1, c2 = wt.pika_connect(c.amqp(1)), wt.pika_connect(c.amqp(2))
    ch1 = c1.channel()
    ch1.queue_declare("q-p", durable=True)
    wait_for("q-p on node 2", lambda: get(c, 2, "/api/queues/%2F/q-p"), 5)
    publish(c, 1, "q-p", 5)
    ch2 = c2.channel()
    assert ch2.queue_purge("q-p").method.message_count == 5
    assert ch1.basic_get("q-p")[0] is None
    publish(c, 3, "q-p", 2)  # (forwarded to node 1)
    assert wt.http(c.api(2), "DELETE", "/api/queues/%2F/q-p/contents")[0] == 204
    assert ch1.basic_get("q-p")[0] is None
    publish(c, 1, "q-p", 1)
    assert refused(lambda: ch2.queue_delete("q-p", if_empty=True)) == not_empty
    status, _, body = wt.http(c.api(2), "DELETE", "/api/queues/%2F/q-p?if-empty=true")
    assert (status, body["reason"]) == (400, not_empty[1].split(" - ", 1)[1]), (status, body)
    ch2 = c2.channel()
    assert ch2.queue_purge("q-p").method.message_count == 1
    c3 = wt.pika_connect(c.amqp(3))  # a consumer relayed from node 3 counts on node 1
    ch3 = c3.channel()
    tag = ch3.basic_consume("q-p", lambda *a: None)
    assert refused(lambda: ch2.queue_delete("q-p", if_unused=True)) == in_use
    ch2 = c2.channel()
    ch3.basic_cancel(tag)  # (node 3 tells node 1 after its cancel-ok)
    wait_for("the consumer gone on node 1",
             lambda: get(c, 1, "/api/queues/%2F/q-p")["consumers"] == 0, 5)
    assert ch2.queue_delete("q-p", if_unused=True, if_empty=True).method.message_count == 0
    for i in range(1, NODES + 1):
        wait_for("q-p gone on node %d" % i, lambda: get(c, i, "/api/queues/%2F/q-p") is None, 5)
    ch1.queue_declare("q-x", exclusive=True)
    wait_for("q-x on node 2", lambda: get(c, 2, "/api/queues/%2F/q-x"), 5)
    assert refused(lambda: c2.channel().queue_purge("q-x")) == locked
    for conn in (c1, c2, c3):
        conn.close()


def check_home_down(c, procs):
    """Node 3's queue q-down, with node 3 stopped: purge and the conditional delete from
    node 1 are answered 404; after node 3's restart they work again."""
    conn = wt.pika_connect(c.amqp(3))
    conn.channel().queue_declare("q-down", durable=True)
    conn.close()
    publish(c, 3, "q-down", 3)
    wait_for("q-down on node 1", lambda: get(c, 1, "/api/queues/%2F/q-down"), 5)
    c.stop_node(3, procs.pop(3, None))
    wait_for("node 3 seen down", lambda: len(c.running(1)) == NODES - 1, 10)
    down = (404, "NOT_FOUND - home node 'warren3@localhost' of queue 'q-down' in vhost '/' is "
            "down or inaccessible")
    conn = wt.pika_connect(c.amqp(1))
    assert refused(lambda: conn.channel().queue_purge("q-down")) == down
    assert refused(lambda: conn.channel().queue_delete("q-down", if_empty=True)) == down
    status, _, body = wt.http(c.api(1), "DELETE", "/api/queues/%2F/q-down/contents")
    assert (status, body["reason"]) == (404, down[1].split(" - ", 1)[1]), (status, body)
    assert tx_publish(c, 1, "q-down", 1) == (406, "PRECONDITION_FAILED - partial tx completion")
    procs[3] = c.start_node(3)
    wait_for("node 3 back", lambda: c.running(1) and len(c.running(1)) == NODES and
             c.running(3) and len(c.running(3)) == NODES, 20)
    ch = conn.channel()
    assert ch.queue_purge("q-down").method.message_count == 3
    ch.queue_delete("q-down", if_empty=True)
    conn.close()


@wt.needs_process
def test_cluster_purge_delete_tx():
    alone = alone_refusals()
    partial = alone_partial_tx()
    assert partial == (406, "PRECONDITION_FAILED - partial tx completion"), partial
    c = Cluster()
    procs = {}
    try:
        c.start()
        check_purge_delete(c, alone)
        check_tx(c, partial)
        check_home_down(c, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_purge_delete_tx])
