/* The user table: names, tags, password hashes, limits, the loopback-only flag, and the list
 * heads of each user's permissions (perms.c).
 *
 * Passwords are kept as RabbitMQ keeps them: a 4-byte salt and H(salt || password), H named by
 * the user's hashing algorithm (passwd.c). Users live in a chained hash table keyed by name
 * that doubles when it holds more users than buckets, so lookups stay O(1) from a handful of
 * users to many thousands. Logins compare digests with CRYPTO_memcmp and hash a dummy entry
 * for unknown names, so timing tells a peer neither the password's prefix nor whether the
 * user exists.
 *
 * Hashing waits for the first login: a user given a clear password before it keeps a copy
 * (as the configuration keeps default_pass) and the first login fetches the digests and
 * hashes every such password at once, then tells the hashed hook (so that the store gets the
 * hash). Touching OpenSSL at all costs 2.3 MiB of resident tables and providers, which a
 * broker nobody has logged in to has no use for. Hashes read from the store or a definitions
 * file need no OpenSSL until a login checks them.
 *
 * A user is refcounted: the table holds one reference, each connection another, so that a
 * user deleted or replaced while connected stays a valid object for its connections. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth_int.h"
#include "warren/log.h"

#define AUTH_BUCKETS_MIN 16

struct auth_db *
auth_db_new(void)
{
    struct auth_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        goto fail_nomem;
    db->nbuckets = AUTH_BUCKETS_MIN;
    db->buckets = calloc(db->nbuckets, sizeof(*db->buckets));
    if (db->buckets == NULL)
        goto fail_nomem;
    db->dummy = auth_user_alloc("", 0);
    if (db->dummy == NULL)
        goto fail_nomem;
    db->generation = 1;
    return db;

fail_nomem:
    log_write(LOG_ERROR, "auth", "cannot create the user table: out of memory");
    auth_db_free(db);
    return NULL;
}

/* FNV-1a. The table's contents come from the operator, not from peers, so a peer cannot
 * lengthen a chain; a keyed hash would buy nothing here. */
static uint32_t
auth_name_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

struct auth_user *
auth_user_alloc(const char *name, size_t n)
{
    struct auth_user *u = calloc(1, sizeof(*u) + n + 1);
    if (u == NULL)
        return NULL;
    memcpy(u->name, name, n);
    u->name[n] = '\0';
    u->name_len = n;
    u->hash = auth_name_hash((const uint8_t *)name, n);
    u->refs = 1;
    u->limits.max_connections = AUTH_NO_LIMIT;
    u->limits.max_channels = AUTH_NO_LIMIT;
    return u;
}

/* Frees u's pending password, wiped first. */
static void
auth_user_drop_pending(struct auth_user *u)
{
    if (u->pending_password == NULL)
        return;
    OPENSSL_cleanse(u->pending_password, strlen(u->pending_password));
    free(u->pending_password);
    u->pending_password = NULL;
}

static void
auth_user_free_tags(struct auth_user *u)
{
    for (size_t i = 0; i < u->n_tags; i++)
        free(u->tags[i]);
    free(u->tags);
    u->tags = NULL;
    u->n_tags = 0;
}

/* Frees u with its password and digest wiped. */
static void
auth_user_free(struct auth_user *u)
{
    if (u == NULL)
        return;
    auth_user_drop_pending(u);
    OPENSSL_cleanse(u->pwhash, sizeof(u->pwhash));
    auth_user_free_tags(u);
    auth_perms_free(u);
    free(u);
}

struct auth_user *
auth_user_ref(struct auth_user *u)
{
    u->refs++;
    return u;
}

void
auth_user_unref(struct auth_user *u)
{
    if (u != NULL && --u->refs == 0)
        auth_user_free(u);
}

bool
auth_user_deleted(const struct auth_user *u)
{
    return u->deleted;
}

