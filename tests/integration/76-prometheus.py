"""Prometheus metrics as RabbitMQ 3.10's rabbitmq_prometheus plugin serves them (src/mgmt/
prometheus.c, prom_text.c): GET /metrics on prometheus.tcp.port without credentials, text
format 0.0.4 with Content-Type "text/plain; version=0.0.4", that Debian's promtool accepts
(`promtool check metrics`); the metric names and labels the Grafana RabbitMQ-Overview
dashboard queries; values that move with publishes, confirms, gets, deliveries and acks;
aggregated by default, per queue {vhost,queue} and channel at /metrics/per-object, and
/metrics/detailed?family=...&vhost=... with rabbitmq_detailed_ names and only the families
and vhosts asked for; label values escaped; 404 for other paths and 405 for other methods.
Warren also serves /metrics on the management port, to monitoring and administrator users
only (RabbitMQ answers 404 there), and adds warren_* figures (store write latency,
group-commit and event loop lag histograms). At 50,000 queues a scrape (a per-object one
is about 20 MB) walks the queues and writes its text over many loop turns: a pinging client
sees no stall over a second; at most 4 scrapes run at once (503 beyond); queues deleted and
created meanwhile leave each text valid with no object twice; a client that goes away in
the middle of one leaves the broker serving. Run against RabbitMQ with WARREN_TEST_ADDR and
WARREN_TEST_PROMETHEUS_PORT, the first two tests check the same names there."""

import http.client
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

PROMTOOL = "/usr/bin/promtool"
CONTENT_TYPE = "text/plain; version=0.0.4"
# What the RabbitMQ-Overview dashboard (Grafana 10991) and RabbitMQ's own dashboards query.
DASHBOARD = [
    "rabbitmq_identity_info", "rabbitmq_build_info", "rabbitmq_connections",
    "rabbitmq_channels", "rabbitmq_consumers", "rabbitmq_queues",
    "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages",
    "rabbitmq_channel_messages_published_total", "rabbitmq_channel_messages_confirmed_total",
    "rabbitmq_queue_messages_published_total",
    "rabbitmq_channel_messages_unroutable_returned_total",
    "rabbitmq_channel_messages_unroutable_dropped_total", "rabbitmq_channel_get_ack_total",
    "rabbitmq_channel_get_total", "rabbitmq_channel_messages_delivered_total",
    "rabbitmq_channel_messages_delivered_ack_total", "rabbitmq_channel_messages_redelivered_total",
    "rabbitmq_channel_messages_acked_total", "rabbitmq_channel_get_empty_total",
    "rabbitmq_connections_opened_total", "rabbitmq_connections_closed_total",
    "rabbitmq_channels_opened_total", "rabbitmq_channels_closed_total",
    "rabbitmq_queues_declared_total", "rabbitmq_queues_created_total",
    "rabbitmq_queues_deleted_total", "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_resident_memory_limit_bytes", "rabbitmq_disk_space_available_bytes",
    "rabbitmq_disk_space_available_limit_bytes", "rabbitmq_process_open_fds",
    "rabbitmq_process_max_fds", "rabbitmq_process_open_tcp_sockets",
    "rabbitmq_alarms_memory_used_watermark", "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_file_descriptor_limit",
    "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_confirmed_total",
    "rabbitmq_global_messages_acknowledged_total",
]
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """{(name, frozenset of (label, value))): float}, and {name: type} from # TYPE lines."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        name, rest = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$", line).groups()
        labels = frozenset()
        if rest.startswith("{"):
            end = rest.rindex("}")
            labels = frozenset((k, unescape(v)) for k, v in LABEL.findall(rest[1:end]))
            rest = rest[end + 1:]
        samples[(name, labels)] = float(rest.split()[0])
    return samples, types


def scrape(port, path, auth=None, method="GET"):
    """(status, content type, body text) of one request to 127.0.0.1:port."""
    import base64
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    hdrs = {}
    if auth is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode()
    try:
        conn.request(method, path, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    finally:
        conn.close()


def metrics(srv, path="/metrics"):
    st, ctype, body = scrape(srv.prometheus_port, path)
    assert st == 200, (path, st, body[:300])
    assert ctype == CONTENT_TYPE, ctype
    return body


def promtool_check(text, what):
    """Debian's promtool reads the text from stdin: it must find nothing to say."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    assert p.returncode == 0, (what, p.stdout.decode()[:2000], p.stderr.decode()[:2000])


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_names_and_format():
    """no login needed; the dashboard's names with their types; promtool finds no fault; the
    cluster label follows the cluster name"""
    with wt.server(prometheus=True, mgmt=True) as srv:
        text = metrics(srv)
        promtool_check(text, "/metrics")
        samples, types = parse(text)
        names = {n for n, _ in samples}
        missing = [n for n in DASHBOARD if n not in names]
        assert not missing, missing
        for n in DASHBOARD:
            want = "counter" if n.endswith("_total") else "untyped" if (
                n.endswith("_info") or n.startswith("rabbitmq_alarms_")) else "gauge"
            assert types[n] == want, (n, types[n])
        ident = [dict(lb) for n, lb in samples if n == "rabbitmq_identity_info"]
        assert len(ident) == 1 and ident[0]["rabbitmq_node"] and ident[0]["rabbitmq_cluster"], ident
        # the cluster is the node until a cluster name is set (the dashboards filter by it)
        assert ident[0]["rabbitmq_cluster"] == ident[0]["rabbitmq_node"], ident
        st, _, _ = wt.http(srv, "PUT", "/api/cluster-name", {"name": "bus-1"})
        assert st == 204, st
        samples, _ = parse(metrics(srv))
        ident = [dict(lb) for n, lb in samples if n == "rabbitmq_identity_info"]
        assert ident[0]["rabbitmq_cluster"] == "bus-1", ident
        build = [dict(lb) for n, lb in samples if n == "rabbitmq_build_info"]
        assert build[0]["rabbitmq_version"].startswith("3."), build
        assert value(samples, "rabbitmq_process_resident_memory_bytes") > 0
        assert value(samples, "rabbitmq_process_open_fds") > 0
        assert value(samples, "rabbitmq_process_max_fds") >= value(
            samples, "rabbitmq_process_open_fds")
        assert value(samples, "rabbitmq_disk_space_available_bytes") > 0
        # Aggregated: no per-object labels.
        assert all(not lb for n, lb in samples if n.startswith("rabbitmq_queue_")), "labels"


