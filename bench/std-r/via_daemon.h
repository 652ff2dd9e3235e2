/* std-r --via-daemon: the same closed- or open-loop load, submitted to a
 * real dispatchd over its Unix socket in batches. */
#ifndef STD_R_VIA_DAEMON_H
#define STD_R_VIA_DAEMON_H

struct via_opts {
	double rate;       /* jobs/s, 0 = max (closed loop) */
	double duration_s, warmup_s;
	unsigned shards, workers;
	int durability;    /* enum dd_durability; DEFAULT = fsync here */
	unsigned batch;    /* jobs per submit_batch */
	unsigned depth;    /* batches in flight (closed loop) */
	const char *dispatchd; /* path, or NULL: next to std-r in the build */
	const char *state_dir; /* NULL: a temporary one */
	const char *json;
	double floor_s;
	int quiet;
};

/* Runs the benchmark and prints the report. Returns the exit code. */
int via_daemon_run(const struct via_opts *o);

#endif
