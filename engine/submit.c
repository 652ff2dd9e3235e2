/* dd_submit(): validation, routing, and the producer side of the rings.
 *
 * A batch is cut into runs of jobs that go to the same shard and priority
 * lane; each run is prepared off-ring (payload copies can fail and must not
 * leave a claimed cell unpublished), then claimed with one CAS, numbered
 * with one fetch_add and published. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "array.h"
#include "durable/durable.h"
#include "idem.h"
#include "pool.h"
#include "proc.h"
#include "reactor.h"
#include "registry.h"
#include "state.h"
#include "submit.h"

#define RUN_MAX 64

static __thread unsigned tl_rr; /* per-thread round-robin: no shared counter */

static uint64_t corr_dep(const struct dd_job_spec *sp);

static unsigned route(struct dd_engine *e, const struct dd_job_spec *sp, uint64_t key_hash)
{
	if (sp->shard >= 0)
		return (unsigned)sp->shard;
	uint64_t corr = sp->array ? corr_dep(sp) : 0;
	if (corr)
		return dd_id_shard(corr); /* its elements follow the other array's */
	if (sp->idem_key)
		return (unsigned)(key_hash % e->nshards); /* one home per key */
	if (sp->node >= 0) {
		unsigned m = 0, pick;
		for (unsigned i = 0; i < e->nshards; i++)
			m += e->shards[i].node == sp->node;
		pick = tl_rr++ % m;
		for (unsigned i = 0; i < e->nshards; i++)
			if (e->shards[i].node == sp->node && pick-- == 0)
				return i;
	}
	return e->nshards == 1 ? 0 : tl_rr++ % e->nshards;
}

/* The dependency an aftercorr names, or 0. */
static uint64_t corr_dep(const struct dd_job_spec *sp)
{
	for (uint32_t i = 0; sp->dep_kinds && i < sp->ndeps; i++)
		if (sp->dep_kinds[i] == DD_DEP_AFTERCORR)
			return sp->deps[i];
	return 0;
}

/* The last kind resolved: a batch of one kind looks its handler up once. */
struct kind_cache {
	const char *kind;
	int handler;
};

static int validate(struct dd_engine *e, const struct dd_job_spec *sp, struct kind_cache *kc,
		    int *handler)
{
	if (!sp->kind || (sp->payload_len && !sp->payload) || (sp->ndeps && !sp->deps))
		return -EINVAL;
	if (sp->priority < 0 || sp->priority >= DD_PRIO_LEVELS)
		return -EINVAL;
	if (sp->durability < DD_DURABILITY_DEFAULT || sp->durability > DD_DURABILITY_FSYNC ||
	    (sp->flags & ~(DD_JOB_STRICT | DD_JOB_OWNER)))
		return -EINVAL;
	if (sp->exec && (sp->payload_len || !sp->exec->argv || !sp->exec->argv[0]))
		return -EINVAL; /* a process job's payload is its spec */
	uint64_t count;
	int ar = sp->array ? dd_array_check(sp->array, &count) : 0;
	if (ar < 0)
		return ar;
	if (sp->array && sp->exec && (sp->exec->flags & DD_EXEC_STDIN_FD))
		return -EINVAL; /* elements cannot share one standard input */
	if (sp->shard >= (int)e->nshards || sp->shard < -1)
		return -EINVAL;
	if (sp->node < -1 || sp->node >= e->topo->nnodes)
		return -EINVAL;
	if (sp->payload_len > DD_PAYLOAD_MAX || sp->ndeps > DD_DEPS_MAX)
		return -E2BIG;
	if (sp->idem_key && (!sp->idem_key[0] || strlen(sp->idem_key) > DD_KEY_MAX))
		return sp->idem_key[0] ? -E2BIG : -EINVAL;
	if (sp->name && (!sp->name[0] || strnlen(sp->name, DD_NAME_MAX + 1) > DD_NAME_MAX))
		return sp->name[0] ? -E2BIG : -EINVAL;
	unsigned corr = 0;
	for (uint32_t i = 0; i < sp->ndeps; i++) {
		uint8_t k = sp->dep_kinds ? sp->dep_kinds[i] : DD_DEP_AFTEROK;
		if (k >= DD_DEP_KINDS)
			return -EINVAL;
		corr += k == DD_DEP_AFTERCORR;
	}
	/* aftercorr: an array on one other array, made on its shard */
	if (corr > 1 || (corr && !sp->array) ||
	    (corr && sp->shard >= 0 && (unsigned)sp->shard != dd_id_shard(corr_dep(sp))))
		return -EINVAL;
	for (uint32_t i = 0; i < sp->ndeps; i++) {
		uint64_t d = sp->deps[i];
		unsigned sh = dd_id_shard(d);
		uint64_t seq = d & DD_ID_SEQ_MASK;
		if (sh >= e->nshards || seq == 0 ||
		    seq >= atomic_load_explicit(&e->shards[sh].next_seq, memory_order_acquire))
			return DD_EDEPS;
	}
	if (sp->exec) {
		if (!dd_pool_can_hold(e, sp->exec->cpus ? sp->exec->cpus : 1, sp->exec->mem))
			return DD_ERESOURCES;
		int h = dd_kind_for_exec(e, sp->kind);
		if (h < 0)
			return h == -ENOENT ? DD_ENOHANDLER : h;
		*handler = h;
		return 0;
	}
	if (sp->kind != kc->kind) {
		int h = dd_handler_find(e, sp->kind);
		if (h < 0)
			return DD_ENOHANDLER;
		kc->kind = sp->kind;
		kc->handler = h;
	}
	*handler = kc->handler;
	return 0;
}

