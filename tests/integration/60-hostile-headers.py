"""Hostile headers bindings: a client binds 5 queues to a headers exchange with patterns of
8,000 keys and publishes messages of ~115 KB carrying 8,000 headers. Matching sorts the
pattern and the headers by key and merges them, so a publish costs O(n log n) in the number
of keys, not O(n^2) (which took ~0.8 s per binding and publish on the single event loop):
the watcher client never stalls, each message reaches exactly the queues whose patterns
match (x-match all and any, a value that differs, a key that is missing), and the broker's
RSS stays bounded. Names start with wt60-."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

import pika  # noqa: E402

N = 8000  # keys per pattern, headers per message: 11 bytes each as 'I' values
MESSAGES = 4
BODY = 115 * 1024 - 11 * N  # with the headers, ~115 KB per publish
EXCHANGE = "wt60-headers"
RSS_MARGIN_KIB = 8 * 1024


def key(i):
    return "h%04d" % i


# queue -> (pattern, whether the message matches it)
BINDINGS = {
    "wt60-all": (dict({"x-match": "all"}, **{key(i): i for i in range(N)}), True),
    "wt60-any-one": (dict({"x-match": "any"},
                          **{key(i): i if i == 4321 else -i - 1 for i in range(N)}), True),
    "wt60-all-last-differs": ({key(i): i if i < N - 1 else -1 for i in range(N)}, False),
    "wt60-any-none": (dict({"x-match": "any"}, **{key(i): -i - 1 for i in range(N)}), False),
    "wt60-all-one-missing": ({key(i): i for i in range(1, N + 1)}, False),
}


@wt.needs_process
def test_big_patterns_and_headers():
    """5 bindings of 8,000 keys, 4 publishes of 8,000 headers (in reverse key order): the
    watcher never waits over a second, the all and any queues that match get every message
    (intact: 8,000 headers, the whole body), the others none, and RSS grows by less than
    8 MiB"""
    headers = {key(i): i for i in reversed(range(N))}
    body = b"b" * BODY
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        wt.cleanup(srv.addr, *BINDINGS, exchanges=[EXCHANGE])
        ch.exchange_declare(EXCHANGE, "headers")
        with watcher.Watcher(srv.addr) as w:
            for q, (pattern, _) in BINDINGS.items():
                ch.queue_declare(q)
                ch.queue_bind(q, EXCHANGE, "", arguments=pattern)
            w.check("binding 5 queues with %d-key patterns" % N)
            before = srv.rss_kib()
            for i in range(MESSAGES):
                ch.basic_publish(EXCHANGE, "", body, pika.BasicProperties(headers=headers))
                w.check("publish %d of %d with %d headers" % (i + 1, MESSAGES, N))
            after = srv.rss_kib()
        for q, (_, match) in BINDINGS.items():
            n = ch.queue_declare(q, passive=True).method.message_count
            wt.log("  %s: %d messages" % (q, n))
            assert n == (MESSAGES if match else 0), "%s holds %d messages, expected %d" % (
                q, n, MESSAGES if match else 0)
        m, props, got = ch.basic_get("wt60-all", auto_ack=True)
        assert m is not None and got == body, "wt60-all: body of %d bytes, expected %d" % (
            len(got or b""), len(body))
        assert props.headers == headers, "wt60-all: %d headers, expected %d" % (
            len(props.headers or {}), N)
        srv.check_rss_growth(before, after, RSS_MARGIN_KIB, "over %d publishes" % MESSAGES)
        ch.exchange_delete(EXCHANGE)
        for q in BINDINGS:
            ch.queue_delete(q)
        conn.close()


if __name__ == "__main__":
    wt.run([test_big_patterns_and_headers])
