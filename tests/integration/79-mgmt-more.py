"""The management HTTP API's remaining routes that RabbitMQ's tools call, as RabbitMQ 3.10
answers them (src/mgmt/api.c, api_stats.c, api_params.c): a vhost's connections (404 for a
missing vhost, a management user sees its own), a connection's channels, /api/extensions;
runtime parameters (Warren has vhost-limits and operator_policy; any other component is
refused as RabbitMQ refuses one whose plugin is not enabled), global parameters and the
cluster name (a global parameter that /api/overview and new connections' connection.start
show), with RabbitMQ's status codes, errors and tags. Global parameters are durable and go
through a definitions export and import. The tests but the restart pass against RabbitMQ
3.10 with its management plugin too: WARREN_TEST_ADDR=127.0.0.1:5672
WARREN_TEST_MGMT_PORT=15672 (guest allowed from loopback)."""

import os
import sys
import urllib.parse

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

http = wt.http
VH = "mgmt-more"
ALL = {"configure": ".*", "write": ".*", "read": ".*"}
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}


def call(srv, method, path, body=None, status=200, auth=("guest", "guest")):
    st, _, got = http(srv, method, path, body, auth=auth)
    assert st in (status if isinstance(status, tuple) else (status,)), (method, path, st, got)
    return got


class Fixture:
    """VH with guest allowed everything, and users mm-<tag> (password "p", the tag, allowed
    everything in VH); all deleted after."""

    TAGS = ("management", "policymaker", "monitoring")

    def __init__(self, srv):
        self.srv = srv

    def __enter__(self):
        made = (201, 204)  # RabbitMQ deletes a vhost in the background: it may be there still
        call(self.srv, "PUT", "/api/vhosts/" + VH, {}, status=made)
        call(self.srv, "PUT", "/api/permissions/%s/guest" % VH, ALL, status=made)
        for tag in self.TAGS:
            call(self.srv, "PUT", "/api/users/mm-" + tag, {"password": "p", "tags": tag},
                 status=made)
            call(self.srv, "PUT", "/api/permissions/%s/mm-%s" % (VH, tag), ALL, status=made)
        return self

    def __exit__(self, *exc):
        for tag in self.TAGS:
            http(self.srv, "DELETE", "/api/users/mm-" + tag)
        http(self.srv, "DELETE", "/api/vhosts/" + VH)


def as_user(tag):
    return ("mm-" + tag, "p")


def test_vhost_connections_and_channels():
    """GET /api/vhosts/{vhost}/connections (a management user sees its own; 404 for a missing
    vhost), GET /api/connections/{name}/channels, GET /api/extensions"""
    with wt.server(mgmt=True) as srv, Fixture(srv):
        guest = wt.pika_connect(srv.addr, virtual_host=VH)
        guest.channel()
        guest.channel()
        mine = wt.pika_connect(srv.addr, virtual_host=VH,
                               credentials=pika.PlainCredentials(*as_user("management")))
        other = wt.pika_connect(srv.addr)  # vhost "/": not listed under VH
        path = "/api/vhosts/%s/connections" % VH

        def conns(auth=("guest", "guest")):
            return call(srv, "GET", path, auth=auth)
        # RabbitMQ lists a connection a few seconds after it opened; Warren at once
        wt.wait_until(lambda: len(conns()) == 2, 15, "connections listed",
                      conns=[guest, mine, other])
        got = conns()
        assert {c["vhost"] for c in got} == {VH}, got
        assert sorted(c["user"] for c in got) == ["guest", "mm-management"], got
        assert [c["user"] for c in conns(as_user("management"))] == ["mm-management"]
        assert call(srv, "GET", path + "?columns=user&sort=user") == [
            {"user": "guest"}, {"user": "mm-management"}]
        assert call(srv, "GET", "/api/vhosts/no-such/connections", status=404) == NOT_FOUND

        name = [c["name"] for c in got if c["user"] == "guest"][0]
        chans_path = "/api/connections/%s/channels" % urllib.parse.quote(name, safe="")

        def chans():
            return call(srv, "GET", chans_path)
        wt.wait_until(lambda: len(chans()) == 2, 15, "channels listed", conns=[guest])
        got = chans()
        assert sorted(c["name"] for c in got) == [name + " (1)", name + " (2)"], got
        assert {c["connection_details"]["name"] for c in got} == {name}, got
        assert {c["vhost"] for c in got} == {VH}, got
        assert call(srv, "GET", chans_path + "?columns=number&sort=number") == [
            {"number": 1}, {"number": 2}]
        if wt.broker_product(srv.addr) == "Warren":  # RabbitMQ 3.10 answers 500 here
            assert call(srv, "GET", "/api/connections/gone/channels", status=404) == NOT_FOUND
            call(srv, "GET", chans_path, auth=as_user("management"), status=404)
        for c in (guest, mine, other):
            c.close()

        ext = call(srv, "GET", "/api/extensions")
        assert isinstance(ext, list), ext