void dd_sub_release(struct dd_shard *s, struct dd_sub *m)
{
	if (m->payload_len > DD_INLINE_PAYLOAD)
		dd_numa_arena_free(s->arena, m->payload.heap, m->payload_len);
	if (m->ndeps > DD_INLINE_DEPS)
		dd_numa_arena_free(s->arena, m->deps.heap, m->ndeps * sizeof(uint64_t));
	dd_numa_arena_free(s->arena, m->kinds, m->ndeps);
	if (m->key)
		dd_numa_arena_free(s->arena, m->key, strlen(m->key) + 1);
	if (m->name)
		dd_numa_arena_free(s->arena, m->name, strlen(m->name) + 1);
	if (m->stdin_fd >= 0)
		dd_stdin_release(s->eng, m->stdin_fd);
	if (m->arr && m->arr->refs == 0)
		dd_array_drop(s, m->arr); /* an array's own job that never arrived */
}

void dd_stdin_release(struct dd_engine *e, int fd)
{
	close(fd);
	atomic_fetch_sub_explicit(&e->stdin_held, 1, memory_order_relaxed);
}

/* A copy of the submitter's descriptor @fd, counted against stdin_max.
 * Returns it, or -EMFILE (too many held) or another -errno. */
static int stdin_take(struct dd_engine *e, int fd)
{
	if (atomic_fetch_add_explicit(&e->stdin_held, 1, memory_order_relaxed) >= e->stdin_max) {
		atomic_fetch_sub_explicit(&e->stdin_held, 1, memory_order_relaxed);
		return -EMFILE;
	}
	int c = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (c < 0) {
		c = -errno;
		atomic_fetch_sub_explicit(&e->stdin_held, 1, memory_order_relaxed);
	}
	return c;
}

