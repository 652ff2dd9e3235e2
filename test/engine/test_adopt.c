/* Running process jobs outlive their engine (DESIGN.md section 10): an
 * engine destroyed with DD_DESTROY_LEAVE_RUNNING leaves them to the
 * process supervisor, and the next engine on the same state directory
 * takes them over: the same attempt, its output going on into the same
 * file, its real exit status (also one that came while no engine ran),
 * and its time-out and cancel. A plain destroy still ends them; a
 * supervisor that goes away has its jobs killed, failed with the reason
 * and retried. Real supervisor (the build tree's), real processes. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char dir[] = "/tmp/dd-adopt-XXXXXX"; /* mkdtemp fills the X's */
static char state[128], go[128], journal[160];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(go, sizeof(go), "%s/go", dir);
	snprintf(journal, sizeof(journal), "%s/supervisor.exits", state);
}

static void teardown(void)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* the engine's messages, for the report of a failure */
static void on_log(int level, const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "engine <%d>: %s\n", level, msg);
}

static struct dd_engine *engine(struct dd_recovery *rec)
{
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 1;
	cfg.state_dir = state;
	cfg.durability = DD_DURABILITY_FSYNC;
	cfg.kill_grace_ns = 200 * MS;
	cfg.on_log = on_log;
	struct dd_engine *e = make_engine(&cfg);
	bool on;
	const char *why = dd_engine_supervisor(e, &on);
	cr_assert(on, "the build tree's supervisor ($DISPATCHD_SUPERVISOR): %s", why);
	if (rec)
		cr_assert_eq(dd_engine_recovery(e, rec), 0);
	return e;
}

/* A job that says "a", waits for the file go, says "b" and exits @code. */
static uint64_t gated(struct dd_engine *e, int code, uint32_t attempts, uint64_t timeout_ns)
{
	char script[512];
	snprintf(script, sizeof(script),
		 "echo a; while [ ! -e %s ]; do sleep 0.01; done; echo b; exit %d", go, code);
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.timeout_ns = timeout_ns;
	s.max_attempts = attempts;
	return submit_ok(e, &s);
}

