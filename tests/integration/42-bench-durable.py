"""bench/durable.py, the durability benchmark (`make bench-durable`), made small: --quick with
20,000 messages and 2 s runs, once printing its table and once --json, against a Warren it
starts itself. Each must exit 0 (so every scenario ran and the restarted broker gave back
every stored message, which the script checks) and print figures for a) to d). Benchmarks
assert nothing about time; this only keeps the script working as Warren and warren-perf
change. A few seconds per run.

The binaries are $WARREN_SERVER and $WARREN_PERF (default: warren-perf next to the server)."""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

DURABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                       "durable.py")
COUNT = 20000


def durable(*args):
    server = os.environ.get("WARREN_SERVER")
    assert server, "set WARREN_SERVER to the warren-server binary"
    perf = os.environ.get("WARREN_PERF") or os.path.join(os.path.dirname(server), "warren-perf")
    argv = [sys.executable, DURABLE, "--warren", server, "--perf", perf, "--quick", "--count",
            str(COUNT), "--duration", "2"] + list(args)
    wt.log("  running: %s" % " ".join(argv))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=100)
    for line in p.stderr.splitlines()[-3:]:
        wt.log("    | %s" % line)
    assert p.returncode == 0, "durable.py exited %d; stderr:\n%s\nstdout:\n%s" % (
        p.returncode, p.stderr, p.stdout)
    return p.stdout


@wt.needs_process
def test_table():
    """the table: exit 0, a row with a figure for each of a), b), c) and d)"""
    out = durable()
    rows = {}
    for line in out.splitlines():
        m = re.match(r"([abcd]) +(.*?) {2,}(\S.*)$", line)
        if m:
            rows[m.group(1)] = m.group(3)
    assert sorted(rows) == ["a", "b", "c", "d"], out
    for sid, value in rows.items():
        assert value[0].isdigit(), (sid, value, out)
    assert "store: restored 0 exchanges, 1 queues, 0 bindings, %d messages" % COUNT in out, out
    assert "MISMATCH" not in out, out


@wt.needs_process
def test_json():
    """--json: one object with every scenario's figures; c)'s counts all match"""
    r = json.loads(durable("--json"))
    assert r["a"]["received_msgs_per_s"] > 0, r
    assert r["a"]["confirm_latency_us"]["p50"] > 0, r
    assert r["b"]["received"] == COUNT and r["b"]["publish_s"] > 0, r
    assert r["b"]["broker_peak_rss_kib"] is None or r["b"]["broker_peak_rss_kib"] > 0, r
    c = r["c"]
    assert c["counts_match"] and c["restored_messages"] == c["drained"] == COUNT, c
    assert c["start_s"] > 0 and c["rss_after_restart_kib"] > 0, c
    for key in ("after_a_bytes", "after_b_drain_bytes", "after_c_drain_bytes"):
        assert r["d"][key] > 0, r["d"]


if __name__ == "__main__":
    wt.run([test_table, test_json], timeout=120)
