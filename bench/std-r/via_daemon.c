/* std-r --via-daemon. Starts a dispatchd on the run's state directory (or
 * uses the one at --socket), sends it batches of jobs — its built-in
 * synthetic task ("dispatchd.noop": runs in-process, does nothing) or, for
 * --kind exec, processes — and measures:
 *   - dispatches/s: jobs the daemon ran, from its own counters ("stats");
 *   - dispatch latency: the daemon's own histogram over the window (its
 *     stats with "window": submission received -> the attempt started);
 *   - acknowledgement latency: from a batch's intended send time until
 *     its answer, which the daemon sends once the batch is durable.
 * Closed loop (--rate max) keeps --depth batches in flight; open loop sends
 * a batch every batch/rate seconds whatever the answers do. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dd_clock.h"
#include "dd_net.h"
#include "dispatchd.h"
#include "telemetry.h"
#include "via_daemon.h"
#include "result.h"
#include "wire.h"

#define MAX_INFLIGHT 4096

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static int conn_open(struct conn *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	if ((c->fd = dd_wire_connect(path)) < 0)
		return -1;
	c->cap = 1 << 20;
	c->buf = malloc(c->cap);
	return c->buf ? 0 : -1;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
}

/* Whether @line is a plain success answer, {"tag":"<digits>","ok":true,...}
 * or {"ok":true,...}: the daemon writes its batch answers in that order
 * (daemon/ops_pend.c). Anything else is decoded in full. Under load this
 * saves std-r, on the same two CPUs as the daemon, decoding a JSON integer
 * per id: a tenth of the machine's time. */
static bool plain_ok(const char *line, size_t n)
{
	static const char tag[] = "{\"tag\":\"", ok[] = "\"ok\":true,";
	size_t k = 1;
	if (n > sizeof(tag) && !memcmp(line, tag, sizeof(tag) - 1)) {
		k = sizeof(tag) - 1;
		while (k < n && line[k] >= '0' && line[k] <= '9')
			k++;
		if (k + 2 > n || line[k] != '"' || line[k + 1] != ',')
			return false;
		k += 2;
	} else if (n < 1 || line[0] != '{') {
		return false;
	}
	return n - k >= sizeof(ok) - 1 && !memcmp(line + k, ok, sizeof(ok) - 1);
}

static json_t *ok_answer(void)
{
	static json_t *ok;
	if (!ok)
		ok = json_pack("{s:b}", "ok", 1);
	return json_incref(ok);
}

/* Next answer line as a JSON object (caller decrefs), or NULL. @submit:
 * the answer to a submit, which needs no more than whether it succeeded
 * (then an object with just "ok"). */
static json_t *next_line(struct conn *c, bool submit)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			json_t *o = submit && plain_ok(c->buf, n) ? ok_answer() : json_loadb(c->buf, n, 0, NULL);
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return o;
		}
		if (c->len == c->cap) {
			char *p = realloc(c->buf, c->cap * 2);
			if (!p)
				return NULL;
			c->buf = p;
			c->cap *= 2;
		}
		ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return NULL;
		c->len += (size_t)k;
	}
}

static json_t *call(struct conn *c, const char *req)
{
	if (dd_net_send_all(c->fd, req, strlen(req)) < 0)
		return NULL;
	return next_line(c, false);
}

static uint64_t total_counter(json_t *stats, const char *name)
{
	return (uint64_t)json_integer_value(json_object_get(
		json_object_get(json_object_get(stats, "result"), "total"), name));
}

static uint64_t daemon_succeeded(struct conn *c)
{
	/* counters only: this is polled every 2 ms, and the histogram
	 * summaries are dear (measured: docs/BENCHMARKS.md, "Measured
	 * choices: stats without histograms") */
	json_t *r = call(c, "{\"op\":\"stats\",\"latency\":false}\n");
	uint64_t v = total_counter(r, "succeeded");
	json_decref(r);
	return v;
}

/* The daemon's counters and latencies since this connection's last
 * windowed stats. */
static json_t *window_stats(struct conn *c)
{
	return call(c, "{\"op\":\"stats\",\"window\":true}\n");
}

static void take_summary(json_t *h, struct dd_hist_summary *out)
{
	out->count = (uint64_t)json_integer_value(json_object_get(h, "count"));
	out->p50_ns = (uint64_t)json_integer_value(json_object_get(h, "p50_ns"));
	out->p90_ns = (uint64_t)json_integer_value(json_object_get(h, "p90_ns"));
	out->p99_ns = (uint64_t)json_integer_value(json_object_get(h, "p99_ns"));
	out->p999_ns = (uint64_t)json_integer_value(json_object_get(h, "p999_ns"));
	out->max_ns = (uint64_t)json_integer_value(json_object_get(h, "max_ns"));
}

