/* Dependencies: chains, diamonds, failure propagation, finished deps. */
#include "util.h"

static uint64_t submit_after(struct dd_engine *e, const char *kind, const uint64_t *deps,
			     uint32_t n, int tag)
{
	struct dd_job_spec s = spec(kind);
	s.deps = deps;
	s.ndeps = n;
	s.payload = &tag;
	s.payload_len = sizeof(tag);
	return submit_ok(e, &s);
}

static int pos_of(int tag)
{
	for (int i = 0; i < atomic_load(&order_len); i++)
		if (order_log[i] == tag)
			return i;
	return -1;
}

static void chain(struct dd_config *c)
{
	struct dd_engine *e = make_engine(c);
	struct dd_job_spec g = spec("gate");
	uint64_t prev = submit_ok(e, &g);
	uint64_t ids[20];
	for (int i = 0; i < 20; i++) {
		ids[i] = submit_after(e, "order", &prev, 1, i);
		prev = ids[i];
	}
	await_state(e, ids[19], DD_WAITING);
	atomic_store(&gate_open, 1);
	cr_assert_eq(wait_state(e, ids[19], NULL), DD_SUCCEEDED);
	cr_assert_eq(atomic_load(&order_len), 20);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(order_log[i], i, "chain ran out of order");
	dd_engine_destroy(e);
}

Test(deps, chain_runs_in_order)
{
	chain(NULL);
}

Test(deps, chain_across_shards)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 3; /* three shards; round-robin spreads the chain */
	chain(&c);
}

Test(deps, diamond)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 2;
	struct dd_engine *e = make_engine(&c);
	uint64_t a = submit_after(e, "order", NULL, 0, 1);
	uint64_t b = submit_after(e, "order", &a, 1, 2);
	uint64_t cc = submit_after(e, "order", &a, 1, 3);
	uint64_t bc[2] = {b, cc};
	uint64_t d = submit_after(e, "order", bc, 2, 4);
	cr_assert_eq(wait_state(e, d, NULL), DD_SUCCEEDED);
	cr_assert_lt(pos_of(1), pos_of(2));
	cr_assert_lt(pos_of(1), pos_of(3));
	cr_assert_lt(pos_of(2), pos_of(4));
	cr_assert_lt(pos_of(3), pos_of(4));
	dd_engine_destroy(e);
}

Test(deps, failure_fails_dependants_transitively)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 2;
	struct dd_engine *e = make_engine(&c);
	struct dd_job_spec g = spec("gate");
	uint64_t gate = submit_ok(e, &g);
	uint64_t a = submit_after(e, "fail", &gate, 1, 0);
	uint64_t b = submit_after(e, "order", &a, 1, 1);
	uint64_t ok = submit_after(e, "order", NULL, 0, 2);
	uint64_t bo[2] = {ok, b};
	uint64_t cjob = submit_after(e, "order", bo, 2, 3);
	atomic_store(&gate_open, 1);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, a, NULL), DD_FAILED);
	cr_assert_eq(wait_state(e, b, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "dependency");
	cr_assert_eq(info.attempt, 0, "never ran");
	cr_assert_eq(wait_state(e, cjob, &info), DD_FAILED);
	cr_assert_str_eq(info.reason, "dependency");
	cr_assert_eq(pos_of(1), -1);
	cr_assert_eq(pos_of(3), -1);
	dd_engine_destroy(e);
}

Test(deps, on_jobs_that_already_ended)
{
	struct dd_config c;
	dd_config_init(&c);
	c.retain_terminal = 0; /* records leave memory at once: the fate map answers */
	struct dd_engine *e = make_engine(&c);
	struct dd_job_spec s = spec("ok"), f = spec("fail");
	uint64_t good = submit_ok(e, &s), bad = submit_ok(e, &f);
	/* ended and evicted: dd_wait says so */
	for (int i = 0; i < 5000; i++) {
		struct dd_stats st;
		dd_stats(e, &st);
		if (st.total.succeeded + st.total.failed == 2)
			break;
		sleep_ms(1);
	}
	cr_assert_eq(dd_job_get(e, good, NULL), DD_EEVICTED);
	uint64_t x = submit_after(e, "ok", &good, 1, 0);
	uint64_t y = submit_after(e, "ok", &bad, 1, 0);
	struct dd_job_info info;
	/* either still held (and then it must have succeeded) or already gone */
	int r = dd_wait(e, x, 5000 * MS, &info);
	cr_assert(r == DD_EEVICTED || (r == 0 && info.state == DD_SUCCEEDED));
	r = dd_wait(e, y, 5000 * MS, &info);
	cr_assert(r == DD_EEVICTED || (r == 0 && info.state == DD_FAILED));
	struct dd_stats st;
	for (int i = 0; i < 5000; i++) {
		dd_stats(e, &st);
		if (st.total.succeeded + st.total.failed == 4)
			break;
		sleep_ms(1);
	}
	cr_assert_eq(st.total.succeeded, 2, "good and x succeeded");
	cr_assert_eq(st.total.failed, 2, "bad and y failed");
	dd_engine_destroy(e);
}

Test(deps, dependency_submitted_in_the_same_batch)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 2;
	struct dd_engine *e = make_engine(&c);
	/* B names A's id before A has surely reached its reactor */
	for (int round = 0; round < 200; round++) {
		struct dd_job_spec a = spec("ok");
		a.shard = round % 2;
		uint64_t ida = submit_ok(e, &a);
		struct dd_job_spec b = spec("ok");
		b.shard = (round + 1) % 2;
		b.deps = &ida;
		b.ndeps = 1;
		uint64_t idb = submit_ok(e, &b);
		cr_assert_eq(wait_state(e, idb, NULL), DD_SUCCEEDED);
	}
	dd_engine_destroy(e);
}
