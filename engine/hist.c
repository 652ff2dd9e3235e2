/* Latency histograms per shard: written by the shard's reactor alone
 * (telemetry.h: relaxed stores, no locked instruction), read by any
 * thread through dd_stats() and dd_stats_hist(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int dd_hists_create(struct dd_shard *s)
{
	s->hist = calloc(DD_HIST_COUNT, sizeof(*s->hist));
	return s->hist ? 0 : -ENOMEM;
}

void dd_hists_destroy(struct dd_shard *s)
{
	free(s->hist);
	s->hist = NULL;
}

static void summarize(const struct dd_tel_hist *h, struct dd_hist_summary *o)
{
	o->count = h->count;
	o->sum_ns = h->sum;
	o->min_ns = h->count ? h->min : 0;
	o->max_ns = h->max;
	o->p50_ns = dd_tel_hist_quantile(h, 0.50);
	o->p90_ns = dd_tel_hist_quantile(h, 0.90);
	o->p99_ns = dd_tel_hist_quantile(h, 0.99);
	o->p999_ns = dd_tel_hist_quantile(h, 0.999);
}

void dd_hists_fill(struct dd_engine *e, struct dd_stats *st)
{
	struct dd_tel_hist *one = malloc(sizeof(*one)), *all = malloc(sizeof(*all));
	if (!one || !all) {
		free(one);
		free(all);
		return; /* summaries stay zero: dd_stats does not fail for them */
	}
	for (unsigned k = 0; k < DD_HIST_COUNT; k++) {
		dd_tel_hist_reset(all);
		for (unsigned i = 0; i < e->nshards; i++) {
			if (!e->shards[i].hist)
				continue;
			dd_tel_hist_reset(one);
			dd_tel_shist_merge_into(one, &e->shards[i].hist[k]);
			summarize(one, &st->shard[i].hist[k]);
			dd_tel_hist_merge(all, one);
		}
		summarize(all, &st->total.hist[k]);
	}
	free(one);
	free(all);
}

int dd_stats_hist(struct dd_engine *e, int shard, enum dd_hist_kind kind, const uint64_t *le_ns,
		  size_t n, uint64_t *count_le, uint64_t *count, uint64_t *sum_ns)
{
	if ((unsigned)kind >= DD_HIST_COUNT || shard < -1 || shard >= (int)e->nshards ||
	    (n && (!le_ns || !count_le)))
		return -EINVAL;
	struct dd_tel_hist *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (unsigned i = 0; i < e->nshards; i++)
		if ((shard < 0 || (unsigned)shard == i) && e->shards[i].hist)
			dd_tel_shist_merge_into(h, &e->shards[i].hist[kind]);
	for (size_t i = 0; i < n; i++)
		count_le[i] = dd_tel_hist_count_le(h, le_ns[i]);
	if (count)
		*count = h->count;
	if (sum_ns)
		*sum_ns = h->sum;
	free(h);
	return 0;
}
