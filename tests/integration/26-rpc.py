"""Request/reply (RPC) as RabbitMQ's tutorial 6 does it: an RPC server consuming a request
queue on one connection, a client on another with an exclusive server-named reply queue,
requests carrying reply_to and correlation_id, replies matched by correlation_id. Then
RabbitMQ's direct reply-to (the pseudo-queue amq.rabbitmq.reply-to): the client consumes
it in no-ack mode, the server sees reply_to = amq.rabbitmq.reply-to.<token> and publishes
the reply to the default exchange with that key; its errors (an ack-mode consumer, a
request published without the consumer) close the channel with 406. Direct reply-to is in
functions of its own: Warren may not have it yet. Checked against RabbitMQ 3.10.

Both "connections" are pika BlockingConnections pumped in turn by one thread."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402
import pika.exceptions as pe  # noqa: E402
import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

RPC_QUEUE = "wt26-rpc"
DIRECT = "amq.rabbitmq.reply-to"


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class RpcServer:
    """Consumes RPC_QUEUE with prefetch 1; answers fib(n) to reply_to with the request's
    correlation_id, then acks. Records the reply_to values it saw."""

    def __init__(self, conn):
        self.ch = conn.channel()
        wt.fresh_queue(self.ch, RPC_QUEUE)
        self.ch.basic_qos(prefetch_count=1)
        self.reply_tos = []
        self.ch.basic_consume(RPC_QUEUE, self.on_request)

    def on_request(self, ch, method, props, body):
        self.reply_tos.append(props.reply_to)
        ch.basic_publish("", props.reply_to, str(fib(int(body))).encode(),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)


def test_rpc_reply_queue():
    """20 requests (pipelined) from a client with an exclusive server-named reply queue:
    every reply arrives once in the reply queue, with the request's correlation_id and
    the right answer; replies for other ids are not mixed in"""
    with wt.server() as srv:
        server_conn, client_conn = wt.pika_connect(srv.addr), wt.pika_connect(srv.addr)
        server = RpcServer(server_conn)
        ch = client_conn.channel()
        reply_q = ch.queue_declare("", exclusive=True).method.queue
        assert reply_q.startswith("amq.gen-"), reply_q
        replies = {}

        def on_reply(c, method, props, body):
            assert props.correlation_id not in replies, "two replies for %s" % (
                props.correlation_id)
            replies[props.correlation_id] = int(body)

        ch.basic_consume(reply_q, on_reply, auto_ack=True)
        for n in range(20):
            ch.basic_publish("", RPC_QUEUE, str(n).encode(),
                             pika.BasicProperties(reply_to=reply_q, correlation_id="req-%d" % n))
        wt.wait_until(lambda: len(replies) == 20, 10, "20 replies (have %d)" % len(replies),
                      conns=[server_conn, client_conn])
        assert replies == {"req-%d" % n: fib(n) for n in range(20)}, replies
        assert set(server.reply_tos) == {reply_q}, server.reply_tos
        wt.log("  20 replies in %s, each with its correlation_id and fib(n)" % reply_q)
        server.ch.queue_delete(RPC_QUEUE)
        client_conn.close()
        server_conn.close()


def test_direct_reply_to():
    """direct reply-to: consume amq.rabbitmq.reply-to with no-ack, publish requests with
    reply_to amq.rabbitmq.reply-to; the server sees amq.rabbitmq.reply-to.<token> and its
    replies to that key reach the client's consumer with their correlation_ids"""
    with wt.server() as srv:
        server_conn, client_conn = wt.pika_connect(srv.addr), wt.pika_connect(srv.addr)
        server = RpcServer(server_conn)
        ch = client_conn.channel()
        replies = {}
        keys = set()

        def on_reply(c, method, props, body):
            keys.add(method.routing_key)
            replies[props.correlation_id] = int(body)

        ch.basic_consume(DIRECT, on_reply, auto_ack=True)
        for n in range(10):
            ch.basic_publish("", RPC_QUEUE, str(n).encode(),
                             pika.BasicProperties(reply_to=DIRECT, correlation_id="d-%d" % n))
        wt.wait_until(lambda: len(replies) == 10, 10, "10 direct replies (have %d)" % len(replies),
                      conns=[server_conn, client_conn])
        assert replies == {"d-%d" % n: fib(n) for n in range(10)}, replies
        seen = set(server.reply_tos)
        assert len(seen) == 1, seen
        token = seen.pop()
        assert token.startswith(DIRECT + ".") and len(token) > len(DIRECT) + 1, token
        assert keys == {token}, keys
        wt.log("  10 replies via %s (reply_to seen by the server: %s)" % (DIRECT, token))
        server.ch.queue_delete(RPC_QUEUE)
        client_conn.close()
        server_conn.close()


def test_direct_reply_to_errors():
    """direct reply-to misuse: basic.consume of amq.rabbitmq.reply-to without no-ack -> 406
    "PRECONDITION_FAILED - reply consumer cannot acknowledge" (60, 20); a publish with
    reply_to amq.rabbitmq.reply-to on a channel not consuming it -> 406
    "PRECONDITION_FAILED - fast reply consumer does not exist" (60, 40)"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            wt.send_pika(c, 1, spec.Basic.Consume(queue=DIRECT))
            c.expect_channel_close(1, 406, text="PRECONDITION_FAILED - reply consumer cannot "
                                   "acknowledge", ids=(60, 20))
            wt.send_pika(c, 1, spec.Channel.CloseOk())
            c.open_channel(1)
            wt.publish(c, 1, "wt26-x", b"x", props=spec.BasicProperties(reply_to=DIRECT))
            c.expect_channel_close(1, 406, text="PRECONDITION_FAILED - fast reply consumer "
                                   "does not exist", ids=(60, 40))
            wt.send_pika(c, 1, spec.Channel.CloseOk())
            c.open_channel(1)
            c.close_connection()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        try:
            ch.basic_consume(DIRECT, lambda *a: None, auto_ack=False)
            raise AssertionError("ack-mode consumer of %s accepted" % DIRECT)
        except pe.ChannelClosedByBroker as e:
            assert e.reply_code == 406, e
            wt.log("  pika: %r" % e)
        assert conn.is_open
        conn.close()


if __name__ == "__main__":
    wt.run([test_rpc_reply_queue, test_direct_reply_to, test_direct_reply_to_errors])
