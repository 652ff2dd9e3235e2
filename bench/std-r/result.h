/* What one std-r run measured, whichever way it ran (embedded or via the
 * daemon): filled by the runners, read by the report, the sweep and the
 * plots. */
#ifndef STD_R_RESULT_H
#define STD_R_RESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatchd.h"
#include "telemetry.h"

struct run_result {
	const char *mode;          /* "embedded" or "via-daemon" */
	const char *kind;          /* "noop", "lookup", "exec" */
	int durability;            /* enum dd_durability */
	unsigned shards, workers;  /* workers per shard; 0 with inline */
	bool inline_exec;
	uint64_t spin_ns;          /* embedded: what the engine's threads spun */
	double offered;            /* jobs/s, 0 = max (closed loop) */
	double duration_s, warmup_s;
	uint64_t jobs_in_state;
	uint64_t store_retain;     /* embedded, durable: ended jobs the store keeps
				    * (UINT64_MAX: all) */

	double dispatches_per_sec; /* jobs completed inside the window / its length */
	/* dispatch latency: intended submit time -> the attempt started.
	 * Embedded noop and lookup record every job of the window into
	 * lat_hist; otherwise lat comes from the engine's own histogram
	 * (a summary, over the window) and lat_hist is empty. */
	struct dd_hist_summary lat;
	struct dd_tel_hist *lat_hist;
	/* submit (intended) -> durable acknowledgement, per job embedded, per
	 * batch via the daemon; empty at durability none */
	/* the engine's own: submitted (not intended) -> started; the part
	 * of the dispatch latency that is not the generator's lateness */
	struct dd_hist_summary queue_wait;
	struct dd_hist_summary ack;
	struct dd_tel_hist *ack_hist;
	uint64_t ack_batch;        /* jobs per acknowledgement (1 embedded) */

	double state_tx_per_sec;   /* log records made durable per second */
	uint64_t log_records, log_batches;
	uint64_t ring_full, parks, wakeups;
	uint64_t failed;           /* jobs (or batches) that did not succeed */
	uint64_t lookups, lookup_misses;
	int state_error;
	char daemon_exit[32];      /* via-daemon: how the daemon we started ended */

	bool probe_loaded;
	char probe_status[160];
	struct dd_hist_summary runq[DD_ROLE_COUNT];
	uint64_t preempted[DD_ROLE_COUNT];
};

/* A result with its histograms allocated, or NULL. */
struct run_result *result_new(void);
void result_free(struct run_result *r);
/* The summary of a full histogram. */
void result_summarise(const struct dd_tel_hist *h, struct dd_hist_summary *out);
/* Copies the probe's part of @st. */
void result_take_probe(struct run_result *r, const struct dd_stats *st);

#endif
