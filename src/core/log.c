/* Logging: one line per event, "2026-11-23 05:08:00.123 [warning] context: text", to stderr
 * and/or a file, each output with its own level and format (plain, or RabbitMQ's JSON object
 * per line). Each line is built in a stack buffer and handed to a single write(2), so lines
 * from concurrent threads (the event loop, the store thread) never interleave. A line that
 * does not fit is cut and ends in "...". Control characters in the text become '?', so text
 * that carries peer input (queue names, reply texts) cannot forge a second log line; in JSON,
 * bytes that are not UTF-8 become '?' too, so every line stays valid JSON.
 *
 * The file is appended to with plain write(2) calls, as nginx and redis do: a write lands in
 * the page cache and returns without waiting for the disk (only the kernel's throttling of
 * a writer with too many dirty pages can slow it, and log lines are few). A write that fails
 * (a full disk, an I/O error) drops its line and counts it (log_dropped()); the broker goes
 * on, and the next line that makes it into the file is preceded by one saying how many were
 * lost.
 * Size-based rotation renames <file> to <file>.0, <file>.0 to <file>.1 and so on, as
 * RabbitMQ's (Erlang logger_std_h's) rotation names them, then opens a new <file>. On the
 * journal's stream, console lines carry their syslog priority ("<3>...") for journald. */
#include "config.h"

#include "warren/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Longest plain line written, newline included. Longer lines are cut and end in "...". */
#define LOG_LINE_MAX 4096
/* A JSON line: the plain line's text with each byte escaped at most to two, and the fields. */
#define LOG_JSON_MAX (2 * LOG_LINE_MAX + 128)
/* Room before each rendered line for "<N>", its syslog priority, for the journal. */
#define LOG_PRI_LEN 3

enum log_level log_min_level = LOG_INFO;

/* One output's settings. Written before other threads start (log_open) or by log_set_level;
 * read by every logging thread. */
struct log_out {
    bool on;
    enum log_level level;
    enum log_format format;
};

static struct log_out log_console = {true, LOG_INFO, LOG_FORMAT_PLAIN};
static struct log_out log_file_out = {false, LOG_INFO, LOG_FORMAT_PLAIN};
/* stderr is the journal's stream: console lines start with "<N>", their syslog priority,
 * which journald strips and records (sd-daemon.h's SD_ERR...), so journalctl -p filters by
 * level. */
static bool log_console_journal;

/* The file's state, under lock: whichever thread writes, rotates or reopens holds it. */
static struct {
    pthread_mutex_t lock;
    int fd;                  /* -1: no file */
    char *path;              /* owns; NULL: no file */
    uint64_t size;           /* bytes in the file: its size at open plus what we wrote */
    uint64_t rotation_size;  /* 0: never rotate */
    uint32_t rotation_count; /* archives kept */
    uint64_t unreported;     /* lines dropped since the last line written */
    int last_errno;          /* why the last of them was dropped */
} log_file = {PTHREAD_MUTEX_INITIALIZER, -1, NULL, 0, 0, 0, 0, 0};

static atomic_uint_least64_t log_dropped_lines;

static const char *const log_level_names[] = {
    [LOG_DEBUG] = "debug", [LOG_INFO] = "info",         [LOG_WARNING] = "warning",
    [LOG_ERROR] = "error", [LOG_CRITICAL] = "critical", [LOG_NONE] = "none",
};

/* log_min_level from the outputs that are on. */
static void
log_update_min(void)
{
    enum log_level m = LOG_NONE;
    if (log_console.on && log_console.level < m)
        m = log_console.level;
    if (log_file_out.on && log_file_out.level < m)
        m = log_file_out.level;
    log_min_level = m;
}

