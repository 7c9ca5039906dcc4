/* Values as RabbitMQ's texts print them (warren/admin.h's validation errors): RabbitMQ
 * formats a bad value with Erlang's ~p, so a JSON string reads <<"text">>, a list [1,2], an
 * object #{<<"k">> => 1}, a float 1.0e20. admin_erl_term writes a JSON value so, into an
 * admin_buf (admin_int.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"

void
admin_buf_add(struct admin_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, b->len++)
        if (b->len + 1 < b->cap)
            b->p[b->len] = s[i];
    if (b->cap > 0)
        b->p[b->len < b->cap ? b->len : b->cap - 1] = '\0';
}

void
admin_buf_str(struct admin_buf *b, const char *s)
{
    admin_buf_add(b, s, strlen(s));
}

void
admin_buf_printf(struct admin_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    admin_buf_add(b, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A float as Erlang prints it: the shortest digits that read back the same, placed as
 * io_lib_format:fwrite_g places them (1.5, 1.0e20, 0.0001, 1.0e-7). */
static void
admin_erl_float(struct admin_buf *b, double d)
{
    char tmp[40], digits[24];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (d < 0) {
        admin_buf_str(b, "-");
        memmove(tmp, tmp + 1, strlen(tmp));
    }
    /* tmp is d.ddde[+-]xx: the digits, and the place of the point after the first */
    size_t n = 0;
    const char *e = strchr(tmp, 'e');
    for (const char *s = tmp; s < e; s++)
        if (*s != '.')
            digits[n++] = *s;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    int place = atoi(e + 1) + 1; /* digits before the point */
    char exp[16];
    snprintf(exp, sizeof(exp), "%d", place - 1);
    int exp_cost = (int)strlen(exp) + 1 + (n == 1 ? 2 : 1);
    if (place > 0 && place < (int)n) {
        admin_buf_add(b, digits, (size_t)place);
        admin_buf_str(b, ".");
        admin_buf_str(b, digits + place);
    } else if (place == 0) {
        admin_buf_printf(b, "0.%s", digits);
    } else if (place < 0 && 2 - place <= exp_cost) {
        admin_buf_printf(b, "0.%0*d%s", -place, 0, digits);
    } else if (place >= (int)n && place - (int)n + 2 <= exp_cost) {
        admin_buf_printf(b, "%s%0*d.0", digits, place - (int)n, 0);
    } else {
        admin_buf_printf(b, "%c.%se%s", digits[0], n == 1 ? "0" : digits + 1, exp);
    }
}

void
admin_erl_binary(struct admin_buf *b, const char *s, size_t len)
{
    static const char esc_from[] = "\n\r\t\v\b\f\x1b\"\\";
    static const char esc_to[] = "nrtvbfe\"\\";
    bool printable = true;
    for (size_t i = 0; i < len && printable; i++) {
        unsigned char c = (unsigned char)s[i];
        printable = (c >= 32 && c < 127) || c >= 160 || (c != 0 && strchr(esc_from, c) != NULL);
    }
    admin_buf_str(b, "<<");
    if (!printable) {
        for (size_t i = 0; i < len; i++)
            admin_buf_printf(b, "%s%u", i ? "," : "", (unsigned char)s[i]);
        admin_buf_str(b, ">>");
        return;
    }
    admin_buf_str(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *x = c != 0 ? strchr(esc_from, c) : NULL;
        if (x != NULL) {
            char e[2] = {'\\', esc_to[x - esc_from]};
            admin_buf_add(b, e, 2);
        } else if (c >= 160) {
            char u[2] = {(char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f))};
            admin_buf_add(b, u, 2);
        } else {
            admin_buf_add(b, (const char *)&c, 1);
        }
    }
    admin_buf_str(b, "\">>");
}

/* Object keys in Erlang's map order (binaries: bytewise). */
static int
admin_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **
admin_sorted_keys(json_t *o, size_t *n)
{
    const char *key;
    json_t *v;
    const char **keys =
        json_object_size(o) > 0 ? malloc(json_object_size(o) * sizeof(*keys)) : NULL;
    *n = 0;
    if (keys == NULL)
        return NULL;
    json_object_foreach(o, key, v) keys[(*n)++] = key;
    qsort(keys, *n, sizeof(*keys), admin_key_cmp);
    return keys;
}

void
admin_erl_term(struct admin_buf *b, json_t *v)
{
    size_t i, n;
    json_t *x;
    switch (v == NULL ? JSON_NULL : json_typeof(v)) {
    case JSON_OBJECT: {
        const char **keys = admin_sorted_keys(v, &n);
        admin_buf_str(b, "#{");
        for (i = 0; i < n; i++) {
            admin_buf_str(b, i ? "," : "");
            admin_erl_binary(b, keys[i], strlen(keys[i]));
            admin_buf_str(b, " => ");
            admin_erl_term(b, json_object_get(v, keys[i]));
        }
        admin_buf_str(b, "}");
        free(keys);
        break;
    }
    case JSON_ARRAY:
        admin_buf_str(b, "[");
        json_array_foreach(v, i, x)
        {
            admin_buf_str(b, i ? "," : "");
            admin_erl_term(b, x);
        }
        admin_buf_str(b, "]");
        break;
    case JSON_STRING:
        admin_erl_binary(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        admin_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        admin_erl_float(b, json_real_value(v));
        break;
    case JSON_TRUE:
        admin_buf_str(b, "true");
        break;
    case JSON_FALSE:
        admin_buf_str(b, "false");
        break;
    case JSON_NULL:
        admin_buf_str(b, v == NULL ? "undefined" : "null");
        break;
    }
}
