"""The web dashboard at / on the management port (src/mgmt/ui.c, src/mgmt/ui/): the static
file server (types, caching, security headers, HEAD, 404 for unknown and traversing paths),
then the pages in Debian's headless Chromium driven by Selenium: a wrong password refused and
a login accepted; a queue appearing and its count rising while a pika publisher runs, purged
from its page; a user added from the admin page (then found through the API); a connection
closed from the connections page (the pika client gets 320 CONNECTION_FORCED). Screenshots at
1280x800 and 390x844 are saved under the build's tests/integration/78-web-ui-artifacts/ and
listed in the log."""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402

http = wt.http
WAIT = 20  # seconds for anything the page shows (the pages refresh every 5 s)
ARTIFACTS = os.path.join(
    os.path.dirname(os.environ["WARREN_SERVER"]) if os.environ.get("WARREN_SERVER")
    else os.getcwd(), "tests", "integration", "78-web-ui-artifacts")


def raw_get(srv, path, method="GET", headers=None):
    """One request to the management port without credentials: (status, headers, bytes)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.mgmt_port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def check_security_headers(h):
    assert h["x-content-type-options"] == "nosniff", h
    assert h["x-frame-options"] == "DENY", h
    csp = h["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    assert "unsafe-inline" not in csp, csp


@wt.needs_process
def test_static_files():
    """index at / and its files with their types, ETag revalidation (304), HEAD, security
    headers; unknown paths, traversal attempts and non-GET methods 404; no login needed"""
    with wt.server(mgmt=True) as srv:
        st, h, body = raw_get(srv, "/")
        assert st == 200, st
        assert h["content-type"] == "text/html; charset=utf-8", h
        assert h["cache-control"] == "no-cache", h
        assert b"<title>Warren</title>" in body
        check_security_headers(h)
        # Every script and the stylesheet the index names is served with its type.
        for ref in re.findall(rb'(?:src|href)="([^"#]+)"', body):
            st, h2, data = raw_get(srv, "/" + ref.decode())
            assert st == 200, (ref, st)
            want = {b"css": "text/css", b"svg": "image/svg+xml",
                    b".js": "text/javascript"}[ref[-3:]]
            assert h2["content-type"].startswith(want), (ref, h2)
            assert int(h2["content-length"]) == len(data) > 0, (ref, h2)
        st, h2, same = raw_get(srv, "/index.html")
        assert st == 200 and same == body, st
        # Revalidation: the ETag answers 304 without a body; another tag gets the file.
        etag = h["etag"]
        st, h2, data = raw_get(srv, "/", headers={"If-None-Match": etag})
        assert st == 304 and data == b"" and h2["etag"] == etag, (st, h2)
        st, _, data = raw_get(srv, "/", headers={"If-None-Match": '"0-0"'})
        assert st == 200 and data == body, st
        # HEAD: the headers GET would send, the length included, no body.
        st, h2, data = raw_get(srv, "/js/app.js", method="HEAD")
        _, _, js = raw_get(srv, "/js/app.js")
        assert st == 200 and data == b"", (st, data)
        assert int(h2["content-length"]) == len(js), h2
        assert h2["content-type"].startswith("text/javascript"), h2
        st, h2, data = raw_get(srv, "/nope", method="HEAD")
        assert st == 404 and data == b"", st
        # Nothing but the compiled-in files: traversal and encodings only miss.
        for path in ["/nope", "/js/", "/js", "/../index.html", "/js/../index.html",
                     "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/index.html%00",
                     "/etc/passwd", "//index.html", "/js/./app.js", "/INDEX.HTML",
                     "/src/mgmt/ui.c", "/index.html/"]:
            st, h2, data = raw_get(srv, path)
            assert st == 404, (path, st)
            assert data == b"Not Found\n", (path, data)
            check_security_headers(h2)
        for method in ["POST", "PUT", "DELETE"]:
            st, _, _ = raw_get(srv, "/", method=method)
            assert st in (404, 405), (method, st)
        # /api stays the API: JSON, login required.
        st, h2, _ = raw_get(srv, "/api/overview")
        assert st == 401, st
        st, h2, _ = raw_get(srv, "/apix")
        assert st == 404, st


class Browser:
    """Headless Chromium at the broker's dashboard; screenshots go to ARTIFACTS."""

    def __init__(self, srv, width=1280, height=800):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = wt.needs("chromium", "apt-get install chromium")
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=%d,%d" % (width, height)]:
            opts.add_argument(arg)
        # The console's messages: script errors and Content-Security-Policy refusals.
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(wt.needs("chromedriver", "apt-get install chromium-driver"))
        self.d = webdriver.Chrome(service=service, options=opts)
        self.d.set_page_load_timeout(WAIT)
        self.viewport(width, height)
        self.base = "http://127.0.0.1:%d/" % srv.mgmt_port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.d.quit()

    def wait(self, pred, what):
        """pred(driver)'s first true value within WAIT s. The pages redraw their tables on
        every refresh: an element found just before is then stale, and pred is tried again."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait
        try:
            return WebDriverWait(self.d, WAIT, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: pred(d), message=what + ": not within %d s" % WAIT)
        except TimeoutException:
            self.dump("timeout")
            raise

    def dump(self, name):
        """What the browser shows and said: for the log of a failed wait."""
        wt.log("  url: %s\n  console: %r\n  page:\n%s" % (
            self.d.current_url, self.d.get_log("browser"), self.d.page_source[:4000]))
        self.screenshot(name)

    def viewport(self, width, height, mobile=False):
        """The page's size in CSS pixels (a phone's with mobile), whatever the window's."""
        self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), css)

    def go(self, route):
        self.d.get(self.base + "#/" + route)

    def load(self):
        """Loads the dashboard. Chromium cancels the requests in flight when the machine's
        network changes (other tests make and remove network namespaces and bridges: 82's),
        ERR_NETWORK_CHANGED: the page is loaded again then, up to 3 times."""
        for _ in range(3):
            self.d.get(self.base)
            changed = [e for e in self.d.get_log("browser")
                       if "ERR_NETWORK_CHANGED" in e["message"]]
            if not changed:
                return
            wt.log("  the network changed under the page load: loading it again")
        raise AssertionError("the page load was cut by network changes 3 times")

    def login(self, user, password):
        self.load()
        self.find("#login input[name=username]").send_keys(user)
        self.find("#login input[name=password]").send_keys(password)
        self.find("#login button[type=submit]").click()

    def accept_confirm(self):
        self.wait(lambda d: d.switch_to.alert, "confirm dialog").accept()

    def row_with(self, text, then=lambda tr: tr):
        """then(the table row with a cell equal to text), retried if a redraw intervenes."""
        from selenium.webdriver.common.by import By
        def find(d):
            for tr in d.find_elements(By.CSS_SELECTOR, "tbody tr"):
                if text in [td.text for td in tr.find_elements(By.TAG_NAME, "td")]:
                    return then(tr)
            return False
        return self.wait(find, "a row with %r" % text)

    def console_errors(self):
        """The console's errors since the last call, but requests cut by a change of the
        machine's network (see load)."""
        return [e["message"] for e in self.d.get_log("browser")
                if e["level"] == "SEVERE" and "ERR_NETWORK_CHANGED" not in e["message"]]

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name + ".png")
        assert self.d.save_screenshot(path), path
        wt.log("  screenshot: %s" % path)


