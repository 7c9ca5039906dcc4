"""warrenctl on its own, against a stand-in for the broker's administration API: a Python HTTP
server on <data_dir>/warren-admin.sock (and one on TCP for --host) that records the requests
and answers with replies written here. Covers what needs no broker: usage errors (64, with
rabbitmqctl's "Error (argument validation)" texts), finding the socket from --config and
--data-dir as warren-server finds its data directory, an unreachable broker (69), the
requests each command sends (paths percent-encoded, no credentials on the Unix socket, basic
auth over TCP, X-Reason on close_connection; authenticate_user checks the password against
the stored hash, SHA-256, SHA-512 and MD5), the output formats (banner, tab-separated
header and rows, -q, -s, --no-table-headers, --formatter json and csv, no header over an empty
list), and replies that are not what they should be (not HTTP, cut short, bad chunks, not
JSON, the wrong JSON, an error status): an error message and exit 69, never a crash; a
reply read to the end its framing gives, without waiting for the server to close.
tests/integration/15-access-warrenctl.py drives the same commands against warren-server."""

import base64
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


def http(status, body, headers=None):
    """A well-formed reply with body (bytes, str, or a value sent as JSON)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    head = "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status, len(body))
    for h in headers or ():
        head += h + "\r\n"
    return head.encode() + b"\r\n" + body


class FakeApi:
    """Serves on a Unix socket (path) or TCP (tcp=True): each connection's request is parsed
    and recorded in requests as (method, path, headers dict, body), and answered with
    replies[(method, path)] (raw bytes), else a 404 in RabbitMQ's JSON."""

    def __init__(self, path=None, tcp=False):
        self.requests = []
        self.replies = {}
        self.keep_open = False  # True: after a reply, wait for the client to close first
        if tcp:
            # Below the ephemeral range, as the test servers' ports (wt.free_port).
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.port = wt.free_port()
            self.sock.bind(("127.0.0.1", self.port))
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                while len(body) < int(headers.get("content-length", "0")):
                    body += conn.recv(65536)
                self.requests.append((method, path, headers, body))
                reply = self.replies.get((method, path))
                if reply is None:
                    reply = http(404, {"error": "Object Not Found", "reason": "Not Found"})
                try:
                    conn.sendall(reply)
                    while self.keep_open and conn.recv(65536):
                        pass
                except OSError:
                    pass

    def close(self):
        # Wake the serving thread's accept() and wait for it before closing: a socket closed
        # under a thread about to call accept() frees its descriptor for the next FakeApi's
        # socket, and the old thread would then answer that one's requests with its replies.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join()
        self.sock.close()


