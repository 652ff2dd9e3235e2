/* The process executor (DESIGN.md section 5).
 *
 * A worker spawns the process — never the reactor, since exec of a large
 * binary can take milliseconds — the way posix_spawn does: vfork, which
 * shares the worker's memory and suspends it until the child has called
 * execve, so no page tables are copied. We do not call posix_spawn itself
 * because on glibc 2.36 it can neither set rlimits nor drop to the
 * submitting user; the child below does those few system calls, looks the
 * program up in PATH as that user, and nothing else. (A clone with
 * CLONE_PIDFD on a separate stack would also give the pidfd atomically, but ThreadSanitizer cannot follow a CLONE_VM
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
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "exec.h"
#include "uring.h"

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

/* ---- spawning (worker) ---- */

/* The step at which the child could not go on, for the reason text. */
enum step { STEP_SETUP = 1, STEP_CREDS, STEP_CWD, STEP_STDIN, STEP_RLIMIT, STEP_EXEC };

/* What the child leaves in the shared page when it cannot go on. */
struct dd_spawn_report {
	int err;  /* errno; 0: it exec'd */
	int step; /* enum step */
	int arg;  /* STEP_RLIMIT: the resource */
	_Atomic int pid;     /* the child's, once it runs (for the watchdog) */
	_Atomic int killed;  /* the watchdog gave up on it (dd_exec_watchdog) */
};

struct spawn_args {
	const char *name;   /* argv[0] */
	char *const *argv;
	char *const *envp;
	const char *search; /* the PATH to look name up in; NULL: name has a '/' */
	char *buf;          /* room for a candidate path (the child allocates nothing) */
	size_t bufn;
	const char *cwd;
	const char *stdin_path;
	unsigned umask;
	int in, out, err;
	const struct dd_rlimit *rl;
	unsigned nrl;
	const cpu_set_t *cpus; /* NULL: keep the worker's */
	int keep; /* an fd >= 3 to leave open (close-on-exec), or -1 */
	bool drop; /* become uid/gid with groups[] */
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t ngroups;
};

/* execve() of the name, or of each PATH candidate in turn as execvp does:
 * on to the next candidate after a miss, and EACCES reported over ENOENT
 * when some candidate was there but could not be run. Returns the errno. */
static int exec_search(const struct spawn_args *a)
{
	if (!a->search) {
		execve(a->name, a->argv, a->envp);
		return errno;
	}
	size_t nl = strlen(a->name);
	bool denied = false;
	for (const char *p = a->search;;) {
		const char *c = p;
		while (*c && *c != ':')
			c++;
		size_t len = (size_t)(c - p);
		if (len + nl + 2 <= a->bufn) {
			/* an empty element is the current directory */
			if (len) {
				memcpy(a->buf, p, len);
				a->buf[len] = '/';
				memcpy(a->buf + len + 1, a->name, nl + 1);
			} else {
				memcpy(a->buf, a->name, nl + 1);
			}
			execve(a->buf, a->argv, a->envp);
			switch (errno) {
			case EACCES:
				denied = true;
				break;
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ENODEV:
			case ETIMEDOUT:
				break;
			default:
				return errno; /* there, and cannot be run: say so */
			}
		}
		if (!*c)
			break;
		p = c + 1;
	}
	return denied ? EACCES : ENOENT;
}

/* The child, in the worker's memory with the worker suspended (vfork):
 * raw system calls only (glibc's setuid family would try to signal the
 * worker's sibling threads), nothing that takes a lock or allocates, no
 * return. Why it could not exec goes into @rep, a shared page. Not a
 * pipe: another worker's child, forked meanwhile, would hold its write
 * end open until its own exec, and make us wait for that (it halved the
 * spawn rate).
 *
 * A job of another user: groups and gid first, then the effective uid
 * alone, so that entering cwd and opening stdin are done as the user with
 * none of root's capabilities. The real and saved uid change only before
 * the program is looked up and exec'd: until then the user cannot signal
 * (stop) this child, which holds the worker suspended. Rlimits come after
 * that change, so the kernel checks them as for the user: no hard limit
 * above the engine's. */
