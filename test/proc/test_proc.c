/* proc/ alone, no engine: a process started and its status read back,
 * the status texts, the exec spec's round trip and its refusal of bad
 * bytes, the environment, owners' credentials, rlimits, stdin, start
 * failures and their reasons, and the output files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

/* @x through the codec, as the engine gets it back from a payload. */
static void mkspec(const struct dd_exec_spec *x, struct dd_proc_spec *out)
{
	void *buf;
	size_t len;
	cr_assert_eq(dd_proc_spec_encode(x, &buf, &len), 0);
	cr_assert_eq(dd_proc_spec_decode(buf, len, out), 0);
	free(buf);
}

/* A file in memory for the child's stdout. */
static int memfile(void)
{
	int fd = memfd_create("out", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

static void read_all(int fd, char *buf, size_t n)
{
	ssize_t k = pread(fd, buf, n - 1, 0);
	cr_assert_geq(k, 0);
	buf[k] = 0;
}

/* Starts @sp and waits for it: its wait status, or what dd_proc_spawn
 * returned when that is not 0. */
static int run(const struct dd_proc_spawn *sp, char *why, size_t whyn)
{
	struct dd_proc_child c;
	why[0] = 0;
	int rc = dd_proc_spawn(sp, &c, why, whyn);
	if (rc != 0)
		return rc;
	cr_assert_gt(c.pid, 0);
	cr_assert_geq(c.pidfd, 0);
	siginfo_t si = {0};
	cr_assert_eq(waitid((idtype_t)P_PIDFD, (id_t)c.pidfd, &si, WEXITED), 0);
	close(c.pidfd);
	cr_assert_eq(si.si_pid, c.pid);
	return si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
}

/* Runs sh -c @script with @x's other fields; stdout into @out. */
static int sh(const char *script, struct dd_exec_spec *x, char *out, size_t n, char *why,
	      size_t whyn)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec def = {0};
	if (!x)
		x = &def;
	x->argv = argv;
	struct dd_proc_spec spec;
	mkspec(x, &spec);
	int fd = memfile();
	struct dd_proc_spawn sp = {.spec = &spec, .in = -1, .out = fd, .err = 2};
	int st = run(&sp, why, whyn);
	read_all(fd, out, n);
	close(fd);
	dd_proc_spec_free(&spec);
	return st;
}

Test(proc, spawn_and_status)
{
	char out[256], why[256];
	cr_assert_eq(sh("echo hello; exit 3", NULL, out, sizeof(out), why, sizeof(why)), 3 << 8);
	cr_assert_str_eq(out, "hello\n");
	cr_assert_str_eq(dd_proc_status_text(3 << 8), "exit 3");
	int st = sh("kill -9 $$", NULL, out, sizeof(out), why, sizeof(why));
	cr_assert_eq(st, SIGKILL);
	cr_assert_str_eq(dd_proc_status_text(st), "signal 9 (Killed)");
	/* its own session and process group, default signal dispositions */
	signal(SIGUSR1, SIG_IGN);
	cr_assert_eq(sh("test $(ps -o sid= -p $$) -eq $$ && test $(ps -o pgid= -p $$) -eq $$ "
			"&& kill -USR1 $$", NULL, out, sizeof(out), why, sizeof(why)),
		     SIGUSR1);
	signal(SIGUSR1, SIG_DFL);
}

Test(proc, status_texts)
{
	cr_assert_str_eq(dd_proc_status_text(0), "exit 0");
	cr_assert_str_eq(dd_proc_status_text(255 << 8), "exit 255");
	cr_assert_str_eq(dd_proc_status_text(SIGTERM), "signal 15 (Terminated)");
	cr_assert_str_eq(dd_proc_status_text(SIGSEGV | 0x80), "signal 11 (Segmentation fault)");
	/* static: the same text at the same place every time */
	cr_assert_eq(dd_proc_status_text(7 << 8), dd_proc_status_text(7 << 8));
	cr_assert_str_eq(dd_proc_status_text(127), "signal 0 (unknown)");
}

Test(proc, spec_round_trip)
{
	const char *argv[] = {"echo", "hi", "", NULL}, *env[] = {"A=b", "C=", NULL};
	struct dd_rlimit rl[2] = {{.resource = RLIMIT_NOFILE, .cur = 64, .max = 128},
				  {.resource = RLIMIT_CORE, .cur = 0, .max = 0}};
	struct dd_exec_spec x = {.argv = argv, .env = env, .env_replace = true, .cwd = "/tmp",
				 .output_max = 4096, .rlimits = rl, .nrlimits = 2,
				 .flags = DD_EXEC_UMASK, .umask = 077, .stdin_path = "/etc/hostname",
				 .mem = 64u << 20, .cpus = 3};
	struct dd_proc_spec d;
	mkspec(&x, &d);
	cr_assert_eq(d.mem, 64u << 20);
	cr_assert_eq(d.cpus, 3);
	uint32_t rc;
	uint64_t rm;
	void *raw;
	size_t rawlen;
	cr_assert_eq(dd_proc_spec_encode(&x, &raw, &rawlen), 0);
	cr_assert_eq(dd_proc_spec_request(raw, rawlen, &rc, &rm), 0);
	cr_assert_eq(rc, 3);
	cr_assert_eq(rm, 64u << 20);
	cr_assert_eq(dd_proc_spec_request(raw, 12, &rc, &rm), -EPROTO);
	cr_assert_eq(rc, 1);
	free(raw);
	cr_assert_str_eq(d.argv[0], "echo");
	cr_assert_str_eq(d.argv[1], "hi");
	cr_assert_str_eq(d.argv[2], "");
	cr_assert_null(d.argv[3]);
	cr_assert_str_eq(d.env[0], "A=b");
	cr_assert_str_eq(d.env[1], "C=");
	cr_assert_null(d.env[2]);
	cr_assert(d.env_replace);
	cr_assert_str_eq(d.cwd, "/tmp");
	cr_assert_str_eq(d.stdin_path, "/etc/hostname");
	cr_assert_eq(d.umask, 077);
	cr_assert_eq(d.output_max, 4096);
	cr_assert_eq(d.nrl, 2);
	cr_assert_eq(d.rl[0].resource, RLIMIT_NOFILE);
	cr_assert_eq(d.rl[0].cur, 64);
	cr_assert_eq(d.rl[1].max, 0);
	dd_proc_spec_free(&d);
	dd_proc_spec_free(&d); /* zeroed: nothing twice */

	/* without the optional fields: no env, no cwd, umask 022 */
	const char *one[] = {"true", NULL};
	mkspec(&(struct dd_exec_spec){.argv = one}, &d);
	cr_assert_null(d.env);
	cr_assert_null(d.cwd);
	cr_assert_null(d.stdin_path);
	cr_assert_eq(d.umask, 022);
	cr_assert_not(d.env_replace);
	cr_assert_eq(d.mem, 0);
	cr_assert_eq(d.cpus, 1);
	dd_proc_spec_free(&d);

	/* a memory limit of 0 has one encoding: no field. With the flag and
	 * a 0 there, the bytes are not a spec */
	void *buf;
	size_t len;
	cr_assert_eq(dd_proc_spec_encode(&(struct dd_exec_spec){.argv = one, .mem = 1}, &buf, &len), 0);
	memset((char *)buf + 28, 0, 8); /* magic, flags, output_max, 3 counts: then mem */
	cr_assert_eq(dd_proc_spec_decode(buf, len, &d), -EPROTO);
	free(buf);
}

Test(proc, spec_refuses_bad_input)
{
	void *buf;
	size_t len;
	const char *argv[] = {"true", NULL}, *empty[] = {NULL}, *noname[] = {"", NULL};
	const char *noeq[] = {"A", NULL}, *noname_env[] = {"=b", NULL};
	struct dd_rlimit over = {.resource = RLIMIT_NOFILE, .cur = 9, .max = 8};
	struct dd_rlimit nores = {.resource = 16, .cur = 1, .max = 1};
	struct dd_exec_spec bad[] = {
		{.argv = NULL},
		{.argv = empty},
		{.argv = noname},
		{.argv = argv, .env = noeq},
		{.argv = argv, .env = noname_env},
		{.argv = argv, .rlimits = &over, .nrlimits = 1},
		{.argv = argv, .rlimits = &nores, .nrlimits = 1},
		{.argv = argv, .nrlimits = 1},
		{.argv = argv, .nrlimits = DD_RLIMITS_MAX + 1, .rlimits = &over},
		{.argv = argv, .flags = DD_EXEC_UMASK, .umask = 01000},
		{.argv = argv, .flags = 0x80},
		{.argv = argv, .stdin_path = ""},
		{.argv = argv, .stdin_path = "/x", .flags = DD_EXEC_STDIN_FD, .stdin_fd = 0},
		{.argv = argv, .flags = DD_EXEC_STDIN_FD, .stdin_fd = -1},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(dd_proc_spec_encode(&bad[i], &buf, &len), -EINVAL, "spec %zu", i);
	/* too large */
	size_t big = DD_EXEC_MAX + 16;
	char *huge = malloc(big);
	memset(huge, 'a', big - 1);
	huge[big - 1] = 0;
	const char *hv[] = {huge, NULL};
	cr_assert_eq(dd_proc_spec_encode(&(struct dd_exec_spec){.argv = hv}, &buf, &len), -E2BIG);
	free(huge);

	/* every cut of a good one, and every single-byte change to its header,
	 * is refused or decodes to something whole */
	const char *env[] = {"A=b", NULL};
	struct dd_exec_spec x = {.argv = argv, .env = env, .cwd = "/", .flags = DD_EXEC_UMASK,
				 .umask = 027, .stdin_path = "in"};
	cr_assert_eq(dd_proc_spec_encode(&x, &buf, &len), 0);
	struct dd_proc_spec d;
	for (size_t k = 0; k < len; k++) {
		cr_assert_eq(dd_proc_spec_decode(buf, k, &d), -EPROTO, "cut at %zu", k);
		cr_assert_null(d.blk);
	}
	unsigned char *b = buf;
	b[0] ^= 1; /* the magic */
	cr_assert_eq(dd_proc_spec_decode(buf, len, &d), -EPROTO);
	b[0] ^= 1;
	b[4] |= 0x20; /* an unknown flag */
	cr_assert_eq(dd_proc_spec_decode(buf, len, &d), -EPROTO);
	b[4] &= ~0x20;
	cr_assert_eq(dd_proc_spec_decode(buf, len, &d), 0);
	dd_proc_spec_free(&d);
	/* a byte more is not a spec either */
	unsigned char *more = malloc(len + 1);
	memcpy(more, buf, len);
	more[len] = 0;
	cr_assert_eq(dd_proc_spec_decode(more, len + 1, &d), -EPROTO);
	free(more);
	free(buf);
}

static bool has(char **v, const char *s)
{
	for (size_t i = 0; v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static size_t count(char **v)
{
	size_t n = 0;
	while (v[n])
		n++;
	return n;
}

Test(proc, environment)
{
	setenv("DDP_KEEP", "mine", 1);
	setenv("DDP_OVER", "old", 1);
	const char *argv[] = {"true", NULL}, *env[] = {"DDP_OVER=new", "DDP_ADD=1", NULL};
	struct dd_proc_spec d;
	mkspec(&(struct dd_exec_spec){.argv = argv, .env = env}, &d);

	/* the caller's own: its environment, the spec's over it */
	char **v = dd_proc_env(&d, NULL);
	cr_assert_not_null(v);
	cr_assert(has(v, "DDP_KEEP=mine"));
	cr_assert(has(v, "DDP_OVER=new"));
	cr_assert_not(has(v, "DDP_OVER=old"));
	cr_assert(has(v, "DDP_ADD=1"));
	size_t ne = 0;
	while (environ[ne])
		ne++;
	cr_assert_eq(count(v), ne + 1);
	free(v);
	dd_proc_spec_free(&d);

	/* env_replace: the spec's alone */
	mkspec(&(struct dd_exec_spec){.argv = argv, .env = env, .env_replace = true}, &d);
	v = dd_proc_env(&d, NULL);
	cr_assert_eq(count(v), 2);
	cr_assert(has(v, "DDP_OVER=new"));
	free(v);
	dd_proc_spec_free(&d);

	/* another user's: the spec's alone whatever env_replace says, and the
	 * owner's USER, LOGNAME, HOME, SHELL where the spec gives none */
	const char *env2[] = {"HOME=/given", "DDP_ADD=1", NULL};
	struct dd_proc_cred cr = {.uid = 4242,
				  .env = {"USER=u", "LOGNAME=u", "HOME=/home/u", "SHELL=/bin/sh"}};
	mkspec(&(struct dd_exec_spec){.argv = argv, .env = env2}, &d);
	v = dd_proc_env(&d, &cr);
	cr_assert_eq(count(v), 5);
	cr_assert(has(v, "HOME=/given"));
	cr_assert_not(has(v, "HOME=/home/u"));
	cr_assert(has(v, "USER=u"));
	cr_assert(has(v, "LOGNAME=u"));
	cr_assert(has(v, "SHELL=/bin/sh"));
	cr_assert_not(has(v, "DDP_KEEP=mine"));
	free(v);
	dd_proc_spec_free(&d);

	/* and it is what the process gets */
	char out[512], why[256];
	const char *env3[] = {"DDP_ADD=2", NULL};
	struct dd_exec_spec x = {.env = env3, .env_replace = true};
	cr_assert_eq(sh("env | sort", &x, out, sizeof(out), why, sizeof(why)), 0);
	cr_assert_not_null(strstr(out, "DDP_ADD=2\n"));
	cr_assert_null(strstr(out, "DDP_KEEP"));
}

/* A uid no passwd entry names. */
static uint32_t unnamed_uid(void)
{
	for (uint32_t u = 3999999000u;; u++)
		if (!getpwuid(u))
			return u;
}

Test(proc, credentials)
{
	struct dd_proc_creds *c;
	cr_assert_eq(dd_proc_creds_create(&c), 0);
	struct dd_proc_cred *cr = NULL;
	char why[256] = "";
	uint32_t u = unnamed_uid();
	/* refused, and so again from the cache */
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(dd_proc_creds_get(c, u, &cr, why, sizeof(why)), -ENOENT);
		char want[64];
		snprintf(want, sizeof(want), "uid %u has no passwd entry", (unsigned)u);
		cr_assert_str_eq(why, want);
	}
	cr_assert_eq(dd_proc_creds_get(c, u, &cr, NULL, 0), -ENOENT);

	/* root's entry, its groups and its environment */
	cr_assert_eq(dd_proc_creds_get(c, 0, &cr, why, sizeof(why)), 0);
	cr_assert_eq(cr->uid, 0);
	cr_assert_eq(cr->err, 0);
	cr_assert_geq(cr->ngroups, 1);
	cr_assert_str_eq(cr->env[0], "USER=root");
	cr_assert_str_eq(cr->env[1], "LOGNAME=root");
	cr_assert_eq(strncmp(cr->env[2], "HOME=", 5), 0);
	cr_assert_eq(strncmp(cr->env[3], "SHELL=", 6), 0);
	struct dd_proc_cred *again;
	cr_assert_eq(dd_proc_creds_get(c, 0, &again, why, sizeof(why)), 0);
	cr_assert_eq(again, cr); /* cached */
	/* a reload forgets it; the references held keep it alive */
	dd_proc_creds_reload(c);
	cr_assert_str_eq(cr->env[0], "USER=root");
	dd_proc_creds_put(c, again);
	dd_proc_creds_put(c, cr);
	dd_proc_creds_put(c, NULL);
	cr_assert_eq(dd_proc_creds_get(c, 0, &cr, why, sizeof(why)), 0);
	dd_proc_creds_put(c, cr);
	dd_proc_creds_destroy(c);
	dd_proc_creds_destroy(NULL);
}

Test(proc, runs_as_the_owner)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch to another user");
	struct passwd *pw = getpwnam("nobody");
	if (!pw)
		cr_skip_test("no user nobody");
	uint32_t uid = pw->pw_uid, gid = pw->pw_gid;
	struct dd_proc_creds *c;
	struct dd_proc_cred *cr;
	char why[256], out[256], want[128];
	cr_assert_eq(dd_proc_creds_create(&c), 0);
	cr_assert_eq(dd_proc_creds_get(c, uid, &cr, why, sizeof(why)), 0);
	const char *argv[] = {"sh", "-c", "echo $(id -u) $(id -g) $(id -ru) $USER", NULL};
	struct dd_proc_spec d;
	mkspec(&(struct dd_exec_spec){.argv = argv, .cwd = "/"}, &d);
	int fd = memfile();
	struct dd_proc_spawn sp = {.spec = &d, .cred = cr, .setuid = true, .uid = uid,
				   .gid = gid, .in = -1, .out = fd, .err = 2};
	cr_assert_eq(run(&sp, why, sizeof(why)), 0);
	read_all(fd, out, sizeof(out));
	snprintf(want, sizeof(want), "%u %u %u nobody\n", (unsigned)uid, (unsigned)gid,
		 (unsigned)uid);
	cr_assert_str_eq(out, want);
	close(fd);
	dd_proc_spec_free(&d);

	/* a root-only file as stdin is opened as the owner: refused */
	mkspec(&(struct dd_exec_spec){.argv = argv, .stdin_path = "/etc/shadow"}, &d);
	sp.spec = &d;
	sp.out = 1;
	cr_assert_eq(run(&sp, why, sizeof(why)), 126 << 8);
	cr_assert_str_eq(why, "cannot open stdin /etc/shadow: Permission denied");
	dd_proc_spec_free(&d);
	dd_proc_creds_put(c, cr);
	dd_proc_creds_destroy(c);
}

Test(proc, rlimits_applied)
{
	struct dd_rlimit rl[2] = {{.resource = RLIMIT_NOFILE, .cur = 37, .max = 41},
				  {.resource = RLIMIT_CORE, .cur = 0, .max = 0}};
	struct dd_exec_spec x = {.rlimits = rl, .nrlimits = 2};
	char out[256], why[256];
	cr_assert_eq(sh("echo $(ulimit -Sn) $(ulimit -Hn) $(ulimit -c)", &x, out, sizeof(out), why,
			sizeof(why)),
		     0);
	cr_assert_str_eq(out, "37 41 0\n");
	/* a hard limit above the caller's is refused, and the reason says which */
	struct rlimit mine;
	getrlimit(RLIMIT_NOFILE, &mine);
	if (geteuid() != 0 && mine.rlim_max != RLIM_INFINITY) {
		struct dd_rlimit up = {.resource = RLIMIT_NOFILE, .cur = 1,
				       .max = (uint64_t)mine.rlim_max + 1};
		x = (struct dd_exec_spec){.rlimits = &up, .nrlimits = 1};
		cr_assert_eq(sh("true", &x, out, sizeof(out), why, sizeof(why)), 126 << 8);
		cr_assert_str_eq(why, "cannot set resource limit 7: Operation not permitted");
	}
}

Test(proc, cwd_umask_and_stdin)
{
	char out[256], why[256];
	struct dd_exec_spec x = {.cwd = "/usr", .flags = DD_EXEC_UMASK, .umask = 027,
				 .stdin_path = "/etc/hostname"};
	cr_assert_eq(sh("pwd; umask; wc -c | tr -d ' '", &x, out, sizeof(out), why, sizeof(why)),
		     0);
	struct stat st;
	cr_assert_eq(stat("/etc/hostname", &st), 0);
	char want[128];
	snprintf(want, sizeof(want), "/usr\n0027\n%lld\n", (long long)st.st_size);
	cr_assert_str_eq(out, want);

	/* a given stdin fd; without one, /dev/null */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "abc", 3), 3);
	close(p[1]);
	const char *argv[] = {"cat", NULL};
	struct dd_proc_spec d;
	mkspec(&(struct dd_exec_spec){.argv = argv}, &d);
	int fd = memfile();
	struct dd_proc_spawn sp = {.spec = &d, .in = p[0], .out = fd, .err = 2};
	cr_assert_eq(run(&sp, why, sizeof(why)), 0);
	read_all(fd, out, sizeof(out));
	cr_assert_str_eq(out, "abc");
	close(p[0]);
	sp.in = -1;
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(run(&sp, why, sizeof(why)), 0);
	read_all(fd, out, sizeof(out));
	cr_assert_str_eq(out, "");
	close(fd);
	dd_proc_spec_free(&d);

	/* a /proc file is never the stdin (it would describe the caller) */
	x = (struct dd_exec_spec){.stdin_path = "/proc/self/environ"};
	cr_assert_eq(sh("cat", &x, out, sizeof(out), why, sizeof(why)), 126 << 8);
	cr_assert_str_eq(why, "cannot open stdin /proc/self/environ: Permission denied");
}

