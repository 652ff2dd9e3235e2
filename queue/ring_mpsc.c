/* Bounded MPSC ring after Dmitry Vyukov's bounded MPMC queue, specialised to
 * one consumer so that batches need one CAS (see queue.h). */
#include <errno.h>
#include <stdlib.h>

#include "queue.h"

struct dd_queue_mpsc {
	_Alignas(DD_CACHELINE) _Atomic uint64_t tail; /* producers */
	_Alignas(DD_CACHELINE) _Atomic uint64_t head; /* consumer; read by size() */
	_Alignas(DD_CACHELINE) uint64_t mask;
	size_t elem_size;
	size_t cell_size;
	unsigned char *cells;
};

struct cell {
	_Atomic uint64_t seq;
	unsigned char data[];
};

static inline struct cell *cell_at(const struct dd_queue_mpsc *r, uint64_t pos)
{
	return (struct cell *)(r->cells + (pos & r->mask) * r->cell_size);
}

int dd_queue_mpsc_create(size_t capacity, size_t elem_size, struct dd_queue_mpsc **out)
{
	if (capacity < 2 || capacity > (1ull << 30) || elem_size == 0 || elem_size > 4096)
		return -EINVAL;
	size_t cap = 2;
	while (cap < capacity)
		cap <<= 1;
	struct dd_queue_mpsc *r = aligned_alloc(DD_CACHELINE, sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->mask = cap - 1;
	r->elem_size = elem_size;
	r->cell_size = (sizeof(struct cell) + elem_size + 7) & ~(size_t)7;
	size_t bytes = (cap * r->cell_size + DD_CACHELINE - 1) & ~(size_t)(DD_CACHELINE - 1);
	r->cells = aligned_alloc(DD_CACHELINE, bytes);
	if (!r->cells) {
		free(r);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < cap; i++)
		atomic_init(&cell_at(r, i)->seq, i);
	atomic_init(&r->tail, 0);
	atomic_init(&r->head, 0);
	*out = r;
	return 0;
}

void dd_queue_mpsc_destroy(struct dd_queue_mpsc *r)
{
	if (!r)
		return;
	free(r->cells);
	free(r);
}

/* Claims @n cells at the tail; returns the first position or UINT64_MAX. */
static uint64_t claim(struct dd_queue_mpsc *r, size_t n)
{
	uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
	for (;;) {
		uint64_t last = pos + n - 1;
		/* acquire pairs with the consumer's release when it freed the cell */
		uint64_t seq = atomic_load_explicit(&cell_at(r, last)->seq, memory_order_acquire);
		int64_t dif = (int64_t)(seq - last);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + n,
								  memory_order_relaxed,
								  memory_order_relaxed))
				return pos;
		} else if (dif < 0) {
			return UINT64_MAX; /* the last cell is still a lap behind: full */
		} else {
			pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
		}
	}
}

size_t dd_queue_mpsc_claim(struct dd_queue_mpsc *r, size_t n, uint64_t *pos)
{
	size_t cap = r->mask + 1;
	if (n > cap)
		n = cap;
	uint64_t p = UINT64_MAX;
	/* Full for n: halve until a shorter run fits, so a batch makes progress. */
	while (n > 0 && (p = claim(r, n)) == UINT64_MAX)
		n >>= 1;
	*pos = p;
	return n;
}

void *dd_queue_mpsc_slot(struct dd_queue_mpsc *r, uint64_t pos)
{
	return cell_at(r, pos)->data;
}

void dd_queue_mpsc_publish(struct dd_queue_mpsc *r, uint64_t pos)
{
	/* release pairs with the consumer's acquire of seq */
	atomic_store_explicit(&cell_at(r, pos)->seq, pos + 1, memory_order_release);
}

size_t dd_queue_mpsc_enqueue(struct dd_queue_mpsc *r, const void *elems, size_t n)
{
	uint64_t pos;
	n = dd_queue_mpsc_claim(r, n, &pos);
	const unsigned char *src = elems;
	for (size_t i = 0; i < n; i++) {
		memcpy(cell_at(r, pos + i)->data, src + i * r->elem_size, r->elem_size);
		dd_queue_mpsc_publish(r, pos + i);
	}
	return n;
}

size_t dd_queue_mpsc_dequeue(struct dd_queue_mpsc *r, void *out, size_t max)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t cap = r->mask + 1;
	unsigned char *dst = out;
	size_t n = 0;
	for (; n < max; n++) {
		struct cell *c = cell_at(r, head + n);
		if (atomic_load_explicit(&c->seq, memory_order_acquire) != head + n + 1)
			break;
		memcpy(dst + n * r->elem_size, c->data, r->elem_size);
		/* release pairs with a producer's acquire in claim() */
		atomic_store_explicit(&c->seq, head + n + cap, memory_order_release);
	}
	if (n)
		atomic_store_explicit(&r->head, head + n, memory_order_relaxed);
	return n;
}

bool dd_queue_mpsc_ready(const struct dd_queue_mpsc *r)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	return atomic_load_explicit(&cell_at(r, head)->seq, memory_order_acquire) == head + 1;
}

size_t dd_queue_mpsc_size(const struct dd_queue_mpsc *r)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	return t > h ? (size_t)(t - h) : 0;
}

size_t dd_queue_mpsc_capacity(const struct dd_queue_mpsc *r)
{
	return (size_t)(r->mask + 1);
}
