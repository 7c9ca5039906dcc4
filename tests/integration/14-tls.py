"""AMQP over TLS (listeners.ssl.*, ssl_options.*) and SASL EXTERNAL. Each test makes a
throwaway PKI with the openssl CLI in a temporary directory: a CA, a server certificate for
localhost / 127.0.0.1, client certificates (a good one, one from another CA, an expired one),
and an encrypted copy of the server key.

Checked: pika, kombu (py-amqp) and amqplib (Node) publish and consume over TLS, large bodies
included, with a plain listener beside the TLS one; listeners.tcp = none gives a TLS-only
broker; mutual TLS (verify_peer + fail_if_no_peer_cert) admits the good client certificate and
refuses a missing one, one from another CA and an expired one, each with a log line saying
why; plain AMQP to the TLS port and TLS to the plain port are closed at once with one log
line; a client that stalls in the TLS handshake is closed by handshake_timeout; a key or
certificate that cannot be loaded stops the start naming the file and OpenSSL's reason, and
ssl_options.password decrypts an encrypted key; EXTERNAL is offered only on a TLS connection
with a verified client certificate and logs in the user named by its subject (RabbitMQ's DN
format) or common name; SIGHUP serves new handshakes with replaced certificate files while
open connections go on, and keeps the old ones when the new files are bad. Warren only (these
tests need the server process and its configuration)."""

import os
import shutil
import socket
import json
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
from pki import Pki  # noqa: E402
import watcher  # noqa: E402

CLIENT_DN = "CN=client,O=Warren Tests,C=GB"
# A subject with what RFC 4514 escapes (a leading space, '+', ',') and UTF-8, and the user name
# RabbitMQ 3.10 makes of it (checked: a user of this name logs in there with EXTERNAL).
ODD_SUBJECT = "/C=GB/O=T\u00e9st, Ltd/OU=a\\+b/CN= lead#"
ODD_DN = "CN=\\ lead#,OU=a\\+b,O=T\\C3\\A9st\\, Ltd,C=GB"




