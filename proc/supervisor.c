/* The process supervisor's body (supervisor.h; DESIGN.md section 10).
 *
 * It holds the engine's process jobs as its children, so that they go on
 * when the engine dies or restarts, and their exit statuses are collected
 * by their own parent rather than lost to init. It is small on purpose: it
 * starts processes as the engine asks (dd_proc_spawn, the engine's own
 * code), reaps them, and passes each exit to the engine of the moment, or
 * to its journal while there is none.
 *
 * Threads: the main one (epoll: the listening socket, the shards' events
 * connections, each child's pidfd) reaps and reports; one thread per
 * spawn connection starts processes, so that a start that blocks (a large
 * exec, a slow file system) holds one engine worker as it would have
 * without the supervisor; a watchdog kills starts that hang, as the
 * engine's reactor does for its own starts. The children's table is
 * shared under one lock. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "supervisor.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define NBUCKETS 4096u

enum ep_kind { EP_LISTEN, EP_EVENTS, EP_CHILD, EP_WAKE };

struct ep {
	enum ep_kind kind;
};

struct child {
	struct ep ep; /* EP_CHILD: its pidfd */
	struct child *hnext;
	struct child *next, *prev;
	uint64_t id;
	uint32_t attempt, shard;
	pid_t pid;
	int pidfd, out, err;
	uint64_t start_rt_ns;
	int status;
	bool exited, sent, journaled;
};

struct events {
	struct ep ep; /* EP_EVENTS */
	struct events *next_dead;
	int fd;
	uint32_t shard;
	bool want_out; /* an exit waits for room to be sent */
	bool dead;     /* closed; freed after the epoll batch that may still name it */
};

/* A spawn connection and what the watchdog sees of it. */
struct sconn {
	struct sconn *next;
	int fd;
	_Atomic uint64_t since;
	volatile struct dd_proc_report *rep;
	struct sup *sup;
};

struct sup {
	int epfd, listen_fd, dir_fd, jfd, wake_fd;
	uint64_t sock_ino;
	pthread_mutex_t mu; /* the table, the list of spawn connections */
	struct child *bucket[NBUCKETS];
	struct child all; /* list head */
	size_t nchildren;
	size_t njournaled; /* records in the journal not yet acknowledged */
	struct sconn *sconns;
	unsigned nsconns;
	struct events *ev[DD_SUP_MAX_SHARDS];
	unsigned nev;
	struct events *dead; /* closed this batch, freed after it */
	bool served; /* some engine has connected */
	uint64_t started_ns;
};

static struct ep listen_ep = {EP_LISTEN}, wake_ep = {EP_WAKE};

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned hash(uint64_t id, uint32_t attempt)
{
	uint64_t h = (id ^ ((uint64_t)attempt << 48)) * 0x9e3779b97f4a7c15ull;
	return (unsigned)(h >> 40) % NBUCKETS;
}

/* Under mu. */
static struct child *find(struct sup *s, uint64_t id, uint32_t attempt)
{
	for (struct child *c = s->bucket[hash(id, attempt)]; c; c = c->hnext)
		if (c->id == id && c->attempt == attempt)
			return c;
	return NULL;
}

/* Under mu. */
static void insert(struct sup *s, struct child *c)
{
	unsigned b = hash(c->id, c->attempt);
	c->hnext = s->bucket[b];
	s->bucket[b] = c;
	c->next = &s->all;
	c->prev = s->all.prev;
	s->all.prev->next = c;
	s->all.prev = c;
	s->nchildren++;
}

/* Under mu. */
static void drop(struct sup *s, struct child *c)
{
	struct child **pp = &s->bucket[hash(c->id, c->attempt)];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	s->nchildren--;
	if (c->journaled && --s->njournaled == 0 && s->jfd >= 0)
		if (ftruncate(s->jfd, 0) == 0) /* everything in it was taken */
			fdatasync(s->jfd);
	if (c->out >= 0)
		close(c->out);
	if (c->err >= 0)
		close(c->err);
	free(c);
}

static void wake_main(struct sup *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter wakes it as well */
}

/* ---- starting (a spawn connection's thread) ---- */

