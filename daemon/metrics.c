/* Prometheus text exposition (format 0.0.4) at /metrics, served by
 * libmicrohttpd on its own thread. It reads only what may be read from any
 * thread: dd_stats() (lock-free counters the reactors publish) and the
 * server's atomic counters. */
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dd_config.h"
#include "dd_net.h"
#include "server.h"

struct dd_metrics {
	struct MHD_Daemon *mhd;
};

struct family {
	const char *name, *type, *help;
	size_t off; /* of the uint64_t in struct dd_shard_stats */
};

#define F(n, t, h, field) {n, t, h, offsetof(struct dd_shard_stats, field)}
static const struct family FAMILIES[] = {
	F("dispatchd_jobs_submitted_total", "counter", "Jobs submitted.", submitted),
	F("dispatchd_jobs_dispatched_total", "counter", "Attempts started.", dispatched),
	F("dispatchd_jobs_succeeded_total", "counter", "Jobs that ended succeeded.", succeeded),
	F("dispatchd_jobs_failed_total", "counter", "Jobs that ended failed.", failed),
	F("dispatchd_jobs_cancelled_total", "counter", "Jobs that ended cancelled.", cancelled),
	F("dispatchd_jobs_timed_out_total", "counter", "Jobs that ended timed out.", timed_out),
	F("dispatchd_jobs_retried_total", "counter", "Failed attempts retried.", retried),
	F("dispatchd_log_records_total", "counter", "Records written to the log.", log_records),
	F("dispatchd_log_batches_total", "counter", "Log batches written (one fsync each).",
	  log_batches),
	F("dispatchd_reactor_parks_total", "counter", "Times the reactor went to sleep.", parks),
	F("dispatchd_reactor_wakeups_total", "counter", "Times a producer woke the reactor.",
	  wakeups),
	F("dispatchd_jobs_in_memory", "gauge", "Job records held in memory, ended ones included.",
	  in_memory),
	F("dispatchd_fate_bytes", "gauge",
	  "Memory kept to answer dependencies on jobs that left memory.", fate_bytes),
	F("dispatchd_store_jobs", "gauge", "Jobs held in the state store.", store_jobs),
	F("dispatchd_store_map_bytes", "gauge", "Size of the state store's map.", store_map_bytes),
	F("dispatchd_log_durable_lsn", "gauge", "Last log record on the device.", durable_lsn),
	F("dispatchd_log_applied_lsn", "gauge", "Last log record in the store.", applied_lsn),
	F("dispatchd_process_oom_total", "counter",
	  "Process job attempts killed for their memory limit.", proc_oom),
	F("dispatchd_process_leftovers_total", "counter",
	  "Process job attempts whose main process left others running, killed at its end.",
	  proc_leftovers),
};

static const struct {
	const char *state;
	size_t off;
} STATES[] = {
	{"waiting", offsetof(struct dd_shard_stats, waiting)},
	{"delayed", offsetof(struct dd_shard_stats, delayed)},
	{"queued", offsetof(struct dd_shard_stats, queued)},
	{"running", offsetof(struct dd_shard_stats, running)},
};

/* Latency histograms: Prometheus buckets at these bounds, from the
 * engine's finer log-linear ones (a bound counts the whole fine bucket it
 * falls in: within 1/128). */
static const struct {
	const char *name, *help;
	enum dd_hist_kind kind;
} HISTS[] = {
	{"dispatchd_dispatch_latency_seconds", "Intended submit time to the attempt's start.",
	 DD_HIST_DISPATCH},
	{"dispatchd_queue_wait_seconds", "Queued to the attempt's start.", DD_HIST_QUEUE_WAIT},
	{"dispatchd_run_seconds", "An attempt's start to its end.", DD_HIST_RUN},
	{"dispatchd_durable_ack_seconds", "Submission to its log record being durable.",
	 DD_HIST_DURABLE_ACK},
	{"dispatchd_log_io_seconds", "One log batch: write and fdatasync.", DD_HIST_LOG_IO},
};
static const uint64_t LE_NS[] = {
	1000,	   2500,      5000,	 10000,	     25000,	 50000,	     100000,
	250000,	   500000,    1000000,	 2500000,    5000000,	 10000000,   25000000,
	50000000,  100000000, 250000000, 500000000,  1000000000, 2500000000, 5000000000,
	10000000000, 30000000000, 60000000000,
};
#define NLE (sizeof(LE_NS) / sizeof(LE_NS[0]))