static void open_gate(void)
{
	int fd = open(go, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
}

/* The attempt's stdout so far into @buf ("" while it has no file). */
static void read_output(struct dd_engine *e, uint64_t id, uint32_t attempt, char *buf, size_t n)
{
	char path[512];
	cr_assert_eq(dd_job_output_path(e, id, attempt, 1, path, sizeof(path)), 0);
	FILE *f = fopen(path, "r");
	size_t k = f ? fread(buf, 1, n - 1, f) : 0;
	if (f)
		fclose(f);
	buf[k] = 0;
}

/* Until its output file holds @text (the process has begun). */
static void await_output(struct dd_engine *e, uint64_t id, uint32_t attempt, const char *text)
{
	char buf[256];
	for (int i = 0; i < 60000; i++) {
		read_output(e, id, attempt, buf, sizeof(buf));
		if (strstr(buf, text))
			return;
		sleep_ms(1);
	}
	cr_assert_fail("job %llu never wrote %s", (unsigned long long)id, text);
}

static void expect_output(struct dd_engine *e, uint64_t id, uint32_t attempt, const char *want)
{
	char buf[256];
	read_output(e, id, attempt, buf, sizeof(buf));
	cr_assert_str_eq(buf, want);
}

static off_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

Test(adopt, left_running_jobs_are_taken_over, .init = setup, .fini = teardown)
{
	struct dd_engine *e = engine(NULL);
	uint64_t id = gated(e, 3, 1, 0);
	await_output(e, id, 1, "a\n");
	struct dd_job_info ji;
	cr_assert_eq(dd_job_get(e, id, &ji), 0);
	pid_t pid = ji.pid;
	dd_engine_destroy_ex(e, DD_DESTROY_LEAVE_RUNNING);
	cr_assert_eq(kill(pid, 0), 0, "the process runs on without its engine");

	struct dd_recovery rec;
	e = engine(&rec);
	cr_assert_eq(rec.jobs_adopted, 1);
	cr_assert_eq(rec.jobs_retried + rec.jobs_lost, 0);
	cr_assert_eq(dd_job_get(e, id, &ji), 0);
	cr_assert_eq(ji.state, DD_RUNNING);
	cr_assert_eq(ji.attempt, 1);
	cr_assert_eq(ji.pid, pid);
	open_gate();
	cr_assert_eq(wait_state(e, id, &ji), DD_FAILED);
	cr_assert_eq(ji.attempt, 1, "never started a second time");
	cr_assert_str_eq(ji.reason, "exit 3");
	cr_assert(ji.have_cpu_time, "its tree's accounting, from its cgroup");
	expect_output(e, id, 1, "a\nb\n");
	dd_engine_destroy(e);
}

/* A job that says which CPUs it may run on, then waits for the file
 * go.@gate (none: ends at once). */
static uint64_t says_cpus(struct dd_engine *e, const char *gate)
{
	char script[512];
	if (gate)
		snprintf(script, sizeof(script),
			 "grep Cpus_allowed_list /proc/self/status; "
			 "while [ ! -e %s.%s ]; do sleep 0.01; done", go, gate);
	else
		snprintf(script, sizeof(script), "grep Cpus_allowed_list /proc/self/status");
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	return submit_ok(e, &s);
}

Test(adopt, a_taken_over_job_holds_the_cpus_it_runs_on, .init = setup, .fini = teardown)
{
	struct dd_engine *e = engine(NULL);
	struct dd_stats st;
	dd_stats(e, &st);
	if (st.total.pool_cpus < 2)
		cr_skip_test("a pool of %llu CPU(s): two jobs cannot run on CPUs of their own",
			     (unsigned long long)st.total.pool_cpus);
	/* a takes the lowest CPU, b the next; a ends, b runs on */
	uint64_t a = says_cpus(e, "a"), b = says_cpus(e, "b");
	await_output(e, a, 1, "Cpus_allowed_list");
	await_output(e, b, 1, "Cpus_allowed_list");
	char cpus_b[256], gate[160];
	read_output(e, b, 1, cpus_b, sizeof(cpus_b));
	snprintf(gate, sizeof(gate), "%s.a", go);
	close(open(gate, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(wait_state(e, a, NULL), DD_SUCCEEDED);
	dd_engine_destroy_ex(e, DD_DESTROY_LEAVE_RUNNING);
	struct dd_recovery rec;
	e = engine(&rec);
	cr_assert_eq(rec.jobs_adopted, 1);
	/* the next job gets the CPU a had, not b's */
	uint64_t c = says_cpus(e, NULL);
	cr_assert_eq(wait_state(e, c, NULL), DD_SUCCEEDED);
	char cpus_c[256];
	read_output(e, c, 1, cpus_c, sizeof(cpus_c));
	cr_assert_str_neq(cpus_c, cpus_b, "job c was given the CPU job b runs on");
	snprintf(gate, sizeof(gate), "%s.b", go);
	close(open(gate, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(wait_state(e, b, NULL), DD_SUCCEEDED);
	dd_engine_destroy(e);
}

Test(adopt, an_exit_while_no_engine_runs_is_kept_and_recorded, .init = setup, .fini = teardown)
{
	struct dd_engine *e = engine(NULL);
	uint64_t id = gated(e, 5, 3, 0);
	await_output(e, id, 1, "a\n");
	dd_engine_destroy_ex(e, DD_DESTROY_LEAVE_RUNNING);
	open_gate();
	/* the supervisor journals the exit, since no engine listens */
	for (int i = 0; i < 60000 && file_size(journal) <= 0; i++)
		sleep_ms(1);
	cr_assert_gt(file_size(journal), 0);

	struct dd_recovery rec;
	e = engine(&rec);
	cr_assert_eq(rec.jobs_adopted, 1);
	struct dd_job_info ji;
	/* it failed (exit 5) while no engine ran: that attempt's end, then
	 * its retries by policy (each exits 5 at once: the gate is open) */
	cr_assert_eq(wait_state(e, id, &ji), DD_FAILED);
	cr_assert_eq(ji.attempt, 3);
	cr_assert_str_eq(ji.reason, "exit 5");
	expect_output(e, id, 1, "a\nb\n");
	/* acknowledged once durable: the journal is emptied */
	for (int i = 0; i < 60000 && file_size(journal) != 0; i++)
		sleep_ms(1);
	cr_assert_eq(file_size(journal), 0);
	dd_engine_destroy(e);
}

Test(adopt, time_outs_and_cancels_apply_again, .init = setup, .fini = teardown)
{
	struct dd_engine *e = engine(NULL);
	uint64_t slow = gated(e, 0, 1, 1500 * MS);
	uint64_t other = gated(e, 0, 1, 0);
	await_output(e, slow, 1, "a\n");
	await_output(e, other, 1, "a\n");
	dd_engine_destroy_ex(e, DD_DESTROY_LEAVE_RUNNING);
	struct dd_recovery rec;
	e = engine(&rec);
	cr_assert_eq(rec.jobs_adopted, 2);
	cr_assert_eq(dd_cancel(e, other), 0);
	struct dd_job_info ji;
	cr_assert_eq(wait_state(e, other, &ji), DD_CANCELLED);
	cr_assert_eq(wait_state(e, slow, &ji), DD_TIMED_OUT);
	cr_assert_eq(ji.attempt, 1);
	dd_engine_destroy(e);
}

Test(adopt, a_plain_destroy_still_ends_them, .init = setup, .fini = teardown)
{
	struct dd_engine *e = engine(NULL);
	uint64_t id = gated(e, 0, 2, 0);
	await_output(e, id, 1, "a\n");
	struct dd_job_info ji;
	cr_assert_eq(dd_job_get(e, id, &ji), 0);
	pid_t pid = ji.pid;
	dd_engine_destroy(e);
	/* killed and reaped by the supervisor before destroy returned */
	cr_assert(kill(pid, 0) < 0 && errno == ESRCH);
	struct dd_recovery rec;
	e = engine(&rec);
	cr_assert_eq(rec.jobs_adopted, 0);
	cr_assert_eq(rec.jobs_retried, 1);
	open_gate();
	cr_assert_eq(wait_state(e, id, &ji), DD_SUCCEEDED);
	cr_assert_eq(ji.attempt, 2);
	dd_engine_destroy(e);
}

/* The test process started the supervisor: it is our child. */
static pid_t our_supervisor(void)
{
	DIR *d = opendir("/proc/self/task");
	pid_t found = 0;
	struct dirent *t;
	while (d && (t = readdir(d)) && !found) {
		char p[320];
		snprintf(p, sizeof(p), "/proc/self/task/%s/children", t->d_name);
		FILE *f = fopen(p, "r");
		int pid;
		while (f && fscanf(f, "%d", &pid) == 1) {
			char exe[64], img[512];
			snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
			ssize_t n = readlink(exe, img, sizeof(img) - 1);
			if (n > 0 && (img[n] = 0, strstr(img, "dispatchd-supervisor")))
				found = pid;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

Test(adopt, a_supervisor_that_goes_away_fails_its_attempts_which_are_retried, .init = setup, .fini = teardown)
{
	struct dd_engine *e = engine(NULL);
	uint64_t id = gated(e, 0, 2, 0);
	await_output(e, id, 1, "a\n");
	pid_t sup = our_supervisor();
	cr_assert_gt(sup, 0);
	cr_assert_eq(kill(sup, SIGKILL), 0);
	/* attempt 1 is killed and fails; attempt 2 starts under a new
	 * supervisor (its "a" proves it began) */
	await_output(e, id, 2, "a\n");
	open_gate();
	struct dd_job_info ji;
	cr_assert_eq(wait_state(e, id, &ji), DD_SUCCEEDED);
	cr_assert_eq(ji.attempt, 2);
	expect_output(e, id, 2, "a\nb\n");
	dd_engine_destroy(e);
}
