"""Logging as a service configures it, with rabbitmq.conf's keys: log.file with size-based
rotation (<file>.0 the newest, log.file.rotation.count kept, none past the size), the JSON
formatter (one object per line with time, level and msg) on the file and on the console, the
console off once only a file is configured, SIGUSR1 reopening a file logrotate moved away, a
full disk under the file costing lines but nothing else, and a log file that cannot be opened
stopping startup. Warren only: needs the server process."""

import glob
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}[+-]\d{2}:\d{2}$")
PLAIN = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \[(debug|info|warning|error|critical)\] \S")
LEVELS = ("debug", "info", "warning", "error", "critical")


def json_lines(path):
    """Every line of path parsed as one JSON object with RabbitMQ's fields."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            assert set(obj) == {"time", "level", "msg"}, obj
            assert TIME.match(obj["time"]), obj
            assert obj["level"] in LEVELS, obj
            out.append(obj)
    return out


def bad_clients(addr, n):
    """n connections that send HTTP: each logs an accept (debug) and a close (error)."""
    for _ in range(n):
        with wt.RawConn(addr) as c:
            c.send(b"GET / HTTP/1.1\r\n\r\n")
            c.read_all(timeout=5)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


@wt.needs_process
def test_file_json_rotation():
    """log.file in JSON, rotated at 4096 bytes keeping 2: w.log, w.log.0, w.log.1 and no
    more, none past 4096 bytes, every line a JSON object; the console is off"""
    config = {"log.file": "w.log", "log.file.formatter": "json",
              "log.file.rotation.size": "4096", "log.file.rotation.count": "2"}
    with wt.server(config=config) as srv:
        bad_clients(srv.addr, 40)
        wait_for(lambda: os.path.exists(os.path.join(srv.tmp, "w.log.1")), "w.log.1")
        files = sorted(glob.glob(os.path.join(srv.tmp, "w.log*")))
        wt.log("  files: %s" % ", ".join("%s %d B" % (os.path.basename(f), os.path.getsize(f))
                                          for f in files))
        assert [os.path.basename(f) for f in files] == ["w.log", "w.log.0", "w.log.1"], files
        msgs = []
        for f in (files[2], files[1], files[0]):  # oldest first
            assert os.path.getsize(f) <= 4096, "%s is %d bytes" % (f, os.path.getsize(f))
            msgs += [o["msg"] for o in json_lines(f)]
        closes = [m for m in msgs if "bad protocol header" in m]
        assert len(closes) >= 10, msgs
        stderr = srv.stderr_text()
        assert not PLAIN.search(stderr) and "{" not in stderr, \
            "console not off with only log.file set: %r" % stderr[:500]


@wt.needs_process
def test_console_json_file_plain():
    """log.console = true with log.console.formatter = json, file in plaintext at warning:
    stderr holds JSON lines, the file plain lines at warning and above"""
    config = {"log.file": "w.log", "log.file.level": "warning", "log.console": "true",
              "log.console.formatter": "json"}
    with wt.server(config=config) as srv:
        bad_clients(srv.addr, 3)
        path = os.path.join(srv.tmp, "w.log")
        wait_for(lambda: os.path.getsize(path) > 0, "a line in w.log")
        with open(path) as f:
            lines = f.read().splitlines()
    console = [json.loads(line) for line in srv.stderr_text().splitlines() if line]
    assert any(o["msg"].startswith("ready: data directory") for o in console), console[:5]
    assert any(o["level"] == "debug" for o in console), "--log-level debug reached no console line"
    wt.log("  file: %d lines, first: %s" % (len(lines), lines[:1]))
    assert lines and all(PLAIN.match(l) for l in lines), lines[:5]
    assert all(re.search(r"\[(warning|error|critical)\]", l) for l in lines), lines[:5]


@wt.needs_process
def test_sigusr1_reopens():
    """logrotate's way: w.log moved away, SIGUSR1, and the broker writes a new w.log"""
    with wt.server(config={"log.file": "w.log"}) as srv:
        path = os.path.join(srv.tmp, "w.log")
        os.rename(path, path + ".moved")
        srv.signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(path), "a new w.log")
        bad_clients(srv.addr, 1)
        wait_for(lambda: "bad protocol header" in read(path), "a line in the new w.log")
        old = read(path + ".moved")
        assert "ready: data directory" in old and "bad protocol header" not in old, old[-500:]
        assert "log file reopened" in read(path)


@wt.needs_process
def test_full_disk_not_fatal():
    """log.file on a full disk (/dev/full: every write fails with ENOSPC): the broker serves
    as before, drops and counts the lines, and says how many when it stops"""
    config = {"log.file": "/dev/full", "log.console": "true"}
    with wt.server(config=config) as srv:
        bad_clients(srv.addr, 5)
        wt.pika_connect(srv.addr).close()
    m = re.search(r"\[warning\] (\d+) log lines could not be written", srv.stderr_text())
    assert m and int(m.group(1)) >= 10, srv.stderr_text()[-2000:]
    wt.log("  %s lines dropped" % m.group(1))


@wt.needs_process
def test_unopenable_file_stops_startup():
    """a log.file in a directory that does not exist: exit 1 saying which file and why"""
    conf_dir = wt.tempfile.mkdtemp(prefix="warren-test-conf-")
    try:
        conf = os.path.join(conf_dir, "warren.conf")
        with open(conf, "w") as f:
            f.write("log.dir = /nonexistent-warren-dir\nlog.file = w.log\n")
        rc, out, err, _ = wt.run_server_to_exit("--config", conf, "--port", str(wt.free_port()),
                                                data_dir=True)
        assert rc == 1, rc
        assert "cannot open log file /nonexistent-warren-dir/w.log: No such file or directory" \
            in err, err
    finally:
        wt.cleanup_dir(conf_dir)


if __name__ == "__main__":
    wt.run([test_file_json_rotation, test_console_json_file_plain, test_sigusr1_reopens,
            test_full_disk_not_fatal, test_unopenable_file_stops_startup])
