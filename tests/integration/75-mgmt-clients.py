"""The management HTTP API as the tools that poll it call it, request for request: KEDA's
RabbitMQ scaler (one queue by name, and its regex query), Celery Flower's broker view, and
amqp091-go's test helper that lists connections and closes one; then the routes added for
issue 13 (src/mgmt/api_exchanges.c, api_messages.c, api_health.c): binding POST/DELETE,
publish and get, the fields queues and connections lacked, /api/nodes and the health checks,
each as RabbitMQ 3.10.8 answers them.
Every test here but those marked needs_process (a memory alarm by configuration) passes
against RabbitMQ 3.10 with its management plugin too:
WARREN_TEST_ADDR=127.0.0.1:5672 WARREN_TEST_MGMT_PORT=15672 (guest allowed from loopback)."""

import base64
import json
import os
import re
import socket
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

http = wt.http
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
# RabbitMQ 3.10's idle_since: ISO 8601 with milliseconds and the offset
IDLE_SINCE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def url_get(srv, url, timeout):
    """GET url with guest's basic credentials as Go's net/http and tornado send them."""
    req = urllib.request.Request(url)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


def publish(srv, queue, n, body=b"m"):
    conn = wt.pika_connect(srv.addr)
    ch = conn.channel()
    ch.queue_declare(queue)
    for _ in range(n):
        ch.basic_publish("", queue, body)
    conn.close()


def delete_queues(srv, *names):
    for name in names:
        http(srv, "DELETE", "/api/queues/%2F/" + urllib.parse.quote(name, ""))


def test_keda():
    """KEDA's scaler in HTTP mode: GET /api/queues/%2F/{url.QueryEscape(name)} reading
    messages, messages_ready and the publish and deliver_get rates (absent on an idle queue:
    read as 0), and with useRegex GET /api/queues/%2F?page=1&use_regex=true&pagination=false
    &name={QueryEscape(regex)}&page_size=100 reading items[] (any non-200 is an error)"""
    with wt.server(mgmt=True) as srv:
        base = "http://127.0.0.1:%d" % srv.mgmt_port
        publish(srv, "keda-work.1", 3)
        publish(srv, "keda-work.2", 2)
        publish(srv, "keda-other", 1)
        try:
            name = urllib.parse.quote_plus("keda-work.1")

            def depth():
                st, info = url_get(srv, "%s/api/queues/%%2F/%s" % (base, name), 2)
                assert st == 200
                return info

            # RabbitMQ fills in the counts with its next statistics event
            wt.wait_until(lambda: depth().get("messages") == 3, 15, "messages counted")
            info = depth()
            assert info["messages_ready"] == 3, info
            ms = info.get("message_stats", {})
            for key in ("publish_details", "deliver_get_details"):
                assert isinstance(ms.get(key, {"rate": 0.0})["rate"], (int, float)), ms
            regex = urllib.parse.quote_plus(r"^keda-work\.\d$")
            url = ("%s/api/queues%s?page=1&use_regex=true&pagination=false&name=%s&page_size=%d"
                   % (base, "/%2F", regex, 100))
            st, info = url_get(srv, url, 2)
            assert st == 200 and info["page_count"] == 1, info
            got = sorted((q["name"], q["messages"]) for q in info["items"])
            assert got == [("keda-work.1", 3), ("keda-work.2", 2)], got
            assert info["filtered_count"] == 2 and info["item_count"] == 2, info
        finally:
            delete_queues(srv, "keda-work.1", "keda-work.2", "keda-other")


