/* Job state transitions. Reactor thread only. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "array.h"
#include "command.h"
#include "deps.h"
#include "durable/durable.h"
#include "exec.h"
#include "fate.h"
#include "idem.h"
#include "jobtab.h"
#include "lease.h"
#include "lifecycle.h"
#include "limits.h"
#include "proc.h"
#include "state.h"
#include "stats.h"
#include "submit.h"

static const unsigned gauge_of[DD_STATE_COUNT] = {
	[DD_WAITING] = ST_WAITING, [DD_DELAYED] = ST_DELAYED,
	[DD_QUEUED] = ST_QUEUED,   [DD_RUNNING] = ST_RUNNING,
	[DD_SUCCEEDED] = ST_SUCCEEDED, [DD_FAILED] = ST_FAILED,
	[DD_CANCELLED] = ST_CANCELLED, [DD_TIMED_OUT] = ST_TIMED_OUT,
};

char *dd_reason_dup(struct dd_shard *s, const char *text)
{
	size_t n = strnlen(text, DD_REASON_MAX - 1);
	char *c = dd_numa_arena_alloc(s->arena, n + 1);
	if (c) {
		memcpy(c, text, n);
		c[n] = 0;
	}
	return c;
}

void dd_reason_free(struct dd_shard *s, char *text)
{
	if (text)
		dd_numa_arena_free(s->arena, text, strlen(text) + 1);
}

void dd_job_set_reason(struct dd_shard *s, struct dd_jobrec *j, const char *reason)
{
	if (j->reason == reason)
		return;
	if (j->flags & JF_REASON_OWN) {
		dd_reason_free(s, (char *)j->reason);
		j->flags &= (uint8_t)~JF_REASON_OWN;
	}
	j->reason = reason;
}

void dd_job_own_reason(struct dd_shard *s, struct dd_jobrec *j, char *text)
{
	dd_job_set_reason(s, j, text);
	j->flags |= JF_REASON_OWN;
}

void dd_shard_set_state(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st)
{
	enum dd_state prev = (enum dd_state)j->state;
	if (prev && !dd_state_terminal(prev))
		dd_st_add(s, gauge_of[prev], -1);
	dd_st_add(s, gauge_of[st], 1);
	j->state = (uint8_t)st;
	if (st == DD_RUNNING && j->arr && j->arr->parent != j)
		dd_array_started(s, j);
	const struct dd_config *c = &s->eng->cfg;
	if (c->on_event && (c->event_mask & (1u << st))) {
		struct dd_event ev = {
			.id = j->id, .state = st, .prev_state = prev, .attempt = j->attempt,
			.result = j->result, .reason = j->reason ? j->reason : "",
			.intended_ns = j->intended_ns, .at_ns = s->now, .uid = j->uid,
			.kind = j->handler == DD_HANDLER_UNRESOLVED ? j->kind
								   : s->eng->handlers[j->handler].name,
		};
		if (j->arr && j->arr->parent != j) {
			ev.array_id = j->arr->id;
			ev.array_index = dd_array_index(j->arr, j->id - j->arr->id - 1);
		}
		c->on_event(&ev, c->event_arg);
	}
}

void dd_job_info_fill(const struct dd_shard *s, const struct dd_jobrec *j,
		      struct dd_job_info *info)
{
	memset(info, 0, sizeof(*info));
	info->id = j->id;
	info->state = (enum dd_state)j->state;
	info->priority = j->priority;
	info->attempt = j->attempt;
	info->max_attempts = j->max_attempts;
	info->result = j->result;
	if (j->reason)
		snprintf(info->reason, sizeof(info->reason), "%s", j->reason);
	snprintf(info->kind, sizeof(info->kind), "%s",
		 j->handler == DD_HANDLER_UNRESOLVED ? j->kind : s->eng->handlers[j->handler].name);
	info->shard = s->index;
	info->worker = j->worker;
	info->submitted_ns = j->submitted_ns;
	info->queued_ns = j->queued_ns;
	info->started_ns = j->started_ns;
	info->ended_ns = j->ended_ns;
	info->uid = j->uid;
	info->gid = j->gid;
	dd_job_info_exec(info, (j->flags & JF_EXEC) != 0, j->result);
	info->pid = j->pid;
	if (j->flags & JF_EXEC) {
		info->output_cut[0] = j->output_cut[0];
		info->output_cut[1] = j->output_cut[1];
		info->have_cpu_time = j->use & DD_USE_CPU;
		info->have_mem_peak = j->use & DD_USE_MEM;
		info->cpu_time_ns = j->cpu_ns;
		info->mem_peak = j->mem_peak;
	}
	if (j->arr)
		dd_array_info(s, j, info);
	if (j->name)
		snprintf(info->name, sizeof(info->name), "%s", j->name);
	if (j->flags & JF_EXEC)
		dd_proc_spec_describe(j->payload, j->payload_len, info->command, sizeof(info->command),
				      info->cwd, sizeof(info->cwd));
}

void dd_job_info_exec(struct dd_job_info *info, bool exec, int result)
{
	info->exec = exec;
	info->exit_code = -1;
	info->term_signal = 0;
	if (!exec || result < 0)
		return; /* no status yet, or the process never started (-errno) */
	if ((result & 0x7f) == 0)
		info->exit_code = (result >> 8) & 0xff;
	else
		info->term_signal = result & 0x7f;
}

