"""Durability of the task-queue extensions under kill -9: a durable work queue whose messages
expire (per-message expiration), are rejected past its delivery limit and are acked, all
dead-lettered into a durable dead-letter queue, while the broker is killed at a random
moment. After the restart, and once what is left has expired, every confirmed message is
accounted for: acked before the crash, still in the work queue, or dead-lettered, and
nothing is dead-lettered twice (the copy and the original's removal are one store write).
An ack sent just before the kill may be lost (it is written with the next batch): such a
message comes back, counted here, and like everything back after a kill -9 it is flagged
redelivered (test 50), so a consumer is told it may have seen it.

The kill moments come from a seed printed in the log: WT54_SEED=<seed> reruns the same
schedule. Names start with wt54-."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

WORK, DEAD = "wt54-work", "wt54-dead"
N = 3000


def declare(ch):
    ch.queue_declare(DEAD, durable=True)
    ch.queue_declare(WORK, durable=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": DEAD,
        "x-delivery-limit": 1})


def publish_all(addr):
    """Publishes N persistent messages with confirms: every third expires after 200 ms.
    Returns the ids confirmed."""
    conn = wt.pika_connect(addr)
    ch = wt.confirm_channel(conn)
    declare(ch)
    for i in range(N):
        props = pika.BasicProperties(delivery_mode=2,
                                     expiration="200" if i % 3 == 2 else None)
        ch.basic_publish("", WORK, b"%d" % i, props)
    conn.close()
    return set(range(N))


def consume_until_killed(addr, acked, stop):
    """basic.get over the work queue: ids = 0 mod 3 are nacked with requeue (twice: past the
    delivery limit of 1, dead-lettered), the others acked; records the acks sent."""
    try:
        conn = wt.pika_connect(addr)
        ch = conn.channel()
        while not stop.is_set():
            m, _, body = ch.basic_get(WORK)
            if m is None:
                time.sleep(0.01)
                continue
            i = int(body)
            if i % 3 == 0:
                ch.basic_nack(m.delivery_tag, requeue=True)
            else:
                acked.add(i)
                ch.basic_ack(m.delivery_tag)
    except Exception:
        pass  # the broker was killed under it


def drain(addr, queue):
    """Every message of queue, acked: [(id, redelivered)]."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    got = []
    while True:
        m, _, body = ch.basic_get(queue)
        if m is None:
            break
        got.append((int(body), m.redelivered))
        ch.basic_ack(m.delivery_tag)
    conn.close()
    return got


@wt.needs_process
def test_kill_while_dying():
    """kill -9 while messages expire, hit their delivery limit and are acked: after the
    restart nothing confirmed is lost, nothing is dead-lettered twice, and what is back in the
    work queue is flagged redelivered"""
    seed = int(os.environ.get("WT54_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    wt.log("  seed %d" % seed)
    with wt.server() as srv:
        for round_ in range(3):
            confirmed = publish_all(srv.addr)
            acked, stop = set(), threading.Event()
            t = threading.Thread(target=consume_until_killed, args=(srv.addr, acked, stop))
            t.start()
            time.sleep(rng.uniform(0.05, 0.6))
            srv.restart(hard=True)
            stop.set()
            t.join(10)
            # What is left in the work queue expires (every third id) or is taken here.
            time.sleep(0.4)
            left = drain(srv.addr, WORK)
            dead = drain(srv.addr, DEAD)
            dead_ids = [i for i, _ in dead]
            assert len(dead_ids) == len(set(dead_ids)), "dead-lettered twice: %r" % sorted(
                i for i in set(dead_ids) if dead_ids.count(i) > 1)
            left_ids = {i for i, _ in left}
            assert not left_ids & set(dead_ids), "both dead-lettered and still in the queue: %r" % (
                sorted(left_ids & set(dead_ids))[:10],)
            lost = confirmed - acked - left_ids - set(dead_ids)
            assert not lost, "lost %d confirmed messages, e.g. %r" % (len(lost), sorted(lost)[:10])
            unflagged = [i for i, redelivered in left if not redelivered]
            assert not unflagged, "back after kill -9 without redelivered: %r" % unflagged[:10]
            back = [i for i, _ in left if i in acked]
            wt.log("  round %d: %d acked before the kill (%d of them back), %d left, "
                   "%d dead-lettered" % (round_, len(acked), len(back), len(left), len(dead_ids)))


if __name__ == "__main__":
    wt.run([test_kill_while_dying])
