/* bench/queue — throughput and hand-off latency of our rings, with
 * Concurrency Kit's ck_ring measured in the same run as the reference.
 *
 * Throughput: one producer thread and one consumer thread move N 8-byte
 * items, singly or in batches of 32; Mops/s = N / elapsed.
 * Hand-off latency: ping-pong of one item between two threads through two
 * rings; one-way latency = round trip / 2 (median of the samples). */
#include <ck_ring.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dd_clock.h"
#include "queue.h"

#define CAP 4096
#define BATCH 32

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

/* A ring under test: enqueue/dequeue up to n items, return how many. */
struct ring_ops {
	const char *name;
	void *(*create)(void);
	size_t (*enq)(void *r, const uint64_t *v, size_t n);
	size_t (*deq)(void *r, uint64_t *v, size_t n);
};

static void *mpsc_create(void)
{
	struct dd_queue_mpsc *r;
	return dd_queue_mpsc_create(CAP, sizeof(uint64_t), &r) ? NULL : r;
}
static size_t mpsc_enq(void *r, const uint64_t *v, size_t n) { return dd_queue_mpsc_enqueue(r, v, n); }
static size_t mpsc_deq(void *r, uint64_t *v, size_t n) { return dd_queue_mpsc_dequeue(r, v, n); }

static void *spsc_create(void)
{
	struct dd_queue_spsc *r;
	return dd_queue_spsc_create(CAP, sizeof(uint64_t), &r) ? NULL : r;
}
static size_t spsc_enq(void *r, const uint64_t *v, size_t n) { return dd_queue_spsc_enqueue(r, v, n); }
static size_t spsc_deq(void *r, uint64_t *v, size_t n) { return dd_queue_spsc_dequeue(r, v, n); }

/* ck_ring stores pointers; our items travel as pointer-sized values. ck has
 * no batch call, so a batch is a loop (that is what a user of ck writes). */
struct ck {
	ck_ring_t ring;
	ck_ring_buffer_t *buf;
	bool mp;
};
static void *ck_create_sp(void)
{
	struct ck *c = aligned_alloc(64, sizeof(*c));
	c->buf = aligned_alloc(64, CAP * sizeof(ck_ring_buffer_t));
	ck_ring_init(&c->ring, CAP);
	c->mp = false;
	return c;
}
static void *ck_create_mp(void)
{
	struct ck *c = ck_create_sp();
	c->mp = true;
	return c;
}
static size_t ck_enq(void *r, const uint64_t *v, size_t n)
{
	struct ck *c = r;
	size_t i = 0;
	for (; i < n; i++) {
		bool ok = c->mp ? ck_ring_enqueue_mpsc(&c->ring, c->buf, (void *)(uintptr_t)v[i])
				: ck_ring_enqueue_spsc(&c->ring, c->buf, (void *)(uintptr_t)v[i]);
		if (!ok)
			break;
	}
	return i;
}
static size_t ck_deq(void *r, uint64_t *v, size_t n)
{
	struct ck *c = r;
	size_t i = 0;
	for (; i < n; i++) {
		void *p;
		bool ok = c->mp ? ck_ring_dequeue_mpsc(&c->ring, c->buf, &p)
				: ck_ring_dequeue_spsc(&c->ring, c->buf, &p);
		if (!ok)
			break;
		v[i] = (uint64_t)(uintptr_t)p;
	}
	return i;
}

static const struct ring_ops rings[] = {
	{"dd mpsc", mpsc_create, mpsc_enq, mpsc_deq},
	{"ck mpsc", ck_create_mp, ck_enq, ck_deq},
	{"dd spsc", spsc_create, spsc_enq, spsc_deq},
	{"ck spsc", ck_create_sp, ck_enq, ck_deq},
};

struct run {
	const struct ring_ops *ops;
	void *r, *back;
	uint64_t n;
	size_t batch;
	int cpu;
};

static void *producer(void *arg)
{
	struct run *x = arg;
	pin(x->cpu);
	uint64_t buf[BATCH];
	for (uint64_t i = 0; i < x->n;) {
		size_t k = x->n - i < x->batch ? x->n - i : x->batch;
		for (size_t j = 0; j < k; j++)
			buf[j] = i + j + 1;
		size_t got = x->ops->enq(x->r, buf, k);
		if (!got)
			dd_queue_cpu_relax();
		i += got;
	}
	return NULL;
}

