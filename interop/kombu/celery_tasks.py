"""The Celery app for interop/kombu/celery_roundtrip.py: one task that writes a file. The
broker URL comes from $INTEROP_BROKER_URL; there is no result backend (the effect is the
file), so only the broker is exercised: the task queue, and the worker's own pidbox
(fanout, auto-delete queue), event and heartbeat traffic (topic exchange celeryev)."""

import os

from celery import Celery

app = Celery("interop_celery", broker=os.environ.get("INTEROP_BROKER_URL",
                                                     "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_default_queue="interop-celery",
    result_backend=None,
    task_acks_late=True,
    broker_connection_timeout=5,
    worker_hijack_root_logger=False,
)


@app.task(name="interop.touch")
def touch(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
    return len(text)
