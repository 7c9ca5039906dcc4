"""The management HTTP API's object routes as RabbitMQ 3.10 answers them (src/mgmt/): list
pagination, sorting, filtering and column selection (api_list.c); GET of exchanges and
bindings (api_exchanges.c); exchange PUT and DELETE, queue PUT, DELETE and purge through the
AMQP methods' code (net.h); Debian's rabbitmqadmin listing, declaring and deleting through
them, listing vhosts, connections, channels, consumers and parameters, showing the overview,
and exporting definitions that it imports onto a fresh broker. Every test here passes against RabbitMQ 3.10 with its management plugin too:
WARREN_TEST_ADDR=127.0.0.1:5672 WARREN_TEST_MGMT_PORT=15672 (guest allowed from loopback).

A page of /api/queues out of 5,000 queues is timed and logged; WT_MGMT_QUEUES=100000 times
it at 100,000 (declared over one raw AMQP connection, pipelined)."""

import functools
import json
import os
import struct
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

http = wt.http
VH = "mgmt-objects"
VHQ = "mgmt-objects"  # the vhost in a path (no character to escape)
QUEUE_DECLARE_OK = (50, 11)
MANY = int(os.environ.get("WT_MGMT_QUEUES", "5000"))


def q(**params):
    return "?" + urllib.parse.urlencode(params)


class Vhost:
    """A vhost of the test's own, guest allowed everything; deleted (with its queues) after."""

    def __init__(self, srv):
        self.srv = srv

    def __enter__(self):
        st, _, body = http(self.srv, "PUT", "/api/vhosts/" + VHQ, {})
        assert st in (201, 204), (st, body)
        st, _, body = http(self.srv, "PUT", "/api/permissions/%s/guest" % VHQ,
                           {"configure": ".*", "write": ".*", "read": ".*"})
        assert st in (201, 204), (st, body)
        return self

    def __exit__(self, *exc):
        http(self.srv, "DELETE", "/api/vhosts/" + VHQ, timeout=120)


def declare_queues(srv, names, args_of=None, timeout=120):
    """Declares the queues in VH over one raw connection, pipelined (nowait, then one
    declare waited for): thousands in a second. args_of(name): a dict of arguments or None."""
    with wt.RawConn(srv.addr, timeout=timeout) as c:
        c.handshake(vhost=VH)
        c.open_channel(1)
        batch = []
        for i, name in enumerate(names):
            last = i == len(names) - 1
            args = struct.pack(">H", 0) + wt.shortstr(name) + bytes([0x10 if not last else 0])
            args += wt.table((args_of and args_of(name)) or {})
            batch.append(wt.method_frame(1, wt.QUEUE_DECLARE, args))
            if len(batch) == 1000 or last:
                c.send(b"".join(batch))
                batch = []
        c.expect(QUEUE_DECLARE_OK, channel=1)
        c.close_connection()


def get(srv, path, status=200):
    st, _, body = http(srv, "GET", path, timeout=60)
    assert st == status, (path, st, body)
    return body