class Fixture:
    """A data directory with a FakeApi on its warren-admin.sock."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="warrenctl-test-")
        self.api = FakeApi(os.path.join(self.dir, "warren-admin.sock"))
        return self

    def __exit__(self, *exc):
        self.api.close()
        wt.cleanup_dir(self.dir)

    def ctl(self, *args, **kw):
        return wt.warrenctl(*args, data_dir=self.dir, **kw)


USERS = [{"name": "alice", "tags": ["administrator", "monitoring"], "password_hash": "x"},
         {"name": "bob", "tags": [], "password_hash": "y"},
         {"name": "old", "tags": "management,policymaker"}]


def test_usage_errors():
    """Usage errors exit 64 with rabbitmqctl's texts, before any request."""
    with Fixture() as f:
        rc, out, err = f.ctl()
        assert rc == 64 and "Usage" in err, (rc, err)
        rc, out, err = f.ctl("frobnicate")
        assert rc == 64 and "Command 'frobnicate' not found." in err, (rc, err)
        rc, out, err = f.ctl("add_user")
        assert rc == 64, rc
        assert err.startswith("Error (argument validation): not enough arguments.\n"
                              "Arguments given:\n\tadd_user\n"), err
        assert "add_user <username> <password>" in err, err
        rc, out, err = f.ctl("list_users", "extra")
        assert rc == 64 and "too many arguments." in err, (rc, err)
        rc, out, err = f.ctl("list_vhosts", "name", "bogus")
        assert rc == 64 and "Info key(s) bogus are not supported" in err, (rc, err)
        rc, out, err = f.ctl("list_connections", "nope")
        assert rc == 64 and "Info key(s) nope are not supported" in err, (rc, err)
        rc, out, err = f.ctl("--formatter", "yaml", "list_users")
        assert rc == 64 and "yaml" in err, (rc, err)
        rc, out, err = f.ctl("--bogus-option", "list_users")
        assert rc == 64, rc
        rc, out, err = f.ctl("--timeout", "0", "list_users")
        assert rc == 64, rc
        for args in (("add_user", b"caf\xe9", "pw"), ("set_permissions", "-p", b"\xff", "u",
                                                     "", "", "")):
            rc, out, err = f.ctl(*args)
            assert rc == 64 and "arguments must be UTF-8." in err, (args, rc, err)
        rc, out, err = f.ctl("import_definitions", os.path.join(f.dir, "missing.json"))
        assert rc == 65 and "Bad argument: File %s does not exist" % os.path.join(
            f.dir, "missing.json") in err, (rc, err)
        for text, want in (("[1]", "is not a JSON object\n"),
                           ("{\"users\": [}", "is not a JSON object: ")):
            path = os.path.join(f.dir, "defs.json")
            with open(path, "w") as fh:
                fh.write(text)
            rc, out, err = f.ctl("import_definitions", path)
            assert rc == 65 and want in err, (rc, err)
        rc, out, err = f.ctl("import_definitions", f.dir)  # a directory
        assert rc == 65 and "cannot read" in err, (rc, err)
        assert f.api.requests == [], f.api.requests
        rc, out, err = f.ctl("help", "set_permissions")
        assert rc == 0 and "set_permissions [-p <vhost>] <username> <conf> <write> <read>" in out
        rc, out, err = f.ctl("--help")
        assert rc == 0 and "close_connection" in out, out


def test_finds_the_socket():
    """The socket is <data_dir>/warren-admin.sock, data_dir from --config, then --data-dir;
    nothing listening there is exit 69 naming the path."""
    with Fixture() as f:
        f.api.replies[("GET", "/api/users")] = http(200, [])
        conf = os.path.join(f.dir, "warren.conf")
        with open(conf, "w") as fh:
            fh.write("data_dir = %s\n" % f.dir)
        rc, out, err = wt.warrenctl("--config", conf, "-q", "list_users")
        assert rc == 0, (rc, err)
        assert len(f.api.requests) == 1, f.api.requests
        empty = os.path.join(f.dir, "elsewhere")
        os.mkdir(empty)
        rc, out, err = wt.warrenctl("--config", conf, "--data-dir", empty, "list_users")
        assert rc == 69, rc
        assert os.path.join(empty, "warren-admin.sock") in err, err
        with open(conf, "w") as fh:
            fh.write("data_dirr = /x\n")
        rc, out, err = wt.warrenctl("--config", conf, "list_users")
        assert rc == 64 and "warren.conf:1" in err, (rc, err)
        # The default data_dir is ./var, as the server's.
        rc, out, err = wt.warrenctl("list_users", cwd=empty)
        assert rc == 69 and "./var/warren-admin.sock" in err, (rc, err)


