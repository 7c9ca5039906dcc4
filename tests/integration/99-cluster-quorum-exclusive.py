"""Exclusive replicated queues (issue 14), three nodes: RabbitMQ refuses exclusive quorum
queues; Warren keeps them. An exclusive queue belongs to its declaring connection wherever its
leader is: it survives the loss of its leader's node while its owner lives, and goes with its
owner (its connection closing, or its node dying), as a classic exclusive queue does.
- qx, declared exclusive by a connection on node 1: another connection (on node 2) may publish
  to it but not consume from it nor declare it (405 RESOURCE_LOCKED);
- node 1 is removed from its members and added again: its leader is on another node, and the
  owner's consumer on node 1 goes on getting its messages from there (those not acked again,
  redelivered);
- that leader's node killed: the next leader serves the owner's consumer every message not
  acked (redelivered), and more publishes;
- the owner's connection closes: qx is gone on every node, and its members' logs with it;
- qy, exclusive to a connection on node 3, goes when node 3 is killed."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402

EXCLUSIVE_QUORUM = {"x-queue-type": "quorum"}


def publish(c, node, first, n):
    import pika
    conn = qc.connect(c, node)
    chan = conn.channel()
    chan.confirm_delivery()
    for k in range(first, first + n):
        chan.basic_publish("", "qx", b"x%d" % k, pika.BasicProperties(delivery_mode=2))
    conn.close()


def take(conn, got, since, bodies):
    """Waits until the owner's consumer (conn's) got every one of bodies since got[since]."""
    deadline = time.monotonic() + 30
    while not set(bodies) <= {b for b, _, _ in got[since:]}:
        assert time.monotonic() < deadline, (set(bodies) - {b for b, _, _ in got[since:]})
        conn.process_data_events(time_limit=0.2)


def bodies(first, end):
    return [b"x%d" % k for k in range(first, end)]


def logs_of(c, i):
    return [d for d in os.listdir(os.path.join(c.dir, "node%d" % i, "data", "cluster"))
            if d.startswith("q")]


def check_exclusive(c, procs):
    names = ch.names()
    owner = qc.connect(c, 1)
    chan = owner.channel()
    chan.queue_declare("qx", durable=True, exclusive=True, arguments=EXCLUSIVE_QUORUM)
    status, q = c.queue(2, "qx")
    assert status == 200 and q["exclusive"] and len(q["members"]) == 3, q

    other = qc.connect(c, 2)
    code, _ = ch.refused(lambda: other.channel().basic_consume("qx", lambda *a: None))
    assert code == 405, code
    code, _ = ch.refused(lambda: other.channel().queue_declare(
        "qx", durable=True, exclusive=True, arguments=EXCLUSIVE_QUORUM))
    assert code == 405, code
    other.close()
    publish(c, 2, 0, 50)

    got = []
    chan.basic_qos(prefetch_count=100)

    def on_message(ch_, method, props, body):
        got.append((body, method.redelivered, method.delivery_tag))
    chan.basic_consume("qx", on_message)
    take(owner, got, 0, bodies(0, 50))
    assert [b for b, _, _ in got] == bodies(0, 50)
    for body, _, tag in got[:20]:
        chan.basic_ack(tag)

    # Its leader moves off the owner's node, which stays a member: the owner consumes there
    # (what it had not acked comes again from the next leader, redelivered).
    for cmd in ("delete_member", "add_member"):
        rc, out, err = wt.warrenctl("--config", c.conf(2), cmd, "qx", names[0])
        assert rc == 0, (cmd, rc, out, err)
    leader = names.index(c.queue(2, "qx")[1]["leader"]) + 1
    assert leader != 1, leader
    since = len(got)
    publish(c, 3, 50, 10)
    take(owner, got, since, bodies(50, 60))
    assert [b for b, r, _ in got[since:] if not r] == bodies(50, 60), got[since:]
    assert {b for b, r, _ in got[since:] if r} <= set(bodies(20, 50)), got[since:]

    # The leader's node dies: the owner lives, so does its queue. Nothing more was acked: the
    # 40 messages since the 20 acked come again, redelivered.
    c.kill_node(leader)
    procs.pop(leader, None)
    asked = 5 - leader  # the other of nodes 2 and 3
    ch.wait_for("a new leader", lambda: (c.queue(asked, "qx")[1] or {}).get("leader") in
                (names[0], names[asked - 1]), 20)
    since = len(got)
    take(owner, got, since, bodies(20, 60))
    assert all(r and b in bodies(20, 60) for b, r, _ in got[since:]), got[since:]
    since = len(got)
    publish(c, asked, 60, 5)
    take(owner, got, since, bodies(60, 65))
    assert [b for b, r, _ in got[since:] if not r] == bodies(60, 65), got[since:]
    procs[leader] = c.start_node(leader)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)

    # Its owner goes: so does the queue, everywhere, members' logs too.
    owner.close()
    for i in (1, 2, 3):
        ch.wait_for("qx gone on node %d" % i, lambda: c.queue(i, "qx")[0] == 404, 10)
        ch.wait_for("qx's log gone on node %d" % i, lambda: not logs_of(c, i), 10)

    # An exclusive queue goes with its owner's node.
    owner = qc.connect(c, 3)
    owner.channel().queue_declare("qy", durable=True, exclusive=True,
                                  arguments=EXCLUSIVE_QUORUM)
    c.kill_node(3)
    procs.pop(3, None)
    for i in (1, 2):
        ch.wait_for("qy gone on node %d with node 3" % i, lambda: c.queue(i, "qy")[0] == 404,
                    15)
    procs[3] = c.start_node(3)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)
    ch.wait_for("qy gone on node 3 once it runs again", lambda: c.queue(3, "qy")[0] == 404,
                10)


@wt.needs_process
def test_exclusive():
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        ch.wait_for("every node running", lambda: qc.all_running(c), 20)
        check_exclusive(c, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_exclusive], timeout=240)
