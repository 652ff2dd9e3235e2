/* A shard's reactor: the scheduler loop (DESIGN.md section 3). */
#include "engine.h"
#include "array.h"
#include "command.h"
#include "deps.h"
#include "durable/durable.h"
#include "exec.h"
#include "jobtab.h"
#include "lease.h"
#include "lifecycle.h"
#include "limits.h"
#include "placement.h"
#include "pool.h"
#include "reactor.h"
#include "registry.h"
#include "stats.h"
#include "submit.h"
#include "supervise.h"
#include "uring.h"
#include "worker.h"

#define DD_DRAIN_BUDGET 1024 /* submissions taken per reactor turn */

_Thread_local struct dd_shard *dd_tls_reactor;

static bool shard_ready(void *arg)
{
	struct dd_shard *s = arg;
	if (atomic_load_explicit(&s->eng->stopping, memory_order_relaxed) && !s->stopping)
		return true;
	for (unsigned p = 0; p < DD_PRIO_LEVELS; p++)
		if (dd_queue_mpsc_ready(s->sub[p]))
			return true;
	if (dd_queue_mpsc_ready(s->cmds))
		return true;
	for (unsigned w = 0; w < s->nworkers; w++)
		if (dd_queue_spsc_ready(s->workers[w].done))
			return true;
	return dd_deps_ready(s) || dd_uring_ready(s) ||
	       atomic_load_explicit(&s->out_wake, memory_order_relaxed);
}

static size_t drain_completions(struct dd_shard *s)
{
	struct dd_jobrec *batch[DD_WORKER_INFLIGHT];
	size_t total = 0;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct dd_worker *w = &s->workers[i];
		size_t n = dd_queue_spsc_dequeue(w->done, batch, DD_WORKER_INFLIGHT);
		for (size_t k = 0; k < n; k++)
			dd_job_completed(s, batch[k]);
		w->inflight -= (unsigned)n;
		total += n;
	}
	return total;
}

static size_t drain_submissions(struct dd_shard *s)
{
	struct dd_sub buf[64];
	size_t total = 0;
	/* Urgent lanes first, so a flood of low-priority work cannot hide an
	 * urgent submission behind the budget. */
	for (unsigned p = 0; p < DD_PRIO_LEVELS && total < DD_DRAIN_BUDGET; p++) {
		size_t n;
		while (total < DD_DRAIN_BUDGET &&
		       (n = dd_queue_mpsc_dequeue(s->sub[p], buf, 64)) > 0) {
			for (size_t i = 0; i < n; i++)
				dd_tab_prefetch(s, buf[i].id);
			for (size_t i = 0; i < n; i++)
				dd_job_arrive(s, &buf[i]);
			total += n;
		}
	}
	return total;
}

void dd_start_attempt(struct dd_shard *s, struct dd_jobrec *j, int worker)
{
	j->attempt++;
	j->worker = (int32_t)worker;
	j->started_ns = s->now;
	if (worker >= 0)
		j->flags |= JF_ON_WORKER;
	dd_shard_set_state(s, j, DD_RUNNING);
	dd_log_start(s, j);
	dd_st_add(s, ST_DISPATCHED, 1);
	if (j->timeout_ns && worker >= 0)
		dd_queue_wheel_arm(&s->wheel, &j->timer, s->now + j->timeout_ns);
}

/* The most urgent queued job whose handler is known. A recovered job whose
 * kind has not been registered yet waits aside until one is. */
static struct dd_jobrec *next_job(struct dd_shard *s)
{
	struct dd_queue_node *n;
	while ((n = dd_queue_lanes_pop(&s->lanes))) {
		struct dd_jobrec *j = (struct dd_jobrec *)n;
		if (j->handler != DD_HANDLER_UNRESOLVED)
			return j;
		int h = (j->flags & JF_EXEC) ? dd_kind_for_exec(s->eng, j->kind)
					      : dd_handler_find(s->eng, j->kind);
		if (h >= 0) {
			j->handler = (uint16_t)h;
			if (!dd_job_external(s, j))
				return j;
			dd_lease_queue(s, j); /* an external queue's: leased, not run here */
			continue;
		}
		j->link.next = &s->nohandler;
		j->link.prev = s->nohandler.prev;
		s->nohandler.prev->next = &j->link;
		s->nohandler.prev = &j->link;
	}
	return NULL;
}

/* The next job to start: a process job waiting in the pool that fits now,
 * else the most urgent queued job; a process job among those only when
 * the pool has room for it (else it waits there, pool.c). */
