/* Hierarchical timer wheel (the classic cascading design, as in Linux before
 * 4.8): a timer sits in the lowest level whose span covers its distance and
 * is re-placed ("cascaded") when the level above wraps to its slot. */
#include <assert.h>

#include "queue.h"

#define LEVEL_SHIFT(l) ((unsigned)(DD_WHEEL_BITS * (l)))
#define SLOT_MASK (DD_WHEEL_SLOTS - 1)

static void node_unlink(struct dd_queue_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

static void slot_add(struct dd_queue_wheel *w, unsigned level, unsigned idx,
		     struct dd_queue_timer *t)
{
	struct dd_queue_node *h = &w->slot[level][idx];
	t->link.next = h;
	t->link.prev = h->prev;
	h->prev->next = &t->link;
	h->prev = &t->link;
	w->occupied[level] |= 1ull << idx;
}

static void slot_check_empty(struct dd_queue_wheel *w, unsigned level, unsigned idx)
{
	struct dd_queue_node *h = &w->slot[level][idx];
	if (h->next == h)
		w->occupied[level] &= ~(1ull << idx);
}

/* Finds slot and level for t->expires relative to w->now. */
static void place(struct dd_queue_wheel *w, struct dd_queue_timer *t)
{
	/* expires == now happens only while cascading at tick now, whose
	 * level-0 slot is fired right after the cascade. */
	assert(t->expires >= w->now);
	uint64_t delta = t->expires - w->now;
	for (unsigned l = 0; l < DD_WHEEL_LEVELS; l++) {
		if (delta < (1ull << LEVEL_SHIFT(l + 1))) {
			slot_add(w, l, (unsigned)(t->expires >> LEVEL_SHIFT(l)) & SLOT_MASK, t);
			return;
		}
	}
	/* Beyond the wheel's span: park in the top level at its far edge; it is
	 * re-placed (with its true expiry) when that slot cascades. */
	uint64_t edge = w->now + (1ull << LEVEL_SHIFT(DD_WHEEL_LEVELS)) - 1;
	slot_add(w, DD_WHEEL_LEVELS - 1,
		 (unsigned)(edge >> LEVEL_SHIFT(DD_WHEEL_LEVELS - 1)) & SLOT_MASK, t);
}

void dd_queue_wheel_init(struct dd_queue_wheel *w, uint64_t tick_ns, uint64_t now_ns)
{
	w->tick_ns = tick_ns ? tick_ns : 1;
	w->now = now_ns / w->tick_ns;
	w->armed = 0;
	for (unsigned l = 0; l < DD_WHEEL_LEVELS; l++) {
		w->occupied[l] = 0;
		for (unsigned s = 0; s < DD_WHEEL_SLOTS; s++)
			w->slot[l][s].prev = w->slot[l][s].next = &w->slot[l][s];
	}
}

void dd_queue_wheel_cancel(struct dd_queue_wheel *w, struct dd_queue_timer *t)
{
	if (!t->armed)
		return;
	struct dd_queue_node *next = t->link.next;
	node_unlink(&t->link);
	t->armed = false;
	w->armed--;
	/* If t was the last node of its slot, next is that slot's sentinel. */
	for (unsigned l = 0; l < DD_WHEEL_LEVELS; l++) {
		struct dd_queue_node *base = &w->slot[l][0];
		if (next >= base && next < base + DD_WHEEL_SLOTS) {
			slot_check_empty(w, l, (unsigned)(next - base));
			break;
		}
	}
}

void dd_queue_wheel_arm(struct dd_queue_wheel *w, struct dd_queue_timer *t, uint64_t when_ns)
{
	if (t->armed)
		dd_queue_wheel_cancel(w, t);
	t->expires = (when_ns + w->tick_ns - 1) / w->tick_ns;
	if (t->expires <= w->now) /* that tick has already fired */
		t->expires = w->now + 1;
	t->armed = true;
	w->armed++;
	place(w, t);
}

static void cascade(struct dd_queue_wheel *w, unsigned level, unsigned idx)
{
	struct dd_queue_node *h = &w->slot[level][idx];
	struct dd_queue_node list = *h;
	if (h->next == h)
		return;
	/* Detach the whole slot, then re-place each timer. */
	list.next->prev = &list;
	list.prev->next = &list;
	h->prev = h->next = h;
	w->occupied[level] &= ~(1ull << idx);
	while (list.next != &list) {
		struct dd_queue_timer *t = (struct dd_queue_timer *)list.next;
		node_unlink(&t->link);
		place(w, t);
	}
}

size_t dd_queue_wheel_advance(struct dd_queue_wheel *w, uint64_t now_ns, dd_queue_timer_fn fn,
			      void *arg)
{
	uint64_t target = now_ns / w->tick_ns;
	size_t fired = 0;
	while (w->now < target) {
		if (w->armed == 0) {
			w->now = target;
			break;
		}
		if (w->occupied[0] == 0) {
			/* Nothing in level 0: skip to the tick before the next cascade. */
			uint64_t boundary = ((w->now >> DD_WHEEL_BITS) + 1) << DD_WHEEL_BITS;
			if (boundary - 1 > w->now)
				w->now = boundary - 1 < target ? boundary - 1 : target;
			if (w->now >= target)
				break;
		}
		uint64_t t = ++w->now;
		for (unsigned l = 1; l < DD_WHEEL_LEVELS; l++) {
			if (t & ((1ull << LEVEL_SHIFT(l)) - 1))
				break;
			cascade(w, l, (unsigned)(t >> LEVEL_SHIFT(l)) & SLOT_MASK);
		}
		unsigned idx = (unsigned)t & SLOT_MASK;
		struct dd_queue_node *h = &w->slot[0][idx];
		while (h->next != h) {
			struct dd_queue_timer *tm = (struct dd_queue_timer *)h->next;
			assert(tm->expires <= t);
			node_unlink(&tm->link);
			tm->armed = false;
			w->armed--;
			fired++;
			fn(tm, arg);
		}
		slot_check_empty(w, 0, idx);
	}
	return fired;
}

uint64_t dd_queue_wheel_next_ns(const struct dd_queue_wheel *w, uint64_t now_ns)
{
	if (w->armed == 0)
		return UINT64_MAX;
	uint64_t best = UINT64_MAX; /* in ticks */
	for (unsigned l = 0; l < DD_WHEEL_LEVELS; l++) {
		uint64_t occ = w->occupied[l];
		if (!occ)
			continue;
		uint64_t period = w->now >> LEVEL_SHIFT(l);
		unsigned cur = (unsigned)period & SLOT_MASK;
		/* rotate so bit 0 is the slot after the current one */
		unsigned rot = (cur + 1) & SLOT_MASK;
		uint64_t r = rot ? (occ >> rot) | (occ << (64 - rot)) : occ;
		uint64_t j = (uint64_t)__builtin_ctzll(r) + 1; /* 1..64 periods ahead */
		uint64_t tick = (period + j) << LEVEL_SHIFT(l);
		if (tick < best)
			best = tick;
	}
	uint64_t at = best * w->tick_ns;
	return at > now_ns ? at - now_ns : 0;
}
