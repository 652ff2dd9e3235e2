/* Reset-on-read windows for a reader (dd_stats_window_read): differences
 * of the cumulative counters and of the fine histograms since the reader's
 * previous read. The writers only ever add. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

struct dd_stats_window {
	uint64_t at;             /* CLOCK_MONOTONIC of the previous read, 0 none */
	struct dd_stats prev;    /* counters then */
	struct dd_tel_hist *h;   /* [nshards][DD_HIST_COUNT] buckets then */
	unsigned nshards;
};

int dd_stats_window_create(struct dd_engine *e, struct dd_stats_window **out)
{
	struct dd_stats_window *w = calloc(1, sizeof(*w));
	if (!w || !(w->h = calloc((size_t)e->nshards * DD_HIST_COUNT, sizeof(*w->h)))) {
		free(w);
		return -ENOMEM;
	}
	w->nshards = e->nshards;
	*out = w;
	return 0;
}

void dd_stats_window_destroy(struct dd_stats_window *w)
{
	if (!w)
		return;
	free(w->h);
	free(w);
}

/* The summary of cur - prev, bucket by bucket; min and max to bucket
 * resolution, since the window's own extremes were not recorded. */
static void window_summary(const struct dd_tel_hist *cur, const struct dd_tel_hist *prev,
			   struct dd_tel_hist *diff, struct dd_hist_summary *o)
{
	memset(diff, 0, sizeof(*diff));
	unsigned lo = DD_TEL_BUCKETS, hi = 0;
	for (unsigned b = 0; b < DD_TEL_BUCKETS; b++) {
		uint64_t d = cur->bucket[b] >= prev->bucket[b] ? cur->bucket[b] - prev->bucket[b] : 0;
		diff->bucket[b] = d;
		diff->count += d;
		if (d) {
			if (lo == DD_TEL_BUCKETS)
				lo = b;
			hi = b;
		}
	}
	diff->sum = cur->sum >= prev->sum ? cur->sum - prev->sum : 0;
	diff->min = diff->count ? dd_tel_bucket_low(lo) : 0;
	diff->max = diff->count ? dd_tel_bucket_high(hi) : 0;
	if (diff->count && diff->max > cur->max)
		diff->max = cur->max;
	o->count = diff->count;
	o->sum_ns = diff->sum;
	o->min_ns = diff->min;
	o->max_ns = diff->max;
	o->p50_ns = dd_tel_hist_quantile(diff, 0.50);
	o->p90_ns = dd_tel_hist_quantile(diff, 0.90);
	o->p99_ns = dd_tel_hist_quantile(diff, 0.99);
	o->p999_ns = dd_tel_hist_quantile(diff, 0.999);
}

static void sub_counters(struct dd_shard_stats *o, const struct dd_shard_stats *p)
{
#define SUB(f) o->f = o->f >= p->f ? o->f - p->f : 0
	SUB(submitted);
	SUB(dispatched);
	SUB(succeeded);
	SUB(failed);
	SUB(cancelled);
	SUB(timed_out);
	SUB(retried);
	SUB(parks);
	SUB(wakeups);
	SUB(log_records);
	SUB(log_batches);
#undef SUB
}

int dd_stats_window_read(struct dd_engine *e, struct dd_stats_window *w, struct dd_stats *st)
{
	struct dd_tel_hist *cur = malloc(sizeof(*cur)), *diff = malloc(sizeof(*diff));
	struct dd_tel_hist *all = malloc(sizeof(*all)), *allp = malloc(sizeof(*allp));
	if (!cur || !diff || !all || !allp) {
		free(cur);
		free(diff);
		free(all);
		free(allp);
		return -ENOMEM;
	}
	dd_stats(e, st);
	uint64_t now = dd_now_ns();
	struct dd_stats raw = *st; /* cumulative, for next time */
	for (unsigned i = 0; i < st->nshards && i < w->nshards; i++)
		sub_counters(&st->shard[i], &w->prev.shard[i]);
	sub_counters(&st->total, &w->prev.total);
	for (unsigned k = 0; k < DD_HIST_COUNT; k++) {
		dd_tel_hist_reset(all);
		dd_tel_hist_reset(allp);
		for (unsigned i = 0; i < w->nshards; i++) {
			struct dd_tel_hist *prev = &w->h[i * DD_HIST_COUNT + k];
			dd_tel_hist_reset(cur);
			if (e->shards[i].hist)
				dd_tel_shist_merge_into(cur, &e->shards[i].hist[k]);
			window_summary(cur, prev, diff, &st->shard[i].hist[k]);
			dd_tel_hist_merge(all, cur);
			dd_tel_hist_merge(allp, prev);
			*prev = *cur;
		}
		window_summary(all, allp, diff, &st->total.hist[k]);
	}
	st->window_ns = w->at ? now - w->at : now;
	w->at = now;
	w->prev = raw;
	free(cur);
	free(diff);
	free(all);
	free(allp);
	return 0;
}
