"""TLS between the nodes (issue 14): three nodes whose configurations name a certificate, its
key and the cluster's CA (distribution.ssl_options.*, made by local-cluster.sh with
WARREN_CLUSTER_TLS=1):
- they form the cluster and replicate a queue over TLS: publishes confirmed through one node,
  consumed through another; its leader killed, the next serves it, the node restarted rejoins;
- the cluster port speaks TLS first: a plain TCP client gets nothing (no challenge in clear)
  and, sending something else, is closed with a log line; a TLS client whose certificate
  another CA issued is refused; one with the cluster's certificate gets the transport's
  challenge, inside TLS."""

import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
import pki  # noqa: E402
import queue_checker as qc  # noqa: E402
import warren_test as wt  # noqa: E402


def cluster_port(c, i):
    return c.base + 20000 + i - 1


def tls_client(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # (the nodes' certificates name no address)
    ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def check_tls(c, procs, other_pki):
    import pika
    for i in (1, 2, 3):
        assert "listening on 127.0.0.1:%d (TLS)" % cluster_port(c, i) in c.log_text(i)

    conn = qc.connect(c, 1)
    chan = conn.channel()
    chan.queue_declare("qt", durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    conn = qc.connect(c, 2)
    chan = conn.channel()
    chan.confirm_delivery()
    for k in range(200):
        chan.basic_publish("", "qt", b"t%d" % k, pika.BasicProperties(delivery_mode=2))
    conn.close()

    # The leader killed: the next serves every message, over TLS too.
    leader = ch.names().index(c.queue(3, "qt")[1]["leader"]) + 1
    c.kill_node(leader)
    procs.pop(leader, None)
    asked = 3 if leader != 3 else 2
    ch.wait_for("a new leader", lambda: (c.queue(asked, "qt")[1] or {}).get("leader") not in
                (None, "", ch.names()[leader - 1]), 20)
    procs[leader] = c.start_node(leader)
    ch.wait_for("every node running again", lambda: qc.all_running(c), 30)
    conn = ch.wait_for("a connection to node %d" % asked, lambda: qc.connect(c, asked), 10)
    chan = conn.channel()
    got = []
    while True:
        m, _, body = chan.basic_get("qt", auto_ack=True)
        if m is None:
            break
        got.append(body)
    conn.close()
    assert got == [b"t%d" % k for k in range(200)], (len(got), got[:3])

    # A plain TCP client: no challenge in clear; something else than TLS is closed.
    s = socket.create_connection(("127.0.0.1", cluster_port(c, 1)), timeout=5)
    s.settimeout(0.5)
    try:
        assert s.recv(64) == b"", "the cluster port spoke before a TLS ClientHello"
    except socket.timeout:
        pass
    s.settimeout(5)
    s.sendall(b"WRFT not TLS\r\n\r\n")
    assert s.recv(64) == b""
    s.close()
    ch.wait_for("the plain client's log line", lambda: "handshake failed" in c.log_text(1), 5)

    # Another CA's certificate is refused; the cluster's is taken, and the transport's own
    # handshake starts inside TLS: its challenge, magic "WRFT".
    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stranger.check_hostname = False
    stranger.verify_mode = ssl.CERT_NONE
    stranger.load_cert_chain(*other_pki.stranger)
    raw = socket.create_connection(("127.0.0.1", cluster_port(c, 2)), timeout=5)
    try:
        t = stranger.wrap_socket(raw)
        assert t.recv(64) == b"", "a stranger's TLS connection was served"
    except (ssl.SSLError, ConnectionResetError):
        pass
    raw.close()
    ch.wait_for("the stranger's log line",
                lambda: "certificate" in "".join(line for line in c.log_text(2).splitlines()
                                                 if "TLS with" in line), 5)
    node_cert = (os.path.join(c.dir, "tls", "node.pem"), os.path.join(c.dir, "tls", "node.key"))
    raw = socket.create_connection(("127.0.0.1", cluster_port(c, 3)), timeout=5)
    t = tls_client(node_cert).wrap_socket(raw)
    challenge = b""
    while len(challenge) < 40:
        part = t.recv(40 - len(challenge))
        assert part, challenge
        challenge += part
    assert challenge[:4] == b"WRFT", challenge
    t.close()


@wt.needs_process
def test_tls():
    os.environ["WARREN_CLUSTER_TLS"] = "1"
    other = pki.Pki()
    c = ch.Cluster()
    procs = {}
    try:
        c.start()
        ch.wait_for("every node running", lambda: qc.all_running(c), 20)
        check_tls(c, procs, other)
    except BaseException:
        c.abort()
        raise
    finally:
        other.close()
    c.stop(procs)


if __name__ == "__main__":
    wt.run([test_tls], timeout=180)
