/* std-r's report: the human table on stdout and the JSON document. */
#ifndef STD_R_REPORT_H
#define STD_R_REPORT_H

#include <jansson.h>

#include "floor.h"
#include "result.h"

/* The table for one run, its floors (may be NULL) and ratios to them. */
void report_print(const struct run_result *r, const struct floors *f);
/* The floors alone. */
void report_print_floors(const struct floors *f);

/* {p50, p90, p99, p999, max, count} in ns. */
json_t *report_summary_json(const struct dd_hist_summary *s);
/* One run's keys (mode, kind, dispatches_per_sec, latency_ns, ...). */
json_t *report_run_json(const struct run_result *r);
/* {"stall": {...}, "cyclictest": {...}, "fsync": {...}, ...} */
json_t *report_floors_json(const struct floors *f);
/* Writes @doc to @path (stolen reference). 0, or 1 after saying why. */
int report_write_json(const char *path, json_t *doc);

#endif
