/* Process jobs of other users, run by a root engine (DESIGN.md section 9):
 * identity and supplementary groups, the environment, umask, cwd and
 * stdin entered as the owner, PATH looked up as the owner, start failures
 * (126/127 and their reasons), signals to the job, and the process spec's
 * encoding (old payloads still decode).
 *
 * The tests that need root create real users and groups (names
 * "ddh1<tag><pid>") and skip without root. A guard process removes them
 * when the test's process ends, however it ends (an assertion, a crash, a
 * time-out's signal), since neither Criterion's .fini nor the sanitizer
 * build's runner is there after a crash. */
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "engine.h"
#include "proc.h"

#define MAXNAMES 8

static char users[MAXNAMES][32], groups[MAXNAMES][32];
static int nusers, ngroups, ndirs;
static char outdir[] = "/tmp/dd-h1-XXXXXX";  /* the engine's output */
static char workdir[] = "/tmp/dd-h1w-XXXXXX"; /* the jobs' directories */

/* Runs a command, again while another useradd/userdel holds the lock of
 * /etc/passwd (tests run in parallel); returns its exit status. */
static int cmd(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	int st = -1;
	for (int i = 0; i < 100; i++) {
		st = system(line);
		st = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		/* 6: no such user/group (already removed); 0: done */
		if (st == 0 || st == 6)
			break;
		sleep_ms(50);
	}
	return st;
}

/* The guard: waits for this process to end (EOF on a pipe only it holds),
 * then removes what the test made. Its own session, so that a signal to
 * the test's process group leaves it be. */
static void start_guard(void)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[1]);
		setsid();
		char c;
		while (read(p[0], &c, 1) != 0)
			;
		for (int i = 0; i < nusers; i++)
			cmd("userdel %s >/dev/null 2>&1", users[i]);
		for (int i = 0; i < ngroups; i++)
			cmd("groupdel %s >/dev/null 2>&1", groups[i]);
		cmd("rm -rf %s %s", outdir, workdir);
		_exit(0);
	}
	close(p[0]); /* p[1] stays open in this process alone (close-on-exec) */
}

/* Directories, names for @nu users and @ng groups, and a guard that
 * removes them all. */
static void setup(const char *tag, int nu, int ng)
{
	if (nu && geteuid() != 0)
		cr_skip_test("needs root to create users and run jobs as them");
	cr_assert_not_null(mkdtemp(outdir));
	cr_assert_not_null(mkdtemp(workdir));
	cr_assert_eq(chmod(workdir, 0755), 0);
	for (int i = 0; i < nu; i++)
		snprintf(users[nusers++], 32, "ddh1%s%c%d", tag, 'a' + i, (int)getpid());
	for (int i = 0; i < ng; i++)
		snprintf(groups[ngroups++], 32, "ddh1%sg%d_%d", tag, i, (int)getpid());
	start_guard();
	for (int i = 0; i < ng; i++)
		cr_assert_eq(cmd("groupadd %s", groups[i]), 0, "groupadd %s", groups[i]);
}

static gid_t gid_of(const char *group)
{
	struct group *g = getgrnam(group);
	cr_assert_not_null(g, "group %s", group);
	return g->gr_gid;
}

/* Creates user @i with primary group @pg and supplementary @supp ("" none). */
static uid_t add_user(int i, const char *pg, const char *supp)
{
	cr_assert_eq(cmd("useradd -M -N -g %s %s%s -d /nonexistent/%s -s /bin/sh %s", pg,
			 supp[0] ? "-G " : "", supp, users[i], users[i]),
		     0, "useradd %s", users[i]);
	struct passwd *pw = getpwnam(users[i]);
	cr_assert_not_null(pw);
	return pw->pw_uid;
}

/* A fresh directory owned by @uid with @mode. */
static const char *mkdir_for(uid_t uid, gid_t gid, mode_t mode)
{
	static char dirs[MAXNAMES][64];
	char *d = dirs[ndirs];
	snprintf(d, 64, "%s/%d", workdir, ndirs++);
	cr_assert_eq(mkdir(d, 0700), 0);
	cr_assert_eq(chown(d, uid, gid), 0);
	cr_assert_eq(chmod(d, mode), 0);
	return d;
}

static struct dd_engine *engine(void)
{
	return exec_engine_in(outdir, 0, 0);
}

