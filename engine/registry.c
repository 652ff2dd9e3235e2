/* Handler registry: append-only, so readers need no lock (the count is
 * published with release after the entry is written). */
#include <errno.h>
#include <string.h>

#include "engine.h"
#include "registry.h"

int dd_handler_register(struct dd_engine *e, const char *name, dd_handler_fn fn, void *arg)
{
	if (!name || !name[0] || strlen(name) >= sizeof(e->handlers[0].name))
		return -EINVAL;
	pthread_mutex_lock(&e->reg_lock);
	int r = 0;
	unsigned n = atomic_load_explicit(&e->nhandlers, memory_order_relaxed);
	if (dd_handler_find(e, name) >= 0) {
		r = -EEXIST;
	} else if (n >= DD_MAX_HANDLERS) {
		r = -ENOSPC;
	} else {
		struct dd_handler *h = &e->handlers[n];
		strcpy(h->name, name);
		h->fn = fn;
		h->arg = arg;
		/* release pairs with the acquire in dd_handler_find() */
		atomic_store_explicit(&e->nhandlers, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&e->reg_lock);
	return r;
}

int dd_kind_for_exec(struct dd_engine *e, const char *name)
{
	int h = dd_handler_find(e, name);
	if (h >= 0)
		return h;
	int r = dd_handler_register(e, name, NULL, NULL);
	if (r < 0 && r != -EEXIST)
		return r;
	h = dd_handler_find(e, name);
	return h >= 0 ? h : -ENOENT;
}

int dd_handler_find(struct dd_engine *e, const char *name)
{
	unsigned n = atomic_load_explicit(&e->nhandlers, memory_order_acquire);
	/* Linear: engines register a handful of kinds; callers that submit in
	 * bulk resolve the kind once per batch run. */
	for (unsigned i = 0; i < n; i++)
		if (strcmp(e->handlers[i].name, name) == 0)
			return (int)i;
	return -1;
}
