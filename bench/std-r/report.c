/* std-r's report. Latencies print in µs; JSON keeps ns. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "opts.h"
#include "report.h"

static const char *const role_name[DD_ROLE_COUNT] = {"other", "reactor", "worker", "io"};

static void line3(const char *label, const struct dd_hist_summary *s, const char *tail)
{
	printf("  %-19s p50 %8.2f µs  p99 %8.2f µs  p99.9 %8.2f µs  max %9.2f µs%s\n", label,
	       s->p50_ns / 1e3, s->p99_ns / 1e3, s->p999_ns / 1e3, s->max_ns / 1e3, tail);
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

void report_print_floors(const struct floors *f)
{
	if (f->stall_ok)
		printf("  stall floor         p99 %8.2f µs  p99.9 %8.2f µs  max %9.2f µs"
		       "  (%u CPUs, %.1f s: %.2f%% of CPU time lost, %" PRIu64 " stalls >= 10 µs)\n",
		       f->stall.p99_ns / 1e3, f->stall.p999_ns / 1e3, f->stall.max_ns / 1e3,
		       f->stall.ncpus, f->stall.seconds, f->stall.lost_frac * 100, f->stall.stalls);
	if (f->cyclictest.ran)
		printf("  cyclictest floor    p50 %8.2f µs  p99 %8.2f µs  p99.9 %8.2f µs  max %9.2f µs"
		       "  (%u threads, SCHED_OTHER, %" PRIu64 " wake-ups)\n",
		       f->cyclictest.p50_ns / 1e3, f->cyclictest.p99_ns / 1e3,
		       f->cyclictest.p999_ns / 1e3, f->cyclictest.max_ns / 1e3, f->cyclictest.threads,
		       f->cyclictest.cycles);
	else if (f->cyclictest.status[0])
		printf("  cyclictest floor    not measured: %s\n", f->cyclictest.status);
	if (f->fsync_ok)
		printf("  fsync floor         p50 %8.2f µs  p99 %8.2f µs  max %9.2f µs"
		       "  (4 KiB write + fdatasync, %" PRIu64 " runs, same device)\n",
		       f->fsync.p50_ns / 1e3, f->fsync.p99_ns / 1e3, f->fsync.max_ns / 1e3,
		       f->fsync.count);
	if (f->spawn_ok)
		printf("  spawn floor         %8.0f /s  p50 %8.2f µs  p99 %8.2f µs"
		       "  (bare posix_spawn + waitpid, %u loops)\n",
		       f->spawn.per_sec, f->spawn.p50_ns / 1e3, f->spawn.p99_ns / 1e3, f->spawn.threads);
	if (f->handoff_ok)
		printf("  hand-off floor      p50 %8.3f µs  p99 %8.3f µs"
		       "  (one cache line, CPU %d <-> %d, one way)\n",
		       f->handoff.p50_ns / 1e3, f->handoff.p99_ns / 1e3, f->handoff.cpu_a,
		       f->handoff.cpu_b);
}

/* The engine in this process, with a state store (a durable level). */
static bool has_store(const struct run_result *r)
{
	return !strcmp(r->mode, "embedded") && r->durability > DD_DURABILITY_NONE;
}

