/* Topic routing benchmark: builds topic exchanges with 1,000, 10,000 and 100,000 bindings of
 * realistic keys ("region.R.service.S.event", some with "*" and "#") and prints how many
 * routes per second each sustains, to show that the cost of a route follows the routing key
 * and the bindings it matches, not the number of bindings. Two key sets: "hot" cycles over 64
 * routing keys (the trie paths stay in cache: the work per route alone), "spread" over 65,536
 * keys across every service (each route touches trie nodes the previous ones did not: what
 * grows there from 1k to 100k bindings is cache misses, not work). It prints figures and
 * asserts nothing about time. Usage: bench_topic [routes per measurement, default 1000000]. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "warren/exchange.h"
#include "warren/queue.h"

enum { N_QUEUES = 1000, N_KEYS = 65536, N_HOT = 64, N_REGIONS = 50 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static struct wire_str
str_of(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static const char *const events[] = {"created", "updated", "deleted", "audit"};

/* Binding i of n: mostly exact keys, one in ten "region.*.service.S.E", one in ten
 * "region.R.service.S.#", spread over services so each routing key matches a few. Three
 * patterns are there at every size: "region.7.#", "#.audit", "*.*.service.*.deleted". */
static void
binding_key(char *buf, size_t cap, uint32_t i)
{
    uint32_t s = i / 4, r = s % N_REGIONS;
    const char *ev = events[i % 4];

    switch (i % 10) {
    case 8:
        snprintf(buf, cap, "region.*.service.%u.%s", s, ev);
        break;
    case 9:
        snprintf(buf, cap, "region.%u.service.%u.#", r, s);
        break;
    default:
        snprintf(buf, cap, "region.%u.service.%u.%s", r, s, ev);
        break;
    }
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
run(uint32_t n_bindings, long n_routes, struct queue **queues)
{
    static const char *const fixed[] = {"region.7.#", "#.audit", "*.*.service.*.deleted"};
    static char keys[N_KEYS][64];
    struct exch *e = exch_new(NULL, str_of("bench"), EXCH_TOPIC, false, false, false,
                              (struct wire_table){NULL, 0});
    struct route_result r = {0};
    struct wire_table none = {NULL, 0};
    char key[64];
    uint64_t matched;
    double t0, t1;

    if (e == NULL)
        return -1;
    t0 = now();
    for (uint32_t i = 0; i < n_bindings; i++) {
        binding_key(key, sizeof key, i);
        if (exch_bind(e, bind_dest_queue(queues[i % N_QUEUES]), str_of(key), none) < 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (exch_bind(e, bind_dest_queue(queues[i]), str_of(fixed[i]), none) < 0)
            return -1;
    t1 = now();
    /* Routing keys: services that have bindings (and one in eight that has none). */
    for (int k = 0; k < N_KEYS; k++) {
        uint32_t s = rnd(n_bindings / 4 + n_bindings / 32 + 1);
        snprintf(keys[k], sizeof keys[k], "region.%u.service.%u.%s", s % N_REGIONS, s,
                 events[rnd(4)]);
    }
    double bind_s = t1 - t0, rate[2], per_route[2];
    for (int pass = 0; pass < 2; pass++) {
        uint32_t n_keys = pass == 0 ? N_HOT : N_KEYS;
        matched = 0;
        t0 = now();
        for (long i = 0; i < n_routes; i++) {
            if (exch_route(e, str_of(keys[(uint32_t)i % n_keys]), none, &r) < 0)
                return -1;
            matched += r.n;
        }
        t1 = now();
        rate[pass] = (double)n_routes / (t1 - t0);
        per_route[pass] = (double)matched / (double)n_routes;
    }
    printf("%9u  %12.0f  %12.0f  %9.1f  %9.1f  %12.2f  %10.0f\n", n_bindings, rate[0], rate[1],
           1e9 / rate[0], 1e9 / rate[1], per_route[1], (double)n_bindings / bind_s);
    route_result_free(&r);
    exch_free(e);
    return 0;
}

int
main(int argc, char **argv)
{
    static const uint32_t sizes[] = {1000, 10000, 100000};
    long n_routes = argc > 1 ? atol(argv[1]) : 1000000;
    struct queue *queues[N_QUEUES];
    char name[32];
    int rc = 0;

    if (n_routes <= 0) {
        fprintf(stderr, "usage: %s [routes per size]\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < N_QUEUES; i++) {
        snprintf(name, sizeof name, "q%d", i);
        queues[i] = queue_new(NULL, str_of(name), false, false, NULL, (struct wire_table){NULL, 0});
        if (queues[i] == NULL)
            return 1;
    }
    printf("topic exchange, %ld routes per measurement, keys like region.R.service.S.event\n",
           n_routes);
    printf("%9s  %12s  %12s  %9s  %9s  %12s  %10s\n", "bindings", "hot rt/s", "spread rt/s",
           "hot ns", "spread ns", "queues/route", "binds/s");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && rc == 0; i++)
        rc = run(sizes[i], n_routes, queues);
    for (int i = 0; i < N_QUEUES; i++)
        queue_free(queues[i], NULL, NULL);
    if (rc < 0)
        fprintf(stderr, "out of memory\n");
    return rc < 0 ? 1 : 0;
}
