/* inline_handlers: the reactor runs handlers itself. Same lifecycle, plus
 * the calls a handler may make back into its own shard. */
#include <time.h>

#include "util.h"

static struct dd_engine *inline_engine(unsigned shards)
{
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.inline_handlers = true;
	cfg.shards = shards;
	cfg.pretend_nodes = (int)shards;
	return make_engine(&cfg);
}

Test(inline, runs_retries_and_orders_by_priority)
{
	struct dd_engine *e = inline_engine(1);
	struct dd_stats st;
	dd_stats(e, &st);
	cr_assert_eq(st.shard[0].workers, 0, "no worker threads");

	struct dd_job_spec s = spec("flaky");
	uint32_t succeed_on = 2;
	s.payload = &succeed_on;
	s.payload_len = sizeof(succeed_on);
	s.max_attempts = 3;
	uint64_t id = submit_ok(e, &s);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
	cr_assert_eq(info.attempt, 2);

	s = spec("fail");
	cr_assert_eq(wait_state(e, submit_ok(e, &s), &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "handler failed");
	dd_engine_destroy(e);
}

Test(inline, deadline_that_passed_while_running_times_out)
{
	struct dd_engine *e = inline_engine(1);
	/* "gate" blocks the reactor until opened: nothing can interrupt it */
	struct dd_job_spec s = spec("gate");
	s.timeout_ns = 10 * MS;
	uint64_t id = submit_ok(e, &s);
	while (atomic_load(&started_count) == 0)
		sleep_ms(1);
	sleep_ms(30);
	atomic_store(&gate_open, 1);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_TIMED_OUT);
	cr_assert_str_eq(info.reason, "timeout");
	dd_engine_destroy(e);
}

struct probe {
	uint64_t other; /* a finished job on the same shard */
	uint64_t unfinished; /* a job that cannot have ended yet */
	int get_rc, get_state, wait_rc, wait_done_rc, cancel_rc, block_rc;
};

static int h_probe(const struct dd_job *j, void *arg)
{
	struct probe *p = arg;
	struct dd_engine *e = *(struct dd_engine *const *)j->payload;
	struct dd_job_info info;
	p->get_rc = dd_job_get(e, p->other, &info);
	p->get_state = info.state;
	p->wait_done_rc = dd_wait(e, p->other, 1000 * MS, &info);
	p->wait_rc = dd_wait(e, p->unfinished, 1000 * MS, &info);
	p->cancel_rc = dd_cancel(e, p->unfinished);
	return 0;
}

Test(inline, handler_calls_into_its_own_shard_never_hang)
{
	struct dd_engine *e = inline_engine(1);
	static struct probe p;
	cr_assert_eq(dd_handler_register(e, "probe", h_probe, &p), 0);
	struct dd_job_spec s = spec("ok");
	p.other = submit_ok(e, &s);
	cr_assert_eq(wait_state(e, p.other, NULL), DD_SUCCEEDED);
	s = spec("ok");
	s.delay_ns = 60000 * MS; /* waits a minute: still DELAYED when probed */
	p.unfinished = submit_ok(e, &s);
	await_state(e, p.unfinished, DD_DELAYED);

	s = spec("probe");
	s.payload = &e;
	s.payload_len = sizeof(e);
	cr_assert_eq(wait_state(e, submit_ok(e, &s), NULL), DD_SUCCEEDED);
	cr_assert_eq(p.get_rc, 0);
	cr_assert_eq(p.get_state, DD_SUCCEEDED);
	cr_assert_eq(p.wait_done_rc, 0, "a finished job's wait is answered at once");
	cr_assert_eq(p.wait_rc, -EDEADLK, "waiting on our own reactor would hang");
	cr_assert_eq(p.cancel_rc, 0);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, p.unfinished, &info), 0);
	cr_assert_eq(info.state, DD_CANCELLED);
	dd_engine_destroy(e);
}

Test(inline, cross_shard_dependencies)
{
	struct dd_engine *e = inline_engine(2);
	struct dd_job_spec a = spec("ok");
	a.shard = 0;
	uint64_t ida = submit_ok(e, &a);
	struct dd_job_spec b = spec("ok");
	b.shard = 1;
	b.deps = &ida;
	b.ndeps = 1;
	uint64_t idb = submit_ok(e, &b);
	cr_assert_eq(wait_state(e, idb, NULL), DD_SUCCEEDED);
	dd_engine_destroy(e);
}