static void __attribute__((noreturn)) child_main(const struct spawn_args *a,
						 volatile struct dd_spawn_report *rep)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int step = STEP_SETUP, arg = 0;
	atomic_store_explicit(&rep->pid, (int)syscall(SYS_getpid), memory_order_relaxed);
	for (int sig = 1; sig < _NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* the engine's handlers and ignores */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* a session of its own: no controlling terminal of the daemon's (a
	 * root dispatchd started from a terminal), and a process group whose
	 * id is the pid, which cancel and time-outs signal */
	if (setsid() < 0 || dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
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
	if (a->drop) {
		step = STEP_CREDS;
		if (syscall(SYS_setgroups, a->ngroups, a->groups) < 0 ||
		    syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0)
			goto fail;
		/* the effective uid alone: root's capabilities all go (not only
		 * the file ones, as with setfsuid, which would open a device or
		 * /proc file with CAP_SYSLOG still effective), while the real
		 * and saved uid stay 0 */
		if (syscall(SYS_setresuid, (uid_t)-1, a->uid, (uid_t)-1) < 0)
			goto fail;
		if (geteuid() != a->uid) {
			errno = EPERM;
			goto fail;
		}
	}
	step = STEP_CWD;
	if (a->cwd && chdir(a->cwd) < 0)
		goto fail;
	syscall(SYS_umask, a->umask);
	if (a->stdin_path) {
		step = STEP_STDIN;
		/* Not blocking: opening a FIFO without a writer (or a device)
		 * would hold the worker here for as long as the user likes. The
		 * job then reads it as usual. fds 0-2 are taken: fd is not one. */
		int fd = open(a->stdin_path, O_RDONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || fcntl(fd, F_SETFL, O_RDONLY) < 0)
			goto fail;
		/* not a /proc file: opened here, in the daemon's memory (vfork),
		 * /proc/self/maps and its kin would describe the daemon */
		struct statfs sf;
		if (syscall(SYS_fstatfs, fd, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC) {
			errno = EACCES;
			goto fail;
		}
		if (dup2(fd, 0) < 0)
			goto fail;
		close(fd);
	}
	if (a->drop) {
		step = STEP_CREDS;
		if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0)
			goto fail;
	}
	step = STEP_RLIMIT;
	for (unsigned i = 0; i < a->nrl; i++) {
		struct rlimit r = {.rlim_cur = a->rl[i].cur, .rlim_max = a->rl[i].max};
		arg = a->rl[i].resource;
		if (setrlimit(a->rl[i].resource, &r) < 0)
			goto fail;
	}
	step = STEP_EXEC;
	errno = exec_search(a);
fail:
	rep->err = errno ? errno : EINVAL;
	rep->step = step;
	rep->arg = arg;
	/* as a shell: 127 not found, 126 found but not run (or not set up) */
	_exit(step == STEP_EXEC && rep->err == ENOENT ? 127 : 126);
}

/* Alone in its own frame, so that vfork's shared stack clobbers nothing
 * of the caller's. */
static pid_t __attribute__((noinline)) start_child(const struct spawn_args *a,
						   volatile struct dd_spawn_report *rep)
{
	pid_t pid = vfork();
	if (pid == 0)
		child_main(a, rep);
	return pid;
}

/* Why the child could not go on, into @buf. */
static void report_text(char *buf, size_t n, const struct dd_spawn_report *r, const struct spawn_args *a)
{
	const char *e = strerrordesc_np(r->err);
	if (!e)
		e = "unknown error";
	switch (r->step) {
	case STEP_EXEC:
		snprintf(buf, n, "%s: %s", a->name, e);
		break;
	case STEP_CWD:
		snprintf(buf, n, "cannot enter %s: %s", a->cwd, e);
		break;
	case STEP_STDIN:
		snprintf(buf, n, "cannot open stdin %s: %s", a->stdin_path, e);
		break;
	case STEP_CREDS:
		snprintf(buf, n, "cannot switch to uid %u gid %u: %s", (unsigned)a->uid,
			 (unsigned)a->gid, e);
		break;
	case STEP_RLIMIT:
		snprintf(buf, n, "cannot set resource limit %d: %s", r->arg, e);
		break;
	default:
		snprintf(buf, n, "cannot set up the process: %s", e);
	}
}

/* The PATH of @envp, or the default execvp uses without one. */
static const char *env_path(char *const *envp)
{
	const char *path = NULL;
	for (size_t i = 0; envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			path = envp[i] + 5;
	return path ? path : "/usr/local/bin:/usr/bin:/bin";
}

/* The environment. The engine's own job: the engine's with the job's
 * added, or the job's alone (env_replace). Another user's job (@cr): the
 * job's alone, whatever env_replace says, and USER, LOGNAME, HOME, SHELL
 * from its owner's passwd entry where the job gives none. */
static char **make_env(const struct dd_exec_decoded *x, const struct dd_cred *cr)
{
	size_t ne = 0, nx = 0;
	if (!cr && !x->env_replace)
		while (environ[ne])
			ne++;
	while (x->env && x->env[nx])
		nx++;
	char **v = malloc((ne + nx + (cr ? 4 : 0) + 1) * sizeof(char *));
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
	for (int i = 0; cr && i < 4; i++) {
		size_t kl = (size_t)(strchr(cr->env[i], '=') - cr->env[i]) + 1;
		bool given = false;
		for (size_t m = 0; m < nx && !given; m++)
			given = !strncmp(x->env[m], cr->env[i], kl);
		if (!given)
			v[k++] = cr->env[i];
	}
	v[k] = NULL;
	return v;
}

/* Starts j's process into @p. Returns 0; -errno when it did not start
 * (@why: the text, when there is more to say than the errno); or the wait
 * status (> 0) of a child that could not go on, @why saying why. */
static int spawn(struct dd_shard *s, struct dd_jobrec *j, struct dd_proc *p, char *why, size_t whyn)
{
	struct dd_engine *e = s->eng;
	struct dd_exec_decoded x;
	struct dd_cred *cr = NULL;
	char path[4096];
	char **envp = NULL;
	int in = -1, rc;
	if ((rc = dd_exec_decode(j->payload, j->payload_len, &x)) < 0)
		return rc;
	p->out_max = x.output_max ? x.output_max : e->cfg.output_max;
	p->id = j->id;
	p->attempt = j->attempt;
	if ((p->out = dd_output_open(s, p, 1)) < 0 || (p->err = dd_output_open(s, p, 2)) < 0) {
		rc = -errno;
		goto out;
	}
	if (j->uid != e->euid) {
		if ((rc = dd_creds_get(e->creds, j->uid, &cr)) < 0) {
			const char *d = strerrordesc_np(-rc);
			snprintf(why, whyn, "cannot look up uid %u: %s", (unsigned)j->uid,
				 d ? d : "unknown error");
			goto out;
		}
		if (cr->err) {
			snprintf(why, whyn, "uid %u has no passwd entry", (unsigned)j->uid);
			rc = cr->err;
			goto out;
		}
	}
	if (!(envp = make_env(&x, cr))) {
		rc = -ENOMEM;
		goto out;
	}
	if (j->stdin_fd < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	struct spawn_args a = {
		.name = x.argv[0], .argv = x.argv, .envp = envp,
		.search = strchr(x.argv[0], '/') ? NULL : env_path(envp),
		.buf = path, .bufn = sizeof(path),
		.cwd = x.cwd, .stdin_path = x.stdin_path, .umask = x.umask,
		.in = j->stdin_fd >= 0 ? j->stdin_fd : in, .out = p->out, .err = p->err,
		.rl = x.rl, .nrl = x.nrl,
		.cpus = e->proc_cpus_ok ? &e->proc_cpus : NULL, .keep = -1,
		/* as root, another user's job runs as that user; root's only if
		 * root owns it */
		.drop = e->euid == 0 && cr, .uid = j->uid, .gid = j->gid,
		.groups = cr ? (const gid_t *)cr->groups : NULL,
		.ngroups = cr ? (size_t)cr->ngroups : 0,
	};
	/* MAP_SHARED, so that it is shared even where vfork is a fork (the
	 * ThreadSanitizer runtime makes it one) */
	static _Thread_local volatile struct dd_spawn_report *report;
	if (!report) {
		void *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (pg == MAP_FAILED) {
			rc = -ENOMEM;
			goto out;
		}
		report = pg;
	}
	report->err = 0;
	atomic_store_explicit(&report->pid, 0, memory_order_relaxed);
	atomic_store_explicit(&report->killed, 0, memory_order_relaxed);
	/* the reactor's watchdog may kill a start that hangs: a child stopped
	 * by its user in the instant between its switch of uid and its exec,
	 * or one waiting on a file system that does not answer (FUSE, NFS) */
	struct dd_worker *w = j->worker >= 0 && (unsigned)j->worker < s->nworkers
				      ? &s->workers[j->worker]
				      : NULL;
	if (w) {
		w->spawn_rep = report;
		/* release pairs with the watchdog's acquire of spawn_since */
		atomic_store_explicit(&w->spawn_since, dd_now_ns(), memory_order_release);
	}
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
	if (w)
		atomic_store_explicit(&w->spawn_since, 0, memory_order_release);
	if (pid < 0) {
		rc = -cerr;
		goto out;
	}
	/* vfork returned: the child has called execve, or failed and exited */
	struct dd_spawn_report r = {.err = report->err, .step = report->step, .arg = report->arg};
	if (atomic_load_explicit(&report->killed, memory_order_acquire)) {
		siginfo_t si;
		waitid(P_PID, (id_t)pid, &si, WEXITED | __WALL);
		snprintf(why, whyn, "%s: not started within %llu s (stopped while starting, or on a "
			 "file system that does not answer): killed", a.name,
			 (unsigned long long)(DD_SPAWN_LIMIT_NS / 1000000000ull));
		rc = -ETIMEDOUT;
		goto out;
	}
	/* Our child, not yet waited for: its pid cannot have been reused. */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (r.err || pidfd < 0) {
		/* it exited without exec (or we cannot watch it): reap it */
		siginfo_t si = {0};
		if (pidfd < 0) {
			if (!r.err) {
				r.err = errno;
				kill(pid, SIGKILL);
			}
			waitid(P_PID, (id_t)pid, &si, WEXITED | __WALL);
		} else {
			waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL);
			close(pidfd);
		}
		if (r.step && si.si_code == CLD_EXITED) {
			report_text(why, whyn, &r, &a);
			rc = (si.si_status & 0xff) << 8;
		} else {
			rc = -(r.err ? r.err : EIO);
		}
		goto out;
	}
	p->pid = pid;
	p->pidfd = pidfd;
	rc = 0;
out:
	if (in >= 0)
		close(in);
	free(envp);
	dd_creds_put(e->creds, cr);
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
	if (!s->uring) {
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
	char why[DD_REASON_MAX];
	why[0] = 0;
	int rc = spawn(s, j, p, why, sizeof(why));
	if (rc != 0) {
		j->w_result = rc;
		if (why[0]) {
			/* The reactor takes the text (without memory for it, it
			 * falls back to a static one) and names the output files:
			 * the job's stderr says it too, as a shell's (and Slurm's)
			 * would. pid 0: no process. */
			p->why = dd_reason_dup(s, why);
			if (p->err >= 0)
				dprintf(p->err, "dispatchd: %s\n", why);
			j->proc = p;
			return;
		}
		if (p->out >= 0)
			close(p->out);
		if (p->err >= 0)
			close(p->err);
		free(p);
		return;
	}
	j->proc = p;
	j->w_result = 0;
}

/* ---- watching (reactor) ---- */

static void watch(struct dd_shard *s, struct dd_proc *p)
{
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

int dd_exec_signal(struct dd_shard *s, struct dd_jobrec *j, int sig)
{
	(void)s;
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
		signal_group(j->proc, sig);
	return j->proc ? 0 : -ESRCH;
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
	int sig = j->pending_sig;
	j->pending_sig = 0;
	j->output_cut[0] = j->output_cut[1] = 0; /* the new attempt's */
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
			reason = dd_exec_status_text(res);
		} else {
			reason = strerrordesc_np(-res) ? strerrordesc_np(-res)
						       : dd_reason[R_HANDLER_FAILED];
		}
		dd_job_attempt_done(s, j, res, reason);
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
	if (sig && !how)
		signal_group(p, sig); /* asked for while it was being spawned */
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

bool dd_exec_watchdog(struct dd_shard *s)
{
	bool spawning = false;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct dd_worker *w = &s->workers[i];
		uint64_t since = atomic_load_explicit(&w->spawn_since, memory_order_acquire);
		if (!since)
			continue;
		spawning = true;
		if (s->now < since + DD_SPAWN_LIMIT_NS)
			continue;
		volatile struct dd_spawn_report *rep = w->spawn_rep;
		int pid = atomic_load_explicit(&rep->pid, memory_order_relaxed);
		/* still the same start (a new one would have a later since): the
		 * child has not exec'd, so the pid is its own */
		if (pid > 0 && atomic_load_explicit(&w->spawn_since, memory_order_acquire) == since &&
		    !atomic_exchange_explicit(&rep->killed, 1, memory_order_acq_rel)) {
			kill(pid, SIGKILL);
			dd_log(s->eng, LOG_WARNING,
			       "shard %u worker %u: a process job's start hung for over %llu s: killed",
			       s->index, i, (unsigned long long)(DD_SPAWN_LIMIT_NS / 1000000000ull));
		}
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
		struct dd_proc *p = s->procs->next;
		if (p->j)
			p->j->proc = NULL;
		proc_free(s, p);
	}
	free(s->procs);
	s->procs = NULL;
}
