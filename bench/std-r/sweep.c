/* std-r --sweep. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "report.h"
#include "sweep.h"
#include "tree.h"

int sweep_run(const struct opts *o, run_fn run, const char *state_base, struct sweep *s)
{
	size_t n = (size_t)floor((o->sweep_to - o->sweep_from) / o->sweep_step + 1e-9) + 1;
	*s = (struct sweep){.steps = calloc(n, sizeof(struct sweep_step))};
	if (!s->steps)
		return 1;
	unsigned over_in_a_row = 0;
	size_t ran = 0;
	for (size_t i = 0; i < n; i++) {
		struct sweep_step *st = &s->steps[s->n++];
		st->offered = o->sweep_from + (double)i * o->sweep_step;
		char dir[PATH_MAX];
		const char *sd = NULL;
		if (state_base) {
			snprintf(dir, sizeof(dir), "%s/step-%zu", state_base, i);
			sd = dir;
		}
		if (!o->quiet)
			fprintf(stderr, "std-r: sweep step %zu/%zu: %.0f jobs/s offered\n", i + 1, n,
				st->offered);
		struct run_result *res = result_new();
		if (!res || run(o, st->offered, sd, res) != 0) {
			result_free(res);
			fprintf(stderr, "std-r: sweep step at %.0f jobs/s did not complete\n",
				st->offered);
		} else {
			st->res = res;
			ran++;
			st->under_bound = res->lat.p99_ns <= o->p99_bound_ns &&
					  res->dispatches_per_sec >= 0.95 * st->offered && !res->failed;
			if (st->under_bound && st->offered > s->best_rate) {
				s->best_rate = st->offered;
				s->best = s->n - 1;
			}
		}
		if (sd) /* each step's state is its own; the next starts empty */
			remove_tree(sd);
		/* A P99 over the bound may be this machine's noise, and a
		 * higher rate may still meet it; a rate not kept up with will
		 * not be at any higher one. */
		bool saturated = !st->res || st->res->dispatches_per_sec < 0.95 * st->offered;
		over_in_a_row = saturated ? over_in_a_row + 1 : 0;
		if (over_in_a_row == 2 && i + 1 < n) {
			s->stopped_early = true;
			break;
		}
	}
	return ran ? 0 : 1;
}

void sweep_print(const struct opts *o, const struct sweep *s)
{
	printf("std-r  sweep  %.0f..%.0f step %.0f jobs/s  bound: p99 <= %.1f µs, achieved >= 95%% "
	       "of offered, nothing failed\n",
	       o->sweep_from, o->sweep_to, o->sweep_step, o->p99_bound_ns / 1e3);
	printf("  %12s %12s %10s %10s %10s %11s  %s\n", "offered/s", "achieved/s", "p50 µs",
	       "p99 µs", "p99.9 µs", "max µs", "bound");
	for (size_t i = 0; i < s->n; i++) {
		const struct sweep_step *st = &s->steps[i];
		const struct run_result *r = st->res;
		if (!r) {
			printf("  %12.0f  (did not complete)\n", st->offered);
			continue;
		}
		printf("  %12.0f %12.0f %10.2f %10.2f %10.2f %11.2f  %s\n", st->offered,
		       r->dispatches_per_sec, r->lat.p50_ns / 1e3, r->lat.p99_ns / 1e3,
		       r->lat.p999_ns / 1e3, r->lat.max_ns / 1e3, st->under_bound ? "met" : "over");
	}
	if (s->stopped_early)
		printf("  (stopped: two steps in a row did not keep up with the offered rate)\n");
	if (s->best_rate > 0)
		printf("  best rate under the bound  %.0f jobs/s\n", s->best_rate);
	else
		printf("  best rate under the bound  none: no step met it\n");
}

json_t *sweep_json(const struct opts *o, const struct sweep *s)
{
	json_t *steps = json_array();
	for (size_t i = 0; i < s->n; i++) {
		const struct sweep_step *st = &s->steps[i];
		json_t *e = json_pack("{sf sb}", "offered_rate", st->offered, "under_bound",
				      st->under_bound);
		if (st->res) {
			const struct run_result *r = st->res;
			json_object_set_new(e, "dispatches_per_sec", json_real(r->dispatches_per_sec));
			json_object_set_new(e, "latency_ns", report_summary_json(&r->lat));
			json_object_set_new(e, "failed", json_integer((json_int_t)r->failed));
			if (r->ack.count)
				json_object_set_new(e, "durable_ack_p99_ns",
						    json_integer((json_int_t)r->ack.p99_ns));
		} else {
			json_object_set_new(e, "error", json_string("the run did not complete"));
		}
		json_array_append_new(steps, e);
	}
	json_t *j = json_pack("{sf sf sf sI sb so}", "from", o->sweep_from, "to", o->sweep_to, "step",
			      o->sweep_step, "p99_bound_ns", (json_int_t)o->p99_bound_ns,
			      "stopped_early", s->stopped_early, "steps", steps);
	json_object_set_new(j, "best_rate_under_bound",
			    s->best_rate > 0 ? json_real(s->best_rate) : json_null());
	return j;
}

void sweep_free(struct sweep *s)
{
	for (size_t i = 0; i < s->n; i++)
		result_free(s->steps[i].res);
	free(s->steps);
	s->steps = NULL;
	s->n = 0;
}
