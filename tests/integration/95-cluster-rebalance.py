"""Rebalancing replicated queues' leaders (issue 14), three nodes: six queues with messages,
a node stopped and started again (it leads none of them then), then `warrenctl rebalance
quorum` (POST /api/rebalance/queues, as rabbitmq-queues rebalance does): each node leads two,
as warrenctl prints and the API says, and every queue still has its messages."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402

QUEUES = ["qr%d" % k for k in range(6)]


def leaders(c, asked):
    """{node name: replicated queues it leads}, as node asked's API says."""
    status, _, qs = wt.http(c.api(asked), "GET", "/api/queues", timeout=5)
    assert status == 200, status
    out = {}
    for q in qs:
        if q["name"] in QUEUES:
            out[q["leader"]] = out.get(q["leader"], 0) + 1
    return out


def check_rebalance(c, procs):
    import pika
    conn = qc.connect(c, 1)
    chan = conn.channel()
    chan.confirm_delivery()
    for name in QUEUES:
        chan.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        for k in range(5):
            chan.basic_publish("", name, b"%s-%d" % (name.encode(), k),
                               pika.BasicProperties(delivery_mode=2))
    conn.close()
    # Node 3 stopped cleanly hands what it leads over; started again, it leads nothing.
    c.stop_node(3)
    procs[3] = c.start_node(3)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)
    ch.wait_for("node 3 leading none", lambda: ch.names()[2] not in leaders(c, 1) and
                sum(leaders(c, 1).values()) == len(QUEUES), 20)
    wt.log("  before: %s" % leaders(c, 1))

    rc, out, err = wt.warrenctl("--config", c.conf(2), "rebalance", "quorum",
                                "--formatter", "json")
    assert rc == 0 and err == "", (rc, out, err)
    rows = json.loads(out)
    wt.log("  warrenctl rebalance: %s" % rows)
    assert sorted((r["Node name"], r["Number of quorum queues"]) for r in rows) == \
        [(n, 2) for n in ch.names()], rows
    assert ch.wait_for("the API to agree", lambda: leaders(c, 3) == {n: 2 for n in ch.names()},
                       10)

    rc, out, err = wt.warrenctl("--config", c.conf(1), "rebalance", "mirrors")
    assert rc == 64 and "all, quorum or classic" in err, (rc, out, err)

    for i, name in enumerate(QUEUES):
        conn = qc.connect(c, 1 + i % 3)
        chan = conn.channel()
        got = []
        while True:
            m, _, body = chan.basic_get(name, auto_ack=True)
            if m is None:
                break
            got.append(body)
        assert got == [b"%s-%d" % (name.encode(), k) for k in range(5)], (name, got)
        chan.queue_delete(name)
        conn.close()


@wt.needs_process
def test_rebalance():
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        ch.wait_for("every node running", lambda: qc.all_running(c), 20)
        check_rebalance(c, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_rebalance], timeout=180)