/* What the window's stats say: dispatch latency, log and probe figures. */
static void take_window(json_t *stats, struct run_result *res)
{
	json_t *r = json_object_get(stats, "result"), *t = json_object_get(r, "total");
	take_summary(json_object_get(json_object_get(t, "latency"), "dispatch"), &res->lat);
	res->log_records = (uint64_t)json_integer_value(json_object_get(t, "log_records"));
	res->log_batches = (uint64_t)json_integer_value(json_object_get(t, "log_batches"));
	res->state_error = (int)json_integer_value(json_object_get(t, "state_error"));
	res->shards = (unsigned)json_array_size(json_object_get(r, "shards"));
	res->workers = (unsigned)json_integer_value(
		json_object_get(json_array_get(json_object_get(r, "shards"), 0), "workers"));
	json_t *p = json_object_get(r, "probe");
	snprintf(res->probe_status, sizeof(res->probe_status), "%s",
		 json_string_value(json_object_get(p, "status")) ?: "");
	json_t *rq = json_object_get(p, "runqueue");
	res->probe_loaded = json_is_object(rq);
	static const char *const role[DD_ROLE_COUNT] = {"other", "reactor", "worker", "io"};
	for (unsigned k = 0; res->probe_loaded && k < DD_ROLE_COUNT; k++) {
		json_t *h = json_object_get(rq, role[k]);
		take_summary(h, &res->runq[k]);
		res->preempted[k] = (uint64_t)json_integer_value(json_object_get(h, "preempted"));
	}
}

static pid_t start_daemon(const struct opts *o, const char *exe, const char *state,
			  const char *sock)
{
	char shards[16], workers[16], log[PATH_MAX + 8];
	snprintf(shards, sizeof(shards), "%u", o->shards);
	snprintf(workers, sizeof(workers), "%u", o->workers);
	snprintf(log, sizeof(log), "%s.log", state);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	const char *argv[16] = {exe, "--state-dir", state, "--socket", sock, "--durability",
				o->durability ? dd_durability_name(o->durability) : "fsync"};
	int k = 7;
	if (o->workers) { /* else the daemon's own default */
		argv[k++] = "--workers";
		argv[k++] = workers;
	}
	if (o->shards) {
		argv[k++] = "--shards";
		argv[k++] = shards;
	}
	argv[k] = NULL;
	if (!freopen(log, "w", stderr))
		_exit(127);
	execvp(exe, (char *const *)argv);
	fprintf(stderr, "cannot run %s: %s\n", exe, strerror(errno));
	_exit(127);
}

static char *batch_join(const char *job, unsigned n, size_t *tag_at);

/* One batch request, built once: {"op":"submit_batch","tag":N,"jobs":[...]} */
static char *batch_request(const struct opts *o, size_t *tag_at)
{
	unsigned n = o->batch;
	char job[1200];
	if (o->kind == KIND_EXEC) {
		json_t *argv = json_pack("[s]", o->cmd ? o->cmd : "/bin/true");
		char *a = json_dumps(argv, JSON_COMPACT);
		json_decref(argv);
		snprintf(job, sizeof(job), "{\"queue\":\"std-r.exec\",\"argv\":%s},", a ? a : "[]");
		free(a);
	} else {
		snprintf(job, sizeof(job), "{\"queue\":\"dispatchd.noop\"},");
	}
	if (o->payload) { /* the same bytes in every job: "xxx...", before the closing brace */
		size_t jl = strlen(job) - 2, pl = o->payload;
		char *bigger = malloc(jl + pl + 32);
		if (!bigger)
			return NULL;
		memcpy(bigger, job, jl);
		jl += (size_t)sprintf(bigger + jl, ",\"payload\":\"");
		memset(bigger + jl, 'x', pl);
		strcpy(bigger + jl + pl, "\"},");
		char *s = batch_join(bigger, n, tag_at);
		free(bigger);
		return s;
	}
	return batch_join(job, n, tag_at);
}

/* The request: the batch's envelope around @n copies of @job (which ends
 * in a comma). */