def test_flower():
    """Celery Flower's broker view (flower/utils/broker.py, class RabbitMQ; Debian has no
    flower package, so its request is made as it makes it): broker_url amqp://...:5672//
    gives vhost quote("/", "") = %2F, the URL urljoin(http_api, "queues/%2F") with
    http_api "http://guest:guest@host:port/api/", basic credentials, 1 s to connect and 2 s
    for the answer; it keeps the entries whose name is one of its queues and shows name,
    messages, messages_ready, messages_unacknowledged, consumers and idle_since"""
    with wt.server(config={"collect_statistics_interval": 500}, mgmt=True) as srv:
        publish(srv, "celery", 4)
        try:
            http_api = "http://guest:guest@127.0.0.1:%d/api/" % srv.mgmt_port
            vhost = urllib.parse.quote("/", "") or "/"
            url = urllib.parse.urljoin(http_api, "queues/" + vhost)
            assert url.endswith("/api/queues/%2F"), url
            parsed = urllib.parse.urlparse(url)
            sock = socket.create_connection((parsed.hostname, parsed.port), timeout=1.0)
            sock.settimeout(2.0)
            auth = base64.b64encode(b"guest:guest").decode()
            sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Basic %s\r\n"
                          "Connection: close\r\n\r\n" % (parsed.path, parsed.hostname,
                                                         parsed.port, auth)).encode())
            # read as tornado reads: the body by its length (or chunks), not to EOF
            resp = http_client_response(sock)
            sock.close()
            assert resp.status == 200, resp.status
            body = resp.read()

            def celery_queue():
                st, _, info = http(srv, "GET", "/api/queues/%2F")
                return [q for q in info if q["name"] in ["celery"]]

            wt.wait_until(lambda: celery_queue()[0].get("messages") == 4, 15,
                          "messages counted")
            mine = [q for q in json.loads(body) if q["name"] in ["celery"]]
            assert len(mine) == 1, mine
            # idle_since: once the queue had no traffic for a statistics interval
            wt.wait_until(lambda: "idle_since" in celery_queue()[0], 15, "idle_since shown")
            q = celery_queue()[0]
            assert (q["messages"], q["messages_ready"], q["messages_unacknowledged"],
                    q["consumers"]) == (4, 4, 0, 0), q
            assert IDLE_SINCE.match(q["idle_since"]), q["idle_since"]
        finally:
            delete_queues(srv, "celery")


def http_client_response(sock):
    """The answer on sock read by http.client (Content-Length or chunked)."""
    import http.client
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp


def test_amqp091_go():
    """amqp091-go's integration helper: GET /api/connections/ (trailing slash), the
    connection found by client_properties.connection_name, then DELETE
    /api/connections/{url.PathEscape(name)}: 204, and the client sees 320 CONNECTION_FORCED"""
    import pika
    with wt.server(mgmt=True) as srv:
        host, port = srv.addr
        params = pika.ConnectionParameters(
            host=host, port=port, credentials=pika.PlainCredentials("guest", "guest"),
            client_properties={"connection_name": "amqp091-go-test"})
        conn = pika.BlockingConnection(params)

        def named():
            st, _, conns = http(srv, "GET", "/api/connections/")
            assert st == 200, conns
            return [c for c in conns
                    if c.get("client_properties", {}).get("connection_name") ==
                    "amqp091-go-test"]

        wt.wait_until(lambda: len(named()) == 1, 15, "the connection listed")
        name = named()[0]["name"]
        assert " -> " in name, name
        st, _, body = http(srv, "DELETE", "/api/connections/" + urllib.parse.quote(name, ""),
                           headers={"X-Reason": "test closing"})
        assert st == 204, body
        try:
            conn.process_data_events(time_limit=5)
            conn.process_data_events(time_limit=1)
            raise AssertionError("connection not closed")
        except pika.exceptions.ConnectionClosedByBroker as e:
            assert e.reply_code == 320 and e.reply_text == "CONNECTION_FORCED - test closing", e


