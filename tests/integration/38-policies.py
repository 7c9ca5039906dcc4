"""Policies and operator policies: set, listed and cleared with warrenctl (rabbitmqctl's
syntax, banners, tables, error texts and exit codes) and the HTTP API (/api/policies and
/api/operator-policies: RabbitMQ's JSON, status codes, reasons and tag rules), all checked
against Debian's RabbitMQ 3.10.8 with the management plugin; validation errors with
RabbitMQ's texts; definitions carrying operator policies as RabbitMQ's "operator_policy"
parameters; policies lasting across a restart; and a policy acting on live objects: the
alternate exchange a policy gives exchanges, at once when it is set, raised or cleared, for
exchanges declared later, never over an exchange's own argument, and after a restart before
any client has declared anything; and on queues, the policy, operator policy and effective
definition in force, shown by list_queues (rabbitmqctl's, with operator_policy and
effective_policy_definition beyond 3.10's columns) and /api/queues, changing live. (What a
policy's queue limits do is the queue core's, tested with the settings in check_policy and by
the TTL and length tests; here, a policy's max-length trimming a live queue and its overflow
refusing publishes, and its dead-letter-exchange and message-ttl dead-lettering.)"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


LIST_HEADER = "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n"


@wt.needs_process
def test_warrenctl():
    """set_policy, list_policies, clear_policy and the operator-policy commands print what
    rabbitmqctl 3.10.8 prints, refuse what it refuses with its texts, and what they set
    lasts across a restart"""
    with wt.server() as srv:
        out = wt.ctl_ok(srv, "set_policy", "p1", "^q", '{"message-ttl":1000,"max-length":5}',
                        "--priority", "1", "--apply-to", "queues")
        assert out == ('Setting policy "p1" for pattern "^q" to "{"message-ttl":1000,'
                       '"max-length":5}" with priority "1" for vhost "/" ...\n'), out
        wt.ctl_ok(srv, "set_policy", "p2", ".*", '{"expires":10000}')
        listing = ('Listing policies for vhost "/" ...\n' + LIST_HEADER +
                   '/\tp2\t.*\tall\t{"expires":10000}\t0\n'
                   '/\tp1\t^q\tqueues\t{"max-length":5,"message-ttl":1000}\t1\n')
        assert wt.ctl_ok(srv, "list_policies") == listing

        for definition, text in [
                ('{"message-ttl":"foo"}', '<<"foo">> is not a valid message TTL\n'),
                ('{"foo":1}', '[{<<"foo">>,1}] are not recognised policy settings\n'),
                ('{}', "no policy provided\n")]:
            wt.ctl_fails(srv, 69, "Error:\nValidation failed\n\n%s\n" % text,
                         "set_policy", "bad", "^q", definition)
        wt.ctl_fails(srv, 69, 'Error:\nValidation failed\n\npattern should be regular expression '
                     'but is invalid: {"missing )",1}\n\n', "set_policy", "bad", "(",
                     '{"expires":1}')
        wt.ctl_fails(srv, 69, "Error:\nValidation failed\n\n0 is not a valid queue expiry\n"
                     "apply-to 'nope' unrecognised; should be 'queues', 'exchanges' or 'all'\n\n",
                     "set_policy", "bad", "x", '{"expires":0}', "--apply-to", "nope")
        wt.ctl_fails(srv, 69, "Error:\nJSON decoding error. Reason: badarg\n",
                     "set_policy", "bad", "x", "notjson")
        rc, out, err = wt.ctl(srv, "set_policy", "bad", "x", '{"expires":1}', "--priority", "x")
        assert rc == 64 and out == "" and "--priority : x" in err, (rc, out, err)
        wt.ctl_fails(srv, 69, "Error:\nParameter does not exist\n", "clear_policy", "nope")
        wt.ctl_fails(srv, 65, "Virtual host 'nope' does not exist\n", "list_policies", "-p", "nope")
        wt.ctl_fails(srv, 65, "Virtual host 'nope' does not exist\n",
                     "set_policy", "-p", "nope", "x", "y", '{"expires":1}')

        out = wt.ctl_ok(srv, "set_operator_policy", "op1", "^q",
                        '{"message-ttl":500,"max-length":10}', "--priority", "2", "--apply-to",
                        "queues")
        assert out.startswith('Setting operator policy override "op1" for pattern "^q" to '), out
        wt.ctl_fails(srv, 69, 'Error:\nValidation failed\n\n[{<<"dead-letter-exchange">>,<<"x">>}] '
                     "are not recognised policy settings\n\n",
                     "set_operator_policy", "op2", "^q", '{"dead-letter-exchange":"x"}')
        wt.ctl_fails(srv, 69, "Error:\nParameter does not exist\n", "clear_operator_policy", "op9")
        op_listing = ('Listing operator policy overrides for vhost "/" ...\n' + LIST_HEADER +
                      '/\top1\t^q\tqueues\t{"max-length":10,"message-ttl":500}\t2\n')
        assert wt.ctl_ok(srv, "list_operator_policies") == op_listing

        srv.restart()
        assert wt.ctl_ok(srv, "list_policies") == listing
        assert wt.ctl_ok(srv, "list_operator_policies") == op_listing
        assert wt.ctl_ok(srv, "clear_policy", "p2") == 'Clearing policy "p2" on vhost "/" ...\n'
        assert wt.ctl_ok(srv, "clear_operator_policy", "op1") == (
            'Clearing operator policy "op1" on vhost "/" ...\n')
        assert wt.ctl_ok(srv, "-q", "list_operator_policies") == ""
        assert wt.ctl_ok(srv, "-q", "list_policies") == (
            LIST_HEADER + '/\tp1\t^q\tqueues\t{"max-length":5,"message-ttl":1000}\t1\n')


def put_user(srv, name, tags):
    st, _, _ = wt.http(srv, "PUT", "/api/users/" + name, {"password": "pw", "tags": tags})
    assert st == 201, st
    st, _, _ = wt.http(srv, "PUT", "/api/permissions/%2F/" + name,
                       {"configure": ".*", "write": ".*", "read": ".*"})
    assert st == 201, st


@wt.needs_process
def test_http():
    """/api/policies and /api/operator-policies: RabbitMQ 3.10.8's shapes, codes and reasons,
    and its tag rules (lists for every management user, of its vhosts; policymaker to read
    or change one policy, administrator for one operator policy)"""
    with wt.server(mgmt=True) as srv:
        p1 = {"pattern": "^q", "definition": {"max-length": 5, "message-ttl": 1000},
              "priority": 1, "apply-to": "queues"}
        assert wt.http(srv, "PUT", "/api/policies/%2F/p1", p1)[0] == 201
        assert wt.http(srv, "PUT", "/api/policies/%2F/p1", p1)[0] == 204
        assert wt.http(srv, "PUT", "/api/policies/%2F/p5",
                       {"pattern": "^a", "definition": {"max-length": 3}, "priority": 1.5})[0] == 201
        want1 = dict(p1, vhost="/", name="p1")
        want5 = {"vhost": "/", "name": "p5", "pattern": "^a", "apply-to": "all",
                 "definition": {"max-length": 3}, "priority": 1.5}
        assert wt.http(srv, "GET", "/api/policies/%2F/p1")[2] == want1
        assert wt.http(srv, "GET", "/api/policies")[2] == [want1, want5]
        assert wt.http(srv, "GET", "/api/policies/%2F")[2] == [want1, want5]

        def bad(path, body, status, reply):
            st, _, got = wt.http(srv, "PUT", path, body)
            assert (st, got) == (status, reply), (path, body, st, got)

        bad("/api/policies/%2F/p3", {"pattern": "^a", "definition": {"max-length": "x"}}, 400,
            {"error": "bad_request", "reason": "Validation failed\n\n&lt;&lt;\"x\"&gt;&gt; is not"
             " a valid maximum length\n"})
        bad("/api/policies/%2F/p3", {"pattern": "(", "definition": {"max-length": 1, "foo": 2},
                                     "apply-to": "x", "priority": "5"}, 400,
            {"error": "bad_request", "reason": "Validation failed\n\n[{&lt;&lt;\"foo\"&gt;&gt;,2}]"
             " are not recognised policy settings\napply-to 'x' unrecognised; should be "
             "'queues', 'exchanges' or 'all'\npattern should be regular expression but is "
             "invalid: {\"missing )\",1}\npriority should be a number, actually was "
             "&lt;&lt;\"5\"&gt;&gt;\n"})
        bad("/api/policies/%2F/p3", {"pattern": ")", "definition": {"expires": 0}}, 400,
            {"error": "bad_request", "reason": "Validation failed\n\n0 is not a valid queue "
             "expiry\npattern should be regular expression but is invalid: {\"unmatched "
             "parentheses\",\n" + " " * 54 + "0}\n"})
        bad("/api/policies/%2F/p3", {"definition": {"max-length": 3}}, 400,
            {"error": "bad_request", "reason": "[{key_missing,pattern}]"})
        bad("/api/policies/%2F/p3", {"pattern": "^a"}, 400,
            {"error": "bad_request", "reason": "[{key_missing,definition}]"})
        bad("/api/policies/%2F/p3", "garbage", 400, {"error": "bad_request", "reason": "not_json"})
        bad("/api/policies/nope/p3", {"pattern": "^a", "definition": {"max-length": 3}}, 404,
            {"error": "not_found", "reason": "vhost_not_found"})
        not_found = {"error": "Object Not Found", "reason": "Not Found"}
        for path in ["/api/policies/%2F/nope", "/api/policies/nope", "/api/policies/nope/x",
                     "/api/operator-policies/%2F/nope"]:
            assert wt.http(srv, "GET", path)[::2] == (404, not_found), path
        assert wt.http(srv, "DELETE", "/api/policies/%2F/nope")[::2] == (404, not_found)
        assert wt.http(srv, "DELETE", "/api/policies/%2F/p5")[0] == 204
        assert wt.http(srv, "GET", "/api/policies")[2] == [want1]

        op = {"pattern": "^q", "definition": {"max-length": 2, "message-ttl": 5000}, "priority": 3}
        assert wt.http(srv, "PUT", "/api/operator-policies/%2F/op1", op)[0] == 201
        bad("/api/operator-policies/%2F/op2", {"pattern": "^q",
                                               "definition": {"overflow": "drop-head"}}, 400,
            {"error": "bad_request", "reason": "Validation failed\n\n[{&lt;&lt;\"overflow\"&gt;"
             "&gt;,&lt;&lt;\"drop-head\"&gt;&gt;}] are not recognised policy settings\n"})
        want_op = dict(op, vhost="/", name="op1", **{"apply-to": "all"})
        assert wt.http(srv, "GET", "/api/operator-policies")[2] == [want_op]
        assert wt.http(srv, "GET", "/api/operator-policies/%2F/op1")[2] == want_op

        # Definitions: policies, and operator policies among the parameters (RabbitMQ's place).
        defs = wt.http(srv, "GET", "/api/definitions")[2]
        assert defs["policies"] == [dict(p1, vhost="/", name="p1")], defs["policies"]
        assert defs["parameters"] == [{"vhost": "/", "component": "operator_policy",
                                       "name": "op1", "value": {
                                           "pattern": "^q", "apply-to": "all", "priority": 3,
                                           "definition": op["definition"]}}], defs["parameters"]

        # Tags: a policymaker sets policies on its vhosts, not operator policies; a management
        # user only lists.
        put_user(srv, "pm", "policymaker")
        put_user(srv, "mg", "management")
        pm, mg = ("pm", "pw"), ("mg", "pw")
        body = {"pattern": "^z", "definition": {"expires": 5}}
        assert wt.http(srv, "PUT", "/api/policies/%2F/z", body, auth=pm)[0] == 201
        refused = {"error": "not_authorised", "reason": "User not authorised to access object"}
        assert wt.http(srv, "PUT", "/api/policies/%2F/z", body, auth=mg)[::2] == (401, refused)
        assert wt.http(srv, "GET", "/api/policies/%2F/z", auth=mg)[::2] == (401, refused)
        assert len(wt.http(srv, "GET", "/api/policies", auth=mg)[2]) == 2
        not_admin = {"error": "not_authorised", "reason": "Not administrator user"}
        assert wt.http(srv, "PUT", "/api/operator-policies/%2F/z", body, auth=pm)[::2] == (
            401, not_admin)
        assert wt.http(srv, "GET", "/api/operator-policies/%2F/op1", auth=pm)[::2] == (
            401, not_admin)
        assert wt.http(srv, "GET", "/api/operator-policies", auth=mg)[2] == [want_op]
        assert wt.http(srv, "GET", "/api/operator-policies/%2F", auth=mg)[2] == [want_op]


@wt.needs_process
def test_queue_policies():
    """the policy and operator policy in force on each queue, and the definition they make
    together (the lower limit where both set one), shown by list_queues and /api/queues, change
    at once with the policies (priority, replacement, clearing), reach queues declared later,
    and come back after a restart"""
    with wt.server(mgmt=True) as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare("jobs", durable=True, arguments={"x-max-length": 100})
        ch.queue_declare("other", durable=True)
        import pika
        ch.basic_publish("", "jobs", b"j1", pika.BasicProperties(delivery_mode=2))
        cols = ("list_queues", "name", "policy", "operator_policy",
                "effective_policy_definition", "arguments", "messages")
        head = ("Timeout: 60.0 seconds ...\nListing queues for vhost / ...\n"
                "name\tpolicy\toperator_policy\teffective_policy_definition\targuments\t"
                "messages\n")
        other = "other\t\t\t[]\t[]\t0\n"
        assert wt.ctl_ok(srv, *cols) == head + 'jobs\t\t\t[]\t[{"x-max-length",100}]\t1\n' + other

        wt.ctl_ok(srv, "set_policy", "low", "^jo", '{"max-length":10,"dead-letter-exchange":"dlx"}')
        wt.ctl_ok(srv, "set_policy", "high", "^jobs$", '{"max-length":20,"message-ttl":60000}',
                  "--priority", "5")
        wt.ctl_ok(srv, "set_operator_policy", "cap", ".*", '{"max-length":5,"message-ttl":90000}')
        assert wt.ctl_ok(srv, *cols) == head + (
            'jobs\thigh\tcap\t[{"max-length",5},{"message-ttl",60000}]\t'
            '[{"x-max-length",100}]\t1\n'
            'other\t\tcap\t[{"max-length",5},{"message-ttl",90000}]\t[]\t0\n')
        st, _, q = wt.http(srv, "GET", "/api/queues/%2F/jobs")
        assert st == 200 and {k: q[k] for k in (
            "name", "vhost", "type", "durable", "policy", "operator_policy",
            "effective_policy_definition", "arguments", "messages", "messages_ready")} == {
                "name": "jobs", "vhost": "/", "type": "classic", "durable": True,
                "policy": "high", "operator_policy": "cap",
                "effective_policy_definition": {"max-length": 5, "message-ttl": 60000},
                "arguments": {"x-max-length": 100}, "messages": 1, "messages_ready": 1}, q
        assert [q["name"] for q in wt.http(srv, "GET", "/api/queues")[2]] == ["jobs", "other"]
        assert wt.http(srv, "GET", "/api/queues/%2F/nope")[0] == 404
        assert wt.http(srv, "GET", "/api/queues/nope")[0] == 404

        # Live: the higher policy goes, the lower one takes over; a later queue gets them.
        wt.ctl_ok(srv, "clear_policy", "high")
        wt.ctl_ok(srv, "clear_operator_policy", "cap")
        ch.queue_declare("jobs2", durable=True)
        assert wt.ctl_ok(srv, "-q", "list_queues", "name", "policy",
                         "effective_policy_definition") == (
            "name\tpolicy\teffective_policy_definition\n"
            'jobs\tlow\t[{"dead-letter-exchange","dlx"},{"max-length",10}]\n'
            'jobs2\tlow\t[{"dead-letter-exchange","dlx"},{"max-length",10}]\n'
            "other\t\t[]\n")
        conn.close()

        srv.restart()
        q = wt.http(srv, "GET", "/api/queues/%2F/jobs")[2]
        assert (q["policy"], q["effective_policy_definition"], q["messages"]) == (
            "low", {"dead-letter-exchange": "dlx", "max-length": 10}, 1), q
        rc, out, err = wt.ctl(srv, "list_queues", "name", "effective_policy")
        assert rc == 64 and "Info key(s) effective_policy are not supported" in err, (rc, err)


@wt.needs_process
def test_max_length_live():
    """a policy's max-length trims a live queue at once, from its head (drop-head), and its
    overflow reject-publish refuses confirmed publishes to a queue declared later; clearing it
    lifts the limit"""
    import pika
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        wt.fresh_queue(ch, "jobs")
        wt.publish_confirmed(ch, "jobs", 10)
        wt.ctl_ok(srv, "set_policy", "cap", "^jobs", '{"max-length":3}')
        assert ch.queue_declare("jobs", passive=True).method.message_count == 3
        assert wt.drain(ch, "jobs") == [b"m7", b"m8", b"m9"]
        wt.ctl_ok(srv, "set_policy", "cap", "^jobs", '{"max-length":1,"overflow":"reject-publish"}')
        wt.fresh_queue(ch, "jobs.later")
        ch.basic_publish("", "jobs.later", b"first")
        try:
            ch.basic_publish("", "jobs.later", b"second")
            raise AssertionError("a publish over a policy's max-length was confirmed")
        except pika.exceptions.NackError:
            pass
        wt.ctl_ok(srv, "clear_policy", "cap")
        ch.basic_publish("", "jobs.later", b"third")
        assert wt.drain(ch, "jobs.later") == [b"first", b"third"]
        conn.close()


@wt.needs_process
def test_dead_lettering_live():
    """a policy's dead-letter-exchange dead-letters a live queue's rejected messages at once,
    not over a queue's own x-dead-letter-exchange, and no more once cleared; its message-ttl
    expires new messages into it"""
    import time
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = wt.confirm_channel(conn)
        for x, q in [("dlx", "dead"), ("dlx2", "dead2")]:
            ch.exchange_declare(x, "fanout")
            wt.fresh_queue(ch, q)
            ch.queue_bind(q, x)
        wt.fresh_queue(ch, "work")
        wt.fresh_queue(ch, "work.own", arguments={"x-dead-letter-exchange": "dlx2"})

        def reject_one(queue, body):
            ch.basic_publish("", queue, body)
            m, _, got = ch.basic_get(queue)
            assert got == body, (queue, got)
            ch.basic_reject(m.delivery_tag, requeue=False)

        wt.ctl_ok(srv, "set_policy", "dl", "^work", '{"dead-letter-exchange":"dlx"}')
        reject_one("work", b"r1")
        reject_one("work.own", b"r2")
        m, props, body = ch.basic_get("dead", auto_ack=True)
        assert body == b"r1", body
        death = props.headers["x-death"][0]
        assert (death["queue"], death["reason"]) == ("work", "rejected"), death
        assert wt.drain(ch, "dead2") == [b"r2"]

        wt.ctl_ok(srv, "set_policy", "dl", "^work$",
                  '{"dead-letter-exchange":"dlx","message-ttl":50}')
        ch.basic_publish("", "work", b"t1")
        wt.wait_until(lambda: ch.queue_declare("dead", passive=True).method.message_count == 1,
                      5, "the expired message dead-lettered", conns=[conn])
        m, props, body = ch.basic_get("dead", auto_ack=True)
        assert body == b"t1" and props.headers["x-death"][0]["reason"] == "expired", (body, props)

        wt.ctl_ok(srv, "clear_policy", "dl")
        reject_one("work", b"r3")
        time.sleep(0.2)
        assert wt.drain(ch, "dead") == []
        conn.close()


def publish_lands(ch, exchange, queues):
    """Publishes one message (mandatory, confirmed) to exchange with an unbound routing key and
    returns the name of the queue of queues it landed in, or None when it came back
    unroutable."""
    import pika
    body = os.urandom(8).hex().encode()
    try:
        ch.basic_publish(exchange, "nowhere", body, mandatory=True)
    except pika.exceptions.UnroutableError:
        return None
    for q in queues:
        m = ch.basic_get(q, auto_ack=True)
        if m[0] is not None:
            assert m[2] == body, (q, m)
            return q
    raise AssertionError("routed to none of %s" % (queues,))


@wt.needs_process
def test_alternate_exchange_live():
    """a policy's alternate-exchange takes effect at once on existing exchanges, yields to a
    higher-priority policy and to an exchange's own argument, reaches exchanges declared
    later, goes when cleared, and applies after a restart before any client declares"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.confirm_delivery()
        for x, q in [("alt", "lost"), ("alt2", "lost2"), ("own-alt", "own-lost")]:
            ch.exchange_declare(x, "fanout", durable=True)
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, x)
        ch.exchange_declare("orders", "direct", durable=True)
        ch.exchange_declare("own", "direct", durable=True,
                            arguments={"alternate-exchange": "own-alt"})
        lost = ["lost", "lost2", "own-lost"]
        assert publish_lands(ch, "orders", lost) is None

        wt.ctl_ok(srv, "set_policy", "ae", "^(orders|own|late)$", '{"alternate-exchange":"alt"}',
                  "--apply-to", "exchanges")
        assert publish_lands(ch, "orders", lost) == "lost"
        assert publish_lands(ch, "own", lost) == "own-lost"  # the argument wins
        wt.ctl_ok(srv, "set_policy", "ae2", "^orders$", '{"alternate-exchange":"alt2"}',
                  "--priority", "5")
        assert publish_lands(ch, "orders", lost) == "lost2"
        ch.exchange_declare("late", "topic")
        assert publish_lands(ch, "late", lost) == "lost"
        # A policy for queues only does not reach exchanges.
        wt.ctl_ok(srv, "set_policy", "ae2", "^orders$", '{"alternate-exchange":"alt2"}',
                  "--priority", "5", "--apply-to", "queues")
        assert publish_lands(ch, "orders", lost) == "lost"
        conn.close()

        srv.restart()
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.confirm_delivery()
        assert publish_lands(ch, "orders", lost) == "lost"
        wt.ctl_ok(srv, "clear_policy", "ae")
        assert publish_lands(ch, "orders", lost) is None
        conn.close()


if __name__ == "__main__":
    wt.run([test_warrenctl, test_http, test_queue_policies, test_max_length_live,
            test_dead_lettering_live, test_alternate_exchange_live])
