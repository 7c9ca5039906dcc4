/* A message's properties rewritten as RabbitMQ rewrites them when it changes a header: the
 * raw property bytes decoded, the headers table changed entry by entry (warren/wire_fields.h)
 * and everything re-encoded, in a new message that shares the original's body. */
#ifndef WARREN_MSG_PROPS_H
#define WARREN_MSG_PROPS_H

#include <stdint.h>

#include "warren/wire_gen.h"

struct msg;

/* Where the headers table's entries start in the bytes p encodes to: after the flags,
 * content-type, content-encoding and the table's length (their order on the wire). */
uint32_t msg_props_headers_offset(const struct wire_basic_props *p);

/* A copy of m (its body shared, not copied) whose headers hold key set to the long integer
 * value, as rabbit_basic:add_header sets it: the first entry of that name replaced, or one
 * appended, then the table sorted by key. One reference, the caller's; NULL on ENOMEM or
 * properties that do not decode (logged). */
struct msg *msg_with_long_header(struct msg *m, const char *key, int64_t value);
/* A copy of m (its body shared, not copied) without the first header named key, the others
 * kept in their order, as rabbit_basic:strip_header removes one (the headers property stays,
 * empty if that was the only entry). One reference, the caller's; NULL on ENOMEM or
 * properties that do not decode (logged). */
struct msg *msg_without_header(struct msg *m, const char *key);

#endif
