"""warren-server's command line and config file: --help, --version, --check-config, errors
that name FILE:LINE, flags that override the file, the log line format, the config keys that
change what clients see (default user/password/vhost, loopback_users), the node's name
(--nodename, $WARREN_NODENAME) as the management API shows it, and the cluster's keys. Warren
only: these tests need the server process and have no RabbitMQ equivalent."""

import os
import re
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \[(debug|info|warning|error|critical)\] \S")

GOOD_CONFIG = """# every key warren.conf knows
listeners.tcp.default = 5672
listeners.tcp.local = 127.0.0.1:5673
default_user = guest
default_pass = guest
default_vhost = /
loopback_users.guest = true
heartbeat = 60
frame_max = 131072
channel_max = 2047
handshake_timeout = 10000
log.level = info
data_dir = ./var
"""


class ConfigFile:
    def __init__(self, text):
        self.dir = tempfile.mkdtemp(prefix="warren-test-conf-")
        self.path = os.path.join(self.dir, "warren.conf")
        with open(self.path, "w") as f:
            f.write(text)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        wt.cleanup_dir(self.dir)


def port_refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


@wt.needs_process
def test_help_and_version():
    """--help and --version exit 0 with sensible output on stdout"""
    rc, out, err, _ = wt.run_server_to_exit("--help")
    assert rc == 0, rc
    for flag in ("--config", "--port", "--bind", "--data-dir", "--log-level", "--check-config",
                 "--help", "--version"):
        assert flag in out, "--help does not mention %s" % flag
    rc, out, err, _ = wt.run_server_to_exit("--version")
    assert rc == 0, rc
    assert re.search(r"(?i)warren", out) and re.search(r"\d+\.\d+\.\d+", out), out


@wt.needs_process
def test_bad_flags():
    """an unknown flag, a bad --port or --log-level, a missing config file: exit nonzero"""
    with tempfile.TemporaryDirectory() as d:
        missing = os.path.join(d, "missing.conf")
        for args in (["--no-such-flag"], ["--port", "notaport", "--check-config"],
                     ["--port", "70000", "--check-config"],
                     ["--log-level", "loud", "--check-config"],
                     ["--config", missing, "--check-config"], ["--config", missing]):
            rc, out, err, _ = wt.run_server_to_exit(*args)
            assert rc != 0, "%r exited 0" % args
            assert err.strip(), "%r: no message on stderr" % args
        rc, out, err, _ = wt.run_server_to_exit("--config", missing)
        assert "missing.conf" in err, err


@wt.needs_process
def test_check_config_good():
    """--check-config accepts a file with every key and exits 0 without listening"""
    with ConfigFile(GOOD_CONFIG) as path:
        rc, out, err, _ = wt.run_server_to_exit("--config", path, "--check-config")
        assert rc == 0, err
    with ConfigFile("") as path:
        rc, out, err, _ = wt.run_server_to_exit("--config", path, "--check-config")
        assert rc == 0, err


@wt.needs_process
def test_config_errors_name_file_and_line():
    """a bad key, a bad value or a bad line: 'FILE:LINE: reason', exit nonzero, with
    --check-config and at startup"""
    cases = [
        ("unknown key", "# comment\n\nheartbeat = 30\nhearbeat = 5\n", 4, "hearbeat"),
        ("not a number", "heartbeat = abc\n", 1, None),
        ("below minimum", "heartbeat = 10\nframe_max = 100\n", 2, None),
        ("above maximum", "heartbeat = 70000\n", 1, None),
        ("negative", "handshake_timeout = -5\n", 1, None),
        ("bad log level", "log.level = loud\n", 1, None),
        ("bad listener", "listeners.tcp.default = notaport\n", 1, None),
        ("bad port", "listeners.tcp.default = 127.0.0.1:99999\n", 1, None),
        ("bad boolean", "loopback_users.guest = maybe\n", 1, None),
        ("no '='", "heartbeat 30\n", 1, None),
        ("empty key", "= 5\n", 1, None),
    ]
    for what, text, line, word in cases:
        with ConfigFile(text) as path:
            for extra in (["--check-config"], ["--port", str(wt.free_port()),
                                               "--bind", "127.0.0.1"]):
                rc, out, err, _ = wt.run_server_to_exit("--config", path, *extra)
                assert rc != 0, "%s: exit status 0" % what
                m = re.search(r"warren\.conf:(\d+): \S", err)
                assert m, "%s: no 'warren.conf:LINE: reason' in %r" % (what, err)
                assert int(m.group(1)) == line, "%s: error names line %s, expected %d" % (
                    what, m.group(1), line)
                if word:
                    assert word in err, "%s: %r not named in %r" % (what, word, err)


