"""Debian's amqp-tools (rabbitmq-c 0.11) against the broker: amqp-publish to the default
exchange succeeds, amqp-declare-queue gets a prompt answer, and a wrong password gives
rabbitmq-c's "server connection error 403" message. Every command runs under a timeout, so
a server that never answers fails the test instead of hanging it. Checked against
RabbitMQ 3.10."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

TOOL_TIMEOUT = 15


def tool(name, addr, *args):
    path = shutil.which(name)
    assert path, "%s not found: apt-get install amqp-tools" % name
    argv = [path, "--server", addr[0], "--port", str(addr[1])] + list(args)
    wt.log("  $ " + " ".join(argv))
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s did not finish within %d s (server hung?)" % (name,
                                                                               TOOL_TIMEOUT))
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    wt.log("    exit %d, stdout %r, stderr %r" % (p.returncode, out, err))
    return p.returncode, out, err


# rabbitmq-c's wording for an AMQP error from the server (amqp-tools common.c).
SERVER_ERROR = re.compile(r"server (connection|channel) error (\d+), message: (\S.*)")


def test_publish_default_exchange():
    """amqp-publish to the default exchange exits 0"""
    with wt.server() as srv:
        rc, out, err = tool("amqp-publish", srv.addr, "-e", "", "-r", "warren-test-nowhere",
                            "-b", "hello")
        assert rc == 0, "amqp-publish failed: %s" % err
        rc, out, err = tool("amqp-publish", srv.addr, "-r", "warren-test-nowhere",
                            "-C", "text/plain", "-H", "x-test: 1", "-b", "hello again")
        assert rc == 0, "amqp-publish failed: %s" % err
        wt.assert_serves(srv.addr)


def test_declare_queue_prompt_answer():
    """amqp-declare-queue gets a prompt answer: the queue name, or a clear AMQP error"""
    name = "warren-test-02-declare"
    with wt.server() as srv:
        rc, out, err = tool("amqp-declare-queue", srv.addr, "-q", name)
        # RabbitMQ: exit 0, prints the queue name. Until Warren's messaging core lands,
        # queue.declare is answered with connection.close 540 NOT_IMPLEMENTED, which
        # amqp-declare-queue reports as "server connection error 540, message: ...".
        # TODO: when queues land, require success here (rc == 0 and the name printed).
        if rc == 0:
            assert out.strip() == name, "expected the queue name, got %r" % out
            rc2, _, err2 = tool("amqp-delete-queue", srv.addr, "-q", name)
            assert rc2 == 0, err2
        else:
            m = SERVER_ERROR.search(err)
            assert m, "amqp-declare-queue failed without an AMQP server error: %r" % err
            code = int(m.group(2))
            assert code in (540,), "unexpected reply code %d: %s" % (code, m.group(3))
            wt.log("  accepted for now: server answered %d (%s)" % (code, m.group(3)))
        wt.assert_serves(srv.addr)


def test_wrong_password():
    """a wrong password: rabbitmq-c reports server connection error 403"""
    with wt.server() as srv:
        rc, out, err = tool("amqp-publish", srv.addr, "--password", "wrong", "-r", "x",
                            "-b", "hi")
        assert rc != 0
        m = SERVER_ERROR.search(err)
        assert m, "no AMQP server error in %r" % err
        assert m.group(1) == "connection" and m.group(2) == "403", err
        assert m.group(3).strip() == ("ACCESS_REFUSED - Login was refused using authentication "
                                      "mechanism PLAIN. For details see the broker logfile."), err
        wt.assert_serves(srv.addr)


if __name__ == "__main__":
    wt.run([test_publish_default_exchange, test_declare_queue_prompt_answer,
            test_wrong_password])
