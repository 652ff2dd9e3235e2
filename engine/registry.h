/* engine/ — handlers and kinds by name (registry.c). Any thread. */
#ifndef DD_ENGINE_REGISTRY_H
#define DD_ENGINE_REGISTRY_H

#include "engine.h"

int dd_handler_find(struct dd_engine *e, const char *name);
/* The kind of a process job: any name, registered (without a handler)
 * the first time it is seen. Returns its index or a negative code. */
int dd_kind_for_exec(struct dd_engine *e, const char *name);

#endif
