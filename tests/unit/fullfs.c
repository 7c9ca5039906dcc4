/* The full-disk helpers of tests/unit/fullfs.h. */
#include "config.h"

#include "fullfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

void
fullfs_mount(char *dir, size_t cap, const char *parent)
{
    snprintf(dir, cap, "%s/mnt", parent);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700") < 0) {
        int e = errno;
        dir[0] = '\0';
        ck_abort_msg("cannot mount a 4 MiB tmpfs to fill up (%s): the full-disk tests need "
                     "root with CAP_SYS_ADMIN (in a container: --privileged or --cap-add "
                     "SYS_ADMIN)",
                     strerror(e));
    }
}

void
fullfs_fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    static char block[4096];
    while (write(fd, block, sizeof(block)) > 0)
        ;
    ck_assert_int_eq(errno, ENOSPC);
    close(fd);
}
