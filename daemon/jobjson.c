/* Jobs, events and statistics as JSON (docs/PROTOCOL.md). */
#include <time.h>

#include "server.h"

static json_t *when(const struct dd_server *srv, uint64_t mono_ns)
{
	/* seconds since the epoch; the engine counts on CLOCK_MONOTONIC */
	return json_real((double)((int64_t)mono_ns + srv->rt_offset) / 1e9);
}

static const char *prio_name(int p)
{
	static const char *const n[] = {"urgent", "high", "normal", "low"};
	return p >= 0 && p < 4 ? n[p] : "normal";
}

json_t *dd_job_json(const struct dd_server *srv, const struct dd_job_info *in)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:i, s:i, s:i}",
			      "id", (json_int_t)in->id, "state", dd_state_name(in->state),
			      "queue", in->kind, "priority", prio_name(in->priority),
			      "attempt", (int)in->attempt, "max_attempts", (int)in->max_attempts,
			      "result", in->result, "reason", in->reason,
			      "uid", (int)in->uid, "gid", (int)in->gid, "shard", (int)in->shard);
	if (!o)
		return NULL;
	json_object_set_new(o, "exec", json_boolean(in->exec));
	if (in->name[0])
		json_object_set_new(o, "name", json_string(in->name));
	if (in->exec) {
		json_object_set_new(o, "command", json_string(in->command));
		if (in->cwd[0])
			json_object_set_new(o, "cwd", json_string(in->cwd));
		json_object_set_new(o, "exit_code",
				    in->exit_code >= 0 ? json_integer(in->exit_code) : json_null());
		json_object_set_new(o, "signal",
				    in->term_signal ? json_integer(in->term_signal) : json_null());
		if (in->pid)
			json_object_set_new(o, "pid", json_integer(in->pid));
		if (in->have_cpu_time)
			json_object_set_new(o, "cpu_time", json_real((double)in->cpu_time_ns / 1e9));
		if (in->have_mem_peak)
			json_object_set_new(o, "mem_peak", json_integer((json_int_t)in->mem_peak));
		if (in->output_cut[0] || in->output_cut[1])
			json_object_set_new(o, "output_cut",
					    json_pack("{s:I, s:I}", "stdout",
						      (json_int_t)in->output_cut[0], "stderr",
						      (json_int_t)in->output_cut[1]));
	}
	if (in->array_id && in->array_id == in->id) {
		json_t *st = json_object();
		for (int s = DD_WAITING; s < DD_STATE_COUNT; s++)
			if (in->array_states[s])
				json_object_set_new(st, dd_state_name((enum dd_state)s),
						    json_integer((json_int_t)in->array_states[s]));
		json_object_set_new(o, "array", json_pack("{s:I, s:o}", "count",
							  (json_int_t)in->array_count, "states", st));
	} else if (in->array_id) {
		json_object_set_new(o, "array_id", json_integer((json_int_t)in->array_id));
		json_object_set_new(o, "array_index", json_integer((json_int_t)in->array_index));
	}
	if (in->submitted_ns)
		json_object_set_new(o, "submitted_at", when(srv, in->submitted_ns));
	if (in->started_ns)
		json_object_set_new(o, "started_at", when(srv, in->started_ns));
	if (in->ended_ns)
		json_object_set_new(o, "ended_at", when(srv, in->ended_ns));
	return o;
}

json_t *dd_event_json(const struct dd_server *srv, const struct dd_event *ev)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:i, s:i, s:s, s:o}", "id", (json_int_t)ev->id,
			 "state", dd_state_name(ev->state), "prev",
			 ev->prev_state ? dd_state_name(ev->prev_state) : "new", "attempt",
			 (int)ev->attempt, "result", ev->result, "reason",
			 ev->reason ? ev->reason : "", "at", when(srv, ev->at_ns));
	if (o && ev->array_id) {
		json_object_set_new(o, "array_id", json_integer((json_int_t)ev->array_id));
		json_object_set_new(o, "array_index", json_integer((json_int_t)ev->array_index));
	}
	return o;
}

static json_t *shard_counters(const struct dd_shard_stats *s);

static json_t *hist_json(const struct dd_hist_summary *h)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)h->count,
			 "p50_ns", (json_int_t)h->p50_ns, "p90_ns", (json_int_t)h->p90_ns, "p99_ns",
			 (json_int_t)h->p99_ns, "p999_ns", (json_int_t)h->p999_ns, "max_ns",
			 (json_int_t)h->max_ns, "sum_ns", (json_int_t)h->sum_ns);
}

