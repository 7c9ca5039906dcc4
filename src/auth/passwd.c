/* RabbitMQ's password hashes: rabbit_password_hashing_sha256 (its default), _sha512 and
 * _md5 (older installs; read, never chosen for a new password). A hash is a 4-byte random
 * salt followed by H(salt || utf8 password), exported as the base64 of both
 * (rabbit_password.erl), so a user exported from RabbitMQ logs in here with the same
 * password. Digests come from OpenSSL, fetched once at the first login (users.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth_int.h"
#include "warren/assert.h"
#include "warren/log.h"

static const struct {
    const char *module, *digest; /* RabbitMQ's module name; OpenSSL's digest name */
    unsigned len;                /* digest bytes */
} auth_hash_algs[] = {
    [AUTH_HASH_SHA256] = {"rabbit_password_hashing_sha256", "SHA256", 32},
    [AUTH_HASH_SHA512] = {"rabbit_password_hashing_sha512", "SHA512", 64},
    [AUTH_HASH_MD5] = {"rabbit_password_hashing_md5", "MD5", 16},
};
#define AUTH_NALGS (sizeof(auth_hash_algs) / sizeof(auth_hash_algs[0]))

const char *
auth_hash_alg_name(enum auth_hash_alg alg)
{
    return auth_hash_algs[alg].module;
}

int
auth_hash_alg_parse(const char *name, enum auth_hash_alg *alg)
{
    for (size_t i = 0; i < AUTH_NALGS; i++)
        if (strcmp(name, auth_hash_algs[i].module) == 0) {
            *alg = (enum auth_hash_alg)i;
            return 0;
        }
    return -1;
}

const char *
auth_hash_digest_name(enum auth_hash_alg alg)
{
    static const char *const names[] = {"SHA-256", "SHA-512", "MD5"};
    return names[alg];
}

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

int
auth_digests_fetch(struct auth_db *db)
{
    for (size_t i = 0; i < AUTH_NALGS; i++) {
        if (db->md[i] != NULL)
            continue;
        db->md[i] = EVP_MD_fetch(NULL, auth_hash_algs[i].digest, NULL);
        if (db->md[i] == NULL) {
            char msg[64];
            snprintf(msg, sizeof(msg), "cannot fetch %s", auth_hash_digest_name(i));
            auth_log_openssl(msg);
            return -1;
        }
    }
    return 0;
}

void
auth_digests_free(struct auth_db *db)
{
    for (size_t i = 0; i < AUTH_NALGS; i++) {
        EVP_MD_free(db->md[i]);
        db->md[i] = NULL;
    }
}

/* H(salt || pw) into out. Returns 0, or -1 after logging the OpenSSL error. */
static int
auth_digest(const struct auth_db *db, enum auth_hash_alg alg, const uint8_t salt[AUTH_SALT_LEN],
            const uint8_t *pw, size_t pwlen, uint8_t *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, db->md[alg], NULL) == 1 &&
             EVP_DigestUpdate(ctx, salt, AUTH_SALT_LEN) == 1 &&
             (pwlen == 0 || EVP_DigestUpdate(ctx, pw, pwlen) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == auth_hash_algs[alg].len;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        auth_log_openssl("password digest failed");
        return -1;
    }
    return 0;
}

int
auth_user_hash_password(const struct auth_db *db, struct auth_user *u, enum auth_hash_alg alg,
                        const char *password)
{
    uint8_t h[AUTH_HASH_MAX];
    if (RAND_bytes(h, AUTH_SALT_LEN) != 1) {
        auth_log_openssl("RAND_bytes failed");
        return -1;
    }
    if (auth_digest(db, alg, h, (const uint8_t *)password, strlen(password), h + AUTH_SALT_LEN) < 0)
        return -1;
    u->alg = alg;
    u->pwhash_len = (uint8_t)(AUTH_SALT_LEN + auth_hash_algs[alg].len);
    memcpy(u->pwhash, h, u->pwhash_len);
    OPENSSL_cleanse(h, sizeof(h));
    return 0;
}

int
auth_hash_check(const struct auth_db *db, enum auth_hash_alg alg, const uint8_t *stored, size_t len,
                const uint8_t *pw, size_t pwlen)
{
    uint8_t digest[AUTH_HASH_MAX];
    size_t dlen = auth_hash_algs[alg].len;
    WR_ASSERT(len == AUTH_SALT_LEN + dlen);
    if (auth_digest(db, alg, stored, pw, pwlen, digest) < 0)
        return -1;
    int match = CRYPTO_memcmp(digest, stored + AUTH_SALT_LEN, dlen) == 0;
    OPENSSL_cleanse(digest, sizeof(digest));
    return match;
}

int
auth_hash_decode(const char *b64, enum auth_hash_alg alg, uint8_t *out, size_t *n)
{
    size_t len = strlen(b64), want = AUTH_SALT_LEN + auth_hash_algs[alg].len;
    if (len == 0) {
        *n = 0;
        return 0;
    }
    /* Base64 of want bytes is exactly this long, padding included. */
    if (len != 4 * ((want + 2) / 3))
        return -1;
    uint8_t buf[AUTH_HASH_MAX + 3];
    int got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
    /* EVP_DecodeBlock counts the bytes the padding stands for: take them off. */
    size_t pad = (b64[len - 1] == '=') + (b64[len - 2] == '=');
    if (got < 0 || (size_t)got - pad != want)
        return -1;
    memcpy(out, buf, want);
    *n = want;
    return 0;
}

void
auth_hash_encode(const uint8_t *raw, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}
