"""warren-perf, the load generator installed with the broker, run against the broker for a
second or two at a time: 1 producer / 1 consumer with manual acks and prefetch 100 for a
fixed duration; a fixed count with publisher confirms (window 100) and multiple acks, where
every message published must be confirmed and consumed, with the confirm latency (publish to
basic.ack) reported, also for persistent messages on a durable queue; the backlog mode
(publish 1000, then drain them); a fanout to two queues; SIGINT (results so far, exit 130).
The options for the task-queue scenarios: --queue-arg (an integer and a string argument:
x-max-length with x-overflow reject-publish nacks the surplus), --dead-letter (the
dead-letter exchange and queues, the queue's arguments naming them, all deleted at the
end), --priorities (every message has a priority below N, all of them used; a FIFO queue
delivers about 45% of them above the priority before), --expire-at (messages expire together
at that time: still there before it, gone at once when it is past).
Each run must exit 0 and print one JSON line that parses, with the fields scripts compare
(confirm_latency_us only with confirms, p50 <= p95 <= p99 <= max, p50 > 0); the queues it
declared are gone afterwards. Failures must say why and exit non-zero: nothing listening,
a refused login (403), a server channel.close (406, with the reply text and the method).
No timing is asserted: the figures depend on the machine. Checked against RabbitMQ 3.10.

The binary is $WARREN_PERF, or warren-perf next to $WARREN_SERVER (the build directory).
Queue names start with wt40-."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402
import pika.exceptions as pe  # noqa: E402


def perf(addr, *args, timeout=40, expect_rc=0):
    """Runs warren-perf against addr; returns (parsed JSON or None, stderr)."""
    argv = [wt.perf_binary(), "--host", addr[0], "--port", str(addr[1])] + [str(a) for a in args]
    wt.log("  running: %s" % " ".join(argv))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    for line in p.stderr.splitlines()[-6:]:
        wt.log("    | %s" % line)
    assert p.returncode == expect_rc, "warren-perf exited %d, expected %d; stderr:\n%s" % (
        p.returncode, expect_rc, p.stderr)
    if expect_rc != 0:
        return None, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1, "expected one JSON line on stdout, got %r" % p.stdout
    return check_result(json.loads(lines[0])), p.stderr


def check_result(r):
    for key in ("sent_msgs_per_s", "received_msgs_per_s", "sent", "received", "duration_s"):
        assert isinstance(r[key], (int, float)) and r[key] >= 0, "%s: %r" % (key, r.get(key))
    for key in ("p50", "p95", "p99", "max"):
        assert isinstance(r["latency_us"][key], (int, float)), r["latency_us"]
    lat = r["latency_us"]
    assert lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], lat
    if r["params"]["confirm"] > 0:
        cl = r["confirm_latency_us"]
        for key in ("p50", "p95", "p99", "max"):
            assert isinstance(cl[key], (int, float)), cl
        assert cl["p50"] <= cl["p95"] <= cl["p99"] <= cl["max"], cl
        if r["confirmed"] > 0:
            assert cl["p50"] > 0, cl
    else:
        assert "confirm_latency_us" not in r, r
    assert isinstance(r["params"], dict) and "producers" in r["params"], r["params"]
    wt.log("  result: sent %d (%.0f/s), received %d (%.0f/s), p50 %.0fus p99 %.0fus, %s" % (
        r["sent"], r["sent_msgs_per_s"], r["received"], r["received_msgs_per_s"],
        lat["p50"], lat["p99"], r.get("server")))
    return r


def assert_no_queue(addr, name):
    conn = wt.pika_connect(addr)
    try:
        ch = conn.channel()
        try:
            ch.queue_declare(name, passive=True)
        except pe.ChannelClosedByBroker as e:
            assert e.reply_code == 404, e
        else:
            raise AssertionError("queue %s is still there" % name)
    finally:
        if conn.is_open:
            conn.close()


def test_duration_manual_ack():
    """2 s, 1 producer (paced at 5000 msg/s) / 1 consumer, manual acks, prefetch 100"""
    with wt.server() as srv:
        r, err = perf(srv.addr, "-x", 1, "-y", 1, "-q", 100, "-z", 2, "-r", 5000,
                      "--prefix", "wt40-dur")
        assert r["sent"] > 0 and r["received"] > 0, r
        assert r["received"] <= r["sent"], r
        assert r["params"]["prefetch"] == 100 and r["params"]["auto_ack"] is False, r
        assert "time 1s, sent " in err, err
        assert not r["interrupted"], r
        assert_no_queue(srv.addr, "wt40-dur-0")


def test_count_confirm():
    """20000 messages with confirms (window 100), prefetch 100, an ack per 10: every message
    confirmed and received"""
    with wt.server() as srv:
        r, err = perf(srv.addr, "-C", 20000, "-c", 100, "-q", 100, "-A", 10, "--prefix",
                      "wt40-cnt")
        assert r["sent"] == r["received"] == r["confirmed"] == 20000, r
        assert r["nacked"] == 0, r
        assert r["sent_msgs_per_s"] > 0 and r["received_msgs_per_s"] > 0, r
        assert r["confirm_latency_us"]["p50"] > 0, r
        assert ", confirm latency p50 " in err, err
        assert_no_queue(srv.addr, "wt40-cnt-0")


def test_count_persistent_auto_ack():
    """5000 persistent messages into a durable queue, consumed with auto-ack; confirms (after
    the broker's sync) with their latency"""
    with wt.server() as srv:
        r, _ = perf(srv.addr, "-C", 5000, "-f", "-a", "-c", 50, "--prefix", "wt40-pers")
        assert r["sent"] == r["received"] == r["confirmed"] == 5000, r
        assert r["params"]["persistent"] is True, r
        assert r["confirm_latency_us"]["p50"] > 0, r
        assert_no_queue(srv.addr, "wt40-pers-0")


def test_backlog():
    """--backlog 1000: publish 1000 with no consumer, then drain them; rates per phase"""
    with wt.server() as srv:
        r, _ = perf(srv.addr, "-B", 1000, "-q", 100, "--prefix", "wt40-bl")
        assert r["sent"] == r["received"] == 1000, r
        assert r["publish_msgs_per_s"] > 0 and r["drain_msgs_per_s"] > 0, r
        assert r["publish_s"] >= 0 and r["drain_s"] >= 0, r
        assert_no_queue(srv.addr, "wt40-bl-0")


def test_fanout_two_queues():
    """a fanout exchange to 2 queues, a consumer each: every message arrives twice"""
    with wt.server() as srv:
        r, _ = perf(srv.addr, "-C", 2000, "-Q", 2, "-y", 2, "-t", "fanout", "-k", "any",
                    "-c", 100, "--prefix", "wt40-fan")
        assert r["sent"] == 2000 and r["received"] == 4000, r
        assert r["params"]["exchange"] == "wt40-fan-fanout", r
        assert_no_queue(srv.addr, "wt40-fan-0")
        assert_no_queue(srv.addr, "wt40-fan-1")


def delete_queues(addr, *names):
    """What --keep-queues left (for a broker that outlives the test: $WARREN_TEST_ADDR)."""
    conn = wt.pika_connect(addr)
    ch = conn.channel()
    for name in names:
        ch.queue_delete(name)
    conn.close()


def queue_depth(addr, name):
    conn = wt.pika_connect(addr)
    try:
        return conn.channel().queue_declare(name, passive=True).method.message_count
    finally:
        conn.close()


def test_queue_args():
    """--queue-arg x-max-length=100 (an integer) and x-overflow=reject-publish (a string):
    of 1000 publishes with confirms 100 are acked and 900 nacked; the queue keeps 100"""
    with wt.server() as srv:
        r, _ = perf(srv.addr, "-y", 0, "-C", 1000, "-c", 100, "--queue-arg", "x-max-length=100",
                    "--queue-arg", "x-overflow=reject-publish", "--keep-queues", "--prefix",
                    "wt40-qa")
        assert r["params"]["queue_args"] == {"x-max-length": 100,
                                             "x-overflow": "reject-publish"}, r["params"]
        assert r["sent"] == 1000 and r["confirmed"] == 100 and r["nacked"] == 900, r
        assert queue_depth(srv.addr, "wt40-qa-0") == 100
        delete_queues(srv.addr, "wt40-qa-0")


def test_dead_letter():
    """--dead-letter: queue i declared with x-dead-letter-exchange PREFIX-dlx and routing key
    PREFIX-dead-i, that queue bound and consumed; all of it deleted at the end"""
    with wt.server() as srv:
        r, _ = perf(srv.addr, "-y", 0, "-C", 300, "-c", 100, "--dead-letter", "--keep-queues",
                    "--prefix", "wt40-dl")
        assert r["confirmed"] == 300 and r["params"]["dead_letter"] is True, r
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        assert ch.queue_declare("wt40-dl-0", passive=True).method.message_count == 300
        assert ch.queue_declare("wt40-dl-dead-0", passive=True).method.message_count == 0
        ch.exchange_declare("wt40-dl-dlx", "direct", passive=True)
        # redeclared with the same arguments: equivalent (other arguments would be a 406)
        ch.queue_declare("wt40-dl-0", arguments={"x-dead-letter-exchange": "wt40-dl-dlx",
                                                 "x-dead-letter-routing-key": "wt40-dl-dead-0"})
        ch.exchange_delete("wt40-dl-dlx")
        conn.close()
        delete_queues(srv.addr, "wt40-dl-0", "wt40-dl-dead-0")
        # the consumer reads the dead-letter queue: nothing reaches it without a death
        r, _ = perf(srv.addr, "-z", 1, "-r", 500, "--dead-letter", "--prefix", "wt40-dl2")
        assert r["sent"] > 0 and r["received"] == 0, r
        for q in ("wt40-dl2-0", "wt40-dl2-dead-0"):
            assert_no_queue(srv.addr, q)
        conn = wt.pika_connect(srv.addr)
        try:
            conn.channel().exchange_declare("wt40-dl2-dlx", "direct", passive=True)
        except pe.ChannelClosedByBroker as e:
            assert e.reply_code == 404, e
        else:
            raise AssertionError("exchange wt40-dl2-dlx is still there")
        finally:
            if conn.is_open:
                conn.close()


def test_priorities():
    """--priorities 10: each message has a priority 0-9 and all ten occur; drained from a
    FIFO queue, 30-60% come with a higher priority than the one before (45% expected)"""
    with wt.server() as srv:
        perf(srv.addr, "-y", 0, "-C", 300, "-c", 100, "--priorities", 10, "--keep-queues",
             "--prefix", "wt40-pr")
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        seen = set()
        for _ in range(300):
            method, props, body = ch.basic_get("wt40-pr-0", auto_ack=True)
            assert method is not None
            seen.add(props.priority)
        conn.close()
        delete_queues(srv.addr, "wt40-pr-0")
        assert seen == set(range(10)), seen
        r, err = perf(srv.addr, "-B", 2000, "-q", 100, "--priorities", 10, "--prefix", "wt40-pr2")
        assert r["received"] == 2000 and r["params"]["priorities"] == 10, r
        assert 600 <= r["priority_rises"] <= 1200, r
        assert " above the priority before" in err, err


def test_expire_at():
    """--expire-at: with 60 s left the messages stay queued, carrying an expiration of at
    most 60000 ms; with the time past they expire at once (expiration 0, no consumer)"""
    with wt.server() as srv:
        perf(srv.addr, "-y", 0, "-C", 500, "-c", 100, "--expire-at", "%.3f" % (time.time() + 60),
             "--keep-queues", "--prefix", "wt40-ex")
        assert queue_depth(srv.addr, "wt40-ex-0") == 500
        conn = wt.pika_connect(srv.addr)
        method, props, body = conn.channel().basic_get("wt40-ex-0", auto_ack=True)
        conn.close()
        assert 30000 < int(props.expiration) <= 60000, props.expiration
        perf(srv.addr, "-y", 0, "-C", 500, "-c", 100, "--expire-at", "%.3f" % (time.time() - 1),
             "--keep-queues", "--prefix", "wt40-ex2")
        assert queue_depth(srv.addr, "wt40-ex2-0") == 0
        delete_queues(srv.addr, "wt40-ex-0", "wt40-ex2-0")


def test_sigint():
    """SIGINT stops the run: the results so far, interrupted=true, exit 130, queues gone"""
    with wt.server() as srv:
        argv = [wt.perf_binary(), "--host", srv.addr[0], "--port", str(srv.addr[1]), "-z", 30,
                "-r", 2000, "--prefix", "wt40-int"]
        p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 130, "exit %d; stderr:\n%s" % (p.returncode, err)
        r = check_result(json.loads(out))
        assert r["interrupted"] is True and r["sent"] > 0, r
        assert_no_queue(srv.addr, "wt40-int-0")


def test_connection_refused():
    """nothing listening: exit 1, 'cannot connect'"""
    port = wt.free_port()
    _, err = perf(("127.0.0.1", port), "-z", 1, expect_rc=1)
    assert "cannot connect to 127.0.0.1:%d" % port in err, err


def test_login_refused():
    """a wrong password: exit 1 with the server's 403 ACCESS_REFUSED"""
    with wt.server() as srv:
        _, err = perf(srv.addr, "--password", "wrong", "-z", 1, expect_rc=1)
        assert "403 ACCESS_REFUSED" in err, err
        wt.assert_serves(srv.addr)


def test_server_channel_close():
    """an exchange redeclared with another type: exit 1 with 406, the text and the method"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.exchange_declare("wt40-x", "direct")
        try:
            _, err = perf(srv.addr, "-e", "wt40-x", "-t", "fanout", "-z", 1, expect_rc=1)
            assert "406 PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'wt40-x'" \
                in err, err
            assert "(exchange.declare)" in err, err
        finally:
            ch.exchange_delete("wt40-x")
            conn.close()


def test_usage_errors():
    """bad options: exit 2 and a message, nothing sent"""
    for args, text in ((["-s", 8], "--size"), (["-C", 5, "-z", 1], "exclude each other"),
                       (["-q", 10, "-A", 20], "exceeds --prefetch"),
                       (["--uri", "http://x"], "must start with amqp:// or amqps://"),
                       (["--churn", "-y", 1], "--churn needs producers, no consumers"),
                       (["--queue-arg", "x-message-ttl"], "expected KEY=VALUE"),
                       (["--dead-letter", "--queue-arg", "x-dead-letter-exchange=x"],
                        "--dead-letter sets x-dead-letter-exchange itself"),
                       (["--priorities", 257], "--priorities")):
        _, err = perf(("127.0.0.1", 1), *args, expect_rc=2)
        assert text in err, (args, err)


if __name__ == "__main__":
    wt.run([test_duration_manual_ack, test_count_confirm, test_count_persistent_auto_ack,
            test_backlog, test_fanout_two_queues, test_queue_args, test_dead_letter,
            test_priorities, test_expire_at, test_sigint, test_connection_refused,
            test_login_refused, test_server_channel_close, test_usage_errors])