void dd_job_make_ready(struct dd_shard *s, struct dd_jobrec *j)
{
	if (j->not_before_ns > s->now) {
		dd_shard_set_state(s, j, DD_DELAYED);
		dd_queue_wheel_arm(&s->wheel, &j->timer, j->not_before_ns);
		return;
	}
	if (dd_array_own(j)) {
		dd_array_ready(s, j); /* its elements queue, not it */
		return;
	}
	j->queued_ns = s->now;
	dd_shard_set_state(s, j, DD_QUEUED);
	if (dd_job_external(s, j))
		dd_lease_queue(s, j);
	else
		dd_queue_lanes_push(&s->lanes, j->priority, &j->link);
}

void dd_job_arrive(struct dd_shard *s, struct dd_sub *m)
{
	struct dd_jobrec *j = dd_jobrec_alloc(s);
	if (j)
		j->id = m->id;
	if (!j || dd_tab_insert(s, j) < 0) {
		/* Out of memory: the job cannot be held. Count it failed and
		 * remember its fate so dependants and callers get an answer. */
		if (j)
			dd_jobrec_free(s, j);
		if (m->key)
			dd_idem_remove(s->eng->idem, m->key_hash, m->uid, m->key, m->id);
		if (m->arr && m->arr->refs)
			dd_array_unborn(s, m->arr); /* an element: it counts as failed */
		else if (m->arr)
			dd_array_never(s, m->arr, m->id);
		dd_sub_release(s, m);
		dd_seq_set(s, m->id, SEQ_ENDED_BAD);
		dd_st_add(s, ST_SUBMITTED, 1);
		dd_st_add(s, ST_FAILED, 1);
		atomic_fetch_sub_explicit(&s->live, 1, memory_order_relaxed);
		return;
	}
	j->id = m->id;
	j->priority = m->priority;
	j->handler = m->handler;
	j->max_attempts = m->max_attempts;
	j->timeout_ns = m->timeout_ns;
	j->backoff_ns = m->backoff_ns;
	j->backoff_max_ns = m->backoff_max_ns;
	j->not_before_ns = m->not_before_ns;
	j->intended_ns = m->intended_ns;
	j->submitted_ns = s->now;
	j->payload_len = m->payload_len;
	if (m->payload_len > DD_INLINE_PAYLOAD) {
		j->payload = m->payload.heap;
	} else {
		j->payload = j->inline_payload;
		memcpy(j->inline_payload, m->payload.inl, m->payload_len);
	}
	j->key = m->key;
	j->name = m->name;
	j->key_hash = m->key_hash;
	j->level = m->level;
	j->uid = m->uid;
	j->gid = m->gid;
	j->stdin_fd = m->stdin_fd;
	if (m->arr)
		dd_array_attach(s, j, m->arr);
	if (m->exec) {
		j->flags |= JF_EXEC;
		j->result = -1; /* no exit status yet */
	}
	dd_seq_set(s, j->id, SEQ_LIVE);
	dd_st_add(s, ST_SUBMITTED, 1);
	dd_deps_arrived(s, j);

	const uint64_t *deps = m->ndeps > DD_INLINE_DEPS ? m->deps.heap : m->deps.inl;
	/* an array's aftercorr is its elements' to wait for, one each, not its own */
	uint32_t nwait = m->ndeps;
	for (uint32_t i = 0; m->kinds && i < m->ndeps; i++)
		if (m->kinds[i] == DD_DEP_AFTERCORR) {
			nwait--;
			if (m->arr)
				m->arr->corr_id = deps[i];
		}
	if (m->level > DD_DURABILITY_NONE && s->dur) {
		dd_log_submit(s, j, deps, m->kinds, m->ndeps, m->strict);
		if (!(j->flags & JF_LOGGED)) {
			/* The log refused it (no space, I/O error): the submitter
			 * learns from dd_wait_durable(); the job must not run. */
			j->state = DD_QUEUED;
			dd_st_add(s, ST_QUEUED, 1);
			dd_job_finish(s, j, DD_FAILED, dd_reason[R_NOT_LOGGED]);
			goto out;
		}
	}
	if (s->stopping) {
		j->state = DD_QUEUED; /* never queued: counted straight to cancelled */
		dd_st_add(s, ST_QUEUED, 1);
		dd_job_finish(s, j, DD_CANCELLED, dd_reason[R_SHUTDOWN]);
	} else if (nwait == 0 && !(j->flags & JF_HELD)) {
		dd_job_make_ready(s, j);
	} else if (nwait == 0) {
		dd_shard_set_state(s, j, DD_WAITING); /* strict: until durable */
	} else {
		j->deps_unmet += nwait;
		dd_shard_set_state(s, j, DD_WAITING);
		/* A subscription may answer at once (dependency already ended)
		 * and so finish j or make it ready inside this loop. */
		uint64_t id = j->id;
		for (uint32_t i = 0; i < m->ndeps; i++) {
			uint8_t k = m->kinds ? m->kinds[i] : DD_DEP_AFTEROK;
			if (k != DD_DEP_AFTERCORR)
				dd_deps_subscribe(s, deps[i], id, k);
		}
	}
out:
	if (m->ndeps > DD_INLINE_DEPS)
		dd_numa_arena_free(s->arena, m->deps.heap, m->ndeps * sizeof(uint64_t));
	dd_numa_arena_free(s->arena, m->kinds, m->ndeps);
}

