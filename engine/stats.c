/* Statistics: the shard's latency histograms (written by the shard's
 * reactor alone, telemetry.h: relaxed stores, no locked instruction), the
 * jitter probe as the engine uses it (loaded at create, cfg.probe; each
 * engine thread registers its role as it starts), the published counters,
 * and reset-on-read windows for a reader (dd_stats_window_read). Any
 * thread reads them through dd_stats() and dd_stats_hist(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dd_config.h"
#include "engine.h"
#include "durable/durable.h"
#include "probe.h"
#include "stats.h"
#include "pool.h"
#include "telemetry.h"

/* ---- latency histograms ---- */

int dd_hists_create(struct dd_shard *s)
{
	s->hist = calloc(DD_HIST_COUNT, sizeof(*s->hist));
	return s->hist ? 0 : -ENOMEM;
}

void dd_hists_destroy(struct dd_shard *s)
{
	free(s->hist);
	s->hist = NULL;
}

static void summarize(const struct dd_tel_hist *h, struct dd_hist_summary *o)
{
	o->count = h->count;
	o->sum_ns = h->sum;
	o->min_ns = h->count ? h->min : 0;
	o->max_ns = h->max;
	o->p50_ns = dd_tel_hist_quantile(h, 0.50);
	o->p90_ns = dd_tel_hist_quantile(h, 0.90);
	o->p99_ns = dd_tel_hist_quantile(h, 0.99);
	o->p999_ns = dd_tel_hist_quantile(h, 0.999);
}

static void hists_fill(struct dd_engine *e, struct dd_stats *st)
{
	struct dd_tel_hist *one = malloc(sizeof(*one)), *all = malloc(sizeof(*all));
	if (!one || !all) {
		free(one);
		free(all);
		return; /* summaries stay zero: dd_stats does not fail for them */
	}
	for (unsigned k = 0; k < DD_HIST_COUNT; k++) {
		dd_tel_hist_reset(all);
		for (unsigned i = 0; i < e->nshards; i++) {
			if (!e->shards[i].hist)
				continue;
			dd_tel_hist_reset(one);
			dd_tel_shist_merge_into(one, &e->shards[i].hist[k]);
			summarize(one, &st->shard[i].hist[k]);
			dd_tel_hist_merge(all, one);
		}
		summarize(all, &st->total.hist[k]);
	}
	free(one);
	free(all);
}

int dd_stats_hist(struct dd_engine *e, int shard, enum dd_hist_kind kind, const uint64_t *le_ns,
		  size_t n, uint64_t *count_le, uint64_t *count, uint64_t *sum_ns)
{
	if ((unsigned)kind >= DD_HIST_COUNT || shard < -1 || shard >= (int)e->nshards ||
	    (n && (!le_ns || !count_le)))
		return -EINVAL;
	struct dd_tel_hist *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (unsigned i = 0; i < e->nshards; i++)
		if ((shard < 0 || (unsigned)shard == i) && e->shards[i].hist)
			dd_tel_shist_merge_into(h, &e->shards[i].hist[kind]);
	for (size_t i = 0; i < n; i++)
		count_le[i] = dd_tel_hist_count_le(h, le_ns[i]);
	if (count)
		*count = h->count;
	if (sum_ns)
		*sum_ns = h->sum;
	free(h);
	return 0;
}

/* ---- the jitter probe ---- */

int dd_probe_start(struct dd_engine *e)
{
	if (e->cfg.probe == DD_PROBE_OFF) {
		snprintf(e->probe_status, sizeof(e->probe_status), "off");
		return 0;
	}
	char why[128];
	int r = dd_tel_probe_open(getpid(), dd_log_state, e, &e->probe, why, sizeof(why));
	if (r < 0) {
		e->probe = NULL;
		snprintf(e->probe_status, sizeof(e->probe_status), "unavailable: %s", why);
		/* auto: the engine works on without it */
		return e->cfg.probe == DD_PROBE_ON ? r : 0;
	}
	/* "loaded" alone means the BTF-typed tracepoints */
	snprintf(e->probe_status, sizeof(e->probe_status), "%s",
		 dd_tel_probe_raw(e->probe) ? "loaded (raw tracepoints)" : "loaded");
	return 0;
}

void dd_probe_stop(struct dd_engine *e)
{
	dd_tel_probe_close(e->probe);
	e->probe = NULL;
}

void dd_probe_thread(struct dd_engine *e, enum dd_probe_role role)
{
	if (e->probe)
		dd_tel_probe_role(e->probe, (int)syscall(SYS_gettid), (enum dd_jit_role)role);
}

