/* engine/ — growing a chained hash table: the idempotency map (idem.c)
 * and the dependants of jobs not arrived yet (deps.c). The id table
 * (jobtab.c) is another kind, open addressing with backward-shift
 * removal, and grows its own way.
 *
 * DD_CHAIN_GROW(name, type, slot) defines
 *	static int name(type ***buckets, size_t *cap, size_t first);
 * which moves every entry of *buckets (*cap heads, a power of two, or 0)
 * into a new array of twice as many heads (@first when there were none),
 * frees the old one and updates both. @type has a `next` pointer, and
 * slot(const type *e, size_t cap) is e's bucket among @cap. Returns 0, or
 * -ENOMEM with the table as it was. Not for the hot path: it allocates. */
#ifndef DD_ENGINE_CHAIN_H
#define DD_ENGINE_CHAIN_H

#include <errno.h>
#include <stdlib.h>

#define DD_CHAIN_GROW(name, type, slot)                                        \
	static int name(type ***buckets, size_t *cap, size_t first)            \
	{                                                                      \
		size_t ncap = *cap ? *cap * 2 : first;                         \
		type **b = calloc(ncap, sizeof(*b));                           \
		if (!b)                                                        \
			return -ENOMEM;                                        \
		for (size_t i = 0; i < *cap; i++)                              \
			for (type *e = (*buckets)[i], *n; e; e = n) {          \
				n = e->next;                                   \
				size_t k = slot(e, ncap);                      \
				e->next = b[k];                                \
				b[k] = e;                                      \
			}                                                      \
		free(*buckets);                                                \
		*buckets = b;                                                  \
		*cap = ncap;                                                   \
		return 0;                                                      \
	}

#endif
