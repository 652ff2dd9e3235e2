/* proc/cgroup.c on this machine's real cgroups: a process tree that
 * outlives its main process (a background child, a setsid grandchild) is
 * seen and killed; a memory limit kills with its count; CPU time and
 * memory peaks are read; a fork bomb under a limit is killed whole. Root
 * only: without root (and no delegation) dd_proc_cg_open must refuse and
 * say why, which the last test checks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static struct dd_proc_cg *cg;
static char name[64];

static void setup(void)
{
	char why[512] = "";
	if (geteuid() != 0)
		return;
	snprintf(name, sizeof(name), "dd-test-%d", (int)getpid());
	cr_assert_eq(dd_proc_cg_open(name, &cg, why, sizeof(why)), 0, "%s", why);
}

static void teardown(void)
{
	dd_proc_cg_close(cg);
	cg = NULL;
}

/* Starts sh -c @script in @j; returns the pidfd (our child). */
static int start(struct dd_proc_cg_job *j, const char *script, pid_t *pid)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv};
	void *buf;
	size_t len;
	struct dd_proc_spec spec;
	cr_assert_eq(dd_proc_spec_encode(&x, &buf, &len), 0);
	cr_assert_eq(dd_proc_spec_decode(buf, len, &spec), 0);
	free(buf);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct dd_proc_spawn sp = {.spec = &spec, .in = -1, .out = null, .err = null,
				   .cg_procs = j->procs};
	struct dd_proc_child c;
	char why[256] = "";
	int rc = dd_proc_spawn(&sp, &c, why, sizeof(why));
	cr_assert_eq(rc, 0, "spawn: %d %s", rc, why);
	close(null);
	dd_proc_spec_free(&spec);
	if (pid)
		*pid = c.pid;
	return c.pidfd;
}

/* Waits for the main process; its wait status. */
static int reap(int pidfd)
{
	siginfo_t si = {0};
	cr_assert_eq(waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED), 0);
	close(pidfd);
	return si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
}

/* Waits (on cgroup.events, as the engine does) until @j is empty. */
static void wait_empty(struct dd_proc_cg_job *j, int ms)
{
	for (;;) {
		int p = dd_proc_cg_job_populated(j);
		cr_assert_geq(p, 0);
		if (!p)
			return;
		struct pollfd pf = {.fd = j->events, .events = POLLPRI};
		int n = poll(&pf, 1, ms);
		cr_assert_gt(n, 0, "still populated after %d ms", ms);
	}
}

Test(cgroup, opens_with_the_tree_on_v2_and_a_memory_controller, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	const char *d = dd_proc_cg_describe(cg);
	cr_assert(strstr(d, "cgroup2 ") && strstr(d, name), "%s", d);
	/* this machine's memory controller is on v1 or v2: either is used */
	bool v1 = access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0;
	char ctl[256] = "";
	FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");
	if (f) {
		if (!fgets(ctl, sizeof(ctl), f))
			ctl[0] = 0;
		fclose(f);
	}
	if (v1 || strstr(ctl, "memory"))
		cr_assert(dd_proc_cg_memory(cg), "%s", d);
}

Test(cgroup, leftovers_outlive_the_main_process_and_die_with_the_kill, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job j;
	cr_assert_eq(dd_proc_cg_job_create(cg, "2.1", 0, NULL, &j), 0);
	/* the main process ends at once; a background sleep and a setsid
	 * grandchild (a session of its own, out of reach of a process-group
	 * kill) stay in the tree */
	int pidfd = start(&j, "sleep 300 & setsid sh -c 'sleep 300 & sleep 300' & exit 3", NULL);
	cr_assert_eq(reap(pidfd), 3 << 8);
	cr_assert_eq(dd_proc_cg_job_populated(&j), 1);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), -EBUSY);
	cr_assert_geq(dd_proc_cg_job_signal(cg, &j, SIGKILL), 0);
	wait_empty(&j, 10000);
	pid_t pids[8];
	cr_assert_eq(dd_proc_cg_job_procs(&j, pids, 8), 0);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

