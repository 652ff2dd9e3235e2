/* Job arrays: Slurm's syntax, every element once with its index, %MAX,
 * outcomes, cancel in one operation, elements not made yet, dependencies
 * on a whole array. */
#include <pthread.h>

#include "util.h"

/* ---- the syntax ---- */

static void parses(const char *text, unsigned nranges, uint64_t count, uint32_t cap)
{
	struct dd_array_range r[8];
	unsigned n;
	uint32_t max;
	uint64_t c;
	char why[160] = "";
	cr_assert_eq(dd_array_parse(text, r, 8, &n, &max, &c, why, sizeof(why)), 0, "%s: %s",
		     text, why);
	cr_assert_eq(n, nranges, "%s: %u ranges", text, n);
	cr_assert_eq(c, count, "%s: %lu elements", text, (unsigned long)c);
	cr_assert_eq(max, cap, "%s: %%%u", text, max);
}

static void refuses(const char *text, int err, const char *says)
{
	struct dd_array_range r[8];
	unsigned n;
	uint32_t max;
	uint64_t c;
	char why[160] = "";
	cr_assert_eq(dd_array_parse(text, r, 8, &n, &max, &c, why, sizeof(why)), err, "%s", text);
	cr_assert(strstr(why, says), "%s: said \"%s\", not \"%s\"", text, why, says);
}

Test(array, slurm_syntax)
{
	parses("1-1000", 1, 1000, 0);
	parses("0-15%4", 1, 16, 4);
	parses("1-10:2", 1, 5, 0); /* 1 3 5 7 9 */
	parses("1,3,5-9", 3, 7, 0);
	parses("9,1,5", 3, 3, 0);    /* sorted */
	parses("7", 1, 1, 0);
	parses("0-2147483647:1073741824", 1, 2, 0);
	struct dd_array_range r[4];
	unsigned n;
	uint32_t max;
	uint64_t c;
	cr_assert_eq(dd_array_parse("2-11:3,0", r, 4, &n, &max, &c, NULL, 0), 0);
	cr_assert_eq(r[0].first, 0);
	cr_assert_eq(r[1].first, 2);
	cr_assert_eq(r[1].last, 11, "2 5 8 11");
	cr_assert_eq(dd_array_parse("2-10:3", r, 4, &n, &max, &c, NULL, 0), 0);
	cr_assert_eq(r[0].last, 8, "normalised to the last index reached");

	refuses("", -EINVAL, "empty");
	refuses("5-1", -EINVAL, "backwards");
	refuses("1-5,3", -EINVAL, "overlap");
	refuses("0-10:2,1-11:2", -EINVAL, "interleave");
	refuses("1-x", -EINVAL, "at byte 2");
	refuses("1-10:0", -EINVAL, "not an array");
	refuses("1-10%0", -EINVAL, "not an array");
	refuses("1-10%", -EINVAL, "not an array");
	refuses("-1", -EINVAL, "not an array");
	refuses("2147483648", -EINVAL, "not an array");
	refuses("1,2,3,4,5,6,7,8,9", -E2BIG, "ranges");
	refuses("0-16777216", -E2BIG, "elements");
	refuses(" 1-3", -EINVAL, "not an array");
	refuses("1-3 ", -EINVAL, "not an array");
}

/* ---- running them ---- */

static _Atomic int seen[4096];
static _Atomic int running, most, arr_gate;
static _Atomic uint64_t seen_array;

