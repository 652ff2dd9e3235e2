/* Process jobs' output files: one pair per attempt, the head and the tail
 * past output_max with a marker between, and the free-space reserve that
 * keeps job output from taking the log's and store's last space. */
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"

static char *slurp_path(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "output file %s exists", path);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	ssize_t k = read(fd, buf, (size_t)st.st_size);
	close(fd);
	cr_assert_eq(k, st.st_size);
	buf[k] = 0;
	*len = (size_t)k;
	return buf;
}

/* Whether the first attempt's stdout of job @id holds @text (false while the
 * file has no name yet). */
static bool output_holds(struct dd_engine *e, uint64_t id, const char *text)
{
	char path[4200];
	cr_assert_eq(dd_job_output_path(e, id, 1, 1, path, sizeof(path)), 0);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	static char buf[1 << 20];
	bool found = false;
	size_t have = 0, tl = strlen(text);
	ssize_t k;
	while (!found && (k = read(fd, buf + have, sizeof(buf) - have)) > 0) {
		have += (size_t)k;
		found = memmem(buf, have, text, tl) != NULL;
		if (have > tl) { /* keep the last bytes: the text may straddle two reads */
			memmove(buf, buf + have - tl, tl);
			have = tl;
		}
	}
	close(fd);
	return found;
}

static char *slurp(struct dd_engine *e, uint64_t id, uint32_t attempt, int stream, size_t *len)
{
	char path[4200];
	cr_assert_eq(dd_job_output_path(e, id, attempt, stream, path, sizeof(path)), 0);
	return slurp_path(path, len);
}

static struct dd_engine *out_engine(char *dir, uint64_t output_max)
{
	cr_assert_not_null(mkdtemp(dir));
	return exec_engine_in(dir, 0, output_max);
}

static uint64_t run_sh(struct dd_engine *e, const char *script, uint32_t attempts)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.max_attempts = attempts;
	s.backoff_ns = 1 * MS;
	return submit_ok(e, &s);
}

/* A job that fails twice and then succeeds keeps three attempts' output,
 * each in its own files; attempt 0 names the last. */
Test(output, each_attempt_kept)
{
	char dir[] = "/tmp/dd-out-XXXXXX";
	struct dd_engine *e = out_engine(dir, 0);
	char script[512];
	snprintf(script, sizeof(script),
		 "n=$(cat %s/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s/n; "
		 "echo out $n; echo err $n >&2; [ $n -ge 3 ]", dir, dir);
	uint64_t id = run_sh(e, script, 3);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert_eq(info.attempt, 3);
	for (uint32_t a = 1; a <= 3; a++) {
		char want[32];
		size_t n;
		char *got = slurp(e, id, a, 1, &n);
		snprintf(want, sizeof(want), "out %u\n", a);
		cr_assert_str_eq(got, want);
		free(got);
		got = slurp(e, id, a, 2, &n);
		snprintf(want, sizeof(want), "err %u\n", a);
		cr_assert_str_eq(got, want);
		free(got);
	}
	char last[4200], third[4200];
	cr_assert_eq(dd_job_output_path(e, id, 0, 1, last, sizeof(last)), 0);
	cr_assert_eq(dd_job_output_path(e, id, 3, 1, third, sizeof(third)), 0);
	cr_assert_str_eq(last, third);
	char want[4200];
	snprintf(want, sizeof(want), "%s/%llu.3.out", dir, (unsigned long long)id);
	cr_assert_str_eq(third, want, "named <id>.<attempt>.out");
	cr_assert_eq(info.output_cut[0], 0);
	cr_assert_eq(dd_job_output_path(e, id, 1, 3, last, sizeof(last)), -EINVAL);
	dd_engine_destroy(e);
}

/* Checks that @buf is head + one marker + tail, and returns the count the
 * marker gives. */
static uint64_t check_cut(const char *buf, size_t n, const char *first, const char *last)
{
	cr_assert(!strncmp(buf, first, strlen(first)), "the head is kept: %.40s", buf);
	cr_assert(n >= strlen(last) && !strcmp(buf + n - strlen(last), last),
		  "the tail is kept: ...%s", buf + (n > 40 ? n - 40 : 0));
	const char *m = strstr(buf, "\n[dispatchd: ");
	cr_assert_not_null(m, "a marker");
	cr_assert_null(strstr(m + 2, "[dispatchd: "), "one marker");
	unsigned long long cut = 0;
	cr_assert_eq(sscanf(m, "\n[dispatchd: %llu bytes cut here", &cut), 1);
	return cut;
}

