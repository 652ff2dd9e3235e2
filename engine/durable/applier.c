/* The shard's io thread: follows the durable part of the log into the LMDB
 * store in large transactions, away from the reactor; trims ended jobs by
 * age and count in bounded transactions; deletes log segments once the
 * store covering them is on the device. It reads the log back from the
 * page cache rather than taking records from the reactor, so the reactor
 * hands it nothing but one LSN, and it runs the same code as recovery. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exec.h"
#include "internal.h"
#include "placement.h"
#include "state.h"
#include "stats.h"
#include "stretch.h"

/* records per transaction: each commit is an fdatasync (measured:
 * docs/BENCHMARKS.md, "Measured choices: applier transaction size") */
#define APPLY_MAX 131072
#define IDLE_NS 1000000ull       /* poll the LSN this often when idle */
#define MAINT_NS 100000000ull    /* retention and pruning */
#define TRIM_BUDGET 8192         /* deletions per transaction */
#define GATHER_MIN 16384         /* a backlog this large is applied at once... */
#define GATHER_NS 20000000ull    /* ...a smaller one after this long */
#define STRETCH_RECS 256         /* records between naps (stretch.c) */


static uint64_t rt_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	nanosleep(&ts, NULL);
}

/* Opens the segment holding @lsn. */
static int seek(struct dd_state_reader *rd, int dirfd, uint64_t lsn)
{
	uint64_t *firsts;
	size_t n;
	int r = dd_state_segments(dirfd, &firsts, &n);
	if (r < 0)
		return r;
	size_t i = dd_state_segment_of(firsts, n, lsn);
	uint64_t pick = i < n ? firsts[i] : 0;
	free(firsts);
	if (!pick)
		return -ENOENT;
	return dd_state_reader_open(rd, dirfd, pick, pick - 1);
}

/* Deleting a log segment (64 MiB) takes ext4 tens of milliseconds, nearly
 * all of it waiting on its journal, not the CPU, and the store must not
 * fall behind meanwhile (measured: docs/BENCHMARKS.md, "Measured choices:
 * segment retiring"). So a helper thread retires them (most become
 * spares, a rename: state/spare.c; the rest are deleted), one round at a
 * time: a round that finds the last one still at it leaves its segments
 * for the next (they are still there to find). */
struct pruner {
	pthread_t thread;
	bool running;
	_Atomic bool done;
	int dirfd;
	uint64_t *firsts;
	size_t n;
	uint64_t seg_bytes;
};

static void *prune_main(void *arg)
{
	struct pruner *p = arg;
	dd_state_wal_retire(p->dirfd, p->firsts, p->n, p->seg_bytes);
	atomic_store_explicit(&p->done, true, memory_order_release);
	return NULL;
}

/* Waits for the helper when @wait, else only reaps one that is done.
 * Returns whether none is running now. */
static bool prune_reap(struct pruner *p, bool wait)
{
	if (!p->running)
		return true;
	if (!wait && !atomic_load_explicit(&p->done, memory_order_acquire))
		return false;
	pthread_join(p->thread, NULL);
	free(p->firsts);
	p->firsts = NULL;
	p->running = false;
	return true;
}

/* Retires the segments the store covers: on the helper thread, or here
 * when @wait (the applier's last round) or when no thread can be made. */
static void prune(struct pruner *p, int dirfd, struct dd_state_store *st, uint64_t seg_bytes,
		  bool wait)
{
	if (!prune_reap(p, wait))
		return;
	uint64_t *firsts;
	size_t n;
	if (dd_state_wal_prunable(dirfd, st, dd_state_store_checkpoint(st), &firsts, &n) < 0 || !n)
		return;
	*p = (struct pruner){.dirfd = dirfd, .firsts = firsts, .n = n, .seg_bytes = seg_bytes};
	if (!wait && pthread_create(&p->thread, NULL, prune_main, p) == 0) {
		p->running = true; /* it inherits this thread's nice 19 and CPUs */
		return;
	}
	dd_state_wal_retire(dirfd, firsts, n, seg_bytes);
	free(firsts);
	p->firsts = NULL;
}

