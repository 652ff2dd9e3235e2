/* A process job's whole tree: what its main process leaves behind (a
 * background child, a setsid grandchild) is gone when the job ends, and
 * cancels and time-outs reach all of it; a memory limit fails the job
 * with its reason; CPU time and memory peak are recorded, durably; without
 * cgroups the engine says so and refuses a memory limit. On this machine's
 * real cgroups (root). */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char dir[] = "/tmp/dd-tree-XXXXXX"; /* mkdtemp fills the X's */
static char pidfile[256];

static struct dd_engine *engine(int cgroups)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(pidfile, sizeof(pidfile), "%s/pids", dir);
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 1;
	cfg.output_dir = dir;
	cfg.kill_grace_ns = 200 * MS;
	cfg.cgroups = cgroups;
	return make_engine(&cfg);
}

static bool need_cgroups(struct dd_engine *e)
{
	bool on;
	const char *why = dd_engine_cgroups(e, &on);
	if (geteuid() != 0) {
		cr_assert(!on);
		return false;
	}
	/* root on these machines: cgroups must be there, never a quiet
	 * fallback */
	cr_assert(on, "%s", why);
	return true;
}

static uint64_t run(struct dd_engine *e, const char *script, struct dd_exec_spec *x,
		    uint64_t timeout_ns)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec def = {0};
	if (!x)
		x = &def;
	x->cwd = dir; /* where "pids" is written */
	return submit_exec(e, argv, x, geteuid(), getegid(), timeout_ns);
}

/* The pids the job wrote to pidfile, once it has written @n of them. */
static int read_pids(pid_t *pids, int n)
{
	for (int tries = 0; tries < 60000; tries++) {
		FILE *f = fopen(pidfile, "r");
		int k = 0;
		long p;
		if (f) {
			while (k < n && fscanf(f, "%ld", &p) == 1)
				pids[k++] = (pid_t)p;
			fclose(f);
		}
		if (k == n)
			return k;
		sleep_ms(1);
	}
	cr_assert_fail("the job did not write %d pids to %s", n, pidfile);
	return 0;
}

/* A process of ours is gone: no such pid, or a zombie (reparented to an
 * init that has not reaped it yet). A pid is not reused within a test. */
static bool gone(pid_t pid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return true;
	ssize_t k = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (k <= 0)
		return true;
	stat[k] = 0;
	const char *close_paren = strrchr(stat, ')');
	return close_paren && close_paren[2] == 'Z';
}

