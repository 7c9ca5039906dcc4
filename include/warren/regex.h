/* PCRE2 expressions as RabbitMQ's Erlang re module takes them (PCRE with no options, run on
 * names as bytes, unanchored). Permissions (auth) and policies (broker) both match resource
 * names with patterns copied from RabbitMQ: one compile and one match, so that both mean the
 * same thing by a pattern. */
#ifndef WARREN_REGEX_H
#define WARREN_REGEX_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif

#include <stdbool.h>
#include <stddef.h>

#include <pcre2.h>

/* Compiles pattern (NUL-terminated) with no options, JIT-compiled where the platform has a
 * JIT. Returns the code (the caller frees it with pcre2_code_free), or NULL with PCRE2's
 * error message in err (for errlen bytes) and the offset it points at in *erroff. */
pcre2_code *regex_compile(const char *pattern, char *err, size_t errlen, size_t *erroff);
/* Whether code matches s[0..len) anywhere; md is match data made for code. */
bool regex_match(const pcre2_code *code, pcre2_match_data *md, const void *s, size_t len);

#endif
