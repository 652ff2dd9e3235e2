/* std-r's command line: what one invocation asks for. */
#ifndef STD_R_OPTS_H
#define STD_R_OPTS_H

#include <stdbool.h>
#include <stdint.h>

enum job_kind { KIND_NOOP, KIND_LOOKUP, KIND_EXEC };

struct opts {
	bool via_daemon;
	enum job_kind kind;
	const char *cmd;    /* --cmd: the exec kind's program (default /bin/true) */
	double rate;        /* 0 = max */
	double duration_s, warmup_s;
	unsigned shards, workers;
	uint64_t spin_ns;
	uint64_t inflight;
	int gen_cpu;
	int executor;       /* -1 auto, 0 workers, 1 inline */
	double floor_s;     /* each floor's measuring time, 0 = skip them */
	int durability;     /* enum dd_durability */
	const char *state_dir;
	uint64_t jobs_in_state; /* jobs put in the state before measuring */
	uint64_t store_retain;  /* ended jobs the store keeps per shard (embedded) */
	unsigned payload;       /* bytes of payload per job */
	const char *json;
	const char *plot_dir;
	int quiet;
	unsigned batch, depth;  /* --via-daemon */
	const char *dispatchd;  /* --via-daemon: the binary */
	const char *socket;     /* --via-daemon: an already running daemon */
	bool histograms_off;
	int probe;              /* DD_PROBE_* */
	int telemetry_cost;     /* rounds, 0 = not this mode */
	/* --sweep FROM:TO:STEP */
	double sweep_from, sweep_to, sweep_step;
	uint64_t p99_bound_ns;  /* --p99-bound (default 50 µs) */
};

/* Fills @o from the command line. 0, or the exit code (2 for a usage
 * error, after saying why on stderr). -h and -V exit themselves. */
int opts_parse(int argc, char **argv, struct opts *o);

/* "noop", "lookup", "exec". */
const char *kind_name(enum job_kind k);

/* A duration such as "50us", "2ms", "1.5s" or "800ns" (a bare number is
 * µs). 0 on success, -1 if it is not one. */
int parse_duration_ns(const char *s, uint64_t *out);

#endif
