"""Dead-letter-strategy at-least-once, as RabbitMQ's quorum queues have it (x-dead-letter-
strategy, which needs x-overflow reject-publish), and in Warren on classic queues too by
policy: a message dying (rejected, expired) whose dead-lettered copy reaches no queue (the
dead-letter exchange missing, nothing bound, the target at its length limit with reject-
publish) is kept by its queue, neither ready nor delivered, counted against the queue's
length limit, and tried again every dead_letter_worker_publisher_confirm_timeout ms, in
order, across a restart too, until a queue takes it. At-most-once (the default, or the
fallback RabbitMQ warns of without reject-publish) drops it. A purge leaves the kept ones (as
RabbitMQ 3.10); a policy switching a queue to at-most-once dead-letters them once more, at
most once; a policy change tries them at once. Warren keeps their order where RabbitMQ 3.10
may not: a target refusing some of them by its length limit takes them in order here, in any
order there (seen: m0, m2, m1).

The tests without @wt.needs_process were checked against Debian's RabbitMQ 3.10.8
(WARREN_TEST_ADDR=127.0.0.1:5691), started with advanced.config
[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 1000}]}]: its default is 180 s,
this broker's here 300 ms. Names start with wt55- and are deleted after use."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402

DLX = "wt55-dlx"    # direct dead-letter exchange, bound to DEAD with key k when asked
LATER = "wt55-later"  # a dead-letter exchange declared only once messages wait
SRC = "wt55-src"    # the queue messages die in
DEAD = "wt55-dead"  # where dead-lettered messages land
EXCHANGES = [DLX, LATER]
QUEUES = [SRC, DEAD]
CONFIG = {"dead_letter_worker_publisher_confirm_timeout": 300}

ALO = {"x-queue-type": "quorum", "x-dead-letter-exchange": DLX, "x-dead-letter-routing-key": "k",
       "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def setup(ch, src_args, dlx=DLX):
    for q in QUEUES:
        ch.queue_delete(q)
    for e in EXCHANGES:
        ch.exchange_delete(e)
    if dlx is not None:
        ch.exchange_declare(dlx, "direct", durable=True)
    ch.queue_declare(SRC, durable=True, arguments=src_args)


def cleanup(addr):
    wt.cleanup(addr, *QUEUES, exchanges=EXCHANGES)


def publish(ch, n, first=0, persistent=False, pad=b"", **props):
    for i in range(first, first + n):
        ch.basic_publish("", SRC, b"m%d" % i + pad, pika.BasicProperties(
            delivery_mode=2 if persistent else None, **props))


def reject_all(ch, n):
    """Takes n messages of SRC (basic.get) and rejects them without requeue."""
    for _ in range(n):
        m = None
        deadline = time.monotonic() + 5
        while m is None:
            m, _, _ = ch.basic_get(SRC, auto_ack=False)
            assert m is not None or time.monotonic() < deadline, "nothing in " + SRC
        ch.basic_reject(m.delivery_tag, requeue=False)


def count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def bind_dead(ch, dlx=DLX, dead_args=None):
    ch.queue_declare(DEAD, durable=True, arguments=dead_args)
    ch.queue_bind(DEAD, dlx, "k")


def take(ch, queue, n, timeout=10):
    """The bodies and x-death reasons of the next n messages of queue, waiting for them."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        m, p, body = ch.basic_get(queue, auto_ack=True)
        if m is None:
            assert time.monotonic() < deadline, "%s: %d of %d messages within %d s: %r" % (
                queue, len(got), n, timeout, got)
            time.sleep(0.05)
            continue
        got.append((body, p.headers["x-death"][0]["reason"]))
    return got


def assert_kept(ch, wait=1.5):
    """SRC shows no ready message and delivers none: what it keeps waits for the DLX."""
    time.sleep(wait)
    assert count(ch, SRC) == 0
    m, _, _ = ch.basic_get(SRC, auto_ack=False)
    assert m is None, m


def assert_nothing_arrives(ch, wait=2.5):
    time.sleep(wait)
    n = count(ch, DEAD)
    assert n == 0, "%s got %d dead-lettered messages, expected none" % (DEAD, n)