static void watch_cb(void *arg, volatile struct dd_proc_report *rep)
{
	struct sconn *c = arg;
	if (!rep) {
		atomic_store_explicit(&c->since, 0, memory_order_release);
		return;
	}
	c->rep = rep;
	/* release pairs with the watchdog's acquire */
	atomic_store_explicit(&c->since, now_ns(CLOCK_MONOTONIC), memory_order_release);
}

static int reply(struct sconn *c, int rc, pid_t pid, int pidfd, const char *why)
{
	struct dd_sup_spawned r = {.type = DD_SUP_SPAWNED, .rc = rc, .pid = pid, .sup_pid = getpid()};
	snprintf(r.why, sizeof(r.why), "%s", why);
	return dd_sup_send(c->fd, &r, sizeof(r), &pidfd, rc == 0, 0) == (ssize_t)sizeof(r) ? 0
											    : -EPIPE;
}

/* Starts what @m asks; @fds are the request's (all closed here but the
 * output files of a child that started, which it keeps). */
static void do_spawn(struct sconn *c, const struct dd_sup_spawn *m, int *fds)
{
	struct sup *s = c->sup;
	unsigned k = 2;
	int in = (m->flags & DD_SUP_F_IN) ? fds[k++] : -1;
	int cg[5] = {-1, -1, -1, -1, -1};
	for (uint32_t i = 0; i < m->ncg; i++)
		cg[i] = fds[k++];
	int memfd = (m->flags & DD_SUP_F_MEMFD) ? fds[k++] : -1;
	const char *tail = (const char *)(m + 1);
	const void *bytes = tail;
	void *map = NULL;
	char why[DD_SUP_WHY] = "";
	struct dd_proc_spec x = {0};
	uint32_t *groups = NULL;
	struct dd_proc_child ch = {0, -1};
	int rc;
	if (memfd >= 0) {
		/* read, not mapped: a file cut short meanwhile would fault a map */
		if (!(map = malloc(m->spec_len))) {
			rc = -ENOMEM;
			goto out;
		}
		if (pread(memfd, map, m->spec_len, 0) != (ssize_t)m->spec_len) {
			rc = -EPROTO;
			goto out;
		}
		bytes = map;
	}
	if ((rc = dd_proc_spec_decode(bytes, m->spec_len, &x)) < 0)
		goto out;
	struct dd_proc_cred cr = {.uid = m->uid};
	if (m->flags & DD_SUP_F_CRED) {
		const char *g = tail + (memfd >= 0 ? 0 : m->spec_len);
		if (m->ngroups && !(groups = malloc(m->ngroups * sizeof(*groups)))) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(groups, g, m->ngroups * sizeof(*groups));
		cr.groups = groups;
		cr.ngroups = (int)m->ngroups;
		const char *e = g + m->ngroups * sizeof(*groups);
		for (int i = 0; i < 4; i++) {
			cr.env[i] = (char *)e;
			e += strlen(e) + 1;
		}
	}
	struct dd_proc_spawn sp = {
		.spec = &x, .cred = (m->flags & DD_SUP_F_CRED) ? &cr : NULL,
		.setuid = m->flags & DD_SUP_F_SETUID, .uid = m->uid, .gid = m->gid,
		.in = in, .out = fds[0], .err = fds[1],
		.cpus = (m->flags & DD_SUP_F_CPUS) ? &m->cpus : NULL,
		.cg_procs = m->ncg ? cg : NULL,
		.watch = watch_cb, .watch_arg = c,
	};
	rc = dd_proc_spawn(&sp, &ch, why, sizeof(why));
	if (rc == 0) {
		struct child *n = calloc(1, sizeof(*n));
		if (!n) {
			/* cannot keep it: it must not run unwatched */
			syscall(SYS_pidfd_send_signal, ch.pidfd, SIGKILL, NULL, 0);
			siginfo_t si;
			waitid((idtype_t)P_PIDFD, (id_t)ch.pidfd, &si, WEXITED | __WALL);
			close(ch.pidfd);
			rc = -ENOMEM;
			goto out;
		}
		*n = (struct child){.ep = {EP_CHILD}, .id = m->id, .attempt = m->attempt,
				    .shard = m->shard, .pid = ch.pid, .pidfd = ch.pidfd,
				    .out = fds[0], .err = fds[1],
				    .start_rt_ns = now_ns(CLOCK_REALTIME)};
		fds[0] = fds[1] = -1; /* the child's record keeps them */
		pthread_mutex_lock(&s->mu);
		struct child *old = find(s, m->id, m->attempt);
		if (old && old->exited) /* an attempt number the engine reused */
			drop(s, old);
		insert(s, n);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &n->ep};
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, n->pidfd, &ev) < 0) {
			/* unwatched, it would never be reported: it does not run */
			rc = -errno;
			syscall(SYS_pidfd_send_signal, n->pidfd, SIGKILL, NULL, 0);
			siginfo_t si;
			waitid((idtype_t)P_PIDFD, (id_t)n->pidfd, &si, WEXITED | __WALL);
			close(n->pidfd);
			n->pidfd = -1;
			n->exited = true;
			drop(s, n);
			pthread_mutex_unlock(&s->mu);
			goto out;
		}
		/* an exit that overtakes the reply is kept by the engine until
		 * the worker hands the job back */
		if (reply(c, 0, ch.pid, ch.pidfd, "") < 0 && !n->exited)
			kill(-ch.pid, SIGKILL); /* nobody knows it started: it must not run */
		pthread_mutex_unlock(&s->mu);
		goto done;
	}