def test_paths_and_methods():
    """other paths 404, other methods 405, HEAD answered without a body"""
    with wt.server(prometheus=True) as srv:
        assert scrape(srv.prometheus_port, "/api/overview")[0] == 404
        assert scrape(srv.prometheus_port, "/metricsx")[0] == 404
        assert scrape(srv.prometheus_port, "/metrics", method="POST")[0] == 405
        st, ctype, body = scrape(srv.prometheus_port, "/metrics", method="HEAD")
        assert st == 200 and body == "", (st, body[:100])


@wt.needs_process
def test_values_move():
    """publishes, confirms, gets, deliveries, acks and unroutables show in the aggregated
    counters, per queue and per channel; a queue name with '"', '\\' and a newline comes back
    escaped and promtool accepts it"""
    import pika
    with wt.server(prometheus=True) as srv:
        before, _ = parse(metrics(srv))
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.confirm_delivery()
        qname = 'q"1\\x\nend'
        ch.queue_declare(qname)
        ch.queue_declare(qname)  # declared twice, created once
        ch.queue_declare("other")
        for _ in range(6):
            ch.basic_publish("", qname, b"m")
        ch.basic_publish("", "nowhere", b"m")  # dropped
        try:
            ch.basic_publish("", "nowhere", b"m", mandatory=True)
            raise AssertionError("not returned")
        except pika.exceptions.UnroutableError:
            pass
        m = ch.basic_get(qname)
        ch.basic_ack(m[0].delivery_tag)
        ch.basic_get(qname, auto_ack=True)
        assert ch.basic_get("other") == (None, None, None)
        got = []
        ch.basic_consume(qname, lambda c, mt, p, b: got.append(mt.delivery_tag))
        wt.wait_until(lambda: (conn.process_data_events(0.05), len(got) == 4)[1], 10,
                      "4 delivered")
        ch.basic_ack(got[0])  # 3 stay unacked
        conn.process_data_events(0.2)

        text = metrics(srv)
        promtool_check(text, "/metrics after traffic")
        s, _ = parse(text)
        d = {n: value(s, n) - value(before, n) for n in [
            "rabbitmq_channel_messages_published_total",
            "rabbitmq_channel_messages_confirmed_total",
            "rabbitmq_channel_messages_unroutable_dropped_total",
            "rabbitmq_channel_messages_unroutable_returned_total",
            "rabbitmq_channel_get_ack_total", "rabbitmq_channel_get_total",
            "rabbitmq_channel_get_empty_total", "rabbitmq_channel_messages_delivered_ack_total",
            "rabbitmq_channel_messages_acked_total", "rabbitmq_queue_messages_published_total",
            "rabbitmq_queues_declared_total", "rabbitmq_queues_created_total",
            "rabbitmq_connections_opened_total", "rabbitmq_channels_opened_total"]}
        assert d == {
            "rabbitmq_channel_messages_published_total": 8,
            "rabbitmq_channel_messages_confirmed_total": 8,
            "rabbitmq_channel_messages_unroutable_dropped_total": 1,
            "rabbitmq_channel_messages_unroutable_returned_total": 1,
            "rabbitmq_channel_get_ack_total": 1, "rabbitmq_channel_get_total": 1,
            "rabbitmq_channel_get_empty_total": 1,
            "rabbitmq_channel_messages_delivered_ack_total": 4,
            "rabbitmq_channel_messages_acked_total": 2,
            "rabbitmq_queue_messages_published_total": 6,
            "rabbitmq_queues_declared_total": 3, "rabbitmq_queues_created_total": 2,
            "rabbitmq_connections_opened_total": 1, "rabbitmq_channels_opened_total": 1}, d
        assert value(s, "rabbitmq_queue_messages_ready") == 0
        assert value(s, "rabbitmq_queue_messages_unacked") == 3
        assert value(s, "rabbitmq_queue_messages") == 3
        assert value(s, "rabbitmq_queues") == 2
        assert value(s, "rabbitmq_consumers") == 1
        assert value(s, "rabbitmq_connections") == 1
        assert value(s, "rabbitmq_channels") == 1
        assert value(s, "rabbitmq_channel_messages_unacked") == 3
        assert value(s, "rabbitmq_global_messages_received_total", protocol="amqp091") == 8

        text = metrics(srv, "/metrics/per-object")
        promtool_check(text, "/metrics/per-object")
        s, _ = parse(text)
        assert value(s, "rabbitmq_queue_messages_unacked", vhost="/", queue=qname) == 3
        assert value(s, "rabbitmq_queue_messages", vhost="/", queue="other") == 0
        assert value(s, "rabbitmq_queue_consumers", vhost="/", queue=qname) == 1
        assert value(s, "rabbitmq_queue_messages_published_total", vhost="/", queue=qname) == 6
        chans = [dict(lb)["channel"] for n, lb in s if n == "rabbitmq_channel_messages_acked_total"]
        assert len(chans) == 1 and chans[0].endswith(" (1)"), chans
        assert value(s, "rabbitmq_channel_messages_published_total", channel=chans[0]) == 8
        assert value(s, "rabbitmq_channel_messages_unacked", channel=chans[0]) == 3
        assert '\\"' in text and "\\n" in text and "\\\\" in text, "label not escaped"

        # Closing the channel leaves the aggregated counters where they were (vhost sums),
        # and counts the channel and connection closed.
        conn.close()
        wt.wait_until(lambda: value(parse(metrics(srv))[0], "rabbitmq_connections") == 0, 10,
                      "connection gone")
        s, _ = parse(metrics(srv))
        assert value(s, "rabbitmq_channel_messages_published_total") - value(
            before, "rabbitmq_channel_messages_published_total") == 8
        assert value(s, "rabbitmq_channels_closed_total") - value(
            before, "rabbitmq_channels_closed_total") == 1
        assert value(s, "rabbitmq_connections_closed_total") - value(
            before, "rabbitmq_connections_closed_total") == 1
        assert value(s, "rabbitmq_queue_messages_ready") == 3  # requeued


