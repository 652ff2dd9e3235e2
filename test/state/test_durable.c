/* Durability end to end on real files: acknowledgements, restart, the store
 * answering for jobs that left memory, listing, idempotency across runs. */
#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "state.h"
#include "sutil.h"

/* Waits (up to 5 s) until job @id is RUNNING. */
static void wait_running(struct dd_engine *e, uint64_t id)
{
	struct dd_job_info info;
	for (int i = 0; i < 25000; i++) {
		cr_assert_eq(dd_job_get(e, id, &info), 0);
		if (info.state == DD_RUNNING)
			return;
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	cr_assert_fail("job %#lx never started", (unsigned long)id);
}

Test(durable, acknowledged_jobs_survive_a_restart)
{
	char *dir = make_tmpdir("restart");
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	uint64_t done_id, fail_id, held_id;
	struct dd_job_spec s = job("ok");
	cr_assert_eq(dd_submit(e, &s, 0, &done_id), 0);
	s = job("fail");
	cr_assert_eq(dd_submit(e, &s, 0, &fail_id), 0);
	s = job("later"); /* no handler in this run: stays queued */
	cr_assert_eq(dd_submit(e, &s, 0, &held_id), DD_ENOHANDLER);
	s = job("hold");
	s.max_attempts = 1;
	cr_assert_eq(dd_submit(e, &s, 0, &held_id), 0);
	for (uint64_t *p = (uint64_t[]){done_id, fail_id, held_id}, i = 0; i < 3; i++)
		cr_assert_eq(dd_wait_durable(e, p[i], 5000 * MS), 0);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, done_id, 5000 * MS, &info), 0);
	cr_assert_eq(dd_wait(e, fail_id, 5000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_FAILED);
	/* "hold" must have begun: on a loaded machine (sanitizers, suites in
	 * parallel) its worker may not have taken it yet, and a job that never
	 * started is queued again after the restart, not lost */
	wait_running(e, held_id);
	dd_engine_destroy(e); /* "hold" is still running: at-least-once applies */

	atomic_store(&hold_gate, 1);
	e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	struct dd_recovery rec;
	cr_assert_eq(dd_engine_recovery(e, &rec), 0);
	cr_assert_eq(rec.jobs_loaded, 1, "loaded %lu", (unsigned long)rec.jobs_loaded);
	cr_assert_eq(rec.jobs_lost, 1, "no attempt left: FAILED lost");
	cr_assert_eq(dd_job_get(e, done_id, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(dd_job_get(e, fail_id, &info), 0);
	cr_assert_eq(info.state, DD_FAILED);
	cr_assert_str_eq(info.reason, "handler failed");
	cr_assert_eq(dd_job_get(e, held_id, &info), 0);
	cr_assert_eq(info.state, DD_FAILED);
	cr_assert_str_eq(info.reason, "lost");
	/* new ids never reuse old ones */
	uint64_t next;
	s = job("ok");
	cr_assert_eq(dd_submit(e, &s, 0, &next), 0);
	cr_assert_gt(next, held_id);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* A job running when the engine stops is retried after the restart, its
 * first attempt counted. @around "ok" jobs go before it and after it: with
 * them the log is busy, a START waits for its batch while another is on its
 * way (engine/durable/durable.c), and the engine stops as soon as the job runs, so
 * its START reaches the log before the stop or with its last batch. */
static void running_job_is_retried(const char *tag, int around)
{
	char *dir = make_tmpdir(tag);
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	struct dd_job_spec s = job("ok");
	uint64_t id, other;
	for (int i = 0; i < around; i++)
		cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &other), 0);
	s = job("hold");
	s.max_attempts = 3;
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	s = job("ok");
	for (int i = 0; i < around; i++)
		cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &other), 0);
	if (!around)
		cr_assert_eq(dd_wait_durable(e, id, 5000 * MS), 0);
	struct dd_job_info info;
	wait_running(e, id);
	dd_engine_destroy(e); /* at once */

	atomic_store(&hold_gate, 1);
	e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	struct dd_recovery rec;
	dd_engine_recovery(e, &rec);
	cr_assert_eq(rec.jobs_retried, 1, "retried %lu", (unsigned long)rec.jobs_retried);
	cr_assert_eq(dd_wait(e, id, 5000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(info.attempt, 2, "attempt %u", info.attempt);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

Test(durable, running_job_is_retried_after_restart)
{
	running_job_is_retried("retry", 0);
}

Test(durable, running_job_is_retried_after_restart_under_load)
{
	running_job_is_retried("retry-load", 3000);
}

/* A job that ends before its START record reaches the log is logged as one
 * FINISH record (START and END in one; engine/durable/durable.c). Under a burst
 * most jobs do; whichever way each was logged, the store must answer for
 * it after a restart as it did in memory: state, attempt, worker, start
 * and end. */
Test(durable, jobs_ended_before_their_start_was_logged_keep_it)
{
	enum { N = 20000 };
	char *dir = make_tmpdir("finish");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_FSYNC);
	cfg.retain_terminal = 0; /* a finished job leaves memory: the store answers */
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	static uint64_t ids[N];
	struct dd_job_spec s = job("ok");
	for (int i = 0; i < N; i++)
		cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &ids[i]), 0);
	struct dd_job_info info;
	for (int i = 0; i < N; i++)
		cr_assert_eq(dd_wait(e, ids[i], 10000 * MS, &info), 0);
	struct dd_stats st;
	dd_stats(e, &st);
	fprintf(stderr, "durable: %d jobs: %lu log records\n", N,
		(unsigned long)st.total.log_records);
	cr_assert_lt(st.total.log_records, 3ull * N,
		     "%lu records for %d jobs: none was logged as one FINISH",
		     (unsigned long)st.total.log_records, N);
	dd_engine_destroy(e); /* the store has every record the log has */

	/* the engine reports no times from the store (monotonic ones mean
	 * nothing across runs), so read them from the store itself */
	char path[4200];
	snprintf(path, sizeof(path), "%s/shard-0/store", dir);
	struct dd_state_store_opts so = {.map_initial = 1u << 20, .map_max = 1ull << 32};
	struct dd_state_store *store;
	cr_assert_eq(dd_state_store_open(path, &so, &store), 0);
	for (int i = 0; i < N; i += 97) {
		struct dd_state_job sj;
		void *buf;
		cr_assert_eq(dd_state_store_get(store, ids[i], &sj, &buf), 0);
		cr_assert_eq(sj.state, DD_SUCCEEDED, "job %lu", (unsigned long)ids[i]);
		cr_assert_eq(sj.attempt, 1);
		cr_assert_geq(sj.worker, 0, "job %lu: its worker was kept", (unsigned long)ids[i]);
		cr_assert(sj.started_rt && sj.started_rt <= sj.ended_rt,
			  "job %lu: started %lu, ended %lu", (unsigned long)ids[i],
			  (unsigned long)sj.started_rt, (unsigned long)sj.ended_rt);
		free(buf);
	}
	dd_state_store_close(store);
	e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	cr_assert_eq(dd_job_get(e, ids[N - 1], &info), 0);
	cr_assert(info.state == DD_SUCCEEDED && info.worker >= 0);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

