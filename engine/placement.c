/* Where the engine's background work runs. The reactors and workers are
 * pinned, one CPU each (engine.c); the applier (LMDB transactions of a
 * hundred thousand records) and io_uring's kernel workers (the log's
 * writes and fdatasync) do not need a particular CPU, only not theirs.
 * Left to the scheduler they land next to the reactor: io_uring's workers
 * inherit the affinity of the thread that submits, the reactor, and a
 * running worker thread is not preempted for the reactor within a
 * scheduler slice (milliseconds). Measured: docs/BENCHMARKS.md, "Measured
 * choices: background placement". */
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "engine.h"
#include "placement.h"
#include "uring.h"

bool dd_cold_cpus(const struct dd_engine *e, cpu_set_t *set)
{
	if (!e->proc_cpus_ok || !e->cfg.pin)
		return false;
	*set = e->proc_cpus;
	for (unsigned i = 0; i < e->nshards; i++) {
		const struct dd_shard *s = &e->shards[i];
		if (s->cpu >= 0)
			CPU_CLR(s->cpu, set);
		for (unsigned w = 0; w < s->nworkers; w++)
			if (s->workers[w].cpu >= 0)
				CPU_CLR(s->workers[w].cpu, set);
	}
	return CPU_COUNT(set) > 0;
}

void dd_place_applier(const struct dd_engine *e)
{
	cpu_set_t set;
	if (dd_cold_cpus(e, &set))
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
}

void dd_place_uring_workers(struct dd_shard *s)
{
	cpu_set_t set;
	if (!s->uring || !dd_cold_cpus(s->eng, &set))
		return;
	/* io-wq belongs to the submitting thread and exists from its first
	 * submission: the caller is the reactor, after a no-op went through */
	struct io_uring *ring = &s->uring->ring;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return;
	io_uring_prep_nop(sqe);
	sqe->user_data = 0; /* reaped and ignored like any unknown tag */
	io_uring_submit(ring);
	io_uring_register_iowq_aff(ring, sizeof(set), &set); /* best effort */
}

/* Spinning pays where the spinning thread has its CPU to itself. On a
 * small machine it has not: there a spinning reactor takes the CPU from
 * the thread it waits for (the submitter, the applier, the log's kernel
 * workers), and the tail grows. With a CPU to spare, spinning shortens
 * the tail. Measured: docs/BENCHMARKS.md, "Measured choices: reactor
 * spin". */
#define SPIN_NS 50000

void dd_resolve_spin(struct dd_engine *e)
{
	if (e->cfg.spin_ns != DD_SPIN_AUTO)
		return;
	long ncpu = e->proc_cpus_ok ? CPU_COUNT(&e->proc_cpus) : sysconf(_SC_NPROCESSORS_ONLN);
	long busy = e->cfg.durability > DD_DURABILITY_NONE ? 1 : 0; /* applier, log */
	for (unsigned i = 0; i < e->nshards; i++)
		busy += 1 + (long)e->shards[i].nworkers;
	e->cfg.spin_ns = ncpu > busy ? SPIN_NS : 0;
}
