/* Reads on the event loop: point lookups and ordered walks over a key range, for recovery
 * and for paging queue entries back in. They are plain synchronous RocksDB reads and see
 * every completed write (a batch's done callback runs after its write reached the memtable).
 * Walks set an upper bound, so RocksDB stops at the end of the range instead of stepping
 * over the tombstones beyond it, and do not fill the block cache: what is walked once (a
 * recovery, a page of messages) would only push out what is read often. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "store_int.h"
#include "warren/store.h"

int
store_get(struct store *st, const void *key, size_t klen, char **val, size_t *vlen, char *err,
          size_t errlen)
{
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(st->db, st->ro, key, klen, &rerr);
    if (rerr != NULL) {
        snprintf(err, errlen, "store %s: read failed: %s", st->path, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (ps == NULL)
        return 0;
    size_t n;
    const char *v = rocksdb_pinnableslice_value(ps, &n);
    char *copy = malloc(n + 1);
    if (copy == NULL) {
        rocksdb_pinnableslice_destroy(ps);
        snprintf(err, errlen, "store %s: out of memory reading a %zu-byte value", st->path, n);
        return -1;
    }
    if (n != 0)
        memcpy(copy, v, n);
    copy[n] = '\0';
    rocksdb_pinnableslice_destroy(ps);
    *val = copy;
    *vlen = n;
    return 1;
}

/* Walks from begin up to end (exclusive; NULL: none), stopping at the first key that does
 * not start with prefix (plen 0: no such check). Returns as store_iter_prefix. */
static int
store_iter(struct store *st, const void *begin, size_t blen, const void *end, size_t elen,
           const void *prefix, size_t plen, store_iter_fn fn, void *arg, char *err, size_t errlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (ro == NULL) {
        snprintf(err, errlen, "store %s: out of memory reading", st->path);
        return -1;
    }
    rocksdb_readoptions_set_fill_cache(ro, 0);
    if (end != NULL)
        rocksdb_readoptions_set_iterate_upper_bound(ro, end, elen);
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, ro);
    int rc = 0;
    for (rocksdb_iter_seek(it, begin, blen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (plen != 0 && (klen < plen || memcmp(k, prefix, plen) != 0))
            break;
        if (fn(arg, k, klen, v, vlen) != 0) {
            rc = 1;
            break;
        }
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr != NULL) {
            snprintf(err, errlen, "store %s: read failed: %s", st->path, rerr);
            rocksdb_free(rerr);
            rc = -1;
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int
store_iter_range(struct store *st, const void *begin, size_t blen, const void *end, size_t elen,
                 store_iter_fn fn, void *arg, char *err, size_t errlen)
{
    return store_iter(st, begin, blen, end, elen, NULL, 0, fn, arg, err, errlen);
}

int
store_iter_prefix(struct store *st, const void *prefix, size_t plen, store_iter_fn fn, void *arg,
                  char *err, size_t errlen)
{
    /* The first key after every key with the prefix: drop trailing 0xff bytes, add one to
     * the last. A prefix of 0xff bytes only has no such key: the walk checks the prefix. */
    uint8_t stack[64], *succ = plen <= sizeof(stack) ? stack : malloc(plen);
    if (succ == NULL) {
        snprintf(err, errlen, "store %s: out of memory reading", st->path);
        return -1;
    }
    size_t slen = plen;
    if (plen != 0)
        memcpy(succ, prefix, plen);
    while (slen > 0 && succ[slen - 1] == 0xff)
        slen--;
    if (slen > 0)
        succ[slen - 1]++;
    int rc = store_iter(st, prefix, plen, slen > 0 ? succ : NULL, slen, prefix, slen > 0 ? 0 : plen,
                        fn, arg, err, errlen);
    if (succ != stack)
        free(succ);
    return rc;
}
