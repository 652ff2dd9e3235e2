/* A shard's pool of CPUs and memory for process jobs (DESIGN.md section
 * 10). A process job asks for CPUs (default 1) and memory (default none)
 * and starts only when they are free; it runs on the CPUs it was granted
 * (its affinity) and its memory limit is what it asked for (its cgroup).
 * In-process and queue jobs take nothing from it.
 *
 * Jobs that do not fit wait in the pool's own lanes: the most urgent
 * priority first, each in arrival order, and the head holds back the
 * rest, so that a large job is not starved by a stream of small ones of
 * its priority or below (Slurm's default scheduler without backfill does
 * the same). A job that arrives while others wait queues behind them even
 * when it would fit. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "exec.h"
#include "pool.h"
#include "stats.h"

/* What dd_stats() shows of the pool now. */
static void publish(struct dd_shard *s)
{
	const struct dd_pool *pl = s->pool;
	atomic_store_explicit(&s->st[ST_POOL_FREE], pl->free, memory_order_relaxed);
	atomic_store_explicit(&s->st[ST_POOL_MEM_FREE], pl->mem_free, memory_order_relaxed);
	atomic_store_explicit(&s->st[ST_POOL_WAITING], pl->waiting, memory_order_relaxed);
}

int dd_pool_init(struct dd_engine *e, struct dd_shard *s, int first, int count)
{
	struct dd_pool *pl = s->pool = calloc(1, sizeof(*s->pool));
	if (!pl)
		return -ENOMEM;
	const struct dd_numa_node *nd = &e->topo->nodes[s->node];
	CPU_ZERO(&pl->set);
	for (int i = first; i < first + count && i < nd->ncpus; i++)
		CPU_SET(nd->cpus[i], &pl->set);
	pl->nset = (unsigned)CPU_COUNT(&pl->set);
	pl->free_set = pl->set;
	unsigned n = e->nshards, k = s->index;
	if (e->cfg.pool_cpus == DD_POOL_AUTO)
		pl->total = pl->nset;
	else
		pl->total = e->cfg.pool_cpus / n + (k < e->cfg.pool_cpus % n);
	uint64_t mem = e->cfg.pool_mem;
	if (mem == DD_POOL_AUTO_MEM) {
		long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
		mem = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
	}
	pl->mem_total = mem / n + (k < mem % n);
	pl->free = pl->total;
	pl->mem_free = pl->mem_total;
	dd_queue_lanes_init(&pl->wait);
	publish(s);
	return 0;
}

bool dd_pool_can_hold(const struct dd_engine *e, unsigned cpus, uint64_t mem)
{
	bool any = false;
	for (unsigned i = 0; i < e->nshards; i++) {
		const struct dd_pool *pl = e->shards[i].pool;
		if (!pl)
			continue;
		if (!pl->total)
			continue;
		any = true;
		if (cpus <= pl->total && mem <= pl->mem_total)
			return true;
	}
	return !any; /* no pool here: jobs wait for others to take them */
}

static void request(const struct dd_jobrec *j, uint32_t *cpus, uint64_t *mem)
{
	/* a spec that does not decode asks for one CPU: its worker fails it */
	dd_proc_spec_request(j->payload, j->payload_len, cpus, mem);
	if (*cpus < 1)
		*cpus = 1;
}

static bool fits(const struct dd_pool *pl, uint32_t cpus, uint64_t mem)
{
	return pl->total && cpus <= pl->free && mem <= pl->mem_free;
}

/* Takes @cpus and @mem from the pool for @j, the CPUs of @on first (NULL:
 * the lowest free): its run (j->proc) is made here and carries the grant
 * to the worker and back. */
static void grant_on(struct dd_shard *s, struct dd_jobrec *j, uint32_t cpus, uint64_t mem,
		     const cpu_set_t *on)
{
	struct dd_pool *pl = s->pool;
	struct dd_exec_run *p = calloc(1, sizeof(*p));
	if (!p)
		return; /* the worker makes one and fails the job for memory */
	p->out = p->err = p->pidfd = -1;
	p->j = j;
	struct dd_grant *g = &p->grant;
	g->cpus = cpus;
	g->mem = mem;
	if (pl->total <= pl->nset) {
		/* no more CPUs counted than there are: each its own */
		CPU_ZERO(&g->set);
		unsigned got = 0;
		for (int pass = on ? 0 : 1; pass < 2; pass++)
			for (int c = 0; c < CPU_SETSIZE && got < cpus; c++)
				if (CPU_ISSET(c, &pl->free_set) && (pass || CPU_ISSET(c, on))) {
					CPU_CLR(c, &pl->free_set);
					CPU_SET(c, &g->set);
					got++;
				}
		g->pinned = true;
	} else {
		g->set = pl->set; /* a pool counted above its CPUs shares them */
	}
	pl->free -= cpus;
	pl->mem_free -= mem;
	j->proc = p;
	publish(s);
}

