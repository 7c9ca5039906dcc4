"""The Celery app of tests/integration/92-cluster-clients-failover.py: a worker run with
`-A celery_failover_app` against a cluster. The broker URL ($WT92_BROKER) lists every node
(amqp://...;amqp://...), which kombu tries in turn (round-robin failover); tasks go to wt92, a
durable queue declared with x-queue-type quorum (task_queues, as Celery 5.2's users declare
one); acks_late with a prefetch of one task per process, so that a task the worker held
when its consumer went is delivered again, not lost. The one task, wt92.work(n), sleeps a
little and then creates a file named after n, its delivery and its process under $WT92_DIR:
the test reads which tasks ran, and how many times.

Celery 5.2 asks for a global basic.qos when the broker says it is RabbitMQ 3.3 or later
(kombu's qos_semantics_matches_spec), which RabbitMQ refuses on a quorum queue ("does not
support global qos"); Celery 5.5's worker_detect_quorum_queues turns it off. The patch below
does the same for 5.2, so that the test runs against RabbitMQ too; Warren names itself
"Warren", which kombu already answers with a per-consumer prefetch."""

import os
import time
import uuid

from celery import Celery
from kombu import Queue
from kombu.transport import pyamqp

pyamqp.Transport.qos_semantics_matches_spec = lambda self, connection: True


def make_app(broker):
    app = Celery("wt92", broker=broker, backend=None)
    app.conf.update(
        task_queues=[Queue("wt92", durable=True, queue_arguments={"x-queue-type": "quorum"})],
        task_default_queue="wt92",
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_timeout=5,
        broker_connection_max_retries=None,
        broker_failover_strategy="round-robin",
        broker_transport_options={"confirm_publish": True},
    )

    @app.task(name="wt92.work", bind=True)
    def work(self, n, seconds):
        time.sleep(seconds)
        name = "done-%d-%s-%s-%d" % (n, "r" if self.request.delivery_info.get("redelivered")
                                     else "f", uuid.uuid4().hex[:8], os.getpid())
        with open(os.path.join(os.environ["WT92_DIR"], name), "w"):
            pass

    return app


app = make_app(os.environ.get("WT92_BROKER", "amqp://guest:guest@127.0.0.1:5672//"))