Test(proc, start_failures_say_why)
{
	char out[256], why[256];
	struct dd_exec_spec x = {.cwd = "/nonexistent-dir"};
	cr_assert_eq(sh("true", &x, out, sizeof(out), why, sizeof(why)), 126 << 8);
	cr_assert_str_eq(why, "cannot enter /nonexistent-dir: No such file or directory");
	x = (struct dd_exec_spec){.stdin_path = "/nonexistent-dir/in"};
	cr_assert_eq(sh("true", &x, out, sizeof(out), why, sizeof(why)), 126 << 8);
	cr_assert_str_eq(why, "cannot open stdin /nonexistent-dir/in: No such file or directory");

	/* not found in PATH: 127, as a shell says it; found but not runnable: 126 */
	const char *argv[] = {"dd-no-such-program", NULL}, *env[] = {"PATH=/nonexistent:/bin", NULL};
	struct dd_proc_spec d;
	mkspec(&(struct dd_exec_spec){.argv = argv, .env = env}, &d);
	struct dd_proc_spawn sp = {.spec = &d, .in = -1, .out = 1, .err = 2};
	cr_assert_eq(run(&sp, why, sizeof(why)), 127 << 8);
	cr_assert_str_eq(why, "dd-no-such-program: No such file or directory");
	dd_proc_spec_free(&d);
	char plain[] = "/tmp/dd-proc-plain-XXXXXX", want[128];
	int fd = mkstemp(plain);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fchmod(fd, 0644), 0);
	close(fd);
	const char *notexec[] = {plain, NULL};
	mkspec(&(struct dd_exec_spec){.argv = notexec}, &d);
	sp.spec = &d;
	cr_assert_eq(run(&sp, why, sizeof(why)), 126 << 8);
	snprintf(want, sizeof(want), "%s: Permission denied", plain);
	cr_assert_str_eq(why, want);
	dd_proc_spec_free(&d);
	unlink(plain);
}

