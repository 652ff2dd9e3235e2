/* std-r — Synthetic Task Dispatch Rate benchmark. See docs/BENCHMARKS.md for
 * the method and what each number means.
 *
 * This file strings the parts together: options (opts.c), the physical
 * floors (floors.c and one file per floor), one run embedded (embedded.c)
 * or through a dispatchd (via_daemon.c), or a sweep of runs (sweep.c), and
 * the report (report.c) and plots (plot.c). */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embedded.h"
#include "floor.h"
#include "opts.h"
#include "plot.h"
#include "report.h"
#include "result.h"
#include "sweep.h"
#include "telemetry_cost.h"
#include "tree.h"
#include "via_daemon.h"

/* --telemetry-cost: the same arguments, less this option and its value,
 * run as child processes. */
static int telemetry_cost(int rounds, int argc, char **argv)
{
	char **av = calloc((size_t)argc + 1, sizeof(char *));
	int ac = 0;
	if (!av)
		return 1;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--telemetry-cost")) {
			i++;
			continue;
		}
		if (!strncmp(argv[i], "--telemetry-cost=", 17))
			continue;
		av[ac++] = argv[i];
	}
	int rc = telemetry_cost_run(rounds, ac, av);
	free(av);
	return rc;
}

/* The run's state directory: --state-dir, or a new temporary one (*tmp
 * set, removed at the end). NULL when the run keeps no state. */
static const char *state_dir(const struct opts *o, char **tmp)
{
	*tmp = NULL;
	bool needed = o->via_daemon ? !o->socket : o->durability > DD_DURABILITY_NONE;
	if (!needed)
		return NULL;
	if (o->state_dir) {
		if (mkdir(o->state_dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "std-r: cannot create --state-dir %s: %s\n", o->state_dir,
				strerror(errno));
			exit(1);
		}
		return o->state_dir;
	}
	const char *base = getenv("TMPDIR");
	base = base && *base ? base : "/var/tmp";
	/* mkdtemp() fills in the six X's */
	if (asprintf(tmp, "%s/std-r-XXXXXX", base) < 0 || !mkdtemp(*tmp)) {
		fprintf(stderr, "std-r: cannot make a state directory under %s: %s\n", base,
			strerror(errno));
		exit(1);
	}
	return *tmp;
}

/* Worker loops for the spawn floor: as many as the engine will have. */
static unsigned spawn_loops(const struct opts *o)
{
	if (o->workers)
		return o->workers;
	cpu_set_t set;
	unsigned n = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
	return n > 1 ? n - 1 : 1;
}

static int single(const struct opts *o, run_fn run, const char *dir, const struct floors *fl)
{
	struct run_result *res = result_new();
	if (!res)
		return 1;
	int rc = run(o, o->rate, dir, res);
	if (rc) {
		result_free(res);
		return rc;
	}
	report_print(res, fl);
	if (o->json) {
		json_t *doc = report_run_json(res);
		json_object_set_new(doc, "floors", fl ? report_floors_json(fl) : json_object());
		rc |= report_write_json(o->json, doc);
	}
	if (o->plot_dir) {
		const char *label = o->via_daemon ? "dispatchd" : "engine";
		if (plot_spectrum(o->plot_dir, &res, &label, 1, fl) == 0)
			printf("  plot                %s/latency.svg\n", o->plot_dir);
		else
			rc = 1;
	}
	result_free(res);
	return rc;
}

static int swept(const struct opts *o, run_fn run, const char *dir, const struct floors *fl)
{
	struct sweep s;
	int rc = sweep_run(o, run, dir, &s);
	if (rc) {
		sweep_free(&s);
		return rc;
	}
	sweep_print(o, &s);
	if (fl)
		report_print_floors(fl);
	/* the JSON's top-level run keys are the best step's, else the last's */
	size_t pick = s.best_rate > 0 ? s.best : s.n - 1;
	while (pick > 0 && !s.steps[pick].res)
		pick--;
	if (o->json) {
		json_t *doc = s.steps[pick].res ? report_run_json(s.steps[pick].res) : json_object();
		json_object_set_new(doc, "floors", fl ? report_floors_json(fl) : json_object());
		json_object_set_new(doc, "sweep", sweep_json(o, &s));
		rc |= report_write_json(o->json, doc);
	}
	if (o->plot_dir) {
		struct run_result *runs[1000];
		char names[1000][32];
		const char *labels[1000];
		size_t n = 0;
		for (size_t i = 0; i < s.n && n < 1000; i++)
			if (s.steps[i].res) {
				snprintf(names[n], sizeof(names[n]), "%.0fk/s", s.steps[i].offered / 1e3);
				labels[n] = names[n];
				runs[n++] = s.steps[i].res;
			}
		if (plot_sweep(o->plot_dir, &s, o->p99_bound_ns) == 0 &&
		    plot_spectrum(o->plot_dir, runs, labels, n, fl) == 0)
			printf("  plots               %s/sweep.svg %s/latency.svg\n", o->plot_dir,
			       o->plot_dir);
		else
			rc = 1;
	}
	sweep_free(&s);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = opts_parse(argc, argv, &o);
	if (rc)
		return rc;
	if (o.telemetry_cost)
		return telemetry_cost(o.telemetry_cost, argc, argv);
	if (o.durability == DD_DURABILITY_DEFAULT)
		o.durability = o.via_daemon ? DD_DURABILITY_FSYNC : DD_DURABILITY_NONE;
	if (o.via_daemon && o.kind == KIND_LOOKUP) {
		fprintf(stderr, "std-r: --kind lookup runs embedded only (dispatchd has no lookup "
				"task)\n");
		return 2;
	}
	char *tmp;
	const char *dir = state_dir(&o, &tmp);

	/* Before any engine starts: its threads would be what the floors see. */
	struct floors fl;
	bool have_floors = o.floor_s > 0;
	if (have_floors)
		floors_measure(o.floor_s, o.durability > DD_DURABILITY_NONE ? dir : NULL,
			       o.kind == KIND_EXEC ? (o.cmd ? o.cmd : "/bin/true") : NULL,
			       spawn_loops(&o), &fl);

	run_fn run = o.via_daemon ? via_daemon_run : embedded_run;
	if (o.sweep_step > 0)
		rc = swept(&o, run, dir, have_floors ? &fl : NULL);
	else
		rc = single(&o, run, dir, have_floors ? &fl : NULL);
	if (tmp) {
		remove_tree(tmp);
		free(tmp);
	}
	return rc;
}
