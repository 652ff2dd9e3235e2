/* The pool of CPUs and memory process jobs take from: never more at once
 * than it holds, judged from the jobs' own start and end times; priority
 * order when room frees; a large job at the head is not passed by small
 * ones; a job asking more than the pool holds is refused at submit; a job
 * runs on the CPUs it was granted; in-process jobs are unaffected. */
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char dir[] = "/tmp/dd-pool-XXXXXX"; /* mkdtemp fills the X's */

static struct dd_engine *engine(unsigned cpus, uint64_t mem)
{
	cr_assert_not_null(mkdtemp(dir));
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 2;
	cfg.output_dir = dir;
	cfg.pool_cpus = cpus;
	if (mem)
		cfg.pool_mem = mem;
	return make_engine(&cfg);
}

static uint64_t job(struct dd_engine *e, const char *script, unsigned cpus, uint64_t mem,
		    int priority)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv, .cwd = dir, .cpus = cpus, .mem = mem};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.priority = priority;
	return submit_ok(e, &s);
}

static void wait_file(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
		sleep_ms(1);
	cr_assert_eq(access(path, F_OK), 0, "%s never appeared", path);
}

static void touch(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
}

static void read_file(const char *name, char *buf, size_t n)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	size_t k = fread(buf, 1, n - 1, f);
	buf[k] = 0;
	fclose(f);
}

static uint64_t waiting(struct dd_engine *e)
{
	struct dd_stats st;
	dd_stats_counters(e, &st);
	return st.total.pool_waiting;
}

/* a job that holds its CPU until the file "gate" exists, and says so */
#define GATED(name) "echo " name " >> order; while [ ! -e gate ]; do sleep 0.01; done"

Test(pool, six_one_cpu_jobs_on_two_cpus_never_run_three_at_once)
{
	struct dd_engine *e = engine(2, 0);
	uint64_t ids[6];
	/* each notes its own start and end (monotonic seconds from
	 * /proc/uptime, one clock for all) */
	for (int i = 0; i < 6; i++)
		ids[i] = job(e, "read a b < /proc/uptime; echo \"$a +1\" >> times; sleep 0.3; "
				"read a b < /proc/uptime; echo \"$a -1\" >> times",
			     1, 0, DD_PRIO_NORMAL);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(wait_state(e, ids[i], NULL), DD_SUCCEEDED);
	char path[256];
	snprintf(path, sizeof(path), "%s/times", dir);
	int most = most_at_once(path, 12);
	cr_assert_leq(most, 2, "%d ran at once", most);
	cr_assert_eq(most, 2, "the pool's two CPUs were never both used");
	dd_engine_destroy(e);
}

Test(pool, freed_room_goes_by_priority)
{
	struct dd_engine *e = engine(1, 0);
	uint64_t blocker = job(e, GATED("blocker"), 1, 0, DD_PRIO_NORMAL);
	wait_file("order");
	uint64_t ids[4] = {
		job(e, "echo low1 >> order", 1, 0, DD_PRIO_LOW),
		job(e, "echo low2 >> order", 1, 0, DD_PRIO_LOW),
		job(e, "echo urgent >> order", 1, 0, DD_PRIO_URGENT),
		job(e, "echo normal >> order", 1, 0, DD_PRIO_NORMAL),
	};
	for (int i = 0; i < 2000 && waiting(e) < 4; i++)
		sleep_ms(1);
	cr_assert_eq(waiting(e), 4);
	touch("gate");
	cr_assert_eq(wait_state(e, blocker, NULL), DD_SUCCEEDED);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(wait_state(e, ids[i], NULL), DD_SUCCEEDED);
	char buf[256];
	read_file("order", buf, sizeof(buf));
	cr_assert_str_eq(buf, "blocker\nurgent\nnormal\nlow1\nlow2\n");
	dd_engine_destroy(e);
}

