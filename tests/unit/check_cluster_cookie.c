/* Unit tests for src/cluster/cookie.c: a cookie made on the first start (20 letters A-Z, mode
 * 0400, no file left behind but it) and read again unchanged on the next; files refused as
 * Erlang refuses them (group or others may access it, empty, not a regular file, bad
 * characters) and when longer than 255 bytes; trailing whitespace left out. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "cookie.h"

/* A new empty directory, its name in dir. */
static void
make_dir(char dir[64])
{
    strcpy(dir, "/tmp/check_cookie.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Removes dir's .erlang.cookie (a file or a directory) and dir. */
static void
remove_dir(const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/" CLUSTER_COOKIE_FILE, dir);
    if (unlink(path) < 0)
        rmdir(path);
    ck_assert_int_eq(rmdir(dir), 0);
}

/* Writes dir's cookie file: text[0..len) with the given mode. */
static void
write_cookie(const char *dir, const char *text, size_t len, mode_t mode)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/" CLUSTER_COOKIE_FILE, dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* Entries of dir other than . and .. */
static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

START_TEST(test_created_then_reused)
{
    char dir[64], path[128], out[CLUSTER_COOKIE_MAX + 1], again[CLUSTER_COOKIE_MAX + 1];
    char err[512] = "";
    size_t len = 0, len2 = 0;
    make_dir(dir);
    ck_assert_msg(cluster_cookie_load(dir, out, sizeof(out), &len, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_uint_eq(len, CLUSTER_COOKIE_NEW_LEN);
    ck_assert_uint_eq(strlen(out), len);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(out[i] >= 'A' && out[i] <= 'Z', "byte %zu of '%s'", i, out);

    struct stat st;
    snprintf(path, sizeof(path), "%s/" CLUSTER_COOKIE_FILE, dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0400);
    ck_assert_int_eq(st.st_size, CLUSTER_COOKIE_NEW_LEN);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left */

    ck_assert_msg(cluster_cookie_load(dir, again, sizeof(again), &len2, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_uint_eq(len2, len);
    ck_assert_str_eq(again, out);
    remove_dir(dir);

    /* Another directory, another cookie: they are random. */
    make_dir(dir);
    ck_assert_int_eq(cluster_cookie_load(dir, again, sizeof(again), &len2, err, sizeof(err)), 0);
    ck_assert_str_ne(again, out);
    remove_dir(dir);
}
END_TEST

/* Letters are drawn evenly: over 20,000 of them each of the 26 comes within 30% of 1/26. */
START_TEST(test_letters_even)
{
    unsigned counts[26] = {0};
    char dir[64], out[CLUSTER_COOKIE_MAX + 1], err[512] = "";
    size_t len;
    for (int i = 0; i < 1000; i++) {
        make_dir(dir);
        ck_assert_msg(cluster_cookie_load(dir, out, sizeof(out), &len, err, sizeof(err)) == 0, "%s",
                      err);
        for (size_t j = 0; j < len; j++)
            counts[out[j] - 'A']++;
        remove_dir(dir);
    }
    for (int c = 0; c < 26; c++)
        ck_assert_msg(counts[c] > 20000 / 26 * 7 / 10 && counts[c] < 20000 / 26 * 13 / 10, "%c: %u",
                      'A' + c, counts[c]);
}
END_TEST

static const struct {
    const char *what, *text;
    mode_t mode;
    const char *want; /* the cookie read, or NULL */
    const char *err;  /* after "Cookie file DIR/.erlang.cookie", when want is NULL */
} files[] = {
    {"0400", "SECRETCOOKIE", 0400, "SECRETCOOKIE", NULL},
    {"0600", "SECRETCOOKIE", 0600, "SECRETCOOKIE", NULL},
    {"group may read", "SECRETCOOKIE", 0440, NULL, " must be accessible by owner only"},
    {"group may write", "SECRETCOOKIE", 0620, NULL, " must be accessible by owner only"},
    {"others may read", "SECRETCOOKIE", 0604, NULL, " must be accessible by owner only"},
    {"others may execute", "SECRETCOOKIE", 0401, NULL, " must be accessible by owner only"},
    {"0644", "SECRETCOOKIE", 0644, NULL, " must be accessible by owner only"},
    {"empty", "", 0400, NULL, " is empty (too short cookie string)"},
    {"only whitespace", " \n\r\n\t", 0400, NULL, " is empty (too short cookie string)"},
    {"newline stripped", "SECRETCOOKIE\n", 0400, "SECRETCOOKIE", NULL},
    {"CRLF and spaces stripped", "SECRET COOKIE \t \r\n", 0400, "SECRET COOKIE", NULL},
    {"leading space kept", " SECRET", 0400, " SECRET", NULL},
    {"control character", "SECRET\x01COOKIE", 0400, NULL, ": bad characters in cookie (byte 6)"},
    {"newline inside", "SECRET\nCOOKIE", 0400, NULL, ": bad characters in cookie (byte 6)"},
    {"non-ASCII", "SECR\xc3\xa9T", 0400, NULL, ": bad characters in cookie (byte 4)"},
};

START_TEST(test_file)
{
    char dir[64], out[CLUSTER_COOKIE_MAX + 1], err[512] = "", want[256];
    size_t len = 0;
    make_dir(dir);
    write_cookie(dir, files[_i].text, strlen(files[_i].text), files[_i].mode);
    int rc = cluster_cookie_load(dir, out, sizeof(out), &len, err, sizeof(err));
    if (files[_i].want != NULL) {
        ck_assert_msg(rc == 0, "%s: %s", files[_i].what, err);
        ck_assert_str_eq(out, files[_i].want);
        ck_assert_uint_eq(len, strlen(files[_i].want));
    } else {
        snprintf(want, sizeof(want), "Cookie file %s/.erlang.cookie%s", dir, files[_i].err);
        ck_assert_msg(rc == -1, "%s: accepted", files[_i].what);
        ck_assert_msg(strcmp(err, want) == 0, "%s:\n got %s\nwant %s", files[_i].what, err, want);
    }
    remove_dir(dir);
}
END_TEST

START_TEST(test_length)
{
    char dir[64], out[CLUSTER_COOKIE_MAX + 1], err[512] = "", want[256], text[2048];
    char long_cookie[CLUSTER_COOKIE_MAX + 1]; /* the longest cookie */
    size_t len = 0;
    memset(long_cookie, 'K', CLUSTER_COOKIE_MAX);
    long_cookie[CLUSTER_COOKIE_MAX] = '\0';

    /* 255 bytes, then with whitespace after them: accepted */
    make_dir(dir);
    snprintf(text, sizeof(text), "%s\n", long_cookie);
    write_cookie(dir, text, strlen(text), 0400);
    ck_assert_msg(cluster_cookie_load(dir, out, sizeof(out), &len, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_uint_eq(len, CLUSTER_COOKIE_MAX);
    ck_assert_str_eq(out, long_cookie);
    remove_dir(dir);

    /* 256 bytes; 255 then 300 spaces then a letter; 2,000 bytes: refused */
    static const struct {
        size_t spaces;
        const char *tail;
    } forms[] = {{0, "K"}, {300, "K"}, {1745, ""}};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        make_dir(dir);
        memcpy(text, long_cookie, CLUSTER_COOKIE_MAX);
        memset(text + CLUSTER_COOKIE_MAX, ' ', forms[i].spaces);
        strcpy(text + CLUSTER_COOKIE_MAX + forms[i].spaces, forms[i].tail);
        write_cookie(dir, text, strlen(text), 0400);
        ck_assert_int_eq(cluster_cookie_load(dir, out, sizeof(out), &len, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "Cookie file %s/.erlang.cookie holds more than 255 bytes",
                 dir);
        ck_assert_msg(strcmp(err, want) == 0, "form %zu: %s", i, err);
        remove_dir(dir);
    }

    /* A buffer too small for the cookie: an error, not a truncated secret */
    make_dir(dir);
    write_cookie(dir, "SECRETCOOKIE", 12, 0400);
    ck_assert_int_eq(cluster_cookie_load(dir, out, 12, &len, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "a cookie of 12 bytes does not fit in 12"));
    remove_dir(dir);
}
END_TEST

START_TEST(test_not_a_file)
{
    char dir[64], path[128], out[CLUSTER_COOKIE_MAX + 1], err[512] = "", want[256];
    size_t len = 0;
    make_dir(dir);
    snprintf(path, sizeof(path), "%s/" CLUSTER_COOKIE_FILE, dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(cluster_cookie_load(dir, out, sizeof(out), &len, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "Cookie file %s is of type directory", path);
    ck_assert_str_eq(err, want);
    remove_dir(dir);

    /* No data directory: the file cannot be made. */
    ck_assert_int_eq(
        cluster_cookie_load("/nonexistent/warren", out, sizeof(out), &len, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, "Failed to create cookie file /nonexistent/warren/", 49) == 0, "%s",
                  err);
    ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
}
END_TEST

static Suite *
cookie_suite(void)
{
    Suite *s = suite_create("cluster_cookie");
    TCase *tc = tcase_create("cookie");
    tcase_add_test(tc, test_created_then_reused);
    tcase_add_test(tc, test_letters_even);
    tcase_add_loop_test(tc, test_file, 0, sizeof(files) / sizeof(files[0]));
    tcase_add_test(tc, test_length);
    tcase_add_test(tc, test_not_a_file);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cookie_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
