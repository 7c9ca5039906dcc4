/* Unit tests for src/core/conf.c: defaults, the rabbitmq.conf-style file (good files, every
 * error with its FILE:LINE message, every listener form), the command-line flags and their
 * precedence over the file, the disk_free_limit keys (RabbitMQ's units, how .absolute and
 * .relative combine), vm_memory_high_watermark.absolute's units, consumer_timeout's range
 * (beyond 32 bits), the cluster's keys (issue 14) and the node's name, and that
 * etc/warren.conf documents the real defaults. A struct conf is
 * compared as one rendered string, so each case states the whole result. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "warren/conf.h"

/* Renders the parts of c a test can state in one line. */
static void
render(const struct conf *c, char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "L=");
    for (unsigned i = 0; i < c->n_listeners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        n += (size_t)snprintf(buf + n, cap - n, "%s%s%s%s:%u", i ? "," : "",
                              strchr(l->host, ':') ? "[" : "", l->host,
                              strchr(l->host, ':') ? "]" : "", l->port);
    }
    n += (size_t)snprintf(buf + n, cap - n, " LB=");
    for (unsigned i = 0; i < c->n_loopback_users; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", c->loopback_users[i]);
    snprintf(buf + n, cap - n, " U=%s P=%s V=%s HB=%u FM=%u CM=%u HT=%u LL=%s DD=%s",
             c->default_user, c->default_pass, c->default_vhost, c->heartbeat, c->frame_max,
             c->channel_max, c->handshake_timeout, log_level_name(c->log_level), c->data_dir);
}

#define DEFAULTS_REST "U=guest P=guest V=/ HB=60 FM=131072 CM=2047 HT=10000 LL=info DD=./var"
#define DEFAULTS "L=:5672 LB=guest " DEFAULTS_REST

