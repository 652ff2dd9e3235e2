/* Plots: std-r writes the data and a gnuplot script into the plot
 * directory and runs gnuplot there, so both stay next to the SVG and the
 * picture can be redrawn or restyled by hand.
 *
 * The spectrum's x axis is 1/(1-q) on a log scale (the HdrHistogram
 * convention): each decade is one more nine, so the tail gets the room. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plot.h"

/* a format: width and height follow */
#define TERMINAL "set terminal svg size %d,%d dynamic enhanced font 'sans,13' background '#ffffff'\n"

static FILE *open_in(const char *dir, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "std-r: cannot write %s: %s\n", path, strerror(errno));
	return f;
}

/* Runs gnuplot on <dir>/<script> with <dir> as its working directory. */
static int gnuplot(const char *dir, const char *script)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (chdir(dir) < 0)
			_exit(126);
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		fprintf(stderr, "std-r: cannot run gnuplot: %s\n", strerror(errno));
		return 1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		fprintf(stderr, "std-r: gnuplot not found (Debian package gnuplot-nox; scripts/setup "
				"installs it); the data and script are in %s\n", dir);
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "std-r: gnuplot failed on %s/%s\n", dir, script);
		return 1;
	}
	return 0;
}

/* <dir>/<name>.dat and <dir>/<name>.gp, after making <dir>. 0, or 1 with
 * neither open. */
static int open_pair(const char *dir, const char *name, FILE **dat, FILE **gp);

static int make_dir(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "std-r: cannot create --plot-dir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	return 0;
}

static int open_pair(const char *dir, const char *name, FILE **dat, FILE **gp)
{
	char file[64];
	if (make_dir(dir))
		return 1;
	snprintf(file, sizeof(file), "%s.dat", name);
	*dat = open_in(dir, file);
	snprintf(file, sizeof(file), "%s.gp", name);
	*gp = *dat ? open_in(dir, file) : NULL;
	if (*gp)
		return 0;
	if (*dat)
		fclose(*dat);
	return 1;
}

/* One histogram as (1/(1-q), µs) rows, ten per decade of nines, ending at
 * its max. Returns whether it wrote anything. */
static bool plottable(const struct dd_tel_hist *h)
{
	return h && h->count >= 10;
}

static bool spectrum_rows(FILE *f, const struct dd_tel_hist *h)
{
	if (!plottable(h))
		return false;
	double last = log10((double)h->count);
	for (double k = 0; k <= last * 10; k++) {
		double x = pow(10, k / 10), q = 1 - 1 / x;
		fprintf(f, "%.4f %.3f\n", x, dd_tel_hist_quantile(h, q) / 1e3);
	}
	fprintf(f, "%.4f %.3f\n\n\n", (double)h->count, h->max / 1e3);
	return true;
}

static void floor_point(FILE *f, double q, uint64_t ns)
{
	if (ns)
		fprintf(f, "%.4f %.3f\n", 1 / (1 - q), ns / 1e3);
}