def test_bindings_post_delete():
    """POST /api/bindings/{vhost}/e/{src}/q|e/{dst}: 201 with the Location RabbitMQ sends
    (the destination segment and the properties key, quoted once more); 404 with the AMQP
    text for a missing source or destination, 404 vhost_not_found, 401 on the default
    exchange, 400 for bad arguments; DELETE .../{props}: 204, then 404"""
    with wt.server(mgmt=True) as srv:
        st, _, _ = http(srv, "PUT", "/api/queues/%2F/bq", {})
        assert st == 201
        st, _, _ = http(srv, "PUT", "/api/exchanges/%2F/bx", {"type": "topic"})
        assert st == 201
        try:
            base = "/api/bindings/%2F/e/bx/q/bq"
            cases = [({"routing_key": "k"}, "bq/k"), ({}, "bq/~"),
                     ({"routing_key": "a b/c~d"}, "bq/a%2Bb%252Fc%257Ed")]
            for body, loc in cases:
                st, hdrs, reply = http(srv, "POST", base, body)
                assert (st, hdrs.get("location"), reply) == (201, loc, None), (body, st, hdrs)
            st, _, listed = http(srv, "GET", base)
            keys = sorted(b["properties_key"] for b in listed)
            assert keys == ["a+b%2Fc%7Ed", "k", "~"], keys
            # with arguments the key carries a hash, whatever it is, the same in both places
            st, hdrs, _ = http(srv, "POST", base, {"routing_key": "r", "arguments": {"x": 1}})
            assert st == 201, st
            key = hdrs["location"].split("/", 1)[1]
            assert key.startswith("r~"), key
            st, _, one = http(srv, "GET", base + "/" + key)
            assert st == 200 and one["arguments"] == {"x": 1}, one
            st, _, _ = http(srv, "DELETE", base + "/" + key)
            assert st == 204
            st, _, body = http(srv, "DELETE", base + "/" + key)
            assert (st, body) == (404, NOT_FOUND), body
            st, _, _ = http(srv, "DELETE", base + "/" + urllib.parse.quote("a+b%2Fc%7Ed", ""))
            assert st == 204
            # exchange to exchange
            st, hdrs, _ = http(srv, "POST", "/api/bindings/%2F/e/bx/e/amq.direct",
                               {"routing_key": "z"})
            assert (st, hdrs.get("location")) == (201, "amq.direct/z"), (st, hdrs)
            st, _, listed = http(srv, "GET", "/api/exchanges/%2F/bx/bindings/source")
            assert [(b["destination"], b["destination_type"], b["routing_key"])
                    for b in listed] == [("amq.direct", "exchange", "z"),
                                         ("bq", "queue", ""), ("bq", "queue", "k")], listed
            st, _, _ = http(srv, "DELETE", "/api/bindings/%2F/e/bx/e/amq.direct/z")
            assert st == 204
            errors = [
                ("/api/bindings/%2F/e/nox/q/bq", {}, 404,
                 {"error": "not_found", "reason": "no exchange 'nox' in vhost '/'"}),
                ("/api/bindings/%2F/e/bx/q/noq", {}, 404,
                 {"error": "not_found", "reason": "no queue 'noq' in vhost '/'"}),
                ("/api/bindings/nov/e/bx/q/bq", {}, 404,
                 {"error": "not_found", "reason": "vhost_not_found"}),
                ("/api/bindings/%2F/e/amq.default/q/bq", {"routing_key": "z"}, 401,
                 {"error": "not_authorised", "reason": "Access refused."}),
                ("/api/bindings/%2F/e/amq.headers/q/bq", {"arguments": {"x-match": "bogus"}},
                 400, {"error": "bad_request", "reason": "Invalid x-match field value "
                       "<<\"bogus\">>; expected all, any, all-with-x, or any-with-x"}),
            ]
            for path, body, status, reply in errors:
                st, _, got = http(srv, "POST", path, body)
                assert (st, got) == (status, reply), (path, st, got)
        finally:
            http(srv, "DELETE", "/api/exchanges/%2F/bx")
            delete_queues(srv, "bq")


