/* Requests from API callers to a shard's reactor (get, wait, cancel).
 *
 * The caller's struct dd_cmd lives on its stack; a pointer travels through
 * the shard's MPSC command ring; the reactor answers by storing "done"
 * (release) and waking the futex. A wait that times out is withdrawn by a
 * second command, so the reactor never touches a dead stack frame. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"
#include "command.h"
#include "array.h"
#include "durable/durable.h"
#include "exec.h"
#include "fate.h"
#include "jobtab.h"
#include "lease.h"
#include "lifecycle.h"
#include "proc.h"
#include "reactor.h"
#include "state.h"

void dd_cmd_complete(struct dd_cmd *c, int rc)
{
	c->rc = rc;
	/* release pairs with the caller's acquire of done */
	atomic_store_explicit(&c->done, 1, memory_order_release);
	syscall(SYS_futex, &c->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void send(struct dd_engine *e, struct dd_cmd *c)
{
	struct dd_shard *s = &e->shards[dd_id_shard(c->id)];
	atomic_store_explicit(&c->done, 0, memory_order_relaxed);
	while (dd_queue_mpsc_enqueue(s->cmds, &c, 1) != 1) {
		dd_queue_wake_notify(&s->wake);
		sched_yield();
	}
	dd_queue_wake_notify(&s->wake);
}

/* Returns 1 when answered, 0 on time-out. */
static int await(struct dd_cmd *c, const struct timespec *deadline)
{
	while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
		struct timespec rel, *relp = NULL;
		if (deadline) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			int64_t ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 +
				     (deadline->tv_nsec - now.tv_nsec);
			if (ns <= 0)
				return 0;
			rel.tv_sec = ns / 1000000000;
			rel.tv_nsec = ns % 1000000000;
			relp = &rel;
		}
		syscall(SYS_futex, &c->done, FUTEX_WAIT_PRIVATE, 0, relp, NULL, 0);
	}
	return 1;
}

static void handle(struct dd_shard *s, struct dd_cmd *c);
static bool unlink_cmd(struct dd_cmd **list, struct dd_cmd *c);

/* Called on the target shard's own reactor (an inline handler or an event
 * callback): answer now, since queueing would wait for ourselves. A command
 * that would have to wait is taken back and fails with -EDEADLK. */
static int call_here(struct dd_shard *s, struct dd_cmd *c)
{
	atomic_store_explicit(&c->done, 0, memory_order_relaxed);
	handle(s, c);
	if (atomic_load_explicit(&c->done, memory_order_relaxed))
		return c->rc;
	struct dd_jobrec *j = dd_tab_find(s, c->id);
	if (!(j && unlink_cmd(&j->waiters, c)) && !unlink_cmd(&s->retry_cmds, c))
		dd_durable_unwait(s, c);
	return c->rc = -EDEADLK;
}

int dd_cmd_call(struct dd_engine *e, struct dd_cmd *c)
{
	if (dd_id_shard(c->id) >= e->nshards)
		return -ENOENT;
	if (atomic_load_explicit(&e->stopping, memory_order_relaxed))
		return DD_ESHUTDOWN;
	c->next = NULL;
	if (dd_tls_reactor == &e->shards[dd_id_shard(c->id)])
		return call_here(dd_tls_reactor, c);
	send(e, c);
	await(c, NULL);
	return c->rc;
}

static int count_stored(const struct dd_state_job *sj, void *arg)
{
	struct dd_job_info *info = arg;
	if ((sj->spec.flags & DD_LOGREC_F_ELEMENT) && sj->spec.array_id == info->id &&
	    sj->state >= DD_WAITING && sj->state <= DD_TIMED_OUT)
		info->array_states[sj->state]++;
	return 0;
}

/* An array that left memory: its elements by state, from the store (those
 * it does not hold were never made: the array ended first). */
static void array_from_store(struct dd_state_store *st, const struct dd_logrec *sp,
			     struct dd_job_info *info)
{
	info->array_id = info->id;
	for (uint32_t i = 0; i < sp->array_nranges; i++) {
		uint32_t first, last, step;
		dd_logrec_array_range(sp, i, &first, &last, &step);
		info->array_count += (last - first) / step + 1;
	}
	if (dd_state_store_scan_range(st, info->id + 1, info->id + info->array_count, count_stored,
				      info) < 0)
		return;
	uint64_t held = 0;
	for (int s = DD_WAITING; s <= DD_TIMED_OUT; s++)
		held += info->array_states[s];
	info->array_states[DD_CANCELLED] += info->array_count - held;
}

