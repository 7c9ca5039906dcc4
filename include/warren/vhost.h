/* Virtual hosts: named, isolated namespaces of exchanges, queues and bindings. The registry
 * owns every vhost; a connection borrows the one it opened. For now a vhost is its name; the
 * messaging core hangs its exchanges and queues here. */
#ifndef WARREN_VHOST_H
#define WARREN_VHOST_H

#include "warren/wire.h"

struct vhost {
    char *name; /* owns */
    struct vhost *next;
};

struct vhost_registry {
    struct vhost *head; /* owns the list */
};

void vhost_registry_init(struct vhost_registry *reg);
void vhost_registry_clear(struct vhost_registry *reg);
/* Adds a vhost (or returns the existing one of that name). NULL on ENOMEM. */
struct vhost *vhost_add(struct vhost_registry *reg, const char *name);
/* NULL if no vhost has that name. */
struct vhost *vhost_find(const struct vhost_registry *reg, struct wire_str name);

#endif
