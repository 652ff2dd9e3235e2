/* The wake-up floor, measured by rt-tests' cyclictest rather than by code
 * of our own: the figure people already know how to read. It runs one
 * thread per CPU of our affinity set, pinned, SCHED_OTHER like the engine's
 * threads (an RT policy would measure a machine we do not run on), each
 * sleeping 200 µs intervals and recording how late it woke. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "floor.h"

#define HIST_US 10000 /* cyclictest's histogram range; beyond it, overflow */

int cyclictest_parse(const char *text, size_t len, struct cyclictest_floor *out)
{
	json_error_t err;
	json_t *j = json_loadb(text, len, 0, &err);
	json_t *threads = json_object_get(j, "thread");
	if (!json_is_object(threads) || !json_object_size(threads)) {
		snprintf(out->status, sizeof(out->status), "cyclictest's JSON has no threads%s%.80s",
			 j ? "" : ": ", j ? "" : err.text);
		json_decref(j);
		return -EINVAL;
	}
	/* merge the per-thread histograms: µs -> count */
	static uint64_t counts[HIST_US + 1];
	memset(counts, 0, sizeof(counts));
	uint64_t total = 0, max_us = 0;
	const char *key;
	json_t *t;
	json_object_foreach(threads, key, t) {
		json_t *h = json_object_get(t, "histogram");
		json_int_t cycles = json_integer_value(json_object_get(t, "cycles"));
		json_int_t mx = json_integer_value(json_object_get(t, "max"));
		if (!json_is_object(h) || cycles < 0 || mx < 0) {
			snprintf(out->status, sizeof(out->status), "cyclictest thread %.16s: no histogram",
				 key);
			json_decref(j);
			return -EINVAL;
		}
		uint64_t in_hist = 0;
		const char *us;
		json_t *c;
		json_object_foreach(h, us, c) {
			char *end;
			long v = strtol(us, &end, 10);
			json_int_t n = json_integer_value(c);
			if (*end || v < 0 || v > HIST_US || n < 0)
				continue;
			counts[v] += (uint64_t)n;
			in_hist += (uint64_t)n;
		}
		/* cycles past the histogram's range are in no bucket: they
		 * count, above every bucket */
		total += (uint64_t)cycles > in_hist ? (uint64_t)cycles : in_hist;
		if ((uint64_t)mx > max_us)
			max_us = (uint64_t)mx;
		out->threads++;
	}
	json_decref(j);
	if (!total) {
		snprintf(out->status, sizeof(out->status), "cyclictest recorded no cycles");
		return -EINVAL;
	}
	out->cycles = total;
	out->max_ns = max_us * 1000;
	uint64_t *q[] = {&out->p50_ns, &out->p99_ns, &out->p999_ns};
	const double qs[] = {0.50, 0.99, 0.999};
	for (int k = 0; k < 3; k++) {
		uint64_t want = (uint64_t)(qs[k] * (double)total), seen = 0;
		/* in the overflow unless found below: past the range, at least */
		uint64_t v = max_us > HIST_US ? max_us : HIST_US + 1;
		for (unsigned us = 0; us <= HIST_US; us++) {
			seen += counts[us];
			if (seen > want) {
				v = us;
				break;
			}
		}
		*q[k] = v * 1000;
	}
	out->ran = true;
	return 0;
}

int cyclictest_floor_measure(double seconds, struct cyclictest_floor *out)
{
	memset(out, 0, sizeof(*out));
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	char cpus[512] = "", *p = cpus;
	unsigned n = 0;
	for (int c = 0; c < CPU_SETSIZE && p < cpus + sizeof(cpus) - 8; c++)
		if (CPU_ISSET(c, &set)) {
			p += snprintf(p, (size_t)(cpus + sizeof(cpus) - p), "%s%d", n ? "," : "", c);
			n++;
		}
	char json[] = "/tmp/std-r-cyclictest-XXXXXX"; /* a template: mkstemp fills the X's */
	int fd = mkstemp(json); /* mkstemp fills in the six X's */
	if (fd < 0)
		return -errno;
	close(fd);
	char threads[16], dur[32], jsonarg[64], hist[16];
	snprintf(threads, sizeof(threads), "-t%u", n);
	/* cyclictest takes whole seconds; at least one */
	snprintf(dur, sizeof(dur), "-D%.0f", seconds < 1 ? 1 : seconds);
	snprintf(jsonarg, sizeof(jsonarg), "--json=%s", json);
	snprintf(hist, sizeof(hist), "-h%d", HIST_US);
	const char *argv[] = {"cyclictest", "-q", "-m", threads, "-a", cpus, "-i200", dur, hist,
			      "--policy=other", jsonarg, NULL};
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execvp("cyclictest", (char *const *)argv);
		_exit(127);
	}
	int status = 0, r = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		r = -errno;
		snprintf(out->status, sizeof(out->status), "cannot run cyclictest: %s", strerror(errno));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		r = -ENOENT;
		snprintf(out->status, sizeof(out->status),
			 "cyclictest not found (Debian package rt-tests; scripts/setup installs it)");
	} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		r = -EIO;
		snprintf(out->status, sizeof(out->status), "cyclictest failed (status %d)", status);
	} else {
		FILE *f = fopen(json, "r");
		char *text = NULL;
		size_t len = 0;
		if (f) {
			text = malloc(1 << 22);
			len = text ? fread(text, 1, 1 << 22, f) : 0;
			fclose(f);
		}
		r = text ? cyclictest_parse(text, len, out) : -ENOMEM;
		free(text);
	}
	unlink(json);
	return r;
}
