/* dispatchctl top: a live view of a dispatchd, one frame a second — job
 * rates and latency percentiles of the last second (the daemon's stats
 * window), queue depths, the jitter probe. The first frame has no second
 * before it: it shows the counts and latencies since the daemon started,
 * and says so. In a
 * terminal it redraws in place and ends on q or Ctrl-C; otherwise (a
 * pipe) it prints --count frames one after the other; with --json each
 * frame is the stats object, one a line. */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

static long long num(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void fmt_ns(char *buf, size_t n, long long ns)
{
	if (ns >= 1000000)
		snprintf(buf, n, "%.2fms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.1fus", (double)ns / 1e3);
}

/* The running jobs (the first @running of them): who, what and where. */
static void running_jobs(json_t *jobs, long long running)
{
	if (!json_array_size(jobs))
		return;
	printf("%-10s %-16s %-10s %-34s %s\n", "running", "name", "user", "command", "cwd");
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j)
	{
		const char *nm = json_string_value(json_object_get(j, "name"));
		const char *cmd = json_string_value(json_object_get(j, "command"));
		const char *cwd = json_string_value(json_object_get(j, "cwd"));
		char user[24];
		snprintf(user, sizeof(user), "%lld", (long long)json_integer_value(json_object_get(j, "uid")));
		struct passwd *pw = getpwuid((uid_t)json_integer_value(json_object_get(j, "uid")));
		printf("%-10lld %-16.16s %-10.10s %-34.34s %s\n",
		       (long long)json_integer_value(json_object_get(j, "id")), nm ? nm : "-",
		       pw ? pw->pw_name : user, cmd ? cmd : "-", cwd ? cwd : "-");
	}
	if ((long long)json_array_size(jobs) < running)
		printf("(and %lld more)\n", running - (long long)json_array_size(jobs));
	printf("\n");
}

static void frame(json_t *st, json_t *jobs, bool tty, bool first)
{
	static const char *const rates[] = {"submitted", "dispatched", "succeeded", "failed",
					    "retried"};
	json_t *t = json_object_get(st, "total");
	double dt = json_number_value(json_object_get(st, "window_s"));
	json_t *d = json_object_get(st, "daemon");
	if (tty)
		printf("\033[H\033[2J"); /* home, clear */
	time_t wall = time(NULL);
	char when[32];
	strftime(when, sizeof(when), "%H:%M:%S", localtime(&wall));
	printf("dispatchd  %s  shards %zu  connections %lld  requests %lld%s\n\n", when,
	       json_array_size(json_object_get(st, "shards")), num(d, "connections"),
	       num(d, "requests"), json_is_true(json_object_get(d, "draining")) ? "  DRAINING" : "");
	/* the first window has no frame before it: its counts are the
	 * totals since the daemon started, and no rate */
	const char *span = first ? "since start" : "last second";
	printf("%-12s", first ? "jobs so far" : "per second");
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		printf(" %12s", rates[i]);
	printf("\n%-12s", first ? "since start" : "");
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		if (first)
			printf(" %12lld", num(t, rates[i]));
		else
			printf(" %12.0f", dt > 0 ? (double)num(t, rates[i]) / dt : 0);
	}
	printf("\n\n%-12s %12s %12s %12s %12s %12s\n", "jobs now", "waiting", "delayed", "queued",
	       "running", "in store");
	printf("%-12s %12lld %12lld %12lld %12lld %12lld\n\n", "", num(t, "waiting"),
	       num(t, "delayed"), num(t, "queued"), num(t, "running"), num(t, "store_jobs"));
	running_jobs(jobs, num(t, "running"));
	printf("%-12s %10s %10s %10s %10s %10s %10s\n", span, "count", "p50", "p90", "p99", "p99.9",
	       "max");
	const char *k;
	json_t *h;
	json_object_foreach(json_object_get(t, "latency"), k, h)
	{
		static const char *const q[] = {"p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"};
		printf("%-12s %10lld", k, num(h, "count"));
		for (int i = 0; i < 5; i++) {
			char b[32];
			fmt_ns(b, sizeof(b), num(h, q[i]));
			printf(" %10s", b);
		}
		printf("\n");
	}
	json_t *probe = json_object_get(st, "probe"), *rq = json_object_get(probe, "runqueue");
	if (rq) {
		printf("\n%-12s %10s %10s %10s %10s %10s %10s\n", "run queue", "waits", "p50", "p90",
		       "p99", "max", "preempted");
		json_object_foreach(rq, k, h)
		{
			char a[32], b[32], c2[32], m[32];
			fmt_ns(a, sizeof(a), num(h, "p50_ns"));
			fmt_ns(b, sizeof(b), num(h, "p90_ns"));
			fmt_ns(c2, sizeof(c2), num(h, "p99_ns"));
			fmt_ns(m, sizeof(m), num(h, "max_ns"));
			printf("%-12s %10lld %10s %10s %10s %10s %10lld\n", k, num(h, "count"), a, b, c2, m,
			       num(h, "preempted"));
		}
	} else if (probe) {
		printf("\njitter probe: %s\n", json_string_value(json_object_get(probe, "status")));
	}
	if (num(t, "state_error"))
		printf("\nstate error %lld: submissions are refused\n", num(t, "state_error"));
	if (tty)
		printf("\n(q to quit)\n");
	fflush(stdout);
}

int dd_ctl_top(struct ctl *c, int frames, bool json)
{
	bool tty = !json && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	struct termios saved, raw;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO); /* keys one at a time */
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else {
		tty = false;
	}
	signal(SIGINT, on_sigint);
	int rc = 0;
	for (int n = 0; !stop && (frames <= 0 || n < frames); n++) {
		/* a window: rates and latencies of the last second, not since start */
		json_t *resp = dd_ctl_call(c, json_pack("{s:s, s:b}", "op", "stats", "window", 1));
		json_t *r = dd_ctl_result(resp);
		if (!r) {
			json_decref(resp);
			rc = 1;
			break;
		}
		if (json) {
			char *line = json_dumps(r, JSON_COMPACT);
			if (line)
				puts(line);
			free(line);
			fflush(stdout);
		} else {
			json_t *lr = dd_ctl_call(c, json_pack("{s:s, s:s, s:i}", "op", "list", "state",
							      "running", "limit", 10));
			json_t *l = dd_ctl_result(lr);
			frame(r, l ? json_object_get(l, "jobs") : NULL, tty, n == 0);
			json_decref(lr);
		}
		json_decref(resp);
		if (frames > 0 && n + 1 >= frames)
			break;
		/* a second, or a key */
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int k = poll(&p, tty ? 1 : 0, 1000);
		if (k > 0) {
			char ch;
			if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
				break;
		}
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	return rc;
}
