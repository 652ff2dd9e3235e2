/* Engine construction and shutdown (statistics: stats.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "array.h"
#include "command.h"
#include "deps.h"
#include "durable/durable.h"
#include "exec.h"
#include "idem.h"
#include "jobtab.h"
#include "lease.h"
#include "limits.h"
#include "placement.h"
#include "pool.h"
#include "proc.h"
#include "reactor.h"
#include "state.h"
#include "stats.h"
#include "submit.h"
#include "supervise.h"
#include "trust.h"
#include "uring.h"
#include "worker.h"

void dd_config_init(struct dd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->pin = true;
	cfg->spin_ns = DD_SPIN_AUTO;
	cfg->worker_queue = DD_WORKER_INFLIGHT;
	cfg->durability = DD_DURABILITY_NONE;
	cfg->ring_capacity = 4096;
	cfg->max_live_jobs = 4u << 20;
	cfg->retain_terminal = 1u << 20;
	cfg->store_lag_max = 512u << 10;
	cfg->shutdown_grace_ns = 5000000000ull;
	cfg->tick_ns = 100000;
	cfg->segment_bytes = 64u << 20;
	cfg->map_initial = 64u << 20;
	cfg->map_max = (size_t)64 << 30;
	cfg->store_retain_ns = 7ull * 24 * 3600 * 1000000000ull;
	cfg->store_retain_count = 10u << 20;
	cfg->output_max = 64u << 20;
	cfg->output_reserve = DD_RESERVE_AUTO;
	cfg->histograms = true;
	cfg->kill_grace_ns = 5000000000ull;
	cfg->pool_cpus = DD_POOL_AUTO;
	cfg->pool_mem = DD_POOL_AUTO_MEM;
}

static int check_config(const struct dd_config *c)
{
	if (c->durability < DD_DURABILITY_NONE || c->durability > DD_DURABILITY_FSYNC)
		return -EINVAL;
	if (c->durability > DD_DURABILITY_NONE &&
	    (!c->state_dir || !c->state_dir[0] || strlen(c->state_dir) > 3900 ||
	     c->segment_bytes < (1u << 16) || c->map_initial < (1u << 20) ||
	     c->map_max < c->map_initial || c->store_lag_max < 1024))
		return -EINVAL;
	if (c->worker_queue < 1 || c->worker_queue > DD_WORKER_INFLIGHT)
		return -EINVAL;
	if (c->shards > DD_MAX_SHARDS || c->workers > 1024 || c->ring_capacity < 2 ||
	    c->ring_capacity > (1u << 24) || c->max_live_jobs == 0 || c->tick_ns == 0 ||
	    c->pretend_nodes < 0 || c->pretend_nodes > DD_MAX_SHARDS)
		return -EINVAL;
	return 0;
}

/* The CPUs of shard k among m shards on one node: a contiguous share. */
static void shard_cpus(const struct dd_numa_node *nd, unsigned k, unsigned m, int *first,
		       int *count)
{
	int lo = (int)((long)k * nd->ncpus / m), hi = (int)((long)(k + 1) * nd->ncpus / m);
	if (hi <= lo) {
		lo = (int)(k % (unsigned)nd->ncpus);
		hi = lo + 1;
	}
	*first = lo;
	*count = hi - lo;
}