def test_parameters():
    """/api/parameters[/{component}[/{vhost}[/{name}]]]: lists; a component Warren does not
    have refused as RabbitMQ refuses one whose plugin is off; vhost limits and operator
    policies as parameters; 404s; who may"""
    with wt.server(mgmt=True) as srv, Fixture(srv):
        up = "/api/parameters/federation-upstream/%s/up1" % VH
        for p in ("/api/parameters/federation-upstream", "/api/parameters/federation-upstream/" +
                  VH, "/api/parameters/no-such/" + VH):
            assert call(srv, "GET", p) == [], p
        assert call(srv, "GET", up, status=404) == NOT_FOUND
        assert call(srv, "DELETE", up, status=404) == NOT_FOUND
        assert call(srv, "PUT", up, {"value": {"uri": "amqp://"}}, status=400) == {
            "error": "bad_request",
            "reason": "Validation failed\n\ncomponent federation-upstream not found\n"}
        assert call(srv, "PUT", "/api/parameters/federation-upstream/no-such/up1",
                    {"value": 1}, status=404) == {"error": "not_found",
                                                  "reason": "vhost_not_found"}
        assert call(srv, "PUT", up, {}, status=400) == {"error": "bad_request",
                                                        "reason": "[{key_missing,value}]"}
        assert call(srv, "GET", "/api/parameters/x/no-such/y", status=404) == NOT_FOUND

        lim = "/api/parameters/vhost-limits/%s/limits" % VH
        assert call(srv, "PUT", lim, {"value": None}, status=400) == {
            "error": "bad_request", "reason": "Validation failed\n\nlimits not a list null\n"}
        call(srv, "PUT", lim, {"value": {"max-queues": 7}}, status=201)
        want = {"value": {"max-queues": 7}, "vhost": VH, "component": "vhost-limits",
                "name": "limits"}
        assert call(srv, "GET", lim) == want
        assert want in call(srv, "GET", "/api/parameters")
        assert call(srv, "GET", "/api/parameters/vhost-limits/" + VH) == [want]
        assert call(srv, "GET", "/api/vhost-limits/" + VH) == [
            {"vhost": VH, "value": {"max-queues": 7}}]
        call(srv, "PUT", lim, {"value": {"max-queues": 8}}, status=204)
        assert call(srv, "GET", lim)["value"] == {"max-queues": 8}
        call(srv, "DELETE", lim, status=204)
        assert call(srv, "GET", "/api/vhost-limits/" + VH) == []
        assert call(srv, "GET", "/api/parameters/vhost-limits/" + VH) == []

        op = "/api/parameters/operator_policy/%s/op1" % VH
        value = {"pattern": "^q", "definition": {"max-length": 5}, "priority": 0,
                 "apply-to": "queues"}
        call(srv, "PUT", op, {"value": value}, status=201)
        assert call(srv, "GET", op) == {"value": value, "vhost": VH,
                                        "component": "operator_policy", "name": "op1"}
        pol = call(srv, "GET", "/api/operator-policies/%s/op1" % VH)
        assert pol["pattern"] == "^q" and pol["definition"] == {"max-length": 5}, pol
        call(srv, "DELETE", op, status=204)
        call(srv, "GET", "/api/operator-policies/%s/op1" % VH, status=404)

        # policymaker (in its vhosts) or administrator
        forbidden = {"error": "not_authorised", "reason": "User not authorised to access object"}
        for tag in ("management", "monitoring"):
            assert call(srv, "GET", "/api/parameters", auth=as_user(tag),
                        status=401) == forbidden
            assert call(srv, "PUT", lim, {"value": {"max-queues": 1}}, auth=as_user(tag),
                        status=401) == forbidden
        pm = as_user("policymaker")
        assert call(srv, "GET", "/api/parameters/federation-upstream", auth=pm) == []
        call(srv, "PUT", up, {"value": 1}, auth=pm, status=400)
        assert call(srv, "GET", "/api/parameters/x/%2F", auth=pm, status=401) == forbidden


