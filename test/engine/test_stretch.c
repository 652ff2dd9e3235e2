/* The applier's stretches (engine/durable/stretch.c): it naps only while its own
 * CPU time over the last window was under 35 % of the wall time, and never
 * while submissions wait for it. Windows are closed at chosen times, so
 * the shares are what the test makes them, however busy the machine. */
#include <criterion/criterion.h>
#include <time.h>

#include "engine.h"
#include "durable/stretch.h"

/* Spends @ns of this thread's CPU time. */
static void burn(uint64_t ns)
{
	uint64_t until = dd_clock_ns(CLOCK_THREAD_CPUTIME_ID) + ns;
	volatile uint64_t x = 0;
	while (dd_clock_ns(CLOCK_THREAD_CPUTIME_ID) < until)
		x++;
}

Test(stretch, naps_only_with_time_to_spare_and_nothing_held_back)
{
	struct dd_stretch t;
	uint64_t now = 1000000000ull;
	dd_stretch_init(&t, now);
	cr_assert_not(t.on, "off until a window says otherwise");
	/* a second of wall time, next to no CPU */
	now += 1000000000ull;
	dd_stretch_window(&t, now, false);
	cr_assert(t.on);
	/* the same, but submissions wait for the store */
	now += 1000000000ull;
	dd_stretch_window(&t, now, true);
	cr_assert_not(t.on);
	/* 20 ms of CPU in a window of 30 ms of wall time: busy */
	now += 1000000000ull;
	dd_stretch_window(&t, now, false);
	cr_assert(t.on);
	burn(20000000);
	now += 30000000;
	dd_stretch_window(&t, now, false);
	cr_assert_not(t.on, "two thirds of the time busy");
	/* 20 ms in 100 ms: time to spare again */
	burn(20000000);
	now += 100000000;
	dd_stretch_window(&t, now, false);
	cr_assert(t.on);
	/* a nap is a nap: at least its 20 µs */
	uint64_t a = dd_mono_ns();
	dd_stretch_pause(&t);
	cr_assert_geq(dd_mono_ns() - a, 20000);
}