static void histograms(FILE *f, struct dd_server *srv, unsigned nshards)
{
	uint64_t le[NLE], count, sum;
	for (size_t k = 0; k < sizeof(HISTS) / sizeof(HISTS[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", HISTS[k].name, HISTS[k].help,
			HISTS[k].name);
		for (unsigned i = 0; i < nshards; i++) {
			if (dd_stats_hist(srv->eng, (int)i, HISTS[k].kind, LE_NS, NLE, le, &count,
					  &sum) < 0)
				continue;
			for (size_t b = 0; b < NLE; b++)
				fprintf(f, "%s_bucket{shard=\"%u\",le=\"%g\"} %llu\n", HISTS[k].name, i,
					(double)LE_NS[b] / 1e9, (unsigned long long)le[b]);
			fprintf(f, "%s_bucket{shard=\"%u\",le=\"+Inf\"} %llu\n", HISTS[k].name, i,
				(unsigned long long)count);
			fprintf(f, "%s_sum{shard=\"%u\"} %.9f\n%s_count{shard=\"%u\"} %llu\n",
				HISTS[k].name, i, (double)sum / 1e9, HISTS[k].name, i,
				(unsigned long long)count);
		}
	}
}

/* The eBPF probe's run-queue latency per thread role, as a summary (its
 * quantiles come from the probe's own finer buckets). */
static void probe(FILE *f, const struct dd_stats *st)
{
	static const char *const role[DD_ROLE_COUNT] = {"other", "reactor", "worker", "io"};
	fprintf(f, "# HELP dispatchd_probe_loaded Whether the eBPF jitter probe is loaded.\n"
		   "# TYPE dispatchd_probe_loaded gauge\ndispatchd_probe_loaded %d\n",
		st->probe_loaded);
	if (!st->probe_loaded)
		return;
	fprintf(f, "# HELP dispatchd_runqueue_latency_seconds From runnable to on a CPU, by thread "
		   "role, measured in the kernel.\n"
		   "# TYPE dispatchd_runqueue_latency_seconds summary\n");
	for (unsigned r = 0; r < DD_ROLE_COUNT; r++) {
		const struct dd_hist_summary *h = &st->runq[r];
		static const double q[] = {0.5, 0.9, 0.99, 0.999};
		uint64_t v[] = {h->p50_ns, h->p90_ns, h->p99_ns, h->p999_ns};
		for (int k = 0; k < 4; k++)
			fprintf(f, "dispatchd_runqueue_latency_seconds{role=\"%s\",quantile=\"%g\"} %.9f\n",
				role[r], q[k], (double)v[k] / 1e9);
		fprintf(f, "dispatchd_runqueue_latency_seconds_sum{role=\"%s\"} %.9f\n"
			   "dispatchd_runqueue_latency_seconds_count{role=\"%s\"} %llu\n",
			role[r], (double)h->sum_ns / 1e9, role[r], (unsigned long long)h->count);
	}
	fprintf(f, "# HELP dispatchd_preemptions_total Involuntary switches away from the "
		   "engine's threads, by role.\n# TYPE dispatchd_preemptions_total counter\n");
	for (unsigned r = 0; r < DD_ROLE_COUNT; r++)
		fprintf(f, "dispatchd_preemptions_total{role=\"%s\"} %llu\n", role[r],
			(unsigned long long)st->preempted[r]);
}

static uint64_t field(const struct dd_shard_stats *s, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)s + off, sizeof(v));
	return v;
}

