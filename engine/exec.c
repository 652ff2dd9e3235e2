/* The process executor (DESIGN.md section 5): the engine's side of a
 * process job. proc/ starts the process; this file supervises it.
 *
 * A worker starts it (dd_proc_spawn) — never the reactor, since exec of a
 * large binary can take milliseconds, and vfork holds the starting thread
 * until then. The reactor then watches the pidfd on the shard's io_uring
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

/* ---- starting (worker) ---- */

/* The reactor's watchdog sees which start a worker is in, and since when. */
static void spawn_watch(void *arg, volatile struct dd_proc_report *rep)
{
	struct dd_worker *w = arg;
	if (!rep) {
		atomic_store_explicit(&w->spawn_since, 0, memory_order_release);
		return;
	}
	w->spawn_rep = rep;
	/* release pairs with the watchdog's acquire of spawn_since */
	atomic_store_explicit(&w->spawn_since, dd_mono_ns(), memory_order_release);
}

/* Starts j's process into @p. Returns 0; -errno when it did not start
 * (@why: the text, when there is more to say than the errno); or the wait
 * status (> 0) of a child that could not go on, @why saying why. */
static int spawn(struct dd_shard *s, struct dd_jobrec *j, struct dd_exec_run *p, char *why,
		 size_t whyn)
{
	struct dd_engine *e = s->eng;
	struct dd_proc_spec x;
	struct dd_proc_cred *cr = NULL;
	int rc;
	if ((rc = dd_proc_spec_decode(j->payload, j->payload_len, &x)) < 0)
		return rc;
	p->out_max = x.output_max ? x.output_max : e->cfg.output_max;
	p->id = j->id;
	p->attempt = j->attempt;
	if ((rc = dd_output_open(s, p, 1)) < 0)
		goto out;
	p->out = rc;
	if ((rc = dd_output_open(s, p, 2)) < 0)
		goto out;
	p->err = rc;
	/* another user's job: that user's groups and environment, and (as
	 * root) its uid; none for a uid without a passwd entry */
	if (j->uid != e->euid && (rc = dd_proc_creds_get(e->creds, j->uid, &cr, why, whyn)) < 0)
		goto out;
	p->mem_max = x.mem;
	if ((rc = dd_proctree_create(s, p, x.mem, why, whyn)) < 0)
		goto out;
	/* the reactor's watchdog may kill a start that hangs: a child stopped
	 * by its user in the instant between its switch of uid and its exec,
	 * or one waiting on a file system that does not answer (FUSE, NFS) */
	struct dd_worker *w = j->worker >= 0 && (unsigned)j->worker < s->nworkers
				      ? &s->workers[j->worker]
				      : NULL;
	struct dd_proc_spawn sp = {
		.spec = &x, .cred = cr,
		/* as root, another user's job runs as that user; root's only if
		 * root owns it */
		.setuid = e->euid == 0 && cr, .uid = j->uid, .gid = j->gid,
		.in = j->stdin_fd, .out = p->out, .err = p->err,
		/* not pinned to the worker's CPU: the job runs on the CPUs the
		 * pool granted it, or any of ours */
		.cpus = p->grant.cpus ? &p->grant.set : e->proc_cpus_ok ? &e->proc_cpus : NULL,
		.cg_procs = p->cg_on ? p->cg.procs : NULL,
		.watch = w ? spawn_watch : NULL, .watch_arg = w,
	};
	struct dd_proc_child c;
	if (e->sup) {
		/* the supervisor starts it (it watches its own starts) */
		int once = -1;
		sp.watch = NULL;
		rc = dd_sup_spawn(e, w ? &w->sup_conn : &once, s->index, j->id, j->attempt, j->payload,
				  j->payload_len, &sp, &c, &p->sup_pid, why, whyn);
		if (once >= 0)
			close(once);
		p->sup = rc == 0;
		if (rc == -ETIMEDOUT)
			dd_log(e, LOG_WARNING, "shard %u: a process job's start hung for over %llu s: "
			       "killed by the supervisor's watchdog", s->index,
			       (unsigned long long)(DD_PROC_SPAWN_LIMIT_NS / 1000000000ull));
	} else {
		rc = dd_proc_spawn(&sp, &c, why, whyn);
	}
	if (rc == 0) {
		p->pid = c.pid;
		p->pidfd = c.pidfd;
	}
out:
	dd_proc_creds_put(e->creds, cr);
	dd_proc_spec_free(&x);
	return rc;
}

