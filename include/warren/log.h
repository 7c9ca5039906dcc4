/* Logging: one line per event, "2026-11-23 05:08:00.123 [warning] <context>: <text>", to the
 * console (stderr: the journal under systemd) and/or a file with size-based rotation, each
 * output with its own level and format (plain text, or one JSON object per line), as
 * rabbitmq.conf's log.console.* and log.file.* keys configure them. Levels are rabbitmq.conf's
 * log.level names. The level is checked before any formatting, so a disabled debug line costs
 * one comparison. No per-message logging on hot paths. */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <stdarg.h>
#include <stdbool.h>
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

/* log.console.formatter, log.file.formatter */
enum log_format {
    LOG_FORMAT_PLAIN = 0, /* plaintext: the line above */
    LOG_FORMAT_JSON,      /* json: {"time":"2026-11-23 05:08:00.123456+01:00","level":"warning",
                           * "msg":"<context>: <text>"}, RabbitMQ's field names */
};

/* Where lines go; see log_open(). */
struct log_options {
    bool console; /* write to stderr */
    enum log_level console_level;
    enum log_format console_format;
    const char *file; /* borrowed; NULL: no file. Relative: under dir */
    const char *dir;  /* borrowed; NULL or "": the working directory */
    enum log_level file_level;
    enum log_format file_format;
    uint64_t rotation_size;  /* bytes; a line that would take the file past it rotates first;
                              * 0: never */
    uint32_t rotation_count; /* archives kept: <file>.0 (newest) .. <file>.<count-1>;
                              * 0: the file is emptied instead */
};

/* The least severe level any output writes (LOG_NONE: none writes); read by log_enabled(). */
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

/* Sets every output's level (--log-level, tests, warrenctl's silence). */
void log_set_level(enum log_level lvl);

/* Switches from the start-up output (stderr, plain, LOG_INFO) to o's outputs, opening the file
 * (mode 0640, appended to). When stderr is the journal ($JOURNAL_STREAM), console lines start
 * with their syslog priority, "<3>" for error, which journald records. Returns 0, or -1 with
 * err set and nothing changed when the file cannot be opened. Call before other threads log. */
int log_open(const struct log_options *o, char *err, size_t errlen);

/* Closes the log file and reopens it by name (SIGUSR1: after an external logrotate moved it
 * away). Returns 0 (also with no file), or -1 with err set, the old file kept. */
int log_reopen(char *err, size_t errlen);

/* Closes the file; the console, if on, stays. */
void log_close(void);

/* Lines a failed write dropped since start: a full disk or an I/O error never stops the
 * broker or blocks it waiting; the lines are counted here instead. */
uint64_t log_dropped(void);
/* "debug", "info", "warning", "error", "critical", "none" (as rabbitmq.conf). 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Renders up to n bytes of peer input as printable ASCII with \xNN escapes into dst
 * (always NUL-terminated, truncated with "..." if it does not fit), for debug samples of bad
 * input. Returns dst. */
char *log_escape(char *dst, size_t cap, const uint8_t *p, size_t n);

#endif
