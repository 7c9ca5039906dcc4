/* Unit tests for src/admin/ and the user table behind it: the first start's defaults from the
 * configuration; users with RabbitMQ's SHA-256, SHA-512 and MD5 hashes logging in (hashes
 * made as rabbit_password.erl makes them: base64(salt || H(salt || password))); users without
 * a password; tags as lists and comma strings; records that do not apply and their texts;
 * permissions and topic permissions (unknown user or vhost, bad patterns, PCRE semantics);
 * limits; deleting users and vhosts; listings that apply again to the same state; and
 * definitions documents (order, old versions' MD5 default, the entry at fault); and over a
 * real store, what comes back after a restart, and what a deleted vhost takes with it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "admin_fixture.h"
#include "plain_login.h"
#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/queue.h"

static char err[512];

/* A PLAIN login as name/password from loopback. */
static enum auth_result
login(const char *name, const char *password)
{
    const struct auth_user *u;
    return plain_login(db, name, password, true, &u);
}

/* Applies a JSON text as one record of kind. */
static enum admin_result
apply(const char *kind, const char *text)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    ck_assert_msg(o != NULL, "bad JSON in the test: %s", je.text);
    enum admin_result r = admin_apply(adm, kind, o, NULL, true, err, sizeof(err));
    json_decref(o);
    return r;
}

static const struct vhost *
vh(const char *name)
{
    return vhost_find(&vhosts, (struct wire_str){(const uint8_t *)name, strlen(name)});
}

START_TEST(test_defaults)
{
    struct auth_user *u = auth_user_get(db, "guest");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(auth_user_tag_count(u), 1);
    ck_assert_str_eq(auth_user_tag(u, 0), "administrator");
    ck_assert(auth_user_password_pending(u)); /* no OpenSSL before the first login */
    const struct vhost *v = vh("/");
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v->meta.description, "Default virtual host");
    const struct auth_perm *p = auth_perm_find(u, "/");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(auth_perm_pattern(p, AUTH_CONFIGURE), ".*");
    ck_assert_int_eq(login("guest", "guest"), AUTH_OK);
    ck_assert(!auth_user_password_pending(u));
}
END_TEST

static const struct {
    const char *what, *record, *password;
    enum auth_result result;
} user_logins[] = {
    {"SHA-256",
     "{\"name\":\"a\",\"password_hash\":\"AQIDBMjCIK6BhAuABf4pzE2ifIm0++CmSROByS42ftqWDm98\","
     "\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[]}",
     "p4ss", AUTH_OK},
    {"SHA-256, wrong password",
     "{\"name\":\"a\",\"password_hash\":\"AQIDBMjCIK6BhAuABf4pzE2ifIm0++CmSROByS42ftqWDm98\","
     "\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[]}",
     "p4sS", AUTH_REFUSED},
    {"SHA-512",
     "{\"name\":\"a\",\"password_hash\":\"AQIDBEr7R08A0Tzy7w4SI6vQJJY6l/"
     "ChzWhSKpyeYYKJ2Qoo4BGYPnF+0mez9dtw1hPmHAQvobn+4G4QO1kBiQfftvE=\","
     "\"hashing_algorithm\":\"rabbit_password_hashing_sha512\",\"tags\":\"\"}",
     "p4ss", AUTH_OK},
    {"MD5",
     "{\"name\":\"a\",\"password_hash\":\"AQIDBJUGopzAUPU7L7hHqv9dWvw=\","
     "\"hashing_algorithm\":\"rabbit_password_hashing_md5\"}",
     "p4ss", AUTH_OK},
    {"no password", "{\"name\":\"a\",\"password_hash\":\"\",\"tags\":[]}", "p4ss", AUTH_REFUSED},
    {"clear password", "{\"name\":\"a\",\"password\":\"p4ss\"}", "p4ss", AUTH_OK},
};

