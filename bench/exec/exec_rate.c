/* exec-rate: how fast the process executor runs /bin/true, against the
 * machine's own limit measured in the same run — a bare loop of
 * posix_spawn + waitpid on as many threads as the engine has workers.
 * Rounds alternate (bare, engine, bare, engine, ...) so that a noisy
 * neighbour hurts both alike; the report gives the median of each and
 * their ratio.
 *
 *   exec-rate [--seconds S] [--rounds N] [--threads N] [--program PATH] [--no-pin]
 *             [--spin-us N] [--via-daemon [--dispatchd PATH] [--daemon-inflight N]
 *             [--env-vars N] [--supervisor PATH|off]] [--cgroups auto|on|off]
 *
 * --via-daemon adds a third loop each round: the same jobs submitted to a
 * real dispatchd (durability fsync) over its socket, 64 in flight (a job's
 * round trip there includes the fsync of its submission). --env-vars N
 * adds a fourth: the same through the daemon with an environment of N
 * variables in every job, as `dispatchctl submit` sends the caller's, in
 * alternating order with the third; the report gives their ratio.
 *
 * --cgroups is the engine's and the daemon's setting (default auto: a
 * cgroup per job where they can be made), to measure what they cost;
 * --supervisor the daemon's (default: the build's), to measure what
 * starting jobs through the process supervisor costs (off: none).
 *
 * By default the engine pins its threads as it always does (reactor on one
 * CPU, workers on the node's others: on 2 CPUs both workers share one);
 * --no-pin lets them float like the bare loop's threads. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "dispatchd.h"
#include "floor.h"
#include "via_daemon_exec.h"

extern char **environ;

static const char *program = "/bin/true";
static double seconds = 2;
static bool pin = true;
static long spin_us = -1; /* -1: the engine's default */
static bool via_daemon;
static unsigned daemon_inflight = 64; /* a job's round trip includes an fsync */
static const char *dispatchd;
static unsigned env_vars; /* --env-vars: a fourth loop, each job with this many */
static unsigned array; /* --array: one array of this many, per round */
static const char *cgroups = "auto";
static const char *supervisor; /* the daemon's --supervisor; NULL its default */
static _Atomic uint64_t ended;

/* The bare loop is std-r's spawn floor (bench/std-r/spawn_floor.c). */
static double bare(unsigned threads)
{
	struct spawn_floor f;
	if (spawn_floor_measure(program, threads, seconds, &f) < 0)
		return 0;
	return f.per_sec;
}

static sem_t room; /* one post per ended job: the submitter sleeps on it */

static void on_event(const struct dd_event *ev, void *arg)
{
	(void)arg;
	if (dd_state_terminal(ev->state)) {
		atomic_fetch_add_explicit(&ended, 1, memory_order_relaxed);
		sem_post(&room);
	}
}

/* The engine's messages, on stderr beside exec-rate's own. */
static void log_stderr(int level, const char *msg, void *arg)
{
	(void)level, (void)arg;
	fprintf(stderr, "dispatchd: %s\n", msg);
}

