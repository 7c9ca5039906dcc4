#!/usr/bin/python3
"""pika, RabbitMQ tutorial 2 (work queues) against a broker at HOST:PORT (default
127.0.0.1:5672): a durable queue, 20 persistent tasks, two workers on two connections with
prefetch 1 acking after "work" (one takes 0.1 s a task, the other none). Every task is done
exactly once, the fast worker does more, nothing is left. Prints one line per step; the
output is the same for RabbitMQ 3.10 and Warren. Exit 0 when every step behaved.

    /usr/bin/python3 interop/pika/work_queue.py 127.0.0.1:5682
"""

import sys
import time

import pika

QUEUE = "interop-pika-tasks"


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5672").rpartition(":")
    params = pika.ConnectionParameters(host=host or "127.0.0.1", port=int(port),
                                       connection_attempts=1, socket_timeout=5,
                                       stack_timeout=10, blocked_connection_timeout=10)
    producer = pika.BlockingConnection(params)
    ch = producer.channel()
    ch.queue_delete(QUEUE)
    ch.queue_declare(QUEUE, durable=True)
    print("declared durable queue %s" % QUEUE)
    ch.confirm_delivery()
    for n in range(20):
        ch.basic_publish("", QUEUE, b"task %d" % n,
                         pika.BasicProperties(delivery_mode=2))
    print("published 20 persistent tasks (confirmed)")

    done = {}
    workers = []
    for name, work in (("fast", 0.0), ("slow", 0.1)):
        conn = pika.BlockingConnection(params)
        wch = conn.channel()
        wch.basic_qos(prefetch_count=1)
        pending = []

        def on_task(c, method, props, body, name=name, work=work, pending=pending):
            assert props.delivery_mode == 2, props
            assert body not in done, "%r done twice" % body
            done[body] = name
            pending.append((time.monotonic() + work, method.delivery_tag))

        wch.basic_consume(QUEUE, on_task)
        workers.append((conn, wch, pending))
    print("two workers with prefetch 1 consuming")

    deadline = time.monotonic() + 20
    while len(done) < 20:
        assert time.monotonic() < deadline, "only %d of 20 tasks done" % len(done)
        for conn, wch, pending in workers:
            conn.process_data_events(0.005)
            while pending and pending[0][0] <= time.monotonic():
                wch.basic_ack(pending.pop(0)[1])
    for conn, wch, pending in workers:
        while pending:
            wch.basic_ack(pending.pop(0)[1])
        conn.process_data_events(0.05)
    counts = {n: list(done.values()).count(n) for n in ("fast", "slow")}
    assert sorted(done) == sorted(b"task %d" % n for n in range(20))
    assert counts["fast"] > counts["slow"], counts
    print("all 20 tasks done exactly once; the fast worker did more")
    for conn, _, _ in workers:
        conn.close()
    ok = ch.queue_declare(QUEUE, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (0, 0), ok
    ch.queue_delete(QUEUE)
    producer.close()
    print("queue empty, no consumers left; deleted")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
