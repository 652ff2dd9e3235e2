/* A process job's whole tree: what its main process leaves behind (a
 * background child, a setsid grandchild) is gone when the job ends, and
 * cancels and time-outs reach all of it; a memory limit fails the job
 * with its reason; CPU time and memory peak are recorded, durably; without
 * cgroups the engine says so and refuses a memory limit. On this machine's
 * real cgroups (root). */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char dir[] = "/tmp/dd-tree-XXXXXX"; /* mkdtemp fills the X's */
static char pidfile[256];
static uint64_t pids_max; /* the next engine's job_pids_max */

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
	cfg.job_pids_max = pids_max;
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

/* How many processes are in @pid's v2 cgroup now; -1 once it is gone. */
static int tree_size(pid_t pid, char *cgdir, size_t n)
{
	if (!cgdir[0]) {
		char path[64], line[400];
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "0::", 3)) {
				line[strcspn(line, "\n")] = 0;
				snprintf(cgdir, n, "/sys/fs/cgroup/unified%s", line + 3);
				if (access(cgdir, F_OK) < 0) /* a pure cgroup2 host */
					snprintf(cgdir, n, "/sys/fs/cgroup%s", line + 3);
			}
		if (f)
			fclose(f);
	}
	char procs[1100];
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgdir);
	FILE *f = fopen(procs, "r");
	if (!f)
		return -1;
	int k = 0;
	long p;
	while (fscanf(f, "%ld", &p) == 1)
		k++;
	fclose(f);
	return k;
}

Test(tree, a_fork_bomb_stays_within_its_pids_and_goes_at_its_time_out)
{
	pids_max = 32;
	struct dd_engine *e = engine(DD_CGROUPS_AUTO);
	if (!need_cgroups(e))
		cr_skip_test("cgroups need root here");
	if (!strstr(dd_engine_cgroups(e, NULL), "pids on"))
		cr_skip_test("no pids controller: %s", dd_engine_cgroups(e, NULL));
	struct dd_job_info info;
	/* bash goes on when a fork fails (dash's shell would exit) */
	uint64_t id = run(e, "echo $$ > pids; exec bash -c 'b() { while :; do b & done; }; b' 2>/dev/null",
			  NULL, 1500 * MS);
	pid_t p[1];
	read_pids(p, 1);
	char cgdir[1024] = "";
	int most = 0, k;
	while ((k = tree_size(p[0], cgdir, sizeof(cgdir))) >= 0) {
		most = k > most ? k : most;
		sleep_ms(5);
	}
	enum dd_state st = wait_state(e, id, &info);
	cr_assert_eq(st, DD_TIMED_OUT, "%s: %s", dd_state_name(st), info.reason);
	/* it grew to its limit and no further, and all of it went */
	cr_assert_leq(most, 32, "%d processes in a tree limited to 32", most);
	cr_assert_geq(most, 16, "the bomb reached %d processes only", most);
	cr_assert(gone(p[0]));
	dd_engine_destroy(e);
}

Test(tree, a_job_cannot_leave_the_cpus_it_was_granted)
{
	struct dd_engine *e = engine(DD_CGROUPS_AUTO);
	if (!need_cgroups(e))
		cr_skip_test("cgroups need root here");
	if (!strstr(dd_engine_cgroups(e, NULL), "cpuset on"))
		cr_skip_test("no cpuset controller: %s", dd_engine_cgroups(e, NULL));
	cpu_set_t all;
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	if (CPU_COUNT(&all) < 2)
		cr_skip_test("one CPU: nothing to leave for");
	struct dd_job_info info;
	struct dd_exec_spec x = {.cpus = 1};
	/* affinity alone, the job could widen itself; its cpuset holds */
	uint64_t id = run(e, "taskset -acp 0-1023 $$ >/dev/null 2>&1; "
			     "grep Cpus_allowed_list /proc/self/status > pids", &x, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	FILE *f = fopen(pidfile, "r");
	char line[256] = "";
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	const char *list = strchr(line, ':') + 1;
	while (*list == ' ' || *list == '\t')
		list++;
	cr_assert(strspn(list, "0123456789") == strcspn(list, "\n"), "allowed: %s", list);
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