/* Far past a small output_max, all at once: the head and the tail stay,
 * with the marker between, and output_cut counts what went. */
Test(output, head_and_tail_kept)
{
	char dir[] = "/tmp/dd-out-XXXXXX";
	struct dd_engine *e = out_engine(dir, 64 << 10);
	/* 2 MiB of filler between a first and a last line, on both streams */
	uint64_t id = run_sh(e,
			     "echo FIRST LINE; head -c 2097152 /dev/zero | tr '\\0' x; echo; "
			     "echo LAST LINE; echo first err >&2; head -c 300000 /dev/zero | tr '\\0' e >&2; "
			     "echo >&2; echo last err >&2",
			     1);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	size_t n;
	char *buf = slurp(e, id, 0, 1, &n);
	uint64_t cut = check_cut(buf, n, "FIRST LINE\nxxx", "xxx\nLAST LINE\n");
	const uint64_t total = 11 + 2097152 + 1 + 10;
	const char *m = strstr(buf, "\n[dispatchd: ");
	size_t mlen = strchr(m + 1, '\n') + 1 - m;
	cr_assert_eq(cut, info.output_cut[0]);
	cr_assert_eq(n - mlen + cut, total, "kept + cut = written (%zu + %llu)", n - mlen,
		     (unsigned long long)cut);
	cr_assert_eq(n - mlen, 64 << 10, "head and tail fill output_max");
	free(buf);
	buf = slurp(e, id, 0, 2, &n);
	cut = check_cut(buf, n, "first err\n", "\nlast err\n");
	cr_assert_eq(cut, info.output_cut[1]);
	cr_assert_gt(cut, 0);
	free(buf);
	dd_engine_destroy(e);
}

/* Past the cap while it runs, across several sweeps: every cut keeps the
 * newest bytes and adds to the same marker, and the bytes kept and cut
 * add up to what was written. */
Test(output, cut_while_running)
{
	char dir[] = "/tmp/dd-out-XXXXXX";
	struct dd_engine *e = out_engine(dir, 32 << 10);
	uint64_t id = run_sh(e,
			     "echo BEGIN; i=0; while [ $i -lt 30 ]; do "
			     "head -c 20000 /dev/zero | tr '\\0' y; sleep 0.05; i=$((i+1)); done; "
			     "echo; echo END",
			     1);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	size_t n;
	char *buf = slurp(e, id, 0, 1, &n);
	uint64_t cut = check_cut(buf, n, "BEGIN\nyyy", "yyy\nEND\n");
	const char *m = strstr(buf, "\n[dispatchd: ");
	size_t mlen = strchr(m + 1, '\n') + 1 - m;
	cr_assert_eq(cut, info.output_cut[0]);
	cr_assert_eq(n - mlen + cut, 6 + 30 * 20000 + 1 + 4);
	free(buf);
	dd_engine_destroy(e);
}

static bool durable_submits_ok(struct dd_engine *e, int n)
{
	for (int i = 0; i < n; i++) {
		struct dd_job_spec s = spec("ok");
		uint64_t id;
		int r = dd_submit(e, &s, DD_SUBMIT_BLOCK, &id);
		cr_assert_eq(r, 0, "submission %d: %s", i, dd_strerror(r));
		r = dd_wait_durable(e, id, 5000 * MS);
		cr_assert_eq(r, 0, "submission %d durable: %s", i, dd_strerror(r));
	}
	return true;
}

/* A small file system of @fs_mib holds the state dir and the output, with
 * a reserve of @reserve_mib: a job running @script without end never
 * makes a submission fail; its output is cut, marked and counted. */