static char *batch_join(const char *job, unsigned n, size_t *tag_at)
{
	size_t len = 64 + n * strlen(job) + 8;
	char *s = malloc(len);
	if (!s)
		return NULL;
	/* a string tag: a number may not have leading zeros */
	int k = snprintf(s, len, "{\"op\":\"submit_batch\",\"tag\":\"");
	*tag_at = (size_t)k;
	k += snprintf(s + k, len - (size_t)k, "%010u\",\"jobs\":[", 0u);
	for (unsigned i = 0; i < n; i++)
		k += snprintf(s + k, len - (size_t)k, "%s", job);
	s[k - 1] = ']'; /* the last comma */
	snprintf(s + k, len - (size_t)k, "}\n");
	return s;
}

/* Starts the daemon on @state and connects @c and @st to it. The pid, or
 * -1 after saying why. */
static pid_t launch(const struct opts *o, const char *state, const char *sock, struct conn *c,
		    struct conn *st)
{
	char exebuf[PATH_MAX];
	const char *exe = dd_wire_dispatchd(o->dispatchd, exebuf, sizeof(exebuf));
	pid_t pid = start_daemon(o, exe, state, sock);
	if (pid < 0) {
		fprintf(stderr, "std-r: cannot fork: %s\n", strerror(errno));
		return -1;
	}
	int up = -1;
	for (int i = 0; i < 500 && up < 0; i++) {
		usleep(20000);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		up = conn_open(c, sock);
	}
	if (up < 0 || conn_open(st, sock) < 0) {
		fprintf(stderr, "std-r: dispatchd (%s) did not start; see %s.log\n", exe, state);
		if (up == 0)
			conn_close(c);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

/* --jobs-in-state: that many no-op jobs submitted and run to their end
 * before the window, so the daemon's state is not empty. 0 or -1. */
static int fill_state(const struct opts *o, struct conn *c, struct conn *st)
{
	struct opts small = *o;
	small.kind = KIND_NOOP;
	small.payload = 0;
	size_t tag_at;
	uint64_t before = daemon_succeeded(st), left = o->jobs_in_state;
	while (left) {
		small.batch = left < o->batch ? (unsigned)left : o->batch;
		char *req = batch_request(&small, &tag_at);
		json_t *a = req ? call(c, req) : NULL;
		bool ok = a && json_is_true(json_object_get(a, "ok"));
		json_decref(a);
		free(req);
		if (!ok) {
			fprintf(stderr, "std-r: dispatchd refused the jobs put in its state\n");
			return -1;
		}
		left -= small.batch;
	}
	uint64_t deadline = dd_mono_ns() + 120000000000ull;
	while (daemon_succeeded(st) - before < o->jobs_in_state) {
		if (dd_mono_ns() > deadline) {
			fprintf(stderr, "std-r: the jobs put in dispatchd's state did not all end\n");
			return -1;
		}
		usleep(2000);
	}
	return 0;
}

int via_daemon_run(const struct opts *o, double rate, const char *state_dir,
		   struct run_result *res)
{
	char sock[PATH_MAX + 8];
	struct conn c, st;
	pid_t pid = -1;
	if (o->socket) {
		if (conn_open(&c, o->socket) < 0 || conn_open(&st, o->socket) < 0) {
			fprintf(stderr, "std-r: cannot connect to dispatchd at %s: %s\n", o->socket,
				strerror(errno));
			return 1;
		}
	} else {
		snprintf(sock, sizeof(sock), "%s/sock", state_dir);
		if ((pid = launch(o, state_dir, sock, &c, &st)) < 0)
			return 1;
	}

	if (o->jobs_in_state && fill_state(o, &c, &st) < 0) {
		conn_close(&c);
		conn_close(&st);
		if (pid > 0) {
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
		}
		return 1;
	}

	size_t tag_at = 0;
	char *req = batch_request(o, &tag_at);
	size_t req_len = req ? strlen(req) : 0;
	uint64_t *sent_at = calloc(MAX_INFLIGHT, sizeof(uint64_t));
	if (!req || !sent_at) {
		fprintf(stderr, "std-r: out of memory\n");
		return 1;
	}
	uint64_t start = dd_mono_ns() + 1000000, from = start + (uint64_t)(o->warmup_s * 1e9);
	uint64_t to = from + (uint64_t)(o->duration_s * 1e9);
	double interval = rate > 0 ? 1e9 * o->batch / rate : 0;
	uint64_t batches = 0, answered = 0, failed = 0;
	uint64_t ran = 0, next_poll = 0, next_progress = start + 1000000000ull, last_ran = 0;
	bool in_window = false;
	unsigned depth = o->depth > MAX_INFLIGHT ? MAX_INFLIGHT : o->depth;
	while (dd_mono_ns() < start)
		;
	for (;;) {
		uint64_t now = dd_mono_ns();
		if (!in_window && now >= from) {
			/* the window starts now: the daemon's counters for this
			 * connection restart from zero */
			json_decref(window_stats(&st));
			in_window = true;
		}
		if (now >= to)
			break;
		if (!o->quiet && now >= next_progress) {
			json_t *s = call(&st, "{\"op\":\"stats\"}\n");
			uint64_t n = total_counter(s, "succeeded");
			uint64_t p99 = (uint64_t)json_integer_value(json_object_get(
				json_object_get(json_object_get(json_object_get(json_object_get(
							s, "result"), "total"), "latency"), "dispatch"),
				"p99_ns"));
			json_decref(s);
			fprintf(stderr, "std-r: %5.1fs  rate %8.0f/s  p99 %8.2f µs so far (daemon's)%s\n",
				(double)(now - start) / 1e9, (double)(n - last_ran), p99 / 1e3,
				now < from ? "  (warm-up)" : "");
			last_ran = n;
			next_progress += 1000000000ull;
		}
		/* closed loop: a bounded number of batches unanswered, and of jobs
		 * not yet run (the daemon's counter, looked at every 2 ms), or the
		 * backlog — and every latency — would grow for the whole run */
		if (rate == 0 && now >= next_poll) {
			ran = daemon_succeeded(&st);
			next_poll = now + 2000000;
		}
		bool may_send = rate > 0 ? now >= start + (uint64_t)((double)batches * interval)
					 : batches - answered < depth &&
						   (batches - failed) * o->batch - ran <
							   (uint64_t)depth * o->batch;
		if (may_send && batches - answered < MAX_INFLIGHT) {
			char tag[16];
			snprintf(tag, sizeof(tag), "%010u", (unsigned)(batches % 1000000000u));
			memcpy(req + tag_at, tag, 10);
			sent_at[batches % MAX_INFLIGHT] =
				rate > 0 ? start + (uint64_t)((double)batches * interval) : now;
			if (dd_net_send_all(c.fd, req, req_len) < 0)
				break;
			batches++;
			continue;
		}
		if (batches == answered) {
			usleep(50);
			continue;
		}
		/* an answer: in order, since the daemon answers durable batches
		 * of one connection in submission order */
		json_t *a = next_line(&c, true);
		if (!a)
			break;
		uint64_t t = dd_mono_ns(), s = sent_at[answered % MAX_INFLIGHT];
		if (!json_is_true(json_object_get(a, "ok")) && failed++ == 0) {
			json_t *e = json_object_get(a, "error");
			fprintf(stderr, "std-r: dispatchd refused a batch: %s: %s\n",
				json_string_value(json_object_get(e, "code")),
				json_string_value(json_object_get(e, "message")));
		}
		if (s >= from && s < to)
			dd_tel_hist_record(res->ack_hist, t - s);
		answered++;
		json_decref(a);
	}
	json_t *w = window_stats(&st); /* counters and latencies since the window began */
	uint64_t ran_in_window = total_counter(w, "succeeded");
	take_window(w, res);
	json_decref(w);
	while (answered < batches) { /* the rest of the answers */
		json_t *a = next_line(&c, true);
		if (!a)
			break;
		answered++;
		json_decref(a);
	}
	int status = 0;
	if (pid > 0) {
		json_decref(call(&st, "{\"op\":\"drain\"}\n"));
		waitpid(pid, &status, 0);
		if (WIFEXITED(status))
			snprintf(res->daemon_exit, sizeof(res->daemon_exit), "exit %d",
				 WEXITSTATUS(status));
		else
			snprintf(res->daemon_exit, sizeof(res->daemon_exit), "signal %d",
				 WTERMSIG(status));
	}
	conn_close(&c);
	conn_close(&st);

	res->mode = "via-daemon";
	res->kind = kind_name(o->kind);
	res->durability = o->durability;
	res->offered = rate;
	res->duration_s = o->duration_s;
	res->warmup_s = o->warmup_s;
	res->jobs_in_state = o->jobs_in_state;
	res->dispatches_per_sec = (double)ran_in_window / o->duration_s;
	res->failed = failed * o->batch;
	res->ack_batch = o->batch;
	result_summarise(res->ack_hist, &res->ack);
	res->state_tx_per_sec = (double)res->log_records / o->duration_s;
	free(req);
	free(sent_at);
	if (pid > 0 && state_dir) {
		char log[PATH_MAX + 8];
		snprintf(log, sizeof(log), "%s.log", state_dir);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fprintf(stderr, "std-r: dispatchd's log: %s\n", log);
		else
			unlink(log);
	}
	return failed || (pid > 0 && (!WIFEXITED(status) || WEXITSTATUS(status))) ? 1 : 0;
}
