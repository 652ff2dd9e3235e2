/* queue/ — lock-free rings, priority lanes, timer wheel and wake-up.
 *
 * Private header of the queue component. Nothing here knows about jobs or
 * the engine: rings move fixed-size byte cells, lanes and the wheel link
 * intrusive nodes that the caller embeds in its own records.
 *
 * Every function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef DD_QUEUE_H
#define DD_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <string.h>

#define DD_CACHELINE 64

static inline void dd_queue_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- bounded MPSC ring (Vyukov, per-cell sequence numbers) -------------
 *
 * Any number of producers, one consumer. Capacity is a power of two.
 * Producers claim a run of cells with one CAS on the tail and publish each
 * cell by storing its sequence number (release), so a batch of n costs one
 * atomic read-modify-write. The consumer frees cells in order, which is why a
 * producer only needs to check the last cell of its run.
 */
struct dd_queue_mpsc;

/* Creates a ring of at least @capacity cells of @elem_size bytes. */
int dd_queue_mpsc_create(size_t capacity, size_t elem_size, struct dd_queue_mpsc **out);
void dd_queue_mpsc_destroy(struct dd_queue_mpsc *r);
/* Enqueues up to @n elements from @elems (contiguous); returns how many were
 * taken (0 when the ring is full). Never blocks, never allocates. */
size_t dd_queue_mpsc_enqueue(struct dd_queue_mpsc *r, const void *elems, size_t n);
/* In-place form of enqueue: claims up to @n consecutive cells (0 when full)
 * starting at *@pos; the producer fills each through dd_queue_mpsc_slot()
 * and must then publish every claimed cell. The consumer stops at the first
 * unpublished cell, so a claim must be published promptly. */
size_t dd_queue_mpsc_claim(struct dd_queue_mpsc *r, size_t n, uint64_t *pos);
void *dd_queue_mpsc_slot(struct dd_queue_mpsc *r, uint64_t pos);
void dd_queue_mpsc_publish(struct dd_queue_mpsc *r, uint64_t pos);
/* Consumer only: dequeues up to @max elements into @out; returns the count. */
size_t dd_queue_mpsc_dequeue(struct dd_queue_mpsc *r, void *out, size_t max);
/* Consumer only: true when the next cell is published. */
bool dd_queue_mpsc_ready(const struct dd_queue_mpsc *r);
/* Approximate number of elements in the ring (any thread). */
size_t dd_queue_mpsc_size(const struct dd_queue_mpsc *r);
size_t dd_queue_mpsc_capacity(const struct dd_queue_mpsc *r);

/* ---- bounded SPSC ring --------------------------------------------------
 *
 * One producer, one consumer, fixed element size. Each side caches the
 * other's index so that the shared line is read only when the cache says the
 * ring looks full (producer) or empty (consumer). Inline: it is the hot path
 * between a reactor and its workers.
 */
struct dd_queue_spsc {
	/* consumer line */
	_Alignas(DD_CACHELINE) _Atomic uint64_t head;
	uint64_t tail_cache;
	/* producer line */
	_Alignas(DD_CACHELINE) _Atomic uint64_t tail;
	uint64_t head_cache;
	/* read-only after creation */
	_Alignas(DD_CACHELINE) uint64_t mask;
	size_t elem_size;
	unsigned char *buf;
};

int dd_queue_spsc_create(size_t capacity, size_t elem_size, struct dd_queue_spsc **out);
void dd_queue_spsc_destroy(struct dd_queue_spsc *r);

/* Producer only: enqueues up to @n elements, returns how many were taken. */
static inline size_t dd_queue_spsc_enqueue(struct dd_queue_spsc *r, const void *elems, size_t n)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t cap = r->mask + 1;
	uint64_t room = cap - (tail - r->head_cache);
	if (room < n) {
		/* acquire pairs with the consumer's release of head */
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		room = cap - (tail - r->head_cache);
		if (n > room)
			n = room;
	}
	const unsigned char *src = elems;
	for (size_t i = 0; i < n; i++)
		memcpy(r->buf + ((tail + i) & r->mask) * r->elem_size, src + i * r->elem_size,
		       r->elem_size);
	/* release pairs with the consumer's acquire of tail */
	atomic_store_explicit(&r->tail, tail + n, memory_order_release);
	return n;
}