static void reserve_case(unsigned fs_mib, unsigned reserve_mib, const char *script)
{
	if (geteuid() != 0)
		cr_skip_test("mounting a small tmpfs needs root");
	char dir[] = "/tmp/dd-out-fs-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char opts[64];
	snprintf(opts, sizeof(opts), "size=%um,mode=0700", fs_mib);
	if (mount("tmpfs", dir, "tmpfs", 0, opts) < 0)
		cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
	char state[4200];
	snprintf(state, sizeof(state), "%s/state", dir);
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 2;
	cfg.state_dir = state;
	cfg.durability = DD_DURABILITY_FSYNC;
	cfg.segment_bytes = 1 << 20;
	cfg.map_initial = 1 << 20;
	cfg.output_reserve = (uint64_t)reserve_mib << 20;
	cfg.output_max = 1ull << 40; /* only the reserve cuts */
	struct dd_engine *e = make_engine(&cfg);
	uint64_t id = run_sh(e, script, 1);
	await_state(e, id, DD_RUNNING);
	/* Submissions go on until the writer has reached the reserve and been
	 * cut, and for some rounds after, however slowly a loaded machine
	 * lets it write. */
	const char *marker = " bytes cut here (free space below the reserve)]\n";
	uint64_t min_free = UINT64_MAX;
	int after_cut = -1;
	for (int round = 0; after_cut < 20; round++) {
		cr_assert_lt(round, 2400, "no cut in 120 s (%llu bytes free at least)",
			     (unsigned long long)min_free);
		durable_submits_ok(e, 20);
		struct statvfs v;
		cr_assert_eq(statvfs(state, &v), 0);
		uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
		if (avail < min_free)
			min_free = avail;
		if (after_cut >= 0 || output_holds(e, id, marker))
			after_cut++;
		sleep_ms(50);
	}
	cr_assert_gt(min_free, 1 << 20, "the writer never took the last space (%llu bytes free)",
		     (unsigned long long)min_free);
	cr_assert_eq(dd_cancel(e, id), 0, "still writing");
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_CANCELLED);
	cr_assert_gt(info.output_cut[0], 0, "output_cut counts the cut");
	size_t n;
	char *buf = slurp(e, id, 0, 1, &n);
	cr_assert(!strncmp(buf, "FIRST\n", 6), "the head stays");
	cr_assert_not_null(strstr(buf, " bytes cut here (free space below the reserve)]\n"),
			   "the cut is marked");
	free(buf);
	dd_engine_destroy(e);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* About 10 MB/s into a 24 MiB file system. */
Test(output, reserve_keeps_room_for_the_log)
{
	reserve_case(24, 12,
		     "echo FIRST; while :; do head -c 100000 /dev/zero | tr '\\0' z; "
		     "sleep 0.01; done");
}

/* As fast as it can: yes writes about 1.4 GB/s into a tmpfs. The reserve
 * is larger than what it writes between two looks at the free space
 * (20 ms near the reserve) with room for a busy machine's scheduling
 * delays, as docs/OPERATIONS.md asks of a reserve. */
Test(output, reserve_holds_against_a_fast_writer)
{
	reserve_case(1024, 640, "echo FIRST; exec yes");
}

/* output_cut is durable: an engine opened again on the state dir reads it
 * from the store. */
Test(output, cut_survives_a_restart)
{
	char dir[] = "/tmp/dd-out-st-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 1;
	cfg.state_dir = dir;
	cfg.durability = DD_DURABILITY_FSYNC;
	cfg.output_max = 1000;
	cfg.output_reserve = 0;
	struct dd_engine *e = make_engine(&cfg);
	uint64_t id = run_sh(e, "seq 1 10000; seq 1 1000 >&2", 1);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert_gt(info.output_cut[0], 0);
	cr_assert_gt(info.output_cut[1], 0);
	uint64_t cut[2] = {info.output_cut[0], info.output_cut[1]};
	dd_engine_destroy(e);
	e = make_engine(&cfg);
	struct dd_job_info again;
	cr_assert_eq(dd_job_get(e, id, &again), 0);
	cr_assert_eq(again.output_cut[0], cut[0]);
	cr_assert_eq(again.output_cut[1], cut[1]);
	size_t n;
	char *buf = slurp(e, id, 0, 1, &n);
	cr_assert(!strncmp(buf, "1\n2\n", 4) && !strcmp(buf + n - 6, "10000\n"));
	free(buf);
	dd_engine_destroy(e);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
