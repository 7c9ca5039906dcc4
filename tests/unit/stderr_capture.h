/* Unit tests' capture of what the code under test logs: stderr pointed at a temporary file
 * between capture_begin() and capture_end(), which returns the text (a static buffer, 16 KiB
 * at most). One capture at a time. */
#ifndef WARREN_TESTS_STDERR_CAPTURE_H
#define WARREN_TESTS_STDERR_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

#include <check.h>

static FILE *capture_file;
static int saved_stderr = -1;

static void
capture_begin(void)
{
    capture_file = tmpfile();
    ck_assert_ptr_nonnull(capture_file);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture_file), STDERR_FILENO);
}

static const char *
capture_end(void)
{
    static char buf[16384];
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    ssize_t n = pread(fileno(capture_file), buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    fclose(capture_file);
    return buf;
}

#endif