static int element(const struct dd_job *j, void *arg)
{
	(void)arg;
	cr_assert_lt(j->array_index, 4096u);
	atomic_fetch_add(&seen[j->array_index], 1);
	atomic_store(&seen_array, j->array_id);
	int now = atomic_fetch_add(&running, 1) + 1;
	for (int m = atomic_load(&most); now > m && !atomic_compare_exchange_weak(&most, &m, now);)
		;
	while (!atomic_load(&arr_gate) && !dd_job_cancelled(j)) {
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	atomic_fetch_sub(&running, 1);
	return j->array_index % 7 == 3 ? 1 : 0; /* those fail */
}

/* Until @n elements run (a minute at most: a loaded machine). */
static void await_running(int n)
{
	for (int i = 0; i < 60000 && atomic_load(&running) < n; i++)
		sleep_ms(1);
	cr_assert_geq(atomic_load(&running), n, "%d elements never ran at once", n);
}

static struct dd_engine *array_engine(unsigned workers)
{
	struct dd_config c;
	dd_config_init(&c);
	c.shards = 1;
	c.workers = workers;
	c.pin = false;
	struct dd_engine *e = make_engine(&c);
	cr_assert_eq(dd_handler_register(e, "element", element, NULL), 0);
	return e;
}

static uint64_t submit_array(struct dd_engine *e, const char *text, const char *kind)
{
	struct dd_array_range r[16];
	struct dd_array_spec as = {.ranges = r};
	uint64_t count, id;
	cr_assert_eq(dd_array_parse(text, r, 16, &as.nranges, &as.max_running, &count, NULL, 0), 0);
	struct dd_job_spec s = spec(kind);
	s.array = &as;
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	return id;
}

Test(array, every_element_runs_once_with_its_index)
{
	atomic_store(&arr_gate, 1);
	struct dd_engine *e = array_engine(2);
	uint64_t id = submit_array(e, "0-2999:3,3001,4000-4095", "element");
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED, "some elements fail");
	cr_assert_eq(info.array_id, id);
	cr_assert_eq(info.array_count, 1000 + 1 + 96);
	uint64_t bad = 0, n = 0;
	for (int i = 0; i < 4096; i++) {
		bool in = (i < 3000 && i % 3 == 0) || i == 3001 || i >= 4000;
		cr_assert_eq(atomic_load(&seen[i]), in ? 1 : 0, "index %d ran %d times", i,
			     atomic_load(&seen[i]));
		bad += in && i % 7 == 3;
		n += in;
	}
	cr_assert_eq(info.array_states[DD_FAILED], bad);
	cr_assert_eq(info.array_states[DD_SUCCEEDED], n - bad);
	char want[96];
	snprintf(want, sizeof(want), "%lu of %lu elements did not succeed", (unsigned long)bad,
		 (unsigned long)n);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(atomic_load(&seen_array), id);
	/* an element is a job of its own, with its place in the array */
	cr_assert_eq(dd_job_get(e, id + 1 + 5, &info), 0);
	cr_assert_eq(info.array_id, id);
	cr_assert_eq(info.array_index, 15u);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(dd_job_get(e, id + 1 + 1, &info), 0);
	cr_assert_eq(info.array_index, 3u);
	cr_assert_eq(info.state, DD_FAILED);
	/* ids after the array's elements are new jobs */
	struct dd_job_spec s = spec("ok");
	uint64_t next;
	cr_assert_eq(dd_submit(e, &s, 0, &next), 0);
	cr_assert_gt(next, id + 1097);
	dd_engine_destroy(e);
}

Test(array, max_caps_the_elements_running_at_once)
{
	atomic_store(&arr_gate, 0);
	struct dd_engine *e = array_engine(8);
	uint64_t id = submit_array(e, "1-30%3", "element");
	/* three start and hold; no fourth may start while they do */
	await_running(3);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.state, DD_RUNNING);
	cr_assert_eq(info.array_states[DD_RUNNING], 3);
	cr_assert_eq(info.array_states[DD_QUEUED], 27);
	/* an element not made yet answers for itself */
	cr_assert_eq(dd_job_get(e, id + 20, &info), 0);
	cr_assert_eq(info.state, DD_QUEUED);
	cr_assert_eq(info.array_id, id);
	cr_assert_eq(info.array_index, 20u);
	cr_assert_eq(dd_cancel(e, id + 20), -EBUSY, "cancel the array, not one not made");
	atomic_store(&arr_gate, 1);
	cr_assert_eq(dd_wait(e, id + 30, 60000 * MS, &info), 0, "a wait on one not made yet");
	cr_assert_eq(info.array_index, 30u);
	cr_assert_eq(wait_state(e, id, &info), DD_FAILED);
	cr_assert_eq(atomic_load(&most), 3, "at most 3 at once, and 3 did run at once");
	dd_engine_destroy(e);
}

