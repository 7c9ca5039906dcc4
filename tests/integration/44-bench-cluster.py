"""bench/cluster.py, the side-by-side benchmark of a Warren cluster and a RabbitMQ cluster, in
its --self-check mode: scenarios 1 (producer and consumer on the quorum queue's leader) and 2
(on the two followers) for 1 s against a 3-node Warren cluster it starts itself with
scripts/local-cluster.sh (no RabbitMQ). It must exit 0, print a markdown table whose rows have
figures for Warren (not "failed"), and write the report with the date and the machine to
--out. Benchmarks assert nothing about time; this only keeps the script working as Warren,
its clustering and warren-perf change.

The binaries are $WARREN_SERVER, $WARREN_PERF (default: warren-perf next to the server) and
the warrenctl next to the server."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

CLUSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                       "cluster.py")


@wt.needs_process
def test_self_check():
    """cluster.py --self-check: exit 0, Warren's figures in every row of 1 and 2, the report"""
    server = os.environ.get("WARREN_SERVER")
    assert server, "set WARREN_SERVER to the warren-server binary"
    perf = os.environ.get("WARREN_PERF") or os.path.join(os.path.dirname(server), "warren-perf")
    with tempfile.TemporaryDirectory(prefix="warren-test-") as tmp:
        out = os.path.join(tmp, "report.md")
        argv = [sys.executable, CLUSTER, "--self-check", "--warren", server, "--perf", perf,
                "--out", out]
        wt.log("  running: %s" % " ".join(argv))
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=100)
        for line in p.stderr.splitlines()[-4:]:
            wt.log("    | %s" % line)
        assert p.returncode == 0, "cluster.py exited %d; stderr:\n%s\nstdout:\n%s" % (
            p.returncode, p.stderr, p.stdout)
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in p.stdout.splitlines() if line.startswith("|")]
        assert rows and rows[0][:6] == ["#", "Scenario", "Figure", "Warren", "RabbitMQ",
                                        "Warren/RabbitMQ"], p.stdout
        assert [r[0] for r in rows[2:] if r[0]] == ["1", "2"], p.stdout
        for r in rows[2:]:
            assert r[3][:1].isdigit(), "no figure for Warren: %s\n%s" % (r, p.stdout)
            assert r[4] == "—", r  # no RabbitMQ in the self-check
        figures = [r[2] for r in rows[2:]]
        for start in ("received msg/s", "confirm latency p99", "CPU % of a core, the 3 nodes",
                      "peak RSS of the 3 nodes"):
            assert sum(f.startswith(start) for f in figures) == 2, (start, p.stdout)
        with open(out) as f:
            report = f.read()
        assert "- date: " in report and "- machine: " in report and "| 2 |" in report, report


if __name__ == "__main__":
    wt.run([test_self_check], timeout=120)
