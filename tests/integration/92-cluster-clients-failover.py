"""Real clients across the failover of a replicated queue (issue 14): in a cluster of three
nodes (scripts/local-cluster.sh), a queue declared with x-queue-type quorum is served by its
Raft group's leader; the test places its clients on the other two nodes (or lists every node
for Celery), kills the leader (kill -9) mid-stream, and checks what a user of each client
library counts on, written the way such a user writes it:

1. kombu 5.2: a producer publishing with confirms (transport_options confirm_publish) and
   producer.publish(retry=True, retry_policy=...), republishing a message the broker nacked;
   a consumer built on kombu.mixins.ConsumerMixin. kombu registers no cancel callback, so
   py-amqp raises ConsumerCancelled (a recoverable connection error) from drain_events when
   the broker cancels the consumer; ConsumerMixin.run catches it, closes the connection and
   consumes again on a new one.
2. Celery 5.2 (tests/integration/celery_failover_app.py): two workers whose broker URL lists
   the three nodes (kombu's round-robin failover), one of them starting on the leader's node,
   the other on a follower's; tasks with acks_late on a quorum task queue (task_queues); N
   tasks sent with confirms, the leader killed while they run: every task runs, some twice,
   and both workers still run. (Celery takes a basic.consume refused with 404 NOT_FOUND, on
   its task queue or on its own pidbox queue, for an unrecoverable error: the worker exits.)
3. pika 1.2: a BlockingConnection consumer whose add_on_cancel_callback makes it consume again
   (on a new channel, or a new connection to its node, while the queue has no leader yet), and
   a publisher with confirms that publishes a nacked message again.

In each, every message the broker confirmed is delivered at least once; a message delivered
twice carries redelivered the second time unless its publisher sent it twice (a nack, a
confirm timeout or a lost connection, after which it cannot know); the consumer consumes
again after the kill. The killed node is started again after each part.

`python3 92-cluster-clients-failover.py --rabbitmq [kombu|pika|celery ...]` runs the same
parts against a 3-node RabbitMQ cluster (bench/cluster.py's RabbitMQCluster: Debian's
rabbitmq-server, as root), RabbitNodes below. RabbitMQ 3.10.8 passes them all; there a
quorum queue's new leader takes over unseen by the clients on the followers: no basic.cancel,
no nack, the consumers and publishers go on as they were."""

import glob
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
QUORUM = {"x-queue-type": "quorum"}
NODES = (1, 2, 3)


class WarrenNodes:
    """The test's view of a cluster: node i's AMQP address, which node serves a queue, kill -9
    of a node and its start again. This one drives cluster_harness.Cluster; RabbitNodes,
    at the end of the file, a RabbitMQ cluster."""

    def __init__(self, c, procs):
        self.c, self.procs = c, procs

    def addr(self, i):
        return self.c.amqp(i)

    def home(self, queue, among=NODES):
        """The node serving queue as every node of among sees it, or None."""
        seen = set()
        for i in among:
            try:
                status, _, body = wt.http(self.c.api(i), "GET", "/api/queues/%2F/" + queue,
                                          timeout=5)
            except OSError:
                return None
            seen.add(ch.names().index(body["node"]) + 1 if status == 200 else None)
        return seen.pop() if len(seen) == 1 else None

    def served(self, i, queue):
        return self.c.log_text(i).count("queue '%s' in vhost '/' served here" % queue)

    def kill(self, i, queue):
        """kill -9 of node i, which serves queue; returns the node serving it next, once every
        live node names it and it logged that it serves it."""
        before = {j: self.served(j, queue) for j in NODES}
        os.kill(self.c.pid(i), signal.SIGKILL)
        if i in self.procs:
            self.procs.pop(i).wait(10)

        def moved():
            h = self.home(queue, [j for j in NODES if j != i])
            return h if h not in (None, i) and self.served(h, queue) > before[h] else None
        return ch.wait_for("a new node serving %s" % queue, moved, 30)

    def restart(self, i):
        self.procs[i] = self.c.start_node(i)
        ch.wait_for("every node running again", lambda: qc.all_running(self.c), 30)


def pika_connect(addr):
    """A pika BlockingConnection to addr, or None while it takes none."""
    import pika
    try:
        return wt.pika_connect(addr, socket_timeout=5, blocked_connection_timeout=30)
    except (pika.exceptions.AMQPError, OSError):
        return None


def declare(nodes, queue):
    """Declares queue (durable, quorum) through node 1; returns (the node serving it, a
    follower, the other follower)."""
    conn = wt.pika_connect(nodes.addr(1))
    conn.channel().queue_declare(queue, durable=True, arguments=QUORUM)
    conn.close()
    h = ch.wait_for("a node serving %s" % queue, lambda: nodes.home(queue), 20)
    a, b = [i for i in NODES if i != h]
    return h, a, b


