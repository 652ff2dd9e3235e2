/* bench-apply: what the store's applier costs per job, alone on a CPU.
 * Writes a log of synthetic jobs to DIR in the engine's record format, in
 * the order a loaded engine logs them (each job's later records come
 * --lag jobs after its SUBMIT, as with that many jobs in flight), then
 * reads it back into a fresh LMDB store the way the applier does:
 * batches of 131,072 records, each one transaction, each commit synced.
 * Prints jobs/s and the applying thread's CPU time per job, the median of
 * -r runs; then the CPU time per job of retention removing them all again
 * (the engine's 8,192 per transaction). It measures the code that the engine's dd-apply thread runs,
 * without the reactor, the daemon and the machine's other load around it,
 * whose noise hides differences of 10 % in std-r's figures.
 *
 * Two shapes of log: --records 3 (SUBMIT, START, END: a job that was still
 * running when its START went to the log) and --records 2 (SUBMIT, FINISH:
 * one that ended first; engine/durable/durable.c).
 *
 * usage: bench-apply [-d DIR] [-n JOBS] [-l LAG] [-p PAYLOAD] [-k RECORDS] [-r RUNS] */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "state.h"

#define APPLY_MAX 131072 /* engine/durable/applier.c's */

static double clock_s(clockid_t c)
{
	return (double)dd_clock_ns(c) / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

struct opts {
	const char *dir;
	unsigned long jobs, lag;
	unsigned payload, records, runs;
};

/* Appends one record to @f with the next LSN. */
static int put(FILE *f, struct dd_logrec *r, uint64_t *lsn, unsigned char *buf)
{
	r->lsn = (*lsn)++;
	size_t n = dd_logrec_encode(r, buf);
	return fwrite(buf, 1, n, f) == n ? 0 : -EIO;
}

/* The log: job i's SUBMIT, and the later records of job i - lag. */
static int write_log(const char *wal, const struct opts *o)
{
	char name[32], path[4400];
	dd_state_wal_name(name, sizeof(name), 1);
	snprintf(path, sizeof(path), "%s/%s", wal, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	static unsigned char buf[1 << 17];
	char *payload = calloc(1, o->payload + 1);
	memset(payload, 'p', o->payload);
	uint64_t lsn = 1, t = 1700000000000000000ull;
	int rc = 0;
	for (unsigned long i = 0; i < o->jobs + o->lag && !rc; i++) {
		if (i < o->jobs) {
			struct dd_logrec s = {.type = DD_LOGREC_SUBMIT, .id = i + 1, .at_rt = t + i,
					   .max_attempts = 1, .priority = 2, .kind = "dispatchd.noop",
					   .kind_len = 14, .payload = payload,
					   .payload_len = o->payload};
			rc = put(f, &s, &lsn, buf);
		}
		if (i >= o->lag && !rc) {
			uint64_t id = i - o->lag + 1;
			if (o->records == 3) {
				struct dd_logrec st = {.type = DD_LOGREC_START, .id = id, .at_rt = t + i,
						    .attempt = 1, .worker = (int32_t)(id % 2)};
				rc = put(f, &st, &lsn, buf);
			}
			struct dd_logrec e = {.type = o->records == 3 ? DD_LOGREC_END : DD_LOGREC_FINISH,
					   .id = id, .at_rt = t + i + 1, .attempt = 1,
					   .worker = (int32_t)(id % 2), .started_rt = t + i,
					   .state = 5};
			if (!rc)
				rc = put(f, &e, &lsn, buf);
		}
	}
	free(payload);
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	return rc;
}

/* Reads the log into a fresh store as the applier does; CPU and wall
 * seconds of this thread; then the CPU seconds of trimming every job. */
static int apply(const char *dir, const char *wal, double *cpu, double *wall, double *trim)
{
	char store[4300];
	snprintf(store, sizeof(store), "%s/store", dir);
	nftw(store, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	struct dd_state_store_opts so = {.map_initial = 1ull << 30, .map_max = 1ull << 36};
	struct dd_state_store *st;
	int rc = dd_state_store_open(store, &so, &st);
	if (rc < 0)
		return rc;
	int dfd = open(wal, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dd_state_reader rd = {.fd = -1};
	struct dd_state_batch b = {0};
	double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
	if ((rc = dd_state_reader_open(&rd, dfd, 1, 0)) == 0) {
		struct dd_logrec rec;
		while ((rc = dd_state_reader_next(&rd, &rec, false)) == DD_LOGREC_OK) {
			if ((rc = dd_state_batch_add(&b, &rd, &rec)) < 0 ||
			    (b.n == APPLY_MAX && (rc = dd_state_batch_apply(&b, st)) < 0))
				break;
		}
		if (rc == DD_LOGREC_EOF)
			rc = dd_state_batch_apply(&b, st);
	}
	*cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	*wall = clock_s(CLOCK_MONOTONIC) - w0;
	c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	long g;
	while (rc >= 0 && (g = dd_state_store_trim(st, 0, 0, 0, 8192, NULL, NULL)) != 0)
		if (g < 0)
			rc = (int)g;
	*trim = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	dd_state_batch_free(&b);
	dd_state_reader_close(&rd);
	close(dfd);
	dd_state_store_close(st);
	return rc;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct opts o = {.dir = "/var/tmp", .jobs = 1000000, .lag = 8000, .payload = 16,
			 .records = 3, .runs = 3};
	int c;
	while ((c = getopt(argc, argv, "d:n:l:p:k:r:h")) != -1) {
		switch (c) {
		case 'd': o.dir = optarg; break;
		case 'n': o.jobs = strtoul(optarg, NULL, 10); break;
		case 'l': o.lag = strtoul(optarg, NULL, 10); break;
		case 'p': o.payload = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'k': o.records = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': o.runs = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench-apply [-d DIR] [-n JOBS] [-l LAG] [-p PAYLOAD] "
					"[-k RECORDS (2|3)] [-r RUNS]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if ((o.records != 2 && o.records != 3) || !o.jobs || !o.runs || o.runs > 99 ||
	    o.payload > 65536) {
		fprintf(stderr, "bench-apply: -k is 2 or 3; -n, -r (at most 99) above 0; "
				"-p at most 65536\n");
		return 2;
	}
	char dir[4200], wal[4300];
	/* mkdtemp() replaces the XXXXXX with a unique name */
	snprintf(dir, sizeof(dir), "%s/bench-apply-XXXXXX", o.dir);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench-apply: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	int rc = mkdir(wal, 0700) < 0 ? -errno : write_log(wal, &o);
	double cpu[99], wall[99], trim[99];
	for (unsigned i = 0; i < o.runs && rc >= 0; i++)
		rc = apply(dir, wal, &cpu[i], &wall[i], &trim[i]);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (rc < 0) {
		fprintf(stderr, "bench-apply: %s\n", strerror(-rc));
		return 1;
	}
	printf("bench-apply: %lu jobs, %u records each, %lu in flight, %u-byte payload, "
	       "median of %u\n", o.jobs, o.records, o.lag, o.payload, o.runs);
	for (unsigned i = 0; i < o.runs; i++)
		printf("  run %u: %.0f jobs/s, %.0f ns CPU per job; retention %.0f ns per job\n",
		       i + 1, (double)o.jobs / wall[i], cpu[i] * 1e9 / (double)o.jobs,
		       trim[i] * 1e9 / (double)o.jobs);
	qsort(cpu, o.runs, sizeof(double), cmp_d);
	qsort(wall, o.runs, sizeof(double), cmp_d);
	qsort(trim, o.runs, sizeof(double), cmp_d);
	printf("median: %.0f jobs/s, %.0f ns CPU per job; retention %.0f ns per job\n",
	       (double)o.jobs / wall[o.runs / 2], cpu[o.runs / 2] * 1e9 / (double)o.jobs,
	       trim[o.runs / 2] * 1e9 / (double)o.jobs);
	return 0;
}