int plot_spectrum(const char *dir, struct run_result *const *runs, const char *const *labels,
		  size_t n, const struct floors *fl)
{
	FILE *d, *g;
	if (open_pair(dir, "latency", &d, &g))
		return 1;
	/* the floors, as points at the percentiles they report */
	struct {
		const char *title;
		bool ok;
		uint64_t p50, p99, p999, max;
	} fp[] = {
		{"stall floor", fl && fl->stall_ok, 0, fl ? fl->stall.p99_ns : 0,
		 fl ? fl->stall.p999_ns : 0, 0},
		{"cyclictest wake-up", fl && fl->cyclictest.ran, fl ? fl->cyclictest.p50_ns : 0,
		 fl ? fl->cyclictest.p99_ns : 0, fl ? fl->cyclictest.p999_ns : 0, 0},
		{"fsync floor", fl && fl->fsync_ok, fl ? fl->fsync.p50_ns : 0,
		 fl ? fl->fsync.p99_ns : 0, 0, 0},
		{"cache-line hand-off", fl && fl->handoff_ok, fl ? fl->handoff.p50_ns : 0,
		 fl ? fl->handoff.p99_ns : 0, 0, 0},
		{"spawn floor", fl && fl->spawn_ok, fl ? fl->spawn.p50_ns : 0,
		 fl ? fl->spawn.p99_ns : 0, 0, 0},
	};
	/* The legend goes under the plot, two entries a row, in a bottom
	 * margin as tall as it, and the canvas grows with it: beside the plot,
	 * a sweep's 20-odd entries left the curves a sliver of the width
	 * (gnuplot: "canvas area too small"). */
	int entries = 0;
	for (size_t i = 0; i < n; i++)
		entries += plottable(runs[i]->lat_hist) + plottable(runs[i]->ack_hist);
	for (size_t k = 0; k < sizeof(fp) / sizeof(fp[0]); k++)
		entries += fp[k].ok;
	int rows = (entries + 1) / 2;
	fprintf(g, "# std-r: latency percentile spectrum; redraw with: gnuplot latency.gp\n"
		TERMINAL "set output 'latency.svg'\n"
		"set title 'std-r: latency by percentile (open loop, intended start time)'\n"
		"set logscale xy\nset grid\n"
		"set key at screen 0.5,screen 0.01 center bottom box maxrows %d\n"
		"set bmargin %d\nset rmargin 6\n",
		960, 540 + 22 * rows, rows > 0 ? rows : 1, rows + 5);
	fprintf(g,
		"set xlabel 'percentile'\nset ylabel 'latency (µs)'\n"
		"set xtics ('0%%%%' 1, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, '99.99%%%%' 10000, "
		"'99.999%%%%' 100000, '99.9999%%%%' 1000000, '99.99999%%%%' 10000000)\n"
		"plot ");
	int index = 0;
	const char *sep = "";
	/* a colour per run, shared by its dispatch and its ack curve: gnuplot's
	 * own eight repeat within a ten-step sweep */
	static const char *const colour[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a",
					     "#66a61e", "#e6ab02", "#a6761d", "#1f78b4",
					     "#e31a1c", "#6a3d9a", "#b15928", "#444444"};
	const size_t ncolour = sizeof(colour) / sizeof(colour[0]);
	for (size_t i = 0; i < n; i++) {
		if (spectrum_rows(d, runs[i]->lat_hist)) {
			fprintf(g, "%s'latency.dat' index %d with linespoints pt 7 ps 0.4 lw 2 "
				   "lc rgb '%s' title '%s dispatch'", sep, index++,
				colour[i % ncolour], labels[i]);
			sep = ", \\\n     ";
		}
		if (spectrum_rows(d, runs[i]->ack_hist)) {
			fprintf(g, "%s'latency.dat' index %d with linespoints pt 5 ps 0.4 lw 1 dt 2 "
				   "lc rgb '%s' title '%s durable ack (per %llu jobs)'", sep, index++,
				colour[i % ncolour], labels[i], (unsigned long long)runs[i]->ack_batch);
			sep = ", \\\n     ";
		}
	}
	for (size_t k = 0; k < sizeof(fp) / sizeof(fp[0]); k++) {
		if (!fp[k].ok)
			continue;
		floor_point(d, 0.5, fp[k].p50);
		floor_point(d, 0.99, fp[k].p99);
		floor_point(d, 0.999, fp[k].p999);
		fprintf(d, "\n\n");
		fprintf(g, "%s'latency.dat' index %d with linespoints pt %zu ps 1.2 lw 1 dt 3 title '%s'",
			sep, index++, 8 + k, fp[k].title);
		sep = ", \\\n     ";
	}
	fprintf(g, "\n");
	fclose(d);
	fclose(g);
	if (!index) {
		fprintf(stderr, "std-r: no latency histogram to plot\n");
		return 1;
	}
	return gnuplot(dir, "latency.gp");
}

int plot_sweep(const char *dir, const struct sweep *s, uint64_t bound_ns)
{
	FILE *d, *g;
	if (open_pair(dir, "sweep", &d, &g))
		return 1;
	char title[128];
	if (s->best_rate > 0)
		snprintf(title, sizeof(title), "best rate with P99 under %.0f µs: %.0f jobs/s",
			 bound_ns / 1e3, s->best_rate);
	else
		snprintf(title, sizeof(title), "no rate kept P99 under %.0f µs", bound_ns / 1e3);
	fprintf(d, "# offered/s achieved/s p50_us p99_us p999_us under_bound\n");
	for (size_t i = 0; i < s->n; i++)
		if (s->steps[i].res)
			fprintf(d, "%.0f %.0f %.3f %.3f %.3f %d\n", s->steps[i].offered,
				s->steps[i].res->dispatches_per_sec, s->steps[i].res->lat.p50_ns / 1e3,
				s->steps[i].res->lat.p99_ns / 1e3, s->steps[i].res->lat.p999_ns / 1e3,
				s->steps[i].under_bound);
	fclose(d);
	fprintf(g, "# std-r: offered vs achieved rate and P99 across a sweep; redraw with: "
		   "gnuplot sweep.gp\n" TERMINAL "set output 'sweep.svg'\n"
		   "set title 'std-r sweep: %s'\n"
		   "set grid\n"
		   /* under the plot, as the spectrum's: beside it, it took a third
		    * of the width */
		   "set key at screen 0.5,screen 0.01 center bottom box maxrows 2\n"
		   "set bmargin 7\n"
		   "set xlabel 'offered (jobs/s)'\nset ylabel 'achieved (jobs/s)'\n"
		   "set y2label 'latency (µs, log)'\nset logscale y2\nset y2tics\nset ytics nomirror\n"
		   "set format x '%%.0s%%c'\nset format y '%%.0s%%c'\n"
		   "plot 'sweep.dat' using 1:1 with lines lc 'gray' dt 2 title 'offered = achieved', \\\n"
		   "     'sweep.dat' using 1:2 with linespoints pt 7 lw 2 title 'achieved', \\\n"
		   "     'sweep.dat' using 1:4 axes x1y2 with linespoints pt 5 lw 2 title 'P99', \\\n"
		   "     'sweep.dat' using 1:5 axes x1y2 with linespoints pt 4 lw 1 dt 2 title 'P99.9', \\\n"
		   "     %.3f axes x1y2 with lines lc 'red' dt 3 lw 2 title 'P99 bound'\n",
		960, 600, title, bound_ns / 1e3);
	fclose(g);
	return gnuplot(dir, "sweep.gp");
}