def test_paging():
    """page, page_size, name (substring, case-insensitive; regex with use_regex), the paged
    reply's fields, and RabbitMQ's 400s for bad parameters and a page past the end"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        names = ["pgq-%02d" % i for i in range(25)] + ["other-%d" % i for i in range(3)]
        declare_queues(srv, names)
        base = "/api/queues/%s" % VHQ
        body = get(srv, base + q(page=1, page_size=10, name="pgq-"))
        assert sorted(body) == ["filtered_count", "item_count", "items", "page", "page_count",
                                "page_size", "total_count"], body.keys()
        assert (body["filtered_count"], body["item_count"], body["page"], body["page_count"],
                body["page_size"], body["total_count"]) == (25, 10, 1, 3, 10, 28), body
        assert [i["name"] for i in body["items"]] == names[:10]
        body = get(srv, base + q(page=3, page_size=10, name="PGQ-"))
        assert [i["name"] for i in body["items"]] == names[20:25], body
        assert body["item_count"] == 5
        # The page after the last one (empty) is 400, as is one past it.
        body = get(srv, base + q(page=4, page_size=10, name="pgq-"), status=400)
        assert body == {"error": "page_out_of_range",
                        "reason": "Page out of range, page: 4 page size: 10, len: 25"}, body
        body = get(srv, base + q(page=1, page_size=501), status=400)
        assert body == {"error": "invalid_pagination_parameters",
                        "reason": "Invalid pagination parameters: page number 1, page size 501"}
        body = get(srv, base + q(page=0), status=400)
        assert body == {"error": "invalid_pagination_parameters",
                        "reason": "Invalid pagination parameters: page number 0, "
                                  "page size undefined"}, body
        body = get(srv, base + q(page="x"), status=400)
        assert body == {"error": "bad_request", "reason": "Pagination parameters are invalid"}
        # Default page size 100; no name: no filter.
        body = get(srv, base + q(page=1))
        assert (body["page_size"], body["item_count"], body["filtered_count"]) == (100, 28, 28)
        assert [i["name"] for i in body["items"]] == sorted(names)
        body = get(srv, base + q(page=1, name="^PGQ-0[0-4]$", use_regex="true"))
        assert [i["name"] for i in body["items"]] == names[:5], body
        # Without page: a plain list, and no filtering by name (as RabbitMQ).
        body = get(srv, base + q(name="pgq-"))
        assert isinstance(body, list) and len(body) == 28, body
        # Other lists page the same way.
        body = get(srv, "/api/vhosts" + q(page=1, page_size=1, name=VH))
        assert [v["name"] for v in body["items"]] == [VH], body
        # RabbitMQ pages queues, exchanges, vhosts, connections and channels; users,
        # permissions and policies ignore page but take columns.
        body = get(srv, "/api/users" + q(page=1, columns="name"))
        assert {"name": "guest"} in body, body


def test_sort_and_columns():
    """sort (dotted keys; missing values first), sort_reverse, columns (dotted, in plain lists
    and in pages)"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        names = ["sc-%d" % i for i in range(6)]
        lengths = {"sc-1": 30, "sc-2": 10, "sc-4": 20}
        declare_queues(srv, names, lambda n: {"x-max-length": lengths[n]} if n in lengths
                       else None)
        base = "/api/queues/%s" % VHQ
        body = get(srv, base + q(sort="name", sort_reverse="true"))
        assert [i["name"] for i in body] == names[::-1], body
        body = get(srv, base + q(sort="arguments.x-max-length", columns="name"))
        assert body == [{"name": n} for n in ("sc-0", "sc-3", "sc-5", "sc-2", "sc-4", "sc-1")]
        body = get(srv, base + q(sort="arguments.x-max-length", sort_reverse="true", page=1,
                                 page_size=2, columns="name,arguments.x-max-length"))
        assert body["items"] == [{"name": "sc-1", "arguments": {"x-max-length": 30}},
                                 {"name": "sc-4", "arguments": {"x-max-length": 20}}], body
        body = get(srv, base + q(columns="name,durable", disable_stats="true"))
        assert body == [{"name": n, "durable": False} for n in names], body
        # by a count (selected without building every entry): ties by name
        conn = wt.pika_connect(srv.addr, virtual_host=VH)
        ch = conn.channel()
        ch.confirm_delivery()
        for name in ("sc-3", "sc-3", "sc-0"):
            ch.basic_publish("", name, b"x")
        conn.close()
        by_count = ["sc-1", "sc-2", "sc-4", "sc-5", "sc-0", "sc-3"]
        # RabbitMQ's statistics show the counts a few seconds later; Warren's at once
        def counts():
            return {i["name"]: i.get("messages") for i in get(srv, base + q(columns="name,messages"))}
        wt.wait_until(lambda: counts()["sc-3"] == 2 and counts()["sc-0"] == 1, 15,
                      "queue message counts shown")
        body = get(srv, base + q(sort="messages", columns="name"))
        assert [i["name"] for i in body] == by_count, body
        body = get(srv, base + q(sort="messages_ready", sort_reverse="true", page=1,
                                 page_size=3, columns="name,messages"))
        assert body["items"] == [{"name": "sc-3", "messages": 2}, {"name": "sc-0", "messages": 1},
                                 {"name": "sc-5", "messages": 0}], body
        body = get(srv, base + q(sort="consumers", page=2, page_size=4, columns="name"))
        assert body["items"] == [{"name": "sc-4"}, {"name": "sc-5"}], body


