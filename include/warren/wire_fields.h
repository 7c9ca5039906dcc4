/* A field table taken apart into its entries, each kept as its encoded bytes (key, type,
 * value), to be changed and written back as Erlang's proplists functions and RabbitMQ's
 * rabbit_misc:set_table_value change a table: keyfind, keystore, keydelete, a stable sort by
 * key. Used where Warren must rewrite a message's headers exactly as RabbitMQ re-encodes them
 * (dead-lettering's x-death, a redelivery's x-delivery-count). Nothing is copied: entries
 * point into the table they came from or into the caller's scratch writer. */
#ifndef WARREN_WIRE_FIELDS_H
#define WARREN_WIRE_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "warren/wire.h"

/* One entry of a table being rebuilt: its key and its whole encoded bytes (key, type,
 * value), in the table it came from or in the scratch buffer. */
struct wire_field {
    struct wire_str key;
    const uint8_t *raw;
    uint32_t len;
    uint32_t pos; /* its place before sorting: the sort is stable, as Erlang's keysort */
};

/* Start with {0}; free with wire_fields_free. */
struct wire_fields {
    struct wire_field *v; /* owns the array */
    uint32_t n, cap;
};

/* Frees the entry array (not what the entries point to) and empties f. */
void wire_fields_free(struct wire_fields *f);
/* Appends an entry. 0, or -1 on ENOMEM. */
int wire_fields_push(struct wire_fields *f, struct wire_str key, const uint8_t *raw, uint32_t len);
/* Appends t's entries (a validated table). 0, or -1 on ENOMEM. */
int wire_fields_parse(struct wire_fields *f, struct wire_table t);
/* The first entry named key, or NULL (lists:keyfind). */
struct wire_field *wire_fields_find(struct wire_fields *f, struct wire_str key);
/* Replaces the first entry named key, or appends one (lists:keystore). 0, or -1 on ENOMEM. */
int wire_fields_store(struct wire_fields *f, struct wire_str key, const uint8_t *raw, uint32_t len);
/* Removes the first entry named key, if any (lists:keydelete). */
void wire_fields_delete(struct wire_fields *f, struct wire_str key);
/* Sorts by key, stably (rabbit_misc:sort_field_table). */
void wire_fields_sort(struct wire_fields *f);
/* Writes the entries, in their order, as a table's content. */
void wire_fields_write(const struct wire_fields *f, struct wire_writer *w);
/* Records the entry written to w since mark, named key, into f. 0, or -1 on ENOMEM. */
int wire_fields_store_written(struct wire_fields *f, const char *key, struct wire_writer *w,
                              size_t mark);

#endif
