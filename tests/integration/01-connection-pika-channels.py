"""pika's BlockingConnection against the broker: connect, open and close 100 channels one by
one checking pika's view of each, close cleanly; channel numbers are reused after close
(pika hands out the lowest free number, and the broker must accept a reopened number).
Checked against RabbitMQ 3.10."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_test as wt  # noqa: E402


def test_100_channels():
    """open 100 channels, check each is open, close each, check it is closed"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        assert conn.is_open
        channels = []
        for i in range(100):
            ch = conn.channel()
            assert ch.is_open, "channel %d not open" % ch.channel_number
            assert not ch.is_closed
            channels.append(ch)
        numbers = [ch.channel_number for ch in channels]
        assert numbers == list(range(1, 101)), numbers
        wt.log("  opened channels 1..100")
        for ch in channels:
            ch.close()
            assert ch.is_closed, "channel %d not closed" % ch.channel_number
            assert not ch.is_open
        wt.log("  closed all 100 channels")
        assert conn.is_open
        conn.close()
        assert conn.is_closed
        wt.assert_serves(srv.addr)


def test_channel_numbers_reused():
    """a closed channel's number is handed out again and the broker accepts it"""
    with wt.server() as srv:
        conn = wt.pika_connect(srv.addr)
        chs = [conn.channel() for _ in range(5)]
        assert [c.channel_number for c in chs] == [1, 2, 3, 4, 5]
        chs[2].close()
        assert chs[2].is_closed
        again = conn.channel()
        assert again.channel_number == 3, again.channel_number
        assert again.is_open
        # The same number, explicitly, after a close.
        chs[0].close()
        explicit = conn.channel(channel_number=1)
        assert explicit.is_open and explicit.channel_number == 1
        # Open and close the same number many times.
        for _ in range(50):
            explicit.close()
            assert explicit.is_closed
            explicit = conn.channel(channel_number=1)
            assert explicit.is_open
        wt.log("  channels 3 and 1 reopened; channel 1 closed and reopened 50 times")
        conn.close()
        assert conn.is_closed

        # The same with raw frames: channel.open on a number whose close-ok was sent.
        with wt.RawConn(srv.addr) as c:
            c.handshake()
            for _ in range(3):
                c.open_channel(7)
                c.close_channel(7)
            c.close_connection()
        wt.log("  raw: channel 7 opened and closed 3 times")


def test_channels_in_parallel_connections():
    """several pika connections, each with its own channels, closed in another order"""
    with wt.server() as srv:
        conns = [wt.pika_connect(srv.addr) for _ in range(5)]
        chans = [[c.channel() for _ in range(10)] for c in conns]
        for cs in chans:
            assert [ch.channel_number for ch in cs] == list(range(1, 11))
        for c in reversed(conns):
            c.close()
            assert c.is_closed
        for cs in chans:
            assert all(ch.is_closed for ch in cs)
        wt.assert_serves(srv.addr)


if __name__ == "__main__":
    wt.run([test_100_channels, test_channel_numbers_reused,
            test_channels_in_parallel_connections])
