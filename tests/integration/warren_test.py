"""Harness for Warren's integration tests (tests/integration/NN-area-what.py).

Each test file imports this module, lists its test functions and calls run(). A test gets
a running broker from server(): by default the real binary named by $WARREN_SERVER, started
on a free loopback port with a fresh data directory and `--log-level debug`, stopped with
SIGTERM at the end of the block (exit status 0 required). If $WARREN_TEST_ADDR=host:port is
set, tests talk to that broker instead; this is how the suite is checked against RabbitMQ.
Tests that need the server process (signals, RSS, flags, config files) are marked with
@needs_process, and those of what only Warren does with @warren_only(why): in WARREN_TEST_ADDR
mode only (against RabbitMQ, for the latter), they are reported as NOT RUN and do not fail.

The raw-socket helpers speak just enough AMQP 0-9-1 to drive the handshake step by step
and to send deliberately broken input: frames, a few methods, field tables, and parsers
for connection.start/tune/close. Every read has a timeout, and every test runs under an
alarm, so a hang fails the test instead of hanging `make check`.

Helpers the test files share live here, not in copies: opened() (a handshaken RawConn with
channels open), publish() and read_content() for content on a RawConn; send_pika(),
call_pika(), channel_refused() and method_ids() for methods built with pika's codec
(name_pika_methods() names them all in failure messages); and for pika clients
confirm_channel(), fresh_queue(s)(), cleanup(), publish_confirmed(), fill(), message_count(),
drain(), check_dead_lettered() and wait_until(). run_server_to_exit() runs the binary for tests
of its command line; warrenctl() runs the administration tool, and ctl(), ctl_ok() and
ctl_fails() run it against a started broker.
"""

import contextlib
import functools
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

EXTERNAL = os.environ.get("WARREN_TEST_ADDR") or None
TEST_TIMEOUT = 60  # seconds per test function, unless run(..., timeout=) says otherwise

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

# (class-id, method-id) of the methods the tests send or expect.
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_SECURE = (10, 20)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CONNECTION_BLOCKED = (10, 60)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_FLOW = (20, 20)
CHANNEL_FLOW_OK = (20, 21)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
BASIC_PUBLISH = (60, 40)

METHOD_NAMES = {
    CONNECTION_START: "connection.start", CONNECTION_START_OK: "connection.start-ok",
    CONNECTION_SECURE: "connection.secure", CONNECTION_TUNE: "connection.tune",
    CONNECTION_TUNE_OK: "connection.tune-ok", CONNECTION_OPEN: "connection.open",
    CONNECTION_OPEN_OK: "connection.open-ok", CONNECTION_CLOSE: "connection.close",
    CONNECTION_CLOSE_OK: "connection.close-ok", CONNECTION_BLOCKED: "connection.blocked",
    CHANNEL_OPEN: "channel.open", CHANNEL_OPEN_OK: "channel.open-ok",
    CHANNEL_FLOW: "channel.flow", CHANNEL_FLOW_OK: "channel.flow-ok",
    CHANNEL_CLOSE: "channel.close", CHANNEL_CLOSE_OK: "channel.close-ok",
    QUEUE_DECLARE: "queue.declare", BASIC_PUBLISH: "basic.publish",
}


def method_name(ids):
    return METHOD_NAMES.get(tuple(ids), "method %d.%d" % tuple(ids))


def log(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------------------
# Encoding


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256, "shortstr too long"
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def field_value(v):
    """Encodes one field value with RabbitMQ's type tags: bool t, int I (or l when it does
    not fit in 32 bits), str S, bytes x, dict F, list A, None V. A (tag, raw bytes) tuple is
    sent verbatim, so tests can send any tag, including invalid ones."""
    if isinstance(v, tuple):
        tag, raw = v
        return tag + raw
    if isinstance(v, bool):
        return b"t" + struct.pack(">B", v)
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"I" + struct.pack(">i", v)
        return b"l" + struct.pack(">q", v)
    if isinstance(v, str):
        return b"S" + longstr(v)
    if isinstance(v, bytes):
        return b"x" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, list):
        body = b"".join(field_value(x) for x in v)
        return b"A" + struct.pack(">I", len(body)) + body
    if v is None:
        return b"V"
    raise TypeError("cannot encode %r" % (v,))


def table(d):
    body = b"".join(shortstr(k) + field_value(v) for k, v in d.items())
    return struct.pack(">I", len(body)) + body


def frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([FRAME_END])


def method_frame(channel, ids, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *ids) + args)


def heartbeat_frame(channel=0):
    return frame(FRAME_HEARTBEAT, channel, b"")


def content_header_frame(channel, body_size, class_id=60, props_flags=0):
    return frame(FRAME_HEADER, channel,
                 struct.pack(">HHQH", class_id, 0, body_size, props_flags))


def publish_args(exchange="", routing_key="", mandatory=False, immediate=False):
    """basic.publish arguments: reserved-1, exchange, routing key, mandatory/immediate bits."""
    return (struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key) +
            struct.pack(">B", (1 if mandatory else 0) | (2 if immediate else 0)))


def content_header_payload(size, props=None):
    """A content header frame's payload: class 60, weight 0, body size, then the property
    flags and list: none without props, else those of props (a pika BasicProperties) as
    pika encodes them."""
    if props is None:
        return struct.pack(">HHQH", 60, 0, size, 0)
    import pika.frame
    return pika.frame.Header(1, size, props).marshal()[7:-1]


def start_ok_args(user="guest", password="guest", mechanism="PLAIN", response=None,
                  client_properties=None, capabilities=None, locale="en_US"):
    """connection.start-ok arguments. capabilities=None announces the usual client
    capabilities (including authentication_failure_close, as pika does)."""
    if capabilities is None:
        capabilities = {"authentication_failure_close": True, "basic.nack": True,
                        "connection.blocked": True, "consumer_cancel_notify": True,
                        "publisher_confirms": True}
    if client_properties is None:
        client_properties = {"product": "warren-tests", "capabilities": capabilities}
    if isinstance(client_properties, dict):
        client_properties = table(client_properties)
    if response is None:
        if mechanism == "AMQPLAIN":
            # AMQPLAIN: a field table without its length prefix.
            response = table({"LOGIN": user, "PASSWORD": password})[4:]
        else:
            response = b"\0" + user.encode() + b"\0" + password.encode()
    return client_properties + shortstr(mechanism) + longstr(response) + shortstr(locale)


