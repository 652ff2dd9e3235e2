/* Limits on running process jobs per owner and per queue: never more at
 * once than the limit, judged from the jobs' own start and end times; a
 * job over its owner's limit waits aside, saying why, and does not hold
 * back another owner's jobs in the pool; raised limits let held jobs go;
 * a job held by a limit can be cancelled. Another owner is the real user
 * "nobody" (root here; skipped, saying so, without root). */
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char top[] = "/tmp/dd-limits-XXXXXX"; /* mkdtemp fills the X's */
static char dir[64], out[64]; /* the jobs' notes (anyone's), their output */

static struct dd_engine *engine(const struct dd_run_limit *lim, size_t n)
{
	cr_assert_not_null(mkdtemp(top));
	chmod(top, 0755);
	snprintf(dir, sizeof(dir), "%s/w", top);
	snprintf(out, sizeof(out), "%s/out", top);
	cr_assert_eq(mkdir(dir, 0777), 0);
	chmod(dir, 0777); /* "nobody" writes its notes here too */
	cr_assert_eq(mkdir(out, 0700), 0);
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 2;
	cfg.output_dir = out;
	cfg.pool_cpus = 8; /* room for all: only the limits hold jobs back */
	cfg.limits = lim;
	cfg.nlimits = n;
	return make_engine(&cfg);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	cr_assert_eq(system(cmd), 0);
}

static uint64_t job(struct dd_engine *e, const char *script, uint32_t uid, uint32_t gid,
		    const char *kind)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv, .cwd = dir};
	struct dd_job_spec s = spec(kind);
	s.exec = &x;
	if (uid != geteuid()) {
		s.flags = DD_JOB_OWNER;
		s.uid = uid;
		s.gid = gid;
	}
	return submit_ok(e, &s);
}

static bool exists(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void touch(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_CREAT | O_WRONLY, 0666);
	cr_assert_geq(fd, 0);
	close(fd);
}

/* most_at_once() of the notes @name in the jobs' dir */
static int most(const char *name, int events)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return most_at_once(path, events);
}

#define TIMED "read a b < /proc/uptime; echo \"$a +1\" >> times; sleep 0.2; " \
	      "read a b < /proc/uptime; echo \"$a -1\" >> times"

Test(limits, an_owner_never_runs_more_than_its_limit, .fini = teardown)
{
	struct dd_run_limit lim[] = {{.uid = DD_LIMIT_ANY_USER, .max = 2}};
	struct dd_engine *e = engine(lim, 1);
	uint64_t ids[5];
	for (int i = 0; i < 5; i++)
		ids[i] = job(e, TIMED, geteuid(), getegid(), "procs");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(wait_state(e, ids[i], NULL), DD_SUCCEEDED);
	int k = most("times", 10);
	cr_assert_leq(k, 2, "%d ran at once under a limit of 2", k);
	cr_assert_eq(k, 2, "the limit's two were never both used");
	dd_engine_destroy(e);
}

Test(limits, a_queue_never_runs_more_than_its_limit, .fini = teardown)
{
	struct dd_run_limit lim[] = {{.kind = "procs", .max = 1}};
	struct dd_engine *e = engine(lim, 1);
	uint64_t ids[4];
	for (int i = 0; i < 4; i++)
		ids[i] = job(e, TIMED, geteuid(), getegid(), "procs");
	/* another queue is not limited by it */
	uint64_t other = job(e, "true", geteuid(), getegid(), "other");
	cr_assert_eq(wait_state(e, other, NULL), DD_SUCCEEDED);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(wait_state(e, ids[i], NULL), DD_SUCCEEDED);
	cr_assert_eq(most("times", 8), 1);
	dd_engine_destroy(e);
}

Test(limits, a_held_job_holds_back_no_other_owner, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("another owner's jobs need root");
	struct passwd *nb = getpwnam("nobody");
	cr_assert_not_null(nb);
	struct dd_run_limit lim[] = {{.uid = geteuid(), .max = 1}};
	struct dd_engine *e = engine(lim, 1);
	/* ours: one runs (until "gate"), the next waits aside */
	uint64_t a = job(e, "touch a; while [ ! -e gate ]; do sleep 0.01; done", geteuid(),
			 getegid(), "procs");
	for (int i = 0; i < 60000 && !exists("a"); i++)
		sleep_ms(1);
	uint64_t b = job(e, "touch b", geteuid(), getegid(), "procs");
	/* nobody's, submitted after: runs while ours waits */
	uint64_t c = job(e, "touch c", nb->pw_uid, nb->pw_gid, "procs");
	struct dd_job_info ji;
	cr_assert_eq(wait_state(e, c, &ji), DD_SUCCEEDED, "%s", ji.reason);
	cr_assert_eq(dd_job_get(e, b, &ji), 0);
	cr_assert_eq(ji.state, DD_QUEUED);
	cr_assert_str_eq(ji.reason, "waiting: its owner's limit of running process jobs");
	cr_assert(!exists("b"));
	touch("gate");
	cr_assert_eq(wait_state(e, a, NULL), DD_SUCCEEDED);
	cr_assert_eq(wait_state(e, b, &ji), DD_SUCCEEDED);
	dd_engine_destroy(e);
}

Test(limits, raised_limits_let_held_jobs_go_and_held_jobs_can_be_cancelled, .fini = teardown)
{
	struct dd_run_limit lim[] = {{.uid = DD_LIMIT_ANY_USER, .max = 1}};
	struct dd_engine *e = engine(lim, 1);
	uint64_t a = job(e, "touch a; while [ ! -e gate ]; do sleep 0.01; done", geteuid(),
			 getegid(), "procs");
	for (int i = 0; i < 60000 && !exists("a"); i++)
		sleep_ms(1);
	uint64_t b = job(e, "touch b; while [ ! -e gate ]; do sleep 0.01; done", geteuid(),
			 getegid(), "procs");
	uint64_t c = job(e, "touch c", geteuid(), getegid(), "procs");
	await_state(e, c, DD_QUEUED);
	cr_assert_eq(dd_cancel(e, c), 0);
	cr_assert_eq(wait_state(e, c, NULL), DD_CANCELLED);
	cr_assert(!exists("b"));
	struct dd_run_limit more[] = {{.uid = DD_LIMIT_ANY_USER, .max = 2}};
	cr_assert_eq(dd_engine_set_limits(e, more, 1), 0);
	for (int i = 0; i < 60000 && !exists("b"); i++)
		sleep_ms(1);
	cr_assert(exists("b"), "the raised limit let the held job start");
	touch("gate");
	cr_assert_eq(wait_state(e, a, NULL), DD_SUCCEEDED);
	cr_assert_eq(wait_state(e, b, NULL), DD_SUCCEEDED);
	cr_assert(!exists("c"));
	dd_engine_destroy(e);
}
