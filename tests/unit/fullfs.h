/* A small file system to fill up, for the tests of what the store does on a full disk
 * (check_store, check_durable). Needs root with CAP_SYS_ADMIN; in a container, --privileged
 * or --cap-add SYS_ADMIN. */
#ifndef WARREN_TESTS_FULLFS_H
#define WARREN_TESTS_FULLFS_H

#include <stddef.h>

/* Mounts a 4 MiB tmpfs on <parent>/mnt and writes that path into dir (cap bytes); the caller
 * unmounts it. No private mount namespace: unshare() would move this thread only, not the
 * RocksDB threads earlier tests left running (CK_FORK=no). When the mount is refused, dir is
 * "" and the test fails, saying why. */
void fullfs_mount(char *dir, size_t cap, const char *parent);
/* Fills the file system holding path with a file of that name. */
void fullfs_fill(const char *path);

#endif
