"""warrenctl against warren-server: every command over the Unix socket <data_dir>/warren-admin.sock
(no password), and over TCP with basic auth (--host, --port, --username, --password), with
rabbitmqctl's output and exit codes, checked against rabbitmqctl 3.10.8 on RabbitMQ with the
management plugin (the same banners, headers, rows and error texts; see man/warrenctl.8 for
where Warren's differ). What each command changes is checked through AMQP too: logins with
changed passwords, permissions and limits refusing with RabbitMQ's codes, a closed
connection's reason, definitions exported from one broker and imported into another."""

import json
import os
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


def login(srv, user, password, vhost="/"):
    """None when user/password opens vhost, else the exception."""
    import pika
    try:
        conn = wt.pika_connect(srv.addr, virtual_host=vhost,
                               credentials=pika.PlainCredentials(user, password))
    except Exception as e:  # noqa: BLE001 - the caller asserts on it
        return e
    conn.close()
    return None


@wt.needs_process
def test_socket():
    """The socket is in the data directory, mode 0600; warrenctl finds it from --config as
    warren-server finds its data directory."""
    with wt.server() as srv:
        path = os.path.join(srv.data_dir, "warren-admin.sock")
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        conf = os.path.join(srv.tmp, "ctl.conf")
        with open(conf, "w") as f:
            f.write("data_dir = %s\n" % srv.data_dir)
        rc, out, err = wt.warrenctl("--config", conf, "-s", "list_vhosts")
        assert (rc, out) == (0, "/\n"), (rc, out, err)
    # The broker stopped: nothing listens there any more.
    rc, out, err = wt.warrenctl("--data-dir", srv.data_dir, "list_users")
    assert rc == 69 and path in err, (rc, err)