Test(pool, a_large_job_at_the_head_is_not_passed_by_small_ones)
{
	struct dd_engine *e = engine(2, 0);
	uint64_t blocker = job(e, GATED("blocker"), 1, 0, DD_PRIO_NORMAL);
	wait_file("order");
	/* one CPU is free: the small ones would fit, the large one not */
	uint64_t big = job(e, "echo big >> order", 2, 0, DD_PRIO_NORMAL);
	uint64_t small[3];
	for (int i = 0; i < 3; i++)
		small[i] = job(e, "echo small >> order", 1, 0, DD_PRIO_NORMAL);
	for (int i = 0; i < 2000 && waiting(e) < 4; i++)
		sleep_ms(1);
	cr_assert_eq(waiting(e), 4, "small jobs went past the large one");
	touch("gate");
	cr_assert_eq(wait_state(e, big, NULL), DD_SUCCEEDED);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(wait_state(e, small[i], NULL), DD_SUCCEEDED);
	cr_assert_eq(wait_state(e, blocker, NULL), DD_SUCCEEDED);
	char buf[256];
	read_file("order", buf, sizeof(buf));
	cr_assert_str_eq(buf, "blocker\nbig\nsmall\nsmall\nsmall\n");
	dd_engine_destroy(e);
}

Test(pool, more_than_the_pool_holds_is_refused_at_submit)
{
	struct dd_engine *e = engine(2, 1u << 30);
	const char *argv[] = {"true", NULL};
	struct dd_exec_spec x = {.argv = argv, .cpus = 3};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), DD_ERESOURCES);
	x.cpus = 2;
	x.mem = (1u << 30) + 1;
	cr_assert_eq(dd_submit(e, &s, 0, &id), DD_ERESOURCES);
	x.mem = 1u << 30;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	cr_assert_eq(wait_state(e, id, NULL), DD_SUCCEEDED);
	struct dd_stats st;
	dd_stats_counters(e, &st);
	cr_assert_eq(st.total.pool_cpus, 2);
	cr_assert_eq(st.total.pool_cpus_free, 2);
	cr_assert_eq(st.total.pool_mem_free, 1u << 30);
	dd_engine_destroy(e);
}

Test(pool, a_job_runs_on_the_cpus_it_was_granted)
{
	struct dd_engine *e = engine(DD_POOL_AUTO, 0);
	cpu_set_t mine;
	cr_assert_eq(sched_getaffinity(0, sizeof(mine), &mine), 0);
	int ncpu = CPU_COUNT(&mine);
	uint64_t one = job(e, "grep Cpus_allowed_list /proc/self/status > one", 1, 0,
			   DD_PRIO_NORMAL);
	cr_assert_eq(wait_state(e, one, NULL), DD_SUCCEEDED);
	char buf[256];
	read_file("one", buf, sizeof(buf));
	/* one CPU: a single number, no range or list */
	const char *list = strchr(buf, ':') + 1;
	list += strspn(list, " \t");
	cr_assert(!strpbrk(list, ",-"), "%s", buf);
	if (ncpu >= 2) {
		uint64_t two = job(e, "grep Cpus_allowed_list /proc/self/status > two", 2, 0,
				   DD_PRIO_NORMAL);
		cr_assert_eq(wait_state(e, two, NULL), DD_SUCCEEDED);
		read_file("two", buf, sizeof(buf));
		list = strchr(buf, ':') + 1;
		cr_assert(strpbrk(list, ",-"), "two CPUs: %s", buf);
	}
	dd_engine_destroy(e);
}

Test(pool, without_a_pool_process_jobs_wait_and_handler_jobs_run)
{
	struct dd_engine *e = engine(0, 0);
	uint64_t p = job(e, "true", 1, 0, DD_PRIO_NORMAL);
	/* nothing to refuse it against: it waits for a taker */
	for (int i = 0; i < 2000 && waiting(e) < 1; i++)
		sleep_ms(1);
	cr_assert_eq(waiting(e), 1);
	struct dd_job_spec s = spec("ok");
	cr_assert_eq(wait_state(e, submit_ok(e, &s), NULL), DD_SUCCEEDED);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, p, &info), 0);
	cr_assert_eq(info.state, DD_QUEUED);
	/* a job waiting in the pool can be cancelled */
	cr_assert_eq(dd_cancel(e, p), 0);
	cr_assert_eq(wait_state(e, p, NULL), DD_CANCELLED);
	cr_assert_eq(waiting(e), 0);
	dd_engine_destroy(e);
}