static int sub_prepare(struct dd_shard *s, const struct dd_job_spec *sp, int handler,
		       uint64_t now, uint64_t key_hash, struct dd_sub *m)
{
	m->id = 0;
	m->intended_ns = sp->intended_ns ? sp->intended_ns : now;
	m->not_before_ns = sp->delay_ns ? now + sp->delay_ns : 0;
	m->timeout_ns = sp->timeout_ns;
	m->backoff_ns = sp->backoff_ns ? sp->backoff_ns : 10000000ull;
	m->backoff_max_ns = sp->backoff_max_ns ? sp->backoff_max_ns : 60000000000ull;
	m->max_attempts = sp->max_attempts ? sp->max_attempts : 1;
	m->payload_len = (uint32_t)sp->payload_len;
	m->ndeps = sp->ndeps;
	m->kinds = NULL;
	m->handler = (uint16_t)handler;
	m->priority = (uint8_t)sp->priority;
	m->key = NULL;
	m->name = NULL;
	m->key_hash = key_hash;
	/* a job may lower the engine's level, never raise it */
	uint8_t lvl = (uint8_t)s->eng->cfg.durability;
	m->level = sp->durability && sp->durability < lvl ? (uint8_t)sp->durability : lvl;
	m->strict = (sp->flags & DD_JOB_STRICT) && m->level > DD_DURABILITY_NONE;
	m->exec = sp->exec != NULL;
	m->stdin_fd = -1;
	m->arr = NULL;
	if (sp->flags & DD_JOB_OWNER) {
		m->uid = sp->uid;
		m->gid = sp->gid;
	} else {
		m->uid = s->eng->euid; /* cached: no system call on this path */
		m->gid = s->eng->egid;
	}
	void *pay = NULL, *xbuf = NULL;
	uint64_t *deps = NULL;
	const void *src = sp->payload;
	size_t plen = sp->payload_len;
	if (sp->exec) {
		int r = dd_proc_spec_encode(sp->exec, &xbuf, &plen);
		if (r < 0)
			return r;
		src = xbuf;
		m->payload_len = (uint32_t)plen;
	}
	if (plen <= DD_INLINE_PAYLOAD) {
		if (plen)
			memcpy(m->payload.inl, src, plen);
	} else {
		if (!(pay = dd_numa_arena_alloc(s->arena, plen)))
			goto nomem;
		memcpy(pay, src, plen);
		m->payload.heap = pay;
	}
	free(xbuf);
	xbuf = NULL;
	if (sp->ndeps <= DD_INLINE_DEPS) {
		if (sp->ndeps)
			memcpy(m->deps.inl, sp->deps, sp->ndeps * sizeof(uint64_t));
	} else {
		if (!(deps = dd_numa_arena_alloc(s->arena, sp->ndeps * sizeof(uint64_t))))
			goto nomem;
		memcpy(deps, sp->deps, sp->ndeps * sizeof(uint64_t));
		m->deps.heap = deps;
	}
	bool kinds = false;
	for (uint32_t i = 0; sp->dep_kinds && i < sp->ndeps; i++)
		kinds |= sp->dep_kinds[i] != DD_DEP_AFTEROK;
	if (kinds) {
		if (!(m->kinds = dd_numa_arena_alloc(s->arena, sp->ndeps)))
			goto nomem;
		memcpy(m->kinds, sp->dep_kinds, sp->ndeps);
	}
	if (sp->idem_key) {
		size_t len = strlen(sp->idem_key) + 1;
		if (!(m->key = dd_numa_arena_alloc(s->arena, len))) {
			dd_numa_arena_free(s->arena, m->kinds, sp->ndeps);
			goto nomem;
		}
		memcpy(m->key, sp->idem_key, len);
	}
	if ((sp->array && !(m->arr = dd_array_new(s, sp->array))) ||
	    (sp->name && !(m->name = dd_reason_dup(s, sp->name)))) {
		if (m->key)
			dd_numa_arena_free(s->arena, m->key, strlen(m->key) + 1);
		dd_numa_arena_free(s->arena, m->kinds, sp->ndeps);
		dd_array_drop(s, m->arr);
		goto nomem;
	}
	/* last: nothing after it can fail, so no path has to close it */
	if (sp->exec && (sp->exec->flags & DD_EXEC_STDIN_FD) &&
	    (m->stdin_fd = stdin_take(s->eng, sp->exec->stdin_fd)) < 0) {
		int err = m->stdin_fd;
		m->stdin_fd = -1;
		if (m->key)
			dd_numa_arena_free(s->arena, m->key, strlen(m->key) + 1);
		if (m->name)
			dd_numa_arena_free(s->arena, m->name, strlen(m->name) + 1);
		dd_array_drop(s, m->arr);
		dd_numa_arena_free(s->arena, m->kinds, sp->ndeps);
		dd_numa_arena_free(s->arena, pay, plen);
		dd_numa_arena_free(s->arena, deps, sp->ndeps * sizeof(uint64_t));
		return err;
	}
	return 0;
nomem:
	free(xbuf);
	dd_numa_arena_free(s->arena, pay, plen);
	dd_numa_arena_free(s->arena, deps, sp->ndeps * sizeof(uint64_t));
	return -ENOMEM;
}

/* Waits a little for room: yields first, then sleeps, so a blocked
 * submitter does not steal the CPU its reactor needs. */
static void backoff(unsigned *round)
{
	if (++*round < 16) {
		sched_yield();
	} else {
		struct timespec ts = {0, 50000};
		nanosleep(&ts, NULL);
	}
}

/* Publishes the prepared run @m[0..n) to shard @s, lane @prio. Returns how
 * many went in (fewer only without DD_SUBMIT_BLOCK); ids[] filled. */
