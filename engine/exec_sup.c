/* Process jobs under the process supervisor (DESIGN.md section 10), on
 * the reactor: the exits it reports, a supervisor that went away, the
 * engine leaving its running jobs to it, and a new engine taking them
 * over (supervise.c has the connections). */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include "exec.h"
#include "jobtab.h"
#include "lifecycle.h"
#include "limits.h"
#include "registry.h"
#include "supervise.h"
#include "uring.h"

void dd_exec_sup_exit(struct dd_shard *s, uint64_t id, uint32_t attempt, int status)
{
	struct dd_jobrec *j = dd_tab_find(s, id);
	if (j && (j->flags & JF_EXEC) && j->attempt == attempt && j->state == DD_RUNNING) {
		if (j->flags & JF_ON_WORKER) {
			/* its worker has the start's reply still to hand back */
			dd_sup_early(s, id, attempt, status);
			return;
		}
		struct dd_exec_run *p = j->proc;
		if (p && p->sup && !p->exited && !p->detached && p->attempt == attempt) {
			dd_exec_exited(s, p, status);
			return;
		}
	}
	/* stopping, with running jobs left to the next engine: this may be
	 * one of them (its run let go), whose exit is the next engine's to
	 * record; unacknowledged, the supervisor keeps it for that engine,
	 * which acknowledges what no job of its own takes */
	if (s->stopping && atomic_load_explicit(&s->eng->leave_running, memory_order_relaxed))
		return;
	/* an attempt no job here waits for (ended meanwhile, or not ours):
	 * nothing to record */
	dd_sup_ack(s, id, attempt);
}

void dd_exec_sup_lost(struct dd_shard *s, pid_t pid)
{
	s->sup->nearly = 0;
	if (!s->nprocs)
		return;
	for (struct dd_exec_run *p = s->procs->next, *nx; p != s->procs; p = nx) {
		nx = p->next;
		/* only its own: a run a new supervisor started goes on */
		if (!p->sup || p->sup_pid != pid || p->exited || p->sup_lost || p->detached)
			continue;
		/* its exit can no longer be known: what runs of it is killed,
		 * and the attempt fails saying why (retried by its policy) */
		p->sup_lost = true;
		dd_exec_signal_group(s, p, SIGKILL);
		dd_exec_exited(s, p, SIGKILL);
	}
}

/* Leaves @p to the supervisor: its job leaves memory as the log has it
 * (running), for the next engine to take over. */
void dd_exec_detach(struct dd_shard *s, struct dd_exec_run *p)
{
	struct dd_jobrec *j = p->j;
	p->detached = true;
	p->j = NULL;
	if (j) {
		j->proc = NULL;
		dd_queue_wheel_cancel(&s->wheel, &j->timer);
		if (!dd_state_terminal((enum dd_state)j->state))
			dd_job_finish(s, j, DD_CANCELLED, dd_reason[R_SHUTDOWN]); /* not logged */
	}
	/* a cut under way owns its streams: freed by the sweep after it */
	if (!atomic_load_explicit(&p->os[0].busy, memory_order_acquire) &&
	    !atomic_load_explicit(&p->os[1].busy, memory_order_acquire)) {
		dd_proctree_release(s, p);
		dd_exec_proc_free(s, p);
	}
}

void dd_exec_detach_all(struct dd_shard *s)
{
	if (!s->nprocs)
		return;
	for (struct dd_exec_run *p = s->procs->next, *nx; p != s->procs; p = nx) {
		nx = p->next;
		/* an exited one ends here as usual: its status is known; a
		 * cancelled one ends as cancelled (within the grace), not as
		 * whatever it does once nobody remembers the cancel */
		if (p->sup && !p->sup_lost && !p->exited && !p->detached &&
		    !(p->j && atomic_load_explicit(&p->j->cancel, memory_order_relaxed)))
			dd_exec_detach(s, p);
	}
}

int dd_exec_adopt(struct dd_shard *s, struct dd_jobrec *j, struct dd_sup_held *h)
{
	struct dd_engine *e = s->eng;
	struct dd_proc_spec x;
	int rc = dd_proc_spec_decode(j->payload, j->payload_len, &x);
	if (rc < 0)
		return rc;
	/* the CPUs it runs on are the ones it holds again: taking the
	 * lowest free would grant its CPUs to the next job too */
	cpu_set_t on;
	bool known = !h->exited && sched_getaffinity(h->pid, sizeof(on), &on) == 0 &&
		     syscall(SYS_pidfd_send_signal, h->pidfd, 0, NULL, 0) == 0;
	struct dd_exec_run *p = dd_pool_take(s, j, x.cpus, x.mem, known ? &on : NULL);
	if (!p) {
		dd_proc_spec_free(&x);
		return -ENOMEM;
	}
	p->out_max = x.output_max ? x.output_max : e->cfg.output_max;
	p->mem_max = x.mem;
	dd_proc_spec_free(&x);
	p->id = j->id;
	p->attempt = j->attempt;
	p->sup = true;
	p->pid = h->pid;
	p->pidfd = h->pidfd;
	p->out = h->out;
	p->err = h->err;
	h->pidfd = h->out = h->err = -1;
	h->taken = true;
	for (int i = 0; i < 2; i++) {
		/* a file that was given its name keeps it; a nameless one gets
		 * it once it holds something, as before */
		struct stat st;
		int fd = i ? p->err : p->out;
		p->os[i].named = fd < 0 || (fstat(fd, &st) == 0 && st.st_nlink > 0);
	}
	int r = dd_proctree_adopt(s, p);
	if (r < 0 && r != -ENOENT)
		dd_log(e, LOG_WARNING, "job %" PRIu64 ": cannot follow its cgroup again: %s", j->id,
		       dd_strerror(r));
	int h_kind = dd_kind_for_exec(e, j->kind);
	if (h_kind >= 0)
		j->handler = (uint16_t)h_kind;
	dd_limits_force(s, j); /* it runs: counted, whatever the limits */
	j->worker = -1;
	j->pid = h->pid;
	/* its time-out counts from its start, in this clock */
	int64_t started = (int64_t)h->start_rt_ns - s->rt_offset;
	j->started_ns = started > 0 && (uint64_t)started < s->now ? (uint64_t)started : s->now;
	j->intended_ns = j->queued_ns = j->started_ns;
	dd_shard_set_state(s, j, DD_RUNNING);
	dd_exec_enlist(s, p);
	if (j->timeout_ns)
		dd_queue_wheel_arm(&s->wheel, &j->timer, j->started_ns + j->timeout_ns);
	if (h->exited)
		dd_sup_early(s, j->id, j->attempt, h->status); /* for the reactor's first turn */
	return 0;
}

void dd_exec_sup_adopted(struct dd_shard *s)
{
	struct dd_sup_shard *ss = s->sup;
	/* as many as there are now: one kept again (its job on a worker,
	 * which cannot be at the first turn) waits for its start */
	for (size_t n = ss->nearly; n && ss->nearly; n--) {
		struct dd_sup_early x = ss->early[0];
		ss->early[0] = ss->early[--ss->nearly];
		dd_exec_sup_exit(s, x.id, x.attempt, x.status);
	}
}