def test_publish_get():
    """POST .../exchanges/{vh}/{x}/publish: {"routed": bool}, amq.default for "", string and
    base64 payloads, properties kept; RabbitMQ's 400s. POST .../queues/{vh}/{q}/get: count,
    the four ackmodes (requeued ones come back redelivered), encoding auto/base64, truncate
    (payload_bytes stays the whole size); empty properties shown as []"""
    with wt.server(mgmt=True) as srv:
        st, _, _ = http(srv, "PUT", "/api/queues/%2F/pg", {})
        assert st == 201
        try:
            pub = "/api/exchanges/%2F/amq.default/publish"
            props = {"delivery_mode": 2, "headers": {"h": 1}, "content_type": "text/plain",
                     "priority": 3, "timestamp": 5, "message_id": "m", "correlation_id": "c",
                     "reply_to": "r", "type": "t", "app_id": "a", "user_id": "guest"}
            msgs = [("hello", "string", {}), ("aGk=", "base64", props),
                    ("\u00ff\u0000", "string", {})]
            for payload, enc, p in msgs:
                st, _, reply = http(srv, "POST", pub, {
                    "routing_key": "pg", "payload": payload, "payload_encoding": enc,
                    "properties": p})
                assert (st, reply) == (200, {"routed": True}), (st, reply)
            st, _, reply = http(srv, "POST", pub, {"routing_key": "nowhere", "payload": "x",
                                                   "payload_encoding": "string",
                                                   "properties": {}})
            assert (st, reply) == (200, {"routed": False}), reply
            get = "/api/queues/%2F/pg/get"
            st, _, got = http(srv, "POST", get, {"count": 5, "ackmode": "ack_requeue_true",
                                                 "encoding": "auto", "truncate": "2"})
            assert st == 200, got
            assert [(m["payload"], m["payload_encoding"], m["payload_bytes"],
                     m["message_count"], m["redelivered"], m["exchange"], m["routing_key"])
                    for m in got] == [
                ("he", "string", 5, 2, False, "", "pg"),
                ("hi", "string", 2, 1, False, "", "pg"),
                ("\u00ff", "string", 3, 0, False, "", "pg")], got
            assert got[0]["properties"] == [] and got[1]["properties"] == props, got
            st, _, got = http(srv, "POST", get, {"count": "2", "ackmode": "reject_requeue_true",
                                                 "encoding": "base64"})
            assert [(m["payload"], m["payload_encoding"], m["redelivered"]) for m in got] == [
                ("aGVsbG8=", "base64", True), ("aGk=", "base64", True)], got
            st, _, got = http(srv, "POST", get, {"count": 1, "ackmode": "ack_requeue_false",
                                                 "encoding": "auto"})
            assert [(m["payload"], m["message_count"]) for m in got] == [("hello", 2)], got
            st, _, got = http(srv, "POST", get, {"count": 1, "ackmode": "reject_requeue_false",
                                                 "encoding": "auto"})
            assert [(m["payload"], m["message_count"]) for m in got] == [("hi", 1)], got
            st, _, got = http(srv, "POST", get, {"count": 0, "ackmode": "ack_requeue_true",
                                                 "encoding": "auto"})
            assert (st, got) == (200, []), got
            st, _, q = http(srv, "GET", "/api/queues/%2F/pg")
            wt.wait_until(lambda: http(srv, "GET", "/api/queues/%2F/pg")[2].get("messages")
                          == 1, 15, "one message left")
            errors = [
                (pub, {"routing_key": "pg", "payload": "x", "payload_encoding": "bogus",
                       "properties": {}}, {"error": "bad_request",
                                           "reason": ["unsupported_encoding", "bogus"]}),
                (pub, {"routing_key": "pg", "payload": "x", "payload_encoding": "string"},
                 {"error": "bad_request", "reason": "[{key_missing,properties}]"}),
                (pub, {"routing_key": "pg", "payload": "x", "payload_encoding": "string",
                       "properties": {"user_id": "bob"}},
                 {"error": "bad_request", "reason": "406 PRECONDITION_FAILED - user_id property "
                  "set to 'bob' but authenticated user was 'guest'"}),
                (pub, {"routing_key": "pg", "payload": "x", "payload_encoding": "string",
                       "properties": {"expiration": "abc"}},
                 {"error": "bad_request", "reason": "406 PRECONDITION_FAILED - invalid "
                  "expiration 'abc': no_integer"}),
                (pub, {"routing_key": "pg", "payload": "!!!", "payload_encoding": "base64",
                       "properties": {}},
                 {"error": "bad_request", "reason": ["not_base64", "!!!"]}),
                ("/api/exchanges/%2F/nox/publish", {"routing_key": "pg", "payload": "x",
                                                    "payload_encoding": "string",
                                                    "properties": {}},
                 {"error": "bad_request",
                  "reason": "404 NOT_FOUND - no exchange 'nox' in vhost '/'"}),
                (get, {"count": 1, "ackmode": "ack_requeue_true", "encoding": "bogus"},
                 {"error": "bad_request",
                  "reason": "Unsupported encoding. Please use auto or base64."}),
                (get, {"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"},
                 {"error": "bad_request", "reason": ["not_integer", "x"]}),
                (get, {"ackmode": "ack_requeue_true", "encoding": "auto"},
                 {"error": "bad_request", "reason": "[{key_missing,count}]"}),
            ]
            for path, body, reply in errors:
                st, _, got = http(srv, "POST", path, body)
                assert (st, got) == (400, reply), (body, st, got)
            st, _, got = http(srv, "POST", "/api/queues/%2F/noq/get", {
                "count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
            assert (st, got) == (404, {"error": "not_found", "reason":
                                       "NOT_FOUND - no queue 'noq' in vhost '/'"}), got
        finally:
            delete_queues(srv, "pg")


def test_queue_depth_fields():
    """a queue's messages, messages_ready and messages_unacknowledged each with _details
    {rate} (their rates of change: above 0 while the queue fills, 0 once it stops),
    consumer_utilisation, memory, state; the overview's queue_totals with the same _details"""
    with wt.server(config={"collect_statistics_interval": 200}, mgmt=True) as srv:
        st, _, _ = http(srv, "PUT", "/api/queues/%2F/depth", {})
        assert st == 201
        try:
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()

            def filling():
                ch.basic_publish("", "depth", b"m")
                conn.process_data_events(time_limit=0.05)
                st, _, q = http(srv, "GET", "/api/queues/%2F/depth")
                return q.get("messages_ready_details", {}).get("rate", 0) > 0

            wt.wait_until(filling, 20, "a rising depth's rate above 0")
            conn.close()
            st, _, q = http(srv, "GET", "/api/queues/%2F/depth")
            for key in ("messages", "messages_ready", "messages_unacknowledged"):
                assert isinstance(q[key + "_details"]["rate"], (int, float)), (key, q)
            assert q["state"] == "running" and isinstance(q["memory"], int), q
            assert isinstance(q["consumer_utilisation"], (int, float)), q
            wt.wait_until(lambda: http(srv, "GET", "/api/queues/%2F/depth")[2]
                          ["messages_details"]["rate"] == 0, 20, "the rate back to 0")
            st, _, o = http(srv, "GET", "/api/overview")
            for key in ("messages", "messages_ready", "messages_unacknowledged"):
                assert isinstance(o["queue_totals"][key + "_details"]["rate"], (int, float)), o
        finally:
            delete_queues(srv, "depth")


def test_connection_counters():
    """a connection's recv_oct, recv_cnt, send_oct, send_cnt (the octets with _details
    {rate}): above 0 once it has talked (as of the statistics sample: RabbitMQ's are too)"""
    with wt.server(config={"collect_statistics_interval": 200}, mgmt=True) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("io")
        try:
            for _ in range(20):
                ch.basic_publish("", "io", b"x" * 1000)

            def mine():
                st, _, conns = http(srv, "GET", "/api/connections")
                assert st == 200, conns
                return [c for c in conns if c.get("recv_oct", 0) > 20000]

            wt.wait_until(lambda: mine(), 20, "recv_oct counted")
            c = mine()[0]
            for key in ("recv_oct", "recv_cnt", "send_oct", "send_cnt"):
                assert isinstance(c[key], int) and c[key] > 0, (key, c)
            for key in ("recv_oct", "send_oct"):
                assert isinstance(c[key + "_details"]["rate"], (int, float)), (key, c)
        finally:
            ch.queue_delete("io")
            conn.close()


def test_nodes():
    """GET /api/nodes (a list of one) and /api/nodes/{name}: the fields rabbitmqadmin, KEDA
    and the web UI read, with their types; 404 for another node; monitoring needed"""
    with wt.server(mgmt=True) as srv:
        st, _, nodes = http(srv, "GET", "/api/nodes")
        assert st == 200 and len(nodes) == 1, nodes
        node = nodes[0]
        ints = ("mem_used", "mem_limit", "disk_free", "disk_free_limit", "fd_used", "fd_total",
                "sockets_used", "sockets_total", "proc_used", "proc_total", "uptime",
                "processors", "run_queue")
        for key in ints:
            assert isinstance(node[key], int) and node[key] >= 0, (key, node.get(key))
        assert node["mem_used"] > 0 and node["mem_limit"] > 0 and node["fd_used"] > 0, node
        assert node["fd_total"] >= node["fd_used"] and node["uptime"] > 0, node
        assert (node["type"], node["running"], node["mem_alarm"], node["disk_free_alarm"],
                node["partitions"]) == ("disc", True, False, False, []), node
        assert node["os_pid"].isdigit(), node
        types = {t["name"] for t in node["exchange_types"]}
        assert {"direct", "fanout", "topic", "headers"} <= types, types
        st, _, one = http(srv, "GET", "/api/nodes/" + urllib.parse.quote(node["name"], ""))
        assert st == 200 and one["name"] == node["name"], one
        st, _, body = http(srv, "GET", "/api/nodes/nobody@nowhere")
        if wt.EXTERNAL:  # RabbitMQ 3.10.8 crashes on it: 500
            assert st == 500, (st, body)
        else:
            assert (st, body) == (404, NOT_FOUND), body
        st, _, overview = http(srv, "GET", "/api/overview")
        assert overview["node"] == node["name"], overview
        st, _, _ = http(srv, "PUT", "/api/users/mgmt-only",
                        {"password": "pw", "tags": "management"})
        assert st in (201, 204)
        try:
            st, _, body = http(srv, "GET", "/api/nodes", auth=("mgmt-only", "pw"))
            assert (st, body) == (401, {"error": "not_authorised",
                                        "reason": "Not monitor user"}), body
        finally:
            http(srv, "DELETE", "/api/users/mgmt-only")


def test_health_checks_ok():
    """each check when all is well: 200 {"status":"ok"} (port and protocol echoed); a port
    or protocol not listened on: 503 "No active listener" with what is listened on"""
    with wt.server(mgmt=True) as srv:
        ok = {"status": "ok"}
        for path in ("local-alarms", "alarms", "virtual-hosts"):
            st, _, body = http(srv, "GET", "/api/health/checks/" + path)
            assert (st, body) == (200, ok), (path, st, body)
        st, _, body = http(srv, "GET", "/api/healthchecks/node")
        assert (st, body) == (200, ok), body
        st, _, node = http(srv, "GET", "/api/overview")
        st, _, body = http(srv, "GET", "/api/healthchecks/node/" + node["node"])
        assert (st, body) == (200, ok), body
        st, _, body = http(srv, "GET", "/api/healthchecks/node/nobody@nowhere")
        assert (st, body) == (404, NOT_FOUND), body
        for port in (srv.addr[1], srv.mgmt_port):
            st, _, body = http(srv, "GET", "/api/health/checks/port-listener/%d" % port)
            assert (st, body) == (200, {"status": "ok", "port": port}), body
        st, _, body = http(srv, "GET", "/api/health/checks/port-listener/1")
        assert st == 503 and body["reason"] == "No active listener" and body["missing"] == 1, body
        assert {srv.addr[1], srv.mgmt_port} <= set(body["ports"]), body
        st, _, body = http(srv, "GET", "/api/health/checks/port-listener/abc")
        assert (st, body) == (400, {"error": "bad_request", "reason": "Invalid port"}), body
        for proto, name in (("amqp", "amqp"), ("amqp091", "amqp"), ("AMQP0-9-1", "amqp"),
                            ("http", "http"), ("management", "http")):
            st, _, body = http(srv, "GET", "/api/health/checks/protocol-listener/" + proto)
            assert (st, body) == (200, {"status": "ok", "protocol": name}), (proto, body)
        for proto, name in (("amqps", "amqp/ssl"), ("https", "https"), ("bogus", "bogus")):
            st, _, body = http(srv, "GET", "/api/health/checks/protocol-listener/" + proto)
            assert st == 503, (proto, st, body)
            assert (body["status"], body["reason"], body["missing"]) == (
                "failed", "No active listener", name), body
            assert {"amqp", "http"} <= set(body["protocols"]), body


def test_health_checks_prometheus():
    """with rabbitmq_prometheus's listener: the overview lists it as http/prometheus, and the
    port and protocol checks find it (the protocol named as RabbitMQ names it, its "/" sent
    as %2F)"""
    with wt.server(mgmt=True, prometheus=True) as srv:
        st, _, o = http(srv, "GET", "/api/overview")
        assert ("http/prometheus", srv.prometheus_port) in {
            (lst["protocol"], lst["port"]) for lst in o["listeners"]}, o["listeners"]
        st, _, body = http(srv, "GET", "/api/health/checks/port-listener/%d"
                           % srv.prometheus_port)
        assert (st, body) == (200, {"status": "ok", "port": srv.prometheus_port}), body
        st, _, body = http(srv, "GET", "/api/health/checks/protocol-listener/http%2Fprometheus")
        assert (st, body) == (200, {"status": "ok", "protocol": "http/prometheus"}), body


@wt.needs_process
def test_health_checks_alarm():
    """with the memory alarm on (a 1 MB watermark, 2 MB queued, published over the HTTP API
    since an AMQP publisher would be blocked): the alarm checks answer 503 with RabbitMQ's
    reasons and the alarm, /api/nodes shows it; publishing over HTTP is refused (503) until
    the alarm clears"""
    fill = {"routing_key": "fill", "payload": "x" * (128 << 10), "payload_encoding": "string",
            "properties": {}}
    blocked = {"error": "service_unavailable",
               "reason": "resource alarm in effect: memory, publishing is blocked"}
    with wt.server(config={"vm_memory_high_watermark.absolute": str(1 << 20)},
                   mgmt=True) as srv:
        st, _, _ = http(srv, "PUT", "/api/queues/%2F/fill", {})
        assert st == 201
        for _ in range(16):
            st, _, body = http(srv, "POST", "/api/exchanges/%2F/amq.default/publish", fill)
            assert (st, body) in ((200, {"routed": True}), (503, blocked)), body
        st, _, overview = http(srv, "GET", "/api/overview")
        node = overview["node"]
        wt.wait_until(lambda: http(srv, "GET", "/api/nodes")[2][0]["mem_alarm"], 10,
                      "the memory alarm")
        st, _, body = http(srv, "POST", "/api/exchanges/%2F/amq.default/publish", fill)
        assert (st, body) == (503, blocked), body
        alarm = [{"node": node, "resource": "memory"}]
        st, _, body = http(srv, "GET", "/api/health/checks/local-alarms")
        assert (st, body) == (503, {"status": "failed", "alarms": alarm, "reason":
                                    "There are alarms in effect on the node"}), body
        st, _, body = http(srv, "GET", "/api/health/checks/alarms")
        assert (st, body) == (503, {"status": "failed", "alarms": alarm, "reason":
                                    "There are alarms in effect in the cluster"}), body
        st, _, body = http(srv, "GET", "/api/healthchecks/node")
        assert (st, body) == (503, {"status": "failed", "reason":
                                    "resource alarm(s) in effect:[{resource_limit,memory,%s}]"
                                    % node}), body
        st, _, _ = http(srv, "DELETE", "/api/queues/%2F/fill/contents")
        assert st == 204
        wt.wait_until(lambda: not http(srv, "GET", "/api/nodes")[2][0]["mem_alarm"], 10,
                      "the memory alarm to clear")
        st, _, body = http(srv, "POST", "/api/exchanges/%2F/amq.default/publish", fill)
        assert (st, body) == (200, {"routed": True}), body


if __name__ == "__main__":
    wt.run([test_keda, test_flower, test_amqp091_go, test_bindings_post_delete,
            test_publish_get, test_queue_depth_fields, test_connection_counters, test_nodes,
            test_health_checks_ok, test_health_checks_prometheus, test_health_checks_alarm])
