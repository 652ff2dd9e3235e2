/* A million jobs with random priorities, delays and failures from several
 * submitters: every job ends exactly once and the counters agree. */
#include <pthread.h>
#include <stdlib.h>

#include "util.h"

#define SUBMITTERS 3

static _Atomic uint8_t *seen[DD_MAX_SHARDS];
static _Atomic int twice;

static void on_end(const struct dd_event *ev, void *arg)
{
	(void)arg;
	uint64_t seq = ev->id & ((1ull << 56) - 1);
	if (atomic_fetch_add(&seen[ev->id >> 56][seq], 1) != 0)
		atomic_store(&twice, 1);
}

struct sub_ctx {
	struct dd_engine *e;
	unsigned n;
	unsigned seed;
	uint64_t failed_expected;
};

static void *submitter(void *arg)
{
	struct sub_ctx *c = arg;
	struct dd_job_spec specs[128];
	uint64_t ids[128];
	for (unsigned done = 0; done < c->n;) {
		unsigned k = c->n - done < 128 ? c->n - done : 128;
		for (unsigned i = 0; i < k; i++) {
			unsigned r = (unsigned)rand_r(&c->seed);
			specs[i] = spec(r % 97 == 0 ? "fail" : "ok");
			c->failed_expected += r % 97 == 0;
			specs[i].priority = (int)(r % DD_PRIO_LEVELS);
			specs[i].delay_ns = r % 1000 == 1 ? (r % 5) * MS : 0;
		}
		size_t got = 0;
		int rc = dd_submit_batch(c->e, specs, k, DD_SUBMIT_BLOCK, ids, &got);
		cr_assert_eq(rc, 0, "%s", dd_strerror(rc));
		cr_assert_eq(got, k);
		done += k;
	}
	return NULL;
}

Test(stress, million_jobs_end_exactly_once, .timeout = 600)
{
	unsigned total = 1000000 / test_scale();
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 2;
	c.on_event = on_end;
	c.retain_terminal = 1000;
	for (int i = 0; i < 2; i++)
		seen[i] = calloc(total + 16, 1);
	struct dd_engine *e = make_engine(&c);
	struct sub_ctx ctx[SUBMITTERS];
	pthread_t t[SUBMITTERS];
	for (int i = 0; i < SUBMITTERS; i++) {
		ctx[i] = (struct sub_ctx){e, total / SUBMITTERS + (i == 0 ? total % SUBMITTERS : 0),
					  (unsigned)i * 7919u + 1, 0};
		pthread_create(&t[i], NULL, submitter, &ctx[i]);
	}
	uint64_t fails = 0;
	for (int i = 0; i < SUBMITTERS; i++) {
		pthread_join(t[i], NULL);
		fails += ctx[i].failed_expected;
	}
	struct dd_stats st;
	for (int i = 0; i < 60000; i++) {
		dd_stats(e, &st);
		if (st.total.succeeded + st.total.failed >= total)
			break;
		sleep_ms(1);
	}
	cr_assert_eq(st.total.submitted, total);
	cr_assert_eq(st.total.succeeded + st.total.failed, total, "every job ended");
	cr_assert_eq(st.total.failed, fails);
	cr_assert_eq(st.total.queued + st.total.running + st.total.waiting + st.total.delayed, 0);
	/* the reactors trim what passes retention at their next turn, which
	 * may come after the last job was seen ended */
	for (int i = 0; i < 60000 && st.total.in_memory > 2 * 1000 + 2 * 64; i++) {
		sleep_ms(1);
		dd_stats(e, &st);
	}
	cr_assert_leq(st.total.in_memory, 2 * 1000 + 2 * 64, "retention bounds memory");
	dd_engine_destroy(e);
	cr_assert_eq(atomic_load(&twice), 0, "some job ended twice");
	uint64_t ended = 0;
	for (int s = 0; s < 2; s++)
		for (unsigned i = 1; i <= total; i++)
			ended += atomic_load(&seen[s][i]) == 1;
	cr_assert_eq(ended, total, "every id ended once");
	for (int i = 0; i < 2; i++)
		free((void *)seen[i]);
}