static void probe_fill(struct dd_engine *e, struct dd_stats *st)
{
	st->probe_loaded = e->probe != NULL;
	snprintf(st->probe_status, sizeof(st->probe_status), "%s",
		 e->probe_status[0] ? e->probe_status : "off");
	if (!e->probe)
		return;
	static _Thread_local struct dd_jit_hist h; /* 8 KiB: not on the stack */
	for (unsigned r = 0; r < DD_ROLE_COUNT; r++) {
		if (dd_tel_probe_read(e->probe, (enum dd_jit_role)r, &h) < 0)
			continue;
		struct dd_hist_summary *o = &st->runq[r];
		o->count = h.count;
		o->sum_ns = h.sum;
		o->max_ns = h.max;
		o->p50_ns = dd_tel_jit_quantile(&h, 0.50);
		o->p90_ns = dd_tel_jit_quantile(&h, 0.90);
		o->p99_ns = dd_tel_jit_quantile(&h, 0.99);
		o->p999_ns = dd_tel_jit_quantile(&h, 0.999);
		st->preempted[r] = h.preempted;
	}
}

/* ---- counters ---- */

/* Everything in dd_stats() but the histogram summaries. */
static void fill_counters(struct dd_engine *e, struct dd_stats *st)
{
	st->nshards = e->nshards;
	st->numa_available = e->topo->numa_available;
	st->spin_ns = e->cfg.spin_ns;
	st->jemalloc = DD_HAVE_JEMALLOC;
	st->cgroups = e->cg != NULL;
	snprintf(st->cgroup_status, sizeof(st->cgroup_status), "%s", dd_engine_cgroups(e, NULL));
	st->total.node = -1;
	for (unsigned i = 0; i < e->nshards; i++) {
		struct dd_shard *s = &e->shards[i];
		struct dd_shard_stats *o = &st->shard[i];
#define LD(k) atomic_load_explicit(&s->st[k], memory_order_relaxed)
		o->node = s->node;
		o->workers = s->nworkers;
		o->submitted = LD(ST_SUBMITTED);
		o->dispatched = LD(ST_DISPATCHED);
		o->succeeded = LD(ST_SUCCEEDED);
		o->failed = LD(ST_FAILED);
		o->cancelled = LD(ST_CANCELLED);
		o->timed_out = LD(ST_TIMED_OUT);
		o->retried = LD(ST_RETRIED);
		o->waiting = LD(ST_WAITING);
		o->delayed = LD(ST_DELAYED);
		o->queued = LD(ST_QUEUED);
		o->running = LD(ST_RUNNING);
		o->in_memory = LD(ST_IN_MEMORY);
		o->fate_bytes = LD(ST_FATE_BYTES);
		o->proc_cpu_ns = LD(ST_PROC_CPU_NS);
		o->proc_oom = LD(ST_PROC_OOM);
		o->proc_leftovers = LD(ST_PROC_LEFTOVERS);
		o->pool_cpus_free = LD(ST_POOL_FREE);
		o->pool_mem_free = LD(ST_POOL_MEM_FREE);
		o->pool_waiting = LD(ST_POOL_WAITING);
#undef LD
		o->pool_cpus = s->pool ? s->pool->total : 0;
		o->pool_mem = s->pool ? s->pool->mem_total : 0;
		o->parks = atomic_load_explicit(&s->wake.parks, memory_order_relaxed);
		o->wakeups = atomic_load_explicit(&s->wake.wakes, memory_order_relaxed);
		o->arena_bytes = dd_numa_arena_allocated(s->arena);
		dd_durable_stats(s, o);
		struct dd_shard_stats *t = &st->total;
		t->workers += o->workers;
		t->submitted += o->submitted;
		t->dispatched += o->dispatched;
		t->succeeded += o->succeeded;
		t->failed += o->failed;
		t->cancelled += o->cancelled;
		t->timed_out += o->timed_out;
		t->retried += o->retried;
		t->waiting += o->waiting;
		t->delayed += o->delayed;
		t->queued += o->queued;
		t->running += o->running;
		t->in_memory += o->in_memory;
		t->parks += o->parks;
		t->wakeups += o->wakeups;
		t->arena_bytes += o->arena_bytes;
		t->fate_bytes += o->fate_bytes;
		t->proc_cpu_ns += o->proc_cpu_ns;
		t->proc_oom += o->proc_oom;
		t->proc_leftovers += o->proc_leftovers;
		t->pool_cpus += o->pool_cpus;
		t->pool_cpus_free += o->pool_cpus_free;
		t->pool_mem += o->pool_mem;
		t->pool_mem_free += o->pool_mem_free;
		t->pool_waiting += o->pool_waiting;
		t->log_records += o->log_records;
		t->log_batches += o->log_batches;
		t->store_jobs += o->store_jobs;
		t->store_map_bytes += o->store_map_bytes;
		if (!t->state_error)
			t->state_error = o->state_error;
	}
}

int dd_stats(struct dd_engine *e, struct dd_stats *st)
{
	memset(st, 0, sizeof(*st));
	/* Histograms before counters: a reactor counts a log batch when it
	 * submits it and records its time when it completes, so read in this
	 * order a snapshot never shows more timed batches than counted ones
	 * (the other order could, by a batch completed in between). */
	hists_fill(e, st);
	atomic_thread_fence(memory_order_acquire);
	fill_counters(e, st);
	probe_fill(e, st);
	return 0;
}

int dd_stats_counters(struct dd_engine *e, struct dd_stats *st)
{
	memset(st, 0, sizeof(*st));
	fill_counters(e, st);
	snprintf(st->probe_status, sizeof(st->probe_status), "not read");
	return 0;
}