void
auth_db_free(struct auth_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; db->buckets != NULL && i < db->nbuckets; i++) {
        struct auth_user *u = db->buckets[i];
        while (u != NULL) {
            struct auth_user *next = u->next;
            u->deleted = true;
            auth_user_unref(u);
            u = next;
        }
    }
    free(db->buckets);
    auth_user_free(db->dummy);
    auth_digests_free(db);
    free(db);
}

struct auth_user *
auth_user_find(const struct auth_db *db, const void *name, size_t n)
{
    uint32_t h = auth_name_hash(name, n);
    struct auth_user *u = db->buckets[h & (db->nbuckets - 1)];
    for (; u != NULL; u = u->next)
        if (u->hash == h && u->name_len == n && (n == 0 || memcmp(u->name, name, n) == 0))
            return u;
    return NULL;
}

struct auth_user *
auth_user_get(const struct auth_db *db, const char *name)
{
    return auth_user_find(db, name, strlen(name));
}

void
auth_user_foreach(const struct auth_db *db, void (*fn)(void *arg, struct auth_user *u), void *arg)
{
    for (size_t i = 0; i < db->nbuckets; i++)
        for (struct auth_user *u = db->buckets[i]; u != NULL; u = u->next)
            fn(arg, u);
}

/* Doubles the bucket array. On ENOMEM the table keeps working with longer chains. */
static void
auth_db_grow(struct auth_db *db)
{
    size_t nb = db->nbuckets * 2;
    struct auth_user **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < db->nbuckets; i++) {
        struct auth_user *u = db->buckets[i];
        while (u != NULL) {
            struct auth_user *next = u->next;
            u->next = b[u->hash & (nb - 1)];
            b[u->hash & (nb - 1)] = u;
            u = next;
        }
    }
    free(db->buckets);
    db->buckets = b;
    db->nbuckets = nb;
}

/* The user named name, created (no password, no tags) if it does not exist. NULL on ENOMEM
 * (logged). */
static struct auth_user *
auth_user_obtain(struct auth_db *db, const char *name)
{
    size_t n = strlen(name);
    struct auth_user *u = auth_user_find(db, name, n);
    if (u != NULL)
        return u;
    u = auth_user_alloc(name, n);
    if (u == NULL) {
        log_write(LOG_ERROR, "auth", "cannot add a user: out of memory");
        return NULL;
    }
    if (db->count >= db->nbuckets)
        auth_db_grow(db);
    struct auth_user **slot = &db->buckets[u->hash & (db->nbuckets - 1)];
    u->next = *slot;
    *slot = u;
    db->count++;
    db->generation++;
    return u;
}

int
auth_user_set_password(struct auth_db *db, struct auth_user *u, const char *password)
{
    auth_user_drop_pending(u);
    db->generation++;
    if (password == NULL) {
        u->pwhash_len = 0;
        u->alg = db->alg;
        return 0;
    }
    if (db->digests_ready)
        return auth_user_hash_password(db, u, db->alg, password);
    u->pending_password = strdup(password);
    if (u->pending_password == NULL) {
        log_write(LOG_ERROR, "auth", "cannot set a password: out of memory");
        return -1;
    }
    u->alg = db->alg;
    u->pwhash_len = 0;
    return 0;
}

int
auth_user_add(struct auth_db *db, const char *name, const char *password, bool loopback_only)
{
    bool existed = auth_user_get(db, name) != NULL;
    struct auth_user *u = auth_user_obtain(db, name);
    if (u == NULL)
        return -1;
    if (auth_user_set_password(db, u, password) < 0) {
        if (!existed)
            auth_user_delete(db, u);
        return -1;
    }
    u->loopback_only = loopback_only;
    return 0;
}