static double throughput(const struct ring_ops *ops, uint64_t n, size_t batch)
{
	struct run x = {ops, ops->create(), NULL, n, batch, 1};
	pthread_t t;
	pin(0);
	uint64_t t0 = dd_mono_ns(), got = 0, buf[BATCH], sum = 0;
	pthread_create(&t, NULL, producer, &x);
	while (got < n) {
		size_t k = ops->deq(x.r, buf, batch);
		for (size_t j = 0; j < k; j++)
			sum += buf[j];
		if (!k)
			dd_queue_cpu_relax();
		got += k;
	}
	uint64_t dt = dd_mono_ns() - t0;
	pthread_join(t, NULL);
	if (sum != n * (n + 1) / 2)
		fprintf(stderr, "bench-queue: %s lost or corrupted items\n", ops->name);
	return (double)n / (double)dt * 1e3; /* Mops/s */
}

static void *ponger(void *arg)
{
	struct run *x = arg;
	pin(x->cpu);
	uint64_t v;
	for (uint64_t i = 0; i < x->n; i++) {
		while (!x->ops->deq(x->r, &v, 1))
			dd_queue_cpu_relax();
		while (!x->ops->enq(x->back, &v, 1))
			dd_queue_cpu_relax();
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double handoff_ns(const struct ring_ops *ops, uint64_t n)
{
	struct run x = {ops, ops->create(), ops->create(), n, 1, 1};
	uint64_t *rtt = calloc(n, sizeof(*rtt)), v = 1;
	pthread_t t;
	pin(0);
	pthread_create(&t, NULL, ponger, &x);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = dd_mono_ns();
		while (!ops->enq(x.r, &v, 1))
			dd_queue_cpu_relax();
		while (!ops->deq(x.back, &v, 1))
			dd_queue_cpu_relax();
		rtt[i] = dd_mono_ns() - t0;
	}
	pthread_join(t, NULL);
	qsort(rtt, n, sizeof(*rtt), cmp_u64);
	double med = (double)rtt[n / 2] / 2;
	free(rtt);
	return med;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int runs = 5;
	uint64_t n = 20000000;
	int c;
	while ((c = getopt(argc, argv, "r:n:h")) != -1) {
		if (c == 'r')
			runs = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else if (c == 'n')
			n = strtoull(optarg, NULL, 10) ? strtoull(optarg, NULL, 10) : 1000;
		else {
			printf("usage: bench-queue [-r runs] [-n items]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	printf("bench-queue: %llu items per run, medians of %d runs; producer CPU 1, consumer CPU 0\n",
	       (unsigned long long)n, runs);
	printf("%-8s %14s %16s %16s\n", "ring", "single Mops/s", "batch32 Mops/s", "handoff ns (1-way)");
	double best_single[2] = {0}, ref_single[2] = {0};
	for (size_t r = 0; r < sizeof(rings) / sizeof(rings[0]); r++) {
		double s[16], b[16], h[16];
		for (int i = 0; i < runs && i < 16; i++) {
			s[i] = throughput(&rings[r], n, 1);
			b[i] = throughput(&rings[r], n, BATCH);
			h[i] = handoff_ns(&rings[r], 200000);
		}
		int k = runs < 16 ? runs : 16;
		qsort(s, (size_t)k, sizeof(double), cmp_d);
		qsort(b, (size_t)k, sizeof(double), cmp_d);
		qsort(h, (size_t)k, sizeof(double), cmp_d);
		printf("%-8s %14.1f %16.1f %16.0f\n", rings[r].name, s[k / 2], b[k / 2], h[k / 2]);
		if (r % 2 == 0)
			best_single[r / 2] = s[k / 2];
		else
			ref_single[r / 2] = s[k / 2];
	}
	printf("ratio dd/ck single: mpsc %.2fx  spsc %.2fx\n", best_single[0] / ref_single[0],
	       best_single[1] / ref_single[1]);
	return 0;
}