Test(durable, idempotency_key_holds_across_restart)
{
	char *dir = make_tmpdir("idem");
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	struct dd_job_spec s = job("ok");
	s.idem_key = "order-17";
	uint64_t id, again;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	cr_assert_eq(dd_wait(e, id, 5000 * MS, NULL), 0);
	dd_engine_destroy(e);
	e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	cr_assert_eq(dd_submit(e, &s, 0, &again), 0);
	cr_assert_eq(again, id, "the key still names the first job");
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

static _Atomic uint64_t durable_seen;
static void count_durable(const uint64_t *ids, size_t n, void *arg)
{
	(void)ids, (void)arg;
	atomic_fetch_add(&durable_seen, n);
}

Test(durable, strict_job_starts_only_once_durable_and_levels_lower_per_job)
{
	char *dir = make_tmpdir("strict");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_FSYNC);
	cfg.on_durable = count_durable;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	struct dd_job_spec s = job("ok");
	s.flags = DD_JOB_STRICT;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, id, 5000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(dd_wait_durable(e, id, 0), 0, "started, so durable before");
	cr_assert_geq(atomic_load(&durable_seen), 1);

	s = job("ok");
	s.durability = DD_DURABILITY_NONE;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	cr_assert_eq(dd_wait_durable(e, id, 1000 * MS), -EOPNOTSUPP);
	s.durability = DD_DURABILITY_BUFFERED;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	cr_assert_eq(dd_wait_durable(e, id, 5000 * MS), 0);
	s.durability = 9;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

Test(durable, list_by_state_with_a_cursor)
{
	char *dir = make_tmpdir("list");
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	uint64_t ids[25];
	for (int i = 0; i < 25; i++) {
		struct dd_job_spec s = job(i % 5 == 0 ? "fail" : "ok");
		cr_assert_eq(dd_submit(e, &s, 0, &ids[i]), 0);
	}
	for (int i = 0; i < 25; i++)
		cr_assert_eq(dd_wait(e, ids[i], 5000 * MS, NULL), 0);
	/* the store follows the log: wait until it has every ending */
	struct dd_stats st;
	for (int k = 0; k < 500; k++) {
		dd_stats(e, &st);
		if (st.total.applied_lsn && st.shard[0].applied_lsn >= st.shard[0].durable_lsn &&
		    st.total.succeeded + st.total.failed == 25)
			break;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	uint64_t got[8], after = 0;
	size_t n, total = 0;
	do {
		cr_assert_eq(dd_job_list(e, DD_SUCCEEDED, after, got, 8, &n), 0);
		for (size_t i = 0; i < n; i++) {
			cr_assert_gt(got[i], after, "ascending");
			total++;
			after = got[i];
		}
	} while (n == 8);
	cr_assert_eq(total, 20);
	cr_assert_eq(dd_job_list(e, DD_FAILED, 0, got, 8, &n), 0);
	cr_assert_eq(n, 5);
	cr_assert_eq(dd_job_list(e, 42, 0, got, 8, &n), -EINVAL);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

Test(durable, retention_keeps_the_store_flat_and_the_map_grows)
{
	char *dir = make_tmpdir("retain");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_BUFFERED);
	cfg.store_retain_count = 1000;
	cfg.map_initial = 1u << 20; /* 1 MiB: 4 KiB payloads overflow it soon */
	cfg.retain_terminal = 100;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_BUFFERED, &cfg);
	static char payload[4096];
	uint64_t first = 0, id = 0;
	for (int i = 0; i < 6000; i++) {
		struct dd_job_spec s = job("ok");
		s.payload = payload;
		s.payload_len = sizeof(payload);
		cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
		if (!first)
			first = id;
	}
	cr_assert_eq(dd_wait(e, id, 10000 * MS, NULL), 0);
	struct dd_stats st;
	struct dd_job_info info;
	int r = 0;
	for (int k = 0; k < 1000; k++) { /* retention runs every 100 ms */
		dd_stats(e, &st);
		r = dd_job_get(e, first, &info);
		if (r == DD_EEVICTED && st.total.store_jobs && st.total.store_jobs <= 1000)
			break;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_leq(st.total.store_jobs, 1000, "store holds %lu", (unsigned long)st.total.store_jobs);
	cr_assert_gt(st.total.store_map_bytes, 1u << 20, "the map grew past its start");
	cr_assert_eq(st.total.state_error, 0);
	cr_assert_eq(dd_job_get(e, id, &info), 0, "the newest are kept");
	cr_assert_eq(r, DD_EEVICTED, "the oldest are gone: %s, state %s", dd_strerror(r),
		     dd_state_name(info.state));
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* A child process that holds the store's LMDB write lock from when the
 * parent says (a byte on @go) until it says again, so that the applier
 * cannot commit. Forked before the engine starts any thread. */
/* One byte from @fd, through signals. */
static ssize_t read_byte(int fd, char *b)
{
	ssize_t k;
	while ((k = read(fd, b, 1)) < 0 && errno == EINTR)
		;
	return k;
}

static pid_t store_holder(const char *storedir, const int go[2], const int held[2])
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* if the test fails, its end of @go closes and the read below ends */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(go[1]);
	close(held[0]);
	char b;
	MDB_env *env;
	MDB_txn *t;
	if (read_byte(go[0], &b) != 1)
		_exit(2);
	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
	    mdb_env_open(env, storedir, MDB_NOTLS, 0600) || mdb_txn_begin(env, NULL, 0, &t))
		_exit(3);
	if (write(held[1], "h", 1) != 1 || read_byte(go[0], &b) != 1)
		_exit(4);
	mdb_txn_abort(t);
	mdb_env_close(env);
	_exit(0);
}

Test(durable, store_far_behind_the_log_holds_submissions_back)
{
	char *dir = make_tmpdir("lag");
	char storedir[4200];
	snprintf(storedir, sizeof(storedir), "%s/shard-0/store", dir);
	int go[2], held[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(held), 0);
	pid_t child = store_holder(storedir, go, held);
	cr_assert_gt(child, 0);
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_BUFFERED);
	cfg.shards = 1;
	cfg.store_lag_max = 1024;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_BUFFERED, &cfg);
	char b;
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(read(held[0], &b, 1), 1, "the child holds the store's write lock");

	/* the applier is stuck behind the lock: the log runs ahead until the
	 * engine says "not now" */
	uint64_t id = 0, deadline = (uint64_t)time(NULL) + 20;
	unsigned taken = 0;
	int r = 0;
	while ((uint64_t)time(NULL) < deadline) {
		struct dd_job_spec s = job("ok");
		if ((r = dd_submit(e, &s, 0, &id)) != 0)
			break;
		taken++;
		if (taken % 64 == 0) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL); /* let the reactor log them */
		}
	}
	cr_assert_eq(r, -EAGAIN, "refused with EAGAIN, not %s", dd_strerror(r));
	/* every job logs at least its submission: 1024 records of lag are at
	 * most 1024 jobs, plus those not yet logged when the check ran */
	cr_assert_leq(taken, 1024 + 4096, "%u jobs were taken", taken);
	cr_assert_geq(taken, 1024 / 3, "%u jobs were taken", taken);
	struct dd_stats st;
	dd_stats(e, &st);
	cr_assert_eq(st.total.state_error, 0, "a lag is not an error");
	cr_assert_eq(dd_state_error(e), 0);

	/* the lock released, the store catches up and submissions go on */
	cr_assert_eq(write(go[1], "r", 1), 1);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the store holder: %s %d",
		  WIFEXITED(status) ? "exit" : "signal",
		  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	struct dd_job_spec s = job("ok");
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, id, 10000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
	close(go[0]), close(go[1]), close(held[0]), close(held[1]);
}