def test_list_output_formats():
    """list_users in every format: banner, header, rows; -q; -s; --no-table-headers; json;
    csv; tags from a list or an older comma-separated string."""
    with Fixture() as f:
        f.api.replies[("GET", "/api/users")] = http(200, USERS)
        table = "user\ttags\nalice\t[administrator, monitoring]\nbob\t[]\n" \
                "old\t[management, policymaker]\n"
        rc, out, err = f.ctl("list_users")
        assert (rc, out, err) == (0, "Listing users ...\n" + table, ""), (rc, out, err)
        rc, out, err = f.ctl("-q", "list_users")
        assert out == table, out
        rc, out, err = f.ctl("list_users", "-s")
        assert out == table.split("\n", 1)[1], out
        rc, out, err = f.ctl("list_users", "--no-table-headers")
        assert out == "Listing users ...\n" + table.split("\n", 1)[1], out
        rc, out, err = f.ctl("list_users", "--formatter", "json")
        assert out == ('[\n{"user":"alice","tags":["administrator","monitoring"]}\n'
                       ',{"user":"bob","tags":[]}\n'
                       ',{"user":"old","tags":["management","policymaker"]}\n]\n'), out
        rc, out, err = f.ctl("list_users", "--formatter", "csv")  # no banner, as rabbitmqctl
        assert out == ('"user","tags"\n"alice","[administrator, monitoring]"\n"bob","[]"\n'
                       '"old","[management, policymaker]"\n'), out
        f.api.replies[("GET", "/api/users")] = http(200, [])
        rc, out, err = f.ctl("list_users")
        assert out == "Listing users ...\n", out  # no header over nothing, as rabbitmqctl
        rc, out, err = f.ctl("list_users", "--formatter", "json")
        assert out == "[\n]\n", out