static size_t publish_run(struct dd_engine *e, struct dd_shard *s, unsigned prio,
			  struct dd_sub *m, size_t n, unsigned flags, uint64_t *ids, int *err)
{
	size_t done = 0;
	unsigned round = 0;
	if (dd_tls_reactor == s)
		flags &= ~(unsigned)DD_SUBMIT_BLOCK; /* it would wait for ourselves */
	while (done < n) {
		if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
			*err = DD_ESHUTDOWN;
			break;
		}
		int serr = dd_durable_error(s);
		if (serr) {
			/* the log or the store cannot take it: say why, keep nothing */
			*err = serr;
			break;
		}
		/* The store far behind: its applier needs the CPU that taking
		 * more jobs would use, and every ended job waits in memory for
		 * it. Without this a load the store cannot follow grows memory
		 * without bound (seen: 6.6 M records, 2.5 GB in 30 s). */
		if (dd_durable_behind(s, e->cfg.store_lag_max)) {
			if (!(flags & DD_SUBMIT_BLOCK)) {
				*err = -EAGAIN;
				break;
			}
			backoff(&round);
			continue;
		}
		size_t want = n - done;
		int64_t live = atomic_fetch_add_explicit(&s->live, (int64_t)want,
							 memory_order_relaxed);
		if ((size_t)live + want > e->cfg.max_live_jobs) {
			atomic_fetch_sub_explicit(&s->live, (int64_t)want, memory_order_relaxed);
			if (!(flags & DD_SUBMIT_BLOCK)) {
				*err = -EAGAIN;
				break;
			}
			backoff(&round);
			continue;
		}
		uint64_t pos;
		size_t got = dd_queue_mpsc_claim(s->sub[prio], want, &pos);
		if (got < want)
			atomic_fetch_sub_explicit(&s->live, (int64_t)(want - got), memory_order_relaxed);
		if (got == 0) {
			dd_queue_wake_notify(&s->wake); /* full: make sure it drains */
			if (!(flags & DD_SUBMIT_BLOCK)) {
				*err = -EAGAIN;
				break;
			}
			backoff(&round);
			continue;
		}
		/* Numbered only once the cells are ours, so that every id handed
		 * out reaches the reactor. */
		/* an array (alone in its run) takes the ids of its elements too */
		uint64_t extra = got == 1 && m[done].arr ? m[done].arr->count : 0;
		uint64_t seq = atomic_fetch_add_explicit(&s->next_seq, got + extra,
							 memory_order_acq_rel);
		/* Durable state: wait until these ids are reserved on the device
		 * (the reactor keeps a million ahead: this almost never waits).
		 * The reactor itself cannot wait for itself. */
		if (seq + got + extra > atomic_load_explicit(&s->reserved_seq, memory_order_acquire) &&
		    dd_tls_reactor != s) {
			unsigned spins = 0;
			while (seq + got + extra >
				       atomic_load_explicit(&s->reserved_seq, memory_order_acquire) &&
			       !atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
				dd_queue_wake_notify(&s->wake);
				backoff(&spins);
			}
		}
		for (size_t i = 0; i < got; i++) {
			struct dd_sub *x = &m[done + i];
			x->id = ((uint64_t)s->index << DD_ID_SHARD_SHIFT) | (seq + i);
			if (x->arr)
				x->arr->id = x->id;
			ids[done + i] = x->id;
			memcpy(dd_queue_mpsc_slot(s->sub[prio], pos + i), x, sizeof(*x));
			dd_queue_mpsc_publish(s->sub[prio], pos + i);
		}
		done += got;
		round = 0;
		dd_queue_wake_notify(&s->wake);
	}
	for (size_t i = done; i < n; i++)
		dd_sub_release(s, &m[i]);
	return done;
}

/* A keyed job: check and bind the key under its stripe lock. It never
 * waits for room while it holds that lock: the reactor takes the lock to
 * forget the key of a job it evicts, and evicting can be what makes room.
 * Waiting under the lock deadlocked a keyed DD_SUBMIT_BLOCK submit with
 * its reactor (test_durable.c, log_is_pruned_and_retention_runs_under_load
 * with keyed jobs). So it tries without waiting, and on no room lets go of
 * the lock, backs off and checks the key again from the start. */
static int submit_keyed_once(struct dd_engine *e, const struct dd_job_spec *sp, int handler,
			     unsigned flags, uint64_t now, uint64_t *id, bool *known);

