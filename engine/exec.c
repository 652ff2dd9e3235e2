/* The process executor (DESIGN.md section 5): the engine's side of a
 * process job. proc/ starts the process; this file supervises it.
 *
 * A worker starts it (exec_start.c); the reactor then watches the pidfd
 * on the shard's io_uring
 * (IORING_OP_WAITID where the kernel has it, else a poll on the pidfd and
 * a non-blocking waitid), and ends the job with the exit status.
 * Each attempt runs in a cgroup of its own where the engine has them
 * (proctree.c): when the main process has been reaped, what is left of
 * its tree is killed, and the job ends once the cgroup is empty (its
 * cgroup.events watched on the ring). Time-outs and cancels send SIGTERM
 * to the whole tree (without cgroups: to the process group), SIGKILL
 * after kill_grace_ns; the job ends when the process has gone. An
 * embedding program must not reap children it did not start (SIGCHLD set
 * to SIG_IGN, or waitpid(-1)), or process jobs end "signal 9". */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "exec.h"
#include "jobtab.h"
#include "lifecycle.h"
#include "limits.h"
#include "registry.h"
#include "stats.h"
#include "supervise.h"
#include "uring.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define OP_WAITID 50

/* ---- watching (reactor) ---- */

/* On the shard's list of running processes. */
void dd_exec_enlist(struct dd_shard *s, struct dd_exec_run *p)
{
	if (!s->procs) {
		s->procs = calloc(1, sizeof(*s->procs)); /* list head */
		if (s->procs)
			s->procs->next = s->procs->prev = s->procs;
	}
	if (s->procs) {
		p->next = s->procs;
		p->prev = s->procs->prev;
		s->procs->prev->next = p;
		s->procs->prev = p;
		s->nprocs++;
	}
}

static void watch(struct dd_shard *s, struct dd_exec_run *p)
{
	if (p->sup)
		return; /* its exit comes from the supervisor */
	struct io_uring_sqe *sqe = dd_uring_sqe(s);
	if (!sqe) {
		/* cannot happen with a live ring; the sweep will look again */
		return;
	}
	if (s->uring->waitid_op) {
		io_uring_prep_rw(OP_WAITID, sqe, p->pidfd, NULL, P_PIDFD, (uint64_t)(uintptr_t)&p->si);
		sqe->rw_flags = 0;
		sqe->file_index = WEXITED | __WALL;
	} else {
		io_uring_prep_poll_add(sqe, p->pidfd, POLLIN);
	}
	io_uring_sqe_set_data64(sqe, DD_URING_TAG_PROC | (uint64_t)(uintptr_t)p);
	io_uring_submit(&s->uring->ring);
}

void dd_exec_proc_free(struct dd_shard *s, struct dd_exec_run *p)
{
	dd_pool_release(s, &p->grant);
	if (p->j)
		dd_limits_give(s, p->j);
	if (p->next) {
		p->prev->next = p->next;
		p->next->prev = p->prev;
		s->nprocs--;
	}
	dd_proctree_free(s, p);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	free(p);
}

/* Signals p's tree: its cgroup's processes, or without one its process
 * group. */
