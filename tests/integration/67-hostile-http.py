"""Hostile HTTP API clients (src/mgmt/http.c): headers larger than 16 KiB, a body past the
limit (64 KiB outside /api/definitions, 32 MiB there, and a Content-Length of 1 GB), a
request trickled byte by byte (slowloris), hundreds of idle connections, garbage request
lines and malformed JSON in every body handler, lists of thousands of queues asked for at
once, left half read or changing while they are written. The broker answers each with a status (or
closes a connection it will not serve: over the cap, past the request deadline), the AMQP
watcher client never stalls, the process's file descriptors and RSS stay bounded, and the
API serves again once the flood ends. The HTTP server shares the event loop with AMQP."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

http = wt.http
CONNS_MAX = 64  # MGMT_CONNS_MAX in src/mgmt/http.c
RSS_MARGIN_KIB = 80 * 1024  # one 20 MB body, 32 MiB kept free by the heap, slack
# A short request deadline and idle timeout, so that the test sees them act.
CONFIG = {"management.tcp.request_timeout": "3000", "management.tcp.idle_timeout": "4000"}


def complete(reply):
    """Whether reply holds a whole response (headers and Content-Length bytes of body)."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def raw(srv, data, timeout=10):
    """Sends data on a new connection, returns the response once it is whole, or what came
    back when the server closed or went silent for timeout seconds (then with b'<silent>'
    appended)."""
    s = socket.create_connection(("127.0.0.1", srv.mgmt_port))
    s.settimeout(timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
            if complete(out):
                break
    except socket.timeout:
        out += b"<silent>"
    except OSError:
        pass  # reset by the server after its answer, for a body it did not read
    finally:
        s.close()
    return out


def status_of(reply):
    assert reply.startswith(b"HTTP/1."), reply[:200]
    return int(reply.split(b" ", 2)[1])


def fd_count(srv):
    return len(os.listdir("/proc/%d/fd" % srv.pid))


@wt.needs_process
def test_oversized_and_garbage():
    """big headers, big bodies, garbage: each gets a 4xx; the watcher never stalls"""
    with wt.server(mgmt=True, config=CONFIG) as srv, watcher.Watcher(srv.addr) as w:
        rss0 = srv.rss_kib()
        big_header = b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + \
            b"\r\n\r\n"
        many_headers = b"GET /api/whoami HTTP/1.1\r\n" + b"".join(
            b"X-%d: v\r\n" % i for i in range(5000)) + b"\r\n"
        cases = [
            ("a 70 KB header", big_header, (400, 413, 431)),
            ("5000 headers", many_headers, (400, 413, 431)),
            ("a 100 KB body to /api/users/x", b"PUT /api/users/x HTTP/1.1\r\nHost: x\r\n"
             b"Connection: close\r\nContent-Length: 100000\r\n\r\n" + b"{" * 100000, (413,)),
            ("Content-Length: 1 GB", b"POST /api/definitions HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 1000000000\r\n\r\n" + b"x" * 1000, (413,)),
            ("a garbage request line", b"\x00\xffGARBAGE\r\n\r\n", (400,)),
            ("a bad method", b"BREW /api/whoami HTTP/1.1\r\nHost: x\r\n\r\n", (400, 405, 501)),
            ("a bad Authorization", b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n"
             b"Authorization: Basic !!!!\r\nConnection: close\r\n\r\n", (401,)),
            ("a NUL in the path", b"GET /api/users/a%00b HTTP/1.1\r\nHost: x\r\n"
             b"Connection: close\r\n\r\n", (401, 404)),
        ]
        for what, data, want in cases:
            for _ in range(20):
                reply = raw(srv, data)
                st = status_of(reply)
                assert st in want, (what, reply[:300])
            wt.log("  %s: %d" % (what, st))
            w.check("after " + what)
        # A 20 MB definitions body (under the 32 MiB limit): read whole, parsed, refused.
        # The heap may keep the freed buffers for reuse (glibc keeps up to 32 MiB free at its
        # top, msg_heap_setup): bounded after the first rounds, and after more no growth beyond
        # what the heap may keep. Under load a second round's buffers can land above the
        # first's (+24 MiB once in distcheck, +58 MiB once in CI: all three of them): the
        # growth is measured over a third round, when the second's are there to reuse; a leak
        # would still add 60 MB each round.
        def big_bodies():
            for _ in range(3):
                reply = raw(srv, b"POST /api/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: "
                            b"Basic Z3Vlc3Q6Z3Vlc3Q=\r\nContent-Length: 20000000\r\n\r\n" +
                            b"[" * (20 * 1000 * 1000))
                assert status_of(reply) == 400, reply[:300]
            w.check("after 20 MB bodies")
        big_bodies()
        rss1 = watcher.sample_rss(srv, 1)
        srv.check_rss_growth(rss0, rss1, RSS_MARGIN_KIB, "after oversized requests")
        big_bodies()
        rss2 = watcher.sample_rss(srv, 1)
        wt.log("  RSS after a second round: %d KiB" % rss2)
        big_bodies()
        srv.check_rss_growth(rss2, watcher.sample_rss(srv, 1), 32 * 1024,
                             "after as many oversized requests again, twice")
        st, _, _ = http(srv, "GET", "/api/whoami")
        assert st == 200


@wt.needs_process
def test_malformed_json():
    """every body handler answers 400 bad_request to JSON it cannot use"""
    bodies = ["{", "[]", "null", "1", '"x"', '{"a":1,"a":2}', "{\"tags\": {}}",
              '{"password": ["x"]}', '{"password": "a\\u0000b"}', "\xff\xfe", "{" * 100000,
              '{"configure": 1, "write": [], "read": {}}', '{"value": "12abc"}',
              '{"value": 1e400}', '{"users": "x"}', '{"vhosts": [1, 2]}',
              '{"permissions": [{"user": "nobody"}]}']
    paths = [("PUT", "/api/users/j"), ("PUT", "/api/vhosts/j"),
             ("PUT", "/api/permissions/%2F/guest"), ("PUT", "/api/topic-permissions/%2F/guest"),
             ("PUT", "/api/vhost-limits/%2F/max-queues"), ("POST", "/api/definitions"),
             ("POST", "/api/definitions/%2F")]
    with wt.server(mgmt=True, config=CONFIG) as srv, watcher.Watcher(srv.addr) as w:
        counts = {}
        for method, path in paths:
            for body in bodies:
                st, _, reply = http(srv, method, path, body.encode("utf-8", "surrogateescape")
                                    if isinstance(body, str) else body)
                counts[st] = counts.get(st, 0) + 1
                assert st in (201, 204, 400, 413), (method, path, body[:50], st, reply)
                if st == 400:
                    assert reply["error"] == "bad_request", reply
        wt.log("  statuses: %r" % counts)
        assert counts.get(400, 0) >= len(paths) * 10, counts
        w.check("after malformed JSON")
        st, _, _ = http(srv, "GET", "/api/overview")
        assert st == 200


@wt.needs_process
def test_slowloris():
    """a request trickled byte by byte is cut at the request deadline, the API still serves
    others meanwhile, and the watcher never stalls"""
    with wt.server(mgmt=True, config=CONFIG) as srv, watcher.Watcher(srv.addr) as w:
        socks = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", srv.mgmt_port))
            socks.append(s)
        request = b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n"
        t0 = time.monotonic()
        cut_at = None
        for i in range(len(request)):
            alive = 0
            for s in socks:
                try:
                    s.send(request[i:i + 1])
                    alive += 1
                except OSError:
                    pass
            if alive == 0:
                cut_at = time.monotonic() - t0
                break
            if i % 10 == 0:
                st, _, _ = http(srv, "GET", "/api/whoami")
                assert st == 200
            time.sleep(0.05)
        for s in socks:
            s.close()
        assert cut_at is not None, "trickled requests still open after %.1f s" % (
            time.monotonic() - t0)
        wt.log("  trickled requests cut after %.1f s (request_timeout 3 s)" % cut_at)
        assert cut_at < 10, cut_at
        w.check("during slowloris")


@wt.needs_process
def test_many_idle_connections():
    """300 idle connections: past the cap they are closed at once, the rest at the idle
    timeout; fds stay bounded; the API serves again afterwards"""
    with wt.server(mgmt=True, config=CONFIG) as srv, watcher.Watcher(srv.addr) as w:
        fds0 = fd_count(srv)
        socks = [socket.create_connection(("127.0.0.1", srv.mgmt_port)) for _ in range(300)]
        time.sleep(0.5)
        fds = fd_count(srv)
        wt.log("  fds: %d before, %d with 300 idle connections" % (fds0, fds))
        assert fds <= fds0 + CONNS_MAX + 5, (fds0, fds)
        w.check("with 300 idle connections")
        # The Unix socket has its own cap: warrenctl still gets in.
        st, _, _ = http(srv, "GET", "/api/whoami", unix=True)
        assert st == 200
        deadline = time.monotonic() + 15
        while fd_count(srv) > fds0 + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        wt.log("  fds after the idle timeout: %d" % fd_count(srv))
        assert fd_count(srv) <= fds0 + 2, fd_count(srv)
        for s in socks:
            s.close()
        st, _, _ = http(srv, "GET", "/api/whoami")
        assert st == 200
        w.check("after the idle connections")


@wt.needs_process
def test_long_lists():
    """10,000 queues (5,000 under ASan) listed whole while the broker's loop gets a tenth of a CPU: every field
    by name, a page sorted by a field only the entries have (idle_since: each entry is built
    to sort), their bindings, and the definitions export: written a few milliseconds per loop turn, so the AMQP watcher is served
    throughout (a list built in one turn held it for the whole list: seconds here). At most 4
    long lists at once: of 8 asked together the others get 503, Retry-After and a JSON error;
    clients gone mid-list free their places at once; queues, and a vhost, deleted while a list
    is written are left out of it, the reply whole JSON with no queue twice."""
    import base64
    import json
    # Half as many in the AddressSanitizer build, three times slower: as long a list to write.
    n = 5000 if wt.binary_sanitized() else 10000
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()
    with wt.server(mgmt=True) as srv:
        st, _, _ = wt.http(srv, "PUT", "/api/vhosts/v", {})
        assert st == 201, st
        defs = {"queues": [{"name": "q%05d" % i, "vhost": "v" if i % 2 else "/",
                            "durable": False, "auto_delete": False, "arguments": {}}
                           for i in range(n)]}
        st, _, _ = wt.http(srv, "POST", "/api/definitions", defs, timeout=120)
        assert st == 204, st
        with watcher.Watcher(srv.addr) as w:
            with watcher.crowded(srv.pid):
                st, _, body = wt.http(srv, "GET", "/api/queues", timeout=300)
                assert st == 200, st
                names = [(q["vhost"], q["name"]) for q in body]
                assert len(names) == n + 1 and names == sorted(names), len(names)
                assert all("messages" in q and "arguments" in q for q in body)
                st, _, body = wt.http(srv, "GET", "/api/queues?page=2&page_size=50&"
                                      "sort=idle_since&columns=name", timeout=300)
                assert st == 200 and body["filtered_count"] == n + 1, (st, body)
                assert len(body["items"]) == 50 and list(body["items"][0]) == ["name"], body
                st, _, body = wt.http(srv, "GET", "/api/bindings", timeout=300)
                assert st == 200 and len(body) == n + 1, (st, len(body))  # the default's
                st, _, body = wt.http(srv, "GET", "/api/definitions", timeout=300)
                assert st == 200 and len(body["queues"]) == n, (st, len(body["queues"]))
            w.check("during lists of %d queues, their bindings and definitions on a crowded "
                    "loop" % n)

            got = wt.parallel([lambda: wt.http(srv, "GET", "/api/queues", timeout=300)] * 8)
            codes = sorted(g[0] if isinstance(g, tuple) else repr(g) for g in got)
            assert codes.count(200) >= 4 and codes.count(503) >= 1, codes
            assert set(codes) <= {200, 503}, codes
            for st, hdrs, body in got:
                if st == 503:
                    assert hdrs.get("retry-after") == "1", hdrs
                    assert body["error"] == "service_unavailable", body
                else:
                    assert len(body) == n + 1
            w.check("during 8 lists at once")

            with watcher.crowded(srv.pid):
                # Four lists left unread: each client goes away while its list is written.
                socks = []
                for _ in range(4):
                    s = socket.create_connection(("127.0.0.1", srv.mgmt_port))
                    s.sendall(("GET /api/queues HTTP/1.1\r\nHost: x\r\nAuthorization: %s"
                               "\r\n\r\n" % auth).encode())
                    socks.append(s)
                time.sleep(1)
                for s in socks:
                    s.close()
                time.sleep(1)
                st, _, body = wt.http(srv, "GET", "/api/queues/v?columns=name", timeout=300)
                assert st == 200 and len(body) == n // 2, (st, len(body or []))

                # Queues and a vhost deleted while a list is written.
                def deletes():
                    time.sleep(0.2)
                    st, _, _ = wt.http(srv, "DELETE", "/api/vhosts/v", timeout=60)
                    assert st == 204, st
                    for i in range(0, 2000, 2):
                        st, _, _ = wt.http(srv, "DELETE", "/api/queues/%%2F/q%05d" % i)
                        assert st == 204, st
                    return "deleted"
                listed, done = wt.parallel([
                    lambda: wt.http(srv, "GET", "/api/queues", timeout=300),
                    deletes])
            assert done == "deleted", done
            st, _, body = listed
            assert st == 200, st
            names = [(q["vhost"], q["name"]) for q in body]
            assert len(set(names)) == len(names) <= n + 1, len(names)
            wt.log("  a list written while %d queues and their vhost, then 1,000 others, "
                   "were deleted: %d queues" % (n // 2, len(names)))
            st, _, body = wt.http(srv, "GET", "/api/queues?columns=name")
            assert st == 200 and len(body) == n // 2 - 1000 + 1, len(body)
            w.check("during lists of queues being deleted")


wt.run([test_oversized_and_garbage, test_malformed_json, test_slowloris,
        test_many_idle_connections, test_long_lists])
