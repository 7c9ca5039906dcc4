/* Logging to stderr: one line per event, "2026-11-23 05:08:00.123 [warning] <context>: <text>".
 * Levels are rabbitmq.conf's log.level names. The level is checked before any formatting, so a
 * disabled debug line costs one comparison. No per-message logging on hot paths. */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARNING,
    LOG_ERROR,
    LOG_CRITICAL,
    LOG_NONE, /* log.level = none: nothing is written */
};

extern enum log_level log_min_level;

#define log_enabled(lvl) ((lvl) >= log_min_level && (lvl) < LOG_NONE)

/* Writes one line: time, [level], then "context: " when context is non-NULL, then the text. */
void log_write(enum log_level lvl, const char *context, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_writev(enum log_level lvl, const char *context, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_msg(lvl, ...)                                                                          \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write((lvl), NULL, __VA_ARGS__);                                                   \
    } while (0)

void log_set_level(enum log_level lvl);
/* "debug", "info", "warning", "error", "critical", "none" (as rabbitmq.conf). 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Renders up to n bytes of peer input as printable ASCII with \xNN escapes into dst
 * (always NUL-terminated, truncated with "..." if it does not fit), for debug samples of bad
 * input. Returns dst. */
char *log_escape(char *dst, size_t cap, const uint8_t *p, size_t n);

#endif