static void grant(struct dd_shard *s, struct dd_jobrec *j, uint32_t cpus, uint64_t mem)
{
	grant_on(s, j, cpus, mem, NULL);
}

struct dd_exec_run *dd_pool_take(struct dd_shard *s, struct dd_jobrec *j, uint32_t cpus,
				 uint64_t mem, const cpu_set_t *on)
{
	struct dd_pool *pl = s->pool;
	if (cpus < 1)
		cpus = 1;
	if (cpus > pl->free)
		cpus = pl->free; /* over the pool (it was larger): what is left */
	if (mem > pl->mem_free)
		mem = pl->mem_free;
	j->proc = NULL;
	if (cpus)
		grant_on(s, j, cpus, mem, on);
	if (!j->proc) {
		struct dd_exec_run *p = calloc(1, sizeof(*p));
		if (!p)
			return NULL;
		p->out = p->err = p->pidfd = -1;
		p->j = j;
		j->proc = p;
	}
	return j->proc;
}

void dd_pool_release(struct dd_shard *s, struct dd_grant *g)
{
	struct dd_pool *pl = s->pool;
	if (!g->cpus)
		return;
	pl->free += g->cpus;
	pl->mem_free += g->mem;
	if (g->pinned)
		CPU_OR(&pl->free_set, &pl->free_set, &g->set);
	g->cpus = 0;
	g->mem = 0;
	publish(s);
}

/* "4 CPUs and 1.5 GiB" */
static void amount(char *buf, size_t n, unsigned cpus, uint64_t mem)
{
	int k = snprintf(buf, n, "%u CPU%s", cpus, cpus == 1 ? "" : "s");
	if (mem && k > 0 && (size_t)k < n)
		snprintf(buf + k, n - (size_t)k, " and %.1f MiB", (double)mem / 1048576.0);
}

bool dd_pool_admit(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_pool *pl = s->pool;
	uint32_t cpus;
	uint64_t mem;
	request(j, &cpus, &mem);
	if (pl->total && (cpus > pl->total || mem > pl->mem_total)) {
		/* recovered from a run with a larger pool, or routed to a
		 * smaller shard: it would wait for ever */
		char want[64], have[64], text[DD_REASON_MAX];
		amount(want, sizeof(want), cpus, mem);
		amount(have, sizeof(have), pl->total, pl->mem_total);
		snprintf(text, sizeof(text), "asks for %s; the pool holds %s", want, have);
		char *own = dd_reason_dup(s, text);
		if (own)
			dd_job_own_reason(s, j, own);
		dd_job_finish(s, j, DD_FAILED, own ? own : dd_reason[R_HANDLER_FAILED]);
		return false;
	}
	if (pl->waiting || !fits(pl, cpus, mem)) {
		dd_queue_lanes_push(&pl->wait, j->priority, &j->link);
		j->flags |= JF_POOLQ;
		pl->waiting++;
		publish(s);
		return false;
	}
	grant(s, j, cpus, mem);
	return true;
}

struct dd_jobrec *dd_pool_next(struct dd_shard *s)
{
	struct dd_pool *pl = s->pool;
	struct dd_queue_node *n = dd_queue_lanes_peek(&pl->wait);
	if (!n)
		return NULL;
	struct dd_jobrec *j = (struct dd_jobrec *)n;
	uint32_t cpus;
	uint64_t mem;
	request(j, &cpus, &mem);
	if (!fits(pl, cpus, mem))
		return NULL;
	dd_pool_unqueue(s, j);
	grant(s, j, cpus, mem);
	return j;
}

void dd_pool_unqueue(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_pool *pl = s->pool;
	dd_queue_lanes_remove(&pl->wait, j->priority, &j->link);
	j->link.next = j->link.prev = NULL;
	j->flags &= (uint8_t)~JF_POOLQ;
	pl->waiting--;
	publish(s);
}
