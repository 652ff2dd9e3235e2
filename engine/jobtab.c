/* A shard's records: slab pool from the shard's arena and the id table.
 * Reactor-only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "array.h"
#include "fate.h"
#include "idem.h"
#include "jobtab.h"
#include "stats.h"
#include "submit.h"

#define SLAB_RECS 4096

/* ---- record pool: whole slabs from the node-local arena, so that no job
 * costs an allocator call once the pool is warm ---- */

static int pool_grow(struct dd_shard *s)
{
	if (s->nslabs == s->capslabs) {
		size_t cap = s->capslabs ? s->capslabs * 2 : 16;
		void **sl = realloc(s->slabs, cap * sizeof(*sl));
		if (!sl)
			return -ENOMEM;
		s->slabs = sl;
		s->capslabs = cap;
	}
	struct dd_jobrec *slab = dd_numa_arena_alloc(s->arena, SLAB_RECS * sizeof(*slab));
	if (!slab)
		return -ENOMEM;
	s->slabs[s->nslabs++] = slab;
	for (size_t i = SLAB_RECS; i-- > 0;) {
		slab[i].link.next = (struct dd_queue_node *)s->freelist;
		s->freelist = &slab[i];
	}
	return 0;
}

struct dd_jobrec *dd_jobrec_alloc(struct dd_shard *s)
{
	if (!s->freelist && pool_grow(s) < 0)
		return NULL;
	struct dd_jobrec *j = s->freelist;
	s->freelist = (struct dd_jobrec *)j->link.next;
	/* the next record is cold (it left memory long ago): fetch it while
	 * this job is being set up */
	if (s->freelist)
		__builtin_prefetch(s->freelist, 1);
	memset(j, 0, offsetof(struct dd_jobrec, inline_payload));
	j->worker = -1;
	j->stdin_fd = -1;
	dd_st_add(s, ST_IN_MEMORY, 1);
	return j;
}

void dd_jobrec_free(struct dd_shard *s, struct dd_jobrec *j)
{
	if (j->payload && j->payload != j->inline_payload)
		dd_numa_arena_free(s->arena, j->payload, j->payload_len);
	if (j->key) {
		dd_idem_remove(s->eng->idem, j->key_hash, j->uid, j->key, j->id);
		dd_numa_arena_free(s->arena, j->key, strlen(j->key) + 1);
	}
	free(j->dependants);
	dd_reason_free(s, j->name);
	if (j->kind)
		dd_numa_arena_free(s->arena, j->kind, strlen(j->kind) + 1);
	if (j->flags & JF_REASON_OWN)
		dd_reason_free(s, (char *)j->reason);
	if (j->stdin_fd >= 0)
		dd_stdin_release(s->eng, j->stdin_fd);
	if (j->arr)
		dd_array_detach(s, j);
	j->link.next = (struct dd_queue_node *)s->freelist;
	s->freelist = j;
	dd_st_add(s, ST_IN_MEMORY, -1);
}

/* ---- id table: open addressing, linear probing, backward-shift delete ---- */

static int tab_grow(struct dd_shard *s)
{
	size_t cap = s->tabcap ? s->tabcap * 2 : 1u << 14;
	struct dd_tabslot *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->tabcap; i++) {
		if (!s->tab[i].rec)
			continue;
		size_t k = dd_tab_slot(s->tab[i].id, cap);
		while (t[k].rec)
			k = (k + 1) & (cap - 1);
		t[k] = s->tab[i];
	}
	free(s->tab);
	s->tab = t;
	s->tabcap = cap;
	return 0;
}

int dd_tab_insert(struct dd_shard *s, struct dd_jobrec *j)
{
	if ((s->tabcount + 1) * 2 > s->tabcap) {
		int r = tab_grow(s);
		if (r < 0)
			return r;
	}
	size_t k = dd_tab_slot(j->id, s->tabcap);
	while (s->tab[k].rec)
		k = (k + 1) & (s->tabcap - 1);
	s->tab[k] = (struct dd_tabslot){j->id, j};
	s->tabcount++;
	return 0;
}

struct dd_jobrec *dd_tab_find(const struct dd_shard *s, uint64_t id)
{
	if (!s->tabcap)
		return NULL;
	for (size_t k = dd_tab_slot(id, s->tabcap);; k = (k + 1) & (s->tabcap - 1)) {
		const struct dd_tabslot *t = &s->tab[k];
		if (!t->rec || t->id == id)
			return t->rec;
	}
}

void dd_tab_remove(struct dd_shard *s, uint64_t id)
{
	if (!s->tabcap)
		return;
	size_t mask = s->tabcap - 1, k = dd_tab_slot(id, s->tabcap);
	while (s->tab[k].rec && s->tab[k].id != id)
		k = (k + 1) & mask;
	if (!s->tab[k].rec)
		return;
	/* Backward shift: pull later members of the probe run into the hole. */
	size_t hole = k;
	for (size_t i = (k + 1) & mask; s->tab[i].rec; i = (i + 1) & mask) {
		size_t home = dd_tab_slot(s->tab[i].id, s->tabcap);
		/* move if home is not cyclically in (hole, i] */
		bool stay = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
		if (!stay) {
			s->tab[hole] = s->tab[i];
			hole = i;
		}
	}
	s->tab[hole] = (struct dd_tabslot){0, NULL};
	s->tabcount--;
}

void dd_jobtab_destroy(struct dd_shard *s)
{
	for (size_t i = 0; i < s->tabcap; i++)
		if (s->tab[i].rec)
			dd_jobrec_free(s, s->tab[i].rec);
	free(s->tab);
	s->tab = NULL;
	s->tabcap = s->tabcount = 0;
	for (size_t i = 0; i < s->nslabs; i++)
		dd_numa_arena_free(s->arena, s->slabs[i], SLAB_RECS * sizeof(struct dd_jobrec));
	free(s->slabs);
	s->slabs = NULL;
	s->nslabs = 0;
	dd_fate_destroy(s);
}
