/* The user table: names, salted password hashes and the loopback-only flag.
 *
 * Passwords are kept as RabbitMQ keeps them (rabbit_password_hashing_sha256): a 4-byte
 * random salt and SHA-256(salt || password). Users live in a chained hash table keyed by
 * name that doubles when it holds more users than buckets, so lookups stay O(1) from a
 * handful of users to many thousands. Logins compare digests with CRYPTO_memcmp and hash a
 * dummy entry for unknown names, so timing tells a peer neither the password's prefix nor
 * whether the user exists.
 *
 * Hashing waits for the first login: a user added before it keeps a copy of its password
 * (as the configuration keeps default_pass) and the first login fetches SHA-256 and hashes
 * every such password at once. Touching OpenSSL at all costs 2.3 MiB of resident tables and
 * providers, which a broker nobody has logged in to has no use for. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth_int.h"
#include "warren/log.h"

#define AUTH_SALT_LEN 4
#define AUTH_DIGEST_LEN 32 /* SHA-256 */
#define AUTH_BUCKETS_MIN 16

struct auth_user {
    struct auth_user *next; /* hash chain */
    uint32_t hash;          /* of the name */
    bool loopback_only;     /* may log in only from a loopback address */
    char *pending_password; /* owned copy until the first login hashes it, then NULL */
    uint8_t salt[AUTH_SALT_LEN];
    uint8_t digest[AUTH_DIGEST_LEN]; /* SHA-256(salt || password) */
    size_t name_len;
    char name[]; /* NUL-terminated; same allocation */
};

struct auth_db {
    struct auth_user **buckets; /* owns the users; nbuckets is a power of two */
    size_t nbuckets;
    size_t count;
    EVP_MD *sha256;          /* NULL until the first login; fetched once, not per login */
    struct auth_user *dummy; /* owns; hashed in place of an unknown user */
};

/* Logs msg with the OpenSSL error queue drained into the same line. */
static void
auth_log_openssl(const char *msg)
{
    char line[512];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s", msg);
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (n + 3 < sizeof(line)) {
            memcpy(line + n, ": ", 3);
            n += 2;
            ERR_error_string_n(e, line + n, sizeof(line) - n);
            n += strlen(line + n);
        }
    }
    log_write(LOG_ERROR, "auth", "%s", line);
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

/* SHA-256(salt || pw) into out. Returns 0, or -1 after logging the OpenSSL error. */
static int
auth_digest(const struct auth_db *db, const uint8_t salt[AUTH_SALT_LEN], const uint8_t *pw,
            size_t pwlen, uint8_t out[AUTH_DIGEST_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, db->sha256, NULL) == 1 &&
             EVP_DigestUpdate(ctx, salt, AUTH_SALT_LEN) == 1 &&
             (pwlen == 0 || EVP_DigestUpdate(ctx, pw, pwlen) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == AUTH_DIGEST_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        auth_log_openssl("SHA-256 failed");
        return -1;
    }
    return 0;
}

/* Sets u's salt and digest for password. Returns 0 or -1 (logged). */
static int
auth_user_hash_password(const struct auth_db *db, struct auth_user *u, const char *password)
{
    if (RAND_bytes(u->salt, AUTH_SALT_LEN) != 1) {
        auth_log_openssl("RAND_bytes failed");
        return -1;
    }
    return auth_digest(db, u->salt, (const uint8_t *)password, strlen(password), u->digest);
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

/* Gives u the password: hashed now once logins have started, else kept until the first.
 * Returns 0 or -1 (logged). */
static int
auth_user_set_password(const struct auth_db *db, struct auth_user *u, const char *password)
{
    auth_user_drop_pending(u);
    if (db->sha256 != NULL)
        return auth_user_hash_password(db, u, password);
    u->pending_password = strdup(password);
    if (u->pending_password == NULL) {
        log_write(LOG_ERROR, "auth", "cannot set a password: out of memory");
        return -1;
    }
    return 0;
}

/* Allocates a user named name[0..n) with no password set. Returns NULL on ENOMEM. */
static struct auth_user *
auth_user_alloc(const char *name, size_t n)
{
    struct auth_user *u = calloc(1, sizeof(*u) + n + 1);
    if (u == NULL)
        return NULL;
    memcpy(u->name, name, n);
    u->name[n] = '\0';
    u->name_len = n;
    u->hash = auth_name_hash((const uint8_t *)name, n);
    return u;
}

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
    return db;

fail_nomem:
    log_write(LOG_ERROR, "auth", "cannot create the user table: out of memory");
    auth_db_free(db);
    return NULL;
}