void dd_job_finish(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st,
		   const char *reason)
{
	dd_queue_wheel_cancel(&s->wheel, &j->timer);
	if (j->flags & JF_EXTQ)
		dd_lease_unqueue(s, j);
	else if (j->flags & JF_POOLQ)
		dd_pool_unqueue(s, j);
	else if (j->lim & DD_LIM_HELD)
		dd_limits_unhold(s, j);
	else if (j->state == DD_QUEUED && j->link.next)
		dd_queue_lanes_remove(&s->lanes, j->priority, &j->link);
	if (!j->proc)
		dd_limits_give(s, j); /* it waited in the pool (a run gives them back) */
	if (j->flags & JF_LEASED) /* only then: a worker may be reading flags */
		j->flags &= (uint8_t)~JF_LEASED;
	dd_job_set_reason(s, j, reason);
	if (j->stdin_fd >= 0 && !(j->flags & JF_ON_WORKER)) {
		dd_stdin_release(s->eng, j->stdin_fd); /* no attempt will read it */
		j->stdin_fd = -1;
	}
	/* s->now is read once per reactor turn: a worker's start stamp
	 * (dd_job_completed) can be later than this turn's */
	j->ended_ns = s->now > j->started_ns ? s->now : j->started_ns;
	dd_shard_set_state(s, j, st);
	dd_log_end(s, j);
	atomic_fetch_sub_explicit(&s->live, 1, memory_order_relaxed);
	dd_seq_set(s, j->id, st == DD_SUCCEEDED ? SEQ_ENDED_OK : SEQ_ENDED_BAD);
	/* A job stopped by shutdown has not failed: its dependants stay
	 * waiting (their own shard stops them too) and, with durable state,
	 * run after the next start. */
	if (reason != dd_reason[R_SHUTDOWN])
		dd_deps_release(s, j);
	for (struct dd_cmd *c = j->waiters, *n; c; c = n) {
		n = c->next;
		dd_job_info_fill(s, j, &c->info);
		dd_cmd_complete(c, 0);
	}
	j->waiters = NULL;
	/* retention FIFO: oldest at the front, trimmed by the reactor loop */
	j->link.next = &s->retained;
	j->link.prev = s->retained.prev;
	s->retained.prev->next = &j->link;
	s->retained.prev = &j->link;
	s->nretained++;
	if (j->arr)
		dd_array_ended(s, j, st, reason); /* last: it may end the array */
}

