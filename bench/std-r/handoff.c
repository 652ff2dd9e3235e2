/* Cache-line hand-off floor: two threads pinned to two of our CPUs pass a
 * counter back and forth through one cache line. Every hand-over in the
 * dispatch path (generator -> reactor's ring, reactor -> worker's queue)
 * moves at least one line between cores, so half a round trip here is the
 * least any of them can cost on this machine. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dd_clock.h"
#include "floor.h"
#include "telemetry.h"

struct line {
	_Alignas(64) _Atomic uint64_t v;
	_Alignas(64) _Atomic int stop;
	int cpu;
};

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* The echo side: answers every odd value with the next even one. */
static void *echo(void *arg)
{
	struct line *l = arg;
	pin(l->cpu);
	uint64_t seen = 0;
	while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
		uint64_t v = atomic_load_explicit(&l->v, memory_order_acquire);
		if (v != seen && (v & 1)) {
			atomic_store_explicit(&l->v, v + 1, memory_order_release);
			seen = v + 1;
		}
	}
	return NULL;
}

int handoff_floor_measure(double seconds, struct handoff_floor *out)
{
	memset(out, 0, sizeof(*out));
	out->cpu_a = out->cpu_b = -1;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && out->cpu_b < 0; c++)
		if (CPU_ISSET(c, &set))
			*(out->cpu_a < 0 ? &out->cpu_a : &out->cpu_b) = c;
	if (out->cpu_b < 0)
		return -ENODEV;
	struct line *l = aligned_alloc(64, sizeof(*l));
	struct dd_tel_hist *h = calloc(1, sizeof(*h));
	if (!l || !h) {
		free(l);
		free(h);
		return -ENOMEM;
	}
	memset(l, 0, sizeof(*l));
	l->cpu = out->cpu_b;
	pthread_t t;
	int r = -pthread_create(&t, NULL, echo, l);
	if (r == 0) {
		cpu_set_t old;
		pthread_getaffinity_np(pthread_self(), sizeof(old), &old);
		pin(out->cpu_a);
		uint64_t end = dd_mono_ns() + (uint64_t)(seconds * 1e9), v = 0;
		/* timed in groups of 64 round trips: a clock read per trip
		 * would cost as much as the trip */
		while (dd_mono_ns() < end) {
			uint64_t t0 = dd_mono_ns();
			for (int i = 0; i < 64; i++) {
				atomic_store_explicit(&l->v, ++v, memory_order_release);
				while (atomic_load_explicit(&l->v, memory_order_acquire) == v)
					;
				v++;
			}
			dd_tel_hist_record(h, (dd_mono_ns() - t0) / 128); /* one way */
		}
		atomic_store(&l->stop, 1);
		pthread_join(t, NULL);
		pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
		out->count = h->count * 64;
		out->p50_ns = dd_tel_hist_quantile(h, 0.5);
		out->p99_ns = dd_tel_hist_quantile(h, 0.99);
		out->max_ns = h->max;
	}
	free(l);
	free(h);
	return r;
}