out:
	reply(c, rc, 0, -1, why);
done:
	dd_sup_close_fds(fds, k);
	free(map);
	dd_proc_spec_free(&x);
	free(groups);
}

static void *spawn_thread(void *arg)
{
	struct sconn *c = arg;
	struct sup *s = c->sup;
	char *buf = malloc(DD_SUP_MSG_MAX);
	while (buf) {
		int fds[DD_SUP_FDS_MAX];
		unsigned nfds;
		ssize_t n = dd_sup_recv(c->fd, buf, DD_SUP_MSG_MAX, fds, &nfds, 0);
		if (n <= 0)
			break;
		if (dd_sup_check(buf, (size_t)n, nfds, DD_SUP_SPAWN) < 0) {
			dd_sup_close_fds(fds, nfds);
			break; /* not the engine's: the connection ends */
		}
		do_spawn(c, (const struct dd_sup_spawn *)buf, fds);
	}
	free(buf);
	pthread_mutex_lock(&s->mu);
	for (struct sconn **pp = &s->sconns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	s->nsconns--;
	pthread_mutex_unlock(&s->mu);
	close(c->fd);
	free(c);
	wake_main(s);
	return NULL;
}

static void *watchdog_thread(void *arg)
{
	struct sup *s = arg;
	for (;;) {
		struct timespec ts = {0, 500000000};
		nanosleep(&ts, NULL); /* a period, as the engine's reactor looks */
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		pthread_mutex_lock(&s->mu);
		for (struct sconn *c = s->sconns; c; c = c->next) {
			uint64_t since = atomic_load_explicit(&c->since, memory_order_acquire);
			if (!since || now < since + DD_PROC_SPAWN_LIMIT_NS)
				continue;
			int pid = dd_proc_report_pid(c->rep);
			if (pid > 0 && atomic_load_explicit(&c->since, memory_order_acquire) == since)
				dd_proc_spawn_abort(c->rep, pid);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- reporting (main thread) ---- */

static void journal(struct sup *s, struct child *c)
{
	struct dd_sup_jrec r = {.magic = DD_SUP_JMAGIC, .id = c->id, .attempt = c->attempt,
				.shard = c->shard, .pid = c->pid, .status = c->status,
				.start_rt_ns = c->start_rt_ns};
	r.check = dd_sup_jrec_check(&r);
	if (c->journaled || s->jfd < 0)
		return;
	/* O_APPEND: one record per write; fdatasync so that it outlives a
	 * crash of the machine as the engine's own log would */
	if (write(s->jfd, &r, sizeof(r)) == (ssize_t)sizeof(r) && fdatasync(s->jfd) == 0) {
		c->journaled = true;
		s->njournaled++;
	}
}

static void journal(struct sup *s, struct child *c);

/* The shard's engine went (or a newer one took the shard). The exits it
 * was sent but had not acknowledged go to the journal: they must outlive
 * this supervisor as they would the engine. Under mu. Freed after the
 * epoll batch, which may still name it. */
static void events_close_locked(struct sup *s, struct events *e)
{
	if (e->dead)
		return;
	e->dead = true;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, e->fd, NULL);
	close(e->fd);
	s->ev[e->shard] = NULL;
	s->nev--;
	e->next_dead = s->dead;
	s->dead = e;
	for (struct child *c = s->all.next; c != &s->all; c = c->next)
		if (c->shard == e->shard && c->exited)
			journal(s, c);
}

static void events_close(struct sup *s, struct events *e)
{
	pthread_mutex_lock(&s->mu);
	events_close_locked(s, e);
	pthread_mutex_unlock(&s->mu);
}

/* Sends @c's exit to its shard's engine; without one (or one that does
 * not take it), to the journal. Under mu. */
static void report(struct sup *s, struct child *c)
{
	struct events *e = s->ev[c->shard];
	if (e && !e->want_out) {
		struct dd_sup_exit x = {.type = DD_SUP_EXIT, .status = c->status, .id = c->id,
					.attempt = c->attempt, .pid = c->pid};
		ssize_t n = dd_sup_send(e->fd, &x, sizeof(x), NULL, 0, MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(x)) {
			c->sent = true;
			return;
		}
		if (n == -EAGAIN) {
			e->want_out = true;
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &e->ep};
			epoll_ctl(s->epfd, EPOLL_CTL_MOD, e->fd, &ev);
			return;
		}
		events_close_locked(s, e); /* journals this exit with the rest */
		return;
	}
	journal(s, c);
}

static void reap(struct sup *s, struct child *c)
{
	siginfo_t si = {0};
	if (waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG | __WALL) < 0)
		si.si_code = CLD_KILLED, si.si_status = SIGKILL, si.si_pid = c->pid; /* cannot be */
	if (si.si_pid == 0)
		return; /* not yet */
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
	close(c->pidfd);
	c->pidfd = -1;
	pthread_mutex_lock(&s->mu);
	c->exited = true;
	c->status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
	report(s, c);
	pthread_mutex_unlock(&s->mu);
}

/* Room again on @e: the exits that waited. */
static void flush_exits(struct sup *s, struct events *e)
{
	e->want_out = false;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->ep};
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, e->fd, &ev);
	pthread_mutex_lock(&s->mu);
	for (struct child *c = s->all.next; c != &s->all && !e->dead && !e->want_out; c = c->next)
		if (c->shard == e->shard && c->exited && !c->sent)
			report(s, c);
	pthread_mutex_unlock(&s->mu);
}

