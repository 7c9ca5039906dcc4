/* The dead-lettered copy of a message (include/warren/deadletter.h): the original's properties
 * with x-death updated as RabbitMQ 3.10's rabbit_dead_letter:make_msg does, the expiration
 * removed, and the body shared. RabbitMQ decodes the headers table, stores the new values
 * with rabbit_misc:set_table_value (which sorts the table by key, stably) and re-encodes it;
 * here the table is taken apart into its entries, each kept as its encoded bytes, the entries
 * RabbitMQ sets are encoded anew into a scratch buffer, and the table is written back in
 * that order. The other properties are copied as they are.
 *
 * RabbitMQ's quirks are kept, since clients read x-death: the very first death's table is
 * written in RabbitMQ's insertion order (count, reason, queue, time, exchange, routing-keys,
 * original-expiration) while later ones are sorted by key; a repeated (queue, reason) only
 * increments count, its other fields stay as they were; and an x-death of two or more
 * entries is first regrouped by (queue, reason) (rabbitmq-server#78, for headers written by
 * old versions), which reverses the order of the entries not being updated. Where RabbitMQ
 * would crash its queue on a malformed x-death (an element that is not a table, a count that
 * is not a number), this keeps the odd element as it is, or counts from 0. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "warren/assert.h"
#include "warren/deadletter.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/msg_props.h"
#include "warren/wire_fields.h"
#include "warren/wire_gen.h"

/* One element of an x-death array, after RabbitMQ's regrouping. */
struct dl_death {
    const uint8_t *raw; /* its type tag and value, as in the array */
    uint32_t len;
    struct wire_table table; /* its entries if it is a table; ptr NULL if not */
    int64_t count_added;     /* the regrouping gave it this count (it had none), or -1 */
};

/* What the new x-death entry says. */
struct dl_info {
    struct wire_str reason, queue, exchange, routing_key;
    struct wire_array cc; /* the CC header's keys (longstr values count), or empty */
    bool has_expiration;
    struct wire_str expiration;
    uint64_t time;
};

static const char *const dl_reason_names[] = {"rejected", "expired", "maxlen", "delivery_limit"};

const char *
deadletter_reason_name(enum deadletter_reason reason)
{
    WR_ASSERT((unsigned)reason < sizeof(dl_reason_names) / sizeof(dl_reason_names[0]));
    return dl_reason_names[reason];
}

/* ---- x-death entries ---- */

/* The type and encoded value of t's first entry named key; false if absent. */
static bool
dl_table_value(struct wire_table t, const char *key, uint8_t *type, struct wire_str *raw)
{
    struct wire_table_iter it;
    struct wire_str k;
    struct wire_value val;
    wire_table_iter_init(&it, t);
    while (wire_table_next(&it, &k, &val)) {
        if (wire_str_eq(k, key)) {
            const uint8_t *v = k.ptr + k.len; /* the type tag */
            *type = *v;
            *raw = (struct wire_str){v + 1, (uint32_t)(it.p - (v + 1))};
            return true;
        }
    }
    return false;
}

/* Whether t's first entry named key has the same value in u (RabbitMQ compares the values,
 * not their types, and longstr and byte array values are both binaries to it). */