void dd_exec_signal_group(struct dd_shard *s, struct dd_exec_run *p, int sig)
{
	if (p->cg_on) {
		dd_proctree_signal(s, p, sig);
		return;
	}
	if (p->exited)
		return; /* reaped: its pid may be another's now */
	if (p->sup && !p->sup_lost) {
		/* its parent knows whether the group's pid is still its own */
		dd_sup_signal(s, p->id, p->attempt, sig);
		return;
	}
	if (p->sup) {
		/* orphaned: the leader alone, through its pidfd, and its group
		 * while the leader lives (its pid is then still its own) */
		struct pollfd pf = {p->pidfd, POLLIN, 0};
		if (p->pidfd >= 0 && poll(&pf, 1, 0) == 0) {
			kill(-p->pid, sig);
			syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
		}
		return;
	}
	/* The group leader is unreaped while we hold it, so its pid (the group
	 * id) cannot have been reused. */
	if (kill(-p->pid, sig) < 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
}

int dd_exec_signal(struct dd_shard *s, struct dd_jobrec *j, int sig)
{
	if (dd_state_terminal((enum dd_state)j->state))
		return DD_ETERMINAL;
	if (!(j->flags & JF_EXEC) || j->state != DD_RUNNING)
		return -ESRCH;
	/* on its worker (being spawned), j->proc is the worker's to write:
	 * the signal waits for dd_exec_started() */
	if (j->flags & JF_ON_WORKER) {
		j->pending_sig = (uint8_t)sig;
		return 0;
	}
	/* no process: it could not start; exited: the job ends once its
	 * output is cut, and a signal to a process that is gone does nothing */
	if (j->proc && !j->proc->exited)
		dd_exec_signal_group(s, j->proc, sig);
	return j->proc ? 0 : -ESRCH;
}

void dd_exec_kill(struct dd_shard *s, struct dd_jobrec *j)
{
	/* still on its worker, which writes j->proc: dd_exec_started() will
	 * see the cancel flag and do this when the record comes back */
	if (j->flags & JF_ON_WORKER)
		return;
	struct dd_exec_run *p = j->proc;
	if (!p)
		return;
	dd_exec_signal_group(s, p, SIGTERM);
	dd_queue_wheel_cancel(&s->wheel, &j->timer);
	dd_queue_wheel_arm(&s->wheel, &j->timer, s->now + s->eng->cfg.kill_grace_ns);
}

void dd_exec_started(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_exec_run *p = j->proc;
	uint32_t how = atomic_load_explicit(&j->cancel, memory_order_relaxed);
	int sig = j->pending_sig;
	j->pending_sig = 0;
	j->output_cut[0] = j->output_cut[1] = 0; /* the new attempt's */
	j->use = 0;
	if (!p || !p->pid) {
		/* it did not start: w_result is -errno, or the wait status of a
		 * child that could not go on (126, 127) */
		char *why = NULL;
		if (p) {
			why = p->why;
			dd_output_cap(s, p, true);
			j->proc = NULL;
			dd_exec_proc_free(s, p);
		}
		int res = j->w_result;
		if (how) {
			dd_reason_free(s, why);
			dd_job_finish(s, j, (enum dd_state)how, j->reason);
			return;
		}
		const char *reason;
		if (why) {
			dd_job_own_reason(s, j, why);
			reason = why;
		} else if (res > 0) {
			reason = dd_proc_status_text(res);
		} else {
			reason = strerrordesc_np(-res) ? strerrordesc_np(-res)
						       : dd_reason[R_HANDLER_FAILED];
		}
		dd_job_attempt_done(s, j, res, reason);
		return;
	}
	j->pid = p->pid;
	dd_exec_enlist(s, p);
	watch(s, p);
	if (how) {
		dd_exec_kill(s, j);
	} else if (j->timeout_ns) {
		/* The time-out was armed at dispatch; the process only began now
		 * (a spawn waits for a worker, and a fork under a sanitizer is
		 * slow). It gets its whole time-out from its start, the start
		 * the job reports. */
		dd_queue_wheel_arm(&s->wheel, &j->timer, j->started_ns + j->timeout_ns); /* moves it */
	}
	if (sig && !how)
		dd_exec_signal_group(s, p, sig); /* asked for while it was being spawned */
	int status;
	if (p->sup && dd_sup_dead(s, p->sup_pid)) {
		/* its supervisor went away while the worker handed it back */
		p->sup_lost = true;
		dd_exec_signal_group(s, p, SIGKILL);
		dd_exec_exited(s, p, SIGKILL);
	} else if (p->sup && dd_sup_take_early(s, p->id, p->attempt, &status))
		dd_exec_exited(s, p, status); /* it ended before its start's reply came */
	else if (p->sup && s->stopping && !how &&
		 atomic_load_explicit(&s->eng->leave_running, memory_order_relaxed))
		dd_exec_detach(s, p);
}

/* "out of memory: limit 64 MiB" into @buf */
static void oom_text(char *buf, size_t n, uint64_t limit)
{
	static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	double v = (double)limit;
	while (v >= 1024 && u < 4 && limit % (1ull << (10 * (u + 1))) == 0) {
		v /= 1024;
		u++;
	}
	if (limit)
		snprintf(buf, n, "out of memory: limit %.0f %s", v, unit[u]);
	else
		snprintf(buf, n, "out of memory");
}

/* The process and its tree have gone and its output files are final: end
 * the attempt. */
static void proc_end(struct dd_shard *s, struct dd_exec_run *p)
{
	struct dd_jobrec *j = p->j;
	int status = p->status;
	j->output_cut[0] = p->os[0].cut;
	j->output_cut[1] = p->os[1].cut;
	j->cpu_ns = p->use.cpu_ns;
	j->mem_peak = p->use.mem_peak;
	j->use = (uint8_t)((p->use.have_cpu ? DD_USE_CPU : 0) | (p->use.have_mem ? DD_USE_MEM : 0));
	/* the kernel killed a process of the tree for its memory limit, and
	 * the attempt failed: that is why */
	bool oom = p->use.oom_kills && status != 0;
	uint64_t limit = p->mem_max;
	bool sup = p->sup, sup_lost = p->sup_lost;
	uint64_t id = p->id;
	uint32_t attempt = p->attempt;
	dd_st_add(s, ST_PROC_CPU_NS, (int64_t)p->use.cpu_ns);
	dd_st_add(s, ST_PROC_OOM, oom);
	dd_st_add(s, ST_PROC_LEFTOVERS, p->tree_killed);
	j->proc = NULL;
	dd_exec_proc_free(s, p);
	s->now = dd_mono_ns();
	uint32_t how = atomic_load_explicit(&j->cancel, memory_order_relaxed);
	if (dd_state_terminal((enum dd_state)j->state)) {
		if (sup && !sup_lost)
			dd_sup_ack(s, id, attempt);
		return;
	}
	if (how) {
		j->result = status;
		dd_job_finish(s, j, (enum dd_state)how, j->reason);
		/* a stop that kills (not one that leaves jobs running) ends the
		 * attempt itself, unlogged: the next engine retries it */
		if (sup && !sup_lost)
			dd_sup_ack(s, id, attempt);
		return;
	}
	const char *reason = dd_proc_status_text(status);
	if (sup_lost) {
		reason = "its process supervisor went away while it ran: killed";
	} else if (oom) {
		char text[64];
		oom_text(text, sizeof(text), limit);
		char *own = dd_reason_dup(s, text);
		if (own) {
			dd_job_own_reason(s, j, own);
			reason = own;
		}
	}
	dd_job_attempt_done(s, j, status, reason);
	/* the end (or retry) is in the log now: once it is durable, the
	 * supervisor may forget the exit */
	if (sup && !sup_lost)
		dd_sup_ack(s, id, attempt);
}

/* Reactor: the process and its tree have gone; its output's last cut. */
static void tree_ended(struct dd_shard *s, struct dd_exec_run *p)
{
	if (dd_output_cap(s, p, true) && p->next) {
		/* the job ends once its output is cut (sweep); the process ended
		 * in time, whatever the cut takes */
		dd_queue_wheel_cancel(&s->wheel, &p->j->timer);
		s->procs_ending++;
		return;
	}
	proc_end(s, p);
}

/* Watches p's cgroup.events: the kernel flags it (POLLPRI) when its
 * "populated" changes. */
static void watch_tree(struct dd_shard *s, struct dd_exec_run *p)
{
	struct io_uring_sqe *sqe = dd_uring_sqe(s);
	if (!sqe)
		return; /* cannot happen with a live ring */
	io_uring_prep_poll_add(sqe, p->cg.events, POLLPRI);
	io_uring_sqe_set_data64(sqe, DD_URING_TAG_PROC | DD_URING_TAG_TREE | (uint64_t)(uintptr_t)p);
	io_uring_submit(&s->uring->ring);
}

void dd_exec_tree_event(struct dd_shard *s, struct dd_exec_run *p, int res)
{
	(void)res;
	if (!p->tree_wait)
		return;
	if (!dd_proctree_gone(s, p)) {
		watch_tree(s, p);
		return;
	}
	p->tree_wait = false;
	tree_ended(s, p);
}

void dd_exec_reaped(struct dd_shard *s, struct dd_exec_run *p, int res)
{
	if (!s->uring->waitid_op) {
		/* the pidfd polled readable: collect without blocking */
		memset(&p->si, 0, sizeof(p->si));
		if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &p->si, WEXITED | __WALL | WNOHANG) < 0)
			res = -errno;
		else if (p->si.si_pid == 0) {
			watch(s, p);
			return;
		} else
			res = 0;
	}
	int status;
	if (res < 0)
		status = SIGKILL; /* cannot happen for our own child; say it died */
	else if (p->si.si_code == CLD_EXITED)
		status = (p->si.si_status & 0xff) << 8;
	else
		status = p->si.si_status & 0x7f;
	dd_exec_exited(s, p, status);
}