/* The log segments of shard 0: how many, and the first LSN of the oldest
 * (segments are named after it, in hex; 0 when there is none). */
static unsigned wal_segments(const char *dir, uint64_t *oldest)
{
	char wal[4200];
	snprintf(wal, sizeof(wal), "%s/shard-0/wal", dir);
	DIR *d = opendir(wal);
	unsigned n = 0;
	uint64_t first_lsn = 0;
	for (struct dirent *de; d && (de = readdir(d));) {
		size_t len = strlen(de->d_name);
		if (len <= 4 || strcmp(de->d_name + len - 4, ".wal"))
			continue;
		n++;
		uint64_t first = strtoull(de->d_name, NULL, 16);
		if (!first_lsn || first < first_lsn)
			first_lsn = first;
	}
	if (d)
		closedir(d);
	if (oldest)
		*oldest = first_lsn;
	return n;
}

/* Old segments kept for reuse in shard 0's log (spare-0, spare-1). */
static unsigned wal_spares(const char *dir)
{
	unsigned n = 0;
	for (int k = 0; k < 4; k++) {
		char path[4300];
		snprintf(path, sizeof(path), "%s/shard-0/wal/spare-%d", dir, k);
		n += access(path, F_OK) == 0;
	}
	return n;
}

static uint64_t oldest_segment(const char *dir)
{
	uint64_t oldest;
	wal_segments(dir, &oldest);
	return oldest;
}