def tune_ok_args(channel_max, frame_max, heartbeat):
    return struct.pack(">HIH", channel_max, frame_max, heartbeat)


def open_args(vhost="/"):
    return shortstr(vhost) + shortstr("") + b"\x00"


def close_args(code=200, text="Goodbye", class_id=0, method_id=0):
    return struct.pack(">H", code) + shortstr(text) + struct.pack(">HH", class_id, method_id)


# ---------------------------------------------------------------------------------------
# Decoding


class Reader:
    """Bounded reader over a method's argument bytes."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("short method arguments")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def octet(self):
        return self.unpack(">B")[0]

    def short(self):
        return self.unpack(">H")[0]

    def long(self):
        return self.unpack(">I")[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())

    def value(self):
        tag = self.take(1)
        fixed = {b"t": ">B", b"b": ">b", b"B": ">B", b"s": ">h", b"u": ">H", b"I": ">i",
                 b"i": ">I", b"l": ">q", b"f": ">f", b"d": ">d", b"T": ">Q"}
        if tag in fixed:
            v = self.unpack(fixed[tag])[0]
            return bool(v) if tag == b"t" else v
        if tag == b"D":
            scale, val = self.unpack(">Bi")
            return (scale, val)
        if tag == b"S":
            return self.longstr().decode("utf-8", "replace")
        if tag == b"x":
            return self.longstr()
        if tag == b"F":
            return self.table()
        if tag == b"A":
            sub = Reader(self.longstr())
            out = []
            while sub.pos < len(sub.data):
                out.append(sub.value())
            return out
        if tag == b"V":
            return None
        raise ValueError("unknown field type %r" % tag)

    def table(self):
        sub = Reader(self.longstr())
        out = {}
        while sub.pos < len(sub.data):
            k = sub.shortstr()
            out[k] = sub.value()
        return out


class Closed(Exception):
    """The peer closed the socket (EOF or reset)."""


class Method:
    def __init__(self, channel, ids, args):
        self.channel = channel
        self.ids = ids
        self.args = args

    @property
    def name(self):
        return method_name(self.ids)

    def reader(self):
        return Reader(self.args)

    def close_fields(self):
        """For connection.close/channel.close: (reply-code, reply-text, class-id, method-id)."""
        r = self.reader()
        return (r.short(), r.shortstr(), r.short(), r.short())

    def __repr__(self):
        s = "<%s on channel %d" % (self.name, self.channel)
        if self.ids in (CONNECTION_CLOSE, CHANNEL_CLOSE):
            s += " %r" % (self.close_fields(),)
        return s + ">"


# ---------------------------------------------------------------------------------------
# Addresses and raw connections


def parse_addr(s):
    host, _, port = s.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))


class RawConn:
    """A raw AMQP client socket. Every read waits at most `timeout` seconds."""

    def __init__(self, addr, timeout=5.0, source=None):
        self.addr = addr
        self.timeout = timeout
        self.sock = socket.create_connection(addr, timeout=timeout, source_address=source)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frame_max = 131072
        self.start = None  # decoded connection.start: dict
        self.tune = None  # (channel_max, frame_max, heartbeat) from connection.tune

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_header(self, header=PROTOCOL_HEADER):
        self.send(header)

    def send_method(self, channel, ids, args=b""):
        self.send(method_frame(channel, ids, args))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for data from the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise Closed("connection reset by server") from None
            except socket.timeout:
                raise socket.timeout("timed out waiting for data from the server") from None
            if not chunk:
                raise Closed("connection closed by server")
            self.buf += chunk

    def read_bytes(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(n, deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_all(self, timeout=None):
        """Reads until the server closes the socket; returns everything received."""
        t = self.timeout if timeout is None else timeout
        try:
            self._fill(len(self.buf) + (1 << 30), time.monotonic() + t)
        except Closed:
            pass
        except socket.timeout:
            raise AssertionError("server did not close the socket within %.1f s; it sent %r"
                                 % (t, self.buf[:64])) from None
        out, self.buf = self.buf, b""
        return out

    def read_frame(self, timeout=None):
        """Returns (type, channel, payload)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(7, deadline)
        if self.buf.startswith(b"AMQP"):
            raise AssertionError("server sent a protocol header %r, expected a frame"
                                 % self.buf[:8])
        ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
        self._fill(7 + size + 1, deadline)
        payload = self.buf[7:7 + size]
        end = self.buf[7 + size]
        self.buf = self.buf[8 + size:]
        assert end == FRAME_END, "server frame ends with 0x%02x, not 0xCE" % end
        return ftype, channel, payload

    def read_method(self, timeout=None, skip_heartbeats=True):
        """Returns the next method frame as a Method, skipping heartbeats."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            ftype, channel, payload = self.read_frame(max(0.001, deadline - time.monotonic()))
            if ftype == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            assert ftype == FRAME_METHOD, \
                "expected a method frame, got frame type %d on channel %d" % (ftype, channel)
            cls, meth = struct.unpack(">HH", payload[:4])
            return Method(channel, (cls, meth), payload[4:])

    def expect(self, ids, channel=None, timeout=None):
        try:
            m = self.read_method(timeout)
        except socket.timeout:
            raise AssertionError("no reply within %.1f s, expected %s" % (
                self.timeout if timeout is None else timeout, method_name(ids))) from None
        assert m.ids == ids, "expected %s, got %r" % (method_name(ids), m)
        if channel is not None:
            assert m.channel == channel, "%s on channel %d, expected %d" % (
                m.name, m.channel, channel)
        return m

    def expect_connection_close(self, code, text=None, ids=None, timeout=None,
                                text_prefix=None, send_close_ok=True):
        """Reads a connection.close and checks its reply code, and its text and the failing
        method's ids when given. Sends close-ok, then expects the server to close the socket.
        send_close_ok=False skips that (after a framing error, where the server cannot find
        frames in the stream any more). Returns (code, text, class_id, method_id)."""
        try:
            m = self.read_method(timeout)
        except socket.timeout:
            raise AssertionError("no reply within %.1f s, expected connection.close %d" % (
                self.timeout if timeout is None else timeout, code)) from None
        assert m.ids == CONNECTION_CLOSE and m.channel == 0, \
            "expected connection.close %d, got %r" % (code, m)
        fields = m.close_fields()
        log("    server: connection.close %r" % (fields,))
        assert fields[0] == code, "reply code %d (%s), expected %d" % (
            fields[0], fields[1], code)
        if text is not None:
            assert fields[1] == text, "reply text %r, expected %r" % (fields[1], text)
        if text_prefix is not None:
            assert fields[1].startswith(text_prefix), "reply text %r, expected it to start %r" % (
                fields[1], text_prefix)
        if ids is not None:
            assert tuple(fields[2:]) == tuple(ids), "close names method %d.%d, expected %d.%d" % (
                fields[2], fields[3], ids[0], ids[1])
        if send_close_ok:
            try:
                self.send_method(0, CONNECTION_CLOSE_OK)
            except OSError:
                pass
            self.expect_eof()
        return fields

    def expect_channel_close(self, channel, code, text=None, ids=None, timeout=None):
        try:
            m = self.read_method(timeout)
        except socket.timeout:
            raise AssertionError("no reply within %.1f s, expected channel.close %d" % (
                self.timeout if timeout is None else timeout, code)) from None
        assert m.ids == CHANNEL_CLOSE and m.channel == channel, \
            "expected channel.close %d on channel %d, got %r" % (code, channel, m)
        fields = m.close_fields()
        log("    server: channel.close %r" % (fields,))
        assert fields[0] == code, "reply code %d (%s), expected %d" % (fields[0], fields[1], code)
        if text is not None:
            assert fields[1] == text, "reply text %r, expected %r" % (fields[1], text)
        if ids is not None:
            assert tuple(fields[2:]) == tuple(ids), "close names method %d.%d, expected %d.%d" % (
                fields[2], fields[3], ids[0], ids[1])
        return fields

    def expect_eof(self, timeout=None, allow_heartbeats=True):
        """Asserts the server closes the socket within timeout without sending anything else
        (heartbeat frames excepted when allowed). Returns the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._fill(len(self.buf) + 1, deadline)
            except Closed:
                pass
            except socket.timeout:
                raise AssertionError("server did not close the socket within %.1f s" % (
                    deadline - t0)) from None
            else:
                # Data: allowed only if it is whole heartbeat frames.
                while allow_heartbeats and self.buf.startswith(heartbeat_frame()):
                    self.buf = self.buf[8:]
                if self.buf:
                    if len(self.buf) < 8 and heartbeat_frame().startswith(self.buf):
                        continue
                    raise AssertionError("expected the socket to close, server sent %r" %
                                         self.buf[:64])
                continue
            assert not self.buf, "server sent %r before closing" % self.buf[:64]
            return time.monotonic() - t0

    def expect_silence(self, seconds):
        """Asserts the server sends no method frame and keeps the socket open for `seconds`.
        Heartbeat frames are allowed."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                ftype, channel, payload = self.read_frame(left)
            except socket.timeout:
                return
            except Closed:
                raise AssertionError("server closed the socket, expected it to stay open")
            if ftype == FRAME_HEARTBEAT:
                continue
            cls, meth = struct.unpack(">HH", payload[:4])
            m = Method(channel, (cls, meth), payload[4:])
            raise AssertionError("expected no reply, server sent %r" % (m,))

    # The handshake, step by step. Each step does what its name says and returns.

    def read_start(self):
        m = self.expect(CONNECTION_START, channel=0)
        r = m.reader()
        major, minor = r.octet(), r.octet()
        props = r.table()
        mechs = r.longstr().decode().split()
        locales = r.longstr().decode().split()
        self.start = {"version": (major, minor), "server_properties": props,
                      "mechanisms": mechs, "locales": locales}
        return self.start

    def read_tune(self):
        m = self.expect(CONNECTION_TUNE, channel=0)
        self.tune = m.reader().unpack(">HIH")
        return self.tune

    def handshake(self, upto="open", user="guest", password="guest", mechanism="PLAIN",
                  tune_ok=None, vhost="/", start_ok=None):
        """Runs the handshake up to and including step `upto`: "header", "start" (read
        connection.start), "start-ok" (sent), "tune" (read), "tune-ok" (sent), "open" (sent
        connection.open and read open-ok), "open-sent" (sent, reply not read).
        tune_ok=(channel_max, frame_max, heartbeat); default: the server's channel_max and
        frame_max with heartbeat 0 (no heartbeats)."""
        steps = ["header", "start", "start-ok", "tune", "tune-ok", "open-sent", "open"]
        assert upto in steps, upto
        stop = steps.index(upto)
        self.send_header()
        if stop < 1:
            return self
        self.read_start()
        if stop < 2:
            return self
        args = start_ok or start_ok_args(user=user, password=password, mechanism=mechanism)
        self.send_method(0, CONNECTION_START_OK, args)
        if stop < 3:
            return self
        self.read_tune()
        if stop < 4:
            return self
        if tune_ok is None:
            tune_ok = (self.tune[0], self.tune[1], 0)
        self.send_method(0, CONNECTION_TUNE_OK, tune_ok_args(*tune_ok))
        self.frame_max = tune_ok[1] or self.frame_max
        if stop < 5:
            return self
        self.send_method(0, CONNECTION_OPEN, open_args(vhost))
        if stop < 6:
            return self
        self.expect(CONNECTION_OPEN_OK, channel=0)
        return self

    def open_channel(self, channel):
        self.send_method(channel, CHANNEL_OPEN, shortstr(""))
        self.expect(CHANNEL_OPEN_OK, channel=channel)

    def close_channel(self, channel):
        self.send_method(channel, CHANNEL_CLOSE, close_args(200, "bye"))
        self.expect(CHANNEL_CLOSE_OK, channel=channel)

    def close_connection(self):
        """Client-initiated close: sends connection.close, expects close-ok, then closes the
        socket (the recipient of close-ok closes it; RabbitMQ itself waits up to 30 s)."""
        self.send_method(0, CONNECTION_CLOSE, close_args(200, "Goodbye"))
        self.expect(CONNECTION_CLOSE_OK, channel=0)
        self.close()

    def expect_refusal(self, code, ids=None, text_prefix=None, timeout=10):
        """For errors RabbitMQ answers by closing the socket without a reply (handshake
        errors, which it closes after a 3 s delay, and the cases where its reader process
        crashes): accepts exactly that, or else a connection.close with the reply code
        RabbitMQ gives the error internally (and the failing method's ids when given).
        Returns None for a silent close, else the close's fields."""
        t0 = time.monotonic()
        try:
            m = self.read_method(timeout)
        except Closed:
            log("    server closed the socket without a reply after %.1f s" % (
                time.monotonic() - t0))
            return None
        except socket.timeout:
            raise AssertionError("server neither replied nor closed the socket within %d s"
                                 % timeout) from None
        assert m.ids == CONNECTION_CLOSE and m.channel == 0, \
            "expected the socket to close (or connection.close %d), got %r" % (code, m)
        fields = m.close_fields()
        log("    server: connection.close %r" % (fields,))
        assert fields[0] == code, "reply code %d (%s), expected %d (or no reply)" % (
            fields[0], fields[1], code)
        if ids is not None:
            assert tuple(fields[2:]) == tuple(ids), "close names method %d.%d, expected %d.%d" % (
                fields[2], fields[3], ids[0], ids[1])
        if text_prefix is not None:
            assert fields[1].startswith(text_prefix), "reply text %r, expected it to start %r" % (
                fields[1], text_prefix)
        try:
            self.send_method(0, CONNECTION_CLOSE_OK)
        except OSError:
            pass
        self.expect_eof(timeout)
        return fields


def opened(addr, *channels, capabilities=None, cls=None, **conn_kw):
    """A RawConn (or an instance of cls, a subclass) to addr with the handshake done and the
    given channels open. capabilities: the client capabilities to announce in start-ok
    instead of start_ok_args' usual ones. conn_kw go to the constructor (timeout, source)."""
    c = (cls or RawConn)(addr, **conn_kw)
    if capabilities is None:
        c.handshake("open")
    else:
        c.handshake("open", start_ok=start_ok_args(capabilities=capabilities))
    for n in channels:
        c.open_channel(n)
    return c


def publish(c, channel, routing_key, body, exchange="", props=None, mandatory=False,
            immediate=False, chunk=None, header=None):
    """Sends basic.publish with content on channel of the RawConn c, one frame per send: the
    method, a content header (from props, see content_header_payload; or header, a raw
    payload to send instead) and body frames of chunk bytes (default: frame_max - 8, as
    large as frame_max allows; none for an empty body)."""
    c.send_method(channel, BASIC_PUBLISH,
                  publish_args(exchange, routing_key, mandatory, immediate))
    if header is None:
        header = content_header_payload(len(body), props)
    c.send(frame(FRAME_HEADER, channel, header))
    chunk = chunk or c.frame_max - 8
    view = memoryview(body)
    for i in range(0, len(body), chunk):
        c.send(frame(FRAME_BODY, channel, bytes(view[i:i + chunk])))


def read_content(c, channel, forbid_empty_frames=False):
    """Reads a content header and its body frames on channel of the RawConn c; returns (raw
    header payload, body, [body frame sizes]). forbid_empty_frames: an empty body frame
    fails the test."""
    ftype, ch, header = c.read_frame()
    assert (ftype, ch) == (FRAME_HEADER, channel), \
        "expected a content header on channel %d, got frame type %d on %d" % (channel, ftype, ch)
    size = struct.unpack(">Q", header[4:12])[0]
    parts = []
    got = 0
    while got < size:
        ftype, ch, payload = c.read_frame()
        assert (ftype, ch) == (FRAME_BODY, channel), \
            "expected a body frame on channel %d, got type %d on %d" % (channel, ftype, ch)
        if forbid_empty_frames:
            assert payload, "empty body frame"
        parts.append(payload)
        got += len(payload)
    body = b"".join(parts)
    assert len(body) == size, "body of %d bytes, the header said %d" % (len(body), size)
    return header, body, [len(p) for p in parts]


# ---------------------------------------------------------------------------------------
# pika's codec over raw connections: methods built as pika.spec objects, sent with a
# RawConn and their replies read by it, so that error tests check the reply code, the
# text and the class/method ids in the close.


def name_pika_methods():
    """Names every method in failure messages, by pika.spec (METHOD_NAMES names only the
    ones this module uses itself)."""
    import pika.spec
    for m in pika.spec.methods.values():
        METHOD_NAMES.setdefault(method_ids(m), m.NAME)


def method_ids(method):
    """(class-id, method-id) of a pika.spec method class or instance."""
    return (method.INDEX >> 16, method.INDEX & 0xFFFF)


def send_pika(c, channel, method):
    """Sends a pika.spec method (an instance) as a method frame on channel of the RawConn c."""
    import pika.frame
    c.send(pika.frame.Method(channel, method).marshal())


def call_pika(c, channel, method, reply):
    """Sends method on channel, expects the reply class there; returns it decoded."""
    send_pika(c, channel, method)
    m = c.expect(method_ids(reply), channel=channel)
    return reply().decode(m.args)


def channel_refused(c, channel, method, code, text):
    """Sends method; expects channel.close code/text naming that method; sends close-ok and
    reopens the channel (so the connection is shown to be alive)."""
    import pika.spec
    send_pika(c, channel, method)
    c.expect_channel_close(channel, code, text=text, ids=method_ids(method))
    send_pika(c, channel, pika.spec.Channel.CloseOk())
    c.open_channel(channel)


# ---------------------------------------------------------------------------------------
# The server under test


def server_binary():
    """The warren-server binary: $WARREN_SERVER, which must name an executable."""
    binary = os.environ.get("WARREN_SERVER")
    assert binary, "WARREN_SERVER (absolute path of warren-server) is not set"
    assert os.access(binary, os.X_OK), "WARREN_SERVER=%s is not executable" % binary
    return binary


@functools.lru_cache(maxsize=None)
def binary_sanitized():
    """True if $WARREN_SERVER is built with AddressSanitizer (see Server.sanitized)."""
    with open(server_binary(), "rb") as f:
        return b"__asan_init" in f.read()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that nothing is bound to now, below the kernel's ephemeral range: the ports
    the kernel hands to client sockets (thousands a second while the suite runs, the session
    fuzzer's included) can then never take it before the server binds it. Test servers
    choosing at random among the same ports may still meet (Server.start retries)."""
    import random
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(10000, max(low, 10001))
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(addr, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(addr, timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class PortTaken(Exception):
    """The server could not bind its port: someone took it after free_port()."""


class Server:
    """The broker a test talks to. addr is (host, port) for clients; process tests also have
    proc, pid and data_dir."""

    def __init__(self, config=None, args=(), bind="127.0.0.1", port=None, listen_args=True,
                 log_level="debug", limits=None, env=None, mgmt=None, prometheus=False):
        self.config = config
        self.mgmt = mgmt
        self.mgmt_port = None
        self.prometheus = prometheus
        self.prometheus_port = None
        self.limits = limits or {}
        self.env = env
        self.log_level = log_level
        self.listen_args = listen_args
        self.args = list(args)
        self.bind = bind
        self.port = port
        self.proc = None
        self.tmp = None
        self.stderr_path = None
        self.final_stderr = None

    @property
    def external(self):
        return self.proc is None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        if EXTERNAL:
            self.addr = parse_addr(EXTERNAL)
            # The external broker's HTTP API, for tests that pass against RabbitMQ too.
            self.mgmt_port = int(os.environ.get("WARREN_TEST_MGMT_PORT", "15672"))
            self.prometheus_port = int(os.environ.get("WARREN_TEST_PROMETHEUS_PORT", "15692"))
            return self
        self.tmp = tempfile.mkdtemp(prefix="warren-test-")
        self.data_dir = os.path.join(self.tmp, "data")
        os.mkdir(self.data_dir)
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        if self.port:
            self._spawn()
            return self
        # A free port can be taken by another test between free_port() and the server's
        # bind (make check runs tests in parallel): then the server says so and exits, and
        # it tries another.
        for attempt in range(5):
            self.port = free_port()
            try:
                self._spawn(keep_on_failure=attempt < 4)
                return self
            except PortTaken:
                log("  port %d was taken meanwhile: trying another" % self.port)
                self.stderr.close()
                os.unlink(self.stderr_path)

    def _spawn(self, keep_on_failure=False):
        """Runs the binary on self.port and self.data_dir, appending to its log. Raises
        PortTaken if keep_on_failure and the port was in use (the temp dir is kept)."""
        binary = server_binary()
        argv = [binary]
        if self.listen_args:
            argv += ["--port", str(self.port), "--bind", self.bind]
        argv += ["--data-dir", self.data_dir]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        # The HTTP API: off unless the test asks for it (mgmt=True: on a free port of its
        # own; mgmt="config": as the config file says), so that brokers running side by side
        # never compete for 15672.
        if self.mgmt is None:
            argv += ["--management-port", "0"]
        elif self.mgmt is True:
            self.mgmt_port = free_port()
            argv += ["--management-port", str(self.mgmt_port)]
        # Prometheus's listener (prometheus.tcp.port, 15692 by default): off unless asked for
        # (prometheus=True: on a free port), for the same reason.
        if self.prometheus:
            self.prometheus_port = free_port()
            argv += ["--prometheus-port", str(self.prometheus_port)]
        else:
            argv += ["--prometheus-port", "0"]
        if self.config is not None:
            path = os.path.join(self.tmp, "warren.conf")
            with open(path, "w") as f:
                f.write(format_config(self.config))
            argv += ["--config", path]
        argv += self.args
        self.stderr = open(self.stderr_path, "ab")
        log("  starting: %s" % " ".join(argv))
        limits = self.limits

        def set_limits():
            import resource
            for which, value in limits.items():
                resource.setrlimit(which, (value, value))

        env = None
        if self.env:
            env = dict(os.environ)
            env.update(self.env)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr, cwd=self.tmp, env=env,
                                     preexec_fn=set_limits if limits else None)
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind
        self.addr = (host, self.port)
        # (A port taken by someone else between free_port() and the bind shows up as an exit.)
        if not wait_port(self.addr, 15, self.proc) or self.proc.poll() is not None:
            rc = self.proc.poll()
            self.kill()
            if keep_on_failure and "Address already in use" in self.stderr_text():
                raise PortTaken()
            self.dump()
            self.discard()
            raise AssertionError("warren-server did not accept connections on %s:%d (%s)" % (
                host, self.port, "exit status %r" % rc if rc is not None else "timeout"))

    def restart(self, hard=False, timeout=10):
        """Stops the broker (SIGKILL if hard, else SIGTERM requiring exit status 0) and starts
        it again on the same port and data directory. Returns the seconds from the new
        process's start to its accepting connections."""
        if hard:
            self.proc.kill()
            self.proc.wait(timeout)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("warren-server did not exit within %d s of SIGTERM" %
                                     timeout)
            assert rc == 0, "warren-server exited with status %d after SIGTERM" % rc
        self.stderr.close()
        t0 = time.monotonic()
        self._spawn()
        return time.monotonic() - t0

    def sanitized(self):
        """True if the binary is built with AddressSanitizer, whose quarantine and
        allocator caches keep freed memory resident: RSS bounds mean nothing there (its
        LeakSanitizer checks for leaks at exit instead, which the exit-0 check catches)."""
        return binary_sanitized()

    def check_rss_growth(self, before_kib, after_kib, margin_kib, what):
        log("  RSS %s: %d KiB -> %d KiB (%+d KiB)" % (what, before_kib, after_kib,
                                                     after_kib - before_kib))
        if self.sanitized():
            log("  (AddressSanitizer build: RSS bound not checked; LeakSanitizer runs at exit)")
            return
        assert after_kib <= before_kib + margin_kib, "RSS grew by %d KiB %s (limit %d KiB)" % (
            after_kib - before_kib, what, margin_kib)

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.pid)

    def cpu_seconds(self):
        """The CPU time the server has used (utime + stime from /proc/PID/stat), in seconds."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr_text(self):
        """Everything the server wrote to stdout and stderr (also after stop())."""
        if self.final_stderr is not None:
            return self.final_stderr
        if not self.stderr_path:
            return ""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then requires exit status 0 within timeout."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("warren-server did not exit within %d s of SIGTERM" % timeout)
        self.stderr.close()
        assert rc == 0, "warren-server exited with status %d after SIGTERM" % rc
        self.final_stderr = self.stderr_text()
        self.proc = None
        cleanup_dir(self.tmp)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.stderr.close()

    def discard(self):
        """Removes the temp dir after a failure (its log was printed), unless
        $WARREN_TEST_KEEP is set."""
        if os.environ.get("WARREN_TEST_KEEP"):
            log("  kept %s (WARREN_TEST_KEEP)" % self.tmp)
        else:
            cleanup_dir(self.tmp)

    def dump(self):
        if self.stderr_path:
            log("  ---- warren-server stderr (%s) ----" % self.stderr_path)
            text = self.stderr_text()
            log(text[-20000:] if len(text) > 20000 else text)
            log("  ---- end of stderr ----")


def format_config(config):
    if isinstance(config, str):
        return config
    return "".join("%s = %s\n" % (k, v) for k, v in config.items())


def cleanup_dir(path):
    if path:
        subprocess.run(["rm", "-rf", path], check=False)


@contextlib.contextmanager
def server(config=None, args=(), bind="127.0.0.1", port=None, listen_args=True,
           log_level="debug", limits=None, env=None, mgmt=None, prometheus=False):
    """Starts a broker for the block (or uses $WARREN_TEST_ADDR). On success the server is
    stopped with SIGTERM and must exit 0; on failure it is killed and its stderr printed.
    config: a dict or text written to a file passed with --config. listen_args=False leaves
    out --port/--bind (the config file's listener is used; give its port as port=).
    log_level=None leaves out --log-level. limits: {resource.RLIMIT_*: value} set (soft and
    hard) in the server process; env: variables added to its environment. mgmt: the HTTP
    API, off by default; True serves it on a free port (srv.mgmt_port), "config" leaves
    it to the config file. prometheus: the Prometheus listener, off by default; True serves
    it on a free port (srv.prometheus_port)."""
    srv = Server(config=config, args=args, bind=bind, port=port, listen_args=listen_args,
                 log_level=log_level, limits=limits, env=env, mgmt=mgmt,
                 prometheus=prometheus).start()
    try:
        yield srv
    except BaseException:
        if not srv.external:
            srv.kill()
            srv.dump()
            srv.discard()
        raise
    if not srv.external:
        try:
            srv.stop()
        except BaseException:
            srv.dump()
            srv.discard()
            raise


def run_server_to_exit(*args, timeout=10, data_dir=False):
    """Runs warren-server with args until it exits, in a new temporary directory as its
    working directory (where a default ./var would go); data_dir=True puts --data-dir (in
    that directory) before args. Fails if it is still running after timeout seconds.
    Returns (exit status, stdout, stderr, seconds it took)."""
    argv = [server_binary(), "--management-port", "0", "--prometheus-port", "0"]  # see Server._spawn
    tmp = tempfile.mkdtemp(prefix="warren-test-")
    try:
        if data_dir:
            argv += ["--data-dir", os.path.join(tmp, "data")]
        argv += list(args)
        log("  $ " + " ".join(argv))
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %d s, expected it to exit" % (
                " ".join(argv), timeout)) from None
        took = time.monotonic() - t0
    finally:
        cleanup_dir(tmp)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    log("    exit %d after %.2f s; stdout %d bytes; stderr: %s" % (
        p.returncode, took, len(out), err.strip()[-500:]))
    return p.returncode, out, err, took


def warrenctl(*args, data_dir=None, stdin=None, cwd=None, env=None, timeout=30):
    """Runs the warrenctl binary ($WARRENCTL), with --data-dir data_dir first when given, and
    returns (exit status, stdout, stderr); a signal (a crash) fails the test. env: variables
    added to its environment."""
    binary = os.environ.get("WARRENCTL")
    assert binary and os.access(binary, os.X_OK), "WARRENCTL=%r is not executable" % binary
    argv = [binary] + (["--data-dir", data_dir] if data_dir is not None else []) + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, cwd=cwd,
                       env=dict(os.environ, **env) if env else None)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    shown = " ".join(a if isinstance(a, str) else repr(a) for a in args)  # bytes: not UTF-8
    log("  $ warrenctl %s -> %d\n%s%s" % (shown, p.returncode, out, err))
    assert p.returncode >= 0, "warrenctl died of signal %d" % -p.returncode
    return p.returncode, out, err


def ctl(srv, *args, **kw):
    """warrenctl(*args) against srv, over its data directory's socket: (exit status, stdout,
    stderr). kw: as warrenctl's."""
    return warrenctl(*args, data_dir=srv.data_dir, **kw)


def ctl_ok(srv, *args, **kw):
    """Runs warrenctl against srv; it must exit 0 with nothing on stderr. Returns stdout."""
    rc, out, err = ctl(srv, *args, **kw)
    assert rc == 0 and err == "", (args, rc, out, err)
    return out


def ctl_fails(srv, rc_want, err_want, *args, **kw):
    """Runs warrenctl against srv; it must exit rc_want with exactly err_want on stderr.
    Returns stdout."""
    rc, out, err = ctl(srv, *args, **kw)
    assert (rc, err) == (rc_want, err_want), (args, rc, out, err)
    return out


# ---------------------------------------------------------------------------------------
# Client programs

INTEROP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "..", "interop"))


