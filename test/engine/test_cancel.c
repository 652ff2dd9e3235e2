/* Cancellation in every non-terminal state, races, wait time-outs and
 * shutdown. */
#include <pthread.h>

#include "util.h"

static struct dd_engine *one_worker(void)
{
	struct dd_config c;
	dd_config_init(&c);
	c.shards = 1;
	c.workers = 1;
	c.worker_queue = 1;
	return make_engine(&c);
}

Test(cancel, queued_waiting_delayed_and_running)
{
	struct dd_engine *e = one_worker();
	struct dd_job_spec sp = spec("spin");
	uint64_t running = submit_ok(e, &sp);
	await_state(e, running, DD_RUNNING);
	struct dd_job_spec q = spec("ok");
	uint64_t queued = submit_ok(e, &q);
	await_state(e, queued, DD_QUEUED);
	struct dd_job_spec w = spec("ok");
	w.deps = &running;
	w.ndeps = 1;
	uint64_t waiting = submit_ok(e, &w);
	await_state(e, waiting, DD_WAITING);
	struct dd_job_spec d = spec("ok");
	d.delay_ns = 10000 * MS;
	uint64_t delayed = submit_ok(e, &d);
	await_state(e, delayed, DD_DELAYED);

	uint64_t all[4] = {queued, waiting, delayed, running};
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(dd_cancel(e, all[i]), 0);
		struct dd_job_info info;
		cr_assert_eq(wait_state(e, all[i], &info), DD_CANCELLED);
		cr_assert_str_eq(info.reason, "cancelled");
		cr_assert_eq(dd_cancel(e, all[i]), DD_ETERMINAL, "terminal stays terminal");
	}
	cr_assert_eq(dd_cancel(e, 0x00000000ffffffull), -ENOENT);
	/* the spinning handler saw the flag: the worker takes new work */
	struct dd_job_spec ok = spec("ok");
	cr_assert_eq(wait_state(e, submit_ok(e, &ok), NULL), DD_SUCCEEDED);
	dd_engine_destroy(e);
}

Test(cancel, wait_times_out_and_can_wait_again)
{
	struct dd_engine *e = one_worker();
	struct dd_job_spec g = spec("gate");
	uint64_t id = submit_ok(e, &g);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, id, 20 * MS, &info), -ETIMEDOUT);
	cr_assert_eq(dd_wait(e, id, 0, &info), -ETIMEDOUT);
	atomic_store(&gate_open, 1);
	cr_assert_eq(dd_wait(e, id, 5000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	dd_engine_destroy(e);
}

static _Atomic int ended[2][1 << 15];
static _Atomic int dup_end;

static void on_end(const struct dd_event *ev, void *arg)
{
	(void)arg;
	unsigned seq = (unsigned)(ev->id & 0x7fff);
	if (atomic_fetch_add(&ended[ev->id >> 56][seq], 1) != 0)
		atomic_store(&dup_end, 1);
}

struct racer {
	struct dd_engine *e;
	uint64_t *ids;
	int n;
	int ok, terminal;
};

static void *canceller(void *arg)
{
	struct racer *r = arg;
	for (int i = r->n - 1; i >= 0; i--) {
		int rc = dd_cancel(r->e, r->ids[i]);
		if (rc == 0)
			r->ok++;
		else if (rc == DD_ETERMINAL)
			r->terminal++;
	}
	return NULL;
}

Test(cancel, races_end_each_job_exactly_once, .timeout = 120)
{
	struct dd_config c;
	dd_config_init(&c);
	c.on_event = on_end;
	c.pretend_nodes = 2;
	c.spin_ns = 0;
	struct dd_engine *e = make_engine(&c);
	int n = 20000 / (int)test_scale();
	uint64_t *ids = calloc((size_t)n, sizeof(*ids));
	struct dd_job_spec s = spec("ok");
	for (int i = 0; i < n; i++) {
		s.delay_ns = (i % 3 == 0) ? 1 * MS : 0;
		ids[i] = submit_ok(e, &s);
	}
	struct racer r[2] = {{e, ids, n, 0, 0}, {e, ids, n, 0, 0}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, canceller, &r[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < n; i++) {
		enum dd_state st = wait_state(e, ids[i], NULL);
		cr_assert(st == DD_SUCCEEDED || st == DD_CANCELLED);
	}
	struct dd_stats st;
	dd_stats(e, &st);
	cr_assert_eq(st.total.cancelled, (uint64_t)(r[0].ok + r[1].ok),
		     "each successful cancel cancelled one job");
	cr_assert_eq(st.total.cancelled + st.total.succeeded, (uint64_t)n);
	cr_assert_eq(r[0].ok + r[0].terminal, n);
	dd_engine_destroy(e);
	cr_assert_eq(atomic_load(&dup_end), 0, "a job ended twice");
	free(ids);
}

static _Atomic int shutdown_cancels;

static void on_shutdown(const struct dd_event *ev, void *arg)
{
	(void)arg;
	if (ev->state == DD_CANCELLED && strcmp(ev->reason, "shutdown") == 0)
		atomic_fetch_add(&shutdown_cancels, 1);
}

Test(cancel, destroy_cancels_unstarted_and_stops_running_after_grace)
{
	struct dd_config c;
	dd_config_init(&c);
	c.shards = 1;
	c.workers = 1;
	c.worker_queue = 1;
	c.shutdown_grace_ns = 50 * MS;
	c.on_event = on_shutdown;
	struct dd_engine *e = make_engine(&c);
	struct dd_job_spec sp = spec("spin");
	uint64_t running = submit_ok(e, &sp);
	await_state(e, running, DD_RUNNING);
	struct dd_job_spec q = spec("ok");
	for (int i = 0; i < 10; i++)
		submit_ok(e, &q);
	q.delay_ns = 10000 * MS;
	submit_ok(e, &q);
	dd_engine_destroy(e); /* returns once the spinning handler saw the flag */
	cr_assert_eq(atomic_load(&shutdown_cancels), 12, "11 unstarted + 1 running");
}

Test(cancel, destroy_lets_short_handlers_finish)
{
	struct dd_config c;
	dd_config_init(&c);
	c.shards = 1;
	c.workers = 1;
	c.on_event = on_shutdown;
	struct dd_engine *e = make_engine(&c);
	struct dd_job_spec g = spec("gate");
	uint64_t id = submit_ok(e, &g);
	await_state(e, id, DD_RUNNING);
	atomic_store(&gate_open, 1);
	dd_engine_destroy(e);
	cr_assert_eq(atomic_load(&shutdown_cancels), 0);
	dd_engine_destroy(NULL);
}