static struct dd_jobrec *take_job(struct dd_shard *s)
{
	struct dd_jobrec *j = s->pool->waiting ? dd_pool_next(s) : NULL;
	if (j)
		return j;
	/* held jobs a limit lets go now first (they came earlier), counted;
	 * a queued one over its limit is set aside, not into the pool */
	while ((j = dd_limits_next(s)) || (j = next_job(s))) {
		if (!(j->flags & JF_EXEC))
			return j;
		if (!(j->lim & (DD_LIM_USER | DD_LIM_QUEUE)) && !dd_limits_take(s, j))
			continue;
		if (dd_pool_admit(s, j))
			return j;
	}
	return NULL;
}

/* New handlers: give the jobs set aside by next_job() another look, and
 * put those of external queues where dd_reserve() finds them. */
void dd_requeue_nohandler(struct dd_shard *s)
{
	unsigned nh = atomic_load_explicit(&s->eng->nhandlers, memory_order_acquire);
	if (nh == s->seen_handlers)
		return;
	s->seen_handlers = nh;
	while (s->nohandler.next != &s->nohandler) {
		struct dd_queue_node *n = s->nohandler.next;
		n->prev->next = n->next;
		n->next->prev = n->prev;
		struct dd_jobrec *j = (struct dd_jobrec *)n;
		int h = dd_handler_find(s->eng, j->kind);
		if (h >= 0 && dd_job_external(s, &(struct dd_jobrec){.handler = (uint16_t)h,
								       .flags = j->flags})) {
			j->handler = (uint16_t)h;
			dd_lease_queue(s, j);
		} else {
			dd_queue_lanes_push(&s->lanes, j->priority, &j->link);
		}
	}
}

/* Hands queued jobs to workers, most urgent first, about DD_HAND_AHEAD_NS
 * of work per worker so that priorities still choose what runs next. */
static size_t dispatch(struct dd_shard *s)
{
	size_t total = 0;
	struct dd_jobrec *batch[DD_WORKER_INFLIGHT];
	unsigned first = s->rr;
	for (unsigned tries = 0;
	     tries < s->nworkers && (s->lanes.total || s->pool->waiting || dd_limits_ready(s));
	     tries++) {
		/* the turn passes only to the worker after one that got work:
		 * a call with one job for two workers would otherwise hand
		 * every job to the same one (each call moving the turn twice),
		 * and process jobs would be spawned one at a time */
		unsigned wi = (first + tries) % s->nworkers;
		struct dd_worker *w = &s->workers[wi];
		unsigned room = dd_worker_room(s, w);
		size_t held = dd_limits_ready(s) ? s->nheld : 0;
		size_t share = (s->lanes.total + s->pool->waiting + held + s->nworkers - 1) /
			       s->nworkers;
		size_t k = 0;
		while (k < room && k < share) {
			struct dd_jobrec *j = take_job(s);
			if (!j)
				break;
			dd_start_attempt(s, j, (int)w->index);
			batch[k++] = j;
		}
		if (!k)
			continue;
		dd_queue_spsc_enqueue(w->inbox, batch, k); /* fits: inflight bounds it */
		w->inflight += (unsigned)k;
		s->rr = (wi + 1) % s->nworkers;
		total += k;
		dd_queue_wake_notify(&w->wake);
	}
	return total;
}

/* inline_handlers: the reactor runs the handlers itself, a bounded number
 * per turn so that submissions and commands are still drained between
 * them. Nothing can interrupt a handler here, so a deadline that passed
 * while it ran is applied when it returns. */
static size_t dispatch_inline(struct dd_shard *s)
{
	size_t k = 0;
	struct dd_jobrec *j;
	while (k < DD_WORKER_INFLIGHT && (j = take_job(s))) {
		dd_start_attempt(s, j, 0);
		dd_run_handler(s, j, 0, dd_mono_ns());
		s->now = dd_mono_ns();
		if (j->timeout_ns && s->now - j->started_ns >= j->timeout_ns)
			dd_job_cancel(s, j, DD_TIMED_OUT, dd_reason[R_TIMEOUT]);
		dd_job_completed(s, j);
		k++;
	}
	return k;
}

/* Drops the oldest ended records beyond the retention count. A record a
 * worker still holds (its handler outlived a cancel or time-out) is kept. */