@wt.needs_process
def test_listener_from_file_and_flags():
    """listeners.tcp.* from the file is used without flags; --port/--bind override it"""
    port_a, port_b = wt.free_port(), wt.free_port()
    config = {"listeners.tcp.default": "127.0.0.1:%d" % port_a}
    with wt.server(config=config, listen_args=False, port=port_a) as srv:
        assert srv.addr[1] == port_a
        wt.assert_serves(srv.addr)
        wt.log("  file listener 127.0.0.1:%d serves" % port_a)
    with wt.server(config=config, port=port_b) as srv:
        assert srv.addr[1] == port_b
        wt.assert_serves(srv.addr)
        assert port_refuses(port_a), "port %d from the file is open despite --port" % port_a
        wt.log("  --port %d serves, file port %d closed" % (port_b, port_a))
    # A bare port in the file listens on every interface, loopback included.
    port_c = wt.free_port()
    with wt.server(config={"listeners.tcp.default": str(port_c)}, listen_args=False,
                   port=port_c) as srv:
        wt.assert_serves(srv.addr)


@wt.needs_process
def test_log_format():
    """every log line is 'YYYY-MM-DD HH:MM:SS.mmm [level] ...'; --log-level overrides
    log.level from the file"""
    with wt.server(config={"log.level": "error"}) as srv:  # the harness adds --log-level debug
        wt.assert_serves(srv.addr)
        with wt.RawConn(srv.addr, timeout=10) as c:
            c.send(b"GARBAGE!")
            c.read_all()
        srv.stop()
        text = srv.stderr_text()
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines, "no log output at --log-level debug"
    bad = [l for l in lines if not LOG_LINE.match(l)]
    assert not bad, "log lines not in the format: %r" % bad[:5]
    levels = {LOG_LINE.match(l).group(1) for l in lines}
    wt.log("  %d lines, levels %s" % (len(lines), sorted(levels)))
    assert levels & {"debug", "info"}, "no debug or info line at --log-level debug"


@wt.needs_process
def test_log_level_from_file():
    """log.level = warning in the file (no flag): no debug or info lines"""
    with wt.server(config={"log.level": "warning"}, log_level=None) as srv:
        wt.assert_serves(srv.addr)
        srv.stop()
        text = srv.stderr_text()
    lines = [l for l in text.splitlines() if l.strip()]
    for l in lines:
        m = LOG_LINE.match(l)
        assert m, "log line not in the format: %r" % l
        assert m.group(1) not in ("debug", "info"), "%r logged at log.level = warning" % l


