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

#define ACK_EVERY_NS 10000000ull
#define START_TRIES 200 /* 10 ms apart: a leaving supervisor's last moment */
#define SUP_LEAVE_MS 500 /* a supervisor left with nothing exits within this */
#define DYING_MS 500     /* ...and one that closed its files has exited */
#define LIST_MS 10000    /* a supervisor lists what it holds at once */
#define ANSWER_S 20      /* beyond its start watchdog's limit, for a start's answer */

struct dd_sup_client {
	pthread_mutex_t mu; /* starting a supervisor */
	char prog[1024];
	struct sockaddr_un addr;
	socklen_t addrlen;
	pid_t pid; /* the supervisor this engine started (its child), or 0 */
	int pidfd;
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
static void take_events(struct dd_sup_shard *ss, int fd)
{
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ss->ev = fd;
	ss->ev_pid = 0; /* known from its list's end (DD_SUP_LISTED) */
}

/* The supervisor at the events connection's end, from its list's end: a
 * socket's peer credentials name whoever listened, the engine that
 * started it. Its pidfd tells later whether it died. */
static void events_peer(struct dd_sup_shard *ss, pid_t pid)
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
	dd_log(e, LOG_INFO, "process supervisor started: %s, pid %d", c->prog, (int)pid);
	return 0;
}

