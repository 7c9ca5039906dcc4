#!/usr/bin/python3
"""pika, RabbitMQ tutorial 6 (RPC) against a broker at HOST:PORT (default 127.0.0.1:5672):
an RPC server consuming rpc_queue on one connection (prefetch 1, replies to reply_to with
the request's correlation_id, then acks) and a client on another with an exclusive
server-named callback queue, calling fib(0..15) one request at a time and then 10 at once.
Prints one line per step; the output is the same for RabbitMQ 3.10 and Warren. Exit 0 when
every step behaved.

    /usr/bin/python3 interop/pika/rpc.py 127.0.0.1:5682
"""

import sys
import time
import uuid

import pika

QUEUE = "interop-pika-rpc"


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5672").rpartition(":")
    params = pika.ConnectionParameters(host=host or "127.0.0.1", port=int(port),
                                       connection_attempts=1, socket_timeout=5,
                                       stack_timeout=10, blocked_connection_timeout=10)
    server_conn = pika.BlockingConnection(params)
    sch = server_conn.channel()
    sch.queue_delete(QUEUE)
    sch.queue_declare(QUEUE)
    sch.basic_qos(prefetch_count=1)

    def on_request(ch, method, props, body):
        ch.basic_publish("", props.reply_to, str(fib(int(body))).encode(),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    sch.basic_consume(QUEUE, on_request)
    print("server consuming %s" % QUEUE)

    client_conn = pika.BlockingConnection(params)
    cch = client_conn.channel()
    callback = cch.queue_declare("", exclusive=True).method.queue
    assert callback.startswith("amq.gen-"), callback
    responses = {}
    cch.basic_consume(callback, lambda c, m, p, b: responses.__setitem__(p.correlation_id,
                                                                          int(b)),
                      auto_ack=True)
    print("client: exclusive callback queue amq.gen-...")

    def wait_for(ids):
        deadline = time.monotonic() + 10
        while not all(i in responses for i in ids):
            assert time.monotonic() < deadline, "missing replies"
            client_conn.process_data_events(0.005)
            server_conn.process_data_events(0.005)

    for n in range(16):
        corr = str(uuid.uuid4())
        cch.basic_publish("", QUEUE, str(n).encode(),
                          pika.BasicProperties(reply_to=callback, correlation_id=corr))
        wait_for([corr])
        assert responses.pop(corr) == fib(n)
    print("fib(0..15) one call at a time: right answers")
    corrs = {str(uuid.uuid4()): n for n in range(20, 30)}
    for corr, n in corrs.items():
        cch.basic_publish("", QUEUE, str(n).encode(),
                          pika.BasicProperties(reply_to=callback, correlation_id=corr))
    wait_for(list(corrs))
    assert responses == {c: fib(n) for c, n in corrs.items()}, responses
    print("10 calls in flight: each reply matched by correlation_id")
    client_conn.close()
    sch.queue_delete(QUEUE)
    server_conn.close()
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