START_TEST(test_user_login)
{
    ck_assert_int_eq(apply("users", user_logins[_i].record), ADMIN_OK);
    ck_assert_int_eq(login("a", user_logins[_i].password), user_logins[_i].result);
    /* The listing applies again to the same user: it still logs in the same way. */
    json_t *users = admin_users_json(adm);
    size_t i;
    json_t *e;
    json_array_foreach(users, i, e)
    {
        ck_assert_int_eq(admin_apply(adm, "users", e, NULL, true, err, sizeof(err)), ADMIN_OK);
    }
    json_decref(users);
    ck_assert_int_eq(login("a", user_logins[_i].password), user_logins[_i].result);
}
END_TEST

static const struct {
    const char *kind, *record;
    enum admin_result result;
    const char *err;
} bad_records[] = {
    {"users", "{\"password_hash\":\"\"}", ADMIN_INVALID, "user: 'name' is missing or not a string"},
    {"users", "{\"name\":\"\",\"password_hash\":\"\"}", ADMIN_INVALID,
     "user: 'name' must be 1 to 255 bytes without NUL"},
    {"users", "{\"name\":\"b\",\"password_hash\":\"AQIDBJUGopzAUPU7L7hHqv9dWvw=\"}", ADMIN_INVALID,
     "password_hash of user 'b' is not the base64 of a 4-byte salt and a SHA-256 digest"},
    {"users", "{\"name\":\"b\",\"password_hash\":\"\",\"hashing_algorithm\":\"sha3\"}",
     ADMIN_INVALID, "user 'b': unknown hashing_algorithm"},
    {"users", "{\"name\":\"b\",\"password_hash\":\"\",\"tags\":[1]}", ADMIN_INVALID,
     "user 'b': tags must be a list of strings or a comma-separated string"},
    {"users", "{\"name\":\"b\",\"password_hash\":\"\",\"limits\":{\"max-connections\":\"x\"}}",
     ADMIN_INVALID, "user 'b': a limit is not an integer"},
    {"permissions",
     "{\"user\":\"nobody\",\"vhost\":\"/\",\"configure\":\"\",\"write\":\"\","
     "\"read\":\"\"}",
     ADMIN_NOT_FOUND, "permission: no user 'nobody'"},
    {"permissions",
     "{\"user\":\"guest\",\"vhost\":\"/x\",\"configure\":\"\",\"write\":\"\","
     "\"read\":\"\"}",
     ADMIN_NOT_FOUND, "permission: no vhost '/x'"},
    {"permissions",
     "{\"user\":\"guest\",\"vhost\":\"/\",\"configure\":\"(\",\"write\":\"\","
     "\"read\":\"\"}",
     ADMIN_INVALID, "invalid regular expression '(': missing closing parenthesis at offset 1"},
    {"permissions", "{\"user\":\"guest\",\"vhost\":\"/\",\"configure\":\".*\"}", ADMIN_INVALID,
     "permission of user 'guest' on vhost '/': configure, write and read must be strings"},
    {"topic_permissions", "{\"user\":\"guest\",\"vhost\":\"/\",\"write\":\".*\",\"read\":\".*\"}",
     ADMIN_INVALID, "topic permission: 'exchange' is missing or not a string"},
    {"vhosts", "{\"name\":\"v\",\"default_queue_type\":\"lazy\"}", ADMIN_INVALID,
     "vhost 'v': default_queue_type must be classic, quorum or stream"},
    {"vhosts", "{\"name\":\"v\",\"limits\":{\"max-exchanges\":1}}", ADMIN_INVALID,
     "vhost 'v': unknown limit 'max-exchanges' (max-connections, max-queues)"},
    {"policies", "{\"vhost\":\"/x\",\"name\":\"p\"}", ADMIN_NOT_FOUND, "policy: no vhost '/x'"},
    {"things", "{}", ADMIN_INVALID, "unknown kind of record 'things'"},
};

START_TEST(test_bad_record)
{
    ck_assert_int_eq(apply(bad_records[_i].kind, bad_records[_i].record), bad_records[_i].result);
    ck_assert_str_eq(err, bad_records[_i].err);
    ck_assert_ptr_null(auth_user_get(db, "b"));
    ck_assert_ptr_null(vh("v"));
}
END_TEST

