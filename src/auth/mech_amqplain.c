/* AMQPLAIN, the default of py-amqp, kombu and Celery: the response holds the entries of a
 * field table, without the table's 4-byte length prefix, with LOGIN and PASSWORD as long
 * strings ('S'). The bytes come straight from the peer, so the table is validated (types,
 * lengths, nesting depth) before it is walked. */
#include "config.h"

#include <stdio.h>

#include "auth_int.h"

int
auth_amqplain_parse(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen)
{
    struct wire_error err;
    if (wire_table_validate(response.ptr, response.len, 0, &err) < 0) {
        snprintf(why, whylen, "AMQPLAIN auth info is not a valid field table: %s", err.text);
        return -1;
    }

    struct wire_table t = {response.ptr, response.len};
    struct wire_value login, pass;
    if (!wire_table_get(t, "LOGIN", &login) || !wire_table_get(t, "PASSWORD", &pass)) {
        snprintf(why, whylen, "AMQPLAIN auth info is missing LOGIN or PASSWORD field");
        return -1;
    }
    if (login.type != WIRE_FIELD_LONGSTR || pass.type != WIRE_FIELD_LONGSTR) {
        snprintf(why, whylen,
                 "AMQPLAIN auth info uses unsupported type for LOGIN or PASSWORD field "
                 "('%c' and '%c'; expected 'S')",
                 (char)login.type, (char)pass.type);
        return -1;
    }
    cred->user = login.v.str;
    cred->pass = pass.v.str;
    return 0;
}