/* A job that left memory, from its shard's store (caller's thread). */
static int from_store(struct dd_engine *e, uint64_t id, struct dd_job_info *info)
{
	struct dd_state_store *st = dd_durable_store(&e->shards[dd_id_shard(id)]);
	struct dd_state_job job;
	void *buf = NULL;
	if (!st)
		return DD_EEVICTED;
	int r = dd_state_store_get(st, id, &job, &buf);
	if (r == -ENOENT)
		return DD_EEVICTED;
	if (r < 0)
		return r;
	if (info) {
		memset(info, 0, sizeof(*info));
		info->id = id;
		info->state = (enum dd_state)job.state;
		info->priority = job.spec.priority;
		info->attempt = job.attempt;
		info->max_attempts = job.spec.max_attempts;
		info->result = job.result;
		snprintf(info->reason, sizeof(info->reason), "%s", job.reason);
		snprintf(info->kind, sizeof(info->kind), "%.*s", (int)job.spec.kind_len, job.spec.kind);
		info->shard = dd_id_shard(id);
		info->worker = job.worker;
		info->uid = job.spec.uid;
		info->gid = job.spec.gid;
		dd_job_info_exec(info, (job.spec.flags & DD_LOGREC_F_EXEC) != 0,
				 dd_state_terminal((enum dd_state)job.state) ? job.result : -1);
		info->output_cut[0] = job.output_cut[0];
		info->output_cut[1] = job.output_cut[1];
		info->have_cpu_time = job.use & DD_LOGREC_USE_CPU;
		info->have_mem_peak = job.use & DD_LOGREC_USE_MEM;
		info->cpu_time_ns = job.cpu_ns;
		info->mem_peak = job.mem_peak;
		/* monotonic fields are meaningless across runs: 0 */
		snprintf(info->name, sizeof(info->name), "%.*s", (int)job.spec.name_len,
			 job.spec.name ? job.spec.name : "");
		if (job.spec.flags & DD_LOGREC_F_EXEC)
			dd_proc_spec_describe(job.spec.payload, job.spec.payload_len, info->command,
					      sizeof(info->command), info->cwd, sizeof(info->cwd));
		if (job.spec.flags & DD_LOGREC_F_ELEMENT) {
			info->array_id = job.spec.array_id;
			info->array_index = job.spec.array_index;
		} else if (job.spec.flags & DD_LOGREC_F_ARRAY) {
			array_from_store(st, &job.spec, info);
		}
	}
	free(buf);
	return 0;
}

int dd_job_signal(struct dd_engine *e, uint64_t id, int sig)
{
	if (sig <= 0 || sig > 64)
		return -EINVAL;
	struct dd_cmd c = {.type = CMD_SIGNAL, .id = id, .result = sig};
	int r = dd_cmd_call(e, &c);
	if (r == DD_EEVICTED && from_store(e, id, NULL) == 0)
		return DD_ETERMINAL;
	return r;
}

int dd_job_get(struct dd_engine *e, uint64_t id, struct dd_job_info *info)
{
	struct dd_cmd c = {.type = CMD_GET, .id = id};
	int r = dd_cmd_call(e, &c);
	if (r == DD_EEVICTED)
		return from_store(e, id, info);
	if (r == 0 && info)
		*info = c.info;
	return r;
}

int dd_cancel(struct dd_engine *e, uint64_t id)
{
	struct dd_cmd c = {.type = CMD_CANCEL, .id = id};
	int r = dd_cmd_call(e, &c);
	if (r == DD_EEVICTED && from_store(e, id, NULL) == 0)
		return DD_ETERMINAL;
	return r;
}

/* Sends @c and waits for its answer up to @timeout_ns (UINT64_MAX: for
 * ever); a wait that times out is withdrawn. Returns c->rc. */