class TlsConn(wt.RawConn):
    """A RawConn over TLS: the handshake is done in the constructor."""

    def __init__(self, addr, ctx, timeout=5.0):
        self.addr = addr
        self.timeout = timeout
        raw = socket.create_connection(addr, timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.frame_max = 131072
        self.start = None
        self.tune = None

    def _fill(self, n, deadline):
        try:
            super()._fill(n, deadline)
        except ssl.SSLError as e:
            raise wt.Closed("TLS: %s" % e) from None


def tls_params(addr, ctx, **kw):
    import pika
    return wt.pika_params(("localhost", addr[1]),
                          ssl_options=pika.SSLOptions(ctx, "localhost"), **kw)


def tls_connect(addr, ctx, **kw):
    import pika
    return pika.BlockingConnection(tls_params(addr, ctx, **kw))


def roundtrip(conn, queue, bodies):
    """Publishes bodies to queue on the pika connection conn with confirms, consumes them
    with manual acks, and checks they come back whole and in order."""
    ch = wt.confirm_channel(conn)
    wt.fresh_queue(ch, queue)
    for b in bodies:
        ch.basic_publish("", queue, b)
    got = []
    for method, _, body in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, "only %d of %d messages came back" % (len(got), len(bodies))
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == len(bodies):
            break
    ch.cancel()
    assert got == bodies, "the bodies came back changed or out of order"
    ch.queue_delete(queue)
    ch.close()


def bodies():
    return [b"small", os.urandom(1000), os.urandom(200000), os.urandom(1 << 20)]


def refused_handshake(addr, ctx):
    """Connects with ctx and returns the SSLError (or the reset) the handshake ends in; fails
    if it succeeds and the server keeps the connection open to AMQP."""
    try:
        c = TlsConn(addr, ctx)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        wt.log("    handshake refused: %s" % e)
        return e
    # TLS 1.3: the client's Finished goes before the server has checked its certificate,
    # so the refusal arrives as an alert on the first read.
    try:
        c.send_header()
        c.read_method(timeout=5)
    except (wt.Closed, ConnectionResetError, BrokenPipeError) as e:
        wt.log("    refused after the handshake: %s" % e)
        return e
    finally:
        c.close()
    raise AssertionError("the server accepted the client")


@wt.needs_process
def test_pika_tls_beside_plain():
    """pika over TLS on listeners.ssl.default with a plain listener beside it: bodies of 5 B
    to 1 MiB round-trip intact on both; the log names both listeners"""
    pki = Pki()
    try:
        port = wt.free_port()
        with wt.server(config=pki.server_config(port)) as srv:
            conn = tls_connect(("127.0.0.1", port), pki.context())
            roundtrip(conn, "tls-pika", bodies())
            conn.close()
            plain = wt.pika_connect(srv.addr)
            roundtrip(plain, "plain-pika", bodies())
            plain.close()
            srv.stop()
            text = srv.stderr_text()
        assert "listening for AMQP over TLS connections on 127.0.0.1:%d" % port in text, text
        assert "listening for AMQP connections on 127.0.0.1:%d" % srv.addr[1] in text, text
    finally:
        pki.close()


@wt.needs_process
def test_kombu_tls():
    """kombu (py-amqp, AMQPLAIN) over TLS with CA verification: a message round-trips"""
    import kombu
    pki = Pki()
    try:
        port = wt.free_port()
        with wt.server(config=pki.server_config(port)):
            url = "amqp://guest:guest@localhost:%d//" % port
            sslopts = {"ca_certs": pki.ca[0], "cert_reqs": ssl.CERT_REQUIRED,
                       "server_hostname": "localhost"}
            with kombu.Connection(url, ssl=sslopts, connect_timeout=5) as conn:
                q = conn.SimpleQueue("tls-kombu")
                q.put({"hello": "tls"})
                msg = q.get(timeout=5)
                assert msg.payload == {"hello": "tls"}, msg.payload
                msg.ack()
                q.close()
                assert conn.transport.client.transport_cls == "amqp"
    finally:
        pki.close()


@wt.needs_process
def test_amqplib_tls():
    """amqplib (Node) over TLS with a client certificate and mutual TLS: interop/amqplib/tls.js
    declares, publishes, consumes and acks"""
    pki = Pki()
    try:
        port = wt.free_port()
        with wt.server(config=pki.mutual(port)):
            wt.run_amqplib_script("tls.js", "localhost:%d" % port, pki.ca[0], pki.client[0],
                                  pki.client[1])
    finally:
        pki.close()


@wt.needs_process
def test_mutual_tls():
    """verify_peer + fail_if_no_peer_cert: the CA's client certificate is admitted; none, one
    from another CA and an expired one are refused in the handshake, each with a log line"""
    pki = Pki()
    try:
        port = wt.free_port()
        addr = ("127.0.0.1", port)
        with wt.server(config=pki.mutual(port)) as srv:
            conn = tls_connect(addr, pki.context(pki.client))
            roundtrip(conn, "tls-mutual", [b"x" * 100, os.urandom(300000)])
            conn.close()
            refused_handshake(addr, pki.context())
            refused_handshake(addr, pki.context(pki.stranger))
            refused_handshake(addr, pki.context(pki.expired))
            wt.assert_serves(srv.addr)  # and the broker is fine
            srv.stop()
            text = srv.stderr_text()
        for why in ("peer did not return a certificate",
                    "client certificate refused: unable to get local issuer certificate",
                    "client certificate refused: certificate has expired"):
            assert "closing: TLS handshake failed: " + why in text, "no log line %r:\n%s" % (
                why, text)
    finally:
        pki.close()


@wt.needs_process
def test_wrong_protocol_per_port():
    """Plain AMQP to the TLS port (answered with a fatal TLS alert, as RabbitMQ does) and TLS
    to the plain port (answered with the AMQP header): the socket closes at once, with one log
    line naming the mistake"""
    pki = Pki()
    try:
        port = wt.free_port()
        with wt.server(config=pki.server_config(port)) as srv:
            with wt.RawConn(("127.0.0.1", port)) as c:
                c.send_header()
                t0 = time.monotonic()
                got = c.read_all(timeout=5)
                wt.log("  plain AMQP to the TLS port: %r, closed after %.2f s" % (
                    got, time.monotonic() - t0))
                assert got == bytes.fromhex("1503010002020a"), got
            t0 = time.monotonic()
            try:
                TlsConn(srv.addr, pki.context())
                raise AssertionError("a TLS handshake on the plain port succeeded")
            except (ssl.SSLError, ConnectionResetError) as e:
                wt.log("  TLS to the plain port: %s after %.2f s" % (e, time.monotonic() - t0))
            assert time.monotonic() - t0 < 3
            wt.assert_serves(srv.addr)
            srv.stop()
            text = srv.stderr_text()
        lines = [line for line in text.splitlines() if "closing:" in line]
        plain = [line for line in lines if "plain AMQP protocol header to a TLS listener" in line]
        tls = [line for line in lines if "began a TLS handshake on a plain AMQP listener" in line]
        assert len(plain) == 1 and len(tls) == 1, "\n".join(lines)
    finally:
        pki.close()


@wt.needs_process
def test_stalled_handshake():
    """ssl_handshake_timeout = 1000: a client that connects to the TLS port and sends half a
    ClientHello is closed after about a second, with a log line; others are served meanwhile;
    a client that finishes the TLS handshake has handshake_timeout (3 s) for AMQP's"""
    pki = Pki()
    try:
        port = wt.free_port()
        config = pki.server_config(port, ssl_handshake_timeout="1000", handshake_timeout="3000")
        with wt.server(config=config) as srv:
            with wt.RawConn(("127.0.0.1", port)) as c:
                c.send(bytes.fromhex("160301020001"))  # a record header and 1 byte of it
                conn = tls_connect(("127.0.0.1", port), pki.context())
                conn.close()
                t = c.expect_eof(timeout=5)
                wt.log("  stalled handshake closed after %.2f s" % t)
                assert t > 0.5, "closed after %.2f s, before ssl_handshake_timeout" % t
            with TlsConn(("127.0.0.1", port), pki.context()) as c:
                time.sleep(1.5)  # past ssl_handshake_timeout, within handshake_timeout
                c.handshake("open")
                c.close_connection()
            srv.stop()
            text = srv.stderr_text()
        assert "closing: TLS handshake timeout (1000 ms)" in text, text
    finally:
        pki.close()


@wt.needs_process
def test_tls_only():
    """listeners.tcp = none with TLS listeners on 127.0.0.1 and [::1]: TLS serves on both, and
    no plain listener exists"""
    pki = Pki()
    try:
        port, port6 = wt.free_port(), wt.free_port(socket.AF_INET6, "::1")
        config = pki.server_config(port, **{"listeners.tcp": "none",
                                            "listeners.ssl.v6": "[::1]:%d" % port6})
        with wt.server(config=config, listen_args=False, port=port) as srv:
            conn = tls_connect(srv.addr, pki.context())
            roundtrip(conn, "tls-only", [b"only"])
            conn.close()
            with TlsConn(("::1", port6), pki.context()) as c:
                c.handshake("open")
                c.close_connection()
            srv.stop()
            text = srv.stderr_text()
        assert "listening for AMQP over TLS connections on 127.0.0.1:%d" % port in text, text
        assert "listening for AMQP over TLS connections on [::1]:%d" % port6 in text, text
        assert "listening for AMQP connections" not in text, text
    finally:
        pki.close()


@wt.needs_process
def test_bad_files_stop_the_start():
    """A missing key, a key that is not the certificate's, an encrypted key with a wrong
    password: warren-server exits 1 naming the file and OpenSSL's reason; with the right
    ssl_options.password it starts"""
    pki = Pki()
    try:
        def run(**keys):
            path = pki.path("warren.conf")
            with open(path, "w") as f:
                f.write(wt.format_config(pki.server_config(wt.free_port(), **keys)))
            return wt.run_server_to_exit("--config", path, "--port", str(wt.free_port()),
                                         "--bind", "127.0.0.1", data_dir=True, timeout=10)

        missing = pki.path("nope.key")
        rc, _, err, _ = run(**{"ssl_options.keyfile": missing})
        assert rc == 1 and "ssl_options.keyfile %s: cannot load it: " % missing in err \
            and "No such file or directory" in err, err
        rc, _, err, _ = run(**{"ssl_options.keyfile": pki.client[1]})
        assert rc == 1 and "ssl_options.keyfile %s: cannot load it: key values mismatch" % \
            pki.client[1] in err, err
        rc, _, err, _ = run(**{"ssl_options.keyfile": pki.server_key_encrypted,
                               "ssl_options.password": "wrong"})
        assert rc == 1 and "ssl_options.keyfile %s: cannot load it: " % \
            pki.server_key_encrypted in err, err
        port = wt.free_port()
        config = pki.server_config(port, **{"ssl_options.keyfile": pki.server_key_encrypted,
                                            "ssl_options.password": "s3cret"})
        with wt.server(config=config):
            tls_connect(("127.0.0.1", port), pki.context()).close()
    finally:
        pki.close()


def perf_tls(port, *args):
    """warren-perf --tls against 127.0.0.1:port; returns its JSON result."""
    argv = [wt.perf_binary(), "--tls", "--port", str(port)] + [str(a) for a in args]
    wt.log("  $ " + " ".join(argv))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    for line in p.stderr.splitlines()[-2:]:
        wt.log("    | " + line)
    assert p.returncode == 0, "warren-perf exited %d: %s" % (p.returncode, p.stderr)
    return json.loads(p.stdout.splitlines()[-1])


@wt.needs_process
def test_flood_shares_the_loop():
    """A TLS publisher at full speed (warren-perf --tls, 1p/1c, prefetch 100) leaves the loop
    to the others: its consumer gets most of what it sends and a plain pika client beside it
    sees no stall; then connections opened and closed in a loop (--churn) all succeed"""
    pki = Pki()
    try:
        port = wt.free_port()
        with wt.server(config=pki.server_config(port)) as srv:
            with watcher.Watcher(srv.addr) as w:
                r = perf_tls(port, "-x", 1, "-y", 1, "-q", 100, "-z", 3)
                w.check("during a TLS flood")
            # Without publisher flow control (issue 15) the publisher may outrun its consumer
            # by how the cores are shared at the moment (46-95% received on a loaded 2-core
            # machine): what is asserted is that the consumer is not starved.
            wt.log("  the consumer got %d of %d messages" % (r["received"], r["sent"]))
            assert r["received"] >= r["sent"] / 10, \
                "the consumer got %d of %d messages" % (r["received"], r["sent"])
            r = perf_tls(port, "-x", 2, "-y", 0, "--churn", "-z", 1)
            assert r["sent"] > 0, r
            wt.log("  %d TLS connections opened and closed in 1 s" % r["sent"])
    finally:
        pki.close()


@wt.needs_process
def test_versions_and_ciphers():
    """TLS 1.3 and 1.2 by default (a client that wants TLS 1.1 at most is refused);
    ssl_options.versions.1 = tlsv1.2 refuses a TLS 1.3-only client; ssl_options.ciphers.N
    picks the cipher suite"""
    pki = Pki()
    try:
        port = wt.free_port()
        addr = ("127.0.0.1", port)
        with wt.server(config=pki.server_config(port)):
            with TlsConn(addr, pki.context()) as c:
                assert c.sock.version() == "TLSv1.3", c.sock.version()
            old = pki.context()
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
            refused_handshake(addr, old)
        suite = "ECDHE-ECDSA-AES128-GCM-SHA256"
        keys = {"ssl_options.versions.1": "tlsv1.2", "ssl_options.ciphers.1": suite}
        with wt.server(config=pki.server_config(port, **keys)):
            with TlsConn(addr, pki.context()) as c:
                assert c.sock.version() == "TLSv1.2", c.sock.version()
                assert c.sock.cipher()[0] == suite, c.sock.cipher()
                c.handshake("open")
                c.close_connection()
            new = pki.context()
            new.minimum_version = ssl.TLSVersion.TLSv1_3
            refused_handshake(addr, new)
    finally:
        pki.close()


def start_mechanisms(c):
    c.send_header()
    return c.read_start()["mechanisms"]


@wt.needs_process
def test_external():
    """auth_mechanisms EXTERNAL and PLAIN: EXTERNAL is offered over TLS with a verified client
    certificate only; pika's ExternalCredentials log in as the certificate's subject (RabbitMQ's
    DN format, escapes and UTF-8 included), common name or email SAN; a certificate naming no
    user (or without a second DNS SAN) is refused with 403"""
    import pika
    pki = Pki()
    try:
        port = wt.free_port()
        keys = {"auth_mechanisms.1": "EXTERNAL", "auth_mechanisms.2": "PLAIN",
                "ssl_options.verify": "verify_peer", "default_user": CLIENT_DN}
        with wt.server(config=pki.server_config(port, **keys)) as srv:
            addr = ("127.0.0.1", port)
            with TlsConn(addr, pki.context(pki.client)) as c:
                assert start_mechanisms(c) == ["EXTERNAL", "PLAIN"], c.start
            with TlsConn(addr, pki.context()) as c:
                assert start_mechanisms(c) == ["PLAIN"], c.start
            with wt.RawConn(srv.addr) as c:
                assert start_mechanisms(c) == ["PLAIN"], c.start
                c.send_method(0, wt.CONNECTION_START_OK,
                              wt.start_ok_args(mechanism="EXTERNAL", response=b""))
                c.expect_eof(timeout=5)
            conn = tls_connect(addr, pki.context(pki.client),
                               credentials=pika.credentials.ExternalCredentials())
            roundtrip(conn, "tls-external", [b"by certificate"])
            conn.close()
            srv.stop()
            text = srv.stderr_text()
        assert "user '%s' authenticated" % CLIENT_DN in text, text
        assert "invalid authentication mechanism 'EXTERNAL'" in text, text

        keys.update({"ssl_cert_login_from": "common_name", "default_user": "client"})
        with wt.server(config=pki.server_config(port, **keys)) as srv:
            conn = tls_connect(addr, pki.context(pki.client),
                               credentials=pika.credentials.ExternalCredentials())
            conn.close()
            keys["default_user"] = "someone-else"
        keys.update({"ssl_cert_login_from": "distinguished_name", "default_user": ODD_DN})
        odd = pki.issue("odd", ODD_SUBJECT, pki.ca)
        with wt.server(config=pki.server_config(port, **keys)):
            conn = tls_connect(addr, pki.context(odd),
                               credentials=pika.credentials.ExternalCredentials())
            conn.close()
        # The client certificate's second SAN is its email address.
        keys.update({"ssl_cert_login_from": "subject_alternative_name",
                     "ssl_cert_login_san_type": "email", "default_user": "client@example.com"})
        with wt.server(config=pki.server_config(port, **keys)):
            conn = tls_connect(addr, pki.context(pki.client),
                               credentials=pika.credentials.ExternalCredentials())
            conn.close()
        keys.update({"ssl_cert_login_san_type": "dns", "ssl_cert_login_san_index": "1"})
        with wt.server(config=pki.server_config(port, **keys)) as srv:
            with TlsConn(addr, pki.context(pki.client)) as c:
                c.handshake("start")
                c.send_method(0, wt.CONNECTION_START_OK,
                              wt.start_ok_args(mechanism="EXTERNAL", response=b""))
                c.expect_connection_close(403)
            srv.stop()
            text = srv.stderr_text()
        assert "EXTERNAL login refused: no name found" in text, text
        del keys["ssl_cert_login_san_type"], keys["ssl_cert_login_san_index"]
        keys.update({"ssl_cert_login_from": "common_name", "default_user": "someone-else"})
        with wt.server(config=pki.server_config(port, **keys)) as srv:
            with TlsConn(addr, pki.context(pki.client)) as c:
                c.handshake("start")
                c.send_method(0, wt.CONNECTION_START_OK,
                              wt.start_ok_args(mechanism="EXTERNAL", response=b""))
                c.expect_connection_close(403, text_prefix="ACCESS_REFUSED - Login was refused "
                                          "using authentication mechanism EXTERNAL")
            srv.stop()
            text = srv.stderr_text()
        assert "EXTERNAL login refused: user 'client' - invalid credentials" in text, text
    finally:
        pki.close()


def peer_subject(addr, ctx):
    with TlsConn(addr, ctx) as c:
        return dict(x[0] for x in c.sock.getpeercert()["subject"])["commonName"]


@wt.needs_process
def test_sighup_reload():
    """SIGHUP after the certificate and key files are replaced: new handshakes get the new
    certificate, an open TLS connection goes on; replaced by a bad key, the old ones stay and
    the log says why"""
    pki = Pki()
    try:
        port = wt.free_port()
        addr = ("127.0.0.1", port)
        cert, key = pki.path("live.pem"), pki.path("live.key")
        shutil.copy(pki.server[0], cert)
        shutil.copy(pki.server[1], key)
        config = pki.server_config(port, **{"ssl_options.certfile": cert,
                                            "ssl_options.keyfile": key})
        renewed = pki.issue("renewed", "/CN=renewed", pki.ca,
                            "subjectAltName=DNS:localhost,IP:127.0.0.1")
        with wt.server(config=config) as srv:
            assert peer_subject(addr, pki.context()) == "localhost"
            conn = tls_connect(addr, pki.context())
            ch = wt.confirm_channel(conn)
            wt.fresh_queue(ch, "tls-reload")
            shutil.copy(renewed[0], cert)
            shutil.copy(renewed[1], key)
            srv.signal(1)  # SIGHUP
            wt.wait_until(lambda: "TLS certificate %s and key %s reloaded" % (cert, key)
                          in srv.stderr_text(), 5, "reload logged")
            assert peer_subject(addr, pki.context()) == "renewed"
            ch.basic_publish("", "tls-reload", b"after the reload")
            m, _, body = ch.basic_get("tls-reload", auto_ack=True)
            assert body == b"after the reload", body
            with open(key, "w") as f:
                f.write("not a key\n")
            srv.signal(1)
            wt.wait_until(lambda: "TLS certificates not reloaded, the previous ones stay in use"
                          in srv.stderr_text(), 5, "refusal logged")
            assert peer_subject(addr, pki.context()) == "renewed"
            ch.queue_delete("tls-reload")
            conn.close()
    finally:
        pki.close()


if __name__ == "__main__":
    wt.run([test_pika_tls_beside_plain, test_kombu_tls, test_amqplib_tls, test_mutual_tls,
            test_wrong_protocol_per_port, test_stalled_handshake, test_tls_only,
            test_flood_shares_the_loop, test_versions_and_ciphers,
            test_bad_files_stop_the_start, test_external, test_sighup_reload], timeout=120)
