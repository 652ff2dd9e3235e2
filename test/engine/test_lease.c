/* External workers: reserve, ack, nack, touch, lease expiry, owners. */
#include "util.h"

static struct dd_engine *lease_engine(void)
{
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 2;
	cfg.pretend_nodes = 2;
	cfg.workers = 1;
	struct dd_engine *e = make_engine(&cfg);
	cr_assert_eq(dd_handler_register(e, "ext", NULL, NULL), 0);
	return e;
}

static uint64_t submit_ext(struct dd_engine *e, int prio, uint32_t attempts, const char *pay)
{
	struct dd_job_spec s = spec("ext");
	s.priority = prio;
	s.max_attempts = attempts;
	s.backoff_ns = 1 * MS;
	s.payload = pay;
	s.payload_len = pay ? strlen(pay) : 0;
	uint64_t id = submit_ok(e, &s);
	await_state(e, id, DD_QUEUED);
	return id;
}

Test(lease, reserve_ack_and_errors)
{
	struct dd_engine *e = lease_engine();
	struct dd_lease l;
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), -EAGAIN);
	cr_assert_eq(dd_reserve(e, "nosuch", 1000 * MS, DD_ANY_OWNER, &l), DD_ENOHANDLER);
	cr_assert_eq(dd_reserve(e, "ok", 1000 * MS, DD_ANY_OWNER, &l), DD_ENOHANDLER,
		     "a kind with an in-process handler is not leased");
	cr_assert_eq(dd_reserve(e, "ext", 0, DD_ANY_OWNER, &l), -EINVAL);

	uint64_t id = submit_ext(e, DD_PRIO_NORMAL, 1, "hello");
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.id, id);
	cr_assert_eq(l.attempt, 1);
	cr_assert_eq(l.payload_len, 5);
	cr_assert_eq(memcmp(l.payload, "hello", 5), 0);
	free(l.payload);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.state, DD_RUNNING);
	cr_assert_eq(dd_lease_ack(e, id, 2), -ESTALE, "not that attempt");
	cr_assert_eq(dd_lease_ack(e, id, 1), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert_eq(dd_lease_ack(e, id, 1), DD_ETERMINAL);
	cr_assert_eq(dd_lease_ack(e, (uint64_t)1 << 56 | 999999, 1), -ENOENT);
	dd_engine_destroy(e);
}

Test(lease, nack_retries_then_fails)
{
	struct dd_engine *e = lease_engine();
	struct dd_lease l;
	uint64_t id = submit_ext(e, DD_PRIO_NORMAL, 2, NULL);
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(dd_lease_nack(e, id, 1, 7), 0);
	await_state(e, id, DD_QUEUED);
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.attempt, 2);
	cr_assert_eq(dd_lease_nack(e, id, 2, 0), 0);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "nack");
	cr_assert_eq(info.result, 1, "a nack of 0 still fails the attempt");
	dd_engine_destroy(e);
}

Test(lease, expiry_retries_and_stale_answers_are_refused)
{
	struct dd_engine *e = lease_engine();
	struct dd_lease l;
	uint64_t id = submit_ext(e, DD_PRIO_NORMAL, 2, NULL);
	cr_assert_eq(dd_reserve(e, "ext", 30 * MS, DD_ANY_OWNER, &l), 0);
	await_state(e, id, DD_QUEUED); /* the lease runs out; the job is queued again */
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_str_eq(info.reason, "lease expired");
	cr_assert_eq(dd_lease_ack(e, id, 1), -ESTALE);
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.attempt, 2);
	cr_assert_eq(dd_lease_ack(e, id, 1), -ESTALE, "the old lease cannot settle the new one");
	cr_assert_eq(dd_lease_ack(e, id, 2), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);

	id = submit_ext(e, DD_PRIO_NORMAL, 1, NULL); /* no attempt left: fails */
	cr_assert_eq(dd_reserve(e, "ext", 20 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "lease expired");
	dd_engine_destroy(e);
}

/* A touched lease outlives an untouched one that was due later: both jobs
 * on one shard, so one timer wheel expires them in deadline order. */
Test(lease, touch_extends)
{
	struct dd_engine *e = lease_engine();
	struct dd_lease l;
	struct dd_job_spec s = spec("ext");
	s.shard = 0;
	s.max_attempts = 1;
	uint64_t id = submit_ok(e, &s);
	await_state(e, id, DD_QUEUED);
	/* a first deadline the touch right after can meet on a slow
	 * sanitizer build on a loaded machine */
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.id, id);
	cr_assert_eq(dd_lease_touch(e, id, 1, 60000 * MS), 0);
	uint64_t witness = submit_ok(e, &s);
	await_state(e, witness, DD_QUEUED);
	/* the witness is reserved after the first and expires later than the
	 * first would have: when it has expired, the first's own deadline
	 * has passed too */
	cr_assert_eq(dd_reserve(e, "ext", 1200 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.id, witness);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, witness, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "lease expired");
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.state, DD_RUNNING, "the touched lease is held past its first deadline: %s",
		     dd_state_name(info.state));
	cr_assert_eq(dd_lease_ack(e, id, 1), 0);
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert_eq(dd_lease_touch(e, id, 1, 0), -EINVAL);
	dd_engine_destroy(e);
}

Test(lease, priority_owner_and_cancel)
{
	struct dd_engine *e = lease_engine();
	struct dd_lease l;
	struct dd_job_spec s = spec("ext");
	s.shard = 0;
	s.flags = DD_JOB_OWNER;
	s.uid = 1000;
	s.gid = 1000;
	uint64_t mine = submit_ok(e, &s);
	s.uid = 2000;
	s.priority = DD_PRIO_URGENT;
	uint64_t urgent = submit_ok(e, &s);
	await_state(e, mine, DD_QUEUED);
	await_state(e, urgent, DD_QUEUED);
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, 3000, &l), -EAGAIN, "nothing of uid 3000");
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, 1000, &l), 0);
	cr_assert_eq(l.id, mine, "the owner's job, though another is more urgent");
	cr_assert_eq(l.uid, 1000);
	cr_assert_eq(dd_cancel(e, mine), 0);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, mine, &info), DD_CANCELLED);
	cr_assert_eq(dd_lease_ack(e, mine, 1), DD_ETERMINAL);
	uint64_t normal = submit_ext(e, DD_PRIO_NORMAL, 1, NULL);
	(void)normal;
	cr_assert_eq(dd_reserve(e, "ext", 1000 * MS, DD_ANY_OWNER, &l), 0);
	cr_assert_eq(l.id, urgent, "most urgent first");
	cr_assert_eq(dd_cancel(e, normal), 0, "a queued external job can be cancelled");
	cr_assert_eq(wait_state(e, normal, &info), DD_CANCELLED);
	dd_engine_destroy(e);
}
