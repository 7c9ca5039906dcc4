/* Logging: one line per event on stderr, "2026-11-23 05:08:00.123 [warning] context: text".
 * Each line is built in a stack buffer and handed to a single write(2), so lines from
 * concurrent threads (the event loop, the store thread) never interleave. A line that does
 * not fit is cut and ends in "...". Control characters in the text become '?', so text
 * that carries peer input (queue names, reply texts) cannot forge a second log line. */
#include "config.h"

#include "warren/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest line written, newline included. Longer lines are cut and end in "...". */
#define LOG_LINE_MAX 4096

enum log_level log_min_level = LOG_INFO;

static const char *const log_level_names[] = {
    [LOG_DEBUG] = "debug", [LOG_INFO] = "info",         [LOG_WARNING] = "warning",
    [LOG_ERROR] = "error", [LOG_CRITICAL] = "critical", [LOG_NONE] = "none",
};

void
log_set_level(enum log_level lvl)
{
    log_min_level = lvl;
}

/* Accepts the rabbitmq.conf names exactly (lower case). Returns 0 with *out set, or -1. */
int
log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

/* Returns the rabbitmq.conf name of lvl, or "?" for a value outside the enum. */
const char *
log_level_name(enum log_level lvl)
{
    if ((unsigned)lvl >= sizeof(log_level_names) / sizeof(log_level_names[0]))
        return "?";
    return log_level_names[lvl];
}

/* Writes all n bytes of p to stderr, retrying on EINTR and short writes. A failing
 * stderr is ignored: there is nowhere left to report it. */
static void
log_emit(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Replaces control characters in s[0..n) by '?'. */
static void
log_sanitize(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            s[i] = '?';
    }
}

void
log_writev(enum log_level lvl, const char *context, const char *fmt, va_list ap)
{
    if (!log_enabled(lvl))
        return;

    char line[LOG_LINE_MAX];
    /* Text may fill line[0 .. room - 1); a cut line ends there and the newline takes the
     * last byte, where the formatting functions put their NUL. */
    const size_t room = sizeof(line);
    size_t n = 0;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(line, room, "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, room - n, ".%03ld [%s] ", ts.tv_nsec / 1000000L,
                          log_level_name(lvl));

    size_t text_start = n;
    bool cut = false;
    int r;
    if (context != NULL) {
        r = snprintf(line + n, room - n, "%s: ", context);
        if (r < 0)
            r = 0;
        if ((size_t)r >= room - n) {
            cut = true;
            n = room - 1; /* where snprintf put its NUL */
        } else {
            n += (size_t)r;
        }
    }
    if (!cut) {
        r = vsnprintf(line + n, room - n, fmt, ap);
        if (r < 0)
            r = 0;
        if ((size_t)r >= room - n) {
            cut = true;
            n = room - 1;
        } else {
            n += (size_t)r;
        }
    }
    if (cut)
        memcpy(line + n - 3, "...", 3);
    log_sanitize(line + text_start, n - text_start);
    line[n++] = '\n';
    log_emit(line, n);
}

void
log_write(enum log_level lvl, const char *context, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_writev(lvl, context, fmt, ap);
    va_end(ap);
}

/* Writes the escaped form of byte c into out (at most 4 bytes, no NUL) and returns its
 * length: printable ASCII as itself, a backslash doubled, anything else as \xNN. */
static size_t
log_escape_byte(uint8_t c, char out[4])
{
    static const char hex[] = "0123456789abcdef";
    if (c == '\\') {
        out[0] = '\\';
        out[1] = '\\';
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[c >> 4];
    out[3] = hex[c & 0xf];
    return 4;
}

char *
log_escape(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    if (cap == 0)
        return dst;

    size_t total = 0;
    char tmp[4];
    for (size_t i = 0; i < n; i++)
        total += log_escape_byte(p[i], tmp);

    /* Everything fits: no "..." needed. Otherwise keep room for it. */
    size_t limit = total < cap ? cap - 1 : (cap > 3 ? cap - 1 - 3 : 0);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = log_escape_byte(p[i], tmp);
        if (len + k > limit)
            break;
        memcpy(dst + len, tmp, k);
        len += k;
    }
    if (total >= cap) {
        size_t dots = cap - 1 - len < 3 ? cap - 1 - len : 3;
        memcpy(dst + len, "...", dots);
        len += dots;
    }
    dst[len] = '\0';
    return dst;
}