void report_print(const struct run_result *r, const struct floors *f)
{
	if (r->inline_exec)
		printf("std-r  %s  %s  shards=%u executor=inline (reactor runs handlers)"
		       "  durability=%s\n", r->mode, r->kind, r->shards,
		       dd_durability_name(r->durability));
	else
		printf("std-r  %s  %s  shards=%u workers/shard=%u  durability=%s\n", r->mode, r->kind,
		       r->shards, r->workers, dd_durability_name(r->durability));
	if (!strcmp(r->mode, "embedded"))
		printf("  spin before parking %12.0f µs\n", r->spin_ns / 1e3);
	if (r->offered > 0)
		printf("  offered rate        %12.0f jobs/s (open loop)\n", r->offered);
	else
		printf("  offered rate        %12s\n", "max (closed loop)");
	printf("  measured            %12.1f s after %.1f s warm-up\n", r->duration_s, r->warmup_s);
	if (r->jobs_in_state)
		printf("  jobs in state       %12" PRIu64 " before the run\n", r->jobs_in_state);
	if (has_store(r) && r->store_retain == UINT64_MAX)
		printf("  store keeps         %12s ended jobs\n", "all");
	else if (has_store(r))
		printf("  store keeps         %12" PRIu64 " ended jobs per shard\n", r->store_retain);
	printf("  dispatches/s        %12.0f\n", r->dispatches_per_sec);
	line3("dispatch latency", &r->lat,
	      r->lat_hist->count ? "" : "  (engine's histogram)");
	if (r->queue_wait.count)
		line3("queue wait", &r->queue_wait, "  (engine's: submitted -> started)");
	printf("  samples             %12" PRIu64 "   failed %" PRIu64 "   ring-full retries %" PRIu64
	       "\n", r->lat.count, r->failed, r->ring_full);
	if (r->lookups)
		printf("  lookups             %12" PRIu64 "   not found %" PRIu64 "\n", r->lookups,
		       r->lookup_misses);
	if (r->parks || r->wakeups)
		printf("  reactor parks       %12" PRIu64 "   producer wake-ups %" PRIu64 "\n", r->parks,
		       r->wakeups);
	if (r->durability > DD_DURABILITY_NONE) {
		printf("  S-TR                %12.0f state records/s made durable\n",
		       r->state_tx_per_sec);
		char tail[64];
		snprintf(tail, sizeof(tail), "  (%" PRIu64 " acks of %" PRIu64 ")", r->ack.count,
			 r->ack_batch);
		line3("durable ack", &r->ack, tail);
		if (r->log_batches)
			printf("  log                 %12" PRIu64 " records in %" PRIu64
			       " batches (%.1f per batch)\n", r->log_records, r->log_batches,
			       (double)r->log_records / (double)r->log_batches);
		if (r->state_error)
			printf("  state error         %s\n", dd_strerror(r->state_error));
	}
	if (r->probe_loaded) {
		for (unsigned rl = 1; rl < DD_ROLE_COUNT; rl++)
			if (r->runq[rl].count)
				printf("  run queue %-8s  p50 %8.2f µs  p99 %8.2f µs  max %9.2f µs  (%" PRIu64
				       " waits, %" PRIu64 " preempted; eBPF probe)\n", role_name[rl],
				       r->runq[rl].p50_ns / 1e3, r->runq[rl].p99_ns / 1e3,
				       r->runq[rl].max_ns / 1e3, r->runq[rl].count, r->preempted[rl]);
	} else if (r->probe_status[0]) {
		printf("  jitter probe        %s\n", r->probe_status);
	}
	if (r->daemon_exit[0])
		printf("  daemon              %s\n", r->daemon_exit);
	if (!f)
		return;
	report_print_floors(f);
	/* each figure against its floor: 1.0 would be the machine's limit */
	if (f->stall_ok && r->offered > 0)
		printf("  p99 / stall floor   %12.2f\n", ratio(r->lat.p99_ns, f->stall.p99_ns));
	if (f->cyclictest.ran && r->offered > 0)
		printf("  p99 / cyclictest    %12.2f\n", ratio(r->lat.p99_ns, f->cyclictest.p99_ns));
	if (f->fsync_ok && r->ack.count)
		printf("  ack p99 / fsync p99 %12.2f\n", ratio(r->ack.p99_ns, f->fsync.p99_ns));
	if (f->spawn_ok && f->spawn.per_sec > 0)
		printf("  rate / spawn floor  %12.3f\n", r->dispatches_per_sec / f->spawn.per_sec);
	if (f->handoff_ok && r->offered > 0)
		printf("  p50 / hand-off p50  %12.1f\n", ratio(r->lat.p50_ns, f->handoff.p50_ns));
}

json_t *report_summary_json(const struct dd_hist_summary *s)
{
	return json_pack("{sI sI sI sI sI sI}", "p50", (json_int_t)s->p50_ns, "p90",
			 (json_int_t)s->p90_ns, "p99", (json_int_t)s->p99_ns, "p999",
			 (json_int_t)s->p999_ns, "max", (json_int_t)s->max_ns, "count",
			 (json_int_t)s->count);
}

