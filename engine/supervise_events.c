/* A shard's events connection to the supervisor (DESIGN.md section 10),
 * on the reactor: the exits it reports, read by a multishot poll on the
 * shard's ring; their acknowledgements, sent in batches once each end is
 * durable; signals for the processes it holds; and a supervisor that
 * went away (its jobs killed and failed) or a connection that dropped
 * (made again). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include "durable/durable.h"
#include "exec.h"
#include "supervise.h"
#include "supervisor.h"
#include "uring.h"

#define ACK_EVERY_NS 10000000ull
#define DYING_MS 500 /* a supervisor that closed its files has exited within this */
#define RECONNECT_NS 20000000ull /* none runs: looked for again, then less often */

static void arm(struct dd_shard *s)
{
	struct dd_sup_shard *ss = s->sup;
	if (ss->armed || ss->ev < 0 || !s->uring)
		return;
	struct io_uring_sqe *sqe = dd_uring_sqe(s);
	if (!sqe)
		return;
	/* multishot: one poll for as long as the connection lasts; its own
	 * generation, so that a completion of an earlier connection's poll
	 * (queued before it was removed) is told apart */
	ss->poll_ud = DD_URING_TAG_SUP | (++ss->poll_gen & 0xffffffffu);
	io_uring_prep_poll_multishot(sqe, ss->ev, POLLIN);
	io_uring_sqe_set_data64(sqe, ss->poll_ud);
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
		io_uring_prep_poll_remove(sqe, ss->poll_ud);
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

void dd_sup_readable(struct dd_shard *s, uint64_t ud, int res, bool more)
{
	struct dd_sup_shard *ss = s->sup;
	if (ud != ss->poll_ud || res == -ECANCELED)
		return; /* the poll of a connection that was closed (lost()) */
	ss->armed = more && res >= 0;
	if (ss->ev < 0)
		return;
	for (;;) {
		union dd_sup_events_msg m;
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
			dd_sup_events_peer(ss, m.l.sup_pid);
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
	unsigned starts = dd_sup_starts(s->eng);
	if (ss->ev < 0 && starts != ss->seen_starts) {
		/* a worker has started one: no waiting out the back-off */
		ss->retry_ns = 0;
		ss->retry_gap = 0;
	}
	ss->seen_starts = starts;
	if (ss->ev < 0 && s->now >= ss->retry_ns && !s->stopping) {
		/* to a supervisor that runs, never starting one: that blocks
		 * (a worker's next start does it), and until then there is
		 * nothing to hear from */
		char why[512] = "";
		int fd = dd_sup_connect_role(s->eng, DD_SUP_ROLE_EVENTS, s->index, false, why,
					     sizeof(why));
		if (fd >= 0) {
			dd_sup_take_events(ss, fd);
			ss->retry_gap = 0;
		} else if (fd == -ENOENT || fd == -ECONNREFUSED) {
			/* soon after a start, rarely when none comes */
			ss->retry_gap = ss->retry_gap ? ss->retry_gap * 2 : RECONNECT_NS;
			if (ss->retry_gap > 1000000000ull)
				ss->retry_gap = 1000000000ull;
			ss->retry_ns = s->now + ss->retry_gap;
		} else {
			ss->retry_ns = s->now + 1000000000ull;
			dd_log(s->eng, LOG_ERR, "shard %u: %s", s->index,
			       why[0] ? why : dd_strerror(fd));
		}
	}
	arm(s);
	send_acks(s, false);
}

uint64_t dd_sup_timeout(const struct dd_shard *s, uint64_t timeout)
{
	const struct dd_sup_shard *ss = s->sup;
	if (!ss)
		return timeout;
	if (ss->ev < 0 && !s->stopping) {
		uint64_t left = ss->retry_ns > s->now ? ss->retry_ns - s->now : 0;
		timeout = left < timeout ? left : timeout;
	}
	if (!ss->nacks)
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
