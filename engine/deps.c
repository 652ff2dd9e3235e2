/* Dependencies, within a shard and across shards.
 *
 * A dependant subscribes to each dependency at the dependency's owner shard
 * (directly, or as an XS_SUBSCRIBE event over the shard-to-shard ring); the
 * owner answers with the outcome once the dependency ends (directly or as an
 * XS_OUTCOME event). A dependency that has not reached its reactor yet (its
 * submission is still in a ring) is parked in the pending map until it
 * arrives. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "array.h"
#include "chain.h"
#include "deps.h"
#include "fate.h"
#include "jobtab.h"
#include "lifecycle.h"

static void xs_send(struct dd_shard *s, unsigned to, const struct dd_xs_event *ev)
{
	struct dd_xs_overflow *o = &s->xs_over[to];
	/* Keep order: once something overflowed, later events queue behind it. */
	if (o->n == 0 && dd_queue_spsc_enqueue(s->xs_out[to], ev, 1) == 1) {
		s->xs_dirty |= 1ull << to;
		return;
	}
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 256;
		struct dd_xs_event *nev = realloc(o->ev, cap * sizeof(*nev));
		if (!nev)
			return; /* out of memory: the dependant stays waiting; cancellable */
		o->ev = nev;
		o->cap = cap;
	}
	o->ev[o->n++] = *ev;
}

/* A dependant as a record's list keeps it: its id, with the kind of its
 * wait in bits 54-55 of the sequence number (which never reaches 2^54: at
 * 3 M jobs a second, that is 190 years). */
#define KIND_SHIFT 54
static uint64_t pack(uint64_t waiter, uint8_t kind)
{
	return waiter | (uint64_t)kind << KIND_SHIFT;
}

static uint64_t packed_id(uint64_t v)
{
	return v & ~(3ull << KIND_SHIFT);
}

static uint8_t packed_kind(uint64_t v)
{
	return (uint8_t)((v >> KIND_SHIFT) & 3);
}

const char *dd_dep_kind_name(enum dd_dep_kind k)
{
	static const char *const n[DD_DEP_KINDS] = {"afterok", "afterany", "afternotok",
						    "aftercorr"};
	return (unsigned)k < DD_DEP_KINDS ? n[k] : "invalid";
}

static bool met(uint8_t kind, bool ok)
{
	return kind == DD_DEP_AFTERANY || (kind == DD_DEP_AFTERNOTOK ? !ok : ok);
}

static void apply_outcome(struct dd_shard *s, const struct dd_xs_event *ev)
{
	struct dd_jobrec *j = dd_tab_find(s, ev->waiter);
	if (!j || j->state != DD_WAITING)
		return; /* cancelled, or already failed by another dependency */
	if (ev->lost || !met(ev->kind, ev->ok)) {
		/* it can never be met: say which, and why */
		char why[128];
		snprintf(why, sizeof(why), "dependency %s:%llu %s", dd_dep_kind_name(ev->kind),
			 (unsigned long long)ev->dep,
			 ev->lost ? "cannot be followed" : ev->ok ? "succeeded" : "did not succeed");
		char *own = dd_reason_dup(s, why);
		if (own)
			dd_job_own_reason(s, j, own);
		dd_job_finish(s, j, DD_FAILED, own ? own : dd_reason[R_DEPENDENCY]);
	} else if (--j->deps_unmet == 0) {
		dd_job_make_ready(s, j);
	}
}

/* Tells @waiter how its dependency @dep (of @kind) ended: @ok it succeeded;
 * @lost it cannot be followed. */
static void outcome(struct dd_shard *s, uint64_t waiter, uint64_t dep, uint8_t kind, bool ok,
		    bool lost)
{
	struct dd_xs_event ev = {.type = XS_OUTCOME, .kind = kind, .ok = ok, .lost = lost,
				 .dep = dep, .waiter = waiter};
	unsigned to = dd_id_shard(waiter);
	if (to == s->index) {
		apply_outcome(s, &ev);
		return;
	}
	xs_send(s, to, &ev);
}

static int add_dependant(struct dd_jobrec *j, uint64_t waiter, uint8_t kind)
{
	if (j->ndependants == j->capdependants) {
		uint32_t cap = j->capdependants ? j->capdependants * 2 : 4;
		uint64_t *d = realloc(j->dependants, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		j->dependants = d;
		j->capdependants = cap;
	}
	j->dependants[j->ndependants++] = pack(waiter, kind);
	return 0;
}

static size_t pend_slot(uint64_t dep, size_t cap)
{
	uint64_t h = (dep & DD_ID_SEQ_MASK) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 40) & (cap - 1); /* chained: clustering is harmless */
}

static size_t pending_slot(const struct dd_pending *p, size_t cap)
{
	return pend_slot(p->dep, cap);
}

DD_CHAIN_GROW(grow_pending, struct dd_pending, pending_slot)

static int pending_add(struct dd_shard *s, uint64_t dep, uint64_t waiter, uint8_t kind)
{
	if (s->npending >= s->pendcap && grow_pending(&s->pending, &s->pendcap, 256) < 0)
		return -ENOMEM;
	struct dd_pending *p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->dep = dep;
	p->waiter = waiter;
	p->kind = kind;
	size_t k = pend_slot(dep, s->pendcap);
	p->next = s->pending[k];
	s->pending[k] = p;
	s->npending++;
	return 0;
}