class Record:
    """What a publisher did (asked: every message it published, at least once; acked: those
    the broker confirmed; sent_again: those it published more than once, after which a
    second delivery without redelivered is no fault) and what a consumer got (deliveries:
    (body, redelivered, when))."""

    def __init__(self):
        self.asked, self.acked, self.sent_again, self.notes = [], [], set(), []
        self.deliveries = []
        self.error = None


def check_record(what, r, killed):
    """Every confirmed message delivered; nothing delivered that was not published; a second
    delivery of a message published once carries redelivered; something delivered after
    the kill. Logs the counts."""
    asked = set(r.asked)
    seen = {}
    for body, redelivered, _ in sorted(r.deliveries, key=lambda d: d[2]):
        assert body in asked, "%s: delivered, never published: %r" % (what, body)
        if body in seen and not redelivered and body not in r.sent_again:
            raise AssertionError("%s: %r published once, delivered again without "
                                 "redelivered" % (what, body))
        seen[body] = seen.get(body, 0) + 1
    lost = [b for b in r.acked if b not in seen]
    assert not lost, "%s: confirmed and never delivered: %d, %s" % (what, len(lost), lost[:10])
    after = [d for d in r.deliveries if d[2] > killed]
    assert after, "%s: nothing delivered after the kill" % what
    again = sum(n - 1 for n in seen.values())
    if again:
        wt.log("  %s: delivered more than once: %s" % (what, sorted(
            (b, [d[1] for d in r.deliveries if d[0] == b], b in r.sent_again)
            for b, n in seen.items() if n > 1)))
    wt.log("  %s: %d published (%d more than once), %d confirmed; %d deliveries, %d of them "
           "again (%d redelivered in all), %d after the kill" % (
               what, len(asked), len(r.sent_again), len(r.acked), len(r.deliveries), again,
               sum(1 for d in r.deliveries if d[1]), len(after)))


def mid_stream(nodes, queue, h, r, before, after, limit=40):
    """Waits for `before` deliveries, kills h (the node serving queue), and waits for
    `after` confirms after the kill. Returns (the node serving queue next, the kill's
    time)."""
    def delivered(n):
        assert r.error is None, "the producer failed: %r" % r.error
        return len(r.deliveries) >= n
    ch.wait_for("%d deliveries before the kill" % before, lambda: delivered(before), limit)
    confirmed = len(r.acked)
    killed = time.monotonic()
    h2 = nodes.kill(h, queue)
    wt.log("  node %d killed with %d confirmed: node %d serves %s after %.1f s" % (
        h, confirmed, h2, queue, time.monotonic() - killed))
    ch.wait_for("%d confirms after the kill" % after, lambda: len(r.acked) >= confirmed + after,
                limit)
    return h2, killed


def drained(r, limit=40):
    """Waits until every confirmed message was delivered."""
    ch.wait_for("every confirmed message delivered",
                lambda: set(r.acked) <= {d[0] for d in r.deliveries}, limit)


# ---------------------------------------------------------------------------------------
# kombu


def kombu_parts(nodes, queue_name):
    import kombu
    import kombu.mixins
    from amqp.exceptions import MessageNacked

    queue = kombu.Queue(queue_name, exchange=kombu.Exchange(""), routing_key=queue_name,
                        durable=True, queue_arguments=QUORUM)

    def url(i):
        return "amqp://guest:guest@%s:%d//" % nodes.addr(i)

    class Worker(kombu.mixins.ConsumerMixin):
        """The kombu documentation's consumer: ConsumerMixin.run() does the reconnecting."""

        def __init__(self, node, r):
            self.connection = kombu.Connection(url(node), connect_timeout=5)
            self.r = r
            self.sessions = 0
            self.errors = []

        def get_consumers(self, Consumer, channel):
            return [Consumer(queues=[queue], callbacks=[self.on_message], accept=["json"],
                             prefetch_count=50)]

        def on_consume_ready(self, connection, channel, consumers, **kwargs):
            self.sessions += 1

        def consume(self, *args, **kwargs):  # only to note what ended a session
            try:
                yield from super().consume(*args, **kwargs)
            except Exception as e:
                self.errors.append(type(e).__name__)
                raise

        def on_message(self, body, message):
            self.r.deliveries.append((body, message.delivery_info["redelivered"],
                                      time.monotonic()))
            message.ack()

    def produce(node, r, stop):
        current = [None]

        def errback(exc, interval):
            r.sent_again.add(current[0])
            r.notes.append(type(exc).__name__)
        policy = {"max_retries": 60, "interval_start": 0, "interval_step": 0.5,
                  "interval_max": 1, "errback": errback}
        try:
            with kombu.Connection(url(node), connect_timeout=5,
                                  transport_options={"confirm_publish": True}) as conn:
                producer = conn.Producer(serializer="json")
                n = 0
                while not stop.is_set():
                    body = current[0] = "k-%d" % n
                    n += 1
                    r.asked.append(body)
                    while True:
                        try:
                            producer.publish(body, exchange="", routing_key=queue_name,
                                             delivery_mode=2, retry=True,
                                             retry_policy=policy, timeout=10)
                            r.acked.append(body)
                            break
                        except MessageNacked:
                            r.sent_again.add(body)
                            r.notes.append("MessageNacked")
                            time.sleep(0.1)
        except Exception as e:
            r.error = e
            raise
    return Worker, produce


