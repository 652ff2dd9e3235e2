/* The process executor (DESIGN.md section 5).
 *
 * A worker spawns the process — never the reactor, since exec of a large
 * binary can take milliseconds — the way posix_spawn does: vfork, which
 * shares the worker's memory and suspends it until the child has called
 * execve, so no page tables are copied. We do not call posix_spawn itself
 * because on glibc 2.36 it can neither set rlimits nor drop to the
 * submitting user; the child below does those few system calls and
 * nothing else. (A clone with CLONE_PIDFD on a separate stack would also
 * give the pidfd atomically, but ThreadSanitizer cannot follow a CLONE_VM
 * child, and our sanitizer builds must run this code.) The pidfd is
 * opened right after: our unreaped child's pid cannot be reused. An
 * embedding program must not reap children it did not start (SIGCHLD set
 * to SIG_IGN, or waitpid(-1)), or process jobs end "signal 9".
 *
 * The reactor then watches the pidfd on the shard's io_uring
 * (IORING_OP_WAITID where the kernel has it, else a poll on the pidfd and a
 * non-blocking waitid), and ends the job with the exit status. Time-outs and
 * cancels send SIGTERM to the job's process group, SIGKILL after
 * kill_grace_ns; the job ends when the process has gone. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* ThreadSanitizer's runtime turns vfork into fork: the parent goes on
 * before the child has exec'd, so there it waits for that explicitly. */
#if defined(__SANITIZE_THREAD__)
#define VFORK_IS_FORK 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VFORK_IS_FORK 1
#endif
#endif
#define OP_WAITID 50

extern char **environ;

/* ---- status texts: static, so a record's reason can point at them ---- */

static char exit_text[256][12];
static char sig_text[65][48];
static pthread_once_t text_once = PTHREAD_ONCE_INIT;

static void make_texts(void)
{
	for (int i = 0; i < 256; i++)
		snprintf(exit_text[i], sizeof(exit_text[i]), "exit %d", i);
	for (int i = 0; i < 65; i++) {
		const char *d = sigdescr_np(i);
		snprintf(sig_text[i], sizeof(sig_text[i]), "signal %d (%s)", i, d ? d : "unknown");
	}
}

const char *dd_exec_status_text(int status)
{
	pthread_once(&text_once, make_texts);
	if (WIFEXITED(status))
		return exit_text[WEXITSTATUS(status)];
	int sig = status & 0x7f;
	return sig_text[sig <= 64 ? sig : 0];
}

const char *dd_exec_text_intern(const char *reason)
{
	pthread_once(&text_once, make_texts);
	if (!strncmp(reason, "exit ", 5)) {
		for (int i = 0; i < 256; i++)
			if (!strcmp(reason, exit_text[i]))
				return exit_text[i];
	} else if (!strncmp(reason, "signal ", 7)) {
		for (int i = 0; i < 65; i++)
			if (!strcmp(reason, sig_text[i]))
				return sig_text[i];
	} else {
		for (int e = 1; e < 134; e++) {
			const char *d = strerrordesc_np(e);
			if (d && !strcmp(reason, d))
				return d;
		}
	}
	return NULL;
}

/* ---- spawning (worker) ---- */

struct spawn_args {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int in, out, err;
	const struct dd_rlimit *rl;
	unsigned nrl;
	const cpu_set_t *cpus; /* NULL: keep the worker's */
	int keep; /* an fd >= 3 to leave open (close-on-exec), or -1 */
	bool drop;
	uid_t uid;
	gid_t gid;
};

/* The child, in the worker's memory with the worker suspended (vfork):
 * raw system calls only (glibc's setuid family would try to signal the
 * worker's sibling threads), nothing that takes a lock, no return. Why it
 * could not exec goes into @report, a shared page. Not a pipe: another
 * worker's child, forked meanwhile, would hold its write end open until
 * its own exec, and make us wait for that (it halved the spawn rate). */
