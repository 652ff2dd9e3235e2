/* The supervisor's starts (internal.h): one thread per spawn connection
 * (an engine worker's), so that a start that blocks (a large exec, a slow
 * file system) holds that worker alone, as it would without the
 * supervisor; and a watchdog that kills starts that hang, as the engine's
 * reactor does for its own. */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

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
	unsigned cg_first = k;
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
		for (uint32_t i = 0; i < m->ncg && i < 4; i++) {
			n->cg[n->ncg++] = cg[i];
			fds[cg_first + i] = -1;
		}
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

void *spawn_thread(void *arg)
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

void *watchdog_thread(void *arg)
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
