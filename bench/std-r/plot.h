/* std-r --plot-dir: SVG plots drawn by gnuplot from the run's histograms. */
#ifndef STD_R_PLOT_H
#define STD_R_PLOT_H

#include "floor.h"
#include "result.h"
#include "sweep.h"

/* <dir>/latency.svg: the percentile spectrum of each run's dispatch
 * latency (and durable acknowledgement, where measured), with the floors
 * as points at the percentiles they were measured at. @labels name the
 * runs. 0, or 1 after saying why on stderr. */
int plot_spectrum(const char *dir, struct run_result *const *runs, const char *const *labels,
		  size_t n, const struct floors *f);
/* <dir>/sweep.svg: offered vs achieved rate, and P99 against the bound. */
int plot_sweep(const char *dir, const struct sweep *s, uint64_t bound_ns);

#endif