static int watched[2];
static volatile struct dd_proc_report *seen;

static void watch(void *arg, volatile struct dd_proc_report *rep)
{
	cr_assert_eq(arg, (void *)watched);
	watched[rep ? 0 : 1]++;
	if (rep)
		seen = rep;
}

Test(proc, a_watchdog_sees_each_start)
{
	const char *argv[] = {"true", NULL};
	struct dd_proc_spec d;
	mkspec(&(struct dd_exec_spec){.argv = argv}, &d);
	struct dd_proc_spawn sp = {.spec = &d, .in = -1, .out = 1, .err = 2, .watch = watch,
				   .watch_arg = watched};
	char why[64];
	cr_assert_eq(run(&sp, why, sizeof(why)), 0);
	cr_assert_eq(run(&sp, why, sizeof(why)), 0);
	cr_assert_eq(watched[0], 2);
	cr_assert_eq(watched[1], 2);
	/* the child's pid is in the report once it runs; an abort of a pid
	 * that is not there does nothing */
	cr_assert_gt(dd_proc_report_pid(seen), 0);
	cr_assert_not(dd_proc_spawn_abort(seen, 0));
}

Test(proc, output_files)
{
	char dir[] = "/tmp/dd-proc-XXXXXX", path[128], buf[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/1.1.out", dir);
	bool named = false;
	int fd = dd_proc_output_open(dir, path, &named);
	cr_assert_geq(fd, 0);
	struct stat st;
	if (!named) /* nameless until named */
		cr_assert_eq(stat(path, &st), -1);
	cr_assert_eq(write(fd, "x", 1), 1);
	/* a file left at the name by an earlier run is replaced */
	int old = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(write(old, "stale", 5), 5);
	close(old);
	if (!named)
		cr_assert_eq(dd_proc_output_name(fd, path), 0);
	cr_assert_eq(write(fd, "y", 1), 1);
	int r = open(path, O_RDONLY);
	cr_assert_geq(r, 0);
	ssize_t k = read(r, buf, sizeof(buf));
	cr_assert(named || (k == 2 && !memcmp(buf, "xy", 2)));
	close(r);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert(fcntl(fd, F_GETFL) & O_APPEND);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	unlink(path);
	rmdir(dir);

	/* without a directory: /dev/null, and nothing to name */
	named = false;
	fd = dd_proc_output_open(NULL, NULL, &named);
	cr_assert_geq(fd, 0);
	cr_assert(named);
	close(fd);
	/* a directory that is not there */
	named = false;
	cr_assert_eq(dd_proc_output_open("/nonexistent-dir", "/nonexistent-dir/1.1.err", &named),
		     -ENOENT);
}
