#!/usr/bin/python3
"""kombu (over py-amqp, logging in with AMQPLAIN as Celery does) against a broker at
HOST:PORT (default 127.0.0.1:5672): declare a direct exchange and a bound queue, publish 10
JSON messages with headers, consume and ack them in order, then a SimpleQueue round trip
and a message rejected with requeue coming back redelivered. Prints one line per step; the
output is the same for RabbitMQ 3.10 and Warren. Exit 0 when every step behaved.

    /usr/bin/python3 interop/kombu/roundtrip.py 127.0.0.1:5682
"""

import sys
import traceback

from kombu import Connection, Consumer, Exchange, Producer, Queue

EXCHANGE = Exchange("interop-kombu", type="direct", durable=False)
QUEUE = Queue("interop-kombu-q", exchange=EXCHANGE, routing_key="work", durable=False)


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5672").rpartition(":")
    url = "amqp://guest:guest@%s:%s//" % (host or "127.0.0.1", port)
    with Connection(url, login_method="AMQPLAIN", connect_timeout=5,
                    transport_options={"max_retries": 0}) as conn:
        conn.connect()
        mechs = [a.mechanism for a in conn.connection.authentication]
        assert mechs == [b"AMQPLAIN"], mechs
        print("connected with AMQPLAIN")
        ch = conn.channel()
        bound = QUEUE(ch)
        bound.delete()
        bound.declare()
        bound.purge()
        print("declared exchange interop-kombu and queue interop-kombu-q")

        producer = Producer(ch, exchange=EXCHANGE, serializer="json")
        for n in range(10):
            producer.publish({"n": n, "text": "task %d" % n}, routing_key="work",
                             headers={"attempt": 1}, correlation_id="c%d" % n)
        print("published 10 JSON messages")

        got = []

        def on_message(body, message):
            assert message.headers == {"attempt": 1}, message.headers
            assert message.properties["correlation_id"] == "c%d" % body["n"]
            assert message.content_type == "application/json", message.content_type
            got.append(body["n"])
            message.ack()

        with Consumer(ch, queues=[QUEUE], callbacks=[on_message], accept=["json"]):
            while len(got) < 10:
                conn.drain_events(timeout=5)
        assert got == list(range(10)), got
        print("consumed and acked 10 messages in order")

        with conn.SimpleQueue("interop-kombu-simple", serializer="json") as sq:
            sq.clear()
            sq.put({"hello": "world"})
            m = sq.get(block=True, timeout=5)
            assert m.payload == {"hello": "world"}, m.payload
            m.reject(requeue=True)
            m = sq.get(block=True, timeout=5)
            assert m.payload == {"hello": "world"} and m.delivery_info["redelivered"], \
                m.delivery_info
            m.ack()
            print("SimpleQueue: put, get, reject(requeue), get redelivered, ack")
        ch.queue_delete("interop-kombu-simple")

        bound.delete()
        EXCHANGE(ch).delete()
        print("deleted the queues and the exchange")
    print("OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: B902 - any failure is reported the same way
        print("FAILED: %r" % e)
        traceback.print_exc()
        sys.exit(1)