@wt.needs_process
def test_users():
    """add_user, list_users in every format, authenticate_user, set_user_tags,
    change_password, clear_password, delete_user, and their errors."""
    with wt.server() as srv:
        out = wt.ctl_ok(srv, "add_user", "alice", "pw1")
        assert out == ('Adding user "alice" ...\nDone. Don\'t forget to grant the user '
                       "permissions to some virtual hosts! See 'warrenctl help set_permissions' "
                       "to learn more.\n"), out
        out = wt.ctl_fails(srv, 70, 'Error:\nUser "alice" already exists\n', "add_user", "alice",
                           "x")
        assert out == 'Adding user "alice" ...\n', out
        assert wt.ctl_ok(srv, "-q", "add_user", "bob", stdin=b"bob pass\n") == ""
        assert wt.ctl_ok(srv, "list_users") == ("Listing users ...\nuser\ttags\nalice\t[]\n"
                                                "bob\t[]\nguest\t[administrator]\n")
        assert wt.ctl_ok(srv, "-q", "list_users") == \
            "user\ttags\nalice\t[]\nbob\t[]\nguest\t[administrator]\n"
        assert wt.ctl_ok(srv, "-s", "list_users") == "alice\t[]\nbob\t[]\nguest\t[administrator]\n"
        assert wt.ctl_ok(srv, "list_users", "--formatter", "json") == (
            '[\n{"user":"alice","tags":[]}\n,{"user":"bob","tags":[]}\n'
            ',{"user":"guest","tags":["administrator"]}\n]\n')
        assert wt.ctl_ok(srv, "-q", "list_users", "--formatter", "csv") == (
            '"user","tags"\n"alice","[]"\n"bob","[]"\n"guest","[administrator]"\n')

        assert wt.ctl_ok(srv, "authenticate_user", "bob", "bob pass") == \
            'Authenticating user "bob" ...\nSuccess\n'
        assert wt.ctl_ok(srv, "-s", "authenticate_user", "bob", "bob pass") == "Success\n"
        assert wt.ctl_ok(srv, "authenticate_user", "bob", "bob pass", "--formatter", "json") == \
            '{"message":"Success"}\n'
        for user, pw in (("bob", "wrong"), ("nobody", "x")):
            wt.ctl_fails(srv, 65, 'Error:\nError: failed to authenticate user "%s"\nuser \'%s\' - '
                         'invalid credentials\n' % (user, user), "authenticate_user", user, pw)

        assert wt.ctl_ok(srv, "set_user_tags", "alice", "administrator", "monitoring") == \
            'Setting tags for user "alice" to [administrator, monitoring] ...\n'
        assert "alice\t[administrator, monitoring]\n" in wt.ctl_ok(srv, "-q", "list_users")
        wt.ctl_ok(srv, "authenticate_user", "alice", "pw1")  # tags leave the password alone
        wt.ctl_fails(srv, 67, 'Error:\nUser "nobody" does not exist\n', "set_user_tags", "nobody",
                     "x")
        wt.ctl_ok(srv, "set_user_tags", "alice")
        assert "alice\t[]\n" in wt.ctl_ok(srv, "-q", "list_users")

        wt.ctl_ok(srv, "set_permissions", "alice", ".*", ".*", ".*")
        assert login(srv, "alice", "pw1") is None
        assert wt.ctl_ok(srv, "change_password", "alice", "pw2") == \
            'Changing password for user "alice" ...\n'
        assert login(srv, "alice", "pw1") is not None
        assert login(srv, "alice", "pw2") is None
        wt.ctl_fails(srv, 67, 'Error:\nUser "nobody" does not exist\n', "change_password",
                     "nobody", "x")
        assert wt.ctl_ok(srv, "clear_password", "alice") == \
            'Clearing password for user "alice" ...\n'
        assert login(srv, "alice", "pw2") is not None
        wt.ctl_fails(srv, 65,
                     'Error:\nError: failed to authenticate user "alice"\nuser \'alice\' - '
                     'invalid credentials\n', "authenticate_user", "alice", "pw2")
        wt.ctl_fails(srv, 67, 'Error:\nUser "nobody" does not exist\n', "clear_password", "nobody")

        assert wt.ctl_ok(srv, "delete_user", "alice") == 'Deleting user "alice" ...\n'
        wt.ctl_fails(srv, 67, 'Error:\nUser "alice" does not exist\n', "delete_user", "alice")
        assert wt.ctl_ok(srv, "-s", "list_users") == "bob\t[]\nguest\t[administrator]\n"
        wt.ctl_fails(srv, 65, "Error:\nPassword is not provided via argument or stdin\n",
                     "add_user", "carol")


