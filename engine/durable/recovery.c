/* Recovered jobs back into memory (DESIGN.md sections 2 and 4). Runs in
 * dd_engine_create() before any thread starts, after the log has been
 * replayed into the store: every non-terminal job in the store becomes a
 * record again. A job that was RUNNING is retried if attempts remain, else
 * ends FAILED "lost" (at least once). Kinds are looked up by name when the
 * job is first dispatched, since handlers are registered after create. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "array.h"
#include "deps.h"
#include "exec.h"
#include "durable.h"
#include "fate.h"
#include "jobtab.h"
#include "lifecycle.h"
#include "state.h"
#include "stats.h"
#include "supervise.h"

struct load_ctx {
	struct dd_shard *s;
	struct dd_recovery *out;
	struct dd_rwaits *w;
	uint64_t now_rt;
	bool elements; /* the second pass: arrays' elements, after their arrays */
	struct dd_jobrec **ready; /* arrays to make ready after that pass */
	size_t nready, capready;
};

static uint64_t rt_to_mono(const struct dd_shard *s, uint64_t rt)
{
	int64_t m = (int64_t)rt - s->rt_offset;
	return m > (int64_t)s->now ? (uint64_t)m : s->now;
}

static void *arena_dup(struct dd_shard *s, const void *p, size_t n)
{
	void *c = dd_numa_arena_alloc(s->arena, n);
	if (c)
		memcpy(c, p, n);
	return c;
}

