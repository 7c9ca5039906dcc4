"""Transactions (tx.select/commit/rollback): messages published in a transaction are not in
their queues until tx.commit and are dropped by tx.rollback; acks and rejects take effect
on commit and are forgotten on rollback (the messages stay unacked); a mandatory
unroutable publish is returned at commit, before commit-ok; the channel stays
transactional after commit and rollback. tx.commit/rollback on a channel without
tx.select, confirm.select on a tx channel and tx.select on a confirm channel -> 406.
Checked against RabbitMQ 3.10. Queue names start with wt25-."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402
import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages

Q = spec.Queue
B = spec.Basic
TX = spec.Tx


# ---------------------------------------------------------------------------------------
# Raw helpers: methods encoded by pika's codec, replies read by warren_test.RawConn.


def get(c, channel, queue):
    """basic.get (ack mode); returns (GetOk, body), or None on get-empty."""
    wt.send_pika(c, channel, B.Get(queue=queue))
    m = c.read_method()
    if m.ids == wt.method_ids(B.GetEmpty):
        return None
    assert m.ids == wt.method_ids(B.GetOk) and m.channel == channel, "expected get-ok, got %r" % m
    ok = B.GetOk().decode(m.args)
    ftype, _, header = c.read_frame()
    assert ftype == wt.FRAME_HEADER
    size = int.from_bytes(header[4:12], "big")
    body = b""
    while len(body) < size:
        body += c.read_frame()[2]
    return ok, body


def count(c, channel, queue):
    return wt.call_pika(c, channel, Q.Declare(queue=queue, passive=True), Q.DeclareOk).message_count


def settle(c, channel, queue, n):
    """Waits (up to 5 s) until queue holds n ready messages, asking on channel."""
    deadline = time.monotonic() + 5
    while True:
        got = count(c, channel, queue)
        if got == n:
            return
        assert time.monotonic() < deadline, "%s holds %d ready, expected %d" % (queue, got, n)
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# Tests


def test_publish_commit_rollback():
    """published in a tx: invisible (count 0, get-empty elsewhere) until commit, then all
    there in order; published then rolled back: never there; tx.select twice is fine"""
    q = "wt25-publish"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, 2) as c:
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            for i in range(3):
                wt.publish(c, 1, q, b"t%d" % i)
            assert count(c, 1, q) == 0
            time.sleep(0.2)
            assert count(c, 2, q) == 0
            assert get(c, 2, q) is None
            wt.log("  3 published in a tx: count 0 and get-empty before commit")
            wt.call_pika(c, 1, TX.Commit(), TX.CommitOk)
            assert count(c, 2, q) == 3
            wt.log("  after commit-ok: count 3")
            wt.publish(c, 1, q, b"r0")
            wt.publish(c, 1, q, b"r1")
            wt.call_pika(c, 1, TX.Rollback(), TX.RollbackOk)
            wt.call_pika(c, 1, TX.Commit(), TX.CommitOk)  # an empty commit after the rollback
            time.sleep(0.2)
            assert count(c, 2, q) == 3
            wt.log("  2 published then rolled back: count still 3")
            # Still transactional: the next publish waits for the next commit.
            wt.publish(c, 1, q, b"t3")
            time.sleep(0.2)
            assert count(c, 2, q) == 3
            wt.call_pika(c, 1, TX.Commit(), TX.CommitOk)
            bodies = []
            for _ in range(4):
                ok, body = get(c, 2, q)
                bodies.append(body)
                wt.send_pika(c, 2, B.Ack(delivery_tag=ok.delivery_tag))
            assert bodies == [b"t0", b"t1", b"t2", b"t3"], bodies
            wt.log("  still transactional after commit and rollback; order t0 t1 t2 t3")
            c.close_connection()
        wt.cleanup(srv.addr, q)


def test_acks_in_tx():
    """acks in a tx: forgotten on rollback (the messages stay unacked: they come back when
    the channel closes); applied on commit (they do not come back)"""
    q = "wt25-acks"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, 2) as c:
            for i in range(4):
                wt.publish(c, 2, q, b"m%d" % i)
            settle(c, 2, q, 4)
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            got = [get(c, 1, q) for _ in range(4)]
            assert [g[1] for g in got] == [b"m0", b"m1", b"m2", b"m3"]
            wt.send_pika(c, 1, B.Ack(delivery_tag=got[0][0].delivery_tag))
            wt.send_pika(c, 1, B.Ack(delivery_tag=got[1][0].delivery_tag))
            wt.call_pika(c, 1, TX.Rollback(), TX.RollbackOk)
            wt.send_pika(c, 1, B.Ack(delivery_tag=got[2][0].delivery_tag))
            wt.call_pika(c, 1, TX.Commit(), TX.CommitOk)
            # m0, m1 (ack rolled back) and m3 (never acked) are unacked; closing requeues them.
            c.close_channel(1)
            settle(c, 2, q, 3)
            bodies = []
            while True:
                g = get(c, 2, q)
                if g is None:
                    break
                assert g[0].redelivered, g[0]
                bodies.append(g[1])
                wt.send_pika(c, 2, B.Ack(delivery_tag=g[0].delivery_tag))
            assert bodies == [b"m0", b"m1", b"m3"], bodies
            wt.log("  acks of m0, m1 rolled back, ack of m2 committed: m0 m1 m3 came back")
            # An ack in a tx that is never committed: the message comes back too.
            c.open_channel(1)
            wt.publish(c, 2, q, b"n0")
            settle(c, 2, q, 1)
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            ok, body = get(c, 1, q)
            wt.send_pika(c, 1, B.Ack(delivery_tag=ok.delivery_tag))
            assert count(c, 1, q) == 0
            c.close_channel(1)
            settle(c, 2, q, 1)
            wt.log("  ack without commit, channel closed: the message came back")
            c.close_connection()
        wt.cleanup(srv.addr, q)


def test_reject_in_tx():
    """basic.reject requeue=true in a tx: the message is back in the queue only after
    commit"""
    q = "wt25-reject"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        with wt.opened(srv.addr, 1, 2) as c:
            wt.publish(c, 2, q, b"x")
            settle(c, 2, q, 1)
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            ok, _ = get(c, 1, q)
            wt.send_pika(c, 1, B.Reject(delivery_tag=ok.delivery_tag, requeue=True))
            time.sleep(0.2)
            assert count(c, 2, q) == 0, "rejected message requeued before commit"
            wt.call_pika(c, 1, TX.Commit(), TX.CommitOk)
            settle(c, 2, q, 1)
            wt.log("  reject(requeue) in a tx: back in the queue after commit, not before")
            c.close_connection()
        wt.cleanup(srv.addr, q)


def test_return_at_commit():
    """a mandatory unroutable publish in a tx: basic.return only at commit, before
    commit-ok; after rollback, no return at all"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            wt.publish(c, 1, "wt25-nowhere", b"returned at commit", mandatory=True)
            c.expect_silence(0.3)
            wt.send_pika(c, 1, TX.Commit())
            r = B.Return().decode(c.expect(wt.method_ids(B.Return), channel=1).args)
            assert (r.reply_code, r.reply_text, r.routing_key) == (312, "NO_ROUTE",
                                                                   "wt25-nowhere"), r
            c.read_frame()
            assert c.read_frame()[2] == b"returned at commit"
            c.expect(wt.method_ids(TX.CommitOk), channel=1)
            wt.log("  nothing before commit; then basic.return 312, then commit-ok")
            wt.publish(c, 1, "wt25-nowhere", b"rolled back", mandatory=True)
            wt.call_pika(c, 1, TX.Rollback(), TX.RollbackOk)
            wt.call_pika(c, 1, TX.Commit(), TX.CommitOk)
            wt.log("  after rollback: commit-ok with no return")
            c.close_connection()