Test(array, cancel_is_one_operation)
{
	atomic_store(&arr_gate, 0);
	struct dd_engine *e = array_engine(2);
	uint64_t id = submit_array(e, "0-999999", "element");
	await_running(2);
	/* what waits on an element, made or not, learns it will not run */
	struct dd_job_spec s = spec("ok");
	uint64_t late = id + 1 + 500000, dep;
	s.deps = &late;
	s.ndeps = 1;
	cr_assert_eq(dd_submit(e, &s, 0, &dep), 0);
	cr_assert_eq(dd_cancel(e, id), 0);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, id, &info), DD_CANCELLED);
	cr_assert_eq(info.array_count, 1000000);
	cr_assert_eq(info.array_states[DD_CANCELLED] + info.array_states[DD_FAILED] +
			     info.array_states[DD_SUCCEEDED],
		     1000000);
	cr_assert_geq(info.array_states[DD_CANCELLED], 1000000 - 4096);
	cr_assert_eq(wait_state(e, dep, &info), DD_FAILED);
	char want[96];
	snprintf(want, sizeof(want), "dependency afterok:%lu did not succeed", (unsigned long)late);
	cr_assert_str_eq(info.reason, want);
	cr_assert_eq(dd_cancel(e, id), DD_ETERMINAL);
	dd_engine_destroy(e);
}

Test(array, a_dependency_on_an_array_waits_for_all_of_it)
{
	atomic_store(&arr_gate, 1);
	struct dd_engine *e = make_engine(NULL);
	uint64_t arr = submit_array(e, "1-200", "ok");
	struct dd_job_spec s = spec("order");
	int tag = 7;
	s.payload = &tag;
	s.payload_len = sizeof(tag);
	s.deps = &arr;
	s.ndeps = 1;
	uint64_t after;
	cr_assert_eq(dd_submit(e, &s, 0, &after), 0);
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, after, &info), DD_SUCCEEDED);
	cr_assert_eq(dd_job_get(e, arr, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	cr_assert_eq(info.array_states[DD_SUCCEEDED], 200);
	cr_assert_geq(info.ended_ns, info.started_ns);
	/* an array that waits on a job makes no element before it ends */
	struct dd_job_spec g = spec("gate");
	atomic_store(&gate_open, 0);
	uint64_t gate, arr2;
	cr_assert_eq(dd_submit(e, &g, 0, &gate), 0);
	struct dd_array_range r = {0, 9, 1};
	struct dd_array_spec as = {.ranges = &r, .nranges = 1};
	s = spec("ok");
	s.array = &as;
	s.deps = &gate;
	s.ndeps = 1;
	cr_assert_eq(dd_submit(e, &s, 0, &arr2), 0);
	await_state(e, arr2, DD_WAITING);
	cr_assert_eq(dd_job_get(e, arr2 + 1, &info), 0);
	cr_assert_eq(info.state, DD_WAITING);
	cr_assert_eq(dd_job_get(e, arr2, &info), 0);
	cr_assert_eq(info.array_states[DD_WAITING], 10);
	atomic_store(&gate_open, 1);
	cr_assert_eq(wait_state(e, arr2, &info), DD_SUCCEEDED);
	/* cancelled while it waits, it ends at once, not when its dependency does */
	atomic_store(&gate_open, 0);
	cr_assert_eq(dd_submit(e, &g, 0, &gate), 0);
	cr_assert_eq(dd_submit(e, &s, 0, &arr2), 0);
	await_state(e, arr2, DD_WAITING);
	cr_assert_eq(dd_cancel(e, arr2), 0);
	cr_assert_eq(dd_wait(e, arr2, 60000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_CANCELLED);
	cr_assert_eq(info.array_states[DD_CANCELLED], 10);
	cr_assert_eq(dd_job_get(e, gate, &info), 0);
	cr_assert(!dd_state_terminal(info.state), "the array did not wait for it");
	atomic_store(&gate_open, 1);
	dd_engine_destroy(e);
}

Test(array, bad_specs_are_refused)
{
	struct dd_engine *e = make_engine(NULL);
	struct dd_array_range r[2] = {{5, 1, 1}, {0, 0, 1}};
	struct dd_array_spec as = {.ranges = r, .nranges = 1};
	struct dd_job_spec s = spec("ok");
	s.array = &as;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL, "backwards");
	r[0] = (struct dd_array_range){1, 5, 0};
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL, "no step");
	r[0] = (struct dd_array_range){1, 5, 1};
	as.nranges = 2;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL, "not ascending");
	as.nranges = 0;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL, "empty");
	r[0] = (struct dd_array_range){0, DD_ARRAY_MAX, 1};
	as.nranges = 1;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -E2BIG);
	dd_engine_destroy(e);
}

