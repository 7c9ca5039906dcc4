"""Routing: which queues a published message lands in, for the default, direct, fanout,
topic (the RabbitMQ tutorial's examples and the corner cases of `*`, `#` and empty words)
and headers (x-match all / any, value types, x- keys) exchanges. Every message is
published with pika on a confirm channel and then looked for with basic.get in every
queue, so each case checks both where it went and where it did not; a message that
several bindings route to one queue arrives there once. A publish to a missing exchange
-> channel.close 404 "NOT_FOUND - no exchange 'nope' in vhost '/'" (60, 40). Checked
against RabbitMQ 3.10. Names start with wt22-."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

import pika  # noqa: E402
import pika.exceptions as pe  # noqa: E402
import pika.spec as spec  # noqa: E402

wt.name_pika_methods()  # every method named in failure messages


class Router:
    """An exchange with named queues bound to it, on a confirm channel. route(key,
    headers) publishes one message and returns the sorted names of the queues it reached
    (each checked to hold exactly one copy)."""

    def __init__(self, conn, exchange, etype, bindings):
        """bindings: [(queue, routing_key, arguments)]; a queue may appear several times."""
        self.ch = wt.confirm_channel(conn)
        self.exchange = exchange
        self.queues = sorted({b[0] for b in bindings})
        self.ch.exchange_delete(exchange)
        self.ch.exchange_declare(exchange, etype)
        for q in self.queues:
            wt.fresh_queue(self.ch, q)
        for q, key, args in bindings:
            self.ch.queue_bind(q, exchange, key, arguments=args)
        self.n = 0

    def route(self, key, headers=None):
        self.n += 1
        body = b"msg %d" % self.n
        self.ch.basic_publish(self.exchange, key, body,
                              pika.BasicProperties(headers=headers))
        got = []
        for q in self.queues:
            m, _, b = self.ch.basic_get(q, auto_ack=True)
            if m is None:
                continue
            assert b == body, "%s holds %r, expected %r" % (q, b, body)
            got.append(q)
            m, _, b = self.ch.basic_get(q, auto_ack=True)
            assert m is None, "%s got the message twice (then %r)" % (q, b)
        return got

    def check(self, table, what):
        """table: [(routing_key, headers, [expected queues])]."""
        for key, headers, want in table:
            got = self.route(key, headers)
            assert got == sorted(want), "%s: key %r headers %r reached %s, expected %s" % (
                what, key, headers, got, sorted(want))
            wt.log("  %s %r%s -> %s" % (what, key, " %r" % (headers,) if headers else "",
                                         ", ".join(got) or "(none)"))

    def delete(self):
        self.ch.exchange_delete(self.exchange)
        for q in self.queues:
            self.ch.queue_delete(q)


def test_default_exchange():
    """the default exchange routes by queue name; an unknown name drops the message"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        for q in ("wt22-d1", "wt22-d2"):
            ch.queue_delete(q)
            ch.queue_declare(q)
        ch.basic_publish("", "wt22-d1", b"one")
        ch.basic_publish("", "wt22-none", b"dropped")
        ch.basic_publish("", "WT22-D1", b"case matters")
        assert ch.basic_get("wt22-d1", auto_ack=True)[2] == b"one"
        assert ch.basic_get("wt22-d1", auto_ack=True)[0] is None
        assert ch.basic_get("wt22-d2", auto_ack=True)[0] is None
        wt.log("  'wt22-d1' -> wt22-d1 only; unknown and differently cased names: dropped")
        for q in ("wt22-d1", "wt22-d2"):
            ch.queue_delete(q)
        conn.close()


def test_direct():
    """direct: exact key match; several queues on one key; one queue on several keys;
    the empty key"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        r = Router(conn, "wt22-direct", "direct", [
            ("wt22-dq1", "orange", None), ("wt22-dq2", "black", None),
            ("wt22-dq2", "green", None), ("wt22-dq3", "orange", None),
            ("wt22-dq3", "", None)])
        r.check([("orange", None, ["wt22-dq1", "wt22-dq3"]),
                 ("black", None, ["wt22-dq2"]),
                 ("green", None, ["wt22-dq2"]),
                 ("", None, ["wt22-dq3"]),
                 ("Orange", None, []),
                 ("orange.x", None, []),
                 ("blue", None, [])], "direct")
        # Binding the same key twice is one binding; unbind removes it.
        r.ch.queue_bind("wt22-dq1", "wt22-direct", "orange")
        r.ch.queue_unbind("wt22-dq1", "wt22-direct", "orange")
        r.check([("orange", None, ["wt22-dq3"])], "direct after unbind")
        r.delete()
        conn.close()


def test_fanout():
    """fanout: every bound queue, whatever the routing key"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        qs = ["wt22-fq%d" % i for i in range(5)]
        r = Router(conn, "wt22-fanout", "fanout", [(q, "key-%d" % i, None)
                                                   for i, q in enumerate(qs)])
        r.check([("", None, qs), ("anything", None, qs), ("key-1", None, qs)], "fanout")
        r.delete()
        conn.close()


