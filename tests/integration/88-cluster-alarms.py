"""Clustering (issue 14): resource alarms are cluster-wide, as in RabbitMQ. On three nodes
started by scripts/local-cluster.sh, node 1 with a 2 MB vm_memory_high_watermark: publishing
past it on node 1 sets its memory alarm, and publishers on nodes 2 and 3 get connection.blocked
("low on memory") and are not read (a publish made while blocked does not arrive); nodes 2 and
3 log which node's alarm it is. Once node 1's queue is purged its alarm clears, and the
publishers elsewhere get connection.unblocked, their held publishes arrive. A node that stops
with its alarm on takes the alarm with it. How long the other nodes took to hear of the alarm
and of its end (their log lines' times against node 1's) is logged."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, agreed_leader, wait_for  # noqa: E402

LIMIT = 2 * 1024 * 1024
BODY = b"m" * (100 * 1024)


def publisher(c, i, queue, events):
    """A connection on node i that has published once to queue (its own node's), its blocked
    and unblocked notifications appended to events."""
    conn = wt.pika_connect(c.amqp(i))
    conn.add_on_connection_blocked_callback(
        lambda _c, frame: events.append(("blocked", frame.method.reason)))
    conn.add_on_connection_unblocked_callback(
        lambda _c, frame: events.append(("unblocked",)))
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"before")
    return conn, ch


def log_time(c, i, text):
    """When node i's log first has a line containing text (its timestamp, in s)."""
    import datetime
    for line in c.log_text(i).splitlines():
        if text in line:
            t = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
            return t.timestamp()
    raise AssertionError("node %d never logged %r" % (i, text))


def ready(c, i, queue):
    conn = wt.pika_connect(c.amqp(i))
    n = conn.channel().queue_declare(queue, passive=True).method.message_count
    conn.close()
    return n


def set_alarm(c):
    """Fills node 1's queue q1 past the watermark; returns its publisher."""
    pub = wt.pika_connect(c.amqp(1))
    ch = pub.channel()
    ch.queue_declare("q1")
    for _ in range(30):  # 3 MB: the alarm goes off on the way
        ch.basic_publish("", "q1", BODY)
    wait_for("node 1's memory alarm", lambda: "memory alarm set" in c.log_text(1), 10)
    return pub


def check_blocked_elsewhere(c):
    events = {2: [], 3: []}
    pubs = {i: publisher(c, i, "q%d" % i, events[i]) for i in (2, 3)}
    pub1 = set_alarm(c)
    for i in (2, 3):
        conn = pubs[i][0]
        wt.wait_until(lambda: events[i], 5, "connection.blocked on node %d" % i, conns=[conn])
        assert events[i][0] == ("blocked", "low on memory"), events[i]
        pubs[i][1].basic_publish("", "q%d" % i, b"held")  # held in the socket
    for i in (2, 3):
        wt.log("  node %d heard of node 1's alarm %.0f ms after node 1 logged it" % (
            i, (log_time(c, i, "memory resource limit alarm set on node warren1@localhost") -
                log_time(c, 1, "memory alarm set")) * 1000))
        pubs[i][0].process_data_events(0.5)
        assert ready(c, i, "q%d" % i) == 1, "a blocked connection's publish arrived"
    other = wt.pika_connect(c.amqp(1))  # never published: not blocked
    other.channel().queue_purge("q1")
    other.close()
    for i in (2, 3):
        conn = pubs[i][0]
        wt.wait_until(lambda: any(e[0] == "unblocked" for e in events[i]), 5,
                      "connection.unblocked on node %d" % i, conns=[conn])
        wait_for("the held publish on node %d" % i, lambda: ready(c, i, "q%d" % i) == 2, 5)
        wt.log("  node %d heard node 1's alarm cleared %.0f ms after node 1 logged it" % (
            i, (log_time(c, i, "memory resource limit alarm cleared on node warren1@localhost") -
                log_time(c, 1, "memory alarm cleared")) * 1000))
    pub1.close()
    return pubs, events


def check_node_gone(c, procs, pubs, events):
    """Node 1 stopped with its alarm on: the publishers elsewhere are unblocked."""
    set_alarm(c)
    for i in (2, 3):
        wt.wait_until(lambda: [e for e in events[i] if e[0] == "blocked"][1:], 5,
                      "connection.blocked again on node %d" % i, conns=[pubs[i][0]])
    c.stop_node(1, procs.pop(1, None))
    for i in (2, 3):
        wt.wait_until(lambda: [e for e in events[i] if e[0] == "unblocked"][1:], 10,
                      "connection.unblocked on node %d with node 1 gone" % i,
                      conns=[pubs[i][0]])
    procs[1] = c.start_node(1)
    wait_for("node 1 back", lambda: c.running(1) and len(c.running(1)) == NODES, 20)


@wt.needs_process
def test_cluster_alarms():
    c = Cluster()
    procs = {}
    try:
        rc, out = c.script("start", NODES, c.dir, c.base)
        assert rc == 0, out
        c.stop_node(1)
        with open(c.conf(1), "a") as f:
            f.write("vm_memory_high_watermark.absolute = %d\n" % LIMIT)
        procs[1] = c.start_node(1)
        wait_for("leader known to all", lambda: agreed_leader(c, range(1, 4)), 20)
        wait_for("node 1 back", lambda: c.running(1) and len(c.running(1)) == NODES, 20)
        wait_for("the default user on every node", c.has_defaults, 10)
        pubs, events = check_blocked_elsewhere(c)
        check_node_gone(c, procs, pubs, events)
        for conn, _ in pubs.values():
            conn.close()
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_alarms])
