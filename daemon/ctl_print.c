/* dispatchctl's human-readable tables. */
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "ctl.h"

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static void fmt_time(json_t *v, char *buf, size_t n)
{
	if (!json_is_number(v)) {
		snprintf(buf, n, "-");
		return;
	}
	double t = json_number_value(v);
	time_t s = (time_t)t;
	struct tm tm;
	size_t k = strftime(buf, n, "%H:%M:%S", localtime_r(&s, &tm));
	snprintf(buf + k, n - k, ".%03d", (int)((t - (double)s) * 1000));
}

/* A job's owner as people know it: the user name, or the uid when the
 * name cannot be found. The last few are remembered: a table repeats them. */
static const char *user_text(json_t *j)
{
	static struct {
		long long uid;
		char name[33];
	} seen[8];
	static unsigned next;
	long long uid = json_integer_value(json_object_get(j, "uid"));
	for (unsigned i = 0; i < 8; i++)
		if (seen[i].name[0] && seen[i].uid == uid)
			return seen[i].name;
	unsigned k = next++ % 8;
	struct passwd pw, *got = NULL;
	char buf[1024];
	seen[k].uid = uid;
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &got) == 0 && got)
		snprintf(seen[k].name, sizeof(seen[k].name), "%s", got->pw_name);
	else
		snprintf(seen[k].name, sizeof(seen[k].name), "%lld", uid);
	return seen[k].name;
}

/* Its name, and an array element's index: "name[3]", "-[3]", "-". */
static void name_text(json_t *j, char *buf, size_t n)
{
	const char *nm = str(j, "name");
	if (json_object_get(j, "array_index"))
		snprintf(buf, n, "%s[%lld]", nm[0] ? nm : "-",
			 (long long)json_integer_value(json_object_get(j, "array_index")));
	else
		snprintf(buf, n, "%s", nm[0] ? nm : "-");
}

static void exit_text(json_t *j, char *buf, size_t n)
{
	json_t *ec = json_object_get(j, "exit_code"), *sig = json_object_get(j, "signal");
	if (json_is_integer(ec))
		snprintf(buf, n, "%lld", (long long)json_integer_value(ec));
	else if (json_is_integer(sig))
		snprintf(buf, n, "sig %lld", (long long)json_integer_value(sig));
	else
		snprintf(buf, n, "-");
}

void dd_ctl_print_jobs(json_t *jobs, bool header)
{
	if (header)
		printf("%-10s %-10s %-16s %-10s %-12s %-7s %-6s %-32s %s\n", "ID", "STATE", "NAME", "USER",
		       "QUEUE", "ATTEMPT", "EXIT", "COMMAND", "REASON");
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j)
	{
		char ex[32], att[24], nm[160], cmd[33];
		exit_text(j, ex, sizeof(ex));
		name_text(j, nm, sizeof(nm));
		snprintf(att, sizeof(att), "%lld/%lld",
			 (long long)json_integer_value(json_object_get(j, "attempt")),
			 (long long)json_integer_value(json_object_get(j, "max_attempts")));
		/* the command cut to its column, saying so */
		const char *c = json_object_get(j, "command") ? str(j, "command") : "-";
		snprintf(cmd, sizeof(cmd), "%s", c);
		if (strlen(c) > 32)
			memcpy(cmd + 29, "...", 4);
		printf("%-10lld %-10s %-16s %-10s %-12s %-7s %-6s %-32s %s\n",
		       (long long)json_integer_value(json_object_get(j, "id")), str(j, "state"), nm,
		       user_text(j), str(j, "queue"), att, ex, cmd, str(j, "reason"));
	}
}