def test_topic_tutorial():
    """topic: RabbitMQ tutorial 5 (Q1 *.orange.*, Q2 *.*.rabbit and lazy.#)"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        q1, q2 = "wt22-tut-q1", "wt22-tut-q2"
        r = Router(conn, "wt22-tutorial", "topic", [
            (q1, "*.orange.*", None), (q2, "*.*.rabbit", None), (q2, "lazy.#", None)])
        r.check([("quick.orange.rabbit", None, [q1, q2]),
                 ("lazy.orange.elephant", None, [q1, q2]),
                 ("quick.orange.fox", None, [q1]),
                 ("lazy.brown.fox", None, [q2]),
                 ("lazy.pink.rabbit", None, [q2]),  # two bindings match: delivered once
                 ("quick.brown.fox", None, []),
                 ("orange", None, []),
                 ("quick.orange.male.rabbit", None, []),
                 ("lazy.orange.male.rabbit", None, [q2])], "topic")
        r.delete()
        conn.close()


def test_topic_corner_cases():
    """topic: '#' matches zero or more words, '*' exactly one (also an empty one); the empty
    key has no words; empty words between dots are words"""
    patterns = ["#", "*", "a.#", "#.a", "a.*.b", "a.#.b", "*.*", "#.#", "a.*", "*.a", "",
                "a..b", "#.*"]
    qname = {p: "wt22-tc-%d" % i for i, p in enumerate(patterns)}
    # Observed on RabbitMQ 3.10.
    expect = {
        "": ["#", "#.#", ""],
        "a": ["#", "*", "a.#", "#.a", "#.#", "#.*"],
        "a.b": ["#", "a.#", "a.#.b", "*.*", "#.#", "a.*", "#.*"],
        "b.a": ["#", "#.a", "*.*", "#.#", "*.a", "#.*"],
        "a.x.b": ["#", "a.#", "a.*.b", "a.#.b", "#.#", "#.*"],
        "a.x.y.b": ["#", "a.#", "a.#.b", "#.#", "#.*"],
        "a.b.c": ["#", "a.#", "#.#", "#.*"],
        "a..b": ["#", "a.#", "a.*.b", "a.#.b", "#.#", "a..b", "#.*"],
        ".": ["#", "*.*", "#.#", "#.*"],
        "..": ["#", "#.#", "#.*"],
        "a.": ["#", "a.#", "*.*", "#.#", "a.*", "#.*"],
        ".a": ["#", "#.a", "*.*", "#.#", "*.a", "#.*"],
        "a.b.a": ["#", "a.#", "#.a", "#.#", "#.*"],
        "x": ["#", "*", "#.#", "#.*"],
    }
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        r = Router(conn, "wt22-topic-corners", "topic",
                   [(qname[p], p, None) for p in patterns])
        for key, pats in expect.items():
            got = r.route(key)
            want = sorted(qname[p] for p in pats)
            names = {v: k for k, v in qname.items()}
            assert got == want, "topic key %r matched patterns %r, expected %r" % (
                key, [names[q] for q in got], pats)
            wt.log("  topic %r matches %s" % (key, " ".join(repr(p) for p in pats)))
        r.delete()
        conn.close()


def test_headers():
    """headers: x-match all (the default) and any; an empty binding matches everything;
    'any' with no keys matches nothing; x- keys of a binding are ignored; a void binding
    value matches any value of that key; scalar values compare by value, not type tag:
    1 (I) == 1 (l), 'S' string == 'x' byte array, but 1 != '1' and true != 1"""
    from pika.compat import long  # pika sends it as 'l' (signed 64-bit), an int as 'I'
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        binds = [
            ("wt22-h-all", {"x-match": "all", "a": 1, "b": "two"}),
            ("wt22-h-any", {"x-match": "any", "a": 1, "b": "two"}),
            ("wt22-h-default", {"a": 1, "b": "two"}),
            ("wt22-h-empty", {}),
            ("wt22-h-any-empty", {"x-match": "any"}),
            ("wt22-h-all-xkey", {"x-match": "all", "x-k": "v"}),
            ("wt22-h-any-xkey", {"x-match": "any", "x-k": "v", "a": 1}),
            ("wt22-h-void", {"n": None}),
            ("wt22-h-bool", {"f": True}),
            ("wt22-h-str1", {"a": "1"}),
            ("wt22-h-long", {"a": 2 ** 40}),
            ("wt22-h-long1", {"a": long(1)}),
            ("wt22-h-bytes", {"bb": b"1"}),
        ]
        r = Router(conn, "wt22-headers", "headers", [(q, "", a) for q, a in binds])
        everything = ["wt22-h-empty", "wt22-h-all-xkey"]
        r.check([
            ("", {"a": 1, "b": "two"}, ["wt22-h-all", "wt22-h-any", "wt22-h-default",
                                        "wt22-h-any-xkey", "wt22-h-long1"] + everything),
            ("ignored", {"a": 1, "b": "two", "c": 3},
             ["wt22-h-all", "wt22-h-any", "wt22-h-default", "wt22-h-any-xkey",
              "wt22-h-long1"] + everything),
            ("", {"a": 1}, ["wt22-h-any", "wt22-h-any-xkey", "wt22-h-long1"] + everything),
            ("", {"a": long(1)}, ["wt22-h-any", "wt22-h-any-xkey", "wt22-h-long1"] +
             everything),
            ("", {"a": long(1), "b": b"two"}, ["wt22-h-all", "wt22-h-any", "wt22-h-default",
                                               "wt22-h-any-xkey", "wt22-h-long1"] +
             everything),
            ("", {"b": "two"}, ["wt22-h-any"] + everything),
            ("", {"a": 1, "b": "three"}, ["wt22-h-any", "wt22-h-any-xkey", "wt22-h-long1"] +
             everything),
            ("", {}, everything),
            ("", None, everything),
            ("", {"a": "1"}, ["wt22-h-str1"] + everything),
            ("", {"a": 2 ** 40}, ["wt22-h-long"] + everything),
            ("", {"x-k": "v"}, everything),
            ("", {"n": None}, ["wt22-h-void"] + everything),
            ("", {"n": "anything"}, ["wt22-h-void"] + everything),
            ("", {"f": True}, ["wt22-h-bool"] + everything),
            ("", {"f": 1}, everything),
            ("", {"bb": b"1"}, ["wt22-h-bytes"] + everything),
            ("", {"bb": "1"}, ["wt22-h-bytes"] + everything),
        ], "headers")
        r.delete()
        conn.close()


def test_once_per_queue():
    """a message routed to N queues arrives once in each, also where several bindings
    (and e2e paths) lead to the same queue"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        qs = ["wt22-n%d" % i for i in range(10)]
        bindings = []
        for q in qs:
            bindings += [(q, "a.b", None), (q, "a.*", None), (q, "#", None), (q, "*.b", None)]
        r = Router(conn, "wt22-many", "topic", bindings)
        r.check([("a.b", None, qs), ("z", None, qs)], "topic, 4 matching bindings per queue")
        # Two more paths to the same queues through exchange-to-exchange bindings.
        r.ch.exchange_delete("wt22-many-front")
        r.ch.exchange_declare("wt22-many-front", "fanout")
        r.ch.exchange_bind(destination="wt22-many", source="wt22-many-front")
        r.ch.exchange_delete("wt22-many-side")
        r.ch.exchange_declare("wt22-many-side", "fanout")
        r.ch.exchange_bind(destination="wt22-many-side", source="wt22-many-front")
        for q in qs:
            r.ch.queue_bind(q, "wt22-many-side")
        front = Router.__new__(Router)
        front.ch, front.exchange, front.queues, front.n = r.ch, "wt22-many-front", qs, 100
        front.check([("a.b", None, qs)], "front fanout -> (topic, fanout) -> same queues")
        r.ch.exchange_delete("wt22-many-front")
        r.ch.exchange_delete("wt22-many-side")
        r.delete()
        conn.close()


