/* Limits on running process jobs (DESIGN.md section 10): at most N at
 * once of one owner, or of one kind (queue), as a site's policy says
 * (Slurm's MaxJobsPerUser and per-partition limits).
 *
 * The counts are the engine's, shared by its shards: an owner's or a
 * kind's running jobs on every shard count against one limit. A process
 * job takes its counts when the reactor takes it for the pool (so that a
 * job waiting for CPUs holds its place in both) and gives them back when
 * its attempt ends. A job over a limit does not wait in the pool, where
 * it would hold back the jobs behind it, but aside in its shard's held
 * lanes (priority order), with the reason in its record; when any count
 * goes back, or the limits change, each shard with held jobs looks at
 * them again.
 *
 * The limits themselves are an immutable set swapped in whole
 * (dd_engine_set_limits); old sets stay until the engine goes, since a
 * reactor may still be reading one and reloads are rare. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "limits.h"

#define USER_SLOTS 16384u /* owners counted at once; beyond, one goes uncounted */

struct ulimit {
	uint32_t uid, max;
};
struct qlimit {
	char name[64];
	uint32_t max;
};
struct limitset {
	struct limitset *older;
	uint32_t any_user; /* for owners without their own; 0 none */
	size_t nusers, nqueues;
	struct ulimit *users; /* sorted by uid */
	struct qlimit *queues;
};
struct uslot {
	_Atomic uint32_t key; /* uid + 1; 0 free */
	_Atomic uint32_t running;
};
struct dd_limits {
	pthread_mutex_t mu; /* makes and publishes sets */
	_Atomic(struct limitset *) cur;
	struct limitset *all;
	_Atomic uint64_t epoch; /* a count went back, or the limits changed */
	_Atomic size_t held;    /* jobs held on every shard */
	struct uslot user[USER_SLOTS];
	_Atomic uint32_t queue[DD_MAX_HANDLERS];
};

static const char held_user[] = "waiting: its owner's limit of running process jobs";
static const char held_queue[] = "waiting: its queue's limit of running process jobs";

static int ucmp(const void *a, const void *b)
{
	const struct ulimit *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* A set from @v (entries with max 0 are no limit); NULL: no memory. */
static struct limitset *make_set(const struct dd_run_limit *v, size_t n)
{
	struct limitset *ls = calloc(1, sizeof(*ls));
	if (!ls || (n && (!(ls->users = calloc(n, sizeof(*ls->users))) ||
			  !(ls->queues = calloc(n, sizeof(*ls->queues)))))) {
		if (ls) {
			free(ls->users);
			free(ls);
		}
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].max)
			continue;
		if (v[i].kind) {
			struct qlimit *q = &ls->queues[ls->nqueues++];
			snprintf(q->name, sizeof(q->name), "%s", v[i].kind);
			q->max = v[i].max;
		} else if (v[i].uid == DD_LIMIT_ANY_USER)
			ls->any_user = v[i].max;
		else
			ls->users[ls->nusers++] = (struct ulimit){v[i].uid, v[i].max};
	}
	if (ls->nusers)
		qsort(ls->users, ls->nusers, sizeof(*ls->users), ucmp);
	return ls;
}

static int check(const struct dd_run_limit *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].kind && (!v[i].kind[0] || strlen(v[i].kind) > 63))
			return -EINVAL;
	return 0;
}

static void wake_holders(struct dd_engine *e)
{
	struct dd_limits *L = e->limits;
	atomic_fetch_add_explicit(&L->epoch, 1, memory_order_release);
	for (unsigned i = 0; i < e->nshards; i++)
		dd_queue_wake_notify(&e->shards[i].wake);
}

int dd_limits_create(struct dd_engine *e)
{
	if (check(e->cfg.limits, e->cfg.nlimits) < 0)
		return -EINVAL;
	struct dd_limits *L = calloc(1, sizeof(*L));
	if (!L)
		return -ENOMEM;
	pthread_mutex_init(&L->mu, NULL);
	if (e->cfg.nlimits) {
		struct limitset *ls = make_set(e->cfg.limits, e->cfg.nlimits);
		if (!ls) {
			free(L);
			return -ENOMEM;
		}
		L->all = ls;
		atomic_init(&L->cur, ls);
	}
	e->limits = L;
	return 0;
}

void dd_limits_destroy(struct dd_engine *e)
{
	struct dd_limits *L = e->limits;
	if (!L)
		return;
	for (struct limitset *ls = L->all, *o; ls; ls = o) {
		o = ls->older;
		free(ls->users);
		free(ls->queues);
		free(ls);
	}
	pthread_mutex_destroy(&L->mu);
	free(L);
	e->limits = NULL;
}

int dd_engine_set_limits(struct dd_engine *e, const struct dd_run_limit *v, size_t n)
{
	struct dd_limits *L = e->limits;
	if (check(v, n) < 0)
		return -EINVAL;
	struct limitset *ls = make_set(v, n);
	if (!ls)
		return -ENOMEM;
	pthread_mutex_lock(&L->mu);
	ls->older = L->all;
	L->all = ls;
	atomic_store_explicit(&L->cur, ls, memory_order_release);
	pthread_mutex_unlock(&L->mu);
	wake_holders(e); /* a raised limit lets held jobs go */
	return 0;
}