static bool
dl_same_value(struct wire_table t, struct wire_table u, const char *key)
{
    uint8_t ta, tb;
    struct wire_str a, b;
    bool ha = dl_table_value(t, key, &ta, &a), hb = dl_table_value(u, key, &tb, &b);
    if (!ha || !hb)
        return ha == hb;
    bool bin_a = ta == WIRE_FIELD_LONGSTR || ta == WIRE_FIELD_BYTES;
    bool bin_b = tb == WIRE_FIELD_LONGSTR || tb == WIRE_FIELD_BYTES;
    return (ta == tb || (bin_a && bin_b)) && a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* Whether two x-death tables are about the same (queue, reason). */
static bool
dl_same_death(struct wire_table t, struct wire_table u)
{
    return dl_same_value(t, u, "queue") && dl_same_value(t, u, "reason");
}

/* Whether t's first entry named key is a string (longstr or byte array) equal to s. */
static bool
dl_value_is(struct wire_table t, const char *key, struct wire_str s)
{
    uint8_t type;
    struct wire_str raw;
    return dl_table_value(t, key, &type, &raw) &&
           (type == WIRE_FIELD_LONGSTR || type == WIRE_FIELD_BYTES) && raw.len == 4 + s.len &&
           memcmp(raw.ptr + 4, s.ptr, s.len) == 0;
}

/* The elements of an x-death array (validated) into d[], regrouped as RabbitMQ 3.10's
 * group_by_queue_and_reason does for two or more: one element per (queue, reason), the
 * first one met, given the number of them as its count if it has none, in the reverse order
 * of their first occurrence. *n in: room in d (elements in the array); out: elements kept. */
static void
dl_deaths_group(struct wire_array xd, struct dl_death *d, uint32_t *n)
{
    struct wire_table_iter it;
    struct wire_value val;
    uint32_t all = 0;
    wire_array_iter_init(&it, xd);
    const uint8_t *start = it.p;
    while (all < *n && wire_array_next(&it, &val)) {
        d[all] = (struct dl_death){start, (uint32_t)(it.p - start), {NULL, 0}, -1};
        if (val.type == WIRE_FIELD_TABLE)
            d[all].table = val.v.table;
        all++;
        start = it.p;
    }
    if (all < 2) {
        *n = all;
        return;
    }
    /* Kept elements go to the front of d[0..kept) in order of first occurrence, then are
     * reversed: an element is kept when it is the first of its (queue, reason), and only
     * moved over elements already looked at. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < all; i++) {
        struct dl_death e = d[i];
        if (e.table.ptr != NULL) {
            bool first = true;
            int64_t same = 0;
            for (uint32_t j = 0; j < all; j++) {
                if (d[j].table.ptr == NULL || !dl_same_death(d[j].table, e.table))
                    continue;
                same++;
                first = first && j >= i; /* an earlier one of the same kind was kept */
            }
            if (!first)
                continue;
            if (!wire_table_get(e.table, "count", &val))
                e.count_added = same;
        }
        d[kept++] = e;
    }
    for (uint32_t i = 0; i < kept / 2; i++) {
        struct dl_death t = d[i];
        d[i] = d[kept - 1 - i];
        d[kept - 1 - i] = t;
    }
    *n = kept;
}

enum dl_key { DL_COUNT, DL_EXCHANGE, DL_ORIG_EXP, DL_QUEUE, DL_REASON, DL_RKS, DL_TIME };
/* The first death's entry, in RabbitMQ's insertion order; the others sorted by key. */
static const enum dl_key dl_order_first[] = {DL_COUNT,    DL_REASON, DL_QUEUE,   DL_TIME,
                                             DL_EXCHANGE, DL_RKS,    DL_ORIG_EXP};
static const enum dl_key dl_order_sorted[] = {DL_COUNT,  DL_EXCHANGE, DL_ORIG_EXP, DL_QUEUE,
                                              DL_REASON, DL_RKS,      DL_TIME};

/* Writes the new x-death entry, count 1, as an element of the array being written. */
static void
dl_put_new_death(struct wire_writer *w, const struct dl_info *in, const enum dl_key *order)
{
    size_t mark = wire_array_put_table_begin(w);
    for (int i = 0; i < 7; i++) {
        switch (order[i]) {
        case DL_COUNT:
            wire_table_put_i64(w, "count", 1);
            break;
        case DL_EXCHANGE:
            wire_table_put_longstr(w, "exchange", in->exchange);
            break;
        case DL_ORIG_EXP:
            if (in->has_expiration)
                wire_table_put_longstr(w, "original-expiration", in->expiration);
            break;
        case DL_QUEUE:
            wire_table_put_longstr(w, "queue", in->queue);
            break;
        case DL_REASON:
            wire_table_put_longstr(w, "reason", in->reason);
            break;
        case DL_RKS: {
            /* The routing key it was published with, then its CC keys (longstr ones, as
             * RabbitMQ's header_routes takes them). */
            size_t keys = wire_table_put_array_begin(w, "routing-keys");
            wire_array_put_longstr(w, in->routing_key);
            struct wire_table_iter it;
            struct wire_value v;
            wire_array_iter_init(&it, in->cc);
            while (wire_array_next(&it, &v))
                if (v.type == WIRE_FIELD_LONGSTR)
                    wire_array_put_longstr(w, v.v.str);
            wire_table_put_table_end(w, keys);
            break;
        }
        case DL_TIME:
            wire_table_put_timestamp(w, "time", in->time);
            break;
        }
    }
    wire_table_put_table_end(w, mark);
}

