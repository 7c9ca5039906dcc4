/* The durable store: one RocksDB database under the data directory. This layer knows the
 * on-disk format and its version; the messaging core will persist its queue commands here.
 * A data directory written by a newer or unknown format is refused, never rewritten. */
#ifndef WARREN_STORE_H
#define WARREN_STORE_H

#include <stddef.h>

/* On-disk format understood by this build. Bumped on any incompatible change. */
#define STORE_FORMAT_VERSION 1

struct store;

/* Opens (creating if needed) the database in <data_dir>/db, creating data_dir too. Returns
 * NULL after writing the reason to err: RocksDB's error, a newer format, or a database
 * without Warren's format marker (corrupt or someone else's). */
struct store *store_open(const char *data_dir, char *err, size_t errlen);

/* Flushes memtables to disk and closes. Returns 0, or -1 with the error in err (the database
 * is closed either way: the WAL still holds every synced write). */
int store_close(struct store *st, char *err, size_t errlen);

#endif
