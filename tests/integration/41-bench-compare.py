"""bench/compare.py, the side-by-side benchmark of Warren and RabbitMQ, in its --self-check
mode: every scenario for 1 s against a Warren it starts itself (no RabbitMQ). It must exit 0,
print a markdown table with a row for each scenario that has figures for Warren (not
"failed") and the TCP floor measured by bench/tcp_floor for scenario 7, and write the report
with the date and the machine to --out. The task-queue scenarios run small (12b: a backlog of
5,000; 13: 20,000 messages expiring 3 s after the start): 12b's share of deliveries above
the priority before and 13's peak RSS while the queue empties must be figures. Benchmarks
assert nothing about time; this only keeps the script working as Warren and warren-perf
change.

The binaries are $WARREN_SERVER and $WARREN_PERF (default: warren-perf next to the server)."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                       "compare.py")
SCENARIOS = ("1", "2", "3", "4", "5a", "5b", "5c", "5d", "6", "7", "8", "9", "11", "12", "12b",
             "13")


@wt.needs_process
def test_self_check():
    """compare.py --self-check: exit 0, a row with Warren's figures per scenario, the report"""
    server = os.environ.get("WARREN_SERVER")
    assert server, "set WARREN_SERVER to the warren-server binary"
    perf = os.environ.get("WARREN_PERF") or os.path.join(os.path.dirname(server), "warren-perf")
    with tempfile.TemporaryDirectory(prefix="warren-test-") as tmp:
        out = os.path.join(tmp, "report.md")
        argv = [sys.executable, COMPARE, "--self-check", "--warren", server, "--perf", perf,
                "--out", out]
        wt.log("  running: %s" % " ".join(argv))
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=150)
        for line in p.stderr.splitlines()[-4:]:
            wt.log("    | %s" % line)
        assert p.returncode == 0, "compare.py exited %d; stderr:\n%s\nstdout:\n%s" % (
            p.returncode, p.stderr, p.stdout)
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in p.stdout.splitlines() if line.startswith("|")]
        assert rows and rows[0][:6] == ["#", "Scenario", "Figure", "Warren", "RabbitMQ",
                                        "Warren/RabbitMQ"], p.stdout
        first = {r[0]: r for r in rows[2:] if r[0]}
        # bench/tcp_floor (built next to the server) ran before Warren's latency run
        floor = [r for r in rows if r[2].startswith("TCP floor just before")]
        assert floor and floor[0][3].replace(" / ", "").isdigit(), "no TCP floor row:\n%s" % (
            p.stdout)
        for sid in SCENARIOS:
            assert sid in first, "no row for scenario %s:\n%s" % (sid, p.stdout)
            warren = first[sid][3]
            assert warren not in ("failed", "—") and warren[0].isdigit(), first[sid]
            assert first[sid][4] == "—", first[sid]  # no RabbitMQ in the self-check
        # figures of the task-queue scenarios beyond their first row
        for start in ("deliveries of a higher priority than the one before",
                      "broker peak RSS during it"):
            row = [r for r in rows if r[2].startswith(start)]
            assert row and row[0][3][0].isdigit(), "no figure '%s...':\n%s" % (start, p.stdout)
        with open(out) as f:
            report = f.read()
        assert "- date: " in report and "- machine: " in report and "nproc" in report, report
        assert "| 9 |" in report, report


if __name__ == "__main__":
    wt.run([test_self_check], timeout=180)