@wt.needs_process
def test_default_user_and_vhost():
    """default_user/default_pass/default_vhost replace guest and '/'"""
    import pika
    import pika.exceptions as pe
    config = {"default_user": "alice", "default_pass": "s3cret", "default_vhost": "/other"}
    with wt.server(config=config) as srv:
        conn = wt.pika_connect(srv.addr, virtual_host="/other",
                               credentials=pika.PlainCredentials("alice", "s3cret"))
        conn.channel().close()
        conn.close()
        with wt.RawConn(srv.addr) as c:
            c.handshake("start")
            c.send_method(0, wt.CONNECTION_START_OK, wt.start_ok_args())  # guest/guest
            c.expect_connection_close(403, text=(
                "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                "For details see the broker logfile."), ids=(0, 0))
        with wt.RawConn(srv.addr) as c:
            c.handshake("open-sent", user="alice", password="s3cret", vhost="/")
            c.expect_connection_close(530, text="NOT_ALLOWED - vhost / not found",
                                      ids=wt.CONNECTION_OPEN)
        try:
            wt.pika_connect(srv.addr, credentials=pika.PlainCredentials("alice", "wrong"))
            raise AssertionError("wrong password accepted")
        except (pe.ProbableAuthenticationError, pe.AuthenticationError):
            pass


def api_node_names(srv):
    """The node name as /api/overview, /api/nodes and /api/healthchecks/node/<name> show it."""
    st, _, overview = wt.http(srv, "GET", "/api/overview")
    assert st == 200, (st, overview)
    st, _, nodes = wt.http(srv, "GET", "/api/nodes")
    assert st == 200 and len(nodes) == 1, (st, nodes)
    name = overview["node"]
    assert nodes[0]["name"] == name, (nodes, overview)
    st, _, body = wt.http(srv, "GET", "/api/healthchecks/node/" + name)
    assert st == 200 and body == {"status": "ok"}, (st, body)
    st, _, body = wt.http(srv, "GET", "/api/healthchecks/node/other@nowhere")
    assert st == 404, (st, body)
    return name


@wt.needs_process
def test_node_name():
    """the node's name: --nodename, else $WARREN_NODENAME, else warren@<short host name>
    (RabbitMQ's rabbit@<short host name>); the management API shows it; a bad one stops
    startup with a message naming the flag or the variable"""
    short = socket.gethostname().split(".")[0]
    with wt.server(mgmt=True) as srv:
        assert api_node_names(srv) == "warren@" + short
    with wt.server(mgmt=True, args=("--nodename", "rabbit@node1")) as srv:
        assert api_node_names(srv) == "rabbit@node1"
    with wt.server(mgmt=True, env={"WARREN_NODENAME": "env-node@10.0.0.2"}) as srv:
        assert api_node_names(srv) == "env-node@10.0.0.2"
    with wt.server(mgmt=True, env={"WARREN_NODENAME": "env@h"},
                   args=("--nodename", "node3")) as srv:  # the flag wins; @host is added
        assert api_node_names(srv) == "node3@" + short
    rc, out, err, _ = wt.run_server_to_exit("--nodename", "bad name@h", "--check-config")
    assert rc == 1 and err == (
        "warren-server: bad value 'bad name@h' for --nodename: expected name@host: the name may "
        "hold only A-Z, a-z, 0-9, '_' and '-'\n"), (rc, err)


@wt.needs_process
def test_cluster_keys():
    """the cluster's keys (RabbitMQ's) pass --check-config; a bad node, an unknown peer
    discovery backend, or a cluster port past 65535 are refused with the file named"""
    good = ("cluster_name = prod\n"
            "cluster_formation.peer_discovery_backend = rabbit_peer_discovery_classic_config\n"
            "cluster_formation.classic_config.nodes.1 = warren@node1\n"
            "cluster_formation.classic_config.nodes.2 = warren@127.0.0.1:25673\n"
            "distribution.listener.port_range.min = 25672\n"
            "distribution.listener.port_range.max = 25672\n"
            "distribution.listener.interface = 127.0.0.1\n")
    with ConfigFile(good) as path:
        rc, out, err, _ = wt.run_server_to_exit("--config", path, "--check-config")
        assert rc == 0 and out == "configuration OK\n", (rc, out, err)
    cases = [
        ("cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s\n",
         ":1: bad value 'rabbit_peer_discovery_k8s' for "
         "cluster_formation.peer_discovery_backend: expected classic_config, "
         "rabbit_peer_discovery_classic_config\n"),
        ("\ncluster_formation.classic_config.nodes.1 = node1\n",
         ":2: bad value 'node1' for cluster_formation.classic_config.nodes.1: expected "
         "name@host[:port]: no '@' between the name and the host\n"),
        ("listeners.tcp.default = 50000\ncluster_formation.classic_config.nodes.1 = w@h\n",
         ": the cluster port, AMQP port 50000 + 20000, is above 65535: set "
         "distribution.listener.port_range.min\n"),
    ]
    for text, want in cases:
        with ConfigFile(text) as path:
            rc, out, err, _ = wt.run_server_to_exit("--config", path, "--check-config")
            assert rc == 1 and err == path + want, (text, rc, err)


if __name__ == "__main__":
    wt.run([test_help_and_version, test_bad_flags, test_check_config_good,
            test_config_errors_name_file_and_line, test_listener_from_file_and_flags,
            test_log_format, test_log_level_from_file, test_default_user_and_vhost,
            test_node_name, test_cluster_keys])
