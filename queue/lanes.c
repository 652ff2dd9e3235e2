/* Strict-priority lanes of intrusive FIFO lists. */
#include <assert.h>

#include "queue.h"

void dd_queue_lanes_init(struct dd_queue_lanes *l)
{
	for (unsigned i = 0; i < DD_QUEUE_LANES; i++) {
		l->head[i].prev = l->head[i].next = &l->head[i];
		l->count[i] = 0;
	}
	l->nonempty = 0;
	l->total = 0;
}

void dd_queue_lanes_push(struct dd_queue_lanes *l, unsigned lane, struct dd_queue_node *n)
{
	assert(lane < DD_QUEUE_LANES);
	struct dd_queue_node *h = &l->head[lane];
	n->next = h;
	n->prev = h->prev;
	h->prev->next = n;
	h->prev = n;
	l->count[lane]++;
	l->total++;
	l->nonempty |= 1u << lane;
}

void dd_queue_lanes_remove(struct dd_queue_lanes *l, unsigned lane, struct dd_queue_node *n)
{
	assert(lane < DD_QUEUE_LANES && l->count[lane] > 0);
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
	l->total--;
	if (--l->count[lane] == 0)
		l->nonempty &= ~(1u << lane);
}

struct dd_queue_node *dd_queue_lanes_peek(const struct dd_queue_lanes *l)
{
	return l->nonempty ? l->head[__builtin_ctz(l->nonempty)].next : NULL;
}

struct dd_queue_node *dd_queue_lanes_pop(struct dd_queue_lanes *l)
{
	if (!l->nonempty)
		return NULL;
	unsigned lane = (unsigned)__builtin_ctz(l->nonempty);
	struct dd_queue_node *n = l->head[lane].next;
	dd_queue_lanes_remove(l, lane, n);
	return n;
}
