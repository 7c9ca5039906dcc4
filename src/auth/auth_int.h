/* Inside src/auth/: the user and table structures shared by users.c (the table), passwd.c
 * (RabbitMQ's password hash formats), perms.c (permissions) and the SASL-style mechanisms
 * (mech_*.c). A mechanism only turns a start-ok response into a user name and a password;
 * users.c alone decides whether they log in. */
#ifndef WARREN_AUTH_INT_H
#define WARREN_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/auth.h"
#include "warren/wire.h"

struct evp_md_st;
struct auth_perm;
struct auth_topic_perm;

struct auth_user {
    struct auth_user *next; /* hash chain */
    uint32_t hash;          /* of the name */
    uint32_t refs;          /* the table's, and one per connection */
    bool loopback_only;     /* may log in only from a loopback address */
    bool deleted;           /* no longer in the table */
    enum auth_hash_alg alg;
    uint8_t pwhash_len;            /* 0: no password (or pending) */
    uint8_t pwhash[AUTH_HASH_MAX]; /* salt || H(salt || password) */
    char *pending_password;        /* owned copy until the first login hashes it, then NULL */
    char **tags;                   /* owns the array and each tag */
    size_t n_tags;
    struct auth_user_limits limits;
    uint32_t n_conns, n_chans;      /* live, counted by the network layer */
    struct auth_perm *perms;        /* owns: one per vhost */
    struct auth_topic_perm *topics; /* owns: one per (vhost, exchange) */
    size_t name_len;
    char name[]; /* NUL-terminated; same allocation */
};

struct auth_db {
    struct auth_user **buckets; /* owns a reference to each user; nbuckets is a power of two */
    size_t nbuckets;
    size_t count;
    uint64_t generation;     /* see auth_db_generation */
    bool digests_ready;      /* the digests are fetched: passwords are hashed when set */
    enum auth_hash_alg alg;  /* for passwords set from now on (password_hashing_module) */
    struct evp_md_st *md[3]; /* by enum auth_hash_alg; NULL until the first login */
    struct auth_user *dummy; /* owns; hashed in place of an unknown user */
    void (*hashed_fn)(void *arg, struct auth_user *u);
    void *hashed_arg;
};

/* users.c */
/* A user named name[0..n) with no password, one reference. NULL on ENOMEM. */
struct auth_user *auth_user_alloc(const char *name, size_t n);

/* passwd.c */
/* Fetches the digests (the first login). 0, or -1 (logged). */
int auth_digests_fetch(struct auth_db *db);
void auth_digests_free(struct auth_db *db);
/* "SHA-256", "SHA-512", "MD5". */
const char *auth_hash_digest_name(enum auth_hash_alg alg);
/* Gives u a fresh salt and H(salt || password) with alg. 0, or -1 (logged). */
int auth_user_hash_password(const struct auth_db *db, struct auth_user *u, enum auth_hash_alg alg,
                            const char *password);
/* 1 if H(salt || pw) equals the stored digest (salt || digest in stored[0..len)), compared in
 * constant time; 0 if not; -1 when hashing failed (logged). The digests must be fetched. */
int auth_hash_check(const struct auth_db *db, enum auth_hash_alg alg, const uint8_t *stored,
                    size_t len, const uint8_t *pw, size_t pwlen);
/* Decodes RabbitMQ's base64 password_hash into out (AUTH_HASH_MAX bytes): "" is no password
 * (*n = 0); otherwise it must be a salt and a whole digest of alg. 0, or -1. */
int auth_hash_decode(const char *b64, enum auth_hash_alg alg, uint8_t *out, size_t *n);
/* Base64 of raw[0..n) into out (AUTH_HASH_B64_MAX bytes), NUL-terminated. */
void auth_hash_encode(const uint8_t *raw, size_t n, char *out);

/* perms.c */
/* Frees u's permissions and topic permissions. */
void auth_perms_free(struct auth_user *u);

/* A user name and password taken from a response: both borrow from the response bytes and
 * may hold any bytes, NUL included. */
struct auth_cred {
    struct wire_str user, pass;
};

/* PLAIN (RFC 4616): "[authzid] NUL user NUL password"; the authzid is ignored. Returns 0, or
 * -1 with why set to a text for the log (the password is never quoted). */
int auth_plain_parse(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen);

/* AMQPLAIN: field-table entries without the 4-byte length prefix, holding LOGIN and
 * PASSWORD as long strings ('S'). Returns 0, or -1 with why set. */
int auth_amqplain_parse(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen);

/* Checks cred against db for a login with mechanism mech (named in why). Returns AUTH_OK
 * with *user borrowing from db, or AUTH_REFUSED with why set as RabbitMQ words it, e.g.
 * "PLAIN login refused: user 'guest' - invalid credentials". Takes about the same time
 * whether or not the user exists. */
enum auth_result auth_db_check(struct auth_db *db, const char *mech, const struct auth_cred *cred,
                               bool peer_is_loopback, const struct auth_user **user, char *why,
                               size_t whylen);

#endif