void
log_set_level(enum log_level lvl)
{
    log_console.level = lvl;
    log_file_out.level = lvl;
    log_update_min();
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

uint64_t
log_dropped(void)
{
    return atomic_load(&log_dropped_lines);
}

/* Writes all n bytes of p to fd, retrying on EINTR and short writes. Returns 0, or -1 with
 * errno set (what was not written is lost: the caller counts the line as dropped). */
static int
log_emit(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
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

/* One event, rendered for every format an output wants, each after LOG_PRI_LEN bytes that
 * hold its "<N>" priority prefix. */
struct log_line {
    char plain[LOG_PRI_LEN + LOG_LINE_MAX];
    size_t plain_n;    /* bytes after the prefix */
    size_t text_start; /* the text (context: text), from the line's start */
    char json[LOG_PRI_LEN + LOG_JSON_MAX];
    size_t json_n; /* 0: not rendered */
};

/* The length of the well-formed UTF-8 sequence at s[0..n), or 0 if there is none there
 * (a stray continuation byte, a truncated or overlong sequence, a surrogate, > U+10FFFF). */
static size_t
log_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* Renders l->json from the plain line's text: {"time":"<RFC 3339, space, microseconds, local
 * offset>","level":"<name>","msg":"<text>"}, RabbitMQ's JSON formatter's fields and time
 * format, with a newline. */
static void
log_render_json(struct log_line *l, enum log_level lvl, const struct timespec *ts,
                const struct tm *tm)
{
    char *j = l->json + LOG_PRI_LEN;
    size_t n = strftime(j, LOG_JSON_MAX, "{\"time\":\"%Y-%m-%d %H:%M:%S", tm);
    long off = tm->tm_gmtoff / 60;
    n += (size_t)snprintf(j + n, LOG_JSON_MAX - n,
                          ".%06ld%c%02ld:%02ld\",\"level\":\"%s\",\"msg\":\"", ts->tv_nsec / 1000L,
                          off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60, log_level_name(lvl));
    const unsigned char *t = (const unsigned char *)l->plain + LOG_PRI_LEN + l->text_start;
    size_t tn = l->plain_n - 1 - l->text_start; /* without the newline */
    for (size_t i = 0; i < tn;) {
        size_t k = log_utf8_len(t + i, tn - i);
        if (k == 0) {
            j[n++] = '?';
            i++;
            continue;
        }
        if (t[i] == '"' || t[i] == '\\')
            j[n++] = '\\';
        memcpy(j + n, t + i, k);
        n += k;
        i += k;
    }
    memcpy(j + n, "\"}\n", 3);
    l->json_n = n + 3;
}

/* Renders one event into l: the plain line always, the JSON one if json. */
static void
log_render(struct log_line *l, enum log_level lvl, bool json, const char *context, const char *fmt,
           va_list ap)
{
    char *line = l->plain + LOG_PRI_LEN;
    /* Text may fill line[0 .. room - 1); a cut line ends there and the newline takes the
     * last byte, where the formatting functions put their NUL. */
    const size_t room = LOG_LINE_MAX;
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
    l->plain_n = n;
    l->text_start = text_start;
    l->json_n = 0;
    /* syslog priorities: debug 7, info 6, warning 4, error 3, critical 2 */
    static const char pri[] = {[LOG_DEBUG] = '7', [LOG_INFO] = '6',     [LOG_WARNING] = '4',
                               [LOG_ERROR] = '3', [LOG_CRITICAL] = '2', [LOG_NONE] = '2'};
    char prefix[LOG_PRI_LEN] = {'<', pri[lvl], '>'};
    memcpy(l->plain, prefix, LOG_PRI_LEN);
    memcpy(l->json, prefix, LOG_PRI_LEN);
    if (json)
        log_render_json(l, lvl, &ts, &tm);
}

/* log_render() with its arguments inline. */
static void log_renderf(struct log_line *l, enum log_level lvl, bool json, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
log_renderf(struct log_line *l, enum log_level lvl, bool json, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_render(l, lvl, json, NULL, fmt, ap);
    va_end(ap);
}

/* The rendering of l that out wants, with its priority prefix if pri, and its length. */
static const char *
log_line_for(const struct log_line *l, const struct log_out *out, bool pri, size_t *n)
{
    const char *p = out->format == LOG_FORMAT_JSON ? l->json : l->plain;
    *n = (out->format == LOG_FORMAT_JSON ? l->json_n : l->plain_n) + (pri ? LOG_PRI_LEN : 0);
    return pri ? p : p + LOG_PRI_LEN;
}

static void
log_drop(int err)
{
    atomic_fetch_add(&log_dropped_lines, 1);
    log_file.unreported++;
    log_file.last_errno = err;
}

/* Moves <path>.<i-1> to <path>.<i> down to <path> to <path>.0 and opens a new <path>; with no
 * archives to keep, empties the file instead. Lock held. Returns 0, or -1 with errno set,
 * writing going on into the file it had. */
static int
log_file_rotate(void)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    if (log_file.rotation_count == 0) {
        if (ftruncate(log_file.fd, 0) < 0)
            return -1;
        log_file.size = 0;
        return 0;
    }
    for (uint32_t i = log_file.rotation_count - 1; i > 0; i--) {
        snprintf(from, sizeof(from), "%s.%u", log_file.path, i - 1);
        snprintf(to, sizeof(to), "%s.%u", log_file.path, i);
        if (rename(from, to) < 0 && errno != ENOENT)
            return -1;
    }
    snprintf(to, sizeof(to), "%s.0", log_file.path);
    if (rename(log_file.path, to) < 0)
        return -1;
    int fd = open(log_file.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return -1; /* lines go on into <path>.0 until a rotation or reopen succeeds */
    close(log_file.fd);
    log_file.fd = fd;
    log_file.size = 0;
    return 0;
}

/* Appends l (as log_file_out's format wants it) to the file, rotating first when it would pass
 * rotation_size, and after lines were dropped, a line saying how many first. */
static void
log_file_write(const struct log_line *l)
{
    size_t n;
    const char *p = log_line_for(l, &log_file_out, false, &n);
    pthread_mutex_lock(&log_file.lock);
    if (log_file.fd < 0) {
        pthread_mutex_unlock(&log_file.lock);
        return;
    }
    if (log_file.rotation_size > 0 && log_file.size > 0 &&
        log_file.size + n > log_file.rotation_size && log_file_rotate() < 0)
        log_file.size = 0; /* not again at each line: the next try is rotation_size later */
    if (log_file.unreported > 0) {
        struct log_line note;
        size_t nn;
        log_renderf(&note, LOG_WARNING, log_file_out.format == LOG_FORMAT_JSON,
                    "%llu log lines dropped: writing %s failed: %s",
                    (unsigned long long)log_file.unreported, log_file.path,
                    strerror(log_file.last_errno));
        const char *np = log_line_for(&note, &log_file_out, false, &nn);
        if (log_emit(log_file.fd, np, nn) == 0) {
            log_file.size += nn;
            log_file.unreported = 0;
        }
    }
    if (log_file.unreported == 0 && log_emit(log_file.fd, p, n) == 0)
        log_file.size += n;
    else
        log_drop(errno);
    pthread_mutex_unlock(&log_file.lock);
}

void
log_writev(enum log_level lvl, const char *context, const char *fmt, va_list ap)
{
    if (!log_enabled(lvl))
        return;
    bool to_console = log_console.on && lvl >= log_console.level;
    bool to_file = log_file_out.on && lvl >= log_file_out.level;
    bool json = (to_console && log_console.format == LOG_FORMAT_JSON) ||
                (to_file && log_file_out.format == LOG_FORMAT_JSON);
    struct log_line l;
    log_render(&l, lvl, json, context, fmt, ap);
    if (to_console) {
        size_t n;
        const char *p = log_line_for(&l, &log_console, log_console_journal, &n);
        if (log_emit(STDERR_FILENO, p, n) < 0)
            atomic_fetch_add(&log_dropped_lines, 1);
    }
    if (to_file)
        log_file_write(&l);
}

void
log_write(enum log_level lvl, const char *context, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_writev(lvl, context, fmt, ap);
    va_end(ap);
}

/* Opens path for appending. Returns the descriptor with *size set to the file's size, or -1
 * with err set. */
static int
log_file_open(const char *path, uint64_t *size, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/* Whether stderr is the journal's stream: systemd sets $JOURNAL_STREAM to its
 * "device:inode" (systemd.exec(5)); a stderr redirected elsewhere by the service has
 * another. */
static bool
log_stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int
log_open(const struct log_options *o, char *err, size_t errlen)
{
    char *path = NULL;
    int fd = -1;
    uint64_t size = 0;
    if (o->file != NULL) {
        bool join = o->file[0] != '/' && o->dir != NULL && o->dir[0] != '\0';
        size_t len = (join ? strlen(o->dir) + 1 : 0) + strlen(o->file);
        if (len >= PATH_MAX) {
            snprintf(err, errlen, "log file name longer than %d bytes", PATH_MAX - 1);
            return -1;
        }
        if ((path = malloc(len + 1)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        size_t dn = 0;
        if (join) {
            dn = strlen(o->dir);
            memcpy(path, o->dir, dn);
            path[dn++] = '/';
        }
        memcpy(path + dn, o->file, strlen(o->file) + 1);
        if ((fd = log_file_open(path, &size, err, errlen)) < 0) {
            free(path);
            return -1;
        }
    }
    log_close();
    pthread_mutex_lock(&log_file.lock);
    log_file.fd = fd;
    log_file.path = path;
    log_file.size = size;
    log_file.rotation_size = o->rotation_size;
    log_file.rotation_count = o->rotation_count;
    pthread_mutex_unlock(&log_file.lock);
    log_console = (struct log_out){o->console, o->console_level, o->console_format};
    log_console_journal = log_stderr_is_journal();
    log_file_out = (struct log_out){fd >= 0, o->file_level, o->file_format};
    log_update_min();
    return 0;
}

int
log_reopen(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&log_file.lock);
    if (log_file.path != NULL) {
        uint64_t size;
        int fd = log_file_open(log_file.path, &size, err, errlen);
        if (fd < 0) {
            rc = -1;
        } else {
            close(log_file.fd);
            log_file.fd = fd;
            log_file.size = size;
        }
    }
    pthread_mutex_unlock(&log_file.lock);
    return rc;
}

void
log_close(void)
{
    pthread_mutex_lock(&log_file.lock);
    if (log_file.fd >= 0)
        close(log_file.fd);
    free(log_file.path);
    log_file.fd = -1;
    log_file.path = NULL;
    pthread_mutex_unlock(&log_file.lock);
    log_file_out.on = false;
    log_update_min();
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