def test_global_parameters():
    """/api/global-parameters[/{name}]: PUT 201 then 204 (named by the path), GET, list,
    DELETE; key_missing; policymaker or administrator"""
    with wt.server(mgmt=True) as srv, Fixture(srv):
        p = "/api/global-parameters/mm-gp"
        call(srv, "GET", p, status=404)
        call(srv, "PUT", p, {"value": {"a": [1, "b"]}}, status=201)
        assert call(srv, "GET", p) == {"name": "mm-gp", "value": {"a": [1, "b"]}}
        call(srv, "PUT", p, {"name": "other", "value": 3}, status=204)
        assert call(srv, "GET", p) == {"name": "mm-gp", "value": 3}
        listed = call(srv, "GET", "/api/global-parameters")
        assert {"name": "mm-gp", "value": 3} in listed, listed
        assert "other" not in [g["name"] for g in listed], listed
        assert call(srv, "PUT", p, {}, status=400) == {"error": "bad_request",
                                                       "reason": "[{key_missing,value}]"}
        forbidden = {"error": "not_authorised", "reason": "User not authorised to access object"}
        for tag in ("management", "monitoring"):
            assert call(srv, "GET", "/api/global-parameters", auth=as_user(tag),
                        status=401) == forbidden
            assert call(srv, "PUT", p, {"value": 1}, auth=as_user(tag), status=401) == forbidden
        pm = as_user("policymaker")
        assert {"name": "mm-gp", "value": 3} in call(srv, "GET", "/api/global-parameters",
                                                     auth=pm)
        call(srv, "PUT", p, {"value": 4}, auth=pm, status=204)
        call(srv, "DELETE", p, status=204)
        call(srv, "DELETE", p, status=404)
        call(srv, "GET", p, status=404)


def start_cluster_name(srv):
    """The cluster_name server property in a new connection's connection.start."""
    with wt.opened(srv.addr) as c:
        return c.start["server_properties"]["cluster_name"]


def test_quorum_critical_alone():
    """GET /api/health/checks/node-is-quorum-critical on a node alone: 200, as RabbitMQ 3.10
    answers it (checked there)"""
    with wt.server(mgmt=True) as srv:
        assert call(srv, "GET", "/api/health/checks/node-is-quorum-critical") == {
            "status": "ok", "reason": "single node cluster"}


def test_cluster_name():
    """GET and PUT /api/cluster-name: the global parameter cluster_name, which /api/overview
    and new connections' connection.start show (the default again once it is deleted); PUT
    needs administrator; key_missing"""
    with wt.server(mgmt=True) as srv, Fixture(srv):
        before = call(srv, "GET", "/api/cluster-name")["name"]
        assert call(srv, "GET", "/api/overview")["cluster_name"] == before
        call(srv, "DELETE", "/api/global-parameters/cluster_name", status=(204, 404))
        default = start_cluster_name(srv)
        try:
            call(srv, "PUT", "/api/cluster-name", {"name": "mm-cluster"}, status=204)
            assert start_cluster_name(srv) == "mm-cluster"
            for tag in Fixture.TAGS:
                assert call(srv, "GET", "/api/cluster-name", auth=as_user(tag)) == {
                    "name": "mm-cluster"}
                assert call(srv, "PUT", "/api/cluster-name", {"name": "x"}, auth=as_user(tag),
                            status=401) == {"error": "not_authorised",
                                            "reason": "Not administrator user"}
            assert call(srv, "GET", "/api/overview")["cluster_name"] == "mm-cluster"
            assert call(srv, "GET", "/api/global-parameters/cluster_name") == {
                "name": "cluster_name", "value": "mm-cluster"}
            assert call(srv, "PUT", "/api/cluster-name", {}, status=400) == {
                "error": "bad_request", "reason": "[{key_missing,name}]"}
            call(srv, "PUT", "/api/cluster-name", {"name": "mm-cluster"}, status=204)
            call(srv, "DELETE", "/api/global-parameters/cluster_name", status=204)
            assert start_cluster_name(srv) == default
            assert call(srv, "GET", "/api/overview")["cluster_name"] == default
        finally:
            call(srv, "PUT", "/api/cluster-name", {"name": before}, status=204)


@wt.needs_process
def test_durable_and_definitions():
    """global parameters and the cluster name survive a restart, are in a definitions
    export, and an import onto a fresh broker brings them"""
    with wt.server(mgmt=True) as srv:
        call(srv, "PUT", "/api/cluster-name", {"name": "kept"}, status=204)
        call(srv, "PUT", "/api/global-parameters/g1", {"value": {"x": 1}}, status=201)
        srv.restart()
        assert call(srv, "GET", "/api/cluster-name") == {"name": "kept"}
        assert start_cluster_name(srv) == "kept"
        assert call(srv, "GET", "/api/global-parameters/g1") == {"name": "g1", "value": {"x": 1}}
        defs = call(srv, "GET", "/api/definitions")
        assert sorted(defs["global_parameters"], key=lambda g: g["name"]) == [
            {"name": "cluster_name", "value": "kept"}, {"name": "g1", "value": {"x": 1}}]
    with wt.server(mgmt=True) as fresh:
        call(fresh, "POST", "/api/definitions", defs, status=204)
        assert call(fresh, "GET", "/api/overview")["cluster_name"] == "kept"
        assert start_cluster_name(fresh) == "kept"
        assert call(fresh, "GET", "/api/global-parameters/g1")["value"] == {"x": 1}


if __name__ == "__main__":
    wt.run([test_vhost_connections_and_channels, test_parameters, test_global_parameters,
            test_quorum_critical_alone, test_cluster_name, test_durable_and_definitions])