/* ---- windows: differences of the cumulative counters and of the fine
 * histograms since the reader's previous read; the writers only ever add ---- */

struct dd_stats_window {
	uint64_t at;             /* CLOCK_MONOTONIC of the previous read, 0 none */
	struct dd_stats prev;    /* counters then */
	struct dd_tel_hist *h;   /* [nshards][DD_HIST_COUNT] buckets then */
	unsigned nshards;
};

int dd_stats_window_create(struct dd_engine *e, struct dd_stats_window **out)
{
	struct dd_stats_window *w = calloc(1, sizeof(*w));
	if (!w || !(w->h = calloc((size_t)e->nshards * DD_HIST_COUNT, sizeof(*w->h)))) {
		free(w);
		return -ENOMEM;
	}
	w->nshards = e->nshards;
	*out = w;
	return 0;
}

void dd_stats_window_destroy(struct dd_stats_window *w)
{
	if (!w)
		return;
	free(w->h);
	free(w);
}

/* The summary of cur - prev, bucket by bucket; min and max to bucket
 * resolution, since the window's own extremes were not recorded. */
static void window_summary(const struct dd_tel_hist *cur, const struct dd_tel_hist *prev,
			   struct dd_tel_hist *diff, struct dd_hist_summary *o)
{
	memset(diff, 0, sizeof(*diff));
	unsigned lo = DD_TEL_BUCKETS, hi = 0;
	for (unsigned b = 0; b < DD_TEL_BUCKETS; b++) {
		uint64_t d = cur->bucket[b] >= prev->bucket[b] ? cur->bucket[b] - prev->bucket[b] : 0;
		diff->bucket[b] = d;
		diff->count += d;
		if (d) {
			if (lo == DD_TEL_BUCKETS)
				lo = b;
			hi = b;
		}
	}
	diff->sum = cur->sum >= prev->sum ? cur->sum - prev->sum : 0;
	diff->min = diff->count ? dd_tel_bucket_low(lo) : 0;
	diff->max = diff->count ? dd_tel_bucket_high(hi) : 0;
	if (diff->count && diff->max > cur->max)
		diff->max = cur->max;
	o->count = diff->count;
	o->sum_ns = diff->sum;
	o->min_ns = diff->min;
	o->max_ns = diff->max;
	o->p50_ns = dd_tel_hist_quantile(diff, 0.50);
	o->p90_ns = dd_tel_hist_quantile(diff, 0.90);
	o->p99_ns = dd_tel_hist_quantile(diff, 0.99);
	o->p999_ns = dd_tel_hist_quantile(diff, 0.999);
}

static void sub_counters(struct dd_shard_stats *o, const struct dd_shard_stats *p)
{
#define SUB(f) o->f = o->f >= p->f ? o->f - p->f : 0
	SUB(submitted);
	SUB(dispatched);
	SUB(succeeded);
	SUB(failed);
	SUB(cancelled);
	SUB(timed_out);
	SUB(retried);
	SUB(parks);
	SUB(wakeups);
	SUB(log_records);
	SUB(log_batches);
	SUB(proc_cpu_ns);
	SUB(proc_oom);
	SUB(proc_leftovers);
#undef SUB
}

int dd_stats_window_read(struct dd_engine *e, struct dd_stats_window *w, struct dd_stats *st)
{
	struct dd_tel_hist *cur = malloc(sizeof(*cur)), *diff = malloc(sizeof(*diff));
	struct dd_tel_hist *all = malloc(sizeof(*all)), *allp = malloc(sizeof(*allp));
	if (!cur || !diff || !all || !allp) {
		free(cur);
		free(diff);
		free(all);
		free(allp);
		return -ENOMEM;
	}
	dd_stats(e, st);
	uint64_t now = dd_mono_ns();
	struct dd_stats raw = *st; /* cumulative, for next time */
	for (unsigned i = 0; i < st->nshards && i < w->nshards; i++)
		sub_counters(&st->shard[i], &w->prev.shard[i]);
	sub_counters(&st->total, &w->prev.total);
	for (unsigned k = 0; k < DD_HIST_COUNT; k++) {
		dd_tel_hist_reset(all);
		dd_tel_hist_reset(allp);
		for (unsigned i = 0; i < w->nshards; i++) {
			struct dd_tel_hist *prev = &w->h[i * DD_HIST_COUNT + k];
			dd_tel_hist_reset(cur);
			if (e->shards[i].hist)
				dd_tel_shist_merge_into(cur, &e->shards[i].hist[k]);
			window_summary(cur, prev, diff, &st->shard[i].hist[k]);
			dd_tel_hist_merge(all, cur);
			dd_tel_hist_merge(allp, prev);
			*prev = *cur;
		}
		window_summary(all, allp, diff, &st->total.hist[k]);
	}
	st->window_ns = w->at ? now - w->at : now;
	w->at = now;
	w->prev = raw;
	free(cur);
	free(diff);
	free(all);
	free(allp);
	return 0;
}
