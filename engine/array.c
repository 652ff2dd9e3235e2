/* Job arrays: one submission, one log record, and elements made as they
 * can run.
 *
 * An array of N is its own job (which holds the struct dd_array) and N
 * elements with the ids that follow it. The reactor makes elements in index
 * order, a window at a time: %MAX of them, else enough to keep the workers
 * fed. A made element is an ordinary job, logged with its own SUBMIT record
 * (its array and index in it), so that recovery needs nothing but the store
 * to take it back; the elements not made yet cost nothing but their ids.
 * Recovery finds how far an array got from the elements the store holds
 * (durable/recovery.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "command.h"
#include "deps.h"
#include "durable/durable.h"
#include "fate.h"
#include "jobtab.h"
#include "lifecycle.h"
#include "proc.h"
#include "registry.h"
#include "state.h"
#include "submit.h"

/* Elements made and not ended, at most, without %MAX: a process element
 * waits for the pool anyway, an in-process one is over in microseconds. */
#define WINDOW_EXEC 512u
#define WINDOW_INPROC 4096u
/* Elements one turn makes, at most, so that a turn stays short. */
#define FILL_TURN 1024u

int dd_array_check(const struct dd_array_spec *sp, uint64_t *count)
{
	uint64_t n = 0;
	if (!sp->ranges || sp->nranges == 0 || sp->nranges > DD_ARRAY_RANGES_MAX ||
	    sp->max_running > DD_ARRAY_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < sp->nranges; i++) {
		const struct dd_array_range *r = &sp->ranges[i];
		if (r->step == 0 || r->last < r->first || r->last > DD_ARRAY_INDEX_MAX ||
		    (i > 0 && r->first <= sp->ranges[i - 1].last))
			return -EINVAL;
		n += (uint64_t)(r->last - r->first) / r->step + 1;
	}
	if (n > DD_ARRAY_MAX)
		return -E2BIG;
	*count = n;
	return 0;
}

static size_t array_bytes(unsigned nranges)
{
	return sizeof(struct dd_array) + nranges * (sizeof(struct dd_array_range) + sizeof(uint64_t));
}

struct dd_array *dd_array_new(struct dd_shard *s, const struct dd_array_spec *sp)
{
	struct dd_array *a = dd_numa_arena_alloc(s->arena, array_bytes(sp->nranges));
	if (!a)
		return NULL;
	memset(a, 0, sizeof(*a));
	a->nranges = sp->nranges;
	a->before = (uint64_t *)(a + 1);
	a->ranges = (struct dd_array_range *)(a->before + sp->nranges);
	memcpy(a->ranges, sp->ranges, sp->nranges * sizeof(*a->ranges));
	for (unsigned i = 0; i < sp->nranges; i++) {
		const struct dd_array_range *r = &sp->ranges[i];
		/* last normalised to the last index the step reaches */
		a->ranges[i].last = r->first + (r->last - r->first) / r->step * r->step;
		a->before[i] = a->count;
		a->count += (uint64_t)(r->last - r->first) / r->step + 1;
	}
	a->max_running = sp->max_running;
	return a;
}

void dd_array_drop(struct dd_shard *s, struct dd_array *a)
{
	if (a)
		dd_numa_arena_free(s->arena, a, array_bytes(a->nranges));
}

/* The place of @index in @a, or -1 when @a has no such index. */
static int64_t ord_of(const struct dd_array *a, uint32_t index)
{
	unsigned lo = 0, hi = a->nranges;
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (a->ranges[mid].first <= index)
			lo = mid;
		else
			hi = mid;
	}
	const struct dd_array_range *r = &a->ranges[lo];
	if (index < r->first || index > r->last || (index - r->first) % r->step)
		return -1;
	return (int64_t)(a->before[lo] + (index - r->first) / r->step);
}