/* Segments are retired (kept as spares or deleted) on a helper thread
 * while the engine runs; the applier's last round waits for it and retires
 * the rest itself. So once dd_engine_destroy() returns, the log is the one
 * segment being written, and its spares: no helper is still at work, no
 * segment was left behind. */
Test(durable, log_is_pruned_to_one_segment_by_shutdown)
{
	enum { N = 6000 };
	char *dir = make_tmpdir("prune");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_BUFFERED);
	cfg.shards = 1;
	cfg.segment_bytes = 1u << 16; /* a segment per ~1,000 records */
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_BUFFERED, &cfg);
	struct dd_job_spec s = job("ok");
	static uint64_t ids[N];
	for (int i = 0; i < N; i++)
		cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &ids[i]), 0);
	struct dd_job_info info;
	for (int i = 0; i < N; i++)
		cr_assert_eq(dd_wait(e, ids[i], 10000 * MS, &info), 0);
	unsigned running = wal_segments(dir, NULL);
	dd_engine_destroy(e);
	unsigned left = wal_segments(dir, NULL);
	fprintf(stderr, "durable: %u segments while running, %u after shutdown\n", running, left);
	cr_assert_eq(left, 1, "%u log segments left after shutdown", left);
	/* the retired ones become spares, two at most; the last round always
	 * retires one since the spares were last taken, so one at least */
	unsigned spares = wal_spares(dir);
	cr_assert(spares >= 1 && spares <= 2, "%u spare segments", spares);
	e = open_engine(dir, DD_DURABILITY_BUFFERED, &cfg);
	for (int i = 0; i < N; i += 997)
		cr_assert_eq(dd_job_get(e, ids[i], &info), 0, "job %d after the restart", i);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

struct loader {
	struct dd_engine *e;
	_Atomic bool stop;
	_Atomic uint64_t first, last;
};

static void *load(void *arg)
{
	struct loader *l = arg;
	/* Each job with an idempotency key: two more B-tree changes for the
	 * store's applier (the key in, and out again with retention), so that
	 * it stays behind the log even where everything runs 5-20x slower
	 * (sanitizers). */
	static _Atomic unsigned seq;
	while (!atomic_load(&l->stop)) {
		struct dd_job_spec s[64];
		uint64_t ids[64];
		char keys[64][160];
		size_t got = 0;
		for (int i = 0; i < 64; i++) {
			s[i] = job("ok");
			/* long keys: more of the store's pages for each */
			snprintf(keys[i], sizeof(keys[i]), "%0140u", atomic_fetch_add(&seq, 1));
			s[i].idem_key = keys[i];
		}
		if (dd_submit_batch(l->e, s, 64, DD_SUBMIT_BLOCK, ids, &got) == 0) {
			uint64_t none = 0;
			atomic_compare_exchange_strong(&l->first, &none, ids[0]);
			atomic_store(&l->last, ids[63]);
		}
	}
	return NULL;
}

