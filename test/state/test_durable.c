/* Durability end to end on real files: acknowledgements, restart, the store
 * answering for jobs that left memory, listing, idempotency across runs. */
#include <time.h>

#include "sutil.h"

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
	rm_tree(dir);
	free(dir);
}

Test(durable, running_job_is_retried_after_restart)
{
	char *dir = make_tmpdir("retry");
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	struct dd_job_spec s = job("hold");
	s.max_attempts = 3;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), 0);
	cr_assert_eq(dd_wait_durable(e, id, 5000 * MS), 0);
	struct dd_job_info info;
	for (int i = 0; i < 500; i++) {
		cr_assert_eq(dd_job_get(e, id, &info), 0);
		if (info.state == DD_RUNNING)
			break;
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(info.state, DD_RUNNING);
	struct dd_config cfg;
	dd_config_init(&cfg);
	dd_engine_destroy(e);

	atomic_store(&hold_gate, 1);
	e = open_engine(dir, DD_DURABILITY_FSYNC, NULL);
	struct dd_recovery rec;
	dd_engine_recovery(e, &rec);
	cr_assert_eq(rec.jobs_retried, 1);
	cr_assert_eq(dd_wait(e, id, 5000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(info.attempt, 2, "attempt %u", info.attempt);
	dd_engine_destroy(e);
	rm_tree(dir);
	free(dir);
}