/* Blocking send of a list entry: the engine reads the list at once. */
static int send_wait(int fd, const void *m, size_t len, const int *fds, unsigned nfds)
{
	for (int tries = 0; tries < 50; tries++) {
		ssize_t n = dd_sup_send(fd, m, len, fds, nfds, MSG_DONTWAIT);
		if (n != -EAGAIN)
			return n == (ssize_t)len ? 0 : -EIO;
		struct pollfd p = {fd, POLLOUT, 0};
		poll(&p, 1, 100);
	}
	return -ETIMEDOUT;
}

/* A new engine's events connection for its shard: what the shard has
 * here, live or ended, with the files the engine needs to take it over. */
static void list_children(struct sup *s, struct events *e)
{
	uint32_t count = 0;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	for (struct child *c = s->all.next; c != &s->all && rc == 0; c = c->next) {
		if (c->shard != e->shard)
			continue;
		struct dd_sup_child m = {.type = DD_SUP_CHILD, .id = c->id, .attempt = c->attempt,
					 .pid = c->pid, .status = c->status,
					 .start_rt_ns = c->start_rt_ns};
		int fds[3];
		unsigned n = 0;
		if (c->exited)
			m.flags |= DD_SUP_C_EXITED;
		else
			m.flags |= DD_SUP_C_PIDFD, fds[n++] = c->pidfd;
		if (c->out >= 0)
			m.flags |= DD_SUP_C_OUT, fds[n++] = c->out;
		if (c->err >= 0)
			m.flags |= DD_SUP_C_ERR, fds[n++] = c->err;
		rc = send_wait(e->fd, &m, sizeof(m), fds, n);
		/* an exit is reported in the list itself; it waits for its ack */
		c->sent = c->exited;
		count++;
	}
	pthread_mutex_unlock(&s->mu);
	struct dd_sup_listed l = {.type = DD_SUP_LISTED, .count = count, .sup_pid = getpid()};
	if (rc < 0 || send_wait(e->fd, &l, sizeof(l), NULL, 0) < 0)
		events_close(s, e);
}