def test_unroutable_kept_until_bound():
    """Rejected messages whose DLX has nothing bound are kept by the quorum queue, not ready
    nor delivered, and reach a queue bound later, in order, with their x-death"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, ALO)
        publish(ch, 3)
        reject_all(ch, 3)
        assert_kept(ch)
        bind_dead(ch)
        assert take(ch, DEAD, 3) == [(b"m0", "rejected"), (b"m1", "rejected"),
                                     (b"m2", "rejected")]
        assert count(ch, SRC) == 0
        assert_nothing_arrives(ch, wait=1.5)  # nothing twice
        conn.close()
        cleanup(srv.addr)


def test_missing_exchange_then_declared():
    """Expired messages of a queue whose dead-letter exchange does not exist wait for it"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, dict(ALO, **{"x-dead-letter-exchange": LATER, "x-message-ttl": 100}),
              dlx=None)
        publish(ch, 2)
        assert_kept(ch)
        ch.exchange_declare(LATER, "fanout")
        bind_dead(ch, dlx=LATER)
        assert take(ch, DEAD, 2) == [(b"m0", "expired"), (b"m1", "expired")]
        assert count(ch, SRC) == 0
        conn.close()
        cleanup(srv.addr)


def test_target_full_then_room():
    """A target at its length limit with reject-publish takes what it has room for; the rest
    waits and follows as room appears, once each (in order: Warren only)"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, ALO)
        bind_dead(ch, dead_args={"x-max-length": 1, "x-overflow": "reject-publish"})
        publish(ch, 3)
        reject_all(ch, 3)
        got = take(ch, DEAD, 1) + take(ch, DEAD, 1) + take(ch, DEAD, 1)
        want = [(b"m0", "rejected"), (b"m1", "rejected"), (b"m2", "rejected")]
        assert (sorted(got) if srv.external else got) == want, got
        assert_kept(ch, wait=0.5)
        assert_nothing_arrives(ch, wait=1.5)
        conn.close()
        cleanup(srv.addr)


def test_kept_count_against_the_limit():
    """The messages a queue keeps count against its x-max-length: with two kept and a limit
    of 2, the second of two publishes is nacked (RabbitMQ's quorum queues take one message
    over the limit before refusing: the first may be confirmed or not)"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, dict(ALO, **{"x-max-length": 2}))
        publish(ch, 2)
        reject_all(ch, 2)
        assert_kept(ch, wait=0.5)
        ch.confirm_delivery()
        try:
            publish(ch, 1, first=2)
        except pika.exceptions.NackError:
            pass
        try:
            publish(ch, 1, first=3)
            raise AssertionError("a publish over the limit, the kept ones counted, was confirmed")
        except pika.exceptions.NackError:
            pass
        conn.close()
        cleanup(srv.addr)


def test_purge_leaves_kept():
    """queue.purge drops the ready messages only, counting them: the kept ones still reach
    the queue bound later, as in RabbitMQ 3.10"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, ALO)
        publish(ch, 3)
        reject_all(ch, 2)
        time.sleep(0.5)
        assert count(ch, SRC) == 1
        assert ch.queue_purge(SRC).method.message_count == 1
        bind_dead(ch)
        assert take(ch, DEAD, 2) == [(b"m0", "rejected"), (b"m1", "rejected")]
        assert count(ch, SRC) == 0
        conn.close()
        cleanup(srv.addr)


def test_at_most_once_drops():
    """Without the strategy, an unroutable dead-lettered message is gone"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {"x-queue-type": "quorum", "x-dead-letter-exchange": DLX,
                   "x-dead-letter-routing-key": "k"})
        publish(ch, 2)
        reject_all(ch, 2)
        bind_dead(ch)
        assert_nothing_arrives(ch)
        assert count(ch, SRC) == 0
        conn.close()
        cleanup(srv.addr)


def test_quorum_fallback_without_reject_publish():
    """at-least-once without x-overflow reject-publish falls back to at-most-once, with
    RabbitMQ's warning"""
    with wt.server(config=CONFIG) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        args = dict(ALO)
        del args["x-overflow"]
        setup(ch, args)
        publish(ch, 2)
        reject_all(ch, 2)
        bind_dead(ch)
        assert_nothing_arrives(ch)
        if not srv.external:
            want = ("Falling back to dead-letter-strategy at-most-once for queue '%s' in vhost "
                    "'/' because configured dead-letter-strategy at-least-once is incompatible "
                    "with effective overflow strategy drop-head. To enable dead-letter-strategy "
                    "at-least-once, set overflow strategy to reject-publish." % SRC)
            assert want in srv.stderr_text(), srv.stderr_text()[-2000:]
        conn.close()
        cleanup(srv.addr)