static json_t *latency_json(const struct dd_shard_stats *s)
{
	static const char *const names[DD_HIST_COUNT] = {
		[DD_HIST_DISPATCH] = "dispatch", [DD_HIST_QUEUE_WAIT] = "queue_wait",
		[DD_HIST_RUN] = "run",		 [DD_HIST_DURABLE_ACK] = "durable_ack",
		[DD_HIST_LOG_IO] = "log_io",
	};
	json_t *o = json_object();
	for (unsigned k = 0; k < DD_HIST_COUNT; k++)
		json_object_set_new(o, names[k], hist_json(&s->hist[k]));
	return o;
}

static json_t *shard_json(const struct dd_shard_stats *s, bool latency)
{
	json_t *o = shard_counters(s);
	if (latency)
		json_object_set_new(o, "latency", latency_json(s));
	return o;
}

static json_t *shard_counters(const struct dd_shard_stats *s)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}",
			 "submitted", (json_int_t)s->submitted, "dispatched",
			 (json_int_t)s->dispatched, "succeeded", (json_int_t)s->succeeded,
			 "failed", (json_int_t)s->failed, "cancelled", (json_int_t)s->cancelled,
			 "timed_out", (json_int_t)s->timed_out, "retried", (json_int_t)s->retried,
			 "waiting", (json_int_t)s->waiting, "delayed", (json_int_t)s->delayed,
			 "queued", (json_int_t)s->queued, "running", (json_int_t)s->running,
			 "log_records", (json_int_t)s->log_records, "log_batches",
			 (json_int_t)s->log_batches, "store_jobs", (json_int_t)s->store_jobs,
			 "durable_lsn", (json_int_t)s->durable_lsn, "state_error", s->state_error);
}

static json_t *probe_json(const struct dd_stats *st)
{
	static const char *const role[DD_ROLE_COUNT] = {"other", "reactor", "worker", "io"};
	json_t *o = json_pack("{s:s}", "status", st->probe_status);
	if (!st->probe_loaded)
		return o;
	json_t *roles = json_object();
	for (unsigned r = 0; r < DD_ROLE_COUNT; r++) {
		json_t *h = hist_json(&st->runq[r]);
		json_object_set_new(h, "preempted", json_integer((json_int_t)st->preempted[r]));
		json_object_set_new(roles, role[r], h);
	}
	json_object_set_new(o, "runqueue", roles);
	return o;
}

json_t *dd_stats_json(struct dd_server *srv, struct dd_stats_window *win, bool latency)
{
	static _Thread_local struct dd_stats st; /* large: not on the stack */
	if (!latency)
		dd_stats_counters(srv->eng, &st);
	else if (!win || dd_stats_window_read(srv->eng, win, &st) < 0)
		dd_stats(srv->eng, &st);
	json_t *shards = json_array();
	for (unsigned i = 0; i < st.nshards; i++) {
		json_t *sj = shard_json(&st.shard[i], latency);
		json_object_set_new(sj, "node", json_integer(st.shard[i].node));
		json_object_set_new(sj, "workers", json_integer(st.shard[i].workers));
		json_array_append_new(shards, sj);
	}
	json_t *procs = json_pack("{s:b, s:s, s:f, s:I, s:I}", "cgroups", st.cgroups, "cgroup_status",
				  st.cgroup_status, "cpu_seconds", (double)st.total.proc_cpu_ns / 1e9,
				  "oom", (json_int_t)st.total.proc_oom, "leftovers",
				  (json_int_t)st.total.proc_leftovers);
	bool sup;
	const char *sups = dd_engine_supervisor(srv->eng, &sup);
	json_object_set_new(procs, "supervisor", json_boolean(sup));
	json_object_set_new(procs, "supervisor_status", json_string(sups));
	json_object_set_new(procs, "pool",
			    json_pack("{s:I, s:I, s:I, s:I, s:I}", "cpus",
				      (json_int_t)st.total.pool_cpus, "cpus_free",
				      (json_int_t)st.total.pool_cpus_free, "mem",
				      (json_int_t)st.total.pool_mem, "mem_free",
				      (json_int_t)st.total.pool_mem_free, "waiting",
				      (json_int_t)st.total.pool_waiting));
	return json_pack("{s:f, s:o, s:o, s:o, s:o, s:{s:i, s:I, s:I, s:b, s:I, s:I}}", "window_s",
			 (double)st.window_ns / 1e9, "processes", procs, "probe", probe_json(&st), "total",
			 shard_json(&st.total, latency), "shards", shards, "daemon", "connections",
			 (int)srv->nconns, "requests", (json_int_t)srv->requests, "errors",
			 (json_int_t)srv->errors, "draining", srv->draining, "pending_submits",
			 (json_int_t)dd_idmap_count(srv->durable_wait), "pending_waits",
			 (json_int_t)dd_idmap_count(srv->end_wait));
}
