"""warrenctl's lists and node commands against warren-server, with rabbitmqctl 3.10.8's banners,
columns, exit codes and error texts (compared side by side with rabbitmqctl on RabbitMQ 3.10.8):
list_exchanges, list_bindings, list_channels, list_consumers, list_queues with every info key,
purge_queue, delete_queue, close_all_connections, ping, await_startup, node_health_check,
environment, set_log_level / log_level, rotate_logs and report. Where Warren has no Erlang pid
(a channel's), the name stands in, as list_connections does; where it keeps no figure (a
queue's pid), the column is empty, as rabbitmqctl prints a key a queue does not have."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

QUEUE_KEYS = ("name durable auto_delete arguments policy pid owner_pid exclusive "
              "exclusive_consumer_pid exclusive_consumer_tag messages_ready "
              "messages_unacknowledged messages messages_ready_ram messages_unacknowledged_ram "
              "messages_ram messages_persistent message_bytes message_bytes_ready "
              "message_bytes_unacknowledged message_bytes_ram message_bytes_persistent "
              "head_message_timestamp disk_reads disk_writes consumers consumer_utilisation "
              "consumer_capacity memory slave_pids synchronised_slave_pids state type leader "
              "members online").split()
CHANNEL_KEYS = ("pid connection name number user vhost transactional confirm consumer_count "
                "messages_unacknowledged messages_uncommitted acks_uncommitted "
                "messages_unconfirmed prefetch_count global_prefetch_count").split()


def rows(out):
    return [line.split("\t") for line in out.splitlines()]


class Scene:
    """One connection with three channels: 1 in confirm mode, 2 with prefetch 5 consuming
    q2 (tag ctag1, x-priority 3), 3 transactional consuming q1 exclusively without acks
    (ctag2); exchange ex1 (topic, an alternate exchange) bound to q1 with arguments."""

    def __init__(self, srv):
        import pika
        self.conn = wt.pika_connect(srv.addr)
        ch = self.conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("ex1", "topic", arguments={"alternate-exchange": "amq.fanout"})
        ch.queue_declare("q1", durable=True, arguments={"x-max-length": 10})
        ch.queue_declare("q2")
        ch.queue_bind("q1", "ex1", "a.#", arguments={"x-foo": "bar"})
        ch.queue_declare("p1")
        for _ in range(3):
            ch.basic_publish("", "p1", b"xyz", pika.BasicProperties(delivery_mode=2))
        ch2 = self.conn.channel()
        ch2.basic_qos(prefetch_count=5)
        ch2.basic_consume("q2", lambda *a: None, consumer_tag="ctag1",
                          arguments={"x-priority": 3})
        ch3 = self.conn.channel()
        ch3.tx_select()
        ch3.basic_consume("q1", lambda *a: None, auto_ack=True, consumer_tag="ctag2",
                          exclusive=True)
        self.conn.process_data_events(0.2)
        self.name = wt.ctl_ok(srv, "-s", "list_connections", "name").strip()  # the only one

    def close(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closed by the broker in some tests
            pass


@wt.needs_process
def test_exchanges_and_bindings():
    """list_exchanges and list_bindings: default and chosen columns, -q, -s,
    --no-table-headers, json and csv, a vhost that does not exist, a bad column."""
    with wt.server() as srv:
        s = Scene(srv)
        try:
            out = wt.ctl_ok(srv, "list_exchanges")
            assert out.startswith("Listing exchanges for vhost / ...\nname\ttype\n"), out
            assert "ex1\ttopic\n" in out and "\tdirect\n" in out, out
            out = wt.ctl_ok(srv, "list_exchanges", "name", "type", "durable", "auto_delete",
                            "internal", "arguments", "policy")
            assert out.splitlines()[1] == ("name\ttype\tdurable\tauto_delete\tinternal\t"
                                           "arguments\tpolicy"), out
            assert 'ex1\ttopic\tfalse\tfalse\tfalse\t[{"alternate-exchange","amq.fanout"}]\t\n' \
                in out, out
            assert "amq.direct\tdirect\ttrue\tfalse\tfalse\t[]\t\n" in out, out
            assert wt.ctl_ok(srv, "-q", "list_exchanges").startswith("name\ttype\n")
            out = wt.ctl_ok(srv, "-s", "list_exchanges")
            assert out.startswith("\tdirect\namq.direct\tdirect\n"), out
            out = wt.ctl_ok(srv, "list_exchanges", "--no-table-headers")
            assert out.startswith("Listing exchanges for vhost / ...\n\tdirect\n"), out
            out = wt.ctl_ok(srv, "--formatter", "json", "list_exchanges")
            assert json.loads(out)[0] == {"name": "", "type": "direct"}, out
            assert wt.ctl_ok(srv, "list_exchanges", "-p", "nosuch") == \
                "Listing exchanges for vhost nosuch ...\n"
            rc, out, err = wt.ctl(srv, "list_exchanges", "bogus")
            assert rc == 64 and err.startswith(
                "Error (argument validation): Info key(s) bogus are not supported\n"), (rc, err)

            out = wt.ctl_ok(srv, "list_bindings")
            assert out == ("Listing bindings for vhost /...\n"
                           "source_name\tsource_kind\tdestination_name\tdestination_kind\t"
                           "routing_key\targuments\n"
                           "\texchange\tp1\tqueue\tp1\t[]\n"
                           "\texchange\tq1\tqueue\tq1\t[]\n"
                           "\texchange\tq2\tqueue\tq2\t[]\n"
                           'ex1\texchange\tq1\tqueue\ta.#\t[{"x-foo","bar"}]\n'), out
            out = wt.ctl_ok(srv, "--formatter", "csv", "list_bindings", "source_name",
                            "routing_key")
            assert out == ('"source_name","routing_key"\n"","p1"\n"","q1"\n"","q2"\n'
                           '"ex1","a.#"\n'), out
            assert wt.ctl_ok(srv, "list_bindings", "-p", "nosuch") == \
                "Listing bindings for vhost nosuch...\n"
        finally:
            s.close()


@wt.needs_process
def test_channels_and_consumers():
    """list_channels (every info key; pid is the channel's name) and list_consumers."""
    with wt.server() as srv:
        s = Scene(srv)
        try:
            out = wt.ctl_ok(srv, "list_channels")
            assert rows(out) == [["Listing channels ..."],
                                 ["pid", "user", "consumer_count", "messages_unacknowledged"],
                                 [s.name + " (1)", "guest", "0", "0"],
                                 [s.name + " (2)", "guest", "1", "0"],
                                 [s.name + " (3)", "guest", "1", "0"]], out
            out = wt.ctl_ok(srv, "-q", "list_channels", *CHANNEL_KEYS)
            assert rows(out) == [
                CHANNEL_KEYS,
                [s.name + " (1)", s.name, s.name + " (1)", "1", "guest", "/", "false", "true",
                 "0", "0", "0", "0", "0", "0", "0"],
                [s.name + " (2)", s.name, s.name + " (2)", "2", "guest", "/", "false", "false",
                 "1", "0", "0", "0", "0", "5", "0"],
                [s.name + " (3)", s.name, s.name + " (3)", "3", "guest", "/", "true", "false",
                 "1", "0", "0", "0", "0", "0", "0"]], out
            out = wt.ctl_ok(srv, "--formatter", "json", "list_channels", "number", "prefetch_count")
            assert json.loads(out) == [{"number": 1, "prefetch_count": 0},
                                       {"number": 2, "prefetch_count": 5},
                                       {"number": 3, "prefetch_count": 0}], out

            out = wt.ctl_ok(srv, "list_consumers")
            assert rows(out) == [
                ["Listing consumers in vhost / ..."],
                ["queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count",
                 "active", "arguments"],
                ["q1", s.name + " (3)", "ctag2", "false", "0", "true", "[]"],
                ["q2", s.name + " (2)", "ctag1", "true", "5", "true", '[{"x-priority",3}]']], out
            out = wt.ctl_ok(srv, "-s", "list_consumers", "queue_name", "activity_status")
            assert out == "q1\tup\nq2\tup\n", out
            assert wt.ctl_ok(srv, "list_consumers", "-p", "nosuch") == \
                "Listing consumers in vhost nosuch ...\n"
            rc, _, err = wt.ctl(srv, "list_consumers", "channel")
            assert rc == 64 and "Info key(s) channel are not supported" in err, err
        finally:
            s.close()


@wt.needs_process
def test_list_queues_every_key():
    """list_queues takes every info key rabbitmqctl 3.10 lists; those Warren keeps no figure
    for print empty, as rabbitmqctl prints a key a classic queue does not have; a quorum
    queue's leader, members and online are the node."""
    with wt.server() as srv:
        s = Scene(srv)
        try:
            ch = s.conn.channel()
            ch.queue_declare("qq", durable=True, arguments={"x-queue-type": "quorum"})
            out = wt.ctl_ok(srv, "-q", "list_queues", *QUEUE_KEYS)
            lines = rows(out)
            assert lines[0] == QUEUE_KEYS, lines[0]
            got = {r[0]: dict(zip(QUEUE_KEYS, r)) for r in lines[1:]}
            q1 = got["q1"]
            assert (q1["durable"], q1["arguments"], q1["exclusive_consumer_pid"],
                    q1["exclusive_consumer_tag"], q1["consumers"], q1["state"], q1["type"]) == \
                ("true", '[{"x-max-length",10}]', s.name + " (3)", "ctag2", "1", "running",
                 "classic"), q1
            p1 = got["p1"]
            assert (p1["messages"], p1["messages_ready"], p1["messages_unacknowledged"]) == \
                ("3", "3", "0"), p1
            for k in ("pid", "owner_pid", "slave_pids", "leader", "members",
                      "online", "head_message_timestamp", "policy"):
                assert p1[k] == "", (k, p1)
            assert p1["memory"].isdigit(), p1  # the queue's entries and in-memory messages
            node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
            qq = got["qq"]
            assert (qq["leader"], qq["members"], qq["online"], qq["exclusive"]) == \
                (node, "[%s]" % node, "[%s]" % node, ""), qq
            out = wt.ctl_ok(srv, "--formatter", "json", "list_queues", "name", "members", "memory")
            qq = [q for q in json.loads(out) if q["name"] == "qq"]
            assert len(qq) == 1 and qq[0]["members"] == [node], out
            assert isinstance(qq[0]["memory"], int), out
        finally:
            s.close()


@wt.needs_process
def test_purge_and_delete_queue():
    """purge_queue (also as JSON) and delete_queue with --if-empty / --if-unused, and
    rabbitmqctl's errors for a queue or vhost that does not exist."""
    with wt.server() as srv:
        s = Scene(srv)
        try:
            ch = s.conn.channel()
            ch.queue_declare("p2")
            ch.basic_publish("", "p2", b"a")
            ch.basic_publish("", "p2", b"b")
            assert wt.ctl_ok(srv, "purge_queue", "p1") == "Purging queue 'p1' in vhost '/' ...\n"
            out = wt.ctl_ok(srv, "-s", "list_queues", "-q", "name", "messages")
            assert out.count("p1\t0\n") == 1, out
            assert wt.ctl_ok(srv, "-q", "purge_queue", "p1") == ""
            # rabbitmqctl 3.10's report of a command that returned ok, with -q too; csv: none
            node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
            out = wt.ctl_ok(srv, "-q", "purge_queue", "p1", "--formatter", "json")
            assert out == '{"node":"%s","result":"ok"}\n' % node, out
            assert wt.ctl_ok(srv, "purge_queue", "p1", "--formatter", "csv") == ""
            # The same from the other commands rabbitmqctl 3.10 reports so.
            for args in (("add_vhost", "jv"), ("set_vhost_limits", "-p", "jv",
                                               '{"max-queues": 5}'),
                         ("set_permissions", "-p", "jv", "guest", ".*", ".*", ".*"),
                         ("clear_permissions", "-p", "jv", "guest"),
                         ("set_policy", "-p", "jv", "jp", "^x", '{"max-length": 1}'),
                         ("clear_policy", "-p", "jv", "jp"), ("delete_vhost", "jv"),
                         ("set_user_tags", "guest", "administrator"),
                         ("set_log_level", "debug"), ("await_startup",)):
                out = wt.ctl_ok(srv, "--formatter", "json", *args)
                assert out == '{"node":"%s","result":"ok"}\n' % node, (args, out)
            assert wt.ctl_fails(srv, 69, "Error:\nnot_found\n", "--formatter", "json",
                                "purge_queue", "nosuch") == ""
            out = wt.ctl_fails(srv, 69, "Error:\nnot_found\n", "purge_queue", "nosuch")
            assert out == "Purging queue 'nosuch' in vhost '/' ...\n", out
            wt.ctl_fails(srv, 69, "Error:\nnot_found\n", "purge_queue", "-p", "nosuch", "q")

            out = wt.ctl_fails(srv, 64, "Error:\nQueue is not empty\n", "delete_queue", "p2",
                               "--if-empty")
            assert out == "Deleting queue 'p2' on vhost '/' if queue is empty ...\n", out
            out = wt.ctl_fails(srv, 64, "Error:\nQueue is in use\n", "delete_queue", "q2",
                               "--if-unused")
            assert out == "Deleting queue 'q2' on vhost '/' if queue is unused ...\n", out
            out = wt.ctl_fails(srv, 64, "Error:\nQueue is not empty\n", "delete_queue", "p2", "-e",
                               "-u")
            assert out == ("Deleting queue 'p2' on vhost '/' if queue is empty and if queue "
                           "is unused ...\n"), out
            assert wt.ctl_ok(srv, "delete_queue", "p2") == (
                "Deleting queue 'p2' on vhost '/' ...\n"
                "Queue was successfully deleted with 2 ready messages\n")
            assert wt.ctl_ok(srv, "-q", "delete_queue", "p1", "--if-empty") == \
                "Queue was successfully deleted with 0 ready messages\n"
            out = wt.ctl_ok(srv, "--formatter", "json", "delete_queue", "-p", "/", "q2")
            assert json.loads(out) == {
                "message": "Queue was successfully deleted with 0 ready messages"}, out
            out = wt.ctl_fails(srv, 64, "Error:\nQueue not found\n", "delete_queue", "nosuch")
            assert out == "Deleting queue 'nosuch' on vhost '/' ...\n", out
            wt.ctl_fails(srv, 64, "Error:\nQueue not found\n", "-q", "delete_queue", "-p",
                         "nosuch", "q")
            assert "\tq2\t" not in wt.ctl_ok(srv, "list_queues")
        finally:
            s.close()


def closed_reason(conn):
    """The reply text the broker closed conn with (pika raises it on the next I/O)."""
    import pika
    try:
        for _ in range(50):
            conn.process_data_events(0.1)
    except pika.exceptions.ConnectionClosedByBroker as e:
        return e.reply_code, e.reply_text
    return None


@wt.needs_process
def test_close_all_connections():
    """close_all_connections: a vhost's (--limit), another vhost's untouched, --global, the
    reason the client sees."""
    with wt.server() as srv:
        wt.ctl_ok(srv, "add_vhost", "other")
        wt.ctl_ok(srv, "set_permissions", "-p", "other", "guest", ".*", ".*", ".*")
        a, b = wt.pika_connect(srv.addr), wt.pika_connect(srv.addr)
        c = wt.pika_connect(srv.addr, virtual_host="other")
        try:
            out = wt.ctl_ok(srv, "close_all_connections", "--limit", "1", "maintenance")
            assert out == ("Closing 1 connections in vhost /, reason: maintenance...\n"
                           "Closed 1 connections\n"), out
            reasons = [closed_reason(a), closed_reason(b)]
            assert sorted(reasons, key=str) == sorted(
                [None, (320, "CONNECTION_FORCED - maintenance")], key=str), reasons
            assert wt.ctl_ok(srv, "-q", "close_all_connections", "-p", "nosuch", "x") == \
                "Closed 0 connections\n"
            node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
            out = wt.ctl_ok(srv, "close_all_connections", "--global", "--per-connection-delay",
                            "50", "bye")
            assert out.startswith("Closing all connections to node %s (across all vhosts), "
                                  "reason: bye...\nClosed " % node), out
            assert closed_reason(c) == (320, "CONNECTION_FORCED - bye")
            rc, _, err = wt.ctl(srv, "close_all_connections")
            assert rc == 64 and "not enough arguments" in err, err
            rc, _, err = wt.ctl(srv, "close_all_connections", "--limit", "x", "y")
            assert rc == 64, err
        finally:
            for conn in (a, b, c):
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closed by the broker
                    pass


@wt.needs_process
def test_ping_await_startup_health():
    """ping, await_startup (also while the broker starts, and timing out), node_health_check."""
    with wt.server() as srv:
        sock = os.path.join(srv.data_dir, "warren-admin.sock")
        assert wt.ctl_ok(srv, "ping") == (
            "Will ping %s. This only checks that the broker answers its HTTP API. Timeout: "
            "60000 ms.\nPing succeeded\n" % sock)
        assert wt.ctl_ok(srv, "-q", "ping") == "Ping succeeded\n"
        assert json.loads(wt.ctl_ok(srv, "--formatter", "json",
                                    "ping")) == {"message": "Ping succeeded"}
        assert wt.ctl_ok(srv, "await_startup") == ""
        node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
        assert wt.ctl_ok(srv, "node_health_check") == (
            "This command is DEPRECATED and will be removed in a future version.\n"
            "It performs intrusive, opinionated health checks and requires a fully booted "
            "node.\nUse one of the options covered in "
            "https://www.rabbitmq.com/monitoring.html#health-checks instead.\n"
            "Timeout: 70 seconds ...\nChecking health of node %s ...\nHealth check passed\n"
            % node)
        assert wt.ctl_ok(srv, "-q", "node_health_check") == "Health check passed\n"
    # Stopped: ping and await_startup fail with 69.
    rc, out, err = wt.warrenctl("--data-dir", srv.data_dir, "-q", "ping")
    assert rc == 69 and out == "" and "unable to reach the broker" in err, (rc, out, err)
    t0 = time.monotonic()
    rc, out, err = wt.warrenctl("--data-dir", srv.data_dir, "await_startup", "--timeout", "1")
    took = time.monotonic() - t0
    assert rc == 69 and "did not start within 1 seconds" in err, (rc, err)
    assert 0.9 < took < 10, took
    # await_startup started before the broker returns once it answers.
    data_dir = os.path.join(srv.tmp, "later")
    os.makedirs(data_dir)
    p = subprocess.Popen([os.environ["WARRENCTL"], "--data-dir", data_dir, "await_startup",
                          "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert p.poll() is None, "await_startup returned before the broker started"
        with wt.server(args=("--data-dir", data_dir)):
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0 and out == b"" and err == b"", (p.returncode, out, err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@wt.needs_process
def test_environment_and_log_level():
    """environment (secrets redacted), set_log_level / log_level, rotate_logs (the log file
    reopened by name after it was moved)."""
    with wt.server(config={"default_pass": "s3cret", "heartbeat": "17"}, log_level=None) as srv:
        node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
        out = wt.ctl_ok(srv, "environment")
        assert out.startswith("Application environment of node %s ...\n" % node), out
        assert "\nheartbeat = 17\n" in out and "\ndefault_pass = ********\n" in out, out
        assert "s3cret" not in out, out
        assert "\ndata_dir = %s\n" % srv.data_dir in out, out
        env = json.loads(wt.ctl_ok(srv, "--formatter", "json", "environment"))
        assert env["heartbeat"] == "17" and env["default_pass"] == "********", env

        assert wt.ctl_ok(srv, "log_level") == "info\n"
        assert wt.ctl_ok(srv, "set_log_level", "debug") == 'Setting log level to "debug" ...\n'
        assert wt.ctl_ok(srv, "log_level") == "debug\n"
        import pika
        wt.pika_connect(srv.addr, credentials=pika.PlainCredentials("guest", "s3cret")).close()
        assert wt.ctl_ok(srv, "-q", "set_log_level", "warning") == ""
        assert wt.ctl_ok(srv, "log_level") == "warning\n"
        out = wt.ctl_fails(srv, 69, "Error:\nlevel bogus is not supported. Try one of debug, info, "
                           "warning, error, critical, none\n", "set_log_level", "bogus")
        assert out == "", out
        assert wt.ctl_ok(srv, "log_level") == "warning\n"

    tmp_log = os.path.join(os.environ.get("TMPDIR", "/tmp"), "warren-77-%d.log" % os.getpid())
    moved = tmp_log + ".1"
    try:
        with wt.server(config={"log.file": tmp_log, "log.level": "info"}, log_level=None) as srv:
            node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
            os.rename(tmp_log, moved)
            assert wt.ctl_ok(srv, "rotate_logs") == "Rotating logs for node %s ...\n" % node
            with open(tmp_log) as f:
                log = f.read()
            assert "log file reopened" in log, log
    finally:
        for path in (tmp_log, moved):
            if os.path.exists(path):
                os.unlink(path)


@wt.needs_process
def test_report():
    """report: status, the environment, connections and channels, then each vhost's queues,
    exchanges, bindings, permissions and policies, every column."""
    with wt.server() as srv:
        s = Scene(srv)
        try:
            wt.ctl_ok(srv, "add_vhost", "v2")
            out = wt.ctl_ok(srv, "report")
            node = json.loads(wt.ctl_ok(srv, "--formatter", "json", "status"))["node"]
            heads = [line for line in out.splitlines() if line.endswith("...")]
            assert heads == [
                "Reporting server status of node %s ..." % node,
                "Status of node %s ..." % node,
                "Application environment of node %s ..." % node,
                "Listing connections ...",
                "Listing channels ...",
                "Timeout: 60.0 seconds ...",
                "Listing queues for vhost / ...",
                "Listing exchanges for vhost / ...",
                "Listing bindings for vhost /...",
                'Listing permissions for vhost "/" ...',
                'Listing policies for vhost "/" ...',
                "Timeout: 60.0 seconds ...",
                "Listing queues for vhost v2 ...",
                "Listing exchanges for vhost v2 ...",
                "Listing bindings for vhost v2...",
                'Listing permissions for vhost "v2" ...',
                'Listing policies for vhost "v2" ...'], heads
            assert "\n" + "\t".join(CHANNEL_KEYS) + "\n" in out, out
            assert "\n" + "\t".join(QUEUE_KEYS) + "\t" in out, out
            assert "\tctag2\t" in out, out  # q1's exclusive consumer
        finally:
            s.close()


COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc",
                          "bash_completion.d", "warrenctl")


def complete(*words):
    """COMPREPLY of the bash completion for the command line words (the last one being
    completed; words[0] is the warrenctl binary), sorted."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _warrenctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "-c", script, "bash", COMPLETION] + list(words),
                       capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stderr == b"", (words, p.returncode, p.stderr)
    return sorted(w for w in p.stdout.decode().split("\n") if w)


@wt.needs_process
def test_bash_completion():
    """The completion script: command names, options, columns, levels, and vhost and queue
    names from the broker (with the --data-dir typed)."""
    ctlbin = os.environ["WARRENCTL"]
    assert complete(ctlbin, "list_q") == ["list_queues"]
    assert complete(ctlbin, "-q", "purge") == ["purge_queue"]
    assert complete(ctlbin, "delete_") == ["delete_member", "delete_queue", "delete_user",
                                           "delete_vhost"]
    assert complete(ctlbin, "grow", "--errors") == ["--errors-only"]
    assert complete(ctlbin, "help", "close_a") == ["close_all_connections"]
    assert complete(ctlbin, "list_queues", "--if-") == ["--if-empty", "--if-unused"]
    assert complete(ctlbin, "--formatter", "j") == ["json"]
    assert complete(ctlbin, "list_queues", "message_bytes_r") == [
        "message_bytes_ram", "message_bytes_ready"]
    assert complete(ctlbin, "list_channels", "global") == ["global_prefetch_count"]
    assert complete(ctlbin, "set_log_level", "w") == ["warning"]
    with wt.server() as srv:
        wt.ctl_ok(srv, "add_vhost", "prod")
        wt.ctl_ok(srv, "add_vhost", "staging")
        conn = wt.pika_connect(srv.addr)
        try:
            ch = conn.channel()
            for q in ("jobs.a", "jobs.b", "other"):
                ch.queue_declare(q)
            assert complete(ctlbin, "--data-dir", srv.data_dir, "list_queues", "-p", "") == [
                "/", "prod", "staging"]
            assert complete(ctlbin, "--data-dir", srv.data_dir, "purge_queue", "jobs") == [
                "jobs.a", "jobs.b"]
            assert complete(ctlbin, "--data-dir", srv.data_dir, "delete_queue", "-p", "prod",
                            "") == []
        finally:
            conn.close()


if __name__ == "__main__":
    wt.run([test_exchanges_and_bindings, test_channels_and_consumers, test_list_queues_every_key,
            test_purge_and_delete_queue, test_close_all_connections,
            test_ping_await_startup_health, test_environment_and_log_level, test_report,
            test_bash_completion])
