/* Wake-up: many producers against a consumer that parks at every chance.
 * A lost wake-up leaves the consumer parked forever: the test then hits its
 * time-out and fails. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "queue.h"

#define PRODUCERS 4
#define ITEMS 50000

struct ctx {
	struct dd_queue_mpsc *r;
	struct dd_queue_wake w;
};

static bool ready(void *arg)
{
	struct ctx *c = arg;
	return dd_queue_mpsc_ready(c->r);
}

static void *producer(void *arg)
{
	struct ctx *c = arg;
	for (uint64_t i = 0; i < ITEMS; i++) {
		while (dd_queue_mpsc_enqueue(c->r, &i, 1) != 1)
			sched_yield();
		dd_queue_wake_notify(&c->w);
		if ((i & 255) == 0)
			sched_yield(); /* vary the interleaving: let the consumer park */
	}
	return NULL;
}

static void run(uint64_t spin_ns)
{
	struct ctx c;
	cr_assert_eq(dd_queue_mpsc_create(64, sizeof(uint64_t), &c.r), 0);
	dd_queue_wake_init(&c.w);
	pthread_t t[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&t[i], NULL, producer, &c);
	uint64_t got = 0, buf[64];
	while (got < (uint64_t)PRODUCERS * ITEMS) {
		size_t n = dd_queue_mpsc_dequeue(c.r, buf, 64);
		got += n;
		if (!n) /* no time-out: only a notify can end this wait */
			dd_queue_wake_wait(&c.w, ready, &c, spin_ns, UINT64_MAX);
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(got, (uint64_t)PRODUCERS * ITEMS);
	if (spin_ns == 0) /* with a spin budget, parking depends on timing */
		cr_assert_gt(atomic_load(&c.w.parks), 0,
			     "the consumer did park (else the test proves nothing)");
	dd_queue_mpsc_destroy(c.r);
}

Test(wake, no_lost_wakeup_parking_immediately, .timeout = 120)
{
	run(0);
}

Test(wake, no_lost_wakeup_with_spin, .timeout = 120)
{
	run(2000);
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

Test(wake, timeout_returns_zero)
{
	struct dd_queue_wake w;
	dd_queue_wake_init(&w);
	cr_assert_eq(dd_queue_wake_wait(&w, never, NULL, 1000, 2000000), 0);
}

Test(wake, awake_consumer_costs_no_syscall)
{
	struct dd_queue_wake w;
	dd_queue_wake_init(&w);
	for (int i = 0; i < 1000; i++)
		dd_queue_wake_notify(&w);
	cr_assert_eq(atomic_load(&w.wakes), 0, "no futex wake while nobody sleeps");
}