static void local_subscribe(struct dd_shard *s, uint64_t dep, uint64_t waiter, uint8_t kind)
{
	struct dd_jobrec *d = dd_tab_find(s, dep);
	if (d) {
		if (dd_state_terminal((enum dd_state)d->state))
			outcome(s, waiter, dep, kind, d->state == DD_SUCCEEDED, false);
		else if (add_dependant(d, waiter, kind) < 0)
			outcome(s, waiter, dep, kind, false, true);
		return;
	}
	struct dd_array *a = dd_array_of(s, dep);
	if (a && dd_array_unmade(a, dep)) {
		if (pending_add(s, dep, waiter, kind) < 0) /* until it is made */
			outcome(s, waiter, dep, kind, false, true);
		return;
	}
	switch (dd_seq_fate(s, dep)) {
	case SEQ_ENDED_OK:
		outcome(s, waiter, dep, kind, true, false); /* ended and left memory */
		break;
	case SEQ_ENDED_BAD:
		outcome(s, waiter, dep, kind, false, false);
		break;
	case SEQ_UNSEEN:
		if (pending_add(s, dep, waiter, kind) < 0)
			outcome(s, waiter, dep, kind, false, true);
		break;
	default:
		outcome(s, waiter, dep, kind, false, true);
	}
}

void dd_deps_subscribe(struct dd_shard *s, uint64_t dep, uint64_t waiter, uint8_t kind)
{
	unsigned owner = dd_id_shard(dep);
	if (owner == s->index) {
		local_subscribe(s, dep, waiter, kind);
		return;
	}
	struct dd_xs_event ev = {.type = XS_SUBSCRIBE, .kind = kind, .dep = dep, .waiter = waiter};
	xs_send(s, owner, &ev);
}

void dd_deps_arrived(struct dd_shard *s, struct dd_jobrec *j)
{
	if (s->npending == 0)
		return;
	struct dd_pending **pp = &s->pending[pend_slot(j->id, s->pendcap)];
	while (*pp) {
		struct dd_pending *p = *pp;
		if (p->dep != j->id) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		s->npending--;
		if (add_dependant(j, p->waiter, p->kind) < 0)
			outcome(s, p->waiter, j->id, p->kind, false, true);
		free(p);
	}
}

void dd_deps_gone(struct dd_shard *s, uint64_t id, bool ok)
{
	if (s->npending == 0)
		return;
	struct dd_pending **pp = &s->pending[pend_slot(id, s->pendcap)];
	while (*pp) {
		struct dd_pending *p = *pp;
		if (p->dep != id) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		s->npending--;
		outcome(s, p->waiter, id, p->kind, ok, false);
		free(p);
	}
}

void dd_deps_release(struct dd_shard *s, struct dd_jobrec *j)
{
	bool ok = j->state == DD_SUCCEEDED;
	for (uint32_t i = 0; i < j->ndependants; i++)
		outcome(s, packed_id(j->dependants[i]), j->id, packed_kind(j->dependants[i]), ok,
			false);
	free(j->dependants);
	j->dependants = NULL;
	j->ndependants = j->capdependants = 0;
}

size_t dd_deps_drain(struct dd_shard *s)
{
	struct dd_xs_event ev[64];
	size_t total = 0;
	for (unsigned from = 0; from < s->eng->nshards; from++) {
		if (from == s->index)
			continue;
		size_t n;
		while ((n = dd_queue_spsc_dequeue(s->xs_in[from], ev, 64)) > 0) {
			for (size_t i = 0; i < n; i++) {
				if (ev[i].type == XS_SUBSCRIBE)
					local_subscribe(s, ev[i].dep, ev[i].waiter, ev[i].kind);
				else
					apply_outcome(s, &ev[i]);
			}
			total += n;
		}
	}
	return total;
}

void dd_deps_flush(struct dd_shard *s)
{
	for (unsigned to = 0; to < s->eng->nshards; to++) {
		struct dd_xs_overflow *o = &s->xs_over[to];
		if (o->n) {
			size_t k = dd_queue_spsc_enqueue(s->xs_out[to], o->ev, o->n);
			memmove(o->ev, o->ev + k, (o->n - k) * sizeof(*o->ev));
			o->n -= k;
			if (k)
				s->xs_dirty |= 1ull << to;
		}
	}
	for (uint64_t d = s->xs_dirty; d; d &= d - 1)
		dd_queue_wake_notify(&s->eng->shards[__builtin_ctzll(d)].wake);
	s->xs_dirty = 0;
}

bool dd_deps_ready(struct dd_shard *s)
{
	for (unsigned from = 0; from < s->eng->nshards; from++)
		if (from != s->index && dd_queue_spsc_ready(s->xs_in[from]))
			return true;
	return false;
}

/* Events still parked for another shard make this one busy. */
bool dd_deps_backlog(const struct dd_shard *s)
{
	for (unsigned to = 0; to < s->eng->nshards; to++)
		if (s->xs_over && s->xs_over[to].n)
			return true;
	return false;
}

void dd_deps_destroy(struct dd_shard *s)
{
	for (size_t i = 0; i < s->pendcap; i++)
		for (struct dd_pending *p = s->pending[i], *n; p; p = n) {
			n = p->next;
			free(p);
		}
	free(s->pending);
	s->pending = NULL;
	s->pendcap = s->npending = 0;
}
