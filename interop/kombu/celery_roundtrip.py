#!/usr/bin/python3
"""Celery against a broker at HOST:PORT (default 127.0.0.1:5672): start a worker (solo
pool, queue interop-celery) as a subprocess, send it a task that writes a file, wait for
the file, stop the worker with SIGTERM (warm shutdown, exit 0). Celery's defaults otherwise:
kombu over py-amqp, AMQPLAIN login, the worker's pidbox, mingle, gossip and heartbeat
traffic. Prints one line per step; the output is the same for RabbitMQ 3.10 and Warren.
Exit 0 when every step behaved; on failure the worker's log is printed.

    /usr/bin/python3 interop/kombu/celery_roundtrip.py 127.0.0.1:5682
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5672").rpartition(":")
    url = "amqp://guest:guest@%s:%s//" % (host or "127.0.0.1", port)
    os.environ["INTEROP_BROKER_URL"] = url
    sys.path.insert(0, HERE)
    import celery_tasks  # noqa: E402 - needs INTEROP_BROKER_URL

    tmp = tempfile.mkdtemp(prefix="interop-celery-")
    log_path = os.path.join(tmp, "worker.log")
    done = os.path.join(tmp, "done")
    ok = False
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool=solo",
             "-Q", "interop-celery", "-n", "interop-%d@localhost" % os.getpid(),
             "--loglevel=INFO"],
            cwd=HERE, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        print("worker started")
        result = celery_tasks.touch.apply_async(args=[done, "written by the worker"])
        print("task sent")
        deadline = time.monotonic() + 30
        while not os.path.exists(done):
            if worker.poll() is not None:
                print("FAILED: the worker exited with status %d" % worker.returncode)
                return 1
            if time.monotonic() > deadline:
                print("FAILED: the task did not run within 30 s")
                return 1
            time.sleep(0.1)
        with open(done) as f:
            assert f.read() == "written by the worker"
        print("task ran: file written")
        assert result.id
        worker.send_signal(signal.SIGTERM)
        try:
            rc = worker.wait(20)
        except subprocess.TimeoutExpired:
            print("FAILED: the worker did not stop within 20 s of SIGTERM")
            return 1
        if rc != 0:
            print("FAILED: the worker exited with status %d after SIGTERM" % rc)
            return 1
        print("worker stopped (warm shutdown, exit 0)")
        with celery_tasks.app.connection_for_write() as conn:
            conn.default_channel.queue_delete("interop-celery")
        ok = True
        print("OK")
        return 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        if not ok:
            with open(log_path, errors="replace") as f:
                print("---- worker log ----\n" + f.read()[-10000:] + "---- end ----")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
