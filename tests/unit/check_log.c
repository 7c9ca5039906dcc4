/* Unit tests for src/core/log.c: the line format, level filtering, long-line truncation,
 * control characters in the text, level names, log_escape()'s escaping and truncation, the
 * JSON format, the file output's rotation, and writes that fail (/dev/full: a full disk).
 * Console lines are captured by pointing stderr at a temporary file. */
#include "config.h"

#include <dirent.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "stderr_capture.h"
#include "warren/log.h"

static void
assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    ck_assert_msg(rc == 0, "'%s' does not match /%s/", text, pattern);
}

#define STAMP "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} "

START_TEST(test_format)
{
    log_set_level(LOG_INFO);
    capture_begin();
    log_write(LOG_WARNING, "conn 42 127.0.0.1:50312 -> 127.0.0.1:5672", "closing: %s %d",
              "FRAME_ERROR", 501);
    assert_matches(capture_end(), STAMP "\\[warning\\] conn 42 127\\.0\\.0\\.1:50312 -> "
                                        "127\\.0\\.0\\.1:5672: closing: FRAME_ERROR 501\n$");

    capture_begin();
    log_msg(LOG_INFO, "listening on %s", "[::]:5672");
    assert_matches(capture_end(), STAMP "\\[info\\] listening on \\[::\\]:5672\n$");

    capture_begin();
    log_write(LOG_CRITICAL, NULL, "%s", "");
    assert_matches(capture_end(), STAMP "\\[critical\\] \n$");
}
END_TEST

static const struct {
    enum log_level min, lvl;
    bool written;
} filters[] = {
    {LOG_DEBUG, LOG_DEBUG, true},       {LOG_INFO, LOG_DEBUG, false},
    {LOG_INFO, LOG_INFO, true},         {LOG_WARNING, LOG_INFO, false},
    {LOG_WARNING, LOG_ERROR, true},     {LOG_CRITICAL, LOG_ERROR, false},
    {LOG_CRITICAL, LOG_CRITICAL, true}, {LOG_NONE, LOG_CRITICAL, false},
};

START_TEST(test_filter)
{
    log_set_level(filters[_i].min);
    capture_begin();
    log_msg(filters[_i].lvl, "x");
    log_write(filters[_i].lvl, "ctx", "y");
    const char *out = capture_end();
    log_set_level(LOG_INFO);
    if (filters[_i].written)
        ck_assert_int_eq(strlen(out) > 0 && strstr(out, "ctx: y\n") != NULL, 1);
    else
        ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_truncation)
{
    static char big[10000];
    memset(big, 'a', sizeof(big) - 1);
    log_set_level(LOG_INFO);

    capture_begin();
    log_write(LOG_ERROR, "ctx", "%s", big);
    const char *out = capture_end();
    ck_assert_uint_eq(strlen(out), 4096);
    ck_assert_str_eq(out + 4096 - 5, "a...\n");
    ck_assert_ptr_eq(strchr(out, '\n'), out + 4095);

    /* A context too long for the line is cut the same way. */
    capture_begin();
    log_write(LOG_ERROR, big, "text");
    out = capture_end();
    ck_assert_uint_eq(strlen(out), 4096);
    ck_assert_str_eq(out + 4096 - 4, "...\n");
}
END_TEST

START_TEST(test_control_chars)
{
    log_set_level(LOG_INFO);
    capture_begin();
    log_write(LOG_INFO, "c\x1b[31m", "no 'q1\n2026-01-01 00:00:00.000 [info] forged'\tend\x7f");
    assert_matches(capture_end(), STAMP "\\[info\\] c\\?\\[31m: no 'q1\\?2026-01-01 "
                                        "00:00:00\\.000 \\[info\\] forged'\\?end\\?\n$");
}
END_TEST

