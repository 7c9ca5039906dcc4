/* The cluster's shared secret, <data_dir>/.erlang.cookie (see cookie.h): read, or made on the
 * first start. The checks and messages are Erlang's (kernel's auth.erl), so that RabbitMQ
 * operators meet what they know: "Cookie file F must be accessible by owner only". */
#include "config.h"

#include "cookie.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

/* Bytes of a file read at most: a cookie and trailing whitespace, which the limit does not
 * count. A longer file is refused. */
#define COOKIE_READ_MAX (CLUSTER_COOKIE_MAX + 64)

/* Fills buf with n random letters A-Z. 256 is not a multiple of 26: bytes of 234 (9 * 26)
 * and above are drawn again, so that every letter is as likely. Returns 0, or -1 when
 * OpenSSL has no randomness to give. */
static int
cookie_random_letters(char *buf, size_t n)
{
    unsigned char rnd[64];
    size_t have = 0;
    while (have < n) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return -1;
        for (size_t i = 0; i < sizeof(rnd) && have < n; i++)
            if (rnd[i] < 234)
                buf[have++] = (char)('A' + rnd[i] % 26);
    }
    return 0;
}

/* Writes all of buf[0..n) to fd. Returns 0 or -1 (errno set). */
static int
cookie_write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Makes path, in directory dir, a new cookie, unless a file is there already (made meanwhile by
 * another node on the same directory: then that one is kept). The cookie is written to a file of
 * its own, created with O_CREAT|O_EXCL and mode 0400, synced, then linked to path: link() does not
 * replace an existing file, and path never exists empty or half written. The directory is synced
 * then. Returns 0, or -1 with err filled. */
static int
cookie_create(const char *dir, const char *path, char *err, size_t errlen)
{
    char tmp[4200], cookie[CLUSTER_COOKIE_NEW_LEN];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (cookie_random_letters(cookie, sizeof(cookie)) < 0) {
        snprintf(err, errlen, "Failed to create cookie file %s: no random bytes from OpenSSL",
                 path);
        return -1;
    }
    unlink(tmp); /* a leftover of a crash of this pid's earlier life */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0) {
        snprintf(err, errlen, "Failed to create cookie file %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (cookie_write_all(fd, cookie, sizeof(cookie)) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "Failed to write cookie file %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    int rc = link(tmp, path);
    int link_errno = errno;
    unlink(tmp);
    if (rc < 0 && link_errno != EEXIST) {
        snprintf(err, errlen, "Failed to create cookie file %s: %s", path, strerror(link_errno));
        return -1;
    }
    /* The new name on disk too: a cookie lost in a crash would be made again, different from
     * the one the other nodes were given. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        snprintf(err, errlen, "Failed to sync directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
}

/* The name Erlang gives a file's type, for "Cookie file F is of type T". */
static const char *
cookie_type_name(mode_t mode)
{
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISLNK(mode))
        return "symlink";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "device";
    return "other";
}

int
cluster_cookie_load(const char *data_dir, char *out, size_t cap, size_t *len, char *err,
                    size_t errlen)
{
    char path[4096], buf[COOKIE_READ_MAX + 1]; /* one byte more than allowed: too long */
    if ((size_t)snprintf(path, sizeof(path), "%s/" CLUSTER_COOKIE_FILE, data_dir) >= sizeof(path)) {
        snprintf(err, errlen, "cookie file name under %.64s... is too long", data_dir);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (cookie_create(data_dir, path, err, errlen) < 0)
            return -1;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        snprintf(err, errlen, "Error when reading %s: %s", path, strerror(errno));
        return -1;
    }

    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "Error when reading %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "Cookie file %s is of type %s", path, cookie_type_name(st.st_mode));
    } else if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen, "Cookie file %s must be accessible by owner only", path);
    } else {
        do
            n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0)
            snprintf(err, errlen, "Error when reading %s: %s", path, strerror(errno));
    }
    close(fd);
    if (n < 0)
        return -1;

    size_t m = (size_t)n;
    while (m > 0 &&
           (buf[m - 1] == '\n' || buf[m - 1] == '\r' || buf[m - 1] == ' ' || buf[m - 1] == '\t'))
        m--;
    if (m == 0) {
        snprintf(err, errlen, "Cookie file %s is empty (too short cookie string)", path);
        return -1;
    }
    if (m > CLUSTER_COOKIE_MAX || (size_t)n > COOKIE_READ_MAX) {
        snprintf(err, errlen, "Cookie file %s holds more than %d bytes", path, CLUSTER_COOKIE_MAX);
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        if (buf[i] < ' ' || buf[i] > '~') {
            snprintf(err, errlen, "Cookie file %s: bad characters in cookie (byte %zu)", path, i);
            return -1;
        }
    }
    if (m >= cap) {
        snprintf(err, errlen, "Cookie file %s: a cookie of %zu bytes does not fit in %zu", path, m,
                 cap);
        return -1;
    }
    memcpy(out, buf, m);
    out[m] = '\0';
    *len = m;
    return 0;
}