static void accept_one(struct sup *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	struct timeval tv = {2, 0};
	struct dd_sup_hello h;
	int fds[DD_SUP_FDS_MAX];
	unsigned nfds;
	/* only the engine's own uid; the hello comes at once after connect */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || uc.uid != geteuid() ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto bad;
	ssize_t n = dd_sup_recv(fd, &h, sizeof(h), fds, &nfds, 0);
	if (n < 0 || dd_sup_check(&h, (size_t)n, nfds, DD_SUP_HELLO) < 0 ||
	    h.version != DD_SUP_VERSION) {
		if (n > 0)
			dd_sup_close_fds(fds, nfds);
		goto bad;
	}
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	s->served = true;
	if (h.role == DD_SUP_ROLE_SPAWN) {
		struct sconn *c = calloc(1, sizeof(*c));
		pthread_t t;
		pthread_attr_t a;
		if (!c)
			goto bad;
		c->fd = fd;
		c->sup = s;
		pthread_mutex_lock(&s->mu);
		c->next = s->sconns;
		s->sconns = c;
		s->nsconns++;
		pthread_mutex_unlock(&s->mu);
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		int r = pthread_create(&t, &a, spawn_thread, c);
		pthread_attr_destroy(&a);
		if (r != 0) {
			pthread_mutex_lock(&s->mu);
			s->sconns = c->next; /* still first: under the same lock */
			s->nsconns--;
			pthread_mutex_unlock(&s->mu);
			free(c);
			goto bad;
		}
		return;
	}
	struct events *e = calloc(1, sizeof(*e));
	if (!e)
		goto bad;
	*e = (struct events){.ep = {EP_EVENTS}, .fd = fd, .shard = h.shard};
	if (s->ev[h.shard])
		events_close(s, s->ev[h.shard]); /* a newer engine took the shard */
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->ep};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(e);
		goto bad;
	}
	s->ev[h.shard] = e;
	s->nev++;
	list_children(s, e);
	return;
bad:
	close(fd);
}

static void on_ack(struct sup *s, const struct dd_sup_ack *a)
{
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < a->n; i++) {
		struct child *c = find(s, a->e[i].id, a->e[i].attempt);
		if (c && c->exited)
			drop(s, c);
	}
	pthread_mutex_unlock(&s->mu);
}

static void on_signal(struct sup *s, const struct dd_sup_signal *g)
{
	pthread_mutex_lock(&s->mu);
	struct child *c = find(s, g->id, g->attempt);
	/* unreaped: its pid, and the group it leads, are still its own */
	if (c && !c->exited && kill(-c->pid, g->sig) < 0)
		syscall(SYS_pidfd_send_signal, c->pidfd, g->sig, NULL, 0);
	pthread_mutex_unlock(&s->mu);
}