/* The main process of @p ended with @status (reaped here, or by the
 * supervisor). */
void dd_exec_exited(struct dd_shard *s, struct dd_exec_run *p, int status)
{
	p->status = status;
	p->exited = true;
	if (!dd_proctree_gone(s, p)) {
		/* the rest of its tree was just killed: the job ends when it
		 * has gone, whatever its time-out says now */
		p->tree_wait = true;
		dd_queue_wheel_cancel(&s->wheel, &p->j->timer);
		watch_tree(s, p);
		return;
	}
	tree_ended(s, p);
}

/* Called from the timer: the grace after SIGTERM is over. */
void dd_exec_grace_over(struct dd_shard *s, struct dd_jobrec *j)
{
	if (j->proc && !j->proc->kill_sent) {
		j->proc->kill_sent = true;
		dd_exec_signal_group(s, j->proc, SIGKILL);
	}
}

bool dd_exec_watchdog(struct dd_shard *s)
{
	bool spawning = false;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct dd_worker *w = &s->workers[i];
		uint64_t since = atomic_load_explicit(&w->spawn_since, memory_order_acquire);
		if (!since)
			continue;
		spawning = true;
		if (s->now < since + DD_PROC_SPAWN_LIMIT_NS)
			continue;
		volatile struct dd_proc_report *rep = w->spawn_rep;
		int pid = dd_proc_report_pid(rep);
		/* still the same start (a new one would have a later since): the
		 * child has not exec'd, so the pid is its own */
		if (pid > 0 && atomic_load_explicit(&w->spawn_since, memory_order_acquire) == since &&
		    dd_proc_spawn_abort(rep, pid))
			dd_log(s->eng, LOG_WARNING,
			       "shard %u worker %u: a process job's start hung for over %llu s: killed",
			       s->index, i, (unsigned long long)(DD_PROC_SPAWN_LIMIT_NS / 1000000000ull));
	}
	return spawning;
}