def check_kombu(nodes):
    """kombu: a ConsumerMixin consumer on a follower, a producer (confirms, retry=True) on
    the other follower; the leader killed mid-stream"""
    import kombu
    wt.log("  kombu %s" % kombu.__version__)
    h, a, b = declare(nodes, "wt92-kombu")
    Worker, produce = kombu_parts(nodes, "wt92-kombu")
    r, stop = Record(), threading.Event()
    worker = Worker(a, r)
    threads = [threading.Thread(target=worker.run, daemon=True),
               threading.Thread(target=produce, args=(b, r, stop), daemon=True)]
    for t in threads:
        t.start()
    try:
        _, killed = mid_stream(nodes, "wt92-kombu", h, r, 150, 150)
        stop.set()
        threads[1].join(30)
        assert not threads[1].is_alive(), "the producer is stuck"
        assert r.error is None, r.error
        drained(r)
    finally:
        stop.set()
        worker.should_stop = True
    threads[0].join(30)
    assert not threads[0].is_alive(), "the consumer is stuck"
    wt.log("  kombu consumer: %d sessions, ended by %s; producer retried after %s" % (
        worker.sessions, worker.errors, sorted(set(r.notes))))
    check_record("kombu", r, killed)
    nodes.restart(h)


# ---------------------------------------------------------------------------------------
# pika


class PikaConsumer(threading.Thread):
    """Consumes queue through node (prefetch 50, manual acks); on basic.cancel, consumes
    again on its channel, or on a new one if the broker closed it, or on a new connection."""

    def __init__(self, addr, queue, r):
        super().__init__(daemon=True)
        self.addr, self.queue, self.r = addr, queue, r
        self.cancels, self.refused, self.connections = 0, [], 0
        self.stop = threading.Event()

    def on_message(self, chan, method, props, body):
        self.r.deliveries.append((body.decode(), method.redelivered, time.monotonic()))
        chan.basic_ack(method.delivery_tag)

    def consume(self, conn, chan, cancelled):
        """Starts consuming on chan, or on a new channel of conn if the broker refuses;
        returns the channel."""
        import pika
        while not self.stop.is_set():
            try:
                if chan is None or not chan.is_open:
                    chan = conn.channel()
                    chan.add_on_cancel_callback(cancelled.append)
                    chan.basic_qos(prefetch_count=50)
                chan.basic_consume(self.queue, self.on_message)
                return chan
            except pika.exceptions.ChannelClosedByBroker as e:
                self.refused.append((e.reply_code, e.reply_text))
                chan = None
                time.sleep(0.5)
        return chan

    def run(self):
        import pika
        while not self.stop.is_set():
            conn = pika_connect(self.addr)
            if conn is None:
                time.sleep(0.5)
                continue
            self.connections += 1
            cancelled = []
            try:
                chan = self.consume(conn, None, cancelled)
                while not self.stop.is_set():
                    conn.process_data_events(0.1)
                    if cancelled:
                        self.cancels += 1
                        cancelled.clear()
                        chan = self.consume(conn, chan, cancelled)
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.5)
            finally:
                try:
                    conn.close()
                except Exception:
                    pass