static uint64_t run_as(struct dd_engine *e, uid_t uid, gid_t gid, const char *const *argv,
		       struct dd_exec_spec *x)
{
	return submit_exec(e, argv, x, uid, gid, 0);
}

static void slurp(struct dd_engine *e, uint64_t id, char *buf, size_t n)
{
	char path[512];
	buf[0] = 0;
	cr_assert_eq(dd_job_output_path(e, id, 0, 1, path, sizeof(path)), 0);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return; /* wrote nothing */
	ssize_t k = read(fd, buf, n - 1);
	close(fd);
	cr_assert_geq(k, 0);
	buf[k] = 0;
}

/* Runs @script with sh as @uid and returns its stdout in @buf. */
static void sh_as(struct dd_engine *e, uid_t uid, gid_t gid, const char *script,
		  struct dd_exec_spec *x, char *buf, size_t n)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct dd_job_info info;
	uint64_t id = run_as(e, uid, gid, argv, x);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s: %s", script, info.reason);
	slurp(e, id, buf, n);
}

static bool has_gid(const char *list, gid_t g)
{
	char want[16];
	snprintf(want, sizeof(want), "%u", (unsigned)g);
	size_t n = strlen(want);
	for (const char *p = list; (p = strstr(p, want)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

Test(exec, owner_identity_groups_and_environment, .timeout = 60)
{
	setup("i", 1, 4);
	gid_t pg = gid_of(groups[0]), g1 = gid_of(groups[1]), g2 = gid_of(groups[2]);
	char supp[80];
	snprintf(supp, sizeof(supp), "%s,%s", groups[1], groups[2]);
	uid_t u = add_user(0, groups[0], supp);
	setenv("DDH1_MARKER", "leaked", 1); /* in the engine's environment */
	struct dd_engine *e = engine();
	char buf[1024], want[1024];

	sh_as(e, u, pg, "id -u; id -g; id -G", NULL, buf, sizeof(buf));
	char *l2 = strchr(buf, '\n'), *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
	cr_assert(l2 && l3, "got %s", buf);
	cr_assert_eq((uid_t)atol(buf), u);
	cr_assert_eq((gid_t)atol(l2 + 1), pg);
	cr_assert(has_gid(l3 + 1, pg) && has_gid(l3 + 1, g1) && has_gid(l3 + 1, g2),
		  "groups %s", l3 + 1);
	cr_assert_not(has_gid(l3 + 1, 0), "root's group: %s", l3 + 1);

	/* the submitted env and passwd's USER/LOGNAME/HOME/SHELL, never the
	 * engine's: with env_replace false as with true */
	const char *env[] = {"PATH=/usr/bin:/bin", "LOGNAME=given", NULL};
	const char *show = "echo \"$USER $LOGNAME $HOME $SHELL ${DDH1_MARKER-none} $PATH\"";
	snprintf(want, sizeof(want), "%s given /nonexistent/%s /bin/sh none /usr/bin:/bin\n",
		 users[0], users[0]);
	for (int replace = 0; replace < 2; replace++) {
		struct dd_exec_spec x = {.env = env, .env_replace = replace};
		sh_as(e, u, pg, show, &x, buf, sizeof(buf));
		cr_assert_str_eq(buf, want);
	}
	/* the engine's own job keeps env_replace's meaning */
	struct dd_exec_spec own = {.env = env};
	sh_as(e, geteuid(), getegid(), "echo ${DDH1_MARKER-none}", &own, buf, sizeof(buf));
	cr_assert_str_eq(buf, "leaked\n");

	/* groups are cached per uid until a reload */
	cr_assert_eq(cmd("usermod -a -G %s %s", groups[3], users[0]), 0);
	gid_t g3 = gid_of(groups[3]);
	sh_as(e, u, pg, "id -G", NULL, buf, sizeof(buf));
	cr_assert_not(has_gid(buf, g3), "cached: %s", buf);
	cr_assert_eq(dd_engine_reload(e), 0);
	sh_as(e, u, pg, "id -G", NULL, buf, sizeof(buf));
	cr_assert(has_gid(buf, g3), "reloaded: %s", buf);
	dd_engine_destroy(e);
}

Test(exec, owner_umask_and_cwd, .timeout = 60)
{
	setup("c", 2, 1);
	gid_t pg = gid_of(groups[0]);
	uid_t a = add_user(0, groups[0], ""), b = add_user(1, groups[0], "");
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char buf[512], want[512];

	const char *mine = mkdir_for(a, pg, 0700);
	struct dd_exec_spec x = {.cwd = mine, .flags = DD_EXEC_UMASK, .umask = 027};
	sh_as(e, a, pg, "umask; touch f; stat -c '%a %U' f; pwd", &x, buf, sizeof(buf));
	snprintf(want, sizeof(want), "0027\n640 %s\n%s\n", users[0], mine);
	cr_assert_str_eq(buf, want);
	struct dd_exec_spec d = {.cwd = mine}; /* no umask given: 022 */
	sh_as(e, a, pg, "umask", &d, buf, sizeof(buf));
	cr_assert_str_eq(buf, "0022\n");

	/* another user's private directory, and root's: entered as the owner */
	const char *argv[] = {"true", NULL};
	const char *theirs = mkdir_for(b, pg, 0700), *roots = mkdir_for(0, 0, 0700);
	const char *deny[] = {theirs, roots};
	for (int i = 0; i < 2; i++) {
		struct dd_exec_spec y = {.cwd = deny[i]};
		cr_assert_eq(wait_state(e, run_as(e, a, pg, argv, &y), &info), DD_FAILED);
		snprintf(want, sizeof(want), "cannot enter %s: Permission denied", deny[i]);
		cr_assert_str_eq(info.reason, want);
		cr_assert_eq(info.exit_code, 126);
	}
	/* root's own job enters root's directory */
	struct dd_exec_spec r = {.cwd = roots};
	cr_assert_eq(wait_state(e, run_as(e, 0, 0, argv, &r), &info), DD_SUCCEEDED);
	dd_engine_destroy(e);
}

Test(exec, owner_stdin_path_and_fd, .timeout = 60)
{
	setup("s", 1, 1);
	gid_t pg = gid_of(groups[0]);
	uid_t a = add_user(0, groups[0], "");
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char buf[512], want[512], secret[128], open_[128];

	const char *dir = mkdir_for(0, 0, 0755);
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	snprintf(open_, sizeof(open_), "%s/open", dir);
	int fd = open(secret, O_WRONLY | O_CREAT, 0600);
	cr_assert_eq(write(fd, "root only\n", 10), 10);
	close(fd);
	fd = open(open_, O_WRONLY | O_CREAT, 0644);
	cr_assert_eq(write(fd, "for all\n", 8), 8);
	close(fd);

	const char *cat[] = {"cat", NULL};
	struct dd_exec_spec x = {.stdin_path = secret};
	cr_assert_eq(wait_state(e, run_as(e, a, pg, cat, &x), &info), DD_FAILED);
	snprintf(want, sizeof(want), "cannot open stdin %s: Permission denied", secret);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(info.exit_code, 126);
	x.stdin_path = open_;
	uint64_t id = run_as(e, a, pg, cat, &x);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	slurp(e, id, buf, sizeof(buf));
	cr_assert_str_eq(buf, "for all\n");
	/* relative to cwd, entered first */
	struct dd_exec_spec rel = {.cwd = dir, .stdin_path = "open"};
	id = run_as(e, a, pg, cat, &rel);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	slurp(e, id, buf, sizeof(buf));
	cr_assert_str_eq(buf, "for all\n");

	/* a descriptor: what the submitter could read, the job reads */
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "piped\n", 6), 6);
	close(p[1]);
	struct dd_exec_spec y = {.flags = DD_EXEC_STDIN_FD, .stdin_fd = p[0]};
	id = run_as(e, a, pg, cat, &y);
	close(p[0]); /* the engine holds its own copy */
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	slurp(e, id, buf, sizeof(buf));
	cr_assert_str_eq(buf, "piped\n");
	dd_engine_destroy(e);
}

/* Not root: the engine's own jobs read a descriptor too, and let go of it
 * when the job ends. */
Test(exec, stdin_fd_is_read_then_closed)
{
	setup("f", 0, 0);
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char buf[256];
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "one\n", 4), 4);
	const char *head[] = {"head", "-n", "1", NULL};
	struct dd_exec_spec x = {.flags = DD_EXEC_STDIN_FD, .stdin_fd = p[0]};
	uint64_t id = run_as(e, geteuid(), getegid(), head, &x);
	close(p[0]);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);
	slurp(e, id, buf, sizeof(buf));
	cr_assert_str_eq(buf, "one\n");
	/* the job has ended: no reader is left (the engine closed its copy) */
	cr_assert_eq(write(p[1], "x", 1), -1);
	cr_assert_eq(errno, EPIPE);
	close(p[1]);

	/* a FIFO nobody writes to: its open does not hold the spawn, and the
	 * job reads end of file */
	char fifo[128];
	snprintf(fifo, sizeof(fifo), "%s/fifo", workdir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	const char *cat[] = {"cat", NULL};
	struct dd_exec_spec f = {.stdin_path = fifo};
	id = run_as(e, geteuid(), getegid(), cat, &f);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED, "%s", info.reason);

	struct dd_exec_spec bad = {.flags = DD_EXEC_STDIN_FD, .stdin_fd = -1};
	struct dd_job_spec s = spec("procs");
	s.exec = &bad;
	bad.argv = head;
	uint64_t nid;
	cr_assert_eq(dd_submit(e, &s, 0, &nid), -EINVAL);
	bad.stdin_fd = 1000; /* not open */
	cr_assert_eq(dd_submit(e, &s, 0, &nid), -EBADF);
	bad = (struct dd_exec_spec){.argv = head, .flags = DD_EXEC_STDIN_FD, .stdin_fd = 0,
				    .stdin_path = "/dev/null"};
	cr_assert_eq(dd_submit(e, &s, 0, &nid), -EINVAL);
	bad = (struct dd_exec_spec){.argv = head, .flags = DD_EXEC_UMASK, .umask = 01000};
	cr_assert_eq(dd_submit(e, &s, 0, &nid), -EINVAL);
	dd_engine_destroy(e);
}