static int timed_call(struct dd_engine *e, struct dd_cmd *c, uint64_t timeout_ns)
{
	uint64_t id = c->id;
	if (dd_id_shard(id) >= e->nshards)
		return -ENOENT;
	if (atomic_load_explicit(&e->stopping, memory_order_relaxed))
		return DD_ESHUTDOWN;
	if (dd_tls_reactor == &e->shards[dd_id_shard(id)])
		return call_here(dd_tls_reactor, c);
	struct timespec dl, *dlp = NULL;
	if (timeout_ns != UINT64_MAX) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		uint64_t ns = (uint64_t)dl.tv_nsec + timeout_ns % 1000000000ull;
		dl.tv_sec += (time_t)(timeout_ns / 1000000000ull + ns / 1000000000ull);
		dl.tv_nsec = (long)(ns % 1000000000ull);
		dlp = &dl;
	}
	send(e, c);
	if (!await(c, dlp)) {
		/* Withdraw; the reactor answers our wait with -ETIMEDOUT unless it
		 * has answered it already. Either way c is done afterwards. */
		struct dd_cmd u = {.type = CMD_UNWAIT, .id = id, .target = c};
		send(e, &u);
		await(&u, NULL);
		await(c, NULL);
	}
	return c->rc;
}

int dd_wait(struct dd_engine *e, uint64_t id, uint64_t timeout_ns, struct dd_job_info *info)
{
	struct dd_cmd c = {.type = CMD_WAIT, .id = id};
	timed_call(e, &c, timeout_ns);
	if (c.rc == DD_EEVICTED)
		return from_store(e, id, info); /* ended: nothing to wait for */
	if (c.rc == 0 && info)
		*info = c.info;
	return c.rc;
}

int dd_wait_durable(struct dd_engine *e, uint64_t id, uint64_t timeout_ns)
{
	struct dd_cmd c = {.type = CMD_WAIT_DURABLE, .id = id};
	return timed_call(e, &c, timeout_ns);
}

int dd_job_list(struct dd_engine *e, enum dd_state state, uint64_t after, uint64_t *ids,
		size_t max, size_t *n)
{
	*n = 0;
	if (state < DD_WAITING || state > DD_TIMED_OUT || (max && !ids))
		return -EINVAL;
	if (!dd_durable_store(&e->shards[0]))
		return -EOPNOTSUPP;
	/* read your writes: a job that ended before this call is listed by it */
	for (unsigned sh = 0; sh < e->nshards; sh++)
		dd_durable_catch_up(&e->shards[sh], 2000000000ull);
	/* ids sort by shard first: walk the shards from the cursor's on */
	for (unsigned sh = after ? dd_id_shard(after) : 0; sh < e->nshards && *n < max; sh++) {
		uint64_t from = sh == dd_id_shard(after) ? after : (uint64_t)sh << DD_ID_SHARD_SHIFT;
		size_t got;
		int r = dd_state_store_list(dd_durable_store(&e->shards[sh]), (uint8_t)state, from,
					    ids + *n, max - *n, &got);
		if (r < 0)
			return r;
		*n += got;
	}
	return 0;
}

/* ---- reactor side ---- */

static bool unlink_cmd(struct dd_cmd **list, struct dd_cmd *c)
{
	for (struct dd_cmd **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return true;
		}
	return false;
}

/* A command naming an array's element that is not made yet. */
static void unmade(struct dd_shard *s, struct dd_array *a, struct dd_cmd *c)
{
	switch (c->type) {
	case CMD_GET:
		dd_array_unmade_info(s, a, c->id, &c->info);
		dd_cmd_complete(c, 0);
		break;
	case CMD_WAIT:
		dd_array_wait(a, c); /* handed to the element when it is made */
		break;
	case CMD_WAIT_DURABLE:
		dd_durable_wait_cmd(s, a->parent, c); /* it is in its array's record */
		break;
	default: /* cancel, signal, lease operations: the array answers */
		dd_cmd_complete(c, -EBUSY);
	}
}

