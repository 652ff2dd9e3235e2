/* SPSC ring construction; the operations are inline in queue.h. */
#include <errno.h>
#include <stdlib.h>

#include "queue.h"

int dd_queue_spsc_create(size_t capacity, size_t elem_size, struct dd_queue_spsc **out)
{
	if (capacity < 2 || capacity > (1ull << 30) || elem_size == 0 || elem_size > 4096)
		return -EINVAL;
	size_t cap = 2;
	while (cap < capacity)
		cap <<= 1;
	struct dd_queue_spsc *r = aligned_alloc(DD_CACHELINE, sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	size_t bytes = (cap * elem_size + DD_CACHELINE - 1) & ~(size_t)(DD_CACHELINE - 1);
	r->buf = aligned_alloc(DD_CACHELINE, bytes);
	if (!r->buf) {
		free(r);
		return -ENOMEM;
	}
	r->mask = cap - 1;
	r->elem_size = elem_size;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	*out = r;
	return 0;
}

void dd_queue_spsc_destroy(struct dd_queue_spsc *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}