static void maintain(struct dd_shard *s, struct dd_state_store *st, int dirfd,
		     struct dd_durable *v, struct pruner *pr, bool last)
{
	const struct dd_config *c = &s->eng->cfg;
	static _Thread_local uint64_t exec_ids[TRIM_BUDGET];
	static _Thread_local uint32_t exec_att[TRIM_BUDGET];
	for (int round = 0; round < 16; round++) {
		size_t nexec = 0;
		long gone = dd_state_store_trim_exec(st, rt_ns(), c->store_retain_ns,
						     c->store_retain_count, TRIM_BUDGET, exec_ids,
						     exec_att, &nexec);
		/* a process job that left the store takes every attempt's
		 * output with it */
		for (size_t i = 0; i < nexec; i++)
			for (uint32_t a = 1; a <= exec_att[i]; a++)
				for (int stream = 1; stream <= 2; stream++) {
					char path[4200];
					if (dd_output_path(s->eng, exec_ids[i], a, stream, path,
							   sizeof(path)) == 0)
						unlink(path);
				}
		if (gone < TRIM_BUDGET)
			break;
	}
	prune(pr, dirfd, st, c->segment_bytes, last);
	atomic_store_explicit(&v->store_jobs, dd_state_store_count(st), memory_order_relaxed);
	atomic_store_explicit(&v->store_map, dd_state_store_map_size(st), memory_order_relaxed);
}

/* The applier runs at nice 19, in the hot path's idle time. When the
 * store falls so far behind that submissions are being held back (half of
 * store_lag_max), the hot path has nothing better to do than wait for it:
 * then it asks for a fair share (nice 0), and goes back down once caught
 * up. Raising the priority needs CAP_SYS_NICE or RLIMIT_NICE; without
 * them it stays at 19 and the store is only slower to catch up. */
static void pace(struct dd_shard *s, uint64_t durable, uint64_t applied, bool *urgent)
{
	uint64_t lag = durable > applied ? durable - applied : 0, max = s->eng->cfg.store_lag_max;
	bool want = *urgent ? lag > max / 8 : lag > max / 2;
	if (want != *urgent) {
		*urgent = want;
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), want ? 0 : 19);
	}
}

/* The applier's state between turns of its loop. */
struct applier {
	struct dd_shard *s;
	struct dd_state_store *st;
	struct dd_durable *v;
	int dirfd;                /* the log's directory */
	struct dd_state_reader rd; /* where it reads the log back */
	struct dd_state_batch b;  /* records read, not yet applied */
	uint64_t applied;         /* the store holds every record up to here */
	bool fresh;               /* the last read was a second try */
	bool urgent;              /* submitters wait for the store (pace) */
	uint64_t stuck_at, stuck_since; /* a durable record it cannot read */
	uint64_t last_commit;
	struct pruner pr;
	struct dd_stretch stretch;
};

/* Reads the records after a->applied, up to @durable and APPLY_MAX, into
 * a->b. */
static void gather(struct applier *a, uint64_t durable)
{
	struct dd_state_batch *b = &a->b;
	uint64_t want = a->applied + b->n + 1;
	while (b->n < APPLY_MAX && want <= durable) {
		if (b->n && b->n % (2 * STRETCH_RECS) == 0) /* decoding is half the cost */
			dd_stretch_pause(&a->stretch);
		struct dd_logrec rec;
		int rc = dd_state_reader_next(&a->rd, &rec, a->fresh);
		if (rc == DD_LOGREC_OK) {
			a->fresh = false;
			if (rec.lsn < want)
				continue; /* before where we are: already applied */
			if (rec.lsn > want || dd_state_batch_add(b, &a->rd, &rec) < 0)
				break;
			want++;
			continue;
		}
		if (!a->fresh) {
			/* read before the writer got there: read again */
			a->fresh = true;
			continue;
		}
		a->fresh = false;
		/* the segment ends here: the next is named after its first LSN */
		if (b->n == 0 && dd_state_reader_open(&a->rd, a->dirfd, want, want - 1) == 0)
			continue;
		break;
	}
}

/* The log says the record after a->applied is durable but it cannot be
 * read back: say so once, and keep trying (the store lags; the log still
 * has everything for the next recovery). */
static void stuck(struct applier *a)
{
	uint64_t want = a->applied + 1;
	if (!a->stuck_at || a->stuck_at != want) {
		a->stuck_since = dd_mono_ns();
		a->stuck_at = want;
	} else if (a->stuck_since && dd_mono_ns() - a->stuck_since > 5000000000ull) {
		dd_log(a->s->eng, LOG_ERR,
		       "shard %u: cannot read log record %llu back for the store; retrying",
		       a->s->index, (unsigned long long)want);
		a->stuck_since = 0;
	}
	dd_state_reader_close(&a->rd); /* look for its segment again */
}

/* Applies a->b to the store in one transaction. Returns 0, or the error
 * (published for submitters; the batch is dropped, to be read again). */
