"""Celery end to end (Debian's celery 5.2, kombu 5.2 over py-amqp): a worker with default
settings (prefork pool, acks early, mingle, gossip, heartbeats) runs tasks; a task retries
with a countdown (republished with an ETA, held by the worker); ETA tasks; a group and a
chain with results over the rpc:// backend; `celery inspect ping` and `celery control`
through the pidbox (a fanout exchange and per-node queues declared with x-message-ttl and
x-expires), and those arguments applied: a pidbox queue nobody consumes loses its messages
after the TTL and is deleted after the expiry; beat sending a periodic task. The app is
tests/integration/celery_app.py; the worker, beat and the celery commands run as
subprocesses with timeouts, killed (their logs printed) on failure.

Checked against RabbitMQ 3.10.8 (WARREN_TEST_ADDR=127.0.0.1:PORT). Notes:
- Celery's rpc:// backend refuses chords itself, before anything reaches the broker
  (NotImplementedError "The "rpc" result backend does not support chords!"): chords are run
  here with the file:// result backend instead, which makes the worker poll the chord with
  the celery.chord_unlock task, retrying itself with a countdown over the broker.
- The control queues are declared with x-message-ttl 300000 and x-expires 10000 (Celery's
  control_queue_ttl and control_queue_expires); the test declares a node queue as kombu's
  pidbox does with shorter ones.

Queue names start with wt39- (and a node's pidbox queue); those left are deleted at the
end, so the file reruns against one broker."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CELERY = [sys.executable, "-m", "celery", "-A", "celery_app"]


def need_celery():
    """Fails the test if Celery is not installed; returns its version."""
    try:
        import celery
    except ImportError:
        raise AssertionError("celery is not installed for %s: apt-get install celery "
                             "python3-celery (scripts/setup.sh does)" % sys.executable) from None
    return celery.__version__


class Celery:
    """The Celery app (celery_app.py) configured for a broker, and its subprocesses: each
    started with a log file in a temporary directory, stopped at the end (SIGTERM, then
    SIGKILL), and their logs printed if the block fails."""

    def __init__(self, addr, backend="rpc://"):
        wt.log("  Celery %s, result backend %s" % (need_celery(), backend))
        self.tmp = tempfile.mkdtemp(prefix="wt39-")
        self.env = dict(os.environ, WT39_BROKER="amqp://guest:guest@%s:%d//" % addr,
                        WT39_BACKEND=backend, WT39_DIR=self.tmp,
                        PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
        import celery_app
        self.app = celery_app.make_app(self.env["WT39_BROKER"], backend)
        self.app.set_current()
        self.task = self.app.tasks.__getitem__
        self.procs = []
        self.node = "wt39-%d@localhost" % os.getpid()

    def spawn(self, name, *args):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(CELERY + list(args), cwd=self.tmp, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append((name, p))
        return p

    def worker(self):
        """Starts a worker (Celery's defaults) and waits until it answers a ping."""
        p = self.spawn("worker", "worker", "-n", self.node, "--loglevel=INFO")
        t0 = time.monotonic()
        deadline = t0 + 30
        while not self.app.control.ping([self.node], timeout=0.5):
            assert p.poll() is None, "the worker exited with status %d" % p.returncode
            assert time.monotonic() < deadline, "the worker did not answer a ping within 30 s"
        wt.log("  worker %s answers a ping after %.1f s" % (self.node, time.monotonic() - t0))
        return p

    def command(self, *args, timeout=30):
        """Runs `celery -A celery_app ARGS`; returns its output (it must exit 0)."""
        wt.log("  $ celery " + " ".join(args))
        try:
            p = subprocess.run(CELERY + list(args), cwd=self.tmp, env=self.env,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("celery %s still running after %d s" % (
                " ".join(args), timeout)) from None
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        wt.log("\n".join("    " + line for line in out.strip().splitlines()))
        assert p.returncode == 0, "celery %s exited with status %d" % (" ".join(args),
                                                                     p.returncode)
        return out

    def lines(self, name):
        try:
            with open(os.path.join(self.tmp, name)) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def stop(self, failed):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    rc = p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
                    raise AssertionError("celery %s did not stop within 20 s of SIGTERM" % name)
                if not failed:
                    assert rc == 0, "celery %s exited with status %d after SIGTERM" % (name, rc)
        if failed:
            for name, _ in self.procs:
                with open(os.path.join(self.tmp, name + ".log"), errors="replace") as f:
                    wt.log("  ---- celery %s log ----\n%s  ---- end ----" % (
                        name, f.read()[-8000:]))
        self.app.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def celery_for(addr, backend="rpc://"):
    c = Celery(addr, backend)
    try:
        yield c
    except BaseException:
        for _, p in c.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        c.stop(failed=True)
        raise
    c.stop(failed=False)


def test_tasks():
    """a worker with default settings: a task's result over rpc://, a retry with countdown
    (attempts about a second apart), an ETA task (not run before its time), a group and a
    chain; meanwhile celery beat sends the periodic task wt39.tick every second and the
    worker runs it"""
    from celery import chain, group
    with wt.server() as srv:
        wt.cleanup(srv.addr, "wt39-celery")
        with celery_for(srv.addr) as c:
            c.worker()
            c.spawn("beat", "beat", "-s", os.path.join(c.tmp, "beat-schedule"),
                    "--loglevel=INFO")
            add, flaky, when, tsum = (c.task("wt39." + n) for n in ("add", "flaky", "when",
                                                                     "tsum"))
            assert add.delay(2, 3).get(timeout=10) == 5
            r = flaky.delay(2, 1)
            assert r.get(timeout=20) == 3
            times = [float(t) for t in c.lines("flaky-" + r.id)]
            assert len(times) == 3, times
            gaps = [b - a for a, b in zip(times, times[1:])]
            wt.log("  retries with countdown 1: attempts %s s apart" % (
                ", ".join("%.2f" % g for g in gaps)))
            assert all(g >= 0.9 for g in gaps), gaps
            sent = time.time()
            ran = when.apply_async(countdown=2).get(timeout=20)
            wt.log("  ETA task (countdown 2) ran after %.2f s" % (ran - sent))
            assert ran >= sent + 1.9, ran - sent
            assert group(add.s(i, i) for i in range(10))().get(timeout=20) == [
                2 * i for i in range(10)]
            assert chain(add.s(1, 2), add.s(3), add.s(4))().get(timeout=20) == 10
            try:
                (group(add.s(1, 1), add.s(2, 2)) | tsum.s())()
                raise AssertionError("a chord was accepted with the rpc:// backend")
            except NotImplementedError as e:
                wt.log("  chord with rpc://: %s" % str(e).splitlines()[0])
            wt.wait_until(lambda: len(c.lines("ticks")) >= 3, 20, "3 ticks run")
            ticks = [float(t) for t in c.lines("ticks")]
            wt.log("  beat: %d ticks, %s s apart" % (len(ticks), ", ".join(
                "%.2f" % (b - a) for a, b in zip(ticks, ticks[1:]))))
        wt.cleanup(srv.addr, "wt39-celery")


def test_chord():
    """a chord (group then callback) with the file:// result backend: the worker's
    celery.chord_unlock task retries with a countdown until the group is done"""
    from celery import chord
    with wt.server() as srv:
        wt.cleanup(srv.addr, "wt39-celery")
        tmp = tempfile.mkdtemp(prefix="wt39-results-")
        try:
            with celery_for(srv.addr, backend="file://" + tmp) as c:
                c.worker()
                add, tsum = c.task("wt39.add"), c.task("wt39.tsum")
                r = chord([add.s(i, i) for i in range(5)])(tsum.s())
                assert r.get(timeout=30) == 20
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        wt.cleanup(srv.addr, "wt39-celery")


def test_inspect_control():
    """`celery inspect ping` and `celery control` through the pidbox; the worker's pidbox
    queue holds x-message-ttl 300000 and x-expires 10000 (a redeclare with others is refused);
    a node queue declared as the pidbox does, nobody consuming it, loses a broadcast after
    its TTL and is deleted after its expiry"""
    import kombu
    import kombu.pidbox
    import pika
    with wt.server() as srv:
        wt.cleanup(srv.addr, "wt39-celery", "wt39-extra", "ghost@wt39.celery.pidbox")
        with celery_for(srv.addr) as c:
            c.worker()
            out = c.command("inspect", "ping", "-d", c.node, "--timeout", "5")
            assert "pong" in out and c.node in out, out
            out = c.command("control", "add_consumer", "wt39-extra", "-d", c.node,
                            "--timeout", "5")
            assert "add consumer wt39-extra" in out, out
            # The same requests from Python (each command above is a new process).
            replies = c.app.control.rate_limit("wt39.add", "10/m", destination=[c.node],
                                               reply=True, timeout=5)
            assert replies == [{c.node: {"ok": "new rate limit set successfully"}}], replies
            queues = c.app.control.inspect([c.node], timeout=5).active_queues()
            assert "wt39-extra" in [q["name"] for q in queues[c.node]], queues
            assert c.task("wt39.add").delay(1, 1).get(timeout=10) == 2

            pidbox = c.node + ".celery.pidbox"
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            ch.queue_declare(pidbox, auto_delete=True, arguments={
                "x-message-ttl": 300000, "x-expires": 10000})
            try:
                ch.queue_declare(pidbox, auto_delete=True, arguments={
                    "x-message-ttl": 300000, "x-expires": 20000})
                raise AssertionError("redeclaring %s with another x-expires succeeded" % pidbox)
            except pika.exceptions.ChannelClosedByBroker as e:
                assert e.reply_code == 406, e
                wt.log("  %s" % e.reply_text)
            conn.close()

            # A node's pidbox queue that nobody consumes, with short TTL and expiry.
            mailbox = kombu.pidbox.Mailbox("celery", type="fanout", queue_ttl=1.0,
                                           queue_expires=2.5)
            ghost = mailbox.get_queue("ghost@wt39")
            with kombu.Connection(c.env["WT39_BROKER"], connect_timeout=5) as kconn:
                ghost(kconn.default_channel).declare()
            c.app.control.broadcast("ping", reply=False, timeout=0)
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            wt.wait_until(lambda: wt.message_count(ch, ghost.name) == 1, 5,
                          "the broadcast in the ghost node's queue")
            wt.wait_until(lambda: wt.message_count(ch, ghost.name) == 0, 10,
                          "the broadcast expired (x-message-ttl 1000)")
            conn.close()
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            ch.confirm_delivery()
            t0 = time.monotonic()

            def gone():
                try:
                    ch.basic_publish("", ghost.name, b"probe", mandatory=True)
                    return False
                except pika.exceptions.UnroutableError:
                    return True
            # (The probes are dropped by the TTL too; publishing does not count as a use.)
            wt.wait_until(gone, 15, "the ghost node's queue deleted by its x-expires")
            wt.log("  ghost pidbox queue deleted %.1f s after its message expired" % (
                time.monotonic() - t0))
            conn.close()
        wt.cleanup(srv.addr, "wt39-celery", "wt39-extra")


if __name__ == "__main__":
    wt.run([test_tasks, test_chord, test_inspect_control], timeout=120)
