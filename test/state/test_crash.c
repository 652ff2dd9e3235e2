/* Crash tests: a child process runs the engine under load and is killed
 * with SIGKILL at a random moment; the parent reopens the state dir and
 * checks the promises of DESIGN.md section 4, many times over:
 *  - every job whose durability was acknowledged exists;
 *  - no job is duplicated: each idempotency key still names one job;
 *  - no terminal state goes back or changes;
 *  - at least once: in the end every acknowledged job ran to success (or,
 *    killed while running on every attempt, ended FAILED "lost"). */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sutil.h"

#define MAX_ACKED (1u << 20)
#define PER_CHILD 4000

struct shared {
	_Atomic uint64_t nacked;
	_Atomic uint64_t runs; /* handler entries, all children */
	uint64_t acked[MAX_ACKED];
	uint64_t key_id[MAX_ACKED]; /* key number -> the id dd_submit returned */
};

static struct shared *sh;

static void nap_us(unsigned us)
{
	struct timespec ts = {0, (long)us * 1000};
	nanosleep(&ts, NULL);
}

static int h_work(const struct dd_job *j, void *a)
{
	(void)a;
	if (sh)
		atomic_fetch_add(&sh->runs, 1);
	nap_us((unsigned)(j->id % 7) * 50);
	return 0;
}

static void on_durable(const uint64_t *ids, size_t n, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < n; i++) {
		uint64_t k = atomic_load(&sh->nacked);
		if (k >= MAX_ACKED)
			return;
		sh->acked[k] = ids[i];
		/* the slot is filled before the count covers it */
		atomic_store(&sh->nacked, k + 1);
	}
}

static void config(struct dd_config *c, const char *dir)
{
	config_for(c, dir, DD_DURABILITY_FSYNC);
	c->shutdown_grace_ns = 50 * MS;
	c->segment_bytes = 256u << 10; /* many segments: rollover and pruning get hit */
	c->map_initial = 1u << 20;      /* and map growth */
}

static void child(const char *dir, unsigned iter)
{
	struct dd_config c;
	config(&c, dir);
	c.on_durable = on_durable;
	struct dd_engine *e;
	if (dd_engine_create(&c, &e) < 0)
		_exit(3);
	dd_handler_register(e, "work", h_work, NULL);
	for (unsigned n = 0; n < PER_CHILD; n++) {
		char key[32];
		uint32_t kn = iter * PER_CHILD + n;
		snprintf(key, sizeof(key), "k%u", kn);
		struct dd_job_spec s = job("work");
		s.idem_key = key;
		s.max_attempts = 3;
		s.backoff_ns = 1 * MS;
		if (n % 5 == 0)
			s.delay_ns = 20 * MS;
		uint64_t id;
		if (dd_submit(e, &s, DD_SUBMIT_BLOCK, &id) < 0)
			_exit(4);
		sh->key_id[kn] = id;
		if (n % 64 == 0)
			nap_us(200);
	}
	for (;;)
		pause(); /* killed from outside */
}

struct seen {
	uint8_t *state; /* by ack index: terminal state seen, 0 none */
};

struct pair {
	uint64_t id;
	uint32_t key;
};

static int by_id(const void *a, const void *b)
{
	uint64_t x = ((const struct pair *)a)->id, y = ((const struct pair *)b)->id;
	return x < y ? -1 : x > y;
}

/* Opens the dir in this process and checks every promise so far. */
static void check(const char *dir, struct seen *seen, bool finish)
{
	struct dd_config c;
	config(&c, dir);
	struct dd_engine *e;
	int r = dd_engine_create(&c, &e);
	cr_assert_eq(r, 0, "reopen: %s", dd_strerror(r));
	dd_handler_register(e, "work", h_work, NULL);
	uint64_t n = atomic_load(&sh->nacked);
	/* the key each id was submitted under (a child killed between its
	 * submit returning and this record leaves an acked id without one) */
	struct pair *keys = malloc(MAX_ACKED * sizeof(*keys));
	size_t nkeys = 0;
	for (uint32_t k = 0; k < MAX_ACKED; k++)
		if (sh->key_id[k])
			keys[nkeys++] = (struct pair){sh->key_id[k], k};
	qsort(keys, nkeys, sizeof(*keys), by_id);
	for (uint64_t i = 0; i < n; i++) {
		struct dd_job_info info;
		uint64_t id = sh->acked[i];
		r = finish ? dd_wait(e, id, 20000 * MS, &info) : dd_job_get(e, id, &info);
		cr_assert_eq(r, 0, "acknowledged job %#lx is gone: %s", (unsigned long)id,
			     dd_strerror(r));
		if (seen->state[i])
			cr_assert_eq(info.state, seen->state[i],
				     "job %#lx was %s, now %s", (unsigned long)id,
				     dd_state_name(seen->state[i]), dd_state_name(info.state));
		if (dd_state_terminal(info.state))
			seen->state[i] = (uint8_t)info.state;
		if (finish)
			cr_assert(info.state == DD_SUCCEEDED ||
				  (info.state == DD_FAILED && strcmp(info.reason, "lost") == 0),
				  "job %#lx ended %s (%s)", (unsigned long)id, dd_state_name(info.state),
				  info.reason);
		/* the key names this job and no other */
		struct pair want = {id, 0}, *kp = bsearch(&want, keys, nkeys, sizeof(*keys), by_id);
		if (!kp)
			continue;
		char key[32];
		snprintf(key, sizeof(key), "k%u", kp->key);
		struct dd_job_spec s = job("work");
		s.idem_key = key;
		uint64_t again;
		cr_assert_eq(dd_submit(e, &s, 0, &again), 0);
		cr_assert_eq(again, id, "key %s: job %#lx, then %#lx", key, (unsigned long)id,
			     (unsigned long)again);
	}
	free(keys);
	dd_engine_destroy(e);
}

Test(crash, sigkill_under_load_keeps_every_acknowledged_job, .timeout = 600)
{
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(sh, MAP_FAILED);
	char *dir = make_tmpdir("crash");
	struct seen seen = {calloc(MAX_ACKED, 1)};
	const char *it = getenv("DD_CRASH_ITERATIONS");
	unsigned iters = it ? (unsigned)atoi(it) : 24;
	unsigned seed = 12345;
	for (unsigned iter = 0; iter < iters; iter++) {
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0)
			child(dir, iter);
		/* kill it somewhere between start-up and the end of its load */
		unsigned us = 5000 + (unsigned)(rand_r(&seed) % 400000);
		nap_us(us);
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		cr_assert(WIFSIGNALED(st), "child ended on its own (status %d) before the kill", st);
		check(dir, &seen, false);
	}
	cr_assert_gt(atomic_load(&sh->nacked), 0, "no job was ever acknowledged");
	check(dir, &seen, true);
	fprintf(stderr, "crash: %u kills, %lu acknowledged jobs checked, %lu handler runs\n", iters,
		(unsigned long)atomic_load(&sh->nacked), (unsigned long)atomic_load(&sh->runs));
	free(seen.state);
	drop_tmpdir(dir);
	munmap(sh, sizeof(*sh));
}
