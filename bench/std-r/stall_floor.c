/* Stall floor: each CPU of our affinity set runs a thread that reads the
 * clock in a tight loop; a gap between two reads longer than GAP_NS is a
 * stall — time the CPU was not ours.
 *
 * What it bounds: a job intended at a uniformly random instant t that falls
 * inside a stall of length L waits for the rest of it, L - (t - start). A
 * dispatch needs the generator's CPU and the reactor's CPU both, so the
 * chance that a job is delayed more than x is at least about
 *     sum over stalls on all CPUs of max(0, L - x) / T
 * (stalls on different CPUs rarely overlap). The x at which that is 1% is
 * the P99 floor: no scheduler on these CPUs can do better in this window. */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dd_clock.h"
#include "floor.h"

#define GAP_NS 1000ull      /* below this a gap is the loop itself */
#define COUNT_NS 10000ull   /* stalls counted in the report */
#define MAX_GAPS (1u << 20)

struct spinner {
	pthread_t thread;
	int cpu;
	uint64_t run_ns;
	uint64_t *gaps;
	size_t ngaps;
	uint64_t lost;
	uint64_t start_ns; /* all threads begin together */
};

static void *spin(void *arg)
{
	struct spinner *sp = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(sp->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	while (dd_mono_ns() < sp->start_ns)
		;
	uint64_t last = dd_mono_ns(), end = sp->start_ns + sp->run_ns;
	while (last < end) {
		uint64_t t = dd_mono_ns(), d = t - last;
		if (d > GAP_NS) {
			sp->lost += d;
			if (sp->ngaps < MAX_GAPS)
				sp->gaps[sp->ngaps++] = d;
		}
		last = t;
	}
	return NULL;
}

/* Share of instants delayed by more than x. */
static double tail(struct spinner *sp, unsigned n, uint64_t x, double total_ns)
{
	double sum = 0;
	for (unsigned i = 0; i < n; i++)
		for (size_t k = 0; k < sp[i].ngaps; k++)
			if (sp[i].gaps[k] > x)
				sum += (double)(sp[i].gaps[k] - x);
	return sum / total_ns;
}

static uint64_t quantile(struct spinner *sp, unsigned n, double q, double total_ns)
{
	uint64_t lo = 0, hi = 1;
	while (hi < (1ull << 40) && tail(sp, n, hi, total_ns) > 1 - q)
		hi <<= 1;
	while (hi - lo > 100) { /* 100 ns is finer than anything we report */
		uint64_t mid = lo + (hi - lo) / 2;
		if (tail(sp, n, mid, total_ns) > 1 - q)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

int stall_floor_measure(double seconds, struct stall_floor *out)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	unsigned n = (unsigned)CPU_COUNT(&set);
	struct spinner *sp = calloc(n, sizeof(*sp));
	int r = 0;
	if (!sp)
		return -ENOMEM;
	uint64_t start = dd_mono_ns() + 20000000; /* after every thread is up */
	unsigned made = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE && made < n; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		sp[made] = (struct spinner){.cpu = cpu, .run_ns = (uint64_t)(seconds * 1e9),
					    .start_ns = start};
		if (!(sp[made].gaps = malloc(MAX_GAPS * sizeof(uint64_t)))) {
			r = -ENOMEM;
			break;
		}
		made++;
	}
	unsigned started = 0;
	for (; r == 0 && started < made; started++)
		r = -pthread_create(&sp[started].thread, NULL, spin, &sp[started]);
	if (r < 0)
		started--;
	for (unsigned i = 0; i < started; i++)
		pthread_join(sp[i].thread, NULL);
	if (r == 0 && made == n) {
		memset(out, 0, sizeof(*out));
		out->ncpus = n;
		out->seconds = seconds;
		double total = seconds * 1e9;
		for (unsigned i = 0; i < n; i++) {
			out->lost_frac += (double)sp[i].lost / total / n;
			for (size_t k = 0; k < sp[i].ngaps; k++) {
				if (sp[i].gaps[k] >= COUNT_NS)
					out->stalls++;
				if (sp[i].gaps[k] > out->max_ns)
					out->max_ns = sp[i].gaps[k];
			}
		}
		out->p99_ns = quantile(sp, n, 0.99, total);
		out->p999_ns = quantile(sp, n, 0.999, total);
	}
	for (unsigned i = 0; i < made; i++)
		free(sp[i].gaps);
	free(sp);
	return r;
}