@wt.needs_process
def test_detailed():
    """family= and vhost= pick what is shown, with rabbitmq_detailed_ names; repeated
    parameters add up; no family: only build and identity info"""
    with wt.server(prometheus=True, mgmt=True) as srv:
        st, _, _ = wt.http(srv, "PUT", "/api/vhosts/v2")
        assert st in (201, 204), st
        st, _, _ = wt.http(srv, "PUT", "/api/permissions/v2/guest",
                           {"configure": ".*", "write": ".*", "read": ".*"})
        assert st in (201, 204), st
        for vh, q in (("/", "a"), ("v2", "b")):
            conn = wt.pika_connect(srv.addr, virtual_host=vh)
            ch = conn.channel()
            ch.queue_declare(q)
            ch.basic_publish("", q, b"m")
            conn.close()
        text = metrics(srv, "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F")
        promtool_check(text, "detailed")
        s, _ = parse(text)
        names = {n for n, _ in s}
        assert names == {"rabbitmq_detailed_queue_messages_ready",
                         "rabbitmq_detailed_queue_messages_unacked",
                         "rabbitmq_detailed_queue_messages", "rabbitmq_build_info",
                         "rabbitmq_identity_info"}, names
        assert value(s, "rabbitmq_detailed_queue_messages_ready", vhost="/", queue="a") == 1
        assert not any(dict(lb).get("vhost") == "v2" for _, lb in s)

        s, _ = parse(metrics(srv, "/metrics/detailed?family=queue_coarse_metrics"
                                  "&family=queue_consumer_count&vhost=%2F&vhost=v2"))
        assert value(s, "rabbitmq_detailed_queue_messages", vhost="v2", queue="b") == 1
        assert value(s, "rabbitmq_detailed_queue_consumers", vhost="/", queue="a") == 0

        s, _ = parse(metrics(srv, "/metrics/detailed"))
        assert {n for n, _ in s} == {"rabbitmq_build_info", "rabbitmq_identity_info"}, s
        s, _ = parse(metrics(srv, "/metrics/detailed?family=nonsense"))
        assert {n for n, _ in s} == {"rabbitmq_build_info", "rabbitmq_identity_info"}, s


