/* Starting a process (DESIGN.md sections 5 and 9).
 *
 * The way posix_spawn does it: vfork, which shares the caller's memory and
 * suspends the calling thread until the child has called execve, so no
 * page tables are copied. We do not call posix_spawn itself because on
 * glibc 2.36 it can neither set rlimits nor drop to another user;
 * the child below does those few system calls, looks the program up in
 * PATH as that user, and nothing else. (A clone with CLONE_PIDFD on a
 * separate stack would also give the pidfd atomically, but
 * ThreadSanitizer cannot follow a CLONE_VM child, and our sanitizer
 * builds must run this code.) The pidfd is opened right after: our
 * unreaped child's pid cannot be reused. A program that starts processes
 * here must not reap children it did not start (SIGCHLD set to SIG_IGN,
 * or waitpid(-1)), or they end "signal 9". */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

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

extern char **environ;

/* The step at which the child could not go on, for the reason text. */
enum step {
	STEP_SETUP = 1, STEP_CGROUP, STEP_CREDS, STEP_CWD, STEP_STDIN, STEP_OUTPUT, STEP_RLIMIT,
	STEP_EXEC,
};

/* What the child leaves in the shared page when it cannot go on. */
struct dd_proc_report {
	int err;  /* errno; 0: it exec'd */
	int step; /* enum step */
	int arg;  /* STEP_RLIMIT: the resource; STEP_OUTPUT: 1 stdout, 2 stderr */
	_Atomic int pid;     /* the child's, once it runs (for the watchdog) */
	_Atomic int killed;  /* a watchdog gave up on it (dd_proc_spawn_abort) */
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
	const char *out_path[2]; /* stdout's and stderr's files, or NULL */
	unsigned umask;
	int in, out, err;
	const struct dd_rlimit *rl;
	unsigned nrl;
	const cpu_set_t *cpus; /* NULL: keep the caller's */
	const int *cg_procs; /* cgroup.procs files to enter, -1 ends; or NULL */
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

/* The child, in the caller's memory with the calling thread suspended
 * (vfork): raw system calls only (glibc's setuid family would try to
 * signal the caller's sibling threads), nothing that takes a lock or
 * allocates, no return. Why it could not exec goes into @rep, a shared
 * page. Not a pipe: another thread's child, forked meanwhile, would hold
 * its write end open until its own exec, and make us wait for that (it
 * halved the spawn rate).
 *
 * A process of another user: groups and gid first, then the effective uid
 * alone, so that entering cwd and opening stdin are done as the user with
 * none of root's capabilities. The real and saved uid change only before
 * the program is looked up and exec'd: until then the user cannot signal
 * (stop) this child, which holds the calling thread suspended. Rlimits
 * come after that change, so the kernel checks them as for the user: no
 * hard limit above the caller's. */
static void __attribute__((noreturn)) child_main(const struct spawn_args *a,
						 volatile struct dd_proc_report *rep)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int step = STEP_SETUP, arg = 0;
	atomic_store_explicit(&rep->pid, (int)syscall(SYS_getpid), memory_order_relaxed);
	for (int sig = 1; sig < _NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* the caller's handlers and ignores */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* into the job's cgroups first, with the caller's credentials (the
	 * owner may not write there), so that everything it starts is the
	 * job's from its first instruction. "0": the writing process. */
	step = STEP_CGROUP;
	for (const int *fd = a->cg_procs; fd && *fd >= 0; fd++)
		if (write(*fd, "0", 1) != 1)
			goto fail;
	step = STEP_SETUP;
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
	/* not pinned to the calling thread's CPU: the caller says which */
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
		 * would hold the caller here for as long as the user likes. The
		 * process then reads it as usual. fds 0-2 are taken: fd is not one. */
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
	step = STEP_OUTPUT;
	for (int k = 0; k < 2; k++) {
		if (!a->out_path[k])
			continue;
		arg = k + 1;
		if (k == 1 && a->out_path[0] && !strcmp(a->out_path[0], a->out_path[1])) {
			if (dup2(1, 2) < 0) /* one file for both, as sbatch's --output */
				goto fail;
			continue;
		}
		/* as the owner (its effective uid), as sbatch: created or
		 * truncated; not blocking on a FIFO without a reader; never a
		 * /proc file, which here (vfork) would be the daemon's */
		int fd = open(a->out_path[k], O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY | O_CLOEXEC |
						      O_NONBLOCK, 0666);
		if (fd < 0 || fcntl(fd, F_SETFL, O_WRONLY) < 0)
			goto fail;
		struct statfs sf;
		if (syscall(SYS_fstatfs, fd, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC) {
			errno = EACCES;
			goto fail;
		}
		if (dup2(fd, k + 1) < 0)
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
						   volatile struct dd_proc_report *rep)
{
	pid_t pid = vfork();
	if (pid == 0)
		child_main(a, rep);
	return pid;
}

/* Why the child could not go on, into @buf. */
static void report_text(char *buf, size_t n, const struct dd_proc_report *r, const struct spawn_args *a)
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
	case STEP_OUTPUT:
		snprintf(buf, n, "cannot open %s %s: %s", r->arg == 2 ? "stderr" : "stdout",
			 a->out_path[r->arg == 2], e);
		break;
	case STEP_CREDS:
		snprintf(buf, n, "cannot switch to uid %u gid %u: %s", (unsigned)a->uid,
			 (unsigned)a->gid, e);
		break;
	case STEP_RLIMIT:
		snprintf(buf, n, "cannot set resource limit %d: %s", r->arg, e);
		break;
	case STEP_CGROUP:
		snprintf(buf, n, "cannot enter the job's cgroup: %s", e);
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

char **dd_proc_env(const struct dd_proc_spec *x, const struct dd_proc_cred *cr)
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

/* The page a start reports in: one per thread, MAP_SHARED so that it is
 * shared even where vfork is a fork (the ThreadSanitizer runtime makes it
 * one). Returns it reset, or NULL. */
static volatile struct dd_proc_report *report_page(void)
{
	static _Thread_local volatile struct dd_proc_report *report;
	if (!report) {
		void *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (pg == MAP_FAILED)
			return NULL;
		report = pg;
	}
	report->err = 0;
	atomic_store_explicit(&report->pid, 0, memory_order_relaxed);
	atomic_store_explicit(&report->killed, 0, memory_order_relaxed);
	return report;
}

int dd_proc_spawn(const struct dd_proc_spawn *sp, struct dd_proc_child *c, char *why, size_t whyn)
{
	const struct dd_proc_spec *x = sp->spec;
	const struct dd_proc_cred *cr = sp->cred;
	char path[4096];
	char **envp;
	int in = -1, rc;
	c->pid = 0;
	c->pidfd = -1;
	if (!(envp = dd_proc_env(x, cr)))
		return -ENOMEM;
	if (sp->in < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	struct spawn_args a = {
		.name = x->argv[0], .argv = x->argv, .envp = envp,
		.search = strchr(x->argv[0], '/') ? NULL : env_path(envp),
		.buf = path, .bufn = sizeof(path),
		.cwd = x->cwd, .stdin_path = x->stdin_path, .umask = x->umask,
		.out_path = {x->stdout_path, x->stderr_path},
		.in = sp->in >= 0 ? sp->in : in, .out = sp->out, .err = sp->err,
		.rl = x->rl, .nrl = x->nrl,
		.cpus = sp->cpus, .cg_procs = sp->cg_procs, .keep = -1,
		.drop = sp->setuid && cr, .uid = sp->uid, .gid = sp->gid,
		.groups = cr ? (const gid_t *)cr->groups : NULL,
		.ngroups = cr ? (size_t)cr->ngroups : 0,
	};
	volatile struct dd_proc_report *report = report_page();
	if (!report) {
		rc = -ENOMEM;
		goto out;
	}
	if (sp->watch)
		sp->watch(sp->watch_arg, report);
#ifdef VFORK_IS_FORK
	int sync[2]; /* the child holds the write end until exec or exit */
	if (pipe2(sync, O_CLOEXEC) < 0) {
		rc = -errno;
		if (sp->watch)
			sp->watch(sp->watch_arg, NULL);
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
	if (sp->watch)
		sp->watch(sp->watch_arg, NULL);
	if (pid < 0) {
		rc = -cerr;
		goto out;
	}
	/* vfork returned: the child has called execve, or failed and exited */
	struct dd_proc_report r = {.err = report->err, .step = report->step, .arg = report->arg};
	if (atomic_load_explicit(&report->killed, memory_order_acquire)) {
		siginfo_t si;
		waitid(P_PID, (id_t)pid, &si, WEXITED | __WALL);
		snprintf(why, whyn, "%s: not started within %llu s (stopped while starting, or on a "
			 "file system that does not answer): killed", a.name,
			 (unsigned long long)(DD_PROC_SPAWN_LIMIT_NS / 1000000000ull));
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
	c->pid = pid;
	c->pidfd = pidfd;
	rc = 0;
out:
	if (in >= 0)
		close(in);
	free(envp);
	return rc;
}

int dd_proc_report_pid(const volatile struct dd_proc_report *rep)
{
	return atomic_load_explicit(&rep->pid, memory_order_relaxed);
}

bool dd_proc_spawn_abort(volatile struct dd_proc_report *rep, int pid)
{
	if (pid <= 0 || atomic_exchange_explicit(&rep->killed, 1, memory_order_acq_rel))
		return false;
	kill(pid, SIGKILL);
	return true;
}
