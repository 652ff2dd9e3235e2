/* engine/ — a shard's pool of CPUs and memory for process jobs (pool.c):
 * a process job starts only when what it asks for is free, and runs on
 * the CPUs it was granted. Reactor-owned, except the totals, which are
 * set before any thread starts and read by submitters. */
#ifndef DD_ENGINE_POOL_H
#define DD_ENGINE_POOL_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

struct dd_pool {
	unsigned total;   /* CPUs; 0: this shard runs no process job */
	unsigned free;
	uint64_t mem_total, mem_free; /* bytes */
	cpu_set_t set;      /* the shard's CPUs */
	cpu_set_t free_set; /* of those, the ones no running job holds */
	unsigned nset;
	struct dd_queue_lanes wait; /* process jobs waiting for room, by priority */
	size_t waiting;
};

/* What a running process job holds, given back when it ends. */
struct dd_grant {
	unsigned cpus;
	uint64_t mem;
	bool pinned;  /* @set holds exactly its own CPUs */
	cpu_set_t set; /* the CPUs it runs on */
};

/* Engine creation, per shard: s->pool from cfg.pool_cpus and pool_mem,
 * its CPUs the node's usable CPUs [first, first + count). 0 or -ENOMEM. */
int dd_pool_init(struct dd_engine *e, struct dd_shard *s, int first, int count);
/* Any thread: whether the largest shard's pool could ever hold @cpus and
 * @mem (false only with a pool; a shard without one holds jobs for
 * others to take). */
bool dd_pool_can_hold(const struct dd_engine *e, unsigned cpus, uint64_t mem);
/* Reactor, for a process job taken from the lanes: true when it may start
 * now (its grant is in j->proc, allocated here); false when it waits in
 * the pool (JF_POOLQ) or has been failed for asking more than the pool
 * ever holds. */
bool dd_pool_admit(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: the most urgent waiting job, when it fits now (granted, and
 * out of the pool's queue), else NULL. Jobs wait in priority order, each
 * priority in arrival order: a job at the head that does not fit holds
 * back those behind it, so that a stream of small jobs cannot starve a
 * large one. */
struct dd_jobrec *dd_pool_next(struct dd_shard *s);
/* Recovery: the run of @j, adopted while it runs (cpus and mem as its
 * spec asks, the CPUs it runs on, @on, where free), with what the pool
 * has of that: a running process cannot wait for room. NULL: no memory. */
struct dd_exec_run *dd_pool_take(struct dd_shard *s, struct dd_jobrec *j, uint32_t cpus,
				 uint64_t mem, const cpu_set_t *on);
/* Reactor: gives back what @g holds. */
void dd_pool_release(struct dd_shard *s, struct dd_grant *g);
/* Reactor: takes a waiting job out (it is cancelled or the engine stops). */
void dd_pool_unqueue(struct dd_shard *s, struct dd_jobrec *j);

#endif