START_TEST(test_tags)
{
    ck_assert_int_eq(apply("users", "{\"name\":\"t\",\"password_hash\":\"\","
                                    "\"tags\":\"administrator, monitoring,,my-tag\"}"),
                     ADMIN_OK);
    struct auth_user *u = auth_user_get(db, "t");
    ck_assert_int_eq(auth_user_tag_count(u), 3);
    ck_assert(auth_user_has_tag(u, "monitoring"));
    ck_assert(auth_user_has_tag(u, "my-tag"));
    const char *tags[] = {"impersonator"};
    ck_assert_int_eq(admin_user_set_tags(adm, "t", tags, 1, NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert_int_eq(auth_user_tag_count(u), 1);
    ck_assert_int_eq(admin_user_set_tags(adm, "zz", tags, 1, NULL, NULL, err, sizeof(err)),
                     ADMIN_NOT_FOUND);
    ck_assert_str_eq(err, "no user 'zz'");
}
END_TEST

/* RabbitMQ's patterns: unanchored unless anchored, "" only the empty name, PCRE syntax. */
static const struct {
    const char *pattern, *name;
    bool allowed;
} patterns[] = {
    {".*", "anything", true},
    {"q", "my-q-1", true},
    {"^q", "my-q", false},
    {"^q$", "q", true},
    {"^q$", "qq", false},
    {"", "q", false},
    {"", "", true},
    {"^(a|b)-\\d+$", "b-12", true},
    {"^(a|b)-\\d+$", "c-12", false},
    {"(?i)^Q", "queue", true},
    {"^amq\\.gen-", "amq.gen-x", true},
};

START_TEST(test_patterns)
{
    struct auth_user *u = auth_user_get(db, "guest");
    ck_assert_int_eq(admin_perm_set(adm, "guest", "/", patterns[_i].pattern, "", "", NULL, NULL,
                                    err, sizeof(err)),
                     ADMIN_OK);
    const struct auth_perm *p = auth_perm_find(u, "/");
    ck_assert_int_eq(
        auth_perm_allows(p, AUTH_CONFIGURE, patterns[_i].name, strlen(patterns[_i].name)),
        patterns[_i].allowed);
}
END_TEST

START_TEST(test_topic_permissions)
{
    struct auth_user *u = auth_user_get(db, "guest");
    uint64_t gen = auth_db_generation(db);
    ck_assert(auth_topic_allows(u, "/", "amq.topic", 9, AUTH_WRITE, "x", 1, NULL));
    ck_assert_int_eq(admin_topic_perm_set(adm, "guest", "/", "amq.topic", "^{username}\\.",
                                          "^{vhost}-{client_id}$", NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert_uint_gt(auth_db_generation(db), gen);
    ck_assert(auth_topic_allows(u, "/", "amq.topic", 9, AUTH_WRITE, "guest.a", 7, NULL));
    ck_assert(!auth_topic_allows(u, "/", "amq.topic", 9, AUTH_WRITE, "other.a", 7, NULL));
    ck_assert(auth_topic_allows(u, "/", "amq.topic", 9, AUTH_READ, "/-c1", 4, "c1"));
    ck_assert(!auth_topic_allows(u, "/", "amq.topic", 9, AUTH_READ, "/-c1", 4, NULL));
    ck_assert(auth_topic_allows(u, "/", "other", 5, AUTH_WRITE, "x", 1, NULL));
    json_t *l = admin_topic_permissions_json(adm);
    ck_assert_int_eq(json_array_size(l), 1);
    json_decref(l);
    ck_assert_int_eq(admin_topic_perm_clear(adm, "guest", "/", NULL, NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert(auth_topic_allows(u, "/", "amq.topic", 9, AUTH_WRITE, "other.a", 7, NULL));
}
END_TEST

START_TEST(test_delete_user)
{
    struct auth_user *u = auth_user_ref(auth_user_get(db, "guest"));
    ck_assert_int_eq(admin_user_delete(adm, "guest", NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_ptr_null(auth_user_get(db, "guest"));
    ck_assert(auth_user_deleted(u)); /* still a valid object for its holder */
    auth_user_unref(u);
    ck_assert_int_eq(login("guest", "guest"), AUTH_REFUSED);
    ck_assert_int_eq(admin_user_delete(adm, "guest", NULL, NULL, err, sizeof(err)),
                     ADMIN_NOT_FOUND);
    json_t *l = admin_permissions_json(adm);
    ck_assert_int_eq(json_array_size(l), 0);
    json_decref(l);
}
END_TEST

START_TEST(test_vhosts_and_limits)
{
    const char *tags[] = {"prod"};
    struct admin_vhost v = {.name = "v1",
                            .description = "first",
                            .tags = tags,
                            .n_tags = 1,
                            .default_queue_type = "quorum"};
    ck_assert_int_eq(admin_vhost_put(adm, &v, NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_str_eq(vh("v1")->meta.default_queue_type, "quorum");
    ck_assert_int_eq(
        admin_vhost_set_limit(adm, "v1", "max-queues", 2, NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_int_eq(vh("v1")->meta.max_queues, 2);
    ck_assert_int_eq(vh("v1")->meta.max_connections, -1);
    ck_assert_int_eq(
        admin_user_set_limit(adm, "guest", "max-channels", 3, NULL, NULL, err, sizeof(err)),
        ADMIN_OK);
    ck_assert_int_eq(auth_user_limits(auth_user_get(db, "guest"))->max_channels, 3);
    ck_assert_int_eq(
        admin_user_set_limit(adm, "guest", "max-queues", 3, NULL, NULL, err, sizeof(err)),
        ADMIN_INVALID);
    ck_assert_int_eq(
        admin_perm_set(adm, "guest", "v1", ".*", ".*", ".*", NULL, NULL, err, sizeof(err)),
        ADMIN_OK);
    json_t *list = admin_vhosts_json(adm);
    ck_assert_int_eq(json_array_size(list), 2);
    json_decref(list);
    ck_assert_int_eq(admin_vhost_delete(adm, "v1", NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_ptr_null(vh("v1"));
    ck_assert_ptr_null(auth_perm_find(auth_user_get(db, "guest"), "v1"));
    ck_assert_int_eq(admin_vhost_delete(adm, "v1", NULL, NULL, err, sizeof(err)), ADMIN_NOT_FOUND);
    ck_assert_str_eq(err, "no vhost 'v1'");
}
END_TEST

static int dones;
static void
on_done(void *arg, enum admin_result r, const char *e)
{
    ck_assert_int_eq(r, ADMIN_OK);
    ck_assert_ptr_null(e);
    (*(int *)arg)++;
}

START_TEST(test_done_called)
{
    dones = 0;
    struct admin_user u = {.name = "d", .password_hash = ""};
    ck_assert_int_eq(admin_user_put(adm, &u, on_done, &dones, err, sizeof(err)), ADMIN_OK);
    ck_assert_int_eq(dones, 1);
    ck_assert_int_eq(admin_user_set_password(adm, "d", "pw", on_done, &dones, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert_int_eq(login("d", "pw"), AUTH_OK);
    ck_assert_int_eq(admin_user_set_password(adm, "d", NULL, on_done, &dones, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert_int_eq(login("d", "pw"), AUTH_REFUSED);
    ck_assert_int_eq(dones, 3);
    /* A failed change calls nothing. */
    ck_assert_int_eq(admin_user_set_password(adm, "e", "pw", on_done, &dones, err, sizeof(err)),
                     ADMIN_NOT_FOUND);
    ck_assert_int_eq(dones, 3);
}
END_TEST

/* password_hashing_module = rabbit_password_hashing_sha512: passwords set here are hashed with
 * SHA-512 (and log in); an imported SHA-256 hash keeps its algorithm. */
START_TEST(test_hashing_module)
{
    char *was = conf.password_hashing_module;
    conf.password_hashing_module = strdup("rabbit_password_hashing_sha512");
    free(was);
    fixture_admin_renew();
    struct admin_user u = {.name = "s", .password = "pw512"};
    ck_assert_int_eq(admin_user_put(adm, &u, NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_int_eq(auth_user_hash_alg(auth_user_get(db, "s")), AUTH_HASH_SHA512);
    ck_assert_int_eq(login("s", "pw512"), AUTH_OK);
    ck_assert_int_eq(apply("users", user_logins[0].record), ADMIN_OK);
    ck_assert_int_eq(auth_user_hash_alg(auth_user_get(db, "a")), AUTH_HASH_SHA256);
    ck_assert_int_eq(login("a", "p4ss"), AUTH_OK);
    char b64[AUTH_HASH_B64_MAX];
    ck_assert(auth_user_hash_b64(auth_user_get(db, "s"), b64));
    ck_assert_uint_eq(strlen(b64), 92); /* base64 of 4 + 64 bytes */
}
END_TEST

/* A definitions document in RabbitMQ 3.5's form: no hashing_algorithm (MD5 then), tags as a
 * string, and a queue, an exchange and a binding between them. */
static const char defs_35[] =
    "{\"rabbit_version\":\"3.5.7\","
    "\"users\":[{\"name\":\"old\",\"password_hash\":\"AQIDBJUGopzAUPU7L7hHqv9dWvw=\","
    "\"tags\":\"management\"}],"
    "\"vhosts\":[{\"name\":\"app\"}],"
    "\"permissions\":[{\"user\":\"old\",\"vhost\":\"app\",\"configure\":\"^app\\\\.\","
    "\"write\":\".*\",\"read\":\".*\"}],"
    "\"policies\":[{\"vhost\":\"app\",\"name\":\"ha\",\"pattern\":\".*\",\"apply-to\":\"all\","
    "\"definition\":{\"ha-mode\":\"all\"},\"priority\":0}],"
    "\"parameters\":[{\"vhost\":\"app\",\"component\":\"vhost-limits\",\"name\":\"limits\","
    "\"value\":{\"max-connections\":5}}],"
    "\"queues\":[{\"name\":\"app.q\",\"vhost\":\"app\",\"durable\":true,\"auto_delete\":false,"
    "\"arguments\":{\"x-max-length\":10}}],"
    "\"exchanges\":[{\"name\":\"app.x\",\"vhost\":\"app\",\"type\":\"topic\",\"durable\":true,"
    "\"auto_delete\":false,\"internal\":false,\"arguments\":{}},"
    "{\"name\":\"amq.topic\",\"vhost\":\"app\",\"type\":\"topic\",\"durable\":true}],"
    "\"bindings\":[{\"source\":\"app.x\",\"vhost\":\"app\",\"destination\":\"app.q\","
    "\"destination_type\":\"queue\",\"routing_key\":\"#\",\"arguments\":{}}]}";

START_TEST(test_definitions)
{
    json_t *d = json_loads(defs_35, 0, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(admin_definitions_import(adm, d, err, sizeof(err)), ADMIN_OK);
    /* Again: everything exists and is kept or replaced the same way. */
    ck_assert_int_eq(admin_definitions_import(adm, d, err, sizeof(err)), ADMIN_OK);
    json_decref(d);
    ck_assert_int_eq(login("old", "p4ss"), AUTH_OK);
    struct auth_user *u = auth_user_get(db, "old");
    ck_assert(auth_user_has_tag(u, "management"));
    ck_assert_int_eq(auth_user_hash_alg(u), AUTH_HASH_MD5);
    const struct vhost *v = vh("app");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v->meta.max_connections, 5);
    struct queue *q = vhost_queue_find(v, WIRE_STR_LIT("app.q"));
    struct exch *x = vhost_exch_find(v, WIRE_STR_LIT("app.x"));
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(x);
    ck_assert(q->durable);
    ck_assert_int_eq(x->type, EXCH_TOPIC);
    ck_assert(
        exch_has_binding(x, bind_dest_queue(q), WIRE_STR_LIT("#"), (struct wire_table){NULL, 0}));
    json_t *pol = admin_stored_json(adm, "policies");
    ck_assert_int_eq(json_array_size(pol), 1);
    json_decref(pol);
}
END_TEST

/* An export of Debian's RabbitMQ 3.10.8 (the integration tests' fixture) imported, then
 * exported: the same document, section by section, entry by entry (order aside). */
START_TEST(test_export_round_trip)
{
    char path[512];
    const char *srcdir = getenv("srcdir");
    snprintf(path, sizeof(path), "%s/tests/integration/definitions-rabbitmq-3.10.json",
             srcdir != NULL ? srcdir : ".");
    json_t *in = json_load_file(path, 0, NULL);
    ck_assert_msg(in != NULL, "cannot read %s", path);
    ck_assert_int_eq(admin_definitions_import(adm, in, err, sizeof(err)), ADMIN_OK);
    json_t *out = admin_definitions_export(adm);
    ck_assert_ptr_nonnull(out);
    static const char *const sections[] = {
        "users",    "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
        "policies", "queues", "exchanges",   "bindings"};
    for (size_t k = 0; k < sizeof(sections) / sizeof(sections[0]); k++) {
        json_t *want = json_object_get(in, sections[k]), *got = json_object_get(out, sections[k]);
        ck_assert_msg(json_array_size(want) == json_array_size(got), "%s: %zu entries, got %zu",
                      sections[k], json_array_size(want), json_array_size(got));
        size_t i, j;
        json_t *w, *g;
        json_array_foreach(want, i, w)
        {
            bool found = false;
            json_array_foreach(got, j, g) found = found || json_equal(w, g);
            char *text = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
            char *all = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
            ck_assert_msg(found, "%s: %s not exported; got %s", sections[k], text, all);
            free(text);
            free(all);
        }
    }
    json_decref(in);
    json_decref(out);
}
END_TEST

static const struct {
    const char *doc, *err;
} bad_defs[] = {
    {"[]", "definitions are not a JSON object"},
    {"{\"users\":{}}", "users is not a list"},
    {"{\"users\":[{\"name\":\"ok\",\"password_hash\":\"\"},3]}", "users[1]: not a JSON object"},
    {"{\"queues\":[{\"name\":\"q\",\"vhost\":\"nope\"}]}", "queues[0]: no vhost 'nope'"},
    {"{\"exchanges\":[{\"name\":\"x\",\"vhost\":\"/\",\"type\":\"fast\"}]}",
     "exchanges[0]: exchange 'x': unknown type"},
    {"{\"bindings\":[{\"source\":\"x\",\"vhost\":\"/\",\"destination\":\"q\","
     "\"destination_type\":\"queue\",\"routing_key\":\"\"}]}",
     "bindings[0]: no exchange 'x' in vhost '/'"},
    {"{\"queues\":[{\"name\":\"q\",\"vhost\":\"/\",\"arguments\":{\"x-max-length\":\"ten\"}}]}",
     "queues[0]: queue 'q': *"},
};

START_TEST(test_bad_definitions)
{
    json_t *d = json_loads(bad_defs[_i].doc, 0, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_ne(admin_definitions_import(adm, d, err, sizeof(err)), ADMIN_OK);
    json_decref(d);
    size_t n = strlen(bad_defs[_i].err);
    if (bad_defs[_i].err[n - 1] == '*')
        ck_assert_int_eq(strncmp(err, bad_defs[_i].err, n - 1), 0);
    else
        ck_assert_str_eq(err, bad_defs[_i].err);
}
END_TEST

/* ---- stored: what survives a restart, as main() restarts ---- */

static const char stored_defs[] =
    "{\"users\":[{\"name\":\"old\",\"password_hash\":\"AQIDBJUGopzAUPU7L7hHqv9dWvw=\","
    "\"hashing_algorithm\":\"rabbit_password_hashing_md5\",\"tags\":[\"monitoring\"],"
    "\"limits\":{\"max-channels\":7}},{\"name\":\"tmp\",\"password_hash\":\"\"}],"
    "\"vhosts\":[{\"name\":\"v\",\"limits\":[[\"max-queues\",9]],\"metadata\":"
    "{\"description\":\"vee\",\"tags\":[\"t1\"],\"default_queue_type\":\"classic\"}}],"
    "\"permissions\":[{\"user\":\"old\",\"vhost\":\"v\",\"configure\":\"^c\","
    "\"write\":\"^w\",\"read\":\"^r\"}],"
    "\"topic_permissions\":[{\"user\":\"old\",\"vhost\":\"v\",\"exchange\":\"amq.topic\","
    "\"write\":\"^a\",\"read\":\"^b\"}],"
    "\"policies\":[{\"vhost\":\"v\",\"name\":\"p\",\"pattern\":\".*\",\"apply-to\":"
    "\"all\",\"definition\":{\"max-length\":5},\"priority\":0}],"
    "\"queues\":[{\"name\":\"q\",\"vhost\":\"v\",\"durable\":true,\"auto_delete\":false,"
    "\"arguments\":{}}],"
    "\"exchanges\":[{\"name\":\"x\",\"vhost\":\"v\",\"type\":\"direct\",\"durable\":true},"
    "{\"name\":\"y\",\"vhost\":\"v\",\"type\":\"fanout\",\"durable\":true}],"
    "\"bindings\":[{\"source\":\"x\",\"vhost\":\"v\",\"destination\":\"q\","
    "\"destination_type\":\"queue\",\"routing_key\":\"k\"},{\"source\":\"x\",\"vhost\":"
    "\"v\",\"destination\":\"y\",\"destination_type\":\"exchange\",\"routing_key\":\"k\"}]}";

/* Users (hash, tags, limits), vhosts (metadata, limits), permissions, topic permissions and
 * policies come back after a restart (applied to the queue), with the queue, exchanges and
 * bindings imported; a
 * deleted user does not; the defaults are made once; a deleted vhost takes its permissions,
 * policies and stored entities with it. */
START_TEST(test_stored)
{
    json_t *d = json_loads(stored_defs, 0, NULL);
    ck_assert_int_eq(admin_definitions_import(adm, d, err, sizeof(err)), ADMIN_OK);
    json_decref(d);
    ck_assert_int_eq(admin_user_delete(adm, "tmp", NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_int_eq(
        admin_user_set_limit(adm, "old", "max-connections", 2, NULL, NULL, err, sizeof(err)),
        ADMIN_OK);
    ck_assert_int_eq(login("guest", "guest"), AUTH_OK); /* rewrites guest's record, hashed */
    fixture_synced();
    fixture_restart();
    struct auth_user *u = auth_user_get(db, "old");
    ck_assert_ptr_nonnull(u);
    ck_assert_ptr_null(auth_user_get(db, "tmp"));
    ck_assert_int_eq(login("old", "p4ss"), AUTH_OK);
    ck_assert_int_eq(login("guest", "guest"), AUTH_OK);
    ck_assert(!auth_user_password_pending(auth_user_get(db, "guest")));
    ck_assert(auth_user_has_tag(u, "monitoring"));
    ck_assert_int_eq(auth_user_limits(u)->max_channels, 7);
    ck_assert_int_eq(auth_user_limits(u)->max_connections, 2);
    const struct vhost *v = vh("v");
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v->meta.description, "vee");
    ck_assert_str_eq(v->meta.default_queue_type, "classic");
    ck_assert_int_eq(v->meta.max_queues, 9);
    struct queue *q = vhost_queue_find(v, WIRE_STR_LIT("q"));
    ck_assert_ptr_nonnull(q);
    /* The policy applies to the recovered queue as it comes back. */
    ck_assert_str_eq(q->settings.policy, "p");
    ck_assert_int_eq(q->settings.max_length, 5);
    struct exch *x = vhost_exch_find(v, WIRE_STR_LIT("x"));
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(x->n_bindings_out, 2);
    const struct auth_perm *p = auth_perm_find(u, "v");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(auth_perm_pattern(p, AUTH_WRITE), "^w");
    ck_assert(!auth_topic_allows(u, "v", "amq.topic", 9, AUTH_WRITE, "b", 1, NULL));
    json_t *pol = admin_stored_json(adm, "policies");
    ck_assert_int_eq(json_array_size(pol), 1);
    json_decref(pol);
    json_t *users = admin_users_json(adm);
    ck_assert_int_eq(json_array_size(users), 2); /* guest, made once, and old */
    json_decref(users);

    ck_assert_int_eq(admin_vhost_delete(adm, "v", NULL, NULL, err, sizeof(err)), ADMIN_OK);
    fixture_synced();
    fixture_restart();
    ck_assert_ptr_null(vh("v")); /* no stored queue, exchange or binding brought it back */
    ck_assert_ptr_null(auth_perm_find(auth_user_get(db, "old"), "v"));
    ck_assert(
        auth_topic_allows(auth_user_get(db, "old"), "v", "amq.topic", 9, AUTH_WRITE, "b", 1, NULL));
    pol = admin_stored_json(adm, "policies");
    ck_assert_int_eq(json_array_size(pol), 0);
    json_decref(pol);
}
END_TEST

/* Global parameters put and deleted by name (admin_record_put, admin_stored_delete) come
 * back, or do not, after a restart; cluster_name is the cluster's name while it is a
 * string. */
START_TEST(test_global_parameters)
{
    ck_assert_ptr_null(admin_cluster_name(adm));
    json_t *e = json_pack("{s:s, s:s}", "name", "cluster_name", "value", "c1");
    ck_assert_int_eq(admin_record_put(adm, "global_parameters", e, NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    json_decref(e);
    e = json_pack("{s:s, s:{s:i}}", "name", "g", "value", "a", 1);
    ck_assert_int_eq(admin_record_put(adm, "global_parameters", e, NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    json_decref(e);
    ck_assert_str_eq(admin_cluster_name(adm), "c1");
    fixture_synced();
    fixture_restart();
    ck_assert_str_eq(admin_cluster_name(adm), "c1");
    const char *g = "g";
    json_t *got = admin_stored_get(adm, "global_parameters", &g, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(got, "value"), "a")), 1);
    ck_assert_int_eq(
        admin_stored_delete(adm, "global_parameters", &g, 1, NULL, NULL, err, sizeof(err)),
        ADMIN_OK);
    ck_assert_int_eq(
        admin_stored_delete(adm, "global_parameters", &g, 1, NULL, NULL, err, sizeof(err)),
        ADMIN_NOT_FOUND);
    /* A value that is not a string names nothing: the node's name is shown instead. */
    e = json_pack("{s:s, s:i}", "name", "cluster_name", "value", 5);
    ck_assert_int_eq(admin_record_put(adm, "global_parameters", e, NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    json_decref(e);
    ck_assert_ptr_null(admin_cluster_name(adm));
    fixture_synced();
    fixture_restart();
    ck_assert_ptr_null(admin_stored_get(adm, "global_parameters", &g, 1));
    json_t *all = admin_stored_json(adm, "global_parameters");
    ck_assert_int_eq(json_array_size(all), 1);
    json_decref(all);
}
END_TEST

static Suite *
admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_user_login, 0, sizeof(user_logins) / sizeof(user_logins[0]));
    tcase_add_loop_test(tc, test_bad_record, 0, sizeof(bad_records) / sizeof(bad_records[0]));
    tcase_add_test(tc, test_tags);
    tcase_add_loop_test(tc, test_patterns, 0, sizeof(patterns) / sizeof(patterns[0]));
    tcase_add_test(tc, test_topic_permissions);
    tcase_add_test(tc, test_delete_user);
    tcase_add_test(tc, test_vhosts_and_limits);
    tcase_add_test(tc, test_done_called);
    tcase_add_test(tc, test_hashing_module);
    tcase_add_test(tc, test_definitions);
    tcase_add_test(tc, test_export_round_trip);
    tcase_add_loop_test(tc, test_bad_definitions, 0, sizeof(bad_defs) / sizeof(bad_defs[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("stored");
    tcase_add_checked_fixture(tc, fixture_stored_setup, fixture_stored_teardown);
    tcase_add_test(tc, test_stored);
    tcase_add_test(tc, test_global_parameters);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(admin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
