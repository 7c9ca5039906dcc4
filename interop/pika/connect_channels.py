#!/usr/bin/python3
"""pika against a broker at HOST:PORT (default 127.0.0.1:5672): log in as guest, open 10
channels, flow(True) on each, reuse closed channel numbers, publish to the default exchange,
close; then a wrong password and an unknown vhost, which must be refused with 403 and 530.
Prints one line per step; the output is the same for RabbitMQ 3.10 and Warren. Exit 0 when
every step behaved.

    /usr/bin/python3 interop/pika/connect_channels.py 127.0.0.1:5682
"""

import sys

import pika
import pika.exceptions as pe


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5672").rpartition(":")
    host = host or "127.0.0.1"

    def params(**kw):
        return pika.ConnectionParameters(host=host, port=int(port), connection_attempts=1,
                                         socket_timeout=5, stack_timeout=10,
                                         blocked_connection_timeout=10, **kw)

    conn = pika.BlockingConnection(params())
    print("connected")
    chans = [conn.channel() for _ in range(10)]
    assert [c.channel_number for c in chans] == list(range(1, 11))
    assert all(c.is_open for c in chans)
    print("opened channels 1-10")
    assert all(c.flow(True) is True for c in chans)
    print("flow(True) on each: True")
    chans[3].close()
    assert chans[3].is_closed
    again = conn.channel()
    assert again.channel_number == 4 and again.is_open
    print("closed channel 4, reopened as channel 4")
    again.basic_publish(exchange="", routing_key="interop-nowhere", body=b"hello")
    print("published to the default exchange")
    for c in chans + [again]:
        if c.is_open:
            c.close()
    conn.close()
    assert conn.is_closed
    print("closed")

    try:
        pika.BlockingConnection(params(credentials=pika.PlainCredentials("guest", "wrong")))
        print("wrong password: ACCEPTED")
        return 1
    except (pe.ProbableAuthenticationError, pe.AuthenticationError) as e:
        assert "(403)" in str(e), e
        print("wrong password: refused with 403 ACCESS_REFUSED")
    try:
        pika.BlockingConnection(params(virtual_host="nope"))
        print("vhost nope: ACCEPTED")
        return 1
    except pe.ProbableAccessDeniedError as e:
        assert "(530) 'NOT_ALLOWED - vhost nope not found'" in str(e), e
        print("vhost nope: refused with 530 NOT_ALLOWED - vhost nope not found")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