Test(cgroup, sigterm_reaches_every_process_of_the_tree, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job j;
	cr_assert_eq(dd_proc_cg_job_create(cg, "3.1", 0, NULL, &j), 0);
	int pidfd = start(&j, "setsid sleep 300 & sleep 300 & wait", NULL);
	/* the tree has formed: sh and its two sleeps */
	pid_t pids[8];
	int n = 0;
	for (int i = 0; i < 10000 && (n = dd_proc_cg_job_procs(&j, pids, 8)) < 3; i++)
		usleep(1000);
	cr_assert_eq(n, 3);
	cr_assert_eq(dd_proc_cg_job_signal(cg, &j, SIGTERM), 3);
	int st = reap(pidfd);
	cr_assert(st == SIGTERM || st == (128 + SIGTERM) << 8, "status %d", st);
	wait_empty(&j, 10000);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

Test(cgroup, a_clean_exit_leaves_an_empty_cgroup_at_once, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job j;
	cr_assert_eq(dd_proc_cg_job_create(cg, "4.1", 0, NULL, &j), 0);
	cr_assert_eq(reap(start(&j, "exit 0", NULL)), 0);
	cr_assert_eq(dd_proc_cg_job_populated(&j), 0);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

Test(cgroup, a_memory_limit_kills_and_counts, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	if (!dd_proc_cg_memory(cg))
		cr_skip_test("no memory controller: %s", dd_proc_cg_describe(cg));
	struct dd_proc_cg_job j;
	cr_assert_eq(dd_proc_cg_job_create(cg, "5.1", 32u << 20, NULL, &j), 0);
	int st = reap(start(&j, "exec python3 -c 'x = bytearray(256 << 20)'", NULL));
	cr_assert_eq(st, SIGKILL, "status %d", st);
	struct dd_proc_usage u;
	dd_proc_cg_job_usage(cg, &j, &u);
	cr_assert_geq(u.oom_kills, 1);
	cr_assert(u.have_mem);
	cr_assert_leq(u.mem_peak, 32u << 20);
	cr_assert_gt(u.mem_peak, 4u << 20);
	wait_empty(&j, 10000);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

Test(cgroup, cpu_time_and_peak_are_the_trees, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job j;
	cr_assert_eq(dd_proc_cg_job_create(cg, "6.1", 0, NULL, &j), 0);
	/* the work is a grandchild's: the main process's own rusage would
	 * not hold it, the cgroup's does */
	const char *busy = "python3 -c 'import time\n"
			   "t = time.process_time()\n"
			   "x = bytearray(40 << 20)\n"
			   "while time.process_time() - t < 0.4: pass' & wait";
	cr_assert_eq(reap(start(&j, busy, NULL)), 0);
	struct dd_proc_usage u;
	dd_proc_cg_job_usage(cg, &j, &u);
	cr_assert(u.have_cpu);
	cr_assert_geq(u.cpu_ns, 400000000ull);
	if (dd_proc_cg_memory(cg)) {
		cr_assert(u.have_mem);
		cr_assert_geq(u.mem_peak, 40u << 20);
	}
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

Test(cgroup, a_fork_bomb_under_a_memory_limit_is_killed_whole, .init = setup, .fini = teardown, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	if (!dd_proc_cg_memory(cg))
		cr_skip_test("no memory controller: %s", dd_proc_cg_describe(cg));
	struct dd_proc_cg_job j;
	cr_assert_eq(dd_proc_cg_job_create(cg, "7.1", 64u << 20, NULL, &j), 0);
	pid_t pid;
	int pidfd = start(&j, "b() { b | b & }; b; sleep 300", &pid);
	/* let it grow into its limit: the cgroup has many processes */
	struct dd_proc_usage u = {0};
	for (int i = 0; i < 5000 && u.mem_peak < (16u << 20); i++) {
		usleep(1000);
		dd_proc_cg_job_usage(cg, &j, &u);
	}
	cr_assert_geq(dd_proc_cg_job_signal(cg, &j, SIGKILL), 0);
	wait_empty(&j, 20000);
	cr_assert_eq(reap(pidfd), SIGKILL);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

Test(cgroup, a_taken_name_with_processes_is_refused, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job j, k;
	cr_assert_eq(dd_proc_cg_job_create(cg, "8.1", 0, NULL, &j), 0);
	int pidfd = start(&j, "sleep 300", NULL);
	/* an earlier life's cgroup with its process still in it: a second
	 * start under that name is refused */
	cr_assert_eq(dd_proc_cg_job_create(cg, "8.1", 0, NULL, &k), -EBUSY);
	cr_assert_geq(dd_proc_cg_job_signal(cg, &j, SIGKILL), 0);
	cr_assert_eq(reap(pidfd), SIGKILL);
	wait_empty(&j, 10000);
	/* an empty one is taken over */
	cr_assert_eq(dd_proc_cg_job_create(cg, "8.1", 0, NULL, &k), 0);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &k), 0);
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &j), 0);
}

/* The text of @file in the directory @dir, newline cut. */
static void read_file(int dir, const char *file, char *buf, size_t n)
{
	int fd = openat(dir, file, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", file, strerror(errno));
	ssize_t k = read(fd, buf, n - 1);
	close(fd);
	cr_assert_geq(k, 0);
	buf[k] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

static ino_t inode(int fd)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	return st.st_ino;
}

Test(cgroup, a_reused_v1_cgroup_keeps_nothing_of_its_last_tree, .init = setup, .fini = teardown, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job a, b;
	cr_assert_eq(dd_proc_cg_job_create(cg, "11.1", 32u << 20, NULL, &a), 0);
	if (a.v1[0] < 0 && a.v1[1] < 0 && a.v1[2] < 0)
		cr_skip_test("no v1 hierarchy in use (pure cgroup2): nothing is reused: %s",
			     dd_proc_cg_describe(cg));
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	cr_assert_eq(dd_proc_cg_job_confine(cg, &a, 50, &one), 0);
	ino_t ino[3];
	for (int i = 0; i < 3; i++)
		ino[i] = a.v1[i] >= 0 ? inode(a.v1[i]) : 0;
	/* the first tree is killed over its limit */
	int st = reap(start(&a, "exec python3 -c 'x = bytearray(256 << 20)'", NULL));
	cr_assert_eq(st, SIGKILL, "status %d", st);
	struct dd_proc_usage u;
	dd_proc_cg_job_usage(cg, &a, &u);
	wait_empty(&a, 10000);
	cr_assert_eq(dd_proc_cg_job_recycle(cg, &a), 0);
	/* the next tree has the same v1 cgroups, under its own name, with
	 * no limit, no pids.max, every CPU, and no kill of its own */
	cr_assert_eq(dd_proc_cg_job_create(cg, "12.1", 0, NULL, &b), 0);
	cr_assert_eq(dd_proc_cg_job_confine(cg, &b, 0, NULL), 0);
	for (int i = 0; i < 3; i++)
		if (b.v1[i] >= 0)
			cr_assert_eq(inode(b.v1[i]), ino[i], "v1 hierarchy %d: not reused", i);
	char v[256];
	if (b.v1[1] >= 0) {
		read_file(b.v1[1], "pids.max", v, sizeof(v));
		cr_assert_str_eq(v, "max");
	}
	if (b.v1[2] >= 0) {
		char parent[256];
		int s = openat(b.v1[2], "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		read_file(s, "cpuset.cpus", parent, sizeof(parent));
		close(s);
		read_file(b.v1[2], "cpuset.cpus", v, sizeof(v));
		cr_assert_str_eq(v, parent);
	}
	cr_assert_eq(reap(start(&b, "exec python3 -c 'x = bytearray(64 << 20)'", NULL)), 0);
	dd_proc_cg_job_usage(cg, &b, &u);
	cr_assert_eq(u.oom_kills, 0);
	if (b.v1[0] >= 0) {
		cr_assert(u.have_mem);
		cr_assert_geq(u.mem_peak, 64u << 20);
	}
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &b), 0);
}

Test(cgroup, a_memory_cgroup_left_holding_page_cache_is_not_reused, .init = setup, .fini = teardown, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job a, b;
	cr_assert_eq(dd_proc_cg_job_create(cg, "13.1", 0, NULL, &a), 0);
	if (a.v1[0] < 0)
		cr_skip_test("no v1 memory hierarchy in use: %s", dd_proc_cg_describe(cg));
	ino_t was = inode(a.v1[0]);
	/* 8 MiB of a file's pages stay charged to it after its tree ends */
	char dir[] = "/var/tmp/dd-cgcache-XXXXXX"; /* mkdtemp fills the X's */
	cr_assert_not_null(mkdtemp(dir));
	char script[512];
	snprintf(script, sizeof(script), "head -c 8388608 /dev/zero > %s/f", dir);
	cr_assert_eq(reap(start(&a, script, NULL)), 0);
	wait_empty(&a, 10000);
	cr_assert_eq(dd_proc_cg_job_recycle(cg, &a), 0);
	cr_assert_eq(dd_proc_cg_job_create(cg, "14.1", 0, NULL, &b), 0);
	cr_assert_neq(inode(b.v1[0]), was, "a memory cgroup holding 8 MiB of cache was reused");
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &b), 0);
	snprintf(script, sizeof(script), "%s/f", dir);
	unlink(script);
	rmdir(dir);
}

