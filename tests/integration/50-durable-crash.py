"""Durability across restarts. kill -9 at random moments of a steady publish-with-confirms
load, several times over the same queues: after each restart every confirmed persistent
message is there exactly once, in order per publisher, with nothing that was never
published, no transient message and none acked before a later confirm (acks from the
consumer thread may be lost, so those may come back), and every one of them redelivered=true
(the delivery watermark is written lazily: after kill -9 anything may have been delivered,
and a message delivered before must never come back unflagged). Both storage forms are covered: a queue
bound alone (the message inline in its entry) and two queues on one routing key (one shared
record). A clean restart keeps durable exchanges, queues (auto-delete ones with consumers
too) and bindings (exchange-to-exchange included), and drops transient and exclusive queues,
transient exchanges and transient messages. A tx.commit-ok covers its persistent messages
(and acks committed with them) against kill -9.

The crash test's random moments come from a seed printed in the log: WT50_SEED=<seed>
reruns the same schedule. Names start with wt50-."""

import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402
import pika.exceptions as pe  # noqa: E402

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def body_of(pub, mid, persistent, pad=0):
    return b"%d:%d:%s:" % (pub, mid, b"P" if persistent else b"T") + b"x" * pad


def parse_body(body):
    """(publisher, id, persistent) of a body made by body_of()."""
    pub, mid, kind, _ = body.split(b":", 3)
    return int(pub), int(mid), kind == b"P"


