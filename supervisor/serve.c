/* The process supervisor's main loop (supervisor.h; DESIGN.md section 10).
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
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static struct ep listen_ep = {EP_LISTEN}, wake_ep = {EP_WAKE}, gone_ep = {EP_GONE};

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
	/* under the lock: its start's thread holds it until the reply that
	 * passes this pidfd is sent (a child that exits at once is reaped
	 * here before that), and the pidfd must not be closed under it */
	pthread_mutex_lock(&s->mu);
	if (waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si, WEXITED | WNOHANG | __WALL) < 0)
		si.si_code = CLD_KILLED, si.si_status = SIGKILL, si.si_pid = c->pid; /* cannot be */
	if (si.si_pid == 0) {
		pthread_mutex_unlock(&s->mu);
		return; /* not yet */
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
	close(c->pidfd);
	c->pidfd = -1;
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
 * here, live or ended, with the files the engine needs to take it over.
 * Taken under the lock (copies of the files, which a reap or an
 * acknowledgement may close meanwhile) and sent without it: a start
 * waits for the lock, and a send may wait for a slow reader. */
static void list_children(struct sup *s, struct events *e)
{
	struct item {
		struct dd_sup_child m;
		int fds[3];
		unsigned n;
	} *items = NULL;
	size_t count = 0, cap = 0;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	for (struct child *c = s->all.next; c != &s->all && rc == 0; c = c->next) {
		if (c->shard != e->shard)
			continue;
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct item *ni = realloc(items, nc * sizeof(*ni));
			if (!ni) {
				rc = -ENOMEM;
				break;
			}
			items = ni;
			cap = nc;
		}
		struct item *it = &items[count];
		it->m = (struct dd_sup_child){.type = DD_SUP_CHILD, .id = c->id,
					      .attempt = c->attempt, .pid = c->pid,
					      .status = c->status, .start_rt_ns = c->start_rt_ns};
		it->n = 0;
		int src[3], k = 0;
		if (c->exited)
			it->m.flags |= DD_SUP_C_EXITED;
		else
			it->m.flags |= DD_SUP_C_PIDFD, src[k++] = c->pidfd;
		if (c->out >= 0)
			it->m.flags |= DD_SUP_C_OUT, src[k++] = c->out;
		if (c->err >= 0)
			it->m.flags |= DD_SUP_C_ERR, src[k++] = c->err;
		for (int i = 0; i < k && rc == 0; i++)
			if ((it->fds[it->n++] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
				rc = -errno;
		count++;
		/* an exit is reported in the list itself; it waits for its ack */
		c->sent = c->exited;
	}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = send_wait(e->fd, &items[i].m, sizeof(items[i].m), items[i].fds, items[i].n);
	for (size_t i = 0; i < count; i++)
		for (unsigned k = 0; k < items[i].n; k++)
			if (items[i].fds[k] >= 0)
				close(items[i].fds[k]);
	free(items);
	struct dd_sup_listed l = {.type = DD_SUP_LISTED, .count = (uint32_t)count,
				  .sup_pid = getpid()};
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
		pthread_mutex_unlock(&s->mu);
		if (none)
			abandon(s);
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

/* Wakes the loop when an entry of the state directory's parent goes
 * (IN_DELETE_SELF does not come while the directory is open), so that a
 * removed state directory is seen at once rather than at the next
 * timeout, which remains the check where this cannot be set up. Any
 * entry wakes it (inotify watches a directory whole): an fstat each, in
 * a parent such as /var/lib where little is removed. */
static void watch_removal(struct sup *s)
{
	char link[64], path[PATH_MAX];
	s->gone_fd = -1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", s->dir_fd);
	ssize_t k = readlink(link, path, sizeof(path) - 1);
	if (k <= 0)
		return;
	path[k] = 0;
	char *slash = strrchr(path, '/');
	if (!slash)
		return;
	*(slash == path ? slash + 1 : slash) = 0;
	if ((s->gone_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0)
		return;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &gone_ep};
	if (inotify_add_watch(s->gone_fd, path, IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->gone_fd, &ev) < 0) {
		close(s->gone_fd);
		s->gone_fd = -1;
	}
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
	s->jfd = openat(dir_fd, DD_SUP_JOURNAL,
			O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	struct stat jst;
	if (s->jfd >= 0 && (fstat(s->jfd, &jst) < 0 || !S_ISREG(jst.st_mode))) {
		close(s->jfd); /* not a file of ours (a FIFO would hang the load) */
		s->jfd = -1;
	}
	if (s->jfd >= 0)
		load_journal(s);
	else
		fprintf(stderr, "dispatchd-supervisor: no journal (%s): an exit while no engine "
			"runs is kept in memory alone\n", strerror(errno));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_ep};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
		return -errno;
	ev.data.ptr = &wake_ep;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0)
		return -errno;
	watch_removal(s);
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
			case EP_GONE: {
				char buf[4096];
				while (read(s->gone_fd, buf, sizeof(buf)) > 0)
					;
				break; /* the check below sees whether it was ours */
			}
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
