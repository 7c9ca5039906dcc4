"""Users, vhosts and permissions that last: the first start's defaults from the configuration
(default_user, default_pass, default_user_tags.*, default_permissions.*), kept in the store and
not recreated from a changed configuration; kill -9 before and after the first login (whose
hashing rewrites the default user's record); load_definitions with a file exported from
RabbitMQ 3.10.8 (definitions-rabbitmq-3.10.json: rabbitmqctl export_definitions after
add_user, set_user_tags, add_vhost --description --tags --default-queue-type,
set_permissions, set_topic_permissions, clear_password, set_vhost_limits, set_user_limits,
set_policy, and a SHA-512 user made with password_hashing_module =
rabbit_password_hashing_sha512), whose users log in with the passwords they had there; 530
at connection.open for a user without permissions on the vhost (checked against RabbitMQ
3.10.8: same code and text); a definitions file that does not parse stops the start."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "definitions-rabbitmq-3.10.json")
# The passwords the fixture's users were given in RabbitMQ.
PASSWORDS = {"alice": "alice-pass", "bob": "bob pass \u00fc", "carol": "carol-512",
             "guest": "guest"}


def login(addr, user, password, vhost="/"):
    """Opens and closes a pika connection; returns None, or the exception it raised."""
    import pika
    try:
        conn = wt.pika_connect(addr, virtual_host=vhost,
                               credentials=pika.PlainCredentials(user, password))
    except Exception as e:  # noqa: BLE001 - the caller asserts on it
        return e
    conn.channel().close()
    conn.close()
    return None


def assert_login(addr, user, password, vhost="/"):
    e = login(addr, user, password, vhost)
    assert e is None, "%s/%s on %s refused: %r" % (user, password, vhost, e)


def assert_refused(addr, user, password, vhost="/"):
    e = login(addr, user, password, vhost)
    assert e is not None, "%s/%s on %s accepted" % (user, password, vhost)
    return e


@wt.needs_process
def test_defaults_on_first_start_only():
    """the config's defaults are made once; a changed config later changes nothing"""
    config = {"default_user": "admin", "default_pass": "first", "default_vhost": "/prod",
              "default_user_tags.monitoring": "true", "default_permissions.configure": "^x$"}
    with wt.server(config=config) as srv:
        assert_login(srv.addr, "admin", "first", "/prod")
        assert "created vhost '/prod' and user 'admin' with permissions '^x$' '.*' '.*'" in \
            srv.stderr_text()
        srv.config = dict(config, default_user="other", default_pass="second",
                          default_vhost="/dev")
        srv.restart()
        assert_login(srv.addr, "admin", "first", "/prod")
        assert_refused(srv.addr, "admin", "second", "/prod")
        assert_refused(srv.addr, "other", "second", "/prod")
        with wt.RawConn(srv.addr) as c:
            c.handshake("open-sent", user="admin", password="first", vhost="/dev")
            c.expect_connection_close(530, text="NOT_ALLOWED - vhost /dev not found",
                                      ids=wt.CONNECTION_OPEN)
        assert "new database" not in srv.stderr_text().split("Terminated")[-1]


@wt.needs_process
def test_kill_before_and_after_first_login():
    """kill -9 before any login, then after one: the default user logs in each time"""
    with wt.server() as srv:
        srv.restart(hard=True)  # nobody logged in: the password was never hashed
        assert_login(srv.addr, "guest", "guest")
        srv.restart(hard=True)  # hashed by that login, and stored
        assert_login(srv.addr, "guest", "guest")
        assert_refused(srv.addr, "guest", "nope")
        srv.restart()
        assert_login(srv.addr, "guest", "guest")


@wt.needs_process
def test_rabbitmq_export_imports():
    """a RabbitMQ 3.10 export imports as it is and its users log in with their passwords"""
    import pika
    config = {"load_definitions": FIXTURE, "loopback_users": "none"}
    with wt.server(config=config) as srv:
        for restart in (None, "term", "kill"):
            if restart is not None:
                srv.restart(hard=restart == "kill")
            assert_login(srv.addr, "alice", PASSWORDS["alice"], "app")
            assert_login(srv.addr, "carol", PASSWORDS["carol"], "app")  # SHA-512
            assert_login(srv.addr, "guest", "guest", "/")
            assert_refused(srv.addr, "alice", "wrong", "app")
            assert_refused(srv.addr, "nopass", "x", "/")  # clear_password
            # alice has no permissions on "/": 530 as RabbitMQ answers it.
            with wt.RawConn(srv.addr) as c:
                c.handshake("open-sent", user="alice", password=PASSWORDS["alice"], vhost="/")
                c.expect_connection_close(
                    530, text="NOT_ALLOWED - access to vhost '/' refused for user 'alice'",
                    ids=wt.CONNECTION_OPEN)
            # The entities came too: a message routed through the topic exchange lands.
            conn = wt.pika_connect(srv.addr, virtual_host="app",
                                   credentials=pika.PlainCredentials("alice", PASSWORDS["alice"]))
            ch = conn.channel()
            ch.queue_declare("app.orders", passive=True)
            ch.confirm_delivery()
            ch.basic_publish("app.events", "order.new", b"o1",
                             pika.BasicProperties(delivery_mode=2))
            got = None
            for _ in range(50):
                got = ch.basic_get("app.orders", auto_ack=True)
                if got[0] is not None:
                    break
            assert got[0] is not None and got[2] == b"o1", got
            conn.close()
        log = srv.stderr_text()
        # The fixture's policy applies now (38-policies.py tests what it does).
        assert "set policy 'ttl' in vhost 'app'" in log, log[-2000:]
        assert "stored but not applied" not in log, log[-2000:]


def test_bob_utf8_password():
    """a UTF-8 password hashed by RabbitMQ logs in here (bob, 'bob pass \u00fc')"""
    config = {"load_definitions": FIXTURE}
    with wt.server(config=config) as srv:
        # bob has permissions on "/" (all empty patterns) and on app.
        assert_login(srv.addr, "bob", PASSWORDS["bob"], "/")
        assert_login(srv.addr, "bob", PASSWORDS["bob"], "app")


@wt.needs_process
def test_bad_definitions_stop_the_start():
    """a definitions file that does not parse, or names what does not exist, stops the start"""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for text, want in (
                ('{"users": [}', "defs.json:1:12: "),
                ('{"permissions": [{"user": "x", "vhost": "/", "configure": "", "write": "",'
                 ' "read": ""}]}', "defs.json: permissions[0]: permission: no user 'x'")):
            path = os.path.join(tmp, "defs.json")
            with open(path, "w") as f:
                f.write(text)
            conf = os.path.join(tmp, "warren.conf")
            with open(conf, "w") as f:
                f.write("load_definitions = %s\n" % path)
            rc, out, err, _ = wt.run_server_to_exit("--config", conf, "--port", "1",
                                                    data_dir=True)
            assert rc == 1, rc
            assert want in err, err


if __name__ == "__main__":
    wt.run([test_defaults_on_first_start_only, test_kill_before_and_after_first_login,
            test_rabbitmq_export_imports, test_bob_utf8_password,
            test_bad_definitions_stop_the_start])