static void __attribute__((noreturn)) child_main(const struct spawn_args *a, volatile int *report)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	for (int sig = 1; sig < _NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* the engine's handlers and ignores */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setpgid(0, 0) < 0 || dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
		goto fail;
	/* the fd table is the child's own copy */
	if (a->keep >= 3) {
		if (a->keep > 3)
			syscall(SYS_close_range, 3u, (unsigned)a->keep - 1, 0u);
		syscall(SYS_close_range, (unsigned)a->keep + 1, ~0u, 0u);
	} else {
		syscall(SYS_close_range, 3u, ~0u, 0u);
	}
	/* not pinned to the worker's CPU: the job may use any of ours */
	if (a->cpus)
		syscall(SYS_sched_setaffinity, 0, sizeof(*a->cpus), a->cpus);
	if (a->cwd && chdir(a->cwd) < 0)
		goto fail;
	for (unsigned i = 0; i < a->nrl; i++) {
		struct rlimit r = {.rlim_cur = a->rl[i].cur, .rlim_max = a->rl[i].max};
		if (setrlimit(a->rl[i].resource, &r) < 0)
			goto fail;
	}
	if (a->drop && (syscall(SYS_setgroups, 1, &a->gid) < 0 ||
			syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0 ||
			syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0))
		goto fail;
	execve(a->path, a->argv, a->envp);
fail:
	*report = errno ? errno : EINVAL;
	_exit(127);
}

/* Alone in its own frame, so that vfork's shared stack clobbers nothing
 * of the caller's. */
static pid_t __attribute__((noinline)) start_child(const struct spawn_args *a, volatile int *report)
{
	pid_t pid = vfork();
	if (pid == 0)
		child_main(a, report);
	return pid;
}

/* PATH look-up, as execvp would do it, but before the clone. */
static int resolve(const char *name, char *const *envp, char *buf, size_t n)
{
	if (strchr(name, '/'))
		return snprintf(buf, n, "%s", name) < (int)n ? 0 : -ENAMETOOLONG;
	const char *path = NULL;
	for (size_t i = 0; envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			path = envp[i] + 5;
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int err = -ENOENT;
	for (const char *p = path; *p;) {
		const char *c = strchr(p, ':');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (snprintf(buf, n, "%.*s/%s", (int)len, len ? p : ".", name) < (int)n) {
			struct stat st;
			if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(buf, X_OK) == 0)
					return 0;
				err = -EACCES;
			}
		}
		p += len + (c != NULL);
	}
	return err;
}

/* The environment: the engine's with the job's added, or the job's alone. */
static char **make_env(const struct dd_exec_decoded *x)
{
	size_t ne = 0, nx = 0;
	if (!x->env_replace)
		while (environ[ne])
			ne++;
	while (x->env && x->env[nx])
		nx++;
	char **v = malloc((ne + nx + 1) * sizeof(char *));
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < ne; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t kl = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
		bool over = false;
		for (size_t m = 0; m < nx && !over; m++)
			over = !strncmp(x->env[m], environ[i], kl);
		if (!over)
			v[k++] = environ[i];
	}
	for (size_t m = 0; m < nx; m++)
		v[k++] = x->env[m];
	v[k] = NULL;
	return v;
}