/* The count of the element d once incremented: RabbitMQ's increment_xdeath_event_count. */
static int64_t
dl_death_next_count(const struct dl_death *d)
{
    struct wire_value v;
    int64_t count;
    if (d->count_added >= 0)
        return d->count_added + 1;
    if (!wire_table_get(d->table, "count", &v))
        return 1;
    return wire_value_to_i64(&v, &count) ? count + 1 : 1;
}

/* Writes the element d updated, its entries sorted by key, with the count entry count (its
 * encoded bytes, written elsewhere) in place of its count: where its count was, or first when
 * it had none (RabbitMQ prepends a count it adds). 0, or -1 on ENOMEM. */
static int
dl_put_repeat_death(struct wire_writer *w, const struct dl_death *d, struct wire_field count)
{
    struct wire_fields f = {0};
    if (wire_fields_parse(&f, d->table) < 0)
        goto fail;
    struct wire_field *c = wire_fields_find(&f, count.key);
    if (c != NULL && d->count_added < 0) {
        c->raw = count.raw;
        c->len = count.len;
    } else {
        if (wire_fields_push(&f, count.key, count.raw, count.len) < 0)
            goto fail;
        memmove(f.v + 1, f.v, (size_t)(f.n - 1) * sizeof(f.v[0]));
        f.v[0] = count;
    }
    wire_fields_sort(&f);
    size_t elem = wire_array_put_table_begin(w);
    wire_fields_write(&f, w);
    wire_table_put_table_end(w, elem);
    wire_fields_free(&f);
    return 0;
fail:
    wire_fields_free(&f);
    return -1;
}

/* Writes an element that keeps its value: as it was, or with the count the regrouping gave it
 * first. */
static void
dl_put_other_death(struct wire_writer *w, const struct dl_death *d)
{
    if (d->count_added < 0) {
        wire_put_bytes(w, d->raw, d->len);
        return;
    }
    size_t elem = wire_array_put_table_begin(w);
    wire_table_put_i64(w, "count", d->count_added);
    wire_put_bytes(w, d->table.ptr, d->table.len);
    wire_table_put_table_end(w, elem);
}

/* Writes the "x-death" entry into w (the scratch buffer) and stores it in hdr, with the
 * x-first-death-* entries on a first death: RabbitMQ's update_x_death_header. 0, or -1 on
 * ENOMEM. */