static double engine(unsigned threads, uint64_t *failures)
{
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.on_log = log_stderr;
	cfg.shards = 1;
	cfg.workers = threads;
	cfg.on_event = on_event;
	cfg.event_mask = DD_EVENTS_TERMINAL;
	cfg.retain_terminal = 1000;
	cfg.pin = pin;
	cfg.cgroups = !strcmp(cgroups, "on")	? DD_CGROUPS_ON
		      : !strcmp(cgroups, "off") ? DD_CGROUPS_OFF
						: DD_CGROUPS_AUTO;
	if (spin_us >= 0)
		cfg.spin_ns = (uint64_t)spin_us * 1000;
	struct dd_engine *e;
	int r = dd_engine_create(&cfg, &e);
	if (r < 0) {
		fprintf(stderr, "exec-rate: engine: %s\n", dd_strerror(r));
		exit(1);
	}
	const char *argv[] = {program, NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = {.kind = "bench", .exec = &x, .priority = DD_PRIO_NORMAL,
				.node = -1, .shard = -1};
	atomic_store(&ended, 0);
	uint64_t inflight = 4ull * threads; /* workers never wait for work */
	sem_init(&room, 0, (unsigned)inflight);
	uint64_t t0 = 0, n0 = 0, warm = dd_mono_ns() + 200000000ull, until = 0;
	for (;;) {
		uint64_t now = dd_mono_ns();
		if (!t0 && now >= warm) {
			t0 = now;
			n0 = atomic_load(&ended);
			until = t0 + (uint64_t)(seconds * 1e9);
		}
		if (t0 && now >= until)
			break;
		/* a slot frees when a job ends; no polling, so the submitter
		 * takes no CPU from the processes while it waits */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (sem_timedwait(&room, &ts) < 0)
			continue;
		uint64_t id;
		if (dd_submit(e, &s, DD_SUBMIT_BLOCK, &id) < 0)
			sem_post(&room);
	}
	uint64_t n1 = atomic_load(&ended), t1 = dd_mono_ns();
	struct dd_stats st;
	dd_stats(e, &st);
	*failures += st.total.failed;
	dd_engine_destroy(e);
	sem_destroy(&room);
	return (double)(n1 - n0) / ((double)(t1 - t0) / 1e9);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"seconds", required_argument, 0, 's'}, {"rounds", required_argument, 0, 'r'},
		{"threads", required_argument, 0, 't'}, {"program", required_argument, 0, 'p'},
		{"no-pin", no_argument, 0, 'n'},       {"spin-us", required_argument, 0, 'S'},
		{"via-daemon", no_argument, 0, 'D'},    {"dispatchd", required_argument, 0, 'P'},
		{"daemon-inflight", required_argument, 0, 'I'}, {"env-vars", required_argument, 0, 'E'},
		{"cgroups", required_argument, 0, 'C'}, {"supervisor", required_argument, 0, 'U'},
		{"array", required_argument, 0, 'A'}, {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	unsigned rounds = 5, threads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 's')
			seconds = atof(optarg);
		else if (c == 'r')
			rounds = (unsigned)atoi(optarg);
		else if (c == 't')
			threads = (unsigned)atoi(optarg);
		else if (c == 'p')
			program = optarg;
		else if (c == 'n')
			pin = false; /* workers float, like the bare loop's threads */
		else if (c == 'S')
			spin_us = atol(optarg);
		else if (c == 'D')
			via_daemon = true;
		else if (c == 'P')
			dispatchd = optarg;
		else if (c == 'I')
			daemon_inflight = (unsigned)atoi(optarg);
		else if (c == 'E')
			env_vars = (unsigned)atoi(optarg);
		else if (c == 'C')
			cgroups = optarg;
		else if (c == 'U')
			supervisor = optarg;
		else if (c == 'A')
			array = (unsigned)atoi(optarg);
		else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: exec-rate [--seconds S] [--rounds N] [--threads N] [--program P] [--no-pin]\n"
				"                 [--spin-us N] [--via-daemon [--dispatchd PATH] [--daemon-inflight N]\n"
				"                 [--env-vars N] [--supervisor PATH|off] [--array N]]\n"
				"                 [--cgroups auto|on|off]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (rounds < 1 || rounds > 64 || threads < 1 || threads > 256 || seconds <= 0 ||
	    env_vars > 10000 || (env_vars && !via_daemon) || (array && !via_daemon) ||
	    array > 1000000 ||
	    (strcmp(cgroups, "auto") && strcmp(cgroups, "on") && strcmp(cgroups, "off"))) {
		fprintf(stderr, "exec-rate: bad arguments\n");
		return 2;
	}
	double b[64], en[64], dm[64], de[64] = {0}, da[64] = {0};
	uint64_t failures = 0;
	for (unsigned i = 0; i < rounds; i++) {
		b[i] = bare(threads);
		en[i] = engine(threads, &failures);
		/* with and without the environment in turn, each first every
		 * other round, so that a drift of the machine hurts both alike */
		bool env_first = env_vars && i % 2;
		if (env_first)
			de[i] = daemon_exec_rate(dispatchd, program, env_vars, seconds, daemon_inflight,
						 cgroups, supervisor, &failures);
		dm[i] = via_daemon ? daemon_exec_rate(dispatchd, program, 0, seconds, daemon_inflight,
						      cgroups, supervisor, &failures)
				   : 0;
		if (env_vars && !env_first)
			de[i] = daemon_exec_rate(dispatchd, program, env_vars, seconds, daemon_inflight,
						 cgroups, supervisor, &failures);
		if (array)
			da[i] = daemon_array_rate(dispatchd, program, array, cgroups, supervisor,
						  &failures);
		fprintf(stderr, "exec-rate: round %u: bare %.0f/s, engine %.0f/s, daemon %.0f/s",
			i + 1, b[i], en[i], dm[i]);
		if (array)
			fprintf(stderr, ", daemon array of %u %.0f/s", array, da[i]);
		if (env_vars)
			fprintf(stderr, ", daemon with %u variables %.0f/s", env_vars, de[i]);
		fputc('\n', stderr);
	}
	qsort(b, rounds, sizeof(double), cmp);
	qsort(en, rounds, sizeof(double), cmp);
	qsort(dm, rounds, sizeof(double), cmp);
	qsort(de, rounds, sizeof(double), cmp);
	qsort(da, rounds, sizeof(double), cmp);
	double mb = b[rounds / 2], me = en[rounds / 2];
	printf("exec-rate  %s  %u threads/workers (%s)  %u rounds of %.1f s\n", program, threads,
	       pin ? "engine threads pinned" : "unpinned", rounds, seconds);
	printf("  bare posix_spawn+waitpid  median %8.0f /s  (min %.0f, max %.0f)\n", mb, b[0],
	       b[rounds - 1]);
	printf("  engine process jobs       median %8.0f /s  (min %.0f, max %.0f)\n", me, en[0],
	       en[rounds - 1]);
	printf("  engine / bare             %8.3f\n", mb > 0 ? me / mb : 0);
	if (via_daemon) {
		double md = dm[rounds / 2];
		printf("  via dispatchd (fsync)     median %8.0f /s  (min %.0f, max %.0f)\n", md, dm[0],
		       dm[rounds - 1]);
		printf("  dispatchd / bare          %8.3f\n", mb > 0 ? md / mb : 0);
		if (env_vars) {
			double mv = de[rounds / 2];
			printf("  via dispatchd, %4u vars  median %8.0f /s  (min %.0f, max %.0f)\n",
			       env_vars, mv, de[0], de[rounds - 1]);
			printf("  with vars / without       %8.3f\n", md > 0 ? mv / md : 0);
		}
		if (array) {
			double ma = da[rounds / 2];
			printf("  one array of %7u      median %8.0f /s  (min %.0f, max %.0f)\n", array,
			       ma, da[0], da[rounds - 1]);
			printf("  array / bare              %8.3f\n", mb > 0 ? ma / mb : 0);
		}
	}
	if (failures)
		printf("  failed jobs               %8llu\n", (unsigned long long)failures);
	return failures ? 1 : 0;
}