def test_publish_to_missing_exchange():
    """basic.publish to a missing exchange -> channel.close 404 "NOT_FOUND - no exchange
    'nope' in vhost '/'" (60, 40), with or without mandatory; the connection lives"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        conn.channel().exchange_delete("wt22-nope")
        text = "NOT_FOUND - no exchange 'wt22-nope' in vhost '/'"
        for mandatory in (False, True):
            with wt.opened(srv.addr, 1) as c:
                wt.publish(c, 1, "k", b"hi", exchange="wt22-nope", mandatory=mandatory)
                c.expect_channel_close(1, 404, text=text, ids=(60, 40))
                wt.send_pika(c, 1, spec.Channel.CloseOk())
                c.open_channel(1)
                c.close_connection()
        ch = wt.confirm_channel(conn)
        try:
            ch.basic_publish("wt22-nope", "k", b"hi")
            raise AssertionError("publish to a missing exchange was confirmed")
        except pe.ChannelClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (404, text), e
            wt.log("  pika: %r" % e)
        assert conn.is_open
        conn.close()


if __name__ == "__main__":
    wt.run([test_default_exchange, test_direct, test_fanout, test_topic_tutorial,
            test_topic_corner_cases, test_headers, test_once_per_queue,
            test_publish_to_missing_exchange])