static void on_events(struct sup *s, struct events *e, uint32_t what)
{
	if (e->dead)
		return; /* closed earlier in this batch */
	if (what & EPOLLOUT)
		flush_exits(s, e);
	if (e->dead || !(what & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	static struct dd_sup_ack buf; /* the main thread's */
	for (;;) {
		int fds[DD_SUP_FDS_MAX];
		unsigned nfds;
		ssize_t n = dd_sup_recv(e->fd, &buf, sizeof(buf), fds, &nfds, MSG_DONTWAIT);
		if (n == -EAGAIN)
			return;
		if (n == 0)
			dd_sup_close_fds(fds, nfds); /* an empty message's, or none at the end */
		if (n <= 0) {
			events_close(s, e); /* the engine went: exits go to the journal */
			return;
		}
		if (dd_sup_check(&buf, (size_t)n, nfds, DD_SUP_ACK) == 0) {
			on_ack(s, &buf);
		} else if (dd_sup_check(&buf, (size_t)n, nfds, DD_SUP_SIGNAL) == 0) {
			on_signal(s, (const struct dd_sup_signal *)&buf);
		} else {
			dd_sup_close_fds(fds, nfds);
			events_close(s, e);
			return;
		}
	}
}

/* The journal of an earlier supervisor: its exits wait for an engine. */
static void load_journal(struct sup *s)
{
	struct dd_sup_jrec r;
	while (read(s->jfd, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		if (dd_sup_jrec_valid(&r) < 0 || find(s, r.id, r.attempt))
			continue; /* a torn record, or one written twice */
		struct child *c = calloc(1, sizeof(*c));
		if (!c)
			return;
		*c = (struct child){.ep = {EP_CHILD}, .id = r.id, .attempt = r.attempt,
				    .shard = r.shard, .pid = r.pid, .pidfd = -1, .out = -1,
				    .err = -1, .start_rt_ns = r.start_rt_ns, .status = r.status,
				    .exited = true, .journaled = true};
		insert(s, c);
		s->njournaled++;
	}
}

/* Idle: no engine, nothing held. The socket goes first (a connect from
 * now on is refused, and its engine starts a new supervisor), then the
 * check again for a connection that came in between. */
static bool idle(struct sup *s)
{
	struct stat st;
	if (!s->nev && fstat(s->dir_fd, &st) == 0 && st.st_nlink == 0) {
		/* the state directory was removed: no engine can come back for
		 * what is here, and nothing may run unaccounted */
		pthread_mutex_lock(&s->mu);
		bool none = s->nsconns == 0;
		for (struct child *c = s->all.next; none && c != &s->all; c = c->next)
			if (!c->exited && kill(-c->pid, SIGKILL) < 0)
				syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
		pthread_mutex_unlock(&s->mu);
		return none;
	}
	if (s->nev)
		return false;
	pthread_mutex_lock(&s->mu);
	bool none = s->nsconns == 0 && s->nchildren == 0;
	pthread_mutex_unlock(&s->mu);
	if (!none)
		return false;
	/* nobody came at all: give up after a while */
	return s->served || now_ns(CLOCK_MONOTONIC) - s->started_ns > 30000000000ull;
}

static void unlink_sock(struct sup *s)
{
	struct stat st;
	if (fstatat(s->dir_fd, DD_SUP_SOCK, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (uint64_t)st.st_ino == s->sock_ino)
		unlinkat(s->dir_fd, DD_SUP_SOCK, 0);
}

int dd_sup_serve(int listen_fd, int dir_fd, uint64_t sock_ino)
{
	static struct sup sup;
	struct sup *s = &sup;
	s->listen_fd = listen_fd;
	s->dir_fd = dir_fd;
	s->sock_ino = sock_ino;
	s->all.next = s->all.prev = &s->all;
	s->started_ns = now_ns(CLOCK_MONOTONIC);
	pthread_mutex_init(&s->mu, NULL);
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	s->jfd = openat(dir_fd, DD_SUP_JOURNAL, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
			0600);
	if (s->jfd >= 0)
		load_journal(s);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_ep};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
		return -errno;
	ev.data.ptr = &wake_ep;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0)
		return -errno;
	pthread_t wd;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&wd, &a, watchdog_thread, s);
	pthread_attr_destroy(&a);
	if (r != 0)
		return -r;
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(s->epfd, evs, 64, 1000);
		for (int i = 0; i < n; i++) {
			struct ep *p = evs[i].data.ptr;
			switch (p->kind) {
			case EP_LISTEN:
				accept_one(s);
				break;
			case EP_WAKE: {
				uint64_t v;
				ssize_t k = read(s->wake_fd, &v, sizeof(v));
				(void)k;
				break;
			}
			case EP_EVENTS:
				on_events(s, (struct events *)p, evs[i].events);
				break;
			case EP_CHILD:
				reap(s, (struct child *)p);
				break;
			}
		}
		for (struct events *e = s->dead, *nx; e; e = nx) {
			nx = e->next_dead;
			free(e);
		}
		s->dead = NULL;
		if (idle(s)) {
			/* a connect that came meanwhile is refused with the socket:
			 * its engine starts a new supervisor, which takes the lock
			 * (DD_SUP_LOCK) once this one has let it go by exiting */
			unlink_sock(s);
			return 0;
		}
	}
}
