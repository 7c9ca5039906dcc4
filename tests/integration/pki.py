"""A throwaway PKI for TLS tests, made with the openssl CLI in a temporary directory: a CA, a
server certificate for localhost / 127.0.0.1, client certificates (a good one, one from another
CA, an expired one), and an encrypted copy of the server key."""

import os
import shutil
import ssl
import subprocess
import tempfile


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, "openssl %s failed: %s" % (" ".join(args), p.stderr.decode())


class Pki:
    """A CA and the certificates it issues, in a temporary directory (removed by close())."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warren-tls-")
        self.ca = self.make_ca("ca", "Warren Test CA")
        self.server = self.issue("server", "/CN=localhost", self.ca,
                                 "subjectAltName=DNS:localhost,IP:127.0.0.1")
        self.client = self.issue("client", "/C=GB/O=Warren Tests/CN=client", self.ca,
                                 "subjectAltName=DNS:client.example,email:client@example.com")
        self.other_ca = self.make_ca("other-ca", "Some Other CA")
        self.stranger = self.issue("stranger", "/CN=client", self.other_ca)
        self.expired = self.issue_expired("expired", "/CN=client")
        self.server_key_encrypted = self.path("server-encrypted.key")
        openssl("pkey", "-in", self.server[1], "-aes256", "-passout", "pass:s3cret", "-out",
                self.server_key_encrypted, cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_ca(self, name, cn):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "3",
                "-subj", "/CN=" + cn, cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")

    def request(self, name, subj):
        openssl("req", "-new", "-utf8", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj,
                cwd=self.dir)

    def issue(self, name, subj, ca, ext=None):
        """A certificate for subj signed by ca: (certificate file, key file)."""
        self.request(name, subj)
        args = ["x509", "-req", "-in", name + ".csr", "-CA", ca[0], "-CAkey", ca[1],
                "-CAcreateserial", "-out", name + ".pem", "-days", "2"]
        if ext:
            with open(self.path(name + ".ext"), "w") as f:
                f.write(ext + "\n")
            args += ["-extfile", name + ".ext"]
        openssl(*args, cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")

    def issue_expired(self, name, subj):
        """A certificate from the CA that expired in 2020 (openssl ca sets past dates)."""
        self.request(name, subj)
        for f, text in (("index.txt", ""), ("serial", "1000\n"), ("ca.cnf", (
                "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\n"
                "new_certs_dir = .\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
        ))):
            with open(self.path(f), "w") as fh:
                fh.write(text)
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", self.ca[0], "-keyfile", self.ca[1],
                "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext",
                "-in", name + ".csr", "-out", name + ".pem", cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")

    def server_config(self, port, **extra):
        """A configuration with a TLS listener on 127.0.0.1:port."""
        config = {"listeners.ssl.default": "127.0.0.1:%d" % port,
                  "ssl_options.certfile": self.server[0],
                  "ssl_options.keyfile": self.server[1],
                  "ssl_options.cacertfile": self.ca[0]}
        config.update(extra)
        return config

    def mutual(self, port, **extra):
        return self.server_config(port, **{"ssl_options.verify": "verify_peer",
                                           "ssl_options.fail_if_no_peer_cert": "true"}, **extra)

    def context(self, cert=None, ca=None):
        """A client SSLContext trusting ca (default: our CA), presenting cert if given."""
        ctx = ssl.create_default_context(cafile=ca or self.ca[0])
        if cert is not None:
            ctx.load_cert_chain(cert[0], cert[1])
        return ctx

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)