json_t *report_run_json(const struct run_result *r)
{
	json_t *j = json_pack("{ss ss ss sI ss sI sf sf sI sf sI sI}", "mode", r->mode, "kind",
			      r->kind, "durability", dd_durability_name(r->durability), "shards",
			      (json_int_t)r->shards, "executor", r->inline_exec ? "inline" : "workers",
			      "workers_per_shard", (json_int_t)r->workers, "duration_s", r->duration_s,
			      "warmup_s", r->warmup_s, "jobs_in_state", (json_int_t)r->jobs_in_state,
			      "dispatches_per_sec", r->dispatches_per_sec, "samples",
			      (json_int_t)r->lat.count, "failed", (json_int_t)r->failed);
	json_object_set_new(j, "offered_rate", r->offered > 0 ? json_real(r->offered)
							      : json_string("max"));
	if (!strcmp(r->mode, "embedded"))
		json_object_set_new(j, "spin_ns", json_integer((json_int_t)r->spin_ns));
	if (has_store(r)) /* null: no limit */
		json_object_set_new(j, "store_retain",
				    r->store_retain == UINT64_MAX
					    ? json_null()
					    : json_integer((json_int_t)r->store_retain));
	json_object_set_new(j, "latency_ns", report_summary_json(&r->lat));
	json_object_set_new(j, "latency_source",
			    json_string(r->lat_hist->count ? "every job" : "engine histogram"));
	if (r->queue_wait.count)
		json_object_set_new(j, "queue_wait_ns", report_summary_json(&r->queue_wait));
	if (r->lookups)
		json_object_set_new(j, "lookups", json_pack("{sI sI}", "count", (json_int_t)r->lookups,
							    "not_found", (json_int_t)r->lookup_misses));
	if (r->durability > DD_DURABILITY_NONE) {
		json_object_set_new(j, "state_tx_per_sec", json_real(r->state_tx_per_sec));
		json_t *a = report_summary_json(&r->ack);
		json_object_set_new(a, "jobs_per_ack", json_integer((json_int_t)r->ack_batch));
		json_object_set_new(j, "durable_ack_ns", a);
		if (r->state_error)
			json_object_set_new(j, "state_error", json_string(dd_strerror(r->state_error)));
	}
	json_t *p = json_pack("{ss ss}", "status", r->probe_loaded ? "loaded" : "unavailable",
			      "detail", r->probe_status);
	for (unsigned rl = 0; r->probe_loaded && rl < DD_ROLE_COUNT; rl++) {
		json_t *q = json_pack("{sI sI sI sI sI}", "count", (json_int_t)r->runq[rl].count,
				      "p50_ns", (json_int_t)r->runq[rl].p50_ns, "p99_ns",
				      (json_int_t)r->runq[rl].p99_ns, "max_ns",
				      (json_int_t)r->runq[rl].max_ns, "preempted",
				      (json_int_t)r->preempted[rl]);
		json_object_set_new(p, role_name[rl], q);
	}
	json_object_set_new(j, "probe", p);
	if (r->daemon_exit[0])
		json_object_set_new(j, "daemon", json_string(r->daemon_exit));
	return j;
}

json_t *report_floors_json(const struct floors *f)
{
	json_t *j = json_object();
	if (f->stall_ok)
		json_object_set_new(j, "stall",
				    json_pack("{sI sf sf sI sI sI sI}", "cpus", (json_int_t)f->stall.ncpus,
					      "seconds", f->stall.seconds, "lost_frac",
					      f->stall.lost_frac, "stalls", (json_int_t)f->stall.stalls,
					      "p99_ns", (json_int_t)f->stall.p99_ns, "p999_ns",
					      (json_int_t)f->stall.p999_ns, "max_ns",
					      (json_int_t)f->stall.max_ns));
	if (f->cyclictest.ran)
		json_object_set_new(j, "cyclictest",
				    json_pack("{sI sI ss sI sI sI sI}", "threads",
					      (json_int_t)f->cyclictest.threads, "wakeups",
					      (json_int_t)f->cyclictest.cycles, "policy", "SCHED_OTHER",
					      "p50_ns", (json_int_t)f->cyclictest.p50_ns, "p99_ns",
					      (json_int_t)f->cyclictest.p99_ns, "p999_ns",
					      (json_int_t)f->cyclictest.p999_ns, "max_ns",
					      (json_int_t)f->cyclictest.max_ns));
	else
		json_object_set_new(j, "cyclictest",
				    json_pack("{ss}", "unavailable", f->cyclictest.status));
	if (f->fsync_ok)
		json_object_set_new(j, "fsync",
				    json_pack("{sI sI sI sI}", "count", (json_int_t)f->fsync.count,
					      "p50_ns", (json_int_t)f->fsync.p50_ns, "p99_ns",
					      (json_int_t)f->fsync.p99_ns, "max_ns",
					      (json_int_t)f->fsync.max_ns));
	if (f->spawn_ok)
		json_object_set_new(j, "spawn",
				    json_pack("{sI sf sI sI sI sI}", "loops", (json_int_t)f->spawn.threads,
					      "per_sec", f->spawn.per_sec, "count",
					      (json_int_t)f->spawn.count, "p50_ns",
					      (json_int_t)f->spawn.p50_ns, "p99_ns",
					      (json_int_t)f->spawn.p99_ns, "max_ns",
					      (json_int_t)f->spawn.max_ns));
	if (f->handoff_ok)
		json_object_set_new(j, "handoff",
				    json_pack("{sI sI sI sI sI sI}", "cpu_a", (json_int_t)f->handoff.cpu_a,
					      "cpu_b", (json_int_t)f->handoff.cpu_b, "round_trips",
					      (json_int_t)f->handoff.count, "p50_ns",
					      (json_int_t)f->handoff.p50_ns, "p99_ns",
					      (json_int_t)f->handoff.p99_ns, "max_ns",
					      (json_int_t)f->handoff.max_ns));
	return j;
}

int report_write_json(const char *path, json_t *doc)
{
	int r = json_dump_file(doc, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (r < 0)
		fprintf(stderr, "std-r: cannot write %s: %s\n", path, strerror(errno));
	json_decref(doc);
	return r < 0 ? 1 : 0;
}
