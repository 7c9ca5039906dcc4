/* Virtual host registry. A handful of vhosts per node is the norm, so a list is enough;
 * lookups happen once per connection.open, never per message. */
#include "config.h"

#include "warren/vhost.h"

#include <stdlib.h>
#include <string.h>

void
vhost_registry_init(struct vhost_registry *reg)
{
    reg->head = NULL;
}

void
vhost_registry_clear(struct vhost_registry *reg)
{
    struct vhost *v = reg->head;
    while (v != NULL) {
        struct vhost *next = v->next;
        free(v->name);
        free(v);
        v = next;
    }
    reg->head = NULL;
}

struct vhost *
vhost_add(struct vhost_registry *reg, const char *name)
{
    struct vhost *v = vhost_find(reg, (struct wire_str){(const uint8_t *)name, strlen(name)});
    if (v != NULL)
        return v;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    v->name = strdup(name);
    if (v->name == NULL) {
        free(v);
        return NULL;
    }
    v->next = reg->head;
    reg->head = v;
    return v;
}

struct vhost *
vhost_find(const struct vhost_registry *reg, struct wire_str name)
{
    for (struct vhost *v = reg->head; v != NULL; v = v->next)
        if (wire_str_eq(name, v->name))
            return v;
    return NULL;
}
