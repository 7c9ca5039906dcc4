"""Limits as RabbitMQ's: connection_max for the whole broker; a vhost's max-connections (530 at connection.open) and max-queues
(406 on a new queue, an existing one may still be redeclared), a user's max-connections
(530) and max-channels (530 at the channel.open past it), each with RabbitMQ 3.10.8's text
(the same pika calls were run against it) and a log line, and nothing else disturbed: the
connections and channels already open go on working, and a slot freed is usable again."""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "definitions-rabbitmq-3.10.json")
PASSWORDS = {"alice": "alice-pass", "carol": "carol-512"}


def connect(addr, user, vhost):
    import pika
    return wt.pika_connect(addr, virtual_host=vhost,
                           credentials=pika.PlainCredentials(user, PASSWORDS[user]))


def refused(fn):
    """(code, text) of the close that fn runs into; pika words it in several ways (a
    ProbableAccessDeniedError holds the close as a string)."""
    import re
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        m = re.search(r"\(?(\d{3})\)?,? [\"']([A-Z_]+ - .*?)[\"']\)?$", str(e).rstrip("',)"))
        assert m, "cannot read a close from %r" % (e,)
        return (int(m.group(1)), m.group(2))
    raise AssertionError("not refused")


@wt.needs_process
def test_limits():
    """vhost and user limits refuse with RabbitMQ's codes and texts, and nothing else"""
    with open(FIXTURE) as f:
        defs = json.load(f)
    for p in defs["parameters"]:
        if p["component"] == "vhost-limits" and p["vhost"] == "app":
            p["value"] = {"max-connections": 2, "max-queues": 3}
    for u in defs["users"]:
        if u["name"] == "carol":
            u["limits"] = {"max-connections": 1, "max-channels": 2}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(defs, f)
        path = f.name
    try:
        with wt.server(config={"load_definitions": path, "loopback_users": "none"}) as srv:
            c1 = connect(srv.addr, "carol", "app")
            text = refused(lambda: connect(srv.addr, "carol", "/"))
            assert text == (530, "NOT_ALLOWED - connection refused for user 'carol': user "
                                 "connection limit (1) is reached"), text
            c2 = connect(srv.addr, "alice", "app")
            text = refused(lambda: connect(srv.addr, "alice", "app"))
            assert text == (530, "NOT_ALLOWED - access to vhost 'app' refused for user 'alice': "
                                 "connection limit (2) is reached"), text
            ch1, ch2 = c1.channel(), c1.channel()
            text = refused(c1.channel)
            assert text == (530, "NOT_ALLOWED - number of channels opened for user 'carol' has "
                                 "reached the maximum allowed user limit of (2)"), text
            # app holds app.orders and bob.inbox: one more queue, then the limit.
            ch = c2.channel()
            ch.queue_declare("lim0")
            ch.queue_declare("app.orders", durable=True, passive=True)
            text = refused(lambda: ch.queue_declare("lim1"))
            assert text == (406, "PRECONDITION_FAILED - cannot declare queue 'lim1': queue limit "
                                 "in vhost 'app' (3) is reached"), text
            ch = c2.channel()
            ch.queue_declare("lim0")  # redeclaring an existing queue is not a new one
            ch.queue_delete("lim0")
            ch.queue_declare("lim1")  # the slot is free again
            ch.queue_delete("lim1")
            c2.close()
            connect(srv.addr, "alice", "app").close()  # so is the connection's
            log = srv.stderr_text()
            for line in ("user 'carol' is at its connection limit (1)",
                         "vhost 'app' is at its connection limit (2)",
                         "vhost 'app' is at its queue limit (3)"):
                assert line in log, line
            wt.assert_serves(srv.addr)
    finally:
        os.unlink(path)


@wt.needs_process
def test_connection_max():
    """connection_max: past it the broker stops accepting: a new client waits, unanswered, and
    is served once a connection closes"""
    # RabbitMQ 3.10.8 does the same through ranch's max_connections, but counts per connection
    # supervisor (ten of them): with connection_max = 3 it served a 4th connection, and some
    # handshakes stalled only later, between 4 and 30 connections. Warren's limit is exact.
    with wt.server(config={"connection_max": "2"}) as srv:
        c1, c2 = wt.pika_connect(srv.addr), wt.pika_connect(srv.addr)
        with wt.RawConn(srv.addr, timeout=10) as waiting:
            waiting.send_header()
            waiting.expect_silence(1.0)
            c1.close()
            waiting.read_start()  # accepted now that a slot is free
        c2.close()
        assert "connection_max (2) reached: not accepting connections until one closes" in \
            srv.stderr_text()
        wt.assert_serves(srv.addr)


if __name__ == "__main__":
    wt.run([test_limits, test_connection_max])
