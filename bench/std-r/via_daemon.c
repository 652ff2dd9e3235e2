/* std-r --via-daemon. Starts a dispatchd on a temporary state directory,
 * sends it batches of jobs of its built-in synthetic task
 * ("dispatchd.noop": runs in-process, does nothing), and measures:
 *   - dispatches/s: jobs the daemon ran, from its own counters ("stats");
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

#include "clock.h"
#include "dispatchd.h"
#include "floor.h"
#include "telemetry.h"
#include "via_daemon.h"
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

/* Next answer line as a JSON object (caller decrefs), or NULL. */
static json_t *next_line(struct conn *c)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			json_t *o = json_loadb(c->buf, n, 0, NULL);
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
	if (dd_wire_send(c->fd, req, strlen(req)) < 0)
		return NULL;
	return next_line(c);
}

static uint64_t daemon_succeeded(struct conn *c)
{
	json_t *r = call(c, "{\"op\":\"stats\"}\n");
	uint64_t v = (uint64_t)json_integer_value(
		json_object_get(json_object_get(json_object_get(r, "result"), "total"), "succeeded"));
	json_decref(r);
	return v;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static pid_t start_daemon(const struct via_opts *o, const char *exe, const char *state,
			  const char *sock)
{
	static const char *const lv[] = {"fsync", "none", "buffered", "fsync"};
	char shards[16], workers[16], log[PATH_MAX + 8];
	snprintf(shards, sizeof(shards), "%u", o->shards);
	snprintf(workers, sizeof(workers), "%u", o->workers);
	snprintf(log, sizeof(log), "%s.log", state);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	const char *argv[16] = {exe, "--state-dir", state, "--socket", sock, "--durability",
				lv[o->durability]};
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

/* One batch request, built once: {"op":"submit_batch","tag":N,"jobs":[...]} */
static char *batch_request(unsigned n, size_t *tag_at)
{
	const char *job = "{\"queue\":\"dispatchd.noop\"},";
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

int via_daemon_run(const struct via_opts *o)
{
	char exebuf[PATH_MAX], state[PATH_MAX], sock[PATH_MAX + 8];
	const char *exe = dd_wire_dispatchd(o->dispatchd, exebuf, sizeof(exebuf));
	char *tmp = NULL;
	if (o->state_dir) {
		snprintf(state, sizeof(state), "%s", o->state_dir);
	} else {
		const char *base = getenv("TMPDIR");
		/* mkdtemp() fills in the six X's */
		snprintf(state, sizeof(state), "%s/std-r-daemon-XXXXXX", base && *base ? base : "/var/tmp");
		if (!mkdtemp(state)) {
			fprintf(stderr, "std-r: cannot make a state directory: %s\n", strerror(errno));
			return 1;
		}
		tmp = state;
	}
	snprintf(sock, sizeof(sock), "%s/sock", state);
	struct fsync_floor ff = {0};
	if (o->floor_s > 0)
		fsync_floor_measure(state, o->floor_s, &ff);
	pid_t pid = start_daemon(o, exe, state, sock);
	struct conn c, st;
	int up = -1;
	for (int i = 0; i < 500 && up < 0; i++) {
		usleep(20000);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		up = conn_open(&c, sock);
	}
	if (up < 0 || conn_open(&st, sock) < 0) {
		fprintf(stderr, "std-r: dispatchd (%s) did not start; see %s.log\n", exe, state);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}

	size_t tag_at = 0;
	char *req = batch_request(o->batch, &tag_at);
	size_t req_len = strlen(req);
	uint64_t *sent_at = calloc(MAX_INFLIGHT, sizeof(uint64_t));
	struct dd_tel_hist *acks = calloc(1, sizeof(*acks));
	if (!req || !sent_at || !acks)
		return 1;
	uint64_t start = now_ns() + 1000000, from = start + (uint64_t)(o->warmup_s * 1e9);
	uint64_t to = from + (uint64_t)(o->duration_s * 1e9);
	double interval = o->rate > 0 ? 1e9 * o->batch / o->rate : 0;
	uint64_t batches = 0, answered = 0, failed = 0, done_from = 0, done_to = 0;
	uint64_t ran = 0, next_poll = 0;
	bool in_window = false;
	unsigned depth = o->depth > MAX_INFLIGHT ? MAX_INFLIGHT : o->depth;
	while (now_ns() < start)
		;
	for (;;) {
		uint64_t now = now_ns();
		if (!in_window && now >= from) {
			done_from = daemon_succeeded(&st);
			in_window = true;
		}
		if (now >= to)
			break;
		/* closed loop: a bounded number of batches unanswered, and of jobs
		 * not yet run (the daemon's counter, looked at every 2 ms), or the
		 * backlog — and every latency — would grow for the whole run */
		if (o->rate == 0 && now >= next_poll) {
			ran = daemon_succeeded(&st);
			next_poll = now + 2000000;
		}
		bool may_send = o->rate > 0 ? now >= start + (uint64_t)((double)batches * interval)
					    : batches - answered < depth &&
						      (batches - failed) * o->batch - ran <
							      (uint64_t)depth * o->batch;
		if (may_send && batches - answered < MAX_INFLIGHT) {
			char tag[16];
			snprintf(tag, sizeof(tag), "%010u", (unsigned)(batches % 1000000000u));
			memcpy(req + tag_at, tag, 10);
			sent_at[batches % MAX_INFLIGHT] =
				o->rate > 0 ? start + (uint64_t)((double)batches * interval) : now;
			if (dd_wire_send(c.fd, req, req_len) < 0)
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
		json_t *a = next_line(&c);
		if (!a)
			break;
		uint64_t t = now_ns(), s = sent_at[answered % MAX_INFLIGHT];
		if (!json_is_true(json_object_get(a, "ok")) && failed++ == 0) {
			json_t *e = json_object_get(a, "error");
			fprintf(stderr, "std-r: dispatchd refused a batch: %s: %s\n",
				json_string_value(json_object_get(e, "code")),
				json_string_value(json_object_get(e, "message")));
		}
		if (s >= from && s < to)
			dd_tel_hist_record(acks, t - s);
		answered++;
		json_decref(a);
	}
	done_to = daemon_succeeded(&st);
	while (answered < batches) { /* the rest of the answers */
		json_t *a = next_line(&c);
		if (!a)
			break;
		answered++;
		json_decref(a);
	}
	json_decref(call(&st, "{\"op\":\"drain\"}\n"));
	int status = 0;
	waitpid(pid, &status, 0);
	conn_close(&c);
	conn_close(&st);

	double rate = (double)(done_to - done_from) / o->duration_s;
	static const char *const lv[] = {"fsync", "none", "buffered", "fsync"};
	printf("std-r  via-daemon  dispatchd.noop  durability=%s  batch=%u %s\n",
	       lv[o->durability], o->batch, o->rate > 0 ? "(open loop)" : "(closed loop)");
	if (o->rate > 0)
		printf("  offered rate        %12.0f jobs/s in batches\n", o->rate);
	else
		printf("  offered rate        %12s (%u batches in flight)\n", "max", depth);
	printf("  measured            %12.1f s after %.1f s warm-up\n", o->duration_s, o->warmup_s);
	printf("  dispatches/s        %12.0f   (jobs the daemon ran, its own counters)\n", rate);
	printf("  durable ack         p50 %8.2f µs  p99 %8.2f µs  max %9.2f µs  (%" PRIu64
	       " batches of %u; %" PRIu64 " refused)\n",
	       dd_tel_hist_quantile(acks, 0.5) / 1e3, dd_tel_hist_quantile(acks, 0.99) / 1e3,
	       acks->max / 1e3, acks->count, o->batch, failed);
	if (ff.count)
		printf("  fsync floor         p50 %8.2f µs  p99 %8.2f µs  (4 KiB write + fdatasync)\n",
		       ff.p50_ns / 1e3, ff.p99_ns / 1e3);
	printf("  daemon exit         %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	if (o->json) {
		FILE *f = fopen(o->json, "w");
		if (f) {
			fprintf(f,
				"{\n  \"mode\": \"via-daemon\",\n  \"kind\": \"dispatchd.noop\",\n"
				"  \"durability\": \"%s\",\n  \"batch\": %u,\n  \"offered_rate\": %.0f,\n"
				"  \"duration_s\": %.3f,\n  \"dispatches_per_sec\": %.1f,\n"
				"  \"durable_ack_ns\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64
				", \"max\": %" PRIu64 ", \"count\": %" PRIu64 "},\n"
				"  \"fsync_floor_ns\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64 "}\n}\n",
				lv[o->durability], o->batch, o->rate, o->duration_s, rate,
				dd_tel_hist_quantile(acks, 0.5), dd_tel_hist_quantile(acks, 0.99),
				acks->max, acks->count, ff.p50_ns, ff.p99_ns);
			fclose(f);
		}
	}
	free(req);
	free(sent_at);
	free(acks);
	if (tmp) {
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		char log[PATH_MAX + 8];
		snprintf(log, sizeof(log), "%s.log", tmp);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fprintf(stderr, "std-r: dispatchd's log: %s\n", log);
		else
			unlink(log);
	}
	return failed || !WIFEXITED(status) || WEXITSTATUS(status) ? 1 : 0;
}