class PikaPublisher(threading.Thread):
    """Publishes p-<n> (persistent) to queue through node with confirms; a message nacked,
    or whose connection went before its confirm, is published again."""

    def __init__(self, addr, queue, r):
        super().__init__(daemon=True)
        self.addr, self.queue, self.r = addr, queue, r
        self.stop = threading.Event()

    def run(self):
        import pika
        props = pika.BasicProperties(delivery_mode=2)
        n, body = 0, None
        while not self.stop.is_set():
            conn = pika_connect(self.addr)
            if conn is None:
                time.sleep(0.5)
                continue
            try:
                chan = conn.channel()
                chan.confirm_delivery()
                while not self.stop.is_set():
                    if body is None:
                        body = "p-%d" % n
                        n += 1
                        self.r.asked.append(body)
                    try:
                        chan.basic_publish("", self.queue, body.encode(), props)
                        self.r.acked.append(body)
                        body = None
                    except pika.exceptions.NackError:
                        self.r.sent_again.add(body)
                        self.r.notes.append("nack")
                        time.sleep(0.1)
            except (pika.exceptions.AMQPError, OSError) as e:
                if body is not None:
                    self.r.sent_again.add(body)
                self.r.notes.append(type(e).__name__)
                time.sleep(0.5)
            finally:
                try:
                    conn.close()
                except Exception:
                    pass


def check_pika(nodes):
    """pika: a consumer on a follower that consumes again on basic.cancel, a publisher
    (confirms, nacked messages published again) on the other follower; the leader killed
    mid-stream"""
    import pika
    wt.log("  pika %s" % pika.__version__)
    h, a, b = declare(nodes, "wt92-pika")
    r = Record()
    cons = PikaConsumer(nodes.addr(a), "wt92-pika", r)
    pub = PikaPublisher(nodes.addr(b), "wt92-pika", r)
    cons.start()
    pub.start()
    try:
        _, killed = mid_stream(nodes, "wt92-pika", h, r, 150, 150)
        pub.stop.set()
        pub.join(30)
        assert not pub.is_alive(), "the publisher is stuck"
        drained(r)
    finally:
        pub.stop.set()
        cons.stop.set()
    cons.join(30)
    assert not cons.is_alive(), "the consumer is stuck"
    wt.log("  pika consumer: %d basic.cancel, %d connections, consume refused %s; publisher: "
           "%s" % (cons.cancels, cons.connections, sorted(set(cons.refused)),
                   sorted(set(r.notes))))
    check_record("pika", r, killed)
    nodes.restart(h)


# ---------------------------------------------------------------------------------------
# Celery


class Workers:
    """Celery workers (celery_failover_app.py) as subprocesses, with their logs in tmp."""

    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, name, broker):
        env = dict(os.environ, WT92_BROKER=broker, WT92_DIR=self.tmp,
                   PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_failover_app",
                              "worker", "-n", "%s-%d@localhost" % (name, os.getpid()),
                              "-c", "1", "--loglevel=INFO", "--without-gossip",
                              "--without-mingle", "--without-heartbeat"],
                             cwd=self.tmp, env=env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, p))

    def log_text(self, name):
        with open(os.path.join(self.tmp, name + ".log"), errors="replace") as f:
            return f.read()

    def stop(self, failed):
        """SIGTERM (a warm shutdown) to each worker; each must exit 0 within 30 s."""
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        stuck = []
        for name, p in self.procs:
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
                stuck.append(name)
                continue
            if rc != 0:
                stuck.append("%s (exit %d)" % (name, rc))
        if failed or stuck:
            for name, _ in self.procs:
                wt.log("  ---- celery %s log ----\n%s  ---- end ----" % (
                    name, self.log_text(name)[-6000:]))
        assert not stuck, "workers not stopped cleanly by SIGTERM: %s" % stuck


def done(tmp):
    """{task number: [how it ran ('f'irst delivery or 'r'edelivered), ...]}."""
    runs = {}
    for path in glob.glob(os.path.join(tmp, "done-*")):
        _, n, how, _, _ = os.path.basename(path).split("-")
        runs.setdefault(int(n), []).append(how)
    return runs