/* A connection in @role, starting a supervisor when none answers. */
static int connect_role(struct dd_engine *e, uint32_t role, unsigned shard, char *why,
			size_t whyn)
{
	struct dd_sup_client *c = e->sup;
	int fd = connect_to(c);
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

/* ---- what a supervisor holds (creation) ---- */

static int held_cmp(const void *a, const void *b)
{
	const struct dd_sup_held *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->attempt < y->attempt ? -1 : x->attempt > y->attempt;
}

struct dd_sup_held *dd_sup_held_latest(struct dd_shard *s, uint64_t id)
{
	struct dd_sup_shard *ss = s->sup;
	if (!ss || !ss->nheld)
		return NULL;
	/* sorted by (id, attempt): the last entry of @id */
	size_t lo = 0, hi = ss->nheld;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ss->held[mid].id <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && ss->held[lo - 1].id == id ? &ss->held[lo - 1] : NULL;
}

void dd_sup_reconcile(struct dd_shard *s)
{
	struct dd_sup_shard *ss = s->sup;
	for (size_t i = 0; ss && i < ss->nheld; i++) {
		struct dd_sup_held *h = &ss->held[i];
		if (h->taken)
			continue;
		h->taken = true;
		if (h->exited) {
			dd_sup_ack(s, h->id, h->attempt); /* nothing here waits for it */
			continue;
		}
		/* a process no job here runs as (its job ended, or a later
		 * attempt was taken over): it must not run on unseen. Its exit
		 * comes later, is for no job, and is acknowledged then. */
		dd_log(s->eng, LOG_WARNING, "job %" PRIu64 ": a process of its attempt %" PRIu32
		       " that no job runs as any more: killed", h->id, h->attempt);
		dd_proctree_orphan(s, h->id, h->attempt);
		dd_sup_signal(s, h->id, h->attempt, SIGKILL);
	}
}

static void held_close(struct dd_sup_held *h)
{
	int *f[] = {&h->pidfd, &h->out, &h->err};
	for (int i = 0; i < 3; i++)
		if (*f[i] >= 0) {
			close(*f[i]);
			*f[i] = -1;
		}
}

/* What comes on an events connection, sized for the largest (a bigger
 * message is cut short, and refused). */
union events_msg {
	struct dd_sup_exit x;
	struct dd_sup_child c;
	struct dd_sup_listed l;
	char b[64];
};

/* Reads the list the supervisor sends on a new events connection. */
static int read_list(struct dd_shard *s, int fd, char *why, size_t whyn)
{
	struct dd_sup_shard *ss = s->sup;
	size_t cap = 0;
	struct pollfd pf = {fd, POLLIN, 0};
	for (;;) {
		union events_msg m;
		int fds[DD_SUP_FDS_MAX];
		unsigned nfds;
		if (poll(&pf, 1, LIST_MS) != 1) {
			snprintf(why, whyn, "the supervisor did not list its processes");
			return -ETIMEDOUT;
		}
		ssize_t n = dd_sup_recv(fd, &m, sizeof(m), fds, &nfds, 0);
		if (n > 0 && dd_sup_check(&m, (size_t)n, nfds, DD_SUP_LISTED) == 0) {
			events_peer(ss, m.l.sup_pid);
			break;
		}
		if (n <= 0 || dd_sup_check(&m, (size_t)n, nfds, DD_SUP_CHILD) < 0) {
			if (n > 0)
				dd_sup_close_fds(fds, nfds);
			snprintf(why, whyn, "the supervisor's list of processes is not one");
			return -EPROTO;
		}
		if (ss->nheld == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct dd_sup_held *v = realloc(ss->held, nc * sizeof(*v));
			if (!v) {
				dd_sup_close_fds(fds, nfds);
				return -ENOMEM;
			}
			ss->held = v;
			cap = nc;
		}
		unsigned k = 0;
		struct dd_sup_held *h = &ss->held[ss->nheld++];
		*h = (struct dd_sup_held){.id = m.c.id, .attempt = m.c.attempt, .pid = m.c.pid,
					  .exited = m.c.flags & DD_SUP_C_EXITED,
					  .status = m.c.status, .start_rt_ns = m.c.start_rt_ns,
					  .pidfd = -1, .out = -1, .err = -1};
		if (m.c.flags & DD_SUP_C_PIDFD)
			h->pidfd = fds[k++];
		if (m.c.flags & DD_SUP_C_OUT)
			h->out = fds[k++];
		if (m.c.flags & DD_SUP_C_ERR)
			h->err = fds[k++];
	}
	if (ss->nheld)
		qsort(ss->held, ss->nheld, sizeof(*ss->held), held_cmp);
	return 0;
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
		int fd = connect_role(e, DD_SUP_ROLE_EVENTS, i, why, sizeof(why));
		if (fd < 0) {
			r = fd;
			break;
		}
		take_events(s->sup, fd);
		r = read_list(s, fd, why, sizeof(why));
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
			held_close(&ss->held[k]);
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
		if (*conn < 0 && (*conn = connect_role(e, DD_SUP_ROLE_SPAWN, shard, why, whyn)) < 0) {
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

/* ---- exits (reactor) ---- */

static void arm(struct dd_shard *s)
{
	struct dd_sup_shard *ss = s->sup;
	if (ss->armed || ss->ev < 0 || !s->uring)
		return;
	struct io_uring_sqe *sqe = dd_uring_sqe(s);
	if (!sqe)
		return;
	/* multishot: one poll for as long as the connection lasts */
	io_uring_prep_poll_multishot(sqe, ss->ev, POLLIN);
	io_uring_sqe_set_data64(sqe, DD_URING_TAG_SUP);
	io_uring_submit(&s->uring->ring);
	ss->armed = true;
}

static void send_acks(struct dd_shard *s, bool now)
{
	struct dd_sup_shard *ss = s->sup;
	if (!ss->nacks || ss->ev < 0)
		return;
	/* each message wakes the supervisor: a batch every few ms, unless
	 * many wait (a supervisor holds an exit's files until its ack) */
	if (!now && ss->nacks < DD_SUP_ACK_MAX && s->now < ss->ack_ns + ACK_EVERY_NS)
		return;
	ss->ack_ns = s->now;
	uint64_t done = dd_durable_lsn(s);
	if (!ss->ackbuf && !(ss->ackbuf = malloc(sizeof(*ss->ackbuf))))
		return; /* kept for the next turn */
	struct dd_sup_ack *a = ss->ackbuf;
	/* the durable ones to the front (their order does not matter) */
	size_t nd = 0;
	for (size_t i = 0; i < ss->nacks; i++)
		if (ss->acks[i].lsn <= done) {
			struct dd_sup_ack_q t = ss->acks[nd];
			ss->acks[nd++] = ss->acks[i];
			ss->acks[i] = t;
		}
	size_t sent = 0;
	while (sent < nd) {
		a->type = DD_SUP_ACK;
		a->n = 0;
		for (size_t i = sent; i < nd && a->n < DD_SUP_ACK_MAX; i++)
			a->e[a->n++] = (struct dd_sup_ack_ent){ss->acks[i].id, ss->acks[i].attempt, 0};
		size_t len = offsetof(struct dd_sup_ack, e) + a->n * sizeof(a->e[0]);
		if (dd_sup_send(ss->ev, a, len, NULL, 0, 0) != (ssize_t)len)
			break; /* not taken: kept for the next turn */
		sent += a->n;
	}
	memmove(ss->acks, ss->acks + sent, (ss->nacks - sent) * sizeof(*ss->acks));
	ss->nacks -= sent;
}

void dd_sup_ack(struct dd_shard *s, uint64_t id, uint32_t attempt)
{
	struct dd_sup_shard *ss = s->sup;
	if (ss->nacks == ss->capacks) {
		size_t nc = ss->capacks ? ss->capacks * 2 : 64;
		void *v = realloc(ss->acks, nc * sizeof(*ss->acks));
		if (!v)
			return; /* the supervisor keeps it: the next engine acks it */
		ss->acks = v;
		ss->capacks = nc;
	}
	ss->acks[ss->nacks++] = (struct dd_sup_ack_q){id, dd_durable_appended(s), attempt};
}

void dd_sup_signal(struct dd_shard *s, uint64_t id, uint32_t attempt, int sig)
{
	struct dd_sup_signal g = {.type = DD_SUP_SIGNAL, .sig = sig, .id = id, .attempt = attempt};
	if (s->sup->ev >= 0 && dd_sup_send(s->sup->ev, &g, sizeof(g), NULL, 0, 0) < 0)
		dd_log(s->eng, LOG_WARNING, "job %" PRIu64 ": the supervisor did not take signal %d "
		       "for attempt %" PRIu32, id, sig, attempt);
}

void dd_sup_early(struct dd_shard *s, uint64_t id, uint32_t attempt, int status)
{
	struct dd_sup_shard *ss = s->sup;
	if (ss->nearly == ss->capearly) {
		size_t nc = ss->capearly ? ss->capearly * 2 : 16;
		void *v = realloc(ss->early, nc * sizeof(*ss->early));
		if (!v)
			return;
		ss->early = v;
		ss->capearly = nc;
	}
	ss->early[ss->nearly++] = (struct dd_sup_early){id, attempt, status};
}

bool dd_sup_take_early(struct dd_shard *s, uint64_t id, uint32_t attempt, int *status)
{
	struct dd_sup_shard *ss = s->sup;
	for (size_t i = 0; i < ss->nearly; i++)
		if (ss->early[i].id == id && ss->early[i].attempt == attempt) {
			*status = ss->early[i].status;
			ss->early[i] = ss->early[--ss->nearly];
			return true;
		}
	return false;
}

/* The supervisor went away: what it held for this shard cannot be
 * followed any more. */
static void lost(struct dd_shard *s)
{
	struct dd_sup_shard *ss = s->sup;
	struct io_uring_sqe *sqe = ss->armed ? dd_uring_sqe(s) : NULL;
	if (sqe) {
		/* the ring's poll holds the socket: it goes with the poll */
		io_uring_prep_poll_remove(sqe, DD_URING_TAG_SUP);
		io_uring_sqe_set_data64(sqe, 0);
		io_uring_submit(&s->uring->ring);
	}
	ss->armed = false;
	close(ss->ev);
	ss->ev = -1;
	ss->retry_ns = s->now; /* a connection again at once */
	/* a dying process closes its files before it is seen to have exited:
	 * the connection's end comes first, its pidfd a moment after */
	struct pollfd pf = {ss->ev_pidfd, POLLIN, 0};
	if (ss->ev_pidfd >= 0 && poll(&pf, 1, DYING_MS) == 0) {
		/* it lives, and dropped the connection (a message it refused):
		 * what it holds is journaled there, and listed again */
		dd_log(s->eng, LOG_WARNING, "shard %u: the process supervisor (pid %d) dropped "
		       "its connection: connecting again", s->index, (int)ss->ev_pid);
		return;
	}
	ss->nacks = 0; /* its records went with it */
	memmove(ss->dead, ss->dead + 1, sizeof(ss->dead) - sizeof(ss->dead[0]));
	ss->dead[3] = ss->ev_pid;
	dd_log(s->eng, LOG_ERR, "shard %u: the process supervisor (pid %d) went away; the "
	       "running processes it held are killed and their attempts fail", s->index,
	       (int)ss->ev_pid);
	dd_exec_sup_lost(s, ss->ev_pid);
}

void dd_sup_readable(struct dd_shard *s, int res, bool more)
{
	struct dd_sup_shard *ss = s->sup;
	if (res == -ECANCELED)
		return; /* the poll of a connection that was closed (lost()) */
	ss->armed = more && res >= 0;
	if (ss->ev < 0)
		return;
	for (;;) {
		union events_msg m;
		int fds[DD_SUP_FDS_MAX];
		unsigned nfds;
		ssize_t n = dd_sup_recv(ss->ev, &m, sizeof(m), fds, &nfds, MSG_DONTWAIT);
		if (n == -EAGAIN)
			break;
		if (n > 0 && dd_sup_check(&m, (size_t)n, nfds, DD_SUP_EXIT) == 0) {
			dd_exec_sup_exit(s, m.x.id, m.x.attempt, m.x.status);
			continue;
		}
		if (n > 0 && dd_sup_check(&m, (size_t)n, nfds, DD_SUP_CHILD) == 0) {
			/* the list of a connection made again: what it holds of
			 * ours we know; an exit in it is an exit */
			dd_sup_close_fds(fds, nfds);
			if (m.c.flags & DD_SUP_C_EXITED)
				dd_exec_sup_exit(s, m.c.id, m.c.attempt, m.c.status);
			continue;
		}
		if (n > 0 && dd_sup_check(&m, (size_t)n, nfds, DD_SUP_LISTED) == 0) {
			events_peer(ss, m.l.sup_pid);
			continue;
		}
		if (n > 0)
			dd_sup_close_fds(fds, nfds);
		lost(s);
		return;
	}
	arm(s);
}

void dd_sup_poll(struct dd_shard *s)
{
	struct dd_sup_shard *ss = s->sup;
	if (!ss)
		return;
	if (!ss->running) {
		ss->running = true;
		dd_exec_sup_adopted(s);
	}
	if (ss->ev < 0 && s->now >= ss->retry_ns && !s->stopping) {
		char why[512] = "";
		int fd = connect_role(s->eng, DD_SUP_ROLE_EVENTS, s->index, why, sizeof(why));
		if (fd >= 0) {
			take_events(ss, fd);
		} else {
			ss->retry_ns = s->now + 1000000000ull;
			dd_log(s->eng, LOG_ERR, "shard %u: %s", s->index, why);
		}
	}
	arm(s);
	send_acks(s, false);
}

uint64_t dd_sup_timeout(const struct dd_shard *s, uint64_t timeout)
{
	const struct dd_sup_shard *ss = s->sup;
	if (!ss || !ss->nacks)
		return timeout;
	uint64_t due = ss->ack_ns + ACK_EVERY_NS;
	uint64_t left = due > s->now ? due - s->now : 0;
	return left < timeout ? left : timeout;
}

void dd_sup_flush(struct dd_shard *s)
{
	if (s->sup)
		send_acks(s, true);
}
