/* std-r --embedded: the engine in this process, fed by an open-loop
 * generator.
 *
 * Open loop: job i is *intended* to be submitted at start + i/rate; its
 * latency is the attempt's start minus that intended time, so a stall
 * anywhere (generator, ring, reactor, worker) is charged to every job it
 * delayed — no coordinated omission. With --rate max the loop is closed
 * instead (a bounded number of jobs outstanding) and measures throughput. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "durable_acct.h"
#include "embedded.h"

#define BATCH 256
#define MAX_THREADS 256

/* The run's state, shared with the handlers and callbacks. One run at a
 * time per process (a sweep runs them one after another). */
static struct {
	struct dd_engine *e;
	pthread_mutex_t lock;
	/* per-thread histograms, one writer each, readable while written
	 * (the progress line reads them) */
	struct dd_tel_shist *hists[MAX_THREADS];
	unsigned nhists;
	uint64_t from, to; /* the window, in intended time */
	_Atomic uint64_t in_window, all, failed;
	_Atomic uint64_t lookups, misses;
	bool exec;
	sem_t room;    /* exec: a post per ended job, for the closed loop */
	uint64_t *ids; /* --jobs-in-state: what lookup reads */
	uint64_t nids;
} run = {.lock = PTHREAD_MUTEX_INITIALIZER};

static __thread struct dd_tel_shist *tl_hist;
static __thread uint64_t tl_rand;

static void record(const struct dd_job *job)
{
	if (job->intended_ns < run.from || job->intended_ns >= run.to)
		return;
	if (!tl_hist) {
		pthread_mutex_lock(&run.lock);
		if (run.nhists < MAX_THREADS && (tl_hist = calloc(1, sizeof(*tl_hist))))
			run.hists[run.nhists++] = tl_hist;
		pthread_mutex_unlock(&run.lock);
		if (!tl_hist)
			return;
	}
	dd_tel_shist_record(tl_hist, job->start_ns - job->intended_ns);
}

static int noop_handler(const struct dd_job *job, void *arg)
{
	(void)arg;
	record(job);
	return 0;
}

/* Reads the record of one of the jobs put in the state beforehand, chosen
 * at random: from memory at durability none, from the LMDB store else. */
static int lookup_handler(const struct dd_job *job, void *arg)
{
	(void)arg;
	record(job);
	if (!run.nids)
		return 0;
	if (!tl_rand)
		tl_rand = (uint64_t)(uintptr_t)&tl_rand | 1;
	tl_rand ^= tl_rand << 13, tl_rand ^= tl_rand >> 7, tl_rand ^= tl_rand << 17;
	struct dd_job_info info;
	int r = dd_job_get(run.e, run.ids[tl_rand % run.nids], &info);
	atomic_fetch_add_explicit(&run.lookups, 1, memory_order_relaxed);
	if (r < 0 || info.state != DD_SUCCEEDED)
		atomic_fetch_add_explicit(&run.misses, 1, memory_order_relaxed);
	return 0;
}

/* Counts ends (the whole path) whose time falls in the window. */
static void on_event(const struct dd_event *ev, void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&run.all, 1, memory_order_relaxed);
	if (run.exec)
		sem_post(&run.room);
	if (ev->state != DD_SUCCEEDED)
		atomic_fetch_add_explicit(&run.failed, 1, memory_order_relaxed);
	else if (ev->at_ns >= run.from && ev->at_ns < run.to)
		atomic_fetch_add_explicit(&run.in_window, 1, memory_order_relaxed);
}

/* Sleeps until @t when it is far enough away, else yields: a sleep costs a
 * timer wake-up (tens of µs in a VM) that would be charged to the jobs. */
static void wait_until(uint64_t t)
{
	uint64_t now = dd_mono_ns();
	if (t > now + 200000) {
		uint64_t until = t - 100000;
		struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	while (dd_mono_ns() < t)
		sched_yield(); /* lets a thread sharing this CPU run meanwhile */
}

static uint64_t durable_records(const struct dd_stats *st)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < st->nshards; i++)
		n += st->shard[i].durable_lsn;
	return n;
}