@wt.needs_process
def test_login():
    """a wrong password and a user without a management tag are refused on the page; guest
    logs in, sees the overview; logout"""
    with wt.server(mgmt=True) as srv, Browser(srv) as b:
        b.login("guest", "wrong")
        err = b.find("#login-error")
        b.wait(lambda d: err.is_displayed() and "Login failed" in err.text, "login refused")
        assert not b.find("#nav").is_displayed()
        b.screenshot("login-refused-1280x800")
        assert b.d.execute_script("return sessionStorage.getItem('warren.credentials')") is None
        # A user without a management tag is refused too, saying why.
        st, _, _ = http(srv, "PUT", "/api/users/plain", {"password": "p", "tags": ""})
        assert st in (201, 204), st
        b.login("plain", "p")
        b.wait(lambda d: b.find("#login-error").text == "Login failed: Not management user",
               "non-management user refused")
        b.login("guest", "guest")
        b.wait(lambda d: b.find("#who").text == "guest", "logged in")
        b.wait(lambda d: "Warren" in b.find("main h2 + p").text, "overview shown")
        b.find(".totals .total")
        b.find("canvas.chart")
        b.find("#logout").click()
        b.find("#login input[name=username]")
        assert b.d.execute_script("return sessionStorage.getItem('warren.credentials')") is None