def list_dlx(srv):
    rc, out, err = wt.warrenctl("list_queues", "-q", "name", "messages_ready", "messages_dlx",
                                data_dir=srv.data_dir)
    assert rc == 0, (rc, out, err)
    rows = dict((r.split("\t")[0], r.split("\t")[1:]) for r in out.splitlines() if r)
    return tuple(int(x) for x in rows[SRC])


@wt.needs_process
def test_kept_across_restart():
    """Persistent messages kept by a durable queue come back kept after kill -9 (listed as
    messages_dlx), not ready, also with the queue's backlog paged out and purged in between,
    and reach the queue bound afterwards, once"""
    with wt.server(config=dict(CONFIG, **{"store.queue_window": 65536})) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, ALO)
        pad = b"." * 1024
        publish(ch, 200, persistent=True, pad=pad)  # 200 KiB: past the window at a start
        # m149 and m150 die with the entries before them back ready: after a restart, the
        # kept ones have seqs among the paged-out backlog.
        for _ in range(151):
            m, _, _ = ch.basic_get(SRC, auto_ack=False)
        ch.basic_reject(150, requeue=False)
        ch.basic_reject(151, requeue=False)
        ch.basic_nack(149, multiple=True, requeue=True)
        time.sleep(0.5)
        assert list_dlx(srv) == (198, 2)
        conn.close()
        srv.restart(hard=True)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        assert count(ch, SRC) == 198
        assert list_dlx(srv) == (198, 2)
        assert ch.queue_purge(SRC).method.message_count == 198
        time.sleep(0.5)
        conn.close()
        srv.restart(hard=True)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        assert list_dlx(srv) == (0, 2)
        bind_dead(ch)
        assert take(ch, DEAD, 2) == [(b"m149" + pad, "rejected"), (b"m150" + pad, "rejected")]
        assert list_dlx(srv) == (0, 0)
        conn.close()
        srv.restart(hard=True)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        assert list_dlx(srv) == (0, 0)
        assert_nothing_arrives(ch, wait=1)
        conn.close()


def policy(srv, *args):
    rc, out, err = wt.warrenctl(*args, data_dir=srv.data_dir)
    assert rc == 0, (args, rc, out, err)


@wt.needs_process
def test_policy_on_classic_queue():
    """The policy key dead-letter-strategy makes a classic queue at-least-once; changing the
    policy tries the kept messages at once; switching to at-most-once dead-letters them one
    last time, at most once"""
    with wt.server(config={"dead_letter_worker_publisher_confirm_timeout": 600000}) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        setup(ch, {})
        alo = ('{"dead-letter-exchange": "%s", "dead-letter-strategy": "at-least-once", '
               '"overflow": "reject-publish"' % DLX)
        policy(srv, "set_policy", "wt55", "^wt55-src$", alo + "}", "--apply-to", "queues")
        publish(ch, 2)
        reject_all(ch, 1)
        time.sleep(0.3)
        assert list_dlx(srv) == (1, 1)
        bind_dead(ch)
        # No retry for 10 minutes: the policy change alone sends it.
        policy(srv, "set_policy", "wt55", "^wt55-src$",
               alo + ', "dead-letter-routing-key": "k"}', "--apply-to", "queues")
        assert take(ch, DEAD, 1, timeout=3) == [(b"m0", "rejected")]
        ch.queue_unbind(DEAD, DLX, "k")
        reject_all(ch, 1)
        time.sleep(0.3)
        assert list_dlx(srv) == (0, 1)
        policy(srv, "set_policy", "wt55", "^wt55-src$",
               '{"dead-letter-exchange": "%s", "dead-letter-strategy": "at-most-once"}' % DLX,
               "--apply-to", "queues")
        assert list_dlx(srv) == (0, 0)
        ch.queue_bind(DEAD, DLX, "k")
        assert_nothing_arrives(ch, wait=1)
        assert "Falling back" not in srv.stderr_text()
        conn.close()


if __name__ == "__main__":
    wt.run([test_unroutable_kept_until_bound, test_missing_exchange_then_declared,
            test_target_full_then_room, test_kept_count_against_the_limit, test_purge_leaves_kept,
            test_at_most_once_drops, test_quorum_fallback_without_reject_publish,
            test_kept_across_restart, test_policy_on_classic_queue])