void dd_exec_spawn(struct dd_shard *s, struct dd_jobrec *j)
{
	j->w_start_ns = dd_mono_ns();
	/* the run the reactor made with the job's grant of the pool; it goes
	 * back with the job whatever happens here, and the reactor frees it
	 * (and gives the grant back) */
	struct dd_exec_run *p = j->proc;
	if (atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
		j->w_result = -ECANCELED; /* cancelled between hand-over and start */
		return;
	}
	if (!s->uring) {
		j->w_result = -ENOSYS; /* no io_uring to watch it with */
		return;
	}
	if (!p) {
		j->w_result = -ENOMEM; /* the reactor could not make it */
		return;
	}
	char why[DD_REASON_MAX];
	why[0] = 0;
	int rc = spawn(s, j, p, why, sizeof(why));
	if (rc != 0) {
		/* nothing runs in its cgroup: the child that could not go on
		 * has been reaped */
		dd_proctree_free(s, p);
		j->w_result = rc;
		if (why[0]) {
			/* The reactor takes the text (without memory for it, it
			 * falls back to a static one) and names the output files:
			 * the job's stderr says it too, as a shell's (and Slurm's)
			 * would. pid 0: no process. */
			p->why = dd_reason_dup(s, why);
			if (p->err >= 0)
				dprintf(p->err, "dispatchd: %s\n", why);
		}
		return;
	}
	j->w_result = 0;
}

/* ---- watching (reactor) ---- */

static void exited(struct dd_shard *s, struct dd_exec_run *p, int status);
static void detach(struct dd_shard *s, struct dd_exec_run *p);

/* On the shard's list of running processes. */
static void enlist(struct dd_shard *s, struct dd_exec_run *p)
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

static void proc_free(struct dd_shard *s, struct dd_exec_run *p)
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
static void signal_group(struct dd_shard *s, struct dd_exec_run *p, int sig)
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
		signal_group(s, j->proc, sig);
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
	signal_group(s, p, SIGTERM);
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
			proc_free(s, p);
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
	enlist(s, p);
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
		signal_group(s, p, sig); /* asked for while it was being spawned */
	int status;
	if (p->sup && dd_sup_dead(s, p->sup_pid)) {
		/* its supervisor went away while the worker handed it back */
		p->sup_lost = true;
		signal_group(s, p, SIGKILL);
		exited(s, p, SIGKILL);
	} else if (p->sup && dd_sup_take_early(s, p->id, p->attempt, &status))
		exited(s, p, status); /* it ended before its start's reply came */
	else if (p->sup && s->stopping && !how &&
		 atomic_load_explicit(&s->eng->leave_running, memory_order_relaxed))
		detach(s, p);
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
	proc_free(s, p);
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
	exited(s, p, status);
}

/* The main process of @p ended with @status (reaped here, or by the
 * supervisor). */
static void exited(struct dd_shard *s, struct dd_exec_run *p, int status)
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
		signal_group(s, j->proc, SIGKILL);
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
				proc_free(s, p);
			}
			continue;
		}
		if (!p->exited || p->tree_wait)
			dd_output_cap(s, p, false);
		else if (!atomic_load_explicit(&p->os[0].busy, memory_order_acquire) &&
			   !atomic_load_explicit(&p->os[1].busy, memory_order_acquire)) {
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
			signal_group(s, p, SIGKILL);
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
		proc_free(s, p);
	}
	free(s->procs);
	s->procs = NULL;
}

/* ---- under the supervisor (reactor) ---- */

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
			exited(s, p, status);
			return;
		}
	}
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
		signal_group(s, p, SIGKILL);
		exited(s, p, SIGKILL);
	}
}

/* Leaves @p to the supervisor: its job leaves memory as the log has it
 * (running), for the next engine to take over. */
static void detach(struct dd_shard *s, struct dd_exec_run *p)
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
		proc_free(s, p);
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
			detach(s, p);
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
	enlist(s, p);
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
