/* warren-perf's AMQP 0-9-1 client connection: one TCP socket per producer or consumer thread
 * (with --tls, an OpenSSL session on it: same buffers, SSL_read and SSL_write for recv and
 * send),
 * the handshake (PLAIN login, tune, connection.open, channel 1), batched output (callers append
 * frames to a flat buffer, one send() flushes it), and input read in large chunks and split
 * into frames with libwarren's codec (frame_parse, wire_method_decode): there is no second
 * codec here. Everything happens on channel 1. The socket is used with poll() and
 * MSG_DONTWAIT, so every wait has a timeout and a run that is being torn down never hangs in
 * send() or recv(). Server-initiated connection.close and channel.close are answered with
 * their close-ok and turned into an error that names the reply code and text. */
#ifndef WARREN_PERF_CLIENT_H
#define WARREN_PERF_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/frame.h"
#include "warren/wire.h"
#include "warren/wire_gen.h"

struct perf_opts;
struct ssl_st;

#define PERF_CHANNEL 1
#define PERF_RPC_TIMEOUT_MS 10000 /* a synchronous method's reply, the handshake's steps */

struct perf_conn {
    int fd;                   /* -1 when closed */
    struct ssl_st *ssl;       /* owns with --tls; NULL otherwise */
    const char *name;         /* "producer 0", for messages: borrows */
    const atomic_bool *abort; /* borrows: once true, waits give up at once */
    uint8_t *rbuf;            /* owns; unparsed input is rbuf[rpos, rlen) */
    size_t rcap, rpos, rlen;
    uint8_t *wbuf; /* owns; output not yet sent is wbuf[0, wlen) */
    size_t wcap, wlen;
    uint32_t frame_max; /* negotiated, including the 8 bytes of frame overhead */
    bool open;          /* channel 1 open and usable: close it politely */
    bool blocked;       /* connection.blocked received and not yet unblocked */
    char server[128];   /* "RabbitMQ 3.10.8", from connection.start */
    char err[512];      /* the last error, for the caller to report */
};

/* One frame for channel 1 as perf_conn_next() hands it over. The method, content header and
 * payload borrow the connection's input buffer until the next read. */
struct perf_in {
    struct frame f;
    struct wire_method m;               /* when f.type == WIRE_FRAME_METHOD */
    struct frame_content_header header; /* when f.type == WIRE_FRAME_HEADER */
    struct wire_basic_props props;      /* its properties, decoded */
};

/* Connects to the broker o names, logs in, opens channel 1. Returns 0, or -1 with c->err set
 * (the socket is then closed and the buffers freed). name and abort are borrowed. */
int perf_conn_open(struct perf_conn *c, const struct perf_opts *o, const char *name,
                   const atomic_bool *abort);
/* Closes channel 1 and the connection with their handshakes when the connection is still
 * healthy (each step waits at most timeout_ms), then the socket; frees the buffers. Deliveries
 * and confirms arriving meanwhile are dropped. Safe to call twice. */
void perf_conn_close(struct perf_conn *c, int timeout_ms);

/* Appends a method frame for channel ch to the output buffer (growing it). */
void perf_conn_put_method(struct perf_conn *c, uint16_t ch, const struct wire_method *m);
/* Appends raw bytes (prebuilt frames) to the output buffer. */
void perf_conn_put_bytes(struct perf_conn *c, const void *p, size_t n);
/* Makes room for n more output bytes and returns where they go; perf_conn_commit() them. */
uint8_t *perf_conn_reserve(struct perf_conn *c, size_t n);
void perf_conn_commit(struct perf_conn *c, size_t n);
/* Sends the whole output buffer. 0, or -1 with c->err set (socket error, or abort). */
int perf_conn_flush(struct perf_conn *c);

/* Writes a whole method frame into buf[0, cap). Returns its length; asserts it fits. */
size_t perf_frame_method(uint8_t *buf, size_t cap, uint16_t ch, const struct wire_method *m);
/* Writes a whole class-basic content header frame. Returns its length; asserts it fits. */
size_t perf_frame_content_header(uint8_t *buf, size_t cap, uint16_t ch, uint64_t body_size,
                                 const struct wire_basic_props *props);

/* The next frame on channel 1, waiting at most timeout_ms (0: only what has arrived already).
 * Heartbeats, connection.blocked/unblocked and other channel 0 traffic are handled here.
 * Returns 1 with *in set, 0 when nothing came in time, or -1 with c->err set: a socket error,
 * a malformed frame, or a connection.close or channel.close from the server (answered with
 * its close-ok first). */
int perf_conn_next(struct perf_conn *c, int timeout_ms, struct perf_in *in);

/* Whether a whole frame is already buffered (perf_conn_next(c, 0, ..) would return it
 * without reading the socket). Consumers flush their acks when it is false. */
bool perf_conn_buffered(const struct perf_conn *c);

/* Sends req on channel 1 and waits for the method `want` (other frames are dropped). On 0,
 * *reply (when not NULL) holds it, borrowing the input buffer. -1 with c->err set on error or
 * after timeout_ms. */
int perf_conn_rpc(struct perf_conn *c, const struct wire_method *req, enum wire_method_id want,
                  struct wire_method *reply, int timeout_ms);

/* Sets c->err from a format; returns -1. */
int perf_conn_fail(struct perf_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

uint64_t perf_now_ns(void);

#endif
