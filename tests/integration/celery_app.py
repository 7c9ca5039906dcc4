"""The Celery app of tests/integration/39-celery.py: make_app() builds it for a broker and a
result backend; the module's `app` (what the worker and beat run with -A celery_app) is built
from $WT39_BROKER and $WT39_BACKEND. Celery's defaults, except: tasks go to the queue
wt39-celery (so that a rerun against one broker finds no leftovers of another test), and
beat's one periodic task, wt39.tick every second, is scheduled. Tasks that record something
append to files under $WT39_DIR, which the test reads."""

import os
import time

from celery import Celery


def note(name, text):
    """Appends a line to $WT39_DIR/name."""
    with open(os.path.join(os.environ["WT39_DIR"], name), "a") as f:
        f.write(text + "\n")


def make_app(broker, backend):
    """A new Celery app for broker (a URL) and result backend (a URL), with the tasks
    wt39.add, wt39.tsum, wt39.flaky, wt39.when and wt39.tick registered."""
    app = Celery("wt39", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue="wt39-celery",
        broker_connection_timeout=5,
        beat_schedule={"tick": {"task": "wt39.tick", "schedule": 1.0}},
    )

    @app.task(name="wt39.add")
    def add(x, y):
        return x + y

    @app.task(name="wt39.tsum")
    def tsum(numbers):
        return sum(numbers)

    @app.task(name="wt39.flaky", bind=True, max_retries=5)
    def flaky(self, fails, countdown):
        """Fails (retrying after countdown seconds) the first `fails` times, then returns
        the number of attempts. Each attempt's time is noted in flaky-<task id>."""
        note("flaky-" + self.request.id, "%.3f" % time.time())
        if self.request.retries < fails:
            raise self.retry(countdown=countdown)
        return self.request.retries + 1

    @app.task(name="wt39.when")
    def when():
        """The time the task ran (for ETA tasks)."""
        return time.time()

    @app.task(name="wt39.tick")
    def tick():
        note("ticks", "%.3f" % time.time())

    return app


app = make_app(os.environ.get("WT39_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
               os.environ.get("WT39_BACKEND", "rpc://"))