static char *render(struct dd_server *srv, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	struct dd_stats st;
	dd_stats(srv->eng, &st);
	for (size_t k = 0; k < sizeof(FAMILIES) / sizeof(FAMILIES[0]); k++) {
		const struct family *fm = &FAMILIES[k];
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fm->name, fm->help, fm->name, fm->type);
		for (unsigned i = 0; i < st.nshards; i++)
			fprintf(f, "%s{shard=\"%u\"} %llu\n", fm->name, i,
				(unsigned long long)field(&st.shard[i], fm->off));
	}
	fprintf(f, "# HELP dispatchd_jobs Unfinished jobs by state.\n# TYPE dispatchd_jobs gauge\n");
	for (unsigned i = 0; i < st.nshards; i++)
		for (size_t k = 0; k < sizeof(STATES) / sizeof(STATES[0]); k++)
			fprintf(f, "dispatchd_jobs{shard=\"%u\",state=\"%s\"} %llu\n", i, STATES[k].state,
				(unsigned long long)field(&st.shard[i], STATES[k].off));
	fprintf(f, "# HELP dispatchd_workers Worker threads.\n# TYPE dispatchd_workers gauge\n");
	for (unsigned i = 0; i < st.nshards; i++)
		fprintf(f, "dispatchd_workers{shard=\"%u\"} %u\n", i, st.shard[i].workers);
	fprintf(f, "# HELP dispatchd_state_error Why the shard refuses submissions (a negative "
		   "error code), 0 when it takes them.\n# TYPE dispatchd_state_error gauge\n");
	for (unsigned i = 0; i < st.nshards; i++)
		fprintf(f, "dispatchd_state_error{shard=\"%u\"} %d\n", i, st.shard[i].state_error);
	fprintf(f, "# HELP dispatchd_process_cpu_seconds_total CPU time of process job attempts "
		   "that ended, their whole trees (from their cgroups).\n"
		   "# TYPE dispatchd_process_cpu_seconds_total counter\n");
	for (unsigned i = 0; i < st.nshards; i++)
		fprintf(f, "dispatchd_process_cpu_seconds_total{shard=\"%u\"} %.6f\n", i,
			(double)st.shard[i].proc_cpu_ns / 1e9);
	fprintf(f, "# HELP dispatchd_cgroups Whether process jobs run in cgroups of their own.\n"
		   "# TYPE dispatchd_cgroups gauge\ndispatchd_cgroups %d\n", st.cgroups);
	histograms(f, srv, st.nshards);
	probe(f, &st);
	fprintf(f,
		"# HELP dispatchd_connections Client connections open.\n"
		"# TYPE dispatchd_connections gauge\ndispatchd_connections %u\n"
		"# HELP dispatchd_requests_total Requests read.\n"
		"# TYPE dispatchd_requests_total counter\ndispatchd_requests_total %llu\n"
		"# HELP dispatchd_request_errors_total Requests answered with an error.\n"
		"# TYPE dispatchd_request_errors_total counter\ndispatchd_request_errors_total %llu\n"
		"# HELP dispatchd_build_info Version of this dispatchd.\n"
		"# TYPE dispatchd_build_info gauge\ndispatchd_build_info{version=\"%s\"} 1\n",
		atomic_load_explicit(&srv->nconns, memory_order_relaxed),
		(unsigned long long)atomic_load_explicit(&srv->requests, memory_order_relaxed),
		(unsigned long long)atomic_load_explicit(&srv->errors, memory_order_relaxed),
		DD_VERSION);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, char *body, size_t len,
			     const char *type, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ok = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result handle(void *arg, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *data,
			      size_t *data_len, void **state)
{
	(void)version, (void)data, (void)data_len, (void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n", 13, "text/plain",
			     MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n", 24, "text/plain",
			     MHD_RESPMEM_PERSISTENT);
	size_t len = 0;
	char *body = render(arg, &len);
	if (!body)
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", 14, "text/plain",
			     MHD_RESPMEM_PERSISTENT);
	return reply(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8",
		     MHD_RESPMEM_MUST_FREE);
}

int dd_metrics_start(struct dd_server *srv, const char *hostport, char *err, size_t errlen)
{
	char buf[256];
	const char *h, *port;
	if (dd_net_hostport(hostport, buf, sizeof(buf), &h, &port) < 0) {
		snprintf(err, errlen, "--metrics wants HOST:PORT, got '%s'", hostport);
		return -1;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	int g = getaddrinfo(h, port, &hints, &ai);
	if (g) {
		snprintf(err, errlen, "--metrics %s: %s", hostport, gai_strerror(g));
		return -1;
	}
	struct dd_metrics *m = calloc(1, sizeof(*m));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (m)
		m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR,
					  ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, 64u,
					  MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!m || !m->mhd) {
		free(m);
		snprintf(err, errlen, "cannot serve metrics on %s (port in use?)", hostport);
		return -1;
	}
	srv->metrics = m;
	return 0;
}

void dd_metrics_stop(struct dd_server *srv)
{
	if (!srv->metrics)
		return;
	MHD_stop_daemon(srv->metrics->mhd);
	free(srv->metrics);
	srv->metrics = NULL;
}
