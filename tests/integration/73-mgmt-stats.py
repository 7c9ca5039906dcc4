"""message_stats in the management HTTP API (src/core/stats.c, src/mgmt/api_stats.c), as
RabbitMQ 3.10 shows them (tests/integration/data/rabbitmq-3.10-stats.json is a sample of its
replies): counters per queue (publish, deliver, deliver_no_ack, get, get_no_ack, get_empty,
ack, redeliver, deliver_get), per channel (the same plus confirm, return_unroutable,
drop_unroutable), per vhost summed in /api/overview; each with X_details.rate; no
message_stats on a queue that never had traffic; rates above 0 while traffic runs and back to
0 one quiet interval after it stops (collect_statistics_interval set low)."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

http = wt.http
CONF = {"collect_statistics_interval": 200}
QUEUE_FIELDS = {"publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack",
                "redeliver", "deliver_get"}
CHANNEL_FIELDS = QUEUE_FIELDS | {"confirm", "return_unroutable", "drop_unroutable"}


def get(srv, path):
    st, _, body = http(srv, "GET", path)
    assert st == 200, (path, st, body)
    return body


def check_shape(ms, fields):
    """Every field with its X_details {"rate": number}, and nothing else."""
    want = fields | {f + "_details" for f in fields}
    assert set(ms) == want, sorted(set(ms) ^ want)
    for f in fields:
        assert isinstance(ms[f], int), (f, ms)
        assert isinstance(ms[f + "_details"]["rate"], (int, float)), (f, ms)


@wt.needs_process
def test_counters():
    """each event counted where RabbitMQ counts it; idle queue without message_stats"""
    import pika
    with wt.server(config=CONF, mgmt=True) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("x", "direct")
        ch.queue_declare("q")
        ch.queue_declare("idle")
        ch.queue_declare("e")
        ch.queue_bind("q", "x", "k")
        for _ in range(10):
            ch.basic_publish("x", "k", b"m")
            ch.basic_publish("", "q", b"m")
        try:
            ch.basic_publish("x", "nowhere", b"m", mandatory=True)
            raise AssertionError("not returned")
        except pika.exceptions.UnroutableError:
            pass
        ch.basic_publish("x", "nowhere", b"m")
        for _ in range(3):
            m = ch.basic_get("q")
            ch.basic_ack(m[0].delivery_tag)
        ch.basic_get("q", auto_ack=True)
        m = ch.basic_get("q")
        ch.basic_nack(m[0].delivery_tag, requeue=True)
        m = ch.basic_get("q")
        assert m[0].redelivered
        ch.basic_ack(m[0].delivery_tag)
        assert ch.basic_get("e") == (None, None, None)
        got = []
        ch.basic_consume("q", lambda c, mt, p, b: (got.append(1), c.basic_ack(mt.delivery_tag)))
        wt.wait_until(lambda: (conn.process_data_events(0.05), len(got) == 15)[1], 10,
                      "the rest consumed")
        ch2 = conn.channel()
        ch2.basic_consume("q", lambda *a: None, auto_ack=True)
        ch.basic_publish("", "q", b"m")  # to the first consumer or the no-ack one
        conn.process_data_events(0.3)

        q = get(srv, "/api/queues/%2F/q")
        ms = q["message_stats"]
        check_shape(ms, QUEUE_FIELDS)
        assert ms["publish"] == 21, ms
        assert (ms["get"], ms["get_no_ack"], ms["redeliver"]) == (5, 1, 1), ms
        assert ms["deliver"] + ms["deliver_no_ack"] == 16 and ms["deliver"] >= 15, ms
        assert ms["ack"] == 4 + ms["deliver"], ms
        assert ms["deliver_get"] == ms["deliver"] + ms["deliver_no_ack"] + 6, ms
        assert ms["get_empty"] == 0, ms
        assert get(srv, "/api/queues/%2F/e")["message_stats"]["get_empty"] == 1
        assert "message_stats" not in get(srv, "/api/queues/%2F/idle")
        listed = {x["name"]: x for x in get(srv, "/api/queues/%2F")}
        assert listed["q"]["message_stats"]["publish"] == 21
        assert "message_stats" not in listed["idle"]

        chans = get(srv, "/api/channels")
        assert len(chans) == 2, chans
        c1 = next(c for c in chans if c["number"] == ch.channel_number)
        assert c1["confirm"] is True and c1["consumer_count"] == 1, c1
        assert c1["name"] == "%s (%d)" % (c1["connection_details"]["name"], ch.channel_number)
        cms = c1["message_stats"]
        check_shape(cms, CHANNEL_FIELDS)
        assert (cms["publish"], cms["confirm"]) == (23, 23), cms
        assert (cms["return_unroutable"], cms["drop_unroutable"]) == (1, 1), cms
        assert cms["get_empty"] == 1 and cms["get"] == 5, cms
        c2 = next(c for c in chans if c["number"] == ch2.channel_number)
        assert c2["confirm"] is False and c2["prefetch_count"] == 0, c2
        assert len(get(srv, "/api/vhosts/%2F/channels")) == 2
        # paged as RabbitMQ pages channels (by vhost and name)
        page = get(srv, "/api/channels?page=2&page_size=1")
        assert page["total_count"] == 2 and page["page_count"] == 2, page
        assert [c["name"] for c in page["items"]] == sorted(c["name"] for c in chans)[1:], page
        st, _, _ = http(srv, "GET", "/api/vhosts/nope/channels")
        assert st == 404

        cons = get(srv, "/api/consumers")
        assert len(cons) == 2 and get(srv, "/api/consumers/%2F") == cons, cons
        assert {c["ack_required"] for c in cons} == {True, False}, cons
        assert all(c["queue"] == {"name": "q", "vhost": "/"} for c in cons), cons

        ov = get(srv, "/api/overview")
        oms = ov["message_stats"]
        check_shape(oms, CHANNEL_FIELDS)
        assert oms["publish"] == 23 and oms["confirm"] == 23, oms
        assert oms["deliver_get"] == ms["deliver_get"] and oms["get_empty"] == 1, (oms, ms)
        assert ov["object_totals"]["channels"] == 2 and ov["object_totals"]["consumers"] == 2
        conn.close()


@wt.needs_process
def test_dead_letters_not_published():
    """a dead-letter queue's publish counts no dead letters (RabbitMQ counts publishers')"""
    with wt.server(config=CONF, mgmt=True) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("dlq")
        ch.queue_declare("src", arguments={"x-dead-letter-exchange": "",
                                           "x-dead-letter-routing-key": "dlq"})
        ch.basic_publish("", "src", b"m")
        m = ch.basic_get("src")
        ch.basic_reject(m[0].delivery_tag, requeue=False)
        wt.wait_until(lambda: get(srv, "/api/queues/%2F/dlq")["messages"] == 1, 5, "dead letter")
        assert "message_stats" not in get(srv, "/api/queues/%2F/dlq")
        ms = get(srv, "/api/queues/%2F/src")["message_stats"]
        assert (ms["publish"], ms["get"], ms["ack"]) == (1, 1, 0), ms
        conn.close()


@wt.needs_process
def test_rates_rise_and_decay():
    """rates > 0 while a publisher runs, 0 one quiet interval after it stops"""
    with wt.server(config=CONF, mgmt=True) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("r")
        stop = threading.Event()

        def publish():
            c = wt.pika_connect(srv.addr)
            pch = c.channel()
            while not stop.is_set():
                pch.basic_publish("", "r", b"m")
                time.sleep(0.002)
            c.close()

        t = threading.Thread(target=publish)
        t.start()
        try:
            wt.wait_until(lambda: get(srv, "/api/queues/%2F/r").get("message_stats", {})
                          .get("publish_details", {}).get("rate", 0) > 0, 10, "a publish rate")
            ov = get(srv, "/api/overview")["message_stats"]
            assert ov["publish_details"]["rate"] > 0, ov
        finally:
            stop.set()
            t.join()
        wt.wait_until(lambda: get(srv, "/api/queues/%2F/r")["message_stats"]
                      ["publish_details"]["rate"] == 0, 10, "the rate back to 0")
        assert get(srv, "/api/overview")["message_stats"]["publish_details"]["rate"] == 0
        ms = get(srv, "/api/queues/%2F/r")["message_stats"]
        assert ms["publish"] > 0, ms
        conn.close()


wt.run([test_counters, test_dead_letters_not_published, test_rates_rise_and_decay])
