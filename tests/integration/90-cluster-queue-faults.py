"""Faults under load for a queue used from every node (issue 14), in the spirit of Jepsen's
queue checker: three nodes (scripts/local-cluster.sh), a durable queue that lives on node 1, a
pika publisher on every node publishing persistent messages with confirms and a pika consumer
on every node (prefetch 50, manual acks), while a random node is killed (kill -9) at random
moments and started again, WARREN_FAULT_CYCLES times (3 here; `make check-cluster-faults`
runs 100). Clients reconnect to their node once it runs again, and consumers consume again
when cancelled (their queue's node died). Every publish, confirm and delivery is logged;
afterwards, with the queue drained, the checker (queue_checker.py) proves that every confirmed
message was delivered at least once, nothing that was never published was, a message delivered
again carries redelivered, and each consumer got each publisher's messages, first deliveries,
in the order they were published."""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402

CYCLES = int(os.environ.get("WARREN_FAULT_CYCLES", "3"))
QUEUE = "jq"
HOME = 1


def ready(c):
    """The queue's messages (ready and unacked) on its node, or None while it does not say."""
    status, _, body = wt.http(c.api(HOME), "GET", "/api/queues/%2F/" + QUEUE, timeout=5)
    return body["messages"] if status == 200 else None


@wt.needs_process
def test_queue_faults():
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        conn = qc.connect(c, HOME)
        conn.channel().queue_declare(QUEUE, durable=True)
        conn.close()
        qc.fault_run(c, procs, QUEUE, CYCLES, lambda: random.randint(1, ch.NODES),
                     lambda: ready(c))
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_queue_faults], timeout=max(120, CYCLES * 15))
