"""A partition that cuts off a replicated queue's leader (issue 14): three nodes, each in its own
network namespace (netns_cluster.py), a queue declared with x-queue-type quorum. A publisher
inside the leader's namespace publishes with confirms the whole time; the leader is cut off
(its link down). The majority elects another leader, which serves the queue: a publisher on the
majority side is confirmed. The cut-off side stops confirming: what its publisher hears is a
nack or nothing, never an ack for a message that cannot reach a majority. Once the link is back,
every node agrees on one leader, and the queue holds every message ever confirmed, on either
side (published once each: none twice unless redelivered)."""

import os
import subprocess
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import netns  # noqa: E402
import warren_test as wt  # noqa: E402
from netns_cluster import NODES, Nodes  # noqa: E402

# Publishes one message at a time with confirms to the node of its namespace, until its stdin
# closes: prints each as "ack N", "nack N" or "lost N" (the connection went with it in flight).
PUBLISHER = r"""
import select, sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, blocked_connection_timeout=60))
ch = c.channel()
ch.confirm_delivery()
n = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    body = "cut-%d" % n
    try:
        ch.basic_publish("", "pq", body.encode(), pika.BasicProperties(delivery_mode=2))
        print("ack", body, flush=True)
    except pika.exceptions.NackError:
        print("nack", body, flush=True)
    except Exception:
        print("lost", body, flush=True)
        break
    n += 1
"""


def api(nodes, i, path):
    status, _, body = wt.http(types.SimpleNamespace(data_dir=nodes.path(i, "data")), "GET", path,
                              unix=True, timeout=5)
    return body if status == 200 else None


def leader_of(nodes, i):
    q = api(nodes, i, "/api/queues/%2F/pq")
    return nodes.names().index(q["leader"]) + 1 if q is not None else None


def publish(addr, bodies):
    import pika
    conn = wt.pika_connect((addr, 5672))
    chan = conn.channel()
    chan.confirm_delivery()
    for b in bodies:
        chan.basic_publish("", "pq", b.encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()


@wt.needs_process
def test_quorum_leader_cut_off():
    with netns.Net(NODES) as net:
        nodes = Nodes(net)
        pub = None
        try:
            for i in range(1, NODES + 1):
                nodes.start(i)
            every = range(1, NODES + 1)
            ch.wait_for("all running everywhere",
                        lambda: all(nodes.running(i) == nodes.names() for i in every), 30)
            ch.wait_for("the default user everywhere", lambda: all(
                api(nodes, i, "/api/users/guest") is not None for i in every), 10)
            conn = wt.pika_connect((net.addr(1), 5672))
            conn.channel().queue_declare("pq", durable=True, arguments={"x-queue-type": "quorum"})
            conn.close()
            ql = leader_of(nodes, 1)
            others = [i for i in every if i != ql]
            publish(net.addr(others[0]), ["before-%d" % k for k in range(50)])

            pub = subprocess.Popen(net.argv(ql, ["/usr/bin/python3", "-c", PUBLISHER]),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            wt.log("  the queue's leader, node %d, cut off" % ql)
            t0 = time.monotonic()
            net.isolate(ql)
            ql2 = ch.wait_for("a leader of the queue on the majority's side", lambda: next(
                (j for j in [leader_of(nodes, others[0])] if j in others), None), 20)
            wt.log("  node %d serves it %.1f s after the cut" % (ql2, time.monotonic() - t0))
            publish(net.addr(others[0]), ["during-%d" % k for k in range(50)])
            time.sleep(3)  # the cut-off side goes on trying
            net.heal(ql)
            ch.wait_for("all running everywhere again",
                        lambda: all(nodes.running(i) == nodes.names() for i in every), 30)
            ch.wait_for("one leader of the queue everywhere",
                        lambda: len({leader_of(nodes, i) for i in every}) == 1, 20)
            pub.stdin.close()
            out = pub.stdout.read().split("\n")
            pub.wait(120)
            said = [line.split() for line in out if line]
            acked = [b for how, b in said if how == "ack"]
            wt.log("  the cut-off side's publisher: %d acks, %d nacks, %d lost" % (
                len(acked), sum(1 for how, _ in said if how == "nack"),
                sum(1 for how, _ in said if how == "lost")))

            confirmed = (["before-%d" % k for k in range(50)] + ["during-%d" % k for k in range(50)]
                         + acked)

            def served():
                # The cut-off node, back with a higher term, may depose the majority's leader
                # (raft 0.15 without pre-vote): the queue is served again after an election.
                h = leader_of(nodes, others[1])
                q = api(nodes, h, "/api/queues/%2F/pq") if h is not None else None
                return q is not None and q["messages"] >= len(confirmed)
            ch.wait_for("the queue served with every confirmed message", served, 30)
            conn = wt.pika_connect((net.addr(others[1]), 5672))
            chan = conn.channel()
            got = []
            while True:
                m, _, body = chan.basic_get("pq", auto_ack=True)
                if m is None:
                    break
                got.append((body.decode(), m.redelivered))
            conn.close()
            bodies = [b for b, _ in got]
            lost = [b for b in confirmed if b not in bodies]
            assert not lost, "confirmed and not in the queue: %s" % lost[:10]
            seen = {}
            for b, redelivered in got:
                assert b not in seen or redelivered, "%s twice, not redelivered" % b
                seen[b] = True
            wt.log("  %d messages in the queue after the heal, every confirmed one among them"
                   % len(got))
            nodes.stop_all()
        except BaseException:
            if pub is not None and pub.poll() is None:
                pub.kill()
            nodes.kill_all()
            nodes.dump()
            raise
        nodes.finish()


if __name__ == "__main__":
    wt.run([test_quorum_leader_cut_off])
