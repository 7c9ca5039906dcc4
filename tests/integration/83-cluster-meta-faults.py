"""Faults under load for the cluster's metadata (issue 14), in the spirit of Jepsen's checkers:
three nodes (scripts/local-cluster.sh), a client on every node adding users through that
node's HTTP API as fast as it is answered, while the metadata group's leader is killed
(kill -9) at random moments and started again, WARREN_FAULT_CYCLES times (3 here; `make
check-cluster-faults` runs 100). Every request's outcome is logged: acknowledged (201), refused
(503: no leader, or may or may not have been made), or unknown (the node died under it).
Afterwards every node must hold every acknowledged user, nothing that was never asked for, and
the same users as the others."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import warren_test as wt  # noqa: E402

CYCLES = int(os.environ.get("WARREN_FAULT_CYCLES", "3"))


class Writer(threading.Thread):
    """Adds users u<node>-<n> on one node's HTTP API until stopped, logging each outcome."""

    def __init__(self, c, node):
        super().__init__(daemon=True)
        self.c, self.node = c, node
        self.acked, self.maybe, self.asked = [], [], []
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            name = "u%d-%d" % (self.node, n)
            try:
                status, _, _ = wt.http(self.c.api(self.node), "PUT", "/api/users/" + name,
                                       {"password": "p", "tags": ""}, timeout=15)
            except ConnectionRefusedError:
                time.sleep(0.1)  # the node is down: nothing was sent
                continue
            except OSError:
                status = None  # the node died with the request in flight
            self.asked.append(name)
            n += 1
            if status == 201:
                self.acked.append(name)
            else:
                assert status in (None, 503), (name, status)
                self.maybe.append(name)
                time.sleep(0.05)


def users(c, i):
    status, _, body = wt.http(c.api(i), "GET", "/api/users", timeout=30)
    assert status == 200, (i, status, body)
    return {u["name"] for u in body}


@wt.needs_process
def test_leader_killed_under_changes():
    c = ch.Cluster()
    every = range(1, ch.NODES + 1)
    procs = {}
    writers = []
    try:
        rc, out = c.script("start", ch.NODES, c.dir, c.base)
        assert rc == 0, out
        ch.wait_for("the defaults on every node", c.has_defaults, 15)
        writers = [Writer(c, i) for i in every]
        for w in writers:
            w.start()
        leader, term = ch.wait_for("a leader", lambda: ch.agreed_leader(c, every), 10)
        failovers = []
        for cycle in range(CYCLES):
            time.sleep(random.uniform(0.3, 2.0))
            li = ch.names().index(leader) + 1
            t0 = time.monotonic()
            os.kill(c.pid(li), 9)
            if li in procs:
                procs.pop(li).wait(10)
            others = [i for i in every if i != li]
            leader, term = ch.wait_for("a new leader", lambda: ch.agreed_leader(c, others, term),
                                       20)
            failovers.append(time.monotonic() - t0)
            procs[li] = c.start_node(li)
            ch.wait_for("node %d back" % li, lambda: c.leader(li) == (leader, term), 30)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(30)
            assert not w.is_alive(), "a writer is stuck"
        acked = set().union(*(w.acked for w in writers))
        asked = set().union(*(w.asked for w in writers))
        maybe = set().union(*(w.maybe for w in writers))
        wt.log("  %d cycles: leader back within %.1f-%.1f s; %d users asked, %d acknowledged, "
               "%d refused or unknown" % (CYCLES, min(failovers), max(failovers), len(asked),
                                          len(acked), len(maybe)))
        assert len(acked) > 0, "no change acknowledged"

        def converged():
            seen = [users(c, i) for i in every]
            return seen if all(s == seen[0] for s in seen) else None
        seen = ch.wait_for("every node holding the same users", converged, 20)[0]
        lost = acked - seen
        assert not lost, "acknowledged users lost: %s" % sorted(lost)[:20]
        phantom = seen - asked - {"guest"}
        assert not phantom, "users nobody asked for: %s" % sorted(phantom)[:20]
        wt.log("  every node holds the %d acknowledged users and %d of the %d others" % (
            len(acked), len(seen & maybe), len(maybe)))
    except BaseException:
        for w in writers:
            w.stop.set()
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_leader_killed_under_changes], timeout=max(120, CYCLES * 30))