static int
dl_update_x_death(struct wire_fields *hdr, const struct dl_info *in, struct wire_writer *w,
                  struct dl_death *deaths, uint32_t n_deaths)
{
    struct wire_field *xd = wire_fields_find(hdr, WIRE_STR_LIT("x-death"));
    uint8_t type = 0;
    if (xd != NULL)
        type = xd->raw[1 + xd->key.len];
    if (xd == NULL) {
        /* The first death also gets top-level headers (rabbitmq-server#1332). */
        static const char *const first[] = {"x-first-death-reason", "x-first-death-queue",
                                            "x-first-death-exchange"};
        const struct wire_str vals[] = {in->reason, in->queue, in->exchange};
        for (int i = 0; i < 3; i++) {
            size_t mark = wire_writer_len(w);
            wire_table_put_longstr(w, first[i], vals[i]);
            if (wire_fields_store_written(hdr, first[i], w, mark) < 0)
                return -1;
        }
    } else if (type != WIRE_FIELD_ARRAY) {
        /* Clients that republish a message sometimes turn x-death into a string
         * (rabbitmq-server#767): RabbitMQ starts it again. */
        log_msg(LOG_WARNING, "message has invalid x-death header (type: %s): resetting it",
                wire_field_type_name((enum wire_field_type)type));
    }
    /* The entry of the same (queue, reason), if any: its new count is encoded here, ahead
     * of the array, which must be contiguous. */
    uint32_t match = n_deaths;
    struct wire_field count = {WIRE_STR_LIT("count"), NULL, 0, 0};
    for (uint32_t i = 0; type == WIRE_FIELD_ARRAY && i < n_deaths && match == n_deaths; i++)
        if (deaths[i].table.ptr != NULL && dl_value_is(deaths[i].table, "queue", in->queue) &&
            dl_value_is(deaths[i].table, "reason", in->reason))
            match = i;
    if (match < n_deaths) {
        size_t at = wire_writer_len(w);
        wire_table_put_i64(w, "count", dl_death_next_count(&deaths[match]));
        count.raw = w->start + at;
        count.len = (uint32_t)(wire_writer_len(w) - at);
    }
    size_t mark = wire_writer_len(w);
    size_t arr = wire_table_put_array_begin(w, "x-death");
    if (type != WIRE_FIELD_ARRAY) {
        dl_put_new_death(w, in, dl_order_first);
    } else {
        /* The updated entry goes first. */
        if (match == n_deaths)
            dl_put_new_death(w, in, dl_order_sorted);
        else if (dl_put_repeat_death(w, &deaths[match], count) < 0)
            return -1;
        for (uint32_t i = 0; i < n_deaths; i++)
            if (i != match)
                dl_put_other_death(w, &deaths[i]);
    }
    wire_table_put_table_end(w, arr);
    return wire_fields_store_written(hdr, "x-death", w, mark);
}

/* ---- the copy ---- */

/* The number of values in a (validated) array. */
static uint32_t
dl_array_count(struct wire_array a)
{
    struct wire_table_iter it;
    struct wire_value v;
    uint32_t n = 0;
    wire_array_iter_init(&it, a);
    while (wire_array_next(&it, &v))
        n++;
    return n;
}

struct msg *
deadletter_msg_new(struct msg *m, struct wire_str queue, enum deadletter_reason reason,
                   struct wire_str dlx, const struct wire_str *dlx_routing_key, uint64_t now)
{
    struct wire_basic_props p = {0};
    struct wire_error err;
    if (m->props_len > 0 && wire_basic_props_decode(m->props, m->props_len, &p, &err) < 0) {
        log_msg(LOG_ERROR, "dead-lettering a message whose properties do not decode: %s", err.text);
        return NULL;
    }
    const char *why = deadletter_reason_name(reason);
    struct dl_info in = {
        .reason = {(const uint8_t *)why, (uint32_t)strlen(why)},
        .queue = queue,
        .exchange = {m->exchange, m->exchange_len},
        .routing_key = {m->routing_key, m->routing_key_len},
        .has_expiration = (p.flags & WIRE_BASIC_EXPIRATION_FLAG) != 0,
        .expiration = p.expiration,
        .time = now,
    };
    struct wire_value v;
    if (wire_table_get(p.headers, "CC", &v) && v.type == WIRE_FIELD_ARRAY)
        in.cc = v.v.array;