@wt.needs_process
def test_vhosts_and_permissions():
    """add_vhost, list_vhosts with columns, delete_vhost; set/clear/list_permissions,
    list_user_permissions, set/clear/list_topic_permissions; each refusal as rabbitmqctl's."""
    with wt.server() as srv:
        wt.ctl_ok(srv, "add_user", "app", "pw")
        assert wt.ctl_ok(srv, "add_vhost", "v1") == 'Adding vhost "v1" ...\n'
        wt.ctl_ok(srv, "add_vhost", "v1")  # again: nothing changes, as in RabbitMQ
        wt.ctl_ok(srv, "add_vhost", "v2", "--description", "my vhost", "--tags", "a,b",
                  "--default-queue-type", "quorum")
        assert wt.ctl_ok(srv, "list_vhosts") == "Listing vhosts ...\nname\n/\nv1\nv2\n"
        out = wt.ctl_ok(srv, "-q", "list_vhosts", "name", "description", "tags",
                        "default_queue_type", "tracing")
        assert out.split("\n")[0] == "name\tdescription\ttags\tdefault_queue_type\ttracing", out
        assert "\nv2\tmy vhost\t[a, b]\tquorum\tfalse\n" in out, out
        assert wt.ctl_ok(srv, "list_vhosts", "name", "tracing", "--formatter", "json") == (
            '[\n{"name":"/","tracing":false}\n,{"name":"v1","tracing":false}\n'
            ',{"name":"v2","tracing":false}\n]\n')
        rc, out, err = wt.ctl(srv, "list_vhosts", "bogus")
        assert rc == 64 and "Info key(s) bogus are not supported" in err, (rc, err)

        assert wt.ctl_ok(srv, "set_permissions", "-p", "v1", "app", "^app\\.", "", ".*") == \
            'Setting permissions for user "app" in vhost "v1" ...\n'
        wt.ctl_fails(srv, 69, "Error:\nVirtual host nov does not exist\n", "set_permissions", "-p",
                     "nov", "app", ".*", ".*", ".*")
        wt.ctl_fails(srv, 67, "Error:\nUser nobody does not exist\n", "set_permissions", "-p", "v1",
                     "nobody", ".*", ".*", ".*")
        rc, out, err = wt.ctl(srv, "set_permissions", "-p", "v1", "app", "(", "", "")
        assert rc == 69 and err.startswith("Error:\n"), (rc, err)
        assert wt.ctl_ok(srv, "list_permissions", "-p", "v1") == (
            'Listing permissions for vhost "v1" ...\nuser\tconfigure\twrite\tread\n'
            "app\t^app\\.\t\t.*\n")
        assert wt.ctl_ok(srv, "list_permissions", "--formatter", "json") == (
            '[\n{"user":"guest","configure":".*","write":".*","read":".*"}\n]\n')
        wt.ctl_fails(srv, 65, "Virtual host 'nov' does not exist\n", "list_permissions", "-p",
                     "nov")
        assert wt.ctl_ok(srv, "list_user_permissions", "app") == (
            'Listing permissions for user "app" ...\nvhost\tconfigure\twrite\tread\n'
            "v1\t^app\\.\t\t.*\n")
        wt.ctl_fails(srv, 69, 'Error:\n{:no_such_user, "nobody"}\n', "list_user_permissions",
                     "nobody")

        # The permissions apply: app may declare app.* in v1, not anything else.
        import pika
        conn = wt.pika_connect(srv.addr, virtual_host="v1",
                               credentials=pika.PlainCredentials("app", "pw"))
        ch = conn.channel()
        ch.queue_declare("app.q")
        try:
            ch.queue_declare("other")
            raise AssertionError("declared a queue without configure permission")
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 403, e
        conn.close()

        assert wt.ctl_ok(srv, "set_topic_permissions", "-p", "v1", "app", "amq.topic", "^a",
                         "^b") == \
            'Setting topic permissions on "amq.topic" for user "app" in vhost "v1" ...\n'
        wt.ctl_ok(srv, "set_topic_permissions", "-p", "v1", "app", "amq.direct", "^c", "^d")
        wt.ctl_fails(srv, 69, "Error:\nVirtual host nov does not exist\n", "set_topic_permissions",
                     "-p", "nov", "app", "amq.topic", "", "")
        wt.ctl_fails(srv, 67, "Error:\nUser nobody does not exist\n", "set_topic_permissions", "-p",
                     "v1", "nobody", "amq.topic", "", "")
        out = wt.ctl_ok(srv, "list_topic_permissions", "-p", "v1")
        assert out.startswith('Listing topic permissions for vhost "v1" ...\n'
                              "user\texchange\twrite\tread\n"), out
        assert sorted(out.split("\n")[2:-1]) == ["app\tamq.direct\t^c\t^d",
                                                 "app\tamq.topic\t^a\t^b"], out
        assert wt.ctl_ok(srv, "clear_topic_permissions", "-p", "v1", "app", "amq.topic") == (
            'Clearing topic permissions on "amq.topic" for user "app" in vhost "v1" ...\n')
        assert wt.ctl_ok(srv, "-s", "list_topic_permissions", "-p", "v1") == \
            "app\tamq.direct\t^c\t^d\n"
        assert wt.ctl_ok(srv, "clear_topic_permissions", "-p", "v1", "app") == (
            'Clearing topic permissions for user "app" in vhost "v1" ...\n')
        assert wt.ctl_ok(srv, "list_topic_permissions", "-p", "v1") == \
            'Listing topic permissions for vhost "v1" ...\n'
        wt.ctl_fails(srv, 67, "Error:\nUser nobody does not exist\n", "clear_topic_permissions",
                     "-p", "v1", "nobody")

        assert wt.ctl_ok(srv, "clear_permissions", "-p", "v1", "app") == \
            'Clearing permissions for user "app" in vhost "v1" ...\n'
        assert wt.ctl_ok(srv, "-s", "list_permissions", "-p", "v1") == ""
        e = login(srv, "app", "pw", "v1")
        assert e is not None and "530" in str(e), e
        wt.ctl_fails(srv, 67, "Error:\nUser nobody does not exist\n", "clear_permissions", "-p",
                     "v1", "nobody")

        assert wt.ctl_ok(srv, "delete_vhost", "v2") == 'Deleting vhost "v2" ...\n'
        wt.ctl_fails(srv, 65, "Virtual host 'v2' does not exist\n", "delete_vhost", "v2")
        assert wt.ctl_ok(srv, "-s", "list_vhosts") == "/\nv1\n"