static int apply(struct applier *a)
{
	struct dd_shard *s = a->s;
	struct dd_durable *v = a->v;
	uint64_t last = a->b.last_lsn;
	int r = dd_state_batch_apply(&a->b, a->st);
	if (r < 0) {
		if (r == -ENOSPC && dd_state_store_map_size(a->st) >= s->eng->cfg.map_max)
			r = DD_ESTOREFULL;
		atomic_store_explicit(&v->store_map, dd_state_store_map_size(a->st),
				      memory_order_relaxed); /* before the error shows */
		if (!atomic_load_explicit(&v->store_err, memory_order_relaxed))
			dd_log(s->eng, LOG_ERR,
			       "shard %u: cannot update the state store: %s; refusing "
			       "submissions until it can",
			       s->index, dd_strerror(r));
		atomic_store_explicit(&v->store_err, r, memory_order_relaxed);
		return r;
	}
	atomic_store_explicit(&v->store_err, 0, memory_order_relaxed);
	a->last_commit = dd_mono_ns();
	a->applied = last;
	atomic_store_explicit(&v->applied_lsn, a->applied, memory_order_release);
	return 0;
}

void *dd_applier_main(void *arg)
{
	struct dd_shard *s = arg;
	struct applier a = {.s = s, .st = dd_durable_store(s), .v = s->dur, .rd = {.fd = -1}};
	struct dd_durable *v = a.v;
	char waldir[4200];
	snprintf(waldir, sizeof(waldir), "%s/wal", v->dir);
	a.dirfd = open(waldir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	a.applied = dd_state_store_checkpoint(a.st);
	uint64_t next_maint = 0;
	/* Below the reactor and the workers: on a small machine this thread
	 * shares their CPUs, and its large transactions must not take a
	 * scheduler slice (milliseconds) from the hot path. It runs in their
	 * idle time; the log, not the store, is what acknowledges a job. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	dd_place_applier(s->eng);
	dd_probe_thread(s->eng, DD_ROLE_IO);
	dd_stretch_init(&a.stretch, (uint64_t)dd_mono_ns());
	dd_state_store_set_pause(a.st, dd_stretch_pause, &a.stretch, STRETCH_RECS);

	for (;;) {
		/* acquire pairs with the reactor's release of durable_lsn */
		uint64_t durable = atomic_load_explicit(&v->durable_lsn, memory_order_acquire);
		bool stop = atomic_load_explicit(&v->stop, memory_order_acquire);
		pace(s, durable, a.applied, &a.urgent);
		/* Retention and log pruning on their clock, busy or not: under a
		 * load that never lets the store catch up, waiting for an idle
		 * moment would let the log and the store grow without end. */
		uint64_t now = (uint64_t)dd_mono_ns();
		if (now >= next_maint && !stop) {
			maintain(s, a.st, a.dirfd, v, &a.pr, false);
			next_maint = now + MAINT_NS;
			dd_stretch_window(&a.stretch, now, a.urgent);
		}
		/* Each store commit syncs its data pages (MDB_NOMETASYNC): let a
		 * small backlog grow for a little while, so that a busy log costs
		 * a few commits a second, not one per log batch. A reader of the
		 * store waits for it (dd_durable_catch_up). */
		if (!stop && a.applied < durable && durable - a.applied < GATHER_MIN &&
		    dd_mono_ns() - a.last_commit < GATHER_NS) {
			nap(IDLE_NS);
			continue;
		}
		if (a.applied >= durable) {
			if (stop)
				break;
			nap(IDLE_NS);
			continue;
		}
		if (a.rd.fd < 0 && seek(&a.rd, a.dirfd, a.applied + 1) < 0) {
			nap(IDLE_NS);
			continue;
		}
		gather(&a, durable);
		if (a.b.n == 0) {
			stuck(&a);
			nap(IDLE_NS);
			continue;
		}
		a.stuck_at = 0;
		if (apply(&a) < 0) {
			if (stop)
				break; /* the log keeps them: recovery applies them later */
			/* Start over from the last applied record, after retention
			 * has had a chance to make room. */
			a.b.n = a.b.len = 0;
			dd_state_reader_close(&a.rd);
			maintain(s, a.st, a.dirfd, v, &a.pr, false);
			nap(MAINT_NS);
		}
	}
	dd_state_store_set_pause(a.st, NULL, NULL, 0); /* the stretch goes with this frame */
	maintain(s, a.st, a.dirfd, v, &a.pr, true);
	dd_state_batch_free(&a.b);
	dd_state_reader_close(&a.rd);
	if (a.dirfd >= 0)
		close(a.dirfd);
	return NULL;
}