static struct uslot *user_slot(struct dd_limits *L, uint32_t uid)
{
	uint32_t key = uid + 1;
	uint32_t h = (uint32_t)((uid * 0x9e3779b1u) % USER_SLOTS);
	for (uint32_t k = 0; k < USER_SLOTS; k++) {
		struct uslot *u = &L->user[(h + k) % USER_SLOTS];
		uint32_t have = atomic_load_explicit(&u->key, memory_order_acquire);
		if (have == key)
			return u;
		if (!have) {
			uint32_t zero = 0;
			if (atomic_compare_exchange_strong_explicit(&u->key, &zero, key,
								    memory_order_acq_rel,
								    memory_order_acquire) ||
			    zero == key)
				return u;
		}
	}
	return NULL;
}

static uint32_t user_max(const struct limitset *ls, uint32_t uid)
{
	if (!ls)
		return 0;
	if (!ls->nusers)
		return ls->any_user;
	struct ulimit key = {uid, 0};
	const struct ulimit *u = bsearch(&key, ls->users, ls->nusers, sizeof(key), ucmp);
	return u ? u->max : ls->any_user;
}

static uint32_t queue_max(const struct limitset *ls, const struct dd_engine *e,
			  const struct dd_jobrec *j)
{
	if (!ls || !ls->nqueues)
		return 0;
	const char *name = j->handler < DD_MAX_HANDLERS ? e->handlers[j->handler].name : j->kind;
	for (size_t i = 0; i < ls->nqueues; i++)
		if (!strcmp(ls->queues[i].name, name))
			return ls->queues[i].max;
	return 0;
}

/* One more in @c unless that passes @max (0: no limit). */
static bool inc_below(_Atomic uint32_t *c, uint32_t max)
{
	uint32_t v = atomic_load_explicit(c, memory_order_relaxed);
	do {
		if (max && v >= max)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(c, &v, v + 1, memory_order_acq_rel,
							memory_order_relaxed));
	return true;
}

static void hold(struct dd_shard *s, struct dd_jobrec *j, const char *why)
{
	dd_queue_lanes_push(&s->held, j->priority, &j->link);
	j->lim |= DD_LIM_HELD;
	s->nheld++;
	atomic_fetch_add_explicit(&s->eng->limits->held, 1, memory_order_relaxed);
	dd_job_set_reason(s, j, why);
}

/* Takes @j's counts, @force: whatever the limits say. */
static bool take(struct dd_shard *s, struct dd_jobrec *j, bool force)
{
	struct dd_limits *L = s->eng->limits;
	const struct limitset *ls = atomic_load_explicit(&L->cur, memory_order_acquire);
	struct uslot *u = user_slot(L, j->uid);
	_Atomic uint32_t *q = j->handler < DD_MAX_HANDLERS ? &L->queue[j->handler] : NULL;
	if (u && !inc_below(&u->running, force ? 0 : user_max(ls, j->uid))) {
		hold(s, j, held_user);
		return false;
	}
	if (q && !inc_below(q, force ? 0 : queue_max(ls, s->eng, j))) {
		if (u)
			atomic_fetch_sub_explicit(&u->running, 1, memory_order_release);
		hold(s, j, held_queue);
		return false;
	}
	j->lim |= (uint8_t)((u ? DD_LIM_USER : 0) | (q ? DD_LIM_QUEUE : 0));
	if (j->reason == held_user || j->reason == held_queue)
		dd_job_set_reason(s, j, NULL); /* it waits no more */
	return true;
}

bool dd_limits_take(struct dd_shard *s, struct dd_jobrec *j)
{
	return take(s, j, false);
}

void dd_limits_force(struct dd_shard *s, struct dd_jobrec *j)
{
	take(s, j, true);
}

void dd_limits_give(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_limits *L = s->eng->limits;
	if (!(j->lim & (DD_LIM_USER | DD_LIM_QUEUE)))
		return;
	if (j->lim & DD_LIM_USER) {
		struct uslot *u = user_slot(L, j->uid);
		if (u)
			atomic_fetch_sub_explicit(&u->running, 1, memory_order_release);
	}
	if ((j->lim & DD_LIM_QUEUE) && j->handler < DD_MAX_HANDLERS)
		atomic_fetch_sub_explicit(&L->queue[j->handler], 1, memory_order_release);
	j->lim &= (uint8_t)~(DD_LIM_USER | DD_LIM_QUEUE);
	if (atomic_load_explicit(&L->held, memory_order_relaxed))
		wake_holders(s->eng);
}

void dd_limits_unhold(struct dd_shard *s, struct dd_jobrec *j)
{
	dd_queue_lanes_remove(&s->held, j->priority, &j->link);
	j->link.next = j->link.prev = NULL;
	j->lim &= (uint8_t)~DD_LIM_HELD;
	s->nheld--;
	atomic_fetch_sub_explicit(&s->eng->limits->held, 1, memory_order_relaxed);
}

bool dd_limits_ready(const struct dd_shard *s)
{
	return s->nheld &&
	       atomic_load_explicit(&s->eng->limits->epoch, memory_order_acquire) != s->held_seen;
}

struct dd_jobrec *dd_limits_next(struct dd_shard *s)
{
	if (!dd_limits_ready(s))
		return NULL;
	uint64_t epoch = atomic_load_explicit(&s->eng->limits->epoch, memory_order_acquire);
	/* one pass: each job looked at once; those still over a limit go back
	 * behind the rest of their priority, in the order they were */
	for (size_t n = s->nheld; n; n--) {
		struct dd_jobrec *j = (struct dd_jobrec *)dd_queue_lanes_peek(&s->held);
		dd_limits_unhold(s, j);
		if (take(s, j, false))
			return j; /* the next call goes on from the jobs after it */
	}
	s->held_seen = epoch;
	return NULL;
}