/* The P99 of the window so far, for the progress line. */
static uint64_t p99_so_far(const struct dd_stats *st)
{
	if (!run.nhists) /* exec: the engine's own, since it started */
		return st->total.hist[DD_HIST_DISPATCH].p99_ns;
	struct dd_tel_hist *h = calloc(1, sizeof(*h));
	if (!h)
		return 0;
	pthread_mutex_lock(&run.lock);
	for (unsigned i = 0; i < run.nhists; i++)
		dd_tel_shist_merge_into(h, run.hists[i]);
	pthread_mutex_unlock(&run.lock);
	uint64_t p = dd_tel_hist_quantile(h, 0.99);
	free(h);
	return p;
}

/* The engine's messages, on stderr beside std-r's own. */
static void log_stderr(int level, const char *msg, void *arg)
{
	(void)level, (void)arg;
	fprintf(stderr, "dispatchd: %s\n", msg);
}

static void configure(const struct opts *o, const char *state_dir, struct dd_config *cfg)
{
	dd_config_init(cfg);
	cfg->on_log = log_stderr;
	cfg->shards = o->shards;
	cfg->workers = o->workers;
	cfg->histograms = !o->histograms_off;
	cfg->probe = o->probe;
	cfg->inline_handlers = o->executor == 1;
	if (o->executor < 0) {
		/* Threads that spin need a CPU each; sharing one costs a
		 * scheduler tick (ms) of latency whenever both are busy.
		 * Processes are spawned by workers, never the reactor. */
		cpu_set_t set;
		unsigned ncpu = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
		unsigned shards = o->shards ? o->shards : 1;
		cfg->inline_handlers = o->kind != KIND_EXEC && !o->workers && ncpu < 1 + 2 * shards;
	}
	cfg->spin_ns = o->spin_ns;
	cfg->durability = (enum dd_durability)o->durability;
	cfg->on_event = on_event;
	cfg->event_mask = DD_EVENTS_TERMINAL;
	cfg->retain_terminal = 0; /* a benchmark keeps nothing it does not need */
	if (state_dir) {
		cfg->state_dir = state_dir;
		cfg->on_durable = acct_on_durable;
		cfg->store_retain_count = o->store_retain; /* ...on disk neither */
	}
	if (o->jobs_in_state) {
		/* the jobs put in the state must stay there: lookup reads them
		 * from the store, or at durability none from memory */
		if (state_dir)
			cfg->store_retain_count = SIZE_MAX;
		else
			cfg->retain_terminal = SIZE_MAX;
	}
}

