/* The supervisor's children (internal.h): a table by (job id, attempt)
 * and a list of all, under one lock, and the journal of the exits that
 * came while no engine listened. */
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

uint64_t now_ns(clockid_t c)
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
struct child *find(struct sup *s, uint64_t id, uint32_t attempt)
{
	for (struct child *c = s->bucket[hash(id, attempt)]; c; c = c->hnext)
		if (c->id == id && c->attempt == attempt)
			return c;
	return NULL;
}

/* Under mu. */
void insert(struct sup *s, struct child *c)
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
void drop(struct sup *s, struct child *c)
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
	for (unsigned i = 0; i < c->ncg; i++)
		close(c->cg[i]);
	if (c->out >= 0)
		close(c->out);
	if (c->err >= 0)
		close(c->err);
	free(c);
}

void wake_main(struct sup *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter wakes it as well */
}

/* ---- reporting (main thread) ---- */

void journal(struct sup *s, struct child *c)
{
	struct dd_sup_jrec r = {.magic = DD_SUP_JMAGIC, .id = c->id, .attempt = c->attempt,
				.shard = c->shard, .pid = c->pid, .status = c->status,
				.start_rt_ns = c->start_rt_ns};
	r.check = dd_sup_jrec_check(&r);
	if (c->journaled || s->jfd < 0)
		return;
	/* O_APPEND: one record per write; fdatasync so that it outlives a
	 * crash of the machine as the engine's own log would. A short write
	 * (a full disk) is cut off again, so that later records stay on
	 * their boundaries. */
	off_t end = lseek(s->jfd, 0, SEEK_END);
	ssize_t k = write(s->jfd, &r, sizeof(r));
	if (k == (ssize_t)sizeof(r) && fdatasync(s->jfd) == 0) {
		c->journaled = true;
		s->njournaled++;
	} else if (k > 0 && end >= 0 && ftruncate(s->jfd, end) < 0) {
		close(s->jfd); /* a journal out of step is worse than none */
		s->jfd = -1;
	}
}

/* The journal of an earlier supervisor: its exits wait for an engine. */
void load_journal(struct sup *s)
{
	struct dd_sup_jrec r;
	off_t at = 0;
	while (read(s->jfd, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		if (dd_sup_jrec_valid(&r) < 0) {
			/* torn (a crash mid-write): what follows is not on a
			 * record's boundary any more; cut there */
			if (ftruncate(s->jfd, at) < 0)
				fprintf(stderr, "dispatchd-supervisor: cannot cut the journal's torn "
					"tail: %s\n", strerror(errno));
			break;
		}
		at += (off_t)sizeof(r);
		if (find(s, r.id, r.attempt))
			continue; /* written twice */
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
