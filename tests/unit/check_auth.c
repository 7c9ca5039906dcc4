/* Unit tests for src/auth/: PLAIN and AMQPLAIN logins (good, bad password, unknown user,
 * loopback-only users from afar, blank passwords), malformed and truncated responses,
 * unknown mechanisms, replacing users (before and after the first login hashes passwords),
 * and a table large enough to have grown many times.
 * Each login case states the result and the exact text for the log. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "plain_login.h"
#include "warren/auth.h"

static struct auth_db *db;

static void
setup(void)
{
    db = auth_db_new();
    ck_assert_ptr_nonnull(db);
    ck_assert_int_eq(auth_user_add(db, "guest", "guest", true), 0);
    ck_assert_int_eq(auth_user_add(db, "alice", "s3cret", false), 0);
}

static void
teardown(void)
{
    auth_db_free(db);
    db = NULL;
}

struct bytes {
    const char *p;
    size_t n;
};
#define B(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* AMQPLAIN entries: shortstr key, type 'S', 4-byte length, bytes. Octal escapes, which
 * stop after three digits, keep the bytes readable in one literal. */
#define LOGIN_ALICE "\005LOGINS\000\000\000\005alice"
#define PASS_S3CRET "\010PASSWORDS\000\000\000\006s3cret"
#define PASS_WRONG "\010PASSWORDS\000\000\000\005wrong"
#define LOGIN_GUEST "\005LOGINS\000\000\000\005guest"
#define PASS_GUEST "\010PASSWORDS\000\000\000\005guest"