START_TEST(test_level_names)
{
    static const char *const names[] = {"debug", "info", "warning", "error", "critical", "none"};
    for (int i = 0; i <= LOG_NONE; i++) {
        enum log_level lvl;
        ck_assert_str_eq(log_level_name((enum log_level)i), names[i]);
        ck_assert_int_eq(log_level_parse(names[i], &lvl), 0);
        ck_assert_int_eq(lvl, i);
    }
    enum log_level lvl = LOG_ERROR;
    ck_assert_int_eq(log_level_parse("Info", &lvl), -1);
    ck_assert_int_eq(log_level_parse("warn", &lvl), -1);
    ck_assert_int_eq(log_level_parse("", &lvl), -1);
    ck_assert_int_eq(lvl, LOG_ERROR);
    ck_assert_str_eq(log_level_name((enum log_level)99), "?");
}
END_TEST

static const struct {
    const char *what;
    const char *in;
    size_t n, cap;
    const char *want;
} escapes[] = {
    {"printable", "abc", 3, 16, "abc"},
    {"empty", "", 0, 16, ""},
    {"bytes", "\x00\xff\n", 3, 16, "\\x00\\xff\\x0a"},
    {"backslash", "a\\b", 3, 16, "a\\\\b"},
    {"AMQP header", "AMQP\x00\x00\x09\x01", 8, 64, "AMQP\\x00\\x00\\x09\\x01"},
    {"exact fit", "abcdefg", 7, 8, "abcdefg"},
    {"one too many", "abcdefgh", 8, 8, "abcd..."},
    {"escape not split", "\x01\x02", 2, 8, "\\x01..."},
    {"escape dropped whole", "ab\x01", 3, 6, "ab..."},
    {"cap 1", "abc", 3, 1, ""},
    {"cap 3", "abc", 3, 3, ".."},
    {"cap 4", "abcd", 4, 4, "..."},
};

START_TEST(test_escape)
{
    char buf[80];
    memset(buf, 'Z', sizeof(buf));
    char *r = log_escape(buf, escapes[_i].cap, (const uint8_t *)escapes[_i].in, escapes[_i].n);
    ck_assert_ptr_eq(r, buf);
    ck_assert_msg(strcmp(buf, escapes[_i].want) == 0, "%s: got '%s', want '%s'", escapes[_i].what,
                  buf, escapes[_i].want);
    ck_assert_uint_lt(strlen(buf), escapes[_i].cap);
    ck_assert_int_eq(buf[escapes[_i].cap], 'Z'); /* nothing written past cap */
}
END_TEST

/* Back to the start-up output: stderr, plain, info, no file. */
static void
log_defaults(void)
{
    char err[256];
    struct log_options o = {.console = true, .console_level = LOG_INFO, .file_level = LOG_INFO};
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
}

/* JSON lines: RabbitMQ's fields, quotes and backslashes escaped, control characters and
 * bytes that are not UTF-8 as '?', UTF-8 kept. */
START_TEST(test_json)
{
    char err[256];
    struct log_options o = {.console = true,
                            .console_level = LOG_INFO,
                            .console_format = LOG_FORMAT_JSON,
                            .file_level = LOG_INFO};
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
    capture_begin();
    log_write(LOG_WARNING, "conn 1", "queue 'a\"b\\c\n\xff\xc3\xa9\xe2\x82' gone");
    log_msg(LOG_DEBUG, "not written");
    const char *out = capture_end();
    log_defaults();
    assert_matches(out, "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\."
                        "[0-9]{6}[+-][0-9]{2}:[0-9]{2}\",\"level\":\"warning\",\"msg\":\"conn 1: "
                        "queue 'a\\\\\"b\\\\\\\\c\\?\\?\xc3\xa9\\?\\?' gone\"\\}\n$");
}
END_TEST

static int
count_lines(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = 0, ch;
    *bytes = 0;
    while ((ch = fgetc(f)) != EOF) {
        (*bytes)++;
        n += ch == '\n';
    }
    fclose(f);
    return n;
}

/* Size-based rotation: <file>.0 is the newest archive, count archives are kept, no file passes
 * the size, and no line is lost or split on the way (the last 2 + 1 files hold the last lines). */
