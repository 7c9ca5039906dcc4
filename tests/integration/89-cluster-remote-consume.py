"""Clustering (issue 14): consuming from another node's queue. On three nodes started by
scripts/local-cluster.sh, with pika, for a queue that lives on node H (the node that declared
it) and clients on node R: basic.get with and without ack, nack with requeue (redelivered),
a consumer with a prefetch limit gets every message once and in order, and acks settle them
on H; a no-ack consumer; closing the channel requeues what it held; a queue on R
dead-letters to H's queue; an exclusive consumer
excludes consumers on other nodes (403); deleting the queue cancels a remote consumer
(basic.cancel); kill -9 of R gives its unacked messages back on H, redelivered, and its
exclusive and transient queues are deleted everywhere (as RabbitMQ does); stopping H
cancels R's consumer and fails its gets with RabbitMQ's 'home node ... is down' 404, and
after H's restart its durable messages are served to R again. Throughput of a remote
consumer is logged."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from cluster_harness import NODES, Cluster, refused, wait_for  # noqa: E402

NOTIFY = {"capabilities": {"consumer_cancel_notify": True}}


def all_running(c):
    """Every node sees every node running (links up both ways)."""
    return all((c.running(i) or []) and len(c.running(i)) == NODES for i in range(1, NODES + 1))


def connect(c, i):
    return wt.pika_connect(c.amqp(i), client_properties=NOTIFY)


def ready(conn, queue):
    return conn.channel().queue_declare(queue, passive=True).method.message_count


def fill(ch, queue, n, persistent=False):
    import pika
    props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    for i in range(n):
        ch.basic_publish("", queue, b"m%d" % i, props)


def check_get(c, h, r):
    ch_h = connect(c, h)
    ch_r = connect(c, r)
    home, remote = ch_h.channel(), ch_r.channel()
    home.queue_declare("g")
    fill(home, "g", 3)
    m, _, body = remote.basic_get("g")
    assert body == b"m0" and m.message_count == 2 and not m.redelivered, (m, body)
    remote.basic_nack(m.delivery_tag, requeue=True)
    m, _, body = remote.basic_get("g")
    assert body == b"m0" and m.redelivered, (m, body)
    remote.basic_ack(m.delivery_tag)
    m, _, body = remote.basic_get("g", auto_ack=True)
    assert body == b"m1", body
    m, _, body = remote.basic_get("g")
    remote.basic_reject(m.delivery_tag, requeue=False)
    assert remote.basic_get("g")[0] is None
    wait_for("g empty on its home", lambda: ready(ch_h, "g") == 0, 5)
    home.queue_delete("g")
    ch_h.close()
    ch_r.close()


def check_dead_letters(c, h, r):
    """A queue on R dead-letters (rejected, expired) to an exchange whose queue lives on H:
    the dead letters go there, with their x-death, as RabbitMQ's would."""
    conn_h, conn_r = connect(c, h), connect(c, r)
    home, src = conn_h.channel(), conn_r.channel()
    home.queue_declare("dead")
    home.queue_bind("dead", "amq.fanout")
    src.queue_declare("dying", arguments={"x-dead-letter-exchange": "amq.fanout",
                                          "x-message-ttl": 60000})
    src.confirm_delivery()
    import pika
    src.basic_publish("", "dying", b"rejected")
    src.basic_publish("", "dying", b"expired", pika.BasicProperties(expiration="1"))
    m, _, body = src.basic_get("dying")
    assert body == b"rejected", body
    src.basic_reject(m.delivery_tag, requeue=False)
    got = {}
    deadline = time.monotonic() + 10
    while len(got) < 2:
        assert time.monotonic() < deadline, got
        m, props, body = home.basic_get("dead", auto_ack=True)
        if m is None:
            time.sleep(0.05)
            continue
        got[body] = props.headers["x-death"][0]
    assert got[b"rejected"]["reason"] == "rejected" and got[b"rejected"]["queue"] == "dying", got
    assert got[b"expired"]["reason"] == "expired", got
    src.queue_delete("dying")
    home.queue_delete("dead")
    conn_h.close()
    conn_r.close()


def check_consume(c, h, r):
    home_conn, remote_conn = connect(c, h), connect(c, r)
    home, remote = home_conn.channel(), remote_conn.channel()
    home.queue_declare("cq", durable=True)
    n = 3000
    fill(home, "cq", n)
    remote.basic_qos(prefetch_count=50)
    got = []

    def on_message(ch, method, props, body):
        got.append((body, method.redelivered))
        ch.basic_ack(method.delivery_tag)
        if len(got) == n:
            ch.stop_consuming()
    t0 = time.monotonic()
    remote.basic_consume("cq", on_message)
    remote.start_consuming()
    took = time.monotonic() - t0
    wt.log("  a consumer on node %d of node %d's queue, prefetch 50, pika: %d messages in "
           "%.2f s (%.0f/s)" % (r, h, n, took, n / took))
    assert got == [(b"m%d" % i, False) for i in range(n)], got[:5]
    wait_for("cq empty on its home", lambda: ready(home_conn, "cq") == 0, 5)
    # no_ack
    fill(home, "cq", 100)
    got = []

    def on_auto(ch, method, props, body):
        got.append(body)
        if len(got) == 100:
            ch.stop_consuming()
    tag = remote.basic_consume("cq", on_auto, auto_ack=True)
    remote.start_consuming()
    remote.basic_cancel(tag)
    assert got == [b"m%d" % i for i in range(100)], got[:5]
    # the channel closes holding unacked messages: back on the home, redelivered
    fill(home, "cq", 10)
    held = []
    ch2 = remote_conn.channel()
    ch2.basic_qos(prefetch_count=10)
    ch2.basic_consume("cq", lambda ch, m, p, b: held.append(m.delivery_tag))
    wait_for("10 delivered", lambda: remote_conn.process_data_events(0.1) or len(held) == 10, 5)
    assert ready(home_conn, "cq") == 0
    ch2.close()
    wait_for("10 back on the home", lambda: ready(home_conn, "cq") == 10, 5)
    m, _, body = home.basic_get("cq", auto_ack=True)
    assert body == b"m0" and m.redelivered, (m, body)
    home.queue_purge("cq")
    home_conn.close()
    remote_conn.close()


