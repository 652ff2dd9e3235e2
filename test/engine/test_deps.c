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
	char want[96];
	snprintf(want, sizeof(want), "dependency afterok:%lu did not succeed", (unsigned long)a);
	cr_assert_str_eq(info.reason, want, "the reason names it");
	cr_assert_eq(info.attempt, 0, "never ran");
	cr_assert_eq(wait_state(e, cjob, &info), DD_FAILED);
	snprintf(want, sizeof(want), "dependency afterok:%lu did not succeed", (unsigned long)b);
	cr_assert_str_eq(info.reason, want);
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

/* Polls until @n jobs have ended (30 s at most). */
static void await_ended(struct dd_engine *e, uint64_t n, struct dd_stats *st)
{
	for (int i = 0; i < 30000; i++) {
		dd_stats(e, st);
		if (st->total.succeeded + st->total.failed >= n)
			return;
		sleep_ms(1);
	}
	cr_assert_fail("only %lu of %lu jobs ended",
		       (unsigned long)(st->total.succeeded + st->total.failed), (unsigned long)n);
}

/* The fate of ended jobs, kept to answer dependencies, must not cost a
 * byte per job for ever: a page of 65,536 ids whose jobs have all ended
 * keeps only its failures. Dependencies on jobs in such pages, good and
 * failed, are still answered right. */
Test(deps, fates_of_ended_jobs_are_compacted, .timeout = 120)
{
	enum { PAGE = 65536, PAGES = 6, EVERY = 997 }; /* every 997th job fails */
	struct dd_config c;
	dd_config_init(&c);
	c.retain_terminal = 0;
	c.shards = 1;
	struct dd_engine *e = make_engine(&c);
	const uint64_t n = (uint64_t)PAGES * PAGE;
	uint64_t *ids = calloc(n, sizeof(uint64_t));
	struct dd_job_spec batch[256];
	for (uint64_t done = 0; done < n;) {
		size_t k = n - done < 256 ? (size_t)(n - done) : 256, got = 0;
		for (size_t i = 0; i < k; i++)
			batch[i] = spec((done + i) % EVERY == EVERY - 1 ? "fail" : "ok");
		int r = dd_submit_batch(e, batch, k, DD_SUBMIT_BLOCK, ids + done, &got);
		cr_assert(r == 0 || r == -EAGAIN, "submit: %s", dd_strerror(r));
		done += got;
	}
	struct dd_stats st;
	await_ended(e, n, &st);
	cr_assert_eq(st.total.failed, n / EVERY);
	/* A byte per id would be PAGES+1 pages (ids start at 1). The first
	 * page (id 0 never comes) and the last (not full) stay whole; the full
	 * ones keep 2 bytes per failure. */
	uint64_t bound = 2 * (PAGE + 64) + (PAGES - 1) * (64 + 2 * (PAGE / EVERY + 1));
	cr_assert_leq(st.total.fate_bytes, bound, "fate map %lu bytes, more than %lu",
		      (unsigned long)st.total.fate_bytes, (unsigned long)bound);
	cr_assert_geq(st.total.fate_bytes, 2 * PAGE, "the two whole pages are counted");
	/* ids in compacted pages (the second and third), failed and good */
	size_t ib = (2 * PAGE / EVERY + 1) * EVERY + EVERY - 1; /* a failed one */
	uint64_t bad = ids[ib], good = ids[ib + 1];
	cr_assert_eq(dd_job_get(e, bad, NULL), DD_EEVICTED);
	uint64_t on_bad = submit_after(e, "ok", &bad, 1, 0);
	uint64_t on_good = submit_after(e, "ok", &good, 1, 0);
	(void)on_bad;
	(void)on_good;
	await_ended(e, n + 2, &st);
	cr_assert_eq(st.total.failed, n / EVERY + 1, "the job after a failed one failed");
	cr_assert_eq(st.total.succeeded, n - n / EVERY + 1, "the job after a good one ran");
	free(ids);
	dd_engine_destroy(e);
}

/* Slurm's kinds: afterany runs whatever the end, afternotok only after a
 * failure (and fails, naming it, after a success), on jobs in memory and
 * on jobs that left it, within a shard and across shards. */
static void kinds(struct dd_config *c)
{
	struct dd_engine *e = make_engine(c);
	struct dd_job_spec g = spec("gate");
	atomic_store(&gate_open, 0);
	uint64_t gate = submit_ok(e, &g);
	uint64_t bad = submit_after(e, "fail", &gate, 1, 0);
	uint64_t good = submit_after(e, "order", &gate, 1, 1);
	struct {
		uint64_t dep;
		uint8_t kind;
		enum dd_state want;
		const char *why;
	} t[] = {
		{bad, DD_DEP_AFTERANY, DD_SUCCEEDED, ""},
		{good, DD_DEP_AFTERANY, DD_SUCCEEDED, ""},
		{bad, DD_DEP_AFTERNOTOK, DD_SUCCEEDED, ""},
		{good, DD_DEP_AFTERNOTOK, DD_FAILED, "succeeded"},
		{bad, DD_DEP_AFTEROK, DD_FAILED, "did not succeed"},
		{good, DD_DEP_AFTEROK, DD_SUCCEEDED, ""},
	};
	uint64_t ids[6], later[6];
	for (int i = 0; i < 6; i++) {
		struct dd_job_spec s = spec("ok");
		s.deps = &t[i].dep;
		s.ndeps = 1;
		s.dep_kinds = &t[i].kind;
		ids[i] = submit_ok(e, &s);
	}
	atomic_store(&gate_open, 1);
	cr_assert_eq(wait_state(e, bad, NULL), DD_FAILED);
	cr_assert_eq(wait_state(e, good, NULL), DD_SUCCEEDED);
	/* and once they ended */
	for (int i = 0; i < 6; i++) {
		struct dd_job_spec s = spec("ok");
		s.deps = &t[i].dep;
		s.ndeps = 1;
		s.dep_kinds = &t[i].kind;
		later[i] = submit_ok(e, &s);
	}
	for (int i = 0; i < 12; i++) {
		struct dd_job_info info;
		int k = i % 6;
		cr_assert_eq(wait_state(e, i < 6 ? ids[k] : later[k], &info), t[k].want, "case %d", i);
		if (t[k].want == DD_FAILED) {
			char want[96];
			snprintf(want, sizeof(want), "dependency %s:%lu %s", dd_dep_kind_name(t[k].kind),
				 (unsigned long)t[k].dep, t[k].why);
			cr_assert_str_eq(info.reason, want);
		}
	}
	uint8_t nokind = 9;
	struct dd_job_spec s = spec("ok");
	s.deps = &good;
	s.ndeps = 1;
	s.dep_kinds = &nokind;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL);
	nokind = DD_DEP_AFTERCORR;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL, "aftercorr is for arrays");
	dd_engine_destroy(e);
}

Test(deps, kinds)
{
	kinds(NULL);
}

Test(deps, kinds_across_shards)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 3;
	kinds(&c);
}
