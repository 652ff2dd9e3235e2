/* Engine callbacks to the server thread. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "events.h"

#define USERS 4096 /* distinct uids counted; more share no slot and go uncounted */
#define NO_UID UINT32_MAX

struct vec {
	void *v;
	size_t n, cap, size;
};

struct dd_events {
	pthread_mutex_t mu;
	struct vec ev[2], dur[2]; /* [0] filled by callbacks, [1] being read */
	bool signalled;
	int efd;
	_Atomic int ends, all;
	struct {
		_Atomic uint32_t uid;
		_Atomic int64_t live;
	} users[USERS];
};

static int push(struct vec *v, const void *x, size_t n)
{
	if (v->n + n > v->cap) {
		size_t cap = v->cap ? v->cap : 256;
		while (cap < v->n + n)
			cap *= 2;
		void *p = realloc(v->v, cap * v->size);
		if (!p)
			return -ENOMEM;
		v->v = p;
		v->cap = cap;
	}
	memcpy((char *)v->v + v->n * v->size, x, n * v->size);
	v->n += n;
	return 0;
}

int dd_events_create(struct dd_events **out)
{
	struct dd_events *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->mu, NULL);
	q->ev[0].size = q->ev[1].size = sizeof(struct dd_evrec);
	q->dur[0].size = q->dur[1].size = sizeof(uint64_t);
	for (unsigned i = 0; i < USERS; i++)
		atomic_init(&q->users[i].uid, NO_UID);
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		int e = -errno;
		free(q);
		return e;
	}
	*out = q;
	return 0;
}

void dd_events_destroy(struct dd_events *q)
{
	if (!q)
		return;
	for (int i = 0; i < 2; i++) {
		free(q->ev[i].v);
		free(q->dur[i].v);
	}
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

int dd_events_fd(const struct dd_events *q)
{
	return q->efd;
}

static void ring(struct dd_events *q)
{
	/* under mu: one eventfd write per batch the server has not taken yet */
	if (!q->signalled) {
		uint64_t one = 1;
		q->signalled = true;
		(void)!write(q->efd, &one, sizeof(one));
	}
}

static size_t user_slot(uint32_t uid)
{
	return (size_t)((uid * 2654435761u) % USERS);
}

static void user_drop(struct dd_events *q, uint32_t uid)
{
	for (size_t k = 0, i = user_slot(uid); k < USERS; k++, i = (i + 1) % USERS) {
		/* acquire pairs with the server's release when it claimed the slot */
		uint32_t u = atomic_load_explicit(&q->users[i].uid, memory_order_acquire);
		if (u == NO_UID)
			return;
		if (u != uid)
			continue;
		/* never below zero: jobs recovered at start-up were not counted */
		int64_t v = atomic_load_explicit(&q->users[i].live, memory_order_relaxed);
		while (v > 0 && !atomic_compare_exchange_weak_explicit(
					&q->users[i].live, &v, v - 1, memory_order_relaxed,
					memory_order_relaxed))
			;
		return;
	}
}

void dd_events_on_event(const struct dd_event *ev, void *arg)
{
	struct dd_events *q = arg;
	bool end = dd_state_terminal(ev->state);
	if (end)
		user_drop(q, ev->uid);
	if (!atomic_load_explicit(&q->all, memory_order_relaxed) &&
	    !(end && atomic_load_explicit(&q->ends, memory_order_relaxed)))
		return;
	struct dd_evrec r = {.ev = *ev};
	snprintf(r.kind, sizeof(r.kind), "%s", ev->kind ? ev->kind : "");
	snprintf(r.reason, sizeof(r.reason), "%s", ev->reason ? ev->reason : "");
	r.ev.kind = r.ev.reason = NULL; /* the server uses r.kind, r.reason */
	pthread_mutex_lock(&q->mu);
	if (push(&q->ev[0], &r, 1) == 0)
		ring(q);
	pthread_mutex_unlock(&q->mu);
}

void dd_events_on_durable(const uint64_t *ids, size_t n, void *arg)
{
	struct dd_events *q = arg;
	pthread_mutex_lock(&q->mu);
	if (push(&q->dur[0], ids, n) == 0)
		ring(q);
	/* out of memory: the submitters' answers wait for the tick's check */
	pthread_mutex_unlock(&q->mu);
}

void dd_events_want(struct dd_events *q, int ends, int all)
{
	atomic_fetch_add_explicit(&q->ends, ends, memory_order_seq_cst);
	atomic_fetch_add_explicit(&q->all, all, memory_order_seq_cst);
}

void dd_events_take(struct dd_events *q, const struct dd_evrec **ev, size_t *nev,
		    const uint64_t **dur, size_t *ndur)
{
	uint64_t v;
	(void)!read(q->efd, &v, sizeof(v));
	q->ev[1].n = q->dur[1].n = 0;
	pthread_mutex_lock(&q->mu);
	struct vec t = q->ev[0];
	q->ev[0] = q->ev[1];
	q->ev[1] = t;
	t = q->dur[0];
	q->dur[0] = q->dur[1];
	q->dur[1] = t;
	q->signalled = false;
	pthread_mutex_unlock(&q->mu);
	*ev = q->ev[1].v;
	*nev = q->ev[1].n;
	*dur = q->dur[1].v;
	*ndur = q->dur[1].n;
}

void dd_events_user_add(struct dd_events *q, uint32_t uid, int64_t n)
{
	for (size_t k = 0, i = user_slot(uid); k < USERS; k++, i = (i + 1) % USERS) {
		uint32_t u = atomic_load_explicit(&q->users[i].uid, memory_order_relaxed);
		if (u == NO_UID) {
			/* only the server claims slots: no race between claimers */
			atomic_store_explicit(&q->users[i].uid, uid, memory_order_release);
			u = uid;
		}
		if (u == uid) {
			atomic_fetch_add_explicit(&q->users[i].live, n, memory_order_relaxed);
			return;
		}
	}
}

int64_t dd_events_user_live(struct dd_events *q, uint32_t uid)
{
	for (size_t k = 0, i = user_slot(uid); k < USERS; k++, i = (i + 1) % USERS) {
		uint32_t u = atomic_load_explicit(&q->users[i].uid, memory_order_relaxed);
		if (u == NO_UID)
			return 0;
		if (u == uid)
			return atomic_load_explicit(&q->users[i].live, memory_order_relaxed);
	}
	return 0;
}