/* Writes text to a new temporary file; path receives its name. */
static void
write_temp(char path[64], const char *text, size_t len)
{
    strcpy(path, "/tmp/check_conf.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads text[0..len) as a configuration file over the defaults into *c (which the caller
 * frees); path receives the temporary file's name (deleted again), err the error. Returns
 * conf_load_file's result. */
static int
load_text(struct conf *c, char path[64], const char *text, size_t len, char *err, size_t errlen)
{
    write_temp(path, text, len);
    conf_init_defaults(c);
    int rc = conf_load_file(c, path, err, errlen);
    unlink(path);
    return rc;
}

START_TEST(test_defaults)
{
    struct conf c;
    char buf[512];
    conf_init_defaults(&c);
    render(&c, buf, sizeof(buf));
    ck_assert_str_eq(buf, DEFAULTS);
    ck_assert(conf_is_loopback_user(&c, "guest"));
    ck_assert(!conf_is_loopback_user(&c, "alice"));
    ck_assert_ptr_null(c.config_path);
    ck_assert_uint_eq(c.disk_free_limit_absolute, 50000000);
    ck_assert(c.disk_free_limit_relative == 0 && !c.disk_free_limit_absolute_set);
    ck_assert_uint_eq(conf_disk_free_limit(&c, 1u << 30), 50000000);
    conf_free(&c);
}
END_TEST

static const struct {
    const char *what, *text, *want;
} good_files[] = {
    {"empty file", "", DEFAULTS},
    {"comments, blanks, tabs", "  # comment\n\n\theartbeat\t=\t30  \n#x = y\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=30 FM=131072 CM=2047 HT=10000 LL=info DD=./var"},
    {"no spaces around '='", "heartbeat=30\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=30 FM=131072 CM=2047 HT=10000 LL=info DD=./var"},
    {"CRLF line ends, no final newline", "heartbeat = 30\r\nchannel_max = 10",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=30 FM=131072 CM=10 HT=10000 LL=info DD=./var"},
    {"trailing comment", "heartbeat = 30 # half a minute\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=30 FM=131072 CM=2047 HT=10000 LL=info DD=./var"},
    {"'#' inside a value is kept", "default_pass = s3#cret\n",
     "L=:5672 LB=guest U=guest P=s3#cret V=/ HB=60 FM=131072 CM=2047 HT=10000 LL=info DD=./var"},
    {"last line wins", "heartbeat = 10\nheartbeat = 20\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=20 FM=131072 CM=2047 HT=10000 LL=info DD=./var"},
    {"every scalar key",
     "default_user = admin\ndefault_pass = pw\ndefault_vhost = prod\nheartbeat = 0\n"
     "frame_max = 4096\nchannel_max = 65535\nhandshake_timeout = 1\nlog.level = debug\n"
     "data_dir = /var/lib/warren\n",
     "L=:5672 LB=guest U=admin P=pw V=prod HB=0 FM=4096 CM=65535 HT=1 LL=debug "
     "DD=/var/lib/warren"},
    {"bounds", "heartbeat = 65535\nchannel_max = 0\nframe_max = 2147483647\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=65535 FM=2147483647 CM=0 HT=10000 LL=info "
     "DD=./var"},
    {"frame_max = 0 means no limit", "frame_max = 0\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=60 FM=0 CM=2047 HT=10000 LL=info DD=./var"},
    {"frame_max with KB", "frame_max = 128KB\n", DEFAULTS},
    {"frame_max with mb", "frame_max = 1mb\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=60 FM=1048576 CM=2047 HT=10000 LL=info DD=./var"},
    {"log.level none", "log.level = none\n",
     "L=:5672 LB=guest U=guest P=guest V=/ HB=60 FM=131072 CM=2047 HT=10000 LL=none DD=./var"},
    {"bare port", "listeners.tcp.default = 5673\n", "L=:5673 LB=guest " DEFAULTS_REST},
    {"IPv4 and bare IPv6 (rabbitmq.conf forms)",
     "listeners.tcp.1 = 127.0.0.1:5672\nlisteners.tcp.2 = ::1:5672\n",
     "L=127.0.0.1:5672,[::1]:5672 LB=guest " DEFAULTS_REST},
    {"bracketed IPv6", "listeners.tcp.v6 = [::1]:5673\n", "L=[::1]:5673 LB=guest " DEFAULTS_REST},
    {"all-interfaces literals", "listeners.tcp.a = 0.0.0.0:1\nlisteners.tcp.b = [::]:65535\n",
     "L=0.0.0.0:1,[::]:65535 LB=guest " DEFAULTS_REST},
    {"full IPv6 without brackets", "listeners.tcp.x = fe80::1:2:3:4:5672\n",
     "L=[fe80::1:2:3:4]:5672 LB=guest " DEFAULTS_REST},
    {"same name replaces, order kept",
     "listeners.tcp.a = 1\nlisteners.tcp.b = 2\nlisteners.tcp.a = 127.0.0.1:3\n",
     "L=127.0.0.1:3,:2 LB=guest " DEFAULTS_REST},
    {"loopback_users = none", "loopback_users = none\n", "L=:5672 LB= " DEFAULTS_REST},
    {"loopback_users.guest = false", "loopback_users.guest = false\n",
     "L=:5672 LB= " DEFAULTS_REST},
    {"loopback_users.alice = true adds", "loopback_users.alice = true\n",
     "L=:5672 LB=guest,alice " DEFAULTS_REST},
    {"none, then a user", "loopback_users = none\nloopback_users.alice = true\n",
     "L=:5672 LB=alice " DEFAULTS_REST},
    {"true twice is once", "loopback_users.guest = true\nloopback_users.guest = true\n", DEFAULTS},
    {"false for an absent user", "loopback_users.bob = false\n", DEFAULTS},
    {"listeners.tcp = none", "listeners.tcp = none\n", "L= LB=guest " DEFAULTS_REST},
    {"none, then a listener", "listeners.tcp = none\nlisteners.tcp.a = 1\n",
     "L=:1 LB=guest " DEFAULTS_REST},
    {"TLS keys leave the rest alone",
     "listeners.ssl.default = 5671\nssl_options.certfile = /c.pem\nssl_options.verify = "
     "verify_peer\nssl_options.versions.1 = tlsv1.2\nauth_mechanisms.1 = EXTERNAL\n",
     DEFAULTS},
};

START_TEST(test_good_file)
{
    char path[64], buf[512], err[256] = "";
    struct conf c;
    const char *text = good_files[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s", good_files[_i].what, err);
    render(&c, buf, sizeof(buf));
    ck_assert_msg(strcmp(buf, good_files[_i].want) == 0, "%s:\n got %s\nwant %s",
                  good_files[_i].what, buf, good_files[_i].want);
    conf_free(&c);
}
END_TEST

/* The reason given for a bad disk_free_limit.absolute or vm_memory_high_watermark.absolute. */
#define DISK_UNITS                                                                                 \
    "expected a size in bytes, optionally with a unit: kB, MB, GB, TB (powers of 1000) or KiB, "   \
    "MiB, GiB, TiB (powers of 1024)"
static const struct {
    const char *what, *text;
    unsigned line;
    const char *msg;
} bad_files[] = {
    {"unknown key", "hearbeat = 30\n", 1, "unknown key 'hearbeat'"},
    {"unknown key after good lines", "# x\nheartbeat = 30\n\nfoo.bar = 1\n", 4,
     "unknown key 'foo.bar'"},
    {"key case matters", "Heartbeat = 30\n", 1, "unknown key 'Heartbeat'"},
    {"not an integer", "heartbeat = abc\n", 1,
     "bad value 'abc' for heartbeat: expected an integer 0..65535"},
    {"integer too big", "heartbeat = 65536\n", 1,
     "bad value '65536' for heartbeat: expected an integer 0..65535"},
    {"negative", "channel_max = -1\n", 1,
     "bad value '-1' for channel_max: expected an integer 0..65535"},
    {"overflow", "heartbeat = 99999999999999999999999\n", 1,
     "bad value '99999999999999999999999' for heartbeat: expected an integer 0..65535"},
    {"junk after a number", "heartbeat = 30 seconds\n", 1,
     "bad value '30 seconds' for heartbeat: expected an integer 0..65535"},
    {"handshake_timeout 0", "handshake_timeout = 0\n", 1,
     "bad value '0' for handshake_timeout: expected an integer 1..2147483647"},
    {"frame_max below 4096", "frame_max = 4095\n", 1,
     "bad value '4095' for frame_max: expected 0 or a size in bytes 4096..2147483647 (KB, MB "
     "and GB suffixes allowed)"},
    {"frame_max above 2^31-1", "frame_max = 2GB\n", 1,
     "bad value '2GB' for frame_max: expected 0 or a size in bytes 4096..2147483647 (KB, MB "
     "and GB suffixes allowed)"},
    {"frame_max bad suffix", "frame_max = 128kib\n", 1,
     "bad value '128kib' for frame_max: expected 0 or a size in bytes 4096..2147483647 (KB, MB "
     "and GB suffixes allowed)"},
    {"log level", "log.level = loud\n", 1,
     "bad value 'loud' for log.level: expected debug, info, warning, error, critical or none"},
    {"log level case", "log.level = INFO\n", 1,
     "bad value 'INFO' for log.level: expected debug, info, warning, error, critical or none"},
    {"missing '='", "\n# c\nheartbeat 30\n", 3,
     "missing '=' in 'heartbeat 30': expected 'key = value'"},
    {"missing key", "= 30\n", 1, "missing key before '='"},
    {"missing value", "heartbeat =\n", 1, "missing value for heartbeat"},
    {"value is only a comment", "heartbeat = # none\n", 1, "missing value for heartbeat"},
    {"string too long",
     "default_vhost = "
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
     1,
     "bad value "
     "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' for "
     "default_vhost: expected 1..255 characters"},
    {"listener without port", "listeners.tcp.1 = 127.0.0.1\n", 1,
     "bad value '127.0.0.1' for listeners.tcp.1: expected [host:]port with a numeric IPv4 or "
     "IPv6 host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"listener host name", "listeners.tcp.1 = localhost:5672\n", 1,
     "bad value 'localhost:5672' for listeners.tcp.1: expected [host:]port with a numeric IPv4 "
     "or IPv6 host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"listener port 0", "listeners.tcp.1 = 0\n", 1,
     "bad value '0' for listeners.tcp.1: expected [host:]port with a numeric IPv4 or IPv6 host "
     "and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"listener port too big", "listeners.tcp.1 = 1.2.3.4:70000\n", 1,
     "bad value '1.2.3.4:70000' for listeners.tcp.1: expected [host:]port with a numeric IPv4 "
     "or IPv6 host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"bare IPv6 without port", "listeners.tcp.1 = ::1\n", 1,
     "bad value '::1' for listeners.tcp.1: expected [host:]port with a numeric IPv4 or IPv6 "
     "host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"bracketed IPv6 without port", "listeners.tcp.1 = [::1]\n", 1,
     "bad value '[::1]' for listeners.tcp.1: expected [host:]port with a numeric IPv4 or IPv6 "
     "host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"listener with empty host", "listeners.tcp.1 = :5672\n", 1,
     "bad value ':5672' for listeners.tcp.1: expected [host:]port with a numeric IPv4 or IPv6 "
     "host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"listener without name", "listeners.tcp. = 5672\n", 1, "unknown key 'listeners.tcp.'"},
    {"listeners.tcp bare value", "listeners.tcp = all\n", 1,
     "bad value 'all' for listeners.tcp: expected none"},
    {"ssl listener without port", "listeners.ssl.default = ::1\n", 1,
     "bad value '::1' for listeners.ssl.default: expected [host:]port with a numeric IPv4 or "
     "IPv6 host and a port 1..65535, e.g. 5672, 127.0.0.1:5672 or [::1]:5672"},
    {"verify value", "ssl_options.verify = yes\n", 1,
     "bad value 'yes' for ssl_options.verify: expected verify_none, verify_peer"},
    {"boolean value", "ssl_options.fail_if_no_peer_cert = 1\n", 1,
     "bad value '1' for ssl_options.fail_if_no_peer_cert: expected true or false"},
    {"TLS version", "ssl_options.versions.1 = sslv3\n", 1,
     "bad value 'sslv3' for ssl_options.versions.1: expected tlsv1.3, tlsv1.2, tlsv1.1, tlsv1"},
    {"list item not numbered", "auth_mechanisms.a = PLAIN\n", 1,
     "bad key auth_mechanisms.a: expected a number after 'auth_mechanisms.'"},
    {"mechanism", "auth_mechanisms.1 = CRAM-MD5\n", 1,
     "bad value 'CRAM-MD5' for auth_mechanisms.1: expected PLAIN, AMQPLAIN, EXTERNAL"},
    {"login from", "ssl_cert_login_from = email\n", 1,
     "bad value 'email' for ssl_cert_login_from: expected distinguished_name, common_name, "
     "subject_alternative_name, subject_alt_name"},
    {"depth", "ssl_options.depth = 101\n", 1,
     "bad value '101' for ssl_options.depth: expected an integer 0..100"},
    {"loopback value", "loopback_users.guest = yes\n", 1,
     "bad value 'yes' for loopback_users.guest: expected true or false"},
    {"loopback_users bare value", "loopback_users = all\n", 1,
     "bad value 'all' for loopback_users: expected none"},
    {"NUL byte", "heartbeat = 3\0000\n", 1, "NUL byte in line"},
    {"disk limit unknown unit", "disk_free_limit.absolute = 50XB\n", 1,
     "bad value '50XB' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit unit only", "\ndisk_free_limit.absolute = MB\n", 2,
     "bad value 'MB' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit space before unit", "disk_free_limit.absolute = 50 MB\n", 1,
     "bad value '50 MB' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit junk after unit", "disk_free_limit.absolute = 50MBs\n", 1,
     "bad value '50MBs' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit bytes unit alone", "disk_free_limit.absolute = 50B\n", 1,
     "bad value '50B' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit negative", "disk_free_limit.absolute = -1\n", 1,
     "bad value '-1' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit fraction", "disk_free_limit.absolute = 1.5GB\n", 1,
     "bad value '1.5GB' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit overflow", "disk_free_limit.absolute = 18446744073709551616\n", 1,
     "bad value '18446744073709551616' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk limit overflow by the unit", "disk_free_limit.absolute = 18446744073709552kB\n", 1,
     "bad value '18446744073709552kB' for disk_free_limit.absolute: " DISK_UNITS},
    {"disk relative not a number", "disk_free_limit.relative = two\n", 1,
     "bad value 'two' for disk_free_limit.relative: expected a number 0..1000, e.g. 1.5"},
    {"disk relative negative", "disk_free_limit.relative = -1.0\n", 1,
     "bad value '-1.0' for disk_free_limit.relative: expected a number 0..1000, e.g. 1.5"},
    {"disk relative too big", "disk_free_limit.relative = 1000.5\n", 1,
     "bad value '1000.5' for disk_free_limit.relative: expected a number 0..1000, e.g. 1.5"},
    {"disk relative nan", "disk_free_limit.relative = nan\n", 1,
     "bad value 'nan' for disk_free_limit.relative: expected a number 0..1000, e.g. 1.5"},
    {"memory absolute unknown unit", "vm_memory_high_watermark.absolute = 4XB\n", 1,
     "bad value '4XB' for vm_memory_high_watermark.absolute: " DISK_UNITS},
    {"memory relative above 1", "vm_memory_high_watermark.relative = 1.5\n", 1,
     "bad value '1.5' for vm_memory_high_watermark.relative: expected a number 0..1, e.g. 0.4"},
};

START_TEST(test_bad_file)
{
    char path[64], err[512] = "", want[512];
    struct conf c;
    /* sizeof would see the NUL case's embedded NUL; strlen would stop at it. */
    size_t len = strlen(bad_files[_i].text);
    if (strstr(bad_files[_i].what, "NUL") != NULL)
        len += 1 + strlen(bad_files[_i].text + len + 1);
    int rc = load_text(&c, path, bad_files[_i].text, len, err, sizeof(err));
    conf_free(&c);
    snprintf(want, sizeof(want), "%s:%u: %s", path, bad_files[_i].line, bad_files[_i].msg);
    ck_assert_msg(rc == -1, "%s: accepted", bad_files[_i].what);
    ck_assert_msg(strcmp(err, want) == 0, "%s:\n got %s\nwant %s", bad_files[_i].what, err, want);
}
END_TEST

/* disk_free_limit: RabbitMQ's information units, and .relative (times physical memory, here
 * phys bytes) used only when .absolute is not given, whatever the order of the lines. */
static const struct {
    const char *what, *text;
    uint64_t phys, limit;
} disk_limits[] = {
    {"default", "", 1u << 30, 50000000},
    {"bytes", "disk_free_limit.absolute = 123456789\n", 0, 123456789},
    {"0 disables", "disk_free_limit.absolute = 0\n", 0, 0},
    {"MB are 10^6", "disk_free_limit.absolute = 50MB\n", 0, 50000000},
    {"mb, Mb, M, m alike", "disk_free_limit.absolute = 7mb\n", 0, 7000000},
    {"bare M", "disk_free_limit.absolute = 7M\n", 0, 7000000},
    {"kB", "disk_free_limit.absolute = 512kB\n", 0, 512000},
    {"bare k", "disk_free_limit.absolute = 512k\n", 0, 512000},
    {"GB", "disk_free_limit.absolute = 2GB\n", 0, 2000000000},
    {"TB", "disk_free_limit.absolute = 1000000TB\n", 0, 1000000000000000000u},
    {"P", "disk_free_limit.absolute = 3P\n", 0, 3000000000000000u},
    {"KiB are 2^10", "disk_free_limit.absolute = 3KiB\n", 0, 3072},
    {"kib", "disk_free_limit.absolute = 3kib\n", 0, 3072},
    {"MiB", "disk_free_limit.absolute = 50MiB\n", 0, 50u << 20},
    {"Gi without B", "disk_free_limit.absolute = 2Gi\n", 0, 2u << 30},
    {"GIB", "disk_free_limit.absolute = 2GIB\n", 0, 2u << 30},
    {"TiB", "disk_free_limit.absolute = 1TiB\n", 0, 1ull << 40},
    {"PiB", "disk_free_limit.absolute = 1PiB\n", 0, 1ull << 50},
    {"largest", "disk_free_limit.absolute = 18446744073709551615\n", 0, UINT64_MAX},
    {"relative times memory", "disk_free_limit.relative = 1.5\n", 1u << 30, 1610612736},
    {"relative rounds", "disk_free_limit.relative = 0.5\n", 3, 2},
    {"relative 0 is not set", "disk_free_limit.relative = 0\n", 1u << 30, 50000000},
    {"absolute given wins", "disk_free_limit.relative = 2.0\ndisk_free_limit.absolute = 1GB\n",
     1u << 30, 1000000000},
    {"absolute given first wins", "disk_free_limit.absolute = 1GB\ndisk_free_limit.relative = 2\n",
     1u << 30, 1000000000},
    {"absolute given as the default wins",
     "disk_free_limit.absolute = 50000000\ndisk_free_limit.relative = 2\n", 1u << 30, 50000000},
    {"last absolute wins", "disk_free_limit.absolute = 1GB\ndisk_free_limit.absolute = 2GB\n", 0,
     2000000000},
};

START_TEST(test_disk_limit)
{
    char path[64], err[256] = "";
    struct conf c;
    const char *text = disk_limits[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s", disk_limits[_i].what, err);
    uint64_t got = conf_disk_free_limit(&c, disk_limits[_i].phys);
    ck_assert_msg(got == disk_limits[_i].limit, "%s: got %llu, want %llu", disk_limits[_i].what,
                  (unsigned long long)got, (unsigned long long)disk_limits[_i].limit);
    conf_free(&c);
}
END_TEST

/* vm_memory_high_watermark.absolute reads RabbitMQ's information units too. */
static const struct {
    const char *text;
    uint64_t bytes;
} memory_limits[] = {
    {"", 0},
    {"vm_memory_high_watermark.absolute = 123456789\n", 123456789},
    {"vm_memory_high_watermark.absolute = 40MB\n", 40000000},
    {"vm_memory_high_watermark.absolute = 40MiB\n", 40u << 20},
    {"vm_memory_high_watermark.absolute = 2G\n", 2000000000},
};

START_TEST(test_memory_limit_units)
{
    char path[64], err[256] = "";
    struct conf c;
    const char *text = memory_limits[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s", memory_limits[_i].text, err);
    ck_assert_uint_eq(c.vm_memory_high_watermark_absolute, memory_limits[_i].bytes);
    conf_free(&c);
}
END_TEST

/* consumer_timeout: milliseconds, 0 (never) and values past 32 bits (a year, which RabbitMQ
 * users set to mean never) included. */
static const struct {
    const char *text;
    uint64_t ms;
    const char *err; /* NULL: accepted */
} consumer_timeouts[] = {
    {"", 1800000, NULL},
    {"consumer_timeout = 5000\n", 5000, NULL},
    {"consumer_timeout = 0\n", 0, NULL},
    {"consumer_timeout = 31622400000\n", 31622400000, NULL},
    {"consumer_timeout = 30m\n", 0,
     "bad value '30m' for consumer_timeout: expected an integer of at least 0"},
    {"consumer_timeout = -1\n", 0,
     "bad value '-1' for consumer_timeout: expected an integer of at least 0"},
};

START_TEST(test_consumer_timeout)
{
    char path[64], err[256] = "", want[320];
    struct conf c;
    const char *text = consumer_timeouts[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    if (consumer_timeouts[_i].err == NULL) {
        ck_assert_msg(rc == 0, "%s: %s", text, err);
        ck_assert_uint_eq(c.consumer_timeout, consumer_timeouts[_i].ms);
    } else {
        snprintf(want, sizeof(want), "%s:1: %s", path, consumer_timeouts[_i].err);
        ck_assert_int_eq(rc, -1);
        ck_assert_str_eq(err, want);
    }
    conf_free(&c);
}
END_TEST

START_TEST(test_missing_file)
{
    char err[256];
    struct conf c;
    conf_init_defaults(&c);
    ck_assert_int_eq(conf_load_file(&c, "/nonexistent/warren.conf", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/nonexistent/warren.conf: cannot open: No such file or directory");
    conf_free(&c);
}
END_TEST

START_TEST(test_too_many)
{
    char path[64], err[256], want[256], text[2048];
    struct conf c;
    size_t n = 0;
    for (int i = 1; i <= CONF_MAX_LISTENERS + 1; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "listeners.tcp.l%d = %d\n", i, i);
    ck_assert_int_eq(load_text(&c, path, text, n, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:%d: too many listeners (at most %d)", path,
             CONF_MAX_LISTENERS + 1, CONF_MAX_LISTENERS);
    ck_assert_str_eq(err, want);
    ck_assert_uint_eq(c.n_listeners, CONF_MAX_LISTENERS);
    conf_free(&c);

    n = 0;
    for (int i = 1; i <= CONF_MAX_LOOPBACK_USERS; i++) /* guest is already one */
        n += (size_t)snprintf(text + n, sizeof(text) - n, "loopback_users.u%d = true\n", i);
    ck_assert_int_eq(load_text(&c, path, text, n, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:%d: too many loopback_users (at most %d)", path,
             CONF_MAX_LOOPBACK_USERS, CONF_MAX_LOOPBACK_USERS);
    ck_assert_str_eq(err, want);
    conf_free(&c);
}
END_TEST

/* Renders a numbered list as "a,b,c". */
static const char *
render_list(const struct conf_list *l, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < l->n; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", l->items[i]);
    return buf;
}

/* The TLS and EXTERNAL keys: defaults, then a file setting every one. Lists keep the order of
 * their numbers, not of their lines; the first item in a file replaces the default list. */
START_TEST(test_tls_keys)
{
    struct conf c;
    char path[64], err[256] = "", a[256], b[256], m[256];
    conf_init_defaults(&c);
    ck_assert_uint_eq(c.n_ssl_listeners, 0);
    ck_assert_ptr_null(c.ssl_certfile);
    ck_assert_ptr_null(c.ssl_password);
    ck_assert_str_eq(render_list(&c.ssl_versions, a, sizeof(a)), "tlsv1.3,tlsv1.2");
    ck_assert_str_eq(render_list(&c.ssl_ciphers, b, sizeof(b)), "");
    ck_assert_str_eq(render_list(&c.auth_mechanisms, m, sizeof(m)), "PLAIN,AMQPLAIN");
    ck_assert_int_eq(c.ssl_verify, CONF_VERIFY_NONE);
    ck_assert(!c.ssl_fail_if_no_peer_cert && !c.ssl_honor_cipher_order);
    ck_assert_uint_eq(c.ssl_depth, 10);
    ck_assert_uint_eq(c.ssl_handshake_timeout, 5000);
    ck_assert_int_eq(c.ssl_cert_login_from, CONF_CERT_LOGIN_DN);
    ck_assert_int_eq(c.ssl_cert_login_san_type, CONF_SAN_DNS);
    ck_assert_uint_eq(c.ssl_cert_login_san_index, 0);
    conf_free(&c);

    static const char file[] =
        "listeners.ssl.default = 5671\nlisteners.ssl.v6 = [::1]:5681\n"
        "ssl_options.certfile = /etc/w/server.pem\nssl_options.keyfile = /etc/w/key.pem\n"
        "ssl_options.cacertfile = /etc/w/ca.pem\nssl_options.password = a # b\n"
        "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n"
        "ssl_options.versions.2 = tlsv1.2\nssl_options.versions.1 = tlsv1.3\n"
        "ssl_options.ciphers.10 = TLS_AES_256_GCM_SHA384\n"
        "ssl_options.ciphers.2 = ECDHE-ECDSA-AES256-GCM-SHA384\n"
        "ssl_options.depth = 2\nssl_options.honor_cipher_order = true\n"
        "auth_mechanisms.3 = EXTERNAL\nauth_mechanisms.1 = PLAIN\n"
        "ssl_cert_login_from = subject_alt_name\nssl_cert_login_san_type = email\n"
        "ssl_cert_login_san_index = 1\n";
    ck_assert_msg(load_text(&c, path, file, sizeof(file) - 1, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.n_ssl_listeners, 2);
    ck_assert_uint_eq(c.ssl_listeners[0].port, 5671);
    ck_assert_str_eq(c.ssl_listeners[0].host, "");
    ck_assert_str_eq(c.ssl_listeners[1].host, "::1");
    ck_assert_uint_eq(c.n_listeners, 1); /* the plain default stays */
    ck_assert_str_eq(c.ssl_certfile, "/etc/w/server.pem");
    ck_assert_str_eq(c.ssl_keyfile, "/etc/w/key.pem");
    ck_assert_str_eq(c.ssl_cacertfile, "/etc/w/ca.pem");
    ck_assert_str_eq(c.ssl_password, "a");
    ck_assert_int_eq(c.ssl_verify, CONF_VERIFY_PEER);
    ck_assert(c.ssl_fail_if_no_peer_cert && c.ssl_honor_cipher_order);
    ck_assert_str_eq(render_list(&c.ssl_versions, a, sizeof(a)), "tlsv1.3,tlsv1.2");
    ck_assert_str_eq(render_list(&c.ssl_ciphers, b, sizeof(b)),
                     "ECDHE-ECDSA-AES256-GCM-SHA384,TLS_AES_256_GCM_SHA384");
    ck_assert_str_eq(render_list(&c.auth_mechanisms, m, sizeof(m)), "PLAIN,EXTERNAL");
    ck_assert(conf_list_has(&c.auth_mechanisms, "EXTERNAL"));
    ck_assert(!conf_list_has(&c.auth_mechanisms, "AMQPLAIN"));
    ck_assert_uint_eq(c.ssl_depth, 2);
    ck_assert_int_eq(c.ssl_cert_login_from, CONF_CERT_LOGIN_SAN);
    ck_assert_int_eq(c.ssl_cert_login_san_type, CONF_SAN_EMAIL);
    ck_assert_uint_eq(c.ssl_cert_login_san_index, 1);
    conf_free(&c);
}
END_TEST

/* The shipped etc/warren.conf: every key commented out with its default. Uncommenting every
 * `# key = value` line must give exactly the defaults, and must name every key. */
/* The keys of users, vhosts and permissions: default_user_tags (a file's first tag replaces
 * the default list), default_permissions.*, load_definitions, connection_max and
 * password_hashing_module, and their bad values. */
static const struct {
    const char *text, *want, *err;
} access_keys[] = {
    {"", "tags=administrator perms=.*|.*|.* defs= cmax=inf hash=rabbit_password_hashing_sha256",
     NULL},
    {"default_user_tags.monitoring = true\ndefault_user_tags.policymaker = true\n",
     "tags=monitoring,policymaker perms=.*|.*|.* defs= cmax=inf "
     "hash=rabbit_password_hashing_sha256",
     NULL},
    {"default_user_tags.administrator = false\n",
     "tags= perms=.*|.*|.* defs= cmax=inf hash=rabbit_password_hashing_sha256", NULL},
    {"default_permissions.configure = ^app\\.\ndefault_permissions.read = ^$\n"
     "load_definitions = /etc/d.json\nconnection_max = 100\n"
     "password_hashing_module = rabbit_password_hashing_sha512\n",
     "tags=administrator perms=^app\\.|.*|^$ defs=/etc/d.json cmax=100 "
     "hash=rabbit_password_hashing_sha512",
     NULL},
    {"connection_max = lots\n", NULL,
     "bad value 'lots' for connection_max: expected infinity or an integer 0..4294967294"},
    {"password_hashing_module = rabbit_password_hashing_md5\n", NULL,
     "bad value 'rabbit_password_hashing_md5' for password_hashing_module: expected "
     "rabbit_password_hashing_sha256 or rabbit_password_hashing_sha512"},
    {"default_user_tags.admin = yes\n", NULL,
     "bad value 'yes' for default_user_tags.admin: expected true or false"},
};

START_TEST(test_access_keys)
{
    struct conf c;
    char path[64], err[256] = "", buf[512];
    const char *text = access_keys[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    if (access_keys[_i].err != NULL) {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, access_keys[_i].err) != NULL, "%s", err);
        conf_free(&c);
        return;
    }
    ck_assert_msg(rc == 0, "%s", err);
    size_t n = (size_t)snprintf(buf, sizeof(buf), "tags=");
    for (unsigned i = 0; i < c.n_default_user_tags; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
                              c.default_user_tags[i]);
    char cmax[16];
    snprintf(cmax, sizeof(cmax), "%u", c.connection_max);
    snprintf(buf + n, sizeof(buf) - n, " perms=%s|%s|%s defs=%s cmax=%s hash=%s",
             c.default_permissions_configure, c.default_permissions_write,
             c.default_permissions_read, c.load_definitions,
             c.connection_max == CONF_INFINITY ? "inf" : cmax, c.password_hashing_module);
    ck_assert_str_eq(buf, access_keys[_i].want);
    conf_free(&c);
}
END_TEST

/* The cluster's keys (issue 14). want: cluster_name, backend, the nodes in the order of their
 * N, port_range.min and .max, the interface and conf_distribution_port(). */
#define CLUSTER_DEFAULTS "name= backend=0 nodes= min=0 max=0 if= port=25672"
#define NODE_FORM "expected name@host[:port]: "
static const struct {
    const char *text, *want, *err;
} cluster_keys[] = {
    {"", CLUSTER_DEFAULTS, NULL},
    {"cluster_name = prod-eu\n", "name=prod-eu backend=0 nodes= min=0 max=0 if= port=25672", NULL},
    {"cluster_formation.peer_discovery_backend = classic_config\n", CLUSTER_DEFAULTS, NULL},
    {"cluster_formation.peer_discovery_backend = rabbit_peer_discovery_classic_config\n",
     CLUSTER_DEFAULTS, NULL},
    {"cluster_formation.classic_config.nodes.2 = warren-2@node2.example.com\n"
     "cluster_formation.classic_config.nodes.1 = warren_1@10.0.0.1:25673\n"
     "cluster_formation.classic_config.nodes.3 = w3@[::1]:65535\n",
     "name= backend=0 nodes=warren_1@10.0.0.1:25673,warren-2@node2.example.com,w3@[::1]:65535 "
     "min=0 max=0 if= port=25672",
     NULL},
    {"listeners.tcp.default = 5673\n", "name= backend=0 nodes= min=0 max=0 if= port=25673", NULL},
    {"listeners.tcp.default = 45535\n", "name= backend=0 nodes= min=0 max=0 if= port=65535", NULL},
    /* past 65535: no port, refused by conf_from_cmdline when nodes are listed (test_cmdline) */
    {"listeners.tcp.default = 45536\n", "name= backend=0 nodes= min=0 max=0 if= port=0", NULL},
    {"listeners.tcp = none\n", CLUSTER_DEFAULTS, NULL},
    {"distribution.listener.port_range.min = 35672\n"
     "distribution.listener.port_range.max = 35680\nlisteners.tcp.default = 50000\n",
     "name= backend=0 nodes= min=35672 max=35680 if= port=35672", NULL},
    {"distribution.listener.interface = 192.168.1.10\n",
     "name= backend=0 nodes= min=0 max=0 if=192.168.1.10 port=25672", NULL},
    {"distribution.listener.interface = [::1]\n",
     "name= backend=0 nodes= min=0 max=0 if=::1 port=25672", NULL},
    {"cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s\n", NULL,
     ":1: bad value 'rabbit_peer_discovery_k8s' for cluster_formation.peer_discovery_backend: "
     "expected classic_config, rabbit_peer_discovery_classic_config"},
    {"cluster_formation.peer_discovery_backend = dns\n", NULL,
     "bad value 'dns' for cluster_formation.peer_discovery_backend: expected classic_config, "
     "rabbit_peer_discovery_classic_config"},
    {"cluster_formation.classic_config.nodes.1 = node1\n", NULL,
     "bad value 'node1' for cluster_formation.classic_config.nodes.1: " NODE_FORM
     "no '@' between the name and the host"},
    {"cluster_formation.classic_config.nodes.1 = @node1\n", NULL,
     "bad value '@node1' for cluster_formation.classic_config.nodes.1: " NODE_FORM
     "empty name before '@'"},
    {"cluster_formation.classic_config.nodes.1 = war.ren@node1\n", NULL,
     NODE_FORM "the name may hold only A-Z, a-z, 0-9, '_' and '-'"},
    {"cluster_formation.classic_config.nodes.1 = warren@\n", NULL,
     NODE_FORM "empty host after '@'"},
    {"cluster_formation.classic_config.nodes.1 = warren@:25672\n", NULL,
     NODE_FORM "empty host after '@'"},
    {"cluster_formation.classic_config.nodes.1 = warren@no de\n", NULL,
     NODE_FORM "the host may hold only A-Z, a-z, 0-9, '.' and '-' (or be an IPv6 address in "
               "brackets), then :port"},
    {"cluster_formation.classic_config.nodes.1 = warren@node1:0\n", NULL,
     NODE_FORM "the port after ':' is not an integer 1..65535"},
    {"cluster_formation.classic_config.nodes.1 = warren@node1:65536\n", NULL,
     NODE_FORM "the port after ':' is not an integer 1..65535"},
    {"cluster_formation.classic_config.nodes.1 = warren@node1:\n", NULL,
     NODE_FORM "the port after ':' is not an integer 1..65535"},
    {"cluster_formation.classic_config.nodes.1 = warren@::1\n", NULL,
     NODE_FORM "empty host after '@'"},
    {"cluster_formation.classic_config.nodes.1 = warren@[::1\n", NULL,
     NODE_FORM "no ']' after '['"},
    {"cluster_formation.classic_config.nodes.1 = warren@[node1]:5\n", NULL,
     NODE_FORM "'node1' is not an IPv6 address"},
    {"cluster_formation.classic_config.nodes.one = warren@node1\n", NULL,
     "bad key cluster_formation.classic_config.nodes.one: expected a number after "
     "'cluster_formation.classic_config.nodes.'"},
    {"cluster_formation.classic_config.nodes.1 = warren@"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\n",
     NULL, NODE_FORM "longer than 255 bytes"},
    {"distribution.listener.port_range.min = 65536\n", NULL,
     "bad value '65536' for distribution.listener.port_range.min: expected an integer 0..65535"},
    {"distribution.listener.port_range.max = -1\n", NULL,
     "bad value '-1' for distribution.listener.port_range.max: expected an integer 0..65535"},
    {"distribution.listener.interface = localhost\n", NULL,
     "bad value 'localhost' for distribution.listener.interface: expected a numeric IPv4 or IPv6 "
     "address"},
};

START_TEST(test_cluster_keys)
{
    struct conf c;
    char path[64], err[512] = "", buf[1024];
    const char *text = cluster_keys[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    if (cluster_keys[_i].err != NULL) {
        ck_assert_msg(rc == -1, "accepted: %s", text);
        ck_assert_msg(strstr(err, cluster_keys[_i].err) != NULL, "%s", err);
        conf_free(&c);
        return;
    }
    ck_assert_msg(rc == 0, "%s", err);
    size_t n = (size_t)snprintf(buf, sizeof(buf), "name=%s backend=%d nodes=", c.cluster_name,
                                (int)c.peer_discovery_backend);
    for (unsigned i = 0; i < c.cluster_nodes.n; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
                              c.cluster_nodes.items[i]);
    snprintf(buf + n, sizeof(buf) - n, " min=%u max=%u if=%s port=%u", c.distribution_port_min,
             c.distribution_port_max, c.distribution_interface, conf_distribution_port(&c));
    ck_assert_str_eq(buf, cluster_keys[_i].want);
    conf_free(&c);
}
END_TEST

/* conf_node_parse takes a node name apart for the cluster code. */
START_TEST(test_node_parse)
{
    struct conf_node node;
    char err[256];
    ck_assert_int_eq(conf_node_parse("warren-2@node2.example.com", true, &node, err, sizeof(err)),
                     0);
    ck_assert_str_eq(node.name, "warren-2");
    ck_assert_str_eq(node.host, "node2.example.com");
    ck_assert_uint_eq(node.port, 0);
    ck_assert_int_eq(conf_node_parse("w@127.0.0.1:25673", true, &node, err, sizeof(err)), 0);
    ck_assert_str_eq(node.host, "127.0.0.1");
    ck_assert_uint_eq(node.port, 25673);
    ck_assert_int_eq(conf_node_parse("w@[fe80::1]:1", true, &node, err, sizeof(err)), 0);
    ck_assert_str_eq(node.host, "fe80::1");
    ck_assert_uint_eq(node.port, 1);
    /* without a port allowed, ":port" is a bad host */
    ck_assert_int_eq(conf_node_parse("w@127.0.0.1:25673", false, &node, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "the host may hold only A-Z, a-z, 0-9, '.' and '-' (or be an IPv6 "
                          "address in brackets)");
}
END_TEST

/* The log outputs as RabbitMQ resolves log.* keys: per-output levels fall back to log.level;
 * the console is on unless only a file is configured. want: console?level/format
 * file?level/format/size/count, '-' for an output that is off. */
static const struct {
    const char *text, *want, *err;
} log_keys[] = {
    {"", "console=info/plaintext file=-", NULL},
    {"log.level = debug\n", "console=debug/plaintext file=-", NULL},
    {"log.file = /var/log/w.log\n", "console=- file=/var/log/w.log:info/plaintext/0/0", NULL},
    {"log.dir = /var/log/warren\nlog.file = w.log\nlog.file.level = warning\n"
     "log.file.formatter = json\nlog.file.rotation.size = 10485760\n"
     "log.file.rotation.count = 5\nlog.console = true\n",
     "console=info/plaintext file=/var/log/warren+w.log:warning/json/10485760/5", NULL},
    {"log.file = w.log\nlog.console.level = debug\nlog.console.formatter = json\n",
     "console=debug/json file=.+w.log:info/plaintext/0/0", NULL},
    {"log.file = w.log\nlog.console.level = none\n", "console=- file=.+w.log:info/plaintext/0/0",
     NULL},
    {"log.console = false\n", "console=- file=-", NULL},
    {"log.file = false\nlog.console.level = error\n", "console=error/plaintext file=-", NULL},
    {"log.file.formatter = xml\n", NULL,
     "bad value 'xml' for log.file.formatter: expected plaintext, json"},
    {"log.console = yes\n", NULL, "bad value 'yes' for log.console: expected true or false"},
    {"log.file.rotation.count = 1001\n", NULL,
     "bad value '1001' for log.file.rotation.count: expected an integer 0..1000"},
    {"log.file.level = verbose\n", NULL, "bad value 'verbose' for log.file.level"},
};

START_TEST(test_log_keys)
{
    struct conf c;
    struct log_options o;
    char path[64], err[256] = "", buf[256];
    const char *text = log_keys[_i].text;
    int rc = load_text(&c, path, text, strlen(text), err, sizeof(err));
    if (log_keys[_i].err != NULL) {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, log_keys[_i].err) != NULL, "%s", err);
        conf_free(&c);
        return;
    }
    ck_assert_msg(rc == 0, "%s", err);
    conf_log_options(&c, &o);
    static const char *const fmts[] = {"plaintext", "json"};
    size_t n = (size_t)snprintf(buf, sizeof(buf), "console=");
    if (o.console)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s/%s", log_level_name(o.console_level),
                              fmts[o.console_format]);
    else
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "-");
    if (o.file != NULL)
        snprintf(buf + n, sizeof(buf) - n, " file=%s%s%s:%s/%s/%llu/%u",
                 o.file[0] == '/' ? "" : o.dir, o.file[0] == '/' ? "" : "+", o.file,
                 log_level_name(o.file_level), fmts[o.file_format],
                 (unsigned long long)o.rotation_size, o.rotation_count);
    else
        snprintf(buf + n, sizeof(buf) - n, " file=-");
    ck_assert_str_eq(buf, log_keys[_i].want);
    conf_free(&c);
}
END_TEST

START_TEST(test_shipped_conf)
{
    FILE *f = fopen(WARREN_SRCDIR "/etc/warren.conf", "r");
    ck_assert_ptr_nonnull(f);
    char line[1024], text[8192], path[64], err[256] = "", buf[512];
    size_t n = 0;
    int keys = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        /* "# key = value": a commented-out setting; "## text" and "# text" are prose. */
        if (strncmp(line, "# ", 2) == 0 && strstr(line, " = ") != NULL &&
            strchr(line + 2, ' ') == strstr(line, " = ")) {
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", line + 2);
            keys++;
        }
    }
    fclose(f);
    static const char *const names[] = {
        "listeners.tcp.default",
        "default_user",
        "default_pass",
        "default_vhost",
        "loopback_users.guest",
        "heartbeat",
        "frame_max",
        "channel_max",
        "handshake_timeout",
        "log.level",
        "data_dir",
        "disk_free_limit.absolute",
        "disk_free_limit.relative",
        "cluster_formation.peer_discovery_backend",
        "distribution.listener.port_range.min",
        "distribution.listener.port_range.max",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_msg(strstr(text, names[i]) != NULL, "etc/warren.conf lacks %s", names[i]);

    struct conf c;
    int rc = load_text(&c, path, text, n, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    render(&c, buf, sizeof(buf));
    ck_assert_str_eq(buf, DEFAULTS);
    ck_assert_uint_eq(conf_disk_free_limit(&c, 1u << 30), 50000000);
    conf_free(&c);
}
END_TEST

/* Command lines. '@' in argv and in the expected output stands for a temporary file
 * holding `file`. */
static const struct {
    const char *what, *args, *file;
    enum conf_outcome outcome;
    const char *want;      /* rendered conf when outcome is CONF_RUN */
    const char *out, *err; /* substrings expected on stdout/stderr, or NULL for empty */
} cmdlines[] = {
    {"no flags", "", NULL, CONF_RUN, DEFAULTS, NULL, NULL},
    {"--port", "--port 5673", NULL, CONF_RUN, "L=:5673 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--port=N form", "--port=5673", NULL, CONF_RUN, "L=:5673 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--bind takes the default port", "--bind 127.0.0.1", NULL, CONF_RUN,
     "L=127.0.0.1:5672 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--bind twice with --port", "--bind 127.0.0.1 --bind ::1 --port 5999", NULL, CONF_RUN,
     "L=127.0.0.1:5999,[::1]:5999 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--bind bracketed IPv6", "--bind [::1]", NULL, CONF_RUN,
     "L=[::1]:5672 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--bind takes the file's port", "--bind ::1 --config @", "listeners.tcp.x = 127.0.0.1:7000\n",
     CONF_RUN, "L=[::1]:7000 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--port keeps the file's hosts", "--config @ --port 6000",
     "listeners.tcp.1 = 127.0.0.1:5672\nlisteners.tcp.2 = ::1:5672\n", CONF_RUN,
     "L=127.0.0.1:6000,[::1]:6000 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"--port merges listeners that become equal", "--port 6000 --config @",
     "listeners.tcp.1 = 5672\nlisteners.tcp.2 = 5673\n", CONF_RUN,
     "L=:6000 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"flags beat the file, given before it", "--log-level debug --data-dir /d --config @",
     "log.level = error\ndata_dir = /f\nheartbeat = 5\n", CONF_RUN,
     "L=:5672 LB=guest U=guest P=guest V=/ HB=5 FM=131072 CM=2047 HT=10000 LL=debug DD=/d", NULL,
     NULL},
    {"flags beat the file, given after it", "--config @ --log-level none", "log.level = error\n",
     CONF_RUN,
     "L=:5672 LB=guest U=guest P=guest V=/ HB=60 FM=131072 CM=2047 HT=10000 LL=none DD=./var", NULL,
     NULL},
    {"--check-config", "--check-config --config @", "heartbeat = 5\n", CONF_EXIT_OK, NULL,
     "configuration OK\n", NULL},
    {"--check-config, bad file", "--check-config --config @", "heartbeat = x\n", CONF_EXIT_ERR,
     NULL, NULL, "@:1: bad value 'x' for heartbeat: expected an integer 0..65535\n"},
    {"--help", "--help", NULL, CONF_EXIT_OK, NULL, "  --config FILE", NULL},
    {"-h lists the keys", "-h", NULL, CONF_EXIT_OK, NULL, "heartbeat = 60", NULL},
    {"--help shows family defaults", "--help", NULL, CONF_EXIT_OK, NULL,
     "listeners.tcp.default = 5672", NULL},
    {"--help shows loopback default", "--help", NULL, CONF_EXIT_OK, NULL,
     "loopback_users.guest = true", NULL},
    {"--help shows the disk limit", "--help", NULL, CONF_EXIT_OK, NULL,
     "disk_free_limit.absolute = 50000000", NULL},
    {"--version", "--version", NULL, CONF_EXIT_OK, NULL, "warren-server " PACKAGE_VERSION "\n",
     NULL},
    {"unknown flag", "--bogus", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: unknown option '--bogus'\nTry 'warren-server --help' for more "
     "information.\n"},
    {"unknown short flag", "-x", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: unknown option '-x'\n"},
    {"flag without its argument", "--port", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: option '--port' needs an argument\n"},
    {"--port 0", "--port 0", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: bad value '0' for --port: expected an integer 1..65535\n"},
    {"--port abc", "--port abc", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: bad value 'abc' for --port: expected an integer 1..65535\n"},
    {"--bind host name", "--bind localhost", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: bad value 'localhost' for --bind: expected a numeric IPv4 or IPv6 "
     "address\n"},
    {"--log-level bad", "--log-level loud", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: bad value 'loud' for --log-level: expected debug, info, warning, error, "
     "critical or none\n"},
    {"stray argument", "--port 5 extra", NULL, CONF_EXIT_ERR, NULL, NULL,
     "warren-server: unexpected argument 'extra'\n"},
    {"missing config file", "--config /nonexistent.conf", NULL, CONF_EXIT_ERR, NULL, NULL,
     "/nonexistent.conf: cannot open: No such file or directory\n"},
    {"bad config file", "--port 5 --config @", "\nhearbeat = 1\n", CONF_EXIT_ERR, NULL, NULL,
     "@:2: unknown key 'hearbeat'\n"},
    {"--help shows --nodename", "--help", NULL, CONF_EXIT_OK, NULL,
     "  --nodename NAME      this node's name, name@host; default: $WARREN_NODENAME, else "
     "warren@<host>\n",
     NULL},
    {"--help shows the cluster keys", "--help", NULL, CONF_EXIT_OK, NULL,
     "cluster_formation.classic_config.nodes.<N> = (none)", NULL},
    {"--help shows the cluster port", "--help", NULL, CONF_EXIT_OK, NULL,
     "distribution.listener.port_range.min = 0", NULL},
    {"port_range.max below .min", "--config @",
     "distribution.listener.port_range.min = 30000\ndistribution.listener.port_range.max = 29999\n",
     CONF_EXIT_ERR, NULL, NULL,
     "@: distribution.listener.port_range.max = 29999 is below the cluster port 30000 "
     "(port_range.min, else the AMQP port + 20000)\n"},
    {"port_range.max below the AMQP port + 20000", "--config @ --port 5700",
     "distribution.listener.port_range.max = 25699\n", CONF_EXIT_ERR, NULL, NULL,
     "@: distribution.listener.port_range.max = 25699 is below the cluster port 25700 "
     "(port_range.min, else the AMQP port + 20000)\n"},
    {"port_range.max equal to .min", "--config @",
     "distribution.listener.port_range.min = 30000\ndistribution.listener.port_range.max = 30000\n",
     CONF_RUN, DEFAULTS, NULL, NULL},
    {"AMQP port + 20000 past 65535 with nodes", "--config @",
     "listeners.tcp.default = 50000\ncluster_formation.classic_config.nodes.1 = warren@a\n",
     CONF_EXIT_ERR, NULL, NULL,
     "@: the cluster port, AMQP port 50000 + 20000, is above 65535: set "
     "distribution.listener.port_range.min\n"},
    {"--port + 20000 past 65535 with nodes", "--config @ --port 45536",
     "cluster_formation.classic_config.nodes.1 = warren@a\n", CONF_EXIT_ERR, NULL, NULL,
     "@: the cluster port, AMQP port 45536 + 20000, is above 65535: set "
     "distribution.listener.port_range.min\n"},
    {"AMQP port + 20000 past 65535, no nodes: a node alone", "--port 50000", NULL, CONF_RUN,
     "L=:50000 LB=guest " DEFAULTS_REST, NULL, NULL},
    {"AMQP port + 20000 past 65535, port_range.min set", "--config @ --port 50000",
     "cluster_formation.classic_config.nodes.1 = warren@a\n"
     "distribution.listener.port_range.min = 25672\n",
     CONF_RUN, "L=:50000 LB=guest " DEFAULTS_REST, NULL, NULL},
};

/* Replaces each '@' in src by path. */
static void
subst(char *dst, size_t cap, const char *src, const char *path)
{
    size_t n = 0;
    for (; *src != '\0' && n + 1 < cap; src++) {
        if (*src == '@')
            n += (size_t)snprintf(dst + n, cap - n, "%s", path);
        else
            dst[n++] = *src;
    }
    dst[n < cap ? n : cap - 1] = '\0';
}

/* Reads what was written to fd (a temporary file) since it was created. */
static void
slurp(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

START_TEST(test_cmdline)
{
    char path[64] = "", args[256], want[512], out[16384], err[1024], buf[512];
    char *argv[16];
    int argc = 0;
    struct conf c;

    if (cmdlines[_i].file != NULL)
        write_temp(path, cmdlines[_i].file, strlen(cmdlines[_i].file));
    subst(args, sizeof(args), cmdlines[_i].args, path);
    argv[argc++] = "warren-server";
    for (char *tok = strtok(args, " "); tok != NULL; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;

    /* Capture stdout and stderr in temporary files. */
    FILE *fo = tmpfile(), *fe = tmpfile();
    ck_assert(fo != NULL && fe != NULL);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    dup2(fileno(fo), STDOUT_FILENO);
    dup2(fileno(fe), STDERR_FILENO);
    enum conf_outcome rc = conf_from_cmdline(&c, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    slurp(fileno(fo), out, sizeof(out));
    slurp(fileno(fe), err, sizeof(err));
    fclose(fo);
    fclose(fe);
    if (path[0] != '\0')
        unlink(path);

    ck_assert_msg(rc == cmdlines[_i].outcome, "%s: outcome %d, want %d; stderr: %s",
                  cmdlines[_i].what, rc, cmdlines[_i].outcome, err);
    if (cmdlines[_i].want != NULL) {
        render(&c, buf, sizeof(buf));
        ck_assert_msg(strcmp(buf, cmdlines[_i].want) == 0, "%s:\n got %s\nwant %s",
                      cmdlines[_i].what, buf, cmdlines[_i].want);
    }
    if (cmdlines[_i].out != NULL)
        ck_assert_msg(strstr(out, cmdlines[_i].out) != NULL, "%s: stdout lacks '%s':\n%s",
                      cmdlines[_i].what, cmdlines[_i].out, out);
    else
        ck_assert_msg(out[0] == '\0', "%s: unexpected stdout: %s", cmdlines[_i].what, out);
    if (cmdlines[_i].err != NULL) {
        subst(want, sizeof(want), cmdlines[_i].err, path);
        ck_assert_msg(strstr(err, want) != NULL, "%s: stderr lacks '%s':\n%s", cmdlines[_i].what,
                      want, err);
    } else {
        ck_assert_msg(err[0] == '\0', "%s: unexpected stderr: %s", cmdlines[_i].what, err);
    }
    if (rc == CONF_RUN && strstr(cmdlines[_i].args, "--config") != NULL)
        ck_assert_str_eq(c.config_path, path);
    if (rc != CONF_EXIT_ERR)
        conf_free(&c);
}
END_TEST

/* The node's name: --nodename, else $WARREN_NODENAME, else warren@<short host name>. err:
 * what stderr says when refused, NULL when accepted (want then the name; one ending in '@'
 * ends with the short host name). */
static const struct {
    const char *flag, *env, *want, *err;
} nodenames[] = {
    {NULL, NULL, "warren@", NULL},
    {NULL, "", "warren@", NULL},
    {"rabbit@node1", NULL, "rabbit@node1", NULL},
    {NULL, "env@node2.example.com", "env@node2.example.com", NULL},
    {"flag@node1", "env@node2", "flag@node1", NULL},
    {"warren2", NULL, "warren2@", NULL},
    {NULL, "w3", "w3@", NULL},
    {"w@[::1]", NULL, "w@[::1]", NULL},
    {"w@node1:25672", NULL, NULL,
     "warren-server: bad value 'w@node1:25672' for --nodename: expected name@host: the host may "
     "hold only A-Z, a-z, 0-9, '.' and '-' (or be an IPv6 address in brackets)\n"},
    {"@node1", NULL, NULL,
     "warren-server: bad value '@node1' for --nodename: expected name@host: empty name before "
     "'@'\n"},
    {NULL, "bad name@node1", NULL,
     "warren-server: bad value 'bad name@node1' for WARREN_NODENAME: expected name@host: the "
     "name may hold only A-Z, a-z, 0-9, '_' and '-'\n"},
    {"ok@node1", "bad name", "ok@node1", NULL}, /* the flag wins: the variable is not read */
};

START_TEST(test_nodename)
{
    char host[256], want[512], err[1024];
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    host[strcspn(host, ".")] = '\0';
    char *argv[4] = {"warren-server", NULL, NULL, NULL};
    int argc = 1;
    if (nodenames[_i].flag != NULL) {
        argv[argc++] = "--nodename";
        argv[argc++] = (char *)nodenames[_i].flag;
    }
    if (nodenames[_i].env != NULL)
        setenv("WARREN_NODENAME", nodenames[_i].env, 1);
    else
        unsetenv("WARREN_NODENAME");

    struct conf c;
    FILE *fe = tmpfile();
    ck_assert_ptr_nonnull(fe);
    fflush(stderr);
    int saved_err = dup(STDERR_FILENO);
    dup2(fileno(fe), STDERR_FILENO);
    enum conf_outcome rc = conf_from_cmdline(&c, argc, argv);
    fflush(stderr);
    dup2(saved_err, STDERR_FILENO);
    close(saved_err);
    slurp(fileno(fe), err, sizeof(err));
    fclose(fe);
    unsetenv("WARREN_NODENAME");

    if (nodenames[_i].err != NULL) {
        ck_assert_int_eq(rc, CONF_EXIT_ERR);
        ck_assert_str_eq(err, nodenames[_i].err);
        return;
    }
    ck_assert_msg(rc == CONF_RUN, "%s", err);
    const char *w = nodenames[_i].want;
    snprintf(want, sizeof(want), "%s%s", w, w[strlen(w) - 1] == '@' ? host : "");
    ck_assert_str_eq(c.nodename, want);
    conf_free(&c);
}
END_TEST

/* conf_init_defaults names the node too, for code that makes a conf without a command line. */
START_TEST(test_nodename_default)
{
    char host[256], want[300];
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    host[strcspn(host, ".")] = '\0';
    snprintf(want, sizeof(want), "warren@%s", host);
    struct conf c;
    conf_init_defaults(&c);
    ck_assert_str_eq(c.nodename, want);
    ck_assert_uint_eq(conf_distribution_port(&c), 25672);
    conf_free(&c);
}
END_TEST

START_TEST(test_too_many_binds)
{
    char *argv[2 * CONF_MAX_LISTENERS + 4];
    int argc = 0;
    struct conf c;
    argv[argc++] = "warren-server";
    for (int i = 0; i <= CONF_MAX_LISTENERS; i++) {
        argv[argc++] = "--bind";
        argv[argc++] = "127.0.0.1";
    }
    argv[argc] = NULL;
    int saved_err = dup(STDERR_FILENO);
    FILE *fe = tmpfile();
    dup2(fileno(fe), STDERR_FILENO);
    enum conf_outcome rc = conf_from_cmdline(&c, argc, argv);
    dup2(saved_err, STDERR_FILENO);
    close(saved_err);
    char err[512];
    slurp(fileno(fe), err, sizeof(err));
    fclose(fe);
    ck_assert_int_eq(rc, CONF_EXIT_ERR);
    ck_assert_ptr_nonnull(strstr(err, "too many --bind addresses (at most 16)"));
}
END_TEST

/* conf_each's callback: appends "key=value\n" to the buffer arg (8192 bytes). */
static int
each_line(void *arg, const char *key, const char *value)
{
    char *buf = arg;
    size_t n = strlen(buf);
    snprintf(buf + n, 8192 - n, "%s=%s\n", key, value);
    return 0;
}

/* conf_each: rabbitmq.conf's syntax for every kind of key, secrets redacted, the log outputs'
 * levels as resolved, and a non-zero return stopping the walk. */
START_TEST(test_each)
{
    static const char text[] = "listeners.tcp.a = 127.0.0.1:5673\n"
                               "listeners.tcp.b = [::1]:5674\n"
                               "default_pass = s3cret\n"
                               "ssl_options.password = keypass\n"
                               "ssl_options.versions.1 = tlsv1.3\n"
                               "loopback_users = none\n"
                               "default_user_tags.monitoring = true\n"
                               "connection_max = infinity\n"
                               "vm_memory_high_watermark.relative = 0.5\n"
                               "ssl_options.verify = verify_peer\n"
                               "log.level = warning\n"
                               "cluster_name = prod\n"
                               "cluster_formation.peer_discovery_backend = "
                               "rabbit_peer_discovery_classic_config\n"
                               "cluster_formation.classic_config.nodes.2 = b@h2:25673\n"
                               "cluster_formation.classic_config.nodes.1 = a@h1\n"
                               "distribution.listener.port_range.min = 25700\n"
                               "distribution.listener.interface = [::1]\n";
    struct conf c;
    char path[64], err[256], out[8192] = "\n"; /* each line between newlines */
    ck_assert_int_eq(load_text(&c, path, text, sizeof(text) - 1, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_each(&c, each_line, out), 0);
    static const char *const want[] = {
        "\nlisteners.tcp.1=127.0.0.1:5673\nlisteners.tcp.2=[::1]:5674\n",
        "\ndefault_pass=********\n",
        "\nssl_options.password=********\n",
        "\nssl_options.versions.1=tlsv1.3\nssl_options.depth=",
        "\nloopback_users=none\n",
        "\ndefault_user_tags.monitoring=true\n",
        "\nconnection_max=infinity\n",
        "\nvm_memory_high_watermark.relative=0.5\n",
        "\nssl_options.verify=verify_peer\n",
        "\nlog.file.level=warning\n",
        "\nlog.console.level=warning\n",
        "\ndefault_user=guest\n",
        "\nheartbeat=60\n",
        "\ncluster_name=prod\ncluster_formation.peer_discovery_backend=classic_config\n"
        "cluster_formation.classic_config.nodes.1=a@h1\n"
        "cluster_formation.classic_config.nodes.2=b@h2:25673\n"
        "distribution.listener.port_range.min=25700\n"
        "distribution.listener.port_range.max=0\n"
        "distribution.listener.interface=::1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(out, want[i]) != NULL, "no %s in\n%s", want[i], out);
    ck_assert_ptr_null(strstr(out, "s3cret"));
    ck_assert_ptr_null(strstr(out, "keypass"));
    ck_assert_ptr_null(strstr(out, "ssl_options.versions.2"));
    conf_free(&c);
}
END_TEST

static Suite *
conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("file");
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_good_file, 0, sizeof(good_files) / sizeof(good_files[0]));
    tcase_add_loop_test(tc, test_bad_file, 0, sizeof(bad_files) / sizeof(bad_files[0]));
    tcase_add_loop_test(tc, test_disk_limit, 0, sizeof(disk_limits) / sizeof(disk_limits[0]));
    tcase_add_loop_test(tc, test_memory_limit_units, 0,
                        sizeof(memory_limits) / sizeof(memory_limits[0]));
    tcase_add_loop_test(tc, test_consumer_timeout, 0,
                        sizeof(consumer_timeouts) / sizeof(consumer_timeouts[0]));
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_too_many);
    tcase_add_test(tc, test_shipped_conf);
    tcase_add_loop_test(tc, test_log_keys, 0, sizeof(log_keys) / sizeof(log_keys[0]));
    tcase_add_loop_test(tc, test_access_keys, 0, sizeof(access_keys) / sizeof(access_keys[0]));
    tcase_add_test(tc, test_tls_keys);
    tcase_add_test(tc, test_each);
    tcase_add_loop_test(tc, test_cluster_keys, 0, sizeof(cluster_keys) / sizeof(cluster_keys[0]));
    tcase_add_test(tc, test_node_parse);
    suite_add_tcase(s, tc);

    tc = tcase_create("cmdline");
    tcase_add_loop_test(tc, test_cmdline, 0, sizeof(cmdlines) / sizeof(cmdlines[0]));
    tcase_add_test(tc, test_too_many_binds);
    tcase_add_loop_test(tc, test_nodename, 0, sizeof(nodenames) / sizeof(nodenames[0]));
    tcase_add_test(tc, test_nodename_default);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
