/* PCRE2 compile and match (warren/regex.h). */
#include "config.h"

#include "warren/regex.h"

#include <stdio.h>

/* Valgrind cannot follow PCRE2's JIT code and reports its reads as uninitialised: under
 * valgrind (the unit tests' memory check) patterns run in PCRE2's interpreter instead, which
 * gives the same answers. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define REGEX_JIT_WANTED() (!RUNNING_ON_VALGRIND)
#endif
#endif
#ifndef REGEX_JIT_WANTED
#define REGEX_JIT_WANTED() 1
#endif

pcre2_code *
regex_compile(const char *pattern, char *err, size_t errlen, size_t *erroff)
{
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &ecode, &eoff, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        snprintf(err, errlen, "%s", (const char *)msg);
        *erroff = (size_t)eoff;
        return NULL;
    }
    /* Without a JIT (or out of executable memory) the interpreter gives the same answers. */
    if (REGEX_JIT_WANTED())
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    return code;
}

bool
regex_match(const pcre2_code *code, pcre2_match_data *md, const void *s, size_t len)
{
    return pcre2_match(code, len > 0 ? s : (const void *)"", len, 0, 0, md, NULL) >= 0;
}
