/* engine/ — job records and the id table (jobtab.c): records from slabs
 * of the shard's arena; the table is open addressing by sequence number,
 * with backward-shift removal. Reactor only. */
#ifndef DD_ENGINE_JOBTAB_H
#define DD_ENGINE_JOBTAB_H

#include "engine.h"

/* A slot of the id table. The id sits next to the pointer so that a probe
 * and a backward shift read the table only, not each record it passes:
 * at hundreds of thousands of jobs in memory every record is a cache miss
 * (the table's insert and remove were a third of the reactor's time). */
struct dd_tabslot {
	uint64_t id;
	struct dd_jobrec *rec; /* NULL: empty */
};

struct dd_jobrec *dd_jobrec_alloc(struct dd_shard *s);
void dd_jobrec_free(struct dd_shard *s, struct dd_jobrec *j);
int dd_tab_insert(struct dd_shard *s, struct dd_jobrec *j);
/* The home slot of @id in a table of @cap (a power of two). */
static inline size_t dd_tab_slot(uint64_t id, size_t cap)
{
	/* splitmix64 finaliser: sequential ids must not form probe runs */
	uint64_t h = id & DD_ID_SEQ_MASK;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	h ^= h >> 31;
	return (size_t)h & (cap - 1);
}
/* Starts loading @id's slot: a table of hundreds of thousands of jobs is
 * a cache miss per insert and remove (together a sixth of the reactor's
 * time, perf), which the reactor hides by asking ahead. */
static inline void dd_tab_prefetch(const struct dd_shard *s, uint64_t id)
{
	if (s->tabcap)
		__builtin_prefetch(&s->tab[dd_tab_slot(id, s->tabcap)], 1);
}
struct dd_jobrec *dd_tab_find(const struct dd_shard *s, uint64_t id);
void dd_tab_remove(struct dd_shard *s, uint64_t id);
void dd_jobtab_destroy(struct dd_shard *s);

#endif