Test(cgroup, closing_removes_the_spares_and_the_subtree, .init = setup, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job a;
	cr_assert_eq(dd_proc_cg_job_create(cg, "15.1", 0, NULL, &a), 0);
	const char *d = strstr(dd_proc_cg_describe(cg), "pids on v1 ");
	if (!d) {
		dd_proc_cg_job_destroy(cg, &a);
		dd_proc_cg_close(cg);
		cr_skip_test("no v1 pids hierarchy in use: nothing is reused");
	}
	char sub[512];
	snprintf(sub, sizeof(sub), "%.*s", (int)strcspn(d + 11, ","), d + 11);
	cr_assert_eq(reap(start(&a, "exit 0", NULL)), 0);
	wait_empty(&a, 10000);
	cr_assert_eq(dd_proc_cg_job_recycle(cg, &a), 0);
	char spare[600];
	snprintf(spare, sizeof(spare), "%s/spare.0", sub);
	cr_assert_eq(access(spare, F_OK), 0, "%s", spare);
	dd_proc_cg_close(cg);
	cg = NULL;
	cr_assert_neq(access(sub, F_OK), 0, "%s is left", sub);
}

Test(cgroup, a_v1_cgroup_a_process_stays_in_is_not_reused, .init = setup, .fini = teardown, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("cgroups need root (or a delegated cgroup)");
	struct dd_proc_cg_job a, b;
	cr_assert_eq(dd_proc_cg_job_create(cg, "16.1", 0, NULL, &a), 0);
	if (a.v1[0] < 0 && a.v1[1] < 0 && a.v1[2] < 0)
		cr_skip_test("no v1 hierarchy in use: nothing is reused: %s", dd_proc_cg_describe(cg));
	/* a root process leaves its v2 cgroup for the subtree's parent and
	 * stays in its v1 ones */
	char link[64], dir[512], script[1200];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", a.dir);
	ssize_t k = readlink(link, dir, sizeof(dir) - 1);
	cr_assert_gt(k, 0);
	dir[k] = 0;
	*strrchr(dir, '/') = 0;
	*strrchr(dir, '/') = 0;
	snprintf(script, sizeof(script), "sh -c 'echo $$ > %s/cgroup.procs; exec sleep 300' & echo $!",
		 dir);
	int pidfd = start(&a, script, NULL);
	cr_assert_eq(reap(pidfd), 0);
	wait_empty(&a, 10000);
	pid_t left[4];
	int n = 0;
	for (int i = 0; i < 10000 && n < 1; i++) {
		for (int h = 0; h < 3 && n < 1; h++) {
			int fd = a.v1[h] >= 0 ? openat(a.v1[h], "cgroup.procs", O_RDONLY) : -1;
			char buf[64] = "";
			if (fd >= 0) {
				ssize_t r = read(fd, buf, sizeof(buf) - 1);
				close(fd);
				if (r > 0)
					left[n++] = (pid_t)atol(buf);
			}
		}
		if (!n)
			usleep(1000);
	}
	cr_assert_eq(n, 1, "the process is in no v1 cgroup of the tree");
	/* its v1 cgroups are not kept, nor removed while it is there */
	cr_assert_eq(dd_proc_cg_job_recycle(cg, &a), -EBUSY);
	ino_t was = inode(a.v1[0] >= 0 ? a.v1[0] : a.v1[1] >= 0 ? a.v1[1] : a.v1[2]);
	cr_assert_eq(dd_proc_cg_job_create(cg, "17.1", 0, NULL, &b), 0);
	int h = b.v1[0] >= 0 ? 0 : b.v1[1] >= 0 ? 1 : 2;
	cr_assert_neq(inode(b.v1[h]), was, "a v1 cgroup holding a process was reused");
	cr_assert_eq(dd_proc_cg_job_destroy(cg, &b), 0);
	kill(left[0], SIGKILL);
	for (int i = 0; i < 10000 && dd_proc_cg_job_destroy(cg, &a) == -EBUSY; i++)
		usleep(1000);
}
