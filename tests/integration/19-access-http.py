"""The administration HTTP API (src/mgmt/): RabbitMQ's management paths, JSON, status codes
and tag rules, against the real binary. Basic auth as AMQP logins check it (loopback_users
applying); 401 with WWW-Authenticate for no or bad credentials, "Not management user" for a
user without tags, "Not administrator user" for a management user on administrator paths;
every endpoint's happy path and errors (404 Object Not Found, 400 bad_request, 405); PUT
answering 201 when it creates and 204 when it updates; %2F and trailing slashes; string
integers; a definitions round trip (export from one Warren, import into a fresh one, log in
with the same passwords); the Unix socket <data_dir>/warren-admin.sock (mode 0600, no
password); HTTPS on management.ssl.port; a user deleted over HTTP losing its AMQP connection; DELETE of a connection with
X-Reason reaching the client as 320 CONNECTION_FORCED."""

import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

http = wt.http
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}


def pika_login(srv, user, password, vhost="/"):
    import pika
    return wt.pika_connect(srv.addr, virtual_host=vhost,
                           credentials=pika.PlainCredentials(user, password))


def put_user(srv, name, password, tags="", expect=201):
    st, _, body = http(srv, "PUT", "/api/users/" + name, {"password": password, "tags": tags})
    assert st == expect, (name, st, body)


@wt.needs_process
def test_auth_and_tags():
    """no credentials, a wrong password, no tag, management, monitoring and administrator"""
    with wt.server(mgmt=True) as srv:
        st, h, body = http(srv, "GET", "/api/whoami", auth=None)
        assert st == 401 and h["www-authenticate"] == 'Basic realm="RabbitMQ Management"', (st, h)
        assert body is None, body  # RabbitMQ 3.10.8: no body without credentials
        st, h, body = http(srv, "GET", "/api/whoami", auth=("guest", "wrong"))
        assert (st, body) == (401, {"error": "not_authorized", "reason": "Login failed"}), body
        assert "www-authenticate" in h
        st, _, body = http(srv, "GET", "/api/whoami")
        assert (st, body) == (200, {"name": "guest", "tags": ["administrator"]}), body
        put_user(srv, "plain", "p1")
        put_user(srv, "mgr", "p2", "management")
        put_user(srv, "mon", "p3", ["monitoring"])
        st, _, body = http(srv, "GET", "/api/overview", auth=("plain", "p1"))
        # (sic: RabbitMQ spells this error not_authorised, the login one not_authorized)
        assert (st, body) == (401, {"error": "not_authorised",
                                    "reason": "Not management user"}), body
        st, _, body = http(srv, "GET", "/api/whoami", auth=("mgr", "p2"))
        assert (st, body) == (200, {"name": "mgr", "tags": ["management"]}), body
        for path in ("/api/users", "/api/permissions", "/api/definitions",
                     "/api/users/guest"):
            st, _, body = http(srv, "GET", path, auth=("mgr", "p2"))
            assert (st, body) == (401, {"error": "not_authorised",
                                        "reason": "Not administrator user"}), (path, body)
        st, _, body = http(srv, "PUT", "/api/vhosts/v9", {}, auth=("mon", "p3"))
        assert (st, body["reason"]) == (401, "Not administrator user"), body
        st, _, _ = http(srv, "PUT", "/api/vhost-limits/%2F/max-queues", {"value": 9})
        assert st == 204
        st, _, body = http(srv, "GET", "/api/vhost-limits", auth=("mgr", "p2"))
        assert (st, body) == (200, []), body  # not its vhost
        st, _, body = http(srv, "GET", "/api/vhost-limits", auth=("mon", "p3"))
        assert (st, body) == (200, [{"vhost": "/", "value": {"max-queues": 9}}]), body
        # A management user sees only the vhosts it has permissions on.
        st, _, body = http(srv, "GET", "/api/vhosts", auth=("mgr", "p2"))
        assert (st, body) == (200, []), body
        st, _, body = http(srv, "GET", "/api/vhosts", auth=("mon", "p3"))
        assert [v["name"] for v in body] == ["/"], body


