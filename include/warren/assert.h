/* WR_ASSERT: for states that no input can reach, i.e. our own bugs. Peer input never reaches
 * an assertion: it becomes an AMQP exception instead. Always on, release builds included:
 * a broker that carries on in a state it believes impossible can lose messages. */
#ifndef WARREN_ASSERT_H
#define WARREN_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define WR_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