static void trim_retained(struct dd_shard *s)
{
	struct dd_queue_node *n = s->retained.next;
	unsigned skipped = 0;
	while (s->nretained > s->eng->cfg.retain_terminal && n != &s->retained && skipped < 16) {
		struct dd_jobrec *j = (struct dd_jobrec *)n;
		n = n->next;
		if (n != &s->retained) {
			/* these records are cold: load the one after next, and the
			 * next one's table slot (it was loaded a round ago) */
			const struct dd_jobrec *nx = (const struct dd_jobrec *)n;
			__builtin_prefetch(nx->link.next);
			dd_tab_prefetch(s, nx->id);
		}
		if ((j->flags & JF_ON_WORKER) || !dd_durable_evictable(s, j)) {
			skipped++;
			continue;
		}
		j->link.prev->next = j->link.next;
		j->link.next->prev = j->link.prev;
		s->nretained--;
		dd_tab_remove(s, j->id);
		dd_jobrec_free(s, j);
	}
}

static void begin_stop(struct dd_shard *s)
{
	s->stopping = true;
	s->stop_deadline = s->now + s->eng->cfg.shutdown_grace_ns;
	/* running processes go on under the supervisor, for the next engine */
	if (atomic_load_explicit(&s->eng->leave_running, memory_order_relaxed))
		dd_exec_detach_all(s);
	/* Nothing that has not started will start now. */
	for (size_t i = 0; i < s->tabcap; i++) {
		struct dd_jobrec *j = s->tab[i].rec;
		if (j && (j->state == DD_WAITING || j->state == DD_DELAYED || j->state == DD_QUEUED))
			dd_job_finish(s, j, DD_CANCELLED, dd_reason[R_SHUTDOWN]);
	}
}

static bool stop_done(struct dd_shard *s)
{
	if (!s->forced && s->now >= s->stop_deadline) {
		s->forced = true;
		for (size_t i = 0; i < s->tabcap; i++) {
			struct dd_jobrec *j = s->tab[i].rec;
			if (j && j->state == DD_RUNNING)
				dd_job_cancel(s, j, DD_CANCELLED, dd_reason[R_SHUTDOWN]);
		}
	}
	for (unsigned w = 0; w < s->nworkers; w++)
		if (s->workers[w].inflight)
			return false;
	return !s->nprocs && !dd_deps_backlog(s);
}

void *dd_reactor_main(void *arg)
{
	struct dd_shard *s = arg;
	struct dd_engine *e = s->eng;
	if (s->cpu >= 0)
		dd_numa_pin_cpu(s->cpu); /* best effort: a cpuset may forbid it */
	dd_place_uring_workers(s);
	dd_tls_reactor = s;
	dd_probe_thread(e, DD_ROLE_REACTOR);

	for (;;) {
		s->now = dd_mono_ns();
		size_t work = drain_completions(s);
		work += dd_deps_drain(s);
		work += drain_submissions(s);
		work += dd_cmd_drain(s);
		dd_requeue_nohandler(s);
		work += dd_queue_wheel_advance(&s->wheel, s->now, dd_job_timer_fired, s);
		/* acquire: what destroy set before it (leave_running) */
		if (!s->stopping && atomic_load_explicit(&e->stopping, memory_order_acquire))
			begin_stop(s);
		work += dd_array_fill(s);
		if (!s->stopping)
			work += s->nworkers ? dispatch(s) : dispatch_inline(s);
		dd_deps_flush(s);
		trim_retained(s);
		work += dd_uring_reap(s); /* log batches done, processes exited */
		dd_exec_sweep(s);
		dd_sup_poll(s);
		bool spawning = s->nworkers && dd_exec_watchdog(s);
		work += dd_durable_poll(s); /* after the turn's records are appended */
		if (s->stopping && stop_done(s) && !work)
			break;
		if (work)
			continue;
		uint64_t timeout = dd_durable_timeout(s, dd_queue_wheel_next_ns(&s->wheel, s->now));
		timeout = dd_sup_timeout(s, timeout);
		if (s->retry_cmds || dd_deps_backlog(s))
			timeout = 0; /* work waits on others: poll, without spinning hot */
		if (s->stopping && timeout > 1000000)
			timeout = 1000000;
		if (spawning && timeout > 1000000000ull)
			timeout = 1000000000ull; /* dd_exec_watchdog() */
		if (s->nprocs) { /* dd_exec_sweep() */
			uint64_t due = s->proc_sweep_ns > s->now ? s->proc_sweep_ns - s->now : 0;
			if (timeout > due)
				timeout = due;
		}
		if (timeout == 0) {
			dd_queue_cpu_relax();
			continue;
		}
		dd_queue_wake_wait(&s->wake, shard_ready, s, e->cfg.spin_ns, timeout);
	}
	dd_exec_shutdown(s);
	dd_durable_flush(s);
	dd_sup_flush(s); /* after the flush: what it made durable */
	dd_cmd_fail_all(s, DD_ESHUTDOWN);
	return NULL;
}