def test_tx_errors():
    """tx.commit and tx.rollback without tx.select -> 406 "PRECONDITION_FAILED - channel is
    not transactional" (90, 20) / (90, 30); confirm.select on a tx channel -> 406 "cannot
    switch from tx to confirm mode" (85, 10); tx.select on a confirm channel -> 406 "cannot
    switch from confirm to tx mode" (90, 10)"""
    with wt.server() as srv:
        with wt.opened(srv.addr, 1) as c:
            wt.channel_refused(c, 1, TX.Commit(), 406,
                               "PRECONDITION_FAILED - channel is not transactional")
            wt.channel_refused(c, 1, TX.Rollback(), 406,
                               "PRECONDITION_FAILED - channel is not transactional")
            wt.call_pika(c, 1, TX.Select(), TX.SelectOk)
            wt.channel_refused(c, 1, spec.Confirm.Select(), 406,
                               "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
            wt.call_pika(c, 1, spec.Confirm.Select(), spec.Confirm.SelectOk)  # (a fresh channel)
            wt.channel_refused(c, 1, TX.Select(), 406,
                               "PRECONDITION_FAILED - cannot switch from confirm to tx mode")
            c.close_connection()


def test_pika_tx():
    """pika: tx_select, basic_publish, tx_rollback, tx_commit"""
    q = "wt25-pika"
    with wt.server() as srv:
        wt.fresh_queues(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        other = conn.channel()
        ch.tx_select()
        ch.basic_publish("", q, b"rolled back")
        ch.tx_rollback()
        ch.basic_publish("", q, b"committed", pika.BasicProperties(message_id="c"))
        assert other.queue_declare(q, passive=True).method.message_count == 0
        ch.tx_commit()
        m, props, body = other.basic_get(q, auto_ack=True)
        assert (body, props.message_id) == (b"committed", "c"), body
        assert other.basic_get(q, auto_ack=True)[0] is None
        wt.log("  rolled back one, committed one: only the committed one arrived")
        other.queue_delete(q)
        conn.close()


if __name__ == "__main__":
    wt.run([test_publish_commit_rollback, test_acks_in_tx, test_reject_in_tx,
            test_return_at_commit, test_tx_errors, test_pika_tx])