/* In-place form of enqueue: claims up to @n consecutive cells (0 when full)
 * starting at *@pos; the producer fills each through dd_queue_mpsc_slot()
 * and must then publish every claimed cell. The consumer stops at the first
 * unpublished cell, so a claim must be published promptly. */
size_t dd_queue_mpsc_claim(struct dd_queue_mpsc *r, size_t n, uint64_t *pos);
void *dd_queue_mpsc_slot(struct dd_queue_mpsc *r, uint64_t pos);
void dd_queue_mpsc_publish(struct dd_queue_mpsc *r, uint64_t pos);
/* Consumer only: dequeues up to @max elements, returns the count. */
static inline size_t dd_queue_spsc_dequeue(struct dd_queue_spsc *r, void *out, size_t max)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t avail = r->tail_cache - head;
	if (avail < max) {
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		avail = r->tail_cache - head;
		if (avail < max)
			max = avail;
	}
	unsigned char *dst = out;
	for (size_t i = 0; i < max; i++)
		memcpy(dst + i * r->elem_size, r->buf + ((head + i) & r->mask) * r->elem_size,
		       r->elem_size);
	atomic_store_explicit(&r->head, head + max, memory_order_release);
	return max;
}

/* Consumer only: true when at least one element is waiting. */
static inline bool dd_queue_spsc_ready(struct dd_queue_spsc *r)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (r->tail_cache != head)
		return true;
	r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
	return r->tail_cache != head;
}

/* Any thread: approximate element count. */
static inline size_t dd_queue_spsc_size(const struct dd_queue_spsc *r)
{
	return (size_t)(atomic_load_explicit(&r->tail, memory_order_relaxed) -
			atomic_load_explicit(&r->head, memory_order_relaxed));
}

/* ---- wake-up: spin, then park on a futex behind a "sleeping" flag --------
 *
 * One consumer waits; any number of producers notify. The consumer publishes
 * "sleeping" and re-checks its queues; a producer publishes its element and
 * then reads "sleeping". Both sides put a seq_cst fence between their store
 * and their load (Dekker), so at least one of them sees the other: either the
 * consumer sees the element, or the producer sees the flag and wakes it. A
 * producer that finds the consumer awake makes no system call.
 */
struct dd_queue_wake {
	_Alignas(DD_CACHELINE) _Atomic uint32_t epoch;
	_Atomic uint32_t sleeping;
	/* statistics, written by the consumer / producers respectively */
	_Atomic uint64_t parks;
	_Atomic uint64_t wakes;
	/* Consumer side, optional: park elsewhere than in a futex system call
	 * (the engine parks in its io_uring, so that I/O completions wake it
	 * too). It must return once *word != expected or after a wake-up on
	 * word, and may return early; NULL parks in FUTEX_WAIT. */
	void (*park)(void *ctx, _Atomic uint32_t *word, uint32_t expected,
		     const struct timespec *timeout);
	void *park_ctx;
	/* Consumer side: the spin budget now, adapted between a floor and the
	 * caller's spin_ns (0 = not yet adapted): it shrinks while parks turn
	 * out long (work comes seldom: spinning only burns a CPU others need)
	 * and grows back when work comes within the spin or soon after a park. */
	uint64_t spin_budget;
};

typedef bool (*dd_queue_ready_fn)(void *arg);

void dd_queue_wake_init(struct dd_queue_wake *w);
#define DD_QUEUE_SPIN_FLOOR_NS 1000 /* the adaptive spin never goes below */

/* Producer side: call after publishing work. Costs a fence and a load while
 * the consumer is awake; a futex wake only when it parked. */