uint32_t dd_array_index(const struct dd_array *a, uint64_t ord)
{
	unsigned lo = 0, hi = a->nranges;
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (a->before[mid] <= ord)
			lo = mid;
		else
			hi = mid;
	}
	return a->ranges[lo].first + (uint32_t)(ord - a->before[lo]) * a->ranges[lo].step;
}

/* ---- the shard's arrays, by id ---- */

static size_t find_slot(const struct dd_shard *s, uint64_t id)
{
	size_t lo = 0, hi = s->narrs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->arrs[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void enlist(struct dd_shard *s, struct dd_array *a)
{
	if (s->narrs == s->caparrs) {
		size_t cap = s->caparrs ? 2 * s->caparrs : 16;
		struct dd_array **v = realloc(s->arrs, cap * sizeof(*v));
		if (!v)
			return; /* unlisted: its unmade elements read as unknown */
		s->arrs = v;
		s->caparrs = cap;
	}
	size_t k = find_slot(s, a->id);
	memmove(s->arrs + k + 1, s->arrs + k, (s->narrs - k) * sizeof(*s->arrs));
	s->arrs[k] = a;
	s->narrs++;
}

static void delist(struct dd_shard *s, struct dd_array *a)
{
	size_t k = find_slot(s, a->id);
	if (k < s->narrs && s->arrs[k] == a) {
		memmove(s->arrs + k, s->arrs + k + 1, (s->narrs - k - 1) * sizeof(*s->arrs));
		s->narrs--;
	}
}

struct dd_array *dd_array_of(const struct dd_shard *s, uint64_t id)
{
	size_t k = find_slot(s, id); /* the first array at or above id */
	if (k == 0)
		return NULL;
	struct dd_array *a = s->arrs[k - 1];
	return id > a->id && id - a->id <= a->count && a->parent ? a : NULL;
}

bool dd_array_unmade(const struct dd_array *a, uint64_t id)
{
	return id - a->id - 1 >= a->next && !a->settled;
}

/* Off s->act. Within dd_array_fill (an element made ended its array)
 * the fill drops it; anywhere else it goes now, since the array may be
 * freed before the next fill. */
static void deactivate(struct dd_shard *s, struct dd_array *a)
{
	if (!a->active)
		return;
	a->active = false;
	for (size_t i = 0; !s->filling && i < s->nact; i++)
		if (s->act[i] == a) {
			s->act[i] = s->act[--s->nact];
			break;
		}
}

static void activate(struct dd_shard *s, struct dd_array *a)
{
	if (a->active || a->cancelled || a->next >= a->count)
		return;
	if (s->nact == s->capact) {
		size_t cap = s->capact ? 2 * s->capact : 16;
		struct dd_array **v = realloc(s->act, cap * sizeof(*v));
		if (!v)
			return; /* tried again when one of its elements ends */
		s->act = v;
		s->capact = cap;
	}
	s->act[s->nact++] = a;
	a->active = true;
}

/* ---- the records ---- */

void dd_array_wait(struct dd_array *a, struct dd_cmd *c)
{
	c->next = a->waiters;
	a->waiters = c;
}

void dd_array_attach(struct dd_shard *s, struct dd_jobrec *j, struct dd_array *a)
{
	j->arr = a;
	a->refs++;
	if (j->id == a->id) {
		a->parent = j;
		enlist(s, a);
		return;
	}
	a->live++;
	for (struct dd_cmd **pp = &a->waiters; *pp;) {
		struct dd_cmd *c = *pp;
		if (c->id != j->id) {
			pp = &c->next;
			continue;
		}
		*pp = c->next; /* its waits are the element's now */
		c->next = j->waiters;
		j->waiters = c;
	}
}

/* Drops a reference to @a, and with its last one the array, and its
 * reference to the array it follows (aftercorr), in turn. */
static void put(struct dd_shard *s, struct dd_array *a)
{
	while (a && --a->refs == 0) {
		struct dd_array *corr = a->corr;
		dd_array_drop(s, a);
		a = corr;
	}
}

void dd_array_detach(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_array *a = j->arr;
	j->arr = NULL;
	if (a->parent == j) {
		a->parent = NULL;
		delist(s, a);
		deactivate(s, a);
		/* waits on elements never to be made (it ended at a shutdown, and
		 * so settled none): the engine goes, they end with it */
		for (struct dd_cmd *c = a->waiters, *n; c; c = n) {
			n = c->next;
			dd_cmd_complete(c, DD_ESHUTDOWN);
		}
		a->waiters = NULL;
	}
	put(s, a);
}

/* The array whose elements @a's follow (aftercorr): the one in memory, or
 * its ranges from the store once it left. NULL: none (no aftercorr), or
 * @a->corr_id names no array. */
static struct dd_array *corr_of(struct dd_shard *s, struct dd_array *a)
{
	if (a->corr || !a->corr_id)
		return a->corr;
	size_t k = find_slot(s, a->corr_id);
	if (k < s->narrs && s->arrs[k]->id == a->corr_id) {
		a->corr = s->arrs[k];
		a->corr->refs++;
		return a->corr;
	}
	struct dd_state_store *st = dd_durable_store(s);
	struct dd_state_job job;
	void *buf = NULL;
	if (st && dd_state_store_get(st, a->corr_id, &job, &buf) == 0 &&
	    (job.spec.flags & DD_LOGREC_F_ARRAY)) {
		struct dd_array_range rg[DD_ARRAY_RANGES_MAX];
		for (uint32_t i = 0; i < job.spec.array_nranges; i++)
			dd_logrec_array_range(&job.spec, i, &rg[i].first, &rg[i].last, &rg[i].step);
		struct dd_array_spec as = {.ranges = rg, .nranges = job.spec.array_nranges};
		if ((a->corr = dd_array_new(s, &as))) {
			a->corr->id = a->corr_id;
			a->corr->refs = 1; /* @a's alone: not listed, no job of its own here */
		}
	}
	free(buf);
	return a->corr;
}

static void maybe_done(struct dd_shard *s, struct dd_array *a);

void dd_array_never(struct dd_shard *s, const struct dd_array *a, uint64_t id)
{
	for (uint64_t k = 1; k <= a->count; k++) {
		dd_seq_set(s, id + k, SEQ_ENDED_BAD);
		if (s->npending)
			dd_deps_gone(s, id + k, false);
	}
}

void dd_array_unborn(struct dd_shard *s, struct dd_array *a)
{
	a->ended[DD_FAILED - DD_SUCCEEDED]++;
	maybe_done(s, a);
}

/* Ends the array's own job once every element has. */
static void maybe_done(struct dd_shard *s, struct dd_array *a)
{
	struct dd_jobrec *p = a->parent;
	/* not before it was ready, unless cancelled (recovery takes elements
	 * back before their array is ready: state 0) */
	if (!p || !p->state || dd_state_terminal((enum dd_state)p->state) || a->live)
		return;
	if (!a->cancelled &&
	    (a->next < a->count || (p->state != DD_QUEUED && p->state != DD_RUNNING)))
		return;
	uint64_t failed = a->count - a->ended[0];
	if (a->cancelled) {
		dd_job_finish(s, p, DD_CANCELLED, dd_reason[R_CANCELLED]);
	} else if (failed == 0) {
		dd_job_finish(s, p, DD_SUCCEEDED, NULL);
	} else {
		char why[96];
		snprintf(why, sizeof(why), "%" PRIu64 " of %" PRIu64 " elements did not succeed",
			 failed, a->count);
		char *own = dd_reason_dup(s, why);
		if (own)
			dd_job_own_reason(s, p, own);
		dd_job_finish(s, p, DD_FAILED, own ? own : dd_reason[R_HANDLER_FAILED]);
	}
}

void dd_array_ready(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_array *a = j->arr;
	j->queued_ns = s->now;
	dd_shard_set_state(s, j, a->live ? DD_RUNNING : DD_QUEUED);
	activate(s, a);
	maybe_done(s, a); /* recovered with every element ended */
}

void dd_array_started(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_jobrec *p = j->arr->parent;
	if (p && p->state == DD_QUEUED) {
		p->started_ns = s->now;
		dd_shard_set_state(s, p, DD_RUNNING);
	}
}

/* The elements not made: none will be (the array ended, or was
 * cancelled). Their fate is final, and what waits on them is told. */
static void settle_unmade(struct dd_shard *s, struct dd_array *a, bool count_cancelled)
{
	if (a->settled)
		return;
	a->settled = true;
	for (uint64_t ord = a->next; ord < a->count; ord++) {
		uint64_t id = a->id + 1 + ord;
		dd_seq_set(s, id, SEQ_ENDED_BAD);
		if (s->npending)
			dd_deps_gone(s, id, false);
	}
	if (count_cancelled)
		a->ended[DD_CANCELLED - DD_SUCCEEDED] += a->count - a->next;
	for (struct dd_cmd *c = a->waiters, *n; c; c = n) {
		n = c->next;
		dd_array_unmade_info(s, a, c->id, &c->info);
		c->info.state = DD_CANCELLED;
		snprintf(c->info.reason, sizeof(c->info.reason), "its array ended first");
		dd_cmd_complete(c, 0);
	}
	a->waiters = NULL;
}

void dd_array_ended(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st, const char *reason)
{
	struct dd_array *a = j->arr;
	if (a->parent == j) {
		/* the array's own job: by its last element, a cancel, a failed
		 * dependency; at shutdown it is not over (the next run goes on) */
		if (reason != dd_reason[R_SHUTDOWN])
			settle_unmade(s, a, st != DD_SUCCEEDED);
		deactivate(s, a); /* s->act holds no reference: not past its end */
		return;
	}
	a->live--;
	if (reason == dd_reason[R_SHUTDOWN])
		return; /* runs again after the next start */
	a->ended[st - DD_SUCCEEDED]++;
	uint64_t ord = j->id - a->id - 1;
	if (ord == a->low)
		while (a->low < a->next) {
			struct dd_jobrec *e = dd_tab_find(s, a->id + 1 + a->low);
			if (e && !dd_state_terminal((enum dd_state)e->state))
				break;
			a->low++;
		}
	if (a->parent && !dd_state_terminal((enum dd_state)a->parent->state)) {
		activate(s, a);
		maybe_done(s, a);
	}
}

int dd_array_cancel(struct dd_shard *s, struct dd_jobrec *j, enum dd_state how, const char *reason)
{
	struct dd_array *a = j->arr;
	if (dd_state_terminal((enum dd_state)j->state))
		return DD_ETERMINAL;
	if (reason == dd_reason[R_SHUTDOWN]) {
		dd_job_finish(s, j, how, reason);
		return 0;
	}
	a->cancelled = true;
	settle_unmade(s, a, true);
	uint64_t made = a->next;
	a->next = a->count;
	for (uint64_t ord = a->low; ord < made && a->live; ord++) {
		struct dd_jobrec *e = dd_tab_find(s, a->id + 1 + ord);
		if (e && !dd_state_terminal((enum dd_state)e->state))
			dd_job_cancel(s, e, how, reason);
	}
	maybe_done(s, a); /* else its last running element ends it */
	return 0;
}

/* ---- making elements ---- */

/* The handler of an array recovered before its kind was registered. */
static bool resolve(struct dd_shard *s, struct dd_jobrec *p)
{
	if (p->handler != DD_HANDLER_UNRESOLVED)
		return true;
	int h = (p->flags & JF_EXEC) ? dd_kind_for_exec(s->eng, p->kind)
				      : dd_handler_find(s->eng, p->kind);
	if (h < 0)
		return false;
	p->handler = (uint16_t)h;
	return true;
}

/* Element @ord of @a's spec: a process element's environment says which
 * it is. Returns 0 or -errno (the element then fails, saying why). */
static int element_payload(struct dd_shard *s, struct dd_array *a, uint64_t ord, struct dd_sub *m)
{
	struct dd_jobrec *p = a->parent;
	const void *src = p->payload;
	size_t len = p->payload_len;
	void *enc = NULL;
	if (p->flags & JF_EXEC) {
		char v[7][64];
		uint32_t lo = a->ranges[0].first, hi = a->ranges[a->nranges - 1].last;
		snprintf(v[0], sizeof(v[0]), "DD_ARRAY_ID=%" PRIu64, a->id);
		snprintf(v[1], sizeof(v[1]), "DD_ARRAY_INDEX=%" PRIu32, dd_array_index(a, ord));
		snprintf(v[2], sizeof(v[2]), "DD_ARRAY_COUNT=%" PRIu64, a->count);
		snprintf(v[3], sizeof(v[3]), "SLURM_ARRAY_JOB_ID=%" PRIu64, a->id);
		snprintf(v[4], sizeof(v[4]), "SLURM_ARRAY_TASK_ID=%" PRIu32, dd_array_index(a, ord));
		snprintf(v[5], sizeof(v[5]), "SLURM_ARRAY_TASK_COUNT=%" PRIu64, a->count);
		snprintf(v[6], sizeof(v[6]), "SLURM_ARRAY_TASK_MIN=%" PRIu32, lo);
		char last[64];
		snprintf(last, sizeof(last), "SLURM_ARRAY_TASK_MAX=%" PRIu32, hi);
		const char *add[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], last, NULL};
		int r = dd_proc_spec_add_env(p->payload, p->payload_len, add, &enc, &len);
		if (r < 0)
			return r;
		src = enc;
	}
	m->payload_len = (uint32_t)len;
	if (len <= DD_INLINE_PAYLOAD) {
		memcpy(m->payload.inl, src, len);
	} else if ((m->payload.heap = dd_numa_arena_alloc(s->arena, len))) {
		memcpy(m->payload.heap, src, len);
	} else {
		free(enc);
		return -ENOMEM;
	}
	free(enc);
	return 0;
}

static void make(struct dd_shard *s, struct dd_array *a)
{
	struct dd_jobrec *p = a->parent;
	uint64_t ord = a->next++;
	struct dd_sub m = {
		.id = a->id + 1 + ord, .intended_ns = s->now,
		.timeout_ns = p->timeout_ns, .backoff_ns = p->backoff_ns,
		.backoff_max_ns = p->backoff_max_ns, .max_attempts = p->max_attempts,
		.handler = p->handler, .priority = p->priority, .level = p->level,
		.exec = (p->flags & JF_EXEC) != 0, .uid = p->uid, .gid = p->gid,
		.stdin_fd = -1, .arr = a, .name = p->name ? dd_reason_dup(s, p->name) : NULL,
	};
	int64_t corr = a->corr ? ord_of(a->corr, dd_array_index(a, ord)) : -1;
	if (corr >= 0) { /* aftercorr: it waits for its counterpart to succeed */
		m.ndeps = 1;
		m.deps.inl[0] = a->corr->id + 1 + (uint64_t)corr;
	}
	int r = element_payload(s, a, ord, &m);
	atomic_fetch_add_explicit(&s->live, 1, memory_order_relaxed);
	if (r < 0)
		m.payload_len = 0; /* it arrives and fails at once */
	dd_job_arrive(s, &m);
	if (r < 0) {
		struct dd_jobrec *e = dd_tab_find(s, m.id);
		if (e && !dd_state_terminal((enum dd_state)e->state)) {
			char why[96];
			snprintf(why, sizeof(why), "cannot make the element's spec: %s", dd_strerror(r));
			char *own = dd_reason_dup(s, why);
			if (own)
				dd_job_own_reason(s, e, own);
			dd_job_finish(s, e, DD_FAILED, own ? own : dd_reason[R_HANDLER_FAILED]);
		}
	}
}

size_t dd_array_fill(struct dd_shard *s)
{
	size_t made = 0, k = 0;
	if (s->stopping)
		return 0;
	s->filling = true;
	for (size_t i = 0; i < s->nact; i++) {
		struct dd_array *a = s->act[i];
		struct dd_jobrec *p = a->parent;
		if (!a->active || !p || a->cancelled || a->next >= a->count ||
		    dd_state_terminal((enum dd_state)p->state)) {
			a->active = false;
			continue;
		}
		if (p->state != DD_QUEUED && p->state != DD_RUNNING) {
			s->act[k++] = a; /* not ready yet (recovery): kept for when it is */
			continue;
		}
		if (a->corr_id && !corr_of(s, a)) {
			char why[96];
			snprintf(why, sizeof(why), "dependency aftercorr:%" PRIu64 " is not a job array",
				 a->corr_id);
			char *own = dd_reason_dup(s, why);
			if (own)
				dd_job_own_reason(s, p, own);
			dd_job_finish(s, p, DD_FAILED, own ? own : dd_reason[R_DEPENDENCY]);
			continue;
		}
		uint32_t window = a->max_running ? a->max_running
			: (p->flags & JF_EXEC) ? WINDOW_EXEC : WINDOW_INPROC;
		if (resolve(s, p))
			while (a->live < window && a->next < a->count && made < FILL_TURN &&
			       !dd_state_terminal((enum dd_state)p->state) &&
			       (size_t)atomic_load_explicit(&s->live, memory_order_relaxed) <
				       s->eng->cfg.max_live_jobs) {
				make(s, a);
				made++;
			}
		if (a->active) /* more to make; else its own job ended meanwhile */
			s->act[k++] = a;
	}
	s->nact = k;
	s->filling = false;
	return made;
}

/* ---- what get shows ---- */

void dd_array_info(const struct dd_shard *s, const struct dd_jobrec *j, struct dd_job_info *info)
{
	const struct dd_array *a = j->arr;
	info->array_id = a->id;
	if (a->parent != j) {
		info->array_index = dd_array_index(a, j->id - a->id - 1);
		return;
	}
	info->array_count = a->count;
	for (int i = 0; i < 4; i++)
		info->array_states[DD_SUCCEEDED + i] = a->ended[i];
	/* the made ones still going, as they are now */
	uint64_t seen = 0;
	for (uint64_t ord = a->low; ord < a->next && seen < a->live; ord++) {
		const struct dd_jobrec *e = dd_tab_find(s, a->id + 1 + ord);
		if (e && !dd_state_terminal((enum dd_state)e->state)) {
			info->array_states[e->state]++;
			seen++;
		}
	}
	if (!a->settled) {
		enum dd_state st = (enum dd_state)j->state;
		if (st == DD_RUNNING || dd_state_terminal(st))
			st = DD_QUEUED;
		info->array_states[st] += a->count - a->next;
	}
}

void dd_array_unmade_info(const struct dd_shard *s, const struct dd_array *a, uint64_t id,
			  struct dd_job_info *info)
{
	const struct dd_jobrec *p = a->parent;
	dd_job_info_fill(s, p, info);
	info->id = id;
	info->array_count = 0;
	memset(info->array_states, 0, sizeof(info->array_states));
	info->array_index = dd_array_index(a, id - a->id - 1);
	info->attempt = 0;
	info->worker = -1;
	info->started_ns = info->ended_ns = 0;
	info->reason[0] = 0;
	if (info->state == DD_RUNNING)
		info->state = DD_QUEUED;
}

void dd_array_destroy(struct dd_shard *s)
{
	free(s->arrs);
	free(s->act);
	s->arrs = s->act = NULL;
	s->narrs = s->nact = s->caparrs = s->capact = 0;
}