static int spawn(struct dd_shard *s, struct dd_jobrec *j, struct dd_proc *p)
{
	struct dd_exec_decoded x;
	char path[4096];
	char **envp = NULL;
	int in = -1, rc;
	if ((rc = dd_exec_decode(j->payload, j->payload_len, &x)) < 0)
		return rc;
	if (!(envp = make_env(&x))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = resolve(x.argv[0], envp, path, sizeof(path))) < 0)
		goto out;
	p->out_max = x.output_max ? x.output_max : s->eng->cfg.output_max;
	p->id = j->id;
	p->attempt = j->attempt;
	if ((p->out = dd_output_open(s, p, 1)) < 0 || (p->err = dd_output_open(s, p, 2)) < 0 ||
	    (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	struct spawn_args a = {
		.path = path, .argv = x.argv, .envp = envp, .cwd = x.cwd,
		.in = in, .out = p->out, .err = p->err, .rl = x.rl, .nrl = x.nrl,
		/* as root, a job runs as its owner; root only if root owns it */
		.drop = geteuid() == 0 && j->uid != 0, .uid = j->uid, .gid = j->gid,
		.cpus = s->eng->proc_cpus_ok ? &s->eng->proc_cpus : NULL, .keep = -1,
	};
	/* MAP_SHARED, so that it is shared even where vfork is a fork (the
	 * ThreadSanitizer runtime makes it one) */
	static _Thread_local volatile int *report;
	if (!report) {
		void *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (pg == MAP_FAILED) {
			rc = -ENOMEM;
			goto out;
		}
		report = pg;
	}
	*report = 0;
#ifdef VFORK_IS_FORK
	int sync[2]; /* the child holds the write end until exec or exit */
	if (pipe2(sync, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	a.keep = sync[1];
#endif
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* no handler may run in the child */
	pid_t pid = start_child(&a, report);
	int cerr = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
#ifdef VFORK_IS_FORK
	close(sync[1]);
	char eof;
	ssize_t k;
	do
		k = pid > 0 ? read(sync[0], &eof, 1) : 0;
	while (k > 0 || (k < 0 && errno == EINTR));
	close(sync[0]);
#endif
	if (pid < 0) {
		rc = -cerr;
		goto out;
	}
	/* vfork returned: the child has called execve, or failed and exited */
	int fail = *report;
	/* Our child, not yet waited for: its pid cannot have been reused. */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fail || pidfd < 0) {
		/* it exited without exec (or we cannot watch it): reap it */
		if (pidfd < 0) {
			if (!fail) {
				fail = errno;
				kill(pid, SIGKILL);
			}
			waitpid(pid, NULL, __WALL);
		} else {
			siginfo_t si;
			waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL);
			close(pidfd);
		}
		rc = -(fail ? fail : EIO);
		goto out;
	}
	p->pid = pid;
	p->pidfd = pidfd;
	rc = 0;
out:
	if (in >= 0)
		close(in);
	free(envp);
	dd_exec_decoded_free(&x);
	return rc;
}

void dd_exec_spawn(struct dd_shard *s, struct dd_jobrec *j)
{
	j->w_start_ns = dd_now_ns();
	j->proc = NULL;
	if (atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
		j->w_result = -ECANCELED; /* cancelled between hand-over and start */
		return;
	}
	if (!s->ring) {
		j->w_result = -ENOSYS; /* no io_uring to watch it with */
		return;
	}
	struct dd_proc *p = calloc(1, sizeof(*p));
	if (!p) {
		j->w_result = -ENOMEM;
		return;
	}
	p->out = p->err = p->pidfd = -1;
	p->j = j;
	int rc = spawn(s, j, p);
	if (rc < 0) {
		if (p->out >= 0)
			close(p->out);
		if (p->err >= 0)
			close(p->err);
		free(p);
		j->w_result = rc;
		return;
	}
	j->proc = p;
	j->w_result = 0;
}

/* ---- watching (reactor) ---- */

static void watch(struct dd_shard *s, struct dd_proc *p)
{
	struct io_uring_sqe *sqe = dd_ring_sqe(s);
	if (!sqe) {
		/* cannot happen with a live ring; the sweep will look again */
		return;
	}
	if (s->ring->waitid_op) {
		io_uring_prep_rw(OP_WAITID, sqe, p->pidfd, NULL, P_PIDFD, (uint64_t)(uintptr_t)&p->si);
		sqe->rw_flags = 0;
		sqe->file_index = WEXITED | __WALL;
	} else {
		io_uring_prep_poll_add(sqe, p->pidfd, POLLIN);
	}
	io_uring_sqe_set_data64(sqe, DD_RING_TAG_PROC | (uint64_t)(uintptr_t)p);
	io_uring_submit(&s->ring->ring);
}

static void proc_free(struct dd_shard *s, struct dd_proc *p)
{
	if (p->next) {
		p->prev->next = p->next;
		p->next->prev = p->prev;
		s->nprocs--;
	}
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	free(p);
}

static void signal_group(struct dd_proc *p, int sig)
{
	if (p->exited)
		return; /* reaped: its pid may be another's now */
	/* The group leader is unreaped while we hold it, so its pid (the group
	 * id) cannot have been reused. */
	if (kill(-p->pid, sig) < 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
}

void dd_exec_kill(struct dd_shard *s, struct dd_jobrec *j)
{
	/* still on its worker, which writes j->proc: dd_exec_started() will
	 * see the cancel flag and do this when the record comes back */
	if (j->flags & JF_ON_WORKER)
		return;
	struct dd_proc *p = j->proc;
	if (!p)
		return;
	signal_group(p, SIGTERM);
	dd_queue_wheel_cancel(&s->wheel, &j->timer);
	dd_queue_wheel_arm(&s->wheel, &j->timer, s->now + s->eng->cfg.kill_grace_ns);
}

void dd_exec_started(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_proc *p = j->proc;
	uint32_t how = atomic_load_explicit(&j->cancel, memory_order_relaxed);
	j->output_cut[0] = j->output_cut[1] = 0; /* the new attempt's */
	if (!p) {
		int err = j->w_result;
		if (how)
			dd_job_finish(s, j, (enum dd_state)how, j->reason);
		else
			dd_job_attempt_done(s, j, err,
					    strerrordesc_np(-err) ? strerrordesc_np(-err)
								   : dd_reason[R_HANDLER_FAILED]);
		return;
	}
	j->pid = p->pid;
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
}

/* The process has exited and its output files are final: end the attempt. */
static void proc_end(struct dd_shard *s, struct dd_proc *p)
{
	struct dd_jobrec *j = p->j;
	int status = p->status;
	j->output_cut[0] = p->os[0].cut;
	j->output_cut[1] = p->os[1].cut;
	j->proc = NULL;
	proc_free(s, p);
	s->now = dd_now_ns();
	uint32_t how = atomic_load_explicit(&j->cancel, memory_order_relaxed);
	if (dd_state_terminal((enum dd_state)j->state))
		return;
	if (how) {
		j->result = status;
		dd_job_finish(s, j, (enum dd_state)how, j->reason);
	} else {
		dd_job_attempt_done(s, j, status, dd_exec_status_text(status));
	}
}

void dd_exec_reaped(struct dd_shard *s, struct dd_proc *p, int res)
{
	if (!s->ring->waitid_op) {
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
	p->status = status;
	p->exited = true;
	if (dd_output_cap(s, p, true) && p->next) {
		/* the job ends once its output is cut (sweep); the process ended
		 * in time, whatever the cut takes */
		dd_queue_wheel_cancel(&s->wheel, &p->j->timer);
		s->procs_ending++;
		return;
	}
	proc_end(s, p);
}

/* Called from the timer: the grace after SIGTERM is over. */
void dd_exec_grace_over(struct dd_shard *s, struct dd_jobrec *j)
{
	if (j->proc && !j->proc->kill_sent) {
		j->proc->kill_sent = true;
		signal_group(j->proc, SIGKILL);
	}
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
	for (struct dd_proc *p = s->procs->next, *nx; p != s->procs; p = nx) {
		nx = p->next;
		if (!p->exited)
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
	for (struct dd_proc *p = s->procs->next; p != s->procs; p = p->next)
		signal_group(p, SIGKILL);
	uint64_t until = dd_now_ns() + 2000000000ull;
	while (s->nprocs && dd_now_ns() < until) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = {0, 10000000};
		io_uring_wait_cqe_timeout(&s->ring->ring, &cqe, &ts);
		dd_ring_reap(s);
		dd_exec_sweep(s);
	}
}

/* After the ring is gone (no completion can write into a proc any more). */
void dd_exec_free_all(struct dd_shard *s)
{
	if (!s->procs)
		return;
	while (s->procs->next != s->procs) {
		struct dd_proc *p = s->procs->next;
		if (p->j)
			p->j->proc = NULL;
		proc_free(s, p);
	}
	free(s->procs);
	s->procs = NULL;
}
