"""`make install` lays Warren out as a service needs it, checked in a staging DESTDIR: the
server in sbin, warrenctl and warren-perf in bin, the four man pages, warren/warren.conf under
sysconfdir with data_dir and log.dir set, and the systemd unit, which names those paths and
passes `systemd-analyze verify`; `make uninstall` removes it all. Warren only: needs the build
tree (the directory of $WARREN_SERVER)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

EXPECTED = ["/sbin/warren-server", "/bin/warrenctl", "/bin/warren-perf",
            "/man8/warren-server.8", "/man8/warrenctl.8", "/man5/warren.conf.5",
            "/man1/warren-perf.1", "/etc/warren/warren.conf",
            "/systemd/system/warren-server.service",
            "/share/bash-completion/completions/warrenctl"]


def make(builddir, *targets):
    # Not the caller's make's jobserver and flags: this is a make of its own.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    p = subprocess.run(["make", "-C", builddir] + list(targets), capture_output=True, env=env,
                       timeout=300)
    out = (p.stdout + p.stderr).decode(errors="replace")
    wt.log("  $ make %s -> %d" % (" ".join(targets), p.returncode))
    assert p.returncode == 0, out[-3000:]


def installed(dest):
    return sorted(os.path.join(r, f)[len(dest):] for r, _, fs in os.walk(dest) for f in fs)


@wt.needs_process
def test_install_layout_and_unit():
    """make install DESTDIR: the expected files and nothing else; the config and the unit
    name the installed paths; the unit verifies; make uninstall leaves no file"""
    builddir = os.path.dirname(wt.server_binary())
    dest = tempfile.mkdtemp(prefix="warren-test-destdir-")
    try:
        make(builddir, "install", "DESTDIR=" + dest)
        files = installed(dest)
        wt.log("  installed:\n    " + "\n    ".join(files))
        found = {}
        for suffix in EXPECTED:
            hits = [f for f in files if f.endswith(suffix)]
            assert len(hits) == 1, "%s: %r" % (suffix, hits)
            found[suffix] = hits[0]
        assert len(files) == len(EXPECTED), "unexpected files: %r" % (
            set(files) - set(found.values()))
        for suffix in EXPECTED[:3]:
            assert os.access(dest + found[suffix], os.X_OK), found[suffix]

        conf = dest + found["/etc/warren/warren.conf"]
        with open(conf) as f:
            text = f.read()
        data_dir = re.search(r"(?m)^data_dir = (\S+)$", text)
        log_dir = re.search(r"(?m)^log.dir = (\S+)$", text)
        assert data_dir and data_dir.group(1).endswith("/lib/warren"), text
        assert log_dir and log_dir.group(1).endswith("/log/warren"), text
        rc, out, err, _ = wt.run_server_to_exit("--config", conf, "--check-config")
        assert rc == 0 and out == "configuration OK\n", (rc, out, err)

        unit = dest + found["/systemd/system/warren-server.service"]
        with open(unit) as f:
            text = f.read()
        server, confpath = found["/sbin/warren-server"], found["/etc/warren/warren.conf"]
        for line in ["Type=notify", "User=warren", "LimitNOFILE=65536", "StateDirectory=warren",
                     "ProtectSystem=strict", "NoNewPrivileges=true", "ProtectHome=true",
                     "PrivateTmp=true",
                     "ExecStart=%s --config %s" % (server, confpath)]:
            assert re.search("(?m)^%s$" % re.escape(line), text), "unit lacks %r" % line
        # verify checks that ExecStart's binary exists: point it at the staged copy.
        analyze = wt.needs("systemd-analyze", "apt-get install systemd")
        staged = os.path.join(dest, "verify", "warren-server.service")
        os.makedirs(os.path.dirname(staged))
        with open(staged, "w") as f:
            f.write(text.replace(server, dest + server))
        p = subprocess.run([analyze, "verify", "--man=no", staged], capture_output=True,
                           timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        wt.log("  systemd-analyze verify -> %d %s" % (p.returncode, out))
        assert p.returncode == 0 and out.strip() == "", out
        os.remove(staged)
        os.rmdir(os.path.dirname(staged))

        make(builddir, "uninstall", "DESTDIR=" + dest)
        assert installed(dest) == [], installed(dest)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    wt.run([test_install_layout_and_unit])
