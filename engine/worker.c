/* Worker threads: run in-process handlers for the jobs their reactor hands
 * them, and hand the records back through their completion ring. */
#include "engine.h"
#include "array.h"
#include "exec.h"
#include "stats.h"
#include "worker.h"

#define BATCH DD_WORKER_INFLIGHT
#define NOTIFY_AFTER_NS 5000 /* a long batch tells the reactor as it goes */

bool dd_job_cancelled(const struct dd_job *job)
{
	const struct dd_jobrec *j = job->internal_;
	return atomic_load_explicit(&j->cancel, memory_order_relaxed) != 0;
}

void dd_run_handler(struct dd_shard *s, struct dd_jobrec *j, unsigned worker, uint64_t now)
{
	if (j->flags & JF_EXEC) {
		dd_exec_spawn(s, j);
		return;
	}
	const struct dd_handler *h = &s->eng->handlers[j->handler];
	struct dd_job v = {
		.id = j->id, .attempt = j->attempt, .max_attempts = j->max_attempts,
		.kind = h->name, .payload = j->payload, .payload_len = j->payload_len,
		.intended_ns = j->intended_ns, .shard = s->index, .worker = worker,
		.internal_ = j,
	};
	if (j->arr) { /* an element: which (its array's id and ranges never change) */
		v.array_id = j->arr->id;
		v.array_index = dd_array_index(j->arr, j->id - j->arr->id - 1);
	}
	v.start_ns = now;
	j->w_start_ns = now;
	/* cancelled between hand-over and start: do not run it */
	j->w_result = atomic_load_explicit(&j->cancel, memory_order_relaxed) ? -1
									  : h->fn(&v, h->arg);
}

/* A moving mean over about the last 8 batches: it follows a change of job
 * mix within a few batches, and one slow job does not shut the hand-over
 * down to DD_HAND_AHEAD_MIN. */
static void note_job_time(struct dd_worker *w, uint64_t per_job)
{
	uint64_t m = atomic_load_explicit(&w->job_ns, memory_order_relaxed);
	m = per_job >= m ? m + (per_job - m) / 8 : m - (m - per_job) / 8;
	atomic_store_explicit(&w->job_ns, m ? m : 1, memory_order_relaxed);
}

unsigned dd_worker_room(const struct dd_shard *s, const struct dd_worker *w)
{
	unsigned limit = s->eng->cfg.worker_queue;
	uint64_t per_job = atomic_load_explicit(&w->job_ns, memory_order_relaxed);
	uint64_t fit = per_job ? DD_HAND_AHEAD_NS / per_job : limit;
	if (fit < DD_HAND_AHEAD_MIN)
		fit = DD_HAND_AHEAD_MIN;
	if (fit < limit)
		limit = (unsigned)fit;
	return w->inflight < limit ? limit - w->inflight : 0;
}

static bool worker_ready(void *arg)
{
	struct dd_worker *w = arg;
	return dd_queue_spsc_ready(w->inbox) || atomic_load_explicit(&w->stop, memory_order_relaxed);
}

void *dd_worker_main(void *arg)
{
	struct dd_worker *w = arg;
	struct dd_shard *s = w->shard;
	struct dd_engine *e = s->eng;
	struct dd_jobrec *batch[BATCH];

	if (w->cpu >= 0)
		dd_numa_pin_cpu(w->cpu); /* best effort: a cpuset may forbid it */
	dd_probe_thread(e, DD_ROLE_WORKER);
	for (;;) {
		size_t n = dd_queue_spsc_dequeue(w->inbox, batch, BATCH);
		if (n == 0) {
			if (atomic_load_explicit(&w->stop, memory_order_relaxed))
				break;
			dd_queue_wake_wait(&w->wake, worker_ready, w, e->cfg.spin_ns, UINT64_MAX);
			continue;
		}
		/* One clock reading per job: the end of one is the start of the
		 * next (measured: docs/BENCHMARKS.md, "Measured choices: worker
		 * clock readings"). */
		uint64_t first = dd_mono_ns(), now = first, last_notify = first;
		for (size_t i = 0; i < n; i++) {
			struct dd_jobrec *j = batch[i];
			dd_run_handler(s, j, w->index, now);
			/* release on the ring publishes w_result/w_start_ns */
			dd_queue_spsc_enqueue(w->done, &j, 1);
			now = dd_mono_ns();
			if (i + 1 < n && now - last_notify > NOTIFY_AFTER_NS) {
				dd_queue_wake_notify(&s->wake);
				last_notify = now;
			}
		}
		dd_queue_wake_notify(&s->wake);
		note_job_time(w, (now - first) / n);
	}
	return NULL;
}
