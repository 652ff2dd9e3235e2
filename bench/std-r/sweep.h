/* std-r --sweep: offered rates in steps, and the highest whose P99 stays
 * under the bound. */
#ifndef STD_R_SWEEP_H
#define STD_R_SWEEP_H

#include <jansson.h>

#include "opts.h"
#include "result.h"

/* A step meets the bound when its dispatch-latency P99 is at most the
 * bound, it kept up (achieved at least 95% of offered) and no job failed. */
struct sweep_step {
	double offered;
	struct run_result *res; /* NULL: the run did not complete */
	bool under_bound;
};

struct sweep {
	struct sweep_step *steps;
	size_t n;
	double best_rate;        /* 0: no step met the bound */
	size_t best;             /* its index, when best_rate > 0 */
	bool stopped_early;      /* two steps in a row did not keep up */
};

/* A function that makes one run at @rate with state under @state_dir. */
typedef int (*run_fn)(const struct opts *o, double rate, const char *state_dir,
		      struct run_result *res);

/* Runs the steps; each gets a fresh engine and its own state directory
 * (<state_base>/step-N) when @state_base is not NULL. 0, or 1 when no step
 * ran at all. */
int sweep_run(const struct opts *o, run_fn run, const char *state_base, struct sweep *s);
void sweep_print(const struct opts *o, const struct sweep *s);
json_t *sweep_json(const struct opts *o, const struct sweep *s);
void sweep_free(struct sweep *s);

#endif