def test_exchanges_and_bindings():
    """GET of exchanges (amq.default in paths) and of bindings by source, destination, queue,
    vhost and properties key, with RabbitMQ's fields and properties_key encoding"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        conn = wt.pika_connect(srv.addr, virtual_host=VH)
        ch = conn.channel()
        ch.exchange_declare("ex-t", "topic")
        ch.queue_declare("bq")
        ch.queue_bind("bq", "ex-t", "a.b")
        ch.queue_bind("bq", "ex-t", "x y~z")
        ch.queue_bind("bq", "ex-t", "a.c", arguments={"x-k": 1})
        ch.exchange_bind("ex-t", "amq.topic", "k")
        conn.close()
        base = "/api/exchanges/%s" % VHQ
        body = get(srv, base + q(page=1, page_size=3, columns="name"))
        want = [{"name": ""}, {"name": "amq.direct"}, {"name": "amq.fanout"}]
        assert body["items"] == want, body
        names = [x["name"] for x in get(srv, base + q(columns="name"))]
        # RabbitMQ's amq.rabbitmq.trace aside (Warren has no tracing), the same exchanges.
        assert [n for n in names if n != "amq.rabbitmq.trace"] == [
            "", "amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic", "ex-t"], names
        assert body["total_count"] == len(names), body
        body = get(srv, base + "/ex-t")
        want = {"name": "ex-t", "vhost": VH, "type": "topic", "durable": False,
                "auto_delete": False, "internal": False, "arguments": {}}
        assert {k: body.get(k) for k in want} == want, body
        body = get(srv, base + "/amq.default")
        assert (body["name"], body["type"], body["durable"]) == ("", "direct", True), body
        get(srv, base + "/nope", status=404)
        get(srv, "/api/exchanges/nope", status=404)

        def b(source, dest, rk, dtype="queue", args=None, key=None):
            return {"source": source, "vhost": VH, "destination": dest,
                    "destination_type": dtype, "routing_key": rk, "arguments": args or {},
                    "properties_key": key or rk}

        body = get(srv, base + "/ex-t/bindings/source")
        assert len(body) == 3 and body[1]["properties_key"].startswith("a.c~"), body
        akey = body[1]["properties_key"]
        assert body == [b("ex-t", "bq", "a.b"), b("ex-t", "bq", "a.c", args={"x-k": 1}, key=akey),
                        b("ex-t", "bq", "x y~z", key="x+y%7Ez")], body
        body = get(srv, base + "/ex-t/bindings/destination")
        assert body == [b("amq.topic", "ex-t", "k", dtype="exchange")], body
        body = get(srv, "/api/queues/%s/bq/bindings" % VHQ)
        assert body == [b("", "bq", "bq")] + [
            b("ex-t", "bq", "a.b"), b("ex-t", "bq", "a.c", args={"x-k": 1}, key=akey),
            b("ex-t", "bq", "x y~z", key="x+y%7Ez")], body
        all_vh = get(srv, "/api/bindings/%s" % VHQ)
        assert all_vh == [b("", "bq", "bq"), b("amq.topic", "ex-t", "k", dtype="exchange"),
                          b("ex-t", "bq", "a.b"),
                          b("ex-t", "bq", "a.c", args={"x-k": 1}, key=akey),
                          b("ex-t", "bq", "x y~z", key="x+y%7Ez")], all_vh
        assert all(x in get(srv, "/api/bindings") for x in all_vh)
        body = get(srv, "/api/bindings/%s/e/ex-t/q/bq" % VHQ)
        assert [x["routing_key"] for x in body] == ["a.b", "a.c", "x y~z"], body
        for key, rk in (("a.b", "a.b"), (akey, "a.c"), ("x+y%7Ez", "x y~z")):
            body = get(srv, "/api/bindings/%s/e/ex-t/q/bq/%s" % (VHQ, urllib.parse.quote(key)))
            assert body["routing_key"] == rk, (key, body)
        get(srv, "/api/bindings/%s/e/ex-t/q/bq/nokey" % VHQ, status=404)
        get(srv, "/api/bindings/%s/e/amq.topic/e/ex-t/k" % VHQ)
        # Bindings of a missing exchange: an empty list, not 404.
        assert get(srv, "/api/bindings/%s/e/nope/q/bq" % VHQ) == []
        assert get(srv, "/api/bindings/%s/e/ex-t/q/nope" % VHQ) == []
        assert get(srv, base + "/nope/bindings/source") == []
        get(srv, "/api/bindings/nope", status=404)
        body = get(srv, base + "/amq.default/bindings/source")
        assert body == [b("", "bq", "bq")], body
        assert get(srv, "/api/bindings/%s/e/amq.default/q/bq" % VHQ) == body


def test_exchange_put_delete():
    """PUT declares an exchange (201 new, 204 equivalent, 400 with the AMQP text otherwise),
    DELETE deletes it (if-unused; 404 when missing); the default and amq.* exchanges are
    refused as "Access refused."; a user's configure permission applies"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        base = "/api/exchanges/%s" % VHQ

        def call(method, path, body=None, status=None, auth=("guest", "guest")):
            st, _, got = http(srv, method, base + path, body, auth=auth)
            assert st == status, (method, path, body, st, got)
            return got

        call("PUT", "/px1", {}, 201)
        got = get(srv, base + "/px1")
        assert (got["type"], got["durable"]) == ("direct", False), got
        call("PUT", "/px2", {"type": "fanout", "durable": "true"}, 201)
        call("PUT", "/px2", {"type": "fanout", "durable": True}, 204)
        got = call("PUT", "/px2", {"type": "topic", "durable": True}, 400)
        assert got == {"error": "bad_request", "reason":
                       "inequivalent arg 'type' for exchange 'px2' in vhost '%s': received "
                       "'topic' but current is 'fanout'" % VH}, got
        got = call("PUT", "/px2", {"type": "fanout"}, 400)
        assert got["reason"] == ("inequivalent arg 'durable' for exchange 'px2' in vhost '%s': "
                                 "received 'false' but current is 'true'" % VH), got
        got = call("PUT", "/px3", {"type": "bogus"}, 400)
        assert got["reason"] == "unknown exchange type 'bogus'", got
        got = call("PUT", "/px4", {"arguments": {"alternate-exchange": 1}}, 400)
        assert got["reason"] == ("invalid type 'long' for arg 'alternate-exchange' in exchange "
                                 "'px4' in vhost '%s'" % VH), got
        for path in ("/amq.default", "/amq.foo"):
            got = call("PUT", path, {"type": "direct"}, 401)
            assert got == {"error": "not_authorised", "reason": "Access refused."}, got
        call("PUT", "/amq.direct", {"type": "direct", "durable": True}, 204)
        got = call("PUT", "/px5", "xx", 400)
        assert got == {"error": "bad_request", "reason": "not_json"}, got
        st, _, got = http(srv, "PUT", "/api/exchanges/nope/x", {"type": "direct"})
        assert (st, got) == (404, {"error": "not_found", "reason": "vhost_not_found"}), got
        conn = wt.pika_connect(srv.addr, virtual_host=VH)
        conn.channel().exchange_bind("px2", "px1", "r")
        conn.close()
        got = call("DELETE", "/px1?if-unused=true", None, 400)
        assert got["reason"] == "exchange 'px1' in vhost '%s' in use" % VH, got
        call("DELETE", "/px1", None, 204)
        call("DELETE", "/px1", None, 404)
        for path in ("/amq.direct", "/amq.default"):
            got = call("DELETE", path, None, 401)
            assert got["reason"] == "Access refused.", got
        # A management user with configure on "^mine" only.
        st, _, _ = http(srv, "PUT", "/api/users/mgr74", {"password": "p", "tags": "management"})
        assert st in (201, 204)
        st, _, _ = http(srv, "PUT", "/api/permissions/%s/mgr74" % VHQ,
                        {"configure": "^mine", "write": ".*", "read": ".*"})
        assert st in (201, 204)
        call("PUT", "/mine-x", {"type": "direct"}, 201, auth=("mgr74", "p"))
        got = call("PUT", "/other-x", {"type": "direct"}, 401, auth=("mgr74", "p"))
        assert got == {"error": "not_authorised", "reason": "Access refused."}, got
        call("DELETE", "/px2", None, 401, auth=("mgr74", "p"))
        call("DELETE", "/mine-x", None, 204, auth=("mgr74", "p"))
        http(srv, "DELETE", "/api/users/mgr74")


