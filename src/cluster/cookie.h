/* The cluster's shared secret, RabbitMQ's Erlang cookie: <data_dir>/.erlang.cookie, the same
 * file name and rules as Erlang's (a node makes one of 20 random uppercase letters on its
 * first start; a file that group or others may access is refused). Nodes of one cluster
 * must have the same cookie: copy one node's file to the others before they first start. */
#ifndef WARREN_CLUSTER_COOKIE_H
#define WARREN_CLUSTER_COOKIE_H

#include <stddef.h>

#define CLUSTER_COOKIE_FILE ".erlang.cookie"
#define CLUSTER_COOKIE_MAX 255 /* bytes of a cookie, Erlang's limit */
#define CLUSTER_COOKIE_NEW_LEN 20

/* Reads the cookie from <data_dir>/.erlang.cookie into out (cap bytes; more than
 * CLUSTER_COOKIE_MAX is always enough), NUL-terminated, its length in *len, trailing
 * whitespace (newlines, spaces, tabs) left out. When the file does not exist, makes it first:
 * CLUSTER_COOKIE_NEW_LEN random letters A-Z, mode 0400, appearing whole or not at all (two
 * nodes starting at once on the same directory read the same one). Refuses, as Erlang does, a
 * file that is not a regular file or that group or others may access, an empty one and one
 * with characters other than printable ASCII; and one longer than CLUSTER_COOKIE_MAX bytes.
 * Returns 0, or -1 with the reason in err (the file's name in it). */
int cluster_cookie_load(const char *data_dir, char *out, size_t cap, size_t *len, char *err,
                        size_t errlen);

#endif
