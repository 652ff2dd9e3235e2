/* Chained hash multimap; grows by doubling at load 1. Entries removed go
 * to a free list and are reused: a submit waiting for durability adds one
 * per job, and the hot path should not malloc per job. */
#include <errno.h>
#include <stdlib.h>

#include "idmap.h"

struct ent {
	struct ent *next;
	uint64_t id;
	void *val;
};

struct dd_idmap {
	struct ent **b;
	size_t nb, n;
	struct ent *free; /* spare entries */
};

static void put_back(struct dd_idmap *m, struct ent *e)
{
	e->next = m->free;
	m->free = e;
}

static size_t slot(const struct dd_idmap *m, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)id & (m->nb - 1);
}

int dd_idmap_create(struct dd_idmap **out)
{
	struct dd_idmap *m = calloc(1, sizeof(*m));
	if (!m || !(m->b = calloc(1024, sizeof(*m->b)))) {
		free(m);
		return -ENOMEM;
	}
	m->nb = 1024;
	*out = m;
	return 0;
}

void dd_idmap_destroy(struct dd_idmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++)
		for (struct ent *e = m->b[i], *nx; e; e = nx) {
			nx = e->next;
			free(e);
		}
	while (m->free) {
		struct ent *e = m->free;
		m->free = e->next;
		free(e);
	}
	free(m->b);
	free(m);
}

static void grow(struct dd_idmap *m)
{
	struct dd_idmap n = {.nb = m->nb * 2};
	if (!(n.b = calloc(n.nb, sizeof(*n.b))))
		return; /* longer chains, still correct */
	for (size_t i = 0; i < m->nb; i++)
		for (struct ent *e = m->b[i], *nx; e; e = nx) {
			nx = e->next;
			size_t s = slot(&n, e->id);
			e->next = n.b[s];
			n.b[s] = e;
		}
	free(m->b);
	m->b = n.b;
	m->nb = n.nb;
}

int dd_idmap_add(struct dd_idmap *m, uint64_t id, void *val)
{
	if (m->n >= m->nb)
		grow(m);
	struct ent *e = m->free;
	if (e)
		m->free = e->next;
	else if (!(e = malloc(sizeof(*e))))
		return -ENOMEM;
	size_t s = slot(m, id);
	*e = (struct ent){.next = m->b[s], .id = id, .val = val};
	m->b[s] = e;
	m->n++;
	return 0;
}

int dd_idmap_del(struct dd_idmap *m, uint64_t id, void *val)
{
	for (struct ent **pp = &m->b[slot(m, id)]; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id && (*pp)->val == val) {
			struct ent *e = *pp;
			*pp = e->next;
			put_back(m, e);
			m->n--;
			return 1;
		}
	return 0;
}

void dd_idmap_take(struct dd_idmap *m, uint64_t id, void (*fn)(void *, uint64_t, void *),
		   void *arg)
{
	struct ent **pp = &m->b[slot(m, id)];
	while (*pp) {
		struct ent *e = *pp;
		if (e->id != id) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		m->n--;
		void *v = e->val;
		put_back(m, e);
		fn(v, id, arg);
	}
}

size_t dd_idmap_count(const struct dd_idmap *m)
{
	return m->n;
}