def test_queue_delete_purge():
    """DELETE of a queue (if-empty, if-unused; 404 when missing) and of its contents (purge),
    as queue.delete and queue.purge with the user's permissions"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        conn = wt.pika_connect(srv.addr, virtual_host=VH)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("dq1")
        ch.queue_declare("dq2")
        for _ in range(2):
            ch.basic_publish("", "dq1", b"x")
        base = "/api/queues/%s" % VHQ
        st, _, got = http(srv, "DELETE", base + "/dq1?if-empty=true")
        assert (st, got) == (400, {"error": "bad_request", "reason":
                                   "queue 'dq1' in vhost '%s' not empty" % VH}), (st, got)
        st, _, got = http(srv, "DELETE", base + "/dq1/contents")
        assert st == 204, (st, got)
        assert ch.queue_declare("dq1", passive=True).method.message_count == 0
        st, _, got = http(srv, "DELETE", base + "/dq1?if-empty=true")
        assert st == 204, (st, got)
        for path in ("/dq1", "/dq1/contents"):
            st, _, got = http(srv, "DELETE", base + path)
            assert (st, got) == (404, {"error": "Object Not Found", "reason": "Not Found"}), got
        ch.basic_consume("dq2", lambda *a: None)
        st, _, got = http(srv, "DELETE", base + "/dq2?if-unused=true")
        assert (st, got["reason"]) == (400, "queue 'dq2' in vhost '%s' in use" % VH), (st, got)
        st, _, _ = http(srv, "PUT", "/api/users/mgr74", {"password": "p", "tags": "management"})
        assert st in (201, 204)
        st, _, _ = http(srv, "PUT", "/api/permissions/%s/mgr74" % VHQ,
                        {"configure": "^mine", "write": ".*", "read": "^mine"})
        assert st in (201, 204)
        for path in ("/dq2", "/dq2/contents"):
            st, _, got = http(srv, "DELETE", base + path, auth=("mgr74", "p"))
            assert (st, got) == (401, {"error": "not_authorised", "reason": "Access refused."})
        st, _, got = http(srv, "DELETE", base + "/dq2")
        assert st == 204, (st, got)
        conn.close()
        http(srv, "DELETE", "/api/users/mgr74")


def test_queue_put():
    """PUT declares a queue as queue.declare does: 201 new, 204 equivalent, 400 with the AMQP
    text for an inequivalent or invalid one, 401 for amq.*, 404 for a missing vhost"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        base = "/api/queues/%s" % VHQ

        def put(path, body, status):
            st, _, got = http(srv, "PUT", base + path, body)
            assert st == status, (path, body, st, got)
            return got

        put("/pq1", {"durable": "true", "auto_delete": "false", "arguments": {}}, 201)
        put("/pq1", {"durable": True}, 204)
        got = put("/pq1", {}, 400)
        assert got == {"error": "bad_request", "reason":
                       "inequivalent arg 'durable' for queue 'pq1' in vhost '%s': received "
                       "'false' but current is 'true'" % VH}, got
        got = put("/pq2", {"arguments": {"x-max-length": "x"}}, 400)
        assert got["reason"] == ("invalid arg 'x-max-length' for queue 'pq2' in vhost '%s': "
                                 "\"expected integer, got longstr\"" % VH), got
        got = put("/amq.q", {}, 401)
        assert got == {"error": "not_authorised", "reason": "Access refused."}, got
        put("/pq3", {"arguments": {"x-max-length": 5, "x-queue-type": "classic"}}, 201)
        got = get(srv, base + "/pq3")
        assert (got["durable"], got["arguments"]) == (
            False, {"x-max-length": 5, "x-queue-type": "classic"}), got
        st, _, got = http(srv, "PUT", "/api/queues/nope/q", {})
        assert (st, got) == (404, {"error": "not_found", "reason": "vhost_not_found"}), got