@wt.needs_process
def test_management_port():
    """the management port serves /metrics to monitoring and administrator users only"""
    with wt.server(prometheus=True, mgmt=True) as srv:
        assert scrape(srv.mgmt_port, "/metrics")[0] == 401
        st, _, _ = wt.http(srv, "PUT", "/api/users/watcher",
                           {"password": "pw", "tags": "management"})
        assert st in (201, 204), st
        assert scrape(srv.mgmt_port, "/metrics", auth=("watcher", "pw"))[0] == 401
        assert scrape(srv.mgmt_port, "/metrics", auth=("guest", "wrong"))[0] == 401
        st, ctype, body = scrape(srv.mgmt_port, "/metrics/per-object", auth=("guest", "guest"))
        assert st == 200 and ctype == CONTENT_TYPE, (st, ctype)
        promtool_check(body, "management port")
        assert "rabbitmq_identity_info{" in body
        # The API is still the API.
        assert wt.http(srv, "GET", "/api/overview")[0] == 200


@wt.needs_process
def test_warren_figures():
    """persistent publishes with confirms show in the store's sync-write latency and
    group-commit histograms; the event loop lag histogram fills"""
    import pika
    with wt.server(prometheus=True) as srv:
        before, _ = parse(metrics(srv))
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("d", durable=True)
        for _ in range(20):
            ch.basic_publish("", "d", b"m", pika.BasicProperties(delivery_mode=2))
        conn.close()
        text = metrics(srv)
        s, types = parse(text)
        assert types["warren_store_sync_write_seconds"] == "histogram"
        n = value(s, "warren_store_sync_write_seconds_count") - value(
            before, "warren_store_sync_write_seconds_count")
        assert n >= 1, n
        assert value(s, "warren_store_sync_write_seconds_bucket", le="+Inf") == value(
            s, "warren_store_sync_write_seconds_count")
        batches = value(s, "warren_store_group_commit_batches_sum") - value(
            before, "warren_store_group_commit_batches_sum")
        assert batches >= 20, batches  # at least one batch per persistent publish
        assert "warren_log_lines_dropped_total 0" in text
        # The loop lag probe fires every 100 ms.
        wt.wait_until(lambda: value(parse(metrics(srv))[0],
                                    "warren_event_loop_lag_seconds_count") >= 3, 10, "probes")
        s, types = parse(metrics(srv))
        assert types["warren_event_loop_lag_seconds"] == "histogram"
        assert value(s, "warren_event_loop_lag_seconds_bucket", le="1") == value(
            s, "warren_event_loop_lag_seconds_count")