static int shard_init(struct dd_engine *e, struct dd_shard *s, unsigned idx)
{
	const struct dd_config *c = &e->cfg;
	int r;
	s->eng = e;
	s->index = idx;
	s->node = (int)(idx % (unsigned)e->topo->nnodes);
	const struct dd_numa_node *nd = &e->topo->nodes[s->node];
	s->os_node = nd->os_node;
	unsigned m = (e->nshards + (unsigned)e->topo->nnodes - 1 - (unsigned)s->node) /
		     (unsigned)e->topo->nnodes; /* shards on this node */
	int first, count;
	shard_cpus(nd, idx / (unsigned)e->topo->nnodes, m, &first, &count);
	s->cpu = c->pin ? nd->cpus[first] : -1;
	if ((r = dd_pool_init(e, s, first, count)) < 0)
		return r;

	if ((r = dd_numa_arena_create(s->os_node, &s->arena)) < 0 ||
	    (c->histograms && (r = dd_hists_create(s)) < 0))
		return r;
	for (unsigned p = 0; p < DD_PRIO_LEVELS; p++)
		if ((r = dd_queue_mpsc_create(c->ring_capacity, sizeof(struct dd_sub), &s->sub[p])) < 0)
			return r;
	if ((r = dd_queue_mpsc_create(1024, sizeof(struct dd_cmd *), &s->cmds)) < 0)
		return r;
	dd_queue_wake_init(&s->wake);
	atomic_init(&s->next_seq, 1);
	atomic_init(&s->reserved_seq, UINT64_MAX);
	atomic_init(&s->live, 0);
	dd_queue_lanes_init(&s->lanes);
	dd_queue_lanes_init(&s->held);
	s->retained.prev = s->retained.next = &s->retained;
	s->nohandler.prev = s->nohandler.next = &s->nohandler;
	s->first_seq = 1;
	s->now = dd_mono_ns();
	{
		struct timespec rt;
		clock_gettime(CLOCK_REALTIME, &rt);
		s->rt_offset = (int64_t)((uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec) -
			       (int64_t)s->now;
	}
	dd_queue_wheel_init(&s->wheel, c->tick_ns, s->now);

	if (c->inline_handlers)
		s->nworkers = 0;
	else if (c->workers)
		s->nworkers = c->workers;
	else
		s->nworkers = count > 1 ? (unsigned)count - 1 : 1;
	s->workers = calloc(s->nworkers ? s->nworkers : 1, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (unsigned w = 0; w < s->nworkers; w++) {
		struct dd_worker *wk = &s->workers[w];
		wk->shard = s;
		wk->index = w;
		wk->sup_conn = -1;
		/* Workers take the shard's other CPUs, one each. When there are
		 * fewer CPUs than workers they are not pinned: two workers pinned to
		 * one CPU wait for each other, and the processes they spawn start
		 * there too (measured: docs/BENCHMARKS.md, "Measured choices:
		 * worker pinning"). */
		wk->cpu = !c->pin || (count > 1 && s->nworkers > (unsigned)(count - 1)) ? -1
			: count > 1 ? nd->cpus[first + 1 + (int)w]
				    : nd->cpus[first];
		if ((r = dd_queue_spsc_create(DD_WORKER_INFLIGHT, sizeof(void *), &wk->inbox)) < 0 ||
		    (r = dd_queue_spsc_create(DD_WORKER_INFLIGHT, sizeof(void *), &wk->done)) < 0)
			return r;
		dd_queue_wake_init(&wk->wake);
		/* Until it has run something, a worker's jobs count as long:
		 * it gets DD_HAND_AHEAD_MIN ahead, and more as they prove short. */
		atomic_init(&wk->job_ns, DD_HAND_AHEAD_NS / DD_HAND_AHEAD_MIN);
	}
	s->xs_in = calloc(e->nshards, sizeof(*s->xs_in));
	s->xs_out = calloc(e->nshards, sizeof(*s->xs_out));
	s->xs_over = calloc(e->nshards, sizeof(*s->xs_over));
	if (!s->xs_in || !s->xs_out || !s->xs_over)
		return -ENOMEM;
	return 0;
}

static void shard_fini(struct dd_shard *s)
{
	struct dd_sub m;
	dd_durable_close(s); /* the reactor has flushed the log; the applier catches up */
	dd_uring_close(s);
	dd_exec_free_all(s);
	for (unsigned w = 0; s->workers && w < s->nworkers; w++)
		if (s->workers[w].sup_conn >= 0)
			close(s->workers[w].sup_conn);
	dd_lease_destroy(s);
	for (unsigned p = 0; p < DD_PRIO_LEVELS; p++) {
		/* Submissions that raced with shutdown: free what they carried. */
		while (s->sub[p] && dd_queue_mpsc_dequeue(s->sub[p], &m, 1)) {
			if (m.key)
				dd_idem_remove(s->eng->idem, m.key_hash, m.uid, m.key, m.id);
			dd_sub_release(s, &m);
		}
		dd_queue_mpsc_destroy(s->sub[p]);
	}
	dd_queue_mpsc_destroy(s->cmds);
	dd_jobtab_destroy(s);
	dd_array_destroy(s);
	dd_deps_destroy(s);
	for (unsigned w = 0; s->workers && w < s->nworkers; w++) {
		dd_queue_spsc_destroy(s->workers[w].inbox);
		dd_queue_spsc_destroy(s->workers[w].done);
	}
	free(s->workers);
	free(s->pool);
	for (unsigned i = 0; s->xs_in && i < s->eng->nshards; i++)
		dd_queue_spsc_destroy(s->xs_in[i]);
	free(s->xs_in);
	free(s->xs_out);
	for (unsigned i = 0; s->xs_over && i < s->eng->nshards; i++)
		free(s->xs_over[i].ev);
	free(s->xs_over);
	dd_numa_arena_destroy(s->arena);
	dd_hists_destroy(s);
}

/* Ring from shard a to shard b, seen as a's xs_out[b] and b's xs_in[a]. */
static int link_shards(struct dd_engine *e)
{
	for (unsigned a = 0; a < e->nshards; a++)
		for (unsigned b = 0; b < e->nshards; b++) {
			if (a == b)
				continue;
			struct dd_queue_spsc *r;
			int rc = dd_queue_spsc_create(DD_XS_RING, sizeof(struct dd_xs_event), &r);
			if (rc < 0)
				return rc;
			e->shards[a].xs_out[b] = r;
			e->shards[b].xs_in[a] = r;
		}
	return 0;
}

/* Stops and joins whatever was started: reactors first (they finish the
 * running work), then their workers. */
static void stop_threads(struct dd_engine *e)
{
	atomic_store(&e->stopping, true);
	for (unsigned i = 0; e->shards && i < e->nshards; i++) {
		struct dd_shard *s = &e->shards[i];
		if (s->reactor_started) {
			dd_queue_wake_notify(&s->wake);
			pthread_join(s->thread, NULL);
			s->reactor_started = false;
		}
	}
	for (unsigned i = 0; e->shards && i < e->nshards; i++) {
		struct dd_shard *s = &e->shards[i];
		for (unsigned w = 0; w < s->workers_started; w++) {
			atomic_store(&s->workers[w].stop, true);
			dd_queue_wake_notify(&s->workers[w].wake);
			pthread_join(s->workers[w].thread, NULL);
		}
		s->workers_started = 0;
	}
}

static int start_threads(struct dd_engine *e)
{
	for (unsigned i = 0; i < e->nshards; i++) {
		struct dd_shard *s = &e->shards[i];
		for (; s->workers_started < s->nworkers; s->workers_started++) {
			struct dd_worker *w = &s->workers[s->workers_started];
			int r = pthread_create(&w->thread, NULL, dd_worker_main, w);
			if (r)
				return -r;
			char name[32]; /* for top -H, perf and gdb; 15 characters kept */
			snprintf(name, sizeof(name), "dd-work-%u.%u", i, s->workers_started);
			name[15] = 0;
			pthread_setname_np(w->thread, name);
		}
	}
	for (unsigned i = 0; i < e->nshards; i++) {
		struct dd_shard *s = &e->shards[i];
		int r = pthread_create(&s->thread, NULL, dd_reactor_main, s);
		if (r)
			return -r;
		s->reactor_started = true;
		char name[32];
		snprintf(name, sizeof(name), "dd-reactor-%u", i);
		name[15] = 0;
		pthread_setname_np(s->thread, name);
	}
	return 0;
}

/* Every shard gets an io_uring: the log needs it, and so does watching
 * processes. Without durability an engine works on without one (process
 * jobs then fail with ENOSYS), since io_uring may be forbidden (seccomp). */
static int open_rings(struct dd_engine *e)
{
	e->euid = (uint32_t)geteuid();
	e->egid = (uint32_t)getegid();
	/* before any thread is pinned (threads start later) */
	e->proc_cpus_ok = sched_getaffinity(0, sizeof(e->proc_cpus), &e->proc_cpus) == 0;
	struct rlimit nofile;
	e->stdin_max = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY
			       ? (int64_t)(nofile.rlim_cur / 4)
			       : 16384;
	if (e->stdin_max < 16)
		e->stdin_max = 16;
	int r = dd_trust_open(e); /* the state and output dirs, checked */
	if (r < 0)
		return r;
	if (e->output_dir && (r = dd_outcut_start(e, &e->outcut)) < 0)
		return r;
	if ((r = dd_proctree_open(e)) < 0) /* after trust: it names the subtree */
		return r;
	for (unsigned i = 0; i < e->nshards; i++) {
		r = dd_uring_open(&e->shards[i]);
		if (r < 0 && e->cfg.durability > DD_DURABILITY_NONE)
			return r;
		if (r < 0 && i == 0)
			dd_log(e, LOG_WARNING, "no io_uring (%s): process jobs cannot run",
			       dd_strerror(r));
	}
	return 0;
}

/* Each shard's log is replayed into its store, then every shard's live
 * jobs come back into memory, and only then are dependencies subscribed
 * again, since they may cross shards. */
static int open_state(struct dd_engine *e)
{
	uint64_t t0 = dd_mono_ns();
	struct dd_rwaits *w = calloc(e->nshards, sizeof(*w));
	int r = 0;
	if (!w)
		return -ENOMEM;
	/* what the supervisor holds is known before recovery decides the
	 * fate of the jobs that were running */
	if ((r = dd_sup_open(e)) < 0) {
		free(w);
		return r;
	}
	for (unsigned i = 0; i < e->nshards && r == 0; i++) {
		struct dd_state_recovery rec;
		if ((r = dd_durable_open(&e->shards[i], &rec)) < 0)
			break;
		e->recovery.records_replayed += rec.replayed;
		e->recovery.torn += rec.torn;
	}
	for (unsigned i = 0; i < e->nshards && r == 0; i++)
		r = dd_durable_load(&e->shards[i], &e->recovery, &w[i]);
	for (unsigned i = 0; i < e->nshards && r == 0; i++)
		dd_sup_reconcile(&e->shards[i]);
	for (unsigned i = 0; i < e->nshards; i++) {
		if (r == 0)
			dd_durable_resubscribe(&e->shards[i], &w[i]);
		else
			for (size_t k = 0; k < w[i].n; k++)
				free(w[i].v[k].deps);
		if (r)
			free(w[i].v);
	}
	free(w);
	for (unsigned i = 0; i < e->nshards && r == 0; i++)
		r = dd_applier_start(&e->shards[i]);
	e->recovery.ns = dd_mono_ns() - t0;
	return r;
}

int dd_engine_recovery(struct dd_engine *e, struct dd_recovery *out)
{
	*out = e->recovery;
	return e->cfg.durability > DD_DURABILITY_NONE ? 0 : -EOPNOTSUPP;
}

int dd_engine_create(const struct dd_config *cfg, struct dd_engine **out)
{
	struct dd_engine *e = calloc(1, sizeof(*e));
	int r;
	if (!e)
		return -ENOMEM;
	e->state_fd = -1;
	if (cfg)
		e->cfg = *cfg;
	else
		dd_config_init(&e->cfg);
	if (e->cfg.on_event && !e->cfg.event_mask)
		e->cfg.event_mask = DD_EVENTS_TERMINAL;
	pthread_mutex_init(&e->reg_lock, NULL);
	if ((r = check_config(&e->cfg)) < 0)
		goto fail;
	if ((r = dd_numa_topo_create(e->cfg.pretend_nodes, &e->topo)) < 0)
		goto fail;
	if ((r = dd_idem_create(&e->idem)) < 0 || (r = dd_proc_creds_create(&e->creds)) < 0 ||
	    (r = dd_limits_create(e)) < 0)
		goto fail;
	e->nshards = e->cfg.shards ? e->cfg.shards : (unsigned)e->topo->nnodes;
	if (e->nshards > DD_MAX_SHARDS)
		e->nshards = DD_MAX_SHARDS;
	e->shards = aligned_alloc(DD_CACHELINE, sizeof(*e->shards) * e->nshards);
	if (!e->shards) {
		r = -ENOMEM;
		goto fail;
	}
	memset(e->shards, 0, sizeof(*e->shards) * e->nshards);
	for (unsigned i = 0; i < e->nshards; i++)
		if ((r = shard_init(e, &e->shards[i], i)) < 0)
			goto fail;
	if ((r = link_shards(e)) < 0)
		goto fail;
	/* before any thread starts (the appliers start in open_state): each
	 * registers its role with the probe as it starts */
	if ((r = dd_probe_start(e)) < 0)
		goto fail;
	if ((r = open_rings(e)) < 0)
		goto fail;
	dd_resolve_spin(e); /* after open_rings(): it knows the process's CPUs */
	if (e->cfg.durability > DD_DURABILITY_NONE && (r = open_state(e)) < 0)
		goto fail;
	if (!e->sup_status[0])
		snprintf(e->sup_status, sizeof(e->sup_status),
			 "off: process jobs end with the engine (no durable state to take them "
			 "over from)");
	if ((r = start_threads(e)) < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	dd_engine_destroy(e);
	return r;
}

void dd_engine_destroy(struct dd_engine *e)
{
	dd_engine_destroy_ex(e, 0);
}

const char *dd_engine_supervisor(const struct dd_engine *e, bool *on)
{
	if (on)
		*on = e->sup != NULL;
	return e->sup_status[0] ? e->sup_status : "off";
}

/* Also the error path of dd_engine_create(): copes with a half-built engine. */
void dd_engine_destroy_ex(struct dd_engine *e, unsigned flags)
{
	if (!e)
		return;
	atomic_store_explicit(&e->leave_running, (flags & DD_DESTROY_LEAVE_RUNNING) && e->sup,
			      memory_order_relaxed);
	if ((flags & DD_DESTROY_LEAVE_RUNNING) && !e->sup && e->shards)
		dd_log(e, LOG_WARNING, "running process jobs cannot be left running (process "
		       "supervisor %s): they are ended", dd_engine_supervisor(e, NULL));
	stop_threads(e);
	dd_outcut_stop(e->outcut); /* before the procs it may be cutting go */
	for (unsigned i = 0; e->shards && i < e->nshards; i++)
		shard_fini(&e->shards[i]);
	dd_sup_close(e);
	dd_proctree_close(e); /* after the shards' processes have gone */
	free(e->shards);
	free(e->output_dir);
	free(e->state_dir);
	if (e->state_fd >= 0)
		close(e->state_fd);
	dd_probe_stop(e);
	dd_idem_destroy(e->idem);
	dd_limits_destroy(e);
	dd_proc_creds_destroy(e->creds);
	dd_numa_topo_destroy(e->topo);
	pthread_mutex_destroy(&e->reg_lock);
	free(e);
}

int dd_engine_reload(struct dd_engine *e)
{
	dd_proc_creds_reload(e->creds);
	return 0;
}

unsigned dd_engine_shards(const struct dd_engine *e)
{
	return e->nshards;
}

int dd_engine_shard_node(const struct dd_engine *e, unsigned shard)
{
	return shard < e->nshards ? e->shards[shard].node : -EINVAL;
}

int dd_state_error(struct dd_engine *e)
{
	for (unsigned i = 0; i < e->nshards; i++) {
		int r = dd_durable_error(&e->shards[i]);
		if (r)
			return r;
	}
	return 0;
}