def rabbitmqadmin(srv, *args, vhost=VH, fmt="tsv", quiet=True):
    """Runs Debian's rabbitmqadmin against srv as guest (-V vhost unless None); asserts it
    exits 0 and returns what it printed."""
    import subprocess
    tool = wt.needs("rabbitmqadmin", "apt-get install rabbitmq-server")
    out = subprocess.run([tool, "-H", "127.0.0.1", "-P", str(srv.mgmt_port), "-u", "guest",
                          "-p", "guest", "-f", fmt] + (["-V", vhost] if vhost else []) +
                         (["-q"] if quiet else []) + list(args),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def test_rabbitmqadmin():
    """Debian's rabbitmqadmin (RabbitMQ's own HTTP client) declares, lists and deletes
    queues, exchanges and bindings, publishes and gets messages, and lists nodes"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        admin = functools.partial(rabbitmqadmin, srv)
        admin("declare", "queue", "name=ra1", "durable=false")
        admin("declare", "exchange", "name=rx1", "type=fanout")
        # (messages: RabbitMQ fills it in with its first statistics, seconds later)
        assert admin("list", "queues", "name", "durable") == "ra1\tFalse\n"
        names = admin("list", "exchanges", "name", "type").splitlines()
        assert "rx1\tfanout" in names and "amq.topic\ttopic" in names, names
        assert admin("list", "bindings", "source", "destination", "routing_key") == (
            "\tra1\tra1\n")
        # declare/delete binding: POST .../e/rx1/q/ra1, then DELETE by its properties_key
        admin("declare", "binding", "source=rx1", "destination=ra1", "routing_key=k 1")
        assert admin("list", "bindings", "source", "routing_key", "properties_key") == (
            "\tra1\tra1\nrx1\tk 1\tk+1\n")
        # publish through amq.default and rx1 (fanout), then get: ack_requeue_true leaves
        # them in the queue, marked redelivered; ack_requeue_false takes them
        out = admin("publish", "routing_key=ra1", "payload=hello", quiet=False)
        assert out == "Message published\n", out
        out = admin("publish", "exchange=rx1", "routing_key=x", "payload=world",
                    'properties={"content_type": "text/plain"}', quiet=False)
        assert out == "Message published\n", out
        out = admin("publish", "routing_key=nowhere", "payload=lost", quiet=False)
        assert out == "Message published but NOT routed\n", out
        got = json.loads(admin("get", "queue=ra1", "count=5", fmt="raw_json"))
        assert [(m["routing_key"], m["exchange"], m["message_count"], m["payload"],
                 m["redelivered"], m["properties"]) for m in got] == [
            ("ra1", "", 1, "hello", False, []),
            ("x", "rx1", 0, "world", False, {"content_type": "text/plain"})], got
        got = json.loads(admin("get", "queue=ra1", "count=1", "ackmode=ack_requeue_false",
                               fmt="raw_json"))
        assert [(m["payload"], m["redelivered"], m["message_count"]) for m in got] == [
            ("hello", True, 1)], got
        admin("delete", "binding", "source=rx1", "destination=ra1", "destination_type=queue",
              "properties_key=k+1")
        assert admin("list", "bindings", "source", "routing_key") == "\tra1\n"
        admin("delete", "queue", "name=ra1")
        admin("delete", "exchange", "name=rx1")
        # list nodes: GET /api/nodes (one node, running, disc)
        rows = admin("list", "nodes", "name", "type", "running").splitlines()
        assert len(rows) == 1 and rows[0].split("\t")[1:] == ["disc", "True"], rows
        assert admin("list", "queues", "name") == ""
        assert "rx1" not in admin("list", "exchanges", "name").split()


def test_rabbitmqadmin_lists():
    """rabbitmqadmin's list vhosts, connections, channels, consumers, parameters and show
    overview (their default columns and chosen ones) exit 0 with the expected rows"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        admin = functools.partial(rabbitmqadmin, srv)
        admin("declare", "queue", "name=rl1", "durable=false")
        conn = wt.pika_connect(srv.addr, virtual_host=VH,
                               client_properties={"connection_name": "ra-lists"})
        ch = conn.channel()
        ch.basic_consume("rl1", lambda *a: None, consumer_tag="ra-tag")
        st, _, body = http(srv, "PUT", "/api/parameters/operator_policy/%s/rl-op" % VHQ,
                           {"value": {"pattern": "^rl", "definition": {"max-length": 9},
                                      "priority": 1, "apply-to": "queues"}})
        assert st == 201, (st, body)
        assert VH in admin("list", "vhosts", "name").split("\n")
        assert admin("list", "vhosts").count("\n") >= 2  # name, messages: one row each
        # RabbitMQ lists connections and channels a few seconds after they opened
        wt.wait_until(lambda: "\tguest\t1\n" in admin("list", "connections"), 15,
                      "connection listed", conns=[conn])
        rows = admin("list", "connections", "user", "vhost", "client_properties.connection_name")
        assert "guest\t%s\tra-lists" % VH in rows.splitlines(), rows
        wt.wait_until(lambda: " (1)\tguest\n" in admin("list", "channels"), 15,
                      "channel listed", conns=[conn])
        rows = admin("list", "channels", "vhost", "number", "consumer_count").splitlines()
        assert "%s\t1\t1" % VH in rows, rows
        rows = admin("list", "consumers", "queue.name", "consumer_tag", "ack_required")
        assert rows == "rl1\tra-tag\tTrue\n", rows
        assert admin("list", "consumers")  # every column, one row
        rows = [r.split("\t") for r in
                admin("list", "parameters", "vhost", "component", "name", "value").splitlines()]
        assert [r[:3] + [json.loads(r[3])] for r in rows if r[0] == VH] == [
            [VH, "operator_policy", "rl-op", {"pattern": "^rl", "definition": {"max-length": 9},
                                              "priority": 1, "apply-to": "queues"}]], rows
        assert admin("list", "parameters").count("\n") >= 1
        wt.wait_until(lambda: admin("show", "overview", "object_totals.queues") != "0\n", 15,
                      "queues counted", conns=[conn])
        row = admin("show", "overview").rstrip("\n").split("\t")
        overview = http(srv, "GET", "/api/overview")[2]
        assert row[:2] == [overview["rabbitmq_version"], overview["cluster_name"]], row
        assert len(row) == 4 and int(row[3]) >= 1, row
        conn.close()


def test_rabbitmqadmin_export_import():
    """rabbitmqadmin export, then import onto a fresh broker: queues, exchanges, bindings,
    users, permissions, policies and global parameters come back"""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "defs.json")
        defs = export_some(path)
        want_queue = {"name": "re1", "vhost": VH, "durable": True, "auto_delete": False,
                      "arguments": {}}
        assert want_queue in [{k: x[k] for k in want_queue} for x in defs["queues"]], defs
        import_onto_fresh(path)