class Publisher(threading.Thread):
    """Publishes to queue over its own pika connection until stopped."""

    def __init__(self, addr, queue):
        super().__init__(daemon=True)
        self.addr, self.queue = addr, queue
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = wt.pika_connect(self.addr)
            ch = conn.channel()
            ch.queue_declare(self.queue)
            while not self.stop.is_set():
                for _ in range(10):
                    ch.basic_publish("", self.queue, b"hello from pika")
                conn.sleep(0.1)
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e


def queue_total(b, name):
    """The Total column of queue name in the list (None while not listed)."""
    text = b.row_with(name, lambda tr: tr.find_element("css selector", "td.messages").text)
    return int(text.replace(",", "") or 0)


@wt.needs_process
def test_queue_live_and_purge():
    """a queue appears in the list and its count rises while pika publishes; purged from its
    page; screenshots at 1280x800 and 390x844"""
    with wt.server(mgmt=True) as srv, Browser(srv) as b:
        b.login("guest", "guest")
        b.find("#who")
        b.go("queues")
        pub = Publisher(srv.addr, "web-q")
        pub.start()
        try:
            first = b.wait(lambda d: queue_total(b, "web-q"), "web-q listed with messages")
            b.wait(lambda d: queue_total(b, "web-q") > first, "web-q's count rising")
            assert pub.error is None, pub.error
            b.screenshot("queues-1280x800")
            b.go("")
            b.wait(lambda d: b.find(".totals .total").text.split()[0] != "", "overview")
            b.screenshot("overview-1280x800")
            b.viewport(390, 844, mobile=True)
            b.find("#nav-toggle").click()
            b.wait(lambda d: b.find("#nav").is_displayed(), "menu open")
            b.screenshot("overview-menu-390x844")
            b.go("queues")
            b.row_with("web-q")
            b.screenshot("queues-390x844")
            b.viewport(1280, 800)
        finally:
            pub.stop.set()
            pub.join(10)
        assert pub.error is None, pub.error
        b.go("queues/%2F/web-q")
        b.wait(lambda d: int(b.find("#queue-messages").text.replace(",", "")) > 0, "queue page")
        b.screenshot("queue-1280x800")
        from selenium.webdriver.common.by import By
        purge = b.wait(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, "button.danger")
                                  if e.text == "Purge messages"], "purge button")[0]
        purge.click()
        b.accept_confirm()
        b.wait(lambda d: b.find("#queue-messages").text == "0", "purged count shown")
        st, _, q = http(srv, "GET", "/api/queues/%2F/web-q")
        assert st == 200 and q["messages"] == 0, (st, q)


def list_names(b):
    """The Name column of the list shown, top to bottom."""
    return b.d.execute_script(
        "return Array.from(document.querySelectorAll('main tbody tr'))"
        ".map(function (tr) { return tr.cells[1] ? tr.cells[1].textContent : ''; })")


@wt.needs_process
def test_queue_list_paging():
    """the queue list pages, sorts and filters (substring and regex) through the API"""
    from selenium.webdriver.support.ui import Select
    with wt.server(mgmt=True) as srv, Browser(srv) as b:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        names = ["page-q-%02d" % i for i in range(25)]
        for n in names:
            ch.queue_declare(n)
        conn.close()
        b.login("guest", "guest")
        b.find("#who")
        b.go("queues")
        b.wait(lambda d: list_names(b) == names, "all 25 on the first page of 50")
        Select(b.find("select[aria-label='page size']")).select_by_value("20")
        b.wait(lambda d: list_names(b) == names[:20], "a page of 20")
        assert "Page 1 of 2 (25 of 25 items)" in b.find(".page-info").text
        b.find(".pager button:last-of-type").click()
        b.wait(lambda d: list_names(b) == names[20:], "page 2")
        b.find("button.sort[data-key=name]").click()  # name, descending, from page 1
        b.wait(lambda d: list_names(b) == names[::-1][:20], "sorted by name, descending")
        b.find("button.sort[data-key=name]").click()
        b.wait(lambda d: list_names(b) == names[:20], "sorted by name again")
        b.find("input[name=filter]").send_keys("page-q-1")
        b.find(".filter button[type=submit]").click()
        b.wait(lambda d: list_names(b) == names[10:20], "filtered by a substring")
        assert "(10 of 25 items)" in b.find(".page-info").text
        b.find("input[name=filter]").clear()
        b.find("input[name=filter]").send_keys("^page-q-2[34]$")
        b.find("input[name=regex]").click()
        b.find(".filter button[type=submit]").click()
        b.wait(lambda d: list_names(b) == names[23:], "filtered by a regex")
        errors = b.console_errors()
        assert errors == [], errors


