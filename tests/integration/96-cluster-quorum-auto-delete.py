"""Auto-delete replicated queues (issue 14), which RabbitMQ's quorum queues refuse, on three
nodes with pika: one goes, with its Raft logs on every node, when its last consumer (on another
node than its leader) cancels, and when its last consumer's node dies; one whose consumers
are all gone with its leader's node stays, served by the next leader, with its messages, until
a consumer comes and goes (no consumer cancelled there). Exclusive and non-durable
replicated queues are refused, with RabbitMQ's texts."""

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402

QUORUM = {"x-queue-type": "quorum"}


def queue(c, i, name):
    """(status, body) of GET /api/queues/%2F/name on node i."""
    status, _, q = wt.http(c.api(i), "GET", "/api/queues/%2F/" + name, timeout=5)
    return status, q


def gone_everywhere(c, name, nodes):
    """The queue is unknown to every node of nodes, and no Raft log is left there."""
    return all(queue(c, i, name)[0] == 404 for i in nodes) and not any(
        glob.glob(os.path.join(c.dir, "node%d" % i, "data", "cluster", "q*")) for i in nodes)


def leader(c, name):
    return ch.names().index(queue(c, 1, name)[1]["leader"]) + 1


def declare(c, name):
    conn = qc.connect(c, 1)
    conn.channel().queue_declare(name, durable=True, auto_delete=True, arguments=QUORUM)
    conn.close()


def consume_from(c, i, name):
    conn = qc.connect(c, i)
    chan = conn.channel()
    tag = chan.basic_consume(name, lambda *a: None)
    conn.process_data_events(0.3)
    return conn, chan, tag


def check_cancel_and_node_death(c, procs):
    every = list(range(1, ch.NODES + 1))
    declare(c, "qa")
    h = leader(c, "qa")
    other = next(i for i in every if i != h)
    conn, chan, tag = consume_from(c, other, "qa")
    assert queue(c, h, "qa")[1]["consumers"] == 1
    chan.basic_cancel(tag)
    ch.wait_for("qa gone with its last consumer", lambda: gone_everywhere(c, "qa", every), 15)
    conn.close()

    declare(c, "qd")
    h = leader(c, "qd")
    other = next(i for i in every if i != h)
    consume_from(c, other, "qd")
    c.kill_node(other)
    procs.pop(other, None)
    alive = [i for i in every if i != other]
    ch.wait_for("qd gone with its last consumer's node", lambda: gone_everywhere(c, "qd", alive),
                15)
    procs[other] = c.start_node(other)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)
    ch.wait_for("qd's logs gone on that node too", lambda: gone_everywhere(c, "qd", every), 15)


def check_leader_death(c, procs):
    import pika
    every = list(range(1, ch.NODES + 1))
    declare(c, "qk")
    h = leader(c, "qk")
    conn = qc.connect(c, h)
    chan = conn.channel()
    chan.confirm_delivery()
    for k in range(5):
        chan.basic_publish("", "qk", b"k%d" % k, pika.BasicProperties(delivery_mode=2))
    held = []
    chan.basic_consume("qk", lambda ch_, m, p, b: held.append(b))  # holds all five, unacked
    ch.wait_for("qk's messages held", lambda: conn.process_data_events(0.1) or len(held) == 5,
                10)
    conn.process_data_events(0.3)  # (the deliveries committed)
    c.kill_node(h)
    procs.pop(h, None)
    alive = [i for i in every if i != h]
    ch.wait_for("qk served by another node", lambda: all(
        queue(c, i, "qk")[0] == 200 and queue(c, i, "qk")[1]["leader"] != ch.names()[h - 1]
        for i in alive), 20)
    conn = qc.connect(c, alive[0])
    chan = conn.channel()
    got = []
    tag = chan.basic_consume("qk", lambda ch_, m, p, b: got.append((b, m.redelivered)),
                             auto_ack=True)
    ch.wait_for("qk's messages", lambda: conn.process_data_events(0.1) or len(got) == 5, 15)
    assert got == [(b"k%d" % k, True) for k in range(5)], got
    chan.basic_cancel(tag)
    conn.close()
    ch.wait_for("qk gone once a consumer came and went", lambda: gone_everywhere(c, "qk", alive),
                15)
    procs[h] = c.start_node(h)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)


def check_refusals(c):
    conn = qc.connect(c, 1)
    code, text = ch.refused(lambda: conn.channel().queue_declare("qr", arguments=QUORUM,
                                                                 durable=False))
    assert code == 406 and text == ("PRECONDITION_FAILED - invalid property 'non-durable' for "
                                    "queue 'qr' in vhost '/'"), (code, text)
    conn.close()


@wt.needs_process
def test_auto_delete():
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        ch.wait_for("every node running", lambda: qc.all_running(c), 20)
        check_cancel_and_node_death(c, procs)
        check_leader_death(c, procs)
        check_refusals(c)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_auto_delete], timeout=240)