static void handle(struct dd_shard *s, struct dd_cmd *c)
{
	if (c->type == CMD_UNWAIT) {
		struct dd_jobrec *j = dd_tab_find(s, c->target->id);
		struct dd_array *a = j ? NULL : dd_array_of(s, c->target->id);
		if ((j && unlink_cmd(&j->waiters, c->target)) ||
		    (a && unlink_cmd(&a->waiters, c->target)) ||
		    unlink_cmd(&s->retry_cmds, c->target) || dd_durable_unwait(s, c->target))
			dd_cmd_complete(c->target, -ETIMEDOUT);
		dd_cmd_complete(c, 0);
		return;
	}
	if (c->type == CMD_RESERVE) {
		dd_lease_reserve(s, c);
		return;
	}
	struct dd_jobrec *j = dd_tab_find(s, c->id);
	struct dd_array *a;
	if (!j && (a = dd_array_of(s, c->id)) && dd_array_unmade(a, c->id)) {
		unmade(s, a, c);
		return;
	}
	if (!j) {
		uint64_t seq = c->id & DD_ID_SEQ_MASK;
		uint8_t fate = dd_seq_fate(s, c->id);
		if (fate == SEQ_UNSEEN && seq > 0 &&
		    seq < atomic_load_explicit(&s->next_seq, memory_order_acquire)) {
			/* numbered but still in a ring: ask again next turn */
			c->next = s->retry_cmds;
			s->retry_cmds = c;
			return;
		}
		if (c->type == CMD_WAIT_DURABLE && fate != SEQ_UNSEEN)
			dd_cmd_complete(c, s->dur ? 0 : -EOPNOTSUPP); /* in the store */
		else
			dd_cmd_complete(c, fate == SEQ_UNSEEN ? -ENOENT : DD_EEVICTED);
		return;
	}
	switch (c->type) {
	case CMD_GET:
		dd_job_info_fill(s, j, &c->info);
		dd_cmd_complete(c, 0);
		break;
	case CMD_WAIT:
		if (dd_state_terminal((enum dd_state)j->state)) {
			dd_job_info_fill(s, j, &c->info);
			dd_cmd_complete(c, 0);
		} else {
			c->next = j->waiters;
			j->waiters = c;
		}
		break;
	case CMD_CANCEL:
		dd_cmd_complete(c, dd_job_cancel(s, j, DD_CANCELLED, dd_reason[R_CANCELLED]));
		break;
	case CMD_WAIT_DURABLE:
		dd_durable_wait_cmd(s, j, c);
		break;
	case CMD_SIGNAL:
		dd_cmd_complete(c, dd_exec_signal(s, j, c->result));
		break;
	case CMD_ACK:
	case CMD_NACK:
	case CMD_TOUCH:
		dd_lease_cmd(s, j, c);
		break;
	default:
		dd_cmd_complete(c, -EINVAL);
	}
}

size_t dd_cmd_drain(struct dd_shard *s)
{
	size_t total = 0;
	struct dd_cmd *retry = s->retry_cmds, *batch[64];
	s->retry_cmds = NULL;
	while (retry) {
		struct dd_cmd *c = retry;
		retry = c->next;
		handle(s, c);
	}
	size_t n;
	while ((n = dd_queue_mpsc_dequeue(s->cmds, batch, 64)) > 0) {
		for (size_t i = 0; i < n; i++)
			handle(s, batch[i]);
		total += n;
	}
	return total;
}

void dd_cmd_fail_all(struct dd_shard *s, int rc)
{
	struct dd_cmd *batch[64];
	size_t n;
	while ((n = dd_queue_mpsc_dequeue(s->cmds, batch, 64)) > 0)
		for (size_t i = 0; i < n; i++) {
			if (batch[i]->type == CMD_UNWAIT) {
				/* still honour the withdrawal: it may free a wait */
				handle(s, batch[i]);
			} else {
				dd_cmd_complete(batch[i], rc);
			}
		}
	for (struct dd_cmd *c = s->retry_cmds, *nx; c; c = nx) {
		nx = c->next;
		dd_cmd_complete(c, rc);
	}
	s->retry_cmds = NULL;
	for (size_t i = 0; i < s->tabcap; i++) {
		struct dd_jobrec *j = s->tab[i].rec;
		if (!j)
			continue;
		for (struct dd_cmd *c = j->waiters, *nx; c; c = nx) {
			nx = c->next;
			dd_cmd_complete(c, rc);
		}
		j->waiters = NULL;
	}
	for (size_t i = 0; i < s->narrs; i++) {
		for (struct dd_cmd *c = s->arrs[i]->waiters, *nx; c; c = nx) {
			nx = c->next;
			dd_cmd_complete(c, rc);
		}
		s->arrs[i]->waiters = NULL;
	}
}