def test_requests_sent():
    """What the commands send: percent-encoded names ("/" is %2F), JSON bodies, no
    Authorization on the Unix socket, X-Reason for close_connection, the vhost's limits
    replaced as a whole; authenticate_user against each hashing algorithm."""
    with Fixture() as f:
        a = f.api
        a.replies[("GET", "/api/vhosts/%2F")] = http(200, {"name": "/"})
        a.replies[("GET", "/api/users/a%20b%2Fc")] = http(200, {"name": "a b/c", "tags": []})
        a.replies[("PUT", "/api/permissions/%2F/a%20b%2Fc")] = http(201, "")
        rc, out, err = f.ctl("set_permissions", "a b/c", "^x", "", ".*")
        assert rc == 0, err
        assert out == 'Setting permissions for user "a b/c" in vhost "/" ...\n', out
        method, path, headers, body = a.requests[-1]
        assert (method, path) == ("PUT", "/api/permissions/%2F/a%20b%2Fc"), a.requests[-1]
        assert json.loads(body) == {"configure": "^x", "write": "", "read": ".*"}, body
        assert "authorization" not in headers, headers
        assert headers["content-type"] == "application/json", headers

        # authenticate_user checks the password against the stored hash, as the broker does.
        salt = b"\x01\x02\x03\x04"
        for alg, algname in ((hashlib.sha256, "sha256"), (hashlib.sha512, "sha512"),
                             (hashlib.md5, "md5")):
            a.replies[("GET", "/api/users/u")] = http(200, {
                "name": "u", "tags": [], "hashing_algorithm": "rabbit_password_hashing_" + algname,
                "password_hash": base64.b64encode(salt + alg(salt + b"p w").digest()).decode()})
            rc, out, err = f.ctl("authenticate_user", "u", "p w")
            assert (rc, out) == (0, 'Authenticating user "u" ...\nSuccess\n'), (rc, out)
            assert "authorization" not in a.requests[-1][2], a.requests[-1]
            rc, out, err = f.ctl("authenticate_user", "u", "bad")
            assert rc == 65, rc
            assert err == ('Error:\nError: failed to authenticate user "u"\n'
                           "user 'u' - invalid credentials\n"), err
        rc, out, err = f.ctl("authenticate_user", "nobody", "x")
        assert rc == 65 and "user 'nobody' - invalid credentials" in err, (rc, err)
        a.replies[("GET", "/api/users/u")] = http(200, {"name": "u", "password_hash": "",
                                                        "tags": []})
        rc, out, err = f.ctl("authenticate_user", "u", "")
        assert rc == 65, rc  # no password: no password login
        a.replies[("GET", "/api/users/u")] = http(200, {"name": "u", "password_hash": "!!",
                                                        "tags": []})
        rc, out, err = f.ctl("authenticate_user", "u", "x")
        assert rc == 69 and "password hash" in err, (rc, err)

        # set_user_tags sends the hash back: a PUT without it would clear the password.
        a.replies[("GET", "/api/users/alice")] = http(200, {
            "name": "alice", "tags": ["management"], "password_hash": "H",
            "hashing_algorithm": "rabbit_password_hashing_sha256"})
        a.replies[("PUT", "/api/users/alice")] = http(204, "")
        rc, out, err = f.ctl("set_user_tags", "alice", "administrator", "monitoring")
        assert out == 'Setting tags for user "alice" to [administrator, monitoring] ...\n', out
        assert json.loads(a.requests[-1][3]) == {
            "password_hash": "H", "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["administrator", "monitoring"]}, a.requests[-1]
        rc, out, err = f.ctl("change_password", "alice", "new")
        assert json.loads(a.requests[-1][3]) == {"password": "new", "tags": ["management"]}
        rc, out, err = f.ctl("clear_password", "alice")
        assert json.loads(a.requests[-1][3]) == {"password_hash": "", "tags": ["management"]}
        a.replies[("PUT", "/api/users/carl")] = http(201, "")
        rc, out, err = f.ctl("add_user", "carl", stdin=b"from stdin\n")
        assert rc == 0 and "Done." in out, (rc, out, err)
        assert a.requests[-1][:2] == ("PUT", "/api/users/carl"), a.requests[-1]
        assert json.loads(a.requests[-1][3]) == {"password": "from stdin", "tags": []}

        a.replies[("GET", "/api/vhost-limits/%2F")] = http(200, [
            {"vhost": "/", "value": {"max-connections": 5, "max-queues": 9}}])
        a.replies[("DELETE", "/api/vhost-limits/%2F/max-connections")] = http(204, "")
        a.replies[("PUT", "/api/vhost-limits/%2F/max-queues")] = http(204, "")
        n = len(a.requests)
        rc, out, err = f.ctl("set_vhost_limits", '{"max-queues": -1}')
        assert rc == 0, err
        assert [(m, p) for m, p, _, _ in a.requests[n:]] == [
            ("GET", "/api/vhosts/%2F"), ("GET", "/api/vhost-limits/%2F"),
            ("DELETE", "/api/vhost-limits/%2F/max-connections"),
            ("PUT", "/api/vhost-limits/%2F/max-queues")], a.requests[n:]
        assert json.loads(a.requests[-1][3]) == {"value": -1}

        name = "127.0.0.1:50312 -> 127.0.0.1:5672"
        a.replies[("GET", "/api/connections")] = http(200, [{"name": name, "user": "guest"}])
        a.replies[("DELETE", "/api/connections/127.0.0.1%3A50312%20-%3E%20127.0.0.1%3A5672")] = \
            http(204, "")
        rc, out, err = f.ctl("-s", "list_connections", "pid")
        assert out == name + "\n", out
        rc, out, err = f.ctl("close_connection", name, "go\r\naway")
        assert rc == 0 and out == "Closing connection %s, reason: go\r\naway...\n" % name, out
        assert a.requests[-1][2]["x-reason"] == "go  away", a.requests[-1]


def test_tcp_basic_auth():
    """--host/--port/--username and WARRENCTL_PASSWORD (or --password): basic auth over TCP."""
    api = FakeApi(tcp=True)
    try:
        api.replies[("GET", "/api/vhosts")] = http(200, [{"name": "/"}, {"name": "v1"}])
        rc, out, err = wt.warrenctl("--host", "127.0.0.1", "--port", str(api.port), "--username",
                                    "admin", "list_vhosts", env={"WARRENCTL_PASSWORD": "s3cret"})
        assert (rc, out) == (0, "Listing vhosts ...\nname\n/\nv1\n"), (rc, out, err)
        auth = api.requests[-1][2]["authorization"]
        assert base64.b64decode(auth.split()[1]) == b"admin:s3cret", auth
        rc, out, err = wt.warrenctl("--host", "127.0.0.1", "--port", str(api.port), "--password",
                                    "pw", "list_vhosts")
        auth = api.requests[-1][2]["authorization"]
        assert base64.b64decode(auth.split()[1]) == b"guest:pw", auth
    finally:
        api.close()


BAD_REPLIES = [
    ("not HTTP", b"hello there\r\n\r\n"),
    ("nothing", b""),
    ("no end of headers", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"),
    ("cut short", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{\"name\""),
    ("bad content-length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n[]"),
    ("bad status", b"HTTP/1.1 2000 OK\r\n\r\n[]"),
    ("bad chunks", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n"),
    ("chunk past the end", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"ffffffffffffffff\r\n[]\r\n"),
    ("chunks cut short", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n"),
    ("not JSON", http(200, b"<html>oops</html>")),
    ("error without JSON", http(500, b"Internal Server Error")),
    ("error with an odd reason", http(400, {"error": "bad_request", "reason": [1, {"a": 2}]})),
]


def test_bad_replies():
    """Replies that are not what they should be: an error message and exit 69, no crash; the
    wrong JSON shapes are skipped or reported; a valid chunked reply is read."""
    with Fixture() as f:
        for what, reply in BAD_REPLIES:
            for cmd in (("list_users",), ("list_vhosts", "name", "tracing"),
                        ("status",), ("list_connections",), ("delete_user", "x"),
                        ("export_definitions", "-")):
                f.api.replies = {("GET", "/api/users"): reply, ("GET", "/api/vhosts"): reply,
                                 ("GET", "/api/overview"): reply,
                                 ("GET", "/api/connections"): reply,
                                 ("DELETE", "/api/users/x"): reply,
                                 ("GET", "/api/definitions"): reply}
                if cmd[0] == "delete_user" and reply.startswith(b"HTTP/1.1 200"):
                    continue  # a DELETE's 200 is done, whatever its body
                rc, out, err = f.ctl(*cmd)
                assert rc == 69, "%s: %s: exit %d" % (what, cmd, rc)
                assert err.startswith("Error"), "%s: %s: %r" % (what, cmd, err)
        # The wrong JSON: rows that are not objects are left out, odd values still print.
        odd = [1, "x", None, {"name": ["a", {"b": 1}], "tags": {"k": [True, None, 1.5]}},
               {"tags": 7}]
        f.api.replies = {("GET", "/api/users"): http(200, odd),
                         ("GET", "/api/overview"): http(200, {"listeners": 5,
                                                              "object_totals": []}),
                         ("GET", "/api/vhosts"): http(200, {"not": "a list"}),
                         ("GET", "/api/connections"): http(200, "\"a string\"")}
        rc, out, err = f.ctl("-q", "list_users")
        assert rc == 0, err
        assert out == 'user\ttags\n[a, [{"b",1}]]\t[]\n\t[]\n', out
        rc, out, err = f.ctl("status")
        assert rc == 0, err
        rc, out, err = f.ctl("list_connections", "--formatter", "json")
        assert (rc, out) == (0, "[\n]\n"), (rc, out)
        rc, out, err = f.ctl("list_vhosts")
        assert rc == 0, err
        body = b'[{"name":"/"}]'
        f.api.replies[("GET", "/api/vhosts")] = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n" + body[:5] +
            b"\r\n%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n")
        rc, out, err = f.ctl("-s", "list_vhosts")
        assert (rc, out) == (0, "/\n"), (rc, out, err)
        # A server that keeps the connection open: the reply ends where its framing says
        # (a read waiting for EOF would time out after 2 s, exit 69).
        f.api.keep_open = True
        f.api.replies[("GET", "/api/users")] = http(200, USERS[:1])
        f.api.replies[("DELETE", "/api/users/x")] = b"HTTP/1.1 204 No Content\r\n\r\n"
        for cmd in (("list_vhosts",), ("list_users",), ("delete_user", "x")):
            rc, out, err = f.ctl("--timeout", "2", *cmd)
            assert rc == 0, (cmd, rc, err)


if __name__ == "__main__":
    wt.run([test_usage_errors, test_finds_the_socket, test_list_output_formats,
            test_requests_sent, test_tcp_basic_auth, test_bad_replies])
