/* The applier's work in short stretches, when it has time to spare.
 *
 * The applier runs at nice 19 on the CPUs the reactors and workers leave
 * (placement.c), which on a small machine are the submitters' CPUs too.
 * Left alone it turns a backlog of tens of thousands of records into one
 * run of milliseconds, and whatever thread shares the CPU (std-r's load
 * generator, an embedding program's submitter) waits that long. Napping
 * 20 µs after every 256 records lets them run.
 *
 * Napping costs the applier time it may not have: through dispatchd at
 * its limit the applier is busy most of the time, and there naps at all
 * times cost rate. So it naps only while its own CPU time over the last
 * window is under STRETCH_BUSY of the wall time, and never while
 * submissions are held back for it (urgent). Measured: docs/BENCHMARKS.md,
 * "Measured choices: applier stretches". */
#include <sys/prctl.h>
#include <time.h>

#include "engine.h"
#include "stretch.h"

#define STRETCH_NAP_NS 20000
#define STRETCH_BUSY 0.35

void dd_stretch_init(struct dd_stretch *t, uint64_t now)
{
	/* the default 50 µs of timer slack would make each nap 3-4x longer */
	prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul);
	t->on = false;
	t->wall0 = now;
	t->cpu0 = dd_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

void dd_stretch_window(struct dd_stretch *t, uint64_t now, bool urgent)
{
	uint64_t cpu = dd_clock_ns(CLOCK_THREAD_CPUTIME_ID), wall = now - t->wall0;
	if (!wall)
		return;
	t->on = !urgent && (double)(cpu - t->cpu0) < STRETCH_BUSY * (double)wall;
	t->wall0 = now;
	t->cpu0 = cpu;
}

void dd_stretch_pause(void *arg)
{
	const struct dd_stretch *t = arg;
	if (!t->on)
		return;
	struct timespec ts = {0, STRETCH_NAP_NS};
	nanosleep(&ts, NULL);
}
