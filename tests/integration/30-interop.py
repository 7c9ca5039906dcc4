"""The interop scripts (interop/<client>/, see interop/README.md) against the broker under
test: each takes HOST:PORT, prints one line per step and "OK" last, and exits 0. Checked
here: exit status 0 and a last line of "OK", within a time limit; each script's output is
logged. The scripts themselves were checked against RabbitMQ 3.10.

Clients: pika 1.2 (python3-pika), kombu 5.2 over py-amqp 5.1 with AMQPLAIN, Celery 5.2 (a
worker subprocess runs a task), amqp-tools 0.11 (rabbitmq-c), amqplib (Node, from npm:
interop/amqplib/package-lock.json; `npm ci` is run first when node_modules is missing,
in a copy of the directory if the source tree is read-only, as under make distcheck).
Python scripts run under /usr/bin/python3, which has Debian's modules. A missing client
fails its test: nothing is skipped."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

INTEROP = wt.INTEROP
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
SCRIPT_TIMEOUT = 60


def run_script(addr, argv, what, cwd=None, timeout=SCRIPT_TIMEOUT):
    """Runs argv + [host:port]; requires exit 0 and "OK" as the last line of stdout."""
    argv = list(argv) + ["%s:%d" % addr]
    wt.log("  $ " + " ".join(argv))
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        raise AssertionError("%s did not finish within %d s; output so far:\n%s" % (
            what, timeout, out)) from None
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    for line in out.splitlines():
        wt.log("    " + line)
    lines = out.strip().splitlines()
    if p.returncode != 0 or not lines or lines[-1] != "OK":
        raise AssertionError("%s failed (exit %d):\n--- stdout ---\n%s--- stderr ---\n%s" % (
            what, p.returncode, out, err))


def python_script(client, name):
    return [PYTHON, os.path.join(INTEROP, client, name)]


def test_pika_connect_channels():
    """interop/pika/connect_channels.py: channels, flow, 403 and 530 refusals"""
    with wt.server() as srv:
        run_script(srv.addr, python_script("pika", "connect_channels.py"), "pika connect")


def test_pika_work_queue():
    """interop/pika/work_queue.py: durable queue, persistent tasks, two workers with
    prefetch 1"""
    with wt.server() as srv:
        run_script(srv.addr, python_script("pika", "work_queue.py"), "pika work queue")


def test_pika_pub_sub():
    """interop/pika/pub_sub.py: fanout, direct and topic subscribers"""
    with wt.server() as srv:
        run_script(srv.addr, python_script("pika", "pub_sub.py"), "pika pub/sub")


def test_pika_rpc():
    """interop/pika/rpc.py: RPC server and client with a callback queue"""
    with wt.server() as srv:
        run_script(srv.addr, python_script("pika", "rpc.py"), "pika RPC")


def test_kombu_roundtrip():
    """interop/kombu/roundtrip.py: kombu with AMQPLAIN, producer/consumer, SimpleQueue"""
    with wt.server() as srv:
        run_script(srv.addr, python_script("kombu", "roundtrip.py"), "kombu round trip")


def test_celery_worker():
    """interop/kombu/celery_roundtrip.py: a Celery worker runs a task sent by a client"""
    with wt.server() as srv:
        run_script(srv.addr, python_script("kombu", "celery_roundtrip.py"), "Celery worker")


def test_amqp_tools_publish():
    """interop/amqp-tools/publish.sh: amqp-publish, and a wrong password -> 403"""
    wt.needs("amqp-publish", "apt-get install amqp-tools")
    with wt.server() as srv:
        run_script(srv.addr, ["sh", os.path.join(INTEROP, "amqp-tools", "publish.sh")],
                   "amqp-tools publish")


def test_amqp_tools_queue():
    """interop/amqp-tools/queue.sh: declare, publish, get, consume -c 1, delete"""
    wt.needs("amqp-consume", "apt-get install amqp-tools")
    with wt.server() as srv:
        run_script(srv.addr, ["sh", os.path.join(INTEROP, "amqp-tools", "queue.sh")],
                   "amqp-tools queue")


def test_amqplib():
    """interop/amqplib/roundtrip.js: assertQueue, sendToQueue, consume, ack; confirm
    channel; topic pub/sub"""
    node = wt.needs("node", "install Node.js (apt-get install nodejs)")
    where, tmp = wt.amqplib_dir()
    try:
        with wt.server() as srv:
            run_script(srv.addr, [node, os.path.join(where, "roundtrip.js")], "amqplib")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    wt.run([test_pika_connect_channels, test_pika_work_queue, test_pika_pub_sub,
            test_pika_rpc, test_kombu_roundtrip, test_celery_worker, test_amqp_tools_publish,
            test_amqp_tools_queue, test_amqplib], timeout=360)