Test(exec, owner_path_lookup_and_exit_codes, .timeout = 60)
{
	setup("p", 1, 1);
	gid_t pg = gid_of(groups[0]);
	uid_t a = add_user(0, groups[0], "");
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char want[256], prog[128], path[160];

	const char *missing[] = {"nonexistcmd", NULL};
	cr_assert_eq(wait_state(e, run_as(e, a, pg, missing, NULL), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "nonexistcmd: No such file or directory");
	cr_assert_eq(info.exit_code, 127);

	/* a program in a directory only root may search: found for root's
	 * job, not for the user's (looked up as the user) */
	const char *hidden = mkdir_for(0, 0, 0700);
	snprintf(prog, sizeof(prog), "%s/ddh1prog", hidden);
	int fd = open(prog, O_WRONLY | O_CREAT, 0755);
	cr_assert_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);
	snprintf(path, sizeof(path), "PATH=%s:/usr/bin:/bin", hidden);
	const char *env[] = {path, NULL};
	const char *argv[] = {"ddh1prog", NULL};
	struct dd_exec_spec x = {.env = env};
	cr_assert_eq(wait_state(e, run_as(e, 0, 0, argv, &x), &info), DD_SUCCEEDED, "%s",
		     info.reason);
	cr_assert_eq(wait_state(e, run_as(e, a, pg, argv, &x), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "ddh1prog: Permission denied");
	cr_assert_eq(info.exit_code, 126);
	snprintf(want, sizeof(want), "%s: Permission denied", prog);
	const char *direct[] = {prog, NULL};
	cr_assert_eq(wait_state(e, run_as(e, a, pg, direct, NULL), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(info.exit_code, 126);
	dd_engine_destroy(e);
}

Test(exec, owner_without_passwd_entry_fails)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to run jobs as other users");
	setup("n", 0, 0);
	uid_t u = 54321;
	while (getpwuid(u))
		u++;
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char marker[128], want[64];
	snprintf(marker, sizeof(marker), "%s/ran", outdir);
	const char *argv[] = {"/usr/bin/touch", marker, NULL};
	cr_assert_eq(wait_state(e, run_as(e, u, u, argv, NULL), &info), DD_FAILED);
	snprintf(want, sizeof(want), "uid %u has no passwd entry", (unsigned)u);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(info.exit_code, -1);
	cr_assert_neq(access(marker, F_OK), 0, "it never ran");
	dd_engine_destroy(e);
}

/* Waits (5 s at most) until @path exists. */
static void await_file(const char *path)
{
	for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
		sleep_ms(10);
	cr_assert_eq(access(path, F_OK), 0, "%s appeared", path);
}

Test(exec, signal_reaches_the_job)
{
	setup("k", 0, 0);
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char script[512], ready[128], got_int[128];
	snprintf(ready, sizeof(ready), "%s/ready", outdir);
	snprintf(got_int, sizeof(got_int), "%s/int", outdir);
	snprintf(script, sizeof(script),
		 "trap 'echo int > %s' INT; trap 'exit 5' USR1; touch %s; "
		 "while :; do sleep 0.05; done",
		 got_int, ready);
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	uint64_t id = run_as(e, geteuid(), getegid(), argv, NULL);
	await_file(ready);
	cr_assert_eq(dd_job_signal(e, id, SIGINT), 0);
	await_file(got_int); /* the shell lived on: its trap ran */
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.state, DD_RUNNING);
	cr_assert_eq(dd_job_signal(e, id, SIGUSR1), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_eq(info.exit_code, 5);
	cr_assert_eq(dd_job_signal(e, id, SIGINT), DD_ETERMINAL);
	cr_assert_eq(dd_job_signal(e, id, 0), -EINVAL);
	cr_assert_eq(dd_job_signal(e, id, 65), -EINVAL);
	cr_assert_eq(dd_job_signal(e, id + 1000, SIGINT), -ENOENT);

	/* not running a process: a delayed job */
	const char *t[] = {"true", NULL};
	struct dd_exec_spec x = {.argv = t};
	struct dd_job_spec s = spec("procs");
	s.exec = &x;
	s.delay_ns = 60000 * MS;
	uint64_t later = submit_ok(e, &s);
	await_state(e, later, DD_DELAYED);
	cr_assert_eq(dd_job_signal(e, later, SIGINT), -ESRCH);
	dd_engine_destroy(e);
}

Test(exec, signal_reaches_another_users_job, .timeout = 60)
{
	setup("g", 1, 1);
	gid_t pg = gid_of(groups[0]);
	uid_t a = add_user(0, groups[0], "");
	const char *marks = mkdir_for(a, pg, 0700);
	struct dd_engine *e = engine();
	struct dd_job_info info;
	char script[512], ready[128];
	snprintf(ready, sizeof(ready), "%s/ready", marks);
	snprintf(script, sizeof(script),
		 "trap 'exit 7' INT; touch %s; while :; do sleep 0.05; done", ready);
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	uint64_t id = run_as(e, a, pg, argv, NULL);
	await_file(ready);
	struct stat st;
	cr_assert_eq(stat(ready, &st), 0);
	cr_assert_eq(st.st_uid, a);
	cr_assert_eq(dd_job_signal(e, id, SIGINT), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_eq(info.exit_code, 7);
	dd_engine_destroy(e);
}

/* A payload as the engine before umask and stdin wrote it ("DDX1", flags
 * env_replace|cwd), byte by byte: a store of that engine still runs. */
Test(exec, old_payload_decodes)
{
	unsigned char b[256];
	size_t n = 0;
#define PUT(v, len)                                \
	do {                                       \
		__typeof__(v) tmp_ = (v);          \
		memcpy(b + n, &tmp_, (len));       \
		n += (len);                        \
	} while (0)
#define STR(s)                                     \
	do {                                       \
		PUT((uint32_t)strlen(s), 4);       \
		memcpy(b + n, (s), strlen(s));     \
		n += strlen(s);                    \
	} while (0)
	PUT((uint32_t)0x31584444u, 4); /* "DDX1" */
	PUT((uint32_t)3, 4);           /* env_replace | cwd */
	PUT((uint64_t)4096, 8);        /* output_max */
	PUT((uint32_t)1, 4);           /* nrlimits */
	PUT((uint32_t)2, 4);           /* argc */
	PUT((uint32_t)1, 4);           /* envc */
	PUT((int32_t)7, 4);            /* RLIMIT_NOFILE */
	PUT((uint64_t)64, 8);
	PUT((uint64_t)128, 8);
	STR("/tmp");
	STR("echo");
	STR("hi");
	STR("A=b");
	struct dd_proc_spec x;
	cr_assert_eq(dd_proc_spec_decode(b, n, &x), 0);
	cr_assert(x.env_replace);
	cr_assert_str_eq(x.cwd, "/tmp");
	cr_assert_str_eq(x.argv[0], "echo");
	cr_assert_str_eq(x.argv[1], "hi");
	cr_assert_null(x.argv[2]);
	cr_assert_str_eq(x.env[0], "A=b");
	cr_assert_eq(x.output_max, 4096);
	cr_assert_eq(x.nrl, 1);
	cr_assert_eq(x.rl[0].max, 128);
	cr_assert_null(x.stdin_path);
	cr_assert_eq(x.umask, 022);
	dd_proc_spec_free(&x);

	/* the encoder writes the same bytes for the same spec */
	const char *argv[] = {"echo", "hi", NULL}, *env[] = {"A=b", NULL};
	struct dd_rlimit rl = {.resource = 7, .cur = 64, .max = 128};
	struct dd_exec_spec spec = {.argv = argv, .env = env, .env_replace = true, .cwd = "/tmp",
				    .output_max = 4096, .rlimits = &rl, .nrlimits = 1};
	void *enc;
	size_t len;
	cr_assert_eq(dd_proc_spec_encode(&spec, &enc, &len), 0);
	cr_assert_eq(len, n);
	cr_assert_eq(memcmp(enc, b, n), 0);
	free(enc);

	/* and the new fields go and come back */
	spec.flags = DD_EXEC_UMASK;
	spec.umask = 077;
	spec.stdin_path = "/etc/hostname";
	cr_assert_eq(dd_proc_spec_encode(&spec, &enc, &len), 0);
	cr_assert_eq(dd_proc_spec_decode(enc, len, &x), 0);
	cr_assert_eq(x.umask, 077);
	cr_assert_str_eq(x.stdin_path, "/etc/hostname");
	cr_assert_str_eq(x.cwd, "/tmp");
	cr_assert_str_eq(x.argv[1], "hi");
	dd_proc_spec_free(&x);
	/* every cut of it is refused, never read past */
	for (size_t k = 0; k < len; k++)
		cr_assert_neq(dd_proc_spec_decode(enc, k, &x), 0);
	free(enc);
}

/* A reason made for one job (longer than the store's old 63 bytes) is in
 * the log and the store: the next engine on the state dir reads it back. */
Test(exec, reason_text_is_durable)
{
	setup("r", 0, 0);
	char state[128], cwd[200], want[DD_REASON_MAX];
	snprintf(state, sizeof(state), "%s/state", workdir);
	snprintf(cwd, sizeof(cwd), "/nonexistent/%0120d", 7);
	snprintf(want, sizeof(want), "cannot enter %s: No such file or directory", cwd);
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 1;
	cfg.output_dir = outdir;
	cfg.state_dir = state;
	cfg.durability = DD_DURABILITY_BUFFERED;
	struct dd_engine *e = make_engine(&cfg);
	struct dd_job_info info;
	const char *argv[] = {"true", NULL};
	struct dd_exec_spec x = {.cwd = cwd};
	uint64_t id = run_as(e, geteuid(), getegid(), argv, &x);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, want);
	dd_engine_destroy(e);

	e = make_engine(&cfg);
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.state, DD_FAILED);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(info.exit_code, 126);
	dd_engine_destroy(e);
}

static _Atomic bool reloading;

static void *reload_loop(void *arg)
{
	while (atomic_load(&reloading))
		dd_engine_reload(arg);
	return NULL;
}

/* Workers spawning jobs of several users share the cache while it is
 * reloaded under them (for the sanitizer builds). */
Test(exec, owners_cache_under_concurrent_spawns_and_reloads, .timeout = 120)
{
	setup("m", 2, 1);
	gid_t pg = gid_of(groups[0]);
	uid_t u[2] = {add_user(0, groups[0], ""), add_user(1, groups[0], "")};
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 2;
	cfg.output_dir = outdir;
	struct dd_engine *e = make_engine(&cfg);
	pthread_t t;
	atomic_store(&reloading, true);
	cr_assert_eq(pthread_create(&t, NULL, reload_loop, e), 0);
	enum { N = 40 };
	uint64_t ids[N];
	const char *argv[] = {"/bin/sh", "-c", "test \"$(id -u)\" = \"$1\"", "sh", NULL, NULL};
	char uids[2][16];
	for (int k = 0; k < 2; k++)
		snprintf(uids[k], sizeof(uids[k]), "%u", (unsigned)u[k]);
	for (int i = 0; i < N; i++) {
		argv[4] = uids[i % 2];
		ids[i] = run_as(e, u[i % 2], pg, argv, NULL);
	}
	struct dd_job_info info;
	for (int i = 0; i < N; i++)
		cr_assert_eq(wait_state(e, ids[i], &info), DD_SUCCEEDED, "job %d: %s", i, info.reason);
	atomic_store(&reloading, false);
	pthread_join(t, NULL);
	dd_engine_destroy(e);
}
