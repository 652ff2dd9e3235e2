/* Runner for the Criterion shim: forks one child per test (tests keep
 * per-test globals), runs .init and .fini around each (.fini also after a
 * failed assertion or a skip, as Criterion does), enforces .timeout
 * (default 600 s), and prints a Criterion-like line per test and a
 * synthesis line on stderr. Exit 0 only if every test passed. Of
 * Criterion's flags it honours --filter PATTERN (a glob on "suite/name",
 * with Criterion's !(...) and @(...)) and --tap[=FILE] (a TAP report, as
 * meson's 'tap' protocol reads it; no FILE or "-" is stderr, as with
 * Criterion). */
#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criterion/criterion.h"

struct entry {
	const char *suite, *name;
	void (*fn)(void);
	int timeout;
	void (*init)(void), (*fini)(void);
};

static struct entry tests[512];
static int ntests;

static void (*running_fini)(void); /* the child's test's .fini, not run yet */

void shim_register(const char *suite, const char *name, void (*fn)(void),
		   const struct shim_test_attr *a)
{
	if (ntests < 512)
		tests[ntests++] = (struct entry){suite, name, fn, a->timeout ? a->timeout : 600,
						 a->init, a->fini};
}

static void run_fini(void)
{
	void (*f)(void) = running_fini;
	running_fini = NULL; /* a failing assertion inside .fini ends here */
	if (f)
		f();
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]   ", file, line, expr);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	run_fini();
	_exit(1);
}

void shim_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[SKIP] ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	run_fini();
	_exit(77);
}

int main(int argc, char **argv)
{
	const char *filter = NULL; /* Criterion's other flags are accepted and ignored */
	FILE *tap = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--filter=", 9))
			filter = argv[i] + 9;
		else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
			filter = argv[++i];
		else if (!strcmp(argv[i], "--tap") || !strcmp(argv[i], "--tap=-"))
			tap = stderr;
		else if (!strcmp(argv[i], "--tap=/dev/stdout"))
			tap = stdout; /* opened again, a file would be truncated */
		else if (!strncmp(argv[i], "--tap=", 6) && !(tap = fopen(argv[i] + 6, "w"))) {
			perror(argv[i] + 6);
			return 1;
		}
	}
	bool chosen[512];
	int nchosen = 0;
	for (int i = 0; i < ntests; i++) {
		char full[256];
		snprintf(full, sizeof(full), "%s/%s", tests[i].suite, tests[i].name);
		chosen[i] = !filter || fnmatch(filter, full, FNM_EXTMATCH) == 0;
		nchosen += chosen[i];
	}
	if (tap) {
		fprintf(tap, "TAP version 13\n1..%d\n", nchosen);
		fflush(tap);
	}
	int pass = 0, fail = 0, skip = 0, run = 0;
	for (int i = 0; i < ntests; i++) {
		if (!chosen[i])
			continue;
		run++;
		fflush(stdout);
		fflush(stderr);
		if (tap)
			fflush(tap);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			alarm((unsigned)tests[i].timeout);
			if (tests[i].init)
				tests[i].init();
			running_fini = tests[i].fini;
			tests[i].fn();
			run_fini();
			_exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			fprintf(stderr, "[SKIP] %s::%s\n", tests[i].suite, tests[i].name);
			if (tap) /* the reason is on stderr, in the child's words */
				fprintf(tap, "ok %d - %s::%s # SKIP see stderr\n", run, tests[i].suite,
					tests[i].name);
			skip++;
			continue;
		}
		bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		char why[64] = "";
		if (WIFSIGNALED(st))
			snprintf(why, sizeof(why), " (signal %d%s)", WTERMSIG(st),
				 WTERMSIG(st) == SIGALRM ? ", timed out" : "");
		else if (!ok)
			snprintf(why, sizeof(why), " (exit %d)", WEXITSTATUS(st));
		fprintf(stderr, "[%s] %s::%s%s\n", ok ? "PASS" : "FAIL", tests[i].suite,
			tests[i].name, why);
		if (tap)
			fprintf(tap, "%s %d - %s::%s%s\n", ok ? "ok" : "not ok", run, tests[i].suite,
				tests[i].name, why);
		ok ? pass++ : fail++;
	}
	/* as Criterion: a skipped test is not counted as tested */
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", run - skip,
		pass, fail);
	if (tap && tap != stderr && tap != stdout)
		fclose(tap);
	return fail ? 1 : 0;
}
