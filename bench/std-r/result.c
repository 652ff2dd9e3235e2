/* run_result helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

struct run_result *result_new(void)
{
	struct run_result *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->lat_hist = calloc(1, sizeof(*r->lat_hist));
	r->ack_hist = calloc(1, sizeof(*r->ack_hist));
	if (!r->lat_hist || !r->ack_hist) {
		result_free(r);
		return NULL;
	}
	r->ack_batch = 1;
	return r;
}

void result_free(struct run_result *r)
{
	if (!r)
		return;
	free(r->lat_hist);
	free(r->ack_hist);
	free(r);
}

void result_summarise(const struct dd_tel_hist *h, struct dd_hist_summary *out)
{
	*out = (struct dd_hist_summary){
		.count = h->count, .sum_ns = h->sum, .min_ns = h->min, .max_ns = h->max,
		.p50_ns = dd_tel_hist_quantile(h, 0.50), .p90_ns = dd_tel_hist_quantile(h, 0.90),
		.p99_ns = dd_tel_hist_quantile(h, 0.99), .p999_ns = dd_tel_hist_quantile(h, 0.999),
	};
}

void result_take_probe(struct run_result *r, const struct dd_stats *st)
{
	r->probe_loaded = st->probe_loaded;
	snprintf(r->probe_status, sizeof(r->probe_status), "%s", st->probe_status);
	memcpy(r->runq, st->runq, sizeof(r->runq));
	memcpy(r->preempted, st->preempted, sizeof(r->preempted));
}
