"""Hostile clients: a publish announcing a body the broker cannot allocate. The connection
gets 506 RESOURCE_ERROR and goes; nothing else does. The exception is raised in the middle of
the channel's handlers (the content header of a publish, here one whose reply_to is direct
reply-to, which copies the properties first): the channel and its consumers are released
only after the handler has returned, never under it. The AddressSanitizer build of the suite
is what sees a use after free; every build sees the broker stay up for a well-behaved client.

Allocation fails for real: the server runs under an address-space limit (RLIMIT_AS) that
leaves no room for a 500 MiB body, or, in the AddressSanitizer build, whose shadow memory
needs a vast address space, with ASan's own limit on one allocation."""

import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402
import watcher  # noqa: E402

BODY = 500 << 20  # within max_message_size below, beyond what the server may allocate
CONFIG = {"max_message_size": str(512 << 20)}


def oom_server():
    if wt.binary_sanitized():
        return wt.server(config=CONFIG, env={"ASAN_OPTIONS": ":".join(filter(None, [
            os.environ.get("ASAN_OPTIONS"), "allocator_may_return_null=1",
            "max_allocation_size_mb=256"]))})
    # An idle broker maps about 270 MB (RocksDB's threads and arenas included), but glibc
    # reserves 64 MiB of address space for each malloc arena it makes, and how many threads
    # get one of their own varies from run to run: with 5 or 6 the limit was reached before
    # RocksDB had started its threads (std::system_error, EAGAIN: the server aborted at start,
    # once in a CI run). Two arenas make the address space an idle broker takes the same
    # every run (about 135 MB).
    return wt.server(config=CONFIG, limits={resource.RLIMIT_AS: 600 << 20},
                     env={"MALLOC_ARENA_MAX": "2"})


def refused_publish(srv, props, consume_reply_to):
    import pika.spec
    c = wt.opened(srv.addr, 1)
    if consume_reply_to:
        wt.call_pika(c, 1, pika.spec.Basic.Consume(queue="amq.rabbitmq.reply-to", no_ack=True),
                     pika.spec.Basic.ConsumeOk)
    c.send_method(1, wt.BASIC_PUBLISH, wt.publish_args("", "wt63"))
    c.send(wt.frame(wt.FRAME_HEADER, 1, wt.content_header_payload(BODY, props)))
    c.expect_connection_close(
        506, text="RESOURCE_ERROR - out of memory for a %d-byte message" % BODY,
        ids=wt.BASIC_PUBLISH)
    c.close()


@wt.needs_process
def test_body_not_allocated():
    """a body that cannot be allocated: 506 for that connection, the others go on"""
    import pika
    with oom_server() as srv:
        with watcher.Watcher(srv.addr) as w:
            refused_publish(srv, None, consume_reply_to=False)
            w.check("after a plain publish")
            refused_publish(srv, pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"),
                            consume_reply_to=True)
            w.check("after a direct reply-to request")
        assert "out of memory for a %d-byte message" % BODY in srv.stderr_text()


if __name__ == "__main__":
    wt.run([test_body_not_allocated])