def sample_counts(text):
    """{(name, labels line): how many times the sample is in text}."""
    import collections
    return collections.Counter(line.rsplit(" ", 1)[0] for line in text.splitlines()
                               if line and not line.startswith("#"))


def check_once(text, what):
    """promtool accepts text, and no object is twice in a metric."""
    promtool_check(text, what)
    twice = [k for k, c in sample_counts(text).items() if c > 1]
    assert not twice, (what, twice[:5])


def lag_since(srv, before):
    """The smallest warren_event_loop_lag_seconds bucket that holds every lag sampled since
    the /metrics samples before (None: since the start), and the samples now."""
    s, _ = parse(metrics(srv))
    b = before or {}

    def d(name, lb=frozenset()):
        return s[(name, lb)] - b.get((name, lb), 0)
    count = d("warren_event_loop_lag_seconds_count")
    return min(float(dict(lb)["le"]) for name, lb in s
               if name == "warren_event_loop_lag_seconds_bucket" and d(name, lb) == count), s


@wt.needs_process
def test_many_queues():
    """50,000 queues: the aggregated sums and the per-object lines, in steps across loop
    turns: a pinging client is served throughout; at most 4 scrapes at once (20 scrapers: the others get 503 and Retry-After,
    memory stays bounded); queues deleted and created (the hash table growing) during
    scrapes leave every text valid with no object twice; a scrape cut short by its client ends
    at once, leaving its place to another"""
    import socket
    import watcher
    n = 50000
    with wt.server(prometheus=True, mgmt=True) as srv:
        defs = {"queues": [{"name": "q%05d" % i, "vhost": "/", "durable": False,
                            "auto_delete": False, "arguments": {}} for i in range(n)]}
        st, _, body = wt.http(srv, "POST", "/api/definitions", defs, timeout=120)
        assert st == 204, (st, body)
        with watcher.Watcher(srv.addr) as w:
            s, _ = parse(metrics(srv))
            assert value(s, "rabbitmq_queues") == n + 1  # and the watcher's
            lag0 = s
            for _ in range(2):
                text = metrics(srv, "/metrics/per-object")
                assert text.count("\nrabbitmq_queue_messages_ready{") == n + 1
            w.check("during per-object scrapes of %d queues" % n)
            lag, lag0 = lag_since(srv, lag0)
            wt.log("  longest event loop lag during two per-object scrapes: <= %g s" % lag)

            for path in ("/metrics", "/metrics/detailed?family=queue_coarse_metrics"):
                st, _, text = scrape(srv.prometheus_port, path)
                assert st == 200, (path, st)
            assert text.count("\nrabbitmq_detailed_queue_messages{") == n + 1
            w.check("during aggregated and detailed scrapes")
            lag, lag0 = lag_since(srv, lag0)
            wt.log("  longest event loop lag, aggregated and detailed: <= %g s" % lag)

            # 20 scrapers at once: 4 are served, the others told to come back.
            rss0 = srv.rss_kib()
            got = wt.parallel([lambda: scrape(srv.prometheus_port, "/metrics/per-object")] * 20)
            rss1 = srv.rss_kib()
            assert all(isinstance(g, tuple) for g in got), got
            codes = sorted(g[0] for g in got)
            assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
            assert set(codes) <= {200, 503}, codes
            for st, _, text in got:
                if st == 200:
                    assert text.count("\nrabbitmq_queue_messages{") == n + 1
            w.check("during 20 concurrent per-object scrapes")
            lag, lag0 = lag_since(srv, lag0)
            wt.log("  longest event loop lag, 20 scrapers: <= %g s" % lag)
            srv.check_rss_growth(rss0, rss1, 256 * 1024, "over 20 concurrent scrapes")
            wt.log("  20 concurrent scrapes: %d answered 200, %d 503" % (
                codes.count(200), codes.count(503)))

            # Queues deleted and created (past the table's size: it doubles) while scrapes
            # run: each text valid, no queue twice in a metric.
            conn = wt.pika_connect(srv.addr)
            ch = conn.channel()
            texts = []

            def scrapes():
                for path in ("/metrics/per-object", "/metrics", "/metrics/per-object",
                             "/metrics/detailed?family=queue_coarse_metrics"
                             "&family=queue_consumer_count", "/metrics/per-object"):
                    texts.append(scrape(srv.prometheus_port, path))
            more = {"queues": [{"name": "r%05d" % i, "vhost": "/", "durable": False,
                                "auto_delete": False, "arguments": {}} for i in range(20000)]}
            got = wt.parallel([scrapes, lambda: (
                [ch.queue_delete("q%05d" % i) for i in range(0, 3000)],
                wt.http(srv, "POST", "/api/definitions", more, timeout=120),
                [ch.queue_delete("q%05d" % i) for i in range(3000, 6000)])])
            assert got[1][1][0] == 204, got[1]
            conn.close()
            assert len(texts) == 5, got
            for i, (st, _, text) in enumerate(texts):
                assert st == 200, st
                check_once(text, "scrape %d during deletes and creations" % i)
            w.check("during scrapes with queues deleted and created")
            s, _ = parse(metrics(srv))
            assert value(s, "rabbitmq_queues") == n + 1 - 6000 + 20000

            # 4 scrapers gone in the middle (a scrape takes a few hundred ms): their places
            # are free again at once.
            socks = []
            for _ in range(4):
                socks.append(socket.create_connection(("127.0.0.1", srv.prometheus_port)))
                socks[-1].sendall(b"GET /metrics/per-object HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.02)
            for sock in socks:
                sock.close()
            time.sleep(0.1)
            text = metrics(srv, "/metrics/per-object")
            assert text.count("\nrabbitmq_queue_consumers{") == n + 1 - 6000 + 20000
            w.check("after scrapes cut short")


@wt.needs_process
def test_config_keys():
    """prometheus.tcp.port and prometheus.tcp.ip are rabbitmq.conf keys; a taken port stops
    the broker with a message, as a taken management port does"""
    import socket
    tmp = wt.tempfile.mkdtemp(prefix="warren-test-")
    conf = os.path.join(tmp, "warren.conf")
    with open(conf, "w") as f:
        f.write("prometheus.tcp.port = 15699\nprometheus.tcp.ip = 127.0.0.1\n")
    rc, out, err, _ = wt.run_server_to_exit("--config", conf, "--check-config")
    assert rc == 0 and "configuration OK" in out, (rc, out, err)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        rc, out, err, _ = wt.run_server_to_exit(
            "--port", str(wt.free_port()), "--bind", "127.0.0.1", "--prometheus-port",
            str(taken.getsockname()[1]), data_dir=True)
    finally:
        taken.close()
    assert rc != 0 and "cannot listen for Prometheus scrapes" in err, (rc, err[-500:])


if __name__ == "__main__":
    wt.run([test_names_and_format, test_paths_and_methods, test_values_move, test_detailed,
            test_management_port, test_warren_figures, test_many_queues, test_config_keys])
