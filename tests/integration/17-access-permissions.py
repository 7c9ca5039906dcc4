"""Permissions per operation, as RabbitMQ's channel checks them: configure on declare and
delete, write on publish (the default exchange as amq.default) and on a binding's
destination, read on consume, get, purge and a binding's source; topic permissions on the
routing keys of publishes and bindings to a topic exchange; the amq.* and default-exchange
rules; the permission of a new queue's dead-letter exchange and of a new exchange's
alternate exchange; the user_id property, which only an impersonator may set to another user
(carol is given that tag here). Each row was run with pika against RabbitMQ 3.10.8 loaded with the same
definitions (definitions-rabbitmq-3.10.json, plus carol's topic permissions below): the
results and reply texts are RabbitMQ's, character for character."""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "definitions-rabbitmq-3.10.json")
PASSWORDS = {"alice": "alice-pass", "bob": "bob pass \u00fc", "carol": "carol-512"}
# bob on app: configure ^bob\.  write ^(amq\.default|bob\..*)$  read ^bob\.
#     on /:   "" "" "" (may connect, may do nothing)
# carol on app: .* .* .*, topic permissions on amq.topic: write and read ^carol\.
REFUSED = "ACCESS_REFUSED - access to %s '%s' in vhost '%s' refused for user '%s'"
TOPIC = ("ACCESS_REFUSED - access to topic '%s' in exchange 'amq.topic' in vhost 'app' "
         "refused for user 'carol'")

def pika_props(**kw):
    import pika
    return pika.BasicProperties(**kw)


CASES = [
    # (what, user, vhost, operation, None or (code, text))
    ("configure on queue.declare", "bob", "app", lambda ch: ch.queue_declare("x"),
     (403, REFUSED % ("queue", "x", "app", "bob"))),
    ("configure allowed", "bob", "app", lambda ch: ch.queue_declare("bob.q"), None),
    ("passive queue.declare needs nothing", "bob", "app",
     lambda ch: ch.queue_declare("app.orders", passive=True), None),
    ("configure on exchange.declare", "bob", "app", lambda ch: ch.exchange_declare("x", "direct"),
     (403, REFUSED % ("exchange", "x", "app", "bob"))),
    ("passive exchange.declare needs nothing", "bob", "app",
     lambda ch: ch.exchange_declare("app.events", "topic", passive=True), None),
    ("configure on queue.delete", "bob", "app", lambda ch: ch.queue_delete("app.orders"),
     (403, REFUSED % ("queue", "app.orders", "app", "bob"))),
    ("queue.delete of a missing queue", "bob", "app", lambda ch: ch.queue_delete("bob.missing"),
     None),
    ("configure on exchange.delete", "bob", "app", lambda ch: ch.exchange_delete("app.events"),
     (403, REFUSED % ("exchange", "app.events", "app", "bob"))),
    ("read on queue.purge", "bob", "app", lambda ch: ch.queue_purge("app.orders"),
     (403, REFUSED % ("queue", "app.orders", "app", "bob"))),
    ("read on basic.get", "bob", "app", lambda ch: ch.basic_get("app.orders"),
     (403, REFUSED % ("queue", "app.orders", "app", "bob"))),
    ("read on basic.consume", "bob", "app",
     lambda ch: ch.basic_consume("app.orders", lambda *a: None),
     (403, REFUSED % ("queue", "app.orders", "app", "bob"))),
    ("permission before existence", "bob", "app", lambda ch: ch.basic_get("bob.nope"),
     (404, "NOT_FOUND - no queue 'bob.nope' in vhost 'app'")),
    ("write on basic.publish", "bob", "app", lambda ch: ch.basic_publish("app.events", "k", b"x"),
     (403, REFUSED % ("exchange", "app.events", "app", "bob"))),
    ("write on the default exchange as amq.default", "bob", "app",
     lambda ch: ch.basic_publish("", "bob.inbox", b"x"), None),
    ("publish to a missing exchange that may be written", "bob", "app",
     lambda ch: ch.basic_publish("bob.nope", "k", b"x"),
     (404, "NOT_FOUND - no exchange 'bob.nope' in vhost 'app'")),
    ("read on the source of queue.bind", "bob", "app",
     lambda ch: ch.queue_bind("bob.inbox", "app.events", "bob.x"),
     (403, REFUSED % ("exchange", "app.events", "app", "bob"))),
    ("write on the queue of queue.bind", "bob", "app",
     lambda ch: ch.queue_bind("app.orders", "app.events", "x"),
     (403, REFUSED % ("queue", "app.orders", "app", "bob"))),
    ("write on the queue of queue.unbind", "bob", "app",
     lambda ch: ch.queue_unbind("app.orders", "app.events", "x"),
     (403, REFUSED % ("queue", "app.orders", "app", "bob"))),
    ("read on the source of exchange.bind", "bob", "app",
     lambda ch: ch.exchange_bind("bob.x", "app.events", "x"),
     (403, REFUSED % ("exchange", "app.events", "app", "bob"))),
    ("topic write on publish", "carol", "app",
     lambda ch: ch.basic_publish("amq.topic", "other.a", b"x"), (403, TOPIC % "other.a")),
    ("topic write allowed", "carol", "app",
     lambda ch: ch.basic_publish("amq.topic", "carol.a", b"x"), None),
    ("topic read on queue.bind", "carol", "app",
     lambda ch: ch.queue_bind("app.orders", "amq.topic", "other.#"), (403, TOPIC % "other.#")),
    ("topic read allowed", "carol", "app",
     lambda ch: ch.queue_bind("app.orders", "amq.topic", "carol.#"), None),
    ("topic read on queue.unbind", "carol", "app",
     lambda ch: ch.queue_unbind("app.orders", "amq.topic", "other.#"), (403, TOPIC % "other.#")),
    ("empty patterns allow nothing", "bob", "/", lambda ch: ch.queue_declare("q"),
     (403, REFUSED % ("queue", "q", "/", "bob"))),
    ("empty write pattern and the default exchange", "bob", "/",
     lambda ch: ch.basic_publish("", "q", b"x"),
     (403, REFUSED % ("exchange", "amq.default", "/", "bob"))),
    ("amq.* exchanges", "carol", "app", lambda ch: ch.exchange_declare("amq.x", "direct"),
     (403, "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'")),
    ("amq.* queues", "carol", "app", lambda ch: ch.queue_declare("amq.q"),
     (403, "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'")),
    ("the default exchange", "carol", "app", lambda ch: ch.exchange_declare("", "direct"),
     (403, "ACCESS_REFUSED - operation not permitted on the default exchange")),
    ("write on a new queue's dead-letter exchange", "bob", "app",
     lambda ch: ch.queue_declare("bob.dl", arguments={"x-dead-letter-exchange": "app.events"}),
     (403, REFUSED % ("exchange", "app.events", "app", "bob"))),
    ("user_id must be the user's", "alice", "app",
     lambda ch: ch.basic_publish("", "app.orders", b"x", pika_props(user_id="someone")),
     (406, "PRECONDITION_FAILED - user_id property set to 'someone' but authenticated user "
           "was 'alice'")),
    ("an impersonator may set any user_id", "carol", "app",
     lambda ch: ch.basic_publish("", "app.orders", b"x", pika_props(user_id="someone")), None),
    ("write on a new exchange's alternate exchange", "bob", "app",
     lambda ch: ch.exchange_declare("bob.ae", "fanout",
                                    arguments={"alternate-exchange": "app.events"}),
     (403, REFUSED % ("exchange", "app.events", "app", "bob"))),
]