def refused_code(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - pika words refusals in several ways
        return str(e)
    raise AssertionError("not refused")


@wt.needs_process
def test_limits():
    """set_vhost_limits and set_user_limits replace the limits, which apply to new
    connections and channels; bad definitions are refused as rabbitmqctl refuses them."""
    import pika
    with wt.server() as srv:
        assert wt.ctl_ok(srv, "set_vhost_limits", '{"max-connections": 1}') == \
            'Setting vhost limits to "{"max-connections": 1}" for vhost "/" ...\n'
        c1 = wt.pika_connect(srv.addr)
        text = refused_code(lambda: wt.pika_connect(srv.addr))
        assert "530" in text and "connection limit (1) is reached" in text, text
        wt.ctl_ok(srv, "-q", "set_vhost_limits", '{"max-connections": -1}')
        wt.pika_connect(srv.addr).close()
        c1.close()
        wt.ctl_ok(srv, "-q", "set_vhost_limits", '{"max-queues": 1}')
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("lim0", auto_delete=True)
        text = refused_code(lambda: ch.queue_declare("lim1"))
        assert "406" in text and "queue limit" in text, text
        conn.close()
        # The definition replaces the old one: max-queues goes.
        wt.ctl_ok(srv, "-q", "set_vhost_limits", '{"max-connections": 5}')
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("lim0", auto_delete=True)
        ch.queue_declare("lim1", auto_delete=True)
        conn.close()

        wt.ctl_fails(srv, 69,
                     "Error:\nValidation failed\n\nUnrecognised terms [{<<\"bogus\">>,10}] in "
                     "limits\n\n", "set_vhost_limits", '{"bogus": 10}')
        rc, out, err = wt.ctl(srv, "set_vhost_limits", "notjson")
        assert rc == 69 and err.startswith("Error:\nJSON decoding error."), (rc, err)
        wt.ctl_fails(srv, 65, "Virtual host 'nov' does not exist\n", "set_vhost_limits", "-p",
                     "nov", '{"max-connections": 1}')

        wt.ctl_ok(srv, "add_user", "u", "pw")
        wt.ctl_ok(srv, "set_permissions", "u", ".*", ".*", ".*")
        assert wt.ctl_ok(srv, "set_user_limits", "u", '{"max-channels": 1}') == \
            'Setting user limits to "{"max-channels": 1}" for user "u" ...\n'
        conn = wt.pika_connect(srv.addr, credentials=pika.PlainCredentials("u", "pw"))
        conn.channel()
        text = refused_code(conn.channel)
        assert "530" in text, text
        wt.ctl_ok(srv, "-q", "set_user_limits", "u", '{"max-channels": -1}')
        conn = wt.pika_connect(srv.addr, credentials=pika.PlainCredentials("u", "pw"))
        conn.channel()
        conn.channel()
        conn.close()
        wt.ctl_fails(srv, 69, 'Error:\n{:no_such_user, "nobody"}\n', "set_user_limits", "nobody",
                     '{"max-connections": 1}')
        wt.ctl_fails(srv, 69, 'Error:\nmax-connections should be a number, actually was "x"\n',
                     "set_user_limits", "u", '{"max-connections": "x"}')
        wt.ctl_fails(srv, 69,
                     "Error:\nValidation failed\n\nUnrecognised terms [{<<\"max-foo\">>,1}] in "
                     "user-limits\n\n", "set_user_limits", "u", '{"max-foo": 1}')


@wt.needs_process
def test_definitions():
    """export_definitions to a file and to stdout; import_definitions into another broker,
    where the users log in with the same passwords."""
    tmp = tempfile.mkdtemp(prefix="warrenctl-defs-")
    path = os.path.join(tmp, "defs.json")
    try:
        with wt.server() as srv:
            wt.ctl_ok(srv, "add_user", "dora", "dora pw")
            wt.ctl_ok(srv, "add_vhost", "dv")
            wt.ctl_ok(srv, "set_permissions", "-p", "dv", "dora", ".*", ".*", ".*")
            assert wt.ctl_ok(srv, "export_definitions", path) == \
                'Exporting definitions in JSON to a file at "%s" ...\n' % path
            out = wt.ctl_ok(srv, "-q", "export_definitions", "-")
            for defs in (json.load(open(path)), json.loads(out)):
                assert "dora" in [u["name"] for u in defs["users"]], defs
                assert {"user": "dora", "vhost": "dv", "configure": ".*", "write": ".*",
                        "read": ".*"} in defs["permissions"], defs
        with wt.server() as srv:
            assert login(srv, "dora", "dora pw", "dv") is not None
            assert wt.ctl_ok(srv, "import_definitions", path) == \
                'Importing definitions in JSON from a file at "%s" ...\n' % path
            assert login(srv, "dora", "dora pw", "dv") is None
            wt.ctl_ok(srv, "delete_user", "dora")
            with open(path, "rb") as f:
                assert wt.ctl_ok(srv, "import_definitions", "-", stdin=f.read()) == \
                    "Importing definitions in JSON from standard input ...\n"
            assert login(srv, "dora", "dora pw", "dv") is None
            with open(path, "w") as f:
                f.write("{not json")
            rc, out, err = wt.ctl(srv, "import_definitions", path)
            assert rc == 65 and "is not a JSON object" in err, (rc, err)
            rc, out, err = wt.ctl(srv, "export_definitions", os.path.join(tmp, "no", "such.json"))
            assert rc == 73, (rc, err)
    finally:
        wt.cleanup_dir(tmp)


@wt.needs_process
def test_status_and_connections():
    """status; list_connections with its default and chosen columns; close_connection with
    a reason the client receives as 320 CONNECTION_FORCED."""
    import pika
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr, client_properties={"connection_name": "mine"})
        out = wt.ctl_ok(srv, "status")
        assert out.startswith("Status of node "), out
        for line in ("Connection count: 1\n", "Virtual host count: 1\n",
                     "port: %d, protocol: amqp, purpose: AMQP 0-9-1\n" % srv.addr[1]):
            assert line in out, (line, out)
        st = json.loads(wt.ctl_ok(srv, "status", "--formatter", "json"))
        assert st["totals"]["connection_count"] == 1, st
        port = conn._impl._transport._sock.getsockname()[1]  # the client's end
        out = wt.ctl_ok(srv, "list_connections")
        assert out == ("Listing connections ...\nuser\tpeer_host\tpeer_port\tstate\n"
                       "guest\t127.0.0.1\t%d\trunning\n" % port), out
        name = "127.0.0.1:%d -> 127.0.0.1:%d" % (port, srv.addr[1])
        assert wt.ctl_ok(srv, "-s", "list_connections", "pid", "name", "vhost") == \
            "%s\t%s\t/\n" % (name, name)
        out = wt.ctl_ok(srv, "list_connections", "name", "client_properties", "--formatter", "json")
        rows = json.loads(out)
        assert rows[0]["name"] == name, rows
        assert rows[0]["client_properties"]["connection_name"] == "mine", rows
        assert wt.ctl_ok(srv, "close_connection", name, "maintenance") == \
            "Closing connection %s, reason: maintenance...\n" % name
        try:
            conn.process_data_events(time_limit=5)
            raise AssertionError("still open")
        except pika.exceptions.ConnectionClosedByBroker as e:
            assert (e.reply_code, e.reply_text) == (320, "CONNECTION_FORCED - maintenance"), e
        wt.wait_until(lambda: wt.ctl_ok(srv, "-s", "list_connections") == "", 5, "connection gone")
        # Gone already: not an error, as in rabbitmqctl.
        wt.ctl_ok(srv, "close_connection", name, "again")


