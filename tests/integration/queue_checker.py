"""A queue checker in the spirit of Jepsen's (issue 14), for the cluster fault tests (90, 91):
pika publishers (persistent messages, confirms) and consumers (prefetch 50, manual acks) on
given nodes, reconnecting while their node or the queue's is down, logging every publish,
confirm and delivery; check() then proves that every confirmed message was delivered at least
once, that nothing never published was, that a message delivered again carries redelivered,
and that each consumer got each publisher's first deliveries in the order published."""

import os
import random
import threading
import time

import cluster_harness as ch
import warren_test as wt


def connect(c, node):
    """A pika connection to node, or None while it does not take one."""
    import pika
    try:
        return wt.pika_connect(c.amqp(node), socket_timeout=2, blocked_connection_timeout=30,
                               client_properties={"capabilities":
                                                  {"consumer_cancel_notify": True}})
    except (pika.exceptions.AMQPError, OSError):
        return None


class Publisher(threading.Thread):
    """Publishes p<node>-<n> to queue through node until stopped: acked (confirmed), nacked,
    or maybe (the connection went with it in flight)."""

    def __init__(self, c, node, queue):
        super().__init__(daemon=True)
        self.c, self.node, self.queue = c, node, queue
        self.asked, self.acked, self.nacked, self.maybe = [], [], [], []
        self.stop = threading.Event()

    def run(self):
        import pika
        n = 0
        props = pika.BasicProperties(delivery_mode=2)
        while not self.stop.is_set():
            conn = connect(self.c, self.node)
            if conn is None:
                time.sleep(0.2)
                continue
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                while not self.stop.is_set():
                    body = "p%d-%d" % (self.node, n)
                    n += 1
                    self.asked.append(body)
                    try:
                        ch.basic_publish("", self.queue, body.encode(), props)
                        self.acked.append(body)
                    except pika.exceptions.NackError:
                        self.nacked.append(body)
                        time.sleep(0.05)
                    except BaseException:
                        self.maybe.append(body)
                        raise
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.2)  # its node died, or the queue's: again once they run
            finally:
                try:
                    conn.close()
                except Exception:
                    pass


class Consumer(threading.Thread):
    """Consumes queue through node, acking each delivery, logging (body, redelivered, when) per
    session (a connection and consumer), until stopped."""

    def __init__(self, c, node, queue):
        super().__init__(daemon=True)
        self.c, self.node, self.queue = c, node, queue
        self.sessions = []  # [[(body, redelivered, when), ...], ...]
        self.last = time.monotonic()
        self.stop = threading.Event()

    def run(self):
        import pika
        while not self.stop.is_set():
            conn = connect(self.c, self.node)
            if conn is None:
                time.sleep(0.2)
                continue
            got = []
            self.sessions.append(got)
            cancelled = []
            try:
                ch = conn.channel()
                ch.add_on_cancel_callback(cancelled.append)
                ch.basic_qos(prefetch_count=50)

                def on_message(chan, method, props, body):
                    got.append((body.decode(), method.redelivered, time.monotonic()))
                    self.last = time.monotonic()
                    chan.basic_ack(method.delivery_tag)
                ch.basic_consume(self.queue, on_message)
                while not self.stop.is_set() and not cancelled:
                    conn.process_data_events(0.1)
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.3)  # its node or the queue's died: again once they run
            finally:
                try:
                    conn.close()
                except Exception:
                    pass


def all_running(c):
    return all((c.running(i) or []) and len(c.running(i)) == ch.NODES
               for i in range(1, ch.NODES + 1))


def check(pubs, cons):
    asked = {b for p in pubs for b in p.asked}
    acked = [b for p in pubs for b in p.acked]
    # in the order the consumers got them (threads on one machine: their clocks agree, and two
    # deliveries of one message are a failure detection apart)
    deliveries = sorted((d for c in cons for s in c.sessions for d in s), key=lambda d: d[2])
    seen = {}
    for body, redelivered, when in deliveries:
        assert body in asked, "delivered, never published: %s" % body
        if body in seen and not redelivered:
            where = [(c.node, i, j, r, w) for c in cons for i, s in enumerate(c.sessions)
                     for j, (b, r, w) in enumerate(s) if b == body]
            raise AssertionError("%s delivered again without redelivered: (consumer's node, "
                                 "session, position, redelivered, when) %r" % (body, where))
        seen[body] = seen.get(body, 0) + 1
    lost = [b for b in acked if b not in seen]
    assert not lost, "confirmed and never delivered: %d, %s" % (len(lost), lost[:10])
    for c in cons:
        for s in c.sessions:
            last = {}
            for body, redelivered, _ in s:
                if redelivered:
                    continue
                node, n = body[1:].split("-")
                assert int(n) > last.get(node, -1), "out of order on node %d: %s" % (c.node, body)
                last[node] = int(n)
    dup = sum(n - 1 for n in seen.values())
    maybe = sum(len(p.maybe) for p in pubs)
    nacked = sum(len(p.nacked) for p in pubs)
    wt.log("  %d published, %d confirmed, %d nacked, %d unknown (in flight at a kill); %d "
           "delivered, %d of them again (redelivered)" % (len(asked), len(acked), nacked, maybe,
                                                           len(deliveries), dup))
    assert acked, "nothing confirmed"




def fault_run(c, procs, queue, cycles, victim, messages):
    """A publisher and a consumer of queue on every node (started here) while, cycles times at
    random moments, the node victim() names is killed (kill -9) and started again (procs: the
    nodes start_node started, updated); then the publishers stop, the queue drains (messages(),
    its count where it is served, is 0 and nothing was delivered for 2 s), and check() proves
    the run."""
    every = range(1, ch.NODES + 1)
    pubs = [Publisher(c, i, queue) for i in every]
    cons = [Consumer(c, i, queue) for i in every]
    try:
        for t in pubs + cons:
            t.start()
        for cycle in range(cycles):
            time.sleep(random.uniform(0.5, 2.0))
            v = victim()
            assert v is not None
            os.kill(c.pid(v), 9)
            if v in procs:
                procs.pop(v).wait(10)
            time.sleep(random.uniform(0.3, 1.5))
            procs[v] = c.start_node(v)
            ch.wait_for("every node running again", lambda: all_running(c), 30)
            wt.log("  cycle %d: node %d killed and started again" % (cycle + 1, v))
        time.sleep(1)
        for p in pubs:
            p.stop.set()
        for p in pubs:
            p.join(30)
            assert not p.is_alive(), "publisher on node %d stuck" % p.node
        ch.wait_for("the queue drained", lambda: messages() == 0 and
                    time.monotonic() - max(x.last for x in cons) > 2, 60)
    finally:
        for t in pubs + cons:
            t.stop.set()
    for x in cons:
        x.join(30)
    check(pubs, cons)
