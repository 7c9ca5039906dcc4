/* Prints the sizes of the structures that exist once per connection, channel, consumer,
 * message, queue entry and delivery, so that a change that makes them grow shows up (memcached
 * sizes.c). `make bench` runs it; it asserts nothing. */
#include "config.h"

#include <stdio.h>

#include "../src/net/net_int.h"
#include "warren/exchange.h"
#include "warren/msg.h"
#include "warren/queue.h"

int
main(void)
{
    printf("struct conn       %5zu  (one per connection, plus its bufferevent)\n",
           sizeof(struct conn));
    printf("struct chan       %5zu  (one per open channel)\n", sizeof(struct chan));
    printf("struct chan_cons  %5zu  (one per consumer)\n", sizeof(struct chan_cons));
    printf("struct msg        %5zu  (+ properties, names and body, one per message)\n",
           sizeof(struct msg));
    printf("struct qentry     %5zu  (one per message per queue)\n", sizeof(struct qentry));
    printf("struct delivery   %5zu  (one per unacked delivery)\n", sizeof(struct delivery));
    printf("struct queue      %5zu\n", sizeof(struct queue));
    printf("struct exch       %5zu\n", sizeof(struct exch));
    return 0;
}
