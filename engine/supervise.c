/* The engine's side of the process supervisor (DESIGN.md section 10;
 * supervisor/supervisor.h has the protocol).
 *
 * Process jobs do not start in the engine but in the supervisor, a small
 * process of its own (dispatchd-supervisor) that is their parent: when
 * the engine dies, is killed or restarts, they go on, and their exit
 * statuses are collected and kept. The next engine on the same state
 * directory connects to it (the socket DD_SUP_SOCK there), reads what it
 * holds before recovery, and takes over each attempt its store says is
 * running: output files, time-out and cancel apply again, and the exit is
 * recorded with its real status. The supervisor forgets an exit only when
 * the engine says it is durable in the engine's own log.
 *
 * A worker hands a start over its own connection and waits for the
 * answer, as it waits for vfork without the supervisor; the shard's
 * reactor reads exits from the shard's events connection. When the
 * supervisor goes away while the engine runs, the shard's running
 * attempts are killed (their cgroups) and fail with the reason, and the
 * next start brings up a new supervisor. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "dd_config.h"
#include "durable/durable.h"
#include "exec.h"
#include "supervise.h"
#include "supervisor.h"
#include "uring.h"

extern char **environ;

#define START_TRIES 200 /* 10 ms apart: a leaving supervisor's last moment */
#define SUP_LEAVE_MS 500 /* a supervisor left with nothing exits within this */
#define ANSWER_S 20      /* beyond its start watchdog's limit, for a start's answer */

struct dd_sup_client {
	pthread_mutex_t mu; /* starting a supervisor */
	char prog[1024];
	struct sockaddr_un addr;
	socklen_t addrlen;
	pid_t pid; /* the supervisor this engine started (its child), or 0 */
	int pidfd;
	_Atomic unsigned starts; /* supervisors started: a reactor without a
				  * connection looks for the new one at once */
};

/* The program: cfg.supervisor, $DISPATCHD_SUPERVISOR (the environment
 * of the engine's own process, set by whoever runs it: the build tree's
 * tests), or the installed one. */
static const char *program(const struct dd_engine *e)
{
	if (e->cfg.supervisor)
		return e->cfg.supervisor;
	/* not from a set-id program's caller: it names what runs as us */
	const char *env = secure_getenv("DISPATCHD_SUPERVISOR");
	return env && *env ? env : DD_SUPERVISOR_PATH;
}

static int connect_to(struct dd_sup_client *c)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&c->addr, c->addrlen) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	/* the supervisor must be of our own uid, as we must be of its */
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || uc.uid != geteuid()) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

bool dd_sup_dead(const struct dd_shard *s, pid_t pid)
{
	for (int i = 0; s->sup && pid && i < 4; i++)
		if (s->sup->dead[i] == pid)
			return true;
	return false;
}

/* The events connection @fd is the shard's now: blocking sends, bounded
 * (the supervisor reads at once; one that does not is as good as gone),
 * reads without waiting. */
void dd_sup_take_events(struct dd_sup_shard *ss, int fd)
{
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ss->ev = fd;
	ss->ev_pid = 0; /* known from its list's end (DD_SUP_LISTED) */
}

/* The supervisor at the events connection's end, from its list's end: a
 * socket's peer credentials name whoever listened, the engine that
 * started it. Its pidfd tells later whether it died. */