/* aftercorr: element i of one array waits for element i of the other to
 * succeed; an index the other has not waits for nothing; one whose
 * counterpart failed fails, naming it. */
static _Atomic int corr_order[64];
static _Atomic int corr_n;

static int corr_first(const struct dd_job *j, void *arg)
{
	(void)arg;
	while (!atomic_load(&arr_gate))
		sleep_ms(1);
	atomic_store(&corr_order[atomic_fetch_add(&corr_n, 1)], (int)j->array_index);
	return j->array_index == 4 ? 1 : 0;
}

static int corr_second(const struct dd_job *j, void *arg)
{
	(void)arg;
	atomic_store(&corr_order[atomic_fetch_add(&corr_n, 1)], 100 + (int)j->array_index);
	return 0;
}

Test(array, aftercorr_pairs_the_elements)
{
	atomic_store(&arr_gate, 0);
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 2; /* the second array follows the first to its shard */
	c.workers = 10;      /* room for the first's six that hold, and more */
	c.pin = false;
	struct dd_engine *e = make_engine(&c);
	cr_assert_eq(dd_handler_register(e, "first", corr_first, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "second", corr_second, NULL), 0);
	uint64_t a = submit_array(e, "0-5", "first");
	struct dd_array_range r = {2, 8, 1};
	struct dd_array_spec as = {.ranges = &r, .nranges = 1};
	uint8_t kind = DD_DEP_AFTERCORR;
	struct dd_job_spec s = spec("second");
	s.array = &as;
	s.deps = &a;
	s.ndeps = 1;
	s.dep_kinds = &kind;
	uint64_t b;
	cr_assert_eq(dd_submit(e, &s, 0, &b), 0);
	/* 6, 7 and 8 have no counterpart: they run while the first holds */
	for (int i = 0; i < 60000 && atomic_load(&corr_n) < 3; i++)
		sleep_ms(1);
	cr_assert_eq(atomic_load(&corr_n), 3);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, b + 1, &info), 0);
	cr_assert_eq(info.state, DD_WAITING, "index 2 waits for the first's 2");
	atomic_store(&arr_gate, 1);
	cr_assert_eq(wait_state(e, b, &info), DD_FAILED);
	cr_assert_eq(info.array_states[DD_SUCCEEDED], 6);
	cr_assert_eq(info.array_states[DD_FAILED], 1);
	cr_assert_eq(dd_job_get(e, b + 1 + 2, &info), 0);
	cr_assert_eq(info.array_index, 4u);
	char want[96];
	snprintf(want, sizeof(want), "dependency afterok:%lu did not succeed",
		 (unsigned long)(a + 1 + 4));
	cr_assert_str_eq(info.reason, want);
	/* each second element after its first */
	int at[200];
	memset(at, -1, sizeof(at));
	for (int i = 0; i < atomic_load(&corr_n); i++)
		at[atomic_load(&corr_order[i])] = i;
	for (int k = 2; k <= 5; k++)
		if (k != 4)
			cr_assert_gt(at[100 + k], at[k], "index %d ran before its counterpart", k);
	/* an aftercorr on what is not an array */
	struct dd_job_spec o = spec("ok");
	uint64_t plain = submit_ok(e, &o), bad;
	s.deps = &plain;
	cr_assert_eq(dd_submit(e, &s, 0, &bad), 0);
	cr_assert_eq(wait_state(e, bad, &info), DD_FAILED);
	snprintf(want, sizeof(want), "dependency aftercorr:%lu is not a job array",
		 (unsigned long)plain);
	cr_assert_str_eq(info.reason, want);
	dd_engine_destroy(e);
}