def run_case(addr, what, user, vhost, op, want):
    import pika
    conn = wt.pika_connect(addr, virtual_host=vhost,
                           credentials=pika.PlainCredentials(user, PASSWORDS[user]))
    try:
        ch = conn.channel()
        closed = []
        ch._impl.add_on_close_callback(lambda c, reason: closed.append(reason))
        got = None
        try:
            op(ch)
            conn.process_data_events(0.2)
            ch.basic_qos(prefetch_count=1)  # a round trip: a refused publish shows by now
        except Exception as e:  # noqa: BLE001
            reason = closed[0] if closed else e
            got = (reason.reply_code, reason.reply_text)
        wt.log("  %s: %s" % (what, got))
        assert got == want, "%s: got %r, expected %r" % (what, got, want)
    finally:
        if conn.is_open:
            conn.close()


@wt.needs_process
def test_operations():
    """each operation checks RabbitMQ's permission, with its reply text"""
    with open(FIXTURE) as f:
        defs = json.load(f)
    defs["topic_permissions"].append({"user": "carol", "vhost": "app", "exchange": "amq.topic",
                                      "write": "^carol\\.", "read": "^carol\\."})
    for u in defs["users"]:
        if u["name"] == "carol":
            u["tags"] = ["impersonator"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(defs, f)
        path = f.name
    try:
        with wt.server(config={"load_definitions": path, "loopback_users": "none"}) as srv:
            for case in CASES:
                run_case(srv.addr, *case)
            wt.assert_serves(srv.addr)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    wt.run([test_operations])