/* Under a load that keeps the applier busy, the log is still pruned and
 * retention still runs: neither waits for an idle moment. */
Test(durable, log_is_pruned_and_retention_runs_under_load, .timeout = 180)
{
	char *dir = make_tmpdir("busy");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_BUFFERED);
	cfg.shards = 1;
	cfg.segment_bytes = 1u << 16; /* a segment per ~1,000 records */
	cfg.store_retain_count = 2000;
	cfg.retain_terminal = 1000;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_BUFFERED, &cfg);
	struct loader l = {.e = e};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, load, &l), 0);
	uint64_t most_jobs = 0, oldest_before = 0;
	int caught_up = 0;
	struct timespec ts = {0, 20000000};
	for (int k = 0; k < 160; k++) { /* 3.2 s of load */
		nanosleep(&ts, NULL);
		struct dd_stats st;
		dd_stats(e, &st);
		if (k < 10) { /* the first 0.2 s: the load getting going */
			oldest_before = oldest_segment(dir);
			continue;
		}
		if (st.total.store_jobs > most_jobs)
			most_jobs = st.total.store_jobs;
		/* what this test is about: the applier never idle */
		caught_up += st.shard[0].applied_lsn >= st.shard[0].durable_lsn;
	}
	fprintf(stderr, "durable: the applier caught up %d times in 150 looks\n", caught_up);
	uint64_t oldest = oldest_segment(dir); /* still under load */
	/* Still under load: retention takes the first job out of the store
	 * (it ended among the first, and thousands have ended since). Out of
	 * memory too (retain_terminal), it is then gone: DD_EEVICTED. */
	uint64_t first = atomic_load(&l.first);
	cr_assert_neq(first, 0);
	uint64_t t0 = dd_mono_ns();
	int got;
	struct dd_job_info info;
	do { /* a minute at most */
		got = dd_job_get(e, first, &info);
		if (got == DD_EEVICTED)
			break;
		nanosleep(&ts, NULL);
	} while (dd_mono_ns() - t0 < 60 * 1000000000ull);
	atomic_store(&l.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
	cr_assert_eq(got, DD_EEVICTED, "retention removed the first ended job from the store: %s",
		     got == 0 ? "still there" : dd_strerror(got));
	if (caught_up) /* the loaders could not outrun the store here: nothing to tell */
		cr_skip_test("the applier caught up with the log %d times in 150 looks", caught_up);
	/* the store's job count is measured by its maintenance only (whether
	 * retention keeps up with this load is timing: not asserted here) */
	cr_assert_gt(most_jobs, 0, "maintenance ran while the applier was busy");
	cr_assert_gt(oldest, oldest_before, "the log was pruned under load (from segment %lu)",
		     (unsigned long)oldest_before);
}

static unsigned scale(void)
{
	const char *s = getenv("DD_TEST_SCALE");
	unsigned v = s ? (unsigned)atoi(s) : 1;
	return v ? v : 1;
}

Test(durable, recovers_a_million_jobs, .timeout = 600)
{
	char *dir = make_tmpdir("million");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_FSYNC);
	cfg.retain_terminal = 0;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	unsigned n = 1000000 / scale();
	enum { B = 256 };
	struct dd_job_spec specs[B];
	uint64_t ids[B], last = 0;
	for (int i = 0; i < B; i++) {
		specs[i] = job("ok");
		specs[i].delay_ns = 3600000 * MS; /* an hour: still waiting at restart */
	}
	for (unsigned done = 0; done < n;) {
		size_t k = n - done < B ? n - done : B, got;
		cr_assert_eq(dd_submit_batch(e, specs, k, DD_SUBMIT_BLOCK, ids, &got), 0);
		done += (unsigned)got;
		last = ids[got - 1];
	}
	cr_assert_eq(dd_wait_durable(e, last, 60000 * MS), 0);
	dd_engine_destroy(e);

	uint64_t t0 = dd_mono_ns();
	e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	uint64_t t1 = dd_mono_ns();
	struct dd_recovery rec;
	cr_assert_eq(dd_engine_recovery(e, &rec), 0);
	cr_assert_eq(rec.jobs_loaded, n, "loaded %lu of %u", (unsigned long)rec.jobs_loaded, n);
	struct dd_stats st;
	dd_stats(e, &st);
	cr_assert_eq(st.total.delayed, n);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, last, &info), 0);
	cr_assert_eq(info.state, DD_DELAYED);
	fprintf(stderr, "recovery: %u jobs back in memory in %.2f s (engine create %.2f s), %lu log "
			"records replayed\n",
		n, rec.ns / 1e9,
		(double)(t1 - t0) / 1e9,
		(unsigned long)rec.records_replayed);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