static int submit_keyed(struct dd_engine *e, const struct dd_job_spec *sp, int handler,
			unsigned flags, uint64_t now, uint64_t *id, bool *known)
{
	unsigned round = 0;
	for (;;) {
		int r = submit_keyed_once(e, sp, handler, flags & ~(unsigned)DD_SUBMIT_BLOCK, now,
					  id, known);
		if (r != -EAGAIN || !(flags & DD_SUBMIT_BLOCK))
			return r;
		backoff(&round);
	}
}

static int submit_keyed_once(struct dd_engine *e, const struct dd_job_spec *sp, int handler,
			     unsigned flags, uint64_t now, uint64_t *id, bool *known)
{
	/* the key is the owner's: the uid sub_prepare() gives the job */
	uint32_t uid = (sp->flags & DD_JOB_OWNER) ? sp->uid : e->euid;
	uint64_t h = dd_idem_hash(uid, sp->idem_key);
	struct dd_shard *s = &e->shards[route(e, sp, h)];
	struct dd_sub m;
	int r = 0;
	dd_idem_lock(e->idem, h);
	uint64_t found = dd_idem_find(e->idem, h, uid, sp->idem_key);
	struct dd_state_store *st = dd_durable_store(s);
	/* Keys from earlier runs (or whose job left memory) are in the store;
	 * a key bound in this run is in memory until its job is evicted, and
	 * eviction waits for the store. */
	if (!found && st && dd_state_store_idem_find(st, uid, sp->idem_key, &found) < 0)
		found = 0;
	*known = found != 0;
	if (found) {
		*id = found;
		goto out;
	}
	if ((r = sub_prepare(s, sp, handler, now, h, &m)) < 0)
		goto out;
	if (publish_run(e, s, (unsigned)sp->priority, &m, 1, flags, id, &r) == 1)
		r = dd_idem_insert(e->idem, h, uid, sp->idem_key, *id);
	/* An insert that failed (ENOMEM) leaves the job submitted but unkeyed:
	 * reported, since a retry by the caller could then duplicate it. */
out:
	dd_idem_unlock(e->idem, h);
	return r;
}

int dd_submit_batch_known(struct dd_engine *e, const struct dd_job_spec *specs, size_t n,
			  unsigned flags, uint64_t *ids, bool *known, size_t *submitted)
{
	struct dd_sub run[RUN_MAX];
	size_t i = 0;
	int r = 0;
	uint64_t now = dd_mono_ns();
	struct kind_cache kc = {NULL, -1};

	while (i < n && r == 0) {
		if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
			r = DD_ESHUTDOWN;
			break;
		}
		const struct dd_job_spec *sp = &specs[i];
		int handler = -1;
		if ((r = validate(e, sp, &kc, &handler)) < 0)
			break;
		if (sp->idem_key) {
			bool was = false;
			if ((r = submit_keyed(e, sp, handler, flags, now, &ids[i], &was)) == 0) {
				if (known)
					known[i] = was;
				i++;
			}
			continue;
		}
		/* Gather a run: same shard, same lane, no keys. */
		unsigned sh = route(e, sp, 0);
		struct dd_shard *s = &e->shards[sh];
		unsigned prio = (unsigned)sp->priority;
		size_t k = 0;
		while (k < RUN_MAX && i + k < n) {
			const struct dd_job_spec *q = &specs[i + k];
			if (k > 0) {
				if (q->idem_key || q->array || q->priority != sp->priority ||
				    (q->shard >= 0 && q->shard != (int)sh) ||
				    (q->node >= 0 && q->node != s->node))
					break;
				if ((r = validate(e, q, &kc, &handler)) < 0)
					break;
			}
			if ((r = sub_prepare(s, q, handler, now, 0, &run[k])) < 0)
				break;
			k++;
			if (q->array)
				break; /* alone: it numbers its elements too */
		}
		size_t got = publish_run(e, s, prio, run, k, flags, ids + i, &r);
		if (known)
			memset(known + i, 0, got * sizeof(bool));
		i += got;
		if (got < k && r == 0)
			r = -EAGAIN;
	}
	if (submitted)
		*submitted = i;
	return r;
}

int dd_submit_batch(struct dd_engine *e, const struct dd_job_spec *specs, size_t n,
		    unsigned flags, uint64_t *ids, size_t *submitted)
{
	return dd_submit_batch_known(e, specs, n, flags, ids, NULL, submitted);
}

int dd_submit(struct dd_engine *e, const struct dd_job_spec *spec, unsigned flags, uint64_t *id)
{
	uint64_t tmp;
	return dd_submit_batch(e, spec, 1, flags, id ? id : &tmp, NULL);
}