def check_exclusive_and_delete(c, h, r):
    """An exclusive consumer on the home excludes one on another node; deleting the queue
    cancels a consumer on another node."""
    home_conn, remote_conn = connect(c, h), connect(c, r)
    home = home_conn.channel()
    home.queue_declare("xq")
    tag = home.basic_consume("xq", lambda *a: None, exclusive=True)
    remote = remote_conn.channel()
    code, text = refused(lambda: remote.basic_consume("xq", lambda *a: None))
    assert (code, text) == (403, "ACCESS_REFUSED - queue 'xq' in vhost '/' in exclusive use"), \
        (code, text)
    home.basic_cancel(tag)
    cancelled = []
    remote = remote_conn.channel()
    remote.add_on_cancel_callback(cancelled.append)
    remote.basic_consume("xq", lambda *a: None)
    home.queue_delete("xq")
    wait_for("basic.cancel on node %d" % r,
             lambda: remote_conn.process_data_events(0.1) or cancelled, 5)
    home_conn.close()
    remote_conn.close()


def check_consumer_node_killed(c, h, r, procs):
    """kill -9 of node r while its consumer holds 20 unacked messages: node h gives them back,
    redelivered, once it sees r gone."""
    home_conn = connect(c, h)
    home = home_conn.channel()
    home.queue_declare("kq", durable=True)
    fill(home, "kq", 20, persistent=True)
    remote_conn = connect(c, r)
    remote = remote_conn.channel()
    excl = remote.queue_declare("", exclusive=True).method.queue
    remote.queue_declare("r-transient")
    remote.basic_qos(prefetch_count=100)
    held = []
    remote.basic_consume("kq", lambda ch, m, p, b: held.append(b))
    wait_for("20 delivered", lambda: remote_conn.process_data_events(0.1) or len(held) == 20, 5)
    assert ready(home_conn, "kq") == 0
    t0 = time.monotonic()
    os.kill(c.pid(r), signal.SIGKILL)
    procs.pop(r, None)
    wait_for("20 back on node %d" % h, lambda: ready(home_conn, "kq") == 20, 10)
    wt.log("  kill -9 of the consumer's node: its 20 unacked messages back on the home in "
           "%.2f s" % (time.monotonic() - t0))
    # node r's exclusive and transient queues go with it, as RabbitMQ deletes them
    def gone(name):
        try:
            return refused(lambda: home_conn.channel().queue_declare(name, passive=True)) \
                [0] == 404
        except AssertionError:
            return False  # still there
    wait_for("node %d's exclusive and transient queues gone" % r,
             lambda: gone(excl) and gone("r-transient"), 10)
    got = [home.basic_get("kq", auto_ack=True) for _ in range(20)]
    assert all(m.redelivered for m, _, _ in got), [m for m, _, _ in got]
    assert [b for _, _, b in got] == [b"m%d" % i for i in range(20)]
    home_conn.close()
    procs[r] = c.start_node(r)
    wait_for("node %d back" % r, lambda: all_running(c), 20)


def check_home_stopped(c, h, r, procs):
    """Node h stops: node r's consumer of its queue is cancelled, a get fails with the 'home
    node is down' 404; after h's restart its durable messages go to r's new consumer."""
    home_conn = connect(c, h)
    home = home_conn.channel()
    home.queue_declare("hq", durable=True)
    fill(home, "hq", 5, persistent=True)
    home_conn.close()
    remote_conn = connect(c, r)
    remote = remote_conn.channel()
    cancelled = []
    remote.add_on_cancel_callback(cancelled.append)
    remote.basic_qos(prefetch_count=1)
    held = []
    remote.basic_consume("hq", lambda ch, m, p, b: held.append(m))
    wait_for("one delivered", lambda: remote_conn.process_data_events(0.1) or held, 5)
    c.stop_node(h, procs.pop(h, None))
    wait_for("basic.cancel from the stopped home",
             lambda: remote_conn.process_data_events(0.1) or cancelled, 10)
    other = remote_conn.channel()
    code, text = refused(lambda: other.basic_get("hq"))
    assert code == 404 and "home node 'warren%d@localhost' of queue 'hq'" % h in text, \
        (code, text)
    remote_conn.close()
    procs[h] = c.start_node(h)
    wait_for("node %d back" % h, lambda: all_running(c), 20)
    remote_conn = connect(c, r)
    remote = remote_conn.channel()
    got = []
    remote.basic_consume("hq", lambda ch, m, p, b: got.append((b, m.redelivered)),
                         auto_ack=True)
    wait_for("the 5 messages", lambda: remote_conn.process_data_events(0.1) or len(got) == 5, 10)
    assert [b for b, _ in got] == [b"m%d" % i for i in range(5)], got
    assert got[0][1], got  # the one delivered before the stop
    remote_conn.close()


@wt.needs_process
def test_cluster_remote_consume():
    c = Cluster()
    procs = {}
    try:
        li, f, g = c.start()
        check_get(c, f, g)
        check_dead_letters(c, f, g)
        check_consume(c, li, f)
        check_exclusive_and_delete(c, g, li)
        check_consumer_node_killed(c, li, g, procs)
        check_home_stopped(c, g, f, procs)
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_cluster_remote_consume])
