#!/usr/bin/python3
"""pika, RabbitMQ tutorials 3-5 (publish/subscribe, routing, topics) against a broker at
HOST:PORT (default 127.0.0.1:5672): three subscribers with exclusive server-named queues on
a fanout exchange each get every message; a direct exchange routes by severity; a topic
exchange by pattern. Prints one line per step; the output is the same for RabbitMQ 3.10 and
Warren. Exit 0 when every step behaved.

    /usr/bin/python3 interop/pika/pub_sub.py 127.0.0.1:5682
"""

import sys
import time

import pika


def collect(conn, ch, queues, want, timeout=10):
    """Consumes queues (no-ack) until each has want[q] messages; returns {q: [bodies]}."""
    got = {q: [] for q in queues}
    for q in queues:
        ch.basic_consume(q, lambda c, m, p, b, q=q: got[q].append(b), auto_ack=True)
    deadline = time.monotonic() + timeout
    while any(len(got[q]) < want[q] for q in queues):
        assert time.monotonic() < deadline, {q: len(v) for q, v in got.items()}
        conn.process_data_events(0.02)
    conn.process_data_events(0.2)  # anything extra would show up now
    return got


def subscriber(conn, exchange, keys):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for k in keys:
        ch.queue_bind(q, exchange, k)
    return ch, q


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5672").rpartition(":")
    params = pika.ConnectionParameters(host=host or "127.0.0.1", port=int(port),
                                       connection_attempts=1, socket_timeout=5,
                                       stack_timeout=10, blocked_connection_timeout=10)
    pub_conn = pika.BlockingConnection(params)
    pub = pub_conn.channel()
    pub.confirm_delivery()
    sub_conn = pika.BlockingConnection(params)
    print("connected")

    pub.exchange_declare("interop-pika-logs", "fanout")
    subs = [subscriber(sub_conn, "interop-pika-logs", [""]) for _ in range(3)]
    for n in range(5):
        pub.basic_publish("interop-pika-logs", "", b"log %d" % n)
    qs = [q for _, q in subs]
    got = collect(sub_conn, subs[0][0], qs, {q: 5 for q in qs})
    for q in qs:
        assert got[q] == [b"log %d" % n for n in range(5)], got[q]
    print("fanout: 3 subscribers each got the 5 messages in order")

    pub.exchange_declare("interop-pika-direct", "direct")
    ch, errors = subscriber(sub_conn, "interop-pika-direct", ["error"])
    _, all_ = subscriber(sub_conn, "interop-pika-direct", ["info", "warning", "error"])
    for sev in ("info", "warning", "error", "debug"):
        pub.basic_publish("interop-pika-direct", sev, sev.encode())
    got = collect(sub_conn, ch, [errors, all_], {errors: 1, all_: 3})
    assert got[errors] == [b"error"] and got[all_] == [b"info", b"warning", b"error"], got
    print("direct: error-only got error; info+warning+error got 3; debug went nowhere")

    pub.exchange_declare("interop-pika-topic", "topic")
    ch, q1 = subscriber(sub_conn, "interop-pika-topic", ["*.orange.*"])
    _, q2 = subscriber(sub_conn, "interop-pika-topic", ["*.*.rabbit", "lazy.#"])
    keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox",
            "lazy.brown.fox", "lazy.pink.rabbit", "quick.brown.fox", "orange",
            "quick.orange.male.rabbit", "lazy.orange.male.rabbit"]
    for k in keys:
        pub.basic_publish("interop-pika-topic", k, k.encode())
    got = collect(sub_conn, ch, [q1, q2], {q1: 3, q2: 5})
    assert got[q1] == [b"quick.orange.rabbit", b"lazy.orange.elephant", b"quick.orange.fox"]
    assert got[q2] == [b"quick.orange.rabbit", b"lazy.orange.elephant", b"lazy.brown.fox",
                       b"lazy.pink.rabbit", b"lazy.orange.male.rabbit"], got[q2]
    print("topic: *.orange.* got 3, *.*.rabbit + lazy.# got 5 (lazy.pink.rabbit once)")

    sub_conn.close()
    for e in ("interop-pika-logs", "interop-pika-direct", "interop-pika-topic"):
        pub.exchange_delete(e)
    pub_conn.close()
    print("closed; exclusive queues gone with their connection; exchanges deleted")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