Test(durable, store_at_its_map_limit_refuses_with_a_clear_error)
{
	char *dir = make_tmpdir("mapmax");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_BUFFERED);
	cfg.map_initial = 1u << 20;
	cfg.map_max = 2u << 20; /* room for a few hundred 4 KiB jobs */
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_BUFFERED, &cfg);
	static char payload[4096];
	int err = 0;
	uint64_t id;
	for (int i = 0; i < 20000 && !err; i++) {
		struct dd_job_spec s = job("hold");
		s.payload = payload;
		s.payload_len = sizeof(payload);
		s.delay_ns = 3600000 * MS; /* they stay */
		err = dd_submit(e, &s, DD_SUBMIT_BLOCK, &id);
		if (i % 32 == 31 && !err) {
			/* let the store catch up with the log (slow under sanitizers) */
			struct dd_stats st;
			for (int k = 0; k < 1000; k++) {
				dd_stats(e, &st);
				if (st.total.state_error || (st.shard[0].durable_lsn &&
							     st.shard[0].applied_lsn >= st.shard[0].durable_lsn))
					break;
				struct timespec ts = {0, 5000000};
				nanosleep(&ts, NULL);
			}
		}
	}
	cr_assert_eq(err, DD_ESTOREFULL, "ended with: %s", dd_strerror(err));
	cr_assert(strstr(dd_strerror(err), "map_max"), "the message says what to change");
	struct dd_stats st;
	for (int k = 0; k < 100; k++) { /* stats are published, not locked */
		dd_stats(e, &st);
		if (st.total.store_map_bytes == 2u << 20)
			break;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(st.total.state_error, DD_ESTOREFULL);
	cr_assert_eq(dd_state_error(e), DD_ESTOREFULL, "the cheap read says the same");
	cr_assert_eq(st.total.store_map_bytes, 2u << 20);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* A process job that retention takes out of the store takes its captured
 * output with it, every attempt's: the output directory does not grow for
 * ever. */
Test(durable, retention_removes_output_files)
{
	char *dir = make_tmpdir("outret");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_FSYNC);
	cfg.store_retain_count = 0; /* ended jobs leave at the next maintenance */
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	char script[4400];
	/* fails twice, then succeeds; each attempt writes */
	snprintf(script, sizeof(script),
		 "n=$(cat %s/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s/n; "
		 "echo attempt $n; [ $n -ge 3 ]", dir, dir);
	const char *argv[] = {"sh", "-c", script, NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = job("procs");
	s.exec = &x;
	s.max_attempts = 3;
	s.backoff_ns = 1 * MS;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, id, 10000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(info.attempt, 3);
	for (uint32_t a = 1; a <= 3; a++) {
		char path[4300];
		cr_assert_eq(dd_job_output_path(e, id, a, 1, path, sizeof(path)), 0);
		bool gone = false;
		for (int i = 0; i < 500 && !gone; i++) {
			gone = access(path, F_OK) != 0;
			if (!gone) {
				struct timespec ts = {0, 10 * MS};
				nanosleep(&ts, NULL);
			}
		}
		cr_assert(gone, "%s removed with its job", path);
	}
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* Durable acknowledgements and log batches are timed: one sample per
 * acknowledged submission, one per batch. */
Test(durable, ack_and_log_latency_histograms)
{
	char *dir = make_tmpdir("hist");
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	enum { N = 50 };
	for (int i = 0; i < N; i++) {
		struct dd_job_spec s = job("ok");
		uint64_t id;
		cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
		cr_assert_eq(dd_wait_durable(e, id, 10000 * MS), 0);
	}
	struct dd_stats st;
	dd_stats(e, &st);
	const struct dd_hist_summary *ack = &st.total.hist[DD_HIST_DURABLE_ACK];
	const struct dd_hist_summary *io = &st.total.hist[DD_HIST_LOG_IO];
	cr_assert_eq(ack->count, N);
	cr_assert_gt(ack->p50_ns, 0);
	cr_assert_geq(io->count, 1);
	cr_assert_leq(io->count, st.total.log_batches);
	cr_assert_gt(io->max_ns, 0);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* The CPUs thread @task (its /proc/self/task name, the thread id) may run
 * on, a bit per CPU below 64; 0 when it is gone. */
static uint64_t thread_cpus(const char *task)
{
	cpu_set_t set;
	uint64_t mask = 0;
	if (sched_getaffinity((pid_t)atoi(task), sizeof(set), &set) != 0)
		return 0;
	for (int c = 0; c < 64; c++)
		if (CPU_ISSET(c, &set))
			mask |= 1ull << c;
	return mask;
}

/* A thread's name ("" when it is gone). */
static void task_comm(const char *task, char *comm, size_t size)
{
	char path[300];
	snprintf(path, sizeof(path), "/proc/self/task/%s/comm", task);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(comm, (int)size, f))
		comm[0] = 0;
	if (f)
		fclose(f);
}

/* This process's CPUs; the test is skipped (and counted so) with fewer
 * than @need. */
static int cpus_or_skip(int need)
{
	cpu_set_t mine;
	cr_assert_eq(sched_getaffinity(0, sizeof(mine), &mine), 0);
	if (CPU_COUNT(&mine) < need)
		cr_skip_test("needs %d CPUs, this process has %d", need, CPU_COUNT(&mine));
	return CPU_COUNT(&mine);
}

/* With the reactor pinned and a CPU to spare, the store's applier and the
 * kernel threads that write and sync the log (io_uring's workers) must
 * not share the reactor's CPU: there they took it for milliseconds. */
Test(durable, background_work_stays_off_the_reactor_cpu)
{
	cpus_or_skip(2);
	char *dir = make_tmpdir("place");
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_FSYNC);
	cfg.pin = true;
	cfg.inline_handlers = true; /* no worker: the reactor's CPU is the only hot one */
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	uint64_t id = 0;
	for (int i = 0; i < 200; i++) { /* log writes and fdatasyncs: io_uring's workers */
		struct dd_job_spec s = job("ok");
		cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	}
	cr_assert_eq(dd_wait_durable(e, id, 5000 * MS), 0);
	/* the CPUs each kind of thread may use; for io_uring's workers, all
	 * of theirs together */
	uint64_t reactor = 0, applier = 0, ring_workers = 0;
	int nring = 0;
	DIR *d = opendir("/proc/self/task");
	cr_assert(d);
	for (struct dirent *de; (de = readdir(d));) {
		char comm[64];
		task_comm(de->d_name, comm, sizeof(comm));
		if (strncmp(comm, "dd-reactor-0", 12) == 0)
			reactor = thread_cpus(de->d_name);
		else if (strncmp(comm, "dd-apply-0", 10) == 0)
			applier = thread_cpus(de->d_name);
		else if (strncmp(comm, "iou-wrk-", 8) == 0) {
			ring_workers |= thread_cpus(de->d_name);
			nring++;
		}
	}
	closedir(d);
	cr_assert(reactor && (reactor & (reactor - 1)) == 0, "the reactor is on one CPU");
	cr_assert(applier, "an applier thread");
	cr_assert_gt(nring, 0, "the fdatasyncs ran on io_uring's workers");
	cr_assert_eq(applier & reactor, 0, "applier CPUs %#lx, reactor %#lx",
		     (unsigned long)applier, (unsigned long)reactor);
	cr_assert_eq(ring_workers & reactor, 0, "io_uring workers on CPUs %#lx, reactor %#lx",
		     (unsigned long)ring_workers, (unsigned long)reactor);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* The spin an engine chooses (DD_SPIN_AUTO) for @level with the process on
 * @ncpu of its CPUs; @explicit_ns instead of auto when not 0. */
static uint64_t chosen_spin(const char *dir, enum dd_durability level, int ncpu,
			    uint64_t explicit_ns)
{
	cpu_set_t all, few;
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&few);
	for (int c = 0, n = 0; c < CPU_SETSIZE && n < ncpu; c++)
		if (CPU_ISSET(c, &all)) {
			CPU_SET(c, &few);
			n++;
		}
	cr_assert_eq(sched_setaffinity(0, sizeof(few), &few), 0);
	struct dd_config cfg;
	config_for(&cfg, dir, level);
	cfg.inline_handlers = true; /* the reactor is the only thread that spins */
	cfg.spin_ns = explicit_ns ? explicit_ns : DD_SPIN_AUTO;
	struct dd_engine *e = open_engine(dir, level, &cfg);
	struct dd_stats st;
	dd_stats(e, &st);
	dd_engine_destroy(e);
	cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
	return st.spin_ns;
}

/* DD_SPIN_AUTO spins only when a CPU is left over for the submitters
 * beyond the reactor and, with durable state, the log and store's. */
Test(durable, spin_is_chosen_by_the_cpus_left_over)
{
	int ncpu = cpus_or_skip(2);
	char *dir = make_tmpdir("spin");
	cr_assert_eq(chosen_spin(dir, DD_DURABILITY_NONE, 1, 0), 0, "one CPU: the reactor's");
	cr_assert_eq(chosen_spin(dir, DD_DURABILITY_NONE, 2, 0), 50000, "one CPU to spare");
	cr_assert_eq(chosen_spin(dir, DD_DURABILITY_FSYNC, 2, 0), 0, "the other is the store's");
	if (ncpu >= 3)
		cr_assert_eq(chosen_spin(dir, DD_DURABILITY_FSYNC, 3, 0), 50000);
	cr_assert_eq(chosen_spin(dir, DD_DURABILITY_FSYNC, 2, 7000), 7000, "as configured");
	drop_tmpdir(dir);
}

/* LMDB marks its store in use with an fcntl lock on lock.mdb, and a
 * process that can take that lock exclusively resets the file. A
 * process's fcntl locks go when it closes any descriptor of the file, so
 * the engine must not open and close lock.mdb once LMDB has it: then a
 * second process (mdb_stat, a backup) would reset the lock file under the
 * running engine. */
Test(durable, a_new_store_stays_locked_while_the_engine_runs)
{
	char *dir = make_tmpdir("lock");
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_BUFFERED, NULL);
	char lock[4200];
	snprintf(lock, sizeof(lock), "%s/shard-0/store/lock.mdb", dir);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		/* F_GETLK from another process: who holds what */
		int fd = open(lock, O_RDWR | O_CLOEXEC);
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
		_exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? 0 : 1);
	}
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the engine holds no lock on its store's lock.mdb");
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}