int dd_job_cancel(struct dd_shard *s, struct dd_jobrec *j, enum dd_state how,
		  const char *reason)
{
	if (dd_array_own(j))
		return dd_array_cancel(s, j, how, reason);
	if (dd_state_terminal((enum dd_state)j->state))
		return DD_ETERMINAL;
	if (j->state == DD_RUNNING && (j->flags & JF_EXEC)) {
		/* A process: signal it; the job ends when it has gone. */
		if (!atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
			atomic_store_explicit(&j->cancel, (uint32_t)how, memory_order_relaxed);
			dd_job_set_reason(s, j, reason);
			dd_exec_kill(s, j);
		}
		return 0;
	}
	if (j->state == DD_RUNNING)
		/* The handler polls this; its eventual result is ignored. */
		atomic_store_explicit(&j->cancel, (uint32_t)how, memory_order_relaxed);
	dd_job_finish(s, j, how, reason);
	return 0;
}

void dd_job_completed(struct dd_shard *s, struct dd_jobrec *j)
{
	j->flags &= (uint8_t)~JF_ON_WORKER;
	j->started_ns = j->w_start_ns;
	if (j->flags & JF_EXEC) {
		dd_exec_started(s, j);
		return;
	}
	if (dd_state_terminal((enum dd_state)j->state))
		return; /* cancelled or timed out while it ran */
	dd_job_attempt_done(s, j, j->w_result, dd_reason[R_HANDLER_FAILED]);
}

void dd_job_attempt_done(struct dd_shard *s, struct dd_jobrec *j, int result,
			 const char *fail_reason)
{
	dd_hist_rec(s, DD_HIST_DISPATCH, j->intended_ns, j->started_ns);
	dd_hist_rec(s, DD_HIST_QUEUE_WAIT, j->queued_ns, j->started_ns);
	dd_hist_rec(s, DD_HIST_RUN, j->started_ns, s->now);
	dd_queue_wheel_cancel(&s->wheel, &j->timer);
	j->result = result;
	if (j->result == 0) {
		dd_job_finish(s, j, DD_SUCCEEDED, NULL);
	} else if (s->stopping && j->attempt < j->max_attempts) {
		dd_job_finish(s, j, DD_CANCELLED, dd_reason[R_SHUTDOWN]); /* no retry now */
	} else if (j->attempt < j->max_attempts) {
		unsigned shift = j->attempt - 1 < 40 ? j->attempt - 1 : 40;
		uint64_t wait = j->backoff_ns << shift;
		if (wait > j->backoff_max_ns || (wait >> shift) != j->backoff_ns)
			wait = j->backoff_max_ns;
		j->not_before_ns = s->now + wait;
		dd_job_set_reason(s, j, fail_reason); /* why the last attempt failed */
		dd_st_add(s, ST_RETRIED, 1);
		dd_log_retry(s, j);
		dd_job_make_ready(s, j);
	} else {
		dd_job_finish(s, j, DD_FAILED, fail_reason);
	}
}

void dd_job_timer_fired(struct dd_queue_timer *t, void *arg)
{
	struct dd_shard *s = arg;
	struct dd_jobrec *j = (struct dd_jobrec *)((char *)t - offsetof(struct dd_jobrec, timer));
	if (j->state == DD_DELAYED) {
		j->not_before_ns = 0;
		dd_job_make_ready(s, j);
	} else if (j->state == DD_RUNNING && (j->flags & JF_LEASED)) {
		j->flags &= (uint8_t)~JF_LEASED;
		dd_job_attempt_done(s, j, -ETIMEDOUT, dd_reason[R_LEASE_EXPIRED]);
	} else if (j->state == DD_RUNNING && (j->flags & JF_EXEC) &&
		   atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
		dd_exec_grace_over(s, j); /* SIGTERM was not enough */
	} else if (j->state == DD_RUNNING && (j->flags & JF_EXEC) && (j->flags & JF_ON_WORKER)) {
		/* still being started (its cgroup made, its exec under way): its
		 * time-out counts from its start, where dd_exec_started() arms it
		 * again; a start that hangs is the watchdog's */
	} else if (j->state == DD_RUNNING) {
		dd_job_cancel(s, j, DD_TIMED_OUT, dd_reason[R_TIMEOUT]);
	}
}
