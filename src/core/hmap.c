/* The intrusive hash map of include/warren/hmap.h: chained buckets, a power-of-two bucket
 * array that doubles when the map holds as many entries as buckets (load factor 1) and never
 * shrinks (so removing the current entry during iteration is safe), and SipHash-1-3 under a
 * 128-bit key drawn from the kernel the first time a key is hashed: every process, the server
 * and each unit test alike, gets hashes a client cannot predict, so names it picks cannot pile
 * into one bucket. There is no call to forget. */
#include "config.h"

#include "warren/hmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "warren/assert.h"
#include "warren/log.h"

/* The process key (hmap_hash): drawn once, on first use. */
static uint8_t hmap_key[16];
static bool hmap_key_drawn;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t
le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* SipHash-1-3 (one compression round per 8-byte word, three finalisation rounds), as in
 * Aumasson and Bernstein's reference implementation with its 64-bit output. */
uint64_t
hmap_siphash13(const uint8_t sipkey[16], const void *key, size_t klen)
{
    const uint8_t *p = key;
    size_t i, nwords = klen & ~(size_t)7;
    uint64_t k0 = le64(sipkey), k1 = le64(sipkey + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    uint64_t m, b = (uint64_t)klen << 56;

    for (i = 0; i < nwords; i += 8) {
        m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (; i < klen; i++)
        b |= (uint64_t)p[i] << (8 * (i & 7));
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Draws the process key from getrandom(2), not OpenSSL: the broker does not touch OpenSSL
 * before the first login (see src/auth/users.c). Up to 256 bytes come whole once the kernel's
 * pool is ready, which it is long before any client can connect. */
static void
hmap_key_draw(void)
{
    ssize_t n;

    hmap_key_drawn = true;
    do
        n = getrandom(hmap_key, sizeof hmap_key, 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof hmap_key) {
        memset(hmap_key, 0, sizeof hmap_key);
        log_msg(LOG_ERROR,
                "hash map key: getrandom failed (%s); names chosen by clients can now be made "
                "to collide",
                n < 0 ? strerror(errno) : "short read");
    }
}

uint64_t
hmap_hash(const void *key, size_t klen)
{
    if (!hmap_key_drawn)
        hmap_key_draw();
    return hmap_siphash13(hmap_key, key, klen);
}

void
hmap_init(struct hmap *m)
{
    m->buckets = NULL;
    m->n_buckets = 0;
    m->count = 0;
}

void
hmap_clear(struct hmap *m)
{
    free(m->buckets);
    hmap_init(m);
}

void
hmap_drain(struct hmap *m, void (*fn)(struct hmap_entry *e))
{
    struct hmap_iter it;
    struct hmap_entry *e;
    hmap_iter_init(&it, m);
    while ((e = hmap_iter_next(&it)) != NULL) {
        hmap_remove(m, e);
        fn(e);
    }
    hmap_clear(m);
}

/* Moves every entry into a bucket array twice as large (8 to start). 0, or -1 on ENOMEM with
 * the map unchanged. */
static int
hmap_grow(struct hmap *m)
{
    size_t n = m->n_buckets != 0 ? m->n_buckets * 2 : 8;
    struct hmap_entry **b, *e, *next;

    if (n < m->n_buckets || (b = calloc(n, sizeof *b)) == NULL)
        return -1;
    for (size_t i = 0; i < m->n_buckets; i++) {
        for (e = m->buckets[i]; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
    return 0;
}

int
hmap_insert(struct hmap *m, struct hmap_entry *e, const void *key, size_t klen)
{
    struct hmap_entry **head;

    /* Past load factor 1 the map grows; if it cannot, a map that has buckets takes the entry
     * anyway (longer chains until the next insert grows it), so only an empty map fails. */
    if (m->count >= m->n_buckets && hmap_grow(m) < 0 && m->n_buckets == 0)
        return -1;
    e->hash = hmap_hash(key, klen);
    e->key = key;
    e->klen = (uint32_t)klen;
    head = &m->buckets[e->hash & (m->n_buckets - 1)];
    e->next = *head;
    *head = e;
    m->count++;
    return 0;
}

struct hmap_entry *
hmap_find(const struct hmap *m, const void *key, size_t klen)
{
    uint64_t h;
    struct hmap_entry *e;

    if (m->count == 0)
        return NULL;
    h = hmap_hash(key, klen);
    for (e = m->buckets[h & (m->n_buckets - 1)]; e != NULL; e = e->next)
        if (e->hash == h && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
            return e;
    return NULL;
}

void
hmap_remove(struct hmap *m, struct hmap_entry *e)
{
    struct hmap_entry **pp = &m->buckets[e->hash & (m->n_buckets - 1)];

    while (*pp != e) {
        WR_ASSERT(*pp != NULL); /* e is not in m */
        pp = &(*pp)->next;
    }
    *pp = e->next;
    e->next = NULL;
    m->count--;
}

void
hmap_iter_init(struct hmap_iter *it, const struct hmap *m)
{
    it->m = m;
    it->bucket = 0;
    it->next = NULL;
}

struct hmap_entry *
hmap_iter_next(struct hmap_iter *it)
{
    struct hmap_entry *e;

    while (it->next == NULL) {
        if (it->bucket >= it->m->n_buckets)
            return NULL;
        it->next = it->m->buckets[it->bucket++];
    }
    e = it->next;
    it->next = e->next; /* taken now, so the caller may remove e */
    return e;
}

/* v's 64 bits in reverse order. */
static uint64_t
hmap_bits_reversed(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
    v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
    v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
    return __builtin_bswap64(v);
}

size_t
hmap_scan(const struct hmap *m, size_t cursor, void (*fn)(const struct hmap_entry *e, void *arg),
          void *arg)
{
    if (m->n_buckets == 0)
        return 0;
    size_t mask = m->n_buckets - 1;
    for (const struct hmap_entry *e = m->buckets[cursor & mask]; e != NULL; e = e->next)
        fn(e, arg);
    /* The next index in reverse-binary order: the bits above the mask set, so that adding
     * one to the reversed cursor carries past them, and they come back 0. */
    return (size_t)hmap_bits_reversed(hmap_bits_reversed((uint64_t)cursor | ~(uint64_t)mask) + 1);
}