static int remember_wait(struct load_ctx *lc, struct dd_jobrec *j, const struct dd_logrec *sp)
{
	struct dd_rwaits *w = lc->w;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct dd_rwait *v = realloc(w->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	uint64_t *deps = malloc(sp->ndeps * sizeof(uint64_t));
	uint8_t *kinds = sp->dep_kinds ? malloc(sp->ndeps) : NULL;
	if (!deps || (sp->dep_kinds && !kinds)) {
		free(deps);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < sp->ndeps; i++)
		deps[i] = dd_logrec_dep(sp, i);
	if (kinds)
		memcpy(kinds, sp->dep_kinds, sp->ndeps);
	w->v[w->n++] = (struct dd_rwait){.id = j->id, .ndeps = sp->ndeps, .deps = deps,
					 .kinds = kinds};
	return 0;
}

/* A process job that was running: the supervisor still holds its
 * attempt's process (running, or ended while no engine was there), and
 * this engine takes it over. Returns whether it did. Else, whatever of
 * the attempt still runs in its cgroup (its supervisor went away) is
 * killed before the job is retried or lost. */
static bool adopt(struct dd_shard *s, struct dd_jobrec *j, bool running,
		  struct dd_recovery *out)
{
	/* The attempt the log says runs; or a later one, whose START the log
	 * had not made durable when the engine died: it runs all the same,
	 * and is taken over rather than started a second time. */
	struct dd_sup_held *h = dd_sup_held_latest(s, j->id);
	if (h && !h->taken && (h->attempt > j->attempt || (running && h->attempt == j->attempt))) {
		bool later = h->attempt > j->attempt;
		uint32_t was = j->attempt;
		j->attempt = h->attempt;
		int r = dd_exec_adopt(s, j, h);
		if (r < 0)
			j->attempt = was;
		if (r == 0) {
			if (later)
				dd_log_start(s, j);
			out->jobs_adopted++;
			return true;
		}
		dd_log(s->eng, LOG_ERR, "job %" PRIu64 ": cannot take over its running process: %s",
		       j->id, dd_strerror(r));
	}
	if (!running)
		return false;
	if (dd_proctree_orphan(s, j->id, j->attempt))
		dd_log(s->eng, LOG_WARNING, "job %" PRIu64 ": processes of attempt %" PRIu32
		       " ran with no supervisor: killed", j->id, j->attempt);
	return false;
}

/* How far an array got: the elements the store holds were made; those
 * ended are counted, those not ended are loaded by the second pass. */
static int count_element(const struct dd_state_job *sj, void *arg)
{
	struct dd_array *a = arg;
	const struct dd_logrec *sp = &sj->spec;
	if (!(sp->flags & DD_LOGREC_F_ELEMENT) || sp->array_id != a->id)
		return 0;
	if (sp->array_ord + 1u > a->next)
		a->next = sp->array_ord + 1u;
	if (sj->state >= DD_SUCCEEDED && sj->state <= DD_TIMED_OUT)
		a->ended[sj->state - DD_SUCCEEDED]++;
	else if (sp->array_ord < a->low)
		a->low = sp->array_ord;
	return 0;
}

/* An array's own job: its struct dd_array again, and how far it got. */
static int load_array(struct load_ctx *lc, struct dd_jobrec *j, const struct dd_logrec *sp)
{
	struct dd_shard *s = lc->s;
	struct dd_array_range rg[DD_ARRAY_RANGES_MAX];
	for (uint32_t i = 0; i < sp->array_nranges; i++)
		dd_logrec_array_range(sp, i, &rg[i].first, &rg[i].last, &rg[i].step);
	struct dd_array_spec as = {.ranges = rg, .nranges = sp->array_nranges,
				   .max_running = sp->array_max};
	struct dd_array *a = dd_array_new(s, &as);
	if (!a)
		return -ENOMEM;
	a->id = j->id;
	a->low = UINT64_MAX;
	dd_array_attach(s, j, a);
	int r = dd_state_store_scan_range(dd_durable_store(s), a->id + 1, a->id + a->count,
					  count_element, a);
	if (a->low > a->next)
		a->low = a->next;
	if (r < 0)
		return r;
	if (lc->nready == lc->capready) {
		size_t cap = lc->capready ? 2 * lc->capready : 16;
		struct dd_jobrec **v = realloc(lc->ready, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		lc->ready = v;
		lc->capready = cap;
	}
	return 0;
}

static int load_one(const struct dd_state_job *sj, void *arg)
{
	struct load_ctx *lc = arg;
	struct dd_shard *s = lc->s;
	const struct dd_logrec *sp = &sj->spec;
	if (lc->elements != ((sp->flags & DD_LOGREC_F_ELEMENT) != 0))
		return 0; /* the other pass's */
	struct dd_jobrec *j = dd_jobrec_alloc(s);
	if (!j)
		return -ENOMEM;
	j->id = sp->id;
	j->priority = sp->priority;
	j->max_attempts = sp->max_attempts;
	j->attempt = sj->attempt;
	j->timeout_ns = sp->timeout_ns;
	j->backoff_ns = sp->backoff_ns;
	j->backoff_max_ns = sp->backoff_max_ns;
	j->submitted_ns = j->intended_ns = s->now;
	j->flags = JF_LOGGED | ((sp->flags & DD_LOGREC_F_EXEC) ? JF_EXEC : 0);
	j->uid = sp->uid;
	j->gid = sp->gid;
	j->result = (sp->flags & DD_LOGREC_F_EXEC) ? -1 : 0;
	j->level = dd_durable_level(s);
	j->sub_lsn = 1; /* it came from the log: durable */
	j->handler = DD_HANDLER_UNRESOLVED;
	j->kind = dd_numa_arena_alloc(s->arena, sp->kind_len + 1);
	j->payload_len = sp->payload_len;
	if (sp->payload_len <= DD_INLINE_PAYLOAD) {
		j->payload = j->inline_payload;
		memcpy(j->inline_payload, sp->payload, sp->payload_len);
	} else {
		j->payload = arena_dup(s, sp->payload, sp->payload_len);
	}
	if (!j->kind || !j->payload || dd_tab_insert(s, j) < 0) {
		dd_jobrec_free(s, j);
		return -ENOMEM;
	}
	memcpy(j->kind, sp->kind, sp->kind_len);
	j->kind[sp->kind_len] = 0;
	if (sp->name_len && (j->name = dd_numa_arena_alloc(s->arena, sp->name_len + 1))) {
		memcpy(j->name, sp->name, sp->name_len);
		j->name[sp->name_len] = 0;
	}
	/* the key stays in the store, which answers for it */
	dd_seq_set(s, j->id, SEQ_LIVE);
	atomic_fetch_add_explicit(&s->live, 1, memory_order_relaxed);
	lc->out->jobs_loaded++;
	if (sp->flags & DD_LOGREC_F_ARRAY) {
		int r = load_array(lc, j, sp);
		if (r < 0)
			return r;
		uint32_t corr = 0;
		for (uint32_t i = 0; sp->dep_kinds && i < sp->ndeps; i++)
			if (sp->dep_kinds[i] == DD_DEP_AFTERCORR) {
				corr++;
				j->arr->corr_id = dd_logrec_dep(sp, i);
			}
		j->not_before_ns = sp->not_before_rt ? rt_to_mono(s, sp->not_before_rt) : 0;
		/* The store keeps an array's own job WAITING until it ends (it
		 * logs no START): once any element was made, its dependencies
		 * were met, and are not waited for again */
		if (sj->state != DD_WAITING || j->arr->next > 0) {
			/* ready once its elements are back (the second pass) */
			lc->ready[lc->nready++] = j;
			return 0;
		}
		j->deps_unmet = sp->ndeps - corr;
		dd_shard_set_state(s, j, DD_WAITING);
		if (j->deps_unmet == 0)
			lc->ready[lc->nready++] = j; /* held for strict start only */
		else if (remember_wait(lc, j, sp) < 0)
			dd_job_finish(s, j, DD_FAILED, dd_reason[R_DEPENDENCY]);
		return 0;
	}
	if (sp->flags & DD_LOGREC_F_ELEMENT) {
		struct dd_array *a = dd_array_of(s, j->id);
		if (a && a->id == sp->array_id) /* else its array ended: it goes on alone */
			dd_array_attach(s, j, a);
	}
	if ((j->flags & JF_EXEC) && sj->state != DD_WAITING &&
	    adopt(s, j, sj->state == DD_RUNNING, lc->out))
		return 0;
	switch (sj->state) {
	case DD_RUNNING:
		if (j->attempt < j->max_attempts) {
			j->not_before_ns = 0;
			dd_log_retry(s, j);
			lc->out->jobs_retried++;
			dd_st_add(s, ST_RETRIED, 1);
			dd_job_make_ready(s, j);
		} else {
			j->state = DD_RUNNING;
			dd_st_add(s, ST_RUNNING, 1);
			lc->out->jobs_lost++;
			dd_job_finish(s, j, DD_FAILED, dd_reason[R_LOST]);
		}
		break;
	case DD_WAITING:
		j->not_before_ns = sp->not_before_rt ? rt_to_mono(s, sp->not_before_rt) : 0;
		j->deps_unmet = sp->ndeps;
		dd_shard_set_state(s, j, DD_WAITING);
		if (sp->ndeps == 0) {
			dd_job_make_ready(s, j); /* held for strict start only */
		} else if (remember_wait(lc, j, sp) < 0) {
			dd_job_finish(s, j, DD_FAILED, dd_reason[R_DEPENDENCY]);
		}
		break;
	default: /* DELAYED, QUEUED */
		j->not_before_ns = sp->not_before_rt ? rt_to_mono(s, sp->not_before_rt) : 0;
		dd_job_make_ready(s, j);
	}
	return 0;
}

int dd_durable_load(struct dd_shard *s, struct dd_recovery *out, struct dd_rwaits *w)
{
	struct load_ctx lc = {.s = s, .out = out, .w = w};
	s->now = dd_mono_ns();
	int r = dd_state_store_scan_live(dd_durable_store(s), load_one, &lc);
	if (r == 0) {
		lc.elements = true;
		r = dd_state_store_scan_live(dd_durable_store(s), load_one, &lc);
	}
	for (size_t i = 0; i < lc.nready; i++)
		if (!dd_state_terminal((enum dd_state)lc.ready[i]->state))
			dd_job_make_ready(s, lc.ready[i]);
	free(lc.ready);
	return r;
}

void dd_durable_resubscribe(struct dd_shard *s, struct dd_rwaits *w)
{
	for (size_t i = 0; i < w->n; i++) {
		for (uint32_t k = 0; k < w->v[i].ndeps; k++) {
			uint8_t kind = w->v[i].kinds ? w->v[i].kinds[k] : DD_DEP_AFTEROK;
			if (kind != DD_DEP_AFTERCORR) /* its elements' (array.c) */
				dd_deps_subscribe(s, w->v[i].deps[k], w->v[i].id, kind);
		}
		free(w->v[i].deps);
		free(w->v[i].kinds);
	}
	free(w->v);
	memset(w, 0, sizeof(*w));
}