START_TEST(test_rotation)
{
    char dir[] = "/tmp/check_log_XXXXXX", err[256], path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct log_options o = {.console = false,
                            .file = "w.log",
                            .dir = dir,
                            .file_level = LOG_INFO,
                            .rotation_size = 400,
                            .rotation_count = 2};
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
    for (int i = 0; i < 40; i++)
        log_msg(LOG_INFO, "line %02d", i); /* 40 bytes a line: 10 per file */
    log_defaults();
    int total = 0;
    static const char *const names[] = {"w.log", "w.log.0", "w.log.1"};
    for (int i = 0; i < 3; i++) {
        size_t bytes;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        int n = count_lines(path, &bytes);
        ck_assert_msg(n > 0, "%s: no lines", path);
        ck_assert_uint_le(bytes, 400);
        total += n;
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/w.log.2", dir);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(total, 30);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* A file that cannot be written (/dev/full: ENOSPC on every write) drops lines and counts them;
 * logging goes on, and the console still gets every line. */
START_TEST(test_full_disk)
{
    char err[256];
    struct log_options o = {
        .console = true, .console_level = LOG_INFO, .file = "/dev/full", .file_level = LOG_INFO};
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
    uint64_t before = log_dropped();
    capture_begin();
    for (int i = 0; i < 3; i++)
        log_msg(LOG_ERROR, "line %d", i);
    const char *out = capture_end();
    log_defaults();
    ck_assert_uint_eq(log_dropped() - before, 3);
    ck_assert_ptr_nonnull(strstr(out, "line 2\n"));
}
END_TEST

START_TEST(test_open_fails)
{
    char err[256] = "";
    struct log_options o = {.console = true,
                            .console_level = LOG_INFO,
                            .file = "/nonexistent-dir/w.log",
                            .file_level = LOG_INFO};
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "cannot open log file /nonexistent-dir/w.log: No such file or directory");
    capture_begin();
    log_msg(LOG_INFO, "still on stderr");
    ck_assert_ptr_nonnull(strstr(capture_end(), "still on stderr\n"));
}
END_TEST

/* stderr is the journal's stream when $JOURNAL_STREAM names its device and inode: console
 * lines then start with their syslog priority; any other stream gets none. */
START_TEST(test_journal_priority)
{
    char err[256], env[64];
    struct log_options o = {.console = true,
                            .console_level = LOG_DEBUG,
                            .console_format = LOG_FORMAT_PLAIN,
                            .file_level = LOG_INFO};
    capture_begin();
    struct stat st;
    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
    log_msg(LOG_ERROR, "e");
    log_msg(LOG_DEBUG, "d");
    o.console_format = LOG_FORMAT_JSON;
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
    log_msg(LOG_WARNING, "w");
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", env, 1);
    o.console_format = LOG_FORMAT_PLAIN;
    ck_assert_int_eq(log_open(&o, err, sizeof(err)), 0);
    log_msg(LOG_INFO, "not the journal");
    const char *out = capture_end();
    unsetenv("JOURNAL_STREAM");
    log_defaults();
    assert_matches(out, "^<3>[0-9]{4}-[^\n]* \\[error\\] e\n"
                        "<7>[0-9]{4}-[^\n]* \\[debug\\] d\n"
                        "<4>\\{\"time\":[^\n]*\"msg\":\"w\"\\}\n"
                        "[0-9]{4}-[^\n]* \\[info\\] not the journal\n$");
}
END_TEST

static Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_format);
    tcase_add_loop_test(tc, test_filter, 0, sizeof(filters) / sizeof(filters[0]));
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_control_chars);
    tcase_add_test(tc, test_level_names);
    tcase_add_loop_test(tc, test_escape, 0, sizeof(escapes) / sizeof(escapes[0]));
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_rotation);
    tcase_add_test(tc, test_full_disk);
    tcase_add_test(tc, test_open_fails);
    tcase_add_test(tc, test_journal_priority);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