void dd_exec_sweep(struct dd_shard *s)
{
	/* the output helper finished the last cut of an exited process, or
	 * free space fell below the reserve (and it woke us); acquire pairs
	 * with its release */
	bool woke = atomic_load_explicit(&s->out_wake, memory_order_relaxed) &&
		    atomic_exchange_explicit(&s->out_wake, false, memory_order_acquire);
	if (!s->nprocs || (s->now < s->proc_sweep_ns && !woke))
		return;
	s->proc_sweep_ns = s->now + dd_outcut_interval(s->eng->outcut);
	for (struct dd_exec_run *p = s->procs->next, *nx; p != s->procs; p = nx) {
		nx = p->next;
		if (p->detached) {
			if (!atomic_load_explicit(&p->os[0].busy, memory_order_acquire) &&
			    !atomic_load_explicit(&p->os[1].busy, memory_order_acquire)) {
				dd_proctree_release(s, p);
				dd_exec_proc_free(s, p);
			}
			continue;
		}
		if (!p->exited || p->tree_wait)
			dd_output_cap(s, p, false);
		else if (!atomic_load_explicit(&p->os[0].busy, memory_order_acquire) &&
			   !atomic_load_explicit(&p->os[1].busy, memory_order_acquire)) {
			/* once more, the last cut: one a running look had in
			 * hand when the process ended was not the last, and the
			 * file may still be over its cap. Once only: a writer
			 * outside the tree (a file passed on) must not hold the
			 * job, and its grant, for ever. */
			if (!p->recut) {
				p->recut = true;
				if (dd_output_cap(s, p, true))
					continue;
			}
			s->procs_ending--;
			proc_end(s, p);
		}
	}
}

void dd_exec_shutdown(struct dd_shard *s)
{
	if (!s->nprocs)
		return;
	if (atomic_load_explicit(&s->eng->leave_running, memory_order_relaxed))
		dd_exec_detach_all(s);
	for (struct dd_exec_run *p = s->procs->next; p != s->procs; p = p->next)
		if (!p->detached)
			dd_exec_signal_group(s, p, SIGKILL);
	uint64_t until = dd_mono_ns() + 2000000000ull;
	while (s->nprocs && dd_mono_ns() < until) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = {0, 10000000};
		io_uring_wait_cqe_timeout(&s->uring->ring, &cqe, &ts);
		dd_uring_reap(s);
		dd_exec_sweep(s);
	}
}

/* After the ring is gone (no completion can write into a proc any more). */
void dd_exec_free_all(struct dd_shard *s)
{
	if (!s->procs)
		return;
	while (s->procs->next != s->procs) {
		struct dd_exec_run *p = s->procs->next;
		if (p->j)
			p->j->proc = NULL;
		p->j = NULL; /* the engine goes: nothing to give back */
		if (p->detached)
			dd_proctree_release(s, p); /* it runs on, for the next engine */
		dd_exec_proc_free(s, p);
	}
	free(s->procs);
	s->procs = NULL;
}
