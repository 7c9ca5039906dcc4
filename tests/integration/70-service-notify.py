"""systemd's Type=notify protocol as a service manager sees it: with $NOTIFY_SOCKET set, the
broker sends READY=1 once its listener accepts connections, and STOPPING=1 when SIGTERM starts
the shutdown; a file system path and an abstract socket name ('@...') both work, and a socket
that is not there is logged, never fatal. Warren only: needs the server process."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


class Manager:
    """The service manager's end: a datagram socket at path (or an abstract name, '@...')."""

    def __init__(self, name):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.name = name

    def expect(self, state, timeout=20):
        self.sock.settimeout(timeout)
        try:
            got = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no notification within %d s, expected %r" % (timeout, state))
        wt.log("  manager got %r" % got)
        assert got == state, "got %r, expected %r" % (got, state)

    def close(self):
        self.sock.close()


def run_notified(notify_socket):
    """Starts warren-server as systemd would (no waiting on its port), with $NOTIFY_SOCKET.
    Returns (process, port, temporary directory)."""
    tmp = tempfile.mkdtemp(prefix="warren-test-")
    port = wt.free_port()
    argv = [wt.server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--management-port",
            "0", "--prometheus-port", "0", "--data-dir", os.path.join(tmp, "data")]
    wt.log("  NOTIFY_SOCKET=%s %s" % (notify_socket, " ".join(argv)))
    err = open(os.path.join(tmp, "stderr.log"), "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=tmp,
                            env=dict(os.environ, NOTIFY_SOCKET=notify_socket))
    err.close()
    return proc, port, tmp


def stop(proc, tmp):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(20)
    with open(os.path.join(tmp, "stderr.log"), errors="replace") as f:
        text = f.read()
    wt.log("  exit %d; stderr ends: %s" % (rc, text[-400:]))
    return rc, text


def notify_cycle(name):
    mgr = Manager(name)
    proc, port, tmp = run_notified(name)
    try:
        mgr.expect(b"READY=1")
        # READY means listening: the very first connection is accepted, with no retry.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        rc, _ = stop(proc, tmp)
        assert rc == 0, "exit status %d after SIGTERM" % rc
        mgr.expect(b"STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mgr.close()
        wt.cleanup_dir(tmp)


@wt.needs_process
def test_ready_and_stopping_path():
    """NOTIFY_SOCKET=/path: READY=1 once listening, then STOPPING=1 on SIGTERM"""
    d = tempfile.mkdtemp(prefix="warren-notify-")
    try:
        notify_cycle(os.path.join(d, "notify.sock"))
    finally:
        wt.cleanup_dir(d)


@wt.needs_process
def test_ready_and_stopping_abstract():
    """NOTIFY_SOCKET=@name (the abstract namespace, as systemd passes it): the same"""
    notify_cycle("@warren-test-notify-%d-%d" % (os.getpid(), int(time.monotonic() * 1000)))


@wt.needs_process
def test_missing_socket_not_fatal():
    """a NOTIFY_SOCKET nobody listens on: a warning in the log, the broker serves anyway"""
    d = tempfile.mkdtemp(prefix="warren-notify-")
    proc, port, tmp = run_notified(os.path.join(d, "nobody.sock"))
    try:
        assert wt.wait_port(("127.0.0.1", port), 20, proc), "broker did not start"
        rc, text = stop(proc, tmp)
        assert rc == 0, "exit status %d after SIGTERM" % rc
        assert "cannot notify systemd" in text and "READY=1" in text, text[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        wt.cleanup_dir(tmp)
        wt.cleanup_dir(d)


if __name__ == "__main__":
    wt.run([test_ready_and_stopping_path, test_ready_and_stopping_abstract,
            test_missing_socket_not_fatal])
