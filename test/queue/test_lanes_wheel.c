/* Priority lanes and the timer wheel. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "queue.h"

struct item {
	struct dd_queue_node n; /* first: the node's address is the item's */
	int lane, seq;
};

Test(lanes, strict_priority_fifo_within)
{
	struct dd_queue_lanes l;
	dd_queue_lanes_init(&l);
	struct item it[40];
	for (int i = 0; i < 40; i++) {
		it[i].lane = (i * 7) % 5;
		it[i].seq = i;
		dd_queue_lanes_push(&l, (unsigned)it[i].lane, &it[i].n);
	}
	cr_assert_eq(l.total, 40);
	/* remove two from the middle */
	dd_queue_lanes_remove(&l, (unsigned)it[10].lane, &it[10].n);
	dd_queue_lanes_remove(&l, (unsigned)it[21].lane, &it[21].n);
	int last_lane = -1, last_seq = -1, n = 0;
	struct dd_queue_node *x;
	while ((x = dd_queue_lanes_pop(&l))) {
		struct item *i = (struct item *)x;
		cr_assert_neq(i->seq, 10);
		cr_assert_neq(i->seq, 21);
		cr_assert_geq(i->lane, last_lane, "more urgent lanes first");
		if (i->lane == last_lane)
			cr_assert_gt(i->seq, last_seq, "FIFO within a lane");
		last_lane = i->lane;
		last_seq = i->seq;
		n++;
	}
	cr_assert_eq(n, 38);
	cr_assert_eq(l.total, 0);
	cr_assert_eq(l.nonempty, 0);
}

struct tmr {
	struct dd_queue_timer t; /* first */
	uint64_t when;
	uint64_t fired_at;
	int fired;
};

static uint64_t g_now;

static void on_fire(struct dd_queue_timer *t, void *arg)
{
	(void)arg;
	struct tmr *m = (struct tmr *)t;
	m->fired++;
	m->fired_at = g_now;
}

/* Random timers from 0 to beyond the wheel's span, advanced in uneven
 * steps: each fires exactly once, never early, and within one tick plus
 * one step of its time. Cancelled ones never fire. */
/* Slow under ThreadSanitizer, and slower still beside the other suites on
 * 2 CPUs (it once passed 60 s there): a generous limit, and fewer timers
 * when DD_TEST_SCALE asks for it. */
Test(wheel, random_timers_fire_once_never_early, .timeout = 300)
{
	const uint64_t tick = 1000;
	struct dd_queue_wheel *w = malloc(sizeof(*w));
	g_now = 5000;
	dd_queue_wheel_init(w, tick, g_now);
	const char *sc = getenv("DD_TEST_SCALE");
	int scale = sc && atoi(sc) > 1 ? atoi(sc) : 1;
	const int N = 5000 / (scale > 10 ? 10 : scale);
	struct tmr *t = calloc(N, sizeof(*t));
	srand(42);
	for (int i = 0; i < N; i++) {
		uint64_t d;
		switch (i % 4) {
		case 0: d = (uint64_t)rand() % 64000; break;                  /* level 0-1 */
		case 1: d = (uint64_t)rand() % 5000000; break;                /* levels 1-3 */
		case 2: d = ((uint64_t)rand() << 20) % (1ull << 40); break;   /* high levels */
		default: d = (1ull << 46) + (uint64_t)rand(); break;          /* beyond the span */
		}
		t[i].when = g_now + d;
		dd_queue_wheel_arm(w, &t[i].t, t[i].when);
	}
	for (int i = 0; i < N; i += 10)
		dd_queue_wheel_cancel(w, &t[i].t);
	uint64_t end = g_now + (1ull << 46) + (1ull << 32);
	size_t fired = 0;
	while (w->armed) {
		uint64_t next = dd_queue_wheel_next_ns(w, g_now);
		cr_assert_neq(next, UINT64_MAX);
		uint64_t step = next ? next : 1 + (uint64_t)rand() % 3000;
		g_now += step;
		fired += dd_queue_wheel_advance(w, g_now, on_fire, NULL);
		cr_assert_leq(g_now, end, "wheel must drain");
	}
	size_t expect = 0;
	for (int i = 0; i < N; i++) {
		if (i % 10 == 0) {
			cr_assert_eq(t[i].fired, 0, "cancelled timer %d fired", i);
			continue;
		}
		expect++;
		cr_assert_eq(t[i].fired, 1, "timer %d fired %d times", i, t[i].fired);
		cr_assert_geq(t[i].fired_at, t[i].when, "timer %d early", i);
	}
	cr_assert_eq(fired, expect);
	free(t);
	free(w);
}

Test(wheel, next_ns_is_a_lower_bound_and_rearm_moves)
{
	struct dd_queue_wheel w;
	dd_queue_wheel_init(&w, 100, 0);
	cr_assert_eq(dd_queue_wheel_next_ns(&w, 0), UINT64_MAX);
	struct tmr a = {0};
	g_now = 0;
	dd_queue_wheel_arm(&w, &a.t, 1000000);
	uint64_t nx = dd_queue_wheel_next_ns(&w, 0);
	cr_assert_leq(nx, 1000000);
	cr_assert_gt(nx, 0);
	dd_queue_wheel_arm(&w, &a.t, 500); /* re-arm earlier */
	cr_assert_eq(w.armed, 1);
	g_now = 499;
	cr_assert_eq(dd_queue_wheel_advance(&w, 499, on_fire, NULL), 0, "not before its time");
	g_now = 500;
	cr_assert_eq(dd_queue_wheel_advance(&w, 500, on_fire, NULL), 1);
	cr_assert_eq(a.fired, 1);
	/* a time already past fires on the next advance */
	dd_queue_wheel_arm(&w, &a.t, 10);
	cr_assert_eq(dd_queue_wheel_advance(&w, 600, on_fire, NULL), 1);
	cr_assert_eq(a.fired, 2);
}