Test(tree, leftovers_are_killed_before_the_job_ends)
{
	struct dd_engine *e = engine(DD_CGROUPS_AUTO);
	if (!need_cgroups(e))
		cr_skip_test("cgroups need root here");
	struct dd_job_info info;
	uint64_t id = run(e, "sleep 300 & echo $! > pids; setsid sleep 300 & echo $! >> pids; exit 0",
			  NULL, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	pid_t p[2];
	read_pids(p, 2);
	/* at the moment the job is seen ended, its leftovers are gone */
	cr_assert(gone(p[0]) && gone(p[1]), "leftovers %d %d still run", p[0], p[1]);
	struct dd_stats st;
	dd_stats_counters(e, &st);
	cr_assert_eq(st.total.proc_leftovers, 1);
	dd_engine_destroy(e);
}

Test(tree, a_time_out_kills_the_setsid_grandchild)
{
	struct dd_engine *e = engine(DD_CGROUPS_AUTO);
	if (!need_cgroups(e))
		cr_skip_test("cgroups need root here");
	struct dd_job_info info;
	uint64_t id = run(e, "setsid sh -c 'trap \"\" TERM; sleep 300' & echo $! > pids; wait", NULL,
			  300 * MS);
	pid_t p[1];
	read_pids(p, 1);
	cr_assert_eq(wait_state(e, id, &info), DD_TIMED_OUT);
	/* it ignored SIGTERM in a session of its own: SIGKILL after the
	 * grace, through the cgroup, is what ended it */
	cr_assert(gone(p[0]), "%d still runs", p[0]);
	dd_engine_destroy(e);
}

Test(tree, a_cancel_kills_the_whole_tree)
{
	struct dd_engine *e = engine(DD_CGROUPS_AUTO);
	if (!need_cgroups(e))
		cr_skip_test("cgroups need root here");
	struct dd_job_info info;
	uint64_t id = run(e, "setsid sleep 300 & echo $! > pids; sleep 300 & echo $! >> pids; wait",
			  NULL, 0);
	pid_t p[2];
	read_pids(p, 2);
	cr_assert_eq(dd_cancel(e, id), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_CANCELLED);
	cr_assert(gone(p[0]) && gone(p[1]), "%d %d still run", p[0], p[1]);
	dd_engine_destroy(e);
}

Test(tree, over_its_memory_limit_a_job_fails_saying_so)
{
	struct dd_engine *e = engine(DD_CGROUPS_AUTO);
	if (!need_cgroups(e))
		cr_skip_test("cgroups need root here");
	struct dd_job_info info;
	struct dd_exec_spec x = {.mem = 32u << 20};
	uint64_t id = run(e, "exec python3 -c 'x = bytearray(256 << 20)'", &x, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "out of memory: limit 32 MiB");
	cr_assert_eq(info.term_signal, SIGKILL);
	cr_assert(info.have_mem_peak);
	cr_assert_leq(info.mem_peak, 32u << 20);
	struct dd_stats st;
	dd_stats_counters(e, &st);
	cr_assert_eq(st.total.proc_oom, 1);
	/* under its limit the same program succeeds */
	x.mem = 512u << 20;
	cr_assert_eq(wait_state(e, run(e, "exec python3 -c 'x = bytearray(64 << 20)'", &x, 0), &info),
		     DD_SUCCEEDED, "%s", info.reason);
	cr_assert_geq(info.mem_peak, 64u << 20);
	dd_engine_destroy(e);
}

Test(tree, cpu_time_and_memory_peak_are_recorded_durably)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root here");
	char sdir[300];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sdir, sizeof(sdir), "%s/state", dir);
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 1;
	cfg.state_dir = sdir;
	cfg.durability = DD_DURABILITY_FSYNC;
	struct dd_engine *e = make_engine(&cfg);
	need_cgroups(e);
	struct dd_job_info info;
	/* the work is a grandchild's, which the main process's own rusage
	 * would not hold */
	uint64_t id = run(e, "python3 -c 'import time\n"
			     "t = time.process_time()\n"
			     "x = bytearray(48 << 20)\n"
			     "while time.process_time() - t < 0.3: pass' & wait",
			  NULL, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	cr_assert(info.have_cpu_time && info.have_mem_peak);
	cr_assert_geq(info.cpu_time_ns, 300 * MS);
	cr_assert_geq(info.mem_peak, 48u << 20);
	uint64_t cpu = info.cpu_time_ns, peak = info.mem_peak;
	dd_engine_destroy(e);
	/* from the log and the store, in the next engine */
	e = make_engine(&cfg);
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert(info.have_cpu_time && info.have_mem_peak);
	cr_assert_eq(info.cpu_time_ns, cpu);
	cr_assert_eq(info.mem_peak, peak);
	dd_engine_destroy(e);
}

Test(tree, without_cgroups_the_engine_says_so_and_refuses_a_memory_limit)
{
	struct dd_engine *e = engine(DD_CGROUPS_OFF);
	bool on = true;
	const char *why = dd_engine_cgroups(e, &on);
	cr_assert(!on);
	cr_assert(!strncmp(why, "off", 3), "%s", why);
	struct dd_stats st;
	dd_stats_counters(e, &st);
	cr_assert(!st.cgroups);
	cr_assert_str_eq(st.cgroup_status, why);
	struct dd_job_info info;
	struct dd_exec_spec x = {.mem = 32u << 20};
	cr_assert_eq(wait_state(e, run(e, "true", &x, 0), &info), DD_FAILED);
	cr_assert(strstr(info.reason, "a memory limit needs cgroups"), "%s", info.reason);
	/* the process group path: the job runs and ends; a setsid grandchild
	 * is beyond it (which is why cgroups are the default) */
	uint64_t id = run(e, "setsid sleep 300 & echo $! > pids; exit 0", NULL, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert(!info.have_cpu_time && !info.have_mem_peak);
	pid_t p[1];
	read_pids(p, 1);
	cr_assert(!gone(p[0]));
	kill(p[0], SIGKILL);
	dd_engine_destroy(e);
}