void dd_queue_wake_notify(struct dd_queue_wake *w);
/* Consumer side: returns when @ready(@arg) is true (1), or @timeout_ns has
 * passed (0; UINT64_MAX waits forever), after spinning for @spin_ns first.
 * Spurious returns are allowed: callers loop. */
int dd_queue_wake_wait(struct dd_queue_wake *w, dd_queue_ready_fn ready, void *arg,
		       uint64_t spin_ns, uint64_t timeout_ns);

/* ---- priority lanes -----------------------------------------------------
 *
 * DD_QUEUE_LANES strict-priority levels (0 is most urgent), FIFO within a
 * level, O(1) push, pop and removal of any node. Single-threaded: the owner
 * (a shard's reactor) is the only user.
 */
#define DD_QUEUE_LANES 8

struct dd_queue_node {
	struct dd_queue_node *prev, *next;
};

struct dd_queue_lanes {
	struct dd_queue_node head[DD_QUEUE_LANES]; /* circular sentinels */
	size_t count[DD_QUEUE_LANES];
	uint32_t nonempty; /* bit i set when lane i has nodes */
	size_t total;
};

void dd_queue_lanes_init(struct dd_queue_lanes *l);
void dd_queue_lanes_push(struct dd_queue_lanes *l, unsigned lane, struct dd_queue_node *n);
/* The oldest node of the most urgent non-empty lane, left there, or NULL. */
struct dd_queue_node *dd_queue_lanes_peek(const struct dd_queue_lanes *l);
/* Pops the oldest node of the most urgent non-empty lane, or NULL. */
struct dd_queue_node *dd_queue_lanes_pop(struct dd_queue_lanes *l);
/* Removes @n, which must be in lane @lane. */
void dd_queue_lanes_remove(struct dd_queue_lanes *l, unsigned lane, struct dd_queue_node *n);

/* ---- hierarchical timer wheel --------------------------------------------
 *
 * DD_WHEEL_LEVELS levels of 64 slots; level k slots span 64^k ticks. Insert
 * and cancel are O(1); a timer is cascaded at most once per level. Times are
 * nanoseconds on the caller's clock, rounded up to the tick. Single-threaded.
 */
#define DD_WHEEL_LEVELS 6
#define DD_WHEEL_BITS 6
#define DD_WHEEL_SLOTS (1u << DD_WHEEL_BITS)

struct dd_queue_timer {
	struct dd_queue_node link;
	uint64_t expires; /* in ticks */
	bool armed;
};

struct dd_queue_wheel {
	uint64_t tick_ns;
	uint64_t now; /* current tick: every timer <= now has fired */
	size_t armed;
	uint64_t occupied[DD_WHEEL_LEVELS]; /* bit per non-empty slot */
	struct dd_queue_node slot[DD_WHEEL_LEVELS][DD_WHEEL_SLOTS];
};

typedef void (*dd_queue_timer_fn)(struct dd_queue_timer *t, void *arg);

void dd_queue_wheel_init(struct dd_queue_wheel *w, uint64_t tick_ns, uint64_t now_ns);
/* Arms @t to fire at @when_ns (never earlier; past times fire on the next
 * advance). Re-arming an armed timer moves it. */
void dd_queue_wheel_arm(struct dd_queue_wheel *w, struct dd_queue_timer *t, uint64_t when_ns);
void dd_queue_wheel_cancel(struct dd_queue_wheel *w, struct dd_queue_timer *t);
/* Fires, in order of their ticks, every timer due at @now_ns; returns how
 * many fired. @fn may arm or cancel timers. */
size_t dd_queue_wheel_advance(struct dd_queue_wheel *w, uint64_t now_ns, dd_queue_timer_fn fn,
			      void *arg);
/* Nanoseconds from @now_ns until the wheel next needs advancing (a lower
 * bound on the next expiry), or UINT64_MAX when no timer is armed. */
uint64_t dd_queue_wheel_next_ns(const struct dd_queue_wheel *w, uint64_t now_ns);

#endif