def export_some(path):
    """Declares objects of every kind in a broker, exports them with rabbitmqadmin into
    path, deletes them; returns the definitions."""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        admin = functools.partial(rabbitmqadmin, srv)
        admin("declare", "queue", "name=re1", "durable=true")
        admin("declare", "exchange", "name=rex1", "type=topic", "durable=true")
        admin("declare", "binding", "source=rex1", "destination=re1", "routing_key=a.#")
        admin("declare", "user", "name=re-user", "password=pw", "tags=monitoring", vhost=None)
        admin("declare", "permission", "vhost=" + VH, "user=re-user", "configure=^re",
              "write=.*", "read=.*", vhost=None)
        admin("declare", "policy", "name=re-pol", "pattern=^re", 'definition={"max-length": 3}',
              "apply-to=queues")
        st, _, body = http(srv, "PUT", "/api/global-parameters/re-global", {"value": {"k": "v"}})
        assert st == 201, (st, body)
        try:
            out = admin("export", path, vhost=None, quiet=False)
            assert out.startswith("Exported definitions"), out
            with open(path) as f:
                return json.load(f)
        finally:
            admin("delete", "user", "name=re-user", vhost=None)
            http(srv, "DELETE", "/api/global-parameters/re-global")


def import_onto_fresh(path):
    """Imports path with rabbitmqadmin into a fresh broker and checks what came back."""
    with wt.server(mgmt=True) as fresh:
        out = rabbitmqadmin(fresh, "import", path, vhost=None, quiet=False)
        assert out.startswith("Uploaded definitions"), out
        admin = functools.partial(rabbitmqadmin, fresh)
        try:
            assert admin("list", "queues", "name", "durable") == "re1\tTrue\n"
            assert "rex1\ttopic" in admin("list", "exchanges", "name", "type").splitlines()
            assert admin("list", "bindings", "source", "destination", "routing_key").splitlines(
            ) == ["\tre1\tre1", "rex1\tre1\ta.#"]
            assert "re-user\tmonitoring" in admin("list", "users", "name", "tags").splitlines()
            assert "%s\tre-user\t^re" % VH in admin("list", "permissions", "vhost", "user",
                                                      "configure").splitlines()
            assert admin("list", "policies", "vhost", "name", "pattern", "definition").split(
                "\n").count('%s\tre-pol\t^re\t{"max-length": 3}' % VH) == 1
            st, _, body = http(fresh, "GET", "/api/global-parameters/re-global")
            assert (st, body) == (200, {"name": "re-global", "value": {"k": "v"}}), (st, body)
        finally:
            if fresh.external:
                http(fresh, "DELETE", "/api/users/re-user")
                http(fresh, "DELETE", "/api/global-parameters/re-global")
                http(fresh, "DELETE", "/api/vhosts/" + VHQ)