/* Frees u with its password and digest wiped. */
static void
auth_user_free(struct auth_user *u)
{
    if (u == NULL)
        return;
    auth_user_drop_pending(u);
    OPENSSL_cleanse(u->digest, sizeof(u->digest));
    free(u);
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
            auth_user_free(u);
            u = next;
        }
    }
    free(db->buckets);
    auth_user_free(db->dummy);
    EVP_MD_free(db->sha256);
    free(db);
}

/* Finds the user named p[0..n), or NULL. */
static struct auth_user *
auth_user_find(const struct auth_db *db, const uint8_t *p, size_t n)
{
    uint32_t h = auth_name_hash(p, n);
    struct auth_user *u = db->buckets[h & (db->nbuckets - 1)];
    for (; u != NULL; u = u->next)
        if (u->hash == h && u->name_len == n && (n == 0 || memcmp(u->name, p, n) == 0))
            return u;
    return NULL;
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

int
auth_user_add(struct auth_db *db, const char *name, const char *password, bool loopback_only)
{
    size_t n = strlen(name);
    struct auth_user *u = auth_user_find(db, (const uint8_t *)name, n);
    if (u != NULL) {
        /* Replace in place: connections that borrow u keep a valid pointer. */
        if (auth_user_set_password(db, u, password) < 0)
            return -1;
        u->loopback_only = loopback_only;
        return 0;
    }

    u = auth_user_alloc(name, n);
    if (u == NULL) {
        log_write(LOG_ERROR, "auth", "cannot add a user: out of memory");
        return -1;
    }
    if (auth_user_set_password(db, u, password) < 0) {
        auth_user_free(u);
        return -1;
    }
    u->loopback_only = loopback_only;
    if (db->count >= db->nbuckets)
        auth_db_grow(db);
    struct auth_user **slot = &db->buckets[u->hash & (db->nbuckets - 1)];
    u->next = *slot;
    *slot = u;
    db->count++;
    return 0;
}

const char *
auth_user_name(const struct auth_user *u)
{
    return u->name;
}

/* The first login's set-up: fetches SHA-256 and hashes the dummy's empty password and every
 * pending one. Returns 0, or -1 (logged): the passwords hashed so far stay hashed, the others
 * pending, and the next login tries again. */
static int
auth_db_start_hashing(struct auth_db *db)
{
    db->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (db->sha256 == NULL) {
        auth_log_openssl("cannot fetch SHA-256");
        return -1;
    }
    if (auth_user_hash_password(db, db->dummy, "") < 0)
        goto fail;
    for (size_t i = 0; i < db->nbuckets; i++) {
        for (struct auth_user *u = db->buckets[i]; u != NULL; u = u->next) {
            if (u->pending_password == NULL)
                continue;
            if (auth_user_hash_password(db, u, u->pending_password) < 0)
                goto fail;
            auth_user_drop_pending(u);
        }
    }
    return 0;

fail:
    EVP_MD_free(db->sha256);
    db->sha256 = NULL;
    return -1;
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

    const struct auth_user *u = auth_user_find(db, cred->user.ptr, cred->user.len);
    const struct auth_user *against = u != NULL ? u : db->dummy;
    uint8_t digest[AUTH_DIGEST_LEN];
    if ((db->sha256 == NULL && auth_db_start_hashing(db) < 0) ||
        auth_digest(db, against->salt, cred->pass.ptr, cred->pass.len, digest) < 0) {
        snprintf(why, whylen, "%s login refused: user '%s' - password hashing failed", mech, name);
        return AUTH_REFUSED;
    }
    bool match = CRYPTO_memcmp(digest, against->digest, AUTH_DIGEST_LEN) == 0;
    OPENSSL_cleanse(digest, sizeof(digest));
    if (u == NULL || !match) {
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
