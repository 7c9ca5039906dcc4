"""A partition of the cluster (issue 14): three nodes, each in its own network namespace on a
bridge (tests/integration/netns.py), with their default ports (AMQP 5672, cluster 25672) on
addresses of their own. The metadata group's leader is cut off: the two others elect a leader
among themselves within seconds, each side shows the other side's nodes down, and once the
link is back the cut-off node follows the new leader (no second leader: one leader per term,
and every node agrees who leads) and every node shows all three running.
/api/health/checks/node-is-quorum-critical fails on every node while one is cut off."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import netns  # noqa: E402
import warren_test as wt  # noqa: E402
from netns_cluster import NODES, Nodes  # noqa: E402


@wt.needs_process
def test_leader_cut_off():
    with netns.Net(NODES) as net:
        nodes = Nodes(net)
        try:
            for i in range(1, NODES + 1):
                nodes.start(i)
            every = range(1, NODES + 1)
            ch.wait_for("all running everywhere",
                     lambda: all(nodes.running(i) == nodes.names() for i in every), 30)
            leader, term = ch.wait_for("a leader", lambda: ch.agreed_leader(nodes, every), 10)
            li = nodes.names().index(leader) + 1
            others = [i for i in every if i != li]
            for i in every:  # any one of three may stop
                assert nodes.quorum_critical(i) == (200, {"status": "ok"}), i
            for i in every:
                m = nodes.metrics(i)
                assert m['warren_cluster_nodes{state="running"}'] == 3, m
                assert m['warren_cluster_nodes{state="down"}'] == 0, m
                assert m["warren_cluster_metadata_leader"] == (i == li), (i, m)
                assert m["warren_cluster_metadata_term_total"] == term, m
                assert m["warren_cluster_metadata_commit_index"] >= 2, m
            wt.log("  leader %s (term %d): cutting it off" % (leader, term))

            t0 = time.monotonic()
            net.isolate(li)
            leader2, term2 = ch.wait_for("a leader of the majority",
                                      lambda: ch.agreed_leader(nodes, others, term), 20)
            wt.log("  %s leads the majority in term %d, %.1f s after the cut" % (
                leader2, term2, time.monotonic() - t0))
            assert leader2 != leader
            ch.wait_for("the cut-off node alone", lambda: nodes.running(li) == [leader], 10)
            for i in others:
                ch.wait_for("node %d without the cut-off node" % i,
                         lambda: nodes.running(i) == [nodes.name(j) for j in others], 10)
            # the cut-off node never saw a leader of a later term on its side
            assert nodes.leader(li) == (leader, term), nodes.leader(li)
            for i in others:
                m = nodes.metrics(i)
                assert m['warren_cluster_nodes{state="running"}'] == 2, m
                assert m['warren_cluster_nodes{state="down"}'] == 1, m
                assert m["warren_cluster_metadata_term_total"] == term2, m
            # each of the two left is now critical (and so is the node alone)
            for i in every:
                status, body = nodes.quorum_critical(i)
                assert status == 503 and body["status"] == "failed" and body["queues"] == [], (
                    i, status, body)

            net.heal(li)
            t0 = time.monotonic()
            ch.wait_for("the cut-off node following the new leader",
                     lambda: nodes.leader(li) == (leader2, term2), 20)
            ch.wait_for("all running everywhere again",
                     lambda: all(nodes.running(i) == nodes.names() for i in every), 20)
            wt.log("  healed: all three agree again %.1f s after the link came back" % (
                time.monotonic() - t0))
            for i in every:
                assert nodes.quorum_critical(i) == (200, {"status": "ok"}), i
            # one leader per term on every node's log: no term had two
            for i in every:
                per_term = {}
                for name, t in ch.LEADER_LINE.findall(nodes.log_text(i)):
                    assert per_term.setdefault(t, name) == name, (i, t, per_term[t], name)
            nodes.stop_all()
        except BaseException:
            nodes.kill_all()
            nodes.dump()
            raise
        nodes.finish()


if __name__ == "__main__":
    wt.run([test_leader_cut_off])