def needs(program, hint):
    """The path of program on PATH; fails the test with hint (how to install it) if absent."""
    import shutil
    path = shutil.which(program)
    assert path, "%s not found: %s" % (program, hint)
    return path


def perf_binary():
    """warren-perf: $WARREN_PERF, or the one next to $WARREN_SERVER (the build directory)."""
    path = os.environ.get("WARREN_PERF")
    if not path and os.environ.get("WARREN_SERVER"):
        path = os.path.join(os.path.dirname(os.environ["WARREN_SERVER"]), "warren-perf")
    assert path, "set WARREN_PERF (or WARREN_SERVER) to find the warren-perf binary"
    assert os.access(path, os.X_OK), "%s is not executable" % path
    return path


def amqplib_dir():
    """interop/amqplib with node_modules installed (npm ci from package-lock.json): the
    source directory if it has them or is writable, else a copy of its package files and
    scripts in a temporary directory (returned second, to be removed by the caller)."""
    import shutil
    src = os.path.join(INTEROP, "amqplib")
    if os.path.isdir(os.path.join(src, "node_modules", "amqplib")):
        return src, None
    npm = needs("npm", "install Node.js and npm (apt-get install nodejs npm)")
    tmp = None
    where = src
    if not os.access(src, os.W_OK):
        tmp = tempfile.mkdtemp(prefix="warren-amqplib-")
        for f in os.listdir(src):
            if f.endswith((".json", ".js")):
                shutil.copy(os.path.join(src, f), tmp)
        where = tmp
    log("  $ npm ci (in %s)" % where)
    try:
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=where,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise AssertionError("npm ci did not finish within 300 s") from None
    assert p.returncode == 0, "npm ci failed (exit %d):\n%s%s" % (
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
    return where, tmp


def run_amqplib_script(script, *args):
    """Runs interop/amqplib/<script> with node and args (amqplib installed first if need be),
    logging what it prints: it must exit 0 with OK as its last line."""
    import shutil
    node = needs("node", "install Node.js (apt-get install nodejs)")
    where, tmp = amqplib_dir()
    try:
        argv = [node, os.path.join(where, script)] + [str(a) for a in args]
        log("  $ " + " ".join(argv))
        p = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        out = p.stdout.decode(errors="replace")
        for line in out.splitlines():
            log("    " + line)
        assert p.returncode == 0 and out.strip().endswith("OK"), "%s failed (exit %d): %s %s" % (
            script, p.returncode, out, p.stderr.decode(errors="replace"))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# pika


def pika_params(addr, **kw):
    import pika
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("stack_timeout", 10)
    kw.setdefault("blocked_connection_timeout", 10)
    kw.setdefault("connection_attempts", 1)
    creds = kw.pop("credentials", None) or pika.PlainCredentials("guest", "guest")
    return pika.ConnectionParameters(host=addr[0], port=addr[1], credentials=creds, **kw)


def pika_connect(addr, **kw):
    import pika
    return pika.BlockingConnection(pika_params(addr, **kw))


def assert_serves(addr):
    """A fresh pika connection opens, opens a channel and closes cleanly."""
    conn = pika_connect(addr)
    try:
        ch = conn.channel()
        assert ch.is_open
        ch.close()
        assert ch.is_closed
    finally:
        if conn.is_open:
            conn.close()
    assert conn.is_closed


def confirm_channel(conn):
    """A new channel of the pika connection conn, in confirm mode."""
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def fresh_queue(ch, queue, **declare_kw):
    """Deletes queue (if it is there) and declares it anew on the pika channel ch."""
    ch.queue_delete(queue)
    ch.queue_declare(queue, **declare_kw)


def fresh_queues(addr, *queues):
    """fresh_queue for each of queues, on a pika connection of its own."""
    conn = pika_connect(addr)
    ch = conn.channel()
    for q in queues:
        fresh_queue(ch, q)
    conn.close()


def cleanup(addr, *queues, exchanges=()):
    """Deletes the exchanges, then the queues, on a pika connection of its own (for names a
    test uses, so that it reruns against one external broker; missing ones are fine)."""
    conn = pika_connect(addr)
    ch = conn.channel()
    for e in exchanges:
        ch.exchange_delete(e)
    for q in queues:
        ch.queue_delete(q)
    conn.close()


def publish_confirmed(ch, queue, n, prefix="m"):
    """Publishes n messages <prefix>0 .. <prefix><n-1> to queue via the default exchange on
    the confirm channel ch: once this returns, the broker has them. Returns their bodies."""
    bodies = [("%s%d" % (prefix, i)).encode() for i in range(n)]
    for b in bodies:
        ch.basic_publish("", queue, b)
    return bodies


def fill(conn, queue, n, prefix="m"):
    """publish_confirmed on a confirm channel of its own of the pika connection conn (closed
    afterwards); returns the bodies."""
    ch = confirm_channel(conn)
    bodies = publish_confirmed(ch, queue, n, prefix)
    ch.close()
    return bodies


def message_count(ch, queue):
    """The ready messages in queue, by a passive queue.declare on the pika channel ch. (For
    x-expires RabbitMQ counts a passive declare as a use: it keeps the queue alive.)"""
    return ch.queue_declare(queue, passive=True).method.message_count


def drain(ch, queue, redelivered=False):
    """Every message now in queue, by basic.get with no-ack on the pika channel ch: a list
    of bodies, or with redelivered=True of (body, redelivered flag)."""
    out = []
    while True:
        m, _, body = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append((body, m.redelivered) if redelivered else body)


def check_dead_lettered(props, reason, queue, exchange, routing_keys, count=1,
                        original_expiration=None, first=None):
    """Asserts the headers of a message dead-lettered from queue (props: its pika
    BasicProperties) as RabbitMQ 3.10 writes them: x-death's first entry (the latest death)
    has exactly the keys count (an int of type l), reason, queue, time (a timestamp, within a
    minute of now), exchange, routing-keys, and original-expiration when the message had an
    expiration (its property is then removed); x-first-death-reason/queue/exchange name
    first (reason, queue, exchange), by default this death. Returns the x-death list."""
    import datetime
    import pika.compat
    headers = props.headers or {}
    deaths = headers.get("x-death")
    assert isinstance(deaths, list) and deaths, "no x-death list in %r" % (headers,)
    d = deaths[0]
    want = {"count": count, "reason": reason, "queue": queue, "exchange": exchange,
            "routing-keys": list(routing_keys)}
    if original_expiration is not None:
        want["original-expiration"] = original_expiration
    got = {k: v for k, v in d.items() if k != "time"}
    assert got == want, "x-death entry %r, expected %r and a time" % (d, want)
    assert type(d["count"]) is pika.compat.long, "x-death count %r is not of type l" % (
        d["count"],)
    assert isinstance(d.get("time"), datetime.datetime), "x-death time %r is not a timestamp" % (
        d.get("time"),)
    age = abs((datetime.datetime.utcnow() - d["time"]).total_seconds())
    assert age < 60, "x-death time %s is %d s from now" % (d["time"], age)
    assert props.expiration is None, "expiration %r kept on a dead-lettered message" % (
        props.expiration,)
    first = first or (reason, queue, exchange)
    got_first = tuple(headers.get("x-first-death-" + k) for k in ("reason", "queue", "exchange"))
    assert got_first == tuple(first), "x-first-death-reason/queue/exchange %r, expected %r" % (
        got_first, first)
    return deaths


def wait_until(pred, timeout, what, conns=()):
    """Waits until pred() is true, meanwhile running the I/O of the pika connections conns
    (or sleeping when there are none); fails with '<what>: not within <timeout> s'."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "%s: not within %.1f s" % (what, timeout)
        if conns:
            for conn in conns:
                conn.process_data_events(0.01)
        else:
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# Running tests


class NotRun(Exception):
    pass


def needs_process(fn):
    """Marks a test that needs control of the server process. Against an external broker
    ($WARREN_TEST_ADDR) it is reported as NOT RUN; under `make check` it always runs."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        if EXTERNAL:
            raise NotRun("needs the warren-server process; not run against the external "
                         "broker %s" % EXTERNAL)
        return fn(*a, **kw)
    wrapper.needs_process = True
    return wrapper


@functools.lru_cache(maxsize=None)
def broker_product(addr):
    """The product the broker at addr names in connection.start ("RabbitMQ", "Warren")."""
    with opened(addr) as c:
        return c.start["server_properties"].get("product")


def warren_only(why):
    """Marks a test of something Warren does and RabbitMQ does not (why says what RabbitMQ
    does instead): against an external RabbitMQ ($WARREN_TEST_ADDR) it is reported as NOT
    RUN with that reason; against Warren it always runs."""
    def mark(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            if EXTERNAL and broker_product(parse_addr(EXTERNAL)) == "RabbitMQ":
                raise NotRun("Warren only: " + why)
            return fn(*a, **kw)
        return wrapper
    return mark


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("test exceeded its time limit")


def run(tests, timeout=TEST_TIMEOUT):
    """Runs each test function (with a time limit), prints one line per test and a
    summary, and exits: 0 if all passed (tests marked NOT RUN count only with
    WARREN_TEST_ADDR set), 1 otherwise."""
    name = os.path.basename(sys.argv[0])
    log("%s: against %s" % (name, ("external broker " + EXTERNAL) if EXTERNAL
                            else os.environ.get("WARREN_SERVER", "$WARREN_SERVER (unset)")))
    signal.signal(signal.SIGALRM, _alarm)
    passed, failed, notrun = 0, 0, 0
    for t in tests:
        doc = " ".join(line.strip() for line in (t.__doc__ or "").strip().splitlines())
        log("- %s: %s" % (t.__name__, doc))
        t0 = time.monotonic()
        signal.alarm(timeout)
        try:
            t()
        except NotRun as e:
            notrun += 1
            log("  NOT RUN: %s" % e)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            log("  FAIL (%.1f s):" % (time.monotonic() - t0))
            log("".join("    " + l for l in traceback.format_exc().splitlines(True)))
        else:
            passed += 1
            log("  ok (%.1f s)" % (time.monotonic() - t0))
        finally:
            signal.alarm(0)
    if notrun:
        assert EXTERNAL, "tests were skipped without WARREN_TEST_ADDR"
        log("%s: %d tests NOT RUN against the external broker (they need the server process,"
            " or test what only Warren does)" % (name, notrun))
    log("%d passed, %d failed" % (passed, failed) + (", %d skipped" % notrun if notrun else ""))
    sys.exit(1 if failed else 0)


# ---------------------------------------------------------------------------------------
# The HTTP API (servers started with mgmt=True)


def parallel(fns):
    """Runs each fn in a thread of its own; their results (or the exception each raised), in
    order."""
    import threading
    out = [None] * len(fns)

    def run(i):
        try:
            out[i] = fns[i]()
        except Exception as e:  # noqa: BLE001 (reported by the caller's assertion)
            out[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def http(srv, method, path, body=None, auth=("guest", "guest"), headers=None, unix=False,
         timeout=10):
    """One request to srv's HTTP API: on its management port, or on the Unix socket
    <data_dir>/warren-admin.sock with unix=True (no credentials). body: a dict or list
    (sent as JSON), str or bytes. Returns (status, headers dict with lower-case names,
    decoded JSON or None for an empty body)."""
    import base64
    import http.client
    import json
    if unix:
        conn = http.client.HTTPConnection("localhost", timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(os.path.join(srv.data_dir, "warren-admin.sock"))
        conn.sock = sock
    else:
        conn = http.client.HTTPConnection("127.0.0.1", srv.mgmt_port, timeout=timeout)
    hdrs = dict(headers or {})
    if auth is not None and not unix:
        hdrs["Authorization"] = "Basic " + base64.b64encode(
            ("%s:%s" % auth).encode()).decode()
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        got = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, got, json.loads(data) if data else None
    finally:
        conn.close()
