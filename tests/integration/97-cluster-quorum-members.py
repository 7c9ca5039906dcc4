"""Members of a replicated queue added and removed after its declare (issue 14), three nodes,
as rabbitmq-queues add_member, delete_member, grow and shrink, and RabbitMQ 3.12's HTTP API
(/api/queues/quorum/...) do it, while a publisher keeps publishing, each publish confirmed
before the next:
- a queue declared with one member (x-quorum-initial-group-size 1) holds messages, some acked,
  some requeued; node 2 is added over the HTTP API of node 3, which is not a member (the change
  is made by the leader's node), then `warrenctl grow warren3@localhost all` adds node 3;
  the new members get the messages (a snapshot and a fetch, or the log);
- refusals: a member again, a classic queue, a missing queue, no node named;
- `warrenctl delete_member` of the leader's own node: it hands the leadership over first, is
  removed, and deletes its copy (its log directory goes); `warrenctl shrink` removes the
  other node that is not the leader's, killed first, which deletes its copy when it starts
  again; the last member cannot be removed;
- node 1, no longer a member, restarted: it does not open the queue's group again;
- every message is still there, served by the last member through node 1, bodies and
  redelivered flags as they were, and every publish confirmed meanwhile after them, in
  order."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402

MESSAGES = 300
ACKED = 50
REQUEUED = 10


def body(k):
    return b"qm%05d-" % k + bytes([k % 251]) * 500


def queue(c, asked, name="qm"):
    status, _, q = wt.http(c.api(asked), "GET", "/api/queues/%2F/" + name, timeout=5)
    assert status == 200, (status, q)
    return q


def replicas(c, asked, method, node, name="qm"):
    return wt.http(c.api(asked), method, "/api/queues/quorum/%%2F/%s/replicas/%s" %
                   (name, "add" if method == "POST" else "delete"),
                   {"node": node} if node is not None else {}, timeout=40)


def logs(c, i):
    """The replicated queues' log directories of node i."""
    return [d for d in os.listdir(os.path.join(c.dir, "node%d" % i, "data", "cluster"))
            if d.startswith("q")]


def ctl_rows(c, asked, *args):
    rc, out, err = wt.warrenctl("--config", c.conf(asked), *args, "--formatter", "json",
                                timeout=60)
    assert rc == 0, (args, rc, out, err)
    return json.loads(out)


class Publisher(threading.Thread):
    """Publishes late-<n> through node until stopped, each confirmed before the next (a nack,
    while the queue is between two leaders, is published again)."""

    def __init__(self, c, node):
        super().__init__(daemon=True)
        self.c, self.node = c, node
        self.confirmed = self.nacked = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        import pika
        try:
            conn = qc.connect(self.c, self.node)
            chan = conn.channel()
            chan.confirm_delivery()
            while not self.stop.is_set():
                try:
                    chan.basic_publish("", "qm", b"late-%d" % self.confirmed,
                                       pika.BasicProperties(delivery_mode=2))
                    self.confirmed += 1
                except pika.exceptions.NackError:
                    self.nacked += 1
                time.sleep(0.01)
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e


def caught_up(c, i):
    """Node i's copy of qm has every entry committed and every message fetched."""
    q = queue(c, i)
    raft = q.get("raft")
    return raft is not None and raft["messages_to_fetch"] == 0 and \
        raft["last_applied"] >= raft["commit_index"] > 0