/* ---- arrays across a restart ---- */

static _Atomic int idx_runs[100];
static _Atomic int idx_gate;

/* Indices below 10 end at once; the others hold until idx_gate opens. */
static int idx_handler(const struct dd_job *j, void *arg)
{
	(void)arg;
	atomic_fetch_add(&idx_runs[j->array_index], 1);
	while (j->array_index >= 10 && !atomic_load(&idx_gate) && !dd_job_cancelled(j)) {
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* An array is one record; its elements are made as they run. After a
 * restart those that ended are not run again, those that ran are retried
 * (at least once), and the rest are made as before. */
Test(durable, an_array_goes_on_after_a_restart)
{
	char *dir = make_tmpdir("array");
	struct dd_config c;
	config_for(&c, dir, DD_DURABILITY_FSYNC);
	c.workers = 4; /* the four may run at once */
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &c);
	cr_assert_eq(dd_handler_register(e, "idx", idx_handler, NULL), 0);
	struct dd_array_range r = {0, 99, 1};
	struct dd_array_spec as = {.ranges = &r, .nranges = 1, .max_running = 4};
	struct dd_job_spec s = job("idx");
	s.array = &as;
	s.max_attempts = 3;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	cr_assert_eq(dd_wait_durable(e, id, 5000 * MS), 0);
	struct dd_job_info info;
	/* ten ended, and four in their handlers (RUNNING alone is not enough:
	 * a slow worker may not have entered the handler yet, and a start cut
	 * short by the stop runs once, after the restart) */
	for (int i = 0; i < 300000; i++) {
		cr_assert_eq(dd_job_get(e, id, &info), 0);
		int in = 0;
		for (int k = 10; k < 14; k++)
			in += atomic_load(&idx_runs[k]) == 1;
		if (info.array_states[DD_SUCCEEDED] == 10 && in == 4)
			break;
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(info.array_states[DD_SUCCEEDED], 10);
	cr_assert_eq(info.array_states[DD_RUNNING], 4);
	/* the four running ones' STARTs on the device */
	for (uint64_t k = 11; k <= 14; k++)
		cr_assert_eq(dd_wait_durable(e, id + k, 5000 * MS), 0);
	dd_engine_destroy(e);

	atomic_store(&idx_gate, 1);
	e = open_engine(dir, DD_DURABILITY_FSYNC, &c);
	cr_assert_eq(dd_handler_register(e, "idx", idx_handler, NULL), 0);
	struct dd_recovery rec;
	cr_assert_eq(dd_engine_recovery(e, &rec), 0);
	cr_assert_eq(rec.jobs_loaded, 5, "the array and its 4 running elements, loaded %lu",
		     (unsigned long)rec.jobs_loaded);
	cr_assert_eq(dd_wait(e, id, 60000 * MS, &info), 0);
	struct dd_job_info ei;
	cr_assert_eq(dd_job_get(e, id + 1 + 11, &ei), 0);
	cr_assert_eq(ei.state, DD_SUCCEEDED, "element 11: %s, %s, attempt %u", dd_state_name(ei.state),
		     ei.reason, ei.attempt);
	cr_assert_eq(info.state, DD_SUCCEEDED, "%s (%lu %lu %lu %lu)", info.reason,
		     (unsigned long)info.array_states[5], (unsigned long)info.array_states[6],
		     (unsigned long)info.array_states[7], (unsigned long)info.array_states[8]);
	cr_assert_eq(info.array_states[DD_SUCCEEDED], 100);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(atomic_load(&idx_runs[i]), i >= 10 && i < 14 ? 2 : 1,
			     "index %d ran %d times", i, atomic_load(&idx_runs[i]));
	cr_assert_eq(dd_job_get(e, id + 1 + 12, &info), 0);
	cr_assert_eq(info.attempt, 2);
	cr_assert_eq(info.array_index, 12u);
	dd_engine_destroy(e);

	/* and in the store, once it left memory */
	c.retain_terminal = 0;
	e = open_engine(dir, DD_DURABILITY_FSYNC, &c);
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(dd_job_get(e, id + 50, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	dd_engine_destroy(e);
	drop_tmpdir(dir);
}
