#!/usr/bin/python3
"""`make check-package`: the Debian package as an operator gets it. Builds it with
dpkg-buildpackage -us -uc -b from a copy of the dist tree (installing the build dependencies
with apt-get build-dep), checks its contents, installs it with apt-get, and checks the
installed system: the files, the conffile, the warren user and its directories, the unit
enabled. Then starts the service: with systemctl when systemd runs this machine, otherwise
the way the unit would (its ExecStartPre and ExecStart as User=, in WorkingDirectory=, with a
$NOTIFY_SOCKET this script listens on), on a free port; checks READY=1, an AMQP round trip,
and a clean stop (STOPPING=1, exit 0). Finally purges the package and checks it is gone.
Needs root and a few minutes. Usage: check-package.py DISTDIR (a `make distdir` tree)."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import warren_test as wt  # noqa: E402

PACKAGE = "warren"
UNIT = "/lib/systemd/system/warren-server.service"
FILES = ["/usr/sbin/warren-server", "/usr/bin/warrenctl", "/usr/bin/warren-perf",
         "/etc/warren/warren.conf", UNIT, "/usr/share/man/man8/warren-server.8.gz",
         "/usr/share/man/man5/warren.conf.5.gz", "/usr/share/man/man8/warrenctl.8.gz",
         "/usr/share/man/man1/warren-perf.1.gz"]


def sh(*argv, cwd=None, env=None, check=True, timeout=1800):
    print("$ " + " ".join(argv), flush=True)
    p = subprocess.run(argv, cwd=cwd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = p.stdout.decode(errors="replace")
    if check and p.returncode != 0:
        print(out[-6000:])
        raise AssertionError("%s exited %d" % (argv[0], p.returncode))
    return out


def build(distdir, work):
    src = os.path.join(work, os.path.basename(os.path.normpath(distdir)))
    shutil.copytree(distdir, src, symlinks=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(k, None)
    sh("apt-get", "build-dep", "-y", "-q", src, env=env)
    t0 = time.monotonic()
    sh("dpkg-buildpackage", "-us", "-uc", "-b", cwd=src, env=env)
    print("dpkg-buildpackage took %.0f s" % (time.monotonic() - t0))
    debs = [f for f in os.listdir(work) if re.match(PACKAGE + r"_.*\.deb$", f)]
    assert len(debs) == 1, os.listdir(work)
    return os.path.join(work, debs[0])


def check_contents(deb):
    listing = sh("dpkg-deb", "-c", deb)
    paths = {"/" + line.split()[-1].lstrip("./") for line in listing.splitlines()}
    missing = [f for f in FILES if f not in paths]
    assert not missing, "not in the package: %r\n%s" % (missing, listing)
    info = sh("dpkg-deb", "-I", deb)
    assert "conffiles" in info and "postinst" in info, info


def check_installed():
    for f in FILES:
        assert os.path.exists(f), f
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", PACKAGE)
    assert "/etc/warren/warren.conf" in conffiles, conffiles
    user = pwd.getpwnam("warren")
    for d in ("/var/lib/warren", "/var/log/warren"):
        st = os.stat(d)
        assert st.st_uid == user.pw_uid, "%s owned by uid %d" % (d, st.st_uid)
    with open("/etc/warren/warren.conf") as f:
        conf = f.read()
    assert re.search(r"(?m)^data_dir = /var/lib/warren$", conf), conf
    # deb-systemd-helper enables the unit even where systemd does not run.
    wants = "/etc/systemd/system/multi-user.target.wants/warren-server.service"
    assert os.path.islink(wants), "%s is not there: the unit is not enabled" % wants
    sh("/usr/sbin/warren-server", "--config", "/etc/warren/warren.conf", "--check-config")


def unit_settings():
    settings = {}
    with open(UNIT) as f:
        for line in f:
            m = re.match(r"^(\w+)=(.*)$", line.strip())
            if m:
                settings.setdefault(m.group(1), m.group(2))
    return settings


def amqp_round_trip(port):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare("package-test", durable=True)
    ch.basic_publish("", "package-test", b"hello from the package")
    for _ in range(50):
        method, _, body = ch.basic_get("package-test", auto_ack=True)
        if method is not None:
            break
        time.sleep(0.1)
    assert body == b"hello from the package", body
    ch.queue_delete("package-test")
    conn.close()
    print("AMQP round trip on port %d: ok" % port)


def run_as_unit(port, work):
    """The unit's ExecStartPre and ExecStart as its User=, in its WorkingDirectory=, with
    the AMQP port moved to a free one and the HTTP API off (the machine may be running
    brokers of its own)."""
    u = unit_settings()
    assert u["Type"] == "notify" and u["User"] == "warren", u
    extra = ["--port", str(port), "--management-port", "0", "--prometheus-port", "0"]
    user = pwd.getpwnam(u["User"])

    def as_user():  # what systemd does for User=: no supplementary groups, then gid, uid
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    print("$ (as %s) %s" % (u["User"], u["ExecStartPre"]), flush=True)
    subprocess.run(u["ExecStartPre"].split(), cwd=u["WorkingDirectory"], preexec_fn=as_user,
                   check=True, timeout=60)
    notify_path = os.path.join(work, "notify.sock")
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mgr.bind(notify_path)
    os.chmod(work, 0o755)
    os.chmod(notify_path, 0o777)  # the broker runs as warren
    log_path = os.path.join(work, "journal.log")
    argv = u["ExecStart"].split() + extra
    print("$ (as %s) NOTIFY_SOCKET=%s %s" % (u["User"], notify_path, " ".join(argv)), flush=True)
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(argv, cwd=u["WorkingDirectory"], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf, preexec_fn=as_user,
                                env=dict(os.environ, NOTIFY_SOCKET=notify_path))
    try:
        mgr.settimeout(30)
        assert mgr.recv(4096) == b"READY=1"
        amqp_round_trip(port)
        with open("/proc/%d/status" % proc.pid) as f:
            uid = re.search(r"(?m)^Uid:\s+(\d+)", f.read()).group(1)
        assert int(uid) == user.pw_uid, "the broker runs as uid %s" % uid
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        assert mgr.recv(4096) == b"STOPPING=1"
        assert rc == 0, "exit status %d" % rc
        print("stopped cleanly: READY=1, STOPPING=1, exit 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mgr.close()
        with open(log_path, errors="replace") as f:
            print("---- broker output ----\n" + f.read()[-3000:])


def run_with_systemd(port):
    dropin = "/etc/systemd/system/warren-server.service.d"
    os.makedirs(dropin, exist_ok=True)
    with open(os.path.join(dropin, "test-port.conf"), "w") as f:
        f.write("[Service]\nExecStart=\nExecStart=/usr/sbin/warren-server --config "
                "/etc/warren/warren.conf --port %d --management-port 0 "
                "--prometheus-port 0\n" % port)
    try:
        sh("systemctl", "daemon-reload")
        sh("systemctl", "restart", "warren-server")
        assert sh("systemctl", "is-active", "warren-server").strip() == "active"
        amqp_round_trip(port)
        sh("systemctl", "stop", "warren-server")
        out = sh("systemctl", "show", "-p", "ExecMainStatus", "warren-server")
        assert out.strip() == "ExecMainStatus=0", out
    finally:
        shutil.rmtree(dropin, ignore_errors=True)
        sh("systemctl", "daemon-reload", check=False)


def main():
    assert len(sys.argv) == 2, __doc__
    assert os.geteuid() == 0, "check-package installs a package: run it as root"
    distdir = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="warren-package-")
    installed = False
    try:
        deb = build(distdir, work)
        print("built %s (%d bytes)" % (deb, os.path.getsize(deb)))
        check_contents(deb)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "install", "-y", "-q", deb, env=env)
        installed = True
        check_installed()
        port = wt.free_port()
        if os.path.isdir("/run/systemd/system"):
            print("systemd runs this machine: systemctl start/stop")
            run_with_systemd(port)
        else:
            print("no systemd as PID 1 here: running the unit's commands by hand")
            run_as_unit(port, work)
        sh("apt-get", "purge", "-y", "-q", PACKAGE, env=env)
        installed = False
        for f in FILES + ["/var/lib/warren", "/var/log/warren"]:
            assert not os.path.exists(f), "%s left after purge" % f
        print("check-package: all passed")
    finally:
        if installed:
            sh("dpkg", "--purge", PACKAGE, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