    struct wire_fields hdr = {0};
    struct dl_death *deaths = NULL;
    uint32_t n_deaths = 0;
    uint8_t *buf = NULL;
    struct msg *d = NULL;
    if (wire_fields_parse(&hdr, p.headers) < 0)
        goto done;
    if (wire_table_get(p.headers, "x-death", &v) && v.type == WIRE_FIELD_ARRAY &&
        (n_deaths = dl_array_count(v.v.array)) > 0) {
        if ((deaths = malloc((size_t)n_deaths * sizeof(*deaths))) == NULL)
            goto done;
        dl_deaths_group(v.v.array, deaths, &n_deaths);
    }
    /* Room for what is written: the scratch holds the new entries (x-death with every old
     * element, each perhaps given a count, and the new one; x-first-death-*), the headers
     * the old entries and those, the properties the old ones and those headers. Generous
     * bounds, each checked below. */
    size_t var =
        (size_t)queue.len + m->exchange_len + m->routing_key_len + p.expiration.len + in.cc.len;
    size_t gen_cap = 2 * (size_t)m->props_len + 2 * var + 24 * (size_t)n_deaths + 512;
    size_t hdr_cap = p.headers.len + gen_cap;
    size_t props_cap = m->props_len + hdr_cap + 8;
    if ((buf = malloc(gen_cap + hdr_cap + props_cap)) == NULL)
        goto done;
    struct wire_writer gen, hw, pw;
    wire_writer_init(&gen, buf, gen_cap);
    wire_writer_init(&hw, buf + gen_cap, hdr_cap);
    wire_writer_init(&pw, buf + gen_cap + hdr_cap, props_cap);
    if (dl_update_x_death(&hdr, &in, &gen, deaths, n_deaths) < 0)
        goto done;
    wire_fields_sort(&hdr);
    /* A dead-letter routing key replaces the CC keys too, so RabbitMQ drops the header. BCC
     * never reaches a consumer in RabbitMQ (removed as it is published): not here either. */
    if (dlx_routing_key != NULL)
        wire_fields_delete(&hdr, WIRE_STR_LIT("CC"));
    wire_fields_delete(&hdr, WIRE_STR_LIT("BCC"));
    wire_fields_write(&hdr, &hw);
    p.headers = (struct wire_table){hw.start, (uint32_t)wire_writer_len(&hw)};
    p.flags |= WIRE_BASIC_HEADERS_FLAG;
    p.flags &= (uint16_t)~WIRE_BASIC_EXPIRATION_FLAG;
    int rc = wire_basic_props_encode(&p, &pw);
    WR_ASSERT(!gen.overflow && !hw.overflow && rc == 0);
    struct wire_str rk = dlx_routing_key != NULL ? *dlx_routing_key : in.routing_key;
    d = msg_new_sharing_body(pw.start, (uint32_t)wire_writer_len(&pw), m->delivery_mode,
                             m->priority, dlx, rk, m);
    if (d != NULL)
        msg_set_headers(
            d, pw.start,
            (struct wire_table){pw.start + msg_props_headers_offset(&p), p.headers.len});
done:
    free(buf);
    free(deaths);
    wire_fields_free(&hdr);
    return d;
}

bool
deadletter_is_cycle(const struct msg *dead, struct wire_str queue)
{
    struct wire_value xd, e;
    if (!wire_table_get(msg_headers(dead), "x-death", &xd) || xd.type != WIRE_FIELD_ARRAY)
        return false;
    /* RabbitMQ's is_death_cycle: the deaths up to the queue's latest one, that one
     * included, must all be automatic; an element that is not a table means a client wrote
     * x-death, and then it is not a cycle either. */
    bool automatic = true;
    struct wire_table_iter it;
    wire_array_iter_init(&it, xd.v.array);
    while (wire_array_next(&it, &e)) {
        if (e.type != WIRE_FIELD_TABLE) {
            automatic = false;
            continue;
        }
        struct wire_value q, r;
        bool is_q = wire_table_get(e.v.table, "queue", &q) && q.type == WIRE_FIELD_LONGSTR &&
                    q.v.str.len == queue.len && memcmp(q.v.str.ptr, queue.ptr, queue.len) == 0;
        if (wire_table_get(e.v.table, "reason", &r) && r.type == WIRE_FIELD_LONGSTR &&
            wire_str_eq(r.v.str, "rejected"))
            automatic = false;
        if (is_q)
            return automatic;
    }
    return false;
}
