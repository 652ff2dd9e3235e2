/* What the supervisor holds for a shard (DESIGN.md section 10), read when
 * the engine connects, before recovery: recovery takes over the attempts
 * its log says run (dd_sup_held_latest), and what nobody took is ended
 * and acknowledged after it (dd_sup_reconcile). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include "exec.h"
#include "supervise.h"
#include "supervisor.h"

#define LIST_MS 10000 /* a supervisor lists what it holds at once */

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

void dd_sup_held_close(struct dd_sup_held *h)
{
	int *f[] = {&h->pidfd, &h->out, &h->err};
	for (int i = 0; i < 3; i++)
		if (*f[i] >= 0) {
			close(*f[i]);
			*f[i] = -1;
		}
}


/* Reads the list the supervisor sends on a new events connection. */
int dd_sup_read_list(struct dd_shard *s, int fd, char *why, size_t whyn)
{
	struct dd_sup_shard *ss = s->sup;
	size_t cap = 0;
	struct pollfd pf = {fd, POLLIN, 0};
	for (;;) {
		union dd_sup_events_msg m;
		int fds[DD_SUP_FDS_MAX];
		unsigned nfds;
		if (poll(&pf, 1, LIST_MS) != 1) {
			snprintf(why, whyn, "the supervisor did not list its processes");
			return -ETIMEDOUT;
		}
		ssize_t n = dd_sup_recv(fd, &m, sizeof(m), fds, &nfds, 0);
		if (n > 0 && dd_sup_check(&m, (size_t)n, nfds, DD_SUP_LISTED) == 0) {
			dd_sup_events_peer(ss, m.l.sup_pid);
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