EVIL = '<img src=x onerror="window.pwned=1">/%?#'


@wt.needs_process
def test_every_page():
    """every page draws without a script error or a CSP refusal; a queue named with markup
    and URL characters shows as text and opens its own page"""
    import pika  # noqa: F401 (wt.pika_connect)
    with wt.server(mgmt=True) as srv, Browser(srv) as b:
        conn = wt.pika_connect(srv.addr)
        ch = conn.channel()
        ch.queue_declare(EVIL)
        ch.queue_bind(EVIL, "amq.direct", "k")
        ch.basic_consume(EVIL, lambda *a: None)
        b.login("guest", "guest")
        b.find("#who")
        titles = {"": "Overview", "connections": "Connections", "channels": "Channels",
                  "exchanges": "Exchanges", "exchanges/%2F/amq.direct": "Exchange amq.direct",
                  "exchanges/%2F/amq.default": "Exchange (AMQP default)", "queues": "Queues",
                  "admin": "Admin"}
        for route, title in titles.items():
            b.go(route)
            b.wait(lambda d: b.find("main h2").text.startswith(title), "page " + route)
            b.find("main > section.loaded")  # drawn from the API's replies
            errors = b.console_errors()
            assert errors == [], (route, errors)
            conn.process_data_events(0)
        for route in ["nowhere", "queues/%E0/q", "queues/%2F"]:
            b.go(route)
            b.wait(lambda d: b.find("main h2").text == "Not found", "page " + route)
        b.go("exchanges/%2F/amq.direct")
        b.row_with(EVIL)
        b.go("queues")
        link = b.row_with(EVIL, lambda tr: tr.find_element("css selector", "a"))
        link.click()
        b.wait(lambda d: b.find("main h2 .name").text == EVIL, "the queue's page")
        b.row_with("amq.direct")  # its binding
        b.row_with("k")
        b.wait(lambda d: b.find("#queue-messages").text == "0", "queue facts")
        b.screenshot("queue-consumer-1280x800")
        assert b.d.execute_script("return window.pwned") is None
        errors = b.console_errors()
        assert errors == [], errors
        conn.close()


@wt.needs_process
def test_add_user():
    """a user added from the admin page exists in the API with its tag"""
    with wt.server(mgmt=True) as srv, Browser(srv) as b:
        b.login("guest", "guest")
        b.find("#who")
        b.go("admin")
        form = b.find("#users form")
        form.find_element("css selector", "input[name=name]").send_keys("web-user")
        form.find_element("css selector", "input[name=password]").send_keys("s3cret")
        from selenium.webdriver.support.ui import Select
        Select(form.find_element("css selector", "select[name=tags]")).select_by_value(
            "monitoring")
        form.find_element("css selector", "button[type=submit]").click()
        b.row_with("web-user")
        st, _, u = http(srv, "GET", "/api/users/web-user")
        assert st == 200, (st, u)
        assert u["tags"] in (["monitoring"], "monitoring"), u
        b.screenshot("admin-1280x800")


@wt.needs_process
def test_close_connection():
    """Close on the connections page: the pika client sees 320 CONNECTION_FORCED"""
    import pika
    with wt.server(mgmt=True) as srv, Browser(srv) as b:
        conn = wt.pika_connect(srv.addr)
        try:
            st, _, conns = http(srv, "GET", "/api/connections")
            assert st == 200 and len(conns) == 1, conns
            b.login("guest", "guest")
            b.find("#who")
            b.go("connections")
            b.row_with(conns[0]["name"])
            b.screenshot("connections-1280x800")
            b.row_with(conns[0]["name"],
                       lambda tr: tr.find_element("css selector", "button.danger").click() or 1)
            b.accept_confirm()
            code = None
            deadline = time.monotonic() + WAIT
            while code is None:
                assert time.monotonic() < deadline, "connection not closed"
                try:
                    conn.process_data_events(0.1)
                except pika.exceptions.ConnectionClosedByBroker as e:
                    code = e.reply_code
                    text = e.reply_text
            assert code == 320, (code, text)
            assert text.startswith("CONNECTION_FORCED"), text
        finally:
            if conn.is_open:
                conn.close()


if __name__ == "__main__":
    wt.run([test_static_files, test_login, test_queue_live_and_purge, test_queue_list_paging,
            test_every_page, test_add_user, test_close_connection], timeout=120)
