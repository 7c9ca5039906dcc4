/* systemd's service notification protocol (sd_notify(3)) for Type=notify units, spoken
 * directly: a datagram of "KEY=value" lines sent to the AF_UNIX socket named by
 * $NOTIFY_SOCKET. Outside systemd (no $NOTIFY_SOCKET) nothing is sent. */
#ifndef WARREN_SDNOTIFY_H
#define WARREN_SDNOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET without waiting. Returns 1 when
 * sent, 0 when $NOTIFY_SOCKET is not set, -1 with errno set when it cannot be sent. */
int sdnotify_send(const char *state);

#endif
