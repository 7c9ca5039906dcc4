/* sd_notify(3) without libsystemd: the protocol is one datagram on an AF_UNIX socket, which
 * takes fewer lines than the dependency would (nginx and haproxy do the same). $NOTIFY_SOCKET
 * is a file system path, or an abstract socket name written with a leading '@'. */
#include "config.h"

#include "warren/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
sdnotify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || *path == '\0')
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the name is the n bytes, no NUL */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* MSG_DONTWAIT: a manager that does not read its queue never stalls the broker. */
    ssize_t w =
        sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int saved = errno;
    close(fd);
    errno = saved;
    return w < 0 ? -1 : 1;
}
