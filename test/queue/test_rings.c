/* MPSC and SPSC rings: order, bounds, batches, and many producers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "queue.h"

Test(mpsc, fifo_and_full)
{
	struct dd_queue_mpsc *r;
	cr_assert_eq(dd_queue_mpsc_create(5, sizeof(uint64_t), &r), 0);
	cr_assert_eq(dd_queue_mpsc_capacity(r), 8, "rounded up to a power of two");
	for (uint64_t i = 0; i < 8; i++)
		cr_assert_eq(dd_queue_mpsc_enqueue(r, &i, 1), 1);
	uint64_t x = 99;
	cr_assert_eq(dd_queue_mpsc_enqueue(r, &x, 1), 0, "full ring takes nothing");
	cr_assert_eq(dd_queue_mpsc_size(r), 8);
	uint64_t out[8];
	cr_assert_eq(dd_queue_mpsc_dequeue(r, out, 3), 3);
	for (uint64_t i = 0; i < 3; i++)
		cr_assert_eq(out[i], i);
	cr_assert_eq(dd_queue_mpsc_dequeue(r, out, 8), 5);
	for (uint64_t i = 0; i < 5; i++)
		cr_assert_eq(out[i], i + 3);
	cr_assert_not(dd_queue_mpsc_ready(r));
	dd_queue_mpsc_destroy(r);
	dd_queue_mpsc_destroy(NULL);
}

Test(mpsc, batch_partial_when_nearly_full)
{
	struct dd_queue_mpsc *r;
	cr_assert_eq(dd_queue_mpsc_create(16, sizeof(uint32_t), &r), 0);
	uint32_t in[16], out[16];
	for (uint32_t i = 0; i < 16; i++)
		in[i] = i;
	cr_assert_eq(dd_queue_mpsc_enqueue(r, in, 10), 10);
	size_t got = dd_queue_mpsc_enqueue(r, in + 10, 16);
	cr_assert(got >= 1 && got <= 6, "a batch that does not fit goes in part: %zu", got);
	size_t n = dd_queue_mpsc_dequeue(r, out, 16);
	cr_assert_eq(n, 10 + got);
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(out[i], i < 10 ? i : i - 10 + 10);
	dd_queue_mpsc_destroy(r);
}

Test(mpsc, rejects_bad_sizes)
{
	struct dd_queue_mpsc *r;
	cr_assert_eq(dd_queue_mpsc_create(1, 8, &r), -EINVAL);
	cr_assert_eq(dd_queue_mpsc_create(16, 0, &r), -EINVAL);
}

#define PRODUCERS 4
#define PER_PRODUCER 200000

struct prod {
	struct dd_queue_mpsc *r;
	uint32_t id;
	unsigned batch;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	uint64_t buf[16];
	for (uint32_t i = 0; i < PER_PRODUCER;) {
		unsigned n = p->batch;
		if (n > PER_PRODUCER - i)
			n = PER_PRODUCER - i;
		for (unsigned k = 0; k < n; k++)
			buf[k] = ((uint64_t)p->id << 32) | (i + k);
		size_t got = dd_queue_mpsc_enqueue(p->r, buf, n);
		if (!got)
			sched_yield();
		i += (uint32_t)got;
	}
	return NULL;
}

static void run_producers(unsigned batch)
{
	struct dd_queue_mpsc *r;
	cr_assert_eq(dd_queue_mpsc_create(1024, sizeof(uint64_t), &r), 0);
	pthread_t t[PRODUCERS];
	struct prod p[PRODUCERS];
	for (uint32_t i = 0; i < PRODUCERS; i++) {
		p[i] = (struct prod){r, i, batch};
		pthread_create(&t[i], NULL, producer, &p[i]);
	}
	uint32_t next[PRODUCERS] = {0};
	uint64_t total = 0, buf[64];
	while (total < (uint64_t)PRODUCERS * PER_PRODUCER) {
		size_t n = dd_queue_mpsc_dequeue(r, buf, 64);
		for (size_t k = 0; k < n; k++) {
			uint32_t id = (uint32_t)(buf[k] >> 32), seq = (uint32_t)buf[k];
			cr_assert_lt(id, PRODUCERS);
			cr_assert_eq(seq, next[id], "producer %u: got %u, expected %u", id, seq, next[id]);
			next[id]++;
		}
		total += n;
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_not(dd_queue_mpsc_ready(r), "nothing extra");
	dd_queue_mpsc_destroy(r);
}

Test(mpsc, many_producers_keep_per_producer_order, .timeout = 120)
{
	run_producers(1);
}

Test(mpsc, many_producers_batched, .timeout = 120)
{
	run_producers(16);
}

static void *spsc_producer(void *arg)
{
	struct dd_queue_spsc *r = arg;
	for (uint64_t i = 0; i < 1000000;) {
		uint64_t buf[8];
		for (int k = 0; k < 8; k++)
			buf[k] = i + (uint64_t)k;
		size_t n = dd_queue_spsc_enqueue(r, buf, 1000000 - i < 8 ? 1000000 - i : 8);
		if (!n)
			sched_yield();
		i += n;
	}
	return NULL;
}

Test(spsc, fifo_bounds_and_threads, .timeout = 120)
{
	struct dd_queue_spsc *r;
	cr_assert_eq(dd_queue_spsc_create(4, sizeof(uint64_t), &r), 0);
	uint64_t v[6] = {1, 2, 3, 4, 5, 6}, out[6];
	cr_assert_eq(dd_queue_spsc_enqueue(r, v, 6), 4, "bounded at capacity");
	cr_assert_eq(dd_queue_spsc_size(r), 4);
	cr_assert_eq(dd_queue_spsc_dequeue(r, out, 6), 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(out[i], v[i]);
	cr_assert_not(dd_queue_spsc_ready(r));
	dd_queue_spsc_destroy(r);

	cr_assert_eq(dd_queue_spsc_create(256, sizeof(uint64_t), &r), 0);
	pthread_t t;
	pthread_create(&t, NULL, spsc_producer, r);
	uint64_t expect = 0, buf[32];
	while (expect < 1000000) {
		size_t n = dd_queue_spsc_dequeue(r, buf, 32);
		for (size_t k = 0; k < n; k++)
			cr_assert_eq(buf[k], expect++);
	}
	pthread_join(t, NULL);
	dd_queue_spsc_destroy(r);
}