def check_members(c, procs):
    import pika
    names = ch.names()
    conn = qc.connect(c, 1)
    chan = conn.channel()
    chan.queue_declare("qm", durable=True, arguments={"x-queue-type": "quorum",
                                                      "x-quorum-initial-group-size": 1})
    chan.queue_declare("classic", durable=True)
    chan.confirm_delivery()
    for k in range(MESSAGES):
        chan.basic_publish("", "qm", body(k), pika.BasicProperties(delivery_mode=2))
    for k in range(ACKED):
        m, _, b = chan.basic_get("qm")
        assert b == body(k), (k, b[:8])
        chan.basic_ack(m.delivery_tag)
    chan.close()
    chan = conn.channel()
    for k in range(ACKED, ACKED + REQUEUED):
        assert chan.basic_get("qm")[2] == body(k)
    chan.close()  # requeued
    conn.close()
    q = queue(c, 1)
    assert q["members"] == [names[0]] and q["leader"] == names[0], q
    assert len(logs(c, 1)) == 1, logs(c, 1)

    publisher = Publisher(c, 1)
    publisher.start()

    # Added over a node that is not a member: the leader's node makes the change.
    started = time.monotonic()
    status, _, answer = replicas(c, 3, "POST", names[1])
    assert status == 204, (status, answer)
    wt.log("  node 2 added in %.2f s" % (time.monotonic() - started))
    assert queue(c, 1)["members"] == names[:2]
    status, _, answer = replicas(c, 3, "POST", names[1])
    assert (status, answer["reason"]) == (503, "%s is already a member" % names[1]), answer
    status, _, answer = replicas(c, 2, "POST", names[2], name="classic")
    assert (status, answer["reason"]) == (503, "Cannot add members to a classic queue"), answer
    status, _, answer = replicas(c, 2, "POST", names[2], name="missing")
    assert status == 404, (status, answer)
    status, _, answer = replicas(c, 2, "POST", None)
    assert status == 400, (status, answer)

    rows = ctl_rows(c, 2, "grow", names[2], "all")
    assert rows == [{"vhost": "/", "name": "qm", "size": 3, "result": "ok"}], rows
    assert ctl_rows(c, 2, "grow", names[2], "all") == []  # a member already: nothing to do
    for i in (2, 3):
        ch.wait_for("node %d's copy caught up" % i, lambda: caught_up(c, i), 30)
    assert all(queue(c, i)["members"] == names for i in (1, 2, 3))

    # The leader's own node removed: it hands the leadership over first.
    rc, out, err = wt.warrenctl("--config", c.conf(3), "delete_member", "qm", names[0])
    assert rc == 0, (rc, out, err)
    assert "queue 'qm' in vhost '/': no longer a member here, its copy deleted" in \
        c.log_text(1)
    ch.wait_for("node 1's log of the queue deleted", lambda: not logs(c, 1), 10)
    q = queue(c, 1)
    assert q["leader"] in names[1:] and "members" not in q, q
    lead = names.index(q["leader"]) + 1
    other = 5 - lead  # the other member: node 2 or 3
    assert queue(c, lead)["members"] == names[1:]

    # A member down removed (the other: the leader's with it would be a majority down, and
    # no change can be made then): it deletes its copy when it starts again.
    c.kill_node(other)
    procs.pop(other, None)
    rows = ctl_rows(c, 1, "shrink", names[other - 1])
    assert rows == [{"vhost": "/", "name": "qm", "size": 1, "result": "ok"}], rows
    assert logs(c, other)
    procs[other] = c.start_node(other)
    ch.wait_for("node %d's log of the queue deleted at its start" % other,
                lambda: not logs(c, other), 30)
    rows = ctl_rows(c, 1, "shrink", names[lead - 1])
    assert rows == [{"vhost": "/", "name": "qm", "size": 1,
                     "result": "error: the last member cannot be removed"}], rows
    status, _, answer = replicas(c, 1, "DELETE", names[other - 1])
    assert (status, answer["reason"]) == (503, "%s is not a member" % names[other - 1]), answer
    assert queue(c, lead)["members"] == [names[lead - 1]]

    publisher.stop.set()
    publisher.join(10)
    assert publisher.error is None, publisher.error
    wt.log("  %d publishes confirmed during the changes (%d nacked, published again)" %
           (publisher.confirmed, publisher.nacked))
    assert publisher.confirmed > 0

    # No longer a member: restarted, node 1 leaves the queue's group alone.
    c.stop_node(1)
    procs[1] = c.start_node(1)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)
    assert not logs(c, 1)

    conn = ch.wait_for("a connection to node 1", lambda: qc.connect(c, 1), 10)
    chan = conn.channel()
    got = []
    while True:
        m, _, b = chan.basic_get("qm")
        if m is None:
            break
        got.append((b, m.redelivered))
        chan.basic_ack(m.delivery_tag)
    chan.queue_delete("classic")
    conn.close()
    want = [(body(k), k < ACKED + REQUEUED) for k in range(ACKED, MESSAGES)]
    assert got[:len(want)] == want, [(b[:8], r) for b, r in got[:5]]
    late = [b for b, _ in got[len(want):]]
    assert late == [b"late-%d" % k for k in range(publisher.confirmed)], \
        (len(late), publisher.confirmed, late[-3:])


@wt.needs_process
def test_members():
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        ch.wait_for("every node running", lambda: qc.all_running(c), 20)
        check_members(c, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_members], timeout=240)