int
auth_user_put_hash(struct auth_db *db, const char *name, const char *b64, enum auth_hash_alg alg,
                   bool loopback_only, char *err, size_t errlen)
{
    uint8_t raw[AUTH_HASH_MAX];
    size_t n = 0;
    if (auth_hash_decode(b64, alg, raw, &n) < 0) {
        snprintf(err, errlen,
                 "password_hash of user '%s' is not the base64 of a %d-byte salt and a %s digest",
                 name, AUTH_SALT_LEN, auth_hash_digest_name(alg));
        return -1;
    }
    struct auth_user *u = auth_user_obtain(db, name);
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    auth_user_drop_pending(u);
    u->alg = alg;
    memcpy(u->pwhash, raw, n);
    u->pwhash_len = (uint8_t)n;
    u->loopback_only = loopback_only;
    db->generation++;
    return 0;
}

int
auth_user_set_tags(struct auth_user *u, const char *const *tags, size_t n)
{
    char **copy = n > 0 ? calloc(n, sizeof(*copy)) : NULL;
    if (n > 0 && copy == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if ((copy[i] = strdup(tags[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            goto fail;
        }
    auth_user_free_tags(u);
    u->tags = copy;
    u->n_tags = n;
    return 0;
fail:
    log_write(LOG_ERROR, "auth", "cannot set tags of user '%s': out of memory", u->name);
    return -1;
}

void
auth_user_delete(struct auth_db *db, struct auth_user *u)
{
    struct auth_user **pp = &db->buckets[u->hash & (db->nbuckets - 1)];
    while (*pp != NULL && *pp != u)
        pp = &(*pp)->next;
    if (*pp == NULL)
        return;
    *pp = u->next;
    u->next = NULL;
    db->count--;
    db->generation++;
    u->deleted = true;
    auth_perms_free(u); /* its connections, closing, may do nothing more */
    auth_user_unref(u);
}

const char *
auth_user_name(const struct auth_user *u)
{
    return u->name;
}

size_t
auth_user_tag_count(const struct auth_user *u)
{
    return u->n_tags;
}

const char *
auth_user_tag(const struct auth_user *u, size_t i)
{
    return i < u->n_tags ? u->tags[i] : NULL;
}

bool
auth_user_has_tag(const struct auth_user *u, const char *tag)
{
    for (size_t i = 0; i < u->n_tags; i++)
        if (strcmp(u->tags[i], tag) == 0)
            return true;
    return false;
}

enum auth_hash_alg
auth_user_hash_alg(const struct auth_user *u)
{
    return u->alg;
}

bool
auth_user_password_pending(const struct auth_user *u)
{
    return u->pending_password != NULL;
}

bool
auth_user_hash_b64(const struct auth_user *u, char *buf)
{
    if (u->pending_password != NULL)
        return false;
    auth_hash_encode(u->pwhash, u->pwhash_len, buf);
    return true;
}

struct auth_user_limits *
auth_user_limits(struct auth_user *u)
{
    return &u->limits;
}

uint32_t *
auth_user_conn_count(struct auth_user *u)
{
    return &u->n_conns;
}

uint32_t *
auth_user_chan_count(struct auth_user *u)
{
    return &u->n_chans;
}

uint64_t
auth_db_generation(const struct auth_db *db)
{
    return db->generation;
}

void
auth_db_set_hash_alg(struct auth_db *db, enum auth_hash_alg alg)
{
    db->alg = alg;
}

void
auth_db_set_hashed_hook(struct auth_db *db, void (*fn)(void *arg, struct auth_user *u), void *arg)
{
    db->hashed_fn = fn;
    db->hashed_arg = arg;
}

/* The first login's set-up: fetches the digests and hashes the dummy's empty password and
 * every pending one, telling the hashed hook of each. Returns 0, or -1 (logged): the
 * passwords hashed so far stay hashed, the others pending, and the next login tries again. */
static int
auth_db_start_hashing(struct auth_db *db)
{
    if (auth_digests_fetch(db) < 0)
        return -1;
    db->digests_ready = true;
    if (auth_user_hash_password(db, db->dummy, db->alg, "") < 0)
        goto fail;
    for (size_t i = 0; i < db->nbuckets; i++) {
        for (struct auth_user *u = db->buckets[i]; u != NULL; u = u->next) {
            if (u->pending_password == NULL)
                continue;
            if (auth_user_hash_password(db, u, db->alg, u->pending_password) < 0)
                goto fail;
            auth_user_drop_pending(u);
            if (db->hashed_fn != NULL)
                db->hashed_fn(db->hashed_arg, u);
        }
    }
    return 0;

fail:
    db->digests_ready = false;
    return -1;
}

int
auth_db_hash_now(struct auth_db *db)
{
    return db->digests_ready ? 0 : auth_db_start_hashing(db);
}

int
auth_password_hash(struct auth_db *db, const char *password, char *b64, enum auth_hash_alg *alg)
{
    struct auth_user *u = auth_user_alloc("", 0); /* a scratch user holds the hash */
    int rc = -1;
    if (u == NULL)
        log_write(LOG_ERROR, "auth", "cannot hash a password: out of memory");
    else if (auth_db_hash_now(db) == 0 && auth_user_hash_password(db, u, db->alg, password) == 0) {
        auth_hash_encode(u->pwhash, u->pwhash_len, b64);
        *alg = db->alg;
        rc = 0;
    }
    auth_user_unref(u);
    return rc;
}

enum auth_result
auth_db_check(struct auth_db *db, const char *mech, const struct auth_cred *cred,
              bool peer_is_loopback, const struct auth_user **user, char *why, size_t whylen)
{
    char name[128];
    log_escape(name, sizeof(name), cred->user.ptr, cred->user.len);

    /* RabbitMQ's internal backend refuses blank passwords before looking the user up. */
    if (cred->pass.len == 0) {
        snprintf(why, whylen,
                 "%s login refused: user '%s' attempted to log in with a blank password, "
                 "which is prohibited by the internal authN backend",
                 mech, name);
        return AUTH_REFUSED;
    }

    if (auth_db_hash_now(db) < 0) {
        snprintf(why, whylen, "%s login refused: user '%s' - password hashing failed", mech, name);
        return AUTH_REFUSED;
    }
    const struct auth_user *u = auth_user_find(db, cred->user.ptr, cred->user.len);
    /* A user without a password costs the dummy's hash too, and never matches. */
    const struct auth_user *against = u != NULL && u->pwhash_len > 0 ? u : db->dummy;
    int match = auth_hash_check(db, against->alg, against->pwhash, against->pwhash_len,
                                cred->pass.ptr, cred->pass.len);
    if (match < 0) {
        snprintf(why, whylen, "%s login refused: user '%s' - password hashing failed", mech, name);
        return AUTH_REFUSED;
    }
    if (u == NULL || against != u || match == 0) {
        snprintf(why, whylen, "%s login refused: user '%s' - invalid credentials", mech, name);
        return AUTH_REFUSED;
    }
    if (u->loopback_only && !peer_is_loopback) {
        snprintf(why, whylen, "%s login refused: user '%s' can only connect via localhost", mech,
                 name);
        return AUTH_REFUSED;
    }
    *user = u;
    return AUTH_OK;
}

enum auth_result
auth_login_external(struct auth_db *db, const char *name, bool peer_is_loopback,
                    const struct auth_user **user, char *why, size_t whylen)
{
    char esc[256];
    log_escape(esc, sizeof(esc), (const uint8_t *)name, strlen(name));
    const struct auth_user *u = auth_user_find(db, (const uint8_t *)name, strlen(name));
    if (u == NULL) {
        snprintf(why, whylen, "EXTERNAL login refused: user '%s' - invalid credentials", esc);
        return AUTH_REFUSED;
    }
    if (u->loopback_only && !peer_is_loopback) {
        snprintf(why, whylen, "EXTERNAL login refused: user '%s' can only connect via localhost",
                 esc);
        return AUTH_REFUSED;
    }
    *user = u;
    return AUTH_OK;
}
