/* engine/ — statistics (stats.c): the shard's published counters and
 * latency histograms, which its reactor writes on the hot path (inline
 * here), and the jitter probe's registration of engine threads. */
#ifndef DD_ENGINE_STATS_H
#define DD_ENGINE_STATS_H

#include "engine.h"
#include "telemetry.h"

/* published counters: struct dd_shard's st[], written by the reactor,
 * read by dd_stats() */
enum {
	ST_SUBMITTED, ST_DISPATCHED, ST_SUCCEEDED, ST_FAILED, ST_CANCELLED, ST_TIMED_OUT,
	ST_RETRIED, ST_WAITING, ST_DELAYED, ST_QUEUED, ST_RUNNING, ST_IN_MEMORY,
	ST_FATE_BYTES, ST_PROC_CPU_NS, ST_PROC_OOM, ST_PROC_LEFTOVERS,
	ST_POOL_FREE, ST_POOL_MEM_FREE, ST_POOL_WAITING, /* pool.c */
};

static inline void dd_st_add(struct dd_shard *s, unsigned k, int64_t d)
{
	/* single writer: a relaxed load and store, no read-modify-write */
	uint64_t v = atomic_load_explicit(&s->st[k], memory_order_relaxed);
	atomic_store_explicit(&s->st[k], v + (uint64_t)d, memory_order_relaxed);
}

/* latency histograms */
int dd_hists_create(struct dd_shard *s);
void dd_hists_destroy(struct dd_shard *s);
static inline void dd_hist_rec(struct dd_shard *s, enum dd_hist_kind k, uint64_t a, uint64_t b)
{
	/* b - a, or 0 when the clock ran the other way (an intended time in
	 * the future, a record without a start) */
	if (s->hist)
		dd_tel_shist_record(&s->hist[k], b > a ? b - a : 0);
}

/* the jitter probe (telemetry/probe.h) as the engine uses it */
int dd_probe_start(struct dd_engine *e);
void dd_probe_stop(struct dd_engine *e);
/* The calling thread plays @role (a thread calls it as it starts). */
void dd_probe_thread(struct dd_engine *e, enum dd_probe_role role);

#endif