def check_celery(nodes):
    """Celery: two workers (acks_late, prefetch 1) whose broker URL lists every node, one
    connected to the leader of the quorum task queue, one to a follower; N tasks sent with
    confirms; the leader killed while they run: every task runs"""
    import celery
    import celery_failover_app
    n_tasks, seconds = 40, 0.25
    wt.log("  Celery %s" % celery.__version__)
    h, a, b = declare(nodes, "wt92")

    def broker(first):
        order = [first] + [i for i in NODES if i != first]
        return ";".join("amqp://guest:guest@%s:%d//" % nodes.addr(i) for i in order)
    tmp = tempfile.mkdtemp(prefix="wt92-")
    workers = Workers(tmp)
    app = celery_failover_app.make_app(broker(b))
    failed = True
    try:
        workers.start("on-leader", broker(h))
        workers.start("on-follower", broker(a))
        work = app.tasks["wt92.work"]
        for n in range(n_tasks):
            work.apply_async((n, seconds))
        app.pool.force_close_all()
        wt.log("  %d tasks sent (confirmed) through node %d" % (n_tasks, b))
        ch.wait_for("tasks running", lambda: len(done(tmp)) >= 6, 40)
        killed = time.monotonic()
        h2 = nodes.kill(h, "wt92")
        ran = len(done(tmp))
        wt.log("  node %d killed with %d tasks run: node %d serves wt92 after %.1f s" % (
            h, ran, h2, time.monotonic() - killed))
        def all_run():
            gone = [(name, p.returncode) for name, p in workers.procs if p.poll() is not None]
            assert len(gone) < len(workers.procs), "every worker exited: %s; %d tasks run" % (
                gone, len(done(tmp)))
            return len(done(tmp)) == n_tasks
        ch.wait_for("every task run", all_run, 60)
        wt.log("  every task run %.1f s after the kill" % (time.monotonic() - killed))
        runs = done(tmp)
        assert sorted(runs) == list(range(n_tasks)), sorted(runs)
        twice = {n: how for n, how in runs.items() if len(how) > 1}
        wt.log("  ran more than once: %s" % (twice or "none"))
        for n, how in twice.items():  # the second run is of a message delivered again
            assert how.count("f") <= 1, (n, how)
        for name, p in workers.procs:
            text = workers.log_text(name)
            wt.log("  worker %s: 'Connection to broker lost' %d times" % (
                name, text.count("Connection to broker lost")))
            # A worker that met an error it takes for the queue's end exits: not a failover.
            fatal = [line for line in text.splitlines() if "Unrecoverable error" in line]
            assert p.poll() is None and not fatal, "worker %s exited (%r): %s" % (
                name, p.returncode, fatal)
        failed = False
    finally:
        app.close()
        try:
            workers.stop(failed)
        finally:
            wt.cleanup_dir(tmp)  # the workers' logs are printed on a failure
    nodes.restart(h)


@wt.needs_process
def test_clients_failover():
    """kombu, pika and Celery clients across the kill -9 of a quorum queue's leader"""
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        ch.wait_for("every node running", lambda: qc.all_running(c), 30)
        nodes = WarrenNodes(c, procs)
        for part in (check_kombu, check_pika, check_celery):
            t = time.monotonic()
            wt.log("  %s: %s" % (part.__name__, " ".join(part.__doc__.split())))
            part(nodes)
            wt.log("  %s took %.1f s" % (part.__name__, time.monotonic() - t))
    except BaseException:
        c.abort()
        raise
    c.stop(procs)


class RabbitNodes:
    """WarrenNodes' methods for a bench/cluster.py RabbitMQCluster (nodes numbered from 0
    there): the queue's leader as rabbitmqctl list_queues names it."""

    def __init__(self, rc):
        self.rc, self.dead = rc, set()

    def addr(self, i):
        return ("127.0.0.1", self.rc.port(i - 1))

    def home(self, queue, among=NODES):
        import json
        for i in among:
            if i in self.dead:
                continue
            try:
                out = self.rc.ctl(i - 1, "-q", "list_queues", "name", "leader", "--formatter",
                                  "json", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            for q in json.loads(out[out.index("["):]):
                if q.get("name") == queue:
                    return self.rc.index(q["leader"]) + 1
            return None
        return None

    def kill(self, i, queue):
        self.rc.kill(i - 1)
        self.dead.add(i)
        return ch.wait_for("a new leader of %s" % queue, lambda: (
            self.home(queue) if self.home(queue) not in (None, i) else None), 60)

    def restart(self, i):
        self.rc.restart(i - 1)
        self.dead.discard(i)


def against_rabbitmq(names):
    sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
    import cluster as bench_cluster
    rc = bench_cluster.RabbitMQCluster(keep=False)
    failed = 0
    try:
        rc.start()
        nodes = RabbitNodes(rc)
        for name in names or ["kombu", "pika", "celery"]:
            part = globals()["check_" + name]
            wt.log("- %s: %s" % (part.__name__, " ".join(part.__doc__.split())))
            t = time.monotonic()
            try:
                part(nodes)
                wt.log("  ok (%.1f s)" % (time.monotonic() - t))
            except Exception:
                import traceback
                failed += 1
                wt.log("  FAIL (%.1f s):\n%s" % (time.monotonic() - t, traceback.format_exc()))
                for i in list(nodes.dead):
                    nodes.restart(i)
    finally:
        rc.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rabbitmq"]:
        against_rabbitmq(sys.argv[2:])
    wt.run([test_clients_failover], timeout=240)