def quietly_close(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


def expect_404(addr, what, declare):
    """declare(channel) (a passive declare) must fail with channel.close 404."""
    conn = wt.pika_connect(addr)
    try:
        ch = conn.channel()
        try:
            declare(ch)
        except pe.ChannelClosedByBroker as e:
            assert e.reply_code == 404, "%s: reply %d %s, expected 404" % (
                what, e.reply_code, e.reply_text)
        else:
            raise AssertionError("%s is still there after the restart" % what)
    finally:
        quietly_close(conn)


def restored_line(srv):
    """The last 'store: restored ...' line of the server's log."""
    lines = [l for l in srv.stderr_text().splitlines() if "store: restored" in l]
    assert lines, "no 'store: restored' line in the server log"
    return lines[-1]


def read_all(ch, queue, n):
    """Consumes the n messages of queue on the pika channel ch with manual acks, leaving them
    unacked (closing the channel requeues them at their places): a list of (body,
    redelivered, delivery tag)."""
    got = []

    def on_msg(_ch, method, _props, body):
        got.append((body, method.redelivered, method.delivery_tag))

    tag = ch.basic_consume(queue, on_msg, auto_ack=False)
    wt.wait_until(lambda: len(got) >= n, 20, "%d messages from %s" % (n, queue),
                  conns=[ch.connection])
    ch.connection.process_data_events(0.05)
    assert len(got) == n, "%s: %d messages, its declare-ok said %d" % (queue, len(got), n)
    ch.basic_cancel(tag)
    return got


# ---------------------------------------------------------------------------------------
# kill -9 under load


X = "wt50-x"
SOLO = "wt50-solo"      # bound alone on "solo": messages inline in their entries
FAN_A = "wt50-fan-a"    # bound with FAN_B on "fan": one shared record per message
FAN_B = "wt50-fan-b"
QUEUES = (SOLO, FAN_A, FAN_B)
ROUTES = {"solo": (SOLO,), "fan": (FAN_A, FAN_B)}
CONSUMED = FAN_A        # the queue the consumer thread takes from (acking some)
N_PUBLISHERS = 3
ROUNDS = 4


class Publisher(threading.Thread):
    """Publishes persistent (and some transient) messages with increasing ids on a confirm
    channel until its connection dies. attempts: every (id, routing key, persistent) whose
    basic_publish was called; confirmed: the ids whose basic_publish returned (the broker
    acked it)."""

    def __init__(self, addr, pub, first_id, rng, ready):
        super().__init__(daemon=True)
        self.addr, self.pub, self.next_id, self.rng, self.ready = addr, pub, first_id, rng, ready
        self.attempts = []
        self.confirmed = set()
        self.error = None

    def run(self):
        try:
            conn = wt.pika_connect(self.addr)
            ch = wt.confirm_channel(conn)
        except Exception as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        try:
            while True:
                mid = self.next_id
                self.next_id += 1
                rk = self.rng.choice(("solo", "fan"))
                persistent = self.rng.random() < 0.9
                r = self.rng.random()
                pad = 150000 if r < 0.01 else (self.rng.randrange(4000) if r < 0.3 else 0)
                self.attempts.append((mid, rk, persistent))
                ch.basic_publish(X, rk, body_of(self.pub, mid, persistent, pad),
                                 PERSISTENT if persistent else TRANSIENT)
                self.confirmed.add(mid)
        except (pe.NackError, pe.UnroutableError) as e:
            self.error = e
        except (pe.AMQPError, OSError):
            pass  # the broker was killed
        except Exception as e:
            self.error = e
        finally:
            quietly_close(conn)


class Consumer(threading.Thread):
    """Consumes CONSUMED with manual acks (no prefetch limit), acking about two in three
    messages and holding the rest unacked, until its connection dies. deliveries: how many it
    got; acked: the (publisher, id) it acked."""

    def __init__(self, addr, rng, ready):
        super().__init__(daemon=True)
        self.addr, self.rng, self.ready = addr, rng, ready
        self.deliveries = 0
        self.acked = set()
        self.error = None

    def run(self):
        try:
            conn = wt.pika_connect(self.addr)
            ch = conn.channel()
        except Exception as e:
            self.error = e
            self.ready.set()
            return

        def on_msg(_ch, method, _props, body):
            pub, mid, _ = parse_body(body)
            self.deliveries += 1
            if self.rng.random() < 0.67:
                self.acked.add((pub, mid))
                ch.basic_ack(method.delivery_tag)

        try:
            ch.basic_consume(CONSUMED, on_msg, auto_ack=False)
            self.ready.set()
            while True:
                conn.process_data_events(0.1)
        except (pe.AMQPError, OSError):
            pass
        except Exception as e:
            self.error = e
        finally:
            self.ready.set()
            quietly_close(conn)


class Model:
    """What each queue must and may hold after a crash, by (publisher, id). must: confirmed
    and not acked; may: published but not confirmed, or acked by the consumer thread (the
    ack may be lost). Anything else (transient, acked before a later confirm, or not there
    after an earlier restart) must not be there."""

    def __init__(self):
        self.must = {q: set() for q in QUEUES}
        self.may = {q: set() for q in QUEUES}
        self.published = set()

    def add_publishes(self, p):
        for mid, rk, persistent in p.attempts:
            self.published.add((p.pub, mid))
            if not persistent:
                continue  # never on disk: gone after any crash
            for q in ROUTES[rk]:
                (self.must if mid in p.confirmed else self.may)[q].add((p.pub, mid))

    def add_consumer(self, c):
        for key in c.acked:
            if key in self.must[CONSUMED]:
                self.must[CONSUMED].discard(key)
                self.may[CONSUMED].add(key)

    def check(self, queue, got):
        """got: [(body, redelivered, tag)] read from queue after a kill -9 and restart."""
        keys = []
        for body, redelivered, _ in got:
            pub, mid, persistent = parse_body(body)
            key = (pub, mid)
            assert (pub, mid) in self.published, "%s: %r was never published" % (queue, body[:40])
            assert persistent, "%s: transient message %r survived kill -9" % (queue, body[:40])
            assert redelivered, "%s: %r came back after kill -9 with redelivered=false" % (
                queue, key)
            keys.append(key)
        seen = set()
        dups = [k for k in keys if k in seen or seen.add(k)]
        assert not dups, "%s: duplicates after restart: %r" % (queue, dups[:10])
        missing = self.must[queue] - seen
        assert not missing, "%s: %d confirmed messages lost, e.g. %r (%d present)" % (
            queue, len(missing), sorted(missing)[:10], len(seen))
        extra = seen - self.must[queue] - self.may[queue]
        assert not extra, ("%s: %d messages that should be gone (acked before a later confirm, "
                           "or found missing after an earlier restart): %r" % (
                               queue, len(extra), sorted(extra)[:10]))
        last = {}
        for pub, mid in keys:
            assert last.get(pub, -1) < mid, "%s: publisher %d's id %d after id %d" % (
                queue, pub, mid, last[pub])
            last[pub] = mid
        # What is there now is known; the rest is gone for good.
        self.must[queue] = seen
        self.may[queue] = set()


def crash_round(srv, model, rng, next_ids, rnd):
    """One round: publishers and the consumer run, the broker is killed at a random moment
    and restarted."""
    ready = [threading.Event() for _ in range(N_PUBLISHERS + 1)]
    pubs = [Publisher(srv.addr, p, next_ids[p], random.Random(rng.random()), ready[p])
            for p in range(N_PUBLISHERS)]
    cons = Consumer(srv.addr, random.Random(rng.random()), ready[-1])
    for t in pubs + [cons]:
        t.start()
    for e in ready:
        assert e.wait(10), "a client thread did not connect"
    delay = rng.uniform(0.3, 1.5)
    time.sleep(delay)
    srv.restart(hard=True)
    for t in pubs + [cons]:
        t.join(15)
        assert not t.is_alive(), "a client thread did not notice the broker's death"
        assert t.error is None, "client thread failed: %r" % (t.error,)
    for p in pubs:
        next_ids[p.pub] = p.next_id
        model.add_publishes(p)
    model.add_consumer(cons)
    n_conf = sum(len(p.confirmed) for p in pubs)
    wt.log("  round %d: killed after %.2f s: %d published, %d confirmed; consumer got %d, "
           "acked %d" % (rnd, delay, sum(len(p.attempts) for p in pubs), n_conf,
                         cons.deliveries, len(cons.acked)))
    assert n_conf > 0, "no publish was confirmed in %.2f s" % delay


def verify(srv, model, rng, final):
    """Reads every queue after a restart and checks it against the model. Then acks about
    three in ten of each queue's messages (all of them if final) and requeues the rest in
    place: the acks are processed before the channel's close-ok, so before the next round's
    confirms, and those messages must not come back."""
    conn = wt.pika_connect(srv.addr)
    counts = []
    for q in QUEUES:
        ch = conn.channel()
        n = ch.queue_declare(q, durable=True, passive=True).method.message_count
        got = read_all(ch, q, n)
        model.check(q, got)
        acked = 0
        for body, _, tag in got:
            pub, mid, _ = parse_body(body)
            if final or rng.random() < 0.3:
                ch.basic_ack(tag)
                model.must[q].discard((pub, mid))
                acked += 1
        counts.append("%s %d (%d acked)" % (q, n, acked))
        ch.close()  # requeues what was not acked, in place
    wt.log("    after restart: " + ", ".join(counts))
    if final:
        ch = conn.channel()
        for q in QUEUES:
            n = ch.queue_declare(q, durable=True, passive=True).method.message_count
            assert n == 0, "%s holds %d after acking everything" % (q, n)
    conn.close()


@wt.needs_process
def test_kill9_under_confirmed_load():
    """publishers with confirms (persistent and some transient, inline and shared), a
    consumer acking some: kill -9 at random moments, 4 rounds on the same queues; after each
    restart every confirmed unacked message is there once, in order per publisher, nothing
    else, each flagged redelivered; after acking everything and a clean restart nothing is
    left, and new messages in the emptied queues come back flagged only after a kill -9"""
    seed = int(os.environ.get("WT50_SEED") or random.SystemRandom().randrange(1 << 32))
    wt.log("  seed %d (rerun with WT50_SEED=%d)" % (seed, seed))
    rng = random.Random(seed)
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.exchange_declare(X, "direct", durable=True)
        for rk, queues in ROUTES.items():
            for q in queues:
                ch.queue_declare(q, durable=True)
                ch.queue_bind(q, X, rk)
        conn.close()
        model = Model()
        next_ids = [0] * N_PUBLISHERS
        for rnd in range(1, ROUNDS + 1):
            crash_round(srv, model, rng, next_ids, rnd)
            wt.log("    " + restored_line(srv).split("] ", 1)[-1])
            verify(srv, model, rng, final=(rnd == ROUNDS))
        # Everything acked: a clean restart finds no message and no leftover shared record.
        srv.restart()
        line = restored_line(srv)
        wt.log("  clean restart after acking all: " + line.split("] ", 1)[-1])
        assert re.search(r"\b3 queues, 3 bindings, 0 messages$", line), line
        # The emptied queues take new messages that were never delivered: after a clean
        # restart they are back unflagged (the old delivery watermarks do not cover them);
        # after kill -9 flagged, and still flagged after the next clean restart, next to newer
        # ones that are not.
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        for q in QUEUES:
            assert ch.queue_declare(q, durable=True, passive=True).method.message_count == 0

        def publish(conn, prefix):
            ch = wt.confirm_channel(conn)
            for i in range(10):
                ch.basic_publish(X, "solo" if i % 2 else "fan", b"%s%d" % (prefix, i), PERSISTENT)

        def restart_and_drain(conn, hard, *expected):
            """expected: (body prefix, redelivered flag) in queue order."""
            srv.restart(hard=hard)
            quietly_close(conn)
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            for q in QUEUES:
                want = [(b"%s%d" % (prefix, i), flag) for prefix, flag in expected
                        for i in range(10) if (i % 2 == 1) == (q == SOLO)]
                got = wt.drain(ch, q, redelivered=True)
                assert got == want, "%s: after a %s restart: %r" % (
                    q, "kill -9" if hard else "clean", got)
            return conn

        publish(conn, b"clean")
        conn = restart_and_drain(conn, False, (b"clean", False))
        publish(conn, b"killed")
        srv.restart(hard=True)
        quietly_close(conn)
        conn = wt.pika_connect(srv.addr)
        publish(conn, b"later")
        conn = restart_and_drain(conn, False, (b"killed", True), (b"later", False))
        ch = conn.channel()
        for q in QUEUES:
            ch.queue_delete(q)
        ch.exchange_delete(X)
        conn.close()
        wt.log("  new messages: unflagged after a clean restart, flagged after kill -9 and "
               "after the clean restart that follows")


# ---------------------------------------------------------------------------------------
# Clean restart: what is kept and what is dropped


@wt.needs_process
def test_clean_restart_keeps_durable_drops_transient():
    """SIGTERM and start again: durable exchanges, queues and bindings (queue and exchange
    ends) are back and route; a durable auto-delete queue whose consumer was connected at
    shutdown is back; transient and exclusive queues and transient exchanges are gone (404);
    in a durable queue persistent messages survive in order, transient ones do not, acked
    ones stay gone, delivered unacked ones come back redelivered"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.exchange_declare("wt50-b-x", "direct", durable=True)
        ch.exchange_declare("wt50-b-x2", "fanout", durable=True)
        ch.exchange_declare("wt50-b-tx", "direct", durable=False)
        ch.exchange_bind("wt50-b-x2", "wt50-b-x", "e2e")
        for q in ("wt50-b-dq", "wt50-b-dq2", "wt50-b-unacked"):
            ch.queue_declare(q, durable=True)
        ch.queue_bind("wt50-b-dq", "wt50-b-x", "k")
        ch.queue_bind("wt50-b-dq2", "wt50-b-x2", "")
        ch.queue_declare("wt50-b-tq", durable=False)
        ch.queue_bind("wt50-b-tq", "wt50-b-x", "k")
        ch.queue_declare("wt50-b-ad", durable=True, auto_delete=True)
        ch.queue_declare("wt50-b-ex", durable=True, exclusive=True)
        # Persistent and transient messages, through the binding into dq and tq.
        for i in range(6):
            ch.basic_publish("wt50-b-x", "k", b"m%d" % i,
                             PERSISTENT if i % 2 == 0 else TRANSIENT, mandatory=True)
        ch.basic_publish("", "wt50-b-ex", b"in exclusive", PERSISTENT)
        # Two acked, two delivered and held unacked, one never delivered.
        for i in range(5):
            ch.basic_publish("", "wt50-b-unacked", b"u%d" % i, PERSISTENT)
        got = [ch.basic_get("wt50-b-unacked") for _ in range(4)]
        assert [b for _, _, b in got] == [b"u0", b"u1", b"u2", b"u3"], got
        ch.basic_ack(got[0][0].delivery_tag)
        ch.basic_ack(got[1][0].delivery_tag)
        # A consumer on the auto-delete queue, connected at shutdown.
        ch.basic_consume("wt50-b-ad", lambda *a: None)
        ch.basic_publish("", "wt50-b-dq", b"last", PERSISTENT)

        srv.restart()
        quietly_close(conn)
        wt.log("  " + restored_line(srv).split("] ", 1)[-1])

        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        ch.exchange_declare("wt50-b-x", "direct", durable=True, passive=True)
        ch.exchange_declare("wt50-b-x2", "fanout", durable=True, passive=True)
        for q in ("wt50-b-dq", "wt50-b-dq2", "wt50-b-unacked", "wt50-b-ad"):
            ch.queue_declare(q, durable=True, passive=True)
        expect_404(srv.addr, "transient exchange wt50-b-tx",
                   lambda c: c.exchange_declare("wt50-b-tx", "direct", passive=True))
        for q in ("wt50-b-tq", "wt50-b-ex"):
            expect_404(srv.addr, "queue %s" % q, lambda c: c.queue_declare(q, passive=True))
        got = wt.drain(ch, "wt50-b-dq", redelivered=True)
        assert got == [(b"m0", False), (b"m2", False), (b"m4", False),
                       (b"last", False)], got
        got = wt.drain(ch, "wt50-b-unacked", redelivered=True)
        assert got == [(b"u2", True), (b"u3", True), (b"u4", False)], got
        assert wt.drain(ch, "wt50-b-dq2") == []
        wt.log("  kept: exchanges, queues, persistent messages; redelivered: the unacked two")
        # The restored bindings route (queue end and exchange-to-exchange).
        ch.basic_publish("wt50-b-x", "k", b"after", PERSISTENT, mandatory=True)
        ch.basic_publish("wt50-b-x", "e2e", b"via x2", PERSISTENT, mandatory=True)
        assert wt.drain(ch, "wt50-b-dq") == [b"after"]
        assert wt.drain(ch, "wt50-b-dq2") == [b"via x2"]
        wt.log("  restored bindings route; transient/exclusive queues, transient exchange: 404")
        for q in ("wt50-b-dq", "wt50-b-dq2", "wt50-b-unacked", "wt50-b-ad"):
            ch.queue_delete(q)
        ch.exchange_delete("wt50-b-x2")
        ch.exchange_delete("wt50-b-x")
        conn.close()


# ---------------------------------------------------------------------------------------
# Transactions


@wt.needs_process
def test_tx_commit_then_kill9():
    """persistent messages published in a transaction (to an inline and two shared queues),
    with acks of earlier ones, tx.commit-ok, then at once kill -9: after the restart the
    committed messages are there in order and the acked ones gone; a rolled-back batch is
    not there"""
    queues = ("wt50-c-q", "wt50-c-fa", "wt50-c-fb")
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.exchange_declare("wt50-c-x", "direct", durable=True)
        ch.queue_declare("wt50-c-q", durable=True)
        ch.queue_bind("wt50-c-q", "wt50-c-x", "one")
        for q in queues[1:]:
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, "wt50-c-x", "two")
        conn.close()
        expect = {q: [] for q in queues}
        for rnd in range(3):
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            ch.tx_select()
            for i in range(20):
                ch.basic_publish("wt50-c-x", "one", b"rolled back %d" % i, PERSISTENT)
            ch.tx_rollback()
            # Ack (in the transaction) half of what an earlier round committed to wt50-c-q.
            n_acked = len(expect["wt50-c-q"]) // 2
            for i in range(n_acked):
                m, _, body = ch.basic_get("wt50-c-q")
                assert body == expect["wt50-c-q"][i], (body, expect["wt50-c-q"][i])
                ch.basic_ack(m.delivery_tag)
            for i in range(50):
                body = b"r%d-%d" % (rnd, i) + b"y" * (i * 97 % 3000)
                rk = "one" if i % 3 else "two"
                ch.basic_publish("wt50-c-x", rk, body, PERSISTENT)
                for q in (("wt50-c-q",) if rk == "one" else queues[1:]):
                    expect[q].append(body)
            ch.tx_commit()
            srv.restart(hard=True)
            quietly_close(conn)
            # The acks were committed with the publishes: those messages are gone.
            expect["wt50-c-q"] = expect["wt50-c-q"][n_acked:]
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            for q in queues:
                n = ch.queue_declare(q, durable=True, passive=True).method.message_count
                got = [b for b, _, _ in read_all(ch, q, n)]
                assert got == expect[q], "%s after kill -9: %d messages %r, expected %d %r" % (
                    q, len(got), [b[:8] for b in got], len(expect[q]),
                    [b[:8] for b in expect[q]])
            conn.close()
            wt.log("  round %d: committed 50 (acked %d) then kill -9: all there, in order" %
                   (rnd, n_acked))
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        for q in queues:
            ch.queue_delete(q)
        ch.exchange_delete("wt50-c-x")
        conn.close()


if __name__ == "__main__":
    wt.run([test_kill9_under_confirmed_load, test_clean_restart_keeps_durable_drops_transient,
            test_tx_commit_then_kill9])