static const struct {
    const char *what;
    struct bytes mech, resp;
    bool loopback;
    enum auth_result result;
    const char *user;
    const char *why; /* ending in '*': a prefix (the rest is wire.c's text) */
} logins[] = {
    /* PLAIN */
    {"PLAIN guest from loopback", B("PLAIN"), B("\0guest\0guest"), true, AUTH_OK, "guest", ""},
    {"PLAIN guest from afar", B("PLAIN"), B("\0guest\0guest"), false, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'guest' can only connect via localhost"},
    {"PLAIN guest, wrong password, from afar", B("PLAIN"), B("\0guest\0nope"), false, AUTH_REFUSED,
     NULL, "PLAIN login refused: user 'guest' - invalid credentials"},
    {"PLAIN alice from afar", B("PLAIN"), B("\0alice\0s3cret"), false, AUTH_OK, "alice", ""},
    {"PLAIN with authzid", B("PLAIN"), B("someone\0alice\0s3cret"), false, AUTH_OK, "alice", ""},
    {"PLAIN wrong password", B("PLAIN"), B("\0alice\0S3cret"), false, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'alice' - invalid credentials"},
    {"PLAIN password prefix", B("PLAIN"), B("\0alice\0s3cre"), false, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'alice' - invalid credentials"},
    {"PLAIN password too long", B("PLAIN"), B("\0alice\0s3crett"), false, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'alice' - invalid credentials"},
    {"PLAIN unknown user", B("PLAIN"), B("\0bob\0s3cret"), true, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'bob' - invalid credentials"},
    {"PLAIN empty user", B("PLAIN"), B("\0\0s3cret"), true, AUTH_REFUSED, NULL,
     "PLAIN login refused: user '' - invalid credentials"},
    {"PLAIN user name case", B("PLAIN"), B("\0Alice\0s3cret"), true, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'Alice' - invalid credentials"},
    {"PLAIN user name escaped in the log", B("PLAIN"), B("\0al\nice\0x"), true, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'al\\x0aice' - invalid credentials"},
    {"PLAIN blank password", B("PLAIN"), B("\0alice\0"), true, AUTH_REFUSED, NULL,
     "PLAIN login refused: user 'alice' attempted to log in with a blank password, which is "
     "prohibited by the internal authN backend"},
    {"PLAIN no NUL", B("PLAIN"), B("alice"), true, AUTH_MALFORMED, NULL,
     "PLAIN response invalid: expected '[authzid] NUL user NUL password', got 5 bytes with no "
     "NUL"},
    {"PLAIN one NUL", B("PLAIN"), B("alice\0s3cret"), true, AUTH_MALFORMED, NULL,
     "PLAIN response invalid: expected '[authzid] NUL user NUL password', got 12 bytes with one "
     "NUL"},
    {"PLAIN bytes after the password", B("PLAIN"), B("\0alice\0s3cret\0"), true, AUTH_MALFORMED,
     NULL,
     "PLAIN response invalid: expected '[authzid] NUL user NUL password', got 14 bytes with 3 "
     "or more NULs"},
    {"PLAIN empty response", B("PLAIN"), B(""), true, AUTH_MALFORMED, NULL,
     "PLAIN response invalid: expected '[authzid] NUL user NUL password', got 0 bytes with no "
     "NUL"},

    /* AMQPLAIN */
    {"AMQPLAIN alice", B("AMQPLAIN"), B(LOGIN_ALICE PASS_S3CRET), false, AUTH_OK, "alice", ""},
    {"AMQPLAIN fields reversed, extra field", B("AMQPLAIN"),
     B("\004spamt\001" PASS_S3CRET LOGIN_ALICE), false, AUTH_OK, "alice", ""},
    {"AMQPLAIN guest from loopback", B("AMQPLAIN"), B(LOGIN_GUEST PASS_GUEST), true, AUTH_OK,
     "guest", ""},
    {"AMQPLAIN guest from afar", B("AMQPLAIN"), B(LOGIN_GUEST PASS_GUEST), false, AUTH_REFUSED,
     NULL, "AMQPLAIN login refused: user 'guest' can only connect via localhost"},
    {"AMQPLAIN wrong password", B("AMQPLAIN"), B(LOGIN_ALICE PASS_WRONG), false, AUTH_REFUSED, NULL,
     "AMQPLAIN login refused: user 'alice' - invalid credentials"},
    {"AMQPLAIN user name with a NUL", B("AMQPLAIN"),
     B("\005LOGINS\000\000\000\006ali\0ce" PASS_S3CRET), false, AUTH_REFUSED, NULL,
     "AMQPLAIN login refused: user 'ali\\x00ce' - invalid credentials"},
    {"AMQPLAIN blank password", B("AMQPLAIN"), B(LOGIN_ALICE "\010PASSWORDS\000\000\000\000"),
     false, AUTH_REFUSED, NULL,
     "AMQPLAIN login refused: user 'alice' attempted to log in with a blank password, which is "
     "prohibited by the internal authN backend"},
    {"AMQPLAIN missing PASSWORD", B("AMQPLAIN"), B(LOGIN_ALICE), false, AUTH_MALFORMED, NULL,
     "AMQPLAIN auth info is missing LOGIN or PASSWORD field"},
    {"AMQPLAIN empty", B("AMQPLAIN"), B(""), false, AUTH_MALFORMED, NULL,
     "AMQPLAIN auth info is missing LOGIN or PASSWORD field"},
    {"AMQPLAIN keys are case-sensitive", B("AMQPLAIN"),
     B("\005loginS\000\000\000\005alice\010passwordS\000\000\000\006"
       "s3cret"),
     false, AUTH_MALFORMED, NULL, "AMQPLAIN auth info is missing LOGIN or PASSWORD field"},
    {"AMQPLAIN LOGIN as a byte array", B("AMQPLAIN"),
     B("\005LOGINx\000\000\000\005alice" PASS_S3CRET), false, AUTH_MALFORMED, NULL,
     "AMQPLAIN auth info uses unsupported type for LOGIN or PASSWORD field ('x' and 'S'; "
     "expected 'S')"},
    {"AMQPLAIN PASSWORD as an integer", B("AMQPLAIN"),
     B(LOGIN_ALICE "\010PASSWORDI\000\000\000\005"), false, AUTH_MALFORMED, NULL,
     "AMQPLAIN auth info uses unsupported type for LOGIN or PASSWORD field ('S' and 'I'; "
     "expected 'S')"},
    {"AMQPLAIN with the 4-byte table length", B("AMQPLAIN"),
     B("\000\000\000\041" LOGIN_ALICE PASS_S3CRET), false, AUTH_MALFORMED, NULL,
     "AMQPLAIN auth info is not a valid field table: *"},
    {"AMQPLAIN password truncated", B("AMQPLAIN"),
     B(LOGIN_ALICE "\010PASSWORDS\000\000\000\006s3c"), false, AUTH_MALFORMED, NULL,
     "AMQPLAIN auth info is not a valid field table: *"},
    {"AMQPLAIN length field truncated", B("AMQPLAIN"), B(LOGIN_ALICE "\010PASSWORDS\000\000"),
     false, AUTH_MALFORMED, NULL, "AMQPLAIN auth info is not a valid field table: *"},
    {"AMQPLAIN key truncated", B("AMQPLAIN"), B(LOGIN_ALICE "\010PASS"), false, AUTH_MALFORMED,
     NULL, "AMQPLAIN auth info is not a valid field table: *"},
    {"AMQPLAIN type missing", B("AMQPLAIN"), B(LOGIN_ALICE "\010PASSWORD"), false, AUTH_MALFORMED,
     NULL, "AMQPLAIN auth info is not a valid field table: *"},
    {"AMQPLAIN unknown field type", B("AMQPLAIN"), B(LOGIN_ALICE "\001kZ" PASS_S3CRET), false,
     AUTH_MALFORMED, NULL, "AMQPLAIN auth info is not a valid field table: *"},
    {"AMQPLAIN huge string length", B("AMQPLAIN"), B("\005LOGINS\377\377\377\377alice" PASS_S3CRET),
     false, AUTH_MALFORMED, NULL, "AMQPLAIN auth info is not a valid field table: *"},

    /* Mechanisms */
    {"mechanism names are case-sensitive", B("plain"), B("\0alice\0s3cret"), false,
     AUTH_BAD_MECHANISM, NULL, "unknown authentication mechanism 'plain'"},
    {"EXTERNAL is not offered", B("EXTERNAL"), B(""), false, AUTH_BAD_MECHANISM, NULL,
     "unknown authentication mechanism 'EXTERNAL'"},
    {"empty mechanism", B(""), B("\0alice\0s3cret"), false, AUTH_BAD_MECHANISM, NULL,
     "unknown authentication mechanism ''"},
    {"mechanism with a NUL", B("PLAIN\0"), B("\0alice\0s3cret"), false, AUTH_BAD_MECHANISM, NULL,
     "unknown authentication mechanism 'PLAIN\\x00'"},
    {"mechanism list as sent", B("PLAIN AMQPLAIN"), B("\0alice\0s3cret"), false, AUTH_BAD_MECHANISM,
     NULL, "unknown authentication mechanism 'PLAIN AMQPLAIN'"},
};

START_TEST(test_login)
{
    const struct auth_user *user = NULL;
    char why[512];
    memset(why, 'Z', sizeof(why));
    why[sizeof(why) - 1] = '\0';
    struct wire_str mech = {(const uint8_t *)logins[_i].mech.p, (uint32_t)logins[_i].mech.n};
    struct wire_str resp = {(const uint8_t *)logins[_i].resp.p, (uint32_t)logins[_i].resp.n};

    enum auth_result r = auth_login(db, mech, resp, logins[_i].loopback, &user, why, sizeof(why));
    ck_assert_msg(r == logins[_i].result, "%s: result %d, want %d (%s)", logins[_i].what, r,
                  logins[_i].result, why);
    if (r == AUTH_OK) {
        ck_assert_ptr_nonnull(user);
        ck_assert_str_eq(auth_user_name(user), logins[_i].user);
    }
    size_t wl = strlen(logins[_i].why);
    if (wl > 0 && logins[_i].why[wl - 1] == '*')
        ck_assert_msg(strncmp(why, logins[_i].why, wl - 1) == 0 && strlen(why) >= wl,
                      "%s: why '%s' does not start with '%.*s'", logins[_i].what, why, (int)wl - 1,
                      logins[_i].why);
    else
        ck_assert_msg(strcmp(why, logins[_i].why) == 0, "%s:\n got why '%s'\nwant why '%s'",
                      logins[_i].what, why, logins[_i].why);
}
END_TEST

/* A short why buffer truncates; a zero-length one is never written. */
START_TEST(test_short_why)
{
    const struct auth_user *user = NULL;
    char why[8] = "xxxxxxx";
    struct wire_str mech = WIRE_STR_LIT("PLAIN");
    struct wire_str bad = WIRE_STR_LIT("\0alice\0nope");
    ck_assert_int_eq(auth_login(db, mech, bad, true, &user, why, sizeof(why)), AUTH_REFUSED);
    ck_assert_str_eq(why, "PLAIN l");
    ck_assert_int_eq(auth_login(db, mech, bad, true, &user, NULL, 0), AUTH_REFUSED);
    ck_assert_int_eq(auth_login(db, WIRE_STR_LIT("X"), bad, true, &user, NULL, 0),
                     AUTH_BAD_MECHANISM);
    ck_assert_int_eq(auth_login(db, mech, WIRE_STR_LIT("x"), true, &user, NULL, 0), AUTH_MALFORMED);
}
END_TEST

START_TEST(test_replace_user)
{
    const struct auth_user *u1 = NULL, *u2 = NULL;
    ck_assert_int_eq(plain_login(db, "alice", "s3cret", false, &u1), AUTH_OK);
    ck_assert_int_eq(auth_user_add(db, "alice", "n3w", true), 0);
    ck_assert_int_eq(plain_login(db, "alice", "s3cret", true, &u2), AUTH_REFUSED);
    ck_assert_int_eq(plain_login(db, "alice", "n3w", false, &u2),
                     AUTH_REFUSED); /* now loopback-only */
    ck_assert_int_eq(plain_login(db, "alice", "n3w", true, &u2), AUTH_OK);
    ck_assert_ptr_eq(u1, u2); /* replaced in place: borrowers stay valid */
}
END_TEST

/* Passwords set before the first login are hashed by it: a replaced one is gone, and a user
 * added after it is hashed at once. */
START_TEST(test_passwords_before_first_login)
{
    const struct auth_user *u = NULL;
    ck_assert_int_eq(auth_user_add(db, "alice", "first", false), 0);
    ck_assert_int_eq(auth_user_add(db, "alice", "second", false), 0);
    ck_assert_int_eq(plain_login(db, "alice", "s3cret", true, &u), AUTH_REFUSED);
    ck_assert_int_eq(plain_login(db, "alice", "first", true, &u), AUTH_REFUSED);
    ck_assert_int_eq(plain_login(db, "alice", "second", true, &u), AUTH_OK);
    ck_assert_int_eq(plain_login(db, "guest", "guest", true, &u), AUTH_OK);
    ck_assert_int_eq(auth_user_add(db, "bob", "later", false), 0);
    ck_assert_int_eq(plain_login(db, "bob", "later", false, &u), AUTH_OK);
    ck_assert_int_eq(plain_login(db, "bob", "", false, &u), AUTH_REFUSED);
}
END_TEST

/* The same password gets a different salt per user, so equal passwords do not show. */
START_TEST(test_many_users)
{
    char name[32], pass[32];
    const struct auth_user *u = NULL;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        snprintf(pass, sizeof(pass), "pw%d", i * 7);
        ck_assert_int_eq(auth_user_add(db, name, pass, i % 2 == 0), 0);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(name, sizeof(name), "user%d", i);
        snprintf(pass, sizeof(pass), "pw%d", i * 7);
        ck_assert_int_eq(plain_login(db, name, pass, true, &u), AUTH_OK);
        ck_assert_str_eq(auth_user_name(u), name);
        ck_assert_int_eq(plain_login(db, name, pass, false, &u),
                         i % 2 == 0 ? AUTH_REFUSED : AUTH_OK);
        ck_assert_int_eq(plain_login(db, name, "pw", true, &u), AUTH_REFUSED);
    }
    ck_assert_int_eq(plain_login(db, "guest", "guest", true, &u), AUTH_OK);
    ck_assert_int_eq(plain_login(db, "alice", "s3cret", true, &u), AUTH_OK);
    ck_assert_int_eq(plain_login(db, "user5000", "pw35000", true, &u), AUTH_REFUSED);
}
END_TEST

START_TEST(test_texts)
{
    char buf[256];
    struct wire_str mech = WIRE_STR_LIT("AMQPLAIN");
    ck_assert_str_eq(auth_mechanisms, "PLAIN AMQPLAIN");
    snprintf(buf, sizeof(buf), "ACCESS_REFUSED - " AUTH_REFUSAL_FMT, WIRE_STR_ARG(mech));
    ck_assert_str_eq(buf, "ACCESS_REFUSED - Login was refused using authentication mechanism "
                          "AMQPLAIN. For details see the broker logfile.");
}
END_TEST

static Suite *
auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("login");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_login, 0, sizeof(logins) / sizeof(logins[0]));
    tcase_add_test(tc, test_short_why);
    tcase_add_test(tc, test_replace_user);
    tcase_add_test(tc, test_passwords_before_first_login);
    tcase_add_test(tc, test_many_users);
    tcase_add_test(tc, test_texts);
    tcase_set_timeout(tc, 60); /* test_many_users under valgrind */
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