void dd_ctl_print_job(json_t *j)
{
	char ex[32], t1[32], t2[32], t3[32];
	exit_text(j, ex, sizeof(ex));
	fmt_time(json_object_get(j, "submitted_at"), t1, sizeof(t1));
	fmt_time(json_object_get(j, "started_at"), t2, sizeof(t2));
	fmt_time(json_object_get(j, "ended_at"), t3, sizeof(t3));
	printf("id:        %lld\nstate:     %s\n", (long long)json_integer_value(json_object_get(j, "id")),
	       str(j, "state"));
	if (str(j, "name")[0])
		printf("name:      %s\n", str(j, "name"));
	if (json_object_get(j, "command"))
		printf("command:   %s\n", str(j, "command"));
	if (str(j, "cwd")[0])
		printf("cwd:       %s\n", str(j, "cwd"));
	printf("queue:     %s\npriority:  %s\nattempt:   %lld of %lld\nowner:     %s (uid %lld gid %lld)\n",
	       str(j, "queue"), str(j, "priority"),
	       (long long)json_integer_value(json_object_get(j, "attempt")),
	       (long long)json_integer_value(json_object_get(j, "max_attempts")), user_text(j),
	       (long long)json_integer_value(json_object_get(j, "uid")),
	       (long long)json_integer_value(json_object_get(j, "gid")));
	json_t *arr = json_object_get(j, "array");
	if (arr) {
		printf("array:     %lld elements:", (long long)json_integer_value(json_object_get(arr, "count")));
		const char *key;
		json_t *n;
		bool first = true;
		json_object_foreach(json_object_get(arr, "states"), key, n) {
			printf("%s %lld %s", first ? "" : ",", (long long)json_integer_value(n), key);
			first = false;
		}
		printf("\n");
	} else if (json_object_get(j, "array_id")) {
		printf("array:     element %lld of array %lld\n",
		       (long long)json_integer_value(json_object_get(j, "array_index")),
		       (long long)json_integer_value(json_object_get(j, "array_id")));
	}
	/* an array's elements ran, not it: it has no process nor result */
	if (!arr && json_is_true(json_object_get(j, "exec")))
		printf("process:   exit %s%s%lld\n", ex, json_object_get(j, "pid") ? ", pid " : "",
		       (long long)json_integer_value(json_object_get(j, "pid")));
	else if (!arr)
		printf("result:    %lld\n", (long long)json_integer_value(json_object_get(j, "result")));
	if (str(j, "reason")[0])
		printf("reason:    %s\n", str(j, "reason"));
	json_t *cpu = json_object_get(j, "cpu_time"), *mem = json_object_get(j, "mem_peak");
	if (cpu || mem) {
		printf("usage:    ");
		if (cpu)
			printf(" cpu %.3f s", json_number_value(cpu));
		if (mem)
			printf("%s memory peak %.1f MiB", cpu ? "," : "",
			       (double)json_integer_value(mem) / (1024.0 * 1024.0));
		printf("\n");
	}
	json_t *cut = json_object_get(j, "output_cut");
	if (cut)
		printf("output:    cut: %lld bytes of stdout, %lld of stderr not kept\n",
		       (long long)json_integer_value(json_object_get(cut, "stdout")),
		       (long long)json_integer_value(json_object_get(cut, "stderr")));
	printf("submitted: %s\nstarted:   %s\nended:     %s\n", t1, t2, t3);
}

void dd_ctl_print_stats(json_t *st)
{
	static const char *const keys[] = {"submitted", "dispatched", "succeeded", "failed",
					   "cancelled", "timed_out", "retried", "waiting",
					   "delayed", "queued", "running", "store_jobs"};
	json_t *t = json_object_get(st, "total"), *d = json_object_get(st, "daemon");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf("%-12s %lld\n", keys[i], (long long)json_integer_value(json_object_get(t, keys[i])));
	printf("%-12s %zu\n", "shards", json_array_size(json_object_get(st, "shards")));
	printf("%-12s %lld\n%-12s %lld\n", "connections",
	       (long long)json_integer_value(json_object_get(d, "connections")), "requests",
	       (long long)json_integer_value(json_object_get(d, "requests")));
	if (json_is_true(json_object_get(d, "draining")))
		printf("draining\n");
	json_t *lat = json_object_get(t, "latency");
	if (lat) {
		printf("\n%-12s %10s %10s %10s %10s %10s %10s\n", "LATENCY", "COUNT", "P50", "P90", "P99",
		       "P99.9", "MAX");
		const char *k;
		json_t *h;
		json_object_foreach(lat, k, h)
		{
			printf("%-12s %10lld", k, (long long)json_integer_value(json_object_get(h, "count")));
			static const char *const q[] = {"p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"};
			for (int i = 0; i < 5; i++) {
				double ns = (double)json_integer_value(json_object_get(h, q[i]));
				if (ns >= 1e6)
					printf(" %8.2fms", ns / 1e6);
				else
					printf(" %8.1fus", ns / 1e3);
			}
			printf("\n");
		}
	}
}