@wt.needs_process
def test_guest_loopback_only():
    """loopback_users applies to HTTP logins: guest refused from a non-loopback address"""
    import socket
    # The host's own non-loopback address, if it has one: a connection from it is not
    # from loopback.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        ip = s.getsockname()[0]
    finally:
        s.close()
    assert not ip.startswith("127."), ip
    with wt.server(mgmt=True, config={"management.tcp.ip": "0.0.0.0"}) as srv:
        import base64
        import json
        from http import client
        conn = client.HTTPConnection(ip, srv.mgmt_port, timeout=10)
        conn.request("GET", "/api/whoami", headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        assert (resp.status, body["reason"]) == (401, "Login failed"), (resp.status, body)
        assert "can only connect via localhost" in srv.stderr_text()
        st, _, _ = http(srv, "GET", "/api/whoami")
        assert st == 200


@wt.needs_process
def test_users():
    """users: PUT 201 then 204, password_hash, GET, list, permissions, DELETE, 404s"""
    with wt.server(mgmt=True) as srv:
        put_user(srv, "u1", "secret", "management,policymaker")
        put_user(srv, "u1", "secret2", "management", expect=204)
        st, _, body = http(srv, "GET", "/api/users/u1/")  # trailing slash
        assert st == 200 and body["name"] == "u1" and body["tags"] == ["management"], body
        assert body["hashing_algorithm"] == "rabbit_password_hashing_sha256", body
        # The hash from hash_password works as password_hash.
        st, _, body = http(srv, "GET", "/api/auth/hash_password/hunter2")
        assert st == 200 and len(body["ok"]) == 48, body
        st, _, _ = http(srv, "PUT", "/api/users/u2", {
            "password_hash": body["ok"], "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": []})
        assert st == 201
        st, _, _ = http(srv, "PUT", "/api/permissions/%2F/u2",
                        {"configure": ".*", "write": ".*", "read": ".*"})
        assert st == 201
        pika_login(srv, "u2", "hunter2").close()
        st, _, body = http(srv, "GET", "/api/users")
        assert sorted(u["name"] for u in body) == ["guest", "u1", "u2"], body
        st, _, body = http(srv, "GET", "/api/users/u2/permissions")
        assert body == [{"user": "u2", "vhost": "/", "configure": ".*", "write": ".*",
                         "read": ".*"}], body
        st, _, body = http(srv, "GET", "/api/users/u2/topic-permissions")
        assert (st, body) == (200, []), body
        for method, path in (("GET", "/api/users/nope"), ("DELETE", "/api/users/nope"),
                             ("GET", "/api/users/nope/permissions"), ("GET", "/api/nothing")):
            st, _, body = http(srv, method, path)
            assert (st, body) == (404, NOT_FOUND), (method, path, st, body)
        st, _, body = http(srv, "PUT", "/api/users/u3", "{not json")
        assert st == 400 and body["error"] == "bad_request", body
        st, _, body = http(srv, "PUT", "/api/users/u3", {"password": 5})
        assert st == 400 and body["error"] == "bad_request", body
        st, _, body = http(srv, "PUT", "/api/users/u3",
                           {"password_hash": "abc", "hashing_algorithm": "rot13"})
        assert st == 400, body
        st, _, body = http(srv, "PUT", "/api/users/u3", {"password": "x"})
        assert (st, body["reason"]) == (400, "tags_not_present"), body
        st, _, body = http(srv, "PUT", "/api/users/u3", "{not json")
        assert (st, body["reason"]) == (400, "not_json"), body
        st, h, body = http(srv, "POST", "/api/users/u3", {})
        assert st == 405 and body is None, (st, body)
        assert h["allow"] == "HEAD, GET, PUT, DELETE, OPTIONS", h
        st, _, _ = http(srv, "DELETE", "/api/users/u1")
        assert st == 204
        st, _, _ = http(srv, "GET", "/api/users/u1")
        assert st == 404


@wt.needs_process
def test_vhosts_permissions_limits():
    """vhosts with metadata, permissions and topic permissions, vhost and user limits"""
    with wt.server(mgmt=True) as srv:
        st, _, _ = http(srv, "PUT", "/api/vhosts/v1", {
            "description": "first", "tags": "a,b", "default_queue_type": "classic"})
        assert st == 201
        st, _, _ = http(srv, "PUT", "/api/vhosts/v1", {"description": "again"})
        assert st == 204
        st, _, body = http(srv, "GET", "/api/vhosts/v1")
        assert st == 200 and body["name"] == "v1" and body["description"] == "again", body
        assert list(body["cluster_state"].values()) == ["running"], body
        st, _, body = http(srv, "GET", "/api/vhosts/%2f")
        assert st == 200 and body["name"] == "/", body
        st, _, body = http(srv, "GET", "/api/vhosts/nope")
        assert (st, body) == (404, NOT_FOUND)
        put_user(srv, "u", "p")
        perm = {"configure": "^c", "write": "^w", "read": "^r"}
        st, _, _ = http(srv, "PUT", "/api/permissions/v1/u", perm)
        assert st == 201
        st, _, _ = http(srv, "PUT", "/api/permissions/v1/u", perm)
        assert st == 204
        st, _, body = http(srv, "GET", "/api/permissions/v1/u")
        assert body == dict(perm, user="u", vhost="v1"), body
        st, _, body = http(srv, "GET", "/api/vhosts/v1/permissions")
        assert [p["user"] for p in body] == ["u"], body
        st, _, body = http(srv, "PUT", "/api/permissions/v1/u", {"configure": ".*"})
        assert (st, body) == (400, {"error": "bad_request", "reason":
                                    "[{key_missing,write},{key_missing,read}]"}), body
        st, _, body = http(srv, "PUT", "/api/permissions/nope/u", perm)
        assert (st, body["reason"]) == (400, "vhost_or_user_not_found"), body
        st, _, body = http(srv, "PUT", "/api/permissions/v1/u",
                           {"configure": "(", "write": "", "read": ""})
        assert st == 400, body
        st, _, _ = http(srv, "PUT", "/api/topic-permissions/v1/u",
                        {"exchange": "amq.topic", "write": "^a", "read": "^b"})
        assert st == 201
        st, _, _ = http(srv, "PUT", "/api/topic-permissions/v1/u",
                        {"exchange": "amq.topic", "write": "^a", "read": "^b"})
        assert st == 204
        st, _, body = http(srv, "GET", "/api/topic-permissions")
        assert body == [{"user": "u", "vhost": "v1", "exchange": "amq.topic", "write": "^a",
                         "read": "^b"}], body
        st, _, body = http(srv, "GET", "/api/topic-permissions/v1/u")
        assert st == 200 and len(body) == 1, body
        st, _, _ = http(srv, "DELETE", "/api/topic-permissions/v1/u")
        assert st == 204
        st, _, _ = http(srv, "GET", "/api/topic-permissions/v1/u")
        assert st == 404
        # Limits: {"value": N} (a string is refused, as RabbitMQ does); DELETE clears.
        st, _, _ = http(srv, "PUT", "/api/vhost-limits/v1/max-connections", {"value": 1})
        assert st == 204
        st, _, body = http(srv, "PUT", "/api/vhost-limits/v1/max-queues", {"value": "7"})
        assert (st, body["reason"]) == (400, 'Validation failed\n\nmax-queues should be a '
                                        'number, actually was <<"7">>\n'), body
        st, _, _ = http(srv, "PUT", "/api/vhost-limits/v1/max-queues", {"value": 7})
        assert st == 204
        st, _, body = http(srv, "GET", "/api/vhost-limits/v1")
        assert body == [{"vhost": "v1", "value": {"max-connections": 1, "max-queues": 7}}], body
        st, _, body = http(srv, "PUT", "/api/vhost-limits/v1/max-queues", {"value": "x"})
        assert st == 400, body
        st, _, body = http(srv, "PUT", "/api/vhost-limits/v1/max-bananas", {"value": 1})
        assert (st, body["reason"]) == (400, 'Validation failed\n\nUnrecognised terms '
                                        '[{<<"max-bananas">>,1}] in limits\n'), body
        st, _, _ = http(srv, "DELETE", "/api/vhost-limits/v1/max-queues")
        assert st == 204
        st, _, body = http(srv, "GET", "/api/vhost-limits")
        assert body == [{"vhost": "v1", "value": {"max-connections": 1}}], body
        st, _, _ = http(srv, "PUT", "/api/user-limits/u/max-channels", {"value": 3})
        assert st == 204
        st, _, body = http(srv, "GET", "/api/user-limits")
        assert body == [{"user": "u", "value": {"max-channels": 3}}], body
        st, _, body = http(srv, "GET", "/api/user-limits/u")
        assert body == [{"user": "u", "value": {"max-channels": 3}}], body
        st, _, _ = http(srv, "DELETE", "/api/permissions/v1/u")
        assert st == 204
        st, _, _ = http(srv, "DELETE", "/api/permissions/v1/u")
        assert st == 404
        st, _, _ = http(srv, "DELETE", "/api/vhosts/v1")
        assert st == 204
        st, _, _ = http(srv, "DELETE", "/api/vhosts/v1")
        assert st == 404


@wt.needs_process
def test_overview_health_aliveness():
    """overview's fields, alarms health check, aliveness test"""
    with wt.server(mgmt=True) as srv:
        conn = pika_login(srv, "guest", "guest")
        ch = conn.channel()
        ch.queue_declare("q1")
        ch.basic_publish("", "q1", b"x")
        st, _, body = http(srv, "GET", "/api/overview")
        assert st == 200, body
        for key in ("management_version", "rabbitmq_version", "product_name",
                    "product_version", "cluster_name", "node"):
            assert isinstance(body[key], str) and body[key], (key, body)
        assert body["object_totals"]["queues"] == 1 and \
            body["object_totals"]["connections"] == 1, body
        wt.wait_until(lambda: http(srv, "GET", "/api/overview")[2]
                      ["queue_totals"]["messages"] == 1, 5, "the message counted")
        ports = {(lst["protocol"], lst["port"]) for lst in body["listeners"]}
        assert ("amqp", srv.port) in ports and ("http", srv.mgmt_port) in ports, ports
        conn.close()
        st, _, body = http(srv, "GET", "/api/health/checks/alarms")
        assert (st, body) == (200, {"status": "ok"}), body
        st, _, body = http(srv, "GET", "/api/aliveness-test/%2F")
        assert (st, body) == (200, {"status": "ok"}), body
        st, _, body = http(srv, "GET", "/api/aliveness-test/nope")
        assert (st, body) == (404, NOT_FOUND), body


@wt.needs_process
def test_definitions_round_trip():
    """export from one Warren, import into a fresh one: same users log in, same passwords"""
    with wt.server(mgmt=True) as a:
        put_user(a, "alice", "alice-pass", "management")
        st, _, _ = http(a, "PUT", "/api/vhosts/prod", {"description": "production"})
        assert st == 201
        st, _, _ = http(a, "PUT", "/api/permissions/prod/alice",
                        {"configure": ".*", "write": ".*", "read": ".*"})
        assert st == 201
        st, _, _ = http(a, "PUT", "/api/vhost-limits/prod/max-queues", {"value": 5})
        assert st == 204
        conn = pika_login(a, "alice", "alice-pass", "prod")
        ch = conn.channel()
        ch.exchange_declare("ex1", "topic", durable=True)
        ch.queue_declare("q1", durable=True, arguments={"x-max-length": 10})
        ch.queue_bind("q1", "ex1", "a.#")
        ch.queue_declare("", exclusive=True)
        st, _, defs = http(a, "GET", "/api/definitions")
        conn.close()
        assert st == 200, defs
        assert defs["queues"] == [{"name": "q1", "vhost": "prod", "type": "classic",
                                   "durable": True, "auto_delete": False,
                                   "arguments": {"x-max-length": 10}}], defs["queues"]
        assert defs["exchanges"] == [{"name": "ex1", "vhost": "prod", "type": "topic",
                                      "durable": True, "auto_delete": False,
                                      "internal": False, "arguments": {}}], defs["exchanges"]
        assert defs["bindings"] == [{"source": "ex1", "vhost": "prod", "destination": "q1",
                                     "destination_type": "queue", "routing_key": "a.#",
                                     "arguments": {}}], defs["bindings"]
        for key in ("rabbit_version", "users", "vhosts", "permissions", "topic_permissions",
                    "parameters", "global_parameters", "policies", "queues", "exchanges",
                    "bindings"):
            assert key in defs, key
        st, _, vdefs = http(a, "GET", "/api/definitions/prod")
        assert st == 200 and "users" not in vdefs and "queues" in vdefs, vdefs
    with wt.server(mgmt=True) as b:
        st, _, body = http(b, "POST", "/api/definitions", defs)
        assert (st, body) == (204, None), (st, body)
        conn = pika_login(b, "alice", "alice-pass", "prod")
        ch = conn.channel()
        ch.exchange_declare("ex1", "topic", durable=True, passive=True)
        ch.queue_declare("q1", passive=True)
        ch.basic_publish("ex1", "a.b", b"routed")
        wt.wait_until(lambda: ch.queue_declare("q1", passive=True).method.message_count == 1,
                      5, "the binding routes")
        conn.close()
        st, _, body = http(b, "GET", "/api/vhost-limits/prod")
        assert body == [{"vhost": "prod", "value": {"max-queues": 5}}], body
        st, _, body = http(b, "GET", "/api/vhosts/prod")
        assert body["description"] == "production", body
        st, _, body = http(b, "POST", "/api/definitions", {"users": [{"name": 7}]})
        assert st == 400 and body["error"] == "bad_request", body
        st, _, body = http(b, "POST", "/api/definitions", "[1, 2")
        assert (st, body["reason"]) == (400, "failed_to_parse_json"), body
        # Durable: a restart keeps what the import made.
        b.restart()
        pika_login(b, "alice", "alice-pass", "prod").close()


@wt.needs_process
def test_unix_socket():
    """<data_dir>/warren-admin.sock: mode 0600, administrator without a password, removed at
    exit; a stale one is replaced at start"""
    with wt.server(mgmt=True) as srv:
        path = os.path.join(srv.data_dir, "warren-admin.sock")
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
        st, _, body = http(srv, "GET", "/api/users", unix=True)
        assert st == 200 and [u["name"] for u in body] == ["guest"], body
        st, _, _ = http(srv, "PUT", "/api/users/local", {"password": "x", "tags": ""},
                        unix=True)
        assert st == 201
        srv.restart(hard=True)  # leaves a stale socket behind
        st, _, body = http(srv, "GET", "/api/users/local", unix=True)
        assert st == 200, body
        srv.proc.send_signal(15)
        srv.proc.wait(10)
        assert not os.path.exists(path), "socket left after a clean exit"
        srv.restart()


@wt.needs_process
def test_https():
    """management.ssl.port: the same API over TLS, with management.ssl.certfile/keyfile and
    the encrypted key's management.ssl.password"""
    import base64
    import json
    from http import client

    import pki
    p = pki.Pki()
    try:
        port = wt.free_port()
        config = {"management.ssl.port": port,
                  "management.ssl.certfile": p.server[0],
                  "management.ssl.keyfile": p.server_key_encrypted,
                  "management.ssl.password": "s3cret"}
        with wt.server(mgmt=True, config=config) as srv:
            for creds, want in ((b"guest:guest", 200), (b"guest:nope", 401)) * 5:
                conn = client.HTTPSConnection("localhost", port, context=p.context(),
                                              timeout=10)
                conn.request("GET", "/api/whoami", headers={
                    "Authorization": "Basic " + base64.b64encode(creds).decode()})
                resp = conn.getresponse()
                body = json.loads(resp.read())
                conn.close()
                assert resp.status == want, (resp.status, body)
            assert body == {"error": "not_authorized", "reason": "Login failed"}, body
            st, _, _ = http(srv, "GET", "/api/whoami")  # plain HTTP still served
            assert st == 200
    finally:
        p.close()


@wt.needs_process
def test_port_zero_means_off():
    """management.tcp.port = 0: no TCP listener, the Unix socket still answers"""
    with wt.server(mgmt="config", config={"management.tcp.port": "0"}) as srv:
        assert "listening for HTTP API requests on every interface" not in srv.stderr_text()
        st, _, _ = http(srv, "GET", "/api/whoami", unix=True)
        assert st == 200


@wt.needs_process
def test_deleted_user_loses_connection():
    """DELETE /api/users/{name} closes that user's AMQP connections (320)"""
    import pika
    with wt.server(mgmt=True) as srv:
        put_user(srv, "gone", "pw")
        st, _, _ = http(srv, "PUT", "/api/permissions/%2F/gone",
                        {"configure": ".*", "write": ".*", "read": ".*"})
        assert st == 201
        conn = pika_login(srv, "gone", "pw")
        st, _, _ = http(srv, "DELETE", "/api/users/gone")
        assert st == 204
        try:
            conn.process_data_events(time_limit=3)
            conn.process_data_events(time_limit=1)
            raise AssertionError("connection of a deleted user still open")
        except pika.exceptions.ConnectionClosedByBroker as e:
            assert e.reply_code == 320, e


@wt.needs_process
def test_connections_list_and_close():
    """GET /api/connections/ lists name, user, vhost, peer, client_properties; DELETE with
    X-Reason closes it with 320 CONNECTION_FORCED - <reason>"""
    import pika
    import urllib.parse
    with wt.server(mgmt=True) as srv:
        conn = wt.pika_connect(srv.addr, client_properties={"connection_name": "tester"})
        st, _, body = http(srv, "GET", "/api/connections/")
        assert st == 200 and len(body) == 1, body
        c = body[0]
        assert c["user"] == "guest" and c["vhost"] == "/" and c["peer_host"] == "127.0.0.1", c
        assert c["name"] == "127.0.0.1:%d -> 127.0.0.1:%d" % (c["peer_port"], srv.port), c
        assert c["client_properties"]["connection_name"] == "tester", c
        assert c["user_provided_name"] == "tester" and c["state"] == "running", c
        quoted = urllib.parse.quote(c["name"], safe="")
        st, _, one = http(srv, "GET", "/api/connections/" + quoted)
        assert st == 200 and one["name"] == c["name"], one
        put_user(srv, "mgr", "p", "management")
        st, _, body = http(srv, "GET", "/api/connections", auth=("mgr", "p"))
        assert (st, body) == (200, []), body  # not its connection
        st, _, body = http(srv, "DELETE", "/api/connections/" + quoted, auth=("mgr", "p"))
        assert st == 404, body
        st, _, _ = http(srv, "DELETE", "/api/connections/" + quoted,
                        headers={"X-Reason": "bye now"})
        assert st == 204
        try:
            conn.process_data_events(time_limit=3)
            raise AssertionError("connection still open")
        except pika.exceptions.ConnectionClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (320, "CONNECTION_FORCED - bye now"), e
        st, _, body = http(srv, "DELETE", "/api/connections/" + quoted)
        assert st == 404


wt.run([test_auth_and_tags, test_guest_loopback_only, test_users,
        test_vhosts_permissions_limits, test_overview_health_aliveness,
        test_definitions_round_trip, test_unix_socket, test_https, test_port_zero_means_off,
        test_deleted_user_loses_connection, test_connections_list_and_close])
