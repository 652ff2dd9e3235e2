/* The process executor: real processes, exit statuses, signals, output
 * files and their cap, time-outs, cancels, spawn errors, environment, cwd,
 * rlimits and the drop to the submitting user. */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char outdir[] = "/tmp/dd-exec-XXXXXX"; /* mkdtemp fills the X's */

static struct dd_engine *exec_engine(uint64_t grace_ns, uint64_t output_max)
{
	cr_assert_not_null(mkdtemp(outdir));
	return exec_engine_in(outdir, grace_ns, output_max);
}

static uint64_t run(struct dd_engine *e, const char *const *argv, struct dd_exec_spec *x,
		    uint64_t timeout_ns)
{
	return submit_exec(e, argv, x, geteuid(), getegid(), timeout_ns);
}

static size_t slurp(struct dd_engine *e, uint64_t id, int stream, char *buf, size_t n)
{
	char path[512];
	cr_assert_eq(dd_job_output_path(e, id, 0, stream, path, sizeof(path)), 0);
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "output file %s exists", path);
	ssize_t k = read(fd, buf, n - 1);
	close(fd);
	cr_assert(k >= 0);
	buf[k] = 0;
	return (size_t)k;
}

Test(exec, exit_status_and_output)
{
	struct dd_engine *e = exec_engine(0, 0);
	struct dd_job_info info;
	const char *ok[] = {"sh", "-c", "echo hello; echo oops >&2", NULL};
	uint64_t id = run(e, ok, NULL, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert(info.exec);
	cr_assert_eq(info.exit_code, 0);
	cr_assert_eq(info.term_signal, 0);
	cr_assert_gt(info.pid, 0);
	char buf[256];
	slurp(e, id, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "hello\n");
	slurp(e, id, 2, buf, sizeof(buf));
	cr_assert_str_eq(buf, "oops\n");

	const char *three[] = {"/bin/sh", "-c", "exit 3", NULL};
	cr_assert_eq(wait_state(e, run(e, three, NULL, 0), &info), DD_FAILED);
	cr_assert_eq(info.exit_code, 3);
	cr_assert_str_eq(info.reason, "exit 3");

	const char *killed[] = {"sh", "-c", "kill -KILL $$", NULL};
	cr_assert_eq(wait_state(e, run(e, killed, NULL, 0), &info), DD_FAILED);
	cr_assert_eq(info.exit_code, -1);
	cr_assert_eq(info.term_signal, SIGKILL);
	cr_assert_str_eq(info.reason, "signal 9 (Killed)");
	dd_engine_destroy(e);
}

Test(exec, start_failures_name_their_cause_and_exit_like_a_shell)
{
	struct dd_engine *e = exec_engine(0, 0);
	struct dd_job_info info;
	const char *missing[] = {"/nonexistent/dd-no-such-program", NULL};
	cr_assert_eq(wait_state(e, run(e, missing, NULL, 0), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "/nonexistent/dd-no-such-program: No such file or directory");
	cr_assert_eq(info.exit_code, 127);
	const char *nopath[] = {"dd-no-such-program-in-path", NULL};
	uint64_t id = run(e, nopath, NULL, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "dd-no-such-program-in-path: No such file or directory");
	cr_assert_eq(info.exit_code, 127);
	char err[256]; /* the job's stderr says so too, as a shell's would */
	slurp(e, id, 2, err, sizeof(err));
	cr_assert_str_eq(err, "dispatchd: dd-no-such-program-in-path: No such file or directory\n");

	char path[64];
	snprintf(path, sizeof(path), "%s/noexec.sh", outdir);
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	const char *noexec[] = {path, NULL};
	cr_assert_eq(wait_state(e, run(e, noexec, NULL, 0), &info), DD_FAILED);
	/* even root: execve needs at least one x bit */
	char want[128];
	snprintf(want, sizeof(want), "%s: Permission denied", path);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(info.exit_code, 126);

	/* found in PATH but not executable: EACCES over a later miss */
	const char *env[] = {"PATH=/nonexistent-dir:", NULL};
	char dir[64];
	snprintf(dir, sizeof(dir), "%s", outdir);
	const char *byname[] = {"noexec.sh", NULL};
	struct dd_exec_spec px = {.env = env, .cwd = dir};
	cr_assert_eq(wait_state(e, run(e, byname, &px, 0), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "noexec.sh: Permission denied");
	cr_assert_eq(info.exit_code, 126);

	const char *badcwd[] = {"true", NULL};
	struct dd_exec_spec x = {.cwd = "/nonexistent-dir"};
	cr_assert_eq(wait_state(e, run(e, badcwd, &x, 0), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "cannot enter /nonexistent-dir: No such file or directory");
	cr_assert_eq(info.exit_code, 126);

	struct dd_exec_spec y = {.stdin_path = "/nonexistent-dir/in"};
	cr_assert_eq(wait_state(e, run(e, badcwd, &y, 0), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "cannot open stdin /nonexistent-dir/in: No such file or directory");
	cr_assert_eq(info.exit_code, 126);

	/* retried like any failed attempt; the reason survives in the record */
	struct dd_job_spec s = spec("procs");
	s.exec = &(struct dd_exec_spec){.argv = nopath};
	s.max_attempts = 2;
	s.backoff_ns = 1 * MS;
	cr_assert_eq(wait_state(e, submit_ok(e, &s), &info), DD_FAILED);
	cr_assert_eq(info.attempt, 2);
	cr_assert_eq(info.exit_code, 127);
	cr_assert_str_eq(info.reason, "dd-no-such-program-in-path: No such file or directory");
	dd_engine_destroy(e);
}

Test(exec, environment_cwd_and_rlimits)
{
	struct dd_engine *e = exec_engine(0, 0);
	struct dd_job_info info;
	char buf[512];
	const char *env[] = {"DD_TEST_FOO=bar baz", NULL};
	struct dd_rlimit rl = {.resource = RLIMIT_NOFILE, .cur = 77, .max = 77};
	struct dd_exec_spec x = {.env = env, .cwd = "/tmp", .rlimits = &rl, .nrlimits = 1};
	const char *argv[] = {"sh", "-c", "echo \"$DD_TEST_FOO\"; pwd; ulimit -n; echo ${HOME+home}",
			      NULL};
	setenv("HOME", "/root-test", 1);
	uint64_t id = run(e, argv, &x, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	slurp(e, id, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "bar baz\n/tmp\n77\nhome\n", "got %s", buf);

	/* replace: only what the job gives (PATH too, so use a full path) */
	const char *only[] = {"DD_TEST_FOO=x", NULL};
	struct dd_exec_spec y = {.env = only, .env_replace = true};
	const char *argv2[] = {"/bin/sh", "-c", "echo ${HOME-nohome} $DD_TEST_FOO", NULL};
	id = run(e, argv2, &y, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	slurp(e, id, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "nohome x\n", "got %s", buf);
	dd_engine_destroy(e);
}

Test(exec, output_is_capped)
{
	struct dd_engine *e = exec_engine(0, 1000);
	struct dd_job_info info;
	const char *argv[] = {"sh", "-c", "head -c 200000 /dev/zero; head -c 10 /dev/zero >&2", NULL};
	uint64_t id = run(e, argv, NULL, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	char path[512];
	struct stat st;
	dd_job_output_path(e, id, 0, 1, path, sizeof(path));
	cr_assert_eq(stat(path, &st), 0);
	/* the head and the tail, 500 bytes each, and the marker between */
	cr_assert_eq(st.st_size, 1000 + strlen("\n[dispatchd: 199000 bytes cut here]\n"));
	cr_assert_eq(info.output_cut[0], 199000);
	cr_assert_eq(info.output_cut[1], 0);
	dd_job_output_path(e, id, 0, 2, path, sizeof(path));
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 10);

	struct dd_exec_spec x = {.output_max = 5}; /* a job may set its own */
	const char *hello[] = {"echo", "hello world", NULL};
	id = run(e, hello, &x, 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	char buf[64];
	slurp(e, id, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "hel\n[dispatchd: 7 bytes cut here]\nd\n");
	dd_engine_destroy(e);
}

Test(exec, timeout_sends_term_then_kill)
{
	struct dd_engine *e = exec_engine(200 * MS, 0);
	struct dd_job_info info;
	const char *sleeper[] = {"sleep", "30", NULL};
	uint64_t id = run(e, sleeper, NULL, 100 * MS);
	cr_assert_eq(wait_state(e, id, &info), DD_TIMED_OUT);
	cr_assert_eq(info.term_signal, SIGTERM);
	cr_assert_str_eq(info.reason, "timeout");

	/* ignores SIGTERM (and so does its child): SIGKILL after the grace */
	const char *stubborn[] = {"sh", "-c", "trap '' TERM; sleep 30; true", NULL};
	id = run(e, stubborn, NULL, 100 * MS);
	cr_assert_eq(wait_state(e, id, &info), DD_TIMED_OUT);
	cr_assert_eq(info.term_signal, SIGKILL);
	cr_assert_geq(info.ended_ns - info.started_ns, 290 * MS, "timeout + grace");
	dd_engine_destroy(e);
}

Test(exec, cancel_kills_the_process_group)
{
	struct dd_engine *e = exec_engine(0, 0);
	struct dd_job_info info;
	char pidfile[128];
	snprintf(pidfile, sizeof(pidfile), "%s/child.pid", outdir);
	char script[256];
	/* a grandchild in the same group: it must die with the job */
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; wait", pidfile);
	const char *argv[] = {"sh", "-c", script, NULL};
	uint64_t id = run(e, argv, NULL, 0);
	await_state(e, id, DD_RUNNING);
	int pid = 0;
	for (int i = 0; i < 500 && pid == 0; i++) {
		FILE *f = fopen(pidfile, "r");
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (!pid)
			sleep_ms(10);
	}
	cr_assert_gt(pid, 0, "the grandchild started");
	cr_assert_eq(dd_cancel(e, id), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_CANCELLED);
	cr_assert_eq(info.term_signal, SIGTERM);
	/* the grandchild is reparented; it gets the group's SIGTERM too */
	int gone = 0;
	for (int i = 0; i < 300 && !gone; i++) {
		char st[64], line[256];
		snprintf(st, sizeof(st), "/proc/%d/stat", pid);
		FILE *f = fopen(st, "r");
		gone = !f;
		if (f) {
			/* a zombie waiting for init to reap it counts as gone */
			gone = fgets(line, sizeof(line), f) && strstr(line, ") Z ");
			fclose(f);
		}
		if (!gone)
			sleep_ms(10);
	}
	cr_assert(gone, "grandchild %d was killed with its group", pid);
	cr_assert_eq(dd_cancel(e, id), DD_ETERMINAL);
	dd_engine_destroy(e);
}

Test(exec, retries_a_failing_process)
{
	struct dd_engine *e = exec_engine(0, 0);
	struct dd_job_info info;
	const char *argv[] = {"false", NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.max_attempts = 3;
	s.backoff_ns = 1 * MS;
	cr_assert_eq(wait_state(e, submit_ok(e, &s), &info), DD_FAILED);
	cr_assert_eq(info.attempt, 3);
	cr_assert_eq(info.exit_code, 1);
	dd_engine_destroy(e);
}

Test(exec, runs_as_the_owner_when_root)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch users");
	struct dd_engine *e = exec_engine(0, 0);
	struct dd_job_info info;
	const char *argv[] = {"sh", "-c", "id -u; id -g", NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.flags = DD_JOB_OWNER;
	s.uid = 65534;
	s.gid = 65534;
	uint64_t id = submit_ok(e, &s);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert_eq(info.uid, 65534);
	char buf[64];
	slurp(e, id, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "65534\n65534\n");

	s.flags = 0; /* owned by the engine's user: root */
	id = submit_ok(e, &s);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	slurp(e, id, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "0\n0\n");
	dd_engine_destroy(e);
}

Test(exec, rejects_bad_specs)
{
	struct dd_engine *e = exec_engine(0, 0);
	uint64_t id;
	const char *empty[] = {NULL};
	struct dd_exec_spec x = {.argv = empty};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL);
	const char *argv[] = {"true", NULL};
	const char *env[] = {"NOEQUALS", NULL};
	x = (struct dd_exec_spec){.argv = argv, .env = env};
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL);
	x = (struct dd_exec_spec){.argv = argv};
	s.payload = "x";
	s.payload_len = 1;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL);
	/* a kind first used for process jobs is an external queue for others */
	s.payload_len = 0;
	s.payload = NULL;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	s.exec = NULL;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	await_state(e, id, DD_QUEUED);
	struct dd_lease l;
	cr_assert_eq(dd_reserve(e, "procs", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.id, id);
	dd_engine_destroy(e);
}

Test(exec, exits_collected_by_pidfd_poll_on_older_kernels)
{
	setenv("DD_NO_WAITID", "1", 1); /* this test's own process only */
	struct dd_engine *e = exec_engine(100 * MS, 0);
	struct dd_job_info info;
	const char *three[] = {"sh", "-c", "exit 3", NULL};
	cr_assert_eq(wait_state(e, run(e, three, NULL, 0), &info), DD_FAILED);
	cr_assert_eq(info.exit_code, 3);
	const char *sleeper[] = {"sleep", "30", NULL};
	cr_assert_eq(wait_state(e, run(e, sleeper, NULL, 50 * MS), &info), DD_TIMED_OUT);
	cr_assert_eq(info.term_signal, SIGTERM);
	dd_engine_destroy(e);
}

/* Jobs that wait with a passed standard input hold a descriptor each: the
 * engine holds at most a quarter of what the process may open, refuses
 * more with -EMFILE, and takes new ones once jobs let theirs go. */
Test(exec, held_standard_inputs_are_bounded)
{
	struct rlimit old, low = {.rlim_cur = 256, .rlim_max = 0};
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low.rlim_max = old.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	struct dd_engine *e = exec_engine(0, 0);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	const char *t[] = {"true", NULL};
	struct dd_exec_spec x = {.argv = t, .flags = DD_EXEC_STDIN_FD, .stdin_fd = p[0]};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.delay_ns = 3600ull * 1000000000ull; /* they wait, holding theirs */
	uint64_t ids[65], id;
	int n = 0, r;
	while (n < 65 && (r = dd_submit(e, &s, 0, &ids[n])) == 0)
		n++;
	cr_assert_eq(r, -EMFILE, "%s after %d", dd_strerror(r), n);
	cr_assert_eq(n, 64, "held %d: a quarter of 256 is 64", n);
	cr_assert_eq(dd_cancel(e, ids[0]), 0);
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0, "a cancelled job let its copy go");
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EMFILE);
	dd_engine_destroy(e);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
