/* SASL PLAIN (RFC 4616) as AMQP clients send it in connection.start-ok: "[authzid] NUL user
 * NUL password". Clients send an empty authzid; a non-empty one is ignored (the login is
 * always as user). Like RabbitMQ, a third NUL (bytes after the password) is malformed. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "auth_int.h"

int
auth_plain_parse(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen)
{
    const uint8_t *p = response.ptr, *end = response.ptr + response.len;
    const uint8_t *nul1 = response.len ? memchr(p, 0, response.len) : NULL;
    const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1)) : NULL;
    if (nul2 == NULL || memchr(nul2 + 1, 0, (size_t)(end - nul2 - 1)) != NULL) {
        snprintf(why, whylen,
                 "PLAIN response invalid: expected '[authzid] NUL user NUL password', got %u "
                 "bytes with %s",
                 (unsigned)response.len,
                 nul1 == NULL   ? "no NUL"
                 : nul2 == NULL ? "one NUL"
                                : "3 or more NULs");
        return -1;
    }
    cred->user = (struct wire_str){nul1 + 1, (uint32_t)(nul2 - nul1 - 1)};
    cred->pass = (struct wire_str){nul2 + 1, (uint32_t)(end - nul2 - 1)};
    return 0;
}
