/* A connection's socket counters as RabbitMQ's connection statistics show them (recv_oct,
 * recv_cnt, send_oct, send_cnt), read from the kernel's TCP_INFO (bytes received and acked,
 * segments in and out) by the statistics timer, which keeps them and their rates in the
 * connection: the kernel counts them already, so reading and writing cost nothing more, and
 * listing connections costs no system call. A socket that is not TCP (a test's socketpair)
 * shows zeros. */
#include "config.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "net_int.h"

void
conn_io_read(const struct conn *c, uint64_t out[NET_IO_N])
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(out, 0, NET_IO_N * sizeof(out[0]));
    memset(&ti, 0, sizeof(ti));
    if (c->read_ev == NULL ||
        getsockopt(event_get_fd(c->read_ev), IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return;
    out[NET_IO_RECV_OCT] = ti.tcpi_bytes_received;
    out[NET_IO_RECV_CNT] = ti.tcpi_segs_in;
    out[NET_IO_SEND_OCT] = ti.tcpi_bytes_acked;
    out[NET_IO_SEND_CNT] = ti.tcpi_segs_out;
}

void
conn_io_sample(struct conn *c, double secs)
{
    uint64_t now[NET_IO_N];
    conn_io_read(c, now);
    for (int i = 0; i < NET_IO_N; i++) {
        c->io_rate[i] = now[i] >= c->io_prev[i] ? (double)(now[i] - c->io_prev[i]) / secs : 0;
        c->io_prev[i] = now[i];
    }
}