@wt.needs_process
def test_remote():
    """--host and --port with basic auth: the administrator works; a wrong password and a
    user without the administrator tag get the API's refusal (exit 69)."""
    with wt.server(mgmt=True) as srv:
        remote = ("--host", "127.0.0.1", "--port", str(srv.mgmt_port))
        rc, out, err = wt.warrenctl(*remote, "--username", "guest", "--password", "guest",
                                    "list_users")
        assert (rc, out) == (0, "Listing users ...\nuser\ttags\nguest\t[administrator]\n"), \
            (rc, out, err)
        rc, out, err = wt.warrenctl(*remote, "add_user", "mon", "pw",
                                    env={"WARRENCTL_PASSWORD": "guest"})
        assert rc == 0, err
        rc, out, err = wt.warrenctl(*remote, "--password", "bad", "list_users")
        assert (rc, err) == (69, "Error:\nLogin failed\n"), (rc, err)
        wt.warrenctl(*remote, "set_user_tags", "mon", "monitoring")
        rc, out, err = wt.warrenctl(*remote, "--username", "mon", "--password", "pw",
                                    "list_users")
        assert rc == 69 and err.startswith("Error:\n"), (rc, err)
        rc, out, err = wt.warrenctl(*remote, "--username", "mon", "--password", "pw", "-s",
                                    "list_vhosts")
        assert (rc, out) == (0, "/\n"), (rc, out, err)