def test_many_queues_page():
    """a page of /api/queues out of many queues (5,000; WT_MGMT_QUEUES sets it) is the right
    page, answered quickly (timed and logged: the figure is reported, not asserted)"""
    with wt.server(mgmt=True) as srv, Vhost(srv):
        names = ["many-%06d" % i for i in range(MANY)]
        t0 = time.monotonic()
        declare_queues(srv, names, timeout=600)
        wt.log("  declared %d queues in %.2f s" % (MANY, time.monotonic() - t0))
        for params in ({"page": 2, "page_size": 100},
                       {"page": 3, "page_size": 100, "sort": "name", "sort_reverse": "true"},
                       {"page": 1, "page_size": 100, "name": "many-0001", "use_regex": "true"}):
            best = None
            for _ in range(5):
                t0 = time.monotonic()
                body = get(srv, "/api/queues/%s" % VHQ + q(**params))
                dt = time.monotonic() - t0
                best = dt if best is None else min(best, dt)
            wt.log("  GET /api/queues/%s?%s: %.1f ms (best of 5), %d items"
                   % (VHQ, urllib.parse.urlencode(params), best * 1000, body["item_count"]))
            assert body["total_count"] == MANY, body["total_count"]
            if "sort_reverse" in params:
                assert [i["name"] for i in body["items"]] == names[::-1][200:300]
            elif "name" in params:
                want = [n for n in names if "many-0001" in n][:100]
                assert [i["name"] for i in body["items"]] == want
            else:
                assert [i["name"] for i in body["items"]] == names[100:200]
        t0 = time.monotonic()
        body = get(srv, "/api/queues/%s" % VHQ + q(page=1, sort="messages"))
        wt.log("  page 1 sorted by messages: %.1f ms"
               % ((time.monotonic() - t0) * 1000))
        assert body["filtered_count"] == MANY
        json.dumps(body)


if __name__ == "__main__":
    wt.run([test_paging, test_sort_and_columns, test_exchanges_and_bindings,
            test_exchange_put_delete, test_queue_delete_purge, test_queue_put,
            test_rabbitmqadmin, test_rabbitmqadmin_lists, test_rabbitmqadmin_export_import,
            test_many_queues_page], timeout=900)