/* Puts o->jobs_in_state finished jobs in the state, before the window. */
static int fill_state(struct dd_engine *e, uint64_t n)
{
	if (!(run.ids = malloc(n * sizeof(uint64_t))))
		return -ENOMEM;
	struct dd_job_spec spec = {.kind = "noop", .priority = DD_PRIO_NORMAL, .node = -1,
				   .shard = -1};
	struct dd_job_spec specs[BATCH];
	for (int i = 0; i < BATCH; i++)
		specs[i] = spec;
	uint64_t sent = 0;
	while (sent < n) {
		size_t k = n - sent < BATCH ? n - sent : BATCH, done = 0;
		int r = dd_submit_batch(e, specs, k, DD_SUBMIT_BLOCK, run.ids + sent, &done);
		sent += done;
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	run.nids = n;
	/* all ended and, when durable, in the store: a lookup should not
	 * race the store's applier */
	for (uint64_t i = 0; i < n; i++) {
		int r = dd_wait(e, run.ids[i], 60000000000ull, NULL);
		if (r < 0)
			return r;
	}
	struct dd_stats st;
	for (int tries = 0; tries < 30000; tries++) {
		dd_stats(e, &st);
		bool applied = true;
		for (unsigned s = 0; s < st.nshards; s++)
			applied &= st.shard[s].applied_lsn >= st.shard[s].durable_lsn;
		if (applied)
			break;
		usleep(1000);
	}
	return 0;
}

static void reset_run(void)
{
	for (unsigned i = 0; i < run.nhists; i++)
		free(run.hists[i]);
	run.nhists = 0;
	free(run.ids);
	run.ids = NULL;
	run.nids = 0;
	atomic_store(&run.in_window, 0);
	atomic_store(&run.all, 0);
	atomic_store(&run.failed, 0);
	atomic_store(&run.lookups, 0);
	atomic_store(&run.misses, 0);
}

/* Starts the engine of a run: recovery said, durable accounting sized for
 * the run, the handlers, and the jobs --jobs-in-state puts in the state.
 * 0, or -1 after saying why (the engine destroyed). */
static int start_engine(const struct opts *o, double rate, const char *state_dir,
			const struct dd_config *cfg, struct dd_engine **out)
{
	int r;
	struct dd_engine *e;
	if ((r = dd_engine_create(cfg, &e)) < 0) {
		fprintf(stderr, "std-r: cannot start the engine: %s\n", dd_strerror(r));
		return -1;
	}
	run.e = e;
	run.exec = o->kind == KIND_EXEC;
	if (state_dir) {
		struct dd_recovery rec;
		if (dd_engine_recovery(e, &rec) == 0 && (rec.jobs_loaded || rec.records_replayed))
			fprintf(stderr, "std-r: recovered %s: %" PRIu64 " jobs back in memory (%" PRIu64
				" retried, %" PRIu64 " lost), %" PRIu64 " log records replayed\n",
				state_dir, rec.jobs_loaded, rec.jobs_retried, rec.jobs_lost,
				rec.records_replayed);
		double secs = o->warmup_s + o->duration_s + 6;
		double per = (rate > 0 ? rate * 1.25 : 8e6) * secs + 100000;
		if (acct_init(dd_engine_shards(e), (uint64_t)per) < 0) {
			fprintf(stderr, "std-r: out of memory for durable accounting\n");
			dd_engine_destroy(e);
			return -1;
		}
	}
	if ((r = dd_handler_register(e, "noop", noop_handler, NULL)) < 0 ||
	    (r = dd_handler_register(e, "lookup", lookup_handler, NULL)) < 0) {
		fprintf(stderr, "std-r: cannot register handlers: %s\n", dd_strerror(r));
		dd_engine_destroy(e);
		return -1;
	}
	if (o->jobs_in_state && (r = fill_state(e, o->jobs_in_state)) < 0) {
		fprintf(stderr, "std-r: cannot put %" PRIu64 " jobs in the state: %s\n",
			o->jobs_in_state, dd_strerror(r));
		dd_engine_destroy(e);
		return -1;
	}
	*out = e;
	return 0;
}

/* The BATCH specs the generator submits over and over (@ex: the exec
 * kind's). Returns the payload they share (the caller frees it), or NULL
 * for none. */
static char *make_specs(const struct opts *o, struct dd_job_spec *specs,
			const struct dd_exec_spec *ex)
{
	memset(specs, 0, BATCH * sizeof(*specs));
	char *payload = o->payload ? malloc(o->payload) : NULL;
	if (payload)
		memset(payload, 'x', o->payload);
	for (int i = 0; i < BATCH; i++) {
		specs[i].payload = payload;
		specs[i].payload_len = payload ? o->payload : 0;
		specs[i].kind = o->kind == KIND_LOOKUP ? "lookup" : o->kind == KIND_EXEC ? "exec" : "noop";
		specs[i].exec = o->kind == KIND_EXEC ? ex : NULL;
		specs[i].priority = DD_PRIO_NORMAL;
		specs[i].node = -1;
		specs[i].shard = -1;
	}
	return payload;
}

static void pin_generator(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		fprintf(stderr, "std-r: cannot pin the generator to CPU %d; running unpinned\n", cpu);
}

/* Closed loop, with every job allowed in flight: waits a little for one
 * to end. */
static void wait_for_room(bool exec)
{
	if (exec) {
		/* processes take milliseconds: sleep until one ends rather
		 * than poll, which would take a CPU from them */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 10000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		sem_timedwait(&run.room, &until);
		return;
	}
	struct timespec ts = {0, 20000};
	nanosleep(&ts, NULL);
}

/* The generator's side of a run. */
struct gen {
	const struct opts *o;
	struct dd_engine *e;
	struct dd_job_spec *specs;
	double rate;
	uint64_t start, from, to;   /* CLOCK_MONOTONIC ns: warm-up from start, the window [from, to) */
	uint64_t inflight;          /* closed loop: jobs in flight at most */
	uint64_t preloaded;         /* ends counted before the run (--jobs-in-state) */
	bool durable;
	struct dd_stats_window *win; /* or NULL */
	struct dd_stats *st;
	/* what it did */
	uint64_t sent, eagain;
	uint64_t lsn_from; /* durable records when the window began */
	bool failed;       /* a submit failed: the run stopped */
};

/* Submits until the window's end: open loop at g->rate, closed (at most
 * g->inflight in flight) when it is 0; a progress line a second. */
static void generate(struct gen *g)
{
	const struct opts *o = g->o;
	struct dd_engine *e = g->e;
	struct dd_job_spec *specs = g->specs;
	uint64_t ids[BATCH];
	bool in_window = false;
	double interval = g->rate > 0 ? 1e9 / g->rate : 0;
	uint64_t sent = 0, next_progress = g->start + 1000000000ull, last_done = 0;
	wait_until(g->start);
	for (;;) {
		uint64_t now = dd_mono_ns();
		if (now >= g->to)
			break;
		size_t n;
		if (g->rate > 0) {
			uint64_t due = (uint64_t)((double)(now - g->start) / interval) + 1;
			if (due <= sent) {
				wait_until(g->start + (uint64_t)((double)sent * interval));
				continue;
			}
			n = due - sent < BATCH ? due - sent : BATCH;
			for (size_t i = 0; i < n; i++)
				specs[i].intended_ns = g->start + (uint64_t)((double)(sent + i) * interval);
		} else {
			/* Closed loop: bounded jobs in flight, or the queue (and so
			 * every latency) would grow for as long as the run lasts. */
			uint64_t ended = atomic_load_explicit(&run.all, memory_order_relaxed) - g->preloaded;
			if (sent - ended >= g->inflight) {
				wait_for_room(o->kind == KIND_EXEC);
				continue;
			}
			n = sent - ended + BATCH > g->inflight ? g->inflight - (sent - ended) : BATCH;
			for (size_t i = 0; i < n; i++)
				specs[i].intended_ns = now;
		}
		if (!in_window && now >= g->from) {
			if (g->durable) {
				dd_stats(e, g->st);
				g->lsn_from = durable_records(g->st);
			}
			if (g->win)
				dd_stats_window_read(e, g->win, g->st); /* the window starts now */
			in_window = true;
		}
		size_t done = 0;
		int r = dd_submit_batch(e, specs, n, DD_SUBMIT_BLOCK, ids, &done);
		if (g->durable)
			for (size_t i = 0; i < done; i++)
				acct_submitted(ids[i], specs[i].intended_ns);
		if (r < 0 && r != -EAGAIN) {
			fprintf(stderr, "std-r: submit failed: %s\n", dd_strerror(r));
			g->failed = true;
			break;
		}
		g->eagain += r == -EAGAIN;
		sent += done;
		if (!o->quiet && now >= next_progress) {
			dd_stats(e, g->st);
			fprintf(stderr, "std-r: %5.1fs  rate %8.0f/s  p99 %8.2f µs so far%s\n",
				(double)(now - g->start) / 1e9, (double)(g->st->total.succeeded - last_done),
				p99_so_far(g->st) / 1e3, now < g->from ? "  (warm-up)" : "");
			last_done = g->st->total.succeeded;
			next_progress += 1000000000ull;
		}
	}
	g->sent = sent;
}

/* The run's figures into @res, once the engine is gone. */
static void fill_result(const struct gen *g, const struct dd_config *cfg,
			const struct dd_hist_summary *engine_lat, uint64_t lsn_to,
			struct run_result *res)
{
	const struct opts *o = g->o;
	res->mode = "embedded";
	res->kind = kind_name(o->kind);
	res->durability = o->durability;
	res->inline_exec = cfg->inline_handlers;
	res->offered = g->rate;
	res->duration_s = o->duration_s;
	res->warmup_s = o->warmup_s;
	res->jobs_in_state = o->jobs_in_state;
	res->store_retain = cfg->store_retain_count == SIZE_MAX ? UINT64_MAX : cfg->store_retain_count;
	res->dispatches_per_sec = (double)atomic_load(&run.in_window) / o->duration_s;
	res->ring_full = g->eagain;
	res->failed = atomic_load(&run.failed);
	res->lookups = atomic_load(&run.lookups);
	res->lookup_misses = atomic_load(&run.misses);
	for (unsigned i = 0; i < run.nhists; i++)
		dd_tel_shist_merge_into(res->lat_hist, run.hists[i]);
	if (res->lat_hist->count)
		result_summarise(res->lat_hist, &res->lat);
	else
		res->lat = *engine_lat;
	if (g->durable) {
		const struct dd_tel_hist *ah = acct_hist();
		dd_tel_hist_merge(res->ack_hist, ah);
		result_summarise(res->ack_hist, &res->ack);
		res->state_tx_per_sec = (double)(lsn_to - g->lsn_from) / o->duration_s;
		acct_free();
	}
}

int embedded_run(const struct opts *o, double rate, const char *state_dir, struct run_result *res)
{
	struct dd_config cfg;
	configure(o, state_dir, &cfg);
	reset_run();
	sem_init(&run.room, 0, 0);
	run.from = run.to = UINT64_MAX; /* nothing counts before the window is set */
	struct dd_engine *e;
	if (start_engine(o, rate, state_dir, &cfg, &e) < 0)
		return 1;
	struct gen g = {.o = o, .e = e, .rate = rate, .durable = state_dir != NULL,
			.preloaded = atomic_load(&run.all)};

	static struct dd_job_spec specs[BATCH];
	const char *argv[] = {o->cmd ? o->cmd : "/bin/true", NULL};
	struct dd_exec_spec ex = {.argv = argv};
	char *payload = make_specs(o, specs, &ex);
	g.specs = specs;
	/* processes take milliseconds: a few in flight per worker is plenty */
	g.inflight = o->kind == KIND_EXEC && o->inflight == 8192 ? 64 : o->inflight;
	if (o->gen_cpu >= 0)
		pin_generator(o->gen_cpu);
	/* the engine's histograms over the window: exec's dispatch latency,
	 * everyone's queue wait */
	if (dd_stats_window_create(e, &g.win) < 0)
		g.win = NULL;
	struct dd_stats *st = calloc(1, sizeof(*st));
	if (!st) {
		dd_engine_destroy(e);
		return 1;
	}
	g.st = st;
	g.start = dd_mono_ns() + 1000000;
	g.from = g.start + (uint64_t)(o->warmup_s * 1e9);
	g.to = g.from + (uint64_t)(o->duration_s * 1e9);
	run.from = g.from;
	run.to = g.to;
	acct_window(g.from, g.to);

	generate(&g);

	uint64_t lsn_to = 0; /* durable records at the window's end */
	if (g.durable) {
		dd_stats(e, st);
		lsn_to = durable_records(st);
	}
	if (g.win) /* the window's DISPATCH histogram, before the drain */
		dd_stats_window_read(e, g.win, st);
	struct dd_hist_summary engine_lat = st->total.hist[DD_HIST_DISPATCH];
	res->queue_wait = st->total.hist[DD_HIST_QUEUE_WAIT];
	/* Let the jobs intended inside the window finish before reading. */
	uint64_t drain_deadline = dd_mono_ns() + (o->kind == KIND_EXEC ? 30 : 5) * 1000000000ull;
	while (atomic_load(&run.all) - g.preloaded < g.sent && dd_mono_ns() < drain_deadline)
		usleep(1000);
	dd_stats(e, st);
	result_take_probe(res, st);
	res->shards = st->nshards;
	res->workers = cfg.inline_handlers ? 0 : st->shard[0].workers;
	res->spin_ns = st->spin_ns;
	res->parks = st->total.parks;
	res->wakeups = st->total.wakeups;
	res->log_records = st->total.log_records;
	res->log_batches = st->total.log_batches;
	res->state_error = st->total.state_error;
	if (g.win)
		dd_stats_window_destroy(g.win);
	dd_engine_destroy(e);
	free(st);
	free(payload);

	fill_result(&g, &cfg, &engine_lat, lsn_to, res);
	reset_run();
	sem_destroy(&run.room);
	return g.failed ? 1 : 0;
}