@wt.needs_process
def test_remote_https():
    """--tls (or --cacert) on management.ssl.port: the broker's certificate is verified
    against --cacert and the --host name; a name it does not hold, or a CA that did not sign
    it, is refused (exit 69) before any credential is sent."""
    import pki
    p = pki.Pki()
    try:
        port = wt.free_port()
        config = {"management.ssl.port": port,
                  "management.ssl.certfile": p.server[0],
                  "management.ssl.keyfile": p.server[1]}
        cacert = p.ca[0]
        with wt.server(mgmt=True, config=config) as srv:
            for host in ("localhost", "127.0.0.1"):
                rc, out, err = wt.warrenctl("--host", host, "--port", str(port), "--cacert",
                                            cacert, "-s", "list_users")
                assert (rc, out) == (0, "guest\t[administrator]\n"), (host, rc, out, err)
            rc, out, err = wt.warrenctl("--host", "127.0.0.1", "--port", str(port), "--tls",
                                        "--cacert", p.other_ca[0], "list_users")
            assert rc == 69 and "certificate is refused" in err, (rc, err)
            rc, out, err = wt.warrenctl("--host", "127.0.0.2", "--port", str(port), "--cacert",
                                        cacert, "list_users")
            assert rc == 69 and "certificate is refused" in err, (rc, err)
            rc, out, err = wt.warrenctl("--host", "127.0.0.1", "--port", str(port), "--tls",
                                        "list_users")  # the test CA is not the system's
            assert rc == 69 and "certificate is refused" in err, (rc, err)
            # TLS to the plain HTTP port: a clean error.
            rc, out, err = wt.warrenctl("--host", "127.0.0.1", "--port", str(srv.mgmt_port),
                                        "--cacert", cacert, "list_users")
            assert rc == 69 and err.startswith("Error: "), (rc, err)
            rc, out, err = wt.warrenctl("--tls", "list_users")
            assert rc == 64 and "--host" in err, (rc, err)
    finally:
        p.close()


if __name__ == "__main__":
    wt.run([test_socket, test_users, test_vhosts_and_permissions, test_limits,
            test_definitions, test_status_and_connections, test_remote, test_remote_https])