void dd_sup_events_peer(struct dd_sup_shard *ss, pid_t pid)
{
	ss->ev_pid = pid;
	if (ss->ev_pidfd >= 0)
		close(ss->ev_pidfd);
	ss->ev_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Under c->mu: a new supervisor, listening before it runs (the socket is
 * bound here and handed over), so that a connect right after succeeds. */
static int start(struct dd_engine *e, struct dd_sup_client *c, char *why, size_t whyn)
{
	/* one supervisor per state dir: the lock is free only once the last
	 * one has gone (one that leaves unlinks its socket first) */
	int lock = openat(e->state_fd, DD_SUP_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0) {
		snprintf(why, whyn, "cannot open %s/%s: %s", e->state_dir, DD_SUP_LOCK,
			 strerror(errno));
		return -errno;
	}
	if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		close(lock);
		return r; /* one is leaving, or starting: connect again */
	}
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		close(lock);
		return -errno;
	}
	unlinkat(e->state_fd, DD_SUP_SOCK, 0); /* one that nobody answers on */
	int r;
	struct stat st;
	if (bind(lfd, (struct sockaddr *)&c->addr, c->addrlen) < 0 || listen(lfd, 256) < 0 ||
	    fstatat(e->state_fd, DD_SUP_SOCK, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		snprintf(why, whyn, "cannot listen at %s/%s: %s", e->state_dir, DD_SUP_SOCK,
			 dd_strerror(r));
		close(lfd);
		close(lock);
		return r;
	}
	fchmodat(e->state_fd, DD_SUP_SOCK, 0600, 0);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	/* dup2 onto 3, 4 and 5 clears close-on-exec for those alone; the
	 * supervisor closes anything else it inherits */
	int tmp_l = fcntl(lfd, F_DUPFD_CLOEXEC, 10), tmp_d = fcntl(e->state_fd, F_DUPFD_CLOEXEC, 10);
	posix_spawn_file_actions_adddup2(&fa, tmp_l, 3);
	posix_spawn_file_actions_adddup2(&fa, tmp_d, 4);
	posix_spawn_file_actions_adddup2(&fa, lock, 5); /* its lock, held from now on */
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char ino[32];
	snprintf(ino, sizeof(ino), "%llu", (unsigned long long)st.st_ino);
	char *argv[] = {(char *)"dispatchd-supervisor", (char *)"3", (char *)"4", ino, NULL};
	pid_t pid;
	r = tmp_l < 0 || tmp_d < 0 ? EMFILE : posix_spawn(&pid, c->prog, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (tmp_l >= 0)
		close(tmp_l);
	if (tmp_d >= 0)
		close(tmp_d);
	close(lfd);
	close(lock); /* the supervisor's copy holds it */
	if (r != 0) {
		snprintf(why, whyn, "cannot start %s: %s", c->prog, strerror(r));
		unlinkat(e->state_fd, DD_SUP_SOCK, 0);
		return -r;
	}
	if (c->pidfd >= 0) {
		/* the one before (it went away): reaped, as its parent must */
		siginfo_t si;
		waitid((idtype_t)3 /* P_PIDFD */, (id_t)c->pidfd, &si, WEXITED | WNOHANG);
		close(c->pidfd);
	}
	c->pid = pid;
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	atomic_fetch_add_explicit(&c->starts, 1, memory_order_relaxed);
	dd_log(e, LOG_INFO, "process supervisor started: %s, pid %d", c->prog, (int)pid);
	return 0;
}

/* A connection in @role, starting a supervisor when none answers. */
int dd_sup_connect_role(struct dd_engine *e, uint32_t role, unsigned shard, bool may_start,
			char *why, size_t whyn)
{
	struct dd_sup_client *c = e->sup;
	int fd = connect_to(c);
	if (fd < 0 && !may_start)
		return fd;
	/* a supervisor that is leaving holds its lock for a moment after it
	 * unlinked its socket: start() waits it out (bounded) */
	for (int tries = 0; (fd == -ECONNREFUSED || fd == -ENOENT) && tries < START_TRIES;
	     tries++) {
		pthread_mutex_lock(&c->mu);
		fd = connect_to(c); /* another thread may have started it */
		if (fd == -ECONNREFUSED || fd == -ENOENT) {
			int r = start(e, c, why, whyn);
			fd = r < 0 ? r : connect_to(c);
		}
		pthread_mutex_unlock(&c->mu);
		if (fd == -EAGAIN) {
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL); /* a bounded back-off, not a synchronisation */
			fd = -ENOENT;
		}
	}
	if (fd == -ENOENT && !why[0])
		snprintf(why, whyn, "another supervisor holds %s/%s and does not answer",
			 e->state_dir, DD_SUP_LOCK);
	if (fd < 0) {
		if (!why[0])
			snprintf(why, whyn, "cannot connect to %s/%s: %s", e->state_dir, DD_SUP_SOCK,
				 dd_strerror(fd));
		return fd;
	}
	if (role == DD_SUP_ROLE_SPAWN) {
		/* a start is answered within the supervisor's watchdog's limit;
		 * a supervisor that does not answer at all is as good as gone */
		struct timeval tv = {(time_t)(DD_PROC_SPAWN_LIMIT_NS / 1000000000ull) + ANSWER_S, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	struct dd_sup_hello h = {.type = DD_SUP_HELLO, .version = DD_SUP_VERSION, .role = role,
				 .shard = shard};
	if (dd_sup_send(fd, &h, sizeof(h), NULL, 0, 0) != (ssize_t)sizeof(h)) {
		snprintf(why, whyn, "the supervisor did not take a connection");
		close(fd);
		return -EPIPE;
	}
	return fd;
}

unsigned dd_sup_starts(const struct dd_engine *e)
{
	return e->sup ? atomic_load_explicit(&e->sup->starts, memory_order_relaxed) : 0;
}

static void client_free(struct dd_engine *e)
{
	struct dd_sup_client *c = e->sup;
	if (!c)
		return;
	if (c->pidfd >= 0 && !atomic_load_explicit(&e->leave_running, memory_order_relaxed)) {
		/* ours, and with nothing left it leaves at once: reaped, not
		 * left a zombie of a process that goes on */
		struct pollfd pf = {c->pidfd, POLLIN, 0};
		siginfo_t si;
		if (poll(&pf, 1, SUP_LEAVE_MS) == 1)
			waitid((idtype_t)3 /* P_PIDFD */, (id_t)c->pidfd, &si, WEXITED | WNOHANG);
	}
	if (c->pidfd >= 0)
		close(c->pidfd);
	pthread_mutex_destroy(&c->mu);
	free(c);
	e->sup = NULL;
}

int dd_sup_open(struct dd_engine *e)
{
	char why[512] = "";
	if (!e->state_dir || (e->cfg.supervisor && !e->cfg.supervisor[0])) {
		snprintf(e->sup_status, sizeof(e->sup_status),
			 "off: process jobs end with the engine%s",
			 e->state_dir ? "" : " (no state directory to find them again in)");
		return 0;
	}
	struct dd_sup_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	c->pidfd = -1;
	snprintf(c->prog, sizeof(c->prog), "%s", program(e));
	c->addr.sun_family = AF_UNIX;
	/* the state dir's path may be longer than a socket's: through our fd */
	int k = snprintf(c->addr.sun_path, sizeof(c->addr.sun_path), "%s/%s", e->state_dir,
			 DD_SUP_SOCK);
	if (k < 0 || (size_t)k >= sizeof(c->addr.sun_path))
		snprintf(c->addr.sun_path, sizeof(c->addr.sun_path), "/proc/self/fd/%d/%s",
			 e->state_fd, DD_SUP_SOCK);
	c->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				 strlen(c->addr.sun_path) + 1);
	e->sup = c;
	int r = 0;
	for (unsigned i = 0; i < e->nshards && r == 0; i++) {
		struct dd_shard *s = &e->shards[i];
		if (!(s->sup = calloc(1, sizeof(*s->sup)))) {
			r = -ENOMEM;
			break;
		}
		s->sup->ev = s->sup->ev_pidfd = -1;
		int fd = dd_sup_connect_role(e, DD_SUP_ROLE_EVENTS, i, true, why, sizeof(why));
		if (fd < 0) {
			r = fd;
			break;
		}
		dd_sup_take_events(s->sup, fd);
		r = dd_sup_read_list(s, fd, why, sizeof(why));
	}
	if (r < 0) {
		snprintf(e->sup_status, sizeof(e->sup_status),
			 "unavailable: %s; process jobs start in the engine and end with it",
			 why[0] ? why : dd_strerror(r));
		dd_log(e, LOG_WARNING, "process supervisor %s", e->sup_status);
		dd_sup_close(e);
		return 0;
	}
	size_t held = 0;
	for (unsigned i = 0; i < e->nshards; i++)
		held += e->shards[i].sup->nheld;
	snprintf(e->sup_status, sizeof(e->sup_status), "on: %s (%s)", c->prog,
		 c->pid ? "started by this engine" : "found running");
	if (held)
		dd_log(e, LOG_NOTICE, "process supervisor holds %zu processes of an earlier engine",
		       held);
	return 0;
}

void dd_sup_close(struct dd_engine *e)
{
	for (unsigned i = 0; e->shards && i < e->nshards; i++) {
		struct dd_shard *s = &e->shards[i];
		struct dd_sup_shard *ss = s->sup;
		if (!ss)
			continue;
		if (ss->ev >= 0)
			close(ss->ev);
		if (ss->ev_pidfd >= 0)
			close(ss->ev_pidfd);
		free(ss->ackbuf);
		for (size_t k = 0; k < ss->nheld; k++)
			dd_sup_held_close(&ss->held[k]);
		free(ss->held);
		free(ss->acks);
		free(ss->early);
		free(ss);
		s->sup = NULL;
	}
	client_free(e);
}

/* ---- starting (worker) ---- */

int dd_sup_spawn(struct dd_engine *e, int *conn, unsigned shard, uint64_t id, uint32_t attempt,
		 const void *spec, size_t spec_len, const struct dd_proc_spawn *sp,
		 struct dd_proc_child *c, pid_t *sup_pid, char *why, size_t whyn)
{
	const struct dd_proc_cred *cr = sp->cred;
	size_t envn = 0, ng = cr ? (size_t)cr->ngroups : 0;
	if (cr)
		for (int i = 0; i < 4; i++)
			envn += strlen(cr->env[i]) + 1;
	bool memfd = spec_len > DD_SUP_INLINE_MAX;
	size_t len = sizeof(struct dd_sup_spawn) + (memfd ? 0 : spec_len) + ng * 4 + envn;
	if (ng > DD_SUP_GROUPS_MAX || envn > DD_SUP_ENV_MAX || len > DD_SUP_MSG_MAX)
		return -E2BIG;
	char *buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	struct dd_sup_spawn *m = (struct dd_sup_spawn *)buf;
	*m = (struct dd_sup_spawn){.type = DD_SUP_SPAWN, .shard = shard, .id = id,
				   .attempt = attempt, .uid = sp->uid, .gid = sp->gid,
				   .spec_len = (uint32_t)spec_len};
	int fds[DD_SUP_FDS_MAX], nf = 0, mfd = -1, rc;
	fds[nf++] = sp->out;
	fds[nf++] = sp->err;
	if (sp->setuid)
		m->flags |= DD_SUP_F_SETUID;
	if (sp->cpus) {
		m->flags |= DD_SUP_F_CPUS;
		m->cpus = *sp->cpus;
	}
	if (sp->in >= 0) {
		m->flags |= DD_SUP_F_IN;
		fds[nf++] = sp->in;
	}
	for (const int *p = sp->cg_procs; p && *p >= 0 && m->ncg < 4; p++) {
		fds[nf++] = *p;
		m->ncg++;
	}
	char *t = buf + sizeof(*m);
	if (memfd) {
		m->flags |= DD_SUP_F_MEMFD;
		mfd = memfd_create("dispatchd-spec", MFD_CLOEXEC);
		if (mfd < 0 || write(mfd, spec, spec_len) != (ssize_t)spec_len) {
			rc = mfd < 0 ? -errno : -EIO;
			goto out;
		}
		fds[nf++] = mfd;
	} else {
		memcpy(t, spec, spec_len);
		t += spec_len;
	}
	if (cr) {
		m->flags |= DD_SUP_F_CRED;
		m->ngroups = (uint32_t)ng;
		m->env_len = (uint32_t)envn;
		memcpy(t, cr->groups, ng * 4);
		t += ng * 4;
		for (int i = 0; i < 4; i++) {
			size_t l = strlen(cr->env[i]) + 1;
			memcpy(t, cr->env[i], l);
			t += l;
		}
	}
	/* a connection the supervisor dropped (it went away) is made again
	 * once: the request had not been taken */
	for (int tries = 0;; tries++) {
		if (*conn < 0 && (*conn = dd_sup_connect_role(e, DD_SUP_ROLE_SPAWN, shard, true, why, whyn)) < 0) {
			rc = -EPIPE;
			goto out;
		}
		if (dd_sup_send(*conn, buf, len, fds, (unsigned)nf, 0) == (ssize_t)len)
			break;
		close(*conn);
		*conn = -1;
		if (tries) {
			snprintf(why, whyn, "the process supervisor does not take starts");
			rc = -EPIPE;
			goto out;
		}
	}
	struct dd_sup_spawned r;
	int pfd[DD_SUP_FDS_MAX];
	unsigned np;
	ssize_t n = dd_sup_recv(*conn, &r, sizeof(r), pfd, &np, 0);
	if (n <= 0 || dd_sup_check(&r, (size_t)n, np, DD_SUP_SPAWNED) < 0) {
		if (n > 0)
			dd_sup_close_fds(pfd, np);
		close(*conn);
		*conn = -1;
		/* whether it started is not known: with cgroups, the failed
		 * start's cleanup kills what runs in its cgroup */
		snprintf(why, whyn, "the process supervisor %s while starting it",
			 n == -EAGAIN ? "did not answer" : "went away");
		rc = -EPIPE;
		goto out;
	}
	rc = r.rc;
	if (rc == 0) {
		c->pid = r.pid;
		c->pidfd = pfd[0];
		*sup_pid = r.sup_pid;
	} else if (r.why[0]) {
		snprintf(why, whyn, "%s", r.why);
	}
out:
	if (mfd >= 0)
		close(mfd);
	free(buf);
	return rc;
}
